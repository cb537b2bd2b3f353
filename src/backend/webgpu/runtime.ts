/**
 * @internal The machinery under the webgpu backend: a buffer pool with size classes, pipelines
 * compiled once per (module, entry, specialisation), one command encoder that collects every
 * dispatch and copy until a read, a sync or a full batch submits it, a uniform arena for the
 * parameters of each dispatch, and the device-side fault word.
 *
 * Order: everything goes through one queue, in call order. A dispatch is recorded into the open
 * compute pass; a write while work is recorded is a copy from a staging buffer recorded at that
 * point (so it never overtakes a kernel called before it), otherwise `queue.writeBuffer`. A freed
 * buffer returns to the pool at once: whatever uses it next is later on the same queue.
 * @module
 */
/// <reference types="@webgpu/types" />
import type { DType } from '../dtype.js';
import type { Storage } from '../backend.js';
import { FaultLatch } from '../faults.js';
import { WGSL } from './wgsl.gen.js';

/** Words of parameters per dispatch (the prelude's `Params`). */
export const PARAM_WORDS = 128;
const PARAM_BYTES = PARAM_WORDS * 4;
/** Dispatches recorded before the batch is submitted on its own. */
const MAX_BATCH = 4096;

/**
 * The most kernels recorded while the event loop does not turn. Dawn frees finished work (bind
 * groups, descriptor sets, command buffers) only when the event loop runs; a loop that queues
 * steps without ever awaiting makes them pile up, and on lavapipe a few tens of thousands crashed
 * the process inside the driver (vkCreateDescriptorPool). Past this many the next kernel throws
 * instead, asking for an await (a read, `sync()`, or a timer) between steps.
 */
export const MAX_UNTURNED = 16384;
/** Workgroup width of the flat kernels (the prelude's `flat_id`). */
export const WG = 256;

let nextId = 1;

/** A webgpu storage: one 32-bit word per element in a pooled buffer. */
export class GpuStorage implements Storage {
  freed = false;
  readonly id = nextId++;
  constructor(
    readonly dtype: DType,
    readonly size: number,
    readonly buffer: GPUBuffer,
  ) {}
}

/** The parameters of one dispatch: 32-bit words written in order. */
export class Params {
  readonly words = new Uint32Array(PARAM_WORDS);
  private readonly f = new Float32Array(this.words.buffer);
  private readonly i = new Int32Array(this.words.buffer);
  n = 0;
  private room(k: number): number {
    if (this.n + k > PARAM_WORDS) throw new Error(`webgpu: a dispatch has more than ${PARAM_WORDS} parameter words`);
    const at = this.n;
    this.n += k;
    return at;
  }
  u32(x: number): this {
    this.words[this.room(1)] = x >>> 0;
    return this;
  }
  i32(x: number): this {
    this.i[this.room(1)] = x | 0;
    return this;
  }
  f32(x: number): this {
    this.f[this.room(1)] = x;
    return this;
  }
  bool(x: boolean): this {
    return this.u32(x ? 1 : 0);
  }
  /** A non-negative integer below 2⁵³ as two words, low first. */
  u64(x: number): this {
    this.u32(x >>> 0);
    return this.u32(Math.floor(x / 4294967296) >>> 0);
  }
  /** `xs` padded with `fill` to `len` words (shapes and strides: the kernel reads a fixed block). */
  ints(xs: readonly number[], len: number, fill = 0): this {
    if (xs.length > len) throw new Error(`webgpu: ${xs.length} dimensions, at most ${len}`);
    for (let k = 0; k < len; k++) this.i32(k < xs.length ? xs[k]! : fill);
    return this;
  }
}

/** How a storage's words become the kernel's compute type, and back. */
export type ComputeType = 'f32' | 'i32' | 'u32';

/** The WGSL of `ld_<name>(i)`, the element i of a binding of `dtype` as the compute type `ct`. */
export function ld(name: string, dtype: DType, ct: ComputeType = computeType(dtype)): string {
  const w = `${name}[i]`;
  let load: string;
  if (ct === 'f32')
    load =
      dtype === 'f32' ? `bitcast<f32>(${w})`
      : dtype === 'i32' ? `f32(bitcast<i32>(${w}))`
      : dtype === 'bool' ? `f32(${w})`
      : dtype === 'f16' ? `f16_to_f32(${w})`
      : dtype === 'bf16' ? `bf16_to_f32(${w})`
      : unsupported(dtype);
  else if (ct === 'i32') load = dtype === 'i32' ? `bitcast<i32>(${w})` : dtype === 'bool' ? `i32(${w})` : unsupported(dtype);
  else load = w;
  return `fn ld_${name}(i: u32) -> ${ct} { return ${load}; }\n`;
}

