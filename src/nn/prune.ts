/**
 * Magnitude pruning (as `torch.nn.utils.prune` and NVIDIA's ASP do it): zero the weights of
 * smallest magnitude and keep them zero while fine-tuning.
 *
 * - `'global'`: one threshold over all chosen parameters (`prune.global_unstructured` with
 *   `L1Unstructured`): exactly `round(amount · N)` of their N weights become zero.
 * - `'layer'`: each parameter its own threshold (`prune.l1_unstructured` per layer): exactly
 *   `round(amount · n)` of each parameter's n weights.
 * - `'2:4'`: semi-structured sparsity (Ampere's sparse tensor cores): in every group of 4
 *   consecutive weights along the input dimension (the last axis of a Linear's `[out, in]`
 *   weight), the 2 of smallest magnitude become zero.
 *
 * Ties in magnitude are broken by position (the earlier weight is pruned first, except in 2:4
 * groups, where the earlier one is kept), so the counts are exact. The masks are bool tensors (true =
 * kept) held by a {@link Pruner}, not registered on the model, so the model's state dict and
 * checkpoints keep their keys; {@link Pruner.apply} zeroes the pruned weights again and runs
 * after every optimizer step ({@link Pruner.step}, or {@link Pruner.callback} for `train()`).
 * Choosing the weights reads them (a sync); applying the masks never does.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { isFloat } from '../backend/dtype.js';
import { keep, tidy } from '../tensor/memory.js';
import { tensor } from '../tensor/ops/creation.js';
import { where } from '../tensor/ops/elementwise.js';
import { stack } from '../tensor/ops/shape_ops.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { checkChoice, checkKeys, checkNumber, show } from '../tensor/validate.js';
import { Embedding } from './embedding.js';
import { Linear } from './linear.js';
import { Module } from './module.js';

/** How {@link prune} chooses the weights to zero. */
export type PruneMethod = 'global' | 'layer' | '2:4';

/** Which parameters {@link prune} and {@link sparsity} look at. */
export interface PruneSelection {
  /**
   * Dotted names of parameters, or module paths covering every parameter below them
   * (`'transformer.h.0'`). Default: the 2-D weights of the Linear layers, leaving out any that
   * is an Embedding's weight (GPT-2's tied `lm_head`); no norms, biases or embeddings.
   */
  params?: readonly string[];
  /** Names or module paths to leave out of the choice (`['lm_head']`). */
  exclude?: readonly string[];
}

/** Options of {@link prune}. */
export interface PruneOptions extends PruneSelection {
  /** `'global'` (default), `'layer'` or `'2:4'`. */
  method?: PruneMethod;
  /**
   * The fraction of the chosen weights to zero, in [0, 1]: required for `'global'` and
   * `'layer'`; `'2:4'` always zeroes half (it takes 0.5 or nothing).
   */
  amount?: number;
}

/** Zeros of one parameter, as {@link sparsity} counts them. */
export interface ParamSparsity {
  name: string;
  shape: number[];
  /** Elements exactly zero. */
  zeros: number;
  size: number;
  /** zeros / size (0 for an empty parameter). */
  sparsity: number;
}

/** What {@link sparsity} and {@link Pruner.sparsity} report: each parameter and all together. */
export interface SparsityReport {
  params: ParamSparsity[];
  zeros: number;
  size: number;
  /** Σ zeros / Σ size over the parameters. */
  sparsity: number;
}

/** What {@link Pruner.step} needs of an optimizer. */
export interface SteppableOptimizer {
  step(): void;
}

const SELECTION_KEYS = ['params', 'exclude'] as const;
const PRUNE_KEYS = [...SELECTION_KEYS, 'method', 'amount'] as const;

function checkModule(op: string, model: unknown): Module {
  if (!(model instanceof Module)) throw new Error(`${op}: model must be a Module, got ${show(model)}`);
  return model;
}

function nameList(op: string, what: string, v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw new Error(`${op}: ${what} must be an array of parameter or module names, got ${show(v)}`);
  v.forEach((n, i) => {
    if (typeof n !== 'string' || n === '') throw new Error(`${op}: ${what}[${i}] must be a non-empty name, got ${show(n)}`);
  });
  return v as string[];
}

const covers = (path: string, name: string): boolean => name === path || name.startsWith(`${path}.`);

/**
 * The chosen parameters of `model`, each once, under its canonical name (its first name, as
 * `namedParameters` lists it), in registration order.
 */
