/**
 * The contract between kiln's tensors and the code that owns memory and runs kernels.
 *
 * A backend is storage plus a short list of kernels. Everything above this file (shapes,
 * broadcasting, dtype promotion, validation, autograd) is done in TypeScript once, so a kernel
 * receives only what it needs to run: storages, sizes, strides and dtypes that have already been
 * checked. A kernel never validates and never throws for user errors; it may throw only for a
 * failure of its own (out of device memory, a lost device).
 *
 * Work may be asynchronous. A kernel call enqueues work (on a CUDA stream, a WebGPU queue or
 * a CPU thread pool) and returns at once; calls are executed in the order they were made, so a
 * kernel always sees the results of the kernels called before it. Only {@link Backend.read}
 * waits. Memory is owned by the backend and may live off the JS heap: tensors hold opaque
 * {@link Storage} handles and release them with {@link Backend.free}.
 *
 * Element layout: every storage is a dense array of `size` elements of one dtype. Tensors in
 * kiln are row-major and contiguous; views with other layouts are produced by {@link Backend.copy}
 * with explicit strides (in elements). `bool` is one byte per element; `bf16`/`f16` are 16-bit.
 *
 * Compute dtypes: a backend lists, per kernel family, which dtypes it computes in
 * ({@link Backend.computes}). The tensor layer casts inputs of any other float dtype to `f32`,
 * calls the kernel, and casts the result back (so `bf16` and `f16` work everywhere as storage
 * types, and a backend can later add native half kernels without any change above it).
 *
 * @module
 */
import type { DType, StorageArray } from './dtype.js';

/** Opaque handle to a backend's memory. Only the backend that made it looks inside. */
export interface Storage {
  /** Element count. */
  readonly size: number;
  readonly dtype: DType;
}

/** Elementwise functions of one argument. */
export type UnaryOp =
  | 'neg'
  | 'abs'
  | 'sign'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'sin'
  | 'cos'
  | 'tanh'
  | 'sigmoid'
  | 'relu'
  | 'gelu' // x·Φ(x), with the exact erf
  | 'gelu_tanh' // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
  | 'silu'
  | 'erf'
  | 'floor'
  | 'ceil'
  | 'round'
  | 'isfinite'; // output dtype is bool

/** Elementwise functions of two arguments. Comparisons produce `bool`. */
export type BinaryOp =
  | 'add'
  | 'sub'
  | 'mul'
  | 'div'
  | 'pow'
  | 'maximum'
  | 'minimum'
  | 'eq'
  | 'ne'
  | 'lt'
  | 'le'
  | 'gt'
  | 'ge'
  | 'and'
  | 'or';

/** Reductions along one axis. `argmax`/`argmin` produce `i32` (first index of the extreme; NaN wins). */
export type ReduceOp = 'sum' | 'max' | 'min' | 'argmax' | 'argmin';

/** Families a backend reports compute dtypes for (see {@link Backend.computes}). */
export type KernelFamily =
  | 'elementwise'
  | 'reduce'
  | 'matmul'
  | 'softmax'
  | 'norm'
  | 'crossEntropy'
  | 'attention';

/** Distributions of {@link Backend.random}. */
export type RandomDist =
  | { kind: 'uniform'; low: number; high: number }
  | { kind: 'normal'; mean: number; std: number }
  | { kind: 'randint'; low: number; high: number };

/** Arguments of {@link Backend.copy}: `dst[dstOffset + Σ i_d·dstStrides[d]] = src[srcOffset + Σ i_d·srcStrides[d]]` over `shape`. */
export interface CopyArgs {
  src: Storage;
  srcOffset: number;
  srcStrides: readonly number[];
  dst: Storage;
  dstOffset: number;
  dstStrides: readonly number[];
  shape: readonly number[];
}

/**
 * Arguments of {@link Backend.matmul}: for each batch index b (row-major over `batchShape`),
 * `out[b] = op(a[b]) @ op(b[b]) (+ bias)`, where `op` transposes when asked and
 * `a[b]` starts at `Σ b_d·aBatchStrides[d]` (a stride of 0 broadcasts). `a[b]` is `[m, k]`
 * (stored `[k, m]` when `transA`), `b[b]` is `[k, n]` (stored `[n, k]` when `transB`);
 * `out` is contiguous `[...batchShape, m, n]`. `bias`, when given, has `n` elements.
 */
export interface MatmulArgs {
  a: Storage;
  b: Storage;
  out: Storage;
  dtype: DType;
  batchShape: readonly number[];
  aBatchStrides: readonly number[];
  bBatchStrides: readonly number[];
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  bias?: Storage;
}

