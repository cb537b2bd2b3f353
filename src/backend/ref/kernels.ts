/**
 * The reference kernels: plain loops over typed arrays, written to be obviously right. Every
 * other backend is tested against these. Arithmetic is done in JS doubles and rounded when
 * stored, so an f32 result is the f32 rounding of the exact-ish f64 computation.
 * @module
 */
import type { BinaryOp, ReduceOp, UnaryOp } from '../backend.js';

type Num = { [i: number]: number; readonly length: number };

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** erf(x), accurate to about 1e-15 (Abramowitz–Stegun 7.1.26 is too coarse for f64 gradient checks). */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax > 6) return Math.sign(x);
  if (ax < 2.5) {
    // Maclaurin series: erf x = 2/√π · Σ (−1)ⁿ x^(2n+1) / (n!(2n+1))
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 120; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // Continued fraction for erfc (Lentz), converges fast for |x| ≥ 2.5.
  const z = ax;
  let f = z;
  let c = z;
  let d = 0;
  for (let k = 1; k < 200; k++) {
    const a = k / 2;
    d = z + a * d;
    d = 1 / d;
    c = z + a / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-z * z) / (f * Math.sqrt(Math.PI));
  return Math.sign(x) * (1 - erfc);
}

export function unaryFn(op: UnaryOp): (x: number) => number {
  switch (op) {
    case 'neg':
      return (x) => -x;
    case 'abs':
      return Math.abs;
    case 'sign':
      return (x) => (Number.isNaN(x) ? NaN : x > 0 ? 1 : x < 0 ? -1 : 0);
    case 'exp':
      return Math.exp;
    case 'log':
      return Math.log;
    case 'sqrt':
      return Math.sqrt;
    case 'rsqrt':
      return (x) => 1 / Math.sqrt(x);
    case 'sin':
      return Math.sin;
    case 'cos':
      return Math.cos;
    case 'tanh':
      return Math.tanh;
    case 'sigmoid':
      return (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));
    case 'relu':
      return (x) => (x > 0 ? x : Number.isNaN(x) ? NaN : 0);
    case 'gelu':
      return (x) => 0.5 * x * (1 + erf(x * INV_SQRT_2));
    case 'gelu_tanh':
      return (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    case 'silu':
      return (x) => (x >= 0 ? x / (1 + Math.exp(-x)) : (x * Math.exp(x)) / (1 + Math.exp(x)));
    case 'erf':
      return erf;
    case 'floor':
      return Math.floor;
    case 'ceil':
      return Math.ceil;
    case 'round':
      // round half to even, as torch.round
      return (x) => {
        const f = Math.floor(x);
        const d = x - f;
        return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
      };
    case 'isfinite':
      return (x) => (Number.isFinite(x) ? 1 : 0);
  }
}