function choose(op: string, model: Module, sel: PruneSelection): [string, Tensor][] {
  const params = nameList(op, 'params', sel.params);
  const exclude = nameList(op, 'exclude', sel.exclude) ?? [];
  const named = model.namedParameters();
  const nameOf = new Map(named.map(([n, p]) => [p, n]));
  let chosen: Set<Tensor>;
  if (params) {
    // every name of a parameter counts, aliases of tied tensors included (`lm_head.weight`)
    const entries = Object.entries(model.stateDict()).filter(([, t]) => nameOf.has(t));
    chosen = new Set();
    for (const path of params) {
      const hits = entries.filter(([n]) => covers(path, n));
      if (hits.length === 0) throw new Error(`${op}: params names '${path}', which is no parameter or module with parameters of the model`);
      for (const [, t] of hits) chosen.add(t);
    }
  } else {
    const embeddings = new Set<Tensor>();
    const linears: Tensor[] = [];
    for (const [, m] of model.namedModules()) {
      if (m instanceof Embedding && m.hasParameter('weight')) embeddings.add(m.getParameter('weight'));
      if (m instanceof Linear && m.hasParameter('weight')) linears.push(m.getParameter('weight'));
    }
    chosen = new Set(linears.filter((w) => w.rank === 2 && !embeddings.has(w)));
  }
  const aliases = Object.entries(model.stateDict());
  for (const path of exclude) {
    const hits = [...chosen].filter((t) => aliases.some(([n, s]) => s === t && covers(path, n)));
    if (hits.length === 0 && !aliases.some(([n, t]) => nameOf.has(t) && covers(path, n))) throw new Error(`${op}: exclude names '${path}', which is no parameter or module with parameters of the model`);
    for (const t of hits) chosen.delete(t);
  }
  return named.filter(([, p]) => chosen.has(p));
}

// |w| of every element, checked finite (a NaN has no place in an order by magnitude)
async function magnitudes(op: string, name: string, p: Tensor): Promise<Float32Array | Float64Array> {
  const data = await p.data();
  const out = p.dtype === 'f64' ? new Float64Array(data.length) : new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!Number.isFinite(v)) throw new Error(`${op}: parameter '${name}' holds ${v} at element ${i}; only finite weights can be ordered by magnitude`);
    out[i] = Math.abs(v);
  }
  return out;
}

/**
 * Keep-masks (1 = kept) that prune exactly `k` of the weights in `mags` (all lists together):
 * everything below the k-th smallest magnitude, and as many of the weights equal to it as make k,
 * earliest first.
 */
function smallestK(mags: readonly (Float32Array | Float64Array)[], k: number): Uint8Array[] {
  const masks = mags.map((m) => new Uint8Array(m.length).fill(1));
  if (k === 0) return masks;
  const total = mags.reduce((n, m) => n + m.length, 0);
  const all = new Float64Array(total);
  let at = 0;
  for (const m of mags) {
    all.set(m, at);
    at += m.length;
  }
  const threshold = all.sort()[k - 1]!;
  let below = 0;
  for (const m of mags) for (let i = 0; i < m.length; i++) if (m[i]! < threshold) below++;
  let ties = k - below;
  mags.forEach((m, j) => {
    const mask = masks[j]!;
    for (let i = 0; i < m.length; i++)
      if (m[i]! < threshold || (m[i] === threshold && ties-- > 0)) mask[i] = 0;
  });
  return masks;
}

/** A keep-mask with, in every group of `m` consecutive elements, the `n` of smallest magnitude pruned (later ones first among equals). */
function nOfM(mag: Float32Array | Float64Array, n: number, m: number): Uint8Array {
  const mask = new Uint8Array(mag.length).fill(1);
  const order = Array.from({ length: m }, (_, i) => i);
  for (let g = 0; g < mag.length; g += m) {
    // ascending magnitude; among equals the later index first, so the earlier one is kept
    order.sort((a, b) => mag[g + a]! - mag[g + b]! || b - a);
    for (let i = 0; i < n; i++) mask[g + order[i]!] = 0;
  }
  return mask;
}

/**
 * Masks of pruned weights (held, with the parameters they mask, outside every tidy scope), and
 * what keeps them pruned: {@link apply} after every optimizer step. Made by {@link prune}, or
 * from saved masks with `new Pruner(model, masks)`.
 *
 * @example
 * const pruner = await prune(model, { method: 'global', amount: 0.5 });
 * await train({ model, optimizer, ..., callbacks: [pruner.callback()] }); // pruned weights stay 0
 * const { sparsity } = await pruner.sparsity();
 */
export class Pruner {
  private readonly entries: { name: string; param: Tensor; mask: Tensor }[] = [];
  private disposed = false;

