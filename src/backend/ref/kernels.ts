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

/**
 * Reduce `x` `[outer, r, inner]` over r into `out`. Returns the first integer sum that does not
 * fit `out` when it is an Int32Array (stored wrapped), or null.
 */
export function reduceRef(op: ReduceOp, x: Num, outer: number, r: number, inner: number, out: Num): number | null {
  let overflow: number | null = null;
  const intOut = out instanceof Int32Array;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * r * inner + i;
      if (op === 'sum') {
        let s = 0;
        for (let j = 0; j < r; j++) s += x[base + j * inner]!;
        if (intOut && overflow === null && (s > 2147483647 || s < -2147483648)) overflow = s;
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
  return overflow;
}

/**
 * Batched matmul on one (a, b, out) triple at offsets: out[m×n] = op(a)[m×k] @ op(b)[k×n] (+ bias),
 * or with `accumulate` out[m×n] + op(a) @ op(b) (+ bias). Every output is one f64 sum over
 * p = 0..k−1 in order (then the old out, then the bias), rounded once when stored. For speed the
 * sums are done 2 rows × 4 columns at a time in locals (8 products per 6 loads), reading both
 * operands in place through their strides, so transposes cost nothing and no scratch is needed.
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
  accumulate = false,
): void {
  const ars = transA ? 1 : k; // op(a)[i, p] = a[aOff + i·ars + p·acs]
  const acs = transA ? m : 1;
  const brs = transB ? 1 : n; // op(b)[p, j] = b[bOff + p·brs + j·bcs]
  const bcs = transB ? k : 1;
  for (let i = 0; i < m; i += 2) {
    const i1 = Math.min(i + 1, m - 1); // odd m: the last row is done twice
    for (let j = 0; j < n; j += 4) {
      const w = Math.min(4, n - j); // columns past n repeat the last one and are not stored
      const c1 = Math.min(1, w - 1) * bcs;
      const c2 = Math.min(2, w - 1) * bcs;
      const c3 = Math.min(3, w - 1) * bcs;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let a0 = aOff + i * ars;
      let a1 = aOff + i1 * ars;
      let bp = bOff + j * bcs;
      for (let p = 0; p < k; p++) {
        const x0 = a[a0]!, x1 = a[a1]!;
        const y0 = b[bp]!, y1 = b[bp + c1]!, y2 = b[bp + c2]!, y3 = b[bp + c3]!;
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
        a0 += acs;
        a1 += acs;
        bp += brs;
      }
      const o0 = outOff + i * n + j;
      const o1 = outOff + i1 * n + j;
      // every old value is read before the first store (odd m: o1 may be o0)
      let u00 = 0, u01 = 0, u02 = 0, u03 = 0, u10 = 0, u11 = 0, u12 = 0, u13 = 0;
      if (accumulate) {
        u00 = out[o0]!;
        u10 = out[o1]!;
        if (w > 1) (u01 = out[o0 + 1]!), (u11 = out[o1 + 1]!);
        if (w > 2) (u02 = out[o0 + 2]!), (u12 = out[o1 + 2]!);
        if (w > 3) (u03 = out[o0 + 3]!), (u13 = out[o1 + 3]!);
      }
      const c0 = bias ? bias[j]! : 0;
      out[o0] = s00 + u00 + c0;
      out[o1] = s10 + u10 + c0;
      if (w > 1) {
        const c = bias ? bias[j + 1]! : 0;
        out[o0 + 1] = s01 + u01 + c;
        out[o1 + 1] = s11 + u11 + c;
      }
      if (w > 2) {
        const c = bias ? bias[j + 2]! : 0;
        out[o0 + 2] = s02 + u02 + c;
        out[o1 + 2] = s12 + u12 + c;
      }
      if (w > 3) {
        const c = bias ? bias[j + 3]! : 0;
        out[o0 + 3] = s03 + u03 + c;
        out[o1 + 3] = s13 + u13 + c;
      }
    }
  }
}

/**
 * The `matmulInt8` kernel: each row of a `[m, k]` quantized to int8 with its own scale (f32
 * arithmetic, as the kernel's doc says), exact integer dot products with the packed weights
 * (w `[⌈k/4⌉, n]`, four int8 to a word), then dequantized in f32 and biased.
 */
export function matmulInt8Ref(a: Num, w: Num, scale: Num, out: Num, bias: Num | null, m: number, n: number, k: number): void {
  const f = Math.fround;
  const kq = Math.ceil(k / 4);
  const x = new Int32Array(kq * 4);
  const roundEven = unaryFn('round');
  for (let i = 0; i < m; i++) {
    let amax = 0;
    for (let p = 0; p < k; p++) {
      const v = Math.abs(a[i * k + p]!);
      amax = v > amax || v !== v ? v : amax;
    }
    if (!Number.isFinite(amax)) {
      for (let j = 0; j < n; j++) out[i * n + j] = NaN;
      continue;
    }
    const inv = amax === 0 ? 0 : f(127 / amax);
    for (let p = 0; p < k; p++) x[p] = roundEven(f(a[i * k + p]! * inv));
    const sa = f(amax / 127);
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let q = 0; q < kq; q++) {
        const word = w[q * n + j]!;
        acc += x[4 * q]! * ((word << 24) >> 24) + x[4 * q + 1]! * ((word << 16) >> 24) + x[4 * q + 2]! * ((word << 8) >> 24) + x[4 * q + 3]! * (word >> 24);
      }
      out[i * n + j] = f(f(acc) * f(sa * scale[j]!)) + (bias ? bias[j]! : 0);
    }
  }
}
