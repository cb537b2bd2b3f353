/**
 * Reading tokenised shards: {@link TokenDataset} opens a shard folder (see `shards.ts`) and reads
 * windows of the token stream straight from the files, a byte range per window, so a corpus far
 * larger than memory trains with memory bounded by the batch. Random training batches are drawn
 * from a kiln `Generator`, so one seed gives the same batches on every machine and a saved
 * generator state resumes them; a sequential iterator covers a split once for evaluation.
 * @module
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { tensor } from '../tensor/ops/creation.js';
import { asOp } from '../tensor/ops/util.js';
import { defaultGenerator, Generator as RandomGenerator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkNumber } from '../tensor/validate.js';
import { got, optionalString, optionsArg } from './args.js';
import { checkRows, type BatchTransform } from './augment.js';
import { checkShardIndex, readShardIndex, tokenBytes, type ShardIndex } from './shards.js';

/** A batch of next-token prediction examples. */
export interface TokenBatch {
  /** Token ids, `[B, T]` i32. */
  input: Tensor;
  /** The same windows one token later, `[B, T]` i32: `target[b][t] = input[b][t + 1]` within the stream. */
  target: Tensor;
  /** Where each window starts in the token stream. */
  starts: number[];
}

/** Options of {@link TokenDataset.open}. */
export interface TokenDatasetOptions {
  /** Shard files kept open at once (least recently used closed first); 8 by default. */
  maxOpenFiles?: number;
}

/** Options of {@link TokenDataset.batch} and {@link TokenDataset.sequential}. */
export interface BatchOptions {
  /** Backend of the batch tensors; the default backend when omitted. */
  backend?: string;
}

/** Options of {@link TokenDataset.batch}. */
export interface RandomBatchOptions extends BatchOptions {
  /**
   * Data parallelism: this process's rows of the batch. Every rank draws the whole batch from the
   * same generator state (so the generator stays in step on all ranks, and a run resumed on
   * another number of ranks sees the same batches) and keeps rows
   * `[rank·batchSize/size, (rank+1)·batchSize/size)`; batchSize must be a multiple of size.
   */
  shard?: { rank: number; size: number };
  /**
   * Augment the batch's token rows on the host before they become tensors (see `augment.ts`).
   * Its draws come from a generator seeded by one draw from the batch generator, so the batch
   * generator advances the same with any transform; with `shard`, each rank's rows are
   * transformed with that seed plus the rank.
   */
  transform?: BatchTransform;
}

const littleEndian = endianness() === 'LE';

/**
 * The token stream of a shard folder, read lazily. Holds at most `maxOpenFiles` file descriptors;
 * call {@link TokenDataset.close} (or `using`) when done.
 *
 * @example
 * const data = TokenDataset.open(shards.dir);
 * const { input, target } = data.batch(8, 256, new Generator(1)); // [8, 256] i32 each
 * for (const b of data.sequential(256, { batchSize: 8 })) { ... } // evaluation, each target once
 */
export class TokenDataset {
  /** The folder's index (of the whole stream; a {@link TokenDataset.slice} has its own `length`). */
  readonly index: ShardIndex;
  /** The shard folder. */
  readonly dir: string;
  /** Bytes read from shard files so far (an I/O counter: a window of n tokens reads n × 2 or 4 bytes). */
  bytesRead = 0;

  private readonly bytes: 2 | 4;
  // this dataset is stream positions [base, base + len) of the folder's stream (a slice)
  private readonly base: number;
  private readonly len: number;
  private readonly starts: number[]; // starts[i]: stream position of shard i's first token; starts[n] = length
  private readonly fds = new Map<number, number>(); // shard → fd, in least-recently-used order
  private readonly maxOpenFiles: number;
  private scratch = new Uint8Array(0);
  private isClosed = false;

