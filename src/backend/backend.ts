/**
 * The contract between kiln's tensors and the code that owns memory and runs kernels, written
 * for a GPU: work is queued, only reads wait, and nothing above this file may assume otherwise.
 *
 * A backend is storage plus the kernels of {@link Kernels} (generated from the one op table,
 * kernels/ops.mjs, with each kernel's semantics). Everything above this file (shapes,
 * broadcasting, dtype promotion, validation, autograd) is done in TypeScript once, so a kernel
 * receives only what it needs: storages, sizes, strides and dtypes already checked.
 *
 * **Asynchrony and order.** A kernel call enqueues work (on a CUDA stream, a WebGPU queue, or
 * runs at once on a CPU) and returns. Work runs in call order: a kernel sees the results of every
 * kernel called before it. {@link Backend.write} is ordered the same way: a write never overtakes
 * a kernel queued before it, and the data is taken at the call (the caller may reuse its array).
 * {@link Backend.free} may be called while queued work still reads the storage: the backend
 * releases the memory only after that work is done (or never reuses it before). Only
 * {@link Backend.read} and {@link Backend.sync} wait; {@link Backend.flush} submits queued work
 * without waiting (a GPU backend batches kernels and submits on flush, read or sync).
 *
 * **No host values from kernels.** Every result, scalars included (LAMB's trust ratios, a
 * gradient norm), is written to storage, so a training step runs without a sync.
 *
 * **Faults.** Kernels never throw for bad data they find (an embedding id out of range, a target
 * outside the classes): they skip the bad element, never reading or writing out of bounds, and
 * report a fault (ops.gen.ts FAULTS). The first fault since the last read or sync becomes an
 * Error, naming the public op, thrown by the next {@link Backend.read} or {@link Backend.sync}.
 * Kernels may throw only for failures of their own (out of device memory, a lost device).
 *
 * **Dtypes.** {@link Backend.dtypes} lists the element types a backend stores (WebGPU has no
 * f64). How it stores them is its own business (bool and halves may be stored wider); `write`
 * and `read` always exchange the layout of {@link StorageArray}: bool one byte, halves 16-bit
 * patterns. Per kernel family, {@link Backend.computes} says which dtypes it computes in; the
 * tensor layer runs other float dtypes through f32 (casting in and rounding back).
 *
 * **Layout.** Every storage is a dense array of `size` elements of one dtype. Tensors are
 * row-major and contiguous; kernels that take strides (copy, binary, where, attention) read and
 * write views of storages through them (in elements).
 *
 * **Exactness.** Backends agree bit for bit only on Philox words (so integer draws and dropout
 * masks), casts and copies; everything else agrees with the reference backend within stated
 * per-dtype tolerances (test/harness.ts `tol`). No backend copies another's libm.
 *
 * @module
 */
import type { DType, StorageArray } from './dtype.js';
import type { KernelFamily, Kernels } from './ops.gen.js';

export type {
  Kernels,
  KernelName,
  KernelFamily,
  UnaryOp,
  BinaryOp,
  ReduceOp,
  RandomDist,
  Activation,
  FillArgs,
  RandomArgs,
  CastArgs,
  CopyArgs,
  UnaryArgs,
  UnaryGradArgs,
  BinaryArgs,
  WhereArgs,
  GatherArgs,
  ScatterAddArgs,
  CheckArgs,
  ReduceArgs,
  MatmulArgs,
  MatmulInt8Args,
  SoftmaxArgs,
  LayerNormArgs,
  LayerNormBackwardArgs,
  CrossEntropyArgs,
  CrossEntropyBackwardArgs,
  AttentionArgs,
  AttentionBackwardArgs,
  MultiNormArgs,
  MultiScaleArgs,
  AdamUpdateArgs,
  LambUpdateArgs,
} from './ops.gen.js';

/** Opaque handle to a backend's memory. Only the backend that made it looks inside. */
export interface Storage {
  /** Element count. */
  readonly size: number;
  readonly dtype: DType;
}

/**
 * A compute backend: storage, queue control and the {@link Kernels}. Implement it, register it
 * with `registerBackend`, and the whole test suite runs against it.
 */
export interface Backend extends Kernels {
  /** Registry name: `ref`, `cpu`, `cuda`, `webgpu`. */
  readonly name: string;
  /**
   * The preference of this backend once created, when it differs from its registry entry's: a
   * WebGPU device on a CPU driver (lavapipe, SwiftShader) ranks below the native cpu backend.
   */
  readonly priority?: number;
  /** The dtypes this backend can store. Creating a tensor of another dtype on it is an Error. */
  readonly dtypes: readonly DType[];
  /**
   * Asynchronous set-up (a GPU adapter and device), awaited by the registry before first use.
   * Backends that need none leave it out.
   */
  init?(): Promise<void>;

  // ---- storage -------------------------------------------------------------------------

  /**
   * The most elements of `dtype` one storage can hold (an addressing limit, such as Node's 4 GiB
   * ArrayBuffers or a GPU's largest buffer binding). The tensor layer checks every allocation
   * against it first, so an oversized tensor is an Error naming the op, never a crash.
   */
  maxElements(dtype: DType): number;
  /** Allocate `size` elements of `dtype` (one of {@link Backend.dtypes}), contents unspecified. */
  alloc(dtype: DType, size: number): Storage;
  /** Release a storage once the work queued before this call is done. The handle is not used again. */
  free(s: Storage): void;
  /** Queue a copy of raw elements ({@link StorageArray} layout) into `s` from element 0; `data` is taken at the call. */
  write(s: Storage, data: StorageArray): void;
  /** Raw elements of `s` once all work queued before this call is done; rejects with the first pending fault. */
  read(s: Storage): Promise<StorageArray>;
  /** Synchronous {@link Backend.read}, where memory is host-visible and work runs at once; absent otherwise. */
  readSync?(s: Storage): StorageArray;
  /** Submit queued work without waiting for it. */
  flush(): void;
  /** Wait for all queued work; rejects with the first pending fault. */
  sync(): Promise<void>;

  /** Whether `family` kernels compute natively in `dtype` (others are run in f32 by the caller). */
  computes(family: KernelFamily, dtype: DType): boolean;
}
