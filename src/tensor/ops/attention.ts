/**
 * Scaled dot-product attention as one fused kernel: `softmax(q·kᵀ·scale + mask)·v` with optional
 * causal masking (at any alignment), a sliding window, grouped-query heads (k and v with fewer
 * heads than q, never expanded), dropout on the weights, and q, k, v, out addressed through
 * strides, so a transformer needs no split or transpose copies around it:
 * {@link scaledDotProductAttention} takes PyTorch's `[..., T, D]` layout or flash-attention's
 * `[B, T, H, D]`, and {@link packedAttention} reads q, k and v straight out of one `[B, T, 3·H·D]`
 * projection and writes `[B, T, H·D]`.
 * @module
 */
import type { AttentionArgs, Storage } from '../../backend/backend.js';
import { isFloat, type DType } from '../../backend/dtype.js';
import { dropoutThreshold } from '../../backend/philox.js';
import { noGrad, record } from '../../autograd/tape.js';
import { defaultGenerator, Generator } from '../random.js';
import { checkBoolean, checkChoice, checkKeys, checkNumber, show } from '../validate.js';
import { fmt, sizeOf, stridesOf, tryBroadcast } from '../shape.js';
import { Tensor } from '../tensor.js';
import { expand } from './shape_ops.js';
import { computeDtype, desc, fail, inCompute, live, present, rawCast } from './util.js';
import { autocastInputs } from '../../amp/autocast.js';

/** Options of {@link scaledDotProductAttention} and {@link packedAttention}. */
export interface AttentionOptions {
  /**
   * bool (true = attend) or float (added to the scores), broadcastable to `[..., Tq, Tk]` where
   * `...` are q's batch dims (`[B, H]` for the 'bthd' layout and for packed attention).
   */
  attnMask?: Tensor | null;
  /** Causal masking: query i attends keys j ≤ i + causalOffset. */
  isCausal?: boolean;
  /**
   * Sliding-window (local) attention, with `isCausal` only: each query attends the `window` keys
   * ending at its causal diagonal, itself included: i + causalOffset − window < j ≤ i + causalOffset
   * (Mistral's `sliding_window`; flash-attention's `window_size = (window − 1, 0)`). Kernels skip
   * key tiles outside the window, so time is O(Tq·window). null or omitted: no window.
   */
  window?: number | null;
  /**
   * Where the causal diagonal starts: 0 (default) aligns it top-left, as PyTorch's `is_causal`;
   * `Tk − Tq` aligns it bottom-right, for a chunk of new queries after cached keys.
   */
  causalOffset?: number;
  /** Score scale; 1/√D by default. */
  scale?: number;
  /** Dropout probability on the attention weights (as PyTorch's `dropout_p`; 0 by default). */
  dropoutP?: number;
  /** The stream dropout draws from (the default generator when omitted). */
  generator?: Generator;
  /**
   * Layout of q, k, v and the output: 'bhtd' (default): `[..., T, D]`, heads among the leading
   * dims, as PyTorch; 'bthd': `[B, T, H, D]`, as flash-attention, so that a `[B, T, H·D]`
   * projection reshapes to it (and the output back) without copies.
   */
  layout?: 'bhtd' | 'bthd';
  /**
   * Grouped-query attention (PyTorch's `enable_gqa`): k and v may have fewer heads Hkv than q's H
   * (Hkv dividing H); query head h reads kv head ⌊h / (H/Hkv)⌋, without expanding k and v, and
   * their gradients sum over each group. {@link scaledDotProductAttention} only (packed attention
   * takes `kvHeads`).
   */
  enableGqa?: boolean;
}

/** Options of {@link packedAttention}. */
export interface PackedAttentionOptions extends Omit<AttentionOptions, 'layout' | 'enableGqa'> {
  /**
   * Heads of k and v (grouped-query attention; divides `heads`; default `heads`): the projection
   * is then `[B, T, (H + 2·Hkv)·D]`, q's H heads, k's Hkv, v's Hkv side by side.
   */
  kvHeads?: number;
}

