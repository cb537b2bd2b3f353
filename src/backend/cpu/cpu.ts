/**
 * `cpu`: the native backend. Storage is 64-byte-aligned native memory seen from JS as an
 * ArrayBuffer (no copy on the way in or out of kernels); kernels are C++ (kernels/cpu), compiled
 * once per instruction set and picked by cpuid at load, running on a thread pool sized to the
 * cores (`KILN_NUM_THREADS` or {@link setNumThreads}). Kernels finish before their call returns,
 * so reads can be synchronous; faults still wait for the next read or sync.
 * @module
 */
import { constants } from 'node:buffer';
import type { Backend, KernelFamily, KernelName, Storage } from '../backend.js';
import { DTYPES, itemSize, storageArray, type DType, type StorageArray } from '../dtype.js';
import { FaultLatch, settled } from '../faults.js';
import { PRIORITY, type BackendEntry } from '../registry.js';
import { findAddon, loadAddon, type Addon, type NativeBuffer, type NativeCapabilities } from './addon.js';
import { NativeKernels } from './marshal.gen.js';
import { checkNumber } from '../../tensor/validate.js';

/** A native storage: the buffer and a typed view of it. */
export class CpuStorage implements Storage {
  constructor(
    readonly dtype: DType,
    readonly size: number,
    readonly buf: NativeBuffer,
    readonly view: StorageArray,
  ) {}
}

const MAX_LENGTH = constants.MAX_LENGTH;
/** The most threads the pool takes (KILN_NUM_THREADS, setNumThreads). */
const MAX_THREADS = 1024;

/** Bytes of freed storage the cpu backend keeps for reuse (KILN_CPU_CACHE_MB overrides; 0 disables). */
const CACHE_LIMIT = Number(process.env.KILN_CPU_CACHE_MB ?? 1024) * 2 ** 20;

// Sizes are rounded up so that buffers of nearby sizes can be reused for one another.
function bucket(bytes: number): number {
  if (bytes <= 4096) return Math.max(64, Math.ceil(bytes / 64) * 64);
  if (bytes <= 2 ** 20) return Math.ceil(bytes / 4096) * 4096;
  return Math.ceil(bytes / 2 ** 16) * 2 ** 16;
}

export class CpuBackend extends NativeKernels implements Backend {
  readonly name = 'cpu';
  readonly dtypes: readonly DType[] = DTYPES;
  private readonly faults = new FaultLatch();
  // A caching allocator (as PyTorch's): freed buffers wait here, by size, for the next
  // allocation of that size. A training step allocates the same sizes every time, so after the
  // first step no new native memory (and no new ArrayBuffer) is made.
  private readonly cache = new Map<number, NativeBuffer[]>();
  private cachedBytes = 0;
  private computeDtypes: Record<string, string[]> | undefined;

  private readonly cacheLimit: number;

  /** `opts.cacheLimit`: bytes of freed storage kept for reuse (default KILN_CPU_CACHE_MB, 1 GiB). */
  constructor(
    private readonly addon: Addon,
    opts: { cacheLimit?: number } = {},
  ) {
    super(addon);
    this.cacheLimit = opts.cacheLimit ?? CACHE_LIMIT;
  }

  /** Release every cached buffer to the system (like `torch.cuda.empty_cache`). */
  emptyCache(): void {
    for (const list of this.cache.values()) for (const buf of list) this.addon.free(buf);
    this.cache.clear();
    this.cachedBytes = 0;
  }

  /**
   * The storage's own memory as a typed array (the StorageArray layout: halves as bits), for
   * handing to a native library without a copy (MPI's collectives). Writes through it are seen by
   * the kernels; work runs at once here, so there is nothing to wait for.
   */
  hostView(s: Storage): StorageArray {
    return (s as CpuStorage).view;
  }

  /** Bytes held in the cache of freed buffers. */
  get cacheBytes(): number {
    return this.cachedBytes;
  }

  /** What the addon reports: instruction set, threads, CUDA. */
  capabilities(): NativeCapabilities {
    return this.addon.capabilities();
  }

  protected handle(s: Storage | null): unknown {
    return s ? (s as CpuStorage).buf : null;
  }

