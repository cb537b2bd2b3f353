/**
 * Elementwise ops against plain-JS oracles: broadcasting, scalars, size-0 dims, every dtype,
 * PyTorch's type promotion, int32 wrap-around and half-precision rounding.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  abs,
  add,
  bf16Bits,
  bf16Value,
  cast,
  ceil,
  clamp,
  clone,
  cos,
  div,
  eq,
  erf,
  exp,
  f16Bits,
  f16Value,
  floor,
  ge,
  gelu,
  gt,
  isfinite,
  le,
  log,
  logicalAnd,
  logicalNot,
  logicalOr,
  lt,
  maximum,
  minimum,
  mul,
  ne,
  neg,
  pow,
  relu,
  round,
  rsqrt,
  sigmoid,
  sign,
  silu,
  sin,
  sqrt,
  sub,
  tanh,
  tensor,
  tidy,
  where,
  type DType,
  type Tensor,
} from '../src/index.js';
import { at, broadcastPairArb, describeBackends, expectClose, FC, floatDtype, indices, shapeArb, size, stores, storedDtypes, tol, values, stored, tidyRead } from './harness.js';

type Operand = Tensor | number;

// ---- oracle helpers ---------------------------------------------------------------------

const FLOATS: DType[] = ['f32', 'f64', 'bf16', 'f16'];
const ALL: DType[] = ['bool', 'i32', 'bf16', 'f16', 'f32', 'f64'];
const isFloatT = (d: DType): boolean => d === 'f32' || d === 'f64' || d === 'bf16' || d === 'f16';
const isHalfT = (d: DType): boolean => d === 'bf16' || d === 'f16';


/** The value an op computed exactly (in f64) has in `dtype`: halves compute in f32 and round to the half type. */
function result(dtype: DType): (y: number) => number {
  if (isHalfT(dtype)) {
    const h = stored(dtype);
    return (y) => h(Math.fround(y));
  }
  return stored(dtype);
}

/** PyTorch's promotion lattice: bool < i32 < {bf16, f16} < f32 < f64, and bf16 with f16 gives f32. */
function promote(a: DType, b: DType): DType {
  const rank: Record<DType, number> = { bool: 0, i32: 1, bf16: 2, f16: 2, f32: 3, f64: 4 };
  if (a === b) return a;
  if (rank[a] === rank[b]) return 'f32';
  return rank[a] > rank[b] ? a : b;
}

/** The dtype of a tensor of `dtype` combined with a JS number (PyTorch: a number does not widen a float tensor). */
function promoteScalar(dtype: DType, s: number): DType {
  if (isFloatT(dtype)) return dtype;
  if (!Number.isInteger(s)) return 'f32';
  return dtype === 'bool' ? 'i32' : dtype;
}

function broadcastShape(...shapes: number[][]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const k = s[s.length - rank + i];
      if (k !== undefined && k !== 1) d = k;
    }
    out.push(d);
  }
  return out;
}


