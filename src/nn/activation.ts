/** Activation modules: `GELU`, `SiLU`, `ReLU`. @module */
import { gelu, relu, silu } from '../tensor/ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module } from './module.js';

/** GELU (as `torch.nn.GELU`): exact erf form, or GPT-2's tanh approximation with `{ approximate: 'tanh' }`. */
export class GELU extends Module {
  readonly approximate: 'none' | 'tanh';

  constructor(opts: { approximate?: 'none' | 'tanh' } = {}) {
    super();
    const a = opts.approximate ?? 'none';
    if (a !== 'none' && a !== 'tanh') throw new Error(`GELU: approximate must be 'none' or 'tanh', got '${String(a)}'`);
    this.approximate = a;
  }

  /** GELU of each element. */
  forward(x: Tensor): Tensor {
    return gelu(x, { approximate: this.approximate });
  }
}

/** SiLU (swish): x·σ(x) (as `torch.nn.SiLU`). */
export class SiLU extends Module {
  /** SiLU of each element. */
  forward(x: Tensor): Tensor {
    return silu(x);
  }
}

/** ReLU: max(x, 0) (as `torch.nn.ReLU`). */
export class ReLU extends Module {
  /** ReLU of each element. */
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}
