/**
 * Neural-network ops: matmul and linear, softmax, cross-entropy, layer/RMS norm, dropout,
 * embedding and scaled-dot-product attention. The heavy ones are single fused kernels of the
 * backend, so fast backends can implement them without materialising intermediates.
 * @module
 */
import type { AttentionArgs } from '../../backend/backend.js';
import { isFloat, promoteTypes, type DType } from '../../backend/dtype.js';
import { noGrad, record } from '../../autograd/tape.js';
import { broadcastStrides, fmt, sizeOf, tryBroadcast } from '../shape.js';
import { Tensor } from '../tensor.js';
import * as ew from './elementwise.js';
import { defaultGenerator, type Generator } from '../random.js';
import { sum } from './reduce.js';
import { checkIndex, expand, indexSelect, reshape, transpose } from './shape_ops.js';
import { computeDtype, desc, fail, freeTemps, inCompute, live, normAxis, peekIndices, rawCast } from './util.js';

/** Options of {@link matmul}. */
export interface MatmulOptions {
  /** Use the transpose of the last two axes of `a` (without copying it). */
  transA?: boolean;
  /** Use the transpose of the last two axes of `b` (without copying it). */
  transB?: boolean;
}

function floatPair(op: string, a: Tensor, b: Tensor): DType {
  const dtype = promoteTypes(a.dtype, b.dtype);
  if (!isFloat(dtype)) fail(op, `expected floating tensors, got ${desc(a)} and ${desc(b)}`);
  return dtype;
}

