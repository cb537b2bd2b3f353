/**
 * Fuzzing the tokenizer JSON readers: `loadTokenizer` (an object, or a file path), and
 * `BPETokenizer.fromJSON` / `WordPieceTokenizer.fromJSON`, fed trained tokenizers' JSON with
 * edits (every field: wrong types, extreme and duplicate ids, merges that are not "left right",
 * prototype names, lone surrogates, invalid and odd patterns, deep nesting), the JSON text with
 * byte corruptions (through a file), and arbitrary JSON. A read either gives a tokenizer that
 * is consistent with itself (its vocabulary decodes to the listed bytes, text round-trips,
 * its JSON reads back to the same tokenizer, every field has its documented type) or throws
 * an Error starting with the API's name.
 * @module
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { BPETokenizer, WordPieceTokenizer, loadTokenizer, tokenStringToBytes, type Tokenizer } from '../../src/index.js';
import {
  applyByteEdit,
  asParsed,
  attempt,
  byteEdit,
  erase,
  expectThat,
  fresh,
  isPlainObject,
  jsonText,
  nastyValue,
  preview,
  scratchDir,
  setOwn,
  type ByteEdit,
  type Fuzzer,
} from './common.js';

const DIR = scratchDir('tokenizer');
const FILE = join(DIR, 'tokenizer.json');

const CORPUS = [
  'Hello world, hello kiln! The quick brown fox jumps over the lazy dog. ',
  'ünïcödé café naïve — 日本語のテキスト 😀😀 emoji, tabs\tand\nnewlines  double  spaces 12345 67890 ',
  "it's we're they've I'm you'll he'd <|endoftext|> again and again and again",
];

/** `s` with each lone surrogate replaced by U+FFFD (`String.prototype.toWellFormed`, ES2024). */
const wellFormed = (s: string): string => (s as unknown as { toWellFormed(): string }).toWellFormed();

/** Texts every tokenizer that loads must round-trip. */
export const SAMPLE_TEXTS = ['', 'hello world', CORPUS[1]!, 'a\ud800b\udc00', '<|endoftext|>x[PAD]', '\u0000\uffff\u{10ffff}', 'Ġ  Ċ'];

/** Check a BPE tokenizer that loaded: its vocabulary, specials, JSON and text round trips. */
export function checkBPE(tok: BPETokenizer, vocab: Record<string, unknown> | null, specials: Record<string, unknown> | null): void {
  expectThat(tok.type === 'bpe' && typeof tok.pattern === 'string', `pattern is ${typeof tok.pattern}, not a string`);
  expectThat(Number.isInteger(tok.vocabSize) && tok.vocabSize >= 256, `vocabSize ${tok.vocabSize}`);
  if (vocab)
    for (const [token, id] of Object.entries(vocab)) {
      const want = tokenStringToBytes(token);
      const got = tok.tokenBytes(id as number);
      expectThat(got.length === want.length && got.every((b, i) => b === want[i]), () => `token ${preview(token)} (id ${id}) decodes to other bytes`);
    }
  if (specials)
    for (const [text, id] of Object.entries(specials)) {
      expectThat(tok.specialTokens.get(text) === id, () => `special token ${preview(text)} has id ${tok.specialTokens.get(text)}, the JSON says ${id}`);
      expectThat(tok.decode([id as number]) === wellFormed(text), () => `special token ${preview(text)} decodes to ${preview(tok.decode([id as number]))}`);
    }
  const json = tok.toJSON();
  const again = BPETokenizer.fromJSON(JSON.parse(JSON.stringify(json)) as typeof json);
  expectThat(JSON.stringify(again.toJSON()) === JSON.stringify(json), 'toJSON → fromJSON gives another tokenizer');
  const texts = [...SAMPLE_TEXTS, ...Object.keys(specials ?? {}).slice(0, 4), ...Object.keys(vocab ?? {}).slice(256, 262).map((t) => new TextDecoder().decode(tokenStringToBytes(t)))];
  for (const text of texts) {
    const ids = tok.encode(text);
    expectThat(tok.decode(ids) === wellFormed(text), () => `decode(encode(${preview(text)})) is ${preview(tok.decode(ids))}`);
    expectThat(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize), () => `encode(${preview(text)}) gave an id outside [0, vocabSize)`);
    const other = again.encode(text);
    expectThat(other.length === ids.length && other.every((x, i) => x === ids[i]), () => `the reread tokenizer encodes ${preview(text)} differently`);
  }
}

