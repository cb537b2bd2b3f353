/**
 * Every non-reference backend against `ref`: the same ops on the same inputs (drawn from the
 * same seed, which the shared Philox stream makes identical on every backend), compared with
 * tolerances by dtype. The per-op suites check each backend against plain-loop oracles; this
 * file checks that fast kernels agree with the specification on random shapes, forward and backward.
 */
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import * as k from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { expectClose, FC, randnFromRef, tol, testBackends } from './harness.js';

type Case = { name: string; inputs: number[][]; run: (xs: Tensor[], backend: string) => Tensor };

const cases: Case[] = [
  { name: 'add (broadcast)', inputs: [[3, 1, 4], [5, 1]], run: ([a, b]) => a!.add(b!) },
  { name: 'mul, div, pow', inputs: [[4, 5], [5]], run: ([a, b]) => a!.mul(b!).div(b!.abs().add(1)).pow(2) },
  { name: 'unary chain', inputs: [[6, 7]], run: ([a]) => k.gelu(a!).add(k.silu(a!)).add(a!.tanh()).add(a!.sigmoid()).add(a!.exp().log()) },
  { name: 'gelu tanh, erf', inputs: [[9]], run: ([a]) => k.gelu(a!, { approximate: 'tanh' }).add(k.erf(a!)) },
  { name: 'where, compare', inputs: [[4, 4], [4, 4]], run: ([a, b]) => k.where(a!.gt(b!), a!, b!.mul(2)) },
  { name: 'sum, max, min over axes', inputs: [[3, 4, 5]], run: ([a]) => a!.sum([0, 2]).sum().add(a!.max(1).sum(0).sum()).add(a!.min([0, 1])) },
  { name: 'argmax', inputs: [[5, 6]], run: ([a]) => a!.argmax(1) },
  { name: 'permute, slice, concat', inputs: [[2, 3, 4]], run: ([a]) => k.concat([a!.permute([2, 0, 1]), a!.permute([2, 0, 1]).slice(1, 0, 2, 1)], 1) },
  { name: 'matmul batched, transposed', inputs: [[2, 5, 3], [4, 5]], run: ([a, b]) => k.matmul(a!, b!, { transA: true, transB: true }) },
  { name: 'linear', inputs: [[7, 6], [5, 6], [5]], run: ([x, w, b]) => k.linear(x!, w!, b!) },
  { name: 'softmax, logSoftmax', inputs: [[4, 9]], run: ([a]) => a!.softmax().add(a!.logSoftmax(0)) },
  { name: 'layerNorm', inputs: [[6, 8], [8], [8]], run: ([x, w, b]) => k.layerNorm(x!, [8], w!, b!) },
  { name: 'rmsNorm', inputs: [[6, 8], [8]], run: ([x, w]) => k.rmsNorm(x!, [8], w!) },
  {
    name: 'crossEntropy',
    inputs: [[6, 10]],
    run: ([x], backend) => k.crossEntropy(x!, k.tensor([1, 0, 9, -100, 3, 3], { dtype: 'i32', backend }), { labelSmoothing: 0.1 }),
  },
  {
    name: 'embedding, gather',
    inputs: [[10, 4]],
    run: ([w], backend) => {
      const ids = k.tensor([[1, 1, 9], [0, 4, 2]], { dtype: 'i32', backend });
      return k.embedding(ids, w!).sum(-1).add(k.gather(w!, 0, k.tensor([[3, 1, 0, 9]], { dtype: 'i32', backend })).sum());
    },
  },
  { name: 'attention causal', inputs: [[2, 5, 4], [2, 7, 4], [2, 7, 3]], run: ([q, kk, v]) => k.scaledDotProductAttention(q!, kk!, v!, { isCausal: true }) },
];

const others = testBackends().filter((b) => b.name !== 'ref');
const available = others.filter((b) => b.available);
if (available.length === 0)
  console.warn(
    `[kiln tests] cross-backend checks skipped: no backend besides ref is available here (${others.map((b) => `${b.name}: ${b.reason}`).join('; ') || 'none registered'})`,
  );

async function evaluate(c: Case, backend: string, dtype: k.DType, seed: number): Promise<{ out: number[]; grads: number[][] }> {
  // the inputs are returned with the output: disposing an input disposes its gradient
  const { out, xs } = k.tidy(() => {
    k.manualSeed(seed);
    const xs = c.inputs.map((shape) => randnFromRef(shape, { backend, dtype, requiresGrad: true }));
    const out = c.run(xs, backend);
    if (out.requiresGrad) {
      const w = randnFromRef(out.shape, { backend, dtype: out.dtype });
      out.mul(w).sum().backward();
    }
    return { out, xs };
  });
  try {
    const outValues = Array.from(await out.data());
    const grads: number[][] = [];
    for (const x of xs) grads.push(x.grad ? Array.from(await x.grad.data()) : []);
    return { out: outValues, grads };
  } finally {
    out.dispose();
    for (const x of xs) x.dispose();
  }
}

for (const b of others) {
  describe.skipIf(!b.available)(`${b.name} agrees with ref${b.available ? '' : `: unavailable, ${b.reason}`}`, () => {
    for (const c of cases)
      for (const dtype of ['f32', 'bf16'] as const)
        test(`${c.name} (${dtype})`, async () => {
          await fc.assert(
            fc.asyncProperty(fc.nat(1e6), async (seed) => {
              const want = await evaluate(c, 'ref', dtype, seed);
              const got = await evaluate(c, b.name, dtype, seed);
              const t = tol(dtype);
              expectClose(got.out, want.out, t, 'output');
              got.grads.forEach((g, i) => expectClose(g, want.grads[i]!, { rtol: t.rtol * 10, atol: t.atol * 10 }, `grad ${i}`));
            }),
            { numRuns: Math.min(FC.numRuns, 20) },
          );
        });
  });
}

test('the random stream is the same on every backend', async () => {
  const draw = async (backend: string, f: (backend: string) => Tensor): Promise<number[]> => {
    k.manualSeed(7);
    const t = f(backend);
    try {
      return Array.from(await t.data());
    } finally {
      t.dispose();
    }
  };
  const rand = (backend: string): Tensor => k.rand([33], { backend });
  const randint = (backend: string): Tensor => k.randint(-5, 1000, [33], { backend });
  const randn = (backend: string): Tensor => k.randn([33], { backend });
  for (const b of available) {
    // uniform and integer draws use only the Philox words and exact arithmetic: bit for bit
    expect(await draw(b.name, rand)).toEqual(await draw('ref', rand));
    expect(await draw(b.name, randint)).toEqual(await draw('ref', randint));
    // normals go through log, sin and cos, which backends do not share (no backend copies
    // another's libm): the same numbers within the dtype's tolerance
    expectClose(await draw(b.name, randn), await draw('ref', randn), tol('f32'), 'randn');
  }
  expect(k.backends().some((b) => b.name === 'ref' && b.available)).toBe(true);
});