// A strided [batch, heads, T, width] view of a tensor's storage (the last axis contiguous).
interface View {
  offset: number;
  strides: [number, number, number];
}

// The kernel's geometry and everything the backward needs besides the tensors.
interface Geometry {
  batch: number;
  heads: number;
  kvHeads: number;
  tq: number;
  tk: number;
  qkDim: number;
  vDim: number;
  q: View;
  k: View;
  v: View;
  out: View;
  scale: number;
  causal: boolean;
  causalOffset: number;
  window: number;
  maskStrides: number[];
  dropoutThreshold: number;
  dropoutScale: number;
  seed: number;
  dropoutOffset: number;
}

// Leading dims → the kernel's (batch, heads): none → (1, 1), one → (1, H) (PyTorch's [H, T, D]),
// more → (Π all but last, last). The dropout element index (b·heads + h) is the flat lead index
// either way.
function batchHeads(lead: readonly number[]): [number, number] {
  if (lead.length === 0) return [1, 1];
  return [sizeOf(lead.slice(0, -1)), lead[lead.length - 1]!];
}

// Strides of a contiguous [...lead, T, W] tensor seen as [batch, heads, T, W].
function bhtdView(lead: readonly number[], t: number, w: number): View {
  const heads = batchHeads(lead)[1];
  return { offset: 0, strides: [heads * t * w, t * w, w] };
}

// Strides of a contiguous [B, T, H, W] tensor seen as [B, H, T, W].
function bthdView(t: number, h: number, w: number, offset = 0, rowWidth = h * w): View {
  return { offset, strides: [t * rowWidth, w, rowWidth] };
}

const COMMON_KEYS = ['attnMask', 'isCausal', 'causalOffset', 'window', 'scale', 'dropoutP', 'generator'] as const;

function checkOptions(op: string, opts: AttentionOptions & PackedAttentionOptions, packed: boolean): void {
  checkKeys(op, opts, packed ? [...COMMON_KEYS, 'kvHeads'] : [...COMMON_KEYS, 'layout', 'enableGqa']);
  if (!opts) return;
  if (opts.dropoutP !== undefined) checkNumber(op, 'dropoutP', opts.dropoutP, { min: 0, max: 1, maxExclusive: true });
  if (opts.causalOffset !== undefined) checkNumber(op, 'causalOffset', opts.causalOffset, { integer: true });
  if (opts.scale !== undefined) checkNumber(op, 'scale', opts.scale);
  if (opts.isCausal !== undefined) checkBoolean(op, 'isCausal', opts.isCausal);
  if (opts.window !== undefined && opts.window !== null) {
    checkNumber(op, 'window', opts.window, { integer: true, min: 1 });
    if (opts.isCausal !== true) fail(op, `window ${opts.window} needs isCausal: true (the window ends at the causal diagonal)`);
  }
  if (opts.layout !== undefined) checkChoice(op, 'layout', opts.layout, ['bhtd', 'bthd'] as const);
  if (opts.enableGqa !== undefined) checkBoolean(op, 'enableGqa', opts.enableGqa);
  if (opts.kvHeads !== undefined) checkNumber(op, 'kvHeads', opts.kvHeads, { integer: true, min: 1 });
  if (opts.generator !== undefined && !(opts.generator instanceof Generator)) fail(op, `generator must be a Generator, got ${show(opts.generator)}`);
}

// The kernel's window: 0 for none, and for one so wide that it hides nothing (no query i < tq
// has a key j ≥ 0 at or before i + causalOffset − window), which also keeps it within an i32.
function windowOf(opts: AttentionOptions, tq: number, causalOffset: number): number {
  const w = opts.window ?? 0;
  return w >= tq + Math.abs(causalOffset) ? 0 : w;
}

/**
 * The mask as the kernel reads it: a tensor (the caller's, or a copy when it must be cast or
 * materialised) and its strides over (b, h, i, j). `lead` are the batch dims the mask
 * broadcasts against (kernel batch = Π lead[:-1], heads = lead[-1]).
 */
