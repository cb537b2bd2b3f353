/**
 * Pipeline parallelism: a model cut into consecutive stages, stage s on rank s of a
 * communicator. A batch is split into micro-batches; each stage runs its part of the forward on a
 * micro-batch and sends the activation to the next stage, and in the backward sends the gradient
 * of the activation it received back to the previous one. Gradients accumulate over the
 * micro-batches, each loss scaled by 1/microBatches, so one {@link PipelineParallel.step} leaves
 * the gradients one process would get from the mean loss of the whole batch.
 *
 * Two schedules:
 * - `'gpipe'` (Huang et al., "GPipe", 2019): every micro-batch's forward, then every backward
 *   (last first). Each stage keeps the activations of all micro-batches until their backward.
 * - `'1f1b'` (Narayanan et al., PipeDream-Flush, as Megatron-LM's non-interleaved schedule):
 *   stage s runs `stages − s − 1` warm-up forwards, then alternates one forward and one
 *   backward, then finishes the remaining backwards; a stage never keeps more than
 *   `stages − s` micro-batches' activations.
 *
 * Messages go through the communicator's blocking send and receive. Where two neighbouring
 * stages exchange an activation and a gradient at the same step of 1F1B, the lower rank sends
 * first and the higher rank receives first, so the two never both wait in a send (a blocking
 * MPI send of a large message waits for the matching receive).
 * @module
 */
import { checkpoint } from '../autograd/checkpoint.js';
import { isGradEnabled, noGrad } from '../autograd/tape.js';
import { isDType, isFloat, type DType } from '../backend/dtype.js';
import { GPT } from '../nn/gpt.js';
import type { Block } from '../nn/block.js';
import { Module, ModuleList } from '../nn/module.js';
import { options } from '../nn/validate.js';
import { tidy } from '../tensor/memory.js';
import { arange, tensor, zeros } from '../tensor/ops/creation.js';
import { narrow } from '../tensor/ops/shape_ops.js';
import { asOp, desc, live } from '../tensor/ops/util.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { checkChoice, checkNumber, show } from '../tensor/validate.js';
import type { Communicator } from './mpi.js';

/** One stage of a pipeline: the part of the model this rank runs. */
export interface PipelineStage {
  /**
   * The stage's forward on one micro-batch. `x` is the previous stage's activation (it requires
   * grad), or null on the first stage; `microBatch` is this micro-batch's slice of each tensor of
   * the batch given to {@link PipelineParallel.step} (inputs, targets, …). Returns the activation
   * for the next stage, or on the last stage the micro-batch's loss: a mean over its examples,
   * one element.
   */
  forward(x: Tensor | null, microBatch: readonly Tensor[]): Tensor;
}

/** How the micro-batches' forwards and backwards are ordered (see the module comment). */
export type PipelineSchedule = 'gpipe' | '1f1b';

/** A parameter that two stages hold a copy of (a tied embedding and head): its gradient is summed between them. */
export interface TiedParameter {
  /** The two stages (ranks) that hold it. */
  stages: readonly [number, number];
  /** This rank's copy on those two stages (ignored, and may be null, on the others). */
  parameter: Tensor | null;
}

/** Options of {@link PipelineParallel}. */
export interface PipelineOptions {
  /** Micro-batches per step; the batch size must be a multiple of it. */
  microBatches: number;
  /** `'1f1b'` (default) or `'gpipe'`. */
  schedule?: PipelineSchedule;
  /**
   * The shape of the activation a stage sends for one micro-batch (the same between every pair
   * of stages), or a function of the micro-batch's tensors that gives it.
   */
  activationShape: readonly number[] | ((microBatch: readonly Tensor[]) => readonly number[]);
  /** The activation's dtype (default f32). */
  activationDtype?: DType;
  /** Parameters held by two stages, whose gradients are summed after the backward (default none). */
  tied?: readonly TiedParameter[];
}

// one micro-batch in flight on this stage: what its backward needs
interface InFlight {
  index: number;
  /** The received activation (a leaf that requires grad), or null on the first stage. */
  x: Tensor | null;
  /** The stage's output: the activation sent on, or the scaled loss on the last stage. */
  out: Tensor;
  /** Tensors made by the forward that its graph reads: disposed after the backward. */
  owned: Tensor[];
  /** This micro-batch's slices of the batch. */
  slices: Tensor[];
}