  /**
   * Hold `masks` (parameter name → bool keep-mask of its shape, true = kept; or a floating 0/1
   * mask, read as mask ≠ 0) for the parameters of `model`, and apply them at once. The masks are
   * copied; the caller keeps its tensors.
   */
  constructor(model: Module, masks: Record<string, Tensor> | Map<string, Tensor>) {
    const op = 'Pruner';
    checkModule(op, model);
    if (!(masks instanceof Map) && (masks === null || typeof masks !== 'object' || Array.isArray(masks) || masks instanceof Tensor))
      throw new Error(`${op}: masks must be an object or a Map from parameter names to mask tensors, got ${show(masks)}`);
    const given = masks instanceof Map ? [...masks] : Object.entries(masks);
    const params = new Map<string, Tensor>();
    const canonical = new Map(model.namedParameters().map(([n, p]) => [p, n]));
    for (const [n, t] of Object.entries(model.stateDict())) if (canonical.has(t)) params.set(n, t);
    const seen = new Set<Tensor>();
    const checked = given.map(([name, m]) => {
      const p = params.get(name);
      if (!p) throw new Error(`${op}: mask '${name}' names no parameter of the model`);
      if (seen.has(p)) throw new Error(`${op}: two masks ('${name}' and another name of it) for parameter '${canonical.get(p)}'`);
      seen.add(p);
      if (!(m instanceof Tensor)) throw new Error(`${op}: mask '${name}' must be a Tensor, got ${show(m)}`);
      if (m.disposed) throw new Error(`${op}: mask '${name}' was disposed`);
      if (m.rank !== p.rank || m.shape.some((d, i) => d !== p.shape[i])) throw new Error(`${op}: mask '${name}' is ${fmt(m.shape)}, the parameter ${fmt(p.shape)}`);
      if (m.dtype !== 'bool' && !isFloat(m.dtype)) throw new Error(`${op}: mask '${name}' must be bool (or floating 0/1), got ${m.dtype}`);
      if (m.backend !== p.backend) throw new Error(`${op}: mask '${name}' is on backend '${m.backend.name}', the parameter on '${p.backend.name}'`);
      return [canonical.get(p)!, p, m] as const;
    });
    for (const [name, param, m] of checked) this.entries.push({ name, param, mask: keep(noGrad(() => (m.dtype === 'bool' ? m.clone() : m.ne(0)))) });
    this.apply();
  }

  /** The pruned parameters' names (canonical: a tied tensor under its first name). */
  get names(): string[] {
    return this.entries.map((e) => e.name);
  }

  /**
   * Zero the pruned weights again (`w = mask ? w : 0`, in place, without autograd): call it after
   * every optimizer step. Queues device work only; reads nothing.
   */
  apply(): void {
    const op = 'Pruner.apply';
    this.live(op);
    noGrad(() =>
      tidy(() => {
        for (const { param, mask } of this.entries) param.copy_(where(mask, param, 0));
      }),
    );
  }

  /** `optimizer.step()`, then {@link apply}: a step that leaves the pruned weights zero. */
  step(optimizer: SteppableOptimizer): void {
    const op = 'Pruner.step';
    if (optimizer === null || typeof optimizer !== 'object' || typeof (optimizer as Partial<SteppableOptimizer>).step !== 'function')
      throw new Error(`${op}: optimizer must have step(), got ${show(optimizer)}`);
    this.live(op);
    optimizer.step();
    this.apply();
  }

  /**
   * Hooks for `train()`: {@link apply} at the start (a resumed run's weights are pruned too) and
   * after every step, before evaluations and checkpoints. List it before an EMA's callback, so the
   * average sees pruned weights.
   */
  callback(): { onStart(): void; onStep(): void } {
    this.live('Pruner.callback');
    return { onStart: () => this.apply(), onStep: () => this.apply() };
  }

  /** The zeros of the pruned parameters (reads one small tensor: a sync). */
  async sparsity(): Promise<SparsityReport> {
    const op = 'Pruner.sparsity';
    this.live(op);
    return countZeros(this.entries.map((e) => [e.name, e.param]));
  }

  /** The masks by parameter name (bool, true = kept): the live tensors, not copies. Save them with the weights. */
  stateDict(): Record<string, Tensor> {
    this.live('Pruner.stateDict');
    return Object.fromEntries(this.entries.map((e) => [e.name, e.mask]));
  }

  /** Free the masks (the weights stay as they are). */
  dispose(): void {
    for (const e of this.entries) e.mask.dispose();
    this.disposed = true;
  }

  private live(op: string): void {
    if (this.disposed) throw new Error(`${op}: the Pruner was disposed`);
    for (const e of this.entries) if (e.param.disposed) throw new Error(`${op}: parameter '${e.name}' was disposed (make the Pruner after moving the model with to())`);
  }
}

