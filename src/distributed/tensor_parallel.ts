/**
 * Tensor parallelism as in Megatron-LM (Shoeybi et al., "Megatron-LM: Training Multi-Billion
 * Parameter Language Models Using Model Parallelism", 2019): the weight matrices of a layer are
 * split across the ranks of a communicator, each rank multiplies by its own part, and two
 * collectives put the pieces back together:
 *
 * - `f` ({@link copyToTensorParallel}): identity in the forward, all-reduce (sum) in the
 *   backward, in front of a column-parallel layer, whose replicated input feeds every rank;
 * - `g` ({@link reduceFromTensorParallel}): all-reduce in the forward, identity in the backward,
 *   after a row-parallel layer, whose ranks each hold a partial sum of the output.
 *
 * A transformer block needs one `f` and one `g` for attention (q, k and v column-parallel with
 * whole heads per rank, the output projection row-parallel) and one of each for the MLP (c_fc
 * column-parallel, c_proj row-parallel): {@link TensorParallelGPT} runs a whole {@link GPT} so,
 * with the embeddings, the layer norms and the head replicated on every rank.
 *
 * The collectives run inside autograd (which cannot await) through the communicator's
 * synchronous `allReduceNow`: under MPI, for cpu tensors of f32 or f64.
 * @module
 */
import { customFunction } from '../autograd/function.js';
import { noGrad } from '../autograd/tape.js';
import { isFloat } from '../backend/dtype.js';
import { GPT, GPTTransformer } from '../nn/gpt.js';
import type { CausalSelfAttention } from '../nn/attention.js';
import { Block } from '../nn/block.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { GELU } from '../nn/activation.js';
import { Module, ModuleList, type StateDict } from '../nn/module.js';
import { LayerNorm } from '../nn/norm.js';
import type { ParamOptions } from '../nn/init.js';
import type { MLP } from '../nn/mlp.js';
import { options, PARAM_KEYS } from '../nn/validate.js';
import { packedAttention } from '../tensor/ops/attention.js';
import { arange, zeros } from '../tensor/ops/creation.js';
import { crossEntropy, linear } from '../tensor/ops/nn.js';
import { concat, narrow, permute, reshape, split } from '../tensor/ops/shape_ops.js';
import { asOp, desc, live, relabel } from '../tensor/ops/util.js';
import { fmt } from '../tensor/shape.js';
import { Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBoolean, show } from '../tensor/validate.js';
import type { Communicator } from './mpi.js';

// `comm` checked: a Communicator (any object with a rank, a size and allReduceNow)
function checkCommunicator(op: string, comm: unknown): Communicator {
  const c = comm as Communicator | null;
  if (c === null || typeof c !== 'object' || typeof c.allReduceNow !== 'function')
    throw new Error(`${op}: comm must be a Communicator (from communicator()), got ${show(comm)}`);
  if (!Number.isInteger(c.size) || c.size < 1 || !Number.isInteger(c.rank) || c.rank < 0 || c.rank >= c.size)
    throw new Error(`${op}: comm has rank ${show(c.rank)} of size ${show(c.size)}; expected 0 ≤ rank < size`);
  return c;
}

// a live floating tensor of rank ≥ 1, for the collectives
function activation(op: string, x: unknown): Tensor {
  if (!(x instanceof Tensor)) throw new Error(`${op}: x must be a Tensor, got ${show(x)}`);
  live(op, x);
  if (!isFloat(x.dtype) || x.rank < 1) throw new Error(`${op}: x must be a floating tensor of rank ≥ 1, got ${desc(x)}`);
  return x;
}

// the sum over the ranks of a fresh copy of `x` (x itself is not changed)
function summed(x: Tensor, comm: Communicator): Tensor {
  const out = x.clone();
  comm.allReduceNow(out, 'sum');
  return out;
}

// x [..., n] from every rank, side by side: [..., n·size]. Each rank puts its block into zeros
// and the blocks are summed (adding zeros is exact), since only the all-reduce runs synchronously.
function gathered(x: Tensor, comm: Communicator): Tensor {
  const n = x.shape[x.rank - 1]!;
  const lead = x.shape.slice(0, -1);
  const place = { dtype: x.dtype, backend: x.backend.name };
  const parts: Tensor[] = [];
  if (comm.rank > 0) parts.push(zeros([...lead, comm.rank * n], place));
  parts.push(x);
  if (comm.rank < comm.size - 1) parts.push(zeros([...lead, (comm.size - comm.rank - 1) * n], place));
  const out = parts.length === 1 ? x.clone() : concat(parts, -1);
  for (const p of parts) if (p !== x) p.dispose();
  comm.allReduceNow(out, 'sum');
  return out;
}