/** Exact comparison (NaN equals NaN, 0 equals −0). */
function expectExact(actual: ArrayLike<number>, expected: ArrayLike<number>, what = ''): void {
  expect(actual.length, `${what} length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a !== e) expect.fail(`${what}[${i}]: got ${a}, expected ${e}`);
  }
}

/** Check float results: halves must be representable in their type, then close to the oracle within `tol`. */
async function expectFloat(out: Tensor, exact: number[], dtype: DType, what: string): Promise<void> {
  const got = await values(out);
  if (isHalfT(dtype)) {
    const h = stored(dtype);
    for (let i = 0; i < got.length; i++)
      if (!Number.isNaN(got[i]!) && h(got[i]!) !== got[i]) expect.fail(`${what}[${i}]: ${got[i]} is not a ${dtype} value`);
  }
  expectClose(got, exact.map(result(dtype)), tol(dtype), what);
}

/** erf by A&S 7.1.6, erf x = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)): all terms positive, so no cancellation. */
function erfOracle(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === 0) return x;
  const ax = Math.abs(x);
  if (ax > 10) return Math.sign(x); // erfc(10) ≈ 2e-45
  let term = ax;
  let s = ax;
  for (let n = 1; n < 2000; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    s += term;
    if (term < 1e-17 * s) break;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * s;
}

const sigmoidOracle = (x: number): number => 1 / (1 + Math.exp(-x));

function roundHalfEvenOracle(x: number): number {
  if (!Number.isFinite(x)) return x;
  if (Math.abs(x - Math.trunc(x)) === 0.5) return 2 * Math.round(x / 2);
  return Math.round(x);
}

const nanMax = (a: number, b: number): number => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b));
const nanMin = (a: number, b: number): number => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b));

function ipowOracle(a: number, e: number): number {
  let r = 1;
  for (let k = 0; k < e; k++) r = Math.imul(r, a);
  return r;
}

// ---- arbitraries ------------------------------------------------------------------------

const num = (min: number, max: number): fc.Arbitrary<number> => fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
const arrOf = (arb: fc.Arbitrary<number>, n: number): fc.Arbitrary<number[]> => fc.array(arb, { minLength: n, maxLength: n });
const general = fc.oneof({ weight: 8, arbitrary: num(-10, 10) }, { weight: 1, arbitrary: fc.constantFrom(0, -0, 1, -1, 0.5, 2) });
const withSpecials = fc.oneof({ weight: 6, arbitrary: general }, { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity) });
/** Few distinct values, so comparisons see ties. */
const tiny = fc.oneof(fc.integer({ min: -2, max: 2 }), fc.constantFrom(0.5, -0, -1.5));
const int32 = fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.integer({ min: -5, max: 5 }));
/** Values exact in every float dtype (k/4, |k| ≤ 40) and small ints, for mixed-dtype ops. */
const exactish = fc.integer({ min: -40, max: 40 }).map((k) => k / 4);

/** Two broadcastable shapes with values for each. */
function pairWithValues(arbA: fc.Arbitrary<number>, arbB: fc.Arbitrary<number> = arbA) {
  return broadcastPairArb().chain(([sa, sb]) =>
    fc.record({ sa: fc.constant(sa), sb: fc.constant(sb), av: arrOf(arbA, size(sa)), bv: arrOf(arbB, size(sb)) }),
  );
}

/** Three shapes that broadcast together (for where). */
function broadcastTripleArb(maxRank = 3, maxDim = 3): fc.Arbitrary<[number[], number[], number[]]> {
  return fc
    .tuple(
      fc.array(fc.integer({ min: 0, max: maxDim }), { maxLength: maxRank }),
      fc.array(fc.boolean(), { minLength: 3 * maxRank, maxLength: 3 * maxRank }),
      fc.array(fc.nat(maxRank), { minLength: 3, maxLength: 3 }),
    )
    .map(([base, masks, drops]) => {
      const mk = (k: number): number[] => base.map((d, i) => (masks[k * maxRank + i] ? 1 : d)).slice(Math.min(drops[k]!, base.length));
      return [mk(0), mk(1), mk(2)];
    });
}

/** Read each output element's operands by broadcasting and apply `f`. */
function broadcastOracle(shape: number[], av: number[], sa: number[], bv: number[], sb: number[], f: (a: number, b: number) => number): number[] {
  return indices(shape).map((idx) => f(at(av, sa, idx), at(bv, sb, idx)));
}

// ---- op specifications -----------------------------------------------------------------

interface BinSpec {
  name: string;
  fn: (a: Operand, b: Operand) => Tensor;
  /** The float result, in f64. */
  f: (a: number, b: number) => number;
  /** The int32 result, or undefined when integers give floats (div). */
  i?: (a: number, b: number) => number;
  cmp?: boolean;
  arbA: fc.Arbitrary<number>;
  arbB: fc.Arbitrary<number>;
}

const ARITH: BinSpec[] = [
  { name: 'add', fn: add, f: (a, b) => a + b, i: (a, b) => (a + b) | 0, arbA: general, arbB: general },
  { name: 'sub', fn: sub, f: (a, b) => a - b, i: (a, b) => (a - b) | 0, arbA: general, arbB: general },
  { name: 'mul', fn: mul, f: (a, b) => a * b, i: Math.imul, arbA: general, arbB: general },
  { name: 'div', fn: div, f: (a, b) => a / b, arbA: general, arbB: general },
  {
    name: 'pow',
    fn: pow,
    f: Math.pow,
    i: ipowOracle,
    arbA: num(-4, 4),
    arbB: fc.oneof(fc.integer({ min: -3, max: 3 }), num(-3, 3)),
  },
  { name: 'maximum', fn: maximum, f: nanMax, i: nanMax, arbA: withSpecials, arbB: withSpecials },
  { name: 'minimum', fn: minimum, f: nanMin, i: nanMin, arbA: withSpecials, arbB: withSpecials },
];

const cmpSpec = (name: string, fn: BinSpec['fn'], f: (a: number, b: number) => boolean): BinSpec => ({
  name,
  fn,
  f: (a, b) => (f(a, b) ? 1 : 0),
  i: (a, b) => (f(a, b) ? 1 : 0),
  cmp: true,
  arbA: fc.oneof({ weight: 6, arbitrary: tiny }, { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity) }),
  arbB: fc.oneof({ weight: 6, arbitrary: tiny }, { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity) }),
});

const COMPARE: BinSpec[] = [
  cmpSpec('eq', eq, (a, b) => a === b),
  cmpSpec('ne', ne, (a, b) => a !== b),
  cmpSpec('lt', lt, (a, b) => a < b),
  cmpSpec('le', le, (a, b) => a <= b),
  cmpSpec('gt', gt, (a, b) => a > b),
  cmpSpec('ge', ge, (a, b) => a >= b),
];

/**
 * Oracle of a binary op over stored operand values `a` (of dtype da) and `b` (db) computed in
 * `opDtype`: returns the expected exact values (before rounding to the output dtype).
 */
function binaryValue(spec: BinSpec, opDtype: DType): (a: number, b: number) => number {
  const conv = stored(opDtype);
  if (opDtype === 'i32' || opDtype === 'bool') {
    const i = spec.i;
    if (i) return (a, b) => i(conv(a), conv(b));
  }
  return (a, b) => spec.f(conv(a), conv(b));
}

function outDtypeOf(spec: BinSpec, opDtype: DType): DType {
  if (spec.cmp) return 'bool';
  if (spec.name === 'div' && !isFloatT(opDtype)) return 'f32';
  return opDtype;
}

/** Check a binary result against the oracle, exact for bool/i32 and within tolerance for floats. */
async function checkBinary(out: Tensor, spec: BinSpec, av: number[], sa: number[], da: DType, bv: number[], sb: number[], db: DType, opDtype: DType, what: string): Promise<void> {
  const shape = broadcastShape(sa, sb);
  const outDtype = outDtypeOf(spec, opDtype);
  expect(out.dtype, `${what} dtype`).toBe(outDtype);
  expect([...out.shape], `${what} shape`).toEqual(shape);
  const exact = broadcastOracle(shape, av.map(stored(da)), sa, bv.map(stored(db)), sb, binaryValue(spec, opDtype));
  if (isFloatT(outDtype)) await expectFloat(out, exact, outDtype, what);
  else expectExact(await values(out), exact, what);
}

interface UnSpec {
  name: string;
  fn: (x: Tensor) => Tensor;
  f: (x: number) => number;
  arb: fc.Arbitrary<number>;
  /** Special inputs whose results are unambiguous (IEEE / PyTorch). */
  specials: number[];
  /** Keeps i32 inputs i32 (others give f32). */
  integral?: boolean;
}

const EVERY_SPECIAL = [0, -0, Infinity, -Infinity, NaN];
const GELU_C = Math.sqrt(2 / Math.PI);

const UNARY: UnSpec[] = [
  { name: 'neg', fn: neg, f: (x) => -x, arb: general, specials: EVERY_SPECIAL, integral: true },
  { name: 'abs', fn: abs, f: Math.abs, arb: general, specials: EVERY_SPECIAL, integral: true },
  { name: 'sign', fn: sign, f: (x) => (x > 0 ? 1 : x < 0 ? -1 : x), arb: general, specials: EVERY_SPECIAL, integral: true },
  { name: 'exp', fn: exp, f: Math.exp, arb: num(-10, 10), specials: EVERY_SPECIAL },
  { name: 'log', fn: log, f: Math.log, arb: num(1e-6, 100), specials: [...EVERY_SPECIAL, -1, 1] },
  { name: 'sqrt', fn: sqrt, f: Math.sqrt, arb: num(0, 100), specials: [0, Infinity, NaN, -1, 4] },
  { name: 'rsqrt', fn: (x) => x.rsqrt(), f: (x) => 1 / Math.sqrt(x), arb: num(1e-3, 100), specials: [0, Infinity, NaN, -1, 4] },
  { name: 'sin', fn: sin, f: Math.sin, arb: num(-10, 10), specials: [0, -0, NaN, Infinity] },
  { name: 'cos', fn: cos, f: Math.cos, arb: num(-10, 10), specials: [0, -0, NaN, Infinity] },
  { name: 'tanh', fn: tanh, f: Math.tanh, arb: num(-6, 6), specials: EVERY_SPECIAL },
  { name: 'sigmoid', fn: sigmoid, f: sigmoidOracle, arb: num(-10, 10), specials: EVERY_SPECIAL },
  { name: 'relu', fn: relu, f: (x) => (x > 0 ? x : Number.isNaN(x) ? NaN : 0), arb: general, specials: EVERY_SPECIAL, integral: true },
  {
    name: 'gelu',
    fn: (x) => gelu(x),
    f: (x) => 0.5 * x * (1 + erfOracle(x / Math.SQRT2)),
    arb: num(-6, 6),
    specials: [0, -0, Infinity, NaN],
  },
  {
    name: "gelu(approximate: 'tanh')",
    fn: (x) => gelu(x, { approximate: 'tanh' }),
    f: (x) => 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x ** 3))),
    arb: num(-6, 6),
    specials: [0, -0, Infinity, NaN],
  },
  { name: 'silu', fn: silu, f: (x) => x * sigmoidOracle(x), arb: num(-10, 10), specials: [0, -0, Infinity, NaN] },
  { name: 'erf', fn: erf, f: erfOracle, arb: num(-6, 6), specials: EVERY_SPECIAL },
  { name: 'floor', fn: floor, f: Math.floor, arb: general, specials: EVERY_SPECIAL, integral: true },
  { name: 'ceil', fn: ceil, f: Math.ceil, arb: general, specials: EVERY_SPECIAL, integral: true },
  {
    name: 'round',
    fn: round,
    f: roundHalfEvenOracle,
    arb: fc.oneof(general, fc.integer({ min: -40, max: 40 }).map((k) => k / 2)),
    specials: [...EVERY_SPECIAL, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5],
    integral: true,
  },
];

// ---- the oracle itself -------------------------------------------------------------------

describe('elementwise oracles', () => {
  it('erfOracle matches published values of erf (Abramowitz & Stegun, Table 7.1)', () => {
    const table: [number, number][] = [
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [1.5, 0.9661051464753108],
      [2, 0.9953222650189527],
      [3, 0.9999779095030014],
    ];
    for (const [x, e] of table) {
      expect(Math.abs(erfOracle(x) - e)).toBeLessThan(1e-15);
      expect(Math.abs(erfOracle(-x) + e)).toBeLessThan(1e-15);
    }
  });

  it('the half-rounding helpers the oracles use give the published bit patterns (IEEE 754 binary16, bfloat16)', () => {
    // binary16: 1 = 3c00, max 65504 = 7bff, smallest subnormal 2^-24 = 0001, 1/3 ≈ 3555, 0.1 ≈ 2e66, -2 = c000
    const f16: [number, number][] = [
      [1, 0x3c00],
      [65504, 0x7bff],
      [2 ** -24, 0x0001],
      [1 / 3, 0x3555],
      [0.1, 0x2e66],
      [-2, 0xc000],
      [65520, 0x7c00], // rounds up past the max: +∞
      [1 + 2 ** -11, 0x3c00], // a tie goes to the even neighbour
      [1 + 3 * 2 ** -11, 0x3c02],
    ];
    for (const [x, bits] of f16) expect(f16Bits(x), `f16 ${x}`).toBe(bits);
    expect(f16Value(0x3555)).toBe(1365 / 4096);
    // bfloat16: the top half of the f32 pattern, rounded to nearest even: 1 = 3f80, π ≈ 4049, 1/3 ≈ 3eab
    const bf: [number, number][] = [
      [1, 0x3f80],
      [Math.PI, 0x4049],
      [1 / 3, 0x3eab],
      [-0, 0x8000],
      [1 + 2 ** -8, 0x3f80],
      [1 + 3 * 2 ** -8, 0x3f82],
    ];
    for (const [x, bits] of bf) expect(bf16Bits(x), `bf16 ${x}`).toBe(bits);
    expect(bf16Value(0x4049)).toBe(3.140625);
    expect(bf16Value(0x7f80)).toBe(Infinity);
  });
});

// ---- the suite -------------------------------------------------------------------------

describeBackends('elementwise', (backend) => {
  const T = (v: number[], shape: number[], dtype: DType): Tensor => tensor(v, shape, { backend, dtype });
  // the dtypes this backend stores: a backend without f64 (WebGPU) runs every other dtype, and says the f64 cases are skipped
  const floats = storedDtypes(backend, FLOATS);
  const all = storedDtypes(backend, ALL);
  const hasF64 = stores(backend, 'f64');

  describe('binary float ops broadcast and match the oracle in f32, f64, bf16 and f16', () => {
    for (const spec of ARITH) {
      it(spec.name, async () => {
        await fc.assert(
          fc.asyncProperty(pairWithValues(spec.arbA, spec.arbB), fc.constantFrom(...floats), async ({ sa, sb, av, bv }, dtype) =>
            tidyRead(
              () => spec.fn(T(av, sa, dtype), T(bv, sb, dtype)),
              (out) => checkBinary(out, spec, av, sa, dtype, bv, sb, dtype, dtype, `${spec.name} ${dtype} [${sa}]·[${sb}]`),
            ),
          ),
          FC,
        );
      });
    }
  });

  describe('comparisons give bool (NaN compares unequal) for every numeric dtype', () => {
    for (const spec of COMPARE) {
      it(spec.name, async () => {
        await fc.assert(
          fc.asyncProperty(pairWithValues(spec.arbA, spec.arbB), fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['f32', 'f64', 'bf16', 'f16', 'i32'])), async ({ sa, sb, av, bv }, dtype) => {
            // integers cannot hold NaN or ±∞
            const clean = (v: number[]): number[] => (dtype === 'i32' ? v.map((x) => (Number.isFinite(x) ? x : 7)) : v);
            const [a, b] = [clean(av), clean(bv)];
            await tidyRead(
              () => spec.fn(T(a, sa, dtype), T(b, sb, dtype)),
              (out) => checkBinary(out, spec, a, sa, dtype, b, sb, dtype, dtype, `${spec.name} ${dtype}`),
            );
          }),
          FC,
        );
      });
    }
  });

  it('maximum and minimum propagate NaN from either side', async () => {
    await tidyRead(
      () => {
        const a = T([NaN, 1, NaN, -Infinity], [4], 'f32');
        const b = T([1, NaN, NaN, NaN], [4], 'f32');
        return [maximum(a, b), minimum(a, b), maximum(a, 0), minimum(NaN, b)];
      },
      async ([mx, mn, mx0, mnNaN]) => {
        expectExact(await values(mx!), [NaN, NaN, NaN, NaN], 'maximum');
        expectExact(await values(mn!), [NaN, NaN, NaN, NaN], 'minimum');
        expectExact(await values(mx0!), [NaN, 1, NaN, 0], 'maximum scalar');
        expectExact(await values(mnNaN!), [NaN, NaN, NaN, NaN], 'minimum NaN scalar');
      },
    );
  });

  describe('int32 arithmetic', () => {
    it('add, sub, mul, maximum and minimum of i32 wrap like int32 and stay i32; div gives f32 true division', async () => {
      const specs = ARITH.filter((s) => s.name !== 'pow');
      await fc.assert(
        fc.asyncProperty(pairWithValues(int32), fc.constantFrom(...specs), async ({ sa, sb, av, bv }, spec) =>
          tidyRead(
            () => spec.fn(T(av, sa, 'i32'), T(bv, sb, 'i32')),
            // integer inputs of div are converted to f32 first, then divided (as torch.div on int tensors)
            (out) => checkBinary(out, spec, av, sa, 'i32', bv, sb, 'i32', 'i32', `${spec.name} i32`),
          ),
        ),
        FC,
      );
    });

    it('pow of i32 by a non-negative integer exponent wraps like int32', async () => {
      const powSpec = ARITH.find((s) => s.name === 'pow')!;
      await fc.assert(
        fc.asyncProperty(pairWithValues(int32, fc.integer({ min: 0, max: 5 })), async ({ sa, sb, av, bv }) =>
          tidyRead(
            () => pow(T(av, sa, 'i32'), T(bv, sb, 'i32')),
            (out) => checkBinary(out, powSpec, av, sa, 'i32', bv, sb, 'i32', 'i32', 'pow i32'),
          ),
        ),
        FC,
      );
    });

    it('div of integers is true division: 7 / 2 = 3.5, −7 / 2 = −3.5, 1 / 0 = ∞, 0 / 0 = NaN', async () => {
      await tidyRead(
        () => {
          const out = div(T([7, -7, 1, 0], [4], 'i32'), T([2, 2, 0, 0], [4], 'i32'));
          expect(out.dtype).toBe('f32');
          return out;
        },
        async (out) => expectExact(await values(out), [3.5, -3.5, Infinity, NaN]),
      );
    });
  });

  describe('type promotion (PyTorch rules)', () => {
    it('examples: f32 + f64 → f64, i32 + 0.5 → f32, bf16 + f16 → f32, i32 + 2 → i32, bool + 2 → i32, bool + 0.5 → f32', async () => {
      await tidyRead(
        () => {
          if (hasF64) expect(add(T([1], [1], 'f32'), T([1], [1], 'f64')).dtype).toBe('f64');
          const half = add(T([1, 2], [2], 'i32'), 0.5);
          expect(half.dtype).toBe('f32');
          expect(add(T([1], [1], 'bf16'), T([1], [1], 'f16')).dtype).toBe('f32');
          expect(add(T([1], [1], 'i32'), 2).dtype).toBe('i32');
          expect(add(T([1], [1], 'bool'), 2).dtype).toBe('i32');
          expect(add(T([1], [1], 'bool'), 0.5).dtype).toBe('f32');
          expect(add(T([1], [1], 'f16'), 0.5).dtype).toBe('f16');
          expect(mul(T([1], [1], 'i32'), T([1], [1], 'bf16')).dtype).toBe('bf16');
          return half;
        },
        async (half) => expectExact(await values(half), [1.5, 2.5]),
      );
    });

    it('tensors of any two dtypes promote by the lattice, and the values are computed in the promoted dtype', async () => {
      const specs = [...ARITH.filter((s) => s.name !== 'pow'), ...COMPARE];
      const pairs = all.flatMap((a) => all.map((b) => [a, b] as [DType, DType])).filter(([a, b]) => !(a === 'bool' && b === 'bool'));
      await fc.assert(
        fc.asyncProperty(pairWithValues(exactish), fc.constantFrom(...pairs), fc.constantFrom(...specs), async ({ sa, sb, av, bv }, [da, db], spec) =>
          tidyRead(
            () => spec.fn(T(av, sa, da), T(bv, sb, db)),
            (out) => checkBinary(out, spec, av, sa, da, bv, sb, db, promote(da, db), `${spec.name} ${da}·${db}`),
          ),
        ),
        FC,
      );
    });

    it('bool + bool stays bool and holds 0 or 1 (logical or, as torch.add on bool tensors)', async () => {
      await tidyRead(
        () => {
          const a = T([1, 1, 0, 0], [4], 'bool');
          const b = T([1, 0, 1, 0], [4], 'bool');
          const s = add(a, b);
          expect(s.dtype).toBe('bool');
          const p = mul(a, b);
          expect(p.dtype).toBe('bool');
          return { s, s1: eq(s, 1), p };
        },
        async ({ s, s1, p }) => {
          expectExact(await values(s), [1, 1, 1, 0], 'bool + bool');
          expectExact(await values(s1), [1, 1, 1, 0], '(bool + bool) == 1');
          expectExact(await values(p), [1, 0, 0, 0], 'bool * bool');
        },
      );
    });
  });

  describe('JS number operands on either side', () => {
    const specs = [...ARITH, ...COMPARE];
    it('every binary op with a number on the left or right, for float and i32 tensors', async () => {
      await fc.assert(
        fc.asyncProperty(
          shapeArb(3, 4).chain((shape) => fc.tuple(fc.constant(shape), arrOf(exactish, size(shape)))),
          fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['f32', 'f64', 'bf16', 'f16', 'i32', 'bool'])),
          fc.constantFrom(...specs),
          fc.oneof(exactish, general),
          fc.boolean(),
          async ([shape, v], dtype, spec, s0, left) => {
            // halves get scalars they represent exactly (so the test does not depend on when the scalar is rounded)
            let s = isHalfT(dtype) ? stored(dtype)(s0) : s0;
            let vals = dtype === 'bool' ? v.map((x) => (x > 0 ? 1 : 0)) : v;
            // int pow needs integer exponents ≥ 0 (PyTorch refuses negative ones)
            if (spec.name === 'pow' && !isFloatT(dtype)) {
              s = Math.trunc(s);
              if (left) vals = vals.map((x) => Math.abs(Math.trunc(x)) % 4);
              else s = Math.abs(s) % 4;
            }
            const opDtype = promoteScalar(dtype, s);
            const what = `${spec.name}(${left ? `${s}, ${dtype}` : `${dtype}, ${s}`})`;
            await tidyRead(
              () => {
                const t = T(vals, shape, dtype);
                return left ? spec.fn(s, t) : spec.fn(t, s);
              },
              async (out) => {
                if (left) await checkBinary(out, spec, [s], [], 'f64', vals, shape, dtype, opDtype, what);
                else await checkBinary(out, spec, vals, shape, dtype, [s], [], 'f64', opDtype, what);
              },
            );
          },
        ),
        FC,
      );
    });

    it('a f32 tensor meets a number rounded to f32 (0.1 == f32(0.1)); a f64 tensor keeps it exact', async () => {
      await tidyRead(
        () => eq(T([0.1], [1], 'f32'), 0.1),
        async (e32) => expectExact(await values(e32), [1]),
      );
      // the f64 half of the claim needs f64 storage
      if (!hasF64) return;
      await tidyRead(
        () => [eq(T([0.1], [1], 'f64'), 0.1), eq(T([Math.fround(0.1)], [1], 'f64'), 0.1), sub(1, T([0.1], [1], 'f64'))],
        async ([e64, e64r, d]) => {
          expectExact(await values(e64!), [1]);
          expectExact(await values(e64r!), [0]);
          expectExact(await values(d!), [1 - 0.1]);
        },
      );
    });

    it('two numbers are refused', () => {
      expect(() => add(1, 2)).toThrow(/add/);
    });
  });

  describe('logical ops', () => {
    const truth = (x: number): number => (x !== 0 ? 1 : 0);
    const vals = fc.constantFrom(0, -0, 1, -2.5, 0.5, 3);
    it('logicalAnd, logicalOr and logicalNot of truthiness give bool, broadcasting across dtypes', async () => {
      await fc.assert(
        fc.asyncProperty(
          pairWithValues(vals),
          fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['bool', 'f32', 'i32', 'f64', 'bf16'])),
          fc.constantFrom<DType>('bool', 'f32', 'i32', 'f16'),
          async ({ sa, sb, av, bv }, da, db) => {
            const ra = av.map(stored(da));
            const rb = bv.map(stored(db));
            const shape = broadcastShape(sa, sb);
            await tidyRead(
              () => {
                const a = T(av, sa, da);
                const b = T(bv, sb, db);
                const and = logicalAnd(a, b);
                const or = logicalOr(a, b);
                const not = logicalNot(a);
                for (const t of [and, or, not]) expect(t.dtype).toBe('bool');
                expect([...and.shape]).toEqual(shape);
                return { and, or, not, or0: logicalOr(a, 0), and1: logicalAnd(1, b) };
              },
              async ({ and, or, not, or0, and1 }) => {
                expectExact(await values(and), broadcastOracle(shape, ra, sa, rb, sb, (x, y) => truth(x) & truth(y)), 'and');
                expectExact(await values(or), broadcastOracle(shape, ra, sa, rb, sb, (x, y) => truth(x) | truth(y)), 'or');
                expectExact(await values(not), ra.map((x) => 1 - truth(x)), 'not');
                expectExact(await values(or0), ra.map(truth), 'or 0');
                expectExact(await values(and1), rb.map(truth), 'and 1');
              },
            );
          },
        ),
        FC,
      );
    });

    it('NaN is truthy, as in PyTorch (NaN != 0), consistently in logicalAnd, logicalOr, logicalNot and cast to bool', async () => {
      await tidyRead(
        () => {
          const x = T([NaN, 0, 1], [3], 'f32');
          return [logicalNot(x), logicalAnd(x, 1), logicalOr(x, 0), cast(x, 'bool')];
        },
        async ([not, and, or, c]) => {
          expectExact(await values(not!), [0, 1, 0], 'not');
          expectExact(await values(and!), [1, 0, 1], 'and');
          expectExact(await values(or!), [1, 0, 1], 'or');
          expectExact(await values(c!), [1, 0, 1], 'cast');
        },
      );
    });
  });

  describe('unary ops match the oracle in f32, f64, bf16 and f16, on any shape', () => {
    for (const spec of UNARY) {
      it(spec.name, async () => {
        await fc.assert(
          fc.asyncProperty(
            shapeArb(3, 4).chain((shape) => fc.tuple(fc.constant(shape), arrOf(spec.arb, size(shape)))),
            fc.constantFrom(...floats),
            async ([shape, v], dtype) =>
              tidyRead(
                () => {
                  const out = spec.fn(T(v, shape, dtype));
                  expect(out.dtype).toBe(dtype);
                  expect([...out.shape]).toEqual(shape);
                  return out;
                },
                (out) => expectFloat(out, v.map(stored(dtype)).map(spec.f), dtype, `${spec.name} ${dtype}`),
              ),
          ),
          FC,
        );
      });
    }
  });

  it('unary ops on special values (0, −0, ±∞, NaN, domain edges) in f32 and f64', async () => {
    for (const spec of UNARY)
      for (const dtype of storedDtypes<DType>(backend, ['f32', 'f64']))
        await tidyRead(
          () => spec.fn(T(spec.specials, [spec.specials.length], dtype)),
          (out) => expectFloat(out, spec.specials.map(spec.f), dtype, `${spec.name} ${dtype} specials`),
        );
  });

  it('round is half to even; floor and ceil go toward −∞ and +∞', async () => {
    await tidyRead(
      () => {
        const x = T([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 2.4999, -2.6], [9], 'f32');
        return [round(x), floor(x), ceil(x)];
      },
      async ([r, f, c]) => {
        expectExact(await values(r!), [0, 2, 2, 4, -0, -2, -2, 2, -3], 'round');
        expectExact(await values(f!), [0, 1, 2, 3, -1, -2, -3, 2, -3], 'floor');
        expectExact(await values(c!), [1, 2, 3, 4, -0, -1, -2, 3, -2], 'ceil');
      },
    );
  });

  it('unary ops on i32: neg, abs, sign, relu, floor, ceil, round stay i32 (wrapping); the rest give f32', async () => {
    await fc.assert(
      fc.asyncProperty(
        shapeArb(3, 4).chain((shape) => fc.tuple(fc.constant(shape), arrOf(int32, size(shape)))),
        fc.constantFrom(...UNARY),
        async ([shape, v0], spec) => {
          // the float ops get small integers (the domain their float tolerance is meant for)
          const v = spec.integral ? v0 : v0.map((x) => (x % 64) | 0);
          await tidyRead(
            () => {
              const out = spec.fn(T(v, shape, 'i32'));
              expect(out.dtype).toBe(spec.integral ? 'i32' : 'f32');
              return out;
            },
            async (out) => {
              if (spec.integral) expectExact(await values(out), v.map((x) => spec.f(x) | 0), `${spec.name} i32`);
              else await expectFloat(out, v.map(Math.fround).map(spec.f), 'f32', `${spec.name} i32`);
            },
          );
        },
      ),
      FC,
    );
  });

  it('erf and gelu in f64 (f32 where f64 is not stored) match published values (A&S Table 7.1; gelu(x) = x·Φ(x) from the normal table)', async () => {
    const fdt = floatDtype(backend);
    await tidyRead(
      () => {
        const x = T([0.1, 0.5, 1, 2, -1], [5], fdt);
        return [erf(x), gelu(T([1, -1, 2, 0], [4], fdt)), gelu(T([1, -1, 2, 0], [4], fdt), { approximate: 'tanh' })];
      },
      async ([e, gExact, gTanh]) => {
        expectClose(await values(e!), [0.1124629160182849, 0.5204998778130465, 0.8427007929497149, 0.9953222650189527, -0.8427007929497149], tol(fdt));
        // Φ(1) = 0.8413447460685429, Φ(2) = 0.9772498680518208
        const g = await values(gExact!);
        expectClose(g, [0.8413447460685429, -(1 - 0.8413447460685429), 2 * 0.9772498680518208, 0], tol(fdt));
        // the tanh form agrees with the exact form to about 1e-3
        const gt = await values(gTanh!);
        expectClose(gt, g, { rtol: 0, atol: 1e-3 });
      },
    );
  });

  it('isfinite gives bool for every dtype (integers are always finite)', async () => {
    await fc.assert(
      fc.asyncProperty(
        shapeArb(3, 4).chain((shape) => fc.tuple(fc.constant(shape), arrOf(withSpecials, size(shape)))),
        fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['f32', 'f64', 'bf16', 'f16', 'i32', 'bool'])),
        async ([shape, v], dtype) => {
          const vals = isFloatT(dtype) ? v : v.map((x) => (Number.isFinite(x) ? x : 3));
          await tidyRead(
            () => {
              const out = isfinite(T(vals, shape, dtype));
              expect(out.dtype).toBe('bool');
              expect([...out.shape]).toEqual(shape);
              return out;
            },
            async (out) => expectExact(await values(out), vals.map(stored(dtype)).map((x) => (Number.isFinite(x) ? 1 : 0))),
          );
        },
      ),
      FC,
    );
  });

  it('half overflow rounds to ∞ (f16 max is 65504) and bf16 keeps the f32 range', async () => {
    await tidyRead(
      () => [mul(T([300, -300], [2], 'f16'), 300), mul(T([300], [1], 'bf16'), 300), exp(T([12], [1], 'f16'))],
      async ([h, bt, e]) => {
        expectExact(await values(h!), [Infinity, -Infinity], 'f16');
        const b = await values(bt!);
        expect(b[0]).toBe(bf16Value(bf16Bits(90000)));
        expectExact(await values(e!), [Infinity], 'exp f16');
      },
    );
  });

  describe('clamp', () => {
    const bound = fc.option(fc.oneof(num(-5, 5), fc.constant(NaN)), { nil: undefined });
    it('clamp(x, min, max) = min(max(x, lo), hi) with numbers, tensors or one bound omitted; NaN propagates', async () => {
      await fc.assert(
        fc.asyncProperty(
          broadcastTripleArb().chain(([sx, sl, sh]) =>
            fc.record({
              sx: fc.constant(sx),
              sl: fc.constant(sl),
              sh: fc.constant(sh),
              xv: arrOf(withSpecials, size(sx)),
              lv: arrOf(num(-5, 5), size(sl)),
              hv: arrOf(num(-5, 5), size(sh)),
            }),
          ),
          bound,
          bound,
          fc.boolean(),
          fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['f32', 'f64'])),
          async ({ sx, sl, sh, xv, lv, hv }, lo, hi, tensors, dtype) => {
            const r = stored(dtype);
            if (tensors) {
              const shape = broadcastShape(sx, sl, sh);
              await tidyRead(
                () => {
                  const out = clamp(T(xv, sx, dtype), T(lv, sl, dtype), T(hv, sh, dtype));
                  expect([...out.shape]).toEqual(shape);
                  return out;
                },
                (out) => {
                  const exp = indices(shape).map((idx) => nanMin(nanMax(r(at(xv, sx, idx)), r(at(lv, sl, idx))), r(at(hv, sh, idx))));
                  return expectFloat(out, exp, dtype, 'clamp tensors');
                },
              );
              return;
            }
            if (lo === undefined && hi === undefined) {
              tidy(() => {
                const x = T(xv, sx, dtype);
                expect(() => clamp(x)).toThrow(/clamp/);
                expect(() => clamp(x, null, null)).toThrow(/clamp/);
              });
              return;
            }
            await tidyRead(
              () => {
                const out = clamp(T(xv, sx, dtype), lo, hi);
                expect(out.dtype).toBe(dtype);
                expect([...out.shape]).toEqual(sx);
                return out;
              },
              (out) => {
                const exp = xv.map((v) => {
                  let y = r(v);
                  if (lo !== undefined) y = nanMax(y, r(lo));
                  if (hi !== undefined) y = nanMin(y, r(hi));
                  return y;
                });
                return expectFloat(out, exp, dtype, `clamp(${lo}, ${hi})`);
              },
            );
          },
        ),
        FC,
      );
    });

    it('min > max gives max everywhere (as torch.clamp)', async () => {
      await tidyRead(
        () => [clamp(T([-3, 0, 3], [3], 'f32'), 2, 1), T([-3, 0, 3], [3], 'i32').clamp(-1, 1)],
        async ([f, i]) => {
          expectExact(await values(f!), [1, 1, 1]);
          expectExact(await values(i!), [-1, 0, 1]);
        },
      );
    });
  });

  describe('where', () => {
    it('where(cond, a, b) broadcasts all three, promotes a and b, and accepts numbers', async () => {
      const operand = fc.oneof(
        fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['f32', 'f64', 'i32', 'bf16'])).map((d) => ({ dtype: d as DType | 'number' })),
        fc.constant({ dtype: 'number' as DType | 'number' }),
      );
      await fc.assert(
        fc.asyncProperty(
          broadcastTripleArb().chain(([sc, sa, sb]) =>
            fc.record({
              sc: fc.constant(sc),
              sa: fc.constant(sa),
              sb: fc.constant(sb),
              cv: arrOf(fc.constantFrom(0, 1), size(sc)),
              av: arrOf(exactish, size(sa)),
              bv: arrOf(exactish, size(sb)),
            }),
          ),
          operand,
          operand,
          async ({ sc, sa, sb, cv, av, bv }, oa, ob) => {
            if (oa.dtype === 'number' && ob.dtype === 'number') return; // see the test below
            await tidyRead(
              () => {
                const cond = T(cv, sc, 'bool');
                const a: Operand = oa.dtype === 'number' ? av[0] ?? 0.25 : T(av, sa, oa.dtype);
                const b: Operand = ob.dtype === 'number' ? bv[0] ?? -1 : T(bv, sb, ob.dtype);
                const dtype =
                  typeof a === 'number' ? promoteScalar((b as Tensor).dtype, a) : typeof b === 'number' ? promoteScalar(a.dtype, b) : promote(a.dtype, b.dtype);
                const out = where(cond, a, b);
                expect(out.dtype).toBe(dtype);
                const shape = broadcastShape(sc, typeof a === 'number' ? [] : sa, typeof b === 'number' ? [] : sb);
                expect([...out.shape]).toEqual(shape);
                const ra = typeof a === 'number' ? [a] : av.map(stored(a.dtype));
                const rb = typeof b === 'number' ? [b] : bv.map(stored(b.dtype));
                const sA = typeof a === 'number' ? [] : sa;
                const sB = typeof b === 'number' ? [] : sb;
                const exp = indices(shape).map((idx) => stored(dtype)(at(cv, sc, idx) ? at(ra, sA, idx) : at(rb, sB, idx)));
                return { out, exp };
              },
              async ({ out, exp }) => expectExact(await values(out), exp, 'where'),
            );
          },
        ),
        FC,
      );
    });

    it('where with two numbers gives f32 (or i32 for two integers), as torch.where', async () => {
      await tidyRead(
        () => {
          const cond = T([1, 0, 1], [3], 'bool');
          const out = where(cond, 1.5, -2);
          expect(out.dtype).toBe('f32');
          const ints = where(cond, 1, -2);
          expect(ints.dtype).toBe('i32');
          return { out, ints };
        },
        async ({ out, ints }) => {
          expectExact(await values(out), [1.5, -2, 1.5]);
          expectExact(await values(ints), [1, -2, 1]);
        },
      );
    });

    it('refuses a condition that is not bool', () => {
      tidy(() => {
        expect(() => where(T([1], [1], 'f32'), T([1], [1], 'f32'), 0)).toThrow(/where/);
      });
    });
  });

  describe('cast and clone', () => {
    const castVals = fc.oneof(
      num(-1000, 1000),
      fc.integer({ min: -1000, max: 1000 }),
      fc.constantFrom(0, -0, 0.5, -0.5, 1.5, 2.5, 65504, 65519, 65520, 1e-8, -1e-8, 3.0000001, 1 / 3),
    );
    it('cast between every pair of dtypes rounds (halves: to nearest even), truncates (i32) or tests ≠ 0 (bool)', async () => {
      await fc.assert(
        fc.asyncProperty(
          shapeArb(3, 4).chain((shape) => fc.tuple(fc.constant(shape), arrOf(castVals, size(shape)))),
          fc.constantFrom(...all),
          fc.constantFrom(...all),
          async ([shape, v], from, to) =>
            tidyRead(
              () => {
                const x = T(v, shape, from);
                const out = cast(x, to);
                expect(out.dtype).toBe(to);
                expect([...out.shape]).toEqual(shape);
                return { out, method: x.cast(to) };
              },
              async ({ out, method }) => {
                // a float that i32 cannot hold (±∞ from a half's overflow) is a fault, not a wrapped value
                const unfit = to === 'i32' && v.map(stored(from)).some((x) => !Number.isFinite(x) || Math.abs(Math.trunc(x)) > 2 ** 31 - 1);
                if (unfit) {
                  await expect(out.data()).rejects.toThrow(/^cast: value -?Infinity does not fit i32/);
                  return;
                }
                expectExact(await values(out), v.map(stored(from)).map(stored(to)), `cast ${from} → ${to}`);
                expectExact(await values(method), await values(out), 'method');
              },
            ),
        ),
        FC,
      );
    });

    it.skipIf(!hasF64)('f64 → half rounds once, straight from the double (no double rounding through f32)', async () => {
      // 1 + 2^-11 + 2^-30 is just above the f16 half-way point between 1 and 1 + 2^-10; through f32 it would tie to 1
      const v = 1 + 2 ** -11 + 2 ** -30;
      await tidyRead(
        () => cast(T([v], [1], 'f64'), 'f16'),
        async (h) => expectExact(await values(h), [1 + 2 ** -10]),
      );
      expect(f16Value(f16Bits(Math.fround(v)))).toBe(1);
    });

    it('clone copies values and dtype into storage of its own', async () => {
      await fc.assert(
        fc.asyncProperty(
          shapeArb(3, 4).chain((shape) => fc.tuple(fc.constant(shape), arrOf(castVals, size(shape)))),
          fc.constantFrom(...all),
          async ([shape, v], dtype) => {
            const x = T(v, shape, dtype);
            const c = clone(x);
            const m = x.clone();
            expect(c).not.toBe(x);
            expect(c.dtype).toBe(dtype);
            expect([...c.shape]).toEqual(shape);
            x.dispose();
            expectExact(await values(c), v.map(stored(dtype)), 'clone');
            expectExact(await values(m), v.map(stored(dtype)), 'method clone');
            c.dispose();
            m.dispose();
          },
        ),
        FC,
      );
    });
  });

  it('method aliases call the same ops', async () => {
    const same = async (x: Tensor, y: Tensor, what: string): Promise<void> => {
      expect(x.dtype, what).toBe(y.dtype);
      expect([...x.shape], what).toEqual([...y.shape]);
      expectExact(await values(x), await values(y), what);
    };
    await tidyRead(
      (): [Tensor, Tensor, string][] => {
        const a = T([1.5, -2, 0.25, 3, 0, -0.75], [2, 3], 'f32');
        const b = T([2, 0.5, -1], [3], 'f32');
        return [
          [a.add(b), add(a, b), 'add'],
          [a.sub(2), sub(a, 2), 'sub'],
          [a.mul(b), mul(a, b), 'mul'],
          [a.div(b), div(a, b), 'div'],
          [a.pow(2), pow(a, 2), 'pow'],
          [a.maximum(b), maximum(a, b), 'maximum'],
          [a.minimum(0), minimum(a, 0), 'minimum'],
          [a.eq(b), eq(a, b), 'eq'],
          [a.ne(b), ne(a, b), 'ne'],
          [a.lt(b), lt(a, b), 'lt'],
          [a.le(b), le(a, b), 'le'],
          [a.gt(b), gt(a, b), 'gt'],
          [a.ge(b), ge(a, b), 'ge'],
          [a.neg(), neg(a), 'neg'],
          [a.abs(), abs(a), 'abs'],
          [a.sign(), sign(a), 'sign'],
          [a.exp(), exp(a), 'exp'],
          [a.abs().log(), log(abs(a)), 'log'],
          [a.abs().sqrt(), sqrt(abs(a)), 'sqrt'],
          [a.abs().rsqrt(), rsqrt(abs(a)), 'rsqrt'],
          [a.square(), mul(a, a), 'square'],
          [a.sin(), sin(a), 'sin'],
          [a.cos(), cos(a), 'cos'],
          [a.tanh(), tanh(a), 'tanh'],
          [a.sigmoid(), sigmoid(a), 'sigmoid'],
          [a.relu(), relu(a), 'relu'],
          [a.gelu(), gelu(a), 'gelu'],
          [a.gelu({ approximate: 'tanh' }), gelu(a, { approximate: 'tanh' }), 'gelu tanh'],
          [a.silu(), silu(a), 'silu'],
          [a.erf(), erf(a), 'erf'],
          [a.clamp(-1, 1), clamp(a, -1, 1), 'clamp'],
          [a.isfinite(), isfinite(a), 'isfinite'],
          [a.logicalNot(), logicalNot(a), 'logicalNot'],
          // a widening cast where f64 is stored, else a narrowing one (still a real conversion)
          [a.cast(hasF64 ? 'f64' : 'f16'), cast(a, hasF64 ? 'f64' : 'f16'), 'cast'],
        ];
      },
      async (pairs) => {
        for (const [x, y, what] of pairs) await same(x, y, what);
      },
    );
  });

  it('errors name the op: shapes that do not broadcast, unary ops on bool, unknown gelu form', () => {
    tidy(() => {
      expect(() => add(T([1, 2], [2], 'f32'), T([1, 2, 3], [3], 'f32'))).toThrow(/add.*broadcast/);
      expect(() => exp(T([1], [1], 'bool'))).toThrow(/exp/);
      expect(() => gelu(T([1], [1], 'f32'), { approximate: 'fast' as 'tanh' })).toThrow(/gelu/);
    });
  });
});
