/**
 * Neural-network ops: matmul and linear, softmax, cross-entropy, layer/RMS norm, dropout and
 * embedding (attention is in attention.ts). The heavy ones are single fused kernels of the
 * backend, so fast backends can implement them without materialising intermediates.
 * @module
 */
import { isFloat, isHalf, promoteTypes, type DType } from '../../backend/dtype.js';
import { ACTIVATIONS, type Activation } from '../../backend/ops.gen.js';
import { needsGrad, noGrad, record } from '../../autograd/tape.js';
import { broadcastStrides, fmt, sizeOf, tryBroadcast } from '../shape.js';
import { Tensor } from '../tensor.js';
import * as ew from './elementwise.js';
import { defaultGenerator, Generator } from '../random.js';
import { checkBoolean, checkChoice, checkKeys, checkNumber, optionalNumber, show } from '../validate.js';
import { sum } from './reduce.js';
import { concat, expand, indexSelectAs, narrow, reshape, transpose } from './shape_ops.js';
import { tidy } from '../memory.js';
import { full } from './creation.js';
import { autocastDtype, autocastInputs } from '../../amp/autocast.js';
import { asOp, checkShape, computeDtype, desc, fail, freeTemps, inCompute, live, normAxis, present, rawCast, scalarTensor } from './util.js';

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
      accumulate: false,
      preact: null,
    });
    return o;
  });
  return record('matmul', [a, b], out, { transA, transB });
}

/** Options of {@link linear}. */
export interface LinearOptions {
  /**
   * An activation applied in the matmul's epilogue (default 'none'): `act(x @ weightᵀ + bias)`
   * in one pass over the output instead of a second kernel reading it back (bias+GELU in a
   * transformer MLP). Where a gradient will be wanted, the same pass also stores the
   * pre-activation the activation's backward reads.
   */
  activation?: Activation;
}

/**
 * `x @ weightᵀ + bias` (as `torch.nn.functional.linear`): x [..., in], weight [out, in], bias
 * [out]; with `opts.activation`, that activation of it, fused.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: LinearOptions = {}): Tensor {
  live('linear', x, weight, ...present(bias));
  checkKeys('linear', opts, ['activation']);
  const activation = checkChoice('linear', 'activation', opts?.activation ?? 'none', ACTIVATIONS);
  [x, weight, bias] = autocastInputs('linear', x, weight, bias);
  const dtype = floatPair('linear', x, weight);
  if (weight.rank !== 2 || x.rank < 1 || x.shape[x.rank - 1] !== weight.shape[1])
    fail('linear', `input ${fmt(x.shape)} does not match weight ${fmt(weight.shape)} (expected [..., ${weight.shape[1]}] and [out, in])`);
  const outF = weight.shape[0]!;
  if (bias && (bias.rank !== 1 || bias.shape[0] !== outF || bias.dtype !== weight.dtype))
    fail('linear', `bias must be [${outF}] ${weight.dtype}, got ${desc(bias)}`);
  const rows = sizeOf(x.shape.slice(0, -1));
  const k = weight.shape[1]!;
  // nothing to multiply: the activation as an op of its own after the bias
  if (activation !== 'none' && (k === 0 || rows * outF === 0)) return ew.activate(activation, linear(x, weight, bias));
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const keepPre = activation !== 'none' && needsGrad(inputs);
  const backend = x.backend;
  const cd = computeDtype(backend, 'matmul', dtype);
  const ins = [rawCast(x, dtype), rawCast(weight, dtype), ...(bias ? [rawCast(bias, dtype)] : [])];
  const [out, pre] = inCompute(ins, cd, dtype, ([xc, wc, bc]) => {
    const o = Tensor._empty(backend, [...x.shape.slice(0, -1), outF], cd);
    const p = keepPre ? Tensor._empty(backend, o.shape, cd) : null;
    if (o.size === 0) return [o];
    if (k === 0) {
      if (bc) {
        const z = noGrad(() => expand(bc, o.shape));
        backend.cast({ x: z._storage('linear'), out: o._storage('linear') });
        if (z !== bc) z.dispose();
      } else backend.fill({ out: o._storage('linear'), value: 0 });
      return [o];
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
      activation,
      accumulate: false,
      preact: p ? p._storage('linear') : null,
    });
    return p ? [o, p] : [o];
  }, 1);
  // the pre-activation stays in the compute dtype for the backward (as layer norm's statistics)
  return record('linear', inputs, out!, activation === 'none' ? {} : { activation }, pre ? [pre] : []);
}

/**
 * @internal `out = op(a) @ op(b)`, or with `accumulate` `out += op(a) @ op(b)`, in place and
 * outside autograd (BLAS's β = 1: a weight's gradient summed over chunks of rows without a sum
 * per chunk). a and b are 2-D and floating; out is `[m, n]` with a storage of its own, in the
 * dtype the product computes in (a and b's, or f32 where the backend casts them) or f32 when that
 * is a half (the f32 sums stored unrounded).
 */