// this rank's block of the last axis of x [..., n·size] → [..., n]
function ownBlock(op: string, x: Tensor, comm: Communicator): Tensor {
  const width = x.shape[x.rank - 1]!;
  if (width % comm.size !== 0) throw new Error(`${op}: the last axis of x ${desc(x)} is not divisible by the ${comm.size} ranks`);
  const n = width / comm.size;
  return narrow(x, -1, comm.rank * n, n);
}

/**
 * Megatron's `f`: `x` unchanged in the forward; in the backward the gradient is summed over the
 * ranks. Put it where a replicated activation enters a tensor-parallel region (a column-parallel
 * layer): each rank's part of the region contributes a part of x's gradient.
 */
export function copyToTensorParallel(x: Tensor, comm: Communicator): Tensor {
  const op = 'copyToTensorParallel';
  activation(op, x);
  const c = checkCommunicator(op, comm);
  if (c.size === 1) return x;
  return customFunction(op, [x], (t) => t, (dy) => [summed(dy, c)]);
}

/**
 * Megatron's `g`: `x` summed over the ranks in the forward (each holds a partial sum, as after a
 * row-parallel layer); the gradient passes unchanged in the backward.
 */
export function reduceFromTensorParallel(x: Tensor, comm: Communicator): Tensor {
  const op = 'reduceFromTensorParallel';
  activation(op, x);
  const c = checkCommunicator(op, comm);
  if (c.size === 1) return x;
  return customFunction(op, [x], (t) => summed(t, c), (dy) => [dy]);
}

/**
 * This rank's block of the last axis of a replicated `x` `[..., n·size]` → `[..., n]`; in the
 * backward the ranks' gradient blocks are gathered, so every rank gets x's whole gradient.
 */
export function scatterToTensorParallel(x: Tensor, comm: Communicator): Tensor {
  const op = 'scatterToTensorParallel';
  activation(op, x);
  const c = checkCommunicator(op, comm);
  ownBlock(op, x, c).dispose();
  if (c.size === 1) return x;
  return customFunction(op, [x], (t) => ownBlock(op, t, c), (dy) => [gathered(dy, c)]);
}

/**
 * The ranks' `x` `[..., n]` side by side on the last axis, rank order: `[..., n·size]`; in the
 * backward each rank keeps its own block of the gradient.
 */
export function gatherFromTensorParallel(x: Tensor, comm: Communicator): Tensor {
  const op = 'gatherFromTensorParallel';
  activation(op, x);
  const c = checkCommunicator(op, comm);
  if (c.size === 1) return x;
  return customFunction(op, [x], (t) => gathered(t, c), (dy) => [ownBlock(op, dy, c)]);
}

/** Options of {@link ColumnParallelLinear} and {@link RowParallelLinear}. */
export interface ParallelLinearOptions extends ParamOptions {
  /** A learned bias (default true). */
  bias?: boolean;
  /** Initialise the weight from N(0, std) and the bias with zeros, as {@link Linear}; without it, U(−1/√in, 1/√in). */
  std?: number;
}

/** Options of {@link ColumnParallelLinear}. */
export interface ColumnParallelOptions extends ParallelLinearOptions {
  /** Gather the ranks' output blocks into the whole `[..., out]` on every rank (default false: `[..., out/size]`). */
  gatherOutput?: boolean;
}

/** Options of {@link RowParallelLinear}. */
export interface RowParallelOptions extends ParallelLinearOptions {
  /**
   * The input is already this rank's block `[..., in/size]` (default true: it comes from a
   * column-parallel layer); false: the whole input `[..., in]` is given and split here.
   */
  inputIsParallel?: boolean;
}

// the rows [start, start + n) (axis 0) or columns (axis 1) of `t`, as a new leaf tensor
function shardOf(t: Tensor, axis: number, start: number, n: number): Tensor {
  return noGrad(() => {
    const part = narrow(t, axis, start, n);
    const own = part.clone();
    part.dispose();
    return own;
  });
}

// the Linear a parallel layer is cut from: `source` checked, or a new one from the options
function sourceLinear(op: string, inFeatures: number, outFeatures: number, opts: ParallelLinearOptions, source?: Linear): Linear {
  if (source !== undefined) {
    if (!(source instanceof Linear)) throw new Error(`${op}: linear must be a Linear, got ${show(source)}`);
    live(op, source.weight);
    if (source.lora) throw new Error(`${op}: the Linear has a LoRA adapter; merge it (mergeLoRA) or remove it first`);
    return source;
  }
  try {
    return new Linear(inFeatures, outFeatures, opts);
  } catch (e) {
    throw relabel(op, e);
  }
}

/**
 * A Linear layer `[..., in]` → `[..., out]` whose weight is split along the output features:
 * rank r holds rows `[r·out/size, (r+1)·out/size)` of the whole `[out, in]` weight (and that block
 * of the bias) and computes that block of the output. Its input passes through
 * {@link copyToTensorParallel}, so the input's gradient is the sum of every rank's part.
 *
 * Built with `new`, every rank draws the whole weight as {@link Linear} would (the same
 * generator seed on every rank gives one layer) and keeps its block; {@link fromLinear} cuts an
 * existing layer.
 *
 * @example
 * const fc = ColumnParallelLinear.fromLinear(mlp.c_fc, comm); // weight [4C/size, C]
 * const h = fc.forward(x); // x [B, T, C] (the same on every rank) → [B, T, 4C/size]
 */
