/**
 * Tokenised shards on disk, cached. A corpus is tokenised once into flat files of token ids
 * (little-endian uint16 when the vocabulary fits in 16 bits, else uint32) plus a JSON index, in
 * a folder named by a key: the SHA-256 of the format version, the tokenizer's fingerprint and
 * vocabulary size, the separator token and the content hash of every document in order. The next
 * run with the same documents and tokenizer finds the index and skips tokenisation.
 *
 * Layout of `<cacheDir>/<key>/`:
 * - `shard-00000.bin`, `shard-00001.bin`, …: the token stream, each document's tokens followed
 *   by the separator (when one is given), cut into files of at most `maxShardBytes` (a document
 *   may continue into the next file);
 * - `index.json`: {@link ShardIndex}, written last and atomically, so its presence means every
 *   shard it lists is complete.
 * @module
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { relabel } from '../tensor/ops/util.js';
import { checkChoice, show } from '../tensor/validate.js';
import { got, optionalFunction, optionsArg, pathArg } from './args.js';
import { contentHash } from './clean.js';
import type { DocumentLike } from './sources.js';

/**
 * What the shard writer needs of a tokenizer: `encode` and `vocabSize`, and a fingerprint for
 * the cache key, given by `fingerprint()` or, when that is absent, computed from `toJSON()`
 * (see {@link tokenizerFingerprint}). kiln's tokenizers fit; so does any object with these members.
 *
 * @example
 * // UTF-8 bytes as tokens
 * const bytes: TokenizerLike = { vocabSize: 256, encode: (t) => new TextEncoder().encode(t), fingerprint: () => 'utf8-bytes' };
 */
export interface TokenizerLike {
  /** Token ids of a text, each an integer in [0, vocabSize). */
  encode(text: string): ArrayLike<number>;
  /** The number of token ids (the largest id + 1, special tokens included). */
  readonly vocabSize: number;
  /**
   * A string that changes whenever `encode` could give different ids for some text (e.g. a hash
   * of the vocabulary, merges, normalisation and special tokens). Part of the cache key.
   */
  fingerprint?(): string;
  /** The tokenizer's full serialisable state; hashed for the fingerprint when `fingerprint` is absent. */
  toJSON?(): unknown;
}

/**
 * The fingerprint of a tokenizer: its `fingerprint()`, else the SHA-256 of `JSON.stringify(toJSON())`.
 * Throws when it has neither.
 */
export function tokenizerFingerprint(tokenizer: Pick<TokenizerLike, 'fingerprint' | 'toJSON'>): string {
  return fingerprintAs('tokenizerFingerprint', tokenizer);
}

// tokenizerFingerprint as the public function `op`.
function fingerprintAs(op: string, tokenizer: unknown): string {
  if (tokenizer === null || typeof tokenizer !== 'object') throw new Error(`${op}: tokenizer must be an object with fingerprint() or toJSON(), got ${got(tokenizer)}`);
  const t = tokenizer as Pick<TokenizerLike, 'fingerprint' | 'toJSON'>;
  if (typeof t.fingerprint === 'function') {
    const f = t.fingerprint();
    if (typeof f !== 'string' || !f) throw new Error(`${op}: fingerprint() must return a non-empty string, got ${got(f)}`);
    return f;
  }
  if (typeof t.toJSON === 'function') {
    let json: string | undefined;
    try {
      json = JSON.stringify(t.toJSON());
    } catch (e) {
      throw new Error(`${op}: the tokenizer's toJSON() is not JSON-serialisable (${(e as Error)?.message ?? String(e)})`);
    }
    if (json === undefined) throw new Error(`${op}: the tokenizer's toJSON() returned nothing to hash`);
    return createHash('sha256').update(json).digest('hex');
  }
  throw new Error(`${op}: the tokenizer has neither fingerprint() nor toJSON(), so the cache cannot tell tokenizers apart (got ${show(tokenizer)})`);
}

/** How token ids are stored: 2 or 4 bytes, little-endian. */
export type TokenDType = 'uint16' | 'uint32';

