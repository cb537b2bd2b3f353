/**
 * Reductions over any set of axes, with keepdim. `sum`, `max`, `min` and the arg-reductions
 * are kernels; mean, logsumexp, var, std and norm are compositions (and so differentiate through
 * the rules of their parts).
 * @module
 */
import type { ReduceOp } from '../../backend/backend.js';
import { isFloat, type DType } from '../../backend/dtype.js';
import { noGrad, record } from '../../autograd/tape.js';
import { fmt, sizeOf } from '../shape.js';
import { Tensor } from '../tensor.js';
import { checkBoolean, checkKeys, checkNumber, optionalNumber } from '../validate.js';
import * as ew from './elementwise.js';
import { reshape } from './shape_ops.js';
import { asOp, computeDtype, desc, fail, freeTemps, inCompute, live, normAxes, normAxis } from './util.js';
import { autocastInputs } from '../../amp/autocast.js';

/** One axis, several, or all (null/undefined). Negative axes count from the end. */
export type Axes = number | readonly number[] | null | undefined;

/** Reduce `x` with a kernel over `axes` (sorted): consecutive axes are merged into one call. */
function reduceKernel(op: ReduceOp, x: Tensor, axes: number[], outDtype: DType): Tensor {
  const backend = x.backend;
  const cd = op === 'sum' || op === 'max' || op === 'min' ? computeDtype(backend, 'reduce', outDtype) : computeDtype(backend, 'reduce', x.dtype);
  return inCompute([x], cd, outDtype, ([xc]) => {
    let cur = xc!;
    let shape = [...x.shape];
    // innermost run first, so earlier axes keep their positions
    const runs: [number, number][] = [];
    for (const a of axes) {
      const last = runs[runs.length - 1];
      if (last && last[1] === a) last[1] = a + 1;
      else runs.push([a, a + 1]);
    }
    for (let r = runs.length - 1; r >= 0; r--) {
      const [lo, hi] = runs[r]!;
      const outer = sizeOf(shape.slice(0, lo));
      const n = sizeOf(shape.slice(lo, hi));
      const inner = sizeOf(shape.slice(hi));
      const nextShape = [...shape.slice(0, lo), ...shape.slice(lo, hi).map(() => 1), ...shape.slice(hi)];
      const kernelOut = op === 'argmax' || op === 'argmin' ? 'i32' : cur.dtype === 'bool' ? 'i32' : cur.dtype;
      const o = Tensor._empty(backend, nextShape, kernelOut);
      if (n === 0) backend.fill({ out: o._storage(op), value: 0 });
      else backend.reduce({ reduceOp: op, x: cur._storage(op), outer, r: n, inner, out: o._storage(op), op });
      if (cur !== xc) cur.dispose();
      cur = o;
      shape = nextShape;
    }
    if (cur === xc) {
      // no axes: a copy, so the result never aliases the input
      const o = Tensor._empty(backend, shape, cur.dtype === 'bool' ? 'i32' : cur.dtype);
      backend.cast({ x: cur._storage(op), out: o._storage(op) });
      cur = o;
    }
    return cur;
  });
}