// message tags: the activation and the gradient of micro-batch i
const ACT = (i: number): number => 2 * i;
const GRAD = (i: number): number => 2 * i + 1;

// every tensor the autograd graph of `root` reads that was made after tensor id `mark`
function graphTensors(root: Tensor, mark: number): Tensor[] {
  const seen = new Set<Tensor>();
  const out: Tensor[] = [];
  const stack = [root];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    if (t.id > mark) out.push(t);
    const node = t.gradFn;
    if (!node) continue;
    for (const s of [...node.inputs, ...node.saved, ...Object.values(node.attrs)]) if (s instanceof Tensor) stack.push(s);
  }
  return out;
}

/**
 * Runs a {@link PipelineStage} on this rank as stage `comm.rank` of `comm.size`, with a
 * schedule (see the module comment). Every rank constructs one with the same options and calls
 * {@link step} with the same batch.
 *
 * @example
 * const stage = new GPTPipelineStage(model, comm); // this rank's blocks
 * const pipe = stage.pipeline({ microBatches: 4, schedule: '1f1b' });
 * const opt = new AdamW(stage.parameters(), { lr: 1e-3 });
 * opt.zeroGrad();
 * const loss = await pipe.step([idx, targets]); // idx, targets [B, T] i32 on every rank
 * opt.step();
 */
export class PipelineParallel {
  readonly stage: PipelineStage;
  readonly comm: Communicator;
  readonly microBatches: number;
  readonly schedule: PipelineSchedule;
  private readonly activationShape: PipelineOptions['activationShape'];
  private readonly activationDtype: DType;
  private readonly tied: readonly TiedParameter[];

  constructor(stage: PipelineStage, comm: Communicator, opts: PipelineOptions) {
    const op = 'PipelineParallel';
    if (stage === null || typeof stage !== 'object' || typeof (stage as PipelineStage).forward !== 'function')
      throw new Error(`${op}: stage must be an object with a forward(x, microBatch) method, got ${show(stage)}`);
    const c = comm as Communicator | null;
    if (c === null || typeof c !== 'object' || typeof c.send !== 'function' || typeof c.recv !== 'function' || !Number.isInteger(c.size) || !Number.isInteger(c.rank))
      throw new Error(`${op}: comm must be a Communicator (from communicator()), got ${show(comm)}`);
    if (opts === null || typeof opts !== 'object') throw new Error(`${op}: opts must be an object with microBatches and activationShape, got ${show(opts)}`);
    const o = options(op, opts, ['microBatches', 'schedule', 'activationShape', 'activationDtype', 'tied']);
    this.microBatches = checkNumber(op, 'microBatches', o.microBatches, { integer: true, min: 1 });
    this.schedule = o.schedule === undefined ? '1f1b' : checkChoice(op, 'schedule', o.schedule, ['gpipe', '1f1b'] as const);
    const shape = o.activationShape;
    if (typeof shape !== 'function' && !(Array.isArray(shape) && shape.length > 0 && shape.every((d) => Number.isInteger(d) && d >= 1)))
      throw new Error(`${op}: activationShape must be a shape of positive integers or a function of the micro-batch, got ${show(shape)}`);
    this.activationShape = shape;
    const dtype = o.activationDtype ?? 'f32';
    if (!isDType(dtype) || !isFloat(dtype)) throw new Error(`${op}: activationDtype must be a floating dtype, got ${show(dtype)}`);
    this.activationDtype = dtype;
    const tied = o.tied ?? [];
    if (!Array.isArray(tied)) throw new Error(`${op}: tied must be an array of { stages, parameter }, got ${show(tied)}`);
    for (const [i, t] of tied.entries()) {
      const s = (t as TiedParameter | null)?.stages;
      if (!Array.isArray(s) || s.length !== 2 || s.some((r) => !Number.isInteger(r) || r < 0 || r >= c.size) || s[0] === s[1])
        throw new Error(`${op}: tied[${i}].stages must be two different ranks in [0, ${c.size}), got ${show(s)}`);
      if (s.includes(c.rank) && !(t.parameter instanceof Tensor)) throw new Error(`${op}: tied[${i}].parameter must be this stage's (rank ${c.rank}) Tensor, got ${show(t.parameter)}`);
    }
    this.tied = tied;
    this.stage = stage;
    this.comm = c;
  }

  /** Whether this rank runs the first stage (it reads the batch's inputs). */
  get isFirst(): boolean {
    return this.comm.rank === 0;
  }

