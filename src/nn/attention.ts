/**
 * `CausalSelfAttention`: GPT-2's multi-head self-attention. One projection `c_attn` makes q, k
 * and v; heads are split to `[B, H, T, D]` and handed to the fused `scaledDotProductAttention`
 * (so fast backends run their flash kernel); `c_proj` merges the heads back.
 * @module
 */
import { tensor } from '../tensor/ops/creation.js';
import { scaledDotProductAttention } from '../tensor/ops/nn.js';
import { reshape, split, transpose } from '../tensor/ops/shape_ops.js';
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
  /** Dropout on the output projection (residual dropout; default 0). */
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
 * (Linear C → 3C), `c_proj` (Linear C → C), `resid_dropout`, and `rotary` with `rope`.
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
    const [q0, k0, v0] = split(this.c_attn.forward(x), c, -1) as [Tensor, Tensor, Tensor];
    // [B, T, C] → q, k, v: [B, H, T, D]
    const heads = (z: Tensor): Tensor => transpose(reshape(z, [b, t, h, this.headDim]), 1, 2);
    let [q, k, v] = [heads(q0), heads(k0), heads(v0)];
    if (this.rotary) {
      q = this.rotary.forward(q, past);
      k = this.rotary.forward(k, past);
    }
    if (cache) [k, v] = cache.append(k, v);
    let y: Tensor;
    if (past === 0) y = scaledDotProductAttention(q, k, v, { isCausal: true });
    else if (t === 1) y = scaledDotProductAttention(q, k, v); // the one new query sees every key
    else y = scaledDotProductAttention(q, k, v, { attnMask: offsetCausalMask(t, past, x.backend.name) });
    // [B, H, T, D] → [B, T, C]
    y = reshape(transpose(y, 1, 2), [b, t, c]);
    return this.resid_dropout.forward(this.c_proj.forward(y));
  }
}

// bool [T, past+T]: new query i (at position past+i) attends key j when j ≤ past+i
function offsetCausalMask(t: number, past: number, backend: string): Tensor {
  const tk = past + t;
  const m = new Uint8Array(t * tk);
  for (let i = 0; i < t; i++) m.fill(1, i * tk, i * tk + past + i + 1);
  return tensor(m, [t, tk], { dtype: 'bool', backend });
}
