/**
 * Element types: the half-precision encoders (f16Bits, bf16Bits) against a brute-force
 * nearest-value oracle with ties to even, exhaustively over all 16-bit patterns; storage of
 * half tensors; casts between every pair of dtypes; and the promotion table.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DTYPES,
  add,
  bf16Bits,
  bf16Value,
  cast,
  f16Bits,
  f16Value,
  isFloat,
  promoteTypes,
  tensor,
  tidy,
  type DType,
} from '../src/index.js';
import { describeBackends, stores, storedDtypes, syncReadable } from './harness.js';

// ---- an independent model of the two 16-bit formats -----------------------------------------

interface Format {
  name: 'f16' | 'bf16';
  /** Value of a bit pattern, decoded independently of the library. */
  decode(bits: number): number;
  /** Largest finite positive pattern. */
  maxFinite: number;
  /** The pattern of +∞. */
  inf: number;
  /** The value the format would have after maxFinite with an unbounded exponent (rounding there overflows). */
  overflowValue: number;
  encode(x: number): number;
  value(bits: number): number;
}

const dv = new DataView(new ArrayBuffer(8));

// f16 decoded through the bits of an f32 (the library uses arithmetic): sign, exponent rebased
// from bias 15 to 127, fraction shifted up 13 bits; subnormals are m·2⁻²⁴.
function decodeF16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** -24;
  dv.setUint32(0, ((bits & 0x8000) << 16) | ((e - 15 + 127) << 23) | (m << 13));
  return dv.getFloat32(0);
}

// bf16 decoded arithmetically (the library reinterprets f32 bits): 8 exponent bits, bias 127,
// 7 fraction bits; subnormals are m·2⁻¹³³.
function decodeBF16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 7) & 0xff;
  const m = bits & 0x7f;
  if (e === 0xff) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** -133;
  return sign * (1 + m / 128) * 2 ** (e - 127);
}

const F16: Format = {
  name: 'f16',
  decode: decodeF16,
  maxFinite: 0x7bff,
  inf: 0x7c00,
  overflowValue: 2 ** 16,
  encode: f16Bits,
  value: f16Value,
};
const BF16: Format = {
  name: 'bf16',
  decode: decodeBF16,
  maxFinite: 0x7f7f,
  inf: 0x7f80,
  overflowValue: 2 ** 128,
  encode: bf16Bits,
  value: bf16Value,
};

// Every non-negative finite value of the format, indexed by its bit pattern (they ascend).
const tables = new Map<string, Float64Array>();
function table(f: Format): Float64Array {
  let t = tables.get(f.name);
  if (!t) {
    t = new Float64Array(f.maxFinite + 1);
    for (let b = 0; b <= f.maxFinite; b++) t[b] = f.decode(b);
    tables.set(f.name, t);
  }
  return t;
}

const isNaNBits = (f: Format, bits: number): boolean => (bits & 0x7fff) > f.inf;

/**
 * The oracle: the pattern of the representable value nearest to x (brute force over the sorted
 * table by binary search), ties to the even pattern; beyond the largest finite value the next
 * "value" is overflowValue with an even (zero) fraction, which stands for ∞ (IEEE 754 §4.3.1).
 * Returns -1 for NaN.
 */
function oracleBits(f: Format, x: number): number {
  if (Number.isNaN(x)) return -1;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  const vals = table(f);
  if (a >= f.overflowValue) return sign | f.inf;
  let lo = 0;
  let hi = vals.length - 1;
  if (a >= vals[hi]!) {
    // between the largest finite value and the overflow value
    const dLo = a - vals[hi]!;
    const dHi = f.overflowValue - a;
    return sign | (dLo < dHi ? hi : dHi < dLo ? f.inf : f.inf /* even */);
  }
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (vals[mid]! <= a) lo = mid;
    else hi = mid;
  }
  // vals[lo] ≤ a < vals[hi], hi = lo + 1; the differences are exact (Sterbenz)
  const dLo = a - vals[lo]!;
  const dHi = vals[hi]! - a;
  const pick = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return sign | pick;
}

function nextUp(x: number): number {
  if (x === 0) return Number.MIN_VALUE;
  dv.setFloat64(0, x);
  const hi = dv.getUint32(0);
  const lo = dv.getUint32(4);
  const inc = x > 0;
  let nl = inc ? lo + 1 : lo - 1;
  let nh = hi;
  if (nl > 0xffffffff) {
    nl = 0;
    nh++;
  } else if (nl < 0) {
    nl = 0xffffffff;
    nh--;
  }
  dv.setUint32(0, nh);
  dv.setUint32(4, nl);
  return dv.getFloat64(0);
}
const nextDown = (x: number): number => -nextUp(-x);

// ---- the encoders and decoders ---------------------------------------------------------------

