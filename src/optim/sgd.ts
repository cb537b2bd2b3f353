/** Stochastic gradient descent with momentum, dampening, Nesterov and weight decay. @module */
import type { Tensor } from '../tensor/tensor.js';
import { add, cast, mul, neg, sub } from '../tensor/ops/elementwise.js';
import { checkBoolean, checkNumber } from '../tensor/validate.js';
import { checkOption, Optimizer, stateDtype, type OptimizerOptions, type ParamGroup, type Params, type ParamState } from './optimizer.js';

/** Options of {@link SGD} (PyTorch's names in camelCase). */
export interface SGDOptions extends OptimizerOptions {
  /** Momentum factor μ (0 = plain SGD). */
  momentum: number;
  /** Dampening τ of the momentum's gradient term. */
  dampening: number;
  /** L2 penalty λ added to the gradient. */
  weightDecay: number;
  /** Nesterov momentum (needs μ > 0 and τ = 0). */
  nesterov: boolean;
  /** Ascend instead of descend. */
  maximize: boolean;
}

/**
 * One SGD update of `param` (as `torch.optim.SGD`); `state.tensors.momentumBuffer` is created on
 * the first step with momentum. Math in the state dtype (f32, or f64 for f64 parameters).
 */
export function sgdUpdate(
  param: Tensor,
  grad: Tensor,
  state: ParamState,
  o: SGDOptions,
  newState: (key: string, init: Tensor) => Tensor,
): void {
  const dt = stateDtype(param);
  const w = cast(param, dt);
  let d = cast(grad, dt);
  if (o.maximize) d = neg(d);
  // d = g + λ·w
  if (o.weightDecay !== 0) d = add(d, mul(w, o.weightDecay));
  if (o.momentum !== 0) {
    let buf = state.tensors.momentumBuffer;
    // b_1 = d;  b_t = μ·b + (1−τ)·d
    if (!buf) buf = newState('momentumBuffer', d);
    else buf.copy_(add(mul(buf, o.momentum), mul(d, 1 - o.dampening)));
    // Nesterov: d = d + μ·b_t, else d = b_t
    d = o.nesterov ? add(d, mul(buf, o.momentum)) : buf;
  }
  // w = w − η·d
  param.copy_(sub(w, mul(d, o.lr)));
}

/**
 * Stochastic gradient descent (`torch.optim.SGD`).
 *
 * @example
 * const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true });
 * loss.backward(); opt.step(); opt.zeroGrad();
 */
export class SGD extends Optimizer<SGDOptions> {
  /** `lr` is required; the rest default to 0 / false. */
  constructor(params: Params<SGDOptions>, options: Partial<SGDOptions> & { lr: number }) {
    super('SGD', params, { lr: NaN, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false }, options);
  }

  protected checkOptions(o: SGDOptions): void {
    checkOption('SGD', typeof o.lr === 'number' && !Number.isNaN(o.lr), 'lr is required');
    checkNumber('SGD', 'lr', o.lr, { min: 0 });
    checkNumber('SGD', 'momentum', o.momentum, { min: 0 });
    checkNumber('SGD', 'dampening', o.dampening);
    checkNumber('SGD', 'weightDecay', o.weightDecay, { min: 0 });
    checkBoolean('SGD', 'nesterov', o.nesterov);
    checkBoolean('SGD', 'maximize', o.maximize);
    checkOption('SGD', !o.nesterov || (o.momentum > 0 && o.dampening === 0), 'Nesterov momentum needs momentum > 0 and dampening 0');
  }

  protected update(param: Tensor, grad: Tensor, state: ParamState, group: ParamGroup<SGDOptions>): void {
    sgdUpdate(param, grad, state, group, (key, init) => this.stateTensor(param, state, key, init));
  }
}