/**
 * The WGSL of `st_<name>(i, v)`, storing the compute-type value v as `dtype` (rounding as casts
 * do). NaN is tested on the bits: drivers may compile float comparisons as ordered (lavapipe
 * does), where `NaN != 0.0` is false.
 */
export function st(name: string, dtype: DType, ct: ComputeType = computeType(dtype)): string {
  let store: string;
  if (ct === 'f32')
    store =
      dtype === 'f32' ? 'bitcast<u32>(v)'
      : dtype === 'i32' ? 'bitcast<u32>(select(i32(v), 0, (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u))'
      : dtype === 'bool' ? 'select(0u, 1u, (bitcast<u32>(v) << 1u) != 0u)'
      : dtype === 'f16' ? 'f32_to_f16(v)'
      : dtype === 'bf16' ? 'f32_to_bf16(v)'
      : unsupported(dtype);
  else if (ct === 'i32') store = dtype === 'i32' ? 'bitcast<u32>(v)' : dtype === 'bool' ? 'select(0u, 1u, v != 0)' : unsupported(dtype);
  else store = 'v';
  return `fn st_${name}(i: u32, v: ${ct}) { ${name}[i] = ${store}; }\n`;
}

/** Both {@link ld} and {@link st} (a read_write binding). */
export function io(name: string, dtype: DType, ct: ComputeType = computeType(dtype)): string {
  return ld(name, dtype, ct) + st(name, dtype, ct);
}

function unsupported(dtype: string): never {
  throw new Error(`webgpu: no kernel stores ${dtype}`);
}

/** The type a kernel computes in for storages of `dtype`: i32 for integers and bool, else f32. */
export function computeType(dtype: DType): ComputeType {
  return dtype === 'i32' || dtype === 'bool' ? 'i32' : 'f32';
}

/** One dispatch: a module of kernels/wgsl, an entry point, its specialisation and bindings. */
export interface Dispatch {
  /** The file of kernels/wgsl, without `.wgsl`. */
  module: Exclude<keyof typeof WGSL, 'prelude'>;
  /** The kernel: a `// @kernel <entry>` section of the file, whose entry point is `main`. */
  entry: string;
  /** WGSL prepended to the module (constants, `io` functions); also the pipeline cache key. */
  defs: string;
  /** Storages bound at 2, 3, …, in order (null: a placeholder for an absent optional input). */
  bindings: (GpuStorage | null)[];
  params: Params;
  /** Workgroups in x, y, z. */
  groups: readonly [number, number, number];
  /** For kernels that fault: the op and limit their fault reports. */
  fault?: { op: string; limit?: number; message?: string };
}

/** Workgroups for `n` invocations of a flat kernel (WG wide), as a 2-D grid within the limits. */
export function grid(n: number, maxPerDim: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(n / WG));
  if (groups <= maxPerDim) return [groups, 1, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y, 1];
}

interface Pipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/** Round a byte size up to its pool class: four classes per power of two, 256 bytes at least. */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes));
  const step = Math.max(256, p / 4);
  return Math.ceil(bytes / step) * step;
}

/** Counts since the runtime was made, for benches and tests. */
export interface RuntimeStats {
  dispatches: number;
  submits: number;
  pipelines: number;
  buffersCreated: number;
  pooledBytes: number;
  liveBytes: number;
}

export class Runtime {
  readonly faults = new FaultLatch();
  readonly maxBinding: number;
  readonly maxGroups: number;
  private readonly pipelines = new Map<string, Pipeline>();
  private readonly pool = new Map<number, GPUBuffer[]>();
  private pooledBytes = 0;
  private liveBytes = 0;
  private readonly poolLimit: number;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly arena: Uint32Array;
  private readonly arenaBuffer: GPUBuffer;
  private slots = 0;
  /** Kernels recorded since the event loop last turned (a timer resets it). */
  private unturned = 0;
  private afterSubmit: GPUBuffer[] = [];
  private readonly faultBuffer: GPUBuffer;
  // the stand-ins of absent optional bindings, one per binding slot: Dawn refuses a buffer bound
  // twice when either binding is writable, so a read-only and a writable stand-in must differ
  private readonly dummies: GPUBuffer[] = [];
  private nextTag = 1;
  private readonly tags = new Map<number, { op: string; limit: number; message?: string }>();
  private lost: string | null = null;
  readonly stats = { dispatches: 0, submits: 0, pipelines: 0, buffersCreated: 0 };