function maskFor(op: string, mask: Tensor, lead: readonly number[], tq: number, tk: number, cd: DType): { t: Tensor; strides: number[] } {
  if (mask.dtype !== 'bool' && !isFloat(mask.dtype)) fail(op, `attnMask must be bool or floating, got ${desc(mask)}`);
  const full = [...lead, tq, tk];
  const b = tryBroadcast(mask.shape, full);
  if (!b || b.length !== full.length || b.some((s, i) => s !== full[i])) fail(op, `attnMask ${fmt(mask.shape)} does not broadcast to ${fmt(full)}`);
  let t = mask.dtype === 'bool' ? mask : rawCast(mask, cd);
  const l = lead.length;
  // the mask's dims aligned to full, with strides 0 where it broadcasts
  const stridesOfMask = (m: Tensor): [number[], number[]] => {
    const shape = [...Array<number>(full.length - m.rank).fill(1), ...m.shape];
    return [shape, stridesOf(shape).map((s, i) => (shape[i] === 1 ? 0 : s))];
  };
  let [shape, st] = stridesOfMask(t);
  // more than two leading dims fold into one batch index: that works when the mask is
  // broadcast over all of them or over none; otherwise it is materialised
  const foldable = (): boolean => l <= 2 || st.slice(0, l - 1).every((s) => s === 0) || shape.slice(0, l - 1).every((d, i) => d === lead[i]);
  if (!foldable()) {
    const e = noGrad(() => expand(t, full));
    if (t !== mask) t.dispose();
    t = e;
    [shape, st] = stridesOfMask(t);
  }
  // one leading dim is heads (batchHeads: [H, T, D] runs as batch 1)
  const batchStride = l <= 1 ? 0 : st.slice(0, l - 1).every((s) => s === 0) ? 0 : st[l - 2]!;
  const headStride = l === 0 ? 0 : st[l - 1]!;
  // keep an owned handle: the node saves it for the backward
  if (t === mask) t = mask._view(mask.shape);
  return { t, strides: [batchStride, headStride, st[l]!, st[l + 1]!] };
}

function dropoutOf(opts: AttentionOptions, n: number): Pick<Geometry, 'dropoutThreshold' | 'dropoutScale' | 'seed' | 'dropoutOffset'> {
  const p = opts.dropoutP ?? 0;
  if (p === 0) return { dropoutThreshold: 0, dropoutScale: 1, seed: 0, dropoutOffset: 0 };
  const { seed, offset } = (opts.generator ?? defaultGenerator).reserve(n);
  return { dropoutThreshold: dropoutThreshold(p), dropoutScale: p === 1 ? 0 : 1 / (1 - p), seed, dropoutOffset: offset };
}

function kernelArgs(g: Geometry, q: Storage, k: Storage, v: Storage, mask: Tensor | null, op: string): Omit<AttentionArgs, 'out' | 'outOffset' | 'outStrides' | 'lse'> {
  return {
    q,
    qOffset: g.q.offset,
    qStrides: g.q.strides,
    k,
    kOffset: g.k.offset,
    kStrides: g.k.strides,
    v,
    vOffset: g.v.offset,
    vStrides: g.v.strides,
    batch: g.batch,
    heads: g.heads,
    kvHeads: g.kvHeads,
    tq: g.tq,
    tk: g.tk,
    qkDim: g.qkDim,
    vDim: g.vDim,
    scale: g.scale,
    causal: g.causal,
    causalOffset: g.causalOffset,
    window: g.window,
    mask: mask ? mask._storage(op) : null,
    maskStrides: g.maskStrides,
    dropoutThreshold: g.dropoutThreshold,
    dropoutScale: g.dropoutScale,
    seed: g.seed,
    dropoutOffset: g.dropoutOffset,
  };
}

