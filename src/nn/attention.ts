/**
 * `CausalSelfAttention`: GPT-2's multi-head self-attention. One projection `c_attn` makes q, k
 * and v side by side, `[B, T, 3·C]`; the fused attention kernel reads the heads straight out of
 * it and writes `[B, T, C]` for `c_proj`, so training runs no split, transpose or merge copies.
 * With rotary embeddings or a KV cache, q, k and v are split once and kept `[B, T, H, D]`.
 * Grouped-query attention (`kvHeads` < `nHead`) shrinks the projection to `(H + 2·Hkv)·D` outputs
 * and the cache to Hkv heads; a sliding `window` bounds what each position attends to.
 * @module
 */
import { packedAttention, scaledDotProductAttention } from '../tensor/ops/attention.js';
import { reshape, split } from '../tensor/ops/shape_ops.js';
import { asOp, live, relabel } from '../tensor/ops/util.js';
import { fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkNumber, show } from '../tensor/validate.js';
import { Dropout } from './dropout.js';
import { GPT2_INIT_STD, type ParamOptions } from './init.js';
import { LayerKVCache } from './kv_cache.js';
import { Linear } from './linear.js';
import { Module } from './module.js';
import { RotaryEmbedding } from './rope.js';
import { checkConfig, PARAM_KEYS, paramOptions, size } from './validate.js';

/** The keys of {@link AttentionConfig}. */
export const ATTENTION_KEYS = [...PARAM_KEYS, 'nEmbd', 'nHead', 'kvHeads', 'window', 'bias', 'dropout', 'rope', 'blockSize', 'ropeBase', 'std', 'projStd'] as const;

/** An {@link AttentionConfig} with every option checked and resolved (for {@link CausalSelfAttention} and {@link Block}). */
export interface ResolvedAttention {
  nEmbd: number;
  nHead: number;
  kvHeads: number;
  window: number | null;
  bias: boolean;
  dropout: number;
  rope: boolean;
  blockSize: number | undefined;
  ropeBase: number;
  std: number;
  projStd: number;
  place: ParamOptions;
}

/**
 * Check grouped-query heads and the sliding window of an attention config under `op` (names
 * prefixed with `prefix`, `config.` for a GPT's): kvHeads defaults to nHead and must divide it;
 * window is null (none) or a positive integer.
 */
export function resolveAttentionVariant(op: string, nHead: number, kvHeads: unknown, window: unknown, prefix = ''): { kvHeads: number; window: number | null } {
  const hkv = kvHeads === undefined ? nHead : size(op, `${prefix}kvHeads`, kvHeads);
  if (nHead % hkv !== 0) throw new Error(`${op}: ${prefix}kvHeads (${hkv}) must divide ${prefix}nHead (${nHead})`);
  const w = window === undefined || window === null ? null : checkNumber(op, `${prefix}window`, window, { integer: true, min: 1 });
  return { kvHeads: hkv, window: w };
}

/** Check the attention options of `c` (a config already checked for unknown keys) under `op`. */
export function resolveAttention(op: string, c: AttentionConfig): ResolvedAttention {
  const nEmbd = size(op, 'nEmbd', c.nEmbd);
  const nHead = size(op, 'nHead', c.nHead);
  if (nEmbd % nHead !== 0) throw new Error(`${op}: nEmbd (${nEmbd}) must be a positive multiple of nHead (${nHead})`);
  const opt = (name: string, v: unknown, spec: Parameters<typeof checkNumber>[3], dflt: number): number => (v === undefined ? dflt : checkNumber(op, name, v, spec));
  const flag = (name: string, v: unknown, dflt: boolean): boolean => (v === undefined ? dflt : checkBoolean(op, name, v));
  const r: ResolvedAttention = {
    nEmbd,
    nHead,
    ...resolveAttentionVariant(op, nHead, c.kvHeads, c.window),
    bias: flag('bias', c.bias, true),
    // the attention weights' dropout, as scaledDotProductAttention's dropoutP, is below 1
    dropout: opt('dropout', c.dropout, { min: 0, max: 1, maxExclusive: true }, 0),
    rope: flag('rope', c.rope, false),
    blockSize: c.blockSize === undefined ? undefined : size(op, 'blockSize', c.blockSize),
    ropeBase: opt('ropeBase', c.ropeBase, { min: 0, minExclusive: true }, 10000),
    std: opt('std', c.std, { min: 0 }, GPT2_INIT_STD),
    projStd: opt('projStd', c.projStd, { min: 0 }, GPT2_INIT_STD),
    place: paramOptions(op, c),
  };
  if (r.rope) {
    if (r.blockSize === undefined) throw new Error(`${op}: rope needs blockSize (the longest sequence)`);
    if ((nEmbd / nHead) % 2 !== 0) throw new Error(`${op}: rope needs an even head size, got ${nEmbd / nHead}`);
  }
  return r;
}

/** Check the optional cache argument of a forward. */
export function checkLayerCache(op: string, cache: unknown): LayerKVCache | undefined {
  if (cache === undefined || cache === null) return undefined;
  if (!(cache instanceof LayerKVCache)) throw new Error(`${op}: cache must be a LayerKVCache, got ${show(cache)}`);
  return cache;
}

