/**
 * Explicit, observable memory: refcounted storage shared by views, `tidy` scopes, `dispose`,
 * a FinalizationRegistry safety net, and {@link memory} counts per backend.
 * @module
 */
import type { Backend, Storage } from '../backend/backend.js';
import { itemSize } from '../backend/dtype.js';
import { show } from './validate.js';

/** A backend storage shared by a tensor and its views (reshape), freed when the last one goes. */
export class StorageRef {
  refs = 1;
  /**
   * Bumped by every in-place write (`copy_`, optimizer updates): autograd compares it with the
   * version a node saw in the forward, so a tensor changed in place before backward is an Error
   * instead of a silently wrong gradient (PyTorch's version counter). Views share it.
   */
  version = 0;
  readonly bytes: number;
  constructor(
    readonly backend: Backend,
    readonly storage: Storage,
  ) {
    this.bytes = storage.size * itemSize(storage.dtype);
    const c = counter(backend.name);
    c.bytes += this.bytes;
    c.storages++;
    if (c.bytes > c.peakBytes) c.peakBytes = c.bytes;
    totalBytes += this.bytes;
    if (totalBytes > totalPeakBytes) totalPeakBytes = totalBytes;
  }

  retain(): this {
    this.refs++;
    return this;
  }

  /** Drop a reference; returns the bytes freed (the storage's, when this was the last reference). */
  release(): number {
    if (--this.refs > 0) return 0;
    const c = counter(this.backend.name);
    c.bytes -= this.bytes;
    c.storages--;
    totalBytes -= this.bytes;
    this.backend.free(this.storage);
    return this.bytes;
  }
}

/** Live tensors and bytes on one backend. */
export interface BackendMemory {
  /** Tensors not yet disposed (or collected). */
  tensors: number;
  /** Distinct storages alive (views share one). */
  storages: number;
  /** Bytes held by those storages. */
  bytes: number;
  /**
   * The most `bytes` ever held at once since the start or the last {@link resetPeakMemory}: the
   * high-water mark (as `torch.cuda.max_memory_allocated`), updated at every storage allocation.
   */
  peakBytes: number;
  /**
   * Tensors released by the garbage collector instead of `dispose` (or a tidy scope), since the
   * start: each was leaked for a while. `tensors + collected` does not change when the collector
   * runs, so tests compare it across awaits.
   */
  collected: number;
  /** Bytes freed when those collected tensors released the last reference to their storage. */
  collectedBytes: number;
}

const counters = new Map<string, BackendMemory>();
// over all backends: the total's peak is the most held at one moment, not the sum of the backends' peaks
let totalBytes = 0;
let totalPeakBytes = 0;

function counter(name: string): BackendMemory {
  let c = counters.get(name);
  if (!c) counters.set(name, (c = { tensors: 0, storages: 0, bytes: 0, peakBytes: 0, collected: 0, collectedBytes: 0 }));
  return c;
}

/** What {@link memory} returns. */
export interface MemoryInfo {
  /** Live tensors over all backends. */
  tensors: number;
  /** Bytes over all backends. */
  bytes: number;
  /**
   * The most bytes held at once over all backends since the start or the last
   * {@link resetPeakMemory} (at most the sum of the backends' `peakBytes`, which may peak apart).
   */
  peakBytes: number;
  /** Tensors released by the garbage collector instead of dispose, over all backends (see {@link BackendMemory.collected}). */
  collected: number;
  /** Bytes those collected tensors freed. */
  collectedBytes: number;
  /** Per backend name. */
  backends: Record<string, BackendMemory>;
}

/** Live tensors and bytes (and their high-water mark), in total and per backend. */
export function memory(): MemoryInfo {
  const backends: Record<string, BackendMemory> = {};
  let tensors = 0;
  let bytes = 0;
  let collected = 0;
  let collectedBytes = 0;
  for (const [name, c] of counters) {
    backends[name] = { ...c };
    tensors += c.tensors;
    bytes += c.bytes;
    collected += c.collected;
    collectedBytes += c.collectedBytes;
  }
  return { tensors, bytes, peakBytes: totalPeakBytes, collected, collectedBytes, backends };
}

