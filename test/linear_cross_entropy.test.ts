/**
 * linearCrossEntropy (the head and the loss fused, a chunk of rows at a time) against the
 * unfused `crossEntropy(linear(x, w, b), targets)` on every backend: the loss and the gradients
 * of x, the weight and the bias, on random shapes past the matmul tiles and for chunk sizes from
 * one row to all of them; under bf16 autocast (cpu); GPT.loss against GPT.forward's loss (tied
 * head, experts); and the memory it exists for: a step's peak without the [N, V] logits. (The
 * f64 gradient against finite differences is in gradcheck.test.ts.)
 */
import { expect, it } from 'vitest';
import fc from 'fast-check';
import * as k from '../src/index.js';
import { describeBackends, expectClose, FC, randnFromRef, testBackends, values } from './harness.js';

interface Case {
  lead: number[];
  c: number;
  v: number;
  bias: boolean;
  chunk: number | undefined;
  ignoreIndex: number;
  smoothing: number;
  reduction: 'mean' | 'sum';
  seed: number;
}

// rows past the cpu kernel's 6-row tiles and webgpu's 64, classes past 64-column tiles, any chunk
const caseArb: fc.Arbitrary<Case> = fc.record({
  lead: fc.oneof(fc.tuple(fc.integer({ min: 1, max: 70 })), fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 17 }))),
  c: fc.integer({ min: 1, max: 40 }),
  v: fc.integer({ min: 1, max: 200 }),
  bias: fc.boolean(),
  chunk: fc.option(fc.integer({ min: 1, max: 80 }), { nil: undefined }),
  ignoreIndex: fc.constantFrom(-100, 0),
  smoothing: fc.constantFrom(0, 0.1),
  reduction: fc.constantFrom('mean' as const, 'sum' as const),
  seed: fc.nat(1e6),
});

interface Result {
  loss: number[];
  dx: number[];
  dw: number[];
  db: number[] | null;
}

/** Loss and gradients of `fused` or the unfused expression on `backend` (the same values everywhere). */
async function run(c: Case, backend: string, fused: boolean, autocast = false): Promise<Result> {
  const gen = new k.Generator(c.seed);
  const n = c.lead.reduce((a, b) => a * b, 1);
  const x = randnFromRef([...c.lead, c.c], { backend, generator: gen, requiresGrad: true });
  const w = randnFromRef([c.v, c.c], { backend, generator: gen, requiresGrad: true });
  const b = c.bias ? randnFromRef([c.v], { backend, generator: gen, requiresGrad: true }) : null;
  // about one target in five ignored (ignoreIndex 0 is also a class: those rows are skipped)
  const draws = gen.draw(n, { kind: 'randint', low: 0, high: c.v + Math.ceil(c.v / 4) });
  const t = k.tensor(Int32Array.from(draws, (d) => (d >= c.v ? c.ignoreIndex : d)), c.lead, { backend, dtype: 'i32' });
  const opts = { ignoreIndex: c.ignoreIndex, labelSmoothing: c.smoothing, reduction: c.reduction };
  const body = (): k.Tensor =>
    fused ? k.linearCrossEntropy(x, w, t, { ...opts, bias: b, ...(c.chunk ? { chunkRows: c.chunk } : {}) }) : k.crossEntropy(k.linear(x, w, b), t, opts);
  const loss = k.tidy(() => {
    const l = autocast ? k.autocast({ dtype: 'bf16' }, body) : body();
    l.backward();
    return l.detach();
  });
  const out = { loss: await values(loss), dx: await values(x.grad!), dw: await values(w.grad!), db: b ? await values(b.grad!) : null };
  for (const s of [x, w, b, t, loss]) s?.dispose();
  return out;
}

function compare(got: Result, want: Result, tol: { rtol: number; atol: number }, what: string): void {
  expectClose(got.loss, want.loss, tol, `${what} loss`);
  expectClose(got.dx, want.dx, tol, `${what} dx`);
  expectClose(got.dw, want.dw, tol, `${what} dweight`);
  if (want.db) expectClose(got.db!, want.db, tol, `${what} dbias`);
}

