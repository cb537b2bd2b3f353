/** `MLP`: GPT-2's feed-forward block, c_fc → GELU (tanh by default) → c_proj → dropout. @module */
import type { Tensor } from '../tensor/tensor.js';
import { GELU } from './activation.js';
import { Dropout } from './dropout.js';
import { GPT2_INIT_STD, type ParamOptions } from './init.js';
import { Linear } from './linear.js';
import { Module } from './module.js';

/**
 * The GELU of an {@link MLP}: `'gelu_tanh'`, the tanh approximation
 * 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) that GPT-2 uses (Hugging Face's `gelu_new`), or
 * `'gelu'`, the exact x·Φ(x) = 0.5·x·(1 + erf(x/√2)).
 */
export type MLPActivation = 'gelu' | 'gelu_tanh';

/** Options of {@link MLP}. */
export interface MLPOptions extends ParamOptions {
  /** Hidden width (4·nEmbd by default). */
  hidden?: number;
  /** Biases on both projections (default true). */
  bias?: boolean;
  /** The GELU variant (default `'gelu_tanh'`, as GPT-2). */
  activation?: MLPActivation;
  /** Dropout after the output projection (default 0). */
  dropout?: number;
  /** Init std of `c_fc.weight` (0.02). */
  std?: number;
  /** Init std of `c_proj.weight`, a residual projection (0.02; GPT passes 0.02/√(2·nLayer)). */
  projStd?: number;
}

/**
 * The transformer feed-forward block of GPT-2: `dropout(c_proj(gelu_tanh(c_fc(x))))` (the exact
 * `gelu` with `activation: 'gelu'`), x `[..., nEmbd]` → `[..., nEmbd]`. Children `c_fc`, `act`,
 * `c_proj`, `dropout`.
 */
export class MLP extends Module {
  readonly c_fc: Linear;
  readonly act: GELU;
  readonly c_proj: Linear;
  readonly dropout: Dropout;

  constructor(nEmbd: number, opts: MLPOptions = {}) {
    super();
    const hidden = opts.hidden ?? 4 * nEmbd;
    const bias = opts.bias ?? true;
    const activation = opts.activation ?? 'gelu_tanh';
    if (activation !== 'gelu' && activation !== 'gelu_tanh')
      throw new Error(`MLP: activation must be 'gelu' or 'gelu_tanh', got '${String(activation)}'`);
    this.c_fc = this.registerModule('c_fc', new Linear(nEmbd, hidden, { ...opts, bias, std: opts.std ?? GPT2_INIT_STD }));
    this.act = this.registerModule('act', new GELU({ approximate: activation === 'gelu_tanh' ? 'tanh' : 'none' }));
    this.c_proj = this.registerModule('c_proj', new Linear(hidden, nEmbd, { ...opts, bias, std: opts.projStd ?? GPT2_INIT_STD }));
    this.dropout = this.registerModule('dropout', new Dropout(opts.dropout ?? 0, opts.generator ? { generator: opts.generator } : {}));
  }

  /** x `[..., nEmbd]` → `[..., nEmbd]`. */
  forward(x: Tensor): Tensor {
    return this.dropout.forward(this.c_proj.forward(this.act.forward(this.c_fc.forward(x))));
  }
}
