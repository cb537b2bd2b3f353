/** Adam and AdamW (decoupled weight decay), with AMSGrad. @module */
import type { Tensor } from '../tensor/tensor.js';
import { add, cast, div, maximum, mul, neg, sqrt, sub } from '../tensor/ops/elementwise.js';
import { adamUpdate } from '../tensor/ops/optim.js';
import { checkBoolean, checkKeys, show } from '../tensor/validate.js';
import { checkAdamLike, checkUpdateArgs, Optimizer, stateDtype, type GroupItem, type OptimizerOptions, type ParamGroup, type Params, type ParamState } from './optimizer.js';

const ADAM_KEYS = ['lr', 'betas', 'eps', 'weightDecay', 'amsgrad', 'maximize'] as const;

/** Options of {@link Adam} and {@link AdamW}. */
export interface AdamOptions extends OptimizerOptions {
  /** Decay rates (β1, β2) of the first and second moment estimates. */
  betas: readonly [number, number];
  /** ε added to the denominator for numerical stability. */
  eps: number;
  /** Adam: L2 penalty λ added to the gradient. AdamW: decoupled decay, w ← w·(1 − η·λ). */
  weightDecay: number;
  /** Use the maximum of past second moments (AMSGrad). */
  amsgrad: boolean;
  /** Ascend instead of descend. */
  maximize: boolean;
}

/**
 * One Adam update of `param` composed of tensor ops, as `torch.optim.Adam` (`decoupled = false`)
 * or `torch.optim.AdamW` (`decoupled = true`) compute it; used for AMSGrad and maximize, which the
 * backend's fused kernel does not cover. `state.step` is t (already incremented); `expAvg`,
 * `expAvgSq` (and `maxExpAvgSq` with AMSGrad) are created as zeros on first use.
 */
export function adamComposite(
  param: Tensor,
  grad: Tensor,
  state: ParamState,
  o: AdamOptions,
  decoupled: boolean,
  stateTensor: (key: string) => Tensor,
): void {
  const op = 'adamComposite';
  const state_ = checkUpdateArgs(op, param, grad, state, stateTensor, 'stateTensor', 1);
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new Error(`${op}: options must be an object with ${ADAM_KEYS.join(', ')}, got ${show(o)}`);
  checkKeys(op, o, ADAM_KEYS);
  checkAdam(op, o);
  checkBoolean(op, 'decoupled', decoupled);
  adamStep(param, grad, state, o, decoupled, state_);
}

// the update of adamComposite, with checked arguments
function adamStep(param: Tensor, grad: Tensor, state: ParamState, o: AdamOptions, decoupled: boolean, stateTensor: (key: string) => Tensor): void {
  const [beta1, beta2] = o.betas;
  const t = state.step;
  const dt = stateDtype(param);
  let w = cast(param, dt);
  let g = cast(grad, dt);
  if (o.maximize) g = neg(g);
  // AdamW: w = w·(1 − η·λ);  Adam: g = g + λ·w
  if (decoupled) w = mul(w, 1 - o.lr * o.weightDecay);
  else if (o.weightDecay !== 0) g = add(g, mul(w, o.weightDecay));
  const m = stateTensor('expAvg');
  const v = stateTensor('expAvgSq');
  // m_t = β1·m + (1−β1)·g
  m.copy_(add(mul(m, beta1), mul(g, 1 - beta1)));
  // v_t = β2·v + (1−β2)·g²
  v.copy_(add(mul(v, beta2), mul(mul(g, g), 1 - beta2)));
  let vUsed = v;
  if (o.amsgrad) {
    // v̂max_t = max(v̂max, v_t)
    const vMax = stateTensor('maxExpAvgSq');
    vMax.copy_(maximum(vMax, v));
    vUsed = vMax;
  }
  const bc1 = 1 - beta1 ** t;
  const bc2 = 1 - beta2 ** t;
  // w = w − (η / (1−β1^t)) · m_t / (√v_t / √(1−β2^t) + ε)
  const denom = add(div(sqrt(vUsed), Math.sqrt(bc2)), o.eps);
  param.copy_(sub(w, mul(div(m, denom), o.lr / bc1)));
}

const ADAM_DEFAULTS = { lr: 1e-3, betas: [0.9, 0.999] as const, eps: 1e-8, amsgrad: false, maximize: false };

function checkAdam(name: string, o: AdamOptions): void {
  checkAdamLike(name, o);
  checkBoolean(name, 'amsgrad', o.amsgrad);
  checkBoolean(name, 'maximize', o.maximize);
}

// Adam and AdamW differ only in how weight decay enters (`decoupled`).
abstract class AdamFamily extends Optimizer<AdamOptions> {
  protected abstract readonly decoupled: boolean;

  protected checkOptions(o: AdamOptions): void {
    checkAdam(this.name, o);
  }

  protected update(param: Tensor, grad: Tensor, state: ParamState, group: ParamGroup<AdamOptions>): void {
    adamStep(param, grad, state, group, this.decoupled, (key) => this.stateTensor(param, state, key));
  }

  // the backend's fused kernel over the whole group (one call per parameter dtype); the
  // composite for AMSGrad and maximize, which the kernel does not cover
  protected override updateGroup(items: readonly GroupItem[], group: ParamGroup<AdamOptions>): void {
    if (group.amsgrad || group.maximize) return super.updateGroup(items, group);
    this.forEachDtype(items, (params, grads, m, v, step) =>
      adamUpdate(params, grads, m, v, {
        lr: group.lr,
        beta1: group.betas[0],
        beta2: group.betas[1],
        eps: group.eps,
        weightDecay: group.weightDecay,
        step,
        decoupled: this.decoupled,
      }),
    );
  }
}

/**
 * Adam (`torch.optim.Adam`): weight decay is an L2 term added to the gradient.
 * Defaults: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 0.
 */
export class Adam extends AdamFamily {
  protected readonly decoupled = false;

  constructor(params: Params<AdamOptions>, options: Partial<AdamOptions> = {}) {
    super('Adam', params, { ...ADAM_DEFAULTS, weightDecay: 0 }, options);
  }
}

/**
 * AdamW (`torch.optim.AdamW`, Loshchilov & Hutter): weight decay is decoupled from the
 * gradient, w ← w·(1 − η·λ) before the Adam step. Defaults: lr 1e-3, betas [0.9, 0.999],
 * eps 1e-8, weightDecay 1e-2.
 *
 * @example
 * const opt = new AdamW(
 *   [{ params: matrices, weightDecay: 0.1 }, { params: biasesAndNorms, weightDecay: 0 }],
 *   { lr: 3e-4, betas: [0.9, 0.95] },
 * );
 */
export class AdamW extends AdamFamily {
  protected readonly decoupled = true;

  constructor(params: Params<AdamOptions>, options: Partial<AdamOptions> = {}) {
    super('AdamW', params, { ...ADAM_DEFAULTS, weightDecay: 1e-2 }, options);
  }
}
