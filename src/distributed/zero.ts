/**
 * ZeRO (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter
 * Models"): data parallelism in which each rank keeps the optimizer state of only 1/size of the
 * parameters. The gradients of each parameter group travel in buckets (buckets.ts), each padded
 * to a multiple of the ranks and owned block by block: rank r owns block r of every bucket, so
 * the shards are equal. A step reduce-scatters every bucket (the average of block r lands on rank
 * r), runs the optimizer on the owned blocks (an f32 copy of those parameter values, with their
 * state), and all-gathers the updated blocks back into every rank's parameters.
 *
 * - Stage 1 shards the optimizer state: 2·N values of Adam's moments (and the f32 copy) become
 *   N/size per rank; the full gradients live until the step (and `zeroGrad`), so they can be
 *   read or clipped before it.
 * - Stage 2 shards the gradients too: a bucket is reduce-scattered from the backward pass as soon
 *   as its last gradient is final, and those gradients are dropped there, so the full gradient
 *   never exists at once.
 *
 * The optimizer runs on flat blocks that cut across parameters, so it must update each element
 * on its own (SGD, Adam, AdamW); LAMB's per-parameter trust ratio would see a block, not a
 * parameter, and is refused.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import type { Module } from '../nn/module.js';
import { options } from '../nn/validate.js';
import type { Optimizer, OptimizerOptions, ParamGroup } from '../optim/optimizer.js';
import { keep, tidy } from '../tensor/memory.js';
import { Tensor } from '../tensor/tensor.js';
import { checkNumber, show } from '../tensor/validate.js';
import { copyRange, fillSlot, makeBuckets, type Bucket } from './buckets.js';
import { broadcastModule, moduleAndComm } from './ddp.js';
import type { Communicator } from './mpi.js';

/** Options of {@link ZeroRedundancyOptimizer.create}. */
export interface ZeroOptions {
  /** 1: optimizer state sharded; 2: gradients too (default 2). */
  stage?: 1 | 2;
  /** Bytes of gradients per bucket (default 25 MiB). */
  bucketBytes?: number;
}

// a bucket of one parameter group, with this rank's block of it: the f32 values the inner
// optimizer updates (its "parameter"), whose .grad is the block of the averaged gradient
interface Shard {
  bucket: Bucket;
  group: number;
  block: Tensor;
  // the bucket's buffer exists only while its gradients are gathered and reduced
  live: boolean;
}

type AnyOptimizer = Optimizer<OptimizerOptions>;

/**
 * An optimizer whose state is sharded over the ranks of `comm` (see the module comment); it also
 * does data parallelism's gradient averaging, so the model is not wrapped in
 * DistributedDataParallel. Per step: `zeroGrad()`, forward, `backward()`, `await step()`.
 */
export class ZeroRedundancyOptimizer {
  readonly comm: Communicator;
  readonly stage: 1 | 2;
  /** The optimizer over this rank's blocks (one group per group of the wrapped optimizer). */
  readonly inner: AnyOptimizer;
  private readonly shards: Shard[];
  private readonly pending: Promise<void>[] = [];
  private readonly removeHooks: (() => void)[] = [];
  private readonly source: AnyOptimizer;

  private constructor(source: AnyOptimizer, comm: Communicator, stage: 1 | 2, bucketBytes: number) {
    this.source = source;
    this.comm = comm;
    this.stage = stage;
    const size = comm.size;
    this.shards = [];
    source.paramGroups.forEach((g, gi) => {
      const trainable = g.params.filter((p) => p.requiresGrad);
      for (const bucket of makeBuckets(trainable, bucketBytes, (n) => Math.ceil(n / size) * size)) {
        const len = bucket.flat.size / size;
        // this rank's block of the parameter values (the bucket's buffer lends its memory for the packing)
        const block = noGrad(() =>
          tidy(() => {
            bucket.params.forEach((p, i) => copyRange(p.dtype === bucket.flat.dtype ? p : p.cast(bucket.flat.dtype), 0, bucket.flat, bucket.offsets[i]!, p.size));
            const b = keep(Tensor._empty(bucket.flat.backend, [len], bucket.flat.dtype, 'ZeroRedundancyOptimizer'));
            copyRange(bucket.flat, comm.rank * len, b, 0, len);
            return b;
          }),
        );
        block.requiresGrad = true;
        const shard: Shard = { bucket, group: gi, block, live: true };
        this.release(shard);
        this.shards.push(shard);
        bucket.params.forEach((p, i) => this.removeHooks.push(p.registerPostAccumulateGradHook(() => this.onGradient(shard, i))));
      }
    });
    const groups = source.paramGroups.map((g, gi) => ({ ...hyper(g), params: this.shards.filter((s) => s.group === gi).map((s) => s.block) }));
    const Ctor = source.constructor as new (params: unknown, options: unknown) => AnyOptimizer;
    this.inner = new Ctor(groups, { ...source.defaults });
  }

