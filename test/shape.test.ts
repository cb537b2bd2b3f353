/**
 * Shape and indexing ops against plain-loop oracles: reshape/view/flatten/squeeze/unsqueeze,
 * transpose/mT/permute, expand, slice/narrow, concat/stack, split/chunk, indexSelect, gather,
 * scatterAdd, oneHot, maskedFill, triu/tril and copy_. Values are small distinct integers, so
 * every dtype (halves included) holds them exactly and comparisons are exact.
 */
import { expect, it } from 'vitest';
import fc from 'fast-check';
import {
  chunk,
  concat,
  expand,
  flatten,
  gather,
  indexSelect,
  maskedFill,
  narrow,
  oneHot,
  permute,
  reshape,
  scatterAdd,
  slice,
  split,
  squeeze,
  stack,
  tensor,
  tidy,
  transpose,
  tril,
  triu,
  unsqueeze,
  type DType,
  type Tensor,
} from '../src/index.js';
import { at, describeBackends, FC, indices, shapeArb, size, stores, storedDtypes, strides, values, rng, tidyRead, disposeAll } from './harness.js';

/** Dtypes whose storage holds the integers in [-125, 125] exactly. */
const DTYPES = ['f32', 'f64', 'i32', 'bf16', 'f16'] as const;
const seedArb = fc.integer({ min: 0, max: 0x7fffffff });

/** n small integers, distinct for n < 251 (97 is coprime with 251), all exact in bf16/f16. */
function seq(n: number, seed: number): number[] {
  const s = seed % 251;
  return Array.from({ length: n }, (_, i) => ((i * 97 + s) % 251) - 125);
}


/** Indices that sort `keys` (a random permutation when keys are random). */
function argsort(keys: readonly number[]): number[] {
  return keys.map((k, i) => [k, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([, i]) => i);
}

function flatIndex(shape: readonly number[], idx: readonly number[]): number {
  const st = strides(shape);
  let off = 0;
  for (let i = 0; i < shape.length; i++) off += idx[i]! * st[i]!;
  return off;
}

/** `shape` with some dims set to 1 and some leading dims dropped: a shape that broadcasts to `shape`. */
function broadcastableTo(shape: readonly number[]): fc.Arbitrary<number[]> {
  return fc
    .tuple(fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }), fc.nat(shape.length))
    .map(([ones, drop]) => shape.map((d, i) => (ones[i] ? 1 : d)).slice(drop));
}

/** Elements `idxs` along `axis` of a row-major tensor. */
function takeAlong(data: readonly number[], shape: readonly number[], axis: number, idxs: readonly number[]): { shape: number[]; data: number[] } {
  const outShape = shape.map((d, i) => (i === axis ? idxs.length : d));
  const out = indices(outShape).map((o) => {
    const src = [...o];
    src[axis] = idxs[o[axis]!]!;
    return data[flatIndex(shape, src)]!;
  });
  return { shape: outShape, data: out };
}

/** Python slice semantics for a positive step: the positions start, start+step, … before end, after clamping. */
function sliceIdx(n: number, start: number, end: number | undefined, step: number): number[] {
  const norm = (i: number): number => (i < 0 ? Math.max(0, i + n) : Math.min(i, n));
  const s = norm(start);
  const e = end === undefined ? n : norm(end);
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (i >= s && i < e && (i - s) % step === 0) out.push(i);
  return out;
}

async function expectTensor(t: Tensor, shape: readonly number[], data: readonly number[], dtype: DType, what = ''): Promise<void> {
  expect([...t.shape], `${what} shape`).toEqual([...shape]);
  expect(t.dtype, `${what} dtype`).toBe(dtype);
  expect(await values(t), `${what} values`).toEqual([...data]);
}


/** The arguments of one {@link expectTensor} check: a tensor and its expected shape, values, dtype, and a label. */
type Expected = [t: Tensor, shape: readonly number[], data: readonly number[], dtype: DType, what: string];

/**
 * `build` makes tensors in a tidy scope (asserting there what needs no read, such as throws) and
 * returns the {@link expectTensor} checks to run on them; they run after the scope, in order,
 * reading asynchronously, and the tensors are disposed afterwards.
 */
function expectTensors(build: () => Expected[]): Promise<void> {
  return tidyRead(build, async (checks) => {
    for (const c of checks) await expectTensor(...c);
  });
}

