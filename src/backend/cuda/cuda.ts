/**
 * The `cuda` backend: kiln's CUDA kernels (kernels/cuda) in the same native addon as the `cpu`
 * backend, compiled in when nvcc is found at install, on `addon.cuda`. A storage is a block of
 * device memory from the addon's caching allocator, named by its address (a BigInt); the kernels
 * run in call order on one stream; `read` and `sync` are the only waits (a worker thread waits on
 * an event, so Node's event loop keeps turning). A kernel that finds bad data records a fault on
 * the device, tagged with the call: the next read or sync reports it as an Error naming the
 * public op, as the Backend contract says. Out of memory is an Error naming the op, the request
 * and what is in use, after the cache was emptied and the allocation retried.
 * @module
 */
import type { Backend, KernelFamily, KernelName, Storage } from '../backend.js';
import { DTYPES, itemSize, storageArray, type DType, type StorageArray } from '../dtype.js';
import { FaultLatch } from '../faults.js';
import { FAULTING_KERNELS } from '../ops.gen.js';
import { PRIORITY, type BackendEntry } from '../registry.js';
import { findAddon, loadAddon } from '../cpu/addon.js';
import { NativeKernels, type NativeKernelFns } from '../cpu/marshal.gen.js';

/** The device the backend runs on (`cudaGetDeviceProperties`). */
export interface CudaDeviceInfo {
  device: number;
  name: string;
  major: number;
  minor: number;
  multiprocessors: number;
  totalMemory: number;
}

/** The caching allocator's statistics, in bytes and counts. */
export interface CudaMemoryStats {
  allocated: number;
  reserved: number;
  cached: number;
  peakAllocated: number;
  deviceAllocs: number;
  deviceFrees: number;
  cacheHits: number;
  oomRetries: number;
  blocks: number;
}

/** A device-side fault as a read reports it: [code, value, limit, tag]. */
type DeviceFault = [number, number, number, number];

/** `addon.cuda`: the runtime (native/cuda/addon_cuda.cc) and one function per kernel (native/cuda/bindings.gen.cc). */
export interface CudaAddon extends NativeKernelFns {
  init(device: number): CudaDeviceInfo;
  alloc(bytes: number, op: string): bigint;
  free(address: bigint): void;
  write(address: bigint, data: ArrayBufferView): void;
  memset(address: bigint, byte: number): void;
  read(address: bigint, bytes: number): Promise<[ArrayBuffer, DeviceFault | null]>;
  sync(): Promise<[ArrayBuffer, DeviceFault | null]>;
  memoryStats(): CudaMemoryStats;
  emptyCache(): void;
  computes(): Record<string, string[]>;
  setFaultTag(tag: number): void;
  setAllowTf32(on: boolean): void;
}

/** A cuda storage: one block of device memory. */
export class CudaStorage implements Storage {
  freed = false;
  constructor(
    readonly dtype: DType,
    readonly size: number,
    readonly address: bigint,
  ) {}
}

/** Tags of faulting calls kept for naming a fault; older ones are dropped (a fault is read within a step). */
const MAX_TAGS = 1 << 16;

export class CudaBackend extends NativeKernels implements Backend {
  readonly name = 'cuda';
  readonly dtypes: readonly DType[] = DTYPES;
  private readonly faults = new FaultLatch();
  // the public op (and message) of each faulting call, by the tag its kernel records
  private readonly tags = new Map<number, { op: string; message?: string }>();
  private nextTag = 1;
  private computeDtypes: Record<string, string[]> | undefined;
  private poison = false;

  constructor(
    private readonly cuda: CudaAddon,
    /** The device, as `cudaGetDeviceProperties` reports it. */
    readonly device: CudaDeviceInfo,
  ) {
    super(cuda);
    // faulting kernels: tag the call first, so a fault found later names its op
    for (const k of FAULTING_KERNELS) {
      const run = (this as unknown as Record<KernelName, (a: { op: string; message?: string }) => void>)[k].bind(this);
      (this as unknown as Record<string, unknown>)[k] = (a: { op: string; message?: string }) => {
        this.tag(a.op, a.message);
        run(a);
      };
    }
  }

  private tag(op: string, message?: string): void {
    const t = this.nextTag;
    this.nextTag = t >= 2 ** 30 ? 1 : t + 1;
    this.tags.set(t, message === undefined ? { op } : { op, message });
    if (this.tags.size > MAX_TAGS) this.tags.delete(this.tags.keys().next().value!);
    this.cuda.setFaultTag(t);
  }

