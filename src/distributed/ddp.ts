/**
 * Data parallelism (as `torch.nn.parallel.DistributedDataParallel`): every rank holds the whole
 * model, starts from rank 0's parameters, computes gradients on its own shard of the batch, and
 * averages them over the ranks before the optimizer step, so all ranks take the same step.
 *
 * The gradients travel in buckets (buckets.ts): each bucket's allreduce starts from the backward
 * pass itself, as soon as its last gradient is final, while the backward goes on with the layers
 * before it; `syncGradients()` waits for them all and writes the averages into `.grad`. With
 * gradient accumulation, run the micro-batches before the last one inside `noSync` (as PyTorch's
 * `no_sync`): their backward reduces nothing.
 * @module
 */
import type { Module } from '../nn/module.js';
import { checkNumber, show } from '../tensor/validate.js';
import { options } from '../nn/validate.js';
import { fillSlot, makeBuckets, unpackGrads, type Bucket } from './buckets.js';
import type { Communicator } from './mpi.js';

/** Options of {@link DistributedDataParallel}. */
export interface DDPOptions {
  /** Bytes of gradients per allreduce (default 25 MiB, PyTorch's bucket_cap_mb). */
  bucketBytes?: number;
}

/** Check a module and a communicator argument of `op`. */
export function moduleAndComm(op: string, module: unknown, comm: unknown): void {
  if (module === null || typeof module !== 'object' || typeof (module as Module).parameters !== 'function') throw new Error(`${op}: module must be a Module, got ${show(module)}`);
  if (comm === null || typeof comm !== 'object' || typeof (comm as Communicator).allReduce !== 'function') throw new Error(`${op}: comm must be a Communicator, got ${show(comm)}`);
}

/** Make every rank's parameters and buffers of `module` rank 0's. */
export async function broadcastModule(module: Module, comm: Communicator): Promise<void> {
  for (const p of module.parameters()) await comm.broadcast(p, 0);
  for (const [, b] of module.namedBuffers()) await comm.broadcast(b, 0);
}

/** A model replicated over the ranks of `comm` (see the module comment). */
export class DistributedDataParallel {
  readonly module: Module;
  readonly comm: Communicator;
  private readonly buckets: Bucket[];
  private readonly pending: Promise<void>[] = [];
  private readonly removeHooks: (() => void)[] = [];
  private syncing = true;

  private constructor(module: Module, comm: Communicator, bucketBytes: number) {
    this.module = module;
    this.comm = comm;
    this.buckets = comm.size === 1 ? [] : makeBuckets(module.parameters().filter((p) => p.requiresGrad), bucketBytes);
    for (const b of this.buckets)
      b.params.forEach((p, i) => this.removeHooks.push(p.registerPostAccumulateGradHook(() => this.onGradient(b, i))));
  }

  /** Wrap `module`: its parameters (and buffers) become rank 0's on every rank. */
  static async create(module: Module, comm: Communicator, opts: DDPOptions = {}): Promise<DistributedDataParallel> {
    const op = 'DistributedDataParallel';
    moduleAndComm(op, module, comm);
    const o = options(op, opts, ['bucketBytes']);
    const bucketBytes = o.bucketBytes === undefined ? 25 * 2 ** 20 : checkNumber(op, 'bucketBytes', o.bucketBytes, { integer: true, min: 1 });
    await broadcastModule(module, comm);
    return new DistributedDataParallel(module, comm, bucketBytes);
  }

  /**
   * Run `fn` (a forward and backward of a micro-batch that is not the last) without reducing
   * gradients: they accumulate in `.grad` on this rank, and the backward after it reduces the
   * sums. Returns what `fn` returns (awaited if it is a Promise).
   */
  async noSync<T>(fn: () => T | Promise<T>): Promise<T> {
    if (typeof fn !== 'function') throw new Error(`DistributedDataParallel.noSync: expected a function, got ${show(fn)}`);
    const prev = this.syncing;
    this.syncing = false;
    try {
      return await fn();
    } finally {
      this.syncing = prev;
    }
  }

  // a parameter's gradient for this backward is final: copy it in; a full bucket starts reducing
  private onGradient(b: Bucket, i: number): void {
    if (!this.syncing) return;
    // a second backward before syncGradients: the gradients grew since, so the bucket is filled
    // again from `.grad` (which holds this rank's sums: averages are written only by syncGradients)
    if (b.ready.has(b.params[i]!)) {
      b.ready.clear();
      b.launched = false;
    }
    fillSlot(b, i);
    if (b.ready.size === b.params.length && !b.launched) this.launch(b);
  }

  private launch(b: Bucket): void {
    b.launched = true;
    this.pending.push(this.comm.allReduce(b.flat, 'mean'));
  }

  /**
   * Wait for every bucket's allreduce (starting those the backward did not complete: a parameter
   * without a gradient on this rank counts as zero) and write the averages into `.grad`. Call
   * after the backward of the last micro-batch, before the optimizer step.
   */
  async syncGradients(): Promise<void> {
    if (this.comm.size === 1) return;
    for (const b of this.buckets) {
      if (b.launched && b.ready.size === b.params.length) continue;
      b.params.forEach((p, i) => {
        if (!b.ready.has(p)) fillSlot(b, i);
      });
      this.launch(b);
    }
    try {
      await Promise.all(this.pending.splice(0));
      for (const b of this.buckets) unpackGrads(b);
    } finally {
      for (const b of this.buckets) {
        b.ready.clear();
        b.launched = false;
      }
    }
  }

  /** Remove the gradient hooks and free the buckets (the module stays usable on its own). */
  dispose(): void {
    for (const r of this.removeHooks.splice(0)) r();
    for (const b of this.buckets) b.flat.dispose();
  }
}
