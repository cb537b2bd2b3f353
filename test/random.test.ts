/**
 * Random numbers: the Philox4x32-10 block function against the published known-answer vectors
 * and an independent BigInt implementation; the documented mapping of Philox words to uniform,
 * normal and integer samples (`src/backend/philox.ts` module doc), checked element by element
 * against an oracle; seeding, generator state and offsets; and sample statistics.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  Generator,
  defaultGenerator,
  manualSeed,
  normal,
  philox4x32,
  rand,
  randint,
  randn,
  Tensor,
  tidy,
  uniform,
  type DType,
} from '../src/index.js';
import { FC, describeBackends, expectClose, floatDtype, storedDtypes, values, scoped } from './harness.js';

// ---- oracle ---------------------------------------------------------------------------------

const MASK = 0xffffffffn;

/** Philox4x32-10 in BigInt arithmetic, straight from Salmon et al. (SC 2011) / Random123's philox.h. */
function philoxOracle(ctr: readonly number[], key: readonly number[]): number[] {
  let [c0, c1, c2, c3] = ctr.map((x) => BigInt(x >>> 0)) as [bigint, bigint, bigint, bigint];
  let [k0, k1] = key.map((x) => BigInt(x >>> 0)) as [bigint, bigint];
  for (let round = 0; round < 10; round++) {
    const p0 = 0xd2511f53n * c0;
    const p1 = 0xcd9e8d57n * c2;
    [c0, c1, c2, c3] = [(p1 >> 32n) ^ c1 ^ k0, p1 & MASK, (p0 >> 32n) ^ c3 ^ k1, p0 & MASK];
    k0 = (k0 + 0x9e3779b9n) & MASK;
    k1 = (k1 + 0xbb67ae85n) & MASK;
  }
  return [c0, c1, c2, c3].map(Number);
}

/** Word i of a fill of generator (seed, offset): word i mod 4 of philox(counter = offset + ⌊i/4⌋, key = seed). */
function words(seed: number, offset: number, n: number): number[] {
  const key = [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
  const out: number[] = [];
  for (let i = 0; i < n; i += 4) {
    const ctr = offset + i / 4;
    const w = philoxOracle([ctr % 2 ** 32, Math.floor(ctr / 2 ** 32), 0, 0], key);
    out.push(...w);
  }
  return out.slice(0, n);
}

const u24 = (w: number): number => Math.floor(w / 256) / 2 ** 24;

function storeAs(dtype: DType, v: number): number {
  return dtype === 'f32' ? Math.fround(v) : v;
}

function uniformOracle(seed: number, offset: number, n: number, low: number, high: number, dtype: DType = 'f32'): number[] {
  return words(seed, offset, n).map((w) => storeAs(dtype, low + (high - low) * u24(w)));
}

function normalOracle(seed: number, offset: number, n: number, mean: number, std: number, dtype: DType = 'f32'): number[] {
  const w = words(seed, offset, n + (n % 2));
  const out: number[] = [];
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u24(w[i]!)));
    const t = 2 * Math.PI * u24(w[i + 1]!);
    out.push(storeAs(dtype, mean + std * r * Math.cos(t)));
    out.push(storeAs(dtype, mean + std * r * Math.sin(t)));
  }
  return out.slice(0, n);
}

