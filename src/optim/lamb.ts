/**
 * LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning: Training BERT in 76
 * minutes", Algorithm 2): Adam's direction plus decoupled weight decay, rescaled per layer by a
 * trust ratio ‖w‖/‖r‖ so every layer moves by a step proportional to its own norm.
 * @module
 */
import type { Tensor } from '../tensor/tensor.js';
import { add, cast, div, gt, logicalAnd, mul, neg, sqrt, sub, where } from '../tensor/ops/elementwise.js';
import { norm } from '../tensor/ops/reduce.js';
import { lambUpdate } from '../tensor/ops/optim.js';
import { checkBoolean, checkKeys, show } from '../tensor/validate.js';
import { checkAdamLike, checkUpdateArgs, Optimizer, stateDtype, type GroupItem, type OptimizerOptions, type ParamGroup, type Params, type ParamState } from './optimizer.js';

const LAMB_KEYS = ['lr', 'betas', 'eps', 'weightDecay', 'biasCorrection', 'maximize'] as const;

function checkLAMB(name: string, o: LAMBOptions): void {
  checkAdamLike(name, o);
  checkBoolean(name, 'biasCorrection', o.biasCorrection);
  checkBoolean(name, 'maximize', o.maximize);
}

/** Options of {@link LAMB}. */
export interface LAMBOptions extends OptimizerOptions {
  /** Decay rates (β1, β2) of the moment estimates. */
  betas: readonly [number, number];
  /** ε added to √v̂. */
  eps: number;
  /** Decoupled weight decay λ, added to the update direction r before the trust ratio. */
  weightDecay: number;
  /**
   * Divide the moments by (1 − β^t) as Algorithm 2 of the paper does (default true). Some
   * implementations (NVIDIA's apex with `bias_correction=False`) leave it out.
   */
  biasCorrection: boolean;
  /** Ascend instead of descend. */
  maximize: boolean;
}

/**
 * One LAMB update of the layer `param` (a layer is one parameter tensor), composed of tensor ops
 * (used for maximize; otherwise the backend's fused kernel computes the same in one pass):
 *
 *     m_t = β1·m + (1−β1)·g            v_t = β2·v + (1−β2)·g²
 *     m̂ = m_t / (1−β1^t)               v̂ = v_t / (1−β2^t)       (when biasCorrection)
 *     r = m̂ / (√v̂ + ε) + λ·w
 *     trust = ‖w‖ / ‖r‖                (1 when either norm is 0)
 *     w ← w − η · trust · r
 *
 * The scaling function φ of the paper is the identity (no clamping of ‖w‖). √v̂ is computed as
 * √v_t / √(1−β2^t), as Adam does. Norms are Euclidean over the whole tensor.
 */
export function lambComposite(param: Tensor, grad: Tensor, state: ParamState, o: LAMBOptions, stateTensor: (key: string) => Tensor): void {
  const op = 'lambComposite';
  const state_ = checkUpdateArgs(op, param, grad, state, stateTensor, 'stateTensor', 1);
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new Error(`${op}: options must be an object with ${LAMB_KEYS.join(', ')}, got ${show(o)}`);
  checkKeys(op, o, LAMB_KEYS);
  checkLAMB(op, o);
  lambStep(param, grad, state, o, state_);
}

// the update of lambComposite, with checked arguments
function lambStep(param: Tensor, grad: Tensor, state: ParamState, o: LAMBOptions, stateTensor: (key: string) => Tensor): void {
  const [beta1, beta2] = o.betas;
  const t = state.step;
  const dt = stateDtype(param);
  const w = cast(param, dt);
  let g = cast(grad, dt);
  if (o.maximize) g = neg(g);
  const m = stateTensor('expAvg');
  const v = stateTensor('expAvgSq');
  // m_t = β1·m + (1−β1)·g;  v_t = β2·v + (1−β2)·g²
  m.copy_(add(mul(m, beta1), mul(g, 1 - beta1)));
  v.copy_(add(mul(v, beta2), mul(mul(g, g), 1 - beta2)));
  const bc1 = o.biasCorrection ? 1 - beta1 ** t : 1;
  const bc2 = o.biasCorrection ? 1 - beta2 ** t : 1;
  // r = (m_t / bc1) / (√v_t / √bc2 + ε) + λ·w
  let r = div(div(m, bc1), add(div(sqrt(v), Math.sqrt(bc2)), o.eps));
  if (o.weightDecay !== 0) r = add(r, mul(w, o.weightDecay));
  // trust = ‖w‖/‖r‖, or 1 when either is 0 (computed on the device: no sync)
  const wNorm = norm(w);
  const rNorm = norm(r);
  const trust = where(logicalAnd(gt(wNorm, 0), gt(rNorm, 0)), div(wNorm, rNorm), 1);
  // w = w − η·trust·r
  param.copy_(sub(w, mul(r, mul(trust, o.lr))));
}

/**
 * LAMB: layer-wise adaptive large-batch optimisation. Defaults: lr 1e-3, betas [0.9, 0.999],
 * eps 1e-6, weightDecay 0, biasCorrection true. Exclude biases and norm weights from decay with a
 * parameter group of their own (`weightDecay: 0`); they still get a trust ratio.
 */
export class LAMB extends Optimizer<LAMBOptions> {
  constructor(params: Params<LAMBOptions>, options: Partial<LAMBOptions> = {}) {
    super('LAMB', params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-6, weightDecay: 0, biasCorrection: true, maximize: false }, options);
  }

  protected checkOptions(o: LAMBOptions): void {
    checkLAMB('LAMB', o);
  }

  protected update(param: Tensor, grad: Tensor, state: ParamState, group: ParamGroup<LAMBOptions>): void {
    lambStep(param, grad, state, group, (key) => this.stateTensor(param, state, key));
  }

  // the backend's fused kernel over the whole group (one call per parameter dtype); the
  // composite for maximize
  protected override updateGroup(items: readonly GroupItem[], group: ParamGroup<LAMBOptions>): void {
    if (group.maximize) return super.updateGroup(items, group);
    this.forEachDtype(items, (params, grads, m, v, step) =>
      lambUpdate(params, grads, m, v, {
        lr: group.lr,
        beta1: group.betas[0],
        beta2: group.betas[1],
        eps: group.eps,
        weightDecay: group.weightDecay,
        step,
        biasCorrection: group.biasCorrection,
      }).dispose(),
    );
  }
}