/**
 * Matrix product with batching and broadcast batch dims, as `torch.matmul` (1-D operands are
 * promoted to matrices and the added axis removed), with optional transposes of either side.
 *
 * @example
 * const scores = matmul(q, k, { transB: true }); // q: [B, H, T, D], k: [B, H, T, D] → [B, H, T, T]
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  live('matmul', a, b);
  const dtype = floatPair('matmul', a, b);
  if (a.rank === 0 || b.rank === 0) fail('matmul', `both operands need at least 1 dimension, got ${fmt(a.shape)} @ ${fmt(b.shape)}`);
  if (a.rank === 1 || b.rank === 1) {
    // validate against the caller's shapes before any reshape
    const ka = a.rank === 1 ? a.size : a.shape[a.rank - (opts.transA ? 2 : 1)]!;
    const kb = b.rank === 1 ? b.size : b.shape[b.rank - (opts.transB ? 1 : 2)]!;
    if (ka !== kb) fail('matmul', `inner dimensions differ: ${fmt(a.shape)} @ ${fmt(b.shape)}`);
    const a2 = a.rank === 1 ? reshape(a, [1, a.size]) : a;
    const b2 = b.rank === 1 ? reshape(b, [b.size, 1]) : b;
    const r = matmul(a2, b2, { transA: a.rank === 1 ? false : opts.transA, transB: b.rank === 1 ? false : opts.transB });
    const shape = r.shape.filter((_, i) => !((a.rank === 1 && i === r.rank - 2) || (b.rank === 1 && i === r.rank - 1)));
    return reshape(r, shape);
  }
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const [m, ka] = transA ? [a.shape[a.rank - 1]!, a.shape[a.rank - 2]!] : [a.shape[a.rank - 2]!, a.shape[a.rank - 1]!];
  const [kb, n] = transB ? [b.shape[b.rank - 1]!, b.shape[b.rank - 2]!] : [b.shape[b.rank - 2]!, b.shape[b.rank - 1]!];
  const opName = (t: Tensor, tr: boolean): string => fmt(t.shape) + (tr ? 'ᵀ' : '');
  if (ka !== kb) fail('matmul', `inner dimensions differ: ${opName(a, transA)} @ ${opName(b, transB)}`);
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const batchShape = tryBroadcast(aBatch, bBatch);
  if (!batchShape) fail('matmul', `batch dimensions do not broadcast: ${fmt(a.shape)} @ ${fmt(b.shape)}`);
  const backend = a.backend;
  const cd = computeDtype(backend, 'matmul', dtype);
  const out = inCompute([rawCast(a, dtype), rawCast(b, dtype)], cd, dtype, ([ac, bc]) => {
    const o = Tensor._empty(backend, [...batchShape, m, n], cd);
    if (o.size === 0) return o;
    if (ka === 0) {
      backend.fill(o._storage('matmul'), 0);
      return o;
    }
    backend.matmul({
      a: ac!._storage('matmul'),
      b: bc!._storage('matmul'),
      out: o._storage('matmul'),
      dtype: cd,
      batchShape,
      aBatchStrides: broadcastStrides(aBatch, batchShape).map((s) => s * m * ka),
      bBatchStrides: broadcastStrides(bBatch, batchShape).map((s) => s * ka * n),
      m,
      n,
      k: ka,
      transA,
      transB,
    });
    return o;
  });
  return record('matmul', [a, b], out, { transA, transB });
}

/** `x @ weightᵀ + bias` (as `torch.nn.functional.linear`): x [..., in], weight [out, in], bias [out]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  live('linear', x, weight, bias);
  const dtype = floatPair('linear', x, weight);
  if (weight.rank !== 2 || x.rank < 1 || x.shape[x.rank - 1] !== weight.shape[1])
    fail('linear', `input ${fmt(x.shape)} does not match weight ${fmt(weight.shape)} (expected [..., ${weight.shape[1]}] and [out, in])`);
  const outF = weight.shape[0]!;
  if (bias && (bias.rank !== 1 || bias.shape[0] !== outF || bias.dtype !== weight.dtype))
    fail('linear', `bias must be [${outF}] ${weight.dtype}, got ${desc(bias)}`);
  const rows = sizeOf(x.shape.slice(0, -1));
  const k = weight.shape[1]!;
  const backend = x.backend;
  const cd = computeDtype(backend, 'matmul', dtype);
  const ins = [rawCast(x, dtype), rawCast(weight, dtype), ...(bias ? [rawCast(bias, dtype)] : [])];
  const out = inCompute(ins, cd, dtype, ([xc, wc, bc]) => {
    const o = Tensor._empty(backend, [...x.shape.slice(0, -1), outF], cd);
    if (o.size === 0) return o;
    if (k === 0) {
      if (bc) {
        const z = noGrad(() => expand(bc, o.shape));
        backend.cast(z._storage('linear'), o._storage('linear'));
        if (z !== bc) z.dispose();
      } else backend.fill(o._storage('linear'), 0);
      return o;
    }
    backend.matmul({
      a: xc!._storage('linear'),
      b: wc!._storage('linear'),
      out: o._storage('linear'),
      dtype: cd,
      batchShape: [],
      aBatchStrides: [],
      bBatchStrides: [],
      m: rows,
      n: outF,
      k,
      transA: false,
      transB: true,
      ...(bc ? { bias: bc._storage('linear') } : {}),
    });
    return o;
  });
  return record('linear', bias ? [x, weight, bias] : [x, weight], out);
}

function softmaxImpl(op: 'softmax' | 'logSoftmax', x: Tensor, axis: number): Tensor {
  live(op, x);
  if (!isFloat(x.dtype)) fail(op, `expected a floating tensor, got ${desc(x)}`);
  const a = normAxis(op, axis, x.rank);
  if (x.rank > 0 && a !== x.rank - 1) {
    const t = transpose(x, a, -1);
    const s = softmaxImpl(op, t, -1);
    const out = transpose(s, a, -1);
    freeTemps(out, t, s);
    return out;
  }
  const cols = x.rank === 0 ? 1 : x.shape[x.rank - 1]!;
  const rows = cols === 0 ? 0 : x.size / cols;
  const backend = x.backend;
  const out = inCompute([x], computeDtype(backend, 'softmax', x.dtype), x.dtype, ([xc]) => {
    const o = Tensor._empty(backend, x.shape, xc!.dtype);
    if (o.size > 0) backend.softmax(xc!._storage(op), o._storage(op), rows, cols, op === 'logSoftmax');
    return o;
  });
  return record(op, [x], out);
}

/** Softmax along `axis` (the last by default). */
export const softmax = (x: Tensor, axis = -1): Tensor => softmaxImpl('softmax', x, axis);
/** Log-softmax along `axis` (the last by default), computed stably. */
export const logSoftmax = (x: Tensor, axis = -1): Tensor => softmaxImpl('logSoftmax', x, axis);

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Targets equal to this contribute nothing (and are not counted by the mean). Default −100. */
  ignoreIndex?: number;
  /** ε: the target distribution is (1−ε)·onehot + ε/C. Default 0. */
  labelSmoothing?: number;
  /** 'mean' over non-ignored targets (default), 'sum', or 'none' (per-target losses). */
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Cross-entropy between `logits` `[..., C]` (classes on the last axis) and i32 class `targets`
 * `[...]`, fused with the log-softmax (as `torch.nn.functional.cross_entropy` with the class axis last).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  live('crossEntropy', logits, targets);
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const smoothing = opts.labelSmoothing ?? 0;
  const reduction = opts.reduction ?? 'mean';
  if (!isFloat(logits.dtype)) fail('crossEntropy', `logits must be floating, got ${desc(logits)}`);
  if (targets.dtype !== 'i32') fail('crossEntropy', `targets must be i32 class indices, got ${desc(targets)}`);
  if (logits.rank < 1 || logits.rank !== targets.rank + 1 || targets.shape.some((d, i) => d !== logits.shape[i]))
    fail('crossEntropy', `logits ${fmt(logits.shape)} must be targets ${fmt(targets.shape)} plus a class axis`);
  if (!(smoothing >= 0 && smoothing <= 1)) fail('crossEntropy', `labelSmoothing must be in [0, 1], got ${smoothing}`);
  if (!['mean', 'sum', 'none'].includes(reduction)) fail('crossEntropy', `unknown reduction '${reduction}'`);
  const classes = logits.shape[logits.rank - 1]!;
  const rows = targets.size;
  const ids = peekIndices(targets);
  if (ids)
    for (const t of ids)
      if (t !== ignoreIndex && (t < 0 || t >= classes))
        fail('crossEntropy', `target ${t} is out of range [0, ${classes}) (and is not ignoreIndex ${ignoreIndex})`);
  const backend = logits.backend;
  const [losses, lse] = inCompute([logits], computeDtype(backend, 'crossEntropy', logits.dtype), logits.dtype, ([lc]) => {
    const l = Tensor._empty(backend, targets.shape, lc!.dtype);
    const z = Tensor._empty(backend, targets.shape, lc!.dtype);
    if (rows > 0)
      backend.crossEntropy(lc!._storage('crossEntropy'), targets._storage('crossEntropy'), l._storage('crossEntropy'), z._storage('crossEntropy'), rows, classes, ignoreIndex, smoothing);
    return [l, z];
  }, 1);
  const perRow = record('crossEntropy', [logits], losses!, { targets, ignoreIndex, smoothing }, [lse!]);
  if (reduction === 'none') return perRow;
  const total = sum(perRow);
  if (reduction === 'sum') return total;
  const kept = ew.ne(targets, ignoreIndex);
  const count = sum(kept);
  const countF = rawCast(count, logits.dtype);
  const out = ew.div(total, countF);
  kept.dispose();
  count.dispose();
  freeTemps(out, countF);
  return out;
}

