/**
 * The cleaning pipeline over a corpus: read the sources, then (each step optional, in this
 * order) Unicode normalisation, control-character removal, whitespace normalisation, a length
 * filter and exact deduplication by content hash, with a report of what every step did:
 * documents in and out, how many it changed, how many it dropped and why.
 * @module
 */
import { checkBoolean, checkChoice, checkNumber } from '../tensor/validate.js';
import { got, optionsArg } from './args.js';
import {
  codePointLength,
  contentHash,
  normalizeUnicode,
  removeControlChars,
  type NormalizationForm,
  type WhitespaceOptions,
} from './clean.js';
import { whitespaceAs, whitespaceOptions } from './whitespace.js';
import { checkSources, sourcesDocuments } from './read.js';
import type { TextDocument, SourceIssue, SourceSpec } from './sources.js';

/** Options of {@link prepare}. Every step is on by default; `false` turns one off. */
export interface PrepareOptions {
  /** Unicode normalisation form, or false; `'NFC'` by default. */
  normalize?: NormalizationForm | false;
  /** Remove control characters (see `removeControlChars`); true by default. */
  controlChars?: boolean;
  /** Whitespace normalisation options, or false; on with defaults by default. */
  whitespace?: WhitespaceOptions | false;
  /** Length limits in code points (after cleaning), or false. `minChars` is 1 unless given (empty documents are dropped), `maxChars` unlimited. */
  length?: { minChars?: number; maxChars?: number } | false;
  /** Drop documents whose cleaned text equals an earlier one's (SHA-256); true by default. */
  dedup?: boolean;
  /** What to do with a bad JSONL line in a source that does not say (`'throw'` by default). */
  onError?: 'throw' | 'skip';
  /** How many dropped documents and skipped lines each report keeps as examples; 10 by default. */
  maxExamples?: number;
}

/** A dropped document, as a report's example. */
export interface DropExample {
  id: string;
  reason: string;
  /** For a duplicate, the id of the document it repeats; for a length drop, its length. */
  detail?: string;
}

/** What one step did. */
export interface StepReport {
  step: 'normalize' | 'controlChars' | 'whitespace' | 'length' | 'dedup';
  /** Whether the step ran (a step turned off passes every document through and reports zeros). */
  enabled: boolean;
  in: number;
  out: number;
  /** Documents whose text the step changed. */
  changed: number;
  /** Documents dropped, by reason: `'empty'`, `'too short'`, `'too long'`, `'duplicate'`. */
  dropped: Record<string, number>;
  /** The first few documents dropped. */
  examples: DropExample[];
}

/** The report of a {@link prepare} run. */
export interface PrepareReport {
  /** Documents read from each source, in order. */
  sources: { source: string; documents: number }[];
  /** JSONL lines skipped while reading: the count and the first few. */
  skippedLines: { count: number; examples: SourceIssue[] };
  /** One entry per step, in pipeline order. */
  steps: StepReport[];
  /** Documents read, documents kept, and drops by reason over all steps. */
  documents: { in: number; out: number; dropped: Record<string, number> };
  /** UTF-16 code units read and kept. */
  chars: { in: number; out: number };
}

function step(name: StepReport['step'], enabled: boolean): StepReport {
  return { step: name, enabled, in: 0, out: 0, changed: 0, dropped: {}, examples: [] };
}

const OPTION_KEYS = ['normalize', 'controlChars', 'whitespace', 'length', 'dedup', 'onError', 'maxExamples'];
const FORMS = ['NFC', 'NFD', 'NFKC', 'NFKD'] as const;