/**
 * Start measuring the high-water mark afresh: every `peakBytes` of {@link memory} (per backend and
 * in total) becomes the bytes held now (as `torch.cuda.reset_peak_memory_stats`).
 *
 * @example
 * resetPeakMemory();
 * trainStep();
 * console.log(memory().peakBytes); // the most the step held at once
 */
export function resetPeakMemory(): void {
  for (const c of counters.values()) c.peakBytes = c.bytes;
  totalPeakBytes = totalBytes;
}

/** What a tensor shares with the memory system. */
export interface Tracked {
  _scope: Set<Tracked> | null;
  dispose(): void;
}

// A tensor that is garbage-collected undisposed still releases its storage.
const finalizer = new FinalizationRegistry<{ buf: StorageRef; backend: string }>((held) => {
  const c = counter(held.backend);
  c.tensors--;
  c.collected++;
  c.collectedBytes += held.buf.release();
});

/** Count a new tensor, put it in the innermost tidy scope, and watch it for collection. */
export function track(t: Tracked, buf: StorageRef, token: object): void {
  counter(buf.backend.name).tensors++;
  finalizer.register(t, { buf, backend: buf.backend.name }, token);
  const scope = scopes[scopes.length - 1];
  if (scope) {
    scope.add(t);
    t._scope = scope;
  }
}

/** Undo {@link track} when a tensor is disposed. */
export function untrack(t: Tracked, buf: StorageRef, token: object): void {
  counter(buf.backend.name).tensors--;
  finalizer.unregister(token);
  t._scope?.delete(t);
  t._scope = null;
  buf.release();
}

const scopes: Set<Tracked>[] = [];

/** Anything that may hold tensors: a tensor, or arrays and plain objects of them. */
export type TensorContainer = unknown;

function collect(x: unknown, out: Set<Tracked>, seen = new Set<unknown>()): void {
  if (x === null || typeof x !== 'object' || seen.has(x)) return;
  seen.add(x);
  if ('_scope' in x && typeof (x as Tracked).dispose === 'function') {
    out.add(x as Tracked);
    return;
  }
  if (Array.isArray(x)) for (const v of x) collect(v, out, seen);
  else if (x instanceof Map) for (const v of x.values()) collect(v, out, seen);
  else if (Object.getPrototypeOf(x) === Object.prototype) for (const v of Object.values(x)) collect(v, out, seen);
}

/**
 * Run `fn` and dispose every tensor it created, except those it returns (in an array or plain
 * object too) and those passed to {@link keep}. Returned tensors move to the enclosing scope.
 *
 * @example
 * const loss = tidy(() => model.forward(x).sub(y).pow(2).mean()); // intermediates are freed
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new Error(`tidy: expected a function, got ${show(fn)}`);
  const scope = new Set<Tracked>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of scope) t.dispose();
    throw new Error('tidy: the function returned a Promise; tidy scopes are synchronous (await outside tidy)');
  }
  const kept = new Set<Tracked>();
  collect(result, kept);
  const parent = scopes[scopes.length - 1] ?? null;
  for (const t of scope) {
    if (kept.has(t)) {
      t._scope = parent;
      parent?.add(t);
    } else t.dispose();
  }
  return result;
}

/** Take `t` out of every tidy scope: it lives until disposed. Returns `t`. */
export function keep<T extends Tracked>(t: T): T {
  if (t === null || typeof t !== 'object' || !('_scope' in t)) throw new Error(`keep: expected a Tensor, got ${show(t)}`);
  if ((t as { disposed?: boolean }).disposed) throw new Error('keep: the tensor was disposed');
  t._scope?.delete(t);
  t._scope = null;
  return t;
}