  constructor(
    readonly device: GPUDevice,
    opts: { poolLimitBytes?: number } = {},
  ) {
    const L = device.limits;
    this.maxBinding = Math.min(L.maxStorageBufferBindingSize, L.maxBufferSize);
    this.maxGroups = L.maxComputeWorkgroupsPerDimension;
    this.poolLimit = opts.poolLimitBytes ?? 1 << 30;
    this.arena = new Uint32Array(MAX_BATCH * PARAM_WORDS);
    this.arenaBuffer = device.createBuffer({ size: MAX_BATCH * PARAM_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.faultBuffer = device.createBuffer({ size: 32, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    device.onuncapturederror = (e: GPUUncapturedErrorEvent) => this.faults.recordError(new Error(`webgpu: ${e.error.message}`));
    void device.lost.then((info) => {
      this.lost = `the device was lost (${info.reason}): ${info.message}`;
      this.faults.recordError(new Error(`webgpu: ${this.lost}`));
    });
  }

  /** Throw when the device is gone (an Error naming `op`). */
  alive(op: string): void {
    if (this.lost) throw new Error(`${op}: ${this.lost}`);
  }

  // ---- memory --------------------------------------------------------------------------------

  /** A storage buffer of at least `bytes` (from the pool when one of its class is free). */
  buffer(bytes: number): GPUBuffer {
    const cls = Math.min(sizeClass(bytes), Math.floor(this.maxBinding / 4) * 4);
    const free = this.pool.get(cls);
    const b = free?.pop();
    if (b) {
      this.pooledBytes -= cls;
      this.liveBytes += cls;
      return b;
    }
    this.stats.buffersCreated++;
    this.liveBytes += cls;
    return this.device.createBuffer({ size: cls, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  }

  /** Return a buffer to the pool (or destroy it past the pool's limit). */
  release(b: GPUBuffer): void {
    const cls = b.size;
    this.liveBytes -= cls;
    if (this.pooledBytes + cls > this.poolLimit) {
      this.afterSubmit.push(b); // destroyed once the work recorded so far is submitted
      return;
    }
    this.pooledBytes += cls;
    let list = this.pool.get(cls);
    if (!list) this.pool.set(cls, (list = []));
    list.push(b);
  }

  /** Destroy every pooled buffer. */
  emptyCache(): void {
    for (const list of this.pool.values()) for (const b of list) this.afterSubmit.push(b);
    this.pool.clear();
    this.pooledBytes = 0;
    if (!this.encoder) this.destroyDeferred();
  }

  memoryStats(): RuntimeStats {
    return { ...this.stats, pooledBytes: this.pooledBytes, liveBytes: this.liveBytes };
  }

  // ---- recording -----------------------------------------------------------------------------

  private pipeline(d: Dispatch): Pipeline {
    const key = `${d.module}\n${d.entry}\n${d.defs}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const file = WGSL[d.module];
      const section = (file.entries as Record<string, string>)[d.entry];
      if (section === undefined) throw new Error(`webgpu: kernels/wgsl/${d.module}.wgsl has no kernel '${d.entry}'`);
      const code = `${d.defs}\n${WGSL.prelude.shared}\n${file.shared}\n${section}`;
      const module = this.device.createShaderModule({ code, label: `${d.module}.${d.entry}` });
      const pipeline = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: `${d.module}.${d.entry}` });
      p = { pipeline, layout: pipeline.getBindGroupLayout(0) };
      this.pipelines.set(key, p);
      this.stats.pipelines++;
    }
    return p;
  }

  private enc(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Record one dispatch. */
  run(d: Dispatch): void {
    if (this.unturned++ === 0) setTimeout(() => (this.unturned = 0), 0);
    else if (this.unturned > MAX_UNTURNED) {
      this.unturned--;
      throw new Error(
        `webgpu: ${MAX_UNTURNED} kernels were queued without the event loop turning: the GPU's finished work is freed only when it runs, so await something between steps (a read, sync(), or a timer)`,
      );
    }
    if (this.slots >= MAX_BATCH) this.flush();
    const { pipeline, layout } = this.pipeline(d);
    const slot = this.slots++;
    if (d.fault) {
      const tag = this.nextTag++;
      this.tags.set(tag, { op: d.fault.op, limit: d.fault.limit ?? 0, message: d.fault.message });
      d.params.words[PARAM_WORDS - 1] = tag;
    }
    this.arena.set(d.params.words, slot * PARAM_WORDS);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.arenaBuffer, offset: slot * PARAM_BYTES, size: PARAM_BYTES } }];
    if (d.fault) entries.push({ binding: 1, resource: { buffer: this.faultBuffer } });
    d.bindings.forEach((s, i) => entries.push({ binding: i + 2, resource: { buffer: s ? s.buffer : this.dummyAt(i) } }));
    const group = this.device.createBindGroup({ layout, entries });
    this.pass ??= this.enc().beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, group);
    this.pass.dispatchWorkgroups(d.groups[0], d.groups[1], d.groups[2]);
    this.stats.dispatches++;
  }