export class ColumnParallelLinear extends Module {
  readonly inFeatures: number;
  /** The whole layer's output features (a multiple of the ranks). */
  readonly outFeatures: number;
  /** This rank's output features: outFeatures / size. */
  readonly outPerRank: number;
  readonly comm: Communicator;
  readonly gatherOutput: boolean;

  constructor(inFeatures: number, outFeatures: number, comm: Communicator, opts: ColumnParallelOptions = {}) {
    super();
    const op = 'ColumnParallelLinear';
    const c = (this.comm = checkCommunicator(op, comm));
    const o = options(op, opts, [...PARAM_KEYS, 'bias', 'std', 'gatherOutput']);
    this.gatherOutput = o.gatherOutput === undefined ? false : checkBoolean(op, 'gatherOutput', o.gatherOutput);
    const { gatherOutput: _, ...linearOpts } = o;
    const src = (opts as { [SOURCE]?: Linear })[SOURCE];
    if (src === undefined && Number.isInteger(outFeatures) && outFeatures % c.size !== 0)
      throw new Error(`${op}: outFeatures ${outFeatures} is not divisible by the ${c.size} ranks of the communicator`);
    const full = sourceLinear(op, inFeatures, outFeatures, linearOpts, src);
    try {
      this.inFeatures = full.inFeatures;
      this.outFeatures = full.outFeatures;
      if (this.outFeatures % c.size !== 0)
        throw new Error(`${op}: outFeatures ${this.outFeatures} (weight ${desc(full.weight)}) is not divisible by the ${c.size} ranks of the communicator`);
      const n = (this.outPerRank = this.outFeatures / c.size);
      this.registerParameter('weight', shardOf(full.weight, 0, c.rank * n, n));
      if (full.bias) this.registerParameter('bias', shardOf(full.bias, 0, c.rank * n, n));
    } finally {
      if (full !== src) full.dispose();
    }
  }

  /**
   * This rank's part of `linear` (every rank passes the same layer): rows
   * `[rank·out/size, (rank+1)·out/size)` of its weight and bias, copied. `opts.gatherOutput` as
   * the constructor's.
   */
  static fromLinear(linear: Linear, comm: Communicator, opts: { gatherOutput?: boolean } = {}): ColumnParallelLinear {
    const op = 'ColumnParallelLinear.fromLinear';
    const o = options(op, opts, ['gatherOutput']);
    const l = sourceLinear(op, 0, 0, {}, linear);
    return asOp(op, () => new ColumnParallelLinear(l.inFeatures, l.outFeatures, comm, { ...o, [SOURCE]: l } as ColumnParallelOptions));
  }

  /** This rank's `[out/size, in]`. */
  get weight(): Tensor {
    return this.getParameter('weight');
  }

  /** This rank's `[out/size]`, or null without a bias. */
  get bias(): Tensor | null {
    return this.hasParameter('bias') ? this.getParameter('bias') : null;
  }

  /** x `[..., in]` (the same on every rank) → `[..., out/size]`, or `[..., out]` with gatherOutput. */
  forward(x: Tensor): Tensor {
    const op = 'ColumnParallelLinear.forward';
    live(op, x);
    if (x.rank < 1 || x.shape[x.rank - 1] !== this.inFeatures) throw new Error(`${op}: expected x [..., ${this.inFeatures}], got ${desc(x)}`);
    return asOp(op, () => {
      const y = linear(copyToTensorParallel(x, this.comm), this.weight, this.bias);
      return this.gatherOutput ? gatherFromTensorParallel(y, this.comm) : y;
    });
  }

  /** The whole layer as a new {@link Linear} (the ranks' blocks gathered; every rank must call it). */
  async toLinear(): Promise<Linear> {
    return wholeLinear('ColumnParallelLinear.toLinear', this.comm, this.inFeatures, this.outFeatures, this.weight, this.bias, 0);
  }
}

/**
 * A Linear layer `[..., in]` → `[..., out]` whose weight is split along the input features: rank
 * r holds columns `[r·in/size, (r+1)·in/size)` of the whole `[out, in]` weight and multiplies
 * that block of the input; the partial outputs are summed over the ranks
 * ({@link reduceFromTensorParallel}) and the bias, held whole by every rank, is added once after
 * the sum.
 *
 * @example
 * const proj = RowParallelLinear.fromLinear(mlp.c_proj, comm); // weight [C, 4C/size]
 * const y = proj.forward(h); // h [B, T, 4C/size] (a column-parallel output) → [B, T, C] on every rank
 */