/** Options of {@link CausalSelfAttention}. */
export interface AttentionConfig extends ParamOptions {
  /** Model width C. */
  nEmbd: number;
  /** Number of heads H (C must be divisible by H). */
  nHead: number;
  /**
   * Key/value heads Hkv (grouped-query attention; divides H; default H): each kv head serves
   * H/Hkv query heads, and `c_attn` makes `(H + 2·Hkv)·D` outputs.
   */
  kvHeads?: number;
  /**
   * Sliding-window attention: each position attends to the `window` most recent positions,
   * itself included (Mistral's `sliding_window`); null or omitted: all earlier positions.
   */
  window?: number | null;
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
 * (Linear C → 3C, or C → (H + 2·Hkv)·D with `kvHeads`), `c_proj` (Linear C → C),
 * `resid_dropout`, and `rotary` with `rope`; dropout on the attention weights (same p) while
 * training; a sliding `window` when given.
 *
 * With a {@link LayerKVCache}, x holds only the new positions: their keys and values are
 * appended to the cache and the queries attend to everything cached, giving the same result as
 * running the whole sequence.
 */
export class CausalSelfAttention extends Module {
  readonly nEmbd: number;
  readonly nHead: number;
  /** Key/value heads (nHead unless grouped-query). */
  readonly kvHeads: number;
  /** Sliding window (positions each query sees), or null. */
  readonly window: number | null;
  readonly headDim: number;
  readonly c_attn: Linear;
  readonly c_proj: Linear;
  readonly resid_dropout: Dropout;
  readonly rotary: RotaryEmbedding | null;
  /** Dropout probability of the attention weights (while training). */
  readonly attnDropout: number;

  constructor(config: AttentionConfig) {
    super();
    const op = 'CausalSelfAttention';
    const r = resolveAttention(op, checkConfig(op, config, ATTENTION_KEYS));
    this.nEmbd = r.nEmbd;
    this.nHead = r.nHead;
    this.kvHeads = r.kvHeads;
    this.window = r.window;
    this.headDim = r.nEmbd / r.nHead;
    this.attnDropout = r.dropout;
    this.rotary = null;
    try {
      const { nEmbd, bias, place } = r;
      const qkvWidth = nEmbd + 2 * r.kvHeads * this.headDim;
      this.c_attn = this.registerModule('c_attn', new Linear(nEmbd, qkvWidth, { ...place, bias, std: r.std }));
      this.c_proj = this.registerModule('c_proj', new Linear(nEmbd, nEmbd, { ...place, bias, std: r.projStd }));
      this.resid_dropout = this.registerModule('resid_dropout', new Dropout(r.dropout, place.generator ? { generator: place.generator } : {}));
      if (r.rope) {
        const opts = { base: r.ropeBase, ...(place.dtype ? { dtype: place.dtype } : {}), ...(place.backend ? { backend: place.backend } : {}) };
        this.rotary = this.registerModule('rotary', new RotaryEmbedding(this.headDim, r.blockSize!, opts));
      }
    } catch (e) {
      this.dispose();
      throw relabel(op, e);
    }
  }

  /**
   * x `[B, T, C]` (only the new positions when a cache is given) → `[B, T, C]`. `attnMask`
   * (bool, broadcast to `[B, H, T, T]`) hides keys besides causality (packed sequences).
   */
  forward(x: Tensor, cache?: LayerKVCache, attnMask?: Tensor): Tensor {
    const op = 'CausalSelfAttention.forward';
    live(op, x);
    cache = checkLayerCache(op, cache);
    if (x.rank !== 3 || x.shape[2] !== this.nEmbd) throw new Error(`${op}: expected x [B, T, ${this.nEmbd}], got ${fmt(x.shape)} ${x.dtype}`);
    return asOp(op, () => this.attendChecked(x, cache, attnMask));
  }

  private attendChecked(x: Tensor, cache: LayerKVCache | undefined, attnMask: Tensor | undefined): Tensor {
    const [b, t, c] = x.shape as [number, number, number];
    const h = this.nHead;
    const hkv = this.kvHeads;
    const past = cache?.length ?? 0;
    const qkv = this.c_attn.forward(x); // [B, T, (H + 2·Hkv)·D]
    const opts = { isCausal: true, window: this.window, dropoutP: this.training ? this.attnDropout : 0, generator: this.resid_dropout.generator, ...(attnMask ? { attnMask } : {}) };
    let y: Tensor;
    if (!this.rotary && !cache) y = packedAttention(qkv, h, { ...opts, kvHeads: hkv });
    else {
      // → q [B, T, H, D], k and v [B, T, Hkv, D]
      const kvc = hkv * this.headDim;
      const [q, k, v] = split(qkv, [c, kvc, kvc], -1).map((z, i) => reshape(z, [b, t, i === 0 ? h : hkv, this.headDim])) as [Tensor, Tensor, Tensor];
      let [qr, kr, vr] = [q, k, v];
      if (this.rotary) [qr, kr] = [this.rotary.forward(q, past, 'bthd'), this.rotary.forward(k, past, 'bthd')];
      if (cache) [kr, vr] = cache.append(kr, vr);
      // the new queries follow the cached keys: causal from the bottom right
      const o = scaledDotProductAttention(qr, kr, vr, { ...opts, causalOffset: past, layout: 'bthd', enableGqa: true });
      y = reshape(o, [b, t, c]);
    }
    return this.resid_dropout.forward(this.c_proj.forward(y));
  }
}
