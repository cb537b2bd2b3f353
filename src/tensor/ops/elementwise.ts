/**
 * Elementwise ops with NumPy broadcasting and PyTorch's type promotion. Backward rules are in
 * `src/autograd/grads.ts` under the same op names.
 * @module
 */
import type { BinaryOp, UnaryOp } from '../../backend/backend.js';
import { BINARY_BOOL_OPS, UNARY_INTEGRAL_OPS, type Activation, type RecordedOp } from '../../backend/ops.gen.js';
import { isFloat, isHalf, promoteTypes, type DType } from '../../backend/dtype.js';
import { noGrad, record } from '../../autograd/tape.js';
import { tidy } from '../memory.js';
import { broadcastStrides, fmt, tryBroadcast } from '../shape.js';
import { Tensor } from '../tensor.js';
import { checkChoice, checkKeys, show } from '../validate.js';
import { asOp, checkDType, checkStorable, computeDtype, desc, fail, freeTemps, I32_MAX, I32_MIN, inCompute, live, rawCast, scalarDtype, scalarTensor } from './util.js';

/** A tensor, or a JS number that takes the tensor's dtype (PyTorch's scalar promotion). */
export type Operand = Tensor | number;

/**
 * Turn two operands into live tensors on one backend, and the dtype they promote to. A JS
 * number becomes a 0-d tensor (returned in `temps`); beside a half tensor it is kept in f32,
 * so `x_bf16 + 0.1` computes with 0.1 itself, as PyTorch does.
 */
function operands(op: string, a: Operand, b: Operand, backendHint?: Tensor): [Tensor, Tensor, DType, Tensor[]] {
  for (const x of [a, b])
    if (typeof x !== 'number' && !(x instanceof Tensor)) fail(op, `expected a Tensor or a number, got ${show(x)}`);
  if (typeof a === 'number' && typeof b === 'number' && !backendHint) fail(op, 'expected at least one Tensor, got two numbers');
  const backend = live(op, ...[a, b].filter((x) => x instanceof Tensor)) ?? backendHint!.backend;
  const temps: Tensor[] = [];
  const numDtype = (v: number): DType => (Number.isInteger(v) ? 'i32' : 'f32');
  const dtype =
    a instanceof Tensor && b instanceof Tensor
      ? promoteTypes(a.dtype, b.dtype)
      : a instanceof Tensor
        ? scalarDtype(a.dtype, b as number)
        : b instanceof Tensor
          ? scalarDtype(b.dtype, a as number)
          : promoteTypes(numDtype(a), numDtype(b));
  const asTensor = (x: Operand): Tensor => {
    if (typeof x === 'number') {
      const t = scalarTensor(backend, x, isHalf(dtype) ? 'f32' : dtype, op);
      temps.push(t);
      return t;
    }
    return x;
  };
  return [asTensor(a), asTensor(b), dtype, temps];
}

const COMPARISONS = new Set<BinaryOp>(BINARY_BOOL_OPS);

