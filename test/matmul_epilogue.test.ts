/**
 * matmul's fused epilogue (bias, then relu / gelu / gelu_tanh / silu), which the tensor layer
 * does not call yet: each backend's kernel against ref's `linear` followed by the activation op,
 * on a ragged transposed problem and on pre-activations swept across [−14, 14] — through gelu's
 * switch from erf to erfc at |x/√2| = 1 and its tail, where 1 + erf would cancel.
 */
import { expect, test } from 'vitest';
import * as k from '../src/index.js';
import type { Activation, Backend, Tensor } from '../src/index.js';
import { describeBackends, expectClose } from './harness.js';

const ACTS: [Activation, (t: Tensor) => Tensor][] = [
  ['none', (t) => t],
  ['relu', k.relu],
  ['gelu', (t) => k.gelu(t)],
  ['gelu_tanh', (t) => k.gelu(t, { approximate: 'tanh' })],
  ['silu', k.silu],
];

/** out = act(a @ wᵀ + bias) by the backend's matmul kernel: a [m, kk], w [n, kk], bias [n]. */
async function fused(be: Backend, a: Float32Array, w: Float32Array, bias: Float32Array, m: number, n: number, kk: number, activation: Activation): Promise<Float32Array> {
  const [A, W, C, O] = [be.alloc('f32', m * kk), be.alloc('f32', n * kk), be.alloc('f32', n), be.alloc('f32', m * n)];
  try {
    be.write(A, a);
    be.write(W, w);
    be.write(C, bias);
    be.matmul({ a: A, b: W, out: O, bias: C, batchShape: [], aBatchStrides: [], bBatchStrides: [], m, n, k: kk, transA: false, transB: true, activation });
    return Float32Array.from(await be.read(O));
  } finally {
    for (const s of [A, W, C, O]) be.free(s);
  }
}

/** act(a @ wᵀ + bias) on ref through the ops the epilogue fuses. */
async function unfused(f: (t: Tensor) => Tensor, a: Float32Array, w: Float32Array, bias: Float32Array, m: number, n: number, kk: number): Promise<Float32Array> {
  const t = k.tidy(() => f(k.linear(k.tensor(a, { backend: 'ref' }).reshape([m, kk]), k.tensor(w, { backend: 'ref' }).reshape([n, kk]), k.tensor(bias, { backend: 'ref' }))));
  try {
    return Float32Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

describeBackends('matmul epilogue', (backend) => {
  test('bias and each activation, fused, equal linear then the activation on ref', async () => {
    const be = await k.getBackend(backend);
    const gen = new k.Generator(7);
    // ragged (no dimension a multiple of 4) and transposed: the kernels' scalar-load paths
    const [m, n, kk] = [13, 37, 21];
    const draw = async (size: number): Promise<Float32Array> => Float32Array.from(await k.randn([size], { backend: 'ref', generator: gen }).data());
    const a = await draw(m * kk);
    const w = await draw(n * kk);
    const bias = await draw(n);
    // the sweep: a is x [101, 1], w ones, bias 0, so the pre-activation is exactly x
    const xs = Float32Array.from({ length: 101 }, (_, i) => -14 + 0.28 * i);
    xs[50] = Math.SQRT2 * (1 - 2 ** -20); // either side of the erf/erfc switch
    xs[51] = Math.SQRT2 * (1 + 2 ** -20);
    const ones = new Float32Array(n).fill(1);
    const zeros = new Float32Array(n);
    for (const [act, f] of ACTS) {
      const got = await fused(be, a, w, bias, m, n, kk, act);
      expectClose(got, await unfused(f, a, w, bias, m, n, kk), { rtol: 1e-4, atol: 1e-5 }, `${act}, ${m}×${kk} @ (${n}×${kk})ᵀ`);
      const sweep = await fused(be, xs, ones, zeros, xs.length, n, 1, act);
      const want = await unfused(f, xs, ones, zeros, xs.length, n, 1);
      // a few f32 units: the kernels' erf and exp are accurate to about 1e-6 relative (ref's own
      // gelu loses everything relative below x ≈ −8, where it is under 1e-14 in size)
      expectClose(sweep, want, { rtol: 4e-6, atol: 1e-12 }, `${act} swept over [−14, 14]`);
      expect(sweep.every((v, i) => Number.isFinite(v) || !Number.isFinite(want[i]!))).toBe(true);
    }
  });
});