async function countZeros(params: readonly (readonly [string, Tensor])[]): Promise<SparsityReport> {
  let counts: ArrayLike<number> = [];
  if (params.length > 0 && params.every(([, p]) => p.backend === params[0]![1].backend)) {
    // one read for all: each parameter's count of zeros, summed on the device (bool sums to i32)
    const c = noGrad(() => tidy(() => stack(params.map(([, p]) => p.eq(0).sum()))));
    try {
      counts = await c.data();
    } finally {
      c.dispose();
    }
  } else if (params.length > 0) {
    const all: number[] = [];
    for (const [, p] of params) {
      const d = await p.data();
      let n = 0;
      for (let i = 0; i < d.length; i++) if (d[i] === 0) n++;
      all.push(n);
    }
    counts = all;
  }
  const out = params.map(([name, p], i): ParamSparsity => ({ name, shape: [...p.shape], zeros: counts[i]!, size: p.size, sparsity: p.size ? counts[i]! / p.size : 0 }));
  const zeros = out.reduce((n, r) => n + r.zeros, 0);
  const size = out.reduce((n, r) => n + r.size, 0);
  return { params: out, zeros, size, sparsity: size ? zeros / size : 0 };
}

/**
 * Prune `model` by weight magnitude and return the {@link Pruner} holding the masks (already
 * applied). Reads the chosen weights (a sync). See the module doc for the three methods.
 *
 * @example
 * const pruner = await prune(model, { amount: 0.5 });              // global, Linear weights
 * await prune(model, { method: 'layer', amount: 0.3, exclude: ['lm_head'] });
 * await prune(model, { method: '2:4' });                           // 2 zeros in every 4 inputs
 */
export async function prune(model: Module, opts: PruneOptions): Promise<Pruner> {
  const op = 'prune';
  checkModule(op, model);
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { method?, amount, params?, exclude? }, got ${show(opts)}`);
  checkKeys(op, opts, PRUNE_KEYS);
  const method = checkChoice(op, 'method', opts.method ?? 'global', ['global', 'layer', '2:4'] as const);
  let amount: number;
  if (method === '2:4') {
    if (opts.amount !== undefined && opts.amount !== 0.5) throw new Error(`${op}: method '2:4' always prunes half the weights; amount must be 0.5 or left out, got ${show(opts.amount)}`);
    amount = 0.5;
  } else {
    if (opts.amount === undefined) throw new Error(`${op}: method '${method}' needs amount, the fraction of weights to zero in [0, 1], got undefined`);
    amount = checkNumber(op, 'amount', opts.amount, { min: 0, max: 1 });
  }
  const chosen = choose(op, model, opts);
  if (chosen.length === 0) throw new Error(`${op}: no parameter was chosen (the model has no Linear weights, or exclude left out all of them); name them with params`);
  for (const [name, p] of chosen) {
    if (method === '2:4' && (p.rank < 1 || p.shape[p.rank - 1]! % 4 !== 0))
      throw new Error(`${op}: method '2:4' groups 4 weights along the last axis, but parameter '${name}' is ${fmt(p.shape)} (its last axis must be a multiple of 4)`);
  }
  const mags: (Float32Array | Float64Array)[] = [];
  for (const [name, p] of chosen) mags.push(await magnitudes(op, name, p));
  let keepMasks: Uint8Array[];
  if (method === 'global') keepMasks = smallestK(mags, Math.round(amount * mags.reduce((n, m) => n + m.length, 0)));
  else if (method === 'layer') keepMasks = mags.map((m) => smallestK([m], Math.round(amount * m.length))[0]!);
  else keepMasks = mags.map((m) => nOfM(m, 2, 4));
  const masks = new Map<string, Tensor>();
  try {
    chosen.forEach(([name, p], i) => masks.set(name, tensor(keepMasks[i]!, [...p.shape], { dtype: 'bool', backend: p.backend.name })));
    return new Pruner(model, masks);
  } finally {
    for (const m of masks.values()) m.dispose();
  }
}

/**
 * Count the exact zeros of `model`'s parameters (the Linear weights by default, as {@link prune}
 * chooses them; `params` and `exclude` as there): per parameter and in total. One read (a sync).
 *
 * @example
 * const r = await sparsity(model);
 * console.log(`${(100 * r.sparsity).toFixed(1)}% zeros`, r.params.map((p) => `${p.name} ${p.sparsity}`));
 */
export async function sparsity(model: Module, opts: PruneSelection = {}): Promise<SparsityReport> {
  const op = 'sparsity';
  checkModule(op, model);
  checkKeys(op, opts, SELECTION_KEYS);
  return countZeros(choose(op, model, opts ?? {}));
}
