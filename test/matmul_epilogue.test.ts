/**
 * matmul's fused epilogue (bias, then relu / gelu / gelu_tanh / silu), which the tensor layer
 * does not call yet: each backend's kernel against ref's `linear` followed by the activation op,
 * on a ragged transposed problem and on pre-activations swept across [−14, 14] — through gelu's
 * switch from erf to erfc at |x/√2| = 1 and its tail, where 1 + erf would cancel. And in bf16
 * and f16, on backends that compute matmul in them, past every tile, against ref's f32 kernel
 * on the same values rounded once.
 */
import { expect, test } from 'vitest';
import * as k from '../src/index.js';
import type { Activation, Backend, Tensor } from '../src/index.js';
import { describeBackends, expectClose } from './harness.js';

type Storage = ReturnType<Backend['alloc']>;

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
    be.matmul({ a: A, b: W, out: O, bias: C, batchShape: [], aBatchStrides: [], bBatchStrides: [], m, n, k: kk, transA: false, transB: true, activation, accumulate: false, preact: null });
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

/** f32 values as a half's bits (the storage layout halves are written in). */
const halfBits = (dtype: 'bf16' | 'f16', xs: Float32Array): Uint16Array => Uint16Array.from(xs, (x) => (dtype === 'bf16' ? k.bf16Bits(x) : k.f16Bits(x)));
const halfValue = (dtype: 'bf16' | 'f16', h: number): number => (dtype === 'bf16' ? k.bf16Value(h) : k.f16Value(h));

describeBackends('matmul epilogue in halves', (backend) => {
  // Past every register tile (m 31 > 2·14 rows, n 45 > 32 and 2·16 columns), k odd (a
  // zero-padded bf16 pair), 1 and even, transposes, a broadcast batch, the bias and each
  // activation: the kernel on half storages against ref's f32 kernel on the same (exact)
  // values, rounded once. Bound: the f32 sums differ by ≤ (k + 2)·2^-24·Σ|a·b| + |bias| (see
  // halfMatmulBound in crossbackend_kernels.test.ts), the activations are 1.13-Lipschitz (gelu's
  // largest slope) and evaluated within a few f32 units, and each side's rounding to the half
  // moves it ≤ 2^-p·|x|/(1 − 2^-p), p = 8 (bf16) or 11 (f16), plus 2^-25 in f16's subnormals.
  for (const dtype of ['bf16', 'f16'] as const) {
    test(`${dtype}: bias and each activation, ragged, transposed, batched, against ref in f32 rounded once`, async (ctx) => {
      const be = await k.getBackend(backend);
      // the tensor layer casts to f32 for it: the f32 tests above cover that path
      const why = `${dtype} matmul epilogue skipped on backend '${backend}': it does not compute matmul in ${dtype}`;
      if (!be.computes('matmul', dtype)) console.warn(`[kiln tests] ${why}`);
      ctx.skip(!be.computes('matmul', dtype), why);
      const ref = await k.getBackend('ref');
      const gen = new k.Generator(11);
      const draw = async (size: number): Promise<Float32Array> => Float32Array.from(await k.randn([size], { backend: 'ref', generator: gen }).data());
      const p = dtype === 'bf16' ? 8 : 11;
      for (const [m, n, kk, transA, transB] of [[31, 45, 37, false, true], [15, 33, 1, true, false], [29, 17, 64, true, true], [3, 70, 5, false, false]] as const) {
        const batch = 2;
        // a broadcast over the batch (stride 0), b one matrix per item
        const a = await draw(m * kk);
        const b = await draw(batch * n * kk);
        const bias = await draw(n);
        // the values as stored in the half, exactly
        const [ah, bh, ch] = [a, b, bias].map((x) => halfBits(dtype, x));
        const [av, bv, cv] = [ah!, bh!, ch!].map((h) => Float32Array.from(h, (x) => halfValue(dtype, x)));
        const args = (A: Storage, B: Storage, C: Storage, O: Storage, activation: Activation): Parameters<Backend['matmul']>[0] => ({
          a: A, b: B, out: O, bias: C, batchShape: [batch], aBatchStrides: [0], bBatchStrides: [n * kk], m, n, k: kk, transA, transB, activation, accumulate: false, preact: null,
        });
        const run = async (bk: Backend, dt: 'f32' | 'bf16' | 'f16', xs: ArrayLike<number>[], activation: Activation): Promise<number[]> => {
          const st = [bk.alloc(dt, m * kk), bk.alloc(dt, batch * n * kk), bk.alloc(dt, n), bk.alloc(dt, batch * m * n)];
          try {
            xs.forEach((x, i) => bk.write(st[i]!, x as never));
            bk.matmul(args(st[0]!, st[1]!, st[2]!, st[3]!, activation));
            const o = await bk.read(st[3]!);
            return dt === 'f32' ? Array.from(o as Float32Array) : Array.from(o as Uint16Array, (h) => halfValue(dtype, h));
          } finally {
            for (const x of st) bk.free(x);
          }
        };
        const scale = await run(ref, 'f32', [av!.map(Math.abs), bv!.map(Math.abs), cv!.map(Math.abs)], 'none');
        for (const [act] of ACTS) {
          const got = await run(be, dtype, [ah!, bh!, ch!], act);
          const want = (await run(ref, 'f32', [av!, bv!, cv!], act)).map((x) => halfValue(dtype, Number(halfBits(dtype, Float32Array.of(x))[0])));
          for (let i = 0; i < want.length; i++) {
            const [g, w] = [got[i]!, want[i]!];
            const bound = 1.13 * (kk + 2) * 2 ** -24 * scale[i]! + 8e-6 * (Math.abs(g) + Math.abs(w)) + (2 ** -p / (1 - 2 ** -p)) * (Math.abs(g) + Math.abs(w)) + (dtype === 'f16' ? 2 ** -24 : 0) + 1e-30;
            if (!(Math.abs(g - w) <= bound)) expect.fail(`${dtype} ${act} ${m}×${kk}${transA ? 'ᵀ' : ''} @ ${kk}×${n}${transB ? 'ᵀ' : ''} [${i}]: got ${g}, expected ${w} (bound ${bound})`);
          }
        }
      }
    });
  }
});