describeBackends('shape ops', (backend) => {
  // every dtype the backend stores (a backend without f64 runs the others, and says the f64 cases are skipped)
  const dtypeArb = fc.constantFrom<DType>(...storedDtypes<DType>(backend, DTYPES));
  const make = (shape: readonly number[], seed: number, dtype: DType): [Tensor, number[]] => {
    const data = seq(size(shape), seed);
    return [tensor(data, [...shape], { backend, dtype }), data];
  };

  // ---- views that keep the element order ---------------------------------------------------

  /** A shape with the same number of elements: dims shuffled, some merged, a dim split, 1s inserted. */
  const regroupArb = (shape: readonly number[]): fc.Arbitrary<number[]> =>
    fc
      .tuple(
        fc.array(fc.nat(), { minLength: shape.length, maxLength: shape.length }),
        fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }),
        fc.array(fc.nat(shape.length + 1), { maxLength: 2 }),
        fc.boolean(),
      )
      .map(([keys, merge, ones, splitEven]) => {
        const dims = argsort(keys).map((i) => shape[i]!);
        const out: number[] = [];
        dims.forEach((d, i) => {
          if (merge[i] && out.length > 0) out[out.length - 1]! *= d;
          else out.push(d);
        });
        if (splitEven) {
          const j = out.findIndex((d) => d > 2 && d % 2 === 0);
          if (j >= 0) out.splice(j, 1, 2, out[j]! / 2);
        }
        for (const p of ones) out.splice(Math.min(p, out.length), 0, 1);
        return out;
      });

  it('reshape and view keep the row-major element order (with -1 inferred)', async () => {
    const arb = shapeArb(4, 4).chain((s) => fc.tuple(fc.constant(s), regroupArb(s), fc.option(fc.nat(6)), seedArb, dtypeArb, fc.boolean()));
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, target, inferAt, seed, dtype, useView]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          let arg = target;
          if (inferAt !== null && target.length > 0) {
            const j = inferAt % target.length;
            const known = target.reduce((p, d, i) => (i === j ? p : p * d), 1);
            if (known > 0) arg = target.map((d, i) => (i === j ? -1 : d));
          }
          const y = useView ? x.view(arg) : reshape(x, arg);
          checks.push([y, target, data, dtype, `reshape ${JSON.stringify(shape)} -> ${JSON.stringify(arg)}`]);
          return checks;
        }),
      ),
      FC,
    );
  });

  it('reshape rejects a size mismatch, two -1s, and -1 over a zero-size remainder', () => {
    tidy(() => {
      const x = tensor(seq(6, 0), [2, 3], { backend });
      expect(() => reshape(x, [4, 2])).toThrow(/reshape/);
      expect(() => reshape(x, [-1, -1])).toThrow(/reshape/);
      expect(() => reshape(x, [4, -1])).toThrow(/reshape/);
      const e = tensor([], [0, 3], { backend });
      expect(() => reshape(e, [0, -1])).toThrow(/reshape/);
      expect([...reshape(e, [-1, 3]).shape]).toEqual([0, 3]);
    });
  });

  it('flatten(start, end) merges the axes start..end inclusive', async () => {
    const arb = shapeArb(4, 4).chain((s) =>
      fc.tuple(fc.constant(s), fc.integer({ min: -Math.max(s.length, 1), max: Math.max(s.length, 1) - 1 }), fc.integer({ min: -Math.max(s.length, 1), max: Math.max(s.length, 1) - 1 }), seedArb, dtypeArb),
    );
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, a, b, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          if (shape.length === 0) {
            checks.push([flatten(x), [1], data, dtype, 'flatten of a scalar']);
            return checks;
          }
          const r = shape.length;
          const [s, e] = [a < 0 ? a + r : a, b < 0 ? b + r : b];
          if (s > e) {
            expect(() => flatten(x, a, b)).toThrow(/flatten/);
            return checks;
          }
          let merged = 1;
          for (let i = s; i <= e; i++) merged *= shape[i]!;
          const expected = [...shape.slice(0, s), merged, ...shape.slice(e + 1)];
          checks.push([x.flatten(a, b), expected, data, dtype, `flatten(${a}, ${b}) of ${JSON.stringify(shape)}`]);
          if (a === 0 && b === -1) checks.push([flatten(x), [size(shape)], data, dtype, 'flatten()']);
          return checks;
        }),
      ),
      FC,
    );
  });

  it('squeeze removes all size-1 axes, or only the named ones that have size 1', async () => {
    const arb = shapeArb(4, 3).chain((s) =>
      fc.tuple(fc.constant(s), fc.subarray([...s.keys()]), fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }), seedArb, dtypeArb),
    );
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, axes, negate, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          checks.push([squeeze(x), shape.filter((d) => d !== 1), data, dtype, 'squeeze()']);
          const named = axes.map((a) => (negate[a] ? a - shape.length : a));
          const expected = shape.filter((d, i) => !(axes.includes(i) && d === 1));
          checks.push([x.squeeze(named), expected, data, dtype, `squeeze(${JSON.stringify(named)})`]);
          if (named.length === 1) checks.push([squeeze(x, named[0]!), expected, data, dtype, `squeeze(${named[0]})`]);
          return checks;
        }),
      ),
      FC,
    );
  });

  it('unsqueeze inserts a size-1 axis at any position, negative positions counting from the end', async () => {
    const arb = shapeArb(4, 4).chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: -s.length - 1, max: s.length }), seedArb, dtypeArb));
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, axis, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          const a = axis < 0 ? axis + shape.length + 1 : axis;
          const expected = [...shape.slice(0, a), 1, ...shape.slice(a)];
          checks.push([unsqueeze(x, axis), expected, data, dtype, `unsqueeze(${axis}) of ${JSON.stringify(shape)}`]);
          expect(() => unsqueeze(x, shape.length + 1)).toThrow(/unsqueeze/);
          return checks;
        }),
      ),
      FC,
    );
  });

  // ---- reordering ------------------------------------------------------------------------------

  /** Oracle: output axis k is input axis dims[k]. */
  function permuteOracle(data: readonly number[], shape: readonly number[], dims: readonly number[]): { shape: number[]; data: number[] } {
    const outShape = dims.map((d) => shape[d]!);
    const out = indices(outShape).map((o) => {
      const src = new Array<number>(shape.length);
      dims.forEach((d, k) => (src[d] = o[k]!));
      return data[flatIndex(shape, src)]!;
    });
    return { shape: outShape, data: out };
  }

  it('permute reorders axes (random permutations, negative axes too)', async () => {
    const arb = shapeArb(4, 4).chain((s) =>
      fc.tuple(fc.constant(s), fc.array(fc.nat(), { minLength: s.length, maxLength: s.length }), fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }), seedArb, dtypeArb),
    );
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, keys, neg, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          const dims = argsort(keys);
          const e = permuteOracle(data, shape, dims);
          const arg = dims.map((d, i) => (neg[i] ? d - shape.length : d));
          checks.push([permute(x, arg), e.shape, e.data, dtype, `permute(${JSON.stringify(arg)}) of ${JSON.stringify(shape)}`]);
          checks.push([x.permute(dims), e.shape, e.data, dtype, 'method permute']);
          return checks;
        }),
      ),
      FC,
    );
  });

  it('permute rejects wrong lengths and repeated axes', () => {
    tidy(() => {
      const x = tensor(seq(6, 1), [2, 3], { backend });
      expect(() => permute(x, [0])).toThrow(/permute/);
      expect(() => permute(x, [1, 1])).toThrow(/permute/);
      expect(() => permute(x, [0, -2])).toThrow(/permute/);
    });
  });

  it('transpose swaps two axes; mT swaps the last two', async () => {
    const arb = shapeArb(4, 4)
      .filter((s) => s.length >= 1)
      .chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: -s.length, max: s.length - 1 }), fc.integer({ min: -s.length, max: s.length - 1 }), seedArb, dtypeArb));
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, d0, d1, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          const r = shape.length;
          const [a, b] = [d0 < 0 ? d0 + r : d0, d1 < 0 ? d1 + r : d1];
          const dims = shape.map((_, i) => (i === a ? b : i === b ? a : i));
          const e = permuteOracle(data, shape, dims);
          checks.push([transpose(x, d0, d1), e.shape, e.data, dtype, `transpose(${d0}, ${d1}) of ${JSON.stringify(shape)}`]);
          if (r >= 2) {
            const last = shape.map((_, i) => (i === r - 2 ? r - 1 : i === r - 1 ? r - 2 : i));
            const m = permuteOracle(data, shape, last);
            checks.push([x.mT, m.shape, m.data, dtype, 'mT']);
            checks.push([x.transpose(), m.shape, m.data, dtype, 'transpose()']);
          } else {
            expect(() => x.mT).toThrow(/transpose/);
          }
          return checks;
        }),
      ),
      FC,
    );
  });

  // ---- broadcasting ----------------------------------------------------------------------------

  it('expand broadcasts size-1 dims (to any size, 0 included), keeps -1 dims and adds leading dims', async () => {
    const arb = shapeArb(3, 3)
      .chain((s) =>
        fc.tuple(
          fc.constant(s),
          fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }),
          fc.array(fc.integer({ min: 0, max: 3 }), { minLength: s.length, maxLength: s.length }),
          fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }),
          seedArb,
          dtypeArb,
        ),
      );
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, lead, sizes, keep, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          const own = shape.map((d, i) => (d === 1 ? sizes[i]! : d));
          const expected = [...lead, ...own];
          const arg = [...lead, ...own.map((d, i) => (keep[i] && d === shape[i] ? -1 : d))];
          const out = indices(expected).map((idx) => at(data, shape, idx));
          checks.push([expand(x, arg), expected, out, dtype, `expand ${JSON.stringify(shape)} -> ${JSON.stringify(arg)}`]);
          checks.push([x.expand(expected), expected, out, dtype, 'method expand']);
          return checks;
        }),
      ),
      FC,
    );
  });

  it('expand rejects non-broadcastable targets and fewer dims', () => {
    tidy(() => {
      const x = tensor(seq(6, 2), [2, 3], { backend });
      expect(() => expand(x, [4, 3])).toThrow(/expand/);
      expect(() => expand(x, [3])).toThrow(/expand/);
      expect(() => expand(x, [2, 2, 3])).not.toThrow();
    });
  });

  it('expand rejects -1 for a new leading dim (as torch: the size of a new dim must be given)', () => {
    tidy(() => {
      const x = tensor(seq(3, 2), [3], { backend });
      expect(() => expand(x, [-1, 3])).toThrow(/expand/);
    });
  });

  // ---- slicing ---------------------------------------------------------------------------------

  it('slice(axis, start, end, step) follows Python slicing (negative indices, clamping)', async () => {
    const arb = shapeArb(4, 5)
      .filter((s) => s.length >= 1)
      .chain((s) =>
        fc.tuple(
          fc.constant(s),
          fc.integer({ min: -s.length, max: s.length - 1 }),
          fc.integer({ min: -7, max: 7 }),
          fc.option(fc.integer({ min: -7, max: 7 })),
          fc.integer({ min: 1, max: 3 }),
          seedArb,
          dtypeArb,
        ),
      );
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, axis, start, end, step, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          const a = axis < 0 ? axis + shape.length : axis;
          const idxs = sliceIdx(shape[a]!, start, end ?? undefined, step);
          const e = takeAlong(data, shape, a, idxs);
          checks.push([slice(x, axis, start, end ?? undefined, step), e.shape, e.data, dtype, `slice(${axis}, ${start}, ${end}, ${step}) of ${JSON.stringify(shape)}`]);
          if (step === 1 && end === null) {
            const e2 = takeAlong(data, shape, a, sliceIdx(shape[a]!, start, undefined, 1));
            checks.push([x.slice(axis, start), e2.shape, e2.data, dtype, 'slice with defaults']);
          }
          return checks;
        }),
      ),
      FC,
    );
  });

  it('slice, narrow, split and concat reject 0-d tensors (they have no axis to work along, as in torch)', () => {
    tidy(() => {
      const s = tensor(3, { backend });
      expect(() => slice(s, 0, 0, 1)).toThrow(/slice/);
      expect(() => narrow(s, 0, 0, 1)).toThrow(/narrow/);
      expect(() => split(s, 1)).toThrow(/split/);
      expect(() => concat([s, s])).toThrow(/concat/);
    });
  });

  it('slice rejects a non-positive step', () => {
    tidy(() => {
      const x = tensor(seq(6, 3), [6], { backend });
      expect(() => slice(x, 0, 0, 6, 0)).toThrow(/slice/);
      expect(() => slice(x, 0, 0, 6, -1)).toThrow(/slice/);
    });
  });

  it('narrow(axis, start, length) takes length elements from start (negative start counts from the end)', async () => {
    const arb = shapeArb(4, 5)
      .filter((s) => s.length >= 1)
      .chain((s) => fc.tuple(fc.constant(s), fc.nat(s.length - 1), seedArb, dtypeArb))
      .chain(([s, axis, seed, dtype]) =>
        fc.integer({ min: -s[axis]!, max: s[axis]! }).chain((start) => {
          const st = start < 0 ? start + s[axis]! : start;
          return fc.tuple(fc.constant(s), fc.constant(axis), fc.constant(start), fc.integer({ min: 0, max: s[axis]! - st }), fc.constant(seed), fc.constant(dtype));
        }),
      );
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, axis, start, length, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          const s = start < 0 ? start + shape[axis]! : start;
          const e = takeAlong(data, shape, axis, Array.from({ length }, (_, i) => s + i));
          checks.push([narrow(x, axis, start, length), e.shape, e.data, dtype, `narrow(${axis}, ${start}, ${length}) of ${JSON.stringify(shape)}`]);
          expect(() => narrow(x, axis, s, shape[axis]! - s + 1)).toThrow(/narrow/);
          return checks;
        }),
      ),
      FC,
    );
  });

  // ---- joining ---------------------------------------------------------------------------------

  it('concat joins along a random axis (size-0 pieces included)', async () => {
    const arb = shapeArb(4, 3)
      .filter((s) => s.length >= 1)
      .chain((s) =>
        fc.tuple(
          fc.constant(s),
          fc.integer({ min: -s.length, max: s.length - 1 }),
          fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 }),
          seedArb,
          dtypeArb,
        ),
      );
    await fc.assert(
      fc.asyncProperty(arb, async ([base, axis, sizes, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const a = axis < 0 ? axis + base.length : axis;
          const parts = sizes.map((n, p) => make(base.map((d, i) => (i === a ? n : d)), seed + 31 * p, dtype));
          const total = sizes.reduce((p, n) => p + n, 0);
          const outShape = base.map((d, i) => (i === a ? total : d));
          const out = indices(outShape).map((o) => {
            let j = o[a]!;
            let p = 0;
            while (j >= sizes[p]!) j -= sizes[p++]!;
            const src = [...o];
            src[a] = j;
            return parts[p]![1][flatIndex(parts[p]![0].shape, src)]!;
          });
          checks.push([concat(parts.map(([t]) => t), axis), outShape, out, dtype, `concat axis ${axis} sizes ${JSON.stringify(sizes)}`]);
          return checks;
        }),
      ),
      FC,
    );
  });

  it('concat rejects mismatched shapes and dtypes', () => {
    tidy(() => {
      const a = tensor(seq(6, 0), [2, 3], { backend });
      const b = tensor(seq(4, 0), [2, 2], { backend });
      // another float dtype: f64, or f16 where f64 is not stored
      const c = tensor(seq(6, 0), [2, 3], { backend, dtype: stores(backend, 'f64') ? 'f64' : 'f16' });
      expect(() => concat([a, b], 0)).toThrow(/concat/);
      expect(() => concat([a, c], 0)).toThrow(/concat/);
      expect(() => concat([], 0)).toThrow(/concat/);
    });
  });

  it('stack joins equal shapes along a new axis (negative axis too)', async () => {
    const arb = shapeArb(3, 3).chain((s) =>
      fc.tuple(fc.constant(s), fc.integer({ min: -s.length - 1, max: s.length }), fc.integer({ min: 1, max: 4 }), seedArb, dtypeArb),
    );
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, axis, count, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const a = axis < 0 ? axis + shape.length + 1 : axis;
          const parts = Array.from({ length: count }, (_, p) => make(shape, seed + 17 * p, dtype));
          const outShape = [...shape.slice(0, a), count, ...shape.slice(a)];
          const out = indices(outShape).map((o) => {
            const src = [...o.slice(0, a), ...o.slice(a + 1)];
            return parts[o[a]!]![1][flatIndex(shape, src)]!;
          });
          checks.push([stack(parts.map(([t]) => t), axis), outShape, out, dtype, `stack axis ${axis} of ${count}x${JSON.stringify(shape)}`]);
          return checks;
        }),
      ),
      FC,
    );
  });

  // ---- splitting -------------------------------------------------------------------------------

  /** Check the piece sizes now; return the {@link expectTensor} checks of the pieces, to run once they can be read. */
  function expectPieces(pieces: Tensor[], data: readonly number[], shape: readonly number[], axis: number, sizes: readonly number[], dtype: DType, what: string): Expected[] {
    expect(pieces.map((p) => p.shape[axis]), `${what} piece sizes`).toEqual([...sizes]);
    const checks: Expected[] = [];
    let start = 0;
    sizes.forEach((n, k) => {
      const e = takeAlong(data, shape, axis, Array.from({ length: n }, (_, i) => start + i));
      checks.push([pieces[k]!, e.shape, e.data, dtype, `${what} piece ${k}`]);
      start += n;
    });
    return checks;
  }

  it('split by size gives pieces of that size, the last smaller (one empty piece for an empty axis)', async () => {
    const arb = shapeArb(3, 5)
      .filter((s) => s.length >= 1)
      .chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: -s.length, max: s.length - 1 }), fc.integer({ min: 1, max: 6 }), seedArb, dtypeArb));
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, axis, piece, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          const a = axis < 0 ? axis + shape.length : axis;
          const n = shape[a]!;
          // torch.split: ⌈n/size⌉ pieces (at least one), all of `size` but the last
          const count = Math.max(1, Math.ceil(n / piece));
          const sizes = Array.from({ length: count }, (_, k) => Math.min(piece, n - k * piece));
          checks.push(...expectPieces(split(x, piece, axis), data, shape, a, sizes, dtype, `split(${piece}, ${axis}) of ${JSON.stringify(shape)}`));
          return checks;
        }),
      ),
      FC,
    );
  });

  it('split by sections gives pieces of the listed sizes (zeros included) and rejects a wrong total', async () => {
    const arb = shapeArb(3, 5)
      .filter((s) => s.length >= 1)
      .chain((s) => fc.tuple(fc.constant(s), fc.nat(s.length - 1), fc.array(fc.nat(), { minLength: 0, maxLength: 4 }), seedArb, dtypeArb));
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, a, cuts, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          const n = shape[a]!;
          const points = [0, ...cuts.map((c) => c % (n + 1)).sort((p, q) => p - q), n];
          const sizes = points.slice(1).map((p, i) => p - points[i]!);
          checks.push(...expectPieces(x.split(sizes, a), data, shape, a, sizes, dtype, `split(${JSON.stringify(sizes)}, ${a}) of ${JSON.stringify(shape)}`));
          expect(() => split(x, [...sizes, 1], a)).toThrow(/split/);
          return checks;
        }),
      ),
      FC,
    );
  });

  it('chunk follows torch.chunk: pieces of ⌈n/chunks⌉, fewer when n is small', async () => {
    const arb = shapeArb(3, 5)
      .filter((s) => s.length >= 1)
      .chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: -s.length, max: s.length - 1 }), fc.integer({ min: 1, max: 7 }), seedArb, dtypeArb));
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, axis, chunks, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          const a = axis < 0 ? axis + shape.length : axis;
          const n = shape[a]!;
          if (n === 0) return checks; // an empty axis: see the next test
          const each = Math.ceil(n / chunks);
          const sizes: number[] = [];
          for (let s = 0; s < n; s += each) sizes.push(Math.min(each, n - s));
          checks.push(...expectPieces(chunk(x, chunks, axis), data, shape, a, sizes, dtype, `chunk(${chunks}, ${axis}) of ${JSON.stringify(shape)}`));
          checks.push(...expectPieces(x.chunk(chunks, axis), data, shape, a, sizes, dtype, 'method chunk'));
          return checks;
        }),
      ),
      FC,
    );
  });

  it('chunk of an empty axis gives `chunks` empty pieces (as torch.chunk)', () => {
    // torch.chunk (aten/src/ATen/native/TensorShape.cpp): when the dim size is 0 it calls
    // split_with_sizes with `chunks` zero sizes, e.g. torch.empty(0, 3).chunk(3) has 3 pieces.
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 3 }), (chunks, cols) =>
        tidy(() => {
          const x = tensor([], [0, cols], { backend });
          const pieces = chunk(x, chunks, 0);
          expect(pieces.length).toBe(chunks);
          for (const p of pieces) expect([...p.shape]).toEqual([0, cols]);
        }),
      ),
      { numRuns: 10 },
    );
  });

  // ---- indexing --------------------------------------------------------------------------------

  it('indexSelect picks entries of a 1-D i32 index along an axis (repeats and empty index too)', async () => {
    const arb = shapeArb(3, 4)
      .filter((s) => s.length >= 1)
      .chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: -s.length, max: s.length - 1 }), fc.integer({ min: 0, max: 5 }), seedArb, dtypeArb));
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, axis, len, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          const a = axis < 0 ? axis + shape.length : axis;
          const n = shape[a]!;
          const r = rng(seed);
          const idx = n === 0 ? [] : Array.from({ length: len }, () => Math.floor(r() * n));
          const index = tensor(idx, [idx.length], { backend, dtype: 'i32' });
          const e = takeAlong(data, shape, a, idx);
          checks.push([indexSelect(x, axis, index), e.shape, e.data, dtype, `indexSelect(${axis}, ${JSON.stringify(idx)}) of ${JSON.stringify(shape)}`]);
          return checks;
        }),
      ),
      FC,
    );
  });

  it('gather follows torch.gather: out[..j..] = x[..index[..j..]..] along the axis', async () => {
    const arb = shapeArb(3, 4)
      .filter((s) => s.length >= 1)
      .chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: -s.length, max: s.length - 1 }), fc.integer({ min: 0, max: 4 }), seedArb, dtypeArb));
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, axis, m, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const a = axis < 0 ? axis + shape.length : axis;
          const [x, data] = make(shape, seed, dtype);
          const n = shape[a]!;
          const idxShape = shape.map((d, i) => (i === a ? (n === 0 ? 0 : m) : d));
          const r = rng(seed + 1);
          const idx = Array.from({ length: size(idxShape) }, () => Math.floor(r() * n));
          const index = tensor(idx, idxShape, { backend, dtype: 'i32' });
          const out = indices(idxShape).map((p) => {
            const src = [...p];
            src[a] = idx[flatIndex(idxShape, p)]!;
            return data[flatIndex(shape, src)]!;
          });
          checks.push([gather(x, axis, index), idxShape, out, dtype, `gather(${axis}) of ${JSON.stringify(shape)} by ${JSON.stringify(idxShape)}`]);
          checks.push([x.gather(axis, index), idxShape, out, dtype, 'method gather']);
          return checks;
        }),
      ),
      FC,
    );
  });

  it('gather and scatterAdd reject non-i32 indices at the call', () => {
    tidy(() => {
      const x = tensor(seq(6, 4), [2, 3], { backend });
      expect(() => gather(x, 1, tensor([0, 1, 1, 2, 0, 1], [2, 3], { backend, dtype: 'f32' }))).toThrow(/^gather: index must be i32, got \[2,3\] f32/);
      const src = tensor(seq(6, 5), [2, 3], { backend });
      expect(() => scatterAdd(x, 0, tensor([0, 1, 1, 1, 0, 1], [2, 3], { backend, dtype: 'f32' }), src)).toThrow(/^scatterAdd: index must be i32/);
    });
  });

  it('indices out of range are device faults: the call returns, the next read throws naming the op and the index, and the backend carries on', async () => {
    const i32 = { backend, dtype: 'i32' } as const;
    const [x, src] = [tensor(seq(6, 4), [2, 3], { backend }), tensor(seq(6, 5), [2, 3], { backend })];
    const cases: [() => Tensor, RegExp][] = [
      [() => gather(x, 1, tensor([0, 3, 1, 2, 0, 1], [2, 3], i32)), /^gather: index 3 is out of range \[0, 3\)/],
      [() => gather(x, 1, tensor([0, -1, 1, 2, 0, 1], [2, 3], i32)), /^gather: index -1 is out of range \[0, 3\)/],
      [() => indexSelect(x, 0, tensor([1, 2], [2], i32)), /^indexSelect: index 2 is out of range \[0, 2\)/],
      [() => scatterAdd(x, 0, tensor([0, 2, 1, 1, 0, 1], [2, 3], i32), src), /^scatterAdd: index 2 is out of range \[0, 2\)/],
      [() => oneHot(tensor([0, 4, 1], [3], i32), 3), /^oneHot: index 4 is out of range \[0, 3\)/],
    ];
    for (const [run, message] of cases) {
      const out = tidy(run); // nothing throws at the call: the kernel finds the index
      await expect(out.data()).rejects.toThrow(message);
      out.dispose();
      // the fault was reported once; the backend reads again
      expect(await values(x)).toEqual(seq(6, 4));
    }
    // an index changed in place between the forward and the backward: backward refuses (the
    // version counter), before any kernel could see a bad index
    const w = tensor(seq(6, 7), [2, 3], { backend, requiresGrad: true });
    const index = tensor([0, 1, 1, 2, 0, 1], [2, 3], i32);
    const g = gather(w, 1, index);
    const y = g.sum();
    const bad = tensor([0, 1, 1, 2, 0, 7], [2, 3], i32);
    index.copy_(bad);
    expect(() => y.backward()).toThrow(/^backward: 'gather' needs its index \[2,3\] i32 as it was in the forward, but it was modified in place since \(version 0 → 1\)/);
    for (const t of [x, src, w, index, g, y, bad]) t.dispose();
  });

  it('scatterAdd adds src into a copy of x at the indexed positions; duplicates accumulate', async () => {
    // values in [-20, 20] and at most 5 additions per element: sums stay integers ≤ 120, exact in bf16/f16
    const arb = shapeArb(3, 4)
      .filter((s) => s.length >= 1)
      .chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: -s.length, max: s.length - 1 }), fc.integer({ min: 0, max: 5 }), seedArb, fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['f32', 'f64', 'bf16', 'f16']))));
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, axis, m, seed, dtype]) => {
        const a = axis < 0 ? axis + shape.length : axis;
        const n = shape[a]!;
        const idxShape = shape.map((d, i) => (i === a ? (n === 0 ? 0 : m) : d));
        const r = rng(seed);
        const xData = Array.from({ length: size(shape) }, () => Math.floor(r() * 41) - 20);
        const srcData = Array.from({ length: size(idxShape) }, () => Math.floor(r() * 41) - 20);
        // a small range of targets so that duplicates are common
        const idx = Array.from({ length: size(idxShape) }, () => Math.floor(r() * Math.min(n, 2)));
        const expected = [...xData];
        for (const p of indices(idxShape)) {
          const k = flatIndex(idxShape, p);
          const dst = [...p];
          dst[a] = idx[k]!;
          expected[flatIndex(shape, dst)]! += srcData[k]!;
        }
        await tidyRead(
          () => {
            const x = tensor(xData, shape, { backend, dtype });
            const src = tensor(srcData, idxShape, { backend, dtype });
            const index = tensor(idx, idxShape, { backend, dtype: 'i32' });
            return { fn: scatterAdd(x, axis, index, src), x, method: x.scatterAdd(axis, index, src) };
          },
          async ({ fn, x, method }) => {
            await expectTensor(fn, shape, expected, dtype, `scatterAdd(${axis}) of ${JSON.stringify(shape)}`);
            expect(await values(x), 'x unchanged').toEqual(xData);
            await expectTensor(method, shape, expected, dtype, 'method scatterAdd');
          },
        );
      }),
      FC,
    );
  });

  it('oneHot encodes i32 classes as [..., numClasses] in the requested dtype', async () => {
    const arb = fc.tuple(shapeArb(3, 4), fc.integer({ min: 1, max: 5 }), seedArb, fc.constantFrom<'i32' | 'f32' | 'f64' | 'bool' | undefined>(undefined, ...storedDtypes(backend, ['i32', 'f32', 'f64', 'bool'] as const)));
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, classes, seed, dtype]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const r = rng(seed);
          const idx = Array.from({ length: size(shape) }, () => Math.floor(r() * classes));
          const index = tensor(idx, shape, { backend, dtype: 'i32' });
          const outShape = [...shape, classes];
          const out = indices(outShape).map((o) => (idx[flatIndex(shape, o.slice(0, -1))] === o[o.length - 1] ? 1 : 0));
          const t = dtype === undefined ? oneHot(index, classes) : oneHot(index, classes, dtype);
          checks.push([t, outShape, out, dtype ?? 'i32', `oneHot ${JSON.stringify(shape)} C=${classes}`]);
          return checks;
        }),
      ),
      FC,
    );
  });

  // ---- masking ---------------------------------------------------------------------------------

  it('maskedFill writes value where a broadcast bool mask is true', async () => {
    const arb = shapeArb(4, 3)
      .chain((s) => fc.tuple(fc.constant(s), broadcastableTo(s), seedArb, dtypeArb, fc.constantFrom(0, 42, -3, -Infinity)))
      .filter(([, , , dtype, v]) => v !== -Infinity || (dtype !== 'i32'));
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, maskShape, seed, dtype, value]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          const r = rng(seed);
          const m = Array.from({ length: size(maskShape) }, () => (r() < 0.5 ? 1 : 0));
          const mask = tensor(m, maskShape, { backend, dtype: 'bool' });
          const out = indices(shape).map((idx, i) => (at(m, maskShape, idx) ? value : data[i]!));
          checks.push([maskedFill(x, mask, value), shape, out, dtype, `maskedFill ${JSON.stringify(shape)} mask ${JSON.stringify(maskShape)}`]);
          checks.push([x.maskedFill(mask, value), shape, out, dtype, 'method maskedFill']);
          return checks;
        }),
      ),
      FC,
    );
  });

  it('maskedFill rejects a non-bool mask and a mask that does not broadcast to x', () => {
    tidy(() => {
      const x = tensor(seq(6, 6), [2, 3], { backend });
      expect(() => maskedFill(x, tensor([1, 0, 1], [3], { backend, dtype: 'i32' }), 0)).toThrow(/maskedFill/);
      expect(() => maskedFill(x, tensor([true, false], [2], { backend }), 0)).toThrow(/maskedFill/);
      expect(() => maskedFill(x, tensor([true, false, true, true, false, true], [1, 2, 3], { backend }), 0)).toThrow(/maskedFill/);
    });
  });

  it('triu/tril keep entries with col − row ≥ k / ≤ k over the last two axes, zero the rest', async () => {
    const arb = shapeArb(4, 4)
      .filter((s) => s.length >= 2)
      .chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: -5, max: 5 }), seedArb, dtypeArb, fc.boolean()));
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, k, seed, dtype, useDefault]) =>
        expectTensors(() => {
          const checks: Expected[] = [];
          const [x, data] = make(shape, seed, dtype);
          const diag = useDefault ? 0 : k;
          const r = shape.length;
          const up = indices(shape).map((idx, i) => (idx[r - 1]! - idx[r - 2]! >= diag ? data[i]! : 0));
          const lo = indices(shape).map((idx, i) => (idx[r - 1]! - idx[r - 2]! <= diag ? data[i]! : 0));
          checks.push([useDefault ? triu(x) : triu(x, k), shape, up, dtype, `triu(${diag}) of ${JSON.stringify(shape)}`]);
          checks.push([useDefault ? tril(x) : tril(x, k), shape, lo, dtype, `tril(${diag}) of ${JSON.stringify(shape)}`]);
          checks.push([x.triu(diag), shape, up, dtype, 'method triu']);
          checks.push([x.tril(diag), shape, lo, dtype, 'method tril']);
          return checks;
        }),
      ),
      FC,
    );
  });

  it('triu/tril reject tensors of rank < 2', () => {
    tidy(() => {
      expect(() => triu(tensor(seq(3, 0), [3], { backend }))).toThrow(/triu/);
      expect(() => tril(tensor(1, { backend }))).toThrow(/tril/);
    });
  });

  // ---- in-place copy ---------------------------------------------------------------------------

  it('copy_ writes a broadcast (and cast) source in place; views of the destination see it', async () => {
    const arb = shapeArb(4, 3).chain((s) => fc.tuple(fc.constant(s), broadcastableTo(s), seedArb, dtypeArb, dtypeArb));
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, srcShape, seed, dstType, srcType]) => {
        // each in-place write happens in a tidy scope of its own, and the values are read between them
        const { x, src, srcData, flatView } = tidy(() => {
          const [x] = make(shape, seed, dstType);
          const [src, srcData] = make(srcShape, seed + 7, srcType);
          return { x, src, srcData, flatView: x.reshape([-1]) };
        });
        try {
          const expected = indices(shape).map((idx) => at(srcData, srcShape, idx));
          const ret = tidy(() => x.copy_(src));
          expect(ret).toBe(x);
          await expectTensor(x, shape, expected, dstType, `copy_ ${JSON.stringify(srcShape)} ${srcType} into ${JSON.stringify(shape)} ${dstType}`);
          await expectTensor(flatView, [size(shape)], expected, dstType, 'view of the destination');
          expect(await values(src), 'source unchanged').toEqual(srcData);
          // writing through a view changes the base tensor
          const otherData = tidy(() => {
            const [other, otherData] = make([size(shape)], seed + 13, dstType);
            flatView.copy_(other);
            return otherData;
          });
          await expectTensor(x, shape, otherData, dstType, 'base after copy_ into its view');
          // a number fills
          tidy(() => {
            x.copy_(7);
          });
          await expectTensor(flatView, [size(shape)], new Array<number>(size(shape)).fill(7), dstType, 'copy_(7)');
        } finally {
          disposeAll([x, src, flatView]);
        }
      }),
      FC,
    );
  });

  it('copy_ rejects a source that does not broadcast to the destination', () => {
    tidy(() => {
      const x = tensor(seq(6, 8), [2, 3], { backend });
      expect(() => x.copy_(tensor(seq(2, 0), [2], { backend }))).toThrow(/copy_/);
      expect(() => x.copy_(tensor(seq(12, 0), [2, 2, 3], { backend }))).toThrow(/copy_/);
    });
  });
});