export class RowParallelLinear extends Module {
  /** The whole layer's input features (a multiple of the ranks). */
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** This rank's input features: inFeatures / size. */
  readonly inPerRank: number;
  readonly comm: Communicator;
  readonly inputIsParallel: boolean;

  constructor(inFeatures: number, outFeatures: number, comm: Communicator, opts: RowParallelOptions = {}) {
    super();
    const op = 'RowParallelLinear';
    const c = (this.comm = checkCommunicator(op, comm));
    const o = options(op, opts, [...PARAM_KEYS, 'bias', 'std', 'inputIsParallel']);
    this.inputIsParallel = o.inputIsParallel === undefined ? true : checkBoolean(op, 'inputIsParallel', o.inputIsParallel);
    const { inputIsParallel: _, ...linearOpts } = o;
    const src = (opts as { [SOURCE]?: Linear })[SOURCE];
    if (src === undefined && Number.isInteger(inFeatures) && inFeatures % c.size !== 0)
      throw new Error(`${op}: inFeatures ${inFeatures} is not divisible by the ${c.size} ranks of the communicator`);
    const full = sourceLinear(op, inFeatures, outFeatures, linearOpts, src);
    try {
      this.inFeatures = full.inFeatures;
      this.outFeatures = full.outFeatures;
      if (this.inFeatures % c.size !== 0)
        throw new Error(`${op}: inFeatures ${this.inFeatures} (weight ${desc(full.weight)}) is not divisible by the ${c.size} ranks of the communicator`);
      const n = (this.inPerRank = this.inFeatures / c.size);
      this.registerParameter('weight', shardOf(full.weight, 1, c.rank * n, n));
      if (full.bias) this.registerParameter('bias', shardOf(full.bias, 0, 0, this.outFeatures));
    } finally {
      if (full !== src) full.dispose();
    }
  }

  /**
   * This rank's part of `linear` (every rank passes the same layer): columns
   * `[rank·in/size, (rank+1)·in/size)` of its weight, and the whole bias, copied.
   * `opts.inputIsParallel` as the constructor's.
   */
  static fromLinear(linear: Linear, comm: Communicator, opts: { inputIsParallel?: boolean } = {}): RowParallelLinear {
    const op = 'RowParallelLinear.fromLinear';
    const o = options(op, opts, ['inputIsParallel']);
    const l = sourceLinear(op, 0, 0, {}, linear);
    return asOp(op, () => new RowParallelLinear(l.inFeatures, l.outFeatures, comm, { ...o, [SOURCE]: l } as RowParallelOptions));
  }

  /** This rank's `[out, in/size]`. */
  get weight(): Tensor {
    return this.getParameter('weight');
  }

  /** `[out]` (the same on every rank), or null without a bias. */
  get bias(): Tensor | null {
    return this.hasParameter('bias') ? this.getParameter('bias') : null;
  }

