/**
 * Reductions against plain-loop oracles over random shapes and axis sets: one axis, several
 * non-adjacent axes, negative axes, all axes when omitted, keepdim on and off.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  argmax,
  argmin,
  logsumexp,
  max,
  mean,
  min,
  norm,
  std,
  sum,
  tensor,
  tidy,
  variance,
  type DType,
  type Tensor,
} from '../src/index.js';
import { describeBackends, expectClose, FC, floatDtype, indices, shapeArb, size, storedDtypes, strides, tol, values, stored, tidyRead } from './harness.js';

type Axis = number | number[] | undefined;

// ---- oracle helpers ---------------------------------------------------------------------


interface Case {
  shape: number[];
  /** The axis argument as passed: a number, a list (maybe negative, unsorted), or omitted. */
  axis: Axis;
  /** The reduced axes, non-negative. */
  axes: number[];
  keepdim: boolean;
  v: number[];
}

/**
 * Random shapes (rank ≤ 4, dims ≤ 4) with a random axis set and keepdim, and values. With
 * `nonEmpty`, reduced axes get size ≥ 1 (other axes may still be 0).
 */
function caseArb(valArb: fc.Arbitrary<number>, nonEmpty = false): fc.Arbitrary<Case> {
  return fc
    .tuple(
      shapeArb(4, 4),
      fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      fc.boolean(),
      fc.boolean(),
      fc.boolean(),
      fc.boolean(),
    )
    .chain(([shape0, pick, negative, omit, keepdim, reverse, asNumber]) => {
      const rank = shape0.length;
      let sel = [...Array(rank).keys()].filter((a) => pick[a]);
      let axis: Axis;
      if (omit || sel.length === 0) {
        axis = undefined;
        sel = [...Array(rank).keys()];
      } else {
        const list = sel.map((a) => (negative[a] ? a - rank : a));
        if (reverse) list.reverse();
        axis = list.length === 1 && asNumber ? list[0]! : list;
      }
      const shape = nonEmpty ? shape0.map((d, i) => (sel.includes(i) ? Math.max(d, 1) : d)) : shape0;
      return fc.record({
        shape: fc.constant(shape),
        axis: fc.constant(axis),
        axes: fc.constant(sel),
        keepdim: fc.constant(keepdim),
        v: fc.array(valArb, { minLength: size(shape), maxLength: size(shape) }),
      });
    });
}

function outShape(shape: number[], axes: number[], keepdim: boolean): number[] {
  return keepdim ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

/** The values of each output element's group (row-major over the reduced axes), in output order. */
function groups(shape: number[], axes: number[], v: number[]): number[][] {
  const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const ks = strides(kept);
  const out: number[][] = Array.from({ length: size(kept) }, () => []);
  indices(shape).forEach((idx, i) => {
    let o = 0;
    idx.forEach((j, d) => {
      if (!axes.includes(d)) o += j * ks[d]!;
    });
    out[o]!.push(v[i]!);
  });
  return out;
}

/** |a − e| ≤ atol + rtol·scale elementwise (NaN matches NaN, ±∞ exactly). */
function expectScaled(actual: ArrayLike<number>, expected: number[], scales: number[], { rtol, atol }: { rtol: number; atol: number }, what: string): void {
  expect(actual.length, `${what} length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e)) {
      if (!Number.isNaN(a)) expect.fail(`${what}[${i}]: got ${a}, expected NaN`);
      continue;
    }
    if (!Number.isFinite(e)) {
      if (a !== e) expect.fail(`${what}[${i}]: got ${a}, expected ${e}`);
      continue;
    }
    if (!(Math.abs(a - e) <= atol + rtol * scales[i]!)) expect.fail(`${what}[${i}]: got ${a}, expected ${e} (scale ${scales[i]})`);
  }
}


/** Exact comparison (NaN equals NaN). */
function expectExact(actual: ArrayLike<number>, expected: number[], what = ''): void {
  expect(actual.length, `${what} length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a !== e) expect.fail(`${what}[${i}]: got ${a}, expected ${e}`);
  }
}

