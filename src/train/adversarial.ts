/**
 * Adversarial training on the token embeddings: FGM (Miyato et al. 2017) and PGD (Madry et al.
 * 2018) perturbations r of the embeddings `wte(idx)` inside an L2 ball of radius ε, found from
 * the loss gradient g = ∂L/∂e, and the training objective L(x) + L(x + r).
 *
 * - FGM: r = ε·g/‖g‖₂.
 * - PGD: δ₀ = 0, δₖ₊₁ = Π_ε(δₖ + α·gₖ/‖gₖ‖₂) for k < K, r = δ_K, Π_ε projecting onto the ball
 *   (δ·min(1, ε/‖δ‖₂)); FGM is PGD with K = 1 and α = ε.
 *
 * Norms are per sequence by default (‖·‖₂ over a sequence's `[T, C]` embeddings, as Miyato
 * et al.'s text models normalise per example), or per token (over each `[C]` vector) with
 * `scope: 'token'`. The model must take `forward(idx, targets, { embeddingDelta })` (a kiln
 * {@link GPT} does).
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { tidy } from '../tensor/memory.js';
import { full } from '../tensor/ops/creation.js';
import { clamp } from '../tensor/ops/elementwise.js';
import { norm } from '../tensor/ops/reduce.js';
import { live } from '../tensor/ops/util.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkChoice, checkKeys, checkNumber, show } from '../tensor/validate.js';

/** Options of adversarial training (`train({ adversarial })`, {@link embeddingPerturbation}). */
export interface AdversarialOptions {
  /** `'fgm'`: one normalised gradient step; `'pgd'`: `steps` projected steps of size `alpha`. */
  method: 'fgm' | 'pgd';
  /** Radius ε of the L2 ball the perturbation stays in. */
  epsilon: number;
  /** PGD's step size α (2.5·ε/steps by default, Madry et al.'s rule of thumb). */
  alpha?: number;
  /** PGD's number of steps K (3 by default). */
  steps?: number;
  /** Where the L2 norm is taken: `'sequence'` (default; over each sequence's `[T, C]`) or `'token'` (over each `[C]`). */
  scope?: 'sequence' | 'token';
}

/** A checked {@link AdversarialOptions}: FGM as PGD with one step of size ε. */
export interface ResolvedAdversarial {
  method: 'fgm' | 'pgd';
  epsilon: number;
  alpha: number;
  steps: number;
  scope: 'sequence' | 'token';
}

/** What adversarial training needs of a model: a forward that adds `embeddingDelta` `[B, T, C]` to its token embeddings. */
export interface PerturbableModel {
  forward(idx: Tensor, targets: Tensor, opts: { embeddingDelta: Tensor }): { loss?: Tensor };
  parameters(): Tensor[];
  /** The embedding width C (`nEmbd`). */
  readonly config: { nEmbd: number };
}

/** @internal Check adversarial options for `op` (`train`, …), naming keys `adversarial.*`. */
export function resolveAdversarial(op: string, opts: unknown, name = 'adversarial'): ResolvedAdversarial {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw new Error(`${op}: ${name} must be { method: 'fgm' | 'pgd', epsilon, alpha?, steps?, scope? }, got ${show(opts)}`);
  checkKeys(op, opts, ['method', 'epsilon', 'alpha', 'steps', 'scope']);
  const o = opts as AdversarialOptions;
  const method = checkChoice(op, `${name}.method`, o.method, ['fgm', 'pgd'] as const);
  const epsilon = checkNumber(op, `${name}.epsilon`, o.epsilon, { min: 0, minExclusive: true });
  const scope = o.scope === undefined ? 'sequence' : checkChoice(op, `${name}.scope`, o.scope, ['sequence', 'token'] as const);
  if (method === 'fgm') {
    for (const k of ['alpha', 'steps'] as const)
      if (o[k] !== undefined) throw new Error(`${op}: ${name}.${k} is for method 'pgd' (FGM takes one step of size epsilon), got ${show(o[k])}`);
    return { method, epsilon, alpha: epsilon, steps: 1, scope };
  }
  const steps = o.steps === undefined ? 3 : checkNumber(op, `${name}.steps`, o.steps, { integer: true, min: 1 });
  const alpha = o.alpha === undefined ? (2.5 * epsilon) / steps : checkNumber(op, `${name}.alpha`, o.alpha, { min: 0, minExclusive: true });
  return { method, epsilon, alpha, steps, scope };
}

function checkModel(op: string, model: unknown): PerturbableModel {
  const m = model as PerturbableModel;
  if (model === null || typeof model !== 'object' || typeof m.forward !== 'function' || typeof m.parameters !== 'function')
    throw new Error(`${op}: model must have forward(idx, targets, { embeddingDelta }) and parameters(), got ${show(model)}`);
  const c = m.config?.nEmbd;
  if (typeof c !== 'number' || !Number.isInteger(c) || c < 1) throw new Error(`${op}: model must have config.nEmbd (the embedding width), got ${show(m.config)}`);
  return m;
}

function checkIds(op: string, name: string, t: unknown, like?: Tensor): Tensor {
  if (t === null || typeof t !== 'object' || typeof (t as Tensor).dtype !== 'string') throw new Error(`${op}: ${name} must be a [B, T] i32 tensor, got ${show(t)}`);
  const x = t as Tensor;
  live(op, x);
  if (x.dtype !== 'i32' || x.rank !== 2) throw new Error(`${op}: ${name} must be a [B, T] i32 tensor, got [${x.shape.join(', ')}] ${x.dtype}`);
  if (like && (x.shape[0] !== like.shape[0] || x.shape[1] !== like.shape[1])) throw new Error(`${op}: ${name} [${x.shape.join(', ')}] must match input [${like.shape.join(', ')}]`);
  return x;
}

