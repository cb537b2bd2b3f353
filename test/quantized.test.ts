/**
 * Int8 weight quantization: the packing against a host packing of the same integers, the
 * `matmulInt8` kernel of every backend against `ref` on random shapes past every tile (cpu: bit
 * for bit, since the kernel's arithmetic is specified to the rounding; webgpu within one
 * quantization step of a few elements, as its f32 division is not correctly rounded), ref
 * against the error bound of quantization itself (|Δy| ≤ Σ ½·sx·|w| + ½·sw·|x| + ¼·sx·sw), and
 * a quantized GPT against its float self; and PyTorch's own per-channel and per-tensor int8
 * quantization (fixtures from test/fixtures/int8/gen.py): the same integers and scales.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import fc from 'fast-check';
import * as k from '../src/index.js';
import { describeBackends, FC, randnFromRef, testBackends, values } from './harness.js';

interface Case {
  m: number;
  n: number;
  k: number;
  bias: boolean;
  seed: number;
}

// n past one 64-column tile and its 16-lane vectors, m past one 4-row tile, k not a multiple of 4
const caseArb: fc.Arbitrary<Case> = fc.record({
  m: fc.integer({ min: 1, max: 11 }),
  n: fc.integer({ min: 1, max: 150 }),
  k: fc.integer({ min: 1, max: 300 }),
  bias: fc.boolean(),
  seed: fc.nat(1e6),
});
const EXAMPLES: [Case][] = [
  [{ m: 1, n: 1000, k: 257, bias: true, seed: 1 }],
  [{ m: 13, n: 65, k: 4, bias: false, seed: 2 }],
  [{ m: 64, n: 300, k: 512, bias: true, seed: 3 }], // past the parallel threshold
];

/** The case's x `[m, k]`, w `[n, k]` and bias on `backend` (the same values everywhere). */
function inputs(c: Case, backend: string): { x: k.Tensor; w: k.Tensor; bias: k.Tensor | null } {
  const gen = new k.Generator(c.seed);
  const x = randnFromRef([c.m, c.k], { backend, generator: gen });
  const w = randnFromRef([c.n, c.k], { backend, generator: gen });
  const bias = c.bias ? randnFromRef([c.n], { backend, generator: gen }) : null;
  return { x, w, bias };
}

async function int8Product(c: Case, backend: string): Promise<{ y: number[]; packed: number[]; scale: number[] }> {
  const { x, w, bias } = inputs(c, backend);
  const q = k.quantizeInt8(w);
  const y = k.noGrad(() => k.linearInt8(x, q, bias));
  const out = { y: await values(y), packed: await values(q.packed), scale: await values(q.scale) };
  for (const t of [x, w, bias, q.packed, q.scale, y]) t?.dispose();
  return out;
}

const others = testBackends().filter((b) => b.name !== 'ref' && b.available);

it('quantizeInt8 packs round(w/scale) four to a word, scale = max|row|/127', async () => {
  const w = k.tensor([[1, -1, 0.5, -0.25, 0.126], [0, 0, 0, 0, 0], [-3, 2, 1, 0, 3]]);
  const q = k.quantizeInt8(w);
  expect(q.packed.shape).toEqual([2, 3]);
  const scale = await values(q.scale);
  expect(scale).toEqual([1 / 127, 0, 3 / 127].map(Math.fround));
  // row 0: 127, −127, 64 (63.5 to even), −32 (−31.75), 16 (16.002); row 2: −127, 85 (84.67), 42 (42.33), 0, 127
  const ints = [[127, -127, 64, -32, 16], [0, 0, 0, 0, 0], [-127, 85, 42, 0, 127]];
  const words = await values(q.packed);
  for (let j = 0; j < 3; j++)
    for (let p = 0; p < 8; p++) expect(((words[(p >> 2) * 3 + j]! << (24 - 8 * (p & 3))) >> 24), `w[${j}, ${p}]`).toBe(ints[j]![p] ?? 0);
  const back = await values(await k.dequantizeInt8(q));
  const want = ints.flatMap((r, j) => r.map((v) => Math.fround(scale[j]! * v)));
  expect(back).toEqual(want);
  for (const t of [w, q.packed, q.scale]) t.dispose();
});