describeBackends('linearCrossEntropy', (backend) => {
  it('equals crossEntropy(linear(x, w, b)) and its gradients, for every chunk size', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const what = JSON.stringify(c);
        compare(await run(c, backend, true), await run(c, backend, false), { rtol: 1e-4, atol: 2e-6 }, what);
      }),
      { numRuns: Math.max(8, Math.round(FC.numRuns / 3)), examples: [[{ lead: [130], c: 33, v: 257, bias: true, chunk: 7, ignoreIndex: -100, smoothing: 0.1, reduction: 'mean', seed: 1 }]] },
    );
  });

  it('every target ignored: the mean is NaN and the sum 0, as unfused', async () => {
    for (const reduction of ['mean', 'sum'] as const) {
      const x = k.ones([3, 2], { backend });
      const w = k.ones([4, 2], { backend });
      const t = k.full([3], -100, { backend, dtype: 'i32' });
      const [f, u] = k.tidy(() => [k.linearCrossEntropy(x, w, t, { reduction, chunkRows: 2 }), k.crossEntropy(k.linear(x, w), t, { reduction })]);
      expectClose(await values(f!), await values(u!), {}, reduction);
      for (const s of [x, w, t, f, u]) s?.dispose();
    }
  });

  it('GPT.loss is GPT.forward(idx, targets).loss with the same gradients (tied head; experts)', async () => {
    for (const moe of [undefined, { experts: 4, topK: 2 }]) {
      const config = { vocabSize: 97, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 16, dropout: 0, ...(moe ? { moe } : {}) };
      const grads = async (useLoss: boolean): Promise<{ loss: number[]; grads: number[][] }> => {
        const m = new k.GPT(config, { backend, generator: new k.Generator(5) });
        const gen = new k.Generator(9);
        const idx = k.tensor(Int32Array.from(gen.draw(2 * 16, { kind: 'randint', low: 0, high: 97 })), [2, 16], { backend, dtype: 'i32' });
        const tgt = k.tensor(Int32Array.from(gen.draw(2 * 16, { kind: 'randint', low: 0, high: 97 })), [2, 16], { backend, dtype: 'i32' });
        const loss = k.tidy(() => {
          const l = useLoss ? m.loss(idx, tgt, { chunkRows: 5 }) : m.forward(idx, tgt).loss!;
          l.backward();
          return l.detach();
        });
        const out = { loss: await values(loss), grads: await Promise.all(m.parameters().map((p) => values(p.grad!))) };
        for (const s of [idx, tgt, loss]) s.dispose();
        m.dispose();
        return out;
      };
      const [f, u] = [await grads(true), await grads(false)];
      expectClose(f.loss, u.loss, { rtol: 1e-5, atol: 1e-6 }, `moe ${!!moe} loss`);
      f.grads.forEach((g, i) => expectClose(g, u.grads[i]!, { rtol: 1e-4, atol: 2e-6 }, `moe ${!!moe} parameter ${i}`));
    }
  });
});

const cpu = testBackends().find((b) => b.name === 'cpu' && b.available);

it.skipIf(!cpu)(`under bf16 autocast (cpu): the same loss and gradients as unfused, to bf16's precision${cpu ? '' : ' [skipped: no cpu backend]'}`, async () => {
  for (const chunk of [1, 16, undefined]) {
    const c: Case = { lead: [4, 24], c: 48, v: 300, bias: true, chunk, ignoreIndex: -100, smoothing: 0, reduction: 'mean', seed: 3 };
    const [f, u] = [await run(c, 'cpu', true, true), await run(c, 'cpu', false, true)];
    // the same bf16 kernels; the weight's gradient is summed over chunks in f32 instead of one bf16 product
    compare(f, u, { rtol: 2e-2, atol: 2e-4 }, `chunk ${chunk}`);
  }
});

it.skipIf(!cpu)(`a step's peak memory holds no [N, V] logits${cpu ? '' : ' [skipped: no cpu backend]'}`, async () => {
  const [n, c, v] = [8192, 32, 2048];
  const peak = async (fused: boolean, chunkRows?: number): Promise<number> => {
    const gen = new k.Generator(1);
    const x = randnFromRef([n, c], { backend: 'cpu', generator: gen, requiresGrad: true });
    const w = randnFromRef([v, c], { backend: 'cpu', generator: gen, requiresGrad: true });
    const t = k.tensor(Int32Array.from(gen.draw(n, { kind: 'randint', low: 0, high: v })), [n], { backend: 'cpu', dtype: 'i32' });
    k.resetPeakMemory();
    const before = k.memory().bytes;
    k.tidy(() => (fused ? k.linearCrossEntropy(x, w, t, chunkRows ? { chunkRows } : {}) : k.crossEntropy(k.linear(x, w), t)).backward());
    const p = k.memory().peakBytes - before;
    for (const s of [x, w, t]) s.dispose();
    return p;
  };
  const logits = n * v * 4; // 64 MiB
  const [unfused, byDefault, small] = [await peak(false), await peak(true), await peak(true, 256)];
  // unfused holds the logits and their gradient; fused the gradients (1.3 MiB) and one chunk's
  // logits with their gradient (default 1024 rows: 2 × 8 MiB; 256 rows: 2 × 2 MiB)
  expect(unfused).toBeGreaterThanOrEqual(2 * logits);
  expect(byDefault).toBeLessThan(logits / 2);
  expect(small).toBeLessThan(logits / 8);
});