  private constructor(dir: string, index: ShardIndex, maxOpenFiles: number, range?: [number, number]) {
    this.dir = dir;
    this.index = index;
    this.bytes = tokenBytes(index.dtype);
    this.starts = [0];
    for (const s of index.shards) this.starts.push(this.starts[this.starts.length - 1]! + s.tokens);
    this.maxOpenFiles = maxOpenFiles;
    this.base = range ? range[0] : 0;
    this.len = range ? range[1] - range[0] : index.tokens;
  }

  /** Open a shard folder (or the result of `buildShards`); the index and file sizes are checked, no tokens are read. */
  static open(dir: string | { dir: string }, opts: TokenDatasetOptions = {}): TokenDataset {
    const op = 'TokenDataset.open';
    const inner = dir !== null && typeof dir === 'object' && !Array.isArray(dir) ? (dir as { dir?: unknown }).dir : undefined;
    if (typeof dir !== 'string' && typeof inner !== 'string')
      throw new Error(`${op}: dir must be a shard folder (a path, or the result of buildShards), got ${inner === undefined ? got(dir) : `{ dir: ${got(inner)} }`}`);
    const path = typeof dir === 'string' ? dir : dir.dir;
    const o = optionsArg<TokenDatasetOptions>(op, opts, ['maxOpenFiles']);
    const maxOpenFiles = o.maxOpenFiles === undefined ? 8 : checkNumber(op, 'maxOpenFiles', o.maxOpenFiles, { integer: true, min: 1 });
    return new TokenDataset(path, asOp(op, () => readShardIndex(path)), maxOpenFiles);
  }

  /**
   * Open the token stream an index describes that is not on disk as `index.json` (checked against
   * the files in `dir` as `open` checks a folder's); `openTokenFile` opens an llm.c token file
   * this way, with the file's header as the shard's `offset`.
   */
  static fromIndex(dir: string, index: ShardIndex, opts: TokenDatasetOptions = {}): TokenDataset {
    const op = 'TokenDataset.fromIndex';
    if (typeof dir !== 'string') throw new Error(`${op}: dir must be a folder path, got ${got(dir)}`);
    const o = optionsArg<TokenDatasetOptions>(op, opts, ['maxOpenFiles']);
    const maxOpenFiles = o.maxOpenFiles === undefined ? 8 : checkNumber(op, 'maxOpenFiles', o.maxOpenFiles, { integer: true, min: 1 });
    return new TokenDataset(dir, asOp(op, () => checkShardIndex(dir, index)), maxOpenFiles);
  }

  /**
   * Tokens [start, end) of this stream as a dataset of its own (sharing no open files with this
   * one): a train/validation split of one token stream, as `kiln train` splits a token file.
   * Close it as any other.
   *
   * @example
   * const all = openTokenFile('tiny_shakespeare_train.bin');
   * const cut = all.length - Math.ceil(0.05 * all.length);
   * const train = all.slice(0, cut), val = all.slice(cut, all.length);
   */
  slice(start: number, end: number): TokenDataset {
    const op = 'TokenDataset.slice';
    this.check('slice');
    checkNumber(op, 'start', start, { integer: true, min: 0, max: this.length });
    checkNumber(op, 'end', end, { integer: true, min: start, max: this.length });
    return new TokenDataset(this.dir, this.index, this.maxOpenFiles, [this.base + start, this.base + end]);
  }

  /** Tokens in the stream. */
  get length(): number {
    return this.len;
  }

  /** The vocabulary size the shards were written with. */
  get vocabSize(): number {
    return this.index.vocabSize;
  }

  /** Whether {@link TokenDataset.close} was called. */
  get closed(): boolean {
    return this.isClosed;
  }

  private fd(shard: number): number {
    let fd = this.fds.get(shard);
    if (fd !== undefined) {
      this.fds.delete(shard); // re-insert: most recently used last
    } else {
      if (this.fds.size >= this.maxOpenFiles) {
        const [oldest, oldFd] = this.fds.entries().next().value as [number, number];
        this.fds.delete(oldest);
        closeSync(oldFd);
      }
      fd = openSync(join(this.dir, this.index.shards[shard]!.file), 'r');
    }
    this.fds.set(shard, fd);
    return fd;
  }

