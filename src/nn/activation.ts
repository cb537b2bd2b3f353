/** Activation modules: `GELU`, `SiLU`, `ReLU`. @module */
import { gelu, relu, silu } from '../tensor/ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkChoice } from '../tensor/validate.js';
import { Module } from './module.js';
import { options } from './validate.js';
import { asOp } from '../tensor/ops/util.js';

/** GELU (as `torch.nn.GELU`): exact erf form, or GPT-2's tanh approximation with `{ approximate: 'tanh' }`. */
export class GELU extends Module {
  readonly approximate: 'none' | 'tanh';

  constructor(opts: { approximate?: 'none' | 'tanh' } = {}) {
    super();
    const o = options('GELU', opts, ['approximate']);
    this.approximate = o.approximate === undefined ? 'none' : checkChoice('GELU', 'approximate', o.approximate, ['none', 'tanh'] as const);
  }

  /** GELU of each element. */
  forward(x: Tensor): Tensor {
    return asOp('GELU.forward', () => gelu(x, { approximate: this.approximate }));
  }
}

/** SiLU (swish): x·σ(x) (as `torch.nn.SiLU`). */
export class SiLU extends Module {
  /** SiLU of each element. */
  forward(x: Tensor): Tensor {
    return asOp('SiLU.forward', () => silu(x));
  }
}

/** ReLU: max(x, 0) (as `torch.nn.ReLU`). */
export class ReLU extends Module {
  /** ReLU of each element. */
  forward(x: Tensor): Tensor {
    return asOp('ReLU.forward', () => relu(x));
  }
}
