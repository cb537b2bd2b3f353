/**
 * The fused optimizer kernels (Backend.adamUpdate, lambUpdate) on every backend, against the
 * formulas written out here in plain JS over several steps, f32 and f64 (and bf16 parameters,
 * updated through an f32 copy); and the many-tensor kernels (multiNorm, multiScale, and the
 * updates over lists) on lists of tiny and large tensors, large enough to cross the cpu kernels'
 * 16384-element blocks.
 */
import { expect, test } from 'vitest';
import fc from 'fast-check';
import { adamUpdate, bf16Bits, bf16Value, lambUpdate, multiNorm, multiScale, tensor, type DType, type Tensor } from '../src/index.js';
import { describeBackends, expectClose, FC, rng, stored, stores, tol, values } from './harness.js';

interface Hyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupled: boolean;
}

const round = (dtype: DType) => (dtype === 'f64' ? (x: number) => x : dtype === 'bf16' ? (x: number) => bf16Value(bf16Bits(x)) : Math.fround);

// The oracle: Adam/AdamW and LAMB as in the papers and torch.optim, moments stored at state precision.
function oracle(kind: 'adam' | 'lamb', p0: number[], grads: number[][], h: Hyper, dtype: DType): { p: number[]; trust: number[] } {
  const rp = round(dtype);
  const rs = round(dtype === 'f64' ? 'f64' : 'f32');
  let p = p0.map(rp);
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const trusts: number[] = [];
  grads.forEach((g0, s) => {
    const t = s + 1;
    const g = g0.map(rp);
    const bc1 = 1 - h.beta1 ** t;
    const bc2 = 1 - h.beta2 ** t;
    if (kind === 'adam') {
      p = p.map((w, i) => {
        let gi = g[i]!;
        if (h.decoupled) w = w - h.lr * h.weightDecay * w;
        else gi = gi + h.weightDecay * w;
        m[i] = rs(h.beta1 * m[i]! + (1 - h.beta1) * gi);
        v[i] = rs(h.beta2 * v[i]! + (1 - h.beta2) * gi * gi);
        return rp(w - (h.lr * (m[i]! / bc1)) / (Math.sqrt(v[i]! / bc2) + h.eps));
      });
    } else {
      const r = p.map((w, i) => {
        m[i] = rs(h.beta1 * m[i]! + (1 - h.beta1) * g[i]!);
        v[i] = rs(h.beta2 * v[i]! + (1 - h.beta2) * g[i]! * g[i]!);
        return m[i]! / bc1 / (Math.sqrt(v[i]! / bc2) + h.eps) + h.weightDecay * w;
      });
      // ‖x‖ = √Σx², unscaled (as torch's norm): squares of tiny values underflow to 0 there too
      const wn = Math.sqrt(p.reduce((s, x) => s + x * x, 0));
      const rn = Math.sqrt(r.reduce((s, x) => s + x * x, 0));
      const trust = wn > 0 && rn > 0 ? wn / rn : 1;
      // the stored ratio is f32 (f64 for f64 parameters): past f32's range it is Infinity there
      trusts.push(dtype === 'f64' ? trust : Math.fround(trust));
      p = p.map((w, i) => rp(w - h.lr * trust * r[i]!));
    }
  });
  return { p, trust: trusts };
}

const hyperArb = fc.record({
  lr: fc.double({ min: 1e-4, max: 0.1, noNaN: true }),
  beta1: fc.double({ min: 0.5, max: 0.95, noNaN: true }),
  beta2: fc.double({ min: 0.9, max: 0.9999, noNaN: true }),
  eps: fc.constantFrom(1e-8, 1e-6),
  weightDecay: fc.constantFrom(0, 0.01, 0.1),
  decoupled: fc.boolean(),
});