it('ref: the int8 product is within the quantization error bound of the f32 product', async () => {
  await fc.assert(
    fc.asyncProperty(caseArb, async (c) => {
      const { x, w, bias } = inputs(c, 'ref');
      const q = k.quantizeInt8(w);
      const y = k.noGrad(() => k.linearInt8(x, q, bias));
      const [xs, ws, bs, ys, sw] = await Promise.all([values(x), values(w), bias ? values(bias) : null, values(y), values(q.scale)]);
      for (let i = 0; i < c.m; i++) {
        let amax = 0;
        for (let p = 0; p < c.k; p++) amax = Math.max(amax, Math.abs(xs[i * c.k + p]!));
        const sx = amax / 127;
        for (let j = 0; j < c.n; j++) {
          let exact = bs ? bs[j]! : 0;
          let bound = 0;
          for (let p = 0; p < c.k; p++) {
            const a = xs[i * c.k + p]!, b = ws[j * c.k + p]!;
            exact += a * b;
            bound += 0.5 * sx * Math.abs(b) + 0.5 * sw[j]! * Math.abs(a) + 0.25 * sx * sw[j]!;
          }
          const got = ys[i * c.n + j]!;
          expect(Math.abs(got - exact), `y[${i}, ${j}] of ${JSON.stringify(c)}`).toBeLessThanOrEqual(bound * (1 + 1e-5) + 1e-5 * Math.abs(exact) + 1e-6);
        }
      }
      for (const t of [x, w, bias, q.packed, q.scale, y]) t?.dispose();
    }),
    { numRuns: Math.min(FC.numRuns, 30), examples: EXAMPLES },
  );
});

for (const b of others)
  it(`${b.name}: matmulInt8 equals ref's (cpu bit for bit; webgpu within two quantization steps)`, async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const want = await int8Product(c, 'ref');
        const got = await int8Product(c, b.name);
        expect(got.scale).toEqual(want.scale);
        expect(got.packed).toEqual(want.packed);
        if (b.name === 'cpu') {
          expect(got.y).toEqual(want.y);
          return;
        }
        // one flipped rounding of x moves an output by sx·sw·|W[j, p]| ≤ sx·sw·127
        const { x } = inputs(c, 'ref');
        const xs = await values(x);
        x.dispose();
        for (let i = 0; i < c.m; i++) {
          let amax = 0;
          for (let p = 0; p < c.k; p++) amax = Math.max(amax, Math.abs(xs[i * c.k + p]!));
          for (let j = 0; j < c.n; j++) {
            const e = want.y[i * c.n + j]!;
            const bound = 2 * (amax / 127) * want.scale[j]! * 127 + 2e-6 * Math.abs(e) + 1e-6;
            expect(Math.abs(got.y[i * c.n + j]! - e), `y[${i}, ${j}] of ${JSON.stringify(c)}`).toBeLessThanOrEqual(bound);
          }
        }
      }),
      { numRuns: Math.min(FC.numRuns, 25), examples: EXAMPLES },
    );
  });

interface TorchCase {
  m: number;
  n: number;
  k: number;
  w: number[];
  x: number[];
  bias: number[];
  wq: number[];
  scale: number[];
  y: number[];
}
const TORCH = JSON.parse(readFileSync(new URL('./fixtures/int8/int8.json', import.meta.url), 'utf8')) as { torch: string; cases: TorchCase[] };