/**
 * Arguments of {@link Backend.gather} and {@link Backend.scatterAdd}. Tensors are viewed as
 * `[outer, dim, inner]` (`x`/`dst` with `dim = srcDim`, `out`/`src` with `dim = n`), and the
 * index of element `(o, j, i)` is `index[o·indexStrides[0] + j·indexStrides[1] + i·indexStrides[2]]`
 * (strides of 0 broadcast it: `index_select` passes `[0, 1, 0]`). Indices are in `[0, srcDim)`,
 * which the tensor layer has checked.
 */
export interface IndexArgs {
  index: Storage;
  indexStrides: readonly [number, number, number];
  outer: number;
  srcDim: number;
  n: number;
  inner: number;
  dtype: DType;
}

/** Arguments of the fused attention kernels. q: [B, Tq, D], k: [B, Tk, D], v: [B, Tk, Dv], out: [B, Tq, Dv]. */
export interface AttentionArgs {
  q: Storage;
  k: Storage;
  v: Storage;
  batch: number;
  tq: number;
  tk: number;
  d: number;
  dv: number;
  scale: number;
  /** Query i attends key j only where j ≤ i (top-left aligned, as PyTorch's `is_causal`). */
  causal: boolean;
  /** `bool` (true = attend) or float (added to the scores), `[Bm, Tq, Tk]` with Bm = 1 or B. */
  mask?: Storage;
  /** 0 when one mask serves every batch entry, else Tq·Tk. */
  maskBatchStride?: number;
  dtype: DType;
}

/**
 * Arguments of the fused optimizer updates {@link Backend.adamUpdate} and {@link Backend.lambUpdate}.
 * `param` and `grad` share a float dtype (f32 or f64); `m` and `v` are f32 (or f64 for f64 params),
 * all of `param.size` elements. Updates are in place.
 */
export interface OptimizerArgs {
  param: Storage;
  grad: Storage;
  m: Storage;
  v: Storage;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count, for the bias corrections 1 − βᵗ. */
  step: number;
  /** Adam: weight decay decoupled from the gradient (AdamW, the default) or added to it (L2). */
  decoupled?: boolean;
  /** LAMB: divide the moments by 1 − βᵗ (Algorithm 2 of You et al. 2019 does). */
  biasCorrection?: boolean;
}

/**
 * A compute backend. Implement storage, the kernels below and {@link Backend.computes}; register
 * it with `registerBackend`, and the whole test suite runs against it.
 */
export interface Backend {
  /** Registry name: `ref`, `cpu`, `cuda`, `webgpu`. */
  readonly name: string;

  // ---- storage -------------------------------------------------------------------------

  /** Allocate `size` elements of `dtype`, contents unspecified. */
  alloc(dtype: DType, size: number): Storage;
  /** Release memory. The handle is not used again. */
  free(s: Storage): void;
  /** Copy raw elements (as {@link StorageArray}: halves as 16-bit patterns) into `s` from element 0. */
  write(s: Storage, data: StorageArray): void;
  /** Raw elements of `s`, once every kernel enqueued before this call has finished. */
  read(s: Storage): Promise<StorageArray>;
  /** Synchronous {@link Backend.read}, where the memory is host-visible; absent otherwise. */
  readSync?(s: Storage): StorageArray;

  /** Whether `family` kernels compute natively in `dtype` (others are run in f32 by the caller). */
  computes(family: KernelFamily, dtype: DType): boolean;

  // ---- kernels -------------------------------------------------------------------------

