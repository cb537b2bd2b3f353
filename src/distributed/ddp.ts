/**
 * Data parallelism (as `torch.nn.parallel.DistributedDataParallel`): every rank holds the whole
 * model, starts from rank 0's parameters, computes gradients on its own shard of the batch, and
 * averages them over the ranks before the optimizer step, so all ranks take the same step. The
 * gradients travel in buckets (flat buffers of a few MB, filled in reverse parameter order, the
 * order the backward pass finishes them), one allreduce each.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { itemSize } from '../backend/dtype.js';
import type { Module } from '../nn/module.js';
import { keep, tidy } from '../tensor/memory.js';
import { zeros } from '../tensor/ops/creation.js';
import { concat, narrow } from '../tensor/ops/shape_ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkNumber, show } from '../tensor/validate.js';
import type { Communicator } from './mpi.js';

/** Options of {@link DistributedDataParallel}. */
export interface DDPOptions {
  /** Bytes of gradients per allreduce (default 25 MiB, PyTorch's bucket_cap_mb). */
  bucketBytes?: number;
}

/** A model replicated over the ranks of `comm` (see the module comment). */
export class DistributedDataParallel {
  readonly module: Module;
  readonly comm: Communicator;
  private readonly bucketBytes: number;

  private constructor(module: Module, comm: Communicator, bucketBytes: number) {
    this.module = module;
    this.comm = comm;
    this.bucketBytes = bucketBytes;
  }

  /** Wrap `module`: its parameters (and buffers) become rank 0's on every rank. */
  static async create(module: Module, comm: Communicator, opts: DDPOptions = {}): Promise<DistributedDataParallel> {
    const op = 'DistributedDataParallel';
    if (module === null || typeof module !== 'object' || typeof (module as Module).parameters !== 'function') throw new Error(`${op}: module must be a Module, got ${show(module)}`);
    if (comm === null || typeof comm !== 'object' || typeof (comm as Communicator).allReduce !== 'function') throw new Error(`${op}: comm must be a Communicator, got ${show(comm)}`);
    const bucketBytes = opts.bucketBytes === undefined ? 25 * 2 ** 20 : checkNumber(op, 'bucketBytes', opts.bucketBytes, { integer: true, min: 1 });
    for (const p of module.parameters()) await noGrad(() => comm.broadcast(p, 0));
    for (const [, b] of module.namedBuffers()) await comm.broadcast(b, 0);
    return new DistributedDataParallel(module, comm, bucketBytes);
  }

  /**
   * Average every parameter's gradient over the ranks, in place (call after `backward()`, and
   * with gradient accumulation after the last micro-batch only). A parameter without a gradient
   * on this rank counts as zero.
   */
  async syncGradients(): Promise<void> {
    if (this.comm.size === 1) return;
    const params = this.module.parameters().filter((p) => p.requiresGrad).reverse();
    // buckets of one dtype, in reverse order (the last layers' gradients are ready first)
    let bucket: Tensor[] = [];
    let bytes = 0;
    const flush = async (): Promise<void> => {
      if (bucket.length === 0) return;
      await this.reduceBucket(bucket);
      bucket = [];
      bytes = 0;
    };
    for (const p of params) {
      const size = p.size * itemSize(p.dtype);
      if (bucket.length && (bucket[0]!.dtype !== p.dtype || bytes + size > this.bucketBytes)) await flush();
      bucket.push(p);
      bytes += size;
    }
    await flush();
  }

  // one allreduce of the bucket's gradients: flattened on the device into one tensor (a missing
  // gradient as zeros), summed over the ranks, and copied back scaled by 1/size
  private async reduceBucket(params: Tensor[]): Promise<void> {
    const dtype = params[0]!.dtype === 'f64' ? 'f64' : 'f32';
    const flat = noGrad(() => tidy(() => concat(params.map((p) => (p.grad ? p.grad.cast(dtype) : zeros([...p.shape], { dtype, backend: p.backend.name })).reshape([p.size])), 0)));
    try {
      await this.comm.allReduce(flat, 'sum');
      let at = 0;
      const scale = 1 / this.comm.size;
      for (const p of params) {
        const n = p.size;
        const start = at;
        noGrad(() =>
          tidy(() => {
            const avg = narrow(flat, 0, start, n).reshape([...p.shape]).mul(scale).cast(p.dtype);
            if (p.grad) p.grad.copy_(avg);
            else p.grad = keep(avg.clone());
          }),
        );
        at += n;
      }
    } finally {
      flat.dispose();
    }
  }
}
