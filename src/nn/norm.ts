/** Normalisation layers: `LayerNorm` and `RMSNorm` over the last axis. @module */
import { layerNorm, rmsNorm } from '../tensor/ops/nn.js';
import type { Tensor } from '../tensor/tensor.js';
import { constantParam, type ParamOptions } from './init.js';
import { Module } from './module.js';

/** Options of {@link LayerNorm}. */
export interface LayerNormOptions extends Omit<ParamOptions, 'generator'> {
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Learn a scale (and a shift, see `bias`); default true. */
  elementwiseAffine?: boolean;
  /** Learn a shift when affine (default true; GPT configs with `bias: false` drop it). */
  bias?: boolean;
}

function checkDim(op: string, dim: number): void {
  if (!Number.isInteger(dim) || dim < 1) throw new Error(`${op}: dim must be a positive integer, got ${dim}`);
}

/**
 * Layer normalisation over the last axis of size `dim` (as `torch.nn.LayerNorm(dim)`):
 * `(x − mean)/√(var + eps)·weight + bias`. Parameters `weight` (ones) and `bias` (zeros).
 */
export class LayerNorm extends Module {
  readonly dim: number;
  readonly eps: number;

  constructor(dim: number, opts: LayerNormOptions = {}) {
    super();
    checkDim('LayerNorm', dim);
    this.dim = dim;
    this.eps = opts.eps ?? 1e-5;
    if (opts.elementwiseAffine ?? true) {
      this.registerParameter('weight', constantParam([dim], 1, opts));
      if (opts.bias ?? true) this.registerParameter('bias', constantParam([dim], 0, opts));
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
    return layerNorm(x, [this.dim], this.weight, this.bias, this.eps);
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
    checkDim('RMSNorm', dim);
    this.dim = dim;
    this.eps = opts.eps;
    if (opts.elementwiseAffine ?? true) this.registerParameter('weight', constantParam([dim], 1, opts));
  }

  /** `[dim]`, or null when not affine. */
  get weight(): Tensor | null {
    return this.hasParameter('weight') ? this.getParameter('weight') : null;
  }

  /** x `[..., dim]` → normalised, same shape. */
  forward(x: Tensor): Tensor {
    return rmsNorm(x, [this.dim], this.weight, this.eps);
  }
}
