/**
 * Neural-network ops: matmul and linear, softmax, cross-entropy, layer/RMS norm, dropout and
 * embedding (attention is in attention.ts). The heavy ones are single fused kernels of the
 * backend, so fast backends can implement them without materialising intermediates.
 * @module
 */
import { isFloat, promoteTypes, type DType } from '../../backend/dtype.js';
import { noGrad, record } from '../../autograd/tape.js';
import { broadcastStrides, fmt, sizeOf, tryBroadcast } from '../shape.js';
import { Tensor } from '../tensor.js';
import * as ew from './elementwise.js';
import { defaultGenerator, Generator } from '../random.js';
import { checkBoolean, checkChoice, checkKeys, checkNumber, optionalNumber, show } from '../validate.js';
import { sum } from './reduce.js';
import { expand, indexSelectAs, reshape, transpose } from './shape_ops.js';
import { autocastInputs } from '../../amp/autocast.js';
import { checkShape, computeDtype, desc, fail, freeTemps, inCompute, live, normAxis, present, rawCast } from './util.js';

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
  checkKeys('matmul', opts, ['transA', 'transB']);
  if (opts?.transA !== undefined) checkBoolean('matmul', 'transA', opts.transA);
  if (opts?.transB !== undefined) checkBoolean('matmul', 'transB', opts.transB);
  [a, b] = autocastInputs('matmul', a, b);
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
      backend.fill({ out: o._storage('matmul'), value: 0 });
      return o;
    }
    backend.matmul({
      a: ac!._storage('matmul'),
      b: bc!._storage('matmul'),
      out: o._storage('matmul'),
      bias: null,
      batchShape,
      aBatchStrides: broadcastStrides(aBatch, batchShape).map((s) => s * m * ka),
      bBatchStrides: broadcastStrides(bBatch, batchShape).map((s) => s * ka * n),
      m,
      n,
      k: ka,
      transA,
      transB,
      activation: 'none',
    });
    return o;
  });
  return record('matmul', [a, b], out, { transA, transB });
}

