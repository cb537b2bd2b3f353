/**
 * The fused optimizer kernels (Backend.adamUpdate, lambUpdate) on every backend, against the
 * formulas written out here in plain JS over several steps, f32 and f64 (and bf16 parameters,
 * updated through an f32 copy).
 */
import { expect, test } from 'vitest';
import fc from 'fast-check';
import { adamUpdate, bf16Bits, bf16Value, lambUpdate, tensor, type DType } from '../src/index.js';
import { describeBackends, expectClose, FC } from './harness.js';

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
      trusts.push(trust);
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
      test(`${kind} ${dtype} matches the formulas over 3 steps`, async () => {
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
    expect(() => lambUpdate(p, p, m, m, { ...h, step: 0 })).toThrow(/^lambUpdate: step must be a positive integer/);
    expect(() => adamUpdate(p, p, tensor([0, 0], { backend, dtype: 'f64' }), m, h)).toThrow(/^adamUpdate: m of parameter 0 must be f32/);
  });
});