describe.each([F16, BF16])('$name encoding', (f) => {
  it('decodes every bit pattern as the independent decoder does', () => {
    for (let b = 0; b < 0x10000; b++) {
      const got = f.value(b);
      const want = f.decode(b);
      if (!Object.is(got, want)) expect.fail(`${f.name}Value(0x${b.toString(16)}) = ${got}, expected ${want}`);
    }
  });

  it('round-trips every bit pattern: value → bits → value (NaNs stay NaN)', () => {
    for (let b = 0; b < 0x10000; b++) {
      const v = f.value(b);
      const back = f.encode(v);
      if (Number.isNaN(v)) {
        if (!isNaNBits(f, back)) expect.fail(`${f.name}Bits(NaN) = 0x${back.toString(16)} is not a NaN pattern`);
      } else if (back !== b) expect.fail(`${f.name}Bits(${v}) = 0x${back.toString(16)}, expected 0x${b.toString(16)}`);
      // and from an f32 holding the same value (every half is exact in f32)
      if (!Number.isNaN(v) && f.encode(Math.fround(v)) !== b) expect.fail(`${f.name}Bits(fround(${v})) !== 0x${b.toString(16)}`);
    }
  });

  it('rounds every midpoint between adjacent values to the even pattern, and its neighbours to nearest', () => {
    const vals = table(f);
    for (let b = 0; b < f.maxFinite; b++) {
      const mid = (vals[b]! + vals[b + 1]!) / 2; // exact in f64
      const even = b % 2 === 0 ? b : b + 1;
      for (const [x, want] of [
        [mid, even],
        [nextDown(mid), b],
        [nextUp(mid), b + 1],
      ] as const) {
        const got = f.encode(x);
        if (got !== want) expect.fail(`${f.name}Bits(${x}) = 0x${got.toString(16)}, expected 0x${want.toString(16)}`);
        const gotNeg = f.encode(-x);
        if (gotNeg !== (want | 0x8000)) expect.fail(`${f.name}Bits(${-x}) = 0x${gotNeg.toString(16)}, expected 0x${(want | 0x8000).toString(16)}`);
      }
    }
  });

  it('overflows to ∞ exactly at the midpoint above the largest finite value', () => {
    const max = table(f)[f.maxFinite]!;
    const threshold = (max + f.overflowValue) / 2;
    expect(f.encode(threshold)).toBe(f.inf);
    expect(f.encode(-threshold)).toBe(f.inf | 0x8000);
    expect(f.encode(nextDown(threshold))).toBe(f.maxFinite);
    expect(f.encode(max)).toBe(f.maxFinite);
    expect(f.encode(f.overflowValue * 4)).toBe(f.inf);
    expect(f.encode(Infinity)).toBe(f.inf);
    expect(f.encode(-Infinity)).toBe(f.inf | 0x8000);
    expect(f.encode(Number.MAX_VALUE)).toBe(f.inf);
  });

  it('handles zeros, subnormals and NaN', () => {
    expect(f.encode(0)).toBe(0);
    expect(f.encode(-0)).toBe(0x8000);
    expect(Object.is(f.value(0x8000), -0)).toBe(true);
    const tiny = table(f)[1]!; // smallest subnormal
    expect(f.encode(tiny)).toBe(1);
    expect(f.encode(tiny / 2)).toBe(0); // tie between 0 and 1 → even (0)
    expect(f.encode(-tiny / 2)).toBe(0x8000); // underflows to −0
    expect(f.encode(nextUp(tiny / 2))).toBe(1);
    expect(f.encode((3 * tiny) / 2)).toBe(2); // tie between 1 and 2 → 2
    expect(f.encode(Number.MIN_VALUE)).toBe(0);
    expect(f.encode(-Number.MIN_VALUE)).toBe(0x8000);
    expect(isNaNBits(f, f.encode(NaN))).toBe(true);
    expect(Number.isNaN(f.value(f.inf | 1))).toBe(true);
    expect(Number.isNaN(f.value(0xffff))).toBe(true);
  });

  it('agrees with the brute-force oracle on random doubles', () => {
    const vals = table(f);
    const maxV = vals[f.maxFinite]!;
    const anyDouble = fc.double({ noNaN: false });
    const inRange = fc.double({ min: -maxV * 1.01, max: maxV * 1.01 });
    const tinyRange = fc.double({ min: -vals[0x400]! * 2, max: vals[0x400]! * 2 });
    // a point between two adjacent representable values at a random fraction (midpoints included)
    const between = fc
      .tuple(fc.integer({ min: 0, max: f.maxFinite - 1 }), fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.constant(0.5)), fc.boolean())
      .map(([b, t, neg]) => {
        const x = vals[b]! + t * (vals[b + 1]! - vals[b]!);
        return neg ? -x : x;
      });
    fc.assert(
      fc.property(fc.oneof(anyDouble, inRange, tinyRange, between, between.map(Math.fround)), (x) => {
        const got = f.encode(x);
        const want = oracleBits(f, x);
        if (want === -1) expect(isNaNBits(f, got)).toBe(true);
        else expect(got, `${f.name}Bits(${x})`).toBe(want);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('f16 published values', () => {
  // IEEE 754 binary16 examples (e.g. the table in Wikipedia's "Half-precision floating-point format").
  it('matches the well-known encodings', () => {
    expect(f16Bits(1)).toBe(0x3c00);
    expect(f16Bits(-2)).toBe(0xc000);
    expect(f16Bits(65504)).toBe(0x7bff);
    expect(f16Bits(2 ** -14)).toBe(0x0400);
    expect(f16Bits(2 ** -24)).toBe(0x0001);
    expect(f16Bits(1 / 3)).toBe(0x3555);
    expect(f16Bits(65520)).toBe(0x7c00); // the overflow threshold
    expect(f16Bits(65519.99)).toBe(0x7bff);
    expect(f16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(f16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(bf16Bits(1)).toBe(0x3f80);
    expect(bf16Bits(Math.PI)).toBe(0x4049);
    expect(bf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(bf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
  });
});

// ---- tensors ---------------------------------------------------------------------------------

/** What storing v in dtype gives, as read back: the specification of every conversion. */
function convert(dtype: DType, v: number): number {
  switch (dtype) {
    case 'f64':
      return v;
    case 'f32':
      return Math.fround(v);
    case 'i32':
      return Math.trunc(v) | 0; // callers keep |v| < 2³¹ and finite (out of range is unspecified)
    case 'bool':
      return v !== 0 ? 1 : 0; // x ≠ 0, so NaN is true (as PyTorch)
    case 'f16': {
      const b = oracleBits(F16, v);
      return b === -1 ? NaN : F16.decode(b);
    }
    case 'bf16': {
      const b = oracleBits(BF16, v);
      return b === -1 ? NaN : BF16.decode(b);
    }
  }
}

const floatValue = fc.oneof(
  fc.double({ min: -1e5, max: 1e5, noNaN: true }),
  fc.integer({ min: -16, max: 16 }).map((k) => k / 4), // exact halves and quarters: ties everywhere
  fc.double({ min: -1e-6, max: 1e-6, noNaN: true }), // half subnormals
  fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 65520, 65519.99, 3.4e38, -1e-8, 2049, 2051),
);

function valuesFor(dtype: DType): fc.Arbitrary<number[]> {
  const v =
    dtype === 'bool'
      ? fc.integer({ min: 0, max: 1 })
      : dtype === 'i32'
        ? fc.oneof(fc.integer({ min: -100_000, max: 100_000 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }))
        : floatValue;
  return fc.array(v, { minLength: 0, maxLength: 12 });
}

const same = (a: number[], b: number[], what: string): void => {
  expect(a.length, what).toBe(b.length);
  for (let i = 0; i < a.length; i++)
    if (!Object.is(a[i], b[i]) && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) expect.fail(`${what}[${i}]: got ${a[i]}, expected ${b[i]}`);
};


describeBackends('dtypes', (backend) => {
  // the dtypes this backend stores (WebGPU has no f64: its f64 cases are skipped, saying so)
  const dtypes = storedDtypes(backend, DTYPES);
  it('f16 and bf16 tensors store every representable value exactly and widen on read', async () => {
    for (const f of [F16, BF16]) {
      const all = Array.from({ length: 0x10000 }, (_, b) => f.decode(b));
      const t = tensor(all, { backend, dtype: f.name });
      try {
        expect(t.dtype).toBe(f.name);
        const got = await t.data();
        expect(got).toBeInstanceOf(Float32Array);
        same(Array.from(got), all, f.name);
      } finally {
        t.dispose();
      }
    }
  });

  it('tensor(values, {dtype}) stores each value as the conversion oracle says (halves rounded to nearest even)', async () => {
    for (const dtype of dtypes) {
      await fc.assert(
        fc.asyncProperty(valuesFor('f64'), async (vs) => {
          // NaN → bool has its own test below
          const input = vs.filter((v) => (dtype === 'i32' ? Number.isFinite(v) && Math.abs(v) < 2 ** 31 : dtype !== 'bool' || !Number.isNaN(v)));
          const t = tensor(input, { backend, dtype });
          try {
            const want = input.map((v) => convert(dtype, v));
            same(Array.from(await t.data()), want, `tensor(${dtype}) data()`);
            // the synchronous read agrees, where the backend has one
            if (syncReadable(backend)) same(Array.from(t.dataSync()), want, `tensor(${dtype}) dataSync()`);
          } finally {
            t.dispose();
          }
        }),
        { numRuns: 25 },
      );
    }
  });

  it('cast converts between every pair of dtypes (f→i32 truncates, bool is x ≠ 0, halves round to nearest even)', async () => {
    for (const from of dtypes)
      for (const to of dtypes)
        await fc.assert(
          fc.asyncProperty(valuesFor(from), async (vs) => {
            const src = tensor(vs, [vs.length], { backend, dtype: from });
            let stored: number[];
            try {
              // NaN → bool has its own test below
              stored = Array.from(await src.data()).filter((v) =>
                to === 'i32' ? Number.isFinite(v) && Math.abs(v) < 2 ** 31 : to !== 'bool' || !Number.isNaN(v),
              );
            } finally {
              src.dispose();
            }
            const [x, s, out] = tidy(() => {
              // f64 → from is exact for every stored value; without f64 the values are stored in `from` directly (also exact)
              const x = tensor(stored, [stored.length], { backend, dtype: stores(backend, 'f64') ? 'f64' : from });
              const s = cast(x, from);
              return [x, s, cast(s, to)] as const;
            });
            try {
              expect(out.dtype).toBe(to);
              expect(out.shape).toEqual([stored.length]);
              same(Array.from(await out.data()), stored.map((v) => convert(to, v)), `cast ${from} → ${to}`);
              if (from === to) expect(out).toBe(s);
            } finally {
              for (const t of [x, s, out]) t.dispose();
            }
          }),
          { numRuns: 15 },
        );
  });

  it('NaN converts to bool true (x ≠ 0, as the Backend.cast contract and PyTorch say), in cast and in tensor()', async () => {
    for (const from of storedDtypes(backend, ['f32', 'f64', 'f16', 'bf16'] as DType[])) {
      const b = tidy(() => cast(tensor([NaN, 0, -0, 0.5, -3], { backend, dtype: from }), 'bool'));
      try {
        expect(Array.from(await b.data()), `cast ${from} → bool`).toEqual([1, 0, 0, 1, 1]);
      } finally {
        b.dispose();
      }
    }
    const t = tensor([NaN, 0], { backend, dtype: 'bool' });
    try {
      expect(Array.from(await t.data()), 'tensor(NaN, bool)').toEqual([1, 0]);
    } finally {
      t.dispose();
    }
  });

  it('elementwise ops produce promoteTypes of their operands', () => {
    tidy(() => {
      for (const a of dtypes)
        for (const b of dtypes) {
          const x = tensor([1, 0], { backend, dtype: a });
          const y = tensor([1, 1], { backend, dtype: b });
          expect(add(x, y).dtype, `${a} + ${b}`).toBe(promoteTypes(a, b));
        }
    });
  });
});

describe('promoteTypes', () => {
  // The specification: torch.promote_types over these dtypes (bf16 with f16 widens to f32).
  const order: DType[] = ['bool', 'i32', 'bf16', 'f16', 'f32', 'f64'];
  const TABLE: Record<DType, DType[]> = {
    bool: ['bool', 'i32', 'bf16', 'f16', 'f32', 'f64'],
    i32: ['i32', 'i32', 'bf16', 'f16', 'f32', 'f64'],
    bf16: ['bf16', 'bf16', 'bf16', 'f32', 'f32', 'f64'],
    f16: ['f16', 'f16', 'f32', 'f16', 'f32', 'f64'],
    f32: ['f32', 'f32', 'f32', 'f32', 'f32', 'f64'],
    f64: ['f64', 'f64', 'f64', 'f64', 'f64', 'f64'],
  };

  it('matches the PyTorch table for every pair and is symmetric', () => {
    expect([...DTYPES].sort()).toEqual([...order].sort());
    for (const a of order)
      for (const [j, b] of order.entries()) {
        expect(promoteTypes(a, b), `${a}, ${b}`).toBe(TABLE[a][j]);
        expect(promoteTypes(a, b)).toBe(promoteTypes(b, a));
      }
  });

  it('isFloat is true exactly for the floating dtypes', () => {
    for (const d of order) expect(isFloat(d), d).toBe(d === 'f32' || d === 'f64' || d === 'f16' || d === 'bf16');
  });
});

describe('oracle self-check', () => {
  it('the oracle reproduces the published f16 values', () => {
    expect(oracleBits(F16, 65520)).toBe(0x7c00);
    expect(oracleBits(F16, 65519.99)).toBe(0x7bff);
    expect(oracleBits(F16, 1 / 3)).toBe(0x3555);
    expect(oracleBits(F16, -0)).toBe(0x8000);
    expect(oracleBits(BF16, Math.PI)).toBe(0x4049);
  });
});