export function matmulInto(out: Tensor, a: Tensor, b: Tensor, opts: MatmulOptions & { accumulate?: boolean } = {}): void {
  const op = 'matmulInto';
  live(op, out, a, b);
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const dtype = floatPair(op, a, b);
  if (a.rank !== 2 || b.rank !== 2) fail(op, `a and b must be matrices, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  const [m, ka] = transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
  const [kb, n] = transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
  if (ka !== kb || out.rank !== 2 || out.shape[0] !== m || out.shape[1] !== n)
    fail(op, `out ${fmt(out.shape)} must be the [${m}, ${n}] product of ${fmt(a.shape)}${transA ? 'ᵀ' : ''} @ ${fmt(b.shape)}${transB ? 'ᵀ' : ''} (inner ${ka} and ${kb})`);
  const backend = a.backend;
  const cd = computeDtype(backend, 'matmul', dtype);
  if (out.dtype !== cd && !(isHalf(cd) && out.dtype === 'f32')) fail(op, `out must be ${cd}${isHalf(cd) ? ' or f32' : ''} (the product's compute dtype), got ${desc(out)}`);
  if (out.size === 0) return;
  const [ac, bc] = [rawCast(a, cd), rawCast(b, cd)];
  if (ka === 0) {
    if (!opts.accumulate) backend.fill({ out: out._storage(op), value: 0 });
  } else
    backend.matmul({
      a: ac._storage(op),
      b: bc._storage(op),
      out: out._storage(op),
      bias: null,
      batchShape: [],
      aBatchStrides: [],
      bBatchStrides: [],
      m,
      n,
      k: ka,
      transA,
      transB,
      activation: 'none',
      accumulate: opts.accumulate ?? false,
      preact: null,
    });
  if (ac !== a) ac.dispose();
  if (bc !== b) bc.dispose();
  out._bumpVersion();
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

/**
 * @internal The per-row losses and log-sum-exps of `logits` `[..., C]` (in the crossEntropy
 * kernel's compute dtype, cast back to the logits' dtype) against validated targets `[...]`.
 */
export function crossEntropyRows(logits: Tensor, targets: Tensor, ignoreIndex: number, smoothing: number): [Tensor, Tensor] {
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
  return [losses!, lse!];
}

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
  const [losses, lse] = crossEntropyRows(logits, targets, ignoreIndex, smoothing);
  const perRow = record('crossEntropy', [logits], losses, { targets, ignoreIndex, smoothing }, [lse]);
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

/** Options of {@link linearCrossEntropy}. */
export interface LinearCrossEntropyOptions {
  /** The projection's bias `[V]` (none by default). */
  bias?: Tensor | null;
  /** Targets equal to this contribute nothing (and are not counted by the mean). Default −100. */
  ignoreIndex?: number;
  /** ε: the target distribution is (1−ε)·onehot + ε/V. Default 0. */
  labelSmoothing?: number;
  /** 'mean' over non-ignored targets (default) or 'sum'. */
  reduction?: 'mean' | 'sum';
  /**
   * Rows of logits computed at a time. Default: the power of two nearest above N/⌈V/C⌉ (N rows,
   * C features, V classes), so that a chunk's logits take about as much memory as x itself
   * (Liger-Kernel's rule), but at least 1024 (shorter chunks make the weight gradient's sums too
   * short to run fast); at most N.
   */
  chunkRows?: number;
}

/**
 * `crossEntropy(linear(x, weight, bias), targets)` without the `[N, V]` logits ever existing at
 * once: a language model's head and its loss, fused. x `[..., C]`, weight `[V, C]`, targets
 * `[...]` i32 → the scalar loss, as the unfused expression gives it (the same kernels, in the
 * same dtypes: under autocast the head runs in bf16/f16 and the loss in f32).
 *
 * The rows go through in chunks: a chunk's logits, its losses, and (when a gradient will be
 * wanted) at once its logits' gradient and from that the chunk's share of dx, dweight and dbias,
 * after which the chunk's logits are freed; the weight's gradient is summed over the chunks in
 * place (matmul's accumulate). The backward only scales these by the loss's gradient. So peak
 * memory holds one chunk of logits instead of all N·V of them (GPT-2 at 16 × 1024 tokens: 3.3 GB
 * of f32 logits, and as much again for their gradient), and the head's matmul runs three times
 * per step as in the unfused graph. The gradients are those of the
 * values at the forward (as any saved activation). The weight's gradient is summed in the weight's
 * dtype (f32 sums of bf16 products for f32 parameters under autocast).
 *
 * @example
 * const loss = linearCrossEntropy(hidden, model.lm_head.weight, targets); // hidden [B, T, C]
 */
export function linearCrossEntropy(x: Tensor, weight: Tensor, targets: Tensor, opts: LinearCrossEntropyOptions = {}): Tensor {
  const op = 'linearCrossEntropy';
  checkKeys(op, opts, ['bias', 'ignoreIndex', 'labelSmoothing', 'reduction', 'chunkRows']);
  const bias = opts?.bias ?? null;
  live(op, x, weight, targets, ...present(bias));
  const ignoreIndex = optionalNumber(op, 'ignoreIndex', opts?.ignoreIndex, -100, { integer: true });
  const smoothing = optionalNumber(op, 'labelSmoothing', opts?.labelSmoothing, 0, { min: 0, max: 1 });
  const reduction = checkChoice(op, 'reduction', opts?.reduction ?? 'mean', ['mean', 'sum'] as const);
  if (!isFloat(x.dtype) || !isFloat(weight.dtype)) fail(op, `x and weight must be floating, got ${desc(x)} and ${desc(weight)}`);
  if (weight.rank !== 2 || x.rank < 1 || x.shape[x.rank - 1] !== weight.shape[1])
    fail(op, `x ${fmt(x.shape)} does not match weight ${fmt(weight.shape)} (expected [..., C] and [V, C])`);
  const [V, C] = weight.shape as [number, number];
  if (V === 0) fail(op, `weight ${fmt(weight.shape)} has no classes`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== V || bias.dtype !== weight.dtype)) fail(op, `bias must be [${V}] ${weight.dtype}, got ${desc(bias)}`);
  if (targets.dtype !== 'i32') fail(op, `targets must be i32 class indices, got ${desc(targets)}`);
  if (targets.rank !== x.rank - 1 || targets.shape.some((d, i) => d !== x.shape[i]))
    fail(op, `targets ${fmt(targets.shape)} must be x ${fmt(x.shape)} without its feature axis`);
  const N = targets.size;
  // Liger-Kernel's rule (a chunk's logits about the size of x), but at least 1024 rows: the weight
  // gradient's product sums over a chunk's rows, and shorter sums run far below the matmul's peak
  // (cpu, GPT-2's head at 4096 rows: 64-row chunks 2.3×, 256-row 1.35× the time of 1024-row ones)
  const auto = Math.max(1024, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(N / Math.ceil(V / Math.max(C, 1)))))));
  const chunk = Math.min(Math.max(N, 1), opts?.chunkRows === undefined ? auto : checkNumber(op, 'chunkRows', opts.chunkRows, { integer: true, min: 1 }));
  const want = [needsGrad([x]), needsGrad([weight]), bias !== null && needsGrad([bias])];
  const inputs = bias ? [x, weight, bias] : [x, weight];

  const [loss, ...grads] = noGrad(() =>
    tidy(() => {
      // the head's operands in its compute dtype once (autocast: bf16 copies of f32 weights)
      const [xl, wl, bl] = autocastInputs('linear', x, weight, bias);
      const x2 = reshape(xl, [N, C]);
      const t1 = reshape(targets, [N]);
      const count = reduction === 'mean' ? rawCast(sum(ew.ne(targets, ignoreIndex)), 'f32') : null;
      const lossDtype = promoteTypes(x.dtype, weight.dtype) === 'f64' ? 'f64' : 'f32';
      // ∂loss/∂logits per kept row: 1/count for the mean, 1 for the sum (cast to each chunk's loss dtype)
      const perRow = want.some(Boolean) ? (count ? ew.div(scalarTensor(x.backend, 1, lossDtype), ew.cast(count, lossDtype)) : scalarTensor(x.backend, 1, lossDtype)) : null;
      let total: Tensor | null = null;
      let db: Tensor | null = null;
      // dweight's total: in the weight's dtype where the head's product can sum into it (f32
      // parameters under autocast: f32 sums of bf16 products), else in the product's
      const cd = computeDtype(x.backend, 'matmul', promoteTypes(xl.dtype, wl!.dtype));
      const dw = want[1] && N > 0 ? Tensor._empty(x.backend, [V, C], weight.dtype === cd || (isHalf(cd) && weight.dtype === 'f32') ? weight.dtype : cd) : null;
      const dxs: Tensor[] = [];
      // acc + part in dtype; the operands are freed as they go (one sum of each kind lives at a time)
      const add = (acc: Tensor | null, part: Tensor, dtype: DType): Tensor => {
        const p = ew.cast(part, dtype);
        if (p !== part) part.dispose();
        if (!acc) return p;
        const s = ew.add(acc, p);
        acc.dispose();
        p.dispose();
        return s;
      };
      for (let r0 = 0; r0 < N; r0 += chunk) {
        const r = Math.min(chunk, N - r0);
        const part = tidy(() => {
          const xc = narrow(x2, 0, r0, r);
          const tc = narrow(t1, 0, r0, r);
          const logits = linear(xc, wl!, bl);
          const [lc] = autocastInputs('crossEntropy', logits);
          const [losses, lse] = crossEntropyRows(lc, tc, ignoreIndex, smoothing);
          const out: Record<string, Tensor> = { loss: sum(losses) };
          if (perRow) {
            const d = ew.cast(crossEntropyBackward(lc, tc, lse, expand(reshape(ew.cast(perRow, lc.dtype), [1]), [r]), ignoreIndex, smoothing), logits.dtype);
            if (want[0]) out.dx = matmul(d, wl!);
            // dweight: each chunk's product summed into the total in place
            if (dw) matmulInto(dw, d, xc, { transA: true, accumulate: r0 > 0 });
            if (want[2]) out.db = sum(d, 0);
          }
          return out;
        });
        total = add(total, part.loss!, part.loss!.dtype);
        if (part.dx) dxs.push(part.dx);
        if (part.db) db = add(db, part.db, bias!.dtype);
      }
      if (!total) total = scalarTensor(x.backend, 0, lossDtype);
      const loss = count ? ew.div(total, ew.cast(count, total.dtype)) : total;
      const zeros = (shape: readonly number[], dtype: DType): Tensor => full(shape, 0, { dtype, backend: x.backend.name });
      const dx = want[0] ? (dxs.length > 0 ? ew.cast(reshape(dxs.length === 1 ? dxs[0]! : concat(dxs, 0), x.shape), x.dtype) : zeros(x.shape, x.dtype)) : null;
      const dW = want[1] ? (dw ? ew.cast(dw, weight.dtype) : zeros(weight.shape, weight.dtype)) : null;
      const dB = want[2] ? db ?? zeros(bias!.shape, bias!.dtype) : null;
      return [loss, ...[dx, dW, dB].filter((t): t is Tensor => t !== null)];
    }),
  );
  return record('linearCrossEntropy', inputs, loss!, { want }, grads);
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
  residual: Tensor | null = null,
): Tensor[] {
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
  // with a residual (addLayerNorm: only where the norm computes in x's dtype), the kernel also
  // writes x + residual, which the graph then records as an add feeding the norm
  const sum = residual ? Tensor._empty(backend, x.shape, x.dtype) : null;
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
        residual: residual ? residual._storage(op) : null,
        sum: sum ? sum._storage(op) : null,
      });
    return [o, mu, rs];
  }, 1);
  const normed = sum ? [record('add', [x, residual!], sum), ...inputs.slice(1)] : inputs;
  // mean and rstd stay in the compute dtype for the backward (cast back only if they were cast)
  const out = record(op, normed, y!, { hasWeight: !!weight, hasBias: !!bias, rows, cols }, [mean!, rstd!]);
  return sum ? [normed[0]!, out] : [out];
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
  return normImpl('layerNorm', x, normalizedShape, weight ?? null, bias ?? null, eps)[0]!;
}