describeBackends('fused optimizer updates', (backend) => {
  for (const dtype of ['f32', 'f64', 'bf16'] as const)
    for (const kind of ['adam', 'lamb'] as const)
      test.skipIf(!stores(backend, dtype))(`${kind} ${dtype} matches the formulas over 3 steps`, async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 1, max: 40 }),
            hyperArb,
            fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 160, maxLength: 160 }),
            async (n, h, vals) => {
              const p0 = vals.slice(0, n);
              const grads = [0, 1, 2].map((s) => vals.slice(40 * (s + 1), 40 * (s + 1) + n));
              const stateDtype = dtype === 'f64' ? 'f64' : 'f32';
              const p = tensor(p0, [n], { backend, dtype });
              const m = tensor(new Array(n).fill(0), [n], { backend, dtype: stateDtype });
              const v = tensor(new Array(n).fill(0), [n], { backend, dtype: stateDtype });
              const trusts: number[] = [];
              for (const [s, gv] of grads.entries()) {
                const g = tensor(gv, [n], { backend, dtype });
                const hyper = { ...h, step: s + 1 };
                if (kind === 'adam') adamUpdate(p, g, m, v, hyper);
                else {
                  const t = lambUpdate(p, g, m, v, hyper);
                  trusts.push(...(await t.data()));
                  t.dispose();
                }
                g.dispose();
              }
              const want = oracle(kind, p0, grads, h, dtype);
              const tolerance = dtype === 'f64' ? { rtol: 1e-12, atol: 1e-14 } : dtype === 'bf16' ? { rtol: 1e-2, atol: 1e-2 } : { rtol: 1e-6, atol: 1e-7 };
              expectClose(Array.from(await p.data()), want.p, tolerance, 'param');
              // bf16: the kernel rounds f64 → f32 → bf16 (the oracle f64 → bf16), so a parameter may differ by
              // one bf16 ulp after a step, and the next trust ratio by about that much
              // trust ratios are stored in f32 (f64 for f64 parameters): tiny ones are f32 subnormals
              if (kind === 'lamb') expectClose(trusts, want.trust, { rtol: dtype === 'bf16' ? 2e-2 : 1e-5, atol: dtype === 'f64' ? 0 : 2 ** -149 }, 'trust');
              [p, m, v].forEach((t) => t.dispose());
            },
          ),
          { numRuns: Math.min(FC.numRuns, 25) },
        );
      });

  test('bad arguments are named', () => {
    const p = tensor([1, 2], { backend });
    const g = tensor([1, 2, 3], { backend });
    const m = tensor([0, 0], { backend });
    const h = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
    expect(() => adamUpdate(p, g, m, m, h)).toThrow(/^adamUpdate: grad of parameter 0 must be f32 with 2 elements like the parameter \[2\], got \[3\] f32/);
    expect(() => adamUpdate([p, p], [p], [m, m], [m, m], h)).toThrow(/^adamUpdate: got 2 parameters but 1 grads/);
    expect(() => adamUpdate([p, p], [p, p], [m, m], [m, m], { ...h, step: [1] })).toThrow(/^adamUpdate: got 2 parameters but 1 step counts/);
    expect(() => lambUpdate(p, p, m, m, { ...h, step: 0 })).toThrow(/^lambUpdate: step must be an integer ≥ 1, got 0/);
    // a state of another float dtype (f64, or bf16 where f64 is not stored) is refused
    const wrong = tensor([0, 0], { backend, dtype: stores(backend, 'f64') ? 'f64' : 'bf16' });
    expect(() => adamUpdate(p, p, wrong, m, h)).toThrow(/^adamUpdate: m of parameter 0 must be f32/);
  });
});

// Sizes around the cpu kernels' blocks of 16384 elements, tiny ones and an empty one.
const LIST_SIZES = [1, 0, 7, 16384, 16385, 40000, 3, 100];

function listData(seed: number, sizes: readonly number[] = LIST_SIZES): number[][] {
  const r = rng(seed);
  return sizes.map((n) => Array.from({ length: n }, () => 4 * r() - 2));
}

// ‖x‖_ord in f64, as the reference: NaN propagates, ord ∞ is the largest magnitude.
function normOracle(x: readonly number[], ord: number): number {
  let acc = 0;
  for (const v of x) {
    const m = Math.abs(v);
    if (ord === Infinity) acc = m > acc || m !== m ? m : acc;
    else acc += m ** ord;
  }
  return ord === Infinity || ord === 1 ? acc : acc ** (1 / ord);
}

