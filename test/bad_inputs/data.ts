/**
 * Bad-input table: the data exports (see sweep.ts): tokenizers (every method that takes user
 * input, on a tiny BPE trained in memory and a ten-token WordPiece vocabulary), pre-tokenisation,
 * cleaning, reading sources, the train/validation split, shards and the token dataset.
 *
 * The files these read are written once to a temporary folder under `os.tmpdir()` (removed
 * after the tests); every write the sweep makes goes there too. File arguments refuse what is not a path
 * (a number would be taken for a file descriptor by node:fs), a path that does not exist and a
 * folder where a file is expected (or a file where a folder is), each error naming the path.
 * Readers that return an async iterable are called through `collect`, so a refused value is
 * refused when the documents are read.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import {
  BPETokenizer,
  TokenDataset,
  WordPieceTokenizer,
  collect,
  prepare,
  prepareStream,
  readDocuments,
  readFolder,
  readJsonl,
  readSource,
  readSources,
  readText,
  type PrepareReport,
} from '../../src/index.js';
import { bool, choice, func, generator, int, method as sweepMethod, num, opts, str, type Bad, type Param, type Spec, type Table } from './sweep.js';

// ---- fixtures --------------------------------------------------------------------------------

const ROOT = mkdtempSync(join(tmpdir(), 'kiln-bad-data-'));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

/** A text file of two paragraphs. */
const TEXT = join(ROOT, 'a.txt');
/** A JSONL file of two documents. */
const JSONL = join(ROOT, 'd.jsonl');
/** A folder of two text files. */
const FOLDER = join(ROOT, 'corpus');
/** A path that does not exist, and a file in a folder that does not exist. */
const MISSING = join(ROOT, 'missing.txt');
const NO_FOLDER = join(ROOT, 'no-such-folder', 'out.json');
/** Where the sweep writes. */
const OUT = join(ROOT, 'out');
/** buildShards' cache. */
const CACHE = join(ROOT, 'cache');
/** A shard folder of 64 tokens (vocabulary 50), written by hand. */
const SHARDS = join(ROOT, 'shards');
const STREAM = 64;

writeFileSync(TEXT, 'hello world\n\nsecond paragraph\nof two lines\n');
writeFileSync(JSONL, '{"text":"one","id":"x"}\n{"text":"two","id":"y"}\n');
mkdirSync(FOLDER);
writeFileSync(join(FOLDER, 'a.txt'), 'first file');
writeFileSync(join(FOLDER, 'b.md'), 'second file');
mkdirSync(OUT);
mkdirSync(SHARDS);
writeFileSync(join(SHARDS, 'shard-00000.bin'), new Uint8Array(Uint16Array.from({ length: STREAM }, (_, i) => i % 50).buffer));
writeFileSync(
  join(SHARDS, 'index.json'),
  JSON.stringify({ version: 1, key: 'k', dtype: 'uint16', vocabSize: 50, tokens: STREAM, shards: [{ file: 'shard-00000.bin', tokens: STREAM }], documents: 1, eos: null, tokenizer: 'fp', created: '2024-01-01T00:00:00.000Z' }),
);

/** A BPE of 6 merges and one special token, trained once. */
let bpeCache: BPETokenizer | null = null;
const bpe = (): BPETokenizer => (bpeCache ??= BPETokenizer.train('hello world, hello there, hello hello', { vocabSize: 263, specialTokens: ['<|endoftext|>'] }));
const BPE_JSON = join(ROOT, 'bpe.json');
const ENCODER = join(ROOT, 'encoder.json');
const VOCAB_BPE = join(ROOT, 'vocab.bpe');
writeFileSync(BPE_JSON, JSON.stringify(bpe().toJSON()));
const gpt2Encoder = (): Record<string, number> => ({ ...bpe().toJSON().vocab, '<|endoftext|>': bpe().specialTokens.get('<|endoftext|>')! });
const gpt2Merges = (): string => `#version: 0.2\n${bpe().toJSON().merges.join('\n')}\n`;
writeFileSync(ENCODER, JSON.stringify(gpt2Encoder()));
writeFileSync(VOCAB_BPE, gpt2Merges());

const VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', 'un', '##aff', '##able', 'hello', 'world', '!'];
const wordpiece = (): WordPieceTokenizer => new WordPieceTokenizer(VOCAB);
const WP_JSON = join(ROOT, 'wordpiece.json');
const VOCAB_TXT = join(ROOT, 'vocab.txt');
writeFileSync(WP_JSON, JSON.stringify(wordpiece().toJSON()));
writeFileSync(VOCAB_TXT, `${VOCAB.join('\n')}\n`);

/** UTF-8 bytes as tokens: what buildShards needs of a tokenizer. */
const bytesTokenizer = (): { vocabSize: number; encode(t: string): Uint8Array; fingerprint(): string } => ({
  vocabSize: 256,
  encode: (t) => new TextEncoder().encode(t),
  fingerprint: () => 'utf8-bytes',
});

// ---- kinds of the data arguments ---------------------------------------------------------------

const OPTIONAL = { optional: true } as const;
const bad = (value: unknown, needle: string | string[]): Bad => ({ value, needle });

/** Values of no kind an argument here takes. */
const notAnything = (o: { optional?: boolean; string?: boolean } = {}): Bad[] => [
  ...(o.string === false ? [] : [bad('xyzzy', 'xyzzy')]),
  bad(5, '5'),
  bad(true, 'true'),
  bad({}, ['object', '{}']),
  ...(o.optional ? [] : [bad(null, 'null'), bad(undefined, 'undefined')]),
];

const isEmptyObject = (v: unknown): boolean => v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0;

/** A kind given by its valid value and the values it refuses. */
const kind = (name: string, good: () => unknown, refuse: Bad[], tolerate: unknown[] = []): Param => ({ kind: name, good, refuse, tolerate });

/** `p`, refusing `more` too. */
const also = (p: Param, ...more: Bad[]): Param => ({ ...p, refuse: [...p.refuse, ...more] });

/** A string with extra values it refuses. */
function text(good: () => string = () => 'hello world', more: Bad[] = [], o: { optional?: boolean } = {}): Param {
  return also(str(good, o), ...more);
}

/** A path to an existing file. */
const filePath = (good: () => string, more: Bad[] = []): Param =>
  kind('file path', good, [...notAnything({ string: false }), bad([1], '[1]'), bad('', "''"), bad(MISSING, MISSING), bad(FOLDER, FOLDER), ...more]);

/** A path to an existing folder. */
const dirPath = (good: () => string, more: Bad[] = []): Param =>
  kind('folder path', good, [...notAnything({ string: false }), bad([1], '[1]'), bad('', "''"), bad(MISSING, MISSING), bad(TEXT, TEXT), ...more]);

/** A path to write (its folder exists). */
const outPath = (good: () => string): Param =>
  kind('output path', good, [...notAnything({ string: false }), bad([1], '[1]'), bad('', "''"), bad(NO_FOLDER, NO_FOLDER), bad(FOLDER, FOLDER)]);

/** An array of strings (special tokens, extensions). */
const strings = (good: () => string[] | undefined, o: { optional?: boolean } = {}): Param =>
  kind('strings', good, [...notAnything({ optional: o.optional }), bad([5], '5'), bad(['a', null], 'null')], o.optional ? [undefined] : []);

/** Token ids below `n`. */
const tokenIds = (good: () => number[], n: number): Param =>
  kind('token ids', good, [...notAnything(), bad([n], String(n)), bad([-1], '-1'), bad([1.5], '1.5'), bad(['a'], "'a'"), bad([NaN], 'NaN'), bad([null], 'null')]);

/** A regular-expression source (a pre-tokenisation pattern). */
const pattern = (good: () => string = () => '\\p{L}+|\\s+', o: { optional?: boolean } = {}): Param => text(good, [bad('(', 'invalid pattern')], o);

