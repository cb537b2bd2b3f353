/**
 * Gradient checks: every differentiable op's backward against central finite differences in
 * f64, on random small shapes (≤ ~30 elements per input) and random values, on every backend.
 *
 * The oracle is numerical: for a loss L = Σ out·w with a random upstream weight w, each
 * input's `.grad` must match (L(x + h·eᵢ) − L(x − h·eᵢ)) / 2h. Values are drawn away from the
 * kinks of piecewise ops (relu and abs at 0, ties of max/min/maximum/minimum, clamp bounds), so
 * the finite difference never straddles one.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  abs,
  add,
  addLayerNorm,
  cast,
  ceil,
  chunk,
  clamp,
  clone,
  concat,
  cos,
  crossEntropy,
  div,
  dropout,
  embedding,
  erf,
  exp,
  expand,
  flatten,
  floor,
  gather,
  gelu,
  indexSelect,
  layerNorm,
  linear,
  linearCrossEntropy,
  log,
  logSoftmax,
  logsumexp,
  manualSeed,
  maskedFill,
  matmul,
  max,
  maximum,
  mean,
  min,
  minimum,
  mul,
  narrow,
  neg,
  noGrad,
  norm,
  permute,
  pow,
  relu,
  reshape,
  rmsNorm,
  round,
  rsqrt,
  scaledDotProductAttention,
  packedAttention,
  Generator,
  scatterAdd,
  sigmoid,
  sign,
  silu,
  sin,
  slice,
  softmax,
  split,
  sqrt,
  squeeze,
  stack,
  std,
  sub,
  sum,
  tanh,
  tensor,
  tidy,
  transpose,
  tril,
  triu,
  unsqueeze,
  variance,
  where,
  type Tensor,
} from '../src/index.js';
import { broadcastPairArb, describeBackends, FC, shapeArb, size, rng } from './harness.js';

// ---- the helper --------------------------------------------------------------------------

/** One input of a gradient check: f64 values and a shape. */
interface GradInput {
  data: readonly number[];
  shape: readonly number[];
}

interface GradCheckOptions {
  backend: string;
  /** Seeds the random upstream weight w. */
  seed: number;
  /** Finite-difference step (relative to max(1, |xᵢ|)). */
  h?: number;
  rtol?: number;
  atol?: number;
  /** Run before every evaluation of fn (e.g. re-seed the generator so dropout draws one mask). */
  before?: () => void;
  what?: string;
}


const asList = (r: Tensor | Tensor[]): Tensor[] => (Array.isArray(r) ? r : [r]);

/**
 * Check the gradients `fn` gives its inputs against central finite differences of
 * L = Σₖ Σ outₖ·wₖ, with random weights wₖ of each output's shape.
 *
 * Reads are asynchronous (a backend may have no synchronous read) and `tidy` is synchronous, so
 * every evaluation runs its forward (and backward) in a tidy that returns the tensors to read;
 * they are read outside it and then disposed.
 */
async function gradCheck(fn: (...inputs: Tensor[]) => Tensor | Tensor[], inputs: readonly GradInput[], opts: GradCheckOptions): Promise<void> {
  const { backend } = opts;
  const h = opts.h ?? 1e-6;
  const rtol = opts.rtol ?? 1e-6;
  const atol = opts.atol ?? 1e-6;
  const what = opts.what ?? 'gradCheck';
  const random = rng(opts.seed);
  const f64 = (data: ArrayLike<number>, shape: readonly number[], requiresGrad = false): Tensor =>
    tensor(Float64Array.from(data), shape, { backend, dtype: 'f64', requiresGrad });

  // analytic: backward of L through the library; the leaves (and their grads) outlive the tidy
  const { leaves, ws } = tidy(() => {
    const leaves = inputs.map((x) => f64(x.data, x.shape, true));
    opts.before?.();
    const outs = asList(fn(...leaves));
    const ws = outs.map((o) => Float64Array.from({ length: o.size }, () => random() * 2 - 1));
    let loss: Tensor | null = null;
    outs.forEach((o, k) => {
      expect(o.dtype, `${what}: output ${k} dtype`).toBe('f64');
      const term = sum(mul(o, f64(ws[k]!, o.shape)));
      loss = loss ? add(loss, term) : term;
    });
    expect(loss, `${what}: no outputs`).not.toBeNull();
    const l = loss as unknown as Tensor;
    expect(l.requiresGrad, `${what}: the loss does not require grad`).toBe(true);
    l.backward();
    leaves.forEach((leaf, i) => {
      const g = leaf.grad;
      expect(g, `${what}: input ${i} got no gradient`).not.toBeNull();
      expect(g!.dtype, `${what}: input ${i} grad dtype`).toBe('f64');
      expect([...g!.shape], `${what}: input ${i} grad shape`).toEqual([...leaf.shape]);
    });
    return { leaves, ws };
  });
  let analytic: number[][];
  try {
    analytic = await Promise.all(leaves.map(async (leaf) => Array.from(await leaf.grad!.data())));
  } finally {
    for (const leaf of leaves) leaf.dispose(); // frees its grad too
  }

  // numerical: L at perturbed inputs, in plain JS from the outputs' values
  const lossAt = async (datas: readonly (readonly number[])[]): Promise<number> => {
    const outs = tidy(() =>
      noGrad(() => {
        const xs = datas.map((d, i) => f64(d, inputs[i]!.shape));
        opts.before?.();
        return asList(fn(...xs));
      }),
    );
    try {
      const vs = await Promise.all(outs.map((o) => o.data()));
      let s = 0;
      vs.forEach((v, k) => {
        const w = ws[k]!;
        for (let j = 0; j < v.length; j++) s += v[j]! * w[j]!;
      });
      return s;
    } finally {
      for (const o of outs) o.dispose();
    }
  };
  for (const [i, x] of inputs.entries()) {
    for (let j = 0; j < x.data.length; j++) {
      const step = h * Math.max(1, Math.abs(x.data[j]!));
      const plus = inputs.map((y) => [...y.data]);
      const minus = inputs.map((y) => [...y.data]);
      plus[i]![j]! += step;
      minus[i]![j]! -= step;
      // the actual distance between the perturbed points, after rounding
      const denom = plus[i]![j]! - minus[i]![j]!;
      const lPlus = await lossAt(plus);
      const lMinus = await lossAt(minus);
      const numeric = (lPlus - lMinus) / denom;
      const a = analytic[i]![j]!;
      if (!(Math.abs(a - numeric) <= atol + rtol * Math.abs(numeric)))
        expect.fail(
          `${what}: d/d input${i}[${j}] analytic ${a} vs numeric ${numeric} (input shapes ${inputs.map((y) => `[${y.shape.join(',')}]`).join(' ')})`,
        );
    }
  }
}