function checkNormShape(op: string, x: Tensor, normalizedShape: readonly number[]): number {
  if (!isFloat(x.dtype)) fail(op, `expected a floating tensor, got ${desc(x)}`);
  const k = normalizedShape.length;
  if (k === 0 || k > x.rank || normalizedShape.some((d, i) => d !== x.shape[x.rank - k + i]))
    fail(op, `normalizedShape ${fmt(normalizedShape)} must be the trailing dimensions of input ${fmt(x.shape)}`);
  return sizeOf(normalizedShape);
}

function normImpl(
  op: 'layerNorm' | 'rmsNorm',
  x: Tensor,
  normalizedShape: readonly number[],
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
): Tensor {
  live(op, x, weight, bias);
  const cols = checkNormShape(op, x, normalizedShape);
  for (const [name, p] of [['weight', weight], ['bias', bias]] as const)
    if (p && (p.dtype !== x.dtype || p.rank !== normalizedShape.length || p.shape.some((d, i) => d !== normalizedShape[i])))
      fail(op, `${name} must be ${fmt(normalizedShape)} ${x.dtype}, got ${desc(p)}`);
  const rows = cols === 0 ? 0 : x.size / cols;
  const backend = x.backend;
  const rms = op === 'rmsNorm';
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  const cd = computeDtype(backend, 'norm', x.dtype);
  const [y, mean, rstd] = inCompute(inputs, cd, x.dtype, (xs) => {
    const [xc, wc, bc] = [xs[0]!, weight ? xs[1]! : null, bias ? xs[xs.length - 1]! : null];
    const o = Tensor._empty(backend, x.shape, cd);
    const mu = Tensor._empty(backend, [rows], cd);
    const rs = Tensor._empty(backend, [rows], cd);
    backend.fill(mu._storage(op), 0);
    if (rows > 0)
      backend.layerNorm(xc._storage(op), wc?._storage(op) ?? null, bc?._storage(op) ?? null, o._storage(op), mu._storage(op), rs._storage(op), rows, cols, eps, rms);
    return [o, mu, rs];
  }, 1);
  // mean and rstd stay in the compute dtype for the backward (cast back only if they were cast)
  return record(op, inputs, y!, { hasWeight: !!weight, hasBias: !!bias, rows, cols }, [mean!, rstd!]);
}