/** A backend's name (absent: the default backend). */
const backendName = (): Param => kind('backend', () => undefined, [bad('bogus', 'bogus'), bad(5, '5'), bad({}, 'object')], [undefined]);

/** A function that a refused value must not reach. */
const callback = (): Param => func(() => () => {});

/** A spec of `Class.method` on `make()`'s instance, `cleanup` (default: none) after the call. */
const method = <M>(make: () => M, call: (m: M, ...a: any[]) => unknown, params: Param[], cleanup: (m: M) => void = () => {}): Spec => sweepMethod(make, call, params, undefined, cleanup);

// -- tokenizers

const bpeConfig = (): Param => {
  const p = opts(
    {
      merges: kind('merges', () => [[104, 101]], [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad(null, 'null'), bad({}, 'object'), bad([[104]], '[104]'), bad([[104, 999]], '999'), bad([[104, 101], [104, 101]], 'repeats'), bad([['a', 'b']], '"a"')]),
      mergeIds: kind('merge ids', () => undefined, [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad({}, 'object'), bad([3], '3'), bad([-1], '-1'), bad([0.5], '0.5'), bad([1, 2], '2 entries')]),
      byteIds: kind('byte ids', () => undefined, [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad({}, 'object'), bad([1, 2], '2')]),
      specialTokens: kind('special tokens', () => undefined, [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad([1], '[1]'), bad({ x: 'a' }, '"a"'), bad({ '': 300 }, 'empty'), bad({ x: 104 }, '104'), bad({ x: -1 }, '-1')]),
      pattern: pattern(undefined, OPTIONAL),
    },
    { good: () => ({ merges: [[104, 101]] }), optional: false },
  );
  return also(p, bad(undefined, 'undefined'), bad(null, 'null'), bad({}, 'merges'));
};

const bpeTrainOptions = (): Param => {
  const p = opts(
    {
      vocabSize: int({ min: 257, max: 2 ** 26, good: 262 }),
      specialTokens: also(strings(() => undefined, OPTIONAL), bad(['<s>', '<s>'], 'duplicates'), bad([''], 'empty')),
      pattern: pattern(undefined, OPTIONAL),
      minFrequency: int({ min: 1, optional: true }),
    },
    { good: () => ({ vocabSize: 262, specialTokens: ['<s>'] }), optional: false },
  );
  return also(p, bad(undefined, 'undefined'), bad(null, 'null'), bad({}, 'vocabSize'));
};

const bpeJSON = (): Param =>
  kind('BPE JSON', () => bpe().toJSON(), [
    ...notAnything().filter((b) => !isEmptyObject(b.value)),
    bad({}, 'type undefined'),
    bad([1], '[1]'),
    bad(() => ({ ...bpe().toJSON(), type: 'wordpiece' }), 'wordpiece'),
    bad(() => ({ ...bpe().toJSON(), version: 2 }), 'version 2'),
    bad(() => ({ ...bpe().toJSON(), merges: 5 }), '5'),
    bad(() => ({ ...bpe().toJSON(), vocab: null }), 'null'),
    bad(() => ({ ...bpe().toJSON(), vocab: { ...bpe().toJSON().vocab, zz: 300 } }), '"zz"'),
    bad(() => ({ ...bpe().toJSON(), specialTokens: 5 }), '5'),
    bad(() => ({ ...bpe().toJSON(), pattern: 5 }), '5'),
    bad(() => ({ ...bpe().toJSON(), merges: ['a b c'] }), '"a b c"'),
  ]);

const wordpieceOptions = (): Param =>
  opts({
    lowercase: bool(OPTIONAL),
    stripAccents: bool(OPTIONAL),
    maxInputCharsPerWord: int({ min: 1, optional: true }),
    unkToken: text(() => '[UNK]', [bad('nope', 'nope')], OPTIONAL),
    continuingSubwordPrefix: str(() => '##', OPTIONAL),
    specialTokens: also(strings(() => undefined, OPTIONAL), bad(['<s>'], '<s>')),
  });