  /** Whether this rank runs the last stage (it computes the loss). */
  get isLast(): boolean {
    return this.comm.rank === this.comm.size - 1;
  }

  /**
   * The forward and backward of every micro-batch of `batch` (tensors whose first axis is the
   * batch, split into microBatches equal parts), by the schedule. The gradients are added to the
   * parameters' `.grad` (zero them before, step the optimizer after), then the gradients of tied
   * parameters are summed between their stages. Returns the mean loss over the micro-batches, on
   * every rank.
   */
  async step(batch: readonly Tensor[]): Promise<number> {
    const op = 'PipelineParallel.step';
    if (!Array.isArray(batch) || batch.length === 0) throw new Error(`${op}: batch must be a non-empty array of Tensors, got ${show(batch)}`);
    live(op, ...batch);
    const n = batch[0]!.shape[0];
    for (const t of batch)
      if (t.rank < 1 || t.shape[0] !== n)
        throw new Error(`${op}: every tensor of the batch must have the same first (batch) axis: ${batch.map((b) => fmt(b.shape)).join(', ')}`);
    const m = this.microBatches;
    if (n! % m !== 0) throw new Error(`${op}: batch size ${n} is not divisible by ${m} micro-batches`);
    const losses: number[] = [];
    if (this.schedule === 'gpipe') await this.gpipe(op, batch, n! / m, losses);
    else await this.oneForwardOneBackward(op, batch, n! / m, losses);
    await this.syncTied(op);
    // the loss is known on the last stage; every rank gets it
    const loss = tensor([this.isLast ? losses.reduce((a, b) => a + b, 0) / m : 0], [1], { dtype: 'f64', backend: batch[0]!.backend.name });
    try {
      if (this.comm.size > 1) await this.comm.broadcast(loss, this.comm.size - 1);
      return (await loss.data())[0]!;
    } finally {
      loss.dispose();
    }
  }

  private async gpipe(op: string, batch: readonly Tensor[], mb: number, losses: number[]): Promise<void> {
    const inFlight: InFlight[] = [];
    try {
      for (let i = 0; i < this.microBatches; i++) {
        const f = await this.forwardOne(op, batch, mb, i, await this.recvForward(op, batch, mb, i), losses);
        inFlight.push(f);
        if (!this.isLast) await this.comm.send(f.out, this.comm.rank + 1, ACT(i));
      }
      while (inFlight.length) {
        const f = inFlight.pop()!;
        const grad = this.isLast ? null : await this.recv(f.out.shape, f.out.dtype, f.out.backend.name, this.comm.rank + 1, GRAD(f.index));
        const dx = this.backwardOne(f, grad);
        if (dx) {
          await this.comm.send(dx, this.comm.rank - 1, GRAD(f.index));
          dx.dispose();
        }
        disposeInFlight(f);
      }
    } finally {
      for (const f of inFlight) disposeInFlight(f);
    }
  }

  // Megatron-LM's forward_backward_pipelining_without_interleaving, with the paired sends and
  // receives of the steady phase ordered as the module comment says
  private async oneForwardOneBackward(op: string, batch: readonly Tensor[], mb: number, losses: number[]): Promise<void> {
    const m = this.microBatches;
    const { rank, size } = this.comm;
    const warmup = Math.min(size - rank - 1, m);
    const inFlight: InFlight[] = [];
    let next = 0; // the next micro-batch to run forward
    try {
      for (let w = 0; w < warmup; w++, next++) {
        const f = await this.forwardOne(op, batch, mb, next, await this.recvForward(op, batch, mb, next), losses);
        inFlight.push(f);
        if (!this.isLast) await this.comm.send(f.out, rank + 1, ACT(next));
      }
      let x = next < m ? await this.recvForward(op, batch, mb, next) : null;
      for (let s = 0; s < m - warmup; s++) {
        const f = await this.forwardOne(op, batch, mb, next, x, losses);
        inFlight.push(f);
        next++;
        x = null;
        const oldest = inFlight.shift()!;
        // send this activation on, receive the gradient of the oldest micro-batch in flight
        let grad: Tensor | null = null;
        if (!this.isLast) {
          grad = zeros([...oldest.out.shape], { dtype: oldest.out.dtype, backend: oldest.out.backend.name });
          await this.exchange(f.out, ACT(f.index), grad, GRAD(oldest.index), rank + 1);
        }
        const dx = this.backwardOne(oldest, grad);
        disposeInFlight(oldest);
        // send that gradient back, receive the next micro-batch's activation
        if (dx) {
          if (next < m) {
            x = this.inputBuffer(op, batch, mb, next);
            await this.exchange(dx, GRAD(oldest.index), x, ACT(next), rank - 1);
            x.requiresGrad = true;
          } else await this.comm.send(dx, rank - 1, GRAD(oldest.index));
          dx.dispose();
        } else if (next < m && !this.isFirst) x = await this.recvForward(op, batch, mb, next);
      }
      x?.dispose();
      while (inFlight.length) {
        const f = inFlight.shift()!;
        const grad = this.isLast ? null : await this.recv(f.out.shape, f.out.dtype, f.out.backend.name, rank + 1, GRAD(f.index));
        const dx = this.backwardOne(f, grad);
        disposeInFlight(f);
        if (dx) {
          await this.comm.send(dx, rank - 1, GRAD(f.index));
          dx.dispose();
        }
      }
    } finally {
      for (const f of inFlight) disposeInFlight(f);
    }
  }

