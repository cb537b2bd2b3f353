/**
 * Communicators: collectives across processes, on MPI (Open MPI from Debian; the addon
 * `kiln_mpi.node` is built where CMake finds MPI and loaded only here), or a single-process one
 * whose collectives are the identity. Every collective works in place on a tensor of any dtype
 * (halves are reduced in f32 and rounded back, as the tensor layer computes them), first checking
 * that all ranks pass the same shape and dtype: a mismatch is an Error on every rank, naming each
 * rank's tensor, instead of a hang or garbage. Launch with `mpirun -np N node script.js`.
 * @module
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { nativeBuildDir } from '../backend/cpu/addon.js';
import { decode, encode, type DType, type StorageArray } from '../backend/dtype.js';
import { noGrad } from '../autograd/tape.js';
import { keep, tidy } from '../tensor/memory.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/ops/creation.js';
import { multiScale } from '../tensor/ops/optim.js';
import { show } from '../tensor/validate.js';
import { options } from '../nn/validate.js';

/** How a reduction combines the ranks' values. */
export type ReduceOp = 'sum' | 'mean' | 'max' | 'min';

/** Collectives across the processes of one job (the ranks). */
export interface Communicator {
  /** This process's index, 0 … size − 1. */
  readonly rank: number;
  readonly size: number;
  /** Where the collectives run: 'mpi', or 'local' (one process). */
  readonly kind: 'mpi' | 'local';
  /** Reduce `t` over the ranks, in place, every rank getting the result. */
  allReduce(t: Tensor, op?: ReduceOp): Promise<void>;
  /**
   * {@link allReduce} done before returning, for code that cannot await (the backward of
   * tensor parallelism's layers): where the communicator reaches the tensor's memory directly
   * (MPI with a cpu tensor of f32, f64 or i32; one process always). Elsewhere an Error says so.
   */
  allReduceNow(t: Tensor, op?: ReduceOp): void;
  /** {@link reduceScatter} done before returning, where {@link reachesNow} says it can be. */
  reduceScatterNow(t: Tensor, op?: ReduceOp): Tensor;
  /** Whether the `…Now` collectives take `t` (its memory is reachable without a wait). */
  reachesNow(t: Tensor): boolean;
  /** Copy `root`'s `t` into every rank's `t`. */
  broadcast(t: Tensor, root?: number): Promise<void>;
  /**
   * The ranks' `t` stacked along a new first axis: `[size, ...t.shape]`. The results of
   * allGather and reduceScatter arrive through a Promise, so no tidy scope holds them: the caller
   * disposes them.
   */
  allGather(t: Tensor): Promise<Tensor>;
  /** The reduction of the ranks' `t` (first axis a multiple of size), block `rank` of it: `[n/size, ...]`. */
  reduceScatter(t: Tensor, op?: ReduceOp): Promise<Tensor>;
  /** Point to point: `t` to rank `dest`, and into `t` from rank `source`. */
  send(t: Tensor, dest: number, tag?: number): Promise<void>;
  recv(t: Tensor, source: number, tag?: number): Promise<void>;
  barrier(): Promise<void>;
}

interface MpiAddon {
  init(timeoutSeconds: number): { rank: number; size: number };
  allReduce(buf: ArrayBufferView, dtype: number, op: number): void;
  broadcast(buf: ArrayBufferView, dtype: number, root: number): void;
  allGather(send: ArrayBufferView, recv: ArrayBufferView, dtype: number): void;
  reduceScatter(send: ArrayBufferView, recv: ArrayBufferView, dtype: number, op: number): void;
  send(buf: ArrayBufferView, dtype: number, dest: number, tag: number): void;
  recv(buf: ArrayBufferView, dtype: number, source: number, tag: number): void;
  barrier(): void;
  finalize(): void;
}

const DTYPE_CODE: Record<'f32' | 'f64' | 'i32' | 'u8', number> = { f32: 0, f64: 1, i32: 2, u8: 3 };
const OP_CODE: Record<'sum' | 'max' | 'min', number> = { sum: 0, max: 1, min: 2 };
const DTYPE_ID: Record<DType, number> = { f32: 0, f64: 1, i32: 2, bf16: 3, f16: 4, bool: 5 };

/** Where `kiln_mpi.node` is, or why it is not there. */
export function findMpiAddon(): { file: string } | { unavailable: string } {
  const out = nativeBuildDir();
  if (!out) return { unavailable: "kiln's package folder was not found" };
  const file = join(out, 'Release', 'kiln_mpi.node');
  if (!existsSync(file)) return { unavailable: 'kiln_mpi.node was not built: MPI was not found when the addon was built (apt-get install openmpi-bin libopenmpi-dev, then npm run build:native)' };
  return { file };
}