const vocabList = (): Param => kind('vocabulary', () => [...VOCAB], [...notAnything(), bad([5], '[5]'), bad(['a'], '[UNK]')]);
const vocabText = (): Param => kind('vocabulary text', () => VOCAB.join('\n'), [...notAnything({ string: false }), bad([5], '[5]'), bad('a\nb', '[UNK]')], [[...VOCAB]]);

const wordpieceJSON = (): Param =>
  kind('WordPiece JSON', () => wordpiece().toJSON(), [
    ...notAnything().filter((b) => !isEmptyObject(b.value)),
    bad({}, 'type undefined'),
    bad([1], '[1]'),
    bad(() => ({ ...wordpiece().toJSON(), type: 'bpe' }), 'bpe'),
    bad(() => ({ ...wordpiece().toJSON(), version: 2 }), 'version 2'),
    bad(() => ({ ...wordpiece().toJSON(), vocab: 5 }), 'vocab'),
    bad(() => ({ ...wordpiece().toJSON(), lowercase: 'yes' }), 'yes'),
    bad(() => ({ ...wordpiece().toJSON(), unkToken: 'nope' }), 'nope'),
    bad(() => ({ ...wordpiece().toJSON(), maxInputCharsPerWord: 0 }), '0'),
  ]);

const tokenizerSource = (): Param =>
  kind('tokenizer source', () => BPE_JSON, [
    bad(5, '5'),
    bad(true, 'true'),
    bad(null, 'null'),
    bad(undefined, 'undefined'),
    bad([1], '[1]'),
    bad('', "''"),
    bad(MISSING, MISSING),
    bad(FOLDER, FOLDER),
    bad(TEXT, TEXT),
    bad({ type: 'nope' }, 'nope'),
    bad({}, 'type'),
    bad(() => ({ ...bpe().toJSON(), version: 2 }), 'version 2'),
    bad(() => ({ ...wordpiece().toJSON(), vocab: 5 }), 'vocab'),
  ], [WP_JSON]);

// -- splitters

const SPLIT_TEXT = 'hello world';
const splitRange = (): Param[] => [text(() => SPLIT_TEXT), int({ min: 0, max: SPLIT_TEXT.length, good: 0 }), int({ min: 0, max: SPLIT_TEXT.length, good: SPLIT_TEXT.length })];
const regExp = (): Param => kind('regular expression', () => /\p{L}+|\s+/gu, [...notAnything(), bad(/a/, '/a/')]);

// -- sources

const SPLITS = ['file', 'line', 'paragraph'] as const;
const textOptions = (extra: Record<string, Param> = {}): Param => opts({ split: choice(SPLITS, OPTIONAL), label: str(() => 'x', OPTIONAL), ...extra });
const folderOptions = (): Param => textOptions({ extensions: strings(() => undefined, OPTIONAL), includeHidden: bool(OPTIONAL) });
const onError = (): Param => choice(['throw', 'skip'], OPTIONAL);
const jsonlOptions = (): Param =>
  opts({ field: str(() => 'text', OPTIONAL), idField: str(() => 'id', OPTIONAL), onError: onError(), onSkip: callback(), label: str(() => 'x', OPTIONAL) });
const readOptions = (): Param => opts({ onError: onError(), onSkip: callback() });

/** What every source argument refuses before anything is read. */
const badSpecs = (many: boolean): Bad[] => [
  bad(5, '5'),
  bad(true, 'true'),
  bad(null, 'null'),
  bad(undefined, 'undefined'),
  bad('', "''"),
  bad({}, 'type'),
  bad([5], '5'),
  bad({ type: 'bogus', path: TEXT }, 'bogus'),
  bad({ type: 'text' }, 'path'),
  bad({ type: 'text', path: 5 }, '5'),
  bad({ type: 'text', path: TEXT, bogusOption: 1 }, 'bogusOption'),
  bad({ type: 'text', path: TEXT, split: 'words' }, 'words'),
  bad({ type: 'folder', path: FOLDER, extensions: 'txt' }, 'txt'),
  bad({ type: 'jsonl', path: JSONL, onError: 'ignore' }, 'ignore'),
  bad({ type: 'documents', documents: 5 }, '5'),
  ...(many ? [bad([TEXT, { type: 'nope', path: TEXT }], 'nope')] : []),
];