/**
 * accumulate (out += op(a) @ op(b) + bias, then the activation): each backend against ref on
 * shapes past the tiles (both transposes, a broadcast batch), out starting from random values; and
 * where a backend computes matmul in halves, half operands summed into an f32 out unrounded (what
 * linearCrossEntropy's weight gradient does under autocast), against ref on the same values.
 */
describeBackends('matmul accumulate', (backend) => {
  const shapes = [[31, 45, 37, false, true], [15, 70, 1, true, false], [7, 130, 64, true, true], [66, 9, 5, false, false]] as const;
  const run = async (bk: Backend, dt: 'f32' | 'bf16' | 'f16', outDt: 'f32' | 'bf16' | 'f16', xs: ArrayLike<number>[], shape: (typeof shapes)[number], activation: Activation): Promise<number[]> => {
    const [m, n, kk, transA, transB] = shape;
    const batch = 2;
    const st = [bk.alloc(dt, m * kk), bk.alloc(dt, batch * n * kk), bk.alloc(outDt, n), bk.alloc(outDt, batch * m * n)];
    try {
      xs.forEach((x, i) => bk.write(st[i]!, x as never));
      bk.matmul({ a: st[0]!, b: st[1]!, out: st[3]!, bias: st[2]!, batchShape: [batch], aBatchStrides: [0], bBatchStrides: [n * kk], m, n, k: kk, transA, transB, activation, accumulate: true, preact: null });
      return Array.from(await bk.read(st[3]!), Number);
    } finally {
      for (const x of st) bk.free(x);
    }
  };
  const inputs = async (shape: (typeof shapes)[number], seed: number): Promise<Float32Array[]> => {
    const [m, n, kk] = shape;
    const gen = new k.Generator(seed);
    const draw = async (size: number): Promise<Float32Array> => Float32Array.from(await k.randn([size], { backend: 'ref', generator: gen }).data());
    return [await draw(m * kk), await draw(2 * n * kk), await draw(n), await draw(2 * m * n)];
  };

  test('out += op(a) @ op(b) + bias, then the activation, as ref', async () => {
    const [be, ref] = [await k.getBackend(backend), await k.getBackend('ref')];
    for (const [i, shape] of shapes.entries()) {
      const xs = await inputs(shape, 20 + i);
      for (const act of ['none', 'gelu_tanh'] as const)
        expectClose(await run(be, 'f32', 'f32', xs, shape, act), await run(ref, 'f32', 'f32', xs, shape, act), { rtol: 1e-5, atol: 1e-5 }, `${act} ${shape.join(' ')}`);
      // and the old values count: not accumulating differs
      const plain = await run(ref, 'f32', 'f32', [xs[0]!, xs[1]!, xs[2]!, new Float32Array(xs[3]!.length)], shape, 'none');
      const acc = await run(be, 'f32', 'f32', xs, shape, 'none');
      expectClose(acc.map((v, j) => v - xs[3]![j]!), plain, { rtol: 1e-5, atol: 1e-5 }, `minus the old out ${shape.join(' ')}`);
    }
  });

  for (const dtype of ['bf16', 'f16'] as const)
    test(`${dtype} operands into an f32 out, unrounded, as ref on the same values`, async (ctx) => {
      const be = await k.getBackend(backend);
      const why = `${dtype} → f32 accumulate skipped on backend '${backend}': it does not compute matmul in ${dtype} (the tensor layer casts to f32)`;
      if (!be.computes('matmul', dtype)) console.warn(`[kiln tests] ${why}`);
      ctx.skip(!be.computes('matmul', dtype), why);
      const ref = await k.getBackend('ref');
      for (const [i, shape] of shapes.entries()) {
        const [a, b, bias, out] = await inputs(shape, 40 + i);
        const bits = (x: Float32Array): Uint16Array => Uint16Array.from(x, (v) => (dtype === 'bf16' ? k.bf16Bits(v) : k.f16Bits(v)));
        const [ah, bh] = [bits(a!), bits(b!)];
        const value = (h: Uint16Array): Float32Array => Float32Array.from(h, (v) => (dtype === 'bf16' ? k.bf16Value(v) : k.f16Value(v)));
        const got = await run(be, dtype, 'f32', [ah, bh, bias!, out!], shape, 'none');
        const want = await run(ref, 'f32', 'f32', [value(ah), value(bh), bias!, out!], shape, 'none');
        // both are f32 sums of the same exact products (no rounding to the half anywhere)
        expectClose(got, want, { rtol: 1e-5, atol: 1e-5 }, `${dtype} ${shape.join(' ')}`);
      }
    });
});