// ---- arbitraries -------------------------------------------------------------------------

const MAX_ELEMS = 30;
/** Runs per property: gradient checks do 2 forwards per input element, so fewer than FC. */
const RUNS = Math.max(4, Math.round(FC.numRuns / 2));

const smallShape = (maxRank = 4, maxDim = 4, minDim = 0): fc.Arbitrary<number[]> =>
  shapeArb(maxRank, maxDim, minDim).filter((s) => size(s) <= MAX_ELEMS);
const nonScalarShape = (maxRank = 4, maxDim = 4, minDim = 0): fc.Arbitrary<number[]> =>
  smallShape(maxRank, maxDim, minDim).filter((s) => s.length >= 1);

const real = (r = 3): fc.Arbitrary<number> => fc.double({ min: -r, max: r, noNaN: true, noDefaultInfinity: true });
const positive = (lo: number, hi: number): fc.Arbitrary<number> => fc.double({ min: lo, max: hi, noNaN: true, noDefaultInfinity: true });
const awayFromZero = (lo: number, hi: number): fc.Arbitrary<number> =>
  fc.tuple(positive(lo, hi), fc.boolean()).map(([m, s]) => (s ? -m : m));
/** k + offset + noise: two such grids with offsets 0.25 and 0.75 never come within 0.3 of each other. */
const grid = (offset: number): fc.Arbitrary<number> =>
  fc.tuple(fc.integer({ min: -3, max: 3 }), fc.double({ min: -0.1, max: 0.1, noNaN: true })).map(([k, e]) => k + offset + e);

const valuesFor = <T = number>(shape: readonly number[], v: fc.Arbitrary<T> = real() as unknown as fc.Arbitrary<T>): fc.Arbitrary<T[]> =>
  fc.array(v, { minLength: size(shape), maxLength: size(shape) });
const inputOf = (shape: readonly number[], v: fc.Arbitrary<number> = real()): fc.Arbitrary<GradInput> =>
  valuesFor(shape, v).map((data) => ({ data, shape }));
const inputArb = (shapes: fc.Arbitrary<number[]> = smallShape(), v: fc.Arbitrary<number> = real()): fc.Arbitrary<GradInput> =>
  shapes.chain((s) => inputOf(s, v));

/** Values 0.4 apart at least (no ties), in the same order as `data`. */
function distinct(data: readonly number[]): number[] {
  const n = data.length;
  const order = data.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out = new Array<number>(n);
  order.forEach(([v, i], r) => (out[i] = (r - n / 2) * 0.5 + (v - Math.floor(v)) * 0.1));
  return out;
}

