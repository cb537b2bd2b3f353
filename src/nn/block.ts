/** `Block`: a pre-norm transformer layer, x + attn(ln_1(x)), then + mlp(ln_2(x)). @module */
import type { Tensor } from '../tensor/tensor.js';
import { CausalSelfAttention, type AttentionConfig } from './attention.js';
import type { LayerKVCache } from './kv_cache.js';
import { MLP, type MLPActivation } from './mlp.js';
import { Module } from './module.js';
import { LayerNorm } from './norm.js';

/** Options of {@link Block}: those of attention, plus the MLP's width and GELU and the norms' epsilon. */
export interface BlockConfig extends AttentionConfig {
  /** MLP hidden width (4·nEmbd by default). */
  mlpHidden?: number;
  /** The MLP's GELU variant (default `'gelu_tanh'`, as GPT-2). */
  activation?: MLPActivation;
  /** Epsilon of `ln_1` and `ln_2` (default 1e-5, as GPT-2). */
  layerNormEps?: number;
}

/**
 * A GPT-2 transformer layer with pre-normalisation and residuals:
 * `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`. Children `ln_1`, `attn`, `ln_2`, `mlp`.
 */
export class Block extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: MLP;

  constructor(config: BlockConfig) {
    super();
    const bias = config.bias ?? true;
    const norm = {
      bias,
      ...(config.layerNormEps !== undefined ? { eps: config.layerNormEps } : {}),
      ...(config.dtype ? { dtype: config.dtype } : {}),
      ...(config.backend ? { backend: config.backend } : {}),
    };
    this.ln_1 = this.registerModule('ln_1', new LayerNorm(config.nEmbd, norm));
    this.attn = this.registerModule('attn', new CausalSelfAttention(config));
    this.ln_2 = this.registerModule('ln_2', new LayerNorm(config.nEmbd, norm));
    this.mlp = this.registerModule(
      'mlp',
      new MLP(config.nEmbd, {
        ...config,
        bias,
        dropout: config.dropout ?? 0,
        ...(config.mlpHidden !== undefined ? { hidden: config.mlpHidden } : {}),
      }),
    );
  }

  /** x `[B, T, C]` (the new positions when a cache is given) → `[B, T, C]`. */
  forward(x: Tensor, cache?: LayerKVCache): Tensor {
    const a = x.add(this.attn.forward(this.ln_1.forward(x), cache));
    return a.add(this.mlp.forward(this.ln_2.forward(a)));
  }
}