/** d op(x)/dx, for the backward of each differentiable unary op. */
export function unaryDerivative(op: UnaryOp): (x: number) => number {
  const sig = unaryFn('sigmoid');
  switch (op) {
    case 'neg':
      return () => -1;
    case 'abs':
    case 'sign':
      return op === 'abs' ? (x) => (x > 0 ? 1 : x < 0 ? -1 : 0) : () => 0;
    case 'exp':
      return Math.exp;
    case 'log':
      return (x) => 1 / x;
    case 'sqrt':
      return (x) => 0.5 / Math.sqrt(x);
    case 'rsqrt':
      return (x) => -0.5 * x ** -1.5;
    case 'sin':
      return Math.cos;
    case 'cos':
      return (x) => -Math.sin(x);
    case 'tanh':
      return (x) => 1 - Math.tanh(x) ** 2;
    case 'sigmoid':
      return (x) => {
        const s = sig(x);
        return s * (1 - s);
      };
    case 'relu':
      return (x) => (x > 0 ? 1 : 0);
    case 'gelu':
      // Φ(x) + x·φ(x)
      return (x) => 0.5 * (1 + erf(x * INV_SQRT_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
    case 'gelu_tanh':
      return (x) => {
        const u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
        const t = Math.tanh(u);
        const du = SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
      };
    case 'silu':
      return (x) => {
        const s = sig(x);
        return s * (1 + x * (1 - s));
      };
    case 'erf':
      return (x) => (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x);
    case 'floor':
    case 'ceil':
    case 'round':
    case 'isfinite':
      return () => 0;
  }
}

export function binaryFn(op: BinaryOp, int: boolean): (a: number, b: number) => number {
  switch (op) {
    case 'add':
      return int ? (a, b) => (a + b) | 0 : (a, b) => a + b;
    case 'sub':
      return int ? (a, b) => (a - b) | 0 : (a, b) => a - b;
    case 'mul':
      return int ? Math.imul : (a, b) => a * b;
    case 'div':
      return int ? (a, b) => (b === 0 ? 0 : Math.trunc(a / b) | 0) : (a, b) => a / b;
    case 'pow':
      return int ? (a, b) => (b < 0 ? 0 : ipow(a, b)) : (a, b) => Math.pow(a, b);
    // NaN propagates through maximum/minimum, as torch.maximum
    case 'maximum':
      return (a, b) => (a !== a || b !== b ? NaN : a > b ? a : b);
    case 'minimum':
      return (a, b) => (a !== a || b !== b ? NaN : a < b ? a : b);
    case 'eq':
      return (a, b) => (a === b ? 1 : 0);
    case 'ne':
      return (a, b) => (a !== b ? 1 : 0);
    case 'lt':
      return (a, b) => (a < b ? 1 : 0);
    case 'le':
      return (a, b) => (a <= b ? 1 : 0);
    case 'gt':
      return (a, b) => (a > b ? 1 : 0);
    case 'ge':
      return (a, b) => (a >= b ? 1 : 0);
    case 'and':
      return (a, b) => (a && b ? 1 : 0);
    case 'or':
      return (a, b) => (a || b ? 1 : 0);
  }
}

// Integer power with 32-bit wrap-around, as int32 arithmetic does.
function ipow(a: number, b: number): number {
  let r = 1;
  let base = a | 0;
  let e = b;
  while (e > 0) {
    if (e & 1) r = Math.imul(r, base);
    base = Math.imul(base, base);
    e >>>= 1;
  }
  return r;
}

/** Row-major iteration over `shape`, calling `f(linear, offA, offB, offC)` with strided offsets. */
export function forEachStrided(
  shape: readonly number[],
  sa: readonly number[],
  sb: readonly number[],
  sc: readonly number[],
  f: (i: number, a: number, b: number, c: number) => void,
): void {
  const rank = shape.length;
  let total = 1;
  for (const d of shape) total *= d;
  if (total === 0) return;
  const idx = new Array<number>(rank).fill(0);
  let a = 0;
  let b = 0;
  let c = 0;
  for (let i = 0; i < total; i++) {
    f(i, a, b, c);
    // odometer increment, innermost axis first
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      a += sa[d]!;
      b += sb[d]!;
      c += sc[d]!;
      if (idx[d]! < shape[d]!) break;
      a -= sa[d]! * shape[d]!;
      b -= sb[d]! * shape[d]!;
      c -= sc[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}

export function reduceRef(op: ReduceOp, x: Num, outer: number, r: number, inner: number, out: Num): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * r * inner + i;
      if (op === 'sum') {
        let s = 0;
        for (let j = 0; j < r; j++) s += x[base + j * inner]!;
        out[o * inner + i] = s;
        continue;
      }
      // max/min and their arg: NaN wins and is sticky; ties keep the first index
      const isMax = op === 'max' || op === 'argmax';
      let best = x[base]!;
      let arg = 0;
      for (let j = 1; j < r && best === best; j++) {
        const v = x[base + j * inner]!;
        if (v !== v || (isMax ? v > best : v < best)) {
          best = v;
          arg = j;
        }
      }
      out[o * inner + i] = op === 'max' || op === 'min' ? best : arg;
    }
  }
}

/**
 * Batched matmul on one (a, b, out) triple at offsets: out[m×n] = op(a)[m×k] @ op(b)[k×n].
 * The i-k-j order streams rows of b (or its transpose, read with a stride) into a row of f64 sums.
 */
export function matmulRef(
  a: Num,
  aOff: number,
  b: Num,
  bOff: number,
  out: Num,
  outOff: number,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  bias: Num | null,
  acc: Float64Array,
): void {
  for (let i = 0; i < m; i++) {
    if (transB) {
      // row i of a against rows of b: both contiguous
      for (let j = 0; j < n; j++) {
        let s = 0;
        const bRow = bOff + j * k;
        if (transA) for (let p = 0; p < k; p++) s += a[aOff + p * m + i]! * b[bRow + p]!;
        else {
          const aRow = aOff + i * k;
          for (let p = 0; p < k; p++) s += a[aRow + p]! * b[bRow + p]!;
        }
        acc[j] = s;
      }
    } else {
      acc.fill(0, 0, n);
      for (let p = 0; p < k; p++) {
        const aip = transA ? a[aOff + p * m + i]! : a[aOff + i * k + p]!;
        const bRow = bOff + p * n;
        for (let j = 0; j < n; j++) acc[j] += aip * b[bRow + j]!;
      }
    }
    const row = outOff + i * n;
    if (bias) for (let j = 0; j < n; j++) out[row + j] = acc[j]! + bias[j]!;
    else for (let j = 0; j < n; j++) out[row + j] = acc[j]!;
  }
}
