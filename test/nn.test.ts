/**
 * Neural-network ops against naive plain-loop oracles: matmul (batched, broadcast, 1-D,
 * transposed, k = 0), linear, softmax/logSoftmax, crossEntropy (reductions, ignoreIndex,
 * label smoothing), layerNorm, rmsNorm, dropout, embedding and scaledDotProductAttention, and
 * half-precision matmul/softmax computed in f32 and rounded once at the end.
 *
 * Oracles read the stored input values back (so f32/half rounding of the inputs is accounted
 * for) and compute in f64.
 */
import { expect, it } from 'vitest';
import fc from 'fast-check';
import {
  bf16Bits,
  bf16Value,
  crossEntropy,
  dropout,
  embedding,
  f16Bits,
  f16Value,
  Generator,
  layerNorm,
  linear,
  logSoftmax,
  manualSeed,
  matmul,
  rmsNorm,
  scaledDotProductAttention,
  softmax,
  Tensor,
  tensor,
  tidy,
  type DType,
  concat,
  eye,
  packedAttention,
  philox4x32,
  randn,
} from '../src/index.js';
import { at, broadcastPairArb, describeBackends, expectClose, FC, indices, shapeArb, size, stores, storedDtypes, tol, values, rng, scoped, type Step } from './harness.js';

const seedArb = fc.integer({ min: 0, max: 0x7fffffff });
const dimArb = (max = 4, min = 0): fc.Arbitrary<number> => fc.integer({ min, max });