/** What a source refuses once it is read. */
const badReads = (): Bad[] => [
  bad(MISSING, MISSING),
  bad({ type: 'text', path: FOLDER }, FOLDER),
  bad({ type: 'folder', path: TEXT }, TEXT),
  bad({ type: 'jsonl', path: TEXT }, TEXT),
  bad({ type: 'documents', documents: [{ id: 'z' }] }, 'document 0'),
];

const source = (o: { reads?: boolean } = {}): Param =>
  kind('source', () => TEXT, [...badSpecs(false), ...(o.reads === false ? [] : badReads())], [FOLDER, JSONL, { type: 'documents', documents: ['a', { text: 'b' }] }]);
const sources = (): Param => kind('sources', () => [TEXT, JSONL], [...badSpecs(true), ...badReads()], [TEXT, [], [{ type: 'folder', path: FOLDER, extensions: ['txt'] }]]);

const FORMS = ['NFC', 'NFD', 'NFKC', 'NFKD'] as const;
const prepareOptions = (): Param =>
  opts({
    normalize: { ...also(choice(FORMS, OPTIONAL), bad(true, 'true')), tolerate: [undefined, false] },
    controlChars: bool(OPTIONAL),
    whitespace: kind('whitespace options', () => undefined, [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad([1], '[1]'), bad(true, 'true'), bad({ bogusOption: 1 }, 'bogusOption'), bad({ maxBlankLines: -1 }, '-1'), bad({ collapseSpaces: 'yes' }, 'yes')], [false]),
    length: kind('length limits', () => undefined, [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad(true, 'true'), bad({ minChars: -1 }, '-1'), bad({ minChars: 5, maxChars: 2 }, 'minChars ≤ maxChars'), bad({ maxChars: NaN }, 'NaN'), bad({ bogusOption: 1 }, 'bogusOption')], [false]),
    dedup: bool(OPTIONAL),
    onError: onError(),
    maxExamples: int({ min: 0, optional: true }),
  });

const REPORT: PrepareReport = {
  sources: [{ source: 'a', documents: 1 }],
  skippedLines: { count: 0, examples: [] },
  steps: [{ step: 'dedup', enabled: true, in: 1, out: 1, changed: 0, dropped: {}, examples: [] }],
  documents: { in: 1, out: 1, dropped: {} },
  chars: { in: 3, out: 3 },
};

const DOCS = [
  { id: 'a', text: 'one' },
  { id: 'b', text: 'two' },
  { id: 'c', text: 'three' },
];

// -- shards

const shardTokenizer = (): Param =>
  kind('tokenizer', bytesTokenizer, [
    ...notAnything().filter((b) => !isEmptyObject(b.value)),
    bad({}, 'vocabSize'),
    bad(() => ({ ...bytesTokenizer(), vocabSize: 0 }), 'vocabSize'),
    bad(() => ({ ...bytesTokenizer(), vocabSize: 'x' }), 'vocabSize'),
    bad({ vocabSize: 256, fingerprint: () => 'f' }, 'encode'),
    bad({ vocabSize: 256, encode: () => [1] }, 'neither'),
    bad({ vocabSize: 10, encode: () => [12], fingerprint: () => 'out of range' }, '12'),
  ]);
const shardOptions = (): Param => {
  const p = opts(
    {
      cacheDir: kind('cache folder', () => CACHE, [bad(5, '5'), bad({}, 'object'), bad([1], '[1]'), bad(null, 'null'), bad('', "''"), bad(TEXT, TEXT)]),
      eos: int({ min: 0, max: 255, optional: true, nullable: true }),
      maxShardBytes: int({ min: 2, optional: true }),
      onProgress: callback(),
    },
    { good: () => ({ cacheDir: CACHE }), optional: false },
  );
  return also(p, bad(undefined, 'undefined'), bad(null, 'null'), bad({}, 'cacheDir'));
};