/** `x @ weightᵀ + bias` (as `torch.nn.functional.linear`): x [..., in], weight [out, in], bias [out]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  live('linear', x, weight, ...present(bias));
  [x, weight, bias] = autocastInputs('linear', x, weight, bias);
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
        backend.cast({ x: z._storage('linear'), out: o._storage('linear') });
        if (z !== bc) z.dispose();
      } else backend.fill({ out: o._storage('linear'), value: 0 });
      return o;
    }
    backend.matmul({
      a: xc!._storage('linear'),
      b: wc!._storage('linear'),
      out: o._storage('linear'),
      bias: bc ? bc._storage('linear') : null,
      batchShape: [],
      aBatchStrides: [],
      bBatchStrides: [],
      m: rows,
      n: outF,
      k,
      transA: false,
      transB: true,
      activation: 'none',
    });
    return o;
  });
  return record('linear', bias ? [x, weight, bias] : [x, weight], out);
}

function softmaxImpl(op: 'softmax' | 'logSoftmax', x: Tensor, axis: number): Tensor {
  live(op, x);
  if (!isFloat(x.dtype)) fail(op, `expected a floating tensor, got ${desc(x)}`);
  [x] = autocastInputs(op, x);
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
    if (o.size > 0) backend.softmax({ x: xc!._storage(op), out: o._storage(op), rows, cols, log: op === 'logSoftmax' });
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
  checkKeys('crossEntropy', opts, ['ignoreIndex', 'labelSmoothing', 'reduction']);
  const ignoreIndex = optionalNumber('crossEntropy', 'ignoreIndex', opts?.ignoreIndex, -100, { integer: true });
  const smoothing = optionalNumber('crossEntropy', 'labelSmoothing', opts?.labelSmoothing, 0, { min: 0, max: 1 });
  const reduction = checkChoice('crossEntropy', 'reduction', opts?.reduction ?? 'mean', ['mean', 'sum', 'none'] as const);
  if (!isFloat(logits.dtype)) fail('crossEntropy', `logits must be floating, got ${desc(logits)}`);
  [logits] = autocastInputs('crossEntropy', logits);
  if (targets.dtype !== 'i32') fail('crossEntropy', `targets must be i32 class indices, got ${desc(targets)}`);
  if (logits.rank < 1 || logits.rank !== targets.rank + 1 || targets.shape.some((d, i) => d !== logits.shape[i]))
    fail('crossEntropy', `logits ${fmt(logits.shape)} must be targets ${fmt(targets.shape)} plus a class axis`);
  const classes = logits.shape[logits.rank - 1]!;
  const rows = targets.size;
  // target values are checked by the kernel: a bad one is a fault the next read or sync throws
  const backend = logits.backend;
  const [losses, lse] = inCompute([logits], computeDtype(backend, 'crossEntropy', logits.dtype), logits.dtype, ([lc]) => {
    const l = Tensor._empty(backend, targets.shape, lc!.dtype);
    const z = Tensor._empty(backend, targets.shape, lc!.dtype);
    if (rows > 0)
      backend.crossEntropy({
        logits: lc!._storage('crossEntropy'),
        targets: targets._storage('crossEntropy'),
        loss: l._storage('crossEntropy'),
        lse: z._storage('crossEntropy'),
        rows,
        classes,
        ignoreIndex,
        smoothing,
        op: 'crossEntropy',
      });
    return [l, z];
  }, 1);
  const perRow = record('crossEntropy', [logits], losses!, { targets, ignoreIndex, smoothing }, [lse!]);
  if (reduction === 'none') return perRow;
  const total = sum(perRow);
  if (reduction === 'sum') {
    freeTemps(total, perRow);
    return total;
  }
  const kept = ew.ne(targets, ignoreIndex);
  const count = sum(kept);
  const countF = rawCast(count, logits.dtype);
  const out = ew.div(total, countF);
  kept.dispose();
  count.dispose();
  freeTemps(out, countF, perRow, total);
  return out;
}

function checkNormShape(op: string, x: Tensor, normalizedShape: readonly number[]): number {
  checkShape(op, normalizedShape, 'normalizedShape');
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
  live(op, x, ...present(weight, bias));
  checkNumber(op, 'eps', eps, { min: 0 });
  [x, weight, bias] = autocastInputs(op, x, weight, bias);
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
    backend.fill({ out: mu._storage(op), value: 0 });
    if (rows > 0)
      backend.layerNorm({
        x: xc._storage(op),
        weight: wc?._storage(op) ?? null,
        bias: bc?._storage(op) ?? null,
        out: o._storage(op),
        mean: mu._storage(op),
        rstd: rs._storage(op),
        rows,
        cols,
        eps,
        rms,
      });
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
  live('rmsNorm', x);
  const machineEps = x.dtype === 'f64' ? 2 ** -52 : x.dtype === 'bf16' ? 2 ** -7 : x.dtype === 'f16' ? 2 ** -10 : 2 ** -23;
  return normImpl('rmsNorm', x, normalizedShape, weight ?? null, null, eps ?? machineEps);
}

/**
 * Dropout: zero each element with probability `p` and scale the rest by 1/(1−p), when
 * `training` (the default). Seeded by the generator, so runs reproduce on every backend.
 */
export function dropout(x: Tensor, p: number, training = true, generator: Generator = defaultGenerator): Tensor {
  live('dropout', x);
  checkNumber('dropout', 'p', p, { min: 0, max: 1 });
  checkBoolean('dropout', 'training', training);
  if (!(generator instanceof Generator)) fail('dropout', `generator must be a Generator, got ${show(generator)}`);
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
  const flat = reshape(ids, [ids.size]);
  const rows = indexSelectAs('embedding', weight, 0, flat);
  const out = reshape(rows, [...ids.shape, weight.shape[1]!]);
  freeTemps(out, flat, rows);
  return out;
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
      backend.crossEntropyBackward({
        logits: lc!._storage('crossEntropy'),
        targets: targets._storage('crossEntropy'),
        lse: zc!._storage('crossEntropy'),
        dloss: gc!._storage('crossEntropy'),
        dlogits: d._storage('crossEntropy'),
        rows: targets.size,
        classes,
        ignoreIndex,
        smoothing,
        op: 'crossEntropy (backward)',
      });
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
    for (const t of [dx, dw, db]) if (t && rows === 0) backend.fill({ out: t._storage('norm'), value: 0 });
    if (rows > 0)
      backend.layerNormBackward({
        dy: gc!._storage('norm'),
        x: xc!._storage('norm'),
        weight: wc?._storage('norm') ?? null,
        mean: mc!._storage('norm'),
        rstd: rc!._storage('norm'),
        dx: dx._storage('norm'),
        dWeight: dw?._storage('norm') ?? null,
        dBias: db?._storage('norm') ?? null,
        rows,
        cols,
        rms,
      });
    return [dx, ...(dw ? [dw] : []), ...(db ? [db] : [])];
  }, 3);
}