/** Check a WordPiece tokenizer that loaded: field types, ids, specials, JSON round trip. */
export function checkWordPiece(tok: WordPieceTokenizer, vocab: readonly unknown[] | null): void {
  expectThat(typeof tok.lowercase === 'boolean' && typeof tok.stripAccents === 'boolean', `lowercase ${preview(tok.lowercase)} / stripAccents ${preview(tok.stripAccents)} are not booleans`);
  expectThat(typeof tok.unkToken === 'string' && typeof tok.continuingSubwordPrefix === 'string', `unkToken / continuingSubwordPrefix are not strings`);
  expectThat(Number.isSafeInteger(tok.maxInputCharsPerWord) && tok.maxInputCharsPerWord >= 1, `maxInputCharsPerWord ${preview(tok.maxInputCharsPerWord)}`);
  if (vocab) {
    expectThat(tok.vocabSize === vocab.length, `vocabSize ${tok.vocabSize} for ${vocab.length} lines`);
    for (let i = 0; i < vocab.length; i++) {
      expectThat(tok.idToToken(i) === vocab[i], () => `id ${i} is ${preview(tok.idToToken(i))}, the vocabulary says ${preview(vocab[i])}`);
      expectThat(tok.tokenToId(vocab[i] as string) === vocab.lastIndexOf(vocab[i]), () => `${preview(vocab[i])} maps to id ${tok.tokenToId(vocab[i] as string)}`);
    }
  }
  for (const [s, id] of tok.specialTokens) {
    expectThat(tok.idToToken(id) === s, () => `special ${preview(s)} has id ${id} of ${preview(tok.idToToken(id))}`);
    const t = tok.tokenize(s);
    expectThat(t.length === 1 && t[0] === s, () => `special ${preview(s)} tokenizes as ${preview(t)}`);
  }
  const json = tok.toJSON();
  const again = WordPieceTokenizer.fromJSON(JSON.parse(JSON.stringify(json)) as typeof json);
  expectThat(JSON.stringify(again.toJSON()) === JSON.stringify(json), 'toJSON → fromJSON gives another tokenizer');
  for (const text of [...SAMPLE_TEXTS, ...(vocab ?? []).slice(0, 8).filter((t): t is string => typeof t === 'string')]) {
    const ids = tok.encode(text);
    expectThat(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize), () => `encode(${preview(text)}) gave an id outside [0, vocabSize)`);
    tok.decode(ids);
    const other = again.encode(text);
    expectThat(other.length === ids.length && other.every((x, i) => x === ids[i]), () => `the reread tokenizer encodes ${preview(text)} differently`);
  }
}

/** Check any tokenizer that loaded from `json`. */
function checkLoaded(tok: Tokenizer, json: unknown): void {
  const j = json as Record<string, unknown>;
  const obj = (v: unknown): Record<string, unknown> | null => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null);
  if (tok instanceof BPETokenizer) {
    expectThat(j.type === 'bpe', `loaded a BPE tokenizer from type ${preview(j.type)}`);
    checkBPE(tok, obj(j.vocab), obj(j.specialTokens));
  } else if (tok instanceof WordPieceTokenizer) {
    expectThat(j.type === 'wordpiece', `loaded a WordPiece tokenizer from type ${preview(j.type)}`);
    checkWordPiece(tok, Array.isArray(j.vocab) ? j.vocab : null);
  } else throw new Error('loadTokenizer returned neither kind');
}

// ---- the base tokenizers -------------------------------------------------------------------------

export const BASES: Record<string, unknown>[] = [
  BPETokenizer.train(CORPUS, { vocabSize: 330, specialTokens: ['<|endoftext|>', '[PAD]'] }).toJSON(),
  BPETokenizer.train(CORPUS, { vocabSize: 290, pattern: '\\S+|\\s+' }).toJSON(),
  // whole words as pieces: tokens named like Object.prototype's properties
  BPETokenizer.train('__proto__ constructor toString hasOwnProperty '.repeat(4), { vocabSize: 330, pattern: '\\S+|\\s+' }).toJSON(),
  BPETokenizer.train('', { vocabSize: 256 }).toJSON(),
  WordPieceTokenizer.fromVocab(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'un', '##aff', '##able', 'hello', 'world', '!', '##s', '😀', '日']).toJSON(),
  WordPieceTokenizer.fromVocab(['<unk>', 'a', '##b', '<s>', 'ab', 'a'], { unkToken: '<unk>', lowercase: false, specialTokens: ['<s>'], continuingSubwordPrefix: '@@', maxInputCharsPerWord: 5 }).toJSON(),
].map((j) => JSON.parse(JSON.stringify(j)) as Record<string, unknown>);

