/** Creating tensors: from data, constants, ranges and random distributions. @module */
import type { Backend } from '../../backend/backend.js';
import { encode, isFloat, type DType } from '../../backend/dtype.js';
import { backendFor } from '../../backend/registry.js';
import { fmt, sizeOf } from '../shape.js';
import { defaultGenerator, Generator } from '../random.js';
import { Tensor, type NestedArray } from '../tensor.js';
import { checkBoolean, checkKeys, checkNumber, show } from '../validate.js';
import { checkDType, checkFits, checkShape, checkStorable, fail, live } from './util.js';

/** Options shared by creation functions. */
export interface CreateOptions {
  /** Element type; f32 unless the data says otherwise. */
  dtype?: DType;
  /** Backend name; the default backend when omitted. */
  backend?: string;
  /** Make the new tensor a leaf that requires grad. */
  requiresGrad?: boolean;
}

/** Options of the random creation functions. */
export interface RandomOptions extends CreateOptions {
  /** The stream to draw from; the default generator when omitted (see `manualSeed`). */
  generator?: Generator;
}

/** Typed arrays {@link tensor} accepts (Uint8Array and Uint16Array need an explicit dtype). */
export type TypedData = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

const CREATE_KEYS = ['dtype', 'backend', 'requiresGrad'] as const;
const RANDOM_KEYS = [...CREATE_KEYS, 'generator'] as const;

function resolve(op: string, opts: CreateOptions | undefined, dflt: DType, keys: readonly string[] = CREATE_KEYS): [Backend, DType] {
  checkKeys(op, opts, keys);
  const dtype = checkDType(op, opts?.dtype ?? dflt);
  if (opts?.requiresGrad !== undefined) checkBoolean(op, 'requiresGrad', opts.requiresGrad);
  if (opts?.backend !== undefined && typeof opts.backend !== 'string') fail(op, `backend must be a backend's name, got ${show(opts.backend)}`);
  const backend = backendFor(op, opts?.backend);
  checkStorable(op, backend, dtype);
  return [backend, dtype];
}

function finish(op: string, t: Tensor, opts: CreateOptions | undefined): Tensor {
  if (opts?.requiresGrad) {
    if (!isFloat(t.dtype)) {
      t.dispose();
      fail(op, `only floating tensors can require gradients (got ${t.dtype})`);
    }
    t.requiresGrad = true;
  }
  return t;
}

function fromValues(op: string, values: ArrayLike<number>, shape: readonly number[], opts: CreateOptions | undefined, dflt: DType): Tensor {
  const [backend, dtype] = resolve(op, opts, dflt);
  checkFits(op, values, dtype);
  const t = Tensor._empty(backend, shape, dtype, op);
  backend.write(t._storage(op), encode(values, dtype));
  return finish(op, t, opts);
}

function flattenNested(data: NestedArray): { values: number[]; shape: number[]; bool: boolean } {
  const shape: number[] = [];
  let probe: NestedArray = data;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    probe = probe[0] as NestedArray;
    if (probe === undefined) break;
  }
  const values: number[] = [];
  let bool = false;
  let num = false;
  const index: number[] = [];
  const at = (): string => `[${index.join('][')}]`;
  const walk = (x: NestedArray, dim: number): void => {
    if (dim === shape.length) {
      if (typeof x === 'boolean') bool = true;
      else if (typeof x === 'number') num = true;
      else if (Array.isArray(x)) fail('tensor', `ragged nested array: data${at()} is an array, expected a number (shape ${fmt(shape)} from the first elements)`);
      else fail('tensor', `data${at()} is ${show(x)}, expected a number or a boolean`);
      values.push(Number(x));
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[dim])
      fail('tensor', `ragged nested array: data${at()} is ${Array.isArray(x) ? `of length ${x.length}` : show(x)}, expected an array of length ${shape[dim]}`);
    for (let i = 0; i < x.length; i++) {
      index.push(i);
      walk(x[i] as NestedArray, dim + 1);
      index.pop();
    }
  };
  walk(data, 0);
  if (bool && num) fail('tensor', 'data mixes booleans and numbers');
  return { values, shape, bool };
}

