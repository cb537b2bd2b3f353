/**
 * `cpu`: the native backend. Storage is 64-byte-aligned native memory seen from JS as an
 * ArrayBuffer (no copy on the way in or out of kernels); kernels are C++ (kernels/cpu), compiled
 * once per instruction set and picked by cpuid at load, running on a thread pool sized to the
 * cores (`KILN_NUM_THREADS` or {@link setNumThreads}).
 * @module
 */
import type {
  AttentionArgs,
  Backend,
  BinaryOp,
  CopyArgs,
  IndexArgs,
  KernelFamily,
  MatmulArgs,
  OptimizerArgs,
  RandomDist,
  ReduceOp,
  Storage,
  UnaryOp,
} from '../backend.js';
import { itemSize, type DType, type StorageArray } from '../dtype.js';
import { loadAddon, type Addon, type NativeBuffer, type NativeCapabilities } from './addon.js';

const DTYPE_CODE: Record<DType, number> = { f32: 0, f64: 1, i32: 2, bf16: 3, f16: 4, bool: 5 };

// The enum orders of kernels/cpu/kernels.h.
const UNARY: UnaryOp[] = ['neg', 'abs', 'sign', 'exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'gelu', 'gelu_tanh', 'silu', 'erf', 'floor', 'ceil', 'round', 'isfinite'];
const BINARY: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or'];
const REDUCE: ReduceOp[] = ['sum', 'max', 'min', 'argmax', 'argmin'];
const DIST = { uniform: 0, normal: 1, randint: 2 } as const;

/** A native storage: the buffer and a typed view of it. */
export class CpuStorage implements Storage {
  constructor(
    readonly dtype: DType,
    readonly size: number,
    readonly buf: NativeBuffer,
    readonly view: StorageArray,
  ) {}
}

function view(dtype: DType, buf: ArrayBuffer, size: number): StorageArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array(buf, 0, size);
    case 'f64':
      return new Float64Array(buf, 0, size);
    case 'i32':
      return new Int32Array(buf, 0, size);
    case 'bf16':
    case 'f16':
      return new Uint16Array(buf, 0, size);
    case 'bool':
      return new Uint8Array(buf, 0, size);
  }
}

const b = (s: Storage | null | undefined): NativeBuffer | null => (s ? (s as CpuStorage).buf : null);
const code = (d: DType): number => DTYPE_CODE[d];

type Kernel = (...args: unknown[]) => void;

/** Bytes of freed storage the cpu backend keeps for reuse (KILN_CPU_CACHE_MB overrides; 0 disables). */
const CACHE_LIMIT = Number(process.env.KILN_CPU_CACHE_MB ?? 1024) * 2 ** 20;

// Sizes are rounded up so that buffers of nearby sizes can be reused for one another.
function bucket(bytes: number): number {
  if (bytes <= 4096) return Math.max(64, Math.ceil(bytes / 64) * 64);
  if (bytes <= 2 ** 20) return Math.ceil(bytes / 4096) * 4096;
  return Math.ceil(bytes / 2 ** 16) * 2 ** 16;
}

export class CpuBackend implements Backend {
  readonly name = 'cpu';
  private readonly k: Record<string, Kernel>;
  // A caching allocator (as PyTorch's): freed buffers wait here, by size, for the next
  // allocation of that size. A training step allocates the same sizes every time, so after the
  // first step no new native memory (and no new ArrayBuffer) is made.
  private readonly cache = new Map<number, NativeBuffer[]>();
  private cachedBytes = 0;

  constructor(private readonly addon: Addon) {
    this.k = addon as unknown as Record<string, Kernel>;
  }

  /** Release every cached buffer to the system (like `torch.cuda.empty_cache`). */
  emptyCache(): void {
    for (const list of this.cache.values()) for (const buf of list) this.addon.free(buf);
    this.cache.clear();
    this.cachedBytes = 0;
  }

  /** Bytes held in the cache of freed buffers. */
  get cacheBytes(): number {
    return this.cachedBytes;
  }

  /** What the addon reports: instruction set, threads, CUDA. */
  capabilities(): NativeCapabilities {
    return this.addon.capabilities();
  }