  /** x `[..., in/size]` (this rank's block; `[..., in]` without inputIsParallel) → `[..., out]`, the same on every rank. */
  forward(x: Tensor): Tensor {
    const op = 'RowParallelLinear.forward';
    live(op, x);
    const want = this.inputIsParallel ? this.inPerRank : this.inFeatures;
    if (x.rank < 1 || x.shape[x.rank - 1] !== want)
      throw new Error(`${op}: expected x [..., ${want}]${this.inputIsParallel ? ` (this rank's block of ${this.inFeatures} input features)` : ''}, got ${desc(x)}`);
    return asOp(op, () => {
      const xin = this.inputIsParallel ? x : scatterToTensorParallel(x, this.comm);
      const y = reduceFromTensorParallel(linear(xin, this.weight, null), this.comm);
      return this.bias ? y.add(this.bias) : y;
    });
  }

  /** The whole layer as a new {@link Linear} (the ranks' blocks gathered; every rank must call it). */
  async toLinear(): Promise<Linear> {
    return wholeLinear('RowParallelLinear.toLinear', this.comm, this.inFeatures, this.outFeatures, this.weight, this.bias, 1);
  }
}

// marks the Linear a parallel layer is cut from, among its constructor's options
const SOURCE = Symbol('source');

// the ranks' weight blocks (split along `axis`) joined: [out, in]
async function joinBlocks(comm: Communicator, w: Tensor, axis: 0 | 1): Promise<Tensor> {
  const all = await comm.allGather(w); // [size, rows, cols]
  try {
    return noGrad(() => {
      const [p, r, c] = all.shape as [number, number, number];
      if (axis === 0) return reshape(all, [p * r, c]).clone();
      const t = permute(all, [1, 0, 2]); // [rows, size, cols]
      const out = reshape(t, [r, p * c]).clone();
      t.dispose();
      return out;
    });
  } finally {
    all.dispose();
  }
}

// a column vector view of a bias [n] → [n, 1]
function column(bias: Tensor): Tensor {
  return noGrad(() => bias.reshape([bias.shape[0]!, 1]));
}

async function wholeLinear(op: string, comm: Communicator, inF: number, outF: number, w: Tensor, bias: Tensor | null, axis: 0 | 1): Promise<Linear> {
  const weight = await joinBlocks(comm, w, axis);
  let b: Tensor | null = null;
  if (bias && axis === 0) {
    const col = column(bias);
    b = await joinBlocks(comm, col, 0).finally(() => col.dispose());
  }
  try {
    const out = new Linear(inF, outF, { weight, bias: bias !== null });
    if (bias) noGrad(() => void out.bias!.copy_(b ? b.reshape([outF]) : bias));
    return out;
  } catch (e) {
    weight.dispose();
    throw relabel(op, e);
  } finally {
    b?.dispose();
  }
}

/** q, k and v of a fused `c_attn` output: rows `[H·D | Hkv·D | Hkv·D]`. */
interface QkvLayout {
  q: number;
  kv: number;
}

// rows [q | k | v] → [q_0 k_0 v_0 | q_1 k_1 v_1 | …]: rank r's heads of each side by side
function qkvByRank(t: Tensor, l: QkvLayout, size: number): Tensor {
  return noGrad(() => {
    const [q, k, v] = split(t, [l.q, l.kv, l.kv], 0) as [Tensor, Tensor, Tensor];
    const parts = [q, k, v].map((x) => split(x, x.shape[0]! / size, 0));
    const out = concat(
      Array.from({ length: size }, (_, r) => parts.map((p) => p[r]!)).flat(),
      0,
    );
    for (const x of [q, k, v, ...parts.flat()]) x.dispose();
    return out;
  });
}

// the inverse of qkvByRank
function qkvFromRanks(t: Tensor, l: QkvLayout, size: number): Tensor {
  return noGrad(() => {
    const blocks = split(t, t.shape[0]! / size, 0).map((b) => split(b, [l.q / size, l.kv / size, l.kv / size], 0));
    const out = concat([0, 1, 2].flatMap((i) => blocks.map((b) => b[i]!)), 0);
    for (const x of blocks.flat()) x.dispose();
    return out;
  });
}

// a copy of a replicated module's parameters into a fresh module of the same kind
function copyParams<M extends Module>(to: M, from: Module): M {
  noGrad(() => {
    const src = new Map(from.namedParameters());
    for (const [name, p] of to.namedParameters()) p.copy_(src.get(name)!);
  });
  return to;
}

function copyNorm(n: LayerNorm): LayerNorm {
  const w = n.weight;
  return copyParams(new LayerNorm(n.dim, { eps: n.eps, bias: n.bias !== null, elementwiseAffine: w !== null, ...(w ? { dtype: w.dtype, backend: w.backend.name } : {}) }), n);
}

function copyEmbedding(e: Embedding): Embedding {
  // a generator of its own for the values overwritten at once, so the default stream is not advanced
  return copyParams(new Embedding(e.numEmbeddings, e.embeddingDim, { dtype: e.weight.dtype, backend: e.weight.backend.name, generator: new Generator(0) }), e);
}

/**
 * GPT-2's attention with its heads split over the ranks: rank r computes heads
 * `[r·H/size, (r+1)·H/size)` (and the key/value heads they read, grouped-query included), with
 * `c_attn` column-parallel (this rank's q, k and v rows of the fused projection) and `c_proj`
 * row-parallel. x `[B, T, C]` → `[B, T, C]`, the same on every rank.
 */
export class TensorParallelAttention extends Module {
  readonly nEmbd: number;
  /** Query heads of this rank. */
  readonly headsPerRank: number;
  /** Key/value heads of this rank. */
  readonly kvHeadsPerRank: number;
  readonly window: number | null;
  readonly comm: Communicator;
  readonly c_attn: ColumnParallelLinear;
  readonly c_proj: RowParallelLinear;
  private readonly layout: QkvLayout;

  /** This rank's part of `attn` (see the class comment); nHead and kvHeads must be multiples of the ranks. */
  constructor(attn: CausalSelfAttention, comm: Communicator) {
    super();
    const op = 'TensorParallelAttention';
    const c = (this.comm = checkCommunicator(op, comm));
    const a = attn;
    if (a === null || typeof a !== 'object' || !(a.c_attn instanceof Linear)) throw new Error(`${op}: attn must be a CausalSelfAttention, got ${show(attn)}`);
    if (a.nHead % c.size !== 0 || a.kvHeads % c.size !== 0)
      throw new Error(`${op}: ${a.nHead} heads (${a.kvHeads} key/value heads) cannot be split over ${c.size} ranks: both must be multiples of it`);
    if (a.getModule('rotary')) throw new Error(`${op}: rotary position embeddings are not supported with tensor parallelism`);
    if (a.resid_dropout.p > 0) throw new Error(`${op}: dropout ${a.resid_dropout.p} is not supported with tensor parallelism (each rank would draw its own masks); use dropout 0`);
    this.nEmbd = a.nEmbd;
    this.headsPerRank = a.nHead / c.size;
    this.kvHeadsPerRank = a.kvHeads / c.size;
    this.window = a.window;
    const layout = (this.layout = { q: a.nHead * a.headDim, kv: a.kvHeads * a.headDim });
    // c_attn's rows regrouped so that each rank's q, k and v heads are one block of rows
    const w = qkvByRank(a.c_attn.weight, layout, c.size);
    const col = a.c_attn.bias ? column(a.c_attn.bias) : null;
    const b = col ? qkvByRank(col, layout, c.size) : null;
    col?.dispose();
    const byRank = new Linear(a.c_attn.inFeatures, a.c_attn.outFeatures, { weight: w, bias: b !== null });
    try {
      if (b) noGrad(() => void byRank.bias!.copy_(b.reshape([a.c_attn.outFeatures])));
      this.c_attn = this.registerModule('c_attn', ColumnParallelLinear.fromLinear(byRank, c));
      this.c_proj = this.registerModule('c_proj', RowParallelLinear.fromLinear(a.c_proj, c));
    } catch (e) {
      this.dispose();
      throw relabel(op, e);
    } finally {
      byRank.dispose();
      b?.dispose();
    }
  }

  /** x `[B, T, C]` (the same on every rank) → `[B, T, C]`, causal. */
  forward(x: Tensor): Tensor {
    const op = 'TensorParallelAttention.forward';
    live(op, x);
    if (x.rank !== 3 || x.shape[2] !== this.nEmbd) throw new Error(`${op}: expected x [B, T, ${this.nEmbd}], got ${desc(x)}`);
    return asOp(op, () => {
      const qkv = this.c_attn.forward(x); // [B, T, (H + 2·Hkv)·D / size]: this rank's heads
      const y = packedAttention(qkv, this.headsPerRank, { kvHeads: this.kvHeadsPerRank, isCausal: true, window: this.window }); // [B, T, C/size]
      return this.c_proj.forward(y);
    });
  }

  /** The whole `c_attn` and `c_proj` as GPT names them (`c_attn.weight`, …), gathered from the ranks. */
  async gatherStateDict(): Promise<StateDict> {
    const out: StateDict = {};
    const attn = await this.c_attn.toLinear();
    const proj = await this.c_proj.toLinear();
    try {
      out['c_attn.weight'] = qkvFromRanks(attn.weight, this.layout, this.comm.size);
      if (attn.bias) {
        const col = column(attn.bias);
        const whole = qkvFromRanks(col, this.layout, this.comm.size);
        out['c_attn.bias'] = noGrad(() => whole.reshape([attn.outFeatures]));
        col.dispose();
        whole.dispose();
      }
      out['c_proj.weight'] = noGrad(() => proj.weight.clone());
      if (proj.bias) out['c_proj.bias'] = noGrad(() => proj.bias!.clone());
    } finally {
      attn.dispose();
      proj.dispose();
    }
    return out;
  }
}

/** GPT-2's MLP with c_fc column-parallel and c_proj row-parallel: x `[..., C]` → `[..., C]`, the same on every rank. */
export class TensorParallelMLP extends Module {
  readonly comm: Communicator;
  readonly c_fc: ColumnParallelLinear;
  readonly act: GELU;
  readonly c_proj: RowParallelLinear;

  /** This rank's part of `mlp`; its hidden width must be a multiple of the ranks. */
  constructor(mlp: MLP, comm: Communicator) {
    super();
    const op = 'TensorParallelMLP';
    const c = (this.comm = checkCommunicator(op, comm));
    if (mlp === null || typeof mlp !== 'object' || !(mlp.c_fc instanceof Linear)) throw new Error(`${op}: mlp must be an MLP, got ${show(mlp)}`);
    if (mlp.dropout.p > 0) throw new Error(`${op}: dropout ${mlp.dropout.p} is not supported with tensor parallelism; use dropout 0`);
    if (mlp.c_fc.outFeatures % c.size !== 0) throw new Error(`${op}: the hidden width ${mlp.c_fc.outFeatures} is not divisible by the ${c.size} ranks of the communicator`);
    try {
      this.c_fc = this.registerModule('c_fc', ColumnParallelLinear.fromLinear(mlp.c_fc, c));
      this.act = this.registerModule('act', new GELU({ approximate: mlp.act.approximate }));
      this.c_proj = this.registerModule('c_proj', RowParallelLinear.fromLinear(mlp.c_proj, c));
    } catch (e) {
      this.dispose();
      throw relabel(op, e);
    }
  }

  /** x `[..., C]` → `[..., C]`. */
  forward(x: Tensor): Tensor {
    return asOp('TensorParallelMLP.forward', () => this.c_proj.forward(this.act.forward(this.c_fc.forward(x))));
  }

  /** The whole `c_fc` and `c_proj` as GPT names them, gathered from the ranks. */
  async gatherStateDict(): Promise<StateDict> {
    const out: StateDict = {};
    for (const name of ['c_fc', 'c_proj'] as const) {
      const l = await this[name].toLinear();
      out[`${name}.weight`] = noGrad(() => l.weight.clone());
      if (l.bias) out[`${name}.bias`] = noGrad(() => l.bias!.clone());
      l.dispose();
    }
    return out;
  }
}

/**
 * A GPT-2 {@link Block} split over the ranks: `x + attn(ln_1(x))`, then `+ mlp(ln_2(x))`, with
 * tensor-parallel attention and MLP and the layer norms replicated (copied from the block).
 */
export class TensorParallelBlock extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: TensorParallelAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: TensorParallelMLP;

  /** This rank's part of `block` (every rank passes the same block). */
  constructor(block: Block, comm: Communicator) {
    super();
    const op = 'TensorParallelBlock';
    if (!(block instanceof Block)) throw new Error(`${op}: block must be a Block, got ${show(block)}`);
    checkCommunicator(op, comm);
    if (block.getModule('adapter')) throw new Error(`${op}: the block has an adapter; remove it (setAdapter(null)) first`);
    try {
      this.ln_1 = this.registerModule('ln_1', copyNorm(block.ln_1));
      this.attn = this.registerModule('attn', new TensorParallelAttention(block.attn, comm));
      this.ln_2 = this.registerModule('ln_2', copyNorm(block.ln_2));
      this.mlp = this.registerModule('mlp', new TensorParallelMLP(block.mlp, comm));
    } catch (e) {
      this.dispose();
      throw relabel(op, e);
    }
  }

  /** x `[B, T, C]` → `[B, T, C]`, the same on every rank. */
  forward(x: Tensor): Tensor {
    const op = 'TensorParallelBlock.forward';
    live(op, x);
    return asOp(op, () => {
      const a = x.add(this.attn.forward(this.ln_1.forward(x)));
      return a.add(this.mlp.forward(this.ln_2.forward(a)));
    });
  }
}

/**
 * The transformer body of a {@link TensorParallelGPT}: replicated `wte`, `wpe` and `ln_f`, and
 * the tensor-parallel blocks `h`, named as {@link GPT}'s so the parameter names match. Built by
 * {@link TensorParallelGPT.fromGPT}; the model's forward runs it.
 */
export class TensorParallelTransformer extends Module {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly h: ModuleList<TensorParallelBlock>;
  readonly ln_f: LayerNorm;