  // The shard holding stream position `pos` (binary search over the shard starts).
  private shardOf(pos: number): number {
    let lo = 0;
    let hi = this.index.shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Copy tokens [start, start + length) of the stream into `out` at `at`. */
  private readInto(out: Int32Array, at: number, start: number, length: number): void {
    let pos = this.base + start;
    let done = 0;
    let shard = this.shardOf(pos);
    while (done < length) {
      while (this.starts[shard + 1]! <= pos) shard++; // skip empty shards and the one just finished
      const inShard = pos - this.starts[shard]!;
      const n = Math.min(length - done, this.starts[shard + 1]! - pos);
      const nbytes = n * this.bytes;
      if (this.scratch.length < nbytes) this.scratch = new Uint8Array(Math.max(nbytes, 2 * this.scratch.length));
      const fd = this.fd(shard);
      let got = 0;
      while (got < nbytes) {
        const r = readSync(fd, this.scratch, got, nbytes - got, (this.index.shards[shard]!.offset ?? 0) + inShard * this.bytes + got);
        if (r === 0) throw new Error(`TokenDataset: ${this.index.shards[shard]!.file} ended early (was it changed after the index was written?)`);
        got += r;
      }
      this.bytesRead += nbytes;
      if (littleEndian) out.set(this.bytes === 2 ? new Uint16Array(this.scratch.buffer, 0, n) : new Uint32Array(this.scratch.buffer, 0, n), at + done);
      else {
        const dv = new DataView(this.scratch.buffer);
        for (let i = 0; i < n; i++) out[at + done + i] = this.bytes === 2 ? dv.getUint16(2 * i, true) : dv.getUint32(4 * i, true);
      }
      done += n;
      pos += n;
    }
  }

  private check(op: string): void {
    if (this.closed) throw new Error(`TokenDataset.${op}: the dataset was closed`);
  }

  /** Tokens [start, start + length) of the stream (across shard boundaries), read from disk. */
  window(start: number, length: number): Int32Array {
    this.check('window');
    checkNumber('TokenDataset.window', 'start', start, { integer: true, min: 0 });
    checkNumber('TokenDataset.window', 'length', length, { integer: true, min: 0 });
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length < 0 || start + length > this.length)
      throw new Error(`TokenDataset.window: [${start}, ${start + length}) is outside the stream [0, ${this.length})`);
    const out = new Int32Array(length);
    if (length > 0) this.readInto(out, 0, start, length);
    return out;
  }

  /** Number of windows of `blockSize` a random batch draws from: every start with `blockSize + 1` tokens after it. */
  validStarts(blockSize: number): number {
    checkNumber('TokenDataset.validStarts', 'blockSize', blockSize, { integer: true, min: 1 });
    return Math.max(0, this.length - blockSize);
  }

  // windows [B, T + 1] at `starts` → input [B, T] and target [B, T]
  private assemble(op: string, starts: number[], blockSize: number, opts: BatchOptions, transform?: (input: Int32Array, target: Int32Array) => { input: Int32Array; target: Int32Array }): TokenBatch {
    const b = starts.length;
    const T = blockSize;
    const rows = new Int32Array(T + 1);
    let input: Int32Array = new Int32Array(b * T);
    let target: Int32Array = new Int32Array(b * T);
    starts.forEach((s, i) => {
      this.readInto(rows, 0, s, T + 1);
      input.set(rows.subarray(0, T), i * T);
      target.set(rows.subarray(1), i * T);
    });
    if (transform) ({ input, target } = transform(input, target));
    const o = opts.backend === undefined ? {} : { backend: opts.backend };
    return asOp(op, () => {
      const x = tensor(input, [b, T], o);
      try {
        return { input: x, target: tensor(target, [b, T], o), starts };
      } catch (e) {
        x.dispose();
        throw e;
      }
    });
  }

