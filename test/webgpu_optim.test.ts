/**
 * The webgpu optimizer kernels against `ref` at the edges of f32, which the property tests reach
 * only by chance: norms of tensors whose squares underflow or overflow f32 (1e−30, subnormals,
 * 1e25) at every ord, in one workgroup and in many; LAMB and Adam steps on subnormal gradients
 * and parameters, where moments of a few units of 2^−149 must round as the reference's doubles do
 * (the fast-check counterexamples that found each case), at both LAMB paths (one workgroup, and
 * partials over more than 4096 elements).
 */
import { describe, expect, test } from 'vitest';
import * as k from '../src/index.js';
import { expectClose, rng, tol } from './harness.js';

const info = k.backends().find((b) => b.name === 'webgpu');
const available = !!info?.available;
if (!available) console.warn(`[kiln tests] webgpu_optim.test.ts skipped: webgpu is unavailable: ${info?.reason ?? 'not registered'}`);

const make = (backend: string, data: readonly number[]) => k.tensor(Float64Array.from(data), [data.length], { backend, dtype: 'f32' });

// Sizes on both sides of the one-workgroup limit (4096), an empty one, and one of many workgroups.
const SIZES = [1, 0, 5, 4096, 4097, 70000];

function lists(seed: number, scale: number): number[][] {
  const r = rng(seed);
  return SIZES.map((n) => Array.from({ length: n }, () => (4 * r() - 2) * scale));
}

interface Hyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupled: boolean;
}

/** Three steps of `kind` on `backend` from p0 with the gradients of each step: params, moments, trust ratios. */
async function steps(backend: string, kind: 'adam' | 'lamb', p0: number[][], grads: number[][][], h: Hyper): Promise<{ p: number[][]; m: number[][]; v: number[][]; trust: number[] }> {
  const p = p0.map((d) => make(backend, d));
  const m = p0.map((d) => make(backend, d.map(() => 0)));
  const v = p0.map((d) => make(backend, d.map(() => 0)));
  const trust: number[] = [];
  for (const [s, gs] of grads.entries()) {
    const g = gs.map((d) => make(backend, d));
    if (kind === 'adam') k.adamUpdate(p, g, m, v, { ...h, step: s + 1 });
    else {
      const t = k.lambUpdate(p, g, m, v, { ...h, step: s + 1 });
      trust.push(...(await t.data()));
      t.dispose();
    }
    g.forEach((t) => t.dispose());
  }
  const read = (ts: k.Tensor[]) => Promise.all(ts.map(async (t) => Array.from(await t.data())));
  const out = { p: await read(p), m: await read(m), v: await read(v), trust };
  [...p, ...m, ...v].forEach((t) => t.dispose());
  return out;
}

async function expectSteps(kind: 'adam' | 'lamb', p0: number[][], grads: number[][][], h: Hyper): Promise<void> {
  const want = await steps('ref', kind, p0, grads, h);
  const got = await steps('webgpu', kind, p0, grads, h);
  got.p.forEach((p, i) => expectClose(p, want.p[i]!, { rtol: 1e-6, atol: 1e-7 }, `param ${i}`));
  // tiny moments are rounded exactly as the reference rounds its doubles
  got.m.forEach((m, i) => expectClose(m, want.m[i]!, { rtol: 1e-6, atol: 0 }, `m ${i}`));
  expectClose(got.trust, want.trust, { rtol: 1e-5, atol: 2 ** -149 }, 'trust');
}

// The fused property test's layout: p0 = vals[0, n), the gradient of step s = vals[40s, 40s + n).
function counterexample(n: number, vals: Record<number, number>): [number[][], number[][][]] {
  const at = (i: number) => vals[i] ?? 0;
  const p0 = [Array.from({ length: n }, (_, i) => at(i))];
  const grads = [1, 2, 3].map((s) => [Array.from({ length: n }, (_, i) => at(40 * s + i))]);
  return [p0, grads];
}

describe.skipIf(!available)('webgpu optimizer kernels at the edges of f32', () => {
  test('multiNorm of tiny, subnormal and huge tensors at ords 0.5, 1, 2, 3, 7 and ∞', async () => {
    for (const scale of [1, 1e-30, 1e-41, 1e25, 1e37]) {
      const data = lists(7, scale);
      data[3]![17] = 3e-42; // a subnormal beside normal values
      const ref = data.map((d) => make('ref', d));
      const gpu = data.map((d) => make('webgpu', d));
      for (const ord of [0.5, 1, 2, 3, 7, Infinity]) {
        const want = Array.from(await k.multiNorm(ref, ord).data());
        const got = Array.from(await k.multiNorm(gpu, ord).data());
        // subnormal norms are as exact as f32 holds them; the rest within f32's tolerance
        expectClose(got, want, { ...tol('f32'), atol: 2 ** -140 }, `scale ${scale} ord ${ord}`);
      }
      [...ref, ...gpu].forEach((t) => t.dispose());
    }
  });

  test('multiNorm propagates NaN over ∞ in one workgroup and in many', async () => {
    const data = lists(8, 1);
    data[2]![1] = Infinity;
    data[3]![7] = -Infinity;
    data[3]![8] = NaN;
    data[5]![60000] = NaN;
    data[4]![4000] = -Infinity;
    const xs = data.map((d) => make('webgpu', d));
    for (const ord of [1, 2, 3, Infinity]) {
      const got = Array.from(await k.multiNorm(xs, ord).data());
      expect(got.slice(2)).toEqual([Infinity, NaN, Infinity, NaN]);
    }
    xs.forEach((t) => t.dispose());
  });

  test('LAMB on subnormal gradients and parameters matches the reference (one workgroup)', async () => {
    const h = { lr: 1e-4, beta1: 0.5, beta2: 0.9, eps: 1e-6, weightDecay: 0, decoupled: false };
    // β1·m ties on the subnormal grid, broken by β1's last bit
    await expectSteps('lamb', ...counterexample(1, { 80: -4.694349855488137e-44 }), { ...h, beta1: 0.5000000000000001, eps: 1e-8 });
    // wd·p of a subnormal p
    await expectSteps('lamb', ...counterexample(4, { 3: -1.0647836446095339e-40, 80: -2.1019476964872256e-45 }), { ...h, lr: 0.03870903886854649, eps: 1e-8, weightDecay: 0.1 });
    // lr·φ·r with r subnormal beside a normal parameter
    await expectSteps('lamb', ...counterexample(5, { 4: -0.7186420261859895, 43: -3.503246160812043e-45 }), h);
  });

  test('LAMB and Adam with subnormal gradients on a parameter of many workgroups', async () => {
    const n = 9000;
    const r = rng(11);
    const tiny = () => Math.round(r() * 40 - 20) * 2 ** -149;
    const p0 = [Array.from({ length: n }, (_, i) => (i % 3 === 0 ? tiny() * 1000 : 0)), Array.from({ length: 70 }, tiny)];
    const grads = [0, 1, 2].map(() => [Array.from({ length: n }, tiny), Array.from({ length: 70 }, tiny)]);
    for (const weightDecay of [0, 0.1]) {
      // β1 = 7/8: the reference's double products of moments this small are exact, so its rounding
      // to f32 is the one rounding the kernel does (with 0.9 the double can round onto a tie)
      const h = { lr: 0.01, beta1: 0.875, beta2: 0.99, eps: 1e-8, weightDecay, decoupled: true };
      await expectSteps('lamb', p0, grads, h);
      await expectSteps('adam', p0, grads, h);
    }
  });
});