  /** `out[i] = value` for i < out.size. */
  fill(out: Storage, value: number): void;
  /**
   * Fill `out` from the counter-based generator: element i uses Philox4x32-10 with key
   * `seed` (two 32-bit words: low, high) at counter `offset + ⌊i/4⌋`, word i mod 4 (see
   * `philox.ts`, the one definition every backend follows so a seed gives the same numbers
   * everywhere).
   */
  random(out: Storage, dist: RandomDist, seed: number, offset: number): void;
  /** `out[i] = x[i]` converted to out's dtype (halves round to nearest even; floats truncate to i32; bool is x ≠ 0). */
  cast(x: Storage, out: Storage): void;
  /** Strided copy; see {@link CopyArgs}. The regions may not overlap. */
  copy(args: CopyArgs): void;
  /** `out[i] = op(x[i])` for i < out.size; x and out have the same float dtype (out is bool for `isfinite`). */
  unary(op: UnaryOp, x: Storage, out: Storage): void;
  /** `out[i] = dy[i] · op′(x[i])`: the backward of every differentiable {@link UnaryOp}. */
  unaryGrad(op: UnaryOp, x: Storage, dy: Storage, out: Storage): void;
  /**
   * Broadcasting binary op: for every index of `shape` (row-major), `out[idx] = op(a[Σ idx·aStrides], b[Σ idx·bStrides])`.
   * a and b share a dtype; out has it too, or `bool` for comparisons and `and`/`or`.
   */
  binary(
    op: BinaryOp,
    a: Storage,
    aStrides: readonly number[],
    b: Storage,
    bStrides: readonly number[],
    out: Storage,
    shape: readonly number[],
  ): void;
  /** `out[idx] = cond[idx] ? a[idx] : b[idx]` with broadcasting strides as {@link Backend.binary}; cond is bool. */
  where(
    cond: Storage,
    condStrides: readonly number[],
    a: Storage,
    aStrides: readonly number[],
    b: Storage,
    bStrides: readonly number[],
    out: Storage,
    shape: readonly number[],
  ): void;
  /** Reduce x viewed as `[outer, r, inner]` over the middle axis into `out` `[outer, inner]`. r ≥ 1 for max/min/arg*. */
  reduce(op: ReduceOp, x: Storage, outer: number, r: number, inner: number, out: Storage): void;
  /** Batched matrix product; see {@link MatmulArgs}. */
  matmul(args: MatmulArgs): void;
  /** `out[o, j, i] = x[o, index(o, j, i), i]`; see {@link IndexArgs}. */
  gather(x: Storage, out: Storage, args: IndexArgs): void;
  /** `dst[o, index(o, j, i), i] += src[o, j, i]`, accumulating duplicates; see {@link IndexArgs}. */
  scatterAdd(dst: Storage, src: Storage, args: IndexArgs): void;
  /** Softmax (or log-softmax) of each row of `x` `[rows, cols]`. */
  softmax(x: Storage, out: Storage, rows: number, cols: number, log: boolean): void;
  /**
   * Layer norm of each row of `x` `[rows, cols]`: `y = (x − μ)·rstd·w + b` with rstd = 1/√(var + eps)
   * (biased variance). Writes mean and rstd `[rows]` for the backward. w and b are optional.
   * With `rms`, μ is taken as 0 (RMSNorm, and `mean` is left untouched).
   */
  layerNorm(
    x: Storage,
    weight: Storage | null,
    bias: Storage | null,
    out: Storage,
    mean: Storage,
    rstd: Storage,
    rows: number,
    cols: number,
    eps: number,
    rms: boolean,
  ): void;
  /** Backward of {@link Backend.layerNorm}: writes dx, and dWeight/dBias (summed over rows) when given. */
  layerNormBackward(
    dy: Storage,
    x: Storage,
    weight: Storage | null,
    mean: Storage,
    rstd: Storage,
    dx: Storage,
    dWeight: Storage | null,
    dBias: Storage | null,
    rows: number,
    cols: number,
    rms: boolean,
  ): void;
  /**
   * Per-row cross-entropy of `logits` `[rows, classes]` against i32 `targets` `[rows]`:
   * `loss = lse − (1−ε)·x[t] − ε/C·Σ_c x[c]`, 0 where `t == ignoreIndex`. Writes `lse` `[rows]` for the backward.
   */
  crossEntropy(
    logits: Storage,
    targets: Storage,
    loss: Storage,
    lse: Storage,
    rows: number,
    classes: number,
    ignoreIndex: number,
    smoothing: number,
  ): void;
  /** `dlogits = dloss[r]·(softmax(x) − (1−ε)·onehot(t) − ε/C)`, zero rows where ignored. */
  crossEntropyBackward(
    logits: Storage,
    targets: Storage,
    lse: Storage,
    dloss: Storage,
    dlogits: Storage,
    rows: number,
    classes: number,
    ignoreIndex: number,
    smoothing: number,
  ): void;
  /**
   * `out = softmax(q·kᵀ·scale + mask) · v` per batch entry, and `lse` `[B, Tq]` (log-sum-exp of
   * each row of scores, −∞ for a row with nothing to attend, whose output is 0). Fast backends
   * never materialise the `[Tq, Tk]` scores.
   */
  attention(args: AttentionArgs, out: Storage, lse: Storage): void;
  /**
   * Adam/AdamW step over one parameter, in one pass:
   * `g += wd·p` (Adam) or `p −= lr·wd·p` (AdamW); `m = β1·m + (1−β1)·g`; `v = β2·v + (1−β2)·g²`;
   * `p −= lr · (m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε)`.
   */
  adamUpdate(args: OptimizerArgs): void;
  /**
   * LAMB step over one parameter (You et al. 2019): moments as Adam, `r = m̂/(√v̂ + ε) + wd·p`,
   * `p −= lr · φ · r` with the trust ratio `φ = ‖p‖/‖r‖` (1 when either norm is 0). Returns φ.
   */
  lambUpdate(args: OptimizerArgs): number;
  /** Backward of {@link Backend.attention} from `out`, `lse` and `dout`; writes dq, dk, dv. */
  attentionBackward(
    args: AttentionArgs,
    out: Storage,
    lse: Storage,
    dout: Storage,
    dq: Storage,
    dk: Storage,
    dv: Storage,
  ): void;
}