function checkOptions(op: string, options: unknown): PrepareOptions {
  const o = optionsArg<PrepareOptions>(op, options, OPTION_KEYS);
  if (o.normalize !== undefined && o.normalize !== false) checkChoice(op, 'normalize', o.normalize, FORMS);
  if (o.controlChars !== undefined) checkBoolean(op, 'controlChars', o.controlChars);
  if (o.dedup !== undefined) checkBoolean(op, 'dedup', o.dedup);
  if (o.whitespace !== undefined && o.whitespace !== false) {
    if (o.whitespace === null || typeof o.whitespace !== 'object' || Array.isArray(o.whitespace))
      throw new Error(`${op}: whitespace must be false or an object { collapseSpaces?, maxBlankLines? }, got ${got(o.whitespace)}`);
    whitespaceOptions(op, o.whitespace, 'whitespace');
  }
  if (o.length !== undefined && o.length !== false) {
    if (o.length === null || typeof o.length !== 'object' || Array.isArray(o.length))
      throw new Error(`${op}: length must be false or an object { minChars?, maxChars? }, got ${got(o.length)}`);
    const len = optionsArg<{ minChars: number; maxChars: number }>(op, o.length, ['minChars', 'maxChars']);
    const minChars = len.minChars === undefined ? 1 : checkNumber(op, 'length.minChars', len.minChars, { min: 0 });
    const maxChars = len.maxChars === undefined ? Infinity : checkNumber(op, 'length.maxChars', len.maxChars, { min: 0, infinity: true });
    if (!(maxChars >= minChars)) throw new Error(`${op}: length limits need 0 ≤ minChars ≤ maxChars, got ${minChars}, ${maxChars}`);
  }
  if (o.onError !== undefined) checkChoice(op, 'onError', o.onError, ['throw', 'skip'] as const);
  if (o.maxExamples !== undefined) checkNumber(op, 'maxExamples', o.maxExamples, { integer: true, min: 0 });
  return o;
}

/**
 * The pipeline as a stream: `documents` yields each kept document as it is read, and `report`
 * fills in as the iteration runs (complete once it ends). Memory holds only the hashes of the
 * documents seen (for deduplication), not the documents.
 */
export function prepareStream(sources: SourceSpec | readonly SourceSpec[], options: PrepareOptions = {}): { documents: AsyncIterable<TextDocument>; report: PrepareReport } {
  return streamAs('prepareStream', sources, options);
}

// prepareStream as the public function `op`.
function streamAs(op: string, sourceSpecs: unknown, opts: unknown): { documents: AsyncIterable<TextDocument>; report: PrepareReport } {
  const sources = checkSources(op, sourceSpecs);
  const options = checkOptions(op, opts);
  const maxExamples = options.maxExamples ?? 10;
  const form = options.normalize === undefined ? 'NFC' : options.normalize;
  const ws = options.whitespace === undefined ? {} : options.whitespace;
  const len = options.length === undefined ? {} : options.length;
  const dedup = options.dedup ?? true;
  const steps = {
    normalize: step('normalize', form !== false),
    controlChars: step('controlChars', options.controlChars ?? true),
    whitespace: step('whitespace', ws !== false),
    length: step('length', len !== false),
    dedup: step('dedup', dedup),
  };
  const report: PrepareReport = {
    sources: [],
    skippedLines: { count: 0, examples: [] },
    steps: Object.values(steps),
    documents: { in: 0, out: 0, dropped: {} },
    chars: { in: 0, out: 0 },
  };
  const drop = (s: StepReport, id: string, reason: string, detail?: string): void => {
    s.dropped[reason] = (s.dropped[reason] ?? 0) + 1;
    report.documents.dropped[reason] = (report.documents.dropped[reason] ?? 0) + 1;
    if (s.examples.length < maxExamples) s.examples.push(detail === undefined ? { id, reason } : { id, reason, detail });
  };
  const transform = (s: StepReport, text: string, fn: (t: string) => string): string => {
    s.in++;
    s.out++;
    if (!s.enabled) return text;
    const out = fn(text);
    if (out !== text) s.changed++;
    return out;
  };
  const onSkip = (issue: SourceIssue): void => {
    report.skippedLines.count++;
    if (report.skippedLines.examples.length < maxExamples) report.skippedLines.examples.push(issue);
  };

  async function* run(): AsyncGenerator<TextDocument> {
    const seen = new Map<string, string>(); // content hash → id of the first document with it
    for await (const doc of sourcesDocuments(op, sources, { onError: options.onError ?? 'throw', onSkip })) {
      const last = report.sources[report.sources.length - 1];
      if (last?.source === doc.source) last.documents++;
      else report.sources.push({ source: doc.source, documents: 1 });
      report.documents.in++;
      report.chars.in += doc.text.length;

      let text = doc.text;
      text = transform(steps.normalize, text, (t) => normalizeUnicode(t, form || 'NFC'));
      text = transform(steps.controlChars, text, removeControlChars);
      text = transform(steps.whitespace, text, (t) => whitespaceAs(op, t, ws || {}));

      steps.length.in++;
      if (len) {
        const n = codePointLength(text);
        const minChars = len.minChars ?? 1;
        if (n === 0 && minChars > 0) {
          drop(steps.length, doc.id, 'empty');
          continue;
        }
        if (n < minChars) {
          drop(steps.length, doc.id, 'too short', `${n} chars`);
          continue;
        }
        if (n > (len.maxChars ?? Infinity)) {
          drop(steps.length, doc.id, 'too long', `${n} chars`);
          continue;
        }
      }
      steps.length.out++;

      steps.dedup.in++;
      if (dedup) {
        const h = contentHash(text);
        const first = seen.get(h);
        if (first !== undefined) {
          drop(steps.dedup, doc.id, 'duplicate', first);
          continue;
        }
        seen.set(h, doc.id);
      }
      steps.dedup.out++;

      report.documents.out++;
      report.chars.out += text.length;
      yield text === doc.text ? doc : { ...doc, text };
    }
  }
  return { documents: run(), report };
}