/** A tokenizer for the cache key: a fingerprint (and, with `vocab`, a vocabulary size). */
const tokenizerLike = (o: { vocab?: boolean } = {}): Param =>
  kind('tokenizer', () => ({ vocabSize: 50, fingerprint: () => 'fp' }), [
    ...notAnything().filter((b) => !o.vocab || !isEmptyObject(b.value)),
    ...(o.vocab ? [bad({}, 'vocabSize'), bad({ vocabSize: 0, fingerprint: () => 'fp' }, 'vocabSize')] : []),
    bad({ vocabSize: 50 }, 'neither'),
    bad({ vocabSize: 50, fingerprint: () => 5 }, '5'),
  ]);

/** A dataset over the 64-token shard folder, closed after each call. */
const dataset = (): TokenDataset => TokenDataset.open(SHARDS);
const datasetMethod = (call: (d: TokenDataset, ...a: any[]) => unknown, params: Param[]): Spec => method(dataset, call, params, (d) => d.close());
const batchOptions = (extra: Record<string, Param> = {}): Param => opts({ backend: backendName(), ...extra });

// ---- the table ---------------------------------------------------------------------------------

export const DATA_TABLE: Table = {
  // byte-level strings
  bytesToTokenString: {
    params: [kind('bytes', () => [104, 105], [...notAnything(), bad([256], '256'), bad([-1], '-1'), bad([1.5], '1.5'), bad(['a'], "'a'"), bad([NaN], 'NaN'), bad([null], 'null')], [new Uint8Array([1, 2])])],
  },
  tokenStringToBytes: { params: [text(() => 'Ġhi', [bad(' x', 'U+0020')])] },

  // BPE
  BPETokenizer: { params: [bpeConfig()], call: (c) => new BPETokenizer(c) },
  'BPETokenizer.encode': method(bpe, (t, s) => t.encode(s), [text()]),
  'BPETokenizer.encodeOrdinary': method(bpe, (t, s) => t.encodeOrdinary(s), [text()]),
  'BPETokenizer.encodeToInt32': method(bpe, (t, s) => t.encodeToInt32(s), [text()]),
  'BPETokenizer.decode': method(bpe, (t, ids) => t.decode(ids), [tokenIds(() => [104, 105], 263)]),
  'BPETokenizer.decodeBytes': method(bpe, (t, ids) => t.decodeBytes(ids), [tokenIds(() => [104, 105], 263)]),
  'BPETokenizer.tokenBytes': method(bpe, (t, id) => t.tokenBytes(id), [int({ min: 0, max: 262, good: 104 })]),
  'BPETokenizer.isSpecial': method(bpe, (t, id) => t.isSpecial(id), [
    kind('id', () => 262, [bad(NaN, 'NaN'), bad(0.5, '0.5'), bad(Infinity, 'Infinity'), bad('seven', 'seven'), bad(true, 'true'), bad({}, 'object'), bad([1], '[1]'), bad(null, 'null'), bad(undefined, 'undefined')], [-1, 1e9]),
  ]),
  'BPETokenizer.save': method(bpe, (t, p) => t.save(p), [outPath(() => join(OUT, 'bpe.json'))]),
  'BPETokenizer.fromJSON': { params: [bpeJSON()], call: (j) => BPETokenizer.fromJSON(j) },
  'BPETokenizer.load': { params: [filePath(() => BPE_JSON, [bad(TEXT, TEXT)])], call: (p) => BPETokenizer.load(p) },
  'BPETokenizer.fromGPT2': {
    params: [
      kind('encoder.json', gpt2Encoder, [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad(null, 'null'), bad(undefined, 'undefined'), bad([1], '[1]'), bad({}, 'endoftext')]),
      text(gpt2Merges, [bad('#version: 0.2\nzz yy\n', 'zz yy')]),
      also(strings(() => undefined, OPTIONAL), bad(['nope'], 'nope')),
    ],
    call: (e, b, s) => BPETokenizer.fromGPT2(e, b, s),
  },
  'BPETokenizer.fromGPT2Files': {
    params: [filePath(() => ENCODER, [bad(TEXT, TEXT)]), filePath(() => VOCAB_BPE), strings(() => undefined, OPTIONAL)],
    call: (e, b, s) => BPETokenizer.fromGPT2Files(e, b, s),
  },
  'BPETokenizer.train': {
    params: [kind('corpus', () => 'hello world, hello there', [...notAnything({ string: false }), bad([5], '5'), bad(['a', null], 'null')], [['a b', 'c d']]), bpeTrainOptions()],
    call: (c, o) => BPETokenizer.train(c, o),
  },

  // WordPiece
  WordPieceTokenizer: { params: [vocabList(), wordpieceOptions()], call: (v, o) => new WordPieceTokenizer(v, o) },
  'WordPieceTokenizer.fromVocab': { params: [vocabText(), wordpieceOptions()], call: (v, o) => WordPieceTokenizer.fromVocab(v, o) },
  'WordPieceTokenizer.fromVocabFile': { params: [filePath(() => VOCAB_TXT), wordpieceOptions()], call: (p, o) => WordPieceTokenizer.fromVocabFile(p, o) },
  'WordPieceTokenizer.tokenToId': method(wordpiece, (t, s) => t.tokenToId(s), [text(() => 'hello')]),
  'WordPieceTokenizer.idToToken': method(wordpiece, (t, id) => t.idToToken(id), [int({ min: 0, max: VOCAB.length - 1, good: 7 })]),
  'WordPieceTokenizer.basicTokenize': method(wordpiece, (t, s) => t.basicTokenize(s), [text()]),
  'WordPieceTokenizer.wordpiece': method(wordpiece, (t, s) => t.wordpiece(s), [text(() => 'unaffable')]),
  'WordPieceTokenizer.tokenize': method(wordpiece, (t, s) => t.tokenize(s), [text()]),
  'WordPieceTokenizer.encode': method(wordpiece, (t, s) => t.encode(s), [text()]),
  'WordPieceTokenizer.decode': method(wordpiece, (t, ids) => t.decode(ids), [tokenIds(() => [7, 8], VOCAB.length)]),
  'WordPieceTokenizer.save': method(wordpiece, (t, p) => t.save(p), [outPath(() => join(OUT, 'wordpiece.json'))]),
  'WordPieceTokenizer.fromJSON': { params: [wordpieceJSON()], call: (j) => WordPieceTokenizer.fromJSON(j) },
  'WordPieceTokenizer.load': { params: [filePath(() => WP_JSON, [bad(TEXT, TEXT)])], call: (p) => WordPieceTokenizer.load(p) },

  // either tokenizer from its JSON: errors of the type's own reader keep its name
  loadTokenizer: { params: [tokenizerSource()], prefix: ['loadTokenizer', 'BPETokenizer.fromJSON', 'WordPieceTokenizer.fromJSON'] },

  // pre-tokenisation
  pretokenize: { params: [text(), pattern(undefined, OPTIONAL)] },
  compilePattern: { params: [pattern()] },
  splitByRegExp: { params: [...splitRange(), regExp(), callback()] },
  splitGPT2: { params: [...splitRange(), callback()] },

  // cleaning
  normalizeUnicode: { params: [text(), choice(FORMS, OPTIONAL)] },
  removeControlChars: { params: [text()] },
  normalizeWhitespace: { params: [text(), opts({ collapseSpaces: bool(OPTIONAL), maxBlankLines: int({ min: 0, infinity: true, optional: true }) })] },
  codePointLength: { params: [text()] },
  contentHash: { params: [text()] },

  // reading sources
  readText: { params: [filePath(() => TEXT), textOptions()], call: (p, o) => collect(readText(p, o)) },
  listFiles: { params: [dirPath(() => FOLDER), folderOptions()] },
  readFolder: { params: [dirPath(() => FOLDER), folderOptions()], call: (p, o) => collect(readFolder(p, o)) },
  readJsonl: { params: [filePath(() => JSONL, [bad(TEXT, TEXT)]), jsonlOptions()], call: (p, o) => collect(readJsonl(p, o)) },
  sourceLabel: { params: [source({ reads: false })] },
  readSource: { params: [source(), readOptions()], call: (s, o) => collect(readSource(s, o)) },
  readSources: { params: [sources(), readOptions()], call: (s, o) => collect(readSources(s, o)) },
  readDocuments: { params: [sources(), readOptions()], call: (s, o) => readDocuments(s, o) },
  collect: { params: [kind('iterable', () => ['a', 'b'], notAnything({ string: false }), ['abc', new Set([1])])] },

  // cleaning a corpus
  prepare: { params: [sources(), prepareOptions()], call: (s, o) => prepare(s, o) },
  prepareStream: { params: [sources(), prepareOptions()], call: (s, o) => collect(prepareStream(s, o).documents) },
  formatReport: { params: [kind('report', () => structuredClone(REPORT), [...notAnything(), bad([1], '[1]'), bad({ documents: 5 }, 'object')])] },

  // the split
  splitDocuments: {
    params: [
      kind('documents', () => DOCS.map((d) => ({ ...d })), [...notAnything(), bad([5], '5'), bad([{ id: 'a' }], 'text'), bad([null], 'null')], [[]]),
      opts({ valFraction: num({ min: 0, max: 1, optional: true }), seed: int({ optional: true }), by: choice(['content', 'id'], OPTIONAL) }),
    ],
  },

  // shards
  tokenizerFingerprint: { params: [tokenizerLike()] },
  tokenBytes: { params: [choice(['uint16', 'uint32'])] },
  tokenDType: { params: [int({ min: 1, max: 2 ** 31 })] },
  shardKey: {
    params: [
      kind('document hashes', () => ['ab', 'cd'], [...notAnything(), bad([5], '5'), bad([null], 'null')], [new Set(['ab'])]),
      tokenizerLike({ vocab: true }),
      { ...int({ min: 0, max: 49, optional: true, nullable: true }), tolerate: [undefined, null] },
    ],
  },
  readShardIndex: { params: [dirPath(() => SHARDS, [bad(FOLDER, FOLDER)])] },
  buildShards: {
    params: [
      kind('documents', () => ['hello', 'world'], [...notAnything(), bad([5], '5'), bad([null], 'null'), bad(() => () => 5, '5')], [() => ['hello', 'world']]),
      shardTokenizer(),
      shardOptions(),
    ],
  },

  // the token dataset
  TokenDataset: { exempt: 'its constructor is private: TokenDataset.open makes one (swept below)' },
  'TokenDataset.open': {
    params: [dirPath(() => SHARDS, [bad(FOLDER, FOLDER), bad({ dir: 5 }, '5')]), opts({ maxOpenFiles: int({ min: 1, optional: true }) })],
    call: (d, o) => TokenDataset.open(d, o).close(),
  },
  'TokenDataset.window': datasetMethod((d, s, n) => d.window(s, n), [int({ min: 0, max: STREAM - 4, good: 0 }), int({ min: 0, max: STREAM, good: 4 })]),
  'TokenDataset.validStarts': datasetMethod((d, n) => d.validStarts(n), [int({ min: 1, good: 8 })]),
  'TokenDataset.sequentialWindows': datasetMethod((d, n) => d.sequentialWindows(n), [int({ min: 1, good: 8 })]),
  'TokenDataset.batch': datasetMethod((d, b, t, g, o) => d.batch(b, t, g, o), [int({ min: 1, good: 2 }), int({ min: 1, max: STREAM - 1, good: 4 }), generator(), batchOptions()]),
  'TokenDataset.sequential': datasetMethod((d, t, o) => [...d.sequential(t, o)], [
    int({ min: 1, good: 16 }),
    batchOptions({ batchSize: int({ min: 1, optional: true }), dropLast: bool(OPTIONAL) }),
  ]),
};
