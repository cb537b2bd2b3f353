/** `MLP`: GPT-2's feed-forward block, c_fc → GELU (tanh by default) → c_proj → dropout. @module */
import type { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkChoice, checkNumber } from '../tensor/validate.js';
import { GELU } from './activation.js';
import { Dropout } from './dropout.js';
import { GPT2_INIT_STD, type ParamOptions } from './init.js';
import { Linear } from './linear.js';
import { Module } from './module.js';
import { options, PARAM_KEYS, paramOptions, size } from './validate.js';
import { asOp, relabel } from '../tensor/ops/util.js';

/** The option names of {@link MLP}. */
export const MLP_KEYS = [...PARAM_KEYS, 'hidden', 'bias', 'activation', 'dropout', 'std', 'projStd'] as const;

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
    const op = 'MLP';
    size(op, 'nEmbd', nEmbd);
    const o = options(op, opts, MLP_KEYS);
    const place = paramOptions(op, o);
    const hidden = o.hidden === undefined ? 4 * nEmbd : size(op, 'hidden', o.hidden);
    const bias = o.bias === undefined ? true : checkBoolean(op, 'bias', o.bias);
    const activation = o.activation === undefined ? 'gelu_tanh' : checkChoice(op, 'activation', o.activation, ['gelu', 'gelu_tanh'] as const);
    const p = o.dropout === undefined ? 0 : checkNumber(op, 'dropout', o.dropout, { min: 0, max: 1 });
    const std = o.std === undefined ? GPT2_INIT_STD : checkNumber(op, 'std', o.std, { min: 0 });
    const projStd = o.projStd === undefined ? GPT2_INIT_STD : checkNumber(op, 'projStd', o.projStd, { min: 0 });
    // every option is checked: only an allocation can fail below
    try {
      this.c_fc = this.registerModule('c_fc', new Linear(nEmbd, hidden, { ...place, bias, std }));
      this.act = this.registerModule('act', new GELU({ approximate: activation === 'gelu_tanh' ? 'tanh' : 'none' }));
      this.c_proj = this.registerModule('c_proj', new Linear(hidden, nEmbd, { ...place, bias, std: projStd }));
      this.dropout = this.registerModule('dropout', new Dropout(p, place.generator ? { generator: place.generator } : {}));
    } catch (e) {
      this.dispose();
      throw relabel(op, e);
    }
  }

  /** x `[..., nEmbd]` → `[..., nEmbd]`. */
  forward(x: Tensor): Tensor {
    // bias + GELU in c_fc's matmul epilogue (the `act` child names the variant)
    const act = this.act.approximate === 'tanh' ? 'gelu_tanh' : 'gelu';
    return asOp('MLP.forward', () => this.dropout.forward(this.c_proj.forward(this.c_fc.forwardActivated(x, act))));
  }
}