// Run the forward kernel on inputs (already validated); returns [out, lse] in the input dtype / compute dtype.
function forward(op: string, inputs: Tensor[], views: Tensor[], g: Geometry, outShape: readonly number[], mask: Tensor | null): [Tensor, Tensor] {
  const backend = inputs[0]!.backend;
  const cd = computeDtype(backend, 'attention', inputs[0]!.dtype);
  const [out, lse] = inCompute(views, cd, inputs[0]!.dtype, (xs) => {
    const [qc, kc, vc] = xs.length === 1 ? [xs[0]!, xs[0]!, xs[0]!] : (xs as [Tensor, Tensor, Tensor]);
    const o = Tensor._empty(backend, outShape, cd);
    const z = Tensor._empty(backend, [g.batch, g.heads, g.tq], cd);
    if (o.size > 0 && g.tk === 0) backend.fill({ out: o._storage(op), value: 0 });
    if (z.size > 0 && g.tk === 0) backend.fill({ out: z._storage(op), value: -Infinity });
    if (o.size > 0 && g.tk > 0)
      backend.attention({
        ...kernelArgs(g, qc._storage(op), kc._storage(op), vc._storage(op), mask, op),
        out: o._storage(op),
        outOffset: g.out.offset,
        outStrides: g.out.strides,
        lse: z._storage(op),
      });
    return [o, z];
  }, 1);
  return [out!, lse!];
}