  // send `out` and receive into `into` with `peer`: the lower rank sends first, the higher receives first
  private async exchange(out: Tensor, sendTag: number, into: Tensor, recvTag: number, peer: number): Promise<void> {
    if (this.comm.rank < peer) {
      await this.comm.send(out, peer, sendTag);
      await this.comm.recv(into, peer, recvTag);
    } else {
      await this.comm.recv(into, peer, recvTag);
      await this.comm.send(out, peer, sendTag);
    }
  }

  private activationShapeOf(op: string, slices: readonly Tensor[]): number[] {
    const s = typeof this.activationShape === 'function' ? this.activationShape(slices) : this.activationShape;
    if (!Array.isArray(s) || s.some((d) => !Number.isInteger(d) || d < 1)) throw new Error(`${op}: activationShape gave ${show(s)}, not a shape of positive integers`);
    return [...s];
  }

  // the buffer micro-batch i's activation is received into (null on the first stage)
  private inputBuffer(op: string, batch: readonly Tensor[], mb: number, i: number): Tensor {
    const slices = batch.map((t) => narrow(t, 0, i * mb, mb));
    try {
      return zeros(this.activationShapeOf(op, slices), { dtype: this.activationDtype, backend: batch[0]!.backend.name });
    } finally {
      for (const s of slices) s.dispose();
    }
  }

  private async recvForward(op: string, batch: readonly Tensor[], mb: number, i: number): Promise<Tensor | null> {
    if (this.isFirst) return null;
    const x = this.inputBuffer(op, batch, mb, i);
    await this.comm.recv(x, this.comm.rank - 1, ACT(i));
    x.requiresGrad = true;
    return x;
  }

  private async recv(shape: readonly number[], dtype: DType, backend: string, source: number, tag: number): Promise<Tensor> {
    const t = zeros([...shape], { dtype, backend });
    await this.comm.recv(t, source, tag);
    return t;
  }

  // micro-batch i's forward, keeping what its backward reads
  private async forwardOne(op: string, batch: readonly Tensor[], mb: number, i: number, x: Tensor | null, losses: number[]): Promise<InFlight> {
    const slices = batch.map((t) => noGrad(() => narrow(t, 0, i * mb, mb)));
    const mark = Math.max(...slices.map((s) => s.id), x?.id ?? -1);
    let kept: { out: Tensor; loss: Tensor; owned: Tensor[] };
    try {
      kept = tidy(() => {
        const y = this.stage.forward(x, slices);
        if (!(y instanceof Tensor)) throw new Error(`${op}: the stage's forward must return a Tensor, got ${show(y)}`);
        let out = y;
        if (this.isLast) {
          if (y.size !== 1) throw new Error(`${op}: the last stage must return the micro-batch's loss (one element), got ${desc(y)}`);
          // the mean over the whole batch is the mean of the micro-batches' means
          out = y.mul(1 / this.microBatches);
        } else {
          const want = this.activationShapeOf(op, slices);
          if (fmt(y.shape) !== fmt(want) || y.dtype !== this.activationDtype)
            throw new Error(`${op}: stage ${this.comm.rank} returned ${desc(y)}, but the activation is ${fmt(want)} ${this.activationDtype} (activationShape, activationDtype)`);
        }
        if (!out.requiresGrad) throw new Error(`${op}: the output of stage ${this.comm.rank} ${desc(out)} does not require grad (run the step with grad on, and a stage with parameters)`);
        return { out, loss: y, owned: graphTensors(out, mark) };
      });
    } catch (e) {
      for (const s of slices) s.dispose();
      x?.dispose();
      throw e;
    }
    if (this.isLast) losses.push((await kept.loss.data())[0]!);
    return { index: i, x, out: kept.out, owned: kept.owned, slices };
  }

