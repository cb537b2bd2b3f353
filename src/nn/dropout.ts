/** `Dropout`: the functional dropout, active only in training mode. @module */
import { dropout } from '../tensor/ops/nn.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { optionalNumber } from '../tensor/validate.js';
import { Module } from './module.js';
import { options, paramOptions } from './validate.js';
import { asOp } from '../tensor/ops/util.js';

/**
 * Zero each element with probability `p` and scale the rest by 1/(1−p) while
 * {@link Module.training}; the identity in eval mode (as `torch.nn.Dropout`). Draws from
 * `generator` (the default generator when omitted).
 */
export class Dropout extends Module {
  readonly p: number;
  readonly generator: Generator;

  constructor(p = 0.5, opts: { generator?: Generator } = {}) {
    super();
    this.p = optionalNumber('Dropout', 'p', p, 0.5, { min: 0, max: 1 });
    this.generator = paramOptions('Dropout', options('Dropout', opts, ['generator'])).generator ?? defaultGenerator;
  }

  /** x → x with dropout applied when training (x itself otherwise). */
  forward(x: Tensor): Tensor {
    return asOp('Dropout.forward', () => dropout(x, this.p, this.training, this.generator));
  }
}