  private take(f: DeviceFault | null): void {
    if (!f) return;
    const [code, value, limit, tag] = f;
    const call = this.tags.get(tag) ?? { op: 'a cuda kernel' };
    this.faults.record(code, call.op, value, limit, call.message);
  }

  protected handle(s: Storage | null): unknown {
    if (!s) return null;
    const c = s as CudaStorage;
    if (c.freed) throw new Error('cuda: a kernel was given a freed storage (a use after free above the Backend contract)');
    return c.address;
  }

  // the CUDA kernels never return a fault to the host: they record it on the device (see take)
  protected fault(_kernel: KernelName, op: string, r: readonly [number, number, number], message?: string): void {
    this.faults.record(r[0], op, r[1], r[2], message);
  }

  maxElements(dtype: DType): number {
    return Math.floor(Math.min(this.device.totalMemory, 2 ** 53) / itemSize(dtype));
  }

  alloc(dtype: DType, size: number): Storage {
    const s = new CudaStorage(dtype, size, this.cuda.alloc(size * itemSize(dtype), 'alloc'));
    if (this.poison) this.cuda.memset(s.address, 0xff); // NaN in every float dtype, −1 in i32
    return s;
  }

  /** For kernel tests: every new storage starts as all-ones bytes (NaN), so an output a kernel fails to write shows. */
  poisonAllocations(on: boolean): void {
    this.poison = on === true;
  }

  free(s: Storage): void {
    const c = s as CudaStorage;
    if (c.freed) return;
    c.freed = true;
    this.cuda.free(c.address); // stream-ordered: kernels queued before still read it first
  }

  write(s: Storage, data: StorageArray): void {
    this.cuda.write(this.handle(s) as bigint, data);
  }

  async read(s: Storage): Promise<StorageArray> {
    const c = s as CudaStorage;
    const [buf, f] = await this.cuda.read(this.handle(c) as bigint, c.size * itemSize(c.dtype));
    this.take(f);
    this.faults.throwIfAny();
    return storageArray(c.dtype, c.size, buf);
  }

  flush(): void {}

  async sync(): Promise<void> {
    const [, f] = await this.cuda.sync();
    this.take(f);
    this.faults.throwIfAny();
  }

  computes(family: KernelFamily, dtype: DType): boolean {
    this.computeDtypes ??= this.cuda.computes();
    return this.computeDtypes[family]?.includes(dtype) ?? false;
  }

  /** The caching allocator's statistics (`torch.cuda.memory_stats`). */
  memoryStats(): CudaMemoryStats {
    return this.cuda.memoryStats();
  }

  /** Release every cached block to the device (`torch.cuda.empty_cache`). */
  emptyCache(): void {
    this.cuda.emptyCache();
  }

  /** Let f32 matmuls use TF32 tensor cores (`torch.backends.cuda.matmul.allow_tf32`; default false: exact f32). */
  setAllowTf32(on: boolean): void {
    if (typeof on !== 'boolean') throw new Error(`cuda.setAllowTf32: expected true or false, got ${String(on)}`);
    this.cuda.setAllowTf32(on);
  }
}

/** Why there is no cuda backend here, or null when there is one (the addon, compiled with CUDA, and a device). */
function cudaUnavailable(): string | null {
  const found = findAddon();
  if ('unavailable' in found) return found.unavailable;
  const addon = loadAddon();
  if ('unavailable' in addon) return addon.unavailable;
  const c = addon.capabilities().cuda;
  if (!c.compiled) return 'the native addon was built without CUDA (no nvcc at install)';
  if (c.devices === 0) return c.error || 'no CUDA device';
  if (!(addon as unknown as { cuda?: unknown }).cuda) return 'the native addon has no cuda bindings';
  return null;
}

/** The registry entry of `cuda`: device 0 (`KILN_CUDA_DEVICE` picks another). */
export function cudaEntry(): BackendEntry {
  return {
    name: 'cuda',
    priority: PRIORITY.cuda,
    probe: cudaUnavailable,
    create: () => {
      const why = cudaUnavailable();
      if (why) throw new Error(`cuda: ${why}`);
      const addon = loadAddon() as unknown as { cuda: CudaAddon };
      const env = process.env.KILN_CUDA_DEVICE ?? '0';
      if (!/^\d+$/.test(env.trim())) throw new Error(`KILN_CUDA_DEVICE must be a device number, got '${env}'`);
      return new CudaBackend(addon.cuda, addon.cuda.init(Number(env)));
    },
  };
}