  /** This rank's part of a GPT's body `t` (learned positions; every rank passes the same one). */
  constructor(t: GPTTransformer, comm: Communicator) {
    super();
    const op = 'TensorParallelTransformer';
    if (!(t instanceof GPTTransformer)) throw new Error(`${op}: t must be a GPTTransformer (a GPT's transformer), got ${show(t)}`);
    checkCommunicator(op, comm);
    if (!t.wpe) throw new Error(`${op}: rotary position embeddings are not supported with tensor parallelism`);
    try {
      this.wte = this.registerModule('wte', copyEmbedding(t.wte));
      this.wpe = this.registerModule('wpe', copyEmbedding(t.wpe));
      this.h = this.registerModule('h', new ModuleList<TensorParallelBlock>());
      for (const b of t.h) this.h.append(new TensorParallelBlock(b, comm));
      this.ln_f = this.registerModule('ln_f', copyNorm(t.ln_f));
    } catch (e) {
      this.dispose();
      throw relabel(op, e);
    }
  }

  /** Not called on its own: {@link TensorParallelGPT.forward} runs the body. */
  forward(): never {
    throw new Error('TensorParallelTransformer.forward: run the TensorParallelGPT that holds it');
  }
}

/**
 * A {@link GPT} run tensor-parallel over the ranks of `comm` (Megatron-LM): every block's
 * attention heads and MLP hidden units are split over the ranks, the embeddings, layer norms and
 * head are replicated, and every rank computes the same logits and loss. Parameters are named as
 * the GPT's (`transformer.h.0.attn.c_attn.weight`, …), the split ones holding this rank's block;
 * {@link gatherStateDict} joins them into the GPT's shapes. Train with any optimizer over
 * `parameters()` on every rank: the replicated parameters get the same gradients everywhere.
 *
 * Supported: learned positions, biases or not, tied or untied head, grouped-query heads, sliding
 * windows. Not supported (an Error says so): rotary embeddings, dropout, gradient checkpointing,
 * LoRA adapters, bottleneck adapters.
 *
 * @example
 * const model = new GPT(config, { generator: new Generator(1) }); // the same on every rank
 * const tp = TensorParallelGPT.fromGPT(model, communicator());
 * const { loss } = tp.forward(idx, targets); // idx, targets [B, T] i32, the same on every rank
 */
export class TensorParallelGPT extends Module {
  readonly config: GPT['config'];
  readonly comm: Communicator;
  readonly transformer: TensorParallelTransformer;
  /** The head, `[V, C]`: the token embedding itself when the config ties them. */
  readonly lm_head: Linear;