// the L2 norm over each sequence ([B, 1, 1]) or each token ([B, T, 1])
const l2 = (x: Tensor, scope: 'sequence' | 'token'): Tensor => norm(x, 2, scope === 'sequence' ? [1, 2] : [2], true);

// δ + α·g/‖g‖, projected onto the ε-ball: ÷max(1, ‖·‖/ε)
function ascend(delta: Tensor | null, g: Tensor, a: ResolvedAdversarial): Tensor {
  return tidy(() => noGrad(() => {
    const stepped = g.mul(a.alpha).div(l2(g, a.scope).add(1e-12));
    const d = delta ? delta.add(stepped) : stepped;
    return d.div(clamp(l2(d, a.scope).div(a.epsilon), 1, null));
  }));
}

function lossOf(op: string, model: PerturbableModel, input: Tensor, target: Tensor, delta: Tensor): Tensor {
  const l = model.forward(input, target, { embeddingDelta: delta }).loss;
  if (!l) throw new Error(`${op}: model.forward(input, target, { embeddingDelta }) returned no loss`);
  return l;
}

/**
 * Ascent steps from δ (null: 0 with its gradient `g0` given) with the model's parameters frozen
 * (their `.grad` untouched), to the final perturbation, detached.
 */
function ascendFrom(op: string, model: PerturbableModel, input: Tensor, target: Tensor, first: Tensor, a: ResolvedAdversarial, forward: <T>(f: () => T) => T): Tensor {
  let delta = first;
  if (a.steps === 1) return delta;
  const params = model.parameters();
  const was = params.map((p) => p.requiresGrad);
  for (const p of params) if (p.requiresGrad) p.requiresGrad = false;
  try {
    for (let k = 1; k < a.steps; k++) {
      const d = delta.detach().requiresGrad_(true);
      delta.dispose();
      try {
        tidy(() => forward(() => lossOf(op, model, input, target, d)).backward());
        delta = ascend(d, d.grad!, a);
      } finally {
        d.dispose();
      }
    }
  } finally {
    params.forEach((p, i) => {
      if (was[i]) p.requiresGrad = true;
    });
  }
  return delta;
}

function zeroDelta(model: PerturbableModel, input: Tensor): Tensor {
  const w = model.parameters()[0];
  const [b, t] = input.shape as [number, number];
  return full([b, t, model.config.nEmbd], 0, { backend: input.backend.name, ...(w ? { dtype: w.dtype } : {}) }).requiresGrad_(true);
}

/**
 * The adversarial perturbation of the token embeddings `[B, T, C]` (detached) for a batch: FGM's
 * ε·g/‖g‖ or PGD's projected ascent (see the module doc). The parameters' gradients are left as
 * they were (they are frozen during the ascent).
 *
 * @example
 * const r = embeddingPerturbation(model, input, target, { method: 'pgd', epsilon: 1, steps: 3 });
 * const advLoss = model.forward(input, target, { embeddingDelta: r }).loss;
 */
export function embeddingPerturbation(model: PerturbableModel, input: Tensor, target: Tensor, opts: AdversarialOptions): Tensor {
  const op = 'embeddingPerturbation';
  const m = checkModel(op, model);
  checkIds(op, 'input', input);
  checkIds(op, 'target', target, input);
  const a = resolveAdversarial(op, opts, 'opts');
  const params = m.parameters();
  const was = params.map((p) => p.requiresGrad);
  for (const p of params) if (p.requiresGrad) p.requiresGrad = false;
  let first: Tensor;
  const d0 = zeroDelta(m, input);
  try {
    tidy(() => lossOf(op, m, input, target, d0).backward());
    first = ascend(null, d0.grad!, a);
  } finally {
    d0.dispose();
    params.forEach((p, i) => {
      if (was[i]) p.requiresGrad = true;
    });
  }
  return ascendFrom(op, m, input, target, first, a, (f) => f());
}

/**
 * @internal One adversarial training micro-step: backward of L(x) + L(x + r) into the parameters'
 * `.grad` (each loss through `scale` first: gradient accumulation, a loss scaler), every forward
 * through `forward` (autocast). Returns the clean and the adversarial loss, detached.
 */
export function adversarialBackward(
  op: string,
  model: PerturbableModel,
  input: Tensor,
  target: Tensor,
  a: ResolvedAdversarial,
  scale: (loss: Tensor) => Tensor = (l) => l,
  forward: <T>(f: () => T) => T = (f) => f(),
): { loss: Tensor; advLoss: Tensor } {
  const m = checkModel(op, model);
  // the clean pass: its backward gives the parameters ∇L(x) and the embeddings g = ∂L/∂e at once
  const d0 = zeroDelta(m, input);
  let loss: Tensor;
  let first: Tensor;
  try {
    loss = tidy(() => {
      const l = forward(() => lossOf(op, m, input, target, d0));
      scale(l).backward();
      return l.detach();
    });
    first = ascend(null, d0.grad!, a);
  } finally {
    d0.dispose();
  }
  const r = ascendFrom(op, m, input, target, first, a, forward);
  try {
    const advLoss = tidy(() => {
      const l = forward(() => lossOf(op, m, input, target, r));
      scale(l).backward();
      return l.detach();
    });
    return { loss, advLoss };
  } finally {
    r.dispose();
  }
}
