/**
 * @internal How the readers of `sources.ts` work, with every error named by the public function
 * that was called (`op`): option checks, line streaming, and the readers of each source type.
 * Not part of the public API (`sources.ts` exports the readers themselves).
 * @module
 */
import { open, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { checkBoolean, checkChoice, show } from '../tensor/validate.js';
import { got, optionalFunction, optionalString, optionsArg, pathArg, readError, stringsArg } from './args.js';
import type { DocumentLike, FolderOptions, JsonlOptions, ReadOptions, SourceIssue, SourceSpec, TextDocument, TextOptions } from './sources.js';

const decoder = new TextDecoder('utf-8'); // strips a leading BOM; invalid bytes become U+FFFD

const isBlank = (line: string): boolean => line.trim() === '';

const SPLITS = ['file', 'line', 'paragraph'] as const;
const ON_ERROR = ['throw', 'skip'] as const;
const TEXT_KEYS = ['split', 'label'];
const FOLDER_KEYS = [...TEXT_KEYS, 'extensions', 'includeHidden'];
const JSONL_KEYS = ['field', 'idField', 'onError', 'onSkip', 'label'];
const READ_KEYS = ['onError', 'onSkip'];
const SOURCE_TYPES = ['text', 'folder', 'jsonl', 'documents'] as const;

// The option checks, each naming the public function `op`.
export function textOptions(op: string, opts: unknown, keys: readonly string[] = TEXT_KEYS): TextOptions {
  const o = optionsArg<TextOptions>(op, opts, keys);
  if (o.split !== undefined && !SPLITS.includes(o.split)) throw new Error(`${op}: unknown split mode ${show(o.split)} (use 'file', 'line' or 'paragraph')`);
  optionalString(op, 'label', o.label);
  return o;
}

export function folderOptions(op: string, opts: unknown): FolderOptions {
  const o = textOptions(op, opts, FOLDER_KEYS) as FolderOptions;
  if (o.extensions !== undefined) stringsArg(op, 'extensions', o.extensions);
  if (o.includeHidden !== undefined) checkBoolean(op, 'includeHidden', o.includeHidden);
  return o;
}

export function jsonlOptions(op: string, opts: unknown, keys: readonly string[] = JSONL_KEYS): JsonlOptions {
  const o = optionsArg<JsonlOptions>(op, opts, keys);
  optionalString(op, 'field', o.field);
  optionalString(op, 'idField', o.idField);
  if (o.onError !== undefined) checkChoice(op, 'onError', o.onError, ON_ERROR);
  optionalFunction(op, 'onSkip', o.onSkip);
  optionalString(op, 'label', o.label);
  return o;
}

/** @internal Check {@link ReadOptions} for `op`. */
export function readOptions(op: string, opts: unknown): ReadOptions {
  const o = optionsArg<ReadOptions>(op, opts, READ_KEYS);
  if (o.onError !== undefined) checkChoice(op, 'onError', o.onError, ON_ERROR);
  optionalFunction(op, 'onSkip', o.onSkip);
  return o;
}

/** @internal Check a {@link SourceSpec} for `op`: a path, or an object of a known type with that type's options. */
export function checkSource(op: string, spec: unknown, name = 'source'): SourceSpec {
  if (typeof spec === 'string') return pathArg(op, spec, name);
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec))
    throw new Error(`${op}: ${name} must be a path or a source object { type, ... }, got ${got(spec)}`);
  const s = spec as Record<string, unknown>;
  const type = checkChoice(op, `${name}.type`, s.type, SOURCE_TYPES);
  const rest = { ...s };
  delete rest.type;
  if (type === 'documents') {
    optionsArg(op, rest, ['name', 'documents']);
    optionalString(op, `${name}.name`, s.name);
    const docs = s.documents;
    if (docs === null || typeof docs !== 'object' || (typeof (docs as Iterable<unknown>)[Symbol.iterator] !== 'function' && typeof (docs as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function'))
      throw new Error(`${op}: ${name}.documents must be an iterable of documents, got ${got(docs)}`);
    return spec as SourceSpec;
  }
  delete rest.path;
  pathArg(op, s.path, `${name}.path`);
  if (type === 'text') textOptions(op, rest);
  else if (type === 'folder') folderOptions(op, rest);
  else jsonlOptions(op, rest);
  return spec as SourceSpec;
}

/** @internal Check one source or a list of them for `op`; the list. */
export function checkSources(op: string, specs: unknown): SourceSpec[] {
  if (Array.isArray(specs)) return specs.map((s, i) => checkSource(op, s, `sources[${i}]`));
  return [checkSource(op, specs)];
}

/** Lines of a file with 1-based numbers, streamed; a leading BOM is removed. */
async function* lines(op: string, path: string): AsyncGenerator<[string, number]> {
  let fh;
  try {
    fh = await open(path, 'r'); // fails here, with the path, if the file cannot be opened
  } catch (e) {
    throw readError(op, path, e);
  }
  const rl = createInterface({ input: fh.createReadStream({ encoding: 'utf8' }), crlfDelay: Infinity });
  try {
    let n = 0;
    for await (let line of rl) {
      if (++n === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
      yield [line, n];
    }
  } catch (e) {
    // a folder opens, and fails on the first read (EISDIR)
    throw (e as Error)?.message?.startsWith(`${op}: `) ? e : readError(op, path, e);
  } finally {
    rl.close();
    await fh.close().catch(() => {});
  }
}

export async function* textDocuments(op: string, path: string, opts: TextOptions): AsyncGenerator<TextDocument> {
  const split = opts.split ?? 'file';
  const source = opts.label ?? path;
  if (split === 'file') {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch (e) {
      throw readError(op, path, e);
    }
    yield { id: path, text: decoder.decode(bytes), source };
    return;
  }
  let para: string[] = [];
  let start = 0;
  for await (const [line, n] of lines(op, path)) {
    if (split === 'line') {
      if (!isBlank(line)) yield { id: `${path}:${n}`, text: line, source };
    } else if (isBlank(line)) {
      if (para.length) yield { id: `${path}:${start}`, text: para.join('\n'), source };
      para = [];
    } else {
      if (!para.length) start = n;
      para.push(line);
    }
  }
  if (para.length) yield { id: `${path}:${start}`, text: para.join('\n'), source };
}

function extensionFilter(exts: readonly string[] | undefined): (name: string) => boolean {
  if (!exts) return () => true;
  const wanted = exts.map((e) => (e.startsWith('.') ? e : `.${e}`).toLowerCase());
  return (name) => {
    const lower = name.toLowerCase();
    return wanted.some((e) => lower.endsWith(e));
  };
}

// Code-unit order, not locale order: the same on every machine and in every locale.
const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export async function filesOf(op: string, dir: string, opts: FolderOptions): Promise<string[]> {
  const keep = extensionFilter(opts.extensions);
  const out: string[] = [];
  const walk = async (path: string, ancestors: Set<string>): Promise<void> => {
    const real = await realpath(path);
    if (ancestors.has(real)) return;
    const inner = new Set(ancestors).add(real);
    const entries = (await readdir(path, { withFileTypes: true })).sort((a, b) => byCodeUnits(a.name, b.name));
    for (const e of entries) {
      if (!opts.includeHidden && e.name.startsWith('.')) continue;
      const child = join(path, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        const s = await stat(child).catch(() => null); // a dangling link is skipped
        isDir = s?.isDirectory() ?? false;
        isFile = s?.isFile() ?? false;
      }
      if (isDir) await walk(child, inner);
      else if (isFile && keep(e.name)) out.push(child);
    }
  };
  const s = await stat(dir).catch((e: NodeJS.ErrnoException) => {
    throw new Error(`${op}: cannot read '${dir}': ${e.code ?? e.message}`);
  });
  if (!s.isDirectory()) throw new Error(`${op}: '${dir}' is not a folder`);
  try {
    await walk(dir, new Set());
  } catch (e) {
    throw readError(op, dir, e);
  }
  return out;
}

export async function* folderDocuments(op: string, dir: string, opts: FolderOptions): AsyncGenerator<TextDocument> {
  const label = opts.label ?? dir;
  for (const file of await filesOf(op, dir, opts)) yield* textDocuments(op, file, { split: opts.split ?? 'file', label });
}

export async function* jsonlDocuments(op: string, path: string, opts: JsonlOptions): AsyncGenerator<TextDocument> {
  const field = opts.field ?? 'text';
  const source = opts.label ?? path;
  const mode = opts.onError ?? 'throw';
  for await (const [line, n] of lines(op, path)) {
    if (isBlank(line)) continue;
    let reason: string | null = null;
    let doc: TextDocument | null = null;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      reason = `invalid JSON (${(e as Error).message})`;
    }
    if (reason === null) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) reason = `not an object (got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value})`;
      else {
        const obj = value as Record<string, unknown>;
        const text = obj[field];
        const idValue = opts.idField === undefined ? undefined : obj[opts.idField];
        if (!(field in obj)) reason = `field '${field}' missing`;
        else if (typeof text !== 'string') reason = `field '${field}' is ${text === null ? 'null' : typeof text}, not a string`;
        else if (opts.idField !== undefined && typeof idValue !== 'string' && typeof idValue !== 'number')
          reason = `id field '${opts.idField}' missing or not a string or number`;
        else doc = { id: idValue === undefined ? `${path}:${n}` : String(idValue), text, source };
      }
    }
    if (doc) yield doc;
    else if (mode === 'throw') throw new Error(`${op}: ${path}:${n}: ${reason}`);
    else opts.onSkip?.({ source: path, line: n, reason: reason! });
  }
}