function binary(op: BinaryOp, a: Operand, b: Operand): Tensor {
  const [x, y, promoted, temps] = operands(op, a, b);
  const shape = tryBroadcast(x.shape, y.shape);
  const bad = !shape
    ? `shapes do not broadcast: ${fmt(x.shape)} and ${fmt(y.shape)}`
    : op === 'sub' && promoted === 'bool'
      ? 'subtracting bool tensors is not supported; cast to i32 first'
      : null;
  if (bad || !shape) {
    temps.forEach((t) => t.dispose());
    fail(op, bad!);
  }
  // integers to negative integer powers have no integer value (PyTorch refuses them too)
  if (op === 'pow' && !isFloat(promoted)) {
    if (typeof b === 'number' && b < 0) {
      temps.forEach((t) => t.dispose());
      fail(op, `integers to negative integer powers are not allowed (exponent ${b}); use a floating base`);
    }
    if (b instanceof Tensor) {
      // exponent values are on the device: a negative one is a fault at the next read or sync
      const ok = noGrad(() => ge(b, 0));
      if (ok.size > 0) b.backend.check({ cond: ok._storage(op), values: b._storage(op), op, message: 'integers to negative integer powers are not allowed (exponent {value}); use a floating base' });
      ok.dispose();
    }
  }
  // true division of integers gives floats, as in PyTorch
  const dtype = op === 'div' && !isFloat(promoted) ? 'f32' : promoted;
  const comparison = COMPARISONS.has(op);
  // logical ops read truthiness; arithmetic on bools runs on 0/1 integers and is cast back
  const inDtype = op === 'and' || op === 'or' ? 'bool' : dtype === 'bool' && !comparison ? 'i32' : dtype;
  const outDtype = comparison ? 'bool' : dtype;
  const backend = x.backend;
  const cd = computeDtype(backend, 'elementwise', inDtype);
  const prep = (t: Tensor): Tensor => (temps.includes(t) && isHalf(inDtype) ? t : rawCast(t, inDtype));
  const [xi, yi] = [prep(x), prep(y)];
  let out = inCompute([xi, yi], cd, outDtype, ([xc, yc]) => {
    const o = Tensor._empty(backend, shape, comparison ? 'bool' : cd);
    backend.binary({
      op,
      a: xc!._storage(op),
      aStrides: broadcastStrides(xc!.shape, shape),
      b: yc!._storage(op),
      bStrides: broadcastStrides(yc!.shape, shape),
      out: o._storage(op),
      shape,
    });
    return o;
  });
  if (xi !== x) xi.dispose();
  if (yi !== y) yi.dispose();
  if (out.dtype !== outDtype) {
    const c = rawCast(out, outDtype);
    out.dispose();
    out = c;
  }
  if (comparison) {
    temps.forEach((t) => t.dispose());
    return out;
  }
  // scalar operands become 0-d tensors owned by the node (the rules of mul, div, pow read them);
  // the ops that reach here (not comparisons) are all recorded ops
  return record(op as RecordedOp, [x, y], out, {}, temps);
}

/** a + b, broadcasting. */
export const add = (a: Operand, b: Operand): Tensor => binary('add', a, b);
/** a − b, broadcasting. */
export const sub = (a: Operand, b: Operand): Tensor => binary('sub', a, b);
/** a · b, broadcasting. */
export const mul = (a: Operand, b: Operand): Tensor => binary('mul', a, b);
/** a / b, broadcasting; integer operands give f32 (true division). */
export const div = (a: Operand, b: Operand): Tensor => binary('div', a, b);
/** a^b, broadcasting. */
export const pow = (a: Operand, b: Operand): Tensor => binary('pow', a, b);
/** Elementwise maximum (NaN propagates). */
export const maximum = (a: Operand, b: Operand): Tensor => binary('maximum', a, b);
/** Elementwise minimum (NaN propagates). */
export const minimum = (a: Operand, b: Operand): Tensor => binary('minimum', a, b);
/** a == b, as bool. */
export const eq = (a: Operand, b: Operand): Tensor => binary('eq', a, b);
/** a != b, as bool. */
export const ne = (a: Operand, b: Operand): Tensor => binary('ne', a, b);
/** a < b, as bool. */
export const lt = (a: Operand, b: Operand): Tensor => binary('lt', a, b);
/** a <= b, as bool. */
export const le = (a: Operand, b: Operand): Tensor => binary('le', a, b);
/** a > b, as bool. */
export const gt = (a: Operand, b: Operand): Tensor => binary('gt', a, b);
/** a >= b, as bool. */
export const ge = (a: Operand, b: Operand): Tensor => binary('ge', a, b);
/** Logical and of truthiness, as bool. */
export const logicalAnd = (a: Operand, b: Operand): Tensor => asOp('logicalAnd', () => binary('and', a, b));
/** Logical or of truthiness, as bool. */
export const logicalOr = (a: Operand, b: Operand): Tensor => asOp('logicalOr', () => binary('or', a, b));