/**
 * Read the sources and clean them, returning the kept documents and a report.
 *
 * @example
 * const { documents, report } = await prepare(['books/', { type: 'jsonl', path: 'web.jsonl', onError: 'skip' }], {
 *   length: { minChars: 20 },
 * });
 * console.log(formatReport(report));
 */
export async function prepare(sources: SourceSpec | readonly SourceSpec[], options: PrepareOptions = {}): Promise<{ documents: TextDocument[]; report: PrepareReport }> {
  const { documents: stream, report } = streamAs('prepare', sources, options);
  const documents: TextDocument[] = [];
  for await (const d of stream) documents.push(d);
  return { documents, report };
}

const counts = (r: Record<string, number>): string =>
  Object.entries(r)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');

/** The report as a few lines of text, for logs and the command line. */
export function formatReport(report: PrepareReport): string {
  const r = report as unknown as Record<string, unknown> | null;
  const isObject = (v: unknown): boolean => v !== null && typeof v === 'object';
  if (
    !isObject(r) ||
    !isObject(r!.documents) ||
    !isObject(r!.chars) ||
    !isObject(r!.skippedLines) ||
    !Array.isArray(r!.sources) ||
    !Array.isArray(r!.steps) ||
    !(r!.steps as unknown[]).every((s) => isObject(s) && isObject((s as StepReport).dropped))
  )
    throw new Error(`formatReport: expected the report of prepare() or prepareStream(), got ${got(report)}`);
  const lines = [`read ${report.documents.in} documents from ${report.sources.length} source(s)`];
  if (report.skippedLines.count) lines.push(`skipped ${report.skippedLines.count} bad JSONL line(s), e.g. ${report.skippedLines.examples.map((e) => `${e.source}:${e.line} ${e.reason}`).join('; ')}`);
  for (const s of report.steps) {
    if (!s.enabled) {
      lines.push(`${s.step}: off`);
      continue;
    }
    const drops = counts(s.dropped);
    lines.push(`${s.step}: ${s.in} in, ${s.out} out${s.changed ? `, ${s.changed} changed` : ''}${drops ? `, dropped ${drops}` : ''}`);
  }
  const drops = counts(report.documents.dropped);
  lines.push(`kept ${report.documents.out} of ${report.documents.in} documents (${report.chars.out} of ${report.chars.in} chars)${drops ? `; dropped ${drops}` : ''}`);
  return lines.join('\n');
}