async function* fromMemory(op: string, name: string, documents: Iterable<DocumentLike> | AsyncIterable<DocumentLike>): AsyncGenerator<TextDocument> {
  let i = 0;
  for await (const d of documents) {
    if (typeof d === 'string') yield { id: `${name}:${i}`, text: d, source: name };
    else if (d && typeof d.text === 'string') yield { id: d.id ?? `${name}:${i}`, text: d.text, source: d.source ?? name };
    else throw new Error(`${op}: document ${i} of '${name}' has no string 'text' (got ${show(d)})`);
    i++;
  }
}

/** @internal The documents of a checked source, errors named `op`. */
export async function* sourceDocuments(op: string, spec: SourceSpec, opts: ReadOptions): AsyncGenerator<TextDocument> {
  if (typeof spec === 'string') {
    const s = await stat(spec).catch((e: NodeJS.ErrnoException) => {
      throw new Error(`${op}: cannot read '${spec}': ${e.code ?? e.message}`);
    });
    if (s.isDirectory()) spec = { type: 'folder', path: spec };
    else if (/\.(jsonl|ndjson)$/i.test(spec)) spec = { type: 'jsonl', path: spec };
    else spec = { type: 'text', path: spec };
  }
  switch (spec.type) {
    case 'text':
      yield* textDocuments(op, spec.path, spec);
      return;
    case 'folder':
      yield* folderDocuments(op, spec.path, spec);
      return;
    case 'jsonl': {
      const own = spec.onSkip;
      const onSkip = (issue: SourceIssue): void => {
        own?.(issue);
        opts.onSkip?.(issue);
      };
      yield* jsonlDocuments(op, spec.path, { ...spec, onError: spec.onError ?? opts.onError ?? 'throw', onSkip });
      return;
    }
    case 'documents':
      yield* fromMemory(op, spec.name ?? 'memory', spec.documents);
      return;
    default:
      throw new Error(`${op}: unknown source type '${String((spec as { type: unknown }).type)}' (use 'text', 'folder', 'jsonl' or 'documents')`);
  }
}

/** @internal The documents of checked sources, errors named `op`. */
export async function* sourcesDocuments(op: string, specs: readonly SourceSpec[], opts: ReadOptions): AsyncGenerator<TextDocument> {
  for (const spec of specs) yield* sourceDocuments(op, spec, opts);
}
