/** Normalisation layers: `LayerNorm` and `RMSNorm` over the last axis. @module */
import { addLayerNorm, layerNorm, rmsNorm } from '../tensor/ops/nn.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkNumber } from '../tensor/validate.js';
import { makeConstant, type ParamOptions } from './init.js';
import { Module } from './module.js';
import { options, PARAM_KEYS, paramOptions, size } from './validate.js';
import { asOp } from '../tensor/ops/util.js';

/** Options of {@link LayerNorm}. */
export interface LayerNormOptions extends Omit<ParamOptions, 'generator'> {
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Learn a scale (and a shift, see `bias`); default true. */
  elementwiseAffine?: boolean;
  /** Learn a shift when affine (default true; GPT configs with `bias: false` drop it). */
  bias?: boolean;
}

const flag = (op: string, name: string, v: unknown): boolean => (v === undefined ? true : checkBoolean(op, name, v));

/**
 * Layer normalisation over the last axis of size `dim` (as `torch.nn.LayerNorm(dim)`):
 * `(x − mean)/√(var + eps)·weight + bias`. Parameters `weight` (ones) and `bias` (zeros).
 */
export class LayerNorm extends Module {
  readonly dim: number;
  readonly eps: number;

  constructor(dim: number, opts: LayerNormOptions = {}) {
    super();
    const op = 'LayerNorm';
    this.dim = size(op, 'dim', dim);
    const o = options(op, opts, [...PARAM_KEYS, 'eps', 'elementwiseAffine', 'bias']);
    this.eps = o.eps === undefined ? 1e-5 : checkNumber(op, 'eps', o.eps, { min: 0 });
    const affine = flag(op, 'elementwiseAffine', o.elementwiseAffine);
    const bias = flag(op, 'bias', o.bias);
    const place = paramOptions(op, o);
    if (affine) {
      this.registerParameter('weight', makeConstant(op, [dim], 1, place));
      if (bias) this.registerParameter('bias', makeConstant(op, [dim], 0, place));
    }
  }

  /** `[dim]`, or null when not affine. */
  get weight(): Tensor | null {
    return this.hasParameter('weight') ? this.getParameter('weight') : null;
  }

  /** `[dim]`, or null without a shift. */
  get bias(): Tensor | null {
    return this.hasParameter('bias') ? this.getParameter('bias') : null;
  }

  /** x `[..., dim]` → normalised, same shape. */
  forward(x: Tensor): Tensor {
    return asOp('LayerNorm.forward', () => layerNorm(x, [this.dim], this.weight, this.bias, this.eps));
  }

  /** `[x + residual, forward(x + residual)]`, the add and the norm in one pass ({@link addLayerNorm}). */
  forwardAdd(x: Tensor, residual: Tensor): [Tensor, Tensor] {
    return asOp('LayerNorm.forward', () => addLayerNorm(x, residual, [this.dim], this.weight, this.bias, this.eps));
  }
}

/** Options of {@link RMSNorm}. */
export interface RMSNormOptions extends Omit<ParamOptions, 'generator'> {
  /** Added to the mean square (the dtype's machine epsilon by default, as PyTorch). */
  eps?: number;
  /** Learn a scale (default true). */
  elementwiseAffine?: boolean;
}

/**
 * Root-mean-square normalisation over the last axis (as `torch.nn.RMSNorm(dim)`):
 * `x/√(mean(x²) + eps)·weight`. Parameter `weight` (ones).
 */
export class RMSNorm extends Module {
  readonly dim: number;
  readonly eps: number | undefined;

  constructor(dim: number, opts: RMSNormOptions = {}) {
    super();
    const op = 'RMSNorm';
    this.dim = size(op, 'dim', dim);
    const o = options(op, opts, [...PARAM_KEYS, 'eps', 'elementwiseAffine']);
    this.eps = o.eps === undefined ? undefined : checkNumber(op, 'eps', o.eps, { min: 0 });
    const affine = flag(op, 'elementwiseAffine', o.elementwiseAffine);
    if (affine) this.registerParameter('weight', makeConstant(op, [dim], 1, paramOptions(op, o)));
  }

  /** `[dim]`, or null when not affine. */
  get weight(): Tensor | null {
    return this.hasParameter('weight') ? this.getParameter('weight') : null;
  }

  /** x `[..., dim]` → normalised, same shape. */
  forward(x: Tensor): Tensor {
    return asOp('RMSNorm.forward', () => rmsNorm(x, [this.dim], this.weight, this.eps));
  }
}