/** The JSON index of a shard folder. */
export interface ShardIndex {
  /** {@link SHARD_FORMAT_VERSION} of the writer. */
  version: number;
  /** The cache key (also the folder's name). */
  key: string;
  dtype: TokenDType;
  vocabSize: number;
  /** Total tokens over all shards. */
  tokens: number;
  /**
   * Shard files (relative to the folder) in stream order, with their token counts and, where the
   * tokens do not start the file, the bytes before them (`offset`: the 1024-byte header of an
   * llm.c token file, see `token_files.ts`; 0 when absent).
   */
  shards: { file: string; tokens: number; offset?: number }[];
  /** Number of documents tokenised. */
  documents: number;
  /** The separator token after each document, or null. */
  eos: number | null;
  /** The tokenizer's fingerprint. */
  tokenizer: string;
  /** When the shards were written (ISO 8601). */
  created: string;
}

/** Bump when the layout or the key's recipe changes: old caches then miss instead of misreading. */
export const SHARD_FORMAT_VERSION = 1;

/** The name of the index file in a shard folder. */
export const SHARD_INDEX_FILE = 'index.json';

/** Bytes per token of a dtype. */
export function tokenBytes(dtype: TokenDType): 2 | 4 {
  return checkChoice('tokenBytes', 'dtype', dtype, ['uint16', 'uint32'] as const) === 'uint16' ? 2 : 4;
}

/** uint16 when every id fits in 16 bits (vocabSize ≤ 65536), else uint32. */
export function tokenDType(vocabSize: number): TokenDType {
  return dtypeAs('tokenDType', vocabSize);
}