describeBackends('int8 linear layers', (backend) => {
  it(`matches PyTorch ${TORCH.torch}: quantize_per_channel's integers and scales, and the product of its per-row quantized inputs`, async () => {
    for (const c of TORCH.cases) {
      const w = k.tensor(c.w, [c.n, c.k], { backend });
      const q = k.quantizeInt8(w);
      expect(await values(q.scale)).toEqual(c.scale.map(Math.fround));
      const words = await values(q.packed);
      const ints = Array.from({ length: c.n * c.k }, (_, e) => {
        const [j, p] = [Math.floor(e / c.k), e % c.k];
        return (words[(p >> 2) * c.n + j]! << (24 - 8 * (p & 3))) >> 24;
      });
      expect(ints).toEqual(c.wq);
      const x = k.tensor(c.x, [c.m, c.k], { backend });
      const bias = k.tensor(c.bias, [c.n], { backend });
      const y = await values(k.noGrad(() => k.linearInt8(x, q, bias)));
      // the same integers on both sides (exact sums): only f32 rounding of the scaling differs
      for (let i = 0; i < y.length; i++) expect(Math.abs(y[i]! - c.y[i]!), `case ${c.m}×${c.n}×${c.k} y[${i}]`).toBeLessThanOrEqual(4e-7 * (Math.abs(c.y[i]!) + Math.abs(c.bias[i % c.n]!)) + 1e-7);
      for (const t of [w, x, bias, q.packed, q.scale]) t.dispose();
    }
  });


  it('rows of zeros, non-finite rows, k = 0 and batched inputs', async () => {
    const w = k.tensor([[1, 2, 3], [-1, 0, 1]], { backend });
    const q = k.quantizeInt8(w);
    const bias = k.tensor([0.5, -0.5], { backend });
    const x = k.tensor([[[0, 0, 0], [1, Infinity, 0]], [[NaN, 1, 1], [1, 1, 1]]], { backend });
    const y = await values(k.noGrad(() => k.linearInt8(x, q, bias)));
    expect(y.slice(0, 2)).toEqual([0.5, -0.5]);
    expect(y.slice(2, 6).every(Number.isNaN)).toBe(true);
    expect(y[6]).toBeCloseTo(6.5, 1);
    expect(y[7]).toBeCloseTo(-0.5, 5);
    const empty = k.quantizeInt8(k.zeros([2, 0], { backend }));
    const x0 = k.zeros([3, 0], { backend });
    expect(await values(k.noGrad(() => k.linearInt8(x0, empty, bias)))).toEqual([0.5, -0.5, 0.5, -0.5, 0.5, -0.5]);
    expect(await values(k.noGrad(() => k.linearInt8(x0, empty)))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('a quantized GPT gives nearly the float logits, and refuses gradients', async () => {
    const config = { vocabSize: 50, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32 };
    const gpt = new k.GPT(config, { backend, generator: new k.Generator(7) });
    const idx = k.tensor([[1, 5, 9, 2, 7, 3, 11, 4]], { dtype: 'i32', backend });
    const before = await values(k.noGrad(() => gpt.forward(idx).logits));
    const report = k.quantizeDynamic(gpt);
    expect(report.layers).toEqual(['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_fc', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.attn.c_attn', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_fc', 'transformer.h.1.mlp.c_proj', 'lm_head']);
    expect(report.int8Bytes / report.floatBytes).toBeLessThan(0.3); // 1 byte per weight + 4 per row, against 4 per weight
    expect(Object.keys(gpt.stateDict())).not.toContain('lm_head.weight_int8');
    const after = await values(k.noGrad(() => gpt.forward(idx).logits));
    let num = 0, den = 0;
    for (let i = 0; i < before.length; i++) {
      num += (after[i]! - before[i]!) ** 2;
      den += before[i]! ** 2;
    }
    expect(Math.sqrt(num / den)).toBeLessThan(0.02); // relative error of the logits
    expect(() => gpt.forward(idx, idx)).toThrow(/no gradient.*noGrad/);
    gpt.lm_head.unquantize();
    expect(gpt.lm_head.int8Weight).toBeNull();
    const restored = await values(k.noGrad(() => gpt.forward(idx).logits));
    expect(restored.slice(0, 5)).not.toEqual(after.slice(0, 5));
    gpt.dispose();
    idx.dispose();
  });
});