const total = (g: number[]): number => g.reduce((s, x) => s + x, 0);
const absTotal = (g: number[]): number => g.reduce((s, x) => s + Math.abs(x), 0);
const nanExtreme = (g: number[], isMax: boolean): number => {
  if (g.some(Number.isNaN)) return NaN;
  return isMax ? Math.max(...g) : Math.min(...g);
};
/** Index of the first largest (smallest) value; a NaN counts as the extreme, the first one wins. */
const firstArg = (g: number[], isMax: boolean): number => {
  const nan = g.findIndex(Number.isNaN);
  if (nan >= 0) return nan;
  const best = isMax ? Math.max(...g) : Math.min(...g);
  return g.indexOf(best);
};
function lseOracle(g: number[]): number {
  if (g.some(Number.isNaN)) return NaN;
  const m = Math.max(...g);
  if (m === -Infinity || m === Infinity) return m;
  return m + Math.log(g.reduce((s, x) => s + Math.exp(x - m), 0));
}
function varOracle(g: number[], correction: number): number {
  const n = g.length;
  const mu = total(g) / n;
  return g.reduce((s, x) => s + (x - mu) ** 2, 0) / Math.max(0, n - correction);
}
function normOracle(g: number[], p: number): number {
  if (p === Infinity) return Math.max(...g.map(Math.abs));
  return g.reduce((s, x) => s + Math.abs(x) ** p, 0) ** (1 / p);
}

// ---- arbitraries ------------------------------------------------------------------------

const num = (min: number, max: number): fc.Arbitrary<number> => fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
const finite = fc.oneof({ weight: 8, arbitrary: num(-10, 10) }, { weight: 1, arbitrary: fc.constantFrom(0, -0, 1, -1) });
const someSpecial = fc.oneof({ weight: 20, arbitrary: finite }, { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity) });
/** Few distinct values, so max/argmax see ties. */
const tieful = fc.integer({ min: -3, max: 3 });

const label = (c: Case, dtype: DType, op: string): string =>
  `${op} ${dtype} [${c.shape}] axis=${JSON.stringify(c.axis)} keepdim=${c.keepdim}`;

// ---- the suite -------------------------------------------------------------------------