// tokenDType as the public function `op`.
function dtypeAs(op: string, vocabSize: unknown, name = 'vocabSize'): TokenDType {
  if (typeof vocabSize !== 'number' || !Number.isSafeInteger(vocabSize) || vocabSize < 1 || vocabSize > 2 ** 31)
    throw new Error(`${op}: ${name} must be an integer in [1, 2^31], got ${got(vocabSize)}`);
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

/**
 * Documents for {@link buildShards}: an array, or a function that returns a fresh (async) iterable
 * each time it is called, so a corpus larger than memory can be read twice (once to compute the
 * cache key, once to tokenise on a miss).
 */
export type ShardInput = readonly DocumentLike[] | (() => Iterable<DocumentLike> | AsyncIterable<DocumentLike>);

/** Options of {@link buildShards}. */
export interface ShardOptions {
  /** The folder that holds one sub-folder per key (created if missing). */
  cacheDir: string;
  /** A token id written after every document (e.g. GPT-2's `<|endoftext|>`, 50256), or null for none (the default). */
  eos?: number | null;
  /** The largest shard file in bytes; 64 MiB by default. */
  maxShardBytes?: number;
  /** Called after each document is tokenised on a miss. */
  onProgress?: (p: { documents: number; tokens: number }) => void;
}

/** What {@link buildShards} did. */
export interface ShardResult {
  /** The shard folder, to pass to `TokenDataset.open`. */
  dir: string;
  key: string;
  index: ShardIndex;
  /** `'hit'`: a valid index with this key existed and nothing was tokenised; `'miss'`: tokenised now. */
  cache: 'hit' | 'miss';
  /** On a miss, why: no index, or what was wrong with the one found. */
  reason?: string;
  /** Wall time of the call. */
  seconds: number;
}

const textOf = (d: DocumentLike, i: number): string => {
  const t = typeof d === 'string' ? d : d !== null && typeof d === 'object' ? d.text : undefined;
  if (typeof t !== 'string') throw new Error(`buildShards: document ${i} has no string text (got ${show(d)})`);
  return t;
};

const isIterable = (x: unknown): boolean =>
  x !== null && typeof x === 'object' && (typeof (x as Iterable<unknown>)[Symbol.iterator] === 'function' || typeof (x as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function');

async function* iterate(input: ShardInput): AsyncGenerator<string> {
  const items = typeof input === 'function' ? input() : input;
  if (!isIterable(items)) throw new Error(`buildShards: the documents function must return an iterable of documents, got ${got(items)}`);
  let i = 0;
  for await (const d of items) yield textOf(d, i++);
}

// The tokenizer's vocabulary size, checked for `op`.
function checkVocab(op: string, tok: unknown): number {
  if (tok === null || typeof tok !== 'object') throw new Error(`${op}: tokenizer must be an object with vocabSize and fingerprint() or toJSON(), got ${got(tok)}`);
  const v = (tok as TokenizerLike).vocabSize;
  dtypeAs(op, v, 'tokenizer.vocabSize');
  return v;
}

// A separator id, checked for `op`.
function checkEos(op: string, eos: unknown, vocabSize: number): number | null {
  if (eos === undefined || eos === null) return null;
  if (typeof eos !== 'number' || !Number.isInteger(eos) || eos < 0 || eos >= vocabSize) throw new Error(`${op}: eos must be an integer in [0, ${vocabSize}), got ${show(eos)}`);
  return eos;
}

/**
 * The cache key of a corpus and tokenizer: SHA-256 over the format version, the tokenizer's
 * fingerprint and vocabulary size, the separator and the documents' content hashes in order.
 */
export function shardKey(documentHashes: Iterable<string>, tokenizer: Pick<TokenizerLike, 'vocabSize' | 'fingerprint' | 'toJSON'>, eos: number | null = null): string {
  const op = 'shardKey';
  if (typeof documentHashes === 'string' || !isIterable(documentHashes)) throw new Error(`${op}: documentHashes must be an iterable of content hashes (strings), got ${got(documentHashes)}`);
  const vocabSize = checkVocab(op, tokenizer);
  const h = keyHash(fingerprintAs(op, tokenizer), vocabSize, checkEos(op, eos, vocabSize));
  let i = 0;
  for (const d of documentHashes) {
    if (typeof d !== 'string') throw new Error(`${op}: documentHashes[${i}] must be a string, got ${got(d)}`);
    h.update(`\n${d}`);
    i++;
  }
  return h.digest('hex');
}

function keyHash(fingerprint: string, vocabSize: number, eos: number | null): ReturnType<typeof createHash> {
  const h = createHash('sha256');
  h.update(JSON.stringify({ format: 'kiln-shards', version: SHARD_FORMAT_VERSION, tokenizer: fingerprint, vocabSize, eos }));
  return h;
}

/**
 * Read and check the index of a shard folder: the version, the fields, and that every shard
 * file exists with the size its token count implies. Throws `readShardIndex: …` naming the
 * problem.
 */
export function readShardIndex(dir: string): ShardIndex {
  const op = 'readShardIndex';
  pathArg(op, dir, 'dir');
  const path = join(dir, SHARD_INDEX_FILE);
  let index: ShardIndex;
  try {
    index = JSON.parse(readFileSync(path, 'utf8')) as ShardIndex;
  } catch (e) {
    throw new Error(`${op}: cannot read ${path}: ${(e as Error).message}`);
  }
  return checkIndex(op, dir, index, path);
}

/**
 * Check an index that is not read from `dir/index.json` (one built in memory, as
 * `openTokenFile` builds one for an llm.c token file) against the files in `dir`, as
 * {@link readShardIndex} checks the one it reads; returns it. Throws `checkShardIndex: …`.
 *
 * @example
 * const index = checkShardIndex('data', { ...index, shards: [{ file: 'train.bin', tokens: n, offset: 1024 }] });
 */
export function checkShardIndex(dir: string, index: ShardIndex): ShardIndex {
  const op = 'checkShardIndex';
  pathArg(op, dir, 'dir');
  return checkIndex(op, dir, index, `the index of ${dir}`);
}

// The checks of readShardIndex and checkShardIndex; `where` names the index in messages.
function checkIndex(op: string, dir: string, index: ShardIndex, where: string): ShardIndex {
  const bad = (msg: string): never => {
    throw new Error(`${op}: ${where}: ${msg}`);
  };
  if (typeof index !== 'object' || index === null || Array.isArray(index)) bad(`not a JSON object (got ${got(index)})`);
  if (index.version !== SHARD_FORMAT_VERSION) bad(`format version ${String(index.version)}, this reader knows ${SHARD_FORMAT_VERSION}`);
  if (index.dtype !== 'uint16' && index.dtype !== 'uint32') bad(`unknown dtype '${String(index.dtype)}'`);
  // uint16 holds ids below 65536; uint32 any (a token file of another tool may use it for a small vocabulary)
  if (!Number.isSafeInteger(index.vocabSize) || index.vocabSize < 1 || index.vocabSize > 2 ** 31 || (index.dtype === 'uint16' && tokenDType(index.vocabSize) !== 'uint16'))
    bad(`dtype ${index.dtype} does not match vocabSize ${String(index.vocabSize)}`);
  if (!Array.isArray(index.shards)) bad('shards is not an array');
  const bytes = tokenBytes(index.dtype);
  let total = 0;
  for (const s of index.shards) {
    // one path component inside the folder: no separators, not '.' or '..'
    if (typeof s?.file !== 'string' || !/^[^/\\\0]+$/.test(s.file) || s.file === '.' || s.file === '..') bad(`bad shard file name ${JSON.stringify(s?.file)}`);
    if (!Number.isSafeInteger(s.tokens) || s.tokens < 0) bad(`shard ${s.file} has a bad token count ${String(s.tokens)}`);
    const offset = s.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) bad(`shard ${s.file} has a bad offset ${String(s.offset)}`);
    const file = join(dir, s.file);
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      return bad(`shard ${s.file} is missing`);
    }
    if (size !== offset + s.tokens * bytes)
      bad(`shard ${s.file} has ${size} bytes, the index says ${offset ? `${offset} header bytes and ` : ''}${s.tokens} tokens of ${bytes} bytes`);
    total += s.tokens;
  }
  if (total !== index.tokens) bad(`shards hold ${total} tokens, the index says ${String(index.tokens)}`);
  return index;
}

const littleEndian = endianness() === 'LE';

// The first `n` ids of `buf` as little-endian bytes (a view on little-endian hosts, a copy otherwise).
function leBytes(buf: Uint16Array | Uint32Array, n: number): Uint8Array {
  const bytes = buf.BYTES_PER_ELEMENT;
  if (littleEndian) return new Uint8Array(buf.buffer, buf.byteOffset, n * bytes);
  const out = new Uint8Array(n * bytes);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    if (bytes === 2) dv.setUint16(2 * i, buf[i]!, true);
    else dv.setUint32(4 * i, buf[i]!, true);
  }
  return out;
}

