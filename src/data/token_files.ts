/**
 * llm.c's token files: an already tokenised corpus in one flat file, as llm.c's data scripts
 * write them (`dev/data/data_common.py`, `write_datafile`) and its loader reads them
 * (`llmc/dataloader.h`), e.g. `tiny_shakespeare_train.bin` / `_val.bin` or the FineWeb shards
 * `fineweb_train_000001.bin`. The layout, from those two files:
 *
 * - a header of 256 little-endian int32 (1024 bytes): `[0]` the magic, `[1]` the version, `[2]`
 *   the number of tokens after the header; the other 253 are zero;
 * - the tokens, little-endian: uint16 for GPT-2's tokenizer (magic 20240520, version 1), uint32
 *   for Llama 3's (magic 20240801, version 7);
 * - nothing after them: the file is exactly 1024 + tokens × (2 or 4) bytes (the loader checks it).
 *
 * The header does not say the vocabulary: the GPT-2 format means GPT-2's tokenizer, 50257 ids
 * (`<|endoftext|>` = 50256 between documents), Llama 3's 128256. {@link openTokenFile} reads a file
 * lazily as a {@link TokenDataset} (the shard reader, with the header as the shard's offset);
 * {@link writeTokenFile} writes one (for tests, and for corpora tokenised elsewhere).
 * @module
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { relabel } from '../tensor/ops/util.js';
import { checkChoice, checkNumber } from '../tensor/validate.js';
import { got, optionsArg, pathArg } from './args.js';
import { TokenDataset, type TokenDatasetOptions } from './batches.js';
import { SHARD_FORMAT_VERSION, type ShardIndex, type TokenDType } from './shards.js';

/** Header size of an llm.c token file in int32 values (256), and in bytes (1024). */
export const TOKEN_FILE_HEADER_INTS = 256;
export const TOKEN_FILE_HEADER_BYTES = 4 * TOKEN_FILE_HEADER_INTS;

/** The formats llm.c writes (`HEADERS_INFO` of `dev/data/data_common.py`), and the vocabulary each implies. */
export const TOKEN_FILE_FORMATS = Object.freeze({
  'gpt-2': Object.freeze({ magic: 20240520, version: 1, dtype: 'uint16' as TokenDType, vocabSize: 50257 }),
  'llama-3': Object.freeze({ magic: 20240801, version: 7, dtype: 'uint32' as TokenDType, vocabSize: 128256 }),
});

/** A {@link TOKEN_FILE_FORMATS} name. */
export type TokenFileFormat = keyof typeof TOKEN_FILE_FORMATS;

/** What the header of a token file says. */
export interface TokenFileHeader {
  format: TokenFileFormat;
  magic: number;
  version: number;
  dtype: TokenDType;
  /** Tokens after the header. */
  tokens: number;
  /** The vocabulary the format implies (50257 for GPT-2's, 128256 for Llama 3's). */
  vocabSize: number;
}

const formatOfMagic = (magic: number): TokenFileFormat | undefined =>
  (Object.keys(TOKEN_FILE_FORMATS) as TokenFileFormat[]).find((f) => TOKEN_FILE_FORMATS[f].magic === magic);

