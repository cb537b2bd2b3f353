/** `Linear`: a fully connected layer, `y = x·Wᵀ + b`. @module */
import { linear } from '../tensor/ops/nn.js';
import { fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { constantParam, normalParam, uniformParam, type ParamOptions } from './init.js';
import { Module } from './module.js';

/** Options of {@link Linear}. */
export interface LinearOptions extends ParamOptions {
  /** Add a learned bias (default true). */
  bias?: boolean;
  /**
   * Initialise the weight from N(0, std) and the bias with zeros (GPT-2 style). Without it, as
   * PyTorch: weight and bias from U(−1/√in, 1/√in).
   */
  std?: number;
  /** Use this `[out, in]` tensor as the weight instead of creating one (weight tying). */
  weight?: Tensor;
}

/**
 * A fully connected layer (as `torch.nn.Linear`): x `[..., in]` → `[..., out]`, with parameters
 * `weight` `[out, in]` and `bias` `[out]`.
 *
 * @example
 * const proj = new Linear(64, 256, { std: 0.02, generator: new Generator(1) });
 * const y = proj.forward(x); // x: [B, T, 64] → [B, T, 256]
 */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super();
    for (const [n, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const)
      if (!Number.isInteger(v) || v < 0) throw new Error(`Linear: ${n} must be a non-negative integer, got ${v}`);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
    let weight = opts.weight;
    if (weight) {
      if (weight.rank !== 2 || weight.shape[0] !== outFeatures || weight.shape[1] !== inFeatures)
        throw new Error(`Linear: weight must be [${outFeatures}, ${inFeatures}], got ${fmt(weight.shape)}`);
    } else
      weight =
        opts.std !== undefined
          ? normalParam([outFeatures, inFeatures], opts.std, opts)
          : uniformParam([outFeatures, inFeatures], -bound, bound, opts);
    this.registerParameter('weight', weight);
    if (opts.bias ?? true) {
      // a bias beside a given weight takes that weight's dtype and backend
      const place = { ...opts, dtype: weight.dtype, backend: weight.backend.name };
      this.registerParameter(
        'bias',
        opts.std !== undefined || opts.weight ? constantParam([outFeatures], 0, place) : uniformParam([outFeatures], -bound, bound, place),
      );
    }
  }

  /** `[out, in]`. */
  get weight(): Tensor {
    return this.getParameter('weight');
  }

  /** `[out]`, or null without a bias. */
  get bias(): Tensor | null {
    return this.hasParameter('bias') ? this.getParameter('bias') : null;
  }

  /** x `[..., in]` → `[..., out]`. */
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}