/**
 * Tokenise documents into shards under `cacheDir`, or reuse the shards of an earlier run with the
 * same documents, tokenizer and separator (a cache hit: the documents are hashed, not tokenised).
 *
 * @example
 * const eos = tokenizer.specialTokens.get('<|endoftext|>');
 * const shards = await buildShards(train, tokenizer, { cacheDir: '.kiln/cache', eos });
 * console.log(shards.cache, shards.index.tokens); // 'miss' the first time, 'hit' after
 * const data = TokenDataset.open(shards.dir);
 */
export async function buildShards(documents: ShardInput, tokenizer: TokenizerLike, opts: ShardOptions): Promise<ShardResult> {
  const op = 'buildShards';
  const t0 = performance.now();
  if (!Array.isArray(documents) && typeof documents !== 'function')
    throw new Error(`${op}: documents must be an array of documents or a function that returns an iterable of them, got ${got(documents)}`);
  const vocabSize = checkVocab(op, tokenizer);
  if (typeof tokenizer.encode !== 'function') throw new Error(`${op}: tokenizer must have encode(text), got ${show(tokenizer)} without it`);
  const fingerprint = fingerprintAs(op, tokenizer);
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { cacheDir, ... }, got ${got(opts)}`);
  optionsArg(op, opts, ['cacheDir', 'eos', 'maxShardBytes', 'onProgress']);
  const eos = checkEos(op, opts.eos, vocabSize);
  const dtype = tokenDType(vocabSize);
  const bytes = tokenBytes(dtype);
  const maxShardBytes = opts.maxShardBytes ?? 64 * 2 ** 20;
  if (typeof maxShardBytes !== 'number' || !Number.isSafeInteger(maxShardBytes) || maxShardBytes < bytes)
    throw new Error(`${op}: maxShardBytes must be an integer ≥ ${bytes} (one ${dtype} token), got ${got(maxShardBytes)}`);
  pathArg(op, opts.cacheDir, 'cacheDir');
  optionalFunction(op, 'onProgress', opts.onProgress);
  try {
    return await shardsOf(documents, tokenizer, opts, { t0, vocabSize, fingerprint, eos, dtype, bytes, maxShardBytes });
  } catch (e) {
    // the file writes name writeFileAtomic; the rest (mkdir, the tokenizer's own errors) keep their words after `op`
    if (e instanceof Error && !e.message.startsWith(`${op}: `)) {
      if (e.message.startsWith('writeFileAtomic: ')) throw relabel(op, e);
      e.message = `${op}: ${e.message}`;
    }
    throw e;
  }
}

interface ShardPlan {
  t0: number;
  vocabSize: number;
  fingerprint: string;
  eos: number | null;
  dtype: TokenDType;
  bytes: 2 | 4;
  maxShardBytes: number;
}

async function shardsOf(documents: ShardInput, tokenizer: TokenizerLike, opts: ShardOptions, plan: ShardPlan): Promise<ShardResult> {
  const { t0, vocabSize, fingerprint, eos, dtype, bytes, maxShardBytes } = plan;

  // pass 1: the key, from the documents' content hashes (streamed: memory does not grow with the corpus)
  const pass1 = keyHash(fingerprint, vocabSize, eos);
  let nDocs = 0;
  for await (const text of iterate(documents)) {
    pass1.update(`\n${contentHash(text)}`);
    nDocs++;
  }
  const key = pass1.digest('hex');
  const dir = resolve(opts.cacheDir, key);
  const seconds = (): number => (performance.now() - t0) / 1000;

  let reason = 'no index';
  if (existsSync(join(dir, SHARD_INDEX_FILE))) {
    try {
      const index = readShardIndex(dir);
      if (index.key !== key) throw new Error(`the index has key ${index.key}`);
      if (index.documents !== nDocs) throw new Error(`the index lists ${index.documents} documents, the corpus has ${nDocs}`);
      return { dir, key, index, cache: 'hit', seconds: seconds() };
    } catch (e) {
      reason = `invalid index (${(e as Error).message})`;
    }
  }

  // pass 2: tokenise into shards of at most `capacity` tokens
  await mkdir(dir, { recursive: true });
  const capacity = Math.floor(maxShardBytes / bytes);
  const Arr = dtype === 'uint16' ? Uint16Array : Uint32Array;
  let buf: Uint16Array | Uint32Array = new Arr(Math.min(capacity, 1 << 16));
  let fill = 0;
  const shards: ShardIndex['shards'] = [];
  let total = 0;
  const digits = (n: number): string => String(n).padStart(5, '0');
  const flush = async (): Promise<void> => {
    if (fill === 0) return;
    const file = `shard-${digits(shards.length)}.bin`;
    await writeFileAtomic(join(dir, file), leBytes(buf, fill));
    shards.push({ file, tokens: fill });
    fill = 0;
  };
  // room for at least one more token: grow the buffer up to a shard, then write it out
  const makeRoom = async (): Promise<void> => {
    if (fill < buf.length) return;
    if (buf.length < capacity) {
      const grown = new Arr(Math.min(capacity, buf.length * 2));
      grown.set(buf);
      buf = grown;
    } else await flush();
  };

  const pass2 = keyHash(fingerprint, vocabSize, eos);
  let docs = 0;
  for await (const text of iterate(documents)) {
    pass2.update(`\n${contentHash(text)}`);
    const ids = tokenizer.encode(text);
    for (let i = 0; i < ids.length; ) {
      await makeRoom();
      const end = Math.min(ids.length, i + buf.length - fill);
      for (; i < end; i++) {
        const id = ids[i]!;
        if (id >>> 0 !== id || id >= vocabSize) throw new Error(`buildShards: token ${id} at position ${i} of document ${docs} is outside [0, ${vocabSize})`);
        buf[fill++] = id;
      }
    }
    total += ids.length;
    if (eos !== null) {
      await makeRoom();
      buf[fill++] = eos;
      total++;
    }
    docs++;
    opts.onProgress?.({ documents: docs, tokens: total });
  }
  // the shards written so far are not indexed, so a failure here leaves nothing a reader would use
  if (pass2.digest('hex') !== key) throw new Error('buildShards: the documents changed between the two passes (a document function must return the same documents each call)');
  await flush();

  const index: ShardIndex = { version: SHARD_FORMAT_VERSION, key, dtype, vocabSize, tokens: total, shards, documents: docs, eos, tokenizer: fingerprint, created: new Date().toISOString() };
  await writeFileAtomic(join(dir, SHARD_INDEX_FILE), new TextEncoder().encode(JSON.stringify(index, null, 1)));
  return { dir, key, index, cache: 'miss', reason, seconds: seconds() };
}
