/**
 * Key/value caches for incremental decoding: each attention layer keeps the keys and values
 * of the positions it has seen, so a generation step only computes the new token.
 * @module
 */
import { keep } from '../tensor/memory.js';
import { concat } from '../tensor/ops/shape_ops.js';
import { asOp, live } from '../tensor/ops/util.js';
import { fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { size } from './validate.js';

/**
 * The cached keys and values of one attention layer, `[B, T, Hkv, D]` each (the layout attention
 * reads without copies; Hkv, the key/value heads, is fewer than the query heads with grouped-query
 * attention, which shrinks the cache by H/Hkv). Every position is kept, also with a sliding
 * window (positions and the causal offset stay those of the whole sequence).
 */
export class LayerKVCache {
  /** Keys so far, or null when empty. */
  k: Tensor | null = null;
  /** Values so far, or null when empty. */
  v: Tensor | null = null;

  /** Positions cached. */
  get length(): number {
    return this.k ? this.k.shape[1]! : 0;
  }

  /**
   * Append the new positions' keys and values `[B, Tnew, Hkv, D]`; return all of them (past and
   * new, `[B, Tpast+Tnew, Hkv, D]`). The cache keeps detached copies outside every tidy scope.
   */
  append(k: Tensor, v: Tensor): [Tensor, Tensor] {
    const op = 'LayerKVCache.append';
    live(op, k, v);
    if (k.dtype !== v.dtype) throw new Error(`${op}: k and v must have one dtype, got ${k.dtype} and ${v.dtype}`);
    if (k.rank !== 4 || v.rank !== 4 || k.shape[1] !== v.shape[1])
      throw new Error(`LayerKVCache.append: k and v must be [B, T, H, D] with one T, got ${fmt(k.shape)} and ${fmt(v.shape)}`);
    if (this.k && this.v) {
      const [pk, pv] = [this.k, this.v];
      if ([0, 2, 3].some((i) => pk.shape[i] !== k.shape[i] || pv.shape[i] !== v.shape[i]))
        throw new Error(`LayerKVCache.append: new k ${fmt(k.shape)}, v ${fmt(v.shape)} do not match the cache's k ${fmt(pk.shape)}, v ${fmt(pv.shape)}`);
    }
    const [kAll, vAll] = asOp(op, () => [this.k ? concat([this.k, k], 1) : k, this.v ? concat([this.v, v], 1) : v]);
    this.clear();
    this.k = keep(kAll.detach());
    this.v = keep(vAll.detach());
    return [kAll, vAll];
  }

  /** Empty the cache (disposing its tensors). */
  clear(): void {
    this.k?.dispose();
    this.v?.dispose();
    this.k = null;
    this.v = null;
  }
}

/** One {@link LayerKVCache} per transformer layer, passed to `GPT.forward({ cache })`. */
export class KVCache implements Disposable {
  readonly layers: LayerKVCache[];

  constructor(nLayer: number) {
    size('KVCache', 'nLayer', nLayer);
    this.layers = Array.from({ length: nLayer }, () => new LayerKVCache());
  }

  /** Positions cached (that of the first layer; all layers advance together). */
  get length(): number {
    return this.layers[0]!.length;
  }

  /** Empty every layer's cache. */
  clear(): void {
    for (const l of this.layers) l.clear();
  }

  /** Same as {@link clear}. */
  dispose(): void {
    this.clear();
  }

  [Symbol.dispose](): void {
    this.clear();
  }
}