  // micro-batch f's backward from the gradient of its output (null on the last stage: the loss);
  // returns the gradient of its input activation, or null on the first stage
  private backwardOne(f: InFlight, grad: Tensor | null): Tensor | null {
    try {
      f.out.backward(grad ?? undefined);
    } finally {
      grad?.dispose();
    }
    if (!f.x) return null;
    const dx = f.x.grad ?? zeros([...f.x.shape], { dtype: f.x.dtype, backend: f.x.backend.name });
    f.x.grad = null;
    return dx;
  }

  // sum the gradients of the tied parameters between the two stages that hold each
  private async syncTied(op: string): Promise<void> {
    for (const [i, t] of this.tied.entries()) {
      const [a, b] = t.stages;
      if (this.comm.rank !== a && this.comm.rank !== b) continue;
      const p = t.parameter!;
      const mine = p.grad ?? zeros([...p.shape], { dtype: p.dtype, backend: p.backend.name });
      const theirs = zeros([...p.shape], { dtype: mine.dtype, backend: p.backend.name });
      try {
        await this.exchange(mine, 1_000_000 + i, theirs, 1_000_000 + i, this.comm.rank === a ? b : a);
        // the same order of addition on both stages, so the copies stay bit-identical
        const [first, second] = this.comm.rank === a ? [mine, theirs] : [theirs, mine];
        const sum = noGrad(() => first.add(second));
        if (p.grad) p.grad.dispose();
        p.grad = sum;
      } catch (e) {
        throw new Error(`${op}: summing the gradient of tied[${i}] ${desc(p)} between stages ${a} and ${b} failed: ${(e as Error).message}`);
      } finally {
        if (mine !== p.grad) mine.dispose();
        theirs.dispose();
      }
    }
  }
}

function disposeInFlight(f: InFlight): void {
  for (const t of f.owned) t.dispose();
  for (const t of f.slices) t.dispose();
  f.out.dispose();
  f.x?.dispose();
}

/** Options of {@link GPTPipelineStage}. */
export interface GPTPipelineOptions {
  /** Blocks per stage (one number per rank, summing to nLayer); default: as even as possible, the earlier stages taking the extra ones. */
  layers?: readonly number[];
}

/**
 * This rank's stage of a {@link GPT} cut into `comm.size` stages: the first holds the token and
 * position embeddings and the first blocks, the last the remaining blocks, `ln_f`, the head and
 * the loss; stages between hold blocks only. It shares the model's modules (not copies): its
 * `parameters()` are the model's parameters this stage trains. With a tied head, the first and
 * last stages both hold the embedding, and {@link pipeline} sums its gradient between them.
 * The micro-batch is `[idx, targets]` (`[B, T]` i32 each); the activation is `[B, T, C]`.
 */
export class GPTPipelineStage extends Module implements PipelineStage {
  readonly model: GPT;
  readonly comm: Communicator;
  /** The model's blocks this stage runs: `[firstBlock, firstBlock + count)`. */
  readonly firstBlock: number;
  readonly blocks: ModuleList<Block>;