  private constructor(model: GPT, comm: Communicator) {
    super();
    this.config = model.config;
    this.comm = comm;
    this.transformer = this.registerModule('transformer', new TensorParallelTransformer(model.transformer, comm));
    try {
      const c = model.config;
      this.lm_head = this.registerModule(
        'lm_head',
        c.tiedHead
          ? new Linear(c.nEmbd, c.vocabSize, { bias: false, weight: this.transformer.wte.weight })
          : new Linear(c.nEmbd, c.vocabSize, { bias: false, weight: noGrad(() => model.lm_head.weight.clone()) }),
      );
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /**
   * This rank's part of `model` (every rank must pass the same model: build it from the same
   * generator seed, or broadcast rank 0's parameters first). The model is copied, not shared.
   */
  static fromGPT(model: GPT, comm: Communicator): TensorParallelGPT {
    const op = 'TensorParallelGPT.fromGPT';
    if (!(model instanceof GPT)) throw new Error(`${op}: model must be a GPT, got ${show(model)}`);
    const c = checkCommunicator(op, comm);
    const cfg = model.config;
    if (cfg.nHead % c.size !== 0) throw new Error(`${op}: nHead ${cfg.nHead} is not divisible by the ${c.size} ranks of the communicator`);
    if (cfg.kvHeads % c.size !== 0) throw new Error(`${op}: kvHeads ${cfg.kvHeads} is not divisible by the ${c.size} ranks of the communicator`);
    if (cfg.rope) throw new Error(`${op}: rotary position embeddings (config.rope) are not supported with tensor parallelism`);
    if (cfg.dropout > 0) throw new Error(`${op}: config.dropout ${cfg.dropout} is not supported with tensor parallelism; use 0`);
    if (cfg.gradientCheckpointing) throw new Error(`${op}: config.gradientCheckpointing is not supported with tensor parallelism`);
    for (const [name, m] of model.namedModules())
      if (m instanceof Linear && m.lora) throw new Error(`${op}: ${name} has a LoRA adapter; merge or remove it first`);
    try {
      return new TensorParallelGPT(model, c);
    } catch (e) {
      throw relabel(op, e);
    }
  }

  /**
   * idx `[B, T]` i32 → `{ logits [B, T, V], loss? }` (mean cross-entropy over targets that are not
   * −100), the same on every rank; every rank passes the same idx and targets.
   */
  forward(idx: Tensor, targets?: Tensor | null): { logits: Tensor; loss?: Tensor } {
    const op = 'TensorParallelGPT.forward';
    live(op, idx);
    const c = this.config;
    if (idx.dtype !== 'i32' || idx.rank !== 2) throw new Error(`${op}: idx must be [B, T] i32 token ids, got ${desc(idx)}`);
    const t = idx.shape[1]!;
    if (t < 1 || t > c.blockSize) throw new Error(`${op}: idx ${fmt(idx.shape)} must have 1 to blockSize (${c.blockSize}) positions`);
    const hasTargets = targets !== undefined && targets !== null;
    if (hasTargets) {
      live(op, targets);
      if (targets.dtype !== 'i32' || fmt(targets.shape) !== fmt(idx.shape)) throw new Error(`${op}: targets must be ${fmt(idx.shape)} i32 like idx, got ${desc(targets)}`);
    }
    return asOp(op, () => {
      const m = this.transformer;
      const pos = arange(0, t, 1, { backend: idx.backend.name, dtype: 'i32' });
      let x = m.wte.forward(idx).add(m.wpe.forward(pos)); // [B, T, C]
      for (const block of m.h) x = block.forward(x);
      const logits = this.lm_head.forward(m.ln_f.forward(x));
      return hasTargets ? { logits, loss: crossEntropy(logits, targets) } : { logits };
    });
  }

  /**
   * Every parameter of the whole GPT, named and shaped as {@link GPT}'s (`loadStateDict` takes
   * it), the split ones gathered from the ranks: new tensors the caller owns. Every rank must
   * call it (it runs collectives).
   */
  async gatherStateDict(): Promise<StateDict> {
    const out: StateDict = {};
    const local = this.namedParameters();
    const split = new Set<string>();
    for (const [i, block] of [...this.transformer.h].entries()) {
      for (const [part, m] of [['attn', block.attn], ['mlp', block.mlp]] as const) {
        const sd = await m.gatherStateDict();
        for (const [k, v] of Object.entries(sd)) {
          const name = `transformer.h.${i}.${part}.${k}`;
          out[name] = v;
          split.add(name);
        }
      }
    }
    for (const [name, p] of local) if (!split.has(name)) out[name] = noGrad(() => p.clone());
    return out;
  }
}