  protected fault(_kernel: KernelName, op: string, r: readonly [number, number, number], message?: string): void {
    this.faults.record(r[0], op, r[1], r[2], message);
  }

  maxElements(dtype: DType): number {
    // Node's longest ArrayBuffer, less the allocator's size-class rounding
    return Math.floor((MAX_LENGTH - 2 ** 16) / itemSize(dtype));
  }

  alloc(dtype: DType, size: number): Storage {
    const bytes = bucket(size * itemSize(dtype));
    const reused = this.cache.get(bytes)?.pop();
    if (reused) this.cachedBytes -= bytes;
    const buf = reused ?? this.addon.alloc(bytes);
    return new CpuStorage(dtype, size, buf, storageArray(dtype, size, buf));
  }

  free(s: Storage): void {
    const buf = (s as CpuStorage).buf;
    const bytes = buf.byteLength;
    if (bytes > this.cacheLimit) {
      this.addon.free(buf);
      return;
    }
    // the size freed last is the one most likely wanted next: sizes are kept in the order they
    // were last freed, and when the cache is full the sizes freed longest ago go first (shapes
    // that vary, as batches of varying length, would otherwise fill it with sizes never reused)
    let list = this.cache.get(bytes);
    if (list) this.cache.delete(bytes);
    else list = [];
    this.cache.set(bytes, list);
    for (const [size, old] of this.cache) {
      if (this.cachedBytes + bytes <= this.cacheLimit) break;
      while (old.length && this.cachedBytes + bytes > this.cacheLimit) {
        this.addon.free(old.pop()!);
        this.cachedBytes -= size;
      }
      if (!old.length && old !== list) this.cache.delete(size);
    }
    list.push(buf);
    this.cachedBytes += bytes;
  }

  write(s: Storage, data: StorageArray): void {
    (s as CpuStorage).view.set(data);
  }

  read(s: Storage): Promise<StorageArray> {
    return settled(() => this.readSync(s));
  }

  readSync(s: Storage): StorageArray {
    this.faults.throwIfAny();
    return (s as CpuStorage).view.slice();
  }

  flush(): void {}

  sync(): Promise<void> {
    return settled(() => this.faults.throwIfAny());
  }

  /** What the running kernel table computes in natively, as the addon reports it. */
  computes(family: KernelFamily, dtype: DType): boolean {
    this.computeDtypes ??= this.addon.capabilities().computes;
    return this.computeDtypes[family]?.includes(dtype) ?? false;
  }
}

/** The registry entry of `cpu`: probes for the built addon, creates the backend at once. */
export function cpuEntry(): BackendEntry {
  return {
    name: 'cpu',
    priority: PRIORITY.cpu,
    probe: () => {
      const found = findAddon();
      return 'unavailable' in found ? found.unavailable : null;
    },
    create: () => {
      // the pool reads KILN_NUM_THREADS when it starts: a value it cannot use is an error, not ignored
      const env = process.env.KILN_NUM_THREADS;
      if (env !== undefined && !(/^\d+$/.test(env.trim()) && Number(env) >= 1 && Number(env) <= MAX_THREADS))
        throw new Error(`KILN_NUM_THREADS must be an integer in [1, ${MAX_THREADS}], got '${env}'`);
      const addon = loadAddon();
      if ('unavailable' in addon) throw new Error(addon.unavailable);
      return new CpuBackend(addon);
    },
  };
}

/** Threads the `cpu` backend's kernels use (0 when the addon is not loaded). */
export function getNumThreads(): number {
  const addon = loadAddon();
  return 'unavailable' in addon ? 0 : addon.numThreads();
}

/** Set the `cpu` backend's thread count (default: the cores, or `KILN_NUM_THREADS`). */
export function setNumThreads(n: number): void {
  checkNumber('setNumThreads', 'n', n, { integer: true, min: 1, max: MAX_THREADS });
  const addon = loadAddon();
  if ('unavailable' in addon) throw new Error(`setNumThreads: the cpu backend is not available: ${addon.unavailable}`);
  addon.setNumThreads(n);
}

/** The native addon's capability report, or why there is none. */
export function nativeCapabilities(): NativeCapabilities | { unavailable: string } {
  const addon = loadAddon();
  return 'unavailable' in addon ? addon : addon.capabilities();
}
