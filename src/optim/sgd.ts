/** Stochastic gradient descent with momentum, dampening, Nesterov and weight decay. @module */
import { live } from '../tensor/ops/util.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { add, cast, mul, neg, sub } from '../tensor/ops/elementwise.js';
import { checkBoolean, checkKeys, checkNumber, show } from '../tensor/validate.js';
import { checkOption, checkUpdateArgs, Optimizer, stateDtype, type OptimizerOptions, type ParamGroup, type Params, type ParamState } from './optimizer.js';

const SGD_KEYS = ['lr', 'momentum', 'dampening', 'weightDecay', 'nesterov', 'maximize'] as const;

function checkSGD(name: string, o: SGDOptions): void {
  checkNumber(name, 'lr', o.lr, { min: 0 });
  checkNumber(name, 'momentum', o.momentum, { min: 0 });
  checkNumber(name, 'dampening', o.dampening);
  checkNumber(name, 'weightDecay', o.weightDecay, { min: 0 });
  checkBoolean(name, 'nesterov', o.nesterov);
  checkBoolean(name, 'maximize', o.maximize);
  checkOption(name, !o.nesterov || (o.momentum > 0 && o.dampening === 0), 'Nesterov momentum needs momentum > 0 and dampening 0');
}

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
  const op = 'sgdUpdate';
  const make = checkUpdateArgs(op, param, grad, state, newState, 'newState', 0);
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new Error(`${op}: options must be an object with ${SGD_KEYS.join(', ')}, got ${show(o)}`);
  checkKeys(op, o, SGD_KEYS);
  checkSGD(op, o);
  const buf: unknown = state.tensors.momentumBuffer;
  if (buf !== undefined) {
    if (!(buf instanceof Tensor)) throw new Error(`${op}: state.tensors.momentumBuffer must be a Tensor, got ${show(buf)}`);
    live(op, param, buf);
    if (buf.shape.length !== param.shape.length || buf.shape.some((d, i) => d !== param.shape[i]))
      throw new Error(`${op}: state.tensors.momentumBuffer is ${fmt(buf.shape)}, the param ${fmt(param.shape)}`);
  }
  sgdStep(param, grad, state, o, make);
}

// the update of sgdUpdate, with checked arguments
function sgdStep(param: Tensor, grad: Tensor, state: ParamState, o: SGDOptions, newState: (key: string, init: Tensor) => Tensor): void {
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
    checkKeys('SGD', options, SGD_KEYS);
    // the rate has no default (the NaN below is never used)
    if (options?.lr === undefined) throw new Error(`SGD: lr is required (options: ${SGD_KEYS.join(', ')})`);
    super('SGD', params, { lr: NaN, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false }, options);
  }

  protected checkOptions(o: SGDOptions): void {
    checkSGD('SGD', o);
  }

  protected update(param: Tensor, grad: Tensor, state: ParamState, group: ParamGroup<SGDOptions>): void {
    sgdStep(param, grad, state, group, (key, init) => this.stateTensor(param, state, key, init));
  }
}