describeBackends('reduce', (backend) => {
  // f32 and f64 where both are stored; a backend without f64 (WebGPU) runs the f32 cases, and says the f64 ones are skipped
  const floatArb = fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['f32', 'f64']));
  // the widest float stored, for the checks against published values
  const wide = floatDtype(backend);
  const T = (v: number[], shape: number[], dtype: DType = 'f32'): Tensor => tensor(v, shape, { backend, dtype });

  /** Check shape and that the op on the case reduces each group as `f`. */
  function run(c: Case, dtype: DType, op: (x: Tensor, axis: Axis, keepdim: boolean) => Tensor, what: string): { out: Tensor; gs: number[][] } {
    const x = T(c.v, c.shape, dtype);
    const out = op(x, c.axis, c.keepdim);
    expect([...out.shape], `${what} shape`).toEqual(outShape(c.shape, c.axes, c.keepdim));
    return { out, gs: groups(c.shape, c.axes, c.v.map(stored(dtype))) };
  }

  it('sum matches a plain-loop sum (size-0 groups sum to 0), f32 and f64', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(someSpecial), floatArb, async (c, dtype) => {
        const what = label(c, dtype, 'sum');
        await tidyRead(
          () => {
            const r = run(c, dtype, sum, what);
            expect(r.out.dtype).toBe(dtype);
            return r;
          },
          async ({ out, gs }) => expectScaled(await values(out), gs.map(total).map(stored(dtype)), gs.map(absTotal), tol(dtype), what),
        );
      }),
      FC,
    );
  });

  it('mean matches Σx / n (NaN for an empty group), f32 and f64', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(someSpecial), floatArb, async (c, dtype) => {
        const what = label(c, dtype, 'mean');
        await tidyRead(
          () => {
            const r = run(c, dtype, mean, what);
            expect(r.out.dtype).toBe(dtype);
            return r;
          },
          async ({ out, gs }) =>
            expectScaled(
              await values(out),
              gs.map((g) => total(g) / g.length),
              gs.map((g) => absTotal(g) / g.length),
              tol(dtype),
              what,
            ),
        );
      }),
      FC,
    );
  });

  for (const [name, op, isMax] of [
    ['max', max, true],
    ['min', min, false],
  ] as const) {
    it(`${name} is exact, propagates NaN, works for i32, and throws over a size-0 axis`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.tuple(caseArb(someSpecial), floatArb),
            fc.tuple(caseArb(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })), fc.constant<DType>('i32')),
          ),
          async ([c, dtype]) => {
            const what = label(c, dtype, name);
            if (c.axes.some((a) => c.shape[a] === 0)) {
              tidy(() => {
                const x = T(c.v, c.shape, dtype);
                expect(() => op(x, c.axis, c.keepdim), what).toThrow(new RegExp(name));
              });
              return;
            }
            await tidyRead(
              () => {
                const r = run(c, dtype, op, what);
                expect(r.out.dtype).toBe(dtype);
                return r;
              },
              async ({ out, gs }) => expectExact(await values(out), gs.map((g) => nanExtreme(g, isMax)), what),
            );
          },
        ),
        FC,
      );
    });
  }

  for (const [name, op, isMax] of [
    ['argmax', argmax, true],
    ['argmin', argmin, false],
  ] as const) {
    it(`${name} gives i32 indices along one axis (or of the flattened tensor), the first on ties and NaN`, async () => {
      const withNaN = fc.oneof({ weight: 10, arbitrary: tieful }, { weight: 1, arbitrary: fc.constant(NaN) });
      await fc.assert(
        fc.asyncProperty(
          shapeArb(4, 4, 1),
          fc.option(fc.integer({ min: -4, max: 3 }), { nil: undefined }),
          fc.boolean(),
          fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['f32', 'f64', 'i32', 'bf16'])),
          fc.infiniteStream(withNaN),
          async (shape, axis0, keepdim, dtype, stream) => {
            const rank = shape.length;
            // an axis in range (negative or not), or none
            const axis = axis0 === undefined || rank === 0 ? undefined : axis0 < 0 ? -1 - ((-1 - axis0) % rank) : axis0 % rank;
            const v = [...stream.take(size(shape))].map((x) => (dtype === 'i32' && Number.isNaN(x) ? 0 : x));
            const what = `${name} ${dtype} [${shape}] axis=${axis} keepdim=${keepdim}`;
            const a = axis === undefined ? undefined : axis < 0 ? axis + rank : axis;
            await tidyRead(
              () => {
                const x = T(v, shape, dtype);
                const out = op(x, axis, keepdim);
                expect(out.dtype, what).toBe('i32');
                if (a === undefined) expect([...out.shape], what).toEqual(keepdim ? shape.map(() => 1) : []);
                else expect([...out.shape], what).toEqual(outShape(shape, [a], keepdim));
                return out;
              },
              async (out) => {
                if (a === undefined) expectExact(await values(out), [firstArg(v, isMax)], what);
                else expectExact(await values(out), groups(shape, [a], v).map((g) => firstArg(g, isMax)), what);
              },
            );
          },
        ),
        FC,
      );
    });
  }

  it('logsumexp matches m + log Σ exp(x − m), with ±∞ and NaN, f32 and f64', async () => {
    const vals = fc.oneof({ weight: 10, arbitrary: num(-30, 30) }, { weight: 1, arbitrary: fc.constantFrom(-Infinity, Infinity, NaN) });
    await fc.assert(
      fc.asyncProperty(caseArb(vals, true), floatArb, async (c, dtype) => {
        const what = label(c, dtype, 'logsumexp');
        await tidyRead(
          () => {
            const r = run(c, dtype, logsumexp, what);
            expect(r.out.dtype).toBe(dtype);
            return r;
          },
          async ({ out, gs }) => {
            const scales = gs.map((g) => Math.abs(Math.max(...g)) + Math.log(g.length) + 1);
            expectScaled(await values(out), gs.map(lseOracle), scales, tol(dtype), what);
          },
        );
      }),
      FC,
    );
  });

  it('variance and std match the two-pass formula with correction 1 (default) or 0, f32 and f64', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(finite), floatArb, fc.constantFrom<number | undefined>(undefined, 0, 1), async (c, dtype, correction) => {
        const opts = { keepdim: c.keepdim, ...(correction === undefined ? {} : { correction }) };
        const what = label(c, dtype, `var(correction ${correction})`);
        await tidyRead(
          () => {
            const r = run(c, dtype, (x, axis) => variance(x, axis, opts), what);
            expect(r.out.dtype).toBe(dtype);
            const sd = std(T(c.v, c.shape, dtype), c.axis, opts);
            expect([...sd.shape]).toEqual(outShape(c.shape, c.axes, c.keepdim));
            return { ...r, sd };
          },
          async ({ out, gs, sd }) => {
            const { rtol, atol } = tol(dtype);
            const ev = gs.map((g) => varOracle(g, correction ?? 1));
            // cancellation in x − μ is bounded by the data's magnitude: scale by |var| and a small share of Σx²/n
            const scales = ev.map((e, i) => 4 * Math.abs(e) + (gs[i]!.length ? total(gs[i]!.map((x) => x * x)) / gs[i]!.length : 0) * 1e-3);
            expectScaled(await values(out), ev, scales, { rtol, atol }, what);

            const got = await values(sd);
            // |√a − √e| ≤ min(√|a − e|, |a − e| / √e)
            ev.forEach((e, i) => {
              const a = got[i]!;
              if (!Number.isFinite(e)) {
                if (Number.isNaN(e) ? !Number.isNaN(a) : a !== Math.sqrt(e)) expect.fail(`std[${i}]: got ${a}, expected ${Math.sqrt(e)}`);
                return;
              }
              const tv = atol + rtol * scales[i]!;
              const bound = e > 0 ? Math.min(Math.sqrt(tv), tv / Math.sqrt(e)) : Math.sqrt(tv);
              if (!(Math.abs(a - Math.sqrt(e)) <= bound)) expect.fail(`std ${what} [${i}]: got ${a}, expected ${Math.sqrt(e)}`);
            });
          },
        );
      }),
      FC,
    );
  });

  it('norm for p = 1, 2, 3 and ∞ matches (Σ|x|^p)^(1/p) and max|x|; empty groups give 0 (∞-norm throws)', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(finite), floatArb, fc.constantFrom(1, 2, 3, Infinity), async (c, dtype, p) => {
        const what = label(c, dtype, `norm(p=${p})`);
        if (p === Infinity && c.axes.some((a) => c.shape[a] === 0)) {
          tidy(() => {
            expect(() => norm(T(c.v, c.shape, dtype), p, c.axis, c.keepdim), what).toThrow();
          });
          return;
        }
        await tidyRead(
          () => {
            const r = run(c, dtype, (x, axis, keepdim) => norm(x, p, axis, keepdim), what);
            expect(r.out.dtype).toBe(dtype);
            return r;
          },
          async ({ out, gs }) => {
            const { rtol, atol } = tol(dtype);
            const e = gs.map((g) => normOracle(g, p));
            expectScaled(await values(out), e, e.map((n) => 2 * n), { rtol, atol }, what);
          },
        );
      }),
      FC,
    );
  });

  it('norm defaults to p = 2 over all elements', async () => {
    await tidyRead(
      () => {
        const x = T([3, -4, 0, 12], [2, 2]);
        const n = norm(x);
        expect(n.shape).toEqual([]);
        return n;
      },
      async (n) => expectClose(await values(n), [13]),
    );
  });

  for (const dtype of ['i32', 'bool'] as const) {
    it(`${dtype} sums to i32 exactly${dtype === 'i32' ? '; i32 mean gives f32' : ''}`, async () => {
      const vals = dtype === 'i32' ? fc.integer({ min: -1000, max: 1000 }) : fc.constantFrom(0, 1);
      await fc.assert(
        fc.asyncProperty(caseArb(vals), async (c) => {
          const what = label(c, dtype, 'sum');
          await tidyRead(
            () => {
              const r = run(c, dtype, sum, what);
              expect(r.out.dtype, what).toBe('i32');
              if (dtype !== 'i32') return { ...r, m: null };
              const m = mean(T(c.v, c.shape, 'i32'), c.axis, c.keepdim);
              expect(m.dtype).toBe('f32');
              return { ...r, m };
            },
            async ({ out, gs, m }) => {
              expectExact(await values(out), gs.map(total), what);
              if (m)
                expectScaled(
                  await values(m),
                  gs.map((g) => total(g) / g.length),
                  gs.map((g) => absTotal(g) / g.length),
                  tol('f32'),
                  `mean ${what}`,
                );
            },
          );
        }),
        FC,
      );
    });
  }

  describe('edge cases', () => {
    it('sum over a size-0 axis is 0 (float, i32 and bool), keeping the other axes', async () => {
      await tidyRead(
        () => {
          const x = T([], [2, 0, 3]);
          const s = sum(x, 1);
          expect(s.shape).toEqual([2, 3]);
          expect(sum(x, 1, true).shape).toEqual([2, 1, 3]);
          expect(sum(x, [0, 2]).shape).toEqual([0]);
          const b = sum(T([], [0], 'bool'));
          expect(b.dtype).toBe('i32');
          return { s, all: sum(x), b, i: sum(T([], [0, 2], 'i32'), 0) };
        },
        async ({ s, all, b, i }) => {
          expectExact(await values(s), [0, 0, 0, 0, 0, 0]);
          expectExact(await values(all), [0]);
          expectExact(await values(b), [0]);
          expectExact(await values(i), [0, 0]);
        },
      );
    });

    it('sum of a 0-d bool tensor (no axes left to reduce) is i32 too', async () => {
      await tidyRead(
        () => {
          const s = sum(T([1], [], 'bool'));
          expect(s.dtype).toBe('i32');
          expect(sum(T([1, 0], [2], 'bool'), []).dtype).toBe('i32');
          return s;
        },
        async (s) => expectExact(await values(s), [1]),
      );
    });

    it('max, min, argmax and argmin over a size-0 axis throw; over a non-empty axis the result is empty', () => {
      tidy(() => {
        const x = T([], [0, 3]);
        for (const op of [max, min]) {
          expect(() => op(x, 0)).toThrow();
          expect(() => op(x)).toThrow();
          const r = op(x, 1);
          expect(r.shape).toEqual([0]);
        }
        for (const op of [argmax, argmin]) {
          expect(() => op(x, 0)).toThrow();
          expect(() => op(x)).toThrow();
        }
      });
    });

    it('argmax and argmin over a non-empty axis of a tensor with another size-0 axis give an empty i32 result (as torch.argmax)', () => {
      tidy(() => {
        const x = T([], [0, 3]);
        for (const op of [argmax, argmin]) {
          const r = op(x, 1);
          expect(r.dtype).toBe('i32');
          expect(r.shape).toEqual([0]);
        }
      });
    });

    it('argmax returns the first index on ties, as i32', async () => {
      await tidyRead(
        () => {
          const x = T([3, 1, 3, 3, 0, 0], [2, 3]);
          const a = argmax(x);
          expect(a.dtype).toBe('i32');
          expect(argmax(x, -1, true).shape).toEqual([2, 1]);
          return [a, argmax(x, 1), argmin(x, 1), argmax(x, 0), argmin(x)];
        },
        async ([a, amax1, amin1, amax0, amin]) => {
          expectExact(await values(a!), [0]);
          expectExact(await values(amax1!), [0, 0]);
          expectExact(await values(amin1!), [1, 1]);
          expectExact(await values(amax0!), [0, 0, 0]);
          expectExact(await values(amin!), [4]);
        },
      );
    });

    it('NaN propagates in max and min and wins argmax and argmin (first NaN)', async () => {
      await tidyRead(
        () => {
          const x = T([1, NaN, 3, 4, 5, -1], [2, 3]);
          return [max(x), max(x, 1), min(x, 0), argmax(x), argmin(x, 1), argmax(T([2, NaN, 7, NaN], [4]))];
        },
        async ([mx, mx1, mn0, amax, amin1, amax2]) => {
          expectExact(await values(mx!), [NaN]);
          expectExact(await values(mx1!), [NaN, 5]);
          expectExact(await values(mn0!), [1, NaN, -1]);
          expectExact(await values(amax!), [1]);
          expectExact(await values(amin1!), [1, 2]);
          expectExact(await values(amax2!), [1]);
        },
      );
    });

    it('mean of i32 gives f32 true averages', async () => {
      await tidyRead(
        () => {
          const m = mean(T([1, 2, 4, 7], [2, 2], 'i32'), 1);
          expect(m.dtype).toBe('f32');
          expect(mean(T([1, 0, 1], [3], 'bool')).dtype).toBe('f32');
          return m;
        },
        async (m) => expectExact(await values(m), [1.5, 5.5]),
      );
    });

    it('logsumexp of all −∞ is −∞, and it is stable for large magnitudes (±1000)', async () => {
      await tidyRead(
        () => [
          logsumexp(T([-Infinity, -Infinity, -Infinity], [3])),
          logsumexp(T([-Infinity, -Infinity, 0, 0], [2, 2]), 1),
          logsumexp(T([1000, 1000, -1000, -1000, 1000, 0], [3, 2]), 1),
          logsumexp(T([1, Infinity], [2])),
          logsumexp(T([1, NaN], [2])),
          logsumexp(T([1000, 999, 998], [3], wide)),
        ],
        async ([ninf, rows, bigT, inf, nan, wideT]) => {
          expectExact(await values(ninf!), [-Infinity]);
          expectExact(await values(rows!), [-Infinity, Math.fround(Math.LN2)]);
          const big = await values(bigT!);
          expectClose(big, [1000 + Math.LN2, -1000 + Math.LN2, 1000], tol('f32'));
          expectExact(await values(inf!), [Infinity]);
          expectExact(await values(nan!), [NaN]);
          expectClose(await values(wideT!), [1000 + Math.log(1 + Math.exp(-1) + Math.exp(-2))], tol(wide));
        },
      );
    });

    it('logsumexp over a size-0 axis is −∞ (the log of an empty sum, as torch.logsumexp)', async () => {
      await tidyRead(
        () => {
          const r = logsumexp(T([], [2, 0]), 1);
          expect(r.shape).toEqual([2]);
          return r;
        },
        async (r) => expectExact(await values(r), [-Infinity, -Infinity]),
      );
    });

    it('variance of one element is NaN with correction 1 and 0 with correction 0; var, std and norm refuse integers', async () => {
      await tidyRead(
        () => {
          const one = T([5], [1]);
          // published example: the sample variance of 2, 4, 4, 4, 5, 5, 7, 9 is 32/7, the population variance 4
          const x = T([2, 4, 4, 4, 5, 5, 7, 9], [8], wide);
          const i = T([1, 2], [2], 'i32');
          expect(() => variance(i)).toThrow(/var/);
          expect(() => std(i)).toThrow(/^std: /);
          expect(() => norm(i)).toThrow(/norm/);
          expect(() => norm(T([1], [1]), 0)).toThrow(/norm/);
          return [variance(one), variance(one, 0, { correction: 0 }), variance(x), std(x, 0, { correction: 0 })];
        },
        async ([v1, v0, vx, sx]) => {
          expectExact(await values(v1!), [NaN]);
          expectExact(await values(v0!), [0]);
          expectClose(await values(vx!), [32 / 7], tol(wide));
          expectClose(await values(sx!), [2], tol(wide));
        },
      );
    });

    it('axis errors: out of range and repeated axes are refused', () => {
      tidy(() => {
        const x = T([1, 2, 3, 4, 5, 6], [2, 3]);
        expect(() => sum(x, 2)).toThrow(/sum/);
        expect(() => sum(x, -3)).toThrow(/sum/);
        expect(() => sum(x, [1, -1])).toThrow(/sum/);
        expect(() => argmax(x, 2)).toThrow(/argmax/);
      });
    });
  });

  it('method aliases call the same reductions', async () => {
    const same = async (a: Tensor, b: Tensor, what: string): Promise<void> => {
      expect(a.dtype, what).toBe(b.dtype);
      expect([...a.shape], what).toEqual([...b.shape]);
      expectExact(await values(a), await values(b), what);
    };
    await tidyRead(
      (): [Tensor, Tensor, string][] => {
        const x = T([1.5, -2, 0.25, 3, 0, -0.75, 4, 2], [2, 2, 2]);
        return [
          [x.sum([0, 2]), sum(x, [0, 2]), 'sum'],
          [x.mean(1, true), mean(x, 1, true), 'mean'],
          [x.max(-1), max(x, -1), 'max'],
          [x.min(), min(x), 'min'],
          [x.argmax(1), argmax(x, 1), 'argmax'],
          [x.argmin(null, true), argmin(x, null, true), 'argmin'],
          [x.logsumexp([0, 2]), logsumexp(x, [0, 2]), 'logsumexp'],
          [x.var(0, { correction: 0 }), variance(x, 0, { correction: 0 }), 'var'],
          [x.std(), std(x), 'std'],
          [x.norm(3, [1, 2], true), norm(x, 3, [1, 2], true), 'norm'],
        ];
      },
      async (pairs) => {
        for (const [a, b, what] of pairs) await same(a, b, what);
      },
    );
  });
});