  private dummyAt(i: number): GPUBuffer {
    return (this.dummies[i] ??= this.device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE }));
  }

  /** Queue `words` into `dst` from word 0, ordered after everything recorded so far. */
  write(dst: GPUBuffer, words: Uint32Array): void {
    if (words.length === 0) return;
    if (!this.encoder) {
      this.device.queue.writeBuffer(dst, 0, words.buffer, words.byteOffset, words.byteLength);
      return;
    }
    const staging = this.device.createBuffer({ size: words.byteLength, usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
    new Uint32Array(staging.getMappedRange()).set(words);
    staging.unmap();
    this.endPass();
    this.enc().copyBufferToBuffer(staging, 0, dst, 0, words.byteLength);
    this.afterSubmit.push(staging);
  }

  /** Record a copy of `bytes` from `src` to `dst`. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (bytes === 0) return;
    this.endPass();
    this.enc().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  private destroyDeferred(): void {
    for (const b of this.afterSubmit) b.destroy();
    this.afterSubmit = [];
  }

  /** Submit what is recorded. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    if (this.slots) this.device.queue.writeBuffer(this.arenaBuffer, 0, this.arena.buffer, 0, this.slots * PARAM_BYTES);
    this.device.queue.submit([this.encoder.finish()]);
    this.stats.submits++;
    this.encoder = null;
    this.slots = 0;
    this.destroyDeferred();
  }

  /**
   * Submit everything, with a copy of `src` (when given) and of the fault word taken at this
   * point; resolve with the copy's words once the queue has run, after recording any fault
   * into the latch.
   */
  async drain(src: GPUBuffer | null, bytes: number): Promise<Uint32Array | null> {
    const lastTag = this.nextTag - 1;
    const enc = this.enc();
    this.endPass();
    const total = 32 + (src ? bytes : 0);
    const staging = this.device.createBuffer({ size: Math.max(total, 32), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    enc.copyBufferToBuffer(this.faultBuffer, 0, staging, 0, 32);
    enc.clearBuffer(this.faultBuffer);
    if (src && bytes) enc.copyBufferToBuffer(src, 0, staging, 32, bytes);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      staging.destroy();
      throw new Error(`webgpu: reading back failed: ${this.lost ?? (e as Error).message}`);
    }
    const all = new Uint32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    if (all[0]) {
      const info = this.tags.get(all[4]!) ?? { op: 'webgpu', limit: 0 };
      const kind = all[3];
      const value =
        kind === 1 ? new Float32Array(all.buffer, 8, 1)[0]!
        : kind === 2 ? all[2]!
        : kind === 3 ? (all[5]! | 0) * 4294967296 + all[2]! // i64: exact below 2^53
        : new Int32Array(all.buffer, 8, 1)[0]!;
      this.faults.record(all[1]!, info.op, value, info.limit, info.message);
    }
    for (const t of this.tags.keys()) if (t <= lastTag) this.tags.delete(t);
    this.faults.throwIfAny();
    return src ? all.subarray(8, 8 + bytes / 4) : null;
  }
}