  constructor(model: GPT, comm: Communicator, opts: GPTPipelineOptions = {}) {
    super();
    const op = 'GPTPipelineStage';
    if (!(model instanceof GPT)) throw new Error(`${op}: model must be a GPT, got ${show(model)}`);
    const c = comm as Communicator | null;
    if (c === null || typeof c !== 'object' || typeof c.send !== 'function' || !Number.isInteger(c.size) || !Number.isInteger(c.rank))
      throw new Error(`${op}: comm must be a Communicator (from communicator()), got ${show(comm)}`);
    const o = options(op, opts, ['layers']);
    const nLayer = model.config.nLayer;
    const size = c.size;
    let layers: number[];
    if (o.layers === undefined) {
      if (nLayer < size - 2) throw new Error(`${op}: ${nLayer} layers cannot fill the ${size - 2} stages between the first and the last; use fewer ranks`);
      layers = Array.from({ length: size }, (_, r) => Math.floor(nLayer / size) + (r < nLayer % size ? 1 : 0));
    } else {
      const l = o.layers;
      if (!Array.isArray(l) || l.length !== size || l.some((n) => !Number.isInteger(n) || n < 0) || l.reduce((a, b) => a + b, 0) !== nLayer)
        throw new Error(`${op}: layers must be ${size} counts of blocks (one per rank) summing to nLayer ${nLayer}, got ${show(l)}`);
      if (l.some((n, r) => n === 0 && r > 0 && r < size - 1)) throw new Error(`${op}: a stage between the first and the last needs at least one block, got layers ${show(l)}`);
      layers = [...l];
    }
    this.model = model;
    this.comm = c;
    this.firstBlock = layers.slice(0, c.rank).reduce((a, b) => a + b, 0);
    const t = model.transformer;
    if (c.rank === 0) {
      this.registerModule('wte', t.wte);
      if (t.wpe) this.registerModule('wpe', t.wpe);
      this.registerModule('drop', t.drop);
    }
    this.blocks = this.registerModule('h', new ModuleList([...t.h].slice(this.firstBlock, this.firstBlock + layers[c.rank]!)));
    if (c.rank === size - 1) {
      this.registerModule('ln_f', t.ln_f);
      this.registerModule('lm_head', model.lm_head);
    }
  }

  /** x: the previous stage's `[B, T, C]` (null on the first stage); microBatch `[idx, targets]` → `[B, T, C]`, or the mean loss on the last stage. */
  forward(x: Tensor | null, microBatch: readonly Tensor[]): Tensor {
    const op = 'GPTPipelineStage.forward';
    if (!Array.isArray(microBatch) || microBatch.length !== 2) throw new Error(`${op}: microBatch must be [idx, targets], got ${show(microBatch)}`);
    const [idx, targets] = microBatch as [Tensor, Tensor];
    live(op, idx, targets);
    const c = this.model.config;
    if (idx.dtype !== 'i32' || idx.rank !== 2 || idx.shape[1]! > c.blockSize || targets.dtype !== 'i32' || fmt(targets.shape) !== fmt(idx.shape))
      throw new Error(`${op}: idx and targets must be [B, T] i32 with T ≤ blockSize ${c.blockSize}, got ${desc(idx)} and ${desc(targets)}`);
    const [b, t] = idx.shape as [number, number];
    const first = this.comm.rank === 0;
    if (!first && (!(x instanceof Tensor) || fmt(x.shape) !== fmt([b, t, c.nEmbd])))
      throw new Error(`${op}: stage ${this.comm.rank} needs the previous stage's activation [${b}, ${t}, ${c.nEmbd}], got ${x instanceof Tensor ? desc(x) : show(x)}`);
    return asOp(op, () => {
      const m = this.model.transformer;
      let h: Tensor;
      if (first) {
        h = m.wte.forward(idx);
        if (m.wpe) h = h.add(m.wpe.forward(arange(0, t, 1, { backend: idx.backend.name, dtype: 'i32' })));
        h = m.drop.forward(h);
      } else h = x!;
      const recompute = c.gradientCheckpointing && this.training && isGradEnabled();
      for (const block of this.blocks) h = recompute ? checkpoint((z) => block.forward(z), h) : block.forward(h);
      if (this.comm.rank !== this.comm.size - 1) return h;
      return this.model.lm_head.crossEntropy(m.ln_f.forward(h), targets);
    });
  }

  /** A {@link PipelineParallel} over this stage: the GPT's activation shape and dtype, and its tied embedding. */
  pipeline(opts: { microBatches: number; schedule?: PipelineSchedule }): PipelineParallel {
    const op = 'GPTPipelineStage.pipeline';
    const o = options(op, opts, ['microBatches', 'schedule']);
    const c = this.model.config;
    const { rank, size } = this.comm;
    const holds = rank === 0 || rank === size - 1;
    const tied: TiedParameter[] = c.tiedHead && size > 1 ? [{ stages: [0, size - 1], parameter: holds ? this.model.transformer.wte.weight : null }] : [];
    return asOp(
      op,
      () =>
        new PipelineParallel(this, this.comm, {
          microBatches: o.microBatches!,
          ...(o.schedule !== undefined ? { schedule: o.schedule } : {}),
          activationShape: ([idx]) => [idx!.shape[0]!, idx!.shape[1]!, c.nEmbd],
          activationDtype: this.model.transformer.wte.weight.dtype,
          tied,
        }),
    );
  }
}