const FIELDS = ['type', 'version', 'pattern', 'vocab', 'merges', 'specialTokens', 'lowercase', 'stripAccents', 'maxInputCharsPerWord', 'unkToken', 'continuingSubwordPrefix'];
const WEIRD_TOKENS = ['', ' ', 'a b', 'Ġ', 'ĠĠ', '__proto__', 'constructor', '\ud800', 'x\udfff', '\u0000', '[UNK]', '##', '😀', '<|endoftext|>', '.*', '(', '\\', '-', 'a'.repeat(300)];
const PATTERNS = ['', '(?:)', '.', '\\w+|\\s+', '\\p{L}+|\\p{N}+|[^\\p{L}\\p{N}]+', '(?<=a)b', 'a|', '(', '[', '\\p{Nope}', 'a{2,1}', '\\', '(?<n>a)\\k<n>', '[\\ud800-\\udfff]'];
const idArb = fc.oneof(fc.integer({ min: 0, max: 340 }), fc.constantFrom(-1, 0.5, 2 ** 26 - 1, 2 ** 26, 2 ** 31, 2 ** 53, 1e308), nastyValue);

/** An edit of a tokenizer's JSON; indices are taken modulo the length they apply to. */
export type TokenizerEdit =
  | { kind: 'field'; field: string; value: unknown }
  | { kind: 'delete'; field: string }
  | { kind: 'vocabId'; at: number; id: unknown }
  | { kind: 'vocabAdd'; token: string; id: unknown }
  | { kind: 'vocabDelete'; at: number }
  | { kind: 'vocabItem'; at: number; value: unknown }
  | { kind: 'merge'; at: number; value: unknown }
  | { kind: 'mergeSwap'; at: number; with: number }
  | { kind: 'mergeDup'; at: number }
  | { kind: 'special'; token: string; id: unknown }
  | { kind: 'pattern'; pattern: string };