let addon: MpiAddon | null = null;

// a collective's tensor argument, checked
function tensorArg(op: string, t: unknown): Tensor {
  if (!(t instanceof Tensor)) throw new Error(`${op}: expected a Tensor, got ${show(t)}`);
  if (t.disposed) throw new Error(`${op}: the tensor was disposed`);
  return t;
}

function reduceOpArg(name: string, op: unknown): ReduceOp {
  if (op !== 'sum' && op !== 'mean' && op !== 'max' && op !== 'min') throw new Error(`${name}: op must be sum, mean, max or min, got ${show(op)}`);
  return op;
}

// the MPI datatype code of values stored as `dtype` (halves reduce as f32 after decoding)
function codeOf(dtype: DType): number {
  return dtype === 'f64' ? DTYPE_CODE.f64 : dtype === 'i32' ? DTYPE_CODE.i32 : dtype === 'bool' ? DTYPE_CODE.u8 : DTYPE_CODE.f32;
}

// the storage's own memory where the backend can hand it out (cpu), for f32/f64/i32: no copies
function hostView(t: Tensor, op: string): Float32Array | Float64Array | Int32Array | null {
  if (t.dtype !== 'f32' && t.dtype !== 'f64' && t.dtype !== 'i32') return null;
  const view = (t.backend as { hostView?(s: unknown): StorageArray }).hostView?.(t._storage(op));
  return view ? (view.subarray(0, t.size) as Float32Array | Float64Array | Int32Array) : null;
}

// a host copy of `t`'s values in the type MPI reduces them in (halves widened to f32)
async function read(t: Tensor, op: string): Promise<Float32Array | Float64Array | Int32Array | Uint8Array> {
  const { data } = await storedBytes(t, op);
  return (t.dtype === 'bf16' || t.dtype === 'f16' ? decode(data, t.dtype) : data) as Float32Array | Float64Array | Int32Array | Uint8Array;
}