// Ops that keep integers integral; the rest compute in floats (f32 for integer inputs).
const INTEGRAL = new Set<UnaryOp>(UNARY_INTEGRAL_OPS);

function unary(op: UnaryOp, x: Tensor): Tensor {
  const backend = live(op, x);
  if (x.dtype === 'bool' && op !== 'isfinite') fail(op, `not defined for bool tensors (got ${desc(x)})`);
  const dtype: DType = isFloat(x.dtype) || INTEGRAL.has(op) ? x.dtype : 'f32';
  if (op === 'isfinite' && !isFloat(x.dtype)) {
    const o = Tensor._empty(backend, x.shape, 'bool');
    backend.fill({ out: o._storage(op), value: 1 });
    return o;
  }
  if (!isFloat(dtype) && (op === 'floor' || op === 'ceil' || op === 'round')) return rawCopy(x);
  const cd = computeDtype(backend, 'elementwise', dtype);
  const out = inCompute([rawCast(x, dtype)], cd, op === 'isfinite' ? 'bool' : dtype, ([xc]) => {
    const o = Tensor._empty(backend, x.shape, op === 'isfinite' ? 'bool' : cd);
    backend.unary({ op, x: xc!._storage(op), out: o._storage(op) });
    return o;
  });
  if (op === 'isfinite') return out;
  return record(op as RecordedOp, [x], out);
}