/**
 * `softmax(q·kᵀ·scale + mask)·v`, fused (as `torch.nn.functional.scaled_dot_product_attention`):
 * q `[..., Tq, D]`, k `[..., Tk, D]`, v `[..., Tk, Dv]` with equal leading dims → `[..., Tq, Dv]`;
 * or, with `layout: 'bthd'`, q `[B, Tq, H, D]`, k `[B, Tk, H, D]`, v `[B, Tk, H, Dv]` →
 * `[B, Tq, H, Dv]`. With `enableGqa`, k and v may have Hkv heads (dim −3, or 2 with 'bthd')
 * where q has H, Hkv dividing H. Fast backends never materialise the `[Tq, Tk]` scores. A query
 * with nothing to attend gets zeros.
 *
 * @example
 * // a chunk of 4 new queries after 12 cached keys, causal from the bottom right
 * const y = scaledDotProductAttention(q, k, v, { isCausal: true, causalOffset: 12, layout: 'bthd' });
 * // Mistral-style: 8 query heads over 2 kv heads, each query seeing its last 256 keys
 * const z = scaledDotProductAttention(q, k2, v2, { isCausal: true, window: 256, enableGqa: true });
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const op = 'scaledDotProductAttention';
  checkOptions(op, opts, false);
  const mask = opts?.attnMask ?? null;
  live(op, q, k, v, ...present(mask));
  [q, k, v] = autocastInputs(op, q, k, v);
  const bthd = opts.layout === 'bthd';
  if (bthd ? q.rank !== 4 || k.rank !== 4 || v.rank !== 4 : q.rank < 2 || k.rank !== q.rank || v.rank !== q.rank)
    fail(op, `q, k, v must have ${bthd ? 'rank 4 ([B, T, H, D])' : 'one rank ≥ 2'}, got ${fmt(q.shape)}, ${fmt(k.shape)}, ${fmt(v.shape)}`);
  if (q.dtype !== k.dtype || q.dtype !== v.dtype || !isFloat(q.dtype))
    fail(op, `q, k, v must share a floating dtype, got ${q.dtype}, ${k.dtype}, ${v.dtype}`);
  // [lead..., T, W] in both layouts: bthd's lead is [B, H]
  const dims = (t: Tensor): [number[], number, number] =>
    bthd ? [[t.shape[0]!, t.shape[2]!], t.shape[1]!, t.shape[3]!] : [t.shape.slice(0, -2), t.shape[t.rank - 2]!, t.shape[t.rank - 1]!];
  const [lead, tq, d] = dims(q);
  const [kLead, tk, dk] = dims(k);
  const [vLead, tv, dv] = dims(v);
  const gqa = opts.enableGqa === true;
  // with enableGqa the heads dim (the last lead dim) of k and v may divide q's
  const headsMatch = (l: number[]): boolean => l.every((s, i) => s === lead[i] || (gqa && i === lead.length - 1 && s > 0 && lead[i]! % s === 0));
  if (kLead.length !== lead.length || !headsMatch(kLead) || kLead.some((s, i) => s !== vLead[i]) || dk !== d || tv !== tk) {
    const heads = bthd || lead.length > 0 ? ` (${gqa ? `with enableGqa, k and v may have Hkv heads dividing q's ${lead[lead.length - 1]}` : 'pass enableGqa: true for k and v with fewer heads than q'})` : '';
    fail(op, `shapes do not match: q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)} (expected ${bthd ? '[B, Tq, H, D], [B, Tk, Hkv, D], [B, Tk, Hkv, Dv]' : '[..., H, Tq, D], [..., Hkv, Tk, D], [..., Hkv, Tk, Dv]'})${heads}`);
  }
  const [batch, heads] = batchHeads(lead);
  const kvHeads = batchHeads(kLead)[1];
  const cd = computeDtype(q.backend, 'attention', q.dtype);
  const m = mask ? maskFor(op, mask, lead, tq, tk, cd) : null;
  const view = (l: number[], t: number, w: number): View => (bthd ? bthdView(t, batchHeads(l)[1], w) : bhtdView(l, t, w));
  const causalOffset = opts.causalOffset ?? 0;
  const g: Geometry = {
    batch,
    heads,
    kvHeads,
    tq,
    tk,
    qkDim: d,
    vDim: dv,
    q: view(lead, tq, d),
    k: view(kLead, tk, d),
    v: view(kLead, tk, dv),
    out: view(lead, tq, dv),
    scale: opts.scale ?? 1 / Math.sqrt(d),
    causal: opts.isCausal ?? false,
    causalOffset,
    window: windowOf(opts, tq, causalOffset),
    maskStrides: m?.strides ?? [0, 0, 0, 0],
    ...dropoutOf(opts, batch * heads * tq * tk),
  };
  const outShape = bthd ? [lead[0]!, tq, lead[1]!, dv] : [...lead, tq, dv];
  const [out, lse] = forward(op, [q, k, v], [q, k, v], g, outShape, m?.t ?? null);
  return record('attention', [q, k, v], out, { geometry: g }, [lse, ...(m ? [m.t] : [])]);
}

/**
 * Multi-head attention over one packed projection, with no copies around it: qkv `[B, T, 3·C]`
 * holds q, k and v side by side on its last axis (C = heads·D each, head-major: GPT-2's `c_attn`
 * output), and the result is `[B, T, C]`, heads merged (ready for the output projection). The
 * gradient is one `[B, T, 3·C]` tensor. With `kvHeads` (grouped-query attention) the projection
 * is `[B, T, (H + 2·Hkv)·D]`: q's H heads, then k's and v's Hkv each. Options as
 * {@link scaledDotProductAttention} (the mask broadcasts to `[B, H, T, T]`; the layout is fixed).
 *
 * @example
 * // GQA with a sliding window: 4 query heads over 1 kv head of D = 16, qkv [B, T, 96]
 * const y = packedAttention(qkv, 4, { kvHeads: 1, isCausal: true, window: 128 }); // [B, T, 64]
 */