/** Magnitudes 0.4 apart at least and ≥ 0.5, random signs (for ∞-norm: no ties of |x|). */
function distinctMagnitudes(data: readonly number[]): number[] {
  const order = data.map((v, i) => [Math.abs(v), i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out = new Array<number>(data.length);
  order.forEach(([m, i], r) => (out[i] = (data[i]! < 0 ? -1 : 1) * (0.5 + r * 0.5 + (m - Math.floor(m)) * 0.1)));
  return out;
}

/** A shape with a random axis selection for reductions: undefined (all), one axis, or a list. */
function reduceCase(minDim = 0): fc.Arbitrary<{ shape: number[]; axis: number | number[] | undefined; keepdim: boolean }> {
  return smallShape(4, 4, minDim).chain((shape) => {
    const r = shape.length;
    const axisArb: fc.Arbitrary<number | number[] | undefined> =
      r === 0
        ? fc.constant(undefined)
        : fc.oneof(
            fc.constant(undefined),
            fc.integer({ min: -r, max: r - 1 }),
            fc.subarray([...Array(r).keys()]).chain((axes) =>
              fc.array(fc.boolean(), { minLength: axes.length, maxLength: axes.length }).map((neg) => axes.map((a, i) => (neg[i] ? a - r : a))),
            ),
          );
    return fc.record({ shape: fc.constant(shape), axis: axisArb, keepdim: fc.boolean() });
  });
}

/** Number of elements each output reduces over. */
function reducedCount(shape: readonly number[], axis: number | number[] | undefined): number {
  const r = shape.length;
  const axes = axis === undefined ? [...Array(r).keys()] : (typeof axis === 'number' ? [axis] : axis).map((a) => (a < 0 ? a + r : a));
  return axes.reduce((p, a) => p * shape[a]!, 1);
}

const permutation = (n: number): fc.Arbitrary<number[]> =>
  fc.array(fc.nat(), { minLength: n, maxLength: n }).map((keys) => [...Array(n).keys()].sort((i, j) => keys[i]! - keys[j]! || i - j));

const seedArb = fc.nat();

const i32 = (data: readonly number[], shape: readonly number[], backend: string): Tensor =>
  tensor(Int32Array.from(data), shape, { backend, dtype: 'i32' });
const boolT = (data: readonly boolean[], shape: readonly number[], backend: string): Tensor =>
  tensor(
    data.map((b) => (b ? 1 : 0)),
    shape,
    { backend, dtype: 'bool' },
  );

// ---- the checks --------------------------------------------------------------------------

describeBackends('gradcheck', (backend) => {
  const check = (
    fn: (...inputs: Tensor[]) => Tensor | Tensor[],
    inputs: readonly GradInput[],
    seed: number,
    extra: Partial<GradCheckOptions> = {},
  ): Promise<void> => gradCheck(fn, inputs, { backend, seed, ...extra });

  it('the helper itself rejects a wrong gradient (x·detach(x): the analytic grad misses one term)', async () => {
    await fc.assert(
      fc.asyncProperty(inputArb(smallShape(4, 4, 1), awayFromZero(0.5, 3)), seedArb, async (x, seed) => {
        await expect(check((t) => mul(t, t.detach()), [x], seed)).rejects.toThrow(/analytic/);
        await check((t) => mul(t, t), [x], seed);
      }),
      { numRuns: RUNS },
    );
  });

  describe('binary elementwise (with broadcasting)', () => {
    const pairs = broadcastPairArb(3, 3).filter(([a, b]) => size(a) <= MAX_ELEMS && size(b) <= MAX_ELEMS);
    const binaryCase = (va: fc.Arbitrary<number>, vb: fc.Arbitrary<number>) =>
      pairs.chain(([sa, sb]) => fc.tuple(inputOf(sa, va), inputOf(sb, vb)));
    const cases: [string, (a: Tensor, b: Tensor) => Tensor, fc.Arbitrary<number>, fc.Arbitrary<number>][] = [
      ['add', add, real(), real()],
      ['sub', sub, real(), real()],
      ['mul', mul, real(), real()],
      ['div', div, real(), awayFromZero(0.5, 3)],
      ['pow (both operands, positive base)', pow, positive(0.5, 3), real(2)],
      ['maximum (no ties)', maximum, grid(0.25), grid(0.75)],
      ['minimum (no ties)', minimum, grid(0.25), grid(0.75)],
    ];
    for (const [name, op, va, vb] of cases)
      it(name, async () => {
        await fc.assert(
          fc.asyncProperty(binaryCase(va, vb), seedArb, async ([a, b], seed) => check(op, [a, b], seed, { what: name })),
          { numRuns: RUNS },
        );
      });

    it('scalar operands on either side', async () => {
      await fc.assert(
        fc.asyncProperty(inputArb(smallShape(), positive(0.5, 3)), fc.double({ min: 0.5, max: 2, noNaN: true }), seedArb, async (x, c, seed) =>
          check(
            (t) => [add(t, c), sub(c, t), mul(t, c), div(c, t), div(t, c), pow(t, c), pow(c, t), maximum(t, 10), minimum(t, -10)],
            [x],
            seed,
          ),
        ),
        { numRuns: RUNS },
      );
    });

    it('the same tensor on both sides (x·x, x/x, x^x)', async () => {
      await fc.assert(
        fc.asyncProperty(inputArb(smallShape(), positive(0.5, 3)), seedArb, async (x, seed) =>
          check((t) => [mul(t, t), div(t, t), pow(t, t), sub(t, t)], [x], seed),
        ),
        { numRuns: RUNS },
      );
    });

    it('where (gradient to both branches, broadcasting cond and branches)', async () => {
      const arb = pairs.chain(([sa, sb]) => {
        const full = sa.length >= sb.length ? [...sa] : [...sb];
        full.forEach((_, i) => {
          const da = sa[i - (full.length - sa.length)] ?? 1;
          const db = sb[i - (full.length - sb.length)] ?? 1;
          full[i] = da === 1 ? db : da;
        });
        return fc.tuple(
          inputOf(sa),
          inputOf(sb),
          fc
            .tuple(fc.array(fc.boolean(), { minLength: full.length, maxLength: full.length }), fc.nat(full.length))
            .map(([ones, drop]) => full.map((d, i) => (ones[i] ? 1 : d)).slice(drop))
            .chain((cs) => valuesFor(cs, fc.boolean()).map((c) => ({ c, cs }))),
        );
      });
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([a, b, { c, cs }], seed) => {
          const cond = boolT(c, cs, backend);
          try {
            await check((x, y) => where(cond, x, y), [a, b], seed);
            await check((x) => [where(cond, x, 1.5), where(cond, -2, x)], [a], seed);
          } finally {
            cond.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });
  });

  describe('unary elementwise', () => {
    const cases: [string, (x: Tensor) => Tensor, fc.Arbitrary<number>][] = [
      ['neg', neg, real()],
      ['abs (away from 0)', abs, awayFromZero(0.01, 3)],
      ['exp', exp, real(3)],
      ['log', log, positive(0.1, 5)],
      ['sqrt', sqrt, positive(0.1, 5)],
      ['rsqrt', rsqrt, positive(0.1, 5)],
      ['sin', sin, real(5)],
      ['cos', cos, real(5)],
      ['tanh', tanh, real(3)],
      ['sigmoid', sigmoid, real(5)],
      ['relu (away from 0)', relu, awayFromZero(0.01, 3)],
      ['gelu (erf form)', (x) => gelu(x), real(4)],
      ["gelu (approximate: 'tanh')", (x) => gelu(x, { approximate: 'tanh' }), real(4)],
      ['silu', silu, real(4)],
      ['erf', erf, real(3)],
      ['clone', clone, real()],
      // piecewise constant: zero gradient away from the jumps (grid points k + 1/4 ± 0.1)
      ['sign', sign, grid(0.25)],
      ['floor', floor, grid(0.25)],
      ['ceil', ceil, grid(0.25)],
      ['round', round, grid(0.25)],
      ['cast f64 → f64', (x) => cast(x, 'f64'), real()],
    ];
    for (const [name, op, v] of cases)
      it(name, async () => {
        await fc.assert(
          fc.asyncProperty(inputArb(smallShape(), v), seedArb, async (x, seed) => check(op, [x], seed, { what: name })),
          { numRuns: RUNS },
        );
      });

    it('clamp with number bounds (values away from the bounds)', async () => {
      // grid points k/2 + 1/4 ± 0.1 stay ≥ 0.15 from ±1
      const v = fc.tuple(fc.integer({ min: -6, max: 5 }), fc.double({ min: -0.1, max: 0.1, noNaN: true })).map(([k, e]) => k / 2 + 0.25 + e);
      await fc.assert(
        fc.asyncProperty(inputArb(smallShape(), v), seedArb, async (x, seed) =>
          check((t) => [clamp(t, -1, 1), clamp(t, -1), clamp(t, null, 1), clamp(t, undefined, -1)], [x], seed),
        ),
        { numRuns: RUNS },
      );
    });

    it('clamp with tensor bounds (gradient to the bounds too)', async () => {
      const arb = smallShape(3).chain((s) => fc.tuple(inputOf(s, grid(0.5)), inputOf(s, grid(0.25)), inputOf(s, grid(0.75))));
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, lo, hi], seed) => check((t, a, b) => clamp(t, a, b), [x, lo, hi], seed)),
        { numRuns: RUNS },
      );
    });

    it('cast f64 → f32 → f64 passes the upstream gradient through, rounded to f32 (oracle: fround(w))', async () => {
      await fc.assert(
        fc.asyncProperty(inputArb(smallShape()), inputArb(smallShape()), async (x, wIn) => {
          const { leaf, w } = tidy(() => {
            const leaf = tensor(Float64Array.from(x.data), x.shape, { backend, dtype: 'f64', requiresGrad: true });
            const back = cast(cast(leaf, 'f32'), 'f64');
            expect(back.dtype).toBe('f64');
            const w = Float64Array.from({ length: x.data.length }, (_, i) => wIn.data[i % Math.max(1, wIn.data.length)] ?? 0.5);
            back.backward(tensor(w, x.shape, { backend, dtype: 'f64' }));
            expect(leaf.grad!.dtype).toBe('f64');
            return { leaf, w };
          });
          try {
            expect(Array.from(await leaf.grad!.data())).toEqual(Array.from(w, Math.fround));
          } finally {
            leaf.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });
  });

  describe('reductions', () => {
    it('sum', async () => {
      await fc.assert(
        fc.asyncProperty(reduceCase().chain((c) => fc.tuple(fc.constant(c), inputOf(c.shape))), seedArb, async ([c, x], seed) =>
          check((t) => sum(t, c.axis, c.keepdim), [x], seed),
        ),
        { numRuns: RUNS },
      );
    });

    it('mean', async () => {
      const arb = reduceCase()
        .filter((c) => reducedCount(c.shape, c.axis) > 0)
        .chain((c) => fc.tuple(fc.constant(c), inputOf(c.shape)));
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([c, x], seed) => check((t) => mean(t, c.axis, c.keepdim), [x], seed)),
        { numRuns: RUNS },
      );
    });

    for (const [name, op] of [
      ['max (no ties)', max],
      ['min (no ties)', min],
    ] as const)
      it(name, async () => {
        const arb = reduceCase(1).chain((c) => fc.tuple(fc.constant(c), inputOf(c.shape).map((x) => ({ ...x, data: distinct(x.data) }))));
        await fc.assert(
          fc.asyncProperty(arb, seedArb, async ([c, x], seed) => check((t) => op(t, c.axis, c.keepdim), [x], seed)),
          { numRuns: RUNS },
        );
      });

    it('logsumexp', async () => {
      const arb = reduceCase(1).chain((c) => fc.tuple(fc.constant(c), inputOf(c.shape, real(5))));
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([c, x], seed) => check((t) => logsumexp(t, c.axis, c.keepdim), [x], seed)),
        { numRuns: RUNS },
      );
    });

    it('variance and std (correction 0 and 1)', async () => {
      const arb = fc
        .tuple(reduceCase(1), fc.constantFrom(0, 1))
        .filter(([c, corr]) => reducedCount(c.shape, c.axis) > Math.max(1, corr))
        .chain(([c, corr]) => fc.tuple(fc.constant(c), fc.constant(corr), inputOf(c.shape).map((x) => ({ ...x, data: distinct(x.data) }))));
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([c, correction, x], seed) =>
          check(
            (t) => [variance(t, c.axis, { correction, keepdim: c.keepdim }), std(t, c.axis, { correction, keepdim: c.keepdim })],
            [x],
            seed,
          ),
        ),
        { numRuns: RUNS },
      );
    });

    for (const p of [1, 2, 3, Infinity])
      it(`norm p=${p}`, async () => {
        const values = p === Infinity ? real() : awayFromZero(0.05, 3);
        const arb = reduceCase(1).chain((c) =>
          fc.tuple(fc.constant(c), inputOf(c.shape, values).map((x) => (p === Infinity ? { ...x, data: distinctMagnitudes(x.data) } : x))),
        );
        await fc.assert(
          fc.asyncProperty(arb, seedArb, async ([c, x], seed) => check((t) => norm(t, p, c.axis, c.keepdim), [x], seed)),
          { numRuns: RUNS },
        );
      });
  });

  describe('shape ops', () => {
    it('reshape (shuffled dims, inserted 1s, −1)', async () => {
      const arb = smallShape().chain((shape) =>
        fc.tuple(
          inputOf(shape),
          permutation(shape.length),
          fc.array(fc.nat(shape.length), { maxLength: 2 }),
          fc.boolean(),
          fc.nat(Math.max(0, shape.length - 1)),
        ),
      );
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, perm, ones, infer, at], seed) => {
          const target = perm.map((i) => x.shape[i]!);
          for (const o of ones) target.splice(Math.min(o, target.length), 0, 1);
          if (infer && target.length > 0 && size(target.filter((_, i) => i !== at % target.length)) > 0) target[at % target.length] = -1;
          await check((t) => [reshape(t, target), reshape(t, [x.data.length])], [x], seed);
        }),
        { numRuns: RUNS },
      );
    });

    it('flatten', async () => {
      const arb = smallShape().chain((shape) => {
        const r = Math.max(1, shape.length);
        return fc.tuple(inputOf(shape), fc.integer({ min: 0, max: r - 1 }), fc.integer({ min: 0, max: r - 1 }));
      });
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, a, b], seed) => check((t) => [flatten(t), flatten(t, Math.min(a, b), Math.max(a, b))], [x], seed)),
        { numRuns: RUNS },
      );
    });

    it('squeeze and unsqueeze', async () => {
      const arb = smallShape(4, 3).chain((shape) =>
        fc.tuple(
          inputOf(shape),
          shape.length ? fc.integer({ min: -shape.length, max: shape.length - 1 }) : fc.constant(undefined),
          fc.integer({ min: -(shape.length + 1), max: shape.length }),
        ),
      );
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, axis, ua], seed) =>
          check((t) => [squeeze(t), squeeze(t, axis), unsqueeze(t, ua)], [x], seed),
        ),
        { numRuns: RUNS },
      );
    });

    it('transpose and permute', async () => {
      const arb = nonScalarShape().chain((shape) =>
        fc.tuple(
          inputOf(shape),
          fc.integer({ min: -shape.length, max: shape.length - 1 }),
          fc.integer({ min: -shape.length, max: shape.length - 1 }),
          permutation(shape.length),
        ),
      );
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, d0, d1, perm], seed) =>
          check((t) => [transpose(t, d0, d1), permute(t, perm), ...(t.rank >= 2 ? [transpose(t)] : [])], [x], seed),
        ),
        { numRuns: RUNS },
      );
    });

    it('expand (size-1 dims widened, new leading dims, −1 kept)', async () => {
      const arb = smallShape(3, 3).chain((shape) =>
        fc.tuple(
          inputOf(shape),
          fc.array(fc.integer({ min: -1, max: 3 }), { minLength: shape.length, maxLength: shape.length }),
          fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }),
        ),
      );
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, grow, lead], seed) => {
          const target = [...lead, ...x.shape.map((d, i) => (grow[i] === -1 ? -1 : d === 1 ? grow[i]! : d))];
          await check((t) => expand(t, target), [x], seed);
        }),
        { numRuns: RUNS },
      );
    });

    it('slice (negative bounds, out-of-range bounds, step)', async () => {
      const arb = nonScalarShape().chain((shape) =>
        fc.tuple(
          inputOf(shape),
          fc.integer({ min: -shape.length, max: shape.length - 1 }),
          fc.integer({ min: -6, max: 6 }),
          fc.option(fc.integer({ min: -6, max: 6 }), { nil: undefined }),
          fc.integer({ min: 1, max: 3 }),
        ),
      );
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, axis, start, end, step], seed) => check((t) => slice(t, axis, start, end, step), [x], seed)),
        { numRuns: RUNS },
      );
    });

    it('narrow', async () => {
      const arb = nonScalarShape()
        .chain((shape) => fc.tuple(inputOf(shape), fc.integer({ min: 0, max: shape.length - 1 })))
        .chain(([x, axis]) => {
          const n = x.shape[axis]!;
          return fc
            .integer({ min: 0, max: n })
            .chain((s) => fc.tuple(fc.constant(x), fc.constant(axis), fc.constant(s), fc.integer({ min: 0, max: n - s }), fc.boolean()));
        });
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, axis, s, len, negStart], seed) => {
          const n = x.shape[axis]!;
          const start = negStart && s < n ? s - n : s;
          await check((t) => narrow(t, axis, start, len), [x], seed);
        }),
        { numRuns: RUNS },
      );
    });

    it('concat', async () => {
      const arb = nonScalarShape(3, 3)
        .chain((shape) =>
          fc.tuple(fc.constant(shape), fc.integer({ min: 0, max: shape.length - 1 }), fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 3 })),
        )
        .chain(([shape, axis, sizes]) =>
          fc.tuple(fc.constant(axis), fc.tuple(...sizes.map((d) => inputOf(shape.map((s, i) => (i === axis ? d : s)))))),
        );
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([axis, xs], seed) => check((...ts) => concat(ts, axis), xs, seed)),
        { numRuns: RUNS },
      );
    });

    it('stack', async () => {
      const arb = smallShape(3, 3).chain((shape) =>
        fc.tuple(
          fc.integer({ min: -(shape.length + 1), max: shape.length }),
          fc.integer({ min: 1, max: 3 }).chain((k) => fc.tuple(...Array.from({ length: k }, () => inputOf(shape)))),
        ),
      );
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([axis, xs], seed) => check((...ts) => stack(ts, axis), xs, seed)),
        { numRuns: RUNS },
      );
    });

    it('split (by size and by sections) and chunk', async () => {
      const arb = nonScalarShape()
        .chain((shape) => fc.tuple(inputOf(shape), fc.integer({ min: 0, max: shape.length - 1 })))
        .chain(([x, axis]) => {
          const n = x.shape[axis]!;
          // sections: cut points in [0, n]
          const sections = fc.array(fc.integer({ min: 0, max: n }), { maxLength: 3 }).map((cuts) => {
            const pts = [0, ...cuts.sort((a, b) => a - b), n];
            return pts.slice(1).map((p, i) => p - pts[i]!);
          });
          return fc.tuple(fc.constant(x), fc.constant(axis), fc.integer({ min: 1, max: 4 }), sections, fc.integer({ min: 1, max: 4 }));
        });
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, axis, sz, sections, chunks], seed) =>
          check((t) => [...split(t, sz, axis), ...split(t, sections, axis - t.rank), ...chunk(t, chunks, axis)], [x], seed),
        ),
        { numRuns: RUNS },
      );
    });
  });

  describe('indexing', () => {
    it('indexSelect (repeated indices)', async () => {
      const arb = nonScalarShape()
        .chain((shape) => fc.tuple(fc.constant(shape), fc.integer({ min: 0, max: shape.length - 1 })))
        .filter(([shape, axis]) => shape[axis]! >= 1)
        .chain(([shape, axis]) =>
          fc.tuple(
            inputOf(shape),
            fc.constant(axis),
            fc.array(fc.integer({ min: 0, max: shape[axis]! - 1 }), { maxLength: 6 }).map((ix) => (ix.length ? [...ix, ix[0]!] : ix)),
          ),
        );
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, axis, ix], seed) => {
          const index = i32(ix, [ix.length], backend);
          try {
            await check((t) => indexSelect(t, axis, index), [x], seed);
          } finally {
            index.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });

    it('gather', async () => {
      const arb = nonScalarShape(3)
        .chain((shape) => fc.tuple(fc.constant(shape), fc.integer({ min: 0, max: shape.length - 1 })))
        .filter(([shape, axis]) => shape[axis]! >= 1)
        .chain(([shape, axis]) =>
          fc.integer({ min: 0, max: 4 }).chain((m) => {
            const ishape = shape.map((d, i) => (i === axis ? m : d));
            return fc.tuple(inputOf(shape), fc.constant(axis), fc.constant(ishape), valuesFor(ishape, fc.integer({ min: 0, max: shape[axis]! - 1 })));
          }),
        );
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, axis, ishape, ix], seed) => {
          const index = i32(ix, ishape, backend);
          try {
            await check((t) => gather(t, axis, index), [x], seed);
          } finally {
            index.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });

    it('scatterAdd (gradient to x and to src)', async () => {
      const arb = nonScalarShape(3)
        .chain((shape) => fc.tuple(fc.constant(shape), fc.integer({ min: 0, max: shape.length - 1 })))
        .filter(([shape, axis]) => shape[axis]! >= 1)
        .chain(([shape, axis]) =>
          fc.integer({ min: 0, max: 4 }).chain((m) => {
            const ishape = shape.map((d, i) => (i === axis ? m : d));
            return fc.tuple(
              inputOf(shape),
              inputOf(ishape),
              fc.constant(axis),
              valuesFor(ishape, fc.integer({ min: 0, max: shape[axis]! - 1 })),
            );
          }),
        );
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, src, axis, ix], seed) => {
          const index = i32(ix, src.shape, backend);
          try {
            await check((t, s) => scatterAdd(t, axis, index, s), [x, src], seed);
          } finally {
            index.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });

    it('maskedFill (broadcast mask)', async () => {
      const arb = smallShape().chain((shape) =>
        fc
          .tuple(inputOf(shape), fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }), fc.nat(shape.length), real(5))
          .chain(([x, ones, drop, value]) => {
            const ms = shape.map((d, i) => (ones[i] ? 1 : d)).slice(drop);
            return fc.tuple(fc.constant(x), fc.constant(ms), valuesFor(ms, fc.boolean()), fc.constant(value));
          }),
      );
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, ms, m, value], seed) => {
          const mask = boolT(m, ms, backend);
          try {
            await check((t) => maskedFill(t, mask, value), [x], seed);
          } finally {
            mask.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });

    it('triu and tril', async () => {
      const arb = smallShape(4, 4)
        .filter((s) => s.length >= 2)
        .chain((shape) => fc.tuple(inputOf(shape), fc.integer({ min: -3, max: 3 })));
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, k], seed) => check((t) => [triu(t), tril(t), triu(t, k), tril(t, k)], [x], seed)),
        { numRuns: RUNS },
      );
    });
  });

  describe('nn', () => {
    const dim = fc.integer({ min: 0, max: 3 });
    it('matmul (every transA/transB, broadcast batch dims)', async () => {
      const arb = fc
        .tuple(broadcastPairArb(2, 2), dim, dim, dim, fc.boolean(), fc.boolean())
        .map(([[ba, bb], m, k, n, tA, tB]) => ({
          sa: [...ba, ...(tA ? [k, m] : [m, k])],
          sb: [...bb, ...(tB ? [n, k] : [k, n])],
          tA,
          tB,
        }))
        .filter(({ sa, sb }) => size(sa) <= MAX_ELEMS && size(sb) <= MAX_ELEMS)
        .chain(({ sa, sb, tA, tB }) => fc.tuple(inputOf(sa), inputOf(sb), fc.constant(tA), fc.constant(tB)));
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([a, b, transA, transB], seed) => check((x, y) => matmul(x, y, { transA, transB }), [a, b], seed)),
        { numRuns: 2 * RUNS },
      );
    });

    it('matmul with 1-D operands', async () => {
      const arb = fc
        .tuple(fc.array(fc.integer({ min: 1, max: 2 }), { maxLength: 2 }), dim, dim, dim, fc.constantFrom('vec-mat', 'mat-vec', 'vec-vec'), fc.boolean())
        .chain(([batch, m, k, n, kind, tr]) => {
          const sa = kind === 'mat-vec' ? [...batch, ...(tr ? [k, m] : [m, k])] : [k];
          const sb = kind === 'vec-mat' ? [...batch, ...(tr ? [n, k] : [k, n])] : [k];
          return fc.tuple(inputOf(sa), inputOf(sb), fc.constant(kind === 'mat-vec' ? { transA: tr } : kind === 'vec-mat' ? { transB: tr } : {}));
        });
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([a, b, o], seed) => check((x, y) => matmul(x, y, o), [a, b], seed)),
        { numRuns: RUNS },
      );
    });

    const linearCase = (inDim: fc.Arbitrary<number>, outDim: fc.Arbitrary<number>) =>
      fc
        .tuple(fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }), inDim, outDim)
        .chain(([lead, inF, outF]) => fc.tuple(inputOf([...lead, inF]), inputOf([outF, inF]), inputOf([outF])));
    it('linear (with and without bias)', async () => {
      await fc.assert(
        fc.asyncProperty(linearCase(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })), seedArb, async ([x, w, b], seed) => {
          await check((xt, wt, bt) => linear(xt, wt, bt), [x, w, b], seed);
          await check((xt, wt) => linear(xt, wt), [x, w], seed);
        }),
        { numRuns: RUNS },
      );
    });

    it('linear with a fused activation (the smooth ones; with and without bias; zero input features)', async () => {
      // relu's kink at 0 is where shrinking goes (zero weights); its fused backward is checked
      // against the unfused one in matmul_epilogue.test.ts
      const acts = fc.constantFrom('gelu' as const, 'gelu_tanh' as const, 'silu' as const);
      await fc.assert(
        fc.asyncProperty(linearCase(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 3 })), acts, seedArb, async ([x, w, b], activation, seed) => {
          await check((xt, wt, bt) => linear(xt, wt, bt, { activation }), [x, w, b], seed);
          await check((xt, wt) => linear(xt, wt, null, { activation }), [x, w], seed);
        }),
        { numRuns: RUNS },
      );
    });

    it('linear with zero input features (output = bias; bias gets the summed upstream gradient)', async () => {
      await fc.assert(
        fc.asyncProperty(linearCase(fc.constant(0), fc.integer({ min: 1, max: 3 })), seedArb, async ([x, w, b], seed) => {
          await check((xt, wt, bt) => linear(xt, wt, bt), [x, w, b], seed);
          await check((xt, wt) => linear(xt, wt), [x, w], seed);
        }),
        { numRuns: RUNS },
      );
    });

    it('linear with zero output features (empty output, the gradients are zeros)', async () => {
      await fc.assert(
        fc.asyncProperty(linearCase(dim, fc.constant(0)), seedArb, async ([x, w, b], seed) => {
          await check((xt, wt, bt) => linear(xt, wt, bt), [x, w, b], seed);
          await check((xt, wt) => linear(xt, wt), [x, w], seed);
        }),
        { numRuns: RUNS },
      );
    });

    it('softmax and logSoftmax (any axis)', async () => {
      const arb = smallShape().chain((shape) =>
        fc.tuple(inputOf(shape, real(5)), fc.integer({ min: -Math.max(1, shape.length), max: Math.max(1, shape.length) - 1 })),
      );
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, axis], seed) => check((t) => [softmax(t, axis), logSoftmax(t, axis), softmax(t)], [x], seed)),
        { numRuns: RUNS },
      );
    });

    it('crossEntropy (mean with ignored entries, label smoothing; sum and none)', async () => {
      const arb = fc
        .tuple(smallShape(2, 4, 1).filter((s) => size(s) <= 6), fc.integer({ min: 1, max: 5 }), fc.constantFrom(-100, -1, 0), fc.constantFrom(0, 0.1, 0.35))
        .chain(([tshape, classes, ignoreIndex, labelSmoothing]) =>
          fc.tuple(
            inputOf([...tshape, classes], real(4)),
            fc.constant(tshape),
            valuesFor(tshape, fc.oneof({ arbitrary: fc.integer({ min: 0, max: classes - 1 }), weight: 3 }, { arbitrary: fc.constant(ignoreIndex), weight: 1 })),
            fc.constant({ ignoreIndex, labelSmoothing }),
          ),
        )
        .filter(([, , t, o]) => t.some((v) => v !== o.ignoreIndex));
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([logits, tshape, t, o], seed) => {
          const targets = i32(t, tshape, backend);
          try {
            await check(
              (x) => [
                crossEntropy(x, targets, o),
                crossEntropy(x, targets, { ...o, reduction: 'sum' }),
                crossEntropy(x, targets, { ...o, reduction: 'none' }),
              ],
              [logits],
              seed,
            );
          } finally {
            targets.dispose();
          }
        }),
        { numRuns: 2 * RUNS },
      );
    });

    it('linearCrossEntropy (chunks of rows, bias, ignored entries, label smoothing; mean and sum)', async () => {
      const arb = fc
        .tuple(smallShape(2, 3, 1).filter((s) => size(s) <= 5), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.constantFrom(-100, 0), fc.constantFrom(0, 0.2), fc.integer({ min: 1, max: 4 }))
        .chain(([tshape, c, v, ignoreIndex, labelSmoothing, chunkRows]) =>
          fc.tuple(
            inputOf([...tshape, c], real(2)),
            inputOf([v, c], real(2)),
            inputOf([v], real(1)),
            fc.constant(tshape),
            valuesFor(tshape, fc.oneof({ arbitrary: fc.integer({ min: 0, max: v - 1 }), weight: 3 }, { arbitrary: fc.constant(ignoreIndex), weight: 1 })),
            fc.constant({ ignoreIndex, labelSmoothing, chunkRows }),
          ),
        )
        .filter(([, , , , t, o]) => t.some((v) => v !== o.ignoreIndex));
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, w, b, tshape, t, o], seed) => {
          const targets = i32(t, tshape, backend);
          try {
            await check((xt, wt, bt) => [linearCrossEntropy(xt, wt, targets, { ...o, bias: bt }), linearCrossEntropy(xt, wt, targets, { ...o, bias: bt, reduction: 'sum' })], [x, w, b], seed);
          } finally {
            targets.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });

    it('addLayerNorm (both outputs: the sum and its layer norm)', async () => {
      const arb = fc
        .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 2, max: 5 }))
        .chain(([rows, cols]) => fc.tuple(inputOf([rows, cols]), inputOf([rows, cols]), inputOf([cols]), inputOf([cols]), fc.constant(cols)));
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, r, w, b, cols], seed) => {
          await check((xt, rt, wt, bt) => addLayerNorm(xt, rt, [cols], wt, bt), [x, r, w, b], seed);
        }),
        { numRuns: RUNS },
      );
    });

    it('layerNorm (weight and bias; and without)', async () => {
      const arb = fc
        .tuple(fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }), fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 2 }))
        .filter(([lead, ns]) => size([...lead, ...ns]) <= MAX_ELEMS)
        .chain(([lead, ns]) => fc.tuple(inputOf([...lead, ...ns]), inputOf(ns), inputOf(ns), fc.constant(ns)));
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, w, b, ns], seed) => {
          await check((xt, wt, bt) => layerNorm(xt, ns, wt, bt), [x, w, b], seed);
          await check((xt) => layerNorm(xt, ns), [x], seed);
        }),
        { numRuns: RUNS },
      );
    });

    it('rmsNorm (weight; default and explicit eps)', async () => {
      const arb = fc
        .tuple(fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }), fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 2 }))
        .filter(([lead, ns]) => size([...lead, ...ns]) <= MAX_ELEMS)
        .chain(([lead, ns]) => fc.tuple(inputOf([...lead, ...ns], awayFromZero(0.1, 3)), inputOf(ns), fc.constant(ns)));
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, w, ns], seed) => {
          // default eps is 2⁻⁵² in f64: values stay away from 0 so a finite difference of size h is linear
          await check((xt, wt) => rmsNorm(xt, ns, wt), [x, w], seed);
          await check((xt, wt) => rmsNorm(xt, ns, wt, 1e-3), [x, w], seed);
        }),
        { numRuns: RUNS },
      );
    });

    it('dropout (re-seeded before each evaluation, so every evaluation draws one mask)', async () => {
      const arb = fc.tuple(inputArb(), fc.constantFrom(0, 0.25, 0.5, 0.9, 1), fc.nat(1000));
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([x, p, s], seed) => {
          await check((t) => dropout(t, p), [x], seed, { before: () => manualSeed(s) });
          await check((t) => dropout(t, p, false), [x], seed);
        }),
        { numRuns: RUNS },
      );
    });

    it('embedding (repeated ids)', async () => {
      const arb = fc
        .tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 4 }), smallShape(2, 4).filter((s) => size(s) <= 8))
        .chain(([v, d, ishape]) => fc.tuple(inputOf([v, d]), fc.constant(ishape), valuesFor(ishape, fc.integer({ min: 0, max: v - 1 }))));
      await fc.assert(
        fc.asyncProperty(arb, seedArb, async ([w, ishape, ids0], seed) => {
          // force a repeat when there are two ids or more
          const idsData = ids0.length >= 2 ? [ids0[ids0.length - 1]!, ...ids0.slice(1)] : ids0;
          const ids = i32(idsData, ishape, backend);
          try {
            await check((wt) => embedding(ids, wt), [w], seed);
          } finally {
            ids.dispose();
          }
        }),
        { numRuns: RUNS },
      );
    });

    describe('scaledDotProductAttention', () => {
      const small = fc.integer({ min: 1, max: 3 });
      const attnArb = fc
        .tuple(fc.array(fc.integer({ min: 1, max: 2 }), { maxLength: 2 }).filter((b) => size(b) <= 2), small, small, small, small)
        .chain(([batch, tq, tk, d, dv]) =>
          fc.tuple(
            inputOf([...batch, tq, d]),
            inputOf([...batch, tk, d]),
            inputOf([...batch, tk, dv]),
            fc.constant({ batch, tq, tk }),
            fc.option(fc.double({ min: 0.1, max: 2, noNaN: true }), { nil: undefined }),
          ),
        );

      it('no mask (default and explicit scale)', async () => {
        await fc.assert(
          fc.asyncProperty(attnArb, seedArb, async ([q, k, v, , scale], seed) =>
            check((a, b, c) => scaledDotProductAttention(a, b, c, scale === undefined ? {} : { scale }), [q, k, v], seed),
          ),
          { numRuns: RUNS },
        );
      });

      it('causal', async () => {
        await fc.assert(
          fc.asyncProperty(attnArb, seedArb, async ([q, k, v], seed) => check((a, b, c) => scaledDotProductAttention(a, b, c, { isCausal: true }), [q, k, v], seed)),
          { numRuns: RUNS },
        );
      });

      it('bool mask (shared and per batch)', async () => {
        const arb = attnArb.chain((x) => {
          const { batch, tq, tk } = x[3];
          return fc.boolean().chain((shared) => {
            const ms = shared ? [tq, tk] : [...batch, tq, tk];
            return fc.tuple(fc.constant(x), fc.constant(ms), valuesFor(ms, fc.boolean()));
          });
        });
        await fc.assert(
          fc.asyncProperty(arb, seedArb, async ([[q, k, v], ms, m], seed) => {
            const attnMask = boolT(m, ms, backend);
            try {
              await check((a, b, c) => scaledDotProductAttention(a, b, c, { attnMask }), [q, k, v], seed);
            } finally {
              attnMask.dispose();
            }
          }),
          { numRuns: RUNS },
        );
      });

      it('float mask (additive, with −∞ entries; shared and per batch)', async () => {
        const arb = attnArb.chain((x) => {
          const { batch, tq, tk } = x[3];
          return fc.boolean().chain((shared) => {
            const ms = shared ? [tq, tk] : [...batch, tq, tk];
            return fc.tuple(fc.constant(x), fc.constant(ms), valuesFor(ms, fc.oneof({ arbitrary: real(2), weight: 4 }, { arbitrary: fc.constant(-Infinity), weight: 1 })));
          });
        });
        await fc.assert(
          fc.asyncProperty(arb, seedArb, async ([[q, k, v], ms, m], seed) => {
            const attnMask = tensor(Float64Array.from(m), ms, { backend, dtype: 'f64' });
            try {
              await check((a, b, c) => scaledDotProductAttention(a, b, c, { attnMask }), [q, k, v], seed);
            } finally {
              attnMask.dispose();
            }
          }),
          { numRuns: RUNS },
        );
      });

      it("layout 'bthd' with a causal offset (bottom-right, and negative: rows with nothing to attend)", async () => {
        const arb = fc
          .tuple(small, small, small, small, small, fc.constantFrom(-1, 0, 'bottom'))
          .chain(([h, tq, tk, d, dv, off]) =>
            fc.tuple(inputOf([1, tq, h, d]), inputOf([1, tk, h, d]), inputOf([1, tk, h, dv]), fc.constant(off === 'bottom' ? tk - tq : (off as number))),
          );
        await fc.assert(
          fc.asyncProperty(arb, seedArb, async ([q, k, v, causalOffset], seed) =>
            check((a, b, c) => scaledDotProductAttention(a, b, c, { layout: 'bthd', isCausal: true, causalOffset }), [q, k, v], seed),
          ),
          { numRuns: RUNS },
        );
      });

      it('packedAttention over one [B, T, 3·H·D] projection (causal, and with a per-batch bool mask)', async () => {
        const arb = fc
          .tuple(fc.integer({ min: 1, max: 2 }), small, fc.integer({ min: 1, max: 2 }), small)
          .chain(([b, t, h, d]) => fc.tuple(inputOf([b, t, 3 * h * d]), fc.constant({ b, t, h }), valuesFor([b, 1, t, t], fc.boolean())));
        await fc.assert(
          fc.asyncProperty(arb, seedArb, fc.boolean(), async ([qkv, { b, t, h }, m], seed, masked) => {
            const attnMask = masked ? boolT(m, [b, 1, t, t], backend) : null;
            try {
              await check((x) => packedAttention(x, h, masked ? { attnMask } : { isCausal: true }), [qkv], seed);
            } finally {
              attnMask?.dispose();
            }
          }),
          { numRuns: RUNS },
        );
      });

      it('dropout on the weights: with the generator state fixed, the mask is fixed and the gradient exact', async () => {
        await fc.assert(
          fc.asyncProperty(attnArb, seedArb, fc.constantFrom(0.2, 0.5), async ([q, k, v], seed, p) =>
            check((a, b, c) => scaledDotProductAttention(a, b, c, { isCausal: true, dropoutP: p, generator: new Generator(seed) }), [q, k, v], seed),
          ),
          { numRuns: RUNS },
        );
      });

      it('sliding window with grouped-query heads (k and v shared by 1–3 query heads; both layouts and packed; key padding; dropout)', async () => {
        const arb = fc
          .record({
            layout: fc.constantFrom('bhtd', 'bthd', 'packed'),
            hkv: fc.integer({ min: 1, max: 2 }),
            g: fc.integer({ min: 1, max: 3 }),
            tq: fc.integer({ min: 1, max: 4 }),
            tk0: fc.integer({ min: 1, max: 4 }),
            d: fc.integer({ min: 1, max: 2 }),
            window: small,
            offset: fc.constantFrom(0, 1, 'bottom'),
            p: fc.constantFrom(0, 0, 0.3),
          })
          .map((r) => {
            const tk = r.layout === 'packed' ? r.tq : r.tk0;
            return { ...r, h: r.hkv * r.g, tk, offset: r.offset === 'bottom' ? tk - r.tq : (r.offset as number) };
          })
          .filter((r) => r.h * Math.max(r.tq, r.tk) * r.d <= 36)
          .chain((r) => {
            const shape = (t: number, heads: number): number[] => (r.layout === 'bthd' ? [1, t, heads, r.d] : [1, heads, t, r.d]);
            const xs = r.layout === 'packed' ? [inputOf([1, r.tq, (r.h + 2 * r.hkv) * r.d])] : [inputOf(shape(r.tq, r.h)), inputOf(shape(r.tk, r.hkv)), inputOf(shape(r.tk, r.hkv))];
            return fc.tuple(fc.constant(r), fc.tuple(...xs), valuesFor([1, 1, 1, r.tk], fc.boolean()));
          });
        await fc.assert(
          fc.asyncProperty(arb, seedArb, async ([r, xs, pad], seed) => {
            const attnMask = boolT(pad, [1, 1, 1, r.tk], backend);
            const opts = { isCausal: true, causalOffset: r.offset, window: r.window, attnMask, dropoutP: r.p };
            try {
              if (r.layout === 'packed') await check((x) => packedAttention(x, r.h, { ...opts, kvHeads: r.hkv, generator: new Generator(seed) }), xs, seed);
              else await check((a, b, c) => scaledDotProductAttention(a, b, c, { ...opts, layout: r.layout as 'bhtd' | 'bthd', enableGqa: true, generator: new Generator(seed) }), xs, seed);
            } finally {
              attnMask.dispose();
            }
          }),
          { numRuns: RUNS },
        );
      });
    });
  });
}, { needs: ['f64'] });