describeBackends('many-tensor kernels', (backend) => {
  const make = (data: number[][], dtype: DType): Tensor[] => data.map((d) => tensor(Float64Array.from(d), [d.length], { backend, dtype }));

  for (const dtype of ['f32', 'f64'] as const)
    test.skipIf(!stores(backend, dtype))(`multiNorm of every tensor of a list, ord 1, 2, 3 and ∞ (${dtype}), NaN and ∞ propagating`, async () => {
      const data = listData(1).map((d) => d.map(stored(dtype)));
      const special = data.map((d) => [...d]);
      special[5]![20000] = NaN;
      special[3]![5] = -Infinity;
      for (const d of [data, special]) {
        const xs = make(d, dtype);
        for (const ord of [1, 2, 3, Infinity]) {
          const out = multiNorm(xs, ord);
          expect(out.dtype).toBe(dtype);
          expectClose(await values(out), d.map((x) => stored(dtype)(normOracle(x, ord))), tol(dtype), `ord ${ord}`);
          out.dispose();
        }
        xs.forEach((x) => x.dispose());
      }
    });

  for (const dtype of ['f32', 'f64'] as const)
    test.skipIf(!stores(backend, dtype))(`multiScale multiplies every tensor of a list in place (${dtype})`, async () => {
      const data = listData(2).map((d) => d.map(stored(dtype)));
      const xs = make(data, dtype);
      const scale = tensor(0.37, [], { backend, dtype });
      multiScale(xs, scale);
      const s = stored(dtype)(0.37);
      for (const [i, x] of xs.entries()) expectClose(await values(x), data[i]!.map((v) => stored(dtype)(v * s)), tol(dtype), `tensor ${i}`);
      [...xs, scale].forEach((t) => t.dispose());
    });

  for (const dtype of ['f32', 'f64'] as const)
    for (const kind of ['adam', 'lamb'] as const)
      test.skipIf(!stores(backend, dtype))(`${kind} over a list (${dtype}): each parameter as the formulas say, and as its own call, with its own step`, async () => {
        const h = { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.01, decoupled: true };
        const state = dtype === 'f64' ? 'f64' : 'f32';
        const p0 = listData(3);
        const g = listData(4);
        const zeros = (): Tensor[] => make(p0.map((d) => d.map(() => 0)), state);
        // one update of the whole list; LAMB's trust ratios (one per parameter) are returned
        const step = async (ps: Tensor[], ms: Tensor[], vs: Tensor[], steps: number | number[]): Promise<number[]> => {
          const gs = make(g.slice(0, ps.length), dtype);
          const hyper = { ...h, step: steps };
          let trust: number[] = [];
          if (kind === 'adam') adamUpdate(ps, gs, ms, vs, hyper);
          else {
            const t = lambUpdate(ps, gs, ms, vs, hyper);
            trust = await values(t);
            t.dispose();
          }
          gs.forEach((t) => t.dispose());
          return trust;
        };
        const tolerance = dtype === 'f64' ? { rtol: 1e-12, atol: 1e-14 } : { rtol: 1e-6, atol: 1e-7 };
        // one step from zero moments: the formulas, parameter by parameter
        const [ps, ms, vs] = [make(p0, dtype), zeros(), zeros()];
        const trust1 = await step(ps, ms, vs, 1);
        for (const [i, p] of ps.entries()) {
          const want = oracle(kind, p0[i]!, [g[i]!], h, dtype);
          expectClose(await values(p), want.p, tolerance, `parameter ${i}`);
          if (kind === 'lamb') expectClose([trust1[i]!], want.trust, { rtol: dtype === 'f64' ? 1e-12 : 1e-6, atol: 0 }, `trust ${i}`);
        }
        // a second step with a different step count per parameter equals one call per parameter
        const steps = p0.map((_, i) => 2 + i);
        const trust2 = await step(ps, ms, vs, steps);
        const [qs, ns, ws] = [make(p0, dtype), zeros(), zeros()];
        await step(qs, ns, ws, 1);
        for (let i = 0; i < qs.length; i++) {
          const gs = make([g[i]!], dtype);
          const hyper = { ...h, step: steps[i]! };
          if (kind === 'adam') adamUpdate(qs[i]!, gs[0]!, ns[i]!, ws[i]!, hyper);
          else {
            const t = lambUpdate(qs[i]!, gs[0]!, ns[i]!, ws[i]!, hyper);
            expect((await values(t))[0], `trust ${i}`).toBe(trust2[i]);
            t.dispose();
          }
          gs[0]!.dispose();
        }
        for (let i = 0; i < ps.length; i++) {
          expect(await values(ps[i]!), `parameter ${i}`).toEqual(await values(qs[i]!));
          expect(await values(ms[i]!), `m ${i}`).toEqual(await values(ns[i]!));
          expect(await values(vs[i]!), `v ${i}`).toEqual(await values(ws[i]!));
        }
        [...ps, ...ms, ...vs, ...qs, ...ns, ...ws].forEach((t) => t.dispose());
      });
});