/**
 * Layer normalisation over the trailing `normalizedShape` axes (as `torch.nn.functional.layer_norm`):
 * `(x − mean)/√(var + eps)·weight + bias`, with the biased variance.
 */
export function layerNorm(
  x: Tensor,
  normalizedShape: readonly number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  return normImpl('layerNorm', x, normalizedShape, weight ?? null, bias ?? null, eps);
}

/** Root-mean-square normalisation (as `torch.nn.functional.rms_norm`): `x/√(mean(x²) + eps)·weight`. eps defaults to the dtype's machine epsilon. */
export function rmsNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, eps?: number): Tensor {
  const machineEps = x.dtype === 'f64' ? 2 ** -52 : x.dtype === 'bf16' ? 2 ** -7 : x.dtype === 'f16' ? 2 ** -10 : 2 ** -23;
  return normImpl('rmsNorm', x, normalizedShape, weight ?? null, null, eps ?? machineEps);
}

/**
 * Dropout: zero each element with probability `p` and scale the rest by 1/(1−p), when
 * `training` (the default). Seeded by the generator, so runs reproduce on every backend.
 */
export function dropout(x: Tensor, p: number, training = true, generator: Generator = defaultGenerator): Tensor {
  live('dropout', x);
  if (!(p >= 0 && p <= 1)) fail('dropout', `p must be in [0, 1], got ${p}`);
  if (!isFloat(x.dtype)) fail('dropout', `expected a floating tensor, got ${desc(x)}`);
  if (!training || p === 0) return x;
  const u = generator.uniform(x.backend, x.shape, 'f32', 0, 1);
  const keepMask = ew.ge(u, p);
  u.dispose();
  const scaled = ew.mul(x, p === 1 ? 0 : 1 / (1 - p));
  const out = ew.where(keepMask, scaled, 0);
  freeTemps(out, keepMask, scaled);
  return out;
}

/** Rows of `weight` `[V, D]` at i32 `ids` `[...]`: shape `[..., D]`. */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  live('embedding', ids, weight);
  if (ids.dtype !== 'i32') fail('embedding', `ids must be i32, got ${desc(ids)}`);
  if (weight.rank !== 2) fail('embedding', `weight must be [vocab, dim], got ${desc(weight)}`);
  checkIndex('embedding', ids, weight.shape[0]!);
  const flat = reshape(ids, [ids.size]);
  const rows = indexSelect(weight, 0, flat);
  const out = reshape(rows, [...ids.shape, weight.shape[1]!]);
  freeTemps(out, flat, rows);
  return out;
}