/** low + ⌊w·(high − low)/2³²⌋, exactly (BigInt). */
function randintOracle(seed: number, offset: number, n: number, low: number, high: number): number[] {
  return words(seed, offset, n).map((w) => low + Number((BigInt(w) * BigInt(high - low)) >> 32n));
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const smallShape = fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 0, maxLength: 3 });
const seedArb = fc.oneof(fc.nat(1000), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const size = (s: readonly number[]): number => s.reduce((p, d) => p * d, 1);


// ---- Philox block function -----------------------------------------------------------------

describe('philox4x32', () => {
  const run = (ctr: number[], key: number[]): number[] => {
    const out = new Uint32Array(4);
    philox4x32(ctr[0]!, ctr[1]!, ctr[2]!, ctr[3]!, key[0]!, key[1]!, out);
    return Array.from(out);
  };

  // Known-answer vectors of philox4x32_10 from Random123's kat_vectors file (D. E. Shaw Research).
  it('matches the Random123 known-answer vectors', () => {
    expect(run([0, 0, 0, 0], [0, 0])).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    expect(run([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff])).toEqual([
      0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd,
    ]);
    expect(run([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])).toEqual([
      0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1,
    ]);
  });

  it('the BigInt oracle agrees with the known-answer vectors (so it can judge random inputs)', () => {
    expect(philoxOracle([0, 0, 0, 0], [0, 0])).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    expect(philoxOracle([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])).toEqual([
      0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1,
    ]);
  });

  it('matches an independent BigInt implementation on random counters and keys', () => {
    fc.assert(
      fc.property(fc.tuple(u32, u32, u32, u32), fc.tuple(u32, u32), (ctr, key) => {
        expect(run(ctr, key)).toEqual(philoxOracle(ctr, key));
      }),
      { numRuns: 300 },
    );
  });
});

// ---- tensors --------------------------------------------------------------------------------

describeBackends('random tensors', (backend) => {
  it('rand follows the documented Philox mapping exactly (u = (w >>> 8)·2⁻²⁴), for f32 and f64', async () => {
    await fc.assert(
      fc.asyncProperty(seedArb, fc.nat(1000), smallShape, fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['f32', 'f64'])), async (seed, offset, shape, dtype) => {
        await scoped(async (step) => {
          const t = step(() => {
            const g = new Generator(seed);
            g.setState({ seed, offset });
            return rand(shape, { backend, dtype, generator: g });
          });
          expect(t.shape).toEqual(shape);
          expect(t.dtype).toBe(dtype);
          expect(await values(t)).toEqual(uniformOracle(seed, offset, size(shape), 0, 1, dtype));
        });
      }),
      FC,
    );
  });

  it('uniform(low, high) is low + (high − low)·u', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(10_000),
        fc.nat(100),
        smallShape,
        fc.double({ min: -100, max: 100, noNaN: true }),
        fc.double({ min: 0.001, max: 100, noNaN: true }),
        async (seed, offset, shape, low, span) => {
          await scoped(async (step) => {
            const t = step(() => {
              const g = new Generator(seed);
              g.setState({ seed, offset });
              return uniform(shape, low, low + span, { backend, generator: g });
            });
            // exact where the backend computes in f64 (ref, cpu); a backend without f64 computes
            // low + span·u in f32 (the contract: float draws agree within f32 rounding)
            const exact = floatDtype(backend) === 'f64';
            expectClose(await values(t), uniformOracle(seed, offset, size(shape), low, low + span), exact ? { rtol: 0, atol: 0 } : { rtol: 2 ** -22, atol: 2 ** -22 * Math.abs(low) });
          });
        },
      ),
      FC,
    );
  });

  it('randn / normal follow Box–Muller on word pairs of one counter', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(10_000),
        fc.nat(100),
        smallShape,
        fc.double({ min: -10, max: 10, noNaN: true }),
        fc.double({ min: 0, max: 10, noNaN: true }),
        async (seed, offset, shape, mean, std) => {
          await scoped(async (step) => {
            const n = size(shape);
            const g = new Generator(seed);
            g.setState({ seed, offset });
            const z = step(() => randn(shape, { backend, generator: g }));
            // transcendental functions may differ in the last bit between implementations
            expectClose(await values(z), normalOracle(seed, offset, n, 0, 1), { rtol: 1e-6, atol: 1e-6 }, 'randn');
            g.setState({ seed, offset });
            const x = step(() => normal(shape, mean, std, { backend, generator: g }));
            expectClose(await values(x), normalOracle(seed, offset, n, mean, std), { rtol: 1e-6, atol: 1e-5 }, 'normal');
          });
        },
      ),
      FC,
    );
  });

  it('randint(low, high) is low + ⌊w·(high − low)/2³²⌋, i32, on random ranges', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(10_000),
        fc.nat(100),
        smallShape,
        fc.integer({ min: -1000, max: 1000 }),
        fc.oneof(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 2 ** 31 })),
        async (seed, offset, shape, low, span) => {
          await scoped(async (step) => {
            const t = step(() => {
              const g = new Generator(seed);
              g.setState({ seed, offset });
              return randint(low, low + span, shape, { backend, generator: g });
            });
            expect(t.dtype).toBe('i32');
            const v = await values(t);
            expect(v).toEqual(randintOracle(seed, offset, size(shape), low, low + span));
            for (const x of v) expect(x >= low && x < low + span).toBe(true);
          });
        },
      ),
      FC,
    );
  });

  it('randint is exact where w·(high − low) exceeds 2⁵³ (a word found by search: seed 0, counter 329670)', async () => {
    // w = 3221225441 = word 0 of philox(counter 329670, key 0). With high − low = 2³⁰ + 1 the
    // product needs 62 bits; ⌊w·span/2³²⌋ is 805306360, but a double product rounds up to 805306361.
    await scoped(async (step) => {
      const span = 2 ** 30 + 1;
      const g = new Generator(0);
      g.setState({ seed: 0, offset: 329670 });
      const t = step(() => randint(0, span, [4], { backend, generator: g }));
      expect(words(0, 329670, 1)[0]).toBe(3221225441);
      expect(await values(t)).toEqual(randintOracle(0, 329670, 4, 0, span));
    });
  });

  it('the high key word is used: seeds that differ only above 2³² give different streams', async () => {
    await scoped(async (step) => {
      const [a, b] = step(() => [
        rand([8], { backend, generator: new Generator(5) }),
        rand([8], { backend, generator: new Generator(5 + 2 ** 32) }),
      ]);
      expect(await values(a)).not.toEqual(await values(b));
      expect(await values(b)).toEqual(uniformOracle(5 + 2 ** 32, 0, 8, 0, 1));
    });
  });

  it('manualSeed makes the default generator reproduce', async () => {
    await scoped(async (step) => {
      manualSeed(1234);
      const a1 = await values(step(() => rand([7], { backend })));
      const b1 = await values(step(() => randn([3, 2], { backend })));
      const c1 = await values(step(() => randint(0, 10, [5], { backend })));
      manualSeed(1234);
      expect(await values(step(() => rand([7], { backend })))).toEqual(a1);
      expect(await values(step(() => randn([3, 2], { backend })))).toEqual(b1);
      expect(await values(step(() => randint(0, 10, [5], { backend })))).toEqual(c1);
      expect(defaultGenerator.seed).toBe(1234);
      expect(defaultGenerator.getState()).toEqual({ seed: 1234, offset: 2 + 2 + 2 });
      manualSeed(1235);
      expect(await values(step(() => rand([7], { backend })))).not.toEqual(a1);
    });
  });

  it('a Generator instance is independent of the default generator', async () => {
    await scoped(async (step) => {
      manualSeed(7);
      const g1 = new Generator(99);
      const a = await values(step(() => rand([6], { backend, generator: g1 })));
      const before = defaultGenerator.getState();
      const g2 = new Generator(99);
      step(() => {
        rand([3], { backend }); // advances only the default generator
      });
      expect(await values(step(() => rand([6], { backend, generator: g2 })))).toEqual(a);
      expect(defaultGenerator.getState()).toEqual({ seed: 7, offset: before.offset + 1 });
      expect(g1.getState()).toEqual({ seed: 99, offset: 2 });
      // manualSeed on the instance restarts it
      g1.manualSeed(99);
      expect(await values(step(() => rand([6], { backend, generator: g1 })))).toEqual(a);
    });
  });

  it('getState/setState resume the stream exactly: n then m draws equal n, save, m after restoring', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(1000), smallShape, smallShape, fc.constantFrom('rand', 'randn', 'randint'), async (seed, s1, s2, kind) => {
        await scoped(async (step) => {
          const draw = (g: Generator, shape: number[]): Tensor =>
            step(() =>
              kind === 'rand'
                ? rand(shape, { backend, generator: g })
                : kind === 'randn'
                  ? randn(shape, { backend, generator: g })
                  : randint(-3, 17, shape, { backend, generator: g }),
            );
          const g = new Generator(seed);
          const first = await values(draw(g, s1));
          const saved = g.getState();
          const second = await values(draw(g, s2));
          // fresh generator: the same first draw, then resume from the saved state
          const h = new Generator(seed);
          expect(await values(draw(h, s1))).toEqual(first);
          const other = new Generator(seed + 1);
          step(() => {
            rand([9], { backend, generator: other });
          });
          other.setState(saved);
          expect(await values(draw(other, s2))).toEqual(second);
          // getState returns a snapshot, not a live view
          expect(saved).toEqual({ seed, offset: Math.ceil(size(s1) / 4) });
        });
      }),
      FC,
    );
  });

  it('each draw advances the offset by ⌈n/4⌉ (0 for an empty tensor)', () => {
    fc.assert(
      fc.property(fc.array(smallShape, { minLength: 1, maxLength: 5 }), (shapes) => {
        tidy(() => {
          const g = new Generator(3);
          let expected = 0;
          for (const [i, s] of shapes.entries()) {
            if (i % 3 === 0) rand(s, { backend, generator: g });
            else if (i % 3 === 1) randn(s, { backend, generator: g });
            else randint(0, 5, s, { backend, generator: g });
            expected += Math.ceil(size(s) / 4);
            expect(g.getState().offset).toBe(expected);
          }
        });
      }),
      FC,
    );
  });

  it('consecutive draws continue the stream: two draws of n = 4k equal one draw of 2n', async () => {
    await scoped(async (step) => {
      const a = new Generator(11);
      const x = [...(await values(step(() => rand([8], { backend, generator: a })))), ...(await values(step(() => rand([12], { backend, generator: a }))))];
      const y = await values(step(() => rand([20], { backend, generator: new Generator(11) })));
      expect(x).toEqual(y);
    });
  });

  it('rand is in [0, 1) with mean ≈ 1/2 and variance ≈ 1/12', async () => {
    await scoped(async (step) => {
      const n = 40_000;
      const v = await values(step(() => rand([n], { backend, generator: new Generator(2024) })));
      let s = 0;
      let s2 = 0;
      for (const x of v) {
        expect(x >= 0 && x < 1).toBe(true);
        s += x;
        s2 += x * x;
      }
      const mean = s / n;
      const variance = s2 / n - mean * mean;
      // 6 standard errors: sd(mean) = √(1/12/n), sd(var) ≈ √(1/180/n)
      expect(Math.abs(mean - 0.5)).toBeLessThan(6 * Math.sqrt(1 / 12 / n));
      expect(Math.abs(variance - 1 / 12)).toBeLessThan(6 * Math.sqrt(1 / 180 / n));
    });
  });

  it('randn has mean ≈ 0, variance ≈ 1 and symmetric tails', async () => {
    await scoped(async (step) => {
      const n = 40_000;
      const v = await values(step(() => randn([n], { backend, generator: new Generator(77) })));
      let s = 0;
      let s2 = 0;
      let beyond2 = 0;
      for (const x of v) {
        expect(Number.isFinite(x)).toBe(true);
        s += x;
        s2 += x * x;
        if (Math.abs(x) > 2) beyond2++;
      }
      const mean = s / n;
      const variance = s2 / n - mean * mean;
      expect(Math.abs(mean)).toBeLessThan(6 / Math.sqrt(n));
      expect(Math.abs(variance - 1)).toBeLessThan(6 * Math.sqrt(2 / n));
      // P(|Z| > 2) = 0.0455
      expect(Math.abs(beyond2 / n - 0.0455)).toBeLessThan(6 * Math.sqrt((0.0455 * 0.9545) / n));
    });
  });

  it('normal(mean, std) and uniform(low, high) have the requested moments', async () => {
    await scoped(async (step) => {
      const n = 20_000;
      const g = new Generator(5);
      const x = await values(step(() => normal([n], 3, 0.5, { backend, generator: g })));
      const u = await values(step(() => uniform([n], -2, 6, { backend, generator: g })));
      const m = (a: number[]): number => a.reduce((p, q) => p + q, 0) / a.length;
      const v = (a: number[]): number => m(a.map((q) => q * q)) - m(a) ** 2;
      expect(Math.abs(m(x) - 3)).toBeLessThan((6 * 0.5) / Math.sqrt(n));
      expect(Math.abs(v(x) - 0.25)).toBeLessThan(6 * 0.25 * Math.sqrt(2 / n));
      for (const q of u) expect(q >= -2 && q < 6).toBe(true);
      expect(Math.abs(m(u) - 2)).toBeLessThan(6 * Math.sqrt(64 / 12 / n));
      expect(Math.abs(v(u) - 64 / 12)).toBeLessThan(6 * 64 * Math.sqrt(1 / 180 / n));
    });
  });

  it('randint stays in [low, high) and is roughly uniform (chi-square)', async () => {
    await scoped(async (step) => {
      const n = 30_000;
      const k = 12;
      const v = await values(step(() => randint(-5, -5 + k, [n], { backend, generator: new Generator(31337) })));
      const counts = new Array<number>(k).fill(0);
      for (const x of v) {
        expect(Number.isInteger(x) && x >= -5 && x < -5 + k).toBe(true);
        counts[x + 5]!++;
      }
      const e = n / k;
      const chi2 = counts.reduce((p, c) => p + (c - e) ** 2 / e, 0);
      // 11 degrees of freedom: P(χ² > 45) ≈ 5e-6
      expect(chi2).toBeLessThan(45);
    });
  });

  it('rejects bad seeds, states and non-floating dtypes for float distributions', () => {
    expect(() => new Generator(-1)).toThrow(/seed/);
    expect(() => manualSeed(1.5)).toThrow(/seed/);
    expect(() => new Generator(0).setState({ seed: 0, offset: -1 })).toThrow(/offset/);
    expect(() => rand([2], { backend, dtype: 'i32' })).toThrow(/^rand: /);
    expect(() => randn([2], { backend, dtype: 'bool' })).toThrow(/^randn: /);
    expect(() => randint(3, 3, [2], { backend })).toThrow(/^randint: /);
  });
});