export function packedAttention(qkv: Tensor, heads: number, opts: PackedAttentionOptions = {}): Tensor {
  const op = 'packedAttention';
  checkOptions(op, opts, true);
  const mask = opts?.attnMask ?? null;
  live(op, qkv, ...present(mask));
  if (!isFloat(qkv.dtype)) fail(op, `qkv must be floating, got ${desc(qkv)}`);
  [qkv] = autocastInputs(op, qkv);
  checkNumber(op, 'heads', heads, { integer: true, min: 1 });
  const kvHeads = opts.kvHeads ?? heads;
  if (heads % kvHeads !== 0) fail(op, `kvHeads ${kvHeads} must divide heads ${heads}`);
  const parts = heads + 2 * kvHeads;
  if (qkv.rank !== 3 || qkv.shape[2]! % parts !== 0)
    fail(op, `qkv must be [B, T, (H + 2·Hkv)·D] with H = ${heads}, Hkv = ${kvHeads}: a last dim that is a multiple of ${parts}, got ${fmt(qkv.shape)}`);
  const [b, t, width] = qkv.shape as [number, number, number];
  const d = width / parts;
  const c = heads * d;
  const ckv = kvHeads * d;
  const cd = computeDtype(qkv.backend, 'attention', qkv.dtype);
  const m = mask ? maskFor(op, mask, [b, heads], t, t, cd) : null;
  const causalOffset = opts.causalOffset ?? 0;
  const g: Geometry = {
    batch: b,
    heads,
    kvHeads,
    tq: t,
    tk: t,
    qkDim: d,
    vDim: d,
    q: bthdView(t, heads, d, 0, width),
    k: bthdView(t, kvHeads, d, c, width),
    v: bthdView(t, kvHeads, d, c + ckv, width),
    out: bthdView(t, heads, d),
    scale: opts.scale ?? 1 / Math.sqrt(d),
    causal: opts.isCausal ?? false,
    causalOffset,
    window: windowOf(opts, t, causalOffset),
    maskStrides: m?.strides ?? [0, 0, 0, 0],
    ...dropoutOf(opts, b * heads * t * t),
  };
  const [out, lse] = forward(op, [qkv], [qkv], g, [b, t, c], m?.t ?? null);
  return record('packedAttention', [qkv], out, { geometry: g }, [lse, ...(m ? [m.t] : [])]);
}

/**
 * @internal Backward of both attention ops: gradients of the inputs (q, k, v; or the packed
 * qkv) from the output, its lse and the output gradient, by the saved geometry.
 */
export function attentionBackward(inputs: readonly Tensor[], out: Tensor, lse: Tensor, dout: Tensor, mask: Tensor | null, g: Geometry): Tensor[] {
  const op = inputs.length === 1 ? 'packedAttention' : 'scaledDotProductAttention';
  const backend = out.backend;
  const cd = computeDtype(backend, 'attention', out.dtype);
  return inCompute([...inputs, out, lse, dout], cd, out.dtype, (xs) => {
    const n = inputs.length;
    const [qc, kc, vc] = n === 1 ? [xs[0]!, xs[0]!, xs[0]!] : (xs.slice(0, 3) as [Tensor, Tensor, Tensor]);
    const [oc, zc, gc] = xs.slice(n) as [Tensor, Tensor, Tensor];
    const grads = inputs.map((t) => Tensor._empty(backend, t.shape, cd));
    const [dq, dk, dv] = n === 1 ? [grads[0]!, grads[0]!, grads[0]!] : (grads as [Tensor, Tensor, Tensor]);
    if (g.tk === 0 || g.tq === 0) {
      for (const t of grads) if (t.size > 0) backend.fill({ out: t._storage(op), value: 0 });
      return grads;
    }
    backend.attentionBackward({
      ...kernelArgs(g, qc._storage(op), kc._storage(op), vc._storage(op), mask, op),
      out: oc._storage(op),
      outOffset: g.out.offset,
      outStrides: g.out.strides,
      lse: zc._storage(op),
      dout: gc._storage(op),
      doutOffset: g.out.offset,
      doutStrides: g.out.strides,
      dq: dq._storage(op),
      dqOffset: g.q.offset,
      dqStrides: g.q.strides,
      dk: dk._storage(op),
      dkOffset: g.k.offset,
      dkStrides: g.k.strides,
      dv: dv._storage(op),
      dvOffset: g.v.offset,
      dvStrides: g.v.strides,
    });
    return grads;
  }, inputs.length);
}

export type { Geometry as AttentionGeometry };