function reducedShape(shape: readonly number[], axes: number[], keepdim: boolean): number[] {
  return keepdim ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

function finish(t: Tensor, shape: number[]): Tensor {
  if (t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  const v = t._view(shape);
  t.dispose();
  return v;
}

/** Sum over `axis` (all axes when omitted). bool and i32 sum to i32. */
export function sum(x: Tensor, axis?: Axes, keepdim = false): Tensor {
  live('sum', x);
  checkBoolean('sum', 'keepdim', keepdim);
  [x] = autocastInputs('sum', x);
  const axes = normAxes('sum', axis, x.rank);
  const dtype: DType = isFloat(x.dtype) ? x.dtype : 'i32';
  const out = finish(reduceKernel('sum', x, axes, dtype), reducedShape(x.shape, axes, keepdim));
  return record('sum', [x], out, { axes, keepdim });
}

/** Mean over `axis` (all axes when omitted); integers give f32. */
export function mean(x: Tensor, axis?: Axes, keepdim = false): Tensor {
  live('mean', x);
  checkBoolean('mean', 'keepdim', keepdim);
  const axes = normAxes('mean', axis, x.rank);
  const n = axes.reduce((p, a) => p * x.shape[a]!, 1);
  const xf = isFloat(x.dtype) ? x : ew.cast(x, 'f32');
  const s = sum(xf, axes, keepdim); // under autocast, sum runs in f32: so does mean
  const out = ew.div(s, n);
  freeTemps(out, s, ...(xf !== x ? [xf] : []));
  return out;
}

function extreme(op: 'max' | 'min', x: Tensor, axis: Axes, keepdim: boolean): Tensor {
  live(op, x);
  checkBoolean(op, 'keepdim', keepdim);
  if (x.dtype === 'bool') fail(op, `not defined for bool tensors (got ${desc(x)})`);
  const axes = normAxes(op, axis, x.rank);
  if (axes.some((a) => x.shape[a] === 0)) fail(op, `cannot reduce over an empty axis (shape ${fmt(x.shape)})`);
  const out = finish(reduceKernel(op, x, axes, x.dtype), reducedShape(x.shape, axes, keepdim));
  return record(op, [x], out, { axes, keepdim });
}

/** Largest value over `axis` (all axes when omitted); the gradient is shared among ties. */
export const max = (x: Tensor, axis?: Axes, keepdim = false): Tensor => extreme('max', x, axis, keepdim);
/** Smallest value over `axis` (all axes when omitted); the gradient is shared among ties. */
export const min = (x: Tensor, axis?: Axes, keepdim = false): Tensor => extreme('min', x, axis, keepdim);

function argExtreme(op: 'argmax' | 'argmin', x: Tensor, axis: number | null | undefined, keepdim: boolean): Tensor {
  live(op, x);
  checkBoolean(op, 'keepdim', keepdim);
  if (x.dtype === 'bool') fail(op, `not defined for bool tensors (got ${desc(x)})`);
  if (axis === null || axis === undefined) {
    if (x.size === 0) fail(op, `cannot reduce an empty tensor (shape ${fmt(x.shape)})`);
    const flat = x._view([x.size]);
    const r = argExtreme(op, flat, 0, false);
    flat.dispose();
    return keepdim ? finish(r, x.shape.map(() => 1)) : r;
  }
  const a = normAxis(op, axis, x.rank);
  if (x.shape[a] === 0) fail(op, `cannot reduce over an empty axis (shape ${fmt(x.shape)})`);
  return finish(reduceKernel(op, x, [a], 'i32'), reducedShape(x.shape, [a], keepdim));
}

/** Index (i32) of the largest value along `axis`, or in the flattened tensor; the first wins ties. */
export const argmax = (x: Tensor, axis?: number | null, keepdim = false): Tensor => argExtreme('argmax', x, axis, keepdim);
/** Index (i32) of the smallest value along `axis`, or in the flattened tensor; the first wins ties. */
export const argmin = (x: Tensor, axis?: number | null, keepdim = false): Tensor => argExtreme('argmin', x, axis, keepdim);

/** log Σ exp(x) over `axis`, computed stably (shifted by the max). */
export function logsumexp(x: Tensor, axis?: Axes, keepdim = false): Tensor {
  live('logsumexp', x);
  checkBoolean('logsumexp', 'keepdim', keepdim);
  const axes = normAxes('logsumexp', axis, x.rank);
  if (axes.some((a) => x.shape[a] === 0)) {
    // log of an empty sum: −∞, as torch.logsumexp
    const o = Tensor._empty(x.backend, reducedShape(x.shape, axes, keepdim), isFloat(x.dtype) ? x.dtype : 'f32');
    x.backend.fill({ out: o._storage('logsumexp'), value: -Infinity });
    return o;
  }
  // the shift m is a constant for autograd; infinite maxima shift by 0
  const m = noGrad(() => {
    const mx = max(x, axes, true);
    const finite = ew.where(ew.isfinite(mx), mx, 0);
    mx.dispose();
    return finite;
  });
  const shifted = ew.sub(x, m);
  const e = ew.exp(shifted);
  const s = sum(e, axes, true);
  const l = ew.log(s);
  const out0 = ew.add(l, m);
  const out = keepdim ? out0 : reshape(out0, reducedShape(x.shape, axes, false));
  freeTemps(out, m, shifted, e, s, l, out0);
  return out;
}

/** Options of {@link variance} and {@link std}. */
export interface VarOptions {
  /** Subtracted from the count in the divisor: 1 (Bessel's correction, the default) or 0. */
  correction?: number;
  keepdim?: boolean;
}

/** Variance over `axis` with Bessel's correction by default (as `torch.var`). */
export function variance(x: Tensor, axis?: Axes, opts: VarOptions = {}): Tensor {
  live('variance', x);
  checkKeys('variance', opts, ['correction', 'keepdim']);
  const correction = optionalNumber('variance', 'correction', opts?.correction, 1, { min: 0 });
  const keepdim = opts?.keepdim === undefined ? false : checkBoolean('variance', 'keepdim', opts.keepdim);
  if (!isFloat(x.dtype)) fail('variance', `expected a floating tensor, got ${desc(x)}`);
  const axes = normAxes('variance', axis, x.rank);
  const n = axes.reduce((p, a) => p * x.shape[a]!, 1);
  const mu = mean(x, axes, true);
  const d = ew.sub(x, mu);
  const d2 = ew.mul(d, d);
  const s = sum(d2, axes, keepdim);
  const out = ew.div(s, Math.max(0, n - correction));
  freeTemps(out, mu, d, d2, s);
  return out;
}

/** Standard deviation: √{@link variance}. */
export function std(x: Tensor, axis?: Axes, opts: VarOptions = {}): Tensor {
  const v = asOp('std', () => variance(x, axis, opts));
  const out = ew.sqrt(v);
  freeTemps(out, v);
  return out;
}

/**
 * p-norm over `axis` (all elements by default): (Σ|x|^p)^(1/p); p = Infinity gives max |x|.
 * Its gradient is 0 where the norm is 0 (the subgradient PyTorch uses), never NaN.
 */
export function norm(x: Tensor, p = 2, axis?: Axes, keepdim = false): Tensor {
  live('norm', x);
  checkNumber('norm', 'p', p, { min: 0, minExclusive: true, infinity: true });
  checkBoolean('norm', 'keepdim', keepdim);
  if (!isFloat(x.dtype)) fail('norm', `expected a floating tensor, got ${desc(x)}`);
  [x] = autocastInputs('norm', x);
  const axes = normAxes('norm', axis, x.rank);
  const out = noGrad(() => {
    const a = ew.abs(x);
    if (p === Infinity || p === 1) {
      const r = p === 1 ? sum(a, axes, keepdim) : max(a, axes, keepdim);
      a.dispose();
      return r;
    }
    const ap = p === 2 ? ew.mul(a, a) : ew.pow(a, p);
    const s = sum(ap, axes, keepdim);
    const r = p === 2 ? ew.sqrt(s) : ew.pow(s, 1 / p);
    for (const t of [a, ap, s]) t.dispose();
    return r;
  });
  return record('norm', [x], out, { p, axes, keepdim });
}