function rawCopy(x: Tensor): Tensor {
  const o = Tensor._empty(x.backend, x.shape, x.dtype);
  x.backend.cast({ x: x._storage('copy'), out: o._storage('copy') });
  return o;
}

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
/** −1, 0 or 1 by the sign of each element. */
export const sign = (x: Tensor): Tensor => unary('sign', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
/** Natural logarithm. */
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
/** 1/√x. */
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const sin = (x: Tensor): Tensor => unary('sin', x);
export const cos = (x: Tensor): Tensor => unary('cos', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
/** 1/(1 + e^−x). */
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
/** max(x, 0). */
export const relu = (x: Tensor): Tensor => unary('relu', x);
/** x·σ(x) (swish). */
export const silu = (x: Tensor): Tensor => unary('silu', x);
/** The error function. */
export const erf = (x: Tensor): Tensor => unary('erf', x);
export const floor = (x: Tensor): Tensor => unary('floor', x);
export const ceil = (x: Tensor): Tensor => unary('ceil', x);
/** Round half to even. */
export const round = (x: Tensor): Tensor => unary('round', x);
/** Whether each element is finite (not ±∞ or NaN), as bool. */
export const isfinite = (x: Tensor): Tensor => unary('isfinite', x);

/**
 * GELU: x·Φ(x) with the exact erf, or its tanh approximation with `{ approximate: 'tanh' }`
 * (as `torch.nn.functional.gelu`).
 */
export function gelu(x: Tensor, opts: { approximate?: 'none' | 'tanh' } = {}): Tensor {
  checkKeys('gelu', opts, ['approximate']);
  const a = checkChoice('gelu', 'approximate', opts?.approximate ?? 'none', ['none', 'tanh'] as const);
  return asOp('gelu', () => unary(a === 'tanh' ? 'gelu_tanh' : 'gelu', x));
}

/** @internal A matmul epilogue's activation as an elementwise op (the UnaryOp of the same name; 'none' is x itself). */
export function activate(act: Activation, x: Tensor): Tensor {
  return act === 'none' ? x : unary(act, x);
}

/** Logical not, as bool. */
export function logicalNot(x: Tensor): Tensor {
  live('logicalNot', x);
  return asOp('logicalNot', () => binary('eq', x, 0));
}

/**
 * `x` converted to `dtype`; differentiable between float dtypes. Floats to i32 truncate toward
 * zero; a value i32 cannot hold (NaN, ±∞, out of range) is a fault at the next read or sync.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  live('cast', x);
  checkDType('cast', dtype);
  checkStorable('cast', x.backend, dtype);
  if (x.dtype === dtype) return x;
  if (dtype === 'i32' && isFloat(x.dtype) && x.size > 0) {
    const ok = noGrad(() => tidy(() => logicalAnd(isfinite(x), logicalAnd(ge(x, I32_MIN), lt(x, I32_MAX + 1)))));
    x.backend.check({ cond: ok._storage('cast'), values: x._storage('cast'), op: 'cast', message: `value {value} does not fit i32 (range [${I32_MIN}, ${I32_MAX}])` });
    ok.dispose();
  }
  return record('cast', [x], rawCast(x, dtype));
}

/** A copy of `x` with its own storage; differentiable (the gradient passes through). */
export function clone(x: Tensor): Tensor {
  live('clone', x);
  return record('clone', [x], rawCopy(x));
}

/** `cond ? a : b` elementwise, broadcasting all three; `cond` is bool. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  live('where', cond);
  if (cond.dtype !== 'bool') fail('where', `condition must be bool, got ${desc(cond)}`);
  const [x, y, dtype, temps] = operands('where', a, b, cond);
  live('where', cond, x, y);
  const shape = tryBroadcast(cond.shape, x.shape, y.shape);
  if (!shape) {
    temps.forEach((t) => t.dispose());
    fail('where', `shapes do not broadcast: ${fmt(cond.shape)}, ${fmt(x.shape)} and ${fmt(y.shape)}`);
  }
  const xc = rawCast(x, dtype);
  const yc = rawCast(y, dtype);
  const out = Tensor._empty(x.backend, shape, dtype);
  x.backend.where({
    cond: cond._storage('where'),
    condStrides: broadcastStrides(cond.shape, shape),
    a: xc._storage('where'),
    aStrides: broadcastStrides(xc.shape, shape),
    b: yc._storage('where'),
    bStrides: broadcastStrides(yc.shape, shape),
    out: out._storage('where'),
    shape,
  });
  if (xc !== x) xc.dispose();
  if (yc !== y) yc.dispose();
  return record('where', [x, y], out, { cond }, temps);
}

/** Clamp into [min, max] (either bound may be omitted). */
export function clamp(x: Tensor, min?: Operand | null, max?: Operand | null): Tensor {
  return asOp('clamp', () => clampImpl(x, min, max));
}

function clampImpl(x: Tensor, min?: Operand | null, max?: Operand | null): Tensor {
  live('clamp', x);
  for (const [name, b] of [['min', min], ['max', max]] as const)
    if (b !== null && b !== undefined && !(b instanceof Tensor) && typeof b !== 'number') fail('clamp', `${name} must be a Tensor, a number or null, got ${show(b)}`);
  const bounds = [min, max].filter((b): b is Tensor => b instanceof Tensor);
  live('clamp', x, ...bounds);
  if (!tryBroadcast(x.shape, ...bounds.map((b) => b.shape)))
    fail('clamp', `shapes do not broadcast: ${[x, ...bounds].map((t) => fmt(t.shape)).join(', ')}`);
  if ((min === null || min === undefined) && (max === null || max === undefined))
    fail('clamp', 'at least one of min and max must be given');
  let out = x;
  if (min !== null && min !== undefined) out = maximum(out, min);
  if (max !== null && max !== undefined) {
    const lowered = minimum(out, max);
    if (out !== x) freeTemps(lowered, out);
    out = lowered;
  }
  return out;
}

/** @internal `dy · op′(x)` through the backend's unaryGrad kernel (the backward of every unary op). */
export function unaryBackward(op: UnaryOp, x: Tensor, dy: Tensor): Tensor {
  const backend = live(op, x, dy);
  const dtype = dy.dtype;
  const cd = computeDtype(backend, 'elementwise', dtype);
  return inCompute([rawCast(x, dtype), dy], cd, dtype, ([xc, gc]) => {
    const o = Tensor._empty(backend, x.shape, cd);
    backend.unaryGrad({ op, x: xc!._storage(op), dy: gc!._storage(op), out: o._storage(op) });
    return o;
  });
}