  alloc(dtype: DType, size: number): Storage {
    const bytes = bucket(size * itemSize(dtype));
    const reused = this.cache.get(bytes)?.pop();
    if (reused) this.cachedBytes -= bytes;
    const buf = reused ?? this.addon.alloc(bytes);
    return new CpuStorage(dtype, size, buf, view(dtype, buf, size));
  }

  free(s: Storage): void {
    const buf = (s as CpuStorage).buf;
    const bytes = buf.byteLength;
    if (this.cachedBytes + bytes > CACHE_LIMIT) {
      this.addon.free(buf);
      return;
    }
    let list = this.cache.get(bytes);
    if (!list) this.cache.set(bytes, (list = []));
    list.push(buf);
    this.cachedBytes += bytes;
  }

  write(s: Storage, data: StorageArray): void {
    (s as CpuStorage).view.set(data);
  }

  read(s: Storage): Promise<StorageArray> {
    return Promise.resolve(this.readSync(s));
  }

  readSync(s: Storage): StorageArray {
    return (s as CpuStorage).view.slice();
  }

  computes(family: KernelFamily, dtype: DType): boolean {
    if (dtype === 'f32' || dtype === 'f64') return true;
    if (dtype === 'bf16') return family === 'matmul';
    return (family === 'elementwise' || family === 'reduce') && (dtype === 'i32' || dtype === 'bool');
  }

  fill(out: Storage, value: number): void {
    this.k.fill!(b(out), code(out.dtype), out.size, value);
  }

  random(out: Storage, dist: RandomDist, seed: number, offset: number): void {
    const [p0, p1] = dist.kind === 'normal' ? [dist.mean, dist.std] : [dist.low, dist.high];
    this.k.random!(b(out), code(out.dtype), out.size, DIST[dist.kind], p0, p1, seed, offset);
  }

  cast(x: Storage, out: Storage): void {
    this.k.cast!(b(x), code(x.dtype), b(out), code(out.dtype), out.size);
  }

  copy(a: CopyArgs): void {
    this.k.copy!(b(a.src), a.srcOffset, b(a.dst), a.dstOffset, code(a.src.dtype), a.shape, a.srcStrides, a.dstStrides);
  }

  unary(op: UnaryOp, x: Storage, out: Storage): void {
    this.k.unary!(UNARY.indexOf(op), b(x), b(out), code(x.dtype), out.size);
  }

  unaryGrad(op: UnaryOp, x: Storage, dy: Storage, out: Storage): void {
    this.k.unaryGrad!(UNARY.indexOf(op), b(x), b(dy), b(out), code(x.dtype), out.size);
  }

  binary(op: BinaryOp, a: Storage, aStrides: readonly number[], bb: Storage, bStrides: readonly number[], out: Storage, shape: readonly number[]): void {
    this.k.binary!(BINARY.indexOf(op), b(a), b(bb), b(out), code(a.dtype), shape, aStrides, bStrides);
  }

  where(
    cond: Storage,
    condStrides: readonly number[],
    a: Storage,
    aStrides: readonly number[],
    bb: Storage,
    bStrides: readonly number[],
    out: Storage,
    shape: readonly number[],
  ): void {
    this.k.where!(b(cond), b(a), b(bb), b(out), code(out.dtype), shape, condStrides, aStrides, bStrides);
  }

  reduce(op: ReduceOp, x: Storage, outer: number, r: number, inner: number, out: Storage): void {
    this.k.reduce!(REDUCE.indexOf(op), b(x), code(x.dtype), outer, r, inner, b(out));
  }

  matmul(p: MatmulArgs): void {
    this.k.matmul!(b(p.a), b(p.b), b(p.out), b(p.bias), code(p.dtype), p.batchShape, p.aBatchStrides, p.bBatchStrides, p.m, p.n, p.k, p.transA, p.transB, 0);
  }

  private indexArgs(p: IndexArgs): unknown[] {
    return [b(p.index), p.indexStrides[0], p.indexStrides[1], p.indexStrides[2], p.outer, p.srcDim, p.n, p.inner, code(p.dtype)];
  }

  gather(x: Storage, out: Storage, p: IndexArgs): void {
    this.k.gather!(b(x), b(out), ...this.indexArgs(p));
  }