/**
 * A tensor from nested arrays, a flat array or a typed array, with an optional shape.
 * Numbers default to f32, booleans to bool; typed arrays give their own dtype
 * (Float32Array f32, Float64Array f64, Int32Array i32).
 *
 * @example
 * const x = tensor([[1, 2], [3, 4]]);                 // [2,2] f32
 * const y = tensor(new Float64Array(6), [2, 3]);      // [2,3] f64
 * const w = tensor([0.5, -1], { requiresGrad: true });
 */
export function tensor(data: NestedArray | TypedData, shapeOrOpts?: readonly number[] | CreateOptions, opts?: CreateOptions): Tensor {
  if (shapeOrOpts !== undefined && shapeOrOpts !== null && typeof shapeOrOpts !== 'object')
    fail('tensor', `the second argument must be a shape or options, got ${show(shapeOrOpts)}`);
  const shapeArg = Array.isArray(shapeOrOpts) ? checkShape('tensor', shapeOrOpts) : undefined;
  const options = Array.isArray(shapeOrOpts) ? opts : (shapeOrOpts as CreateOptions | undefined);
  let values: ArrayLike<number>;
  let shape: readonly number[];
  let dflt: DType = 'f32';
  if (ArrayBuffer.isView(data)) {
    if (data instanceof Float64Array) dflt = 'f64';
    else if (data instanceof Int32Array) dflt = 'i32';
    else if (!(data instanceof Float32Array) && !options?.dtype)
      fail('tensor', `${data.constructor.name} needs an explicit dtype`);
    values = data as TypedData;
    shape = [data.length];
  } else if (typeof data === 'number' || typeof data === 'boolean') {
    values = [Number(data)];
    shape = [];
    if (typeof data === 'boolean') dflt = 'bool';
  } else if (Array.isArray(data)) {
    const f = flattenNested(data);
    values = f.values;
    shape = f.shape;
    if (f.bool) dflt = 'bool';
  } else fail('tensor', `cannot make a tensor from ${show(data)}`);
  if (shapeArg) {
    if (sizeOf(shapeArg) !== values.length)
      fail('tensor', `shape ${fmt(shapeArg)} needs ${sizeOf(shapeArg)} elements, data has ${values.length}`);
    shape = shapeArg;
  }
  return fromValues('tensor', values, shape, options, dflt);
}

/** A tensor of `shape` filled with `value`. */
export function full(shape: readonly number[], value: number, opts?: CreateOptions): Tensor {
  return fill('full', shape, value, opts);
}

function fill(op: string, shape: readonly number[], value: number, opts?: CreateOptions): Tensor {
  checkShape(op, shape);
  const [backend, dtype] = resolve(op, opts, typeof value === 'boolean' ? 'bool' : 'f32');
  if (typeof value !== 'number' && typeof value !== 'boolean') fail(op, `value must be a number, got ${show(value)}`);
  checkFits(op, [Number(value)], dtype, 'fill value');
  const t = Tensor._empty(backend, shape, dtype, op);
  backend.fill({ out: t._storage(op), value });
  return finish(op, t, opts);
}

/** Zeros of `shape`. */
export const zeros = (shape: readonly number[], opts?: CreateOptions): Tensor => fill('zeros', shape, 0, opts);
/** Ones of `shape`. */
export const ones = (shape: readonly number[], opts?: CreateOptions): Tensor => fill('ones', shape, 1, opts);

function fillLike(op: string, t: Tensor, value: number, opts?: CreateOptions): Tensor {
  live(op, t);
  checkKeys(op, opts, CREATE_KEYS);
  return fill(op, t.shape, value, { dtype: t.dtype, backend: t.backend.name, ...opts });
}
/** Zeros with the shape, dtype and backend of `t`. */
export const zerosLike = (t: Tensor, opts?: CreateOptions): Tensor => fillLike('zerosLike', t, 0, opts);
/** Ones with the shape, dtype and backend of `t`. */
export const onesLike = (t: Tensor, opts?: CreateOptions): Tensor => fillLike('onesLike', t, 1, opts);
/** `value` with the shape, dtype and backend of `t`. */
export const fullLike = (t: Tensor, value: number, opts?: CreateOptions): Tensor => fillLike('fullLike', t, value, opts);

/**
 * Values from `start` (inclusive) to `end` (exclusive) by `step`; `arange(n)` counts 0..n−1.
 * i32 when all arguments are integers, else f32 (unless a dtype is given).
 */
