/**
 * `webgpu`: kiln's kernels in WGSL on any adapter WebGPU reaches: Dawn (the npm package `webgpu`)
 * in Node, `navigator.gpu` in browsers. Work is recorded into one command encoder and submitted
 * on a read, a sync, a flush or a full batch, so a training step costs a handful of submits.
 *
 * Storage: f32, i32, bool, f16 and bf16 (WebGPU has no f64), each element one 32-bit word
 * (bool 0/1, halves their 16-bit pattern), as the contract allows. Floating kernels compute in
 * f32; halves are cast by the tensor layer ({@link WebGPUBackend.computes}).
 * @module
 */
/// <reference types="@webgpu/types" />
import type { Backend, KernelFamily, KernelName, Kernels, Storage } from '../backend.js';
import type { DType, StorageArray } from '../dtype.js';
import { KERNEL_NAMES } from '../ops.gen.js';
import { PRIORITY } from '../registry.js';
import { GpuStorage, Runtime, type RuntimeStats } from './runtime.js';
import { KERNELS } from './kernels/index.js';
import { show } from '../../tensor/validate.js';

const DTYPES: readonly DType[] = ['bool', 'i32', 'bf16', 'f16', 'f32'];

/** The adapter a webgpu backend runs on, as the bench and `kiln info` name it. */
export interface AdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  features: string[];
  /** A CPU implementation (lavapipe, SwiftShader, WARP), not a GPU. */
  software: boolean;
}

export interface WebGPUBackend extends Kernels {}

export class WebGPUBackend implements Backend {
  readonly name: string = 'webgpu';
  readonly dtypes = DTYPES;
  readonly rt: Runtime;
  /** Below the native cpu backend on a CPU driver (lavapipe, SwiftShader), else the entry's. */
  readonly priority: number | undefined;

  /**
   * @param device a GPUDevice
   * @param adapter what the device runs on (for reports)
   * @param keepAlive objects that must live as long as the device (Dawn's `create()` result)
   */
  constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterInfo,
    private readonly keepAlive: unknown = null,
  ) {
    this.rt = new Runtime(device);
    this.priority = adapter.software ? PRIORITY.cpu / 2 : undefined;
    for (const k of KERNEL_NAMES) {
      const run = KERNELS[k] as (rt: Runtime, a: object) => void;
      (this as unknown as Record<KernelName, (a: object) => void>)[k] = (a) => {
        this.rt.alive(k);
        run(this.rt, a);
      };
    }
  }

  maxElements(_dtype: DType): number {
    return Math.floor(this.rt.maxBinding / 4);
  }

  alloc(dtype: DType, size: number): Storage {
    this.rt.alive('alloc');
    if (!DTYPES.includes(dtype)) throw new Error(`webgpu: cannot store ${dtype} (it stores ${DTYPES.join(', ')})`);
    if (size > this.maxElements(dtype)) throw new Error(`webgpu: cannot allocate ${size} elements of ${dtype}: the largest buffer binding holds ${this.maxElements(dtype)}`);
    return new GpuStorage(dtype, size, this.rt.buffer(Math.max(size, 1) * 4));
  }

  free(s: Storage): void {
    const g = live('free', s);
    g.freed = true;
    this.rt.release(g.buffer);
  }

  write(s: Storage, data: StorageArray): void {
    const g = live('write', s);
    if (data.length !== g.size) throw new Error(`webgpu: write of ${data.length} elements into a storage of ${g.size}`);
    this.rt.write(g.buffer, toWords(data));
  }

  async read(s: Storage): Promise<StorageArray> {
    const g = live('read', s);
    this.rt.alive('read');
    const words = (await this.rt.drain(g.buffer, g.size * 4))!;
    return fromWords(words, g.dtype);
  }

  flush(): void {
    this.rt.flush();
  }

  async sync(): Promise<void> {
    this.rt.alive('sync');
    await this.rt.drain(null, 0);
  }

  computes(family: KernelFamily, dtype: DType): boolean {
    if (dtype === 'f32') return true;
    return (family === 'elementwise' || family === 'reduce') && (dtype === 'i32' || dtype === 'bool');
  }

  /** Release the pooled buffers. */
  emptyCache(): void {
    this.rt.emptyCache();
  }

  /** Dispatches, submits, compiled pipelines and buffer bytes since the backend was made. */
  stats(): RuntimeStats {
    return this.rt.memoryStats();
  }

  /** Destroy the device; the backend cannot be used afterwards. */
  destroy(): void {
    this.device.destroy();
    void this.keepAlive;
  }
}

function live(op: string, s: Storage): GpuStorage {
  if (!(s instanceof GpuStorage)) throw new Error(`webgpu: ${op} of a storage of another backend (${show(s)})`);
  if (s.freed) throw new Error(`webgpu: ${op} of a freed storage`);
  return s;
}

/** The storage words of logical elements: 32-bit values as they are, bool and halves widened. */
function toWords(data: StorageArray): Uint32Array {
  if (data instanceof Float32Array || data instanceof Int32Array) return new Uint32Array(data.buffer, data.byteOffset, data.length);
  if (data instanceof Uint8Array || data instanceof Uint16Array) return Uint32Array.from(data);
  throw new Error(`webgpu: cannot store ${data.constructor.name} data`);
}

function fromWords(words: Uint32Array, dtype: DType): StorageArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array(words.buffer.slice(words.byteOffset, words.byteOffset + words.byteLength));
    case 'i32':
      return new Int32Array(words.buffer.slice(words.byteOffset, words.byteOffset + words.byteLength));
    case 'bool':
      return Uint8Array.from(words);
    case 'f16':
    case 'bf16':
      return Uint16Array.from(words);
    default:
      throw new Error(`webgpu: cannot read ${dtype}`);
  }
}

/**
 * Ask `gpu` for an adapter and a device with the adapter's limits and the features kiln uses: the
 * backend, or why there is none.
 */
export async function requestWebGPU(gpu: GPU, keepAlive: unknown = null): Promise<WebGPUBackend | string> {
  if (gpu === null || typeof gpu !== 'object' || typeof (gpu as Partial<GPU>).requestAdapter !== 'function')
    throw new Error(`requestWebGPU: expected a GPU object (navigator.gpu, or the result of Dawn's create()), got ${show(gpu)}`);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return 'no WebGPU adapter was found';
  const L = adapter.limits;
  const wanted = ['shader-f16', 'subgroups', 'timestamp-query'] as GPUFeatureName[];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
      maxBufferSize: L.maxBufferSize,
      maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: L.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupsPerDimension: L.maxComputeWorkgroupsPerDimension,
    },
  });
  const i = adapter.info;
  const names = `${i.vendor} ${i.architecture} ${i.device} ${i.description}`;
  const software = (i as { isFallbackAdapter?: boolean }).isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader|microsoft basic render|\bwarp\b/i.test(names);
  const info: AdapterInfo = { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, features: [...device.features].sort(), software };
  return new WebGPUBackend(device, info, [gpu, adapter, keepAlive]);
}
