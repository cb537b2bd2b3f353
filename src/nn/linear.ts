/** `Linear`: a fully connected layer, `y = x·Wᵀ + b`. @module */
import { isFloat } from '../backend/dtype.js';
import { linear } from '../tensor/ops/nn.js';
import { fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkNumber } from '../tensor/validate.js';
import { makeConstant, makeNormal, makeUniform, type ParamOptions } from './init.js';
import { Module } from './module.js';
import { options, PARAM_KEYS, paramOptions, size, tensorArg } from './validate.js';
import { asOp } from '../tensor/ops/util.js';

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
    const op = 'Linear';
    // as PyTorch, a layer of zero features is allowed (an empty weight)
    this.inFeatures = size(op, 'inFeatures', inFeatures, 0);
    this.outFeatures = size(op, 'outFeatures', outFeatures, 0);
    const o = options(op, opts, [...PARAM_KEYS, 'bias', 'std', 'weight']);
    const place = paramOptions(op, o);
    const bias = o.bias === undefined ? true : checkBoolean(op, 'bias', o.bias);
    if (o.std !== undefined) checkNumber(op, 'std', o.std, { min: 0 });
    const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
    let weight = o.weight ?? undefined;
    if (weight !== undefined) {
      tensorArg(op, 'weight', weight);
      if (!weight.isLeaf) throw new Error('Linear: weight must be a leaf tensor (use detach())');
      if (weight.rank !== 2 || weight.shape[0] !== outFeatures || weight.shape[1] !== inFeatures)
        throw new Error(`Linear: weight must be [${outFeatures}, ${inFeatures}], got ${fmt(weight.shape)}`);
      if (!isFloat(weight.dtype)) throw new Error(`Linear: weight must be floating, got ${fmt(weight.shape)} ${weight.dtype}`);
    } else
      weight =
        o.std !== undefined
          ? makeNormal(op, [outFeatures, inFeatures], o.std, place)
          : makeUniform(op, [outFeatures, inFeatures], -bound, bound, place);
    this.registerParameter('weight', weight);
    if (bias) {
      // a bias beside a given weight takes that weight's dtype and backend
      const beside = { ...place, dtype: weight.dtype, backend: weight.backend.name };
      this.registerParameter(
        'bias',
        o.std !== undefined || o.weight ? makeConstant(op, [outFeatures], 0, beside) : makeUniform(op, [outFeatures], -bound, bound, beside),
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
    return asOp('Linear.forward', () => linear(x, this.weight, this.bias));
  }
}
