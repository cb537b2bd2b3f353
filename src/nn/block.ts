/** `Block`: a pre-norm transformer layer, x + attn(ln_1(x)), then + mlp(ln_2(x)) (or + moe(ln_2(x))). @module */
import { asOp, live, relabel } from '../tensor/ops/util.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkChoice, checkNumber } from '../tensor/validate.js';
import { ATTENTION_KEYS, CausalSelfAttention, checkLayerCache, resolveAttention, type AttentionConfig } from './attention.js';
import type { LayerKVCache } from './kv_cache.js';
import { MLP, type MLPActivation } from './mlp.js';
import { Module } from './module.js';
import { MOE_CONFIG_KEYS, MoE, resolveMoEConfig, type MoEConfig } from './moe.js';
import { LayerNorm } from './norm.js';
import { checkConfig, size } from './validate.js';

/** The keys of {@link BlockConfig}. */
export const BLOCK_KEYS = [...ATTENTION_KEYS, 'mlpHidden', 'activation', 'layerNormEps', 'moe'] as const;

/** Options of {@link Block}: those of attention, plus the MLP's width and GELU and the norms' epsilon. */
export interface BlockConfig extends AttentionConfig {
  /** MLP hidden width (4·nEmbd by default). */
  mlpHidden?: number;
  /** The MLP's GELU variant (default `'gelu_tanh'`, as GPT-2). */
  activation?: MLPActivation;
  /** Epsilon of `ln_1` and `ln_2` (default 1e-5, as GPT-2). */
  layerNormEps?: number;
  /**
   * A mixture of experts (child `moe`, a {@link MoE} of MLPs `mlpHidden` wide) as the
   * feed-forward instead of the MLP; null or absent: the MLP.
   */
  moe?: MoEConfig | null;
}

/**
 * A GPT-2 transformer layer with pre-normalisation and residuals:
 * `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`. Children `ln_1`, `attn`, `ln_2`, `mlp`; with
 * `moe`, `moe` (a {@link MoE}) in place of `mlp`.
 */
export class Block extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln_2: LayerNorm;
  /** The mixture-of-experts feed-forward, or null when the block has an MLP. */
  readonly moe: MoE | null;
  private readonly _mlp: MLP | null;

  constructor(config: BlockConfig) {
    super();
    const op = 'Block';
    const c = checkConfig(op, config, BLOCK_KEYS);
    const r = resolveAttention(op, c);
    const mlpHidden = c.mlpHidden === undefined ? undefined : size(op, 'mlpHidden', c.mlpHidden);
    const activation = c.activation === undefined ? undefined : checkChoice(op, 'activation', c.activation, ['gelu', 'gelu_tanh'] as const);
    const eps = c.layerNormEps === undefined ? undefined : checkNumber(op, 'layerNormEps', c.layerNormEps, { min: 0 });
    const moe = c.moe === undefined || c.moe === null ? null : resolveMoEConfig(op, c.moe, MOE_CONFIG_KEYS, 'moe.');
    const { place, bias } = r;
    const norm = {
      bias,
      ...(eps !== undefined ? { eps } : {}),
      ...(place.dtype ? { dtype: place.dtype } : {}),
      ...(place.backend ? { backend: place.backend } : {}),
    };
    const attention: AttentionConfig = {
      ...place,
      nEmbd: r.nEmbd,
      nHead: r.nHead,
      kvHeads: r.kvHeads,
      window: r.window,
      bias,
      dropout: r.dropout,
      rope: r.rope,
      ropeBase: r.ropeBase,
      std: r.std,
      projStd: r.projStd,
      ...(r.blockSize !== undefined ? { blockSize: r.blockSize } : {}),
    };
    // every option is checked: only an allocation can fail below
    try {
      this.ln_1 = this.registerModule('ln_1', new LayerNorm(r.nEmbd, norm));
      this.attn = this.registerModule('attn', new CausalSelfAttention(attention));
      this.ln_2 = this.registerModule('ln_2', new LayerNorm(r.nEmbd, norm));
      const ffn = {
        ...place,
        bias,
        dropout: r.dropout,
        std: r.std,
        projStd: r.projStd,
        ...(activation !== undefined ? { activation } : {}),
        ...(mlpHidden !== undefined ? { hidden: mlpHidden } : {}),
      };
      this.moe = moe ? this.registerModule('moe', new MoE(r.nEmbd, { ...ffn, ...moe })) : null;
      this._mlp = moe ? null : this.registerModule('mlp', new MLP(r.nEmbd, ffn));
    } catch (e) {
      this.dispose();
      throw relabel(op, e);
    }
  }

  /** The feed-forward MLP; throws in a block built with `moe` (use {@link moe}). */
  get mlp(): MLP {
    if (!this._mlp) throw new Error('Block.mlp: this block has a mixture of experts as its feed-forward (block.moe), not an MLP');
    return this._mlp;
  }

  /** x `[B, T, C]` (the new positions when a cache is given) → `[B, T, C]`; `attnMask` as the attention's. */
  forward(x: Tensor, cache?: LayerKVCache, attnMask?: Tensor): Tensor {
    const op = 'Block.forward';
    live(op, x);
    const layer = checkLayerCache(op, cache);
    return asOp(op, () => {
      const attn = this.attn.forward(this.ln_1.forward(x), layer, attnMask);
      // the residual add and ln_2 in one pass
      const [a, h] = this.ln_2.forwardAdd(x, attn);
      const y = a.add(this.moe ? this.moe.forward(h) : this._mlp!.forward(h));
      const adapter = this.getModule('adapter') as { forward(t: Tensor): Tensor } | null;
      return adapter ? adapter.forward(y) : y;
    });
  }

  /**
   * Put `m` after this block (child `adapter`: its `forward` maps the block's output
   * `[B, T, C]` to the next block's input), replacing one there; null removes it and returns
   * the removed module (not disposed). Bottleneck adapters between blocks use this.
   */
  setAdapter(m: Module | null): Module | null {
    const old = this.getModule('adapter');
    if (old) this.unregisterModule('adapter');
    if (m) this.registerModule('adapter', m);
    return old;
  }
}