// The first `n` bytes of `path` (fewer when the file is shorter).
function head(op: string, path: string, n: number): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new Error(`${op}: cannot read '${path}': ${(e as Error).message}`);
  }
  try {
    const buf = new Uint8Array(n);
    let at = 0;
    for (;;) {
      const r = readSync(fd, buf, at, n - at, at);
      if (r === 0 || (at += r) === n) break;
    }
    return buf.subarray(0, at);
  } catch (e) {
    throw new Error(`${op}: cannot read '${path}': ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/** Whether the file at `path` starts with an llm.c token file's magic (a regular file only; false when it cannot be read). */
export function isTokenFile(path: string): boolean {
  const op = 'isTokenFile';
  pathArg(op, path);
  try {
    if (!statSync(path).isFile()) return false;
    const b = head(op, path, 4);
    return b.length === 4 && formatOfMagic(new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true)) !== undefined;
  } catch {
    return false;
  }
}

/**
 * Read and check the header of an llm.c token file: a known magic, its version, a token count,
 * and a file size of exactly header + tokens (as llm.c's loader checks). Throws
 * `readTokenFileHeader: '<path>': …` naming what is wrong.
 */
export function readTokenFileHeader(path: string): TokenFileHeader {
  return headerAs('readTokenFileHeader', path);
}

function headerAs(op: string, path: unknown): TokenFileHeader {
  pathArg(op, path);
  const p = path as string;
  let size: number;
  try {
    const st = statSync(p);
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (e) {
    throw new Error(`${op}: cannot read '${p}': ${(e as Error).message}`);
  }
  const bad = (msg: string): never => {
    throw new Error(`${op}: '${p}': ${msg}`);
  };
  if (size < TOKEN_FILE_HEADER_BYTES) bad(`${size} bytes is shorter than the ${TOKEN_FILE_HEADER_BYTES}-byte header of an llm.c token file`);
  const b = head(op, p, TOKEN_FILE_HEADER_BYTES);
  if (b.length < TOKEN_FILE_HEADER_BYTES) bad('the header could not be read whole');
  const dv = new DataView(b.buffer, b.byteOffset, TOKEN_FILE_HEADER_BYTES);
  const magic = dv.getInt32(0, true);
  const version = dv.getInt32(4, true);
  const tokens = dv.getInt32(8, true);
  const format = formatOfMagic(magic);
  if (format === undefined)
    bad(`magic ${magic} is not an llm.c token file's (${Object.entries(TOKEN_FILE_FORMATS).map(([f, i]) => `${i.magic} for ${f}`).join(', ')})`);
  const info = TOKEN_FILE_FORMATS[format!];
  if (version !== info.version) bad(`version ${version}; the ${format} format is version ${info.version}`);
  if (tokens < 0) bad(`the header's token count is ${tokens}`);
  const bytes = info.dtype === 'uint16' ? 2 : 4;
  const want = TOKEN_FILE_HEADER_BYTES + tokens * bytes;
  if (size !== want) bad(`${size} bytes, but the header says ${tokens} tokens of ${bytes} bytes after ${TOKEN_FILE_HEADER_BYTES} header bytes (${want} bytes): truncated or not a token file`);
  return { format: format!, magic, version, dtype: info.dtype, tokens, vocabSize: info.vocabSize };
}

/** Options of {@link writeTokenFile}. */
export interface WriteTokenFileOptions {
  /** `'gpt-2'` (uint16 tokens, the default) or `'llama-3'` (uint32). */
  format?: TokenFileFormat;
}

/**
 * Write `tokens` as an llm.c token file (atomically): the 1024-byte header, then the tokens in the
 * format's width. Every id must fit it (below 65536 for `'gpt-2'`), and the count below 2³¹ as
 * llm.c asserts.
 *
 * @example
 * await writeTokenFile('tiny.bin', Uint16Array.from({ length: 5000 }, (_, i) => i % 256));
 * const data = openTokenFile('tiny.bin', { vocabSize: 256 });
 */
export async function writeTokenFile(path: string, tokens: ArrayLike<number>, opts: WriteTokenFileOptions = {}): Promise<void> {
  const op = 'writeTokenFile';
  pathArg(op, path);
  if (tokens === null || typeof tokens !== 'object' || typeof (tokens as ArrayLike<number>).length !== 'number')
    throw new Error(`${op}: tokens must be an array or typed array of token ids, got ${got(tokens)}`);
  const o = optionsArg<WriteTokenFileOptions>(op, opts, ['format']);
  const format = o.format === undefined ? 'gpt-2' : checkChoice(op, 'format', o.format, Object.keys(TOKEN_FILE_FORMATS) as TokenFileFormat[]);
  const info = TOKEN_FILE_FORMATS[format];
  const n = tokens.length;
  if (n >= 2 ** 31) throw new Error(`${op}: ${n} tokens; an llm.c token file holds fewer than 2^31`);
  const bytes = info.dtype === 'uint16' ? 2 : 4;
  const limit = bytes === 2 ? 65536 : 2 ** 32;
  const out = new Uint8Array(TOKEN_FILE_HEADER_BYTES + n * bytes);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, info.magic, true);
  dv.setInt32(4, info.version, true);
  dv.setInt32(8, n, true);
  for (let i = 0; i < n; i++) {
    const id = tokens[i];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= limit)
      throw new Error(`${op}: tokens[${i}] = ${got(id)} is not an id of the ${format} format (an integer in [0, ${limit}))`);
    if (bytes === 2) dv.setUint16(TOKEN_FILE_HEADER_BYTES + 2 * i, id, true);
    else dv.setUint32(TOKEN_FILE_HEADER_BYTES + 4 * i, id, true);
  }
  try {
    await writeFileAtomic(path, out);
  } catch (e) {
    throw relabel(op, e);
  }
}

/** Options of {@link openTokenFile}. */
export interface OpenTokenFileOptions extends TokenDatasetOptions {
  /** The vocabulary size the dataset reports; the format's (50257 for GPT-2's) when absent. */
  vocabSize?: number;
}

/**
 * Open an llm.c token file as a {@link TokenDataset}: the header is checked, no tokens are read;
 * batches read their windows from the file as they do from shards. Split it with
 * {@link TokenDataset.slice}.
 *
 * @example
 * const data = openTokenFile('dev/data/tinyshakespeare/tiny_shakespeare_train.bin');
 * const { input, target } = data.batch(4, 1024, new Generator(1)); // [4, 1024] i32 each
 */
export function openTokenFile(path: string, opts: OpenTokenFileOptions = {}): TokenDataset {
  const op = 'openTokenFile';
  const header = headerAs(op, path);
  const o = optionsArg<OpenTokenFileOptions>(op, opts, ['vocabSize', 'maxOpenFiles']);
  const vocabSize = o.vocabSize === undefined ? header.vocabSize : checkNumber(op, 'vocabSize', o.vocabSize, { integer: true, min: 1, max: header.dtype === 'uint16' ? 65536 : 2 ** 31 });
  const full = resolve(path);
  const index: ShardIndex = {
    version: SHARD_FORMAT_VERSION,
    key: `llm.c:${full}`,
    dtype: header.dtype,
    vocabSize,
    tokens: header.tokens,
    shards: [{ file: basename(full), tokens: header.tokens, offset: TOKEN_FILE_HEADER_BYTES }],
    documents: 0, // the file does not say (documents are separated by <|endoftext|>)
    eos: header.format === 'gpt-2' && vocabSize > 50256 ? 50256 : null,
    tokenizer: header.format,
    created: statSync(full).mtime.toISOString(),
  };
  const dsOpts = o.maxOpenFiles === undefined ? {} : { maxOpenFiles: o.maxOpenFiles };
  try {
    return TokenDataset.fromIndex(dirname(full), index, dsOpts);
  } catch (e) {
    const m = (e as Error).message;
    throw new Error(`${op}: ${m.replace(/^TokenDataset\.fromIndex: (checkShardIndex: )?/, '')}`);
  }
}
