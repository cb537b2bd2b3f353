/**
 * Fused optimizer updates: one backend kernel per parameter and step, in place, outside
 * autograd. Optimizers (src/optim) call these; parameters of half dtypes are updated through an
 * f32 copy (the moments are f32 whatever the parameter's dtype).
 * @module
 */
import type { OptimizerArgs } from '../../backend/backend.js';
import { isFloat, isHalf } from '../../backend/dtype.js';
import { fmt } from '../shape.js';
import { Tensor } from '../tensor.js';
import { desc, fail, live, rawCast } from './util.js';

/** Hyper-parameters of {@link adamUpdate} and {@link lambUpdate}. */
export interface OptimizerHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count. */
  step: number;
  /** Adam only: AdamW's decoupled decay (true, the default) or L2 added to the gradient. */
  decoupled?: boolean;
  /** LAMB only: bias-corrected moments (default true). */
  biasCorrection?: boolean;
}

function check(op: string, param: Tensor, grad: Tensor, m: Tensor, v: Tensor, h: OptimizerHyper): void {
  live(op, param, grad, m, v);
  if (!isFloat(param.dtype)) fail(op, `parameter must be floating, got ${desc(param)}`);
  const stateDtype = param.dtype === 'f64' ? 'f64' : 'f32';
  for (const [name, t, dtype] of [
    ['grad', grad, param.dtype],
    ['m', m, stateDtype],
    ['v', v, stateDtype],
  ] as const)
    if (t.dtype !== dtype || t.size !== param.size)
      fail(op, `${name} must be ${dtype} with ${param.size} elements like parameter ${fmt(param.shape)}, got ${desc(t)}`);
  if (!(h.step >= 1) || !Number.isInteger(h.step)) fail(op, `step must be a positive integer, got ${h.step}`);
  for (const k of ['lr', 'beta1', 'beta2', 'eps', 'weightDecay'] as const)
    if (!Number.isFinite(h[k])) fail(op, `${k} must be finite, got ${h[k]}`);
}

function run<T>(op: string, param: Tensor, grad: Tensor, m: Tensor, v: Tensor, h: OptimizerHyper, kernel: (args: OptimizerArgs) => T): T {
  check(op, param, grad, m, v, h);
  const half = isHalf(param.dtype);
  const p = half ? rawCast(param, 'f32') : param;
  const g = half ? rawCast(grad, 'f32') : grad;
  const result = kernel({
    param: p._storage(op),
    grad: g._storage(op),
    m: m._storage(op),
    v: v._storage(op),
    lr: h.lr,
    beta1: h.beta1,
    beta2: h.beta2,
    eps: h.eps,
    weightDecay: h.weightDecay,
    step: h.step,
    decoupled: h.decoupled ?? true,
    biasCorrection: h.biasCorrection ?? true,
  });
  if (half) {
    param.backend.cast(p._storage(op), param._storage(op));
    p.dispose();
    g.dispose();
  }
  return result;
}

/** One Adam/AdamW step on `param` in place (see Backend.adamUpdate for the formulas). */
export function adamUpdate(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, h: OptimizerHyper): void {
  run('adamUpdate', param, grad, m, v, h, (a) => param.backend.adamUpdate(a));
}

/** One LAMB step on `param` in place; returns the trust ratio ‖p‖/‖r‖. */
export function lambUpdate(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, h: OptimizerHyper): number {
  return run('lambUpdate', param, grad, m, v, h, (a) => param.backend.lambUpdate(a));
}
