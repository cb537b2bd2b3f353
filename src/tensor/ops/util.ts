/** Helpers shared by the op modules: validation, scalars, casts, compute dtypes. @module */
import type { Backend, KernelFamily } from '../../backend/backend.js';
import { DTYPES, encode, isDType, isFloat, type DType } from '../../backend/dtype.js';
import { fmt, isValidShape } from '../shape.js';
import { storableMessage, Tensor } from '../tensor.js';
import { show } from '../validate.js';

/** Throw the error every op throws: `op: message`. */
export function fail(op: string, message: string): never {
  throw new Error(`${op}: ${message}`);
}

/**
 * Run `fn` as the public function `op`: an error thrown by what it delegates to (an op such as
 * `linear: `, an inner layer such as `Linear.forward: `) is re-labelled `op: …`, so the message
 * names the function the caller called.
 */
export function asOp<T>(op: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw relabel(op, e);
  }
}

/** `e`, its message re-labelled `op: …` when it is an Error that starts with another name (for {@link asOp} where a closure does not fit). */
export function relabel(op: string, e: unknown): unknown {
  if (e instanceof Error && !e.message.startsWith(`${op}: `)) e.message = `${op}: ${e.message.replace(/^[A-Za-z_][A-Za-z0-9_.]*: /, '')}`;
  return e;
}

/** `[2,3] f32` — how errors name a tensor. */
export function desc(t: Tensor): string {
  return `${fmt(t.shape)} ${t.dtype}`;
}

/**
 * Check that every argument is a live Tensor on one backend; return that backend. Optional
 * tensors go through {@link present} (`live(op, x, w, ...present(bias))`).
 */
export function live(op: string, ...ts: unknown[]): Backend {
  let backend: Backend | null = null;
  for (const t of ts) {
    if (!(t instanceof Tensor)) fail(op, `expected a Tensor, got ${show(t)}`);
    t._storage(op);
    if (backend && t.backend !== backend)
      fail(op, `tensors are on different backends: '${backend.name}' and '${t.backend.name}' (move one with .to())`);
    backend = t.backend;
  }
  return backend!;
}

/** Check that `xs` is a non-empty array of live tensors on one backend; return that backend. */
export function liveList(op: string, xs: unknown, what = 'tensors'): Backend {
  if (!Array.isArray(xs) || xs.length === 0) fail(op, `expected a non-empty array of ${what}, got ${show(xs)}`);
  return live(op, ...xs);
}

/** The arguments that are not null or undefined (optional tensors, for {@link live}). */
export function present(...xs: unknown[]): unknown[] {
  return xs.filter((x) => x !== null && x !== undefined);
}

/** Check that `shape` is an array of non-negative integers (naming it `name`). */
export function checkShape(op: string, shape: unknown, name = 'shape'): readonly number[] {
  if (!isValidShape(shape)) fail(op, `${name} must be an array of non-negative integers, got ${show(shape)}`);
  return shape;
}

/** Check that `dtype` names a kiln dtype. */
export function checkDType(op: string, dtype: unknown): DType {
  if (!isDType(dtype)) fail(op, `unknown dtype ${show(dtype)} (dtypes: ${DTYPES.join(', ')})`);
  return dtype;
}

/** A 0-d tensor of `value` on `backend` (for `op`, which names a value the dtype cannot hold). */
export function scalarTensor(backend: Backend, value: number, dtype: DType, op = 'scalar'): Tensor {
  checkFits(op, [value], dtype, 'the scalar');
  const t = Tensor._empty(backend, [], dtype, op);
  backend.write(t._storage(op), encode([value], dtype));
  return t;
}

/** The range of i32, which creation and scalar operands check (PyTorch refuses what overflows). */
export const I32_MIN = -(2 ** 31);
export const I32_MAX = 2 ** 31 - 1;

/**
 * Throw `op: …` when a value cannot be stored in `dtype` without changing meaning: for i32, NaN,
 * ±∞, and numbers outside its range after truncation toward zero (floats and bool take anything:
 * floats round, overflowing to ±∞ as IEEE does).
 */