/**
 * `[s, layerNorm(s, ...)]` for `s = x + residual`: a transformer's residual add and the next
 * layer norm in one kernel pass, the sum written once and normalised while its row is in cache
 * (llm.c's fused residual forward). The graph is the unfused one (an add, then the norm), so the
 * gradients are too. Where the norm would not compute in x's dtype (halves, or autocast) or the
 * dtypes differ, the add (promoting) and the norm run as two ops.
 */
export function addLayerNorm(
  x: Tensor,
  residual: Tensor,
  normalizedShape: readonly number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): [Tensor, Tensor] {
  live('addLayerNorm', x, residual, ...present(weight, bias));
  if (fmt(x.shape) !== fmt(residual.shape)) fail('addLayerNorm', `x ${desc(x)} and residual ${desc(residual)} must have one shape`);
  // one kernel where the add and the norm would both run in x's dtype (under autocast the stream
  // is f32 and a block's output bf16: the add promotes, as unfused)
  const fused = x.dtype === residual.dtype && isFloat(x.dtype) && computeDtype(x.backend, 'norm', x.dtype) === x.dtype && !(autocastDtype() !== null && isHalf(x.dtype));
  return asOp('addLayerNorm', () => {
    if (!fused) {
      const s = ew.add(x, residual);
      return [s, layerNorm(s, normalizedShape, weight, bias, eps)];
    }
    const [s, y] = normImpl('layerNorm', x, normalizedShape, weight ?? null, bias ?? null, eps, residual);
    return [s!, y!];
  });
}

/** Root-mean-square normalisation (as `torch.nn.functional.rms_norm`): `x/√(mean(x²) + eps)·weight`. eps defaults to the dtype's machine epsilon. */
export function rmsNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, eps?: number): Tensor {
  live('rmsNorm', x);
  const machineEps = x.dtype === 'f64' ? 2 ** -52 : x.dtype === 'bf16' ? 2 ** -7 : x.dtype === 'f16' ? 2 ** -10 : 2 ** -23;
  return normImpl('rmsNorm', x, normalizedShape, weight ?? null, null, eps ?? machineEps)[0]!;
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