  /**
   * A random batch: `batchSize` windows of `blockSize + 1` tokens, their starts uniform over
   * {@link TokenDataset.validStarts} and drawn exactly as `randint(0, validStarts, [batchSize], { generator })`
   * would draw them, so one generator state gives one batch on every backend.
   */
  batch(batchSize: number, blockSize: number, generator?: RandomGenerator, opts: RandomBatchOptions = {}): TokenBatch {
    const op = 'TokenDataset.batch';
    this.check('batch');
    checkNumber(op, 'batchSize', batchSize, { integer: true, min: 1 });
    checkNumber(op, 'blockSize', blockSize, { integer: true, min: 1 });
    if (generator !== undefined && generator !== null && !(generator instanceof RandomGenerator)) throw new Error(`${op}: generator must be a Generator, got ${got(generator)}`);
    const o = batchOptions(op, opts, ['shard', 'transform']) as RandomBatchOptions;
    const shard = o.shard === undefined ? null : shardArg(op, o.shard, batchSize);
    const transform = transformArg(op, o.transform);
    const n = Math.max(0, this.length - blockSize);
    if (n < 1) throw new Error(`TokenDataset.batch: blockSize ${blockSize} needs at least ${blockSize + 1} tokens, the stream has ${this.length}`);
    if (n > 2 ** 31) throw new Error(`TokenDataset.batch: ${n} window starts exceed randint's range of 2^31; split the corpus into several datasets`);
    // drawn on the host (no device work, no sync): the integers a randint tensor would hold
    const g = generator ?? defaultGenerator;
    const starts = Array.from(g.draw(batchSize, { kind: 'randint', low: 0, high: n }));
    return this.rows(op, starts, blockSize, g, shard, transform, o);
  }

  /**
   * The batch of the windows at `starts` (each `blockSize + 1` tokens of the stream), as
   * {@link TokenDataset.batch} assembles its random ones; `shard` keeps this rank's rows of them
   * and `transform` augments them (its draws seeded from `generator`). A curriculum picks its
   * windows and reads them this way.
   */
  batchAt(starts: readonly number[], blockSize: number, generator?: RandomGenerator, opts: RandomBatchOptions = {}): TokenBatch {
    const op = 'TokenDataset.batchAt';
    this.check('batchAt');
    checkNumber(op, 'blockSize', blockSize, { integer: true, min: 1 });
    if (!Array.isArray(starts) || starts.length === 0) throw new Error(`${op}: starts must be a non-empty array of window starts, got ${got(starts)}`);
    const last = this.length - blockSize - 1;
    starts.forEach((s, i) => {
      checkNumber(op, `starts[${i}]`, s, { integer: true, min: 0 });
      if (s > last) throw new Error(`${op}: starts[${i}] = ${s}: a window of blockSize ${blockSize} + 1 tokens there passes the end of the stream (${this.length} tokens)`);
    });
    if (generator !== undefined && generator !== null && !(generator instanceof RandomGenerator)) throw new Error(`${op}: generator must be a Generator, got ${got(generator)}`);
    const o = batchOptions(op, opts, ['shard', 'transform']) as RandomBatchOptions;
    const shard = o.shard === undefined ? null : shardArg(op, o.shard, starts.length);
    return this.rows(op, [...starts], blockSize, generator ?? defaultGenerator, shard, transformArg(op, o.transform), o);
  }

  private rows(op: string, starts: number[], blockSize: number, g: RandomGenerator, shard: { rank: number; size: number } | null, transform: BatchTransform | undefined, o: BatchOptions): TokenBatch {
    const n = shard ? starts.length / shard.size : starts.length;
    const mine = shard ? starts.slice(shard.rank * n, (shard.rank + 1) * n) : starts;
    if (!transform) return this.assemble(op, mine, blockSize, o);
    // one draw (one stream position) whatever the transform draws, so every rank stays in step
    const seed = g.draw(1, { kind: 'randint', low: 0, high: 2 ** 31 - 1 })[0]! + (shard?.rank ?? 0);
    return this.assemble(op, mine, blockSize, o, (input, target) => {
      const out = asOp(op, () => checkRows(`${op}: transform`, transform({ input, target, shape: [mine.length, blockSize] }, new RandomGenerator(seed))));
      if (out.shape[0] !== mine.length || out.shape[1] !== blockSize) throw new Error(`${op}: transform returned rows of shape [${out.shape.join(', ')}], expected [${mine.length}, ${blockSize}]`);
      return out;
    });
  }