/** Options of {@link scaledDotProductAttention}. */
export interface AttentionOptions {
  /** bool (true = attend) or float (added to the scores), broadcastable to `[..., Tq, Tk]`. */
  attnMask?: Tensor | null;
  /** Query i attends keys j ≤ i (top-left aligned, as PyTorch's `is_causal`). */
  isCausal?: boolean;
  /** Score scale; 1/√D by default. */
  scale?: number;
}

/**
 * `softmax(q·kᵀ·scale + mask)·v` over q `[..., Tq, D]`, k `[..., Tk, D]`, v `[..., Tk, Dv]`
 * with equal leading dims (as `torch.nn.functional.scaled_dot_product_attention`). One fused
 * kernel: fast backends never materialise the `[Tq, Tk]` scores. A query with nothing to
 * attend gets zeros.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const op = 'scaledDotProductAttention';
  const mask = opts.attnMask ?? null;
  live(op, q, k, v, mask);
  if (q.rank < 2 || k.rank !== q.rank || v.rank !== q.rank)
    fail(op, `q, k, v must have one rank ≥ 2, got ${fmt(q.shape)}, ${fmt(k.shape)}, ${fmt(v.shape)}`);
  const batchDims = q.shape.slice(0, -2);
  const [tq, d] = q.shape.slice(-2) as [number, number];
  const [tk, dk] = k.shape.slice(-2) as [number, number];
  const [tv, dv] = v.shape.slice(-2) as [number, number];
  if (k.shape.slice(0, -2).some((s, i) => s !== batchDims[i]) || v.shape.slice(0, -2).some((s, i) => s !== batchDims[i]) || dk !== d || tv !== tk)
    fail(op, `shapes do not match: q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)} (expected [..., Tq, D], [..., Tk, D], [..., Tk, Dv])`);
  if (q.dtype !== k.dtype || q.dtype !== v.dtype || !isFloat(q.dtype))
    fail(op, `q, k, v must share a floating dtype, got ${q.dtype}, ${k.dtype}, ${v.dtype}`);
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  const batch = sizeOf(batchDims);
  const backend = q.backend;
  const cd = computeDtype(backend, 'attention', q.dtype);
  // the mask as [Bm, Tq, Tk] with Bm = 1 (shared) or B
  let maskT: Tensor | null = null;
  let maskBatchStride = 0;
  if (mask) {
    if (mask.dtype !== 'bool' && !isFloat(mask.dtype)) fail(op, `attnMask must be bool or floating, got ${desc(mask)}`);
    const full = [...batchDims, tq, tk];
    const bshape = tryBroadcast(mask.shape, full);
    if (!bshape || bshape.length !== full.length || bshape.some((s, i) => s !== full[i]))
      fail(op, `attnMask ${fmt(mask.shape)} does not broadcast to ${fmt(full)}`);
    const shared = mask.shape.slice(0, -2).every((s) => s === 1);
    // an owned copy (or view) of the mask, saved by the node for the backward
    const mc = mask.dtype === 'bool' ? mask : rawCast(mask, cd);
    const src = mc._view(shared ? mask.shape.slice(-2) : mask.shape);
    maskT = noGrad(() => expand(src, shared ? [tq, tk] : full));
    if (maskT !== src) src.dispose();
    if (mc !== mask) mc.dispose();
    maskBatchStride = shared ? 0 : tq * tk;
  }
  const [out, lse] = inCompute([q, k, v], cd, q.dtype, ([qc, kc, vc]) => {
    const args: AttentionArgs = {
      q: qc!._storage(op),
      k: kc!._storage(op),
      v: vc!._storage(op),
      batch,
      tq,
      tk,
      d,
      dv,
      scale,
      causal: opts.isCausal ?? false,
      dtype: cd,
      ...(maskT ? { mask: maskT._storage(op), maskBatchStride } : {}),
    };
    const o = Tensor._empty(backend, [...batchDims, tq, dv], cd);
    const z = Tensor._empty(backend, [batch, tq], cd);
    if (o.size > 0 || z.size > 0) backend.attention(args, o._storage(op), z._storage(op));
    return [o, z];
  }, 1);
  const saved = [lse!, ...(maskT ? [maskT] : [])];
  return record('attention', [q, k, v], out!, { scale, causal: opts.isCausal ?? false, maskBatchStride, hasMask: !!maskT }, saved);
}

/** @internal Backward of {@link crossEntropy}'s per-row losses: dlogits from dloss [...]. */
export function crossEntropyBackward(
  logits: Tensor,
  targets: Tensor,
  lse: Tensor,
  dloss: Tensor,
  ignoreIndex: number,
  smoothing: number,
): Tensor {
  const backend = logits.backend;
  const classes = logits.shape[logits.rank - 1]!;
  const cd = computeDtype(backend, 'crossEntropy', logits.dtype);
  return inCompute([logits, lse, dloss], cd, logits.dtype, ([lc, zc, gc]) => {
    const d = Tensor._empty(backend, logits.shape, cd);
    if (targets.size > 0)
      backend.crossEntropyBackward(lc!._storage('crossEntropy'), targets._storage('crossEntropy'), zc!._storage('crossEntropy'), gc!._storage('crossEntropy'), d._storage('crossEntropy'), targets.size, classes, ignoreIndex, smoothing);
    return d;
  });
}