  scatterAdd(dst: Storage, src: Storage, p: IndexArgs): void {
    this.k.scatterAdd!(b(dst), b(src), ...this.indexArgs(p));
  }

  softmax(x: Storage, out: Storage, rows: number, cols: number, log: boolean): void {
    this.k.softmax!(b(x), b(out), code(x.dtype), rows, cols, log);
  }

  layerNorm(x: Storage, w: Storage | null, bias: Storage | null, out: Storage, mean: Storage, rstd: Storage, rows: number, cols: number, eps: number, rms: boolean): void {
    this.k.layerNorm!(b(x), b(w), b(bias), b(out), b(mean), b(rstd), code(x.dtype), rows, cols, eps, rms);
  }

  layerNormBackward(dy: Storage, x: Storage, w: Storage | null, mean: Storage, rstd: Storage, dx: Storage, dw: Storage | null, db: Storage | null, rows: number, cols: number, rms: boolean): void {
    this.k.layerNormBackward!(b(dy), b(x), b(w), b(mean), b(rstd), b(dx), b(dw), b(db), code(x.dtype), rows, cols, rms);
  }

  crossEntropy(logits: Storage, targets: Storage, loss: Storage, lse: Storage, rows: number, classes: number, ignoreIndex: number, smoothing: number): void {
    this.k.crossEntropy!(b(logits), b(targets), b(loss), b(lse), code(logits.dtype), rows, classes, ignoreIndex, smoothing);
  }

  crossEntropyBackward(logits: Storage, targets: Storage, lse: Storage, dloss: Storage, dlogits: Storage, rows: number, classes: number, ignoreIndex: number, smoothing: number): void {
    this.k.crossEntropyBackward!(b(logits), b(targets), b(lse), b(dloss), b(dlogits), code(logits.dtype), rows, classes, ignoreIndex, smoothing);
  }

  private optimizerArgs(a: OptimizerArgs): unknown[] {
    return [b(a.param), b(a.grad), b(a.m), b(a.v), a.param.size, code(a.param.dtype), a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.step, a.decoupled ?? true, a.biasCorrection ?? true];
  }

  adamUpdate(a: OptimizerArgs): void {
    this.k.adamUpdate!(...this.optimizerArgs(a));
  }

  lambUpdate(a: OptimizerArgs): number {
    return (this.k.lambUpdate as unknown as (...args: unknown[]) => number)(...this.optimizerArgs(a));
  }

  private attentionArgs(p: AttentionArgs): unknown[] {
    return [b(p.q), b(p.k), b(p.v), b(p.mask), p.mask?.dtype === 'bool', p.maskBatchStride ?? 0, p.batch, p.tq, p.tk, p.d, p.dv, p.scale, p.causal, code(p.dtype)];
  }

  attention(p: AttentionArgs, out: Storage, lse: Storage): void {
    this.k.attention!(...this.attentionArgs(p), b(out), b(lse));
  }

  attentionBackward(p: AttentionArgs, out: Storage, lse: Storage, dout: Storage, dq: Storage, dk: Storage, dv: Storage): void {
    this.k.attentionBackward!(...this.attentionArgs(p), b(out), b(lse), b(dout), b(dq), b(dk), b(dv));
  }
}

/** Load the `cpu` backend, or say why it is unavailable. */
export function loadCpuBackend(): Backend | { unavailable: string } {
  const addon = loadAddon();
  if ('unavailable' in addon) return addon;
  return new CpuBackend(addon);
}

/** Threads the `cpu` backend's kernels use (0 when the addon is not loaded). */
export function getNumThreads(): number {
  const addon = loadAddon();
  return 'unavailable' in addon ? 0 : addon.numThreads();
}

/** Set the `cpu` backend's thread count (default: the cores, or `KILN_NUM_THREADS`). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`setNumThreads: expected a positive integer, got ${n}`);
  const addon = loadAddon();
  if ('unavailable' in addon) throw new Error(`setNumThreads: the cpu backend is not available: ${addon.unavailable}`);
  addon.setNumThreads(n);
}

/** The native addon's capability report, or why there is none. */
export function nativeCapabilities(): NativeCapabilities | { unavailable: string } {
  const addon = loadAddon();
  return 'unavailable' in addon ? addon : addon.capabilities();
}