function uniformArr(r: () => number, n: number, lo: number, hi: number): number[] {
  return Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Unit roundoff of a float dtype. */
function unitRoundoff(dtype: DType): number {
  return dtype === 'f64' ? 2 ** -53 : dtype === 'f32' ? 2 ** -24 : dtype === 'f16' ? 2 ** -11 : 2 ** -8;
}

/** Tolerance for fused kernels with several roundings (norms, attention, log-softmax, losses). */
function loose(dtype: DType, scale = 1): { rtol: number; atol: number } {
  return dtype === 'f64' ? { rtol: 1e-9, atol: 1e-10 * scale } : { rtol: 1e-4, atol: 1e-5 * scale };
}

/** Round to a dtype's storage, as the library's single rounding at the end would. */
function roundTo(dtype: DType, x: number): number {
  if (dtype === 'bf16') return bf16Value(bf16Bits(x));
  if (dtype === 'f16') return f16Value(f16Bits(x));
  if (dtype === 'f32') return Math.fround(x);
  return x;
}

function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Naive batched matmul with broadcast batch dims; `sumAbs` is the largest Σ|aᵢₚ·bₚⱼ| (for error bounds). */
function matmulOracle(
  a: readonly number[],
  aShape: readonly number[],
  b: readonly number[],
  bShape: readonly number[],
  transA: boolean,
  transB: boolean,
): { shape: number[]; data: number[]; sumAbs: number } {
  const ra = aShape.length;
  const rb = bShape.length;
  const [m, k] = transA ? [aShape[ra - 1]!, aShape[ra - 2]!] : [aShape[ra - 2]!, aShape[ra - 1]!];
  const n = transB ? bShape[rb - 2]! : bShape[rb - 1]!;
  const batch = broadcastShapes(aShape.slice(0, -2), bShape.slice(0, -2));
  const shape = [...batch, m, n];
  let sumAbs = 0;
  const data = indices(shape).map((idx) => {
    const lead = idx.slice(0, -2);
    const i = idx[idx.length - 2]!;
    const j = idx[idx.length - 1]!;
    let s = 0;
    let sa = 0;
    for (let p = 0; p < k; p++) {
      const x = at(a, aShape, [...lead, ...(transA ? [p, i] : [i, p])]);
      const y = at(b, bShape, [...lead, ...(transB ? [j, p] : [p, j])]);
      s += x * y;
      sa += Math.abs(x * y);
    }
    sumAbs = Math.max(sumAbs, sa);
    return s;
  });
  return { shape, data, sumAbs };
}

/** Error bound of a k-term dot product in `dtype`, added to the dtype's tolerance. */
function dotTol(dtype: DType, k: number, sumAbs: number): { rtol: number; atol: number } {
  const t = tol(dtype);
  return { rtol: t.rtol, atol: t.atol + 4 * (k + 1) * unitRoundoff(dtype) * sumAbs };
}

/** Softmax or log-softmax of one row, computed stably (a row of only −∞ gives NaN, as torch). */
function softmaxRow(row: readonly number[], log: boolean): number[] {
  const m = Math.max(...row);
  const e = row.map((x) => Math.exp(x - m));
  const s = e.reduce((p, x) => p + x, 0);
  return row.map((x, c) => (log ? x - m - Math.log(s) : e[c]! / s));
}

/** Apply a row function along `axis` of a row-major tensor. */
function alongAxis(data: readonly number[], shape: readonly number[], axis: number, f: (row: number[]) => number[]): number[] {
  if (shape.length === 0) return f([data[0]!]);
  const out = new Array<number>(data.length);
  const st = shape.map((_, i) => shape.slice(i + 1).reduce((p, d) => p * d, 1));
  const n = shape[axis]!;
  for (const idx of indices(shape)) {
    if (idx[axis] !== 0) continue;
    const base = idx.reduce((p, v, i) => p + v * st[i]!, 0);
    const pos = Array.from({ length: n }, (_, j) => base + j * st[axis]!);
    const res = f(pos.map((p) => data[p]!));
    pos.forEach((p, j) => (out[p] = res[j]!));
  }
  return out;
}


describeBackends('nn ops', (backend) => {
  // f32 and f64 where both are stored; a backend without f64 (WebGPU) runs the f32 cases, and says the f64 ones are skipped
  const floatArb = fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['f32', 'f64']));
  const hasF64 = stores(backend, 'f64');
  // a float dtype other than f32, for mismatches: f64, or f16 where f64 is not stored
  const otherFloat: DType = hasF64 ? 'f64' : 'f16';
  /** A tensor of `data` (held by `step`'s scope) and its stored values, read back. */
  const make = async (step: Step, data: readonly number[], shape: readonly number[], dtype: DType): Promise<[Tensor, number[]]> => {
    const t = step(() => tensor([...data], [...shape], { backend, dtype }));
    return [t, await values(t)];
  };

  // ---- matmul ---------------------------------------------------------------------------------

  it('matmul: batched with broadcast batch dims and transA/transB, vs a naive loop', async () => {
    const arb = fc.tuple(broadcastPairArb(2, 3), dimArb(), dimArb(), dimArb(), fc.boolean(), fc.boolean(), floatArb, seedArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([[ba, bb], m, k, n, transA, transB, dtype, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          const aShape = [...ba, ...(transA ? [k, m] : [m, k])];
          const bShape = [...bb, ...(transB ? [n, k] : [k, n])];
          const [a, av] = await make(step, uniformArr(r, size(aShape), -2, 2), aShape, dtype);
          const [b, bv] = await make(step, uniformArr(r, size(bShape), -2, 2), bShape, dtype);
          const e = matmulOracle(av, aShape, bv, bShape, transA, transB);
          const opts = { ...(transA ? { transA } : {}), ...(transB ? { transB } : {}) };
          const out = step(() => matmul(a, b, opts));
          const what = `${JSON.stringify(aShape)}${transA ? 'ᵀ' : ''} @ ${JSON.stringify(bShape)}${transB ? 'ᵀ' : ''} ${dtype}`;
          expect([...out.shape], what).toEqual(e.shape);
          expect(out.dtype).toBe(dtype);
          expectClose(await values(out), e.data, dotTol(dtype, k, e.sumAbs), what);
          expectClose(await values(step(() => a.matmul(b, opts))), e.data, dotTol(dtype, k, e.sumAbs), `method ${what}`);
        }),
      ),
      FC,
    );
  });

  it('matmul: [2,1,m,k] @ [3,k,n] broadcasts to [2,3,m,n]', async () => {
    const arb = fc.tuple(dimArb(3, 1), dimArb(3), dimArb(3, 1), floatArb, seedArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([m, k, n, dtype, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          const [a, av] = await make(step, uniformArr(r, 2 * m * k, -2, 2), [2, 1, m, k], dtype);
          const [b, bv] = await make(step, uniformArr(r, 3 * k * n, -2, 2), [3, k, n], dtype);
          const out = step(() => matmul(a, b));
          expect([...out.shape]).toEqual([2, 3, m, n]);
          // explicit loops over the broadcast batch: out[i][j] = a[i][0] @ b[j]
          const expected: number[] = [];
          for (let i = 0; i < 2; i++)
            for (let j = 0; j < 3; j++)
              for (let r0 = 0; r0 < m; r0++)
                for (let c = 0; c < n; c++) {
                  let s = 0;
                  for (let p = 0; p < k; p++) s += av[(i * m + r0) * k + p]! * bv[(j * k + p) * n + c]!;
                  expected.push(s);
                }
          expectClose(await values(out), expected, dotTol(dtype, k, 4 * k), `[2,1,${m},${k}] @ [3,${k},${n}]`);
        }),
      ),
      FC,
    );
  });

  it('matmul: 1-D operands as torch.matmul (vector·vector, vector·matrix, matrix·vector, batched)', async () => {
    const arb = fc.tuple(fc.constantFrom('vv', 'vm', 'mv'), shapeArb(2, 3), dimArb(), dimArb(), fc.boolean(), floatArb, seedArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([kind, batch, k, other, trans, dtype, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          let aShape: number[];
          let bShape: number[];
          let opts: { transA?: boolean; transB?: boolean } = {};
          if (kind === 'vv') [aShape, bShape] = [[k], [k]];
          else if (kind === 'vm') {
            aShape = [k];
            bShape = [...batch, ...(trans ? [other, k] : [k, other])];
            opts = { transB: trans };
          } else {
            aShape = [...batch, ...(trans ? [k, other] : [other, k])];
            bShape = [k];
            opts = { transA: trans };
          }
          const [a, av] = await make(step, uniformArr(r, size(aShape), -2, 2), aShape, dtype);
          const [b, bv] = await make(step, uniformArr(r, size(bShape), -2, 2), bShape, dtype);
          // torch.matmul: a 1-D first operand is a row [1, k], a 1-D second a column [k, 1]; the added axis is removed
          const a2 = aShape.length === 1 ? [1, k] : aShape;
          const b2 = bShape.length === 1 ? [k, 1] : bShape;
          const e = matmulOracle(av, a2, bv, b2, opts.transA ?? false, opts.transB ?? false);
          const shape = kind === 'vv' ? [] : kind === 'vm' ? [...e.shape.slice(0, -2), e.shape[e.shape.length - 1]!] : e.shape.slice(0, -1);
          const out = step(() => matmul(a, b, opts));
          const what = `${kind} ${JSON.stringify(aShape)} @ ${JSON.stringify(bShape)} ${JSON.stringify(opts)}`;
          expect([...out.shape], what).toEqual(shape);
          expectClose(await values(out), e.data, dotTol(dtype, k, e.sumAbs), what);
        }),
      ),
      FC,
    );
  });

  it('matmul: k = 0 gives zeros of [..., m, n]', async () => {
    const arb = fc.tuple(broadcastPairArb(2, 3), dimArb(), dimArb(), fc.boolean(), fc.boolean(), floatArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([[ba, bb], m, n, transA, transB, dtype]) =>
        scoped(async (step) => {
          const out = step(() => {
            const a = tensor([], [...ba, ...(transA ? [0, m] : [m, 0])], { backend, dtype });
            const b = tensor([], [...bb, ...(transB ? [n, 0] : [0, n])], { backend, dtype });
            return matmul(a, b, { transA, transB });
          });
          const shape = [...broadcastShapes(ba, bb), m, n];
          expect([...out.shape]).toEqual(shape);
          expect(await values(out)).toEqual(new Array<number>(size(shape)).fill(0));
        }),
      ),
      { numRuns: 30 },
    );
  });

  it('matmul promotes f32 @ f64 to f64 (f16 @ f32 to f32 where f64 is not stored) and rejects bad operands', async () => {
    const [narrow, wide] = hasF64 ? (['f32', 'f64'] as const) : (['f16', 'f32'] as const);
    await scoped(async (step) => {
      const [a, av] = await make(step, [1.5, -2, 0.25, 3], [2, 2], narrow);
      const [b, bv] = await make(step, [0.1, 0.2, 0.3, 0.4], [2, 2], wide);
      const out = step(() => matmul(a, b));
      expect(out.dtype).toBe(wide);
      expectClose(await values(out), matmulOracle(av, [2, 2], bv, [2, 2], false, false).data, tol(wide));
      step(() => {
        expect(() => matmul(a, tensor([1, 2, 3, 4, 5, 6], [3, 2], { backend }))).toThrow(/matmul/);
        expect(() => matmul(tensor(new Array(12).fill(1), [2, 2, 3], { backend }), tensor(new Array(18).fill(1), [3, 3, 2], { backend }))).toThrow(/matmul/);
        expect(() => matmul(tensor(2, { backend }), a)).toThrow(/matmul/);
        const ints = tensor([1, 2, 3, 4], [2, 2], { backend, dtype: 'i32' });
        expect(() => matmul(ints, ints)).toThrow(/matmul/);
      });
    });
  });

  // ---- linear ---------------------------------------------------------------------------------

  it('linear: x @ weightᵀ + bias over leading batch dims (with and without bias, in = 0 too)', async () => {
    const arb = fc.tuple(shapeArb(2, 3), dimArb(), dimArb(), fc.constantFrom<'none' | 'null' | 'bias'>('none', 'null', 'bias'), floatArb, seedArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([lead, inF, outF, biasKind, dtype, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          const xShape = [...lead, inF];
          const [x, xv] = await make(step, uniformArr(r, size(xShape), -2, 2), xShape, dtype);
          const [w, wv] = await make(step, uniformArr(r, outF * inF, -2, 2), [outF, inF], dtype);
          const [bias, bv] = await make(step, uniformArr(r, outF, -2, 2), [outF], dtype);
          const hasBias = biasKind === 'bias';
          const out = step(() => (biasKind === 'none' ? linear(x, w) : linear(x, w, hasBias ? bias : null)));
          const shape = [...lead, outF];
          const expected = indices(shape).map((idx) => {
            const o = idx[idx.length - 1]!;
            const row = idx.slice(0, -1);
            let s = hasBias ? bv[o]! : 0;
            for (let i = 0; i < inF; i++) s += xv[(row.reduce((p, v, d) => p * lead[d]! + v, 0)) * inF + i]! * wv[o * inF + i]!;
            return s;
          });
          expect([...out.shape]).toEqual(shape);
          expect(out.dtype).toBe(dtype);
          expectClose(await values(out), expected, dotTol(dtype, inF + 1, 4 * inF + 2), `linear ${JSON.stringify(xShape)} -> ${outF} ${biasKind}`);
        }),
      ),
      FC,
    );
  });

  // ---- softmax --------------------------------------------------------------------------------

  it('softmax / logSoftmax along any axis, stable for ±1000 offsets and −∞ entries (all −∞ gives NaN, as torch)', async () => {
    const arb = shapeArb(4, 4).chain((s) =>
      fc.tuple(
        fc.constant(s),
        fc.integer({ min: -Math.max(s.length, 1), max: Math.max(s.length, 1) - 1 }),
        fc.constantFrom(0, 1000, -1000),
        fc.constantFrom(0, 0.3),
        floatArb,
        seedArb,
        fc.boolean(),
      ),
    );
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, axis, shift, pInf, dtype, seed, useDefault]) =>
        scoped(async (step) => {
          const r = rng(seed);
          const raw = uniformArr(r, size(shape), -10, 10).map((x) => (r() < pInf ? -Infinity : x + shift));
          const [x, xv] = await make(step, raw, shape, dtype);
          const a = shape.length === 0 ? 0 : axis < 0 ? axis + shape.length : axis;
          const useAxis = useDefault ? -1 : axis;
          const aEff = useDefault ? Math.max(shape.length - 1, 0) : a;
          const what = `${JSON.stringify(shape)} axis ${useAxis} shift ${shift} ${dtype}`;
          const [sm, lsm] = step(() => [useDefault ? softmax(x) : softmax(x, axis), useDefault ? x.logSoftmax() : logSoftmax(x, axis)]);
          expect([...sm.shape]).toEqual(shape);
          expect(sm.dtype).toBe(dtype);
          expectClose(await values(sm), alongAxis(xv, shape, aEff, (row) => softmaxRow(row, false)), tol(dtype), `softmax ${what}`);
          const lt = dtype === 'f64' ? tol('f64') : { rtol: 2e-5, atol: 1e-5 };
          expectClose(await values(lsm), alongAxis(xv, shape, aEff, (row) => softmaxRow(row, true)), lt, `logSoftmax ${what}`);
        }),
      ),
      FC,
    );
  });

  it('softmax of huge equal logits is uniform, not NaN (the max is subtracted)', async () => {
    await scoped(async (step) => {
      for (const dtype of storedDtypes(backend, ['f32', 'f64'] as const)) {
        const x = step(() => tensor([1000, 1000, 999, -1000], [1, 4], { backend, dtype }));
        const e = softmaxRow([1000, 1000, 999, -1000], false);
        expectClose(await values(step(() => softmax(x))), e, tol(dtype), `softmax ${dtype}`);
        expectClose(await values(step(() => logSoftmax(x))), softmaxRow([1000, 1000, 999, -1000], true), tol(dtype), `logSoftmax ${dtype}`);
      }
    });
  });

  // ---- cross-entropy ---------------------------------------------------------------------------

  it('crossEntropy: reductions, ignoreIndex (default −100 and custom), labelSmoothing as PyTorch', async () => {
    const arb = fc.tuple(
      shapeArb(2, 4),
      dimArb(5, 1),
      fc.constantFrom<number | undefined>(undefined, -1, 1, 7),
      fc.constantFrom(0, 0.1, 0.5, 1),
      fc.constantFrom<'mean' | 'sum' | 'none' | undefined>(undefined, 'mean', 'sum', 'none'),
      fc.constantFrom(0, 1000),
      floatArb,
      seedArb,
    );
    await fc.assert(
      fc.asyncProperty(arb, async ([tShape, classes, ignoreOpt, eps, reduction, shift, dtype, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          const ignore = ignoreOpt ?? -100;
          const lShape = [...tShape, classes];
          const [logits, lv] = await make(step, uniformArr(r, size(lShape), -5, 5).map((x) => x + shift), lShape, dtype);
          const tv = Array.from({ length: size(tShape) }, () => (r() < 0.25 ? ignore : Math.floor(r() * classes)));
          const targets = step(() => tensor(tv, tShape, { backend, dtype: 'i32' }));
          // per target: (1−ε)·(−log p_t) + ε/C·Σ_c(−log p_c); ignored targets give 0 and are not counted
          const per = tv.map((t, row) => {
            if (t === ignore) return 0;
            const xs = lv.slice(row * classes, (row + 1) * classes);
            const logp = softmaxRow(xs, true);
            const smooth = logp.reduce((p, l) => p - l, 0);
            return (1 - eps) * -logp[t]! + (eps / classes) * smooth;
          });
          const count = tv.filter((t) => t !== ignore).length;
          const total = per.reduce((p, x) => p + x, 0);
          const opts = { ...(ignoreOpt !== undefined ? { ignoreIndex: ignoreOpt } : {}), ...(eps ? { labelSmoothing: eps } : {}), ...(reduction ? { reduction } : {}) };
          const out = step(() => crossEntropy(logits, targets, opts));
          const what = `CE ${JSON.stringify(lShape)} ${JSON.stringify(opts)} shift ${shift} ${dtype}`;
          expect(out.dtype).toBe(dtype);
          const t = loose(dtype, 1 + shift);
          if (reduction === 'none') {
            expect([...out.shape], what).toEqual(tShape);
            expectClose(await values(out), per, t, what);
          } else {
            expect([...out.shape], what).toEqual([]);
            // mean over zero kept targets is 0/0 = NaN, as torch
            expectClose(await values(out), [reduction === 'sum' ? total : total / count], { rtol: t.rtol, atol: t.atol * Math.max(1, per.length) }, what);
          }
        }),
      ),
      FC,
    );
  });

  it('crossEntropy rejects non-i32 targets and mismatched shapes at the call, and out-of-range targets at the next read', async () => {
    const logits = tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [2, 3], { backend, requiresGrad: true });
    tidy(() => {
      expect(() => crossEntropy(logits, tensor([0, 1], [2], { backend, dtype: 'f32' }))).toThrow(/^crossEntropy: targets must be i32/);
      expect(() => crossEntropy(logits, tensor([0, 1, 2], [3], { backend, dtype: 'i32' }))).toThrow(/^crossEntropy: logits \[2,3\] must be targets \[3\] plus a class axis/);
    });
    for (const [bad, value] of [[[0, 3], 3], [[0, -1], -1]] as const) {
      const targets = tensor([...bad], [2], { backend, dtype: 'i32' });
      const loss = crossEntropy(logits, targets);
      await expect(loss.data()).rejects.toThrow(new RegExp(`^crossEntropy: target ${value} is out of range \\[0, 3\\) and is not ignoreIndex`));
      loss.dispose();
      targets.dispose();
    }
    // targets changed in place between the forward and the backward: backward refuses
    const targets = tensor([0, 2], [2], { backend, dtype: 'i32' });
    const loss = crossEntropy(logits, targets);
    const bad = tensor([0, 5], [2], { backend, dtype: 'i32' });
    targets.copy_(bad);
    expect(() => loss.backward()).toThrow(/^backward: 'crossEntropy' needs its targets \[2\] i32 as it was in the forward, but it was modified in place/);
    for (const t of [logits, targets, loss, bad]) t.dispose();
  });

  // ---- normalisation ---------------------------------------------------------------------------

  it('layerNorm over 1 or 2 trailing dims, biased variance, with/without weight and bias, eps', async () => {
    const arb = fc.tuple(
      shapeArb(2, 3),
      fc.array(dimArb(4, 1), { minLength: 1, maxLength: 2 }),
      fc.boolean(),
      fc.boolean(),
      fc.constantFrom<number | undefined>(undefined, 1e-5, 1e-3, 0.5),
      fc.constantFrom(0, 5),
      floatArb,
      seedArb,
    );
    await fc.assert(
      fc.asyncProperty(arb, async ([lead, norm, hasW, hasB, eps, offset, dtype, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          const shape = [...lead, ...norm];
          const cols = size(norm);
          const [x, xv] = await make(step, uniformArr(r, size(shape), -3, 3).map((v) => v + offset), shape, dtype);
          const [w, wv] = await make(step, uniformArr(r, cols, -2, 2), norm, dtype);
          const [b, bv] = await make(step, uniformArr(r, cols, -2, 2), norm, dtype);
          const e = eps ?? 1e-5;
          const expected: number[] = [];
          for (let row = 0; row < size(lead); row++) {
            const xs = xv.slice(row * cols, (row + 1) * cols);
            const mean = xs.reduce((p, v) => p + v, 0) / cols;
            const variance = xs.reduce((p, v) => p + (v - mean) ** 2, 0) / cols;
            xs.forEach((v, c) => expected.push(((v - mean) / Math.sqrt(variance + e)) * (hasW ? wv[c]! : 1) + (hasB ? bv[c]! : 0)));
          }
          const out = step(() => (eps === undefined ? layerNorm(x, norm, hasW ? w : null, hasB ? b : null) : layerNorm(x, norm, hasW ? w : null, hasB ? b : null, eps)));
          expect([...out.shape]).toEqual(shape);
          expect(out.dtype).toBe(dtype);
          expectClose(await values(out), expected, loose(dtype, 10), `layerNorm ${JSON.stringify(shape)} over ${JSON.stringify(norm)} w=${hasW} b=${hasB} eps=${eps}`);
        }),
      ),
      FC,
    );
  });

  it('layerNorm/rmsNorm reject a normalizedShape that is not the trailing dims and mismatched weights', () => {
    tidy(() => {
      const x = tensor(new Array(6).fill(1), [2, 3], { backend });
      expect(() => layerNorm(x, [2])).toThrow(/layerNorm/);
      expect(() => layerNorm(x, [])).toThrow(/layerNorm/);
      expect(() => layerNorm(x, [3], tensor([1, 1], [2], { backend }))).toThrow(/layerNorm/);
      expect(() => rmsNorm(x, [3], tensor([1, 1, 1], [3], { backend, dtype: otherFloat }))).toThrow(/rmsNorm/);
    });
  });

  it('rmsNorm: x / √(mean(x²) + eps) · weight, eps defaulting to the dtype epsilon (torch.finfo)', async () => {
    const arb = fc.tuple(shapeArb(2, 3), fc.array(dimArb(4, 1), { minLength: 1, maxLength: 2 }), fc.boolean(), fc.constantFrom<number | undefined>(undefined, 1e-6, 0.5), fc.constantFrom('plain', 'zero', 'tiny'), floatArb, seedArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([lead, norm, hasW, eps, firstRow, dtype, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          const shape = [...lead, ...norm];
          const cols = size(norm);
          const raw = uniformArr(r, size(shape), -3, 3);
          // a zero first row, or a tiny one whose mean square is comparable to the default eps
          const tiny = dtype === 'f64' ? 1e-8 : 1e-4;
          for (let c = 0; c < Math.min(cols, raw.length); c++) raw[c] = firstRow === 'zero' ? 0 : firstRow === 'tiny' ? raw[c]! * tiny : raw[c]!;
          const [x, xv] = await make(step, raw, shape, dtype);
          const [w, wv] = await make(step, uniformArr(r, cols, -2, 2), norm, dtype);
          // torch.finfo(torch.float32).eps = 2^-23, torch.finfo(torch.float64).eps = 2^-52
          const e = eps ?? (dtype === 'f64' ? 2 ** -52 : 2 ** -23);
          const expected: number[] = [];
          for (let row = 0; row < size(lead); row++) {
            const xs = xv.slice(row * cols, (row + 1) * cols);
            const ms = xs.reduce((p, v) => p + v * v, 0) / cols;
            xs.forEach((v, c) => expected.push((v / Math.sqrt(ms + e)) * (hasW ? wv[c]! : 1)));
          }
          const out = step(() => rmsNorm(x, norm, hasW ? w : null, eps));
          expect([...out.shape]).toEqual(shape);
          expect(out.dtype).toBe(dtype);
          expectClose(await values(out), expected, loose(dtype, 10), `rmsNorm ${JSON.stringify(shape)} over ${JSON.stringify(norm)} w=${hasW} eps=${eps}`);
        }),
      ),
      FC,
    );
  });

  // ---- dropout --------------------------------------------------------------------------------

  it('dropout: the same seed gives the same mask; kept values are scaled by 1/(1−p)', async () => {
    const arb = fc.tuple(shapeArb(3, 5), fc.constantFrom(0.1, 0.5, 0.8), fc.nat(1000), floatArb, seedArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, p, s, dtype, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          // nonzero inputs, so a dropped element (0) is told apart from a kept one
          const [x, xv] = await make(step, uniformArr(r, size(shape), 0.5, 2).map((v) => (r() < 0.5 ? -v : v)), shape, dtype);
          manualSeed(s);
          const a = await values(step(() => dropout(x, p)));
          manualSeed(s);
          const b = await values(step(() => dropout(x, p, true)));
          expect(b, 'same seed, same mask').toEqual(a);
          const g1 = await values(step(() => dropout(x, p, true, new Generator(s + 1))));
          const g2 = await values(step(() => dropout(x, p, true, new Generator(s + 1))));
          expect(g2, 'same generator seed, same mask').toEqual(g1);
          for (const out of [a, g1])
            out.forEach((v, i) => {
              if (v !== 0) expectClose([v], [xv[i]! / (1 - p)], tol(dtype), `kept element ${i}`);
            });
        }),
      ),
      FC,
    );
  });

  it('dropout: training=false and p=0 are the identity; p=1 gives zeros; shape and dtype are kept', async () => {
    const arb = fc.tuple(shapeArb(3, 4), floatArb, seedArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, dtype, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          const [x, xv] = await make(step, uniformArr(r, size(shape), -2, 2), shape, dtype);
          expect(await values(step(() => dropout(x, 0.5, false)))).toEqual(xv);
          expect(await values(step(() => dropout(x, 0)))).toEqual(xv);
          const z = step(() => dropout(x, 1));
          expect([...z.shape]).toEqual(shape);
          expect(z.dtype).toBe(dtype);
          expect((await values(z)).map((v) => Math.abs(v))).toEqual(new Array<number>(size(shape)).fill(0));
          step(() => {
            expect(() => dropout(x, 1.5)).toThrow(/dropout/);
            expect(() => dropout(x, -0.1)).toThrow(/dropout/);
          });
        }),
      ),
      { numRuns: 30 },
    );
  });

  it('dropout keeps about 1−p of a large tensor, and successive calls draw new masks', async () => {
    await scoped(async (step) => {
      const n = 20000;
      const x = step(() => tensor(new Array(n).fill(1), [n], { backend }));
      manualSeed(1234);
      for (const p of [0.1, 0.5, 0.9]) {
        const out = await values(step(() => dropout(x, p)));
        const kept = out.filter((v) => v !== 0).length / n;
        // binomial std ≤ √(0.25/n) ≈ 0.0035: 0.02 is more than 5σ
        expect(Math.abs(kept - (1 - p)), `p=${p}: kept ${kept}`).toBeLessThan(0.02);
      }
      const a = await values(step(() => dropout(x, 0.5)));
      const b = await values(step(() => dropout(x, 0.5)));
      expect(a.some((v, i) => v !== b[i]), 'two draws differ').toBe(true);
    });
  });

  // ---- embedding ------------------------------------------------------------------------------

  it('embedding gathers rows of weight [V, D] at ids of any shape', async () => {
    const arb = fc.tuple(shapeArb(3, 4), dimArb(5, 1), dimArb(4), fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['f32', 'f64', 'bf16'])), seedArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([idShape, vocab, dim, dtype, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          const ids = Array.from({ length: size(idShape) }, () => Math.floor(r() * vocab));
          const [w, wv] = await make(step, uniformArr(r, vocab * dim, -2, 2), [vocab, dim], dtype);
          const out = step(() => embedding(tensor(ids, idShape, { backend, dtype: 'i32' }), w));
          expect([...out.shape]).toEqual([...idShape, dim]);
          expect(out.dtype).toBe(dtype);
          expect(await values(out)).toEqual(ids.flatMap((id) => wv.slice(id * dim, (id + 1) * dim)));
          if (ids.length > 0) {
            // an id out of range: found by the kernel, thrown by the next read
            const bad = step(() => embedding(tensor([vocab], [1], { backend, dtype: 'i32' }), w));
            await expect(bad.data()).rejects.toThrow(new RegExp(`^embedding: index ${vocab} is out of range \\[0, ${vocab}\\)`));
          }
        }),
      ),
      FC,
    );
  });

  // ---- attention ------------------------------------------------------------------------------

  interface MaskSpec {
    data: number[];
    shape: number[];
    bool: boolean;
  }

  /** softmax(q·kᵀ·scale + mask)·v with a naive loop; a query with no allowed key gives zeros. */
  function attentionOracle(
    q: readonly number[],
    k: readonly number[],
    v: readonly number[],
    batchShape: readonly number[],
    tq: number,
    tk: number,
    d: number,
    dv: number,
    scale: number,
    causal: boolean,
    mask: MaskSpec | null,
  ): number[] {
    const out = new Array<number>(size(batchShape) * tq * dv).fill(0);
    indices(batchShape).forEach((lead, b) => {
      for (let i = 0; i < tq; i++) {
        const scores: number[] = [];
        for (let j = 0; j < tk; j++) {
          let s = 0;
          for (let c = 0; c < d; c++) s += q[(b * tq + i) * d + c]! * k[(b * tk + j) * d + c]!;
          s *= scale;
          let allowed = !(causal && j > i); // top-left aligned, as torch's is_causal
          if (mask) {
            const mv = at(mask.data, mask.shape, [...lead, i, j]);
            if (mask.bool) allowed &&= mv !== 0;
            else s += mv;
          }
          scores.push(allowed ? s : -Infinity);
        }
        const m = Math.max(-Infinity, ...scores);
        if (m === -Infinity) continue;
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((p, x) => p + x, 0);
        for (let c = 0; c < dv; c++) {
          let acc = 0;
          for (let j = 0; j < tk; j++) acc += e[j]! * v[(b * tk + j) * dv + c]!;
          out[(b * tq + i) * dv + c] = acc / z;
        }
      }
    });
    return out;
  }

  const attnArb = fc.tuple(
    shapeArb(2, 3),
    dimArb(4),
    dimArb(4),
    dimArb(4, 1),
    dimArb(4),
    fc.constantFrom<'none' | 'causal' | 'bool' | 'float'>('none', 'causal', 'bool', 'float'),
    fc.constantFrom<'shared' | 'perBatch' | 'broadcast'>('shared', 'perBatch', 'broadcast'),
    fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    fc.option(fc.double({ min: 0.05, max: 2, noNaN: true })),
    floatArb,
    seedArb,
  );

  it('scaledDotProductAttention vs a naive oracle: no mask, causal, bool/float masks, custom scale, Tq ≠ Tk, Dv ≠ D', async () => {
    await fc.assert(
      fc.asyncProperty(attnArb, async ([batch, tq, tk, d, dv, kind, maskLayout, ones, scaleOpt, dtype, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          const [q, qv] = await make(step, uniformArr(r, size(batch) * tq * d, -2, 2), [...batch, tq, d], dtype);
          const [k, kv] = await make(step, uniformArr(r, size(batch) * tk * d, -2, 2), [...batch, tk, d], dtype);
          const [v, vv] = await make(step, uniformArr(r, size(batch) * tk * dv, -2, 2), [...batch, tk, dv], dtype);
          let mask: MaskSpec | null = null;
          let maskT: Tensor | null = null;
          if (kind === 'bool' || kind === 'float') {
            const full = [...batch, tq, tk];
            // shared [Tq, Tk]; per batch [..., Tq, Tk]; or any shape that broadcasts (key padding [.., 1, Tk], …)
            const shape =
              maskLayout === 'shared' ? [tq, tk] : maskLayout === 'perBatch' ? full : full.map((s, i) => (ones[i % ones.length] ? 1 : s)).slice(ones[3] ? 1 : 0);
            const data = Array.from({ length: size(shape) }, () =>
              kind === 'bool' ? (r() < 0.7 ? 1 : 0) : r() < 0.25 ? -Infinity : -2 + 4 * r(),
            );
            [maskT] = await make(step, data, shape, kind === 'bool' ? 'bool' : dtype);
            mask = { data: await values(maskT), shape, bool: kind === 'bool' };
          }
          const scale = scaleOpt ?? 1 / Math.sqrt(d);
          const opts = {
            ...(maskT ? { attnMask: maskT } : {}),
            ...(kind === 'causal' ? { isCausal: true } : {}),
            ...(scaleOpt !== null ? { scale: scaleOpt } : {}),
          };
          const out = step(() => scaledDotProductAttention(q, k, v, opts));
          const what = `sdpa batch ${JSON.stringify(batch)} tq ${tq} tk ${tk} d ${d} dv ${dv} ${kind} ${mask ? JSON.stringify(mask.shape) : ''} scale ${scaleOpt} ${dtype}`;
          expect([...out.shape], what).toEqual([...batch, tq, dv]);
          expect(out.dtype).toBe(dtype);
          expectClose(await values(out), attentionOracle(qv, kv, vv, batch, tq, tk, d, dv, scale, kind === 'causal', mask), loose(dtype), what);
        }),
      ),
      FC,
    );
  });

  it("attention layouts agree: 'bthd' is 'bhtd' transposed, and packedAttention is split + heads + causal attention + merge", async () => {
    const arb = fc.tuple(dimArb(2, 1), dimArb(3, 1), dimArb(6, 1), dimArb(5, 1), fc.boolean(), seedArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([b, h, t, d, causal, seed]) => {
        const ts = tidy(() => {
          const gen = new Generator(seed);
          const q = randn([b, t, h, d], { backend, generator: gen });
          const k = randn([b, t, h, d], { backend, generator: gen });
          const v = randn([b, t, h, d], { backend, generator: gen });
          const bthd = scaledDotProductAttention(q, k, v, { layout: 'bthd', isCausal: causal });
          const bhtd = scaledDotProductAttention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), { isCausal: causal }).transpose(1, 2);
          const qkv = concat([q.reshape([b, t, h * d]), k.reshape([b, t, h * d]), v.reshape([b, t, h * d])], -1);
          const packed = packedAttention(qkv, h, { isCausal: causal });
          return [bthd, bhtd, packed, bthd.reshape([b, t, h * d])];
        });
        const [x, y, p, xr] = await Promise.all(ts.map((t) => values(t)));
        ts.forEach((t) => t.dispose());
        expectClose(x!, y!, { rtol: 1e-5, atol: 1e-6 }, 'bthd vs bhtd');
        expectClose(p!, xr!, { rtol: 1e-5, atol: 1e-6 }, 'packed vs bthd');
      }),
      FC,
    );
  });

  it('causalOffset is the mask j ≤ i + offset (bottom-right for a chunk after cached keys; negative leaves early rows empty)', async () => {
    const arb = fc.tuple(dimArb(5, 1), dimArb(7, 1), dimArb(4, 1), fc.integer({ min: -3, max: 6 }), seedArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([tq, tk, d, offset, seed]) => {
        const ts = tidy(() => {
          const gen = new Generator(seed);
          const q = randn([2, tq, d], { backend, generator: gen });
          const k = randn([2, tk, d], { backend, generator: gen });
          const v = randn([2, tk, d], { backend, generator: gen });
          const m = Array.from({ length: tq * tk }, (_, e) => (e % tk <= Math.floor(e / tk) + offset ? 1 : 0));
          const attnMask = tensor(m, [tq, tk], { backend, dtype: 'bool' });
          return [scaledDotProductAttention(q, k, v, { isCausal: true, causalOffset: offset }), scaledDotProductAttention(q, k, v, { attnMask })];
        });
        const [a, b] = await Promise.all(ts.map((t) => values(t)));
        ts.forEach((t) => t.dispose());
        expectClose(a!, b!, { rtol: 1e-5, atol: 1e-6 }, `offset ${offset}`);
      }),
      FC,
    );
  });

  it('attention dropout: the kept weights are those whose Philox word is ≥ ⌈p·2³²⌉, scaled by 1/(1−p), reproducible from the generator', async () => {
    // oracle: with v = I (Tk = Dv), the output row i is the dropped-out weight row itself
    const [tq, tk, p, seed] = [5, 6, 0.4, 77];
    const ts = tidy(() => {
      const q = randn([1, tq, 3], { backend, generator: new Generator(1) });
      const k = randn([1, tk, 3], { backend, generator: new Generator(2) });
      const v = eye(tk, tk, { backend }).reshape([1, tk, tk]);
      const plain = scaledDotProductAttention(q, k, v);
      const gen = new Generator(seed);
      const dropped = scaledDotProductAttention(q, k, v, { dropoutP: p, generator: gen });
      const again = scaledDotProductAttention(q, k, v, { dropoutP: p, generator: new Generator(seed) });
      return [plain, dropped, again];
    });
    const [plain, dropped, again] = await Promise.all(ts.map((t) => values(t)));
    ts.forEach((t) => t.dispose());
    expect(again).toEqual(dropped);
    const threshold = Math.ceil(p * 2 ** 32);
    const words = new Uint32Array(4);
    const want = plain!.map((w, e) => {
      philox4x32(Math.floor(e / 4), 0, 0, 0, seed, 0, words); // generator offset 0, counter ⌊e/4⌋
      return words[e % 4]! >= threshold ? w / (1 - p) : 0;
    });
    expectClose(dropped!, want, { rtol: 1e-5, atol: 1e-7 }, 'dropped weights');
    expect(want.filter((w) => w === 0).length).toBeGreaterThan(0);
  });

  it('scaledDotProductAttention: a fully masked query row (bool or −∞ float mask, or Tk = 0) gives zeros', async () => {
    const arb = fc.tuple(dimArb(3, 1), dimArb(3, 1), dimArb(3, 1), dimArb(3, 1), fc.nat(2), floatArb, seedArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([tq, tk, d, dv, which, dtype, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          const [q, qv] = await make(step, uniformArr(r, 2 * tq * d, -2, 2), [2, tq, d], dtype);
          const [k, kv] = await make(step, uniformArr(r, 2 * tk * d, -2, 2), [2, tk, d], dtype);
          const [v, vv] = await make(step, uniformArr(r, 2 * tk * dv, -2, 2), [2, tk, dv], dtype);
          const row = which % tq;
          // query `row` of batch 1 sees nothing; other entries are allowed
          const boolData = indices([2, tq, tk]).map(([b, i]) => (b === 1 && i === row ? 0 : 1));
          const floatData = boolData.map((x, i) => (x ? 0.5 * Math.sin(i) : -Infinity));
          for (const [data, isBool] of [[boolData, true], [floatData, false]] as const) {
            const [m, mv] = await make(step, data, [2, tq, tk], isBool ? 'bool' : dtype);
            const out = await values(step(() => scaledDotProductAttention(q, k, v, { attnMask: m })));
            const expected = attentionOracle(qv, kv, vv, [2], tq, tk, d, dv, 1 / Math.sqrt(d), false, { data: mv, shape: [2, tq, tk], bool: isBool });
            expectClose(out, expected, loose(dtype), `masked row ${row} ${isBool ? 'bool' : 'float'}`);
            expect(out.slice((tq + row) * dv, (tq + row + 1) * dv).map(Math.abs)).toEqual(new Array<number>(dv).fill(0));
          }
          const empty = step(() => scaledDotProductAttention(q, tensor([], [2, 0, d], { backend, dtype }), tensor([], [2, 0, dv], { backend, dtype })));
          expect([...empty.shape]).toEqual([2, tq, dv]);
          expect((await values(empty)).map(Math.abs)).toEqual(new Array<number>(2 * tq * dv).fill(0));
        }),
      ),
      { numRuns: 30 },
    );
  });

  it('scaledDotProductAttention rejects mismatched shapes, dtypes and masks', () => {
    tidy(() => {
      const q = tensor(new Array(6).fill(0.5), [1, 2, 3], { backend });
      const k = tensor(new Array(9).fill(0.5), [1, 3, 3], { backend });
      const v = tensor(new Array(6).fill(0.5), [1, 3, 2], { backend });
      expect(() => scaledDotProductAttention(q, tensor(new Array(6).fill(0.5), [1, 3, 2], { backend }), v)).toThrow(/scaledDotProductAttention/);
      expect(() => scaledDotProductAttention(q, k, tensor(new Array(4).fill(0.5), [1, 2, 2], { backend }))).toThrow(/scaledDotProductAttention/);
      expect(() => scaledDotProductAttention(q, k, v.cast(otherFloat))).toThrow(/scaledDotProductAttention/);
      expect(() => scaledDotProductAttention(q, k, v, { attnMask: tensor([true, false], [2, 1, 1], { backend }) })).toThrow(/scaledDotProductAttention/);
      expect(() => scaledDotProductAttention(q, k, v, { attnMask: tensor([1, 0, 1], [3], { backend, dtype: 'i32' }) })).toThrow(/scaledDotProductAttention/);
    });
  });

  // ---- half precision --------------------------------------------------------------------------

  const halfArb = fc.constantFrom<DType>('bf16', 'f16');

  it('bf16/f16 matmul computes in f32 and rounds once at the end', async () => {
    const arb = fc.tuple(broadcastPairArb(2, 3), dimArb(), dimArb(), dimArb(), fc.boolean(), fc.boolean(), halfArb, seedArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([[ba, bb], m, k, n, transA, transB, dtype, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          const aShape = [...ba, ...(transA ? [k, m] : [m, k])];
          const bShape = [...bb, ...(transB ? [n, k] : [k, n])];
          const [a, av] = await make(step, uniformArr(r, size(aShape), -2, 2), aShape, dtype);
          const [b, bv] = await make(step, uniformArr(r, size(bShape), -2, 2), bShape, dtype);
          const e = matmulOracle(av, aShape, bv, bShape, transA, transB);
          const out = step(() => matmul(a, b, { transA, transB }));
          expect([...out.shape]).toEqual(e.shape);
          expect(out.dtype).toBe(dtype);
          expectClose(await values(out), e.data.map((x) => roundTo(dtype, x)), tol(dtype), `${dtype} matmul`);
        }),
      ),
      FC,
    );
  });

  it('bf16/f16 matmul of many ones accumulates past the half range of exact integers', async () => {
    // accumulating in bf16 stalls at 256 (256 + 1 rounds back to 256), in f16 at 2048; f32 accumulation is exact
    await scoped(async (step) => {
      for (const [dtype, k] of [['bf16', 300], ['f16', 3000]] as const) {
        const [a, b] = step(() => [tensor(new Array(2 * k).fill(1), [2, k], { backend, dtype }), tensor(new Array(k).fill(1), [k, 1], { backend, dtype })]);
        expectClose(await values(step(() => matmul(a, b))), [roundTo(dtype, k), roundTo(dtype, k)], tol(dtype), `${dtype} sum of ${k} ones`);
        const x = step(() => tensor(new Array(k).fill(1), [1, k], { backend, dtype }));
        expectClose(await values(step(() => linear(x, b.mT))), [roundTo(dtype, k)], tol(dtype), `${dtype} linear of ${k} ones`);
      }
    });
  });

  it('bf16/f16 softmax and logSoftmax compute in f32 and round at the end', async () => {
    const arb = fc.tuple(shapeArb(3, 5).filter((s) => s.length >= 1), halfArb, fc.constantFrom(0, 100), seedArb);
    await fc.assert(
      fc.asyncProperty(arb, async ([shape, dtype, shift, seed]) =>
        scoped(async (step) => {
          const r = rng(seed);
          const [x, xv] = await make(step, uniformArr(r, size(shape), -4, 4).map((v) => v + shift), shape, dtype);
          const a = shape.length - 1;
          const sm = step(() => softmax(x));
          expect(sm.dtype).toBe(dtype);
          expectClose(await values(sm), alongAxis(xv, shape, a, (row) => softmaxRow(row, false)).map((v) => roundTo(dtype, v)), tol(dtype), `${dtype} softmax`);
          const lsm = step(() => logSoftmax(x, 0));
          expect(lsm.dtype).toBe(dtype);
          expectClose(await values(lsm), alongAxis(xv, shape, 0, (row) => softmaxRow(row, true)).map((v) => roundTo(dtype, v)), tol(dtype), `${dtype} logSoftmax`);
        }),
      ),
      FC,
    );
    // a long row: a sum of exps accumulated in the half dtype would stall (at 256 for bf16, 2048 for f16)
    await scoped(async (step) => {
      for (const [dtype, n] of [['bf16', 600], ['f16', 3000]] as const) {
        const out = await values(step(() => softmax(tensor(new Array(n).fill(0), [1, n], { backend, dtype }))));
        expectClose(out, new Array<number>(n).fill(roundTo(dtype, 1 / n)), { rtol: tol(dtype).rtol, atol: 0 }, `${dtype} uniform softmax of ${n}`);
      }
    });
  });
});