  /**
   * Shard `optimizer` (made over `module`'s parameters, and not yet stepped) over the ranks of
   * `comm`; `module`'s parameters and buffers become rank 0's on every rank.
   */
  static async create(module: Module, optimizer: AnyOptimizer, comm: Communicator, opts: ZeroOptions = {}): Promise<ZeroRedundancyOptimizer> {
    const op = 'ZeroRedundancyOptimizer';
    moduleAndComm(op, module, comm);
    if (optimizer === null || typeof optimizer !== 'object' || !Array.isArray((optimizer as AnyOptimizer).paramGroups) || typeof (optimizer as AnyOptimizer).step !== 'function')
      throw new Error(`${op}: optimizer must be an Optimizer, got ${show(optimizer)}`);
    const o = options(op, opts, ['stage', 'bucketBytes']);
    const stage = o.stage === undefined ? 2 : o.stage;
    if (stage !== 1 && stage !== 2) throw new Error(`${op}: stage must be 1 or 2, got ${show(stage)}`);
    const bucketBytes = o.bucketBytes === undefined ? 25 * 2 ** 20 : checkNumber(op, 'bucketBytes', o.bucketBytes, { integer: true, min: 1 });
    if (optimizer.name === 'LAMB') throw new Error(`${op}: LAMB's trust ratio is per parameter, and ZeRO's shards cut across parameters; use SGD, Adam or AdamW`);
    const params = new Set(module.parameters());
    for (const g of optimizer.paramGroups)
      for (const p of g.params) {
        if (!params.has(p)) throw new Error(`${op}: the optimizer holds a parameter ${p.toString()} that is not the module's`);
        if (optimizer.stateOf(p)) throw new Error(`${op}: the optimizer has already stepped (parameter ${p.toString()} has state); shard it before its first step`);
      }
    await broadcastModule(module, comm);
    return new ZeroRedundancyOptimizer(optimizer, comm, stage, bucketBytes);
  }

  /** The inner optimizer's groups: write `lr` here (a schedule over the wrapped optimizer's groups is copied over at each step). */
  get paramGroups(): ParamGroup<OptimizerOptions>[] {
    return this.inner.paramGroups;
  }

  /** Drop every parameter's gradient. */
  zeroGrad(): void {
    this.source.zeroGrad();
  }

  // stage 2: a parameter's gradient is final; a full bucket is reduce-scattered now and its
  // gradients dropped
  private onGradient(s: Shard, i: number): void {
    if (this.stage !== 2) return;
    const b = s.bucket;
    if (!s.live) this.revive(s);
    if (b.ready.has(b.params[i]!)) throw new Error(`ZeroRedundancyOptimizer: a second backward before step() (stage 2 drops gradients as it reduces them); accumulate with stage 1`);
    fillSlot(b, i);
    b.params[i]!.zeroGrad(); // its values are in the bucket now
    if (b.ready.size === b.params.length) this.launch(s);
  }

  private launch(s: Shard): void {
    const b = s.bucket;
    b.launched = true;
    const done = (avg: Tensor): void => {
      s.block.grad?.dispose();
      s.block.grad = keep(avg);
      this.release(s);
    };
    // at once where the communicator reaches the memory (the buffer is freed before the backward
    // goes on), else when the collective is done
    if (this.comm.reachesNow(b.flat)) done(this.comm.reduceScatterNow(b.flat, 'mean'));
    else this.pending.push(this.comm.reduceScatter(b.flat, 'mean').then(done));
  }

  // a bucket's buffer is freed between uses (the cpu backend's cache hands the same memory back)
  private release(s: Shard): void {
    s.bucket.flat.dispose();
    s.live = false;
  }

  private revive(s: Shard): void {
    s.bucket.flat = keep(Tensor._empty(s.block.backend, [s.block.size * this.comm.size], s.block.dtype, 'ZeroRedundancyOptimizer'));
    s.live = true;
  }

  /**
   * Average the gradients over the ranks (what the backward has not already), update this rank's
   * blocks, and all-gather them into every rank's parameters.
   */
  async step(): Promise<void> {
    for (const s of this.shards) {
      const b = s.bucket;
      if (b.launched) continue;
      if (!s.live) this.revive(s);
      b.params.forEach((p, i) => {
        if (!b.ready.has(p)) fillSlot(b, i);
      });
      this.launch(s);
    }
    try {
      await Promise.all(this.pending.splice(0));
    } finally {
      for (const s of this.shards) {
        s.bucket.ready.clear();
        s.bucket.launched = false;
      }
    }
    this.source.paramGroups.forEach((g, gi) => Object.assign(this.inner.paramGroups[gi]!, hyper(g)));
    this.inner.step();
    for (const s of this.shards) {
      s.block.grad?.dispose();
      s.block.grad = null;
      const all = await this.comm.allGather(s.block);
      const b = s.bucket;
      noGrad(() =>
        tidy(() => {
          b.params.forEach((p, i) => {
            if (p.dtype === all.dtype) copyRange(all, b.offsets[i]!, p, 0, p.size);
            else {
              const tmp = Tensor._empty(all.backend, [p.size], all.dtype);
              copyRange(all, b.offsets[i]!, tmp, 0, p.size);
              p.copy_(tmp.reshape([...p.shape]).cast(p.dtype));
            }
          });
        }),
      );
      all.dispose();
    }
  }

  /** Bytes of optimizer state this rank holds: the inner optimizer's state tensors and the f32 blocks. */
  stateBytes(): number {
    let n = 0;
    for (const s of this.shards) {
      n += s.block.size * 4 * (s.block.dtype === 'f64' ? 2 : 1);
      for (const t of Object.values(this.inner.stateOf(s.block)?.tensors ?? {})) n += t.size * (t.dtype === 'f64' ? 8 : 4);
    }
    return n;
  }

  /** Remove the hooks and free the blocks, their state and the buckets. */
  dispose(): void {
    for (const r of this.removeHooks.splice(0)) r();
    for (const s of this.shards) {
      for (const t of Object.values(this.inner.stateOf(s.block)?.tensors ?? {})) t.dispose();
      s.block.dispose();
      if (s.live) s.bucket.flat.dispose();
    }
  }
}

// a group's options without its parameters
function hyper(g: ParamGroup<OptimizerOptions>): Record<string, unknown> {
  const { params: _params, ...rest } = g;
  return rest;
}