/** @internal Backward of layer/RMS norm: [dx, dWeight?, dBias?]. */
export function normBackward(
  dy: Tensor,
  x: Tensor,
  weight: Tensor | null,
  mean: Tensor,
  rstd: Tensor,
  wantBias: boolean,
  rows: number,
  cols: number,
  rms: boolean,
): Tensor[] {
  const backend = x.backend;
  const cd = computeDtype(backend, 'norm', x.dtype);
  const inputs = [dy, x, mean, rstd, ...(weight ? [weight] : [])];
  return inCompute(inputs, cd, x.dtype, ([gc, xc, mc, rc, wc]) => {
    const dx = Tensor._empty(backend, x.shape, cd);
    const dw = weight ? Tensor._empty(backend, weight.shape, cd) : null;
    const db = wantBias ? Tensor._empty(backend, weight ? weight.shape : [cols], cd) : null;
    for (const t of [dx, dw, db]) if (t && rows === 0) backend.fill(t._storage('norm'), 0);
    if (rows > 0)
      backend.layerNormBackward(gc!._storage('norm'), xc!._storage('norm'), wc?._storage('norm') ?? null, mc!._storage('norm'), rc!._storage('norm'), dx._storage('norm'), dw?._storage('norm') ?? null, db?._storage('norm') ?? null, rows, cols, rms);
    return [dx, ...(dw ? [dw] : []), ...(db ? [db] : [])];
  }, 3);
}

/** @internal Backward of {@link scaledDotProductAttention}: [dq, dk, dv]. */
export function attentionBackward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Tensor,
  dout: Tensor,
  mask: Tensor | null,
  attrs: { scale: number; causal: boolean; maskBatchStride: number },
): Tensor[] {
  const op = 'scaledDotProductAttention';
  const backend = q.backend;
  const cd = computeDtype(backend, 'attention', q.dtype);
  const [tq, d] = q.shape.slice(-2) as [number, number];
  const [tk, dv] = v.shape.slice(-2) as [number, number];
  return inCompute([q, k, v, out, lse, dout], cd, q.dtype, ([qc, kc, vc, oc, zc, gc]) => {
    const args: AttentionArgs = {
      q: qc!._storage(op),
      k: kc!._storage(op),
      v: vc!._storage(op),
      batch: sizeOf(q.shape.slice(0, -2)),
      tq,
      tk,
      d,
      dv,
      scale: attrs.scale,
      causal: attrs.causal,
      dtype: cd,
      ...(mask ? { mask: mask._storage(op), maskBatchStride: attrs.maskBatchStride } : {}),
    };
    const grads = [q, k, v].map((t) => Tensor._empty(backend, t.shape, cd));
    for (const t of grads) backend.fill(t._storage(op), 0);
    if (tq > 0 && tk > 0) backend.attentionBackward(args, oc!._storage(op), zc!._storage(op), gc!._storage(op), grads[0]!._storage(op), grads[1]!._storage(op), grads[2]!._storage(op));
    return grads;
  }, 3);
}