  /** Number of windows {@link TokenDataset.sequential} yields for `blockSize` (the last may be shorter). */
  sequentialWindows(blockSize: number): number {
    checkNumber('TokenDataset.sequentialWindows', 'blockSize', blockSize, { integer: true, min: 1 });
    return this.length < 2 ? 0 : Math.ceil((this.length - 1) / blockSize);
  }

  /**
   * Non-overlapping windows in stream order for evaluation: window k has input tokens
   * [k·T, (k+1)·T) and targets one later, so every token after the first is a target exactly once.
   * Batches hold `batchSize` windows (the last batch fewer); the final window, when shorter than
   * `blockSize`, comes alone as a `[1, r]` batch, or is left out with `dropLast`.
   */
  *sequential(blockSize: number, opts: BatchOptions & { batchSize?: number; dropLast?: boolean } = {}): IterableIterator<TokenBatch> {
    const op = 'TokenDataset.sequential';
    this.check('sequential');
    checkNumber(op, 'blockSize', blockSize, { integer: true, min: 1 });
    const o = batchOptions(op, opts, ['batchSize', 'dropLast']) as BatchOptions & { batchSize?: number; dropLast?: boolean };
    const batchSize = o.batchSize === undefined ? 1 : checkNumber(op, 'batchSize', o.batchSize, { integer: true, min: 1 });
    if (o.dropLast !== undefined) checkBoolean(op, 'dropLast', o.dropLast);
    yield* this.windows(op, blockSize, batchSize, o);
  }

  private *windows(op: string, blockSize: number, batchSize: number, opts: BatchOptions & { dropLast?: boolean }): IterableIterator<TokenBatch> {
    this.check('sequential');
    const predicted = Math.max(0, this.length - 1);
    const full = Math.floor(predicted / blockSize);
    for (let k = 0; k < full; k += batchSize) {
      const starts: number[] = [];
      for (let j = k; j < Math.min(full, k + batchSize); j++) starts.push(j * blockSize);
      yield this.assemble(op, starts, blockSize, opts);
    }
    const rest = predicted - full * blockSize;
    if (rest > 0 && !opts.dropLast) yield this.assemble(op, [full * blockSize], rest, opts);
  }

  /** Close the open shard files; the dataset cannot read afterwards. */
  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
    this.isClosed = true;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

// The options of batch and sequential: a backend name, and `extra` keys.
function shardArg(op: string, shard: unknown, batchSize: number): { rank: number; size: number } {
  const s = optionsArg<{ rank: number; size: number }>(`${op}: shard`, shard, ['rank', 'size']);
  const size = checkNumber(op, 'shard.size', s.size, { integer: true, min: 1 });
  const rank = checkNumber(op, 'shard.rank', s.rank, { integer: true, min: 0, max: size - 1 });
  if (batchSize % size !== 0) throw new Error(`${op}: batchSize ${batchSize} is not a multiple of the ${size} ranks sharing it`);
  return { rank, size };
}

function transformArg(op: string, t: unknown): BatchTransform | undefined {
  if (t !== undefined && typeof t !== 'function') throw new Error(`${op}: transform must be a function (rows, generator) → rows, got ${got(t)}`);
  return t as BatchTransform | undefined;
}

function batchOptions(op: string, opts: unknown, extra: readonly string[]): BatchOptions {
  const o = optionsArg<BatchOptions>(op, opts, ['backend', ...extra]);
  optionalString(op, 'backend', o.backend);
  return o;
}