// the stored elements of `t` (a host copy), and their bytes: what travels when nothing is reduced
async function storedBytes(t: Tensor, op: string): Promise<{ data: StorageArray; bytes: Uint8Array }> {
  const raw = await t.backend.read(t._storage(op));
  const data = raw.length === t.size ? raw : raw.subarray(0, t.size);
  return { data, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

function write(t: Tensor, work: ArrayLike<number>, op: string): void {
  const data = t.dtype === 'bf16' || t.dtype === 'f16' ? encode(work, t.dtype) : (work as StorageArray);
  t.backend.write(t._storage(op), data);
}

class MpiCommunicator implements Communicator {
  readonly kind = 'mpi' as const;
  constructor(
    private readonly mpi: MpiAddon,
    readonly rank: number,
    readonly size: number,
  ) {}

  // every rank passes the same shape and dtype, or every rank throws naming them all
  private agree(op: string, t: Tensor, extra = 0): void {
    const mine = new Int32Array(4 + 8);
    mine[0] = DTYPE_ID[t.dtype];
    mine[1] = t.rank;
    mine[2] = extra;
    t.shape.slice(0, 8).forEach((d, i) => (mine[4 + i] = d));
    const all = new Int32Array(mine.length * this.size);
    this.mpi.allGather(mine, all, DTYPE_CODE.i32);
    const rows = Array.from({ length: this.size }, (_, r) => all.subarray(r * mine.length, (r + 1) * mine.length));
    if (rows.every((row) => row.every((v, i) => v === mine[i]))) return;
    const name = Object.keys(DTYPE_ID) as DType[];
    const desc = rows.map((row, r) => `rank ${r} ${fmt(Array.from(row.subarray(4, 4 + row[1]!)))} ${name[row[0]!] ?? '?'}${extra ? ` (${row[2]})` : ''}`);
    throw new Error(`${op}: the ranks disagree on the tensor: ${desc.join(', ')}`);
  }

  private rankArg(op: string, what: string, r: unknown): number {
    if (!Number.isInteger(r) || (r as number) < 0 || (r as number) >= this.size) throw new Error(`${op}: ${what} must be a rank in [0, ${this.size}), got ${show(r)}`);
    return r as number;
  }

  // t /= size in place, in one pass (a sum becomes the mean)
  private divide(t: Tensor): void {
    noGrad(() =>
      tidy(() => {
        const scale = tensor([1 / this.size], [1], { backend: t.backend.name, dtype: t.dtype === 'f64' ? 'f64' : 'f32' });
        multiScale([t], scale);
      }),
    );
  }

  // checks allReduce's arguments, and reduces `t` where its memory is reachable (true), else false
  private reduceDirect(name: string, x: Tensor, op: ReduceOp): boolean {
    const t = tensorArg(name, x);
    reduceOpArg(name, op);
    if (op === 'mean' && (t.dtype === 'i32' || t.dtype === 'bool')) throw new Error(`${name}: mean of ${t.dtype} values is not ${t.dtype}; use sum`);
    this.agree(name, t);
    const direct = hostView(t, name);
    if (!direct) return false;
    this.mpi.allReduce(direct, codeOf(t.dtype), OP_CODE[op === 'mean' ? 'sum' : op]);
    t._bumpVersion();
    if (op === 'mean') this.divide(t);
    return true;
  }

  allReduceNow(x: Tensor, op: ReduceOp = 'sum'): void {
    if (!this.reduceDirect('allReduceNow', x, op))
      throw new Error(`allReduceNow: MPI reaches the memory of cpu tensors of f32, f64 or i32 only, not a ${x.backend.name} ${x.dtype} tensor ${fmt(x.shape)}; await allReduce instead`);
  }

  async allReduce(x: Tensor, op: ReduceOp = 'sum'): Promise<void> {
    const name = 'allReduce';
    if (this.reduceDirect(name, x, op)) return;
    const t = x;
    const work = await read(t, name);
    this.mpi.allReduce(work, codeOf(t.dtype), OP_CODE[op === 'mean' ? 'sum' : op]);
    if (op === 'mean') for (let i = 0; i < work.length; i++) work[i] = work[i]! / this.size;
    write(t, work, name);
  }

  async broadcast(x: Tensor, root = 0): Promise<void> {
    const name = 'broadcast';
    const t = tensorArg(name, x);
    this.rankArg(name, 'root', root);
    this.agree(name, t, root + 1);
    // the stored bits travel as they are (halves and bools as bytes)
    const { data, bytes } = await storedBytes(t, name);
    this.mpi.broadcast(bytes, DTYPE_CODE.u8, root);
    t.backend.write(t._storage(name), data);
  }

  async allGather(x: Tensor): Promise<Tensor> {
    const name = 'allGather';
    const t = tensorArg(name, x);
    this.agree(name, t);
    const direct = hostView(t, name);
    if (direct) {
      // straight into the output's memory (before any await: a caller's next op sees it done)
      const out = Tensor._empty(t.backend, [this.size, ...t.shape], t.dtype);
      this.mpi.allGather(direct, hostView(out, name)!, codeOf(t.dtype));
      out._bumpVersion();
      return keep(out);
    }
    const { data, bytes: mine } = await storedBytes(t, name);
    const all = new Uint8Array(mine.length * this.size);
    this.mpi.allGather(mine, all, DTYPE_CODE.u8);
    const out = Tensor._empty(t.backend, [this.size, ...t.shape], t.dtype);
    const Ctor = data.constructor as new (b: ArrayBuffer, o: number, n: number) => StorageArray;
    t.backend.write(out._storage(name), new Ctor(all.buffer, 0, t.size * this.size));
    return keep(out);
  }

  reachesNow(t: Tensor): boolean {
    return hostView(tensorArg('reachesNow', t), 'reachesNow') !== null;
  }

  // checks reduceScatter's arguments; the result where t's memory is reachable, else null
  private scatterDirect(name: string, x: Tensor, op: ReduceOp): Tensor | null {
    const t = tensorArg(name, x);
    reduceOpArg(name, op);
    if (t.rank < 1 || t.shape[0]! % this.size !== 0) throw new Error(`${name}: the first axis of ${fmt(t.shape)} must be a multiple of the ${this.size} ranks`);
    this.agree(name, t);
    const direct = hostView(t, name);
    if (!direct) return null;
    const out = Tensor._empty(t.backend, [t.shape[0]! / this.size, ...t.shape.slice(1)], t.dtype);
    this.mpi.reduceScatter(direct, hostView(out, name)!, codeOf(t.dtype), OP_CODE[op === 'mean' ? 'sum' : op]);
    out._bumpVersion();
    if (op === 'mean') this.divide(out);
    return keep(out);
  }

  reduceScatterNow(x: Tensor, op: ReduceOp = 'sum'): Tensor {
    const out = this.scatterDirect('reduceScatterNow', x, op);
    if (!out) throw new Error(`reduceScatterNow: MPI reaches the memory of cpu tensors of f32, f64 or i32 only, not a ${x.backend.name} ${x.dtype} tensor ${fmt(x.shape)}; await reduceScatter instead`);
    return out;
  }

  async reduceScatter(x: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    const name = 'reduceScatter';
    const direct = this.scatterDirect(name, x, op);
    if (direct) return direct;
    const t = x;
    const work = await read(t, name);
    const n = work.length / this.size;
    const recv = new (work.constructor as new (n: number) => typeof work)(n);
    this.mpi.reduceScatter(work, recv, codeOf(t.dtype), OP_CODE[op === 'mean' ? 'sum' : op]);
    if (op === 'mean') for (let i = 0; i < recv.length; i++) recv[i] = recv[i]! / this.size;
    const out = Tensor._empty(t.backend, [t.shape[0]! / this.size, ...t.shape.slice(1)], t.dtype);
    write(out, recv, name);
    return keep(out);
  }

  async send(x: Tensor, dest: number, tag = 0): Promise<void> {
    const name = 'send';
    const t = tensorArg(name, x);
    this.rankArg(name, 'dest', dest);
    this.mpi.send((await storedBytes(t, name)).bytes, DTYPE_CODE.u8, dest, tag);
  }

  async recv(x: Tensor, source: number, tag = 0): Promise<void> {
    const name = 'recv';
    const t = tensorArg(name, x);
    this.rankArg(name, 'source', source);
    const { data, bytes } = await storedBytes(t, name);
    this.mpi.recv(bytes, DTYPE_CODE.u8, source, tag);
    t.backend.write(t._storage(name), data);
  }

  async barrier(): Promise<void> {
    this.mpi.barrier();
  }
}

class LocalCommunicator implements Communicator {
  readonly kind = 'local' as const;
  readonly rank = 0;
  readonly size = 1;
  async allReduce(t: Tensor, op: ReduceOp = 'sum'): Promise<void> {
    this.allReduceNow(t, op, 'allReduce');
  }
  allReduceNow(t: Tensor, op: ReduceOp = 'sum', name = 'allReduceNow'): void {
    tensorArg(name, t);
    reduceOpArg(name, op);
  }
  async broadcast(t: Tensor, root = 0): Promise<void> {
    tensorArg('broadcast', t);
    if (root !== 0) throw new Error(`broadcast: root must be a rank in [0, 1), got ${show(root)}`);
  }
  async allGather(t: Tensor): Promise<Tensor> {
    tensorArg('allGather', t);
    return keep(noGrad(() => t.unsqueeze(0).clone()));
  }
  async reduceScatter(t: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    return this.reduceScatterNow(t, op, 'reduceScatter');
  }
  reduceScatterNow(t: Tensor, op: ReduceOp = 'sum', name = 'reduceScatterNow'): Tensor {
    tensorArg(name, t);
    reduceOpArg(name, op);
    return keep(noGrad(() => t.clone()));
  }
  reachesNow(t: Tensor): boolean {
    tensorArg('reachesNow', t);
    return true;
  }
  async send(): Promise<void> {
    throw new Error('send: a single-process communicator has no other rank');
  }
  async recv(): Promise<void> {
    throw new Error('recv: a single-process communicator has no other rank');
  }
  async barrier(): Promise<void> {}
}

/**
 * Seconds a collective waits for the other ranks before it throws (a rank that died or hangs):
 * KILN_MPI_TIMEOUT, 600 by default (PyTorch's NCCL default is of the same order).
 */
function mpiTimeout(): number {
  const v = process.env.KILN_MPI_TIMEOUT;
  if (v === undefined || v === '') return 600;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`communicator: KILN_MPI_TIMEOUT must be a number of seconds > 0, got '${v}'`);
  return n;
}

/** Whether this process was started by mpirun (Open MPI's or a PMI launcher's environment). */
export function underMpirun(): boolean {
  return process.env.OMPI_COMM_WORLD_SIZE !== undefined || process.env.PMI_SIZE !== undefined;
}

/**
 * The communicator of this job: MPI when the process was started by mpirun (or `kind: 'mpi'`
 * is asked for), else a single-process one. Asking for MPI where kiln_mpi.node was not built is
 * an Error saying why.
 */
export function communicator(opts: { kind?: 'mpi' | 'local' } = {}): Communicator {
  const o = options('communicator', opts, ['kind']);
  if (o.kind === null) throw new Error('communicator: kind must be mpi or local, got null');
  const kind = o.kind ?? (underMpirun() ? 'mpi' : 'local');
  if (kind === 'local') return new LocalCommunicator();
  if (kind !== 'mpi') throw new Error(`communicator: kind must be mpi or local, got ${show(kind)}`);
  if (!addon) {
    const found = findMpiAddon();
    if ('unavailable' in found) throw new Error(`communicator: MPI is not available: ${found.unavailable}`);
    addon = createRequire(import.meta.url)(found.file) as MpiAddon;
    // a clean exit finalizes; an exit on an error does not (a finalize would wait for the other
    // ranks, which may be waiting in a collective for this one): mpirun sees a rank exit with an
    // error and ends the job, and this rank's error message reaches the terminal first
    process.once('exit', (code) => void (code === 0 && addon?.finalize()));
  }
  const { rank, size } = addon.init(mpiTimeout());
  return new MpiCommunicator(addon, rank, size);
}