/**
 * preact: the kernel stores the value before the activation beside act(·) in one pass (the MLP's
 * bias+GELU), as ref on shapes past the tiles; and the tensor op `linear(x, w, b, { activation })`
 * equals the activation of `linear`, values and gradients, on every backend.
 */
describeBackends('matmul preact', (backend) => {
  test('the kernel stores op(a) @ op(b) + bias in preact and its activation in out', async () => {
    const [be, ref] = [await k.getBackend(backend), await k.getBackend('ref')];
    for (const [m, n, kk] of [[13, 37, 21], [70, 130, 64], [1, 65, 9], [9, 1, 33]] as const) {
      const gen = new k.Generator(m * n);
      const draw = async (size: number): Promise<Float32Array> => Float32Array.from(await k.randn([size], { backend: 'ref', generator: gen }).data());
      const [a, w, bias] = [await draw(m * kk), await draw(n * kk), await draw(n)];
      const run = async (bk: Backend, act: Activation): Promise<[number[], number[]]> => {
        const st = [bk.alloc('f32', m * kk), bk.alloc('f32', n * kk), bk.alloc('f32', n), bk.alloc('f32', m * n), bk.alloc('f32', m * n)];
        try {
          [a, w, bias].forEach((x, i) => bk.write(st[i]!, x));
          bk.matmul({ a: st[0]!, b: st[1]!, out: st[3]!, bias: st[2]!, batchShape: [], aBatchStrides: [], bBatchStrides: [], m, n, k: kk, transA: false, transB: true, activation: act, accumulate: false, preact: st[4]! });
          return [Array.from(await bk.read(st[3]!), Number), Array.from(await bk.read(st[4]!), Number)];
        } finally {
          for (const x of st) bk.free(x);
        }
      };
      const plain = Array.from(await unfused((t) => t, a, w, bias, m, n, kk));
      for (const act of ['relu', 'gelu', 'gelu_tanh', 'silu'] as const) {
        const [out, pre] = await run(be, act);
        const [refOut] = await run(ref, act);
        expectClose(pre, plain, { rtol: 1e-5, atol: 1e-5 }, `${act} preact ${m}×${n}×${kk}`);
        expectClose(out, refOut, { rtol: 1e-4, atol: 1e-5 }, `${act} out ${m}×${n}×${kk}`);
      }
    }
  });

  test('linear(x, w, b, { activation }) is the activation of linear, with the same gradients', async () => {
    for (const [act, f] of ACTS) {
      const gen = new k.Generator(3);
      const x = randnOn(backend, [2, 7, 19], gen);
      const w = randnOn(backend, [45, 19], gen);
      const b = randnOn(backend, [45], gen);
      const g = randnOn(backend, [2, 7, 45], gen);
      const grads = async (fused: boolean): Promise<number[][]> => {
        for (const t of [x, w, b]) t.grad = null;
        k.tidy(() => (fused ? k.linear(x, w, b, { activation: act }) : f(k.linear(x, w, b))).mul(g).sum().backward());
        const out = k.tidy(() => k.noGrad(() => (fused ? k.linear(x, w, b, { activation: act }) : f(k.linear(x, w, b)))));
        const r = [Array.from(await out.data()), ...(await Promise.all([x, w, b].map(async (t) => Array.from(await t.grad!.data()))))];
        out.dispose();
        for (const t of [x, w, b]) t.grad?.dispose();
        return r;
      };
      const [fu, un] = [await grads(true), await grads(false)];
      fu.forEach((v, i) => expectClose(v, un[i]!, { rtol: 1e-4, atol: 1e-5 }, `${act} ${['out', 'dx', 'dw', 'db'][i]}`));
      for (const t of [x, w, b, g]) t.dispose();
    }
  });
});

function randnOn(backend: string, shape: number[], gen: k.Generator): k.Tensor {
  const r = k.randn(shape, { backend: 'ref', generator: gen });
  const t = k.tensor(r.dataSync(), shape, { backend }).requiresGrad_();
  r.dispose();
  return t;
}