export const tokenizerEditArb: fc.Arbitrary<TokenizerEdit> = fc.oneof(
  fc.record({ kind: fc.constant('field' as const), field: fc.constantFrom(...FIELDS), value: nastyValue }),
  fc.record({ kind: fc.constant('delete' as const), field: fc.constantFrom(...FIELDS) }),
  fc.record({ kind: fc.constant('vocabId' as const), at: fc.nat(), id: idArb }),
  fc.record({ kind: fc.constant('vocabAdd' as const), token: fc.oneof(fc.constantFrom(...WEIRD_TOKENS), fc.string({ unit: 'binary', maxLength: 4 })), id: idArb }),
  fc.record({ kind: fc.constant('vocabDelete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('vocabItem' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(...WEIRD_TOKENS), nastyValue) }),
  fc.record({ kind: fc.constant('merge' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(...WEIRD_TOKENS, 'a b c', 'Ġ t', 'h e'), nastyValue) }),
  fc.record({ kind: fc.constant('mergeSwap' as const), at: fc.nat(), with: fc.nat() }),
  fc.record({ kind: fc.constant('mergeDup' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('special' as const), token: fc.oneof(fc.constantFrom(...WEIRD_TOKENS), fc.string({ maxLength: 5 })), id: idArb }),
  fc.record({ kind: fc.constant('pattern' as const), pattern: fc.constantFrom(...PATTERNS) }),
);


/** `base` with `edits` applied (a new object; may hold RawJSON, so write it with jsonText). */
export function editTokenizerJSON(base: Record<string, unknown>, edits: readonly TokenizerEdit[]): Record<string, unknown> {
  const j = structuredClone(base);
  for (const e of fresh(edits)) {
    const vocab = j.vocab;
    const merges = j.merges;
    if (e.kind === 'field') setOwn(j, e.field, e.value);
    else if (e.kind === 'delete') delete j[e.field];
    else if (e.kind === 'pattern') j.pattern = e.pattern;
    else if (e.kind === 'special') {
      if (isPlainObject(j.specialTokens)) setOwn(j.specialTokens, e.token, e.id);
      else if (Array.isArray(j.specialTokens)) j.specialTokens.push(e.token);
    } else if (e.kind === 'vocabAdd') {
      if (isPlainObject(vocab)) setOwn(vocab, e.token, e.id);
      else if (Array.isArray(vocab)) vocab.push(e.token);
    } else if (e.kind === 'vocabId' || e.kind === 'vocabDelete' || e.kind === 'vocabItem') {
      if (isPlainObject(vocab)) {
        const keys = Object.keys(vocab);
        if (keys.length === 0) continue;
        const k = keys[e.at % keys.length]!;
        if (e.kind === 'vocabDelete') delete vocab[k];
        else setOwn(vocab, k, e.kind === 'vocabId' ? e.id : e.value);
      } else if (Array.isArray(vocab) && vocab.length > 0) {
        const i = e.at % vocab.length;
        if (e.kind === 'vocabDelete') vocab.splice(i, 1);
        else vocab[i] = e.kind === 'vocabId' ? e.id : e.value;
      }
    } else if (Array.isArray(merges) && merges.length > 0) {
      const i = e.at % merges.length;
      if (e.kind === 'merge') merges[i] = e.value;
      else if (e.kind === 'mergeDup') merges.splice(i, 0, merges[i]);
      else {
        const k = e.with % merges.length;
        [merges[i], merges[k]] = [merges[k], merges[i]];
      }
    }
  }
  return j;
}

const PREFIXES = {
  loadTokenizer: ['loadTokenizer: ', 'BPETokenizer.fromJSON: ', 'WordPieceTokenizer.fromJSON: '],
  bpe: ['BPETokenizer.fromJSON: '],
  wordpiece: ['WordPieceTokenizer.fromJSON: '],
};

/** Read `json` with every reader that applies; check each outcome. */
function checkJSON(json: unknown): void {
  const r = attempt(() => loadTokenizer(json as never), PREFIXES.loadTokenizer);
  if (r.ok) checkLoaded(r.value, json);
  const type = json !== null && typeof json === 'object' ? (json as { type?: unknown }).type : undefined;
  const direct =
    type === 'wordpiece'
      ? attempt(() => WordPieceTokenizer.fromJSON(json as never), PREFIXES.wordpiece)
      : attempt(() => BPETokenizer.fromJSON(json as never), PREFIXES.bpe);
  if (type === 'bpe' || type === 'wordpiece')
    expectThat(direct.ok === r.ok && (direct.ok || r.ok || direct.error.message === r.error.message), 'loadTokenizer and fromJSON disagree');
}

/** Read the bytes of a tokenizer file through `loadTokenizer(path)`. */
function checkText(text: string | Uint8Array): void {
  const bytes = typeof text === 'string' ? new TextEncoder().encode(text) : text;
  writeFileSync(FILE, bytes);
  const r = attempt(() => loadTokenizer(FILE), PREFIXES.loadTokenizer);
  if (!r.ok) return;
  checkLoaded(r.value, JSON.parse(new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes)) as unknown);
}

interface EditedCase {
  base: number;
  edits: TokenizerEdit[];
  viaFile: boolean;
}

const edited: Fuzzer<EditedCase> = {
  parser: 'tokenizer',
  name: 'loadTokenizer / BPETokenizer.fromJSON / WordPieceTokenizer.fromJSON: trained tokenizers with edits',
  arb: fc.record({ base: fc.nat({ max: BASES.length - 1 }), edits: fc.array(tokenizerEditArb, { maxLength: 3 }), viaFile: fc.boolean() }),
  check({ base, edits, viaFile }) {
    const text = jsonText(editTokenizerJSON(BASES[base]!, edits));
    const parsed = JSON.parse(text) as unknown;
    if (edits.length === 0) checkLoaded(loadTokenizer(parsed as never), parsed);
    checkJSON(parsed);
    if (viaFile) checkText(text);
  },
};

interface CorruptedTextCase {
  base: number;
  edits: ByteEdit[];
}

const corruptedText: Fuzzer<CorruptedTextCase> = {
  parser: 'tokenizer',
  name: 'loadTokenizer(path): tokenizer files with corrupted bytes',
  arb: fc.record({ base: fc.nat({ max: BASES.length - 1 }), edits: fc.array(byteEdit, { minLength: 1, maxLength: 3 }) }),
  check({ base, edits }) {
    let bytes: Uint8Array = new TextEncoder().encode(JSON.stringify(BASES[base]));
    for (const e of edits) bytes = applyByteEdit(bytes, e);
    checkText(bytes);
  },
};

interface ArbitraryCase {
  json: unknown;
}

const arbitrary: Fuzzer<ArbitraryCase> = {
  parser: 'tokenizer',
  name: 'loadTokenizer / fromJSON: arbitrary JSON (with type bpe or wordpiece now and then)',
  arb: fc.record({
    json: fc.oneof(
      fc.jsonValue(),
      nastyValue,
      fc.record({ type: fc.constantFrom('bpe', 'wordpiece'), version: fc.constantFrom(1, 1, 2), vocab: fc.oneof(fc.jsonValue(), fc.array(fc.string())) }, { requiredKeys: ['type'] }),
      fc.dictionary(fc.constantFrom(...FIELDS), fc.oneof(fc.jsonValue(), nastyValue)).map((d) => ({ ...d, type: 'bpe', version: 1 })),
      fc.dictionary(fc.constantFrom(...FIELDS), fc.oneof(fc.jsonValue(), nastyValue)).map((d) => ({ ...d, type: 'wordpiece', version: 1, vocab: ['[UNK]', 'a'] })),
    ),
  }),
  check({ json }) {
    checkJSON(asParsed(json));
  },
};

export const fuzzers: Fuzzer<unknown>[] = [erase(edited), erase(corruptedText), erase(arbitrary)];

