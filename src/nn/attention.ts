/**
 * `CausalSelfAttention`: GPT-2's multi-head self-attention. One projection `c_attn` makes q, k
 * and v side by side, `[B, T, 3·C]`; the fused attention kernel reads the heads straight out of
 * it and writes `[B, T, C]` for `c_proj`, so training runs no split, transpose or merge copies.
 * With rotary embeddings or a KV cache, q, k and v are split once and kept `[B, T, H, D]`.
 * @module
 */
import { packedAttention, scaledDotProductAttention } from '../tensor/ops/attention.js';
import { reshape, split } from '../tensor/ops/shape_ops.js';
import { fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Dropout } from './dropout.js';
import { GPT2_INIT_STD, type ParamOptions } from './init.js';
import type { LayerKVCache } from './kv_cache.js';
import { Linear } from './linear.js';
import { Module } from './module.js';
import { RotaryEmbedding } from './rope.js';

/** Options of {@link CausalSelfAttention}. */
export interface AttentionConfig extends ParamOptions {
  /** Model width C. */
  nEmbd: number;
  /** Number of heads H (C must be divisible by H). */
  nHead: number;
  /** Biases on the projections (default true). */
  bias?: boolean;
  /** Dropout on the attention weights and on the output projection (residual dropout), as nanoGPT (default 0). */
  dropout?: number;
  /** Rotate q and k with rotary position embeddings (default false). */
  rope?: boolean;
  /** Longest sequence (the rotary tables' size); needed with `rope`. */
  blockSize?: number;
  /** Rotary θ base (default 10000). */
  ropeBase?: number;
  /** Init std of `c_attn.weight` (0.02). */
  std?: number;
  /** Init std of `c_proj.weight`, a residual projection (0.02; GPT passes 0.02/√(2·nLayer)). */
  projStd?: number;
}

/**
 * Causal multi-head self-attention, x `[B, T, C]` → `[B, T, C]`. Children `c_attn`
 * (Linear C → 3C), `c_proj` (Linear C → C), `resid_dropout`, and `rotary` with `rope`; dropout
 * on the attention weights (same p) while training.
 *
 * With a {@link LayerKVCache}, x holds only the new positions: their keys and values are
 * appended to the cache and the queries attend to everything cached, giving the same result as
 * running the whole sequence.
 */
export class CausalSelfAttention extends Module {
  readonly nEmbd: number;
  readonly nHead: number;
  readonly headDim: number;
  readonly c_attn: Linear;
  readonly c_proj: Linear;
  readonly resid_dropout: Dropout;
  readonly rotary: RotaryEmbedding | null;
  /** Dropout probability of the attention weights (while training). */
  readonly attnDropout: number;

  constructor(config: AttentionConfig) {
    super();
    const { nEmbd, nHead } = config;
    if (!Number.isInteger(nEmbd) || !Number.isInteger(nHead) || nEmbd < 1 || nHead < 1 || nEmbd % nHead !== 0)
      throw new Error(`CausalSelfAttention: nEmbd (${nEmbd}) must be a positive multiple of nHead (${nHead})`);
    this.nEmbd = nEmbd;
    this.nHead = nHead;
    this.headDim = nEmbd / nHead;
    const bias = config.bias ?? true;
    this.c_attn = this.registerModule('c_attn', new Linear(nEmbd, 3 * nEmbd, { ...config, bias, std: config.std ?? GPT2_INIT_STD }));
    this.c_proj = this.registerModule('c_proj', new Linear(nEmbd, nEmbd, { ...config, bias, std: config.projStd ?? GPT2_INIT_STD }));
    const gen = config.generator ? { generator: config.generator } : {};
    this.resid_dropout = this.registerModule('resid_dropout', new Dropout(config.dropout ?? 0, gen));
    this.attnDropout = config.dropout ?? 0;
    this.rotary = null;
    if (config.rope) {
      if (config.blockSize === undefined) throw new Error('CausalSelfAttention: rope needs blockSize (the longest sequence)');
      if (this.headDim % 2 !== 0) throw new Error(`CausalSelfAttention: rope needs an even head size, got ${this.headDim}`);
      const opts = { ...(config.ropeBase !== undefined ? { base: config.ropeBase } : {}), ...(config.dtype ? { dtype: config.dtype } : {}), ...(config.backend ? { backend: config.backend } : {}) };
      this.rotary = this.registerModule('rotary', new RotaryEmbedding(this.headDim, config.blockSize, opts));
    }
  }

  /** x `[B, T, C]` (only the new positions when a cache is given) → `[B, T, C]`. */
  forward(x: Tensor, cache?: LayerKVCache): Tensor {
    if (x.rank !== 3 || x.shape[2] !== this.nEmbd)
      throw new Error(`CausalSelfAttention.forward: expected x [B, T, ${this.nEmbd}], got ${fmt(x.shape)} ${x.dtype}`);
    const [b, t, c] = x.shape as [number, number, number];
    const h = this.nHead;
    const past = cache?.length ?? 0;
    const qkv = this.c_attn.forward(x); // [B, T, 3C]
    const opts = { isCausal: true, dropoutP: this.training ? this.attnDropout : 0, generator: this.resid_dropout.generator };
    let y: Tensor;
    if (!this.rotary && !cache) y = packedAttention(qkv, h, opts);
    else {
      // [B, T, C] → [B, T, H, D] (a view)
      const [q, k, v] = split(qkv, c, -1).map((z) => reshape(z, [b, t, h, this.headDim])) as [Tensor, Tensor, Tensor];
      let [qr, kr, vr] = [q, k, v];
      if (this.rotary) [qr, kr] = [this.rotary.forward(q, past, 'bthd'), this.rotary.forward(k, past, 'bthd')];
      if (cache) [kr, vr] = cache.append(kr, vr);
      // the new queries follow the cached keys: causal from the bottom right
      const o = scaledDotProductAttention(qr, kr, vr, { ...opts, causalOffset: past, layout: 'bthd' });
      y = reshape(o, [b, t, c]);
    }
    return this.resid_dropout.forward(this.c_proj.forward(y));
  }
}
