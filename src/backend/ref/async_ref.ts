/**
 * `async-ref`: the reference kernels behind a queue, as a GPU would run them. It exists to keep
 * the code above the Backend contract honest: it has no synchronous read, kernels and writes run
 * later (in order, when the queue is flushed, grows long, or is read), and a freed storage is
 * poisoned when its free runs, so any work that still touches it fails loudly. Register it in
 * tests (`registerBackend(asyncRefEntry())`) and the whole suite runs against it.
 * @module
 */
import type { Backend, KernelFamily, KernelName, Kernels, Storage } from '../backend.js';
import type { BackendEntry } from '../registry.js';
import { DTYPES, isDType, type DType, type StorageArray } from '../dtype.js';
import { KERNEL_NAMES } from '../ops.gen.js';
import { RefBackend, RefStorage } from './ref.js';
import { show } from '../../tensor/validate.js';

/** A storage of the queue; `freed` is set when its free runs (not when free is called). */
class QueuedStorage extends RefStorage {
  freed = false;
}

/** Queued work items past this many run at once (keeping memory bounded in long loops). */
const MAX_QUEUED = 4096;

// Storages named by a kernel's arguments (one, or a list), to check none was freed.
function storagesOf(args: object): QueuedStorage[] {
  const out: QueuedStorage[] = [];
  for (const v of Object.values(args)) {
    if (v instanceof QueuedStorage) out.push(v);
    else if (Array.isArray(v)) for (const x of v) if (x instanceof QueuedStorage) out.push(x);
  }
  return out;
}

// Every element of a freed storage set to a value no correct computation produces by accident.
function poison(s: QueuedStorage): void {
  const d = s.data;
  if (d instanceof Float32Array || d instanceof Float64Array) d.fill(NaN);
  else if (d instanceof Int32Array) d.fill(-0x7f7f7f7f);
  else d.fill(0xff);
}

export interface AsyncRefBackend extends Kernels {}

/** The reference backend behind a queue with no synchronous read (see the module comment). */
export class AsyncRefBackend implements Backend {
  readonly dtypes: readonly DType[];
  private readonly ref: RefBackend;
  private queue: (() => void)[] = [];
  private scheduled = false;

  /**
   * @param name registry name (default `async-ref`)
   * @param dtypes the dtypes it stores (all by default; fewer to stand in for a backend without f64)
   */
  constructor(
    readonly name = 'async-ref',
    dtypes: readonly DType[] = DTYPES,
  ) {
    checkBackendArgs('AsyncRefBackend', name, dtypes);
    this.dtypes = dtypes;
    this.ref = new RefBackend(name);
    for (const k of KERNEL_NAMES) (this as unknown as Record<KernelName, (a: object) => void>)[k] = (a) => this.enqueueKernel(k, a);
  }

  /** Work items waiting to run. */
  get queued(): number {
    return this.queue.length;
  }

  init(): Promise<void> {
    // a GPU backend requests its device here; this one only proves the registry awaits it
    return new Promise((resolve) => setImmediate(resolve));
  }

  maxElements(dtype: DType): number {
    return this.ref.maxElements(dtype);
  }

  alloc(dtype: DType, size: number): Storage {
    const s = this.ref.alloc(dtype, size) as RefStorage;
    return new QueuedStorage(dtype, s.data);
  }

  free(s: Storage): void {
    const q = s as QueuedStorage;
    this.enqueue(() => {
      q.freed = true;
      poison(q);
    });
  }

  write(s: Storage, data: StorageArray): void {
    const copy = data.slice();
    this.enqueue(() => {
      this.assertLive('write', [s as QueuedStorage]);
      (s as QueuedStorage).data.set(copy);
    });
  }

  async read(s: Storage): Promise<StorageArray> {
    let out: StorageArray | null = null;
    this.enqueue(() => {
      this.assertLive('read', [s as QueuedStorage]);
      out = (s as QueuedStorage).data.slice();
    });
    await this.sync();
    return out!;
  }

  flush(): void {
    if (this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  async sync(): Promise<void> {
    // as a device would: the work finishes later, never within the caller's synchronous code
    await new Promise((resolve) => setImmediate(resolve));
    this.drain();
    this.ref.faults.throwIfAny();
  }

  computes(family: KernelFamily, dtype: DType): boolean {
    return this.ref.computes(family, dtype);
  }

  private enqueueKernel(kernel: KernelName, args: object): void {
    const a = { ...args };
    this.enqueue(() => {
      this.assertLive(kernel, storagesOf(a));
      (this.ref[kernel] as (a: object) => void)(a);
    });
  }

  private enqueue(work: () => void): void {
    this.queue.push(work);
    if (this.queue.length >= MAX_QUEUED) this.drain();
  }

  private drain(): void {
    while (this.queue.length) {
      const work = this.queue;
      this.queue = [];
      for (const w of work) {
        try {
          w();
        } catch (e) {
          this.ref.faults.recordError(e as Error);
        }
      }
    }
  }

  private assertLive(what: string, storages: QueuedStorage[]): void {
    if (storages.some((s) => s.freed))
      throw new Error(`async-ref: '${what}' ran on a storage that was freed before it (a use after free above the Backend contract)`);
  }
}

/** The registry entry of `async-ref` (tests register it; it is never the default: priority −1). */
export function asyncRefEntry(name = 'async-ref', dtypes?: readonly DType[]): BackendEntry {
  checkBackendArgs('asyncRefEntry', name, dtypes ?? DTYPES);
  return { name, priority: -1, load: async () => new AsyncRefBackend(name, dtypes) };
}

function checkBackendArgs(op: string, name: unknown, dtypes: unknown): void {
  if (typeof name !== 'string' || !name) throw new Error(`${op}: name must be a non-empty string, got ${show(name)}`);
  if (!Array.isArray(dtypes) || dtypes.length === 0 || !dtypes.every(isDType))
    throw new Error(`${op}: dtypes must be a non-empty list of dtypes (${DTYPES.join(', ')}), got ${show(dtypes)}`);
}