export function arange(start: number, end?: number, step = 1, opts?: CreateOptions): Tensor {
  checkNumber('arange', end === undefined ? 'end' : 'start', start);
  if (end !== undefined) checkNumber('arange', 'end', end);
  if (checkNumber('arange', 'step', step) === 0) fail('arange', 'step must be non-zero, got 0');
  if (end === undefined) [start, end] = [0, start];
  const n = Math.max(0, Math.ceil((end - start) / step));
  const values = Array.from({ length: n }, (_, i) => start + i * step);
  const integral = [start, end, step].every(Number.isInteger);
  return fromValues('arange', values, [n], opts, integral ? 'i32' : 'f32');
}

/** `steps` values evenly spaced from `start` to `end`, both included. */
export function linspace(start: number, end: number, steps: number, opts?: CreateOptions): Tensor {
  checkNumber('linspace', 'start', start);
  checkNumber('linspace', 'end', end);
  checkNumber('linspace', 'steps', steps, { integer: true, min: 0 });
  const delta = steps > 1 ? (end - start) / (steps - 1) : 0;
  // the second half counts back from end, so both ends are exact (as torch.linspace)
  const values = Array.from({ length: steps }, (_, i) => (i < steps / 2 ? start + i * delta : end - (steps - 1 - i) * delta));
  return fromValues('linspace', values, [steps], opts, 'f32');
}

/** The n×m identity (m = n by default). */
export function eye(n: number, m = n, opts?: CreateOptions): Tensor {
  checkNumber('eye', 'n', n, { integer: true, min: 0 });
  checkNumber('eye', 'm', m, { integer: true, min: 0 });
  const [backend, dtype] = resolve('eye', opts, 'f32');
  const t = Tensor._empty(backend, [n, m], dtype, 'eye');
  const values = new Float64Array(n * m);
  for (let i = 0; i < Math.min(n, m); i++) values[i * m + i] = 1;
  backend.write(t._storage('eye'), encode(values, dtype));
  return finish('eye', t, opts);
}

function randomTensor(op: string, shape: readonly number[], opts: RandomOptions | undefined, dflt: DType, dist: Parameters<Generator['sample']>[3]): Tensor {
  checkShape(op, shape);
  const [backend, dtype] = resolve(op, opts, dflt, RANDOM_KEYS);
  if (op !== 'randint' && !isFloat(dtype)) fail(op, `dtype must be floating, got ${dtype}`);
  const generator = opts?.generator ?? defaultGenerator;
  if (!(generator instanceof Generator)) fail(op, `generator must be a Generator, got ${show(generator)}`);
  const t = generator.sample(backend, shape, dtype, dist, op);
  return finish(op, t, opts);
}

/** Uniform samples in [0, 1). */
export const rand = (shape: readonly number[], opts?: RandomOptions): Tensor =>
  randomTensor('rand', shape, opts, 'f32', { kind: 'uniform', low: 0, high: 1 });

/** Standard normal samples. */
export const randn = (shape: readonly number[], opts?: RandomOptions): Tensor =>
  randomTensor('randn', shape, opts, 'f32', { kind: 'normal', mean: 0, std: 1 });

/** Integers uniform in [low, high), i32 by default. */
export function randint(low: number, high: number, shape: readonly number[], opts?: RandomOptions): Tensor {
  checkNumber('randint', 'low', low, { integer: true });
  checkNumber('randint', 'high', high, { integer: true, min: low, minExclusive: true });
  if (high - low > 2 ** 31) fail('randint', `high − low must be at most 2³¹, got ${low}, ${high}`);
  return randomTensor('randint', shape, opts, 'i32', { kind: 'randint', low, high });
}

/** Normal samples of a given mean and standard deviation. */
export function normal(shape: readonly number[], mean: number, std: number, opts?: RandomOptions): Tensor {
  checkNumber('normal', 'mean', mean);
  checkNumber('normal', 'std', std, { min: 0 });
  return randomTensor('normal', shape, opts, 'f32', { kind: 'normal', mean, std });
}

/** Uniform samples in [low, high). */
export function uniform(shape: readonly number[], low: number, high: number, opts?: RandomOptions): Tensor {
  checkNumber('uniform', 'low', low);
  checkNumber('uniform', 'high', high, { min: low });
  return randomTensor('uniform', shape, opts, 'f32', { kind: 'uniform', low, high });
}