export function checkFits(op: string, values: ArrayLike<number>, dtype: DType, what = 'value'): void {
  if (dtype !== 'i32') return;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) fail(op, `${what}${values.length > 1 ? ` at index ${i}` : ''} is NaN, which i32 cannot hold`);
    const t = Math.trunc(v);
    if (!(t >= I32_MIN && t <= I32_MAX))
      fail(op, `${what} ${v}${values.length > 1 ? ` at index ${i}` : ''} does not fit i32 (range [${I32_MIN}, ${I32_MAX}])`);
  }
}

/** Throw `op: …` unless `backend` can store `dtype`. */
export function checkStorable(op: string, backend: Backend, dtype: DType): void {
  if (!backend.dtypes.includes(dtype)) fail(op, storableMessage(backend, dtype));
}

/** The dtype a JS number takes beside a tensor of `dtype`: floats stay, integers widen to f32 for a fraction. */
export function scalarDtype(dtype: DType, value: number): DType {
  if (isFloat(dtype)) return dtype;
  if (!Number.isInteger(value)) return 'f32';
  return dtype === 'bool' ? 'i32' : dtype;
}

/** `t` converted to `dtype` without recording a gradient (the same tensor when no change is needed). */
export function rawCast(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return t;
  const out = Tensor._empty(t.backend, t.shape, dtype);
  t.backend.cast({ x: t._storage('cast'), out: out._storage('cast') });
  return out;
}

/** The dtype `family` kernels of `backend` run in for tensors of `dtype`: itself, or f32. */
export function computeDtype(backend: Backend, family: KernelFamily, dtype: DType): DType {
  return backend.computes(family, dtype) ? dtype : 'f32';
}

/**
 * Run a kernel in the dtype `backend` computes: inputs are cast to `cd` (if needed), `fn`
 * writes outputs in `cd`, and the first `castBack` outputs in `cd` are cast back to `outDtype`.
 * Temporaries are disposed.
 */
export function inCompute<T extends Tensor | Tensor[]>(
  inputs: Tensor[],
  cd: DType,
  outDtype: DType,
  fn: (xs: Tensor[]) => T,
  castBack = 1,
): T {
  const xs = inputs.map((t) => rawCast(t, isFloat(t.dtype) ? cd : t.dtype));
  const result = fn(xs);
  xs.forEach((x, i) => x !== inputs[i] && x.dispose());
  if (cd === outDtype) return result;
  // the first `castBack` outputs return to outDtype; later ones (saved statistics) stay in cd
  const back = (r: Tensor, i: number): Tensor => {
    if (r.dtype !== cd || i >= castBack) return r;
    const c = rawCast(r, outDtype);
    r.dispose();
    return c;
  };
  return (Array.isArray(result) ? result.map(back) : back(result, 0)) as T;
}

/** Normalise a possibly negative axis against `rank`, naming `op` when it is out of range. */
export function normAxis(op: string, axis: number, rank: number): number {
  if (!Number.isSafeInteger(axis)) fail(op, `axis must be an integer, got ${show(axis)}`);
  if (axis < -Math.max(rank, 1) || axis >= Math.max(rank, 1)) fail(op, `axis ${axis} is out of range for a tensor of rank ${rank}`);
  return axis < 0 ? axis + Math.max(rank, 1) : axis;
}

/** Axes list (sorted, unique, non-negative); all axes for null/undefined. */
export function normAxes(op: string, axis: number | readonly number[] | null | undefined, rank: number): number[] {
  if (axis === null || axis === undefined) return [...Array(rank).keys()];
  if (typeof axis !== 'number' && !Array.isArray(axis)) fail(op, `axis must be an integer or a list of integers, got ${show(axis)}`);
  const list = typeof axis === 'number' ? [axis] : [...axis];
  const out = [...new Set(list.map((a) => normAxis(op, a, rank)))].sort((a, b) => a - b);
  if (out.length !== list.length) fail(op, `repeated axis in [${list.join(',')}]`);
  return out;
}

/**
 * Dispose temporaries of a composite op, unless its output is part of a graph: then a recorded
 * node may read them in the backward, and they live until the enclosing tidy (or collection).
 */
export function freeTemps(out: Tensor, ...temps: Tensor[]): void {
  if (out.requiresGrad) return;
  for (const t of temps) if (t !== out) t.dispose();
}
