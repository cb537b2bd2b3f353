/**
 * Gradient checkpointing: `checkpoint(fn, ...inputs)` gives the gradients of running fn plainly
 * (bit for bit on the reference backends, where both run the same kernels in the same order),
 * replays fn's random stream (dropout masks) in the backward, reaches parameters fn reads from
 * its closure, agrees with central finite differences in f64, refuses bad arguments by name, and
 * lowers the peak memory of a GPT training step (GPT `gradientCheckpointing`).
 */
import { expect, it } from 'vitest';
import {
  checkpoint,
  dropout,
  Generator,
  GPT,
  manualSeed,
  memory,
  noGrad,
  resetPeakMemory,
  tensor,
  tidy,
  defaultGenerator,
  type GPTConfig,
  type Tensor,
} from '../src/index.js';
import { describeBackends, expectClose, rng, stores, tol, values } from './harness.js';

// the reference backends run every kernel in plain loops in call order: recomputation is exact
const exact = (backend: string): boolean => backend === 'ref' || backend === 'async-ref';

async function expectSame(a: Tensor, b: Tensor, backend: string, what: string): Promise<void> {
  const [x, y] = [await values(a), await values(b)];
  if (exact(backend)) expect(x, what).toEqual(y);
  else expectClose(x, y, tol(a.dtype), what);
}

const randomData = (n: number, seed: number): number[] => {
  const r = rng(seed);
  return Array.from({ length: n }, () => r() * 2 - 1);
};

/** The gradients of one training step of `model` (a tidy forward and backward), by parameter name. */
function gradsOfStep(model: GPT, idx: Tensor, targets: Tensor): Map<string, Tensor> {
  model.zeroGrad();
  tidy(() => model.forward(idx, targets).loss!.backward());
  return new Map(model.namedParameters().map(([n, p]) => [n, p.grad!]));
}

const TINY: GPTConfig = { vocabSize: 11, blockSize: 8, nLayer: 3, nHead: 2, nEmbd: 16, dropout: 0.2 };

describeBackends('checkpoint', (backend) => {
  it('a small GPT with dropout gets the same gradients, loss and generator state with gradientCheckpointing', async () => {
    const B = 2;
    const T = 8;
    const ids = (seed: number): Tensor =>
      tensor(randomData(B * T, seed).map((v) => Math.floor((v + 1) * 5.5) % 11), [B, T], { backend, dtype: 'i32' });
    const idx = ids(1);
    const targets = ids(2);
    const gPlain = new Generator(5);
    const gCkpt = new Generator(5);
    const plain = new GPT(TINY, { backend, generator: gPlain });
    const ckpt = new GPT({ ...TINY, gradientCheckpointing: true }, { backend, generator: gCkpt });
    expect(ckpt.config.gradientCheckpointing).toBe(true);
    expect(plain.config.gradientCheckpointing).toBe(false);
    for (let step = 0; step < 2; step++) {
      const a = gradsOfStep(plain, idx, targets);
      const b = gradsOfStep(ckpt, idx, targets);
      expect([...b.keys()]).toEqual([...a.keys()]);
      for (const [name, g] of a) {
        expect(b.get(name), `${name} has a gradient`).toBeTruthy();
        await expectSame(b.get(name)!, g, backend, `step ${step}: ${name}.grad`);
      }
      // the backward put the stream back: the next step draws the same masks on both
      expect(gCkpt.getState()).toEqual(gPlain.getState());
    }
    // the checkpointed model's loss is the plain one's
    const l1 = tidy(() => noGrad(() => plain.forward(idx, targets).loss!));
    const l2 = tidy(() => noGrad(() => ckpt.forward(idx, targets).loss!));
    await expectSame(l2, l1, backend, 'loss');
    for (const t of [idx, targets, l1, l2]) t.dispose();
    plain.dispose();
    ckpt.dispose();
  });

  it('in eval mode or under noGrad a checkpointed GPT records nothing', () => {
    const model = new GPT({ ...TINY, gradientCheckpointing: true }, { backend, generator: new Generator(1) });
    const idx = tensor([[1, 2, 3]], { backend, dtype: 'i32' });
    const out = tidy(() => noGrad(() => model.forward(idx).logits));
    expect(out.requiresGrad).toBe(false);
    model.eval();
    const out2 = tidy(() => model.forward(idx).logits);
    expect(out2.gradFn?.op).not.toBe('checkpoint');
    for (const t of [idx, out, out2]) t.dispose();
    model.dispose();
  });

  it('dropout inside checkpoint draws the same masks in the backward (own and default generators)', async () => {
    for (const own of [true, false]) {
      const run = (ckpt: boolean): { y: Tensor; x: Tensor; state: unknown } => {
        const gen = own ? new Generator(42) : defaultGenerator;
        if (!own) manualSeed(42);
        const x = tensor(randomData(64, 3), [8, 8], { backend, requiresGrad: true });
        // the mask appears in both the output and (through x·mask) the gradient
        const f = (h: Tensor): Tensor => dropout(h, 0.5, true, gen).mul(h).add(dropout(h, 0.3, true, gen));
        const y = tidy(() => {
          const y = ckpt ? checkpoint(f, x) : f(x);
          if (ckpt) expect(y.gradFn?.op).toBe('checkpoint');
          // a draw between the forward and the backward must not change the recomputed masks
          dropout(x, 0.5, true, gen);
          y.sum().backward();
          return y;
        });
        return { y, x, state: gen.getState() };
      };
      const a = run(false);
      const b = run(true);
      expect(b.state, 'the generator ends where the plain run leaves it').toEqual(a.state);
      await expectSame(b.y, a.y, backend, 'output');
      await expectSame(b.x.grad!, a.x.grad!, backend, 'x.grad');
      for (const t of [a.y, a.x, b.y, b.x]) t.dispose();
    }
  });

  it('parameters read from the closure get their gradients, even when no input requires grad', async () => {
    const w = tensor(randomData(12, 5), [4, 3], { backend, requiresGrad: true });
    const bias = tensor(randomData(3, 6), [3], { backend, requiresGrad: true });
    const x = tensor(randomData(8, 7), [2, 4], { backend }); // no grad
    const f = (h: Tensor): Tensor => h.matmul(w).add(bias).tanh().mul(h.sum());
    tidy(() => f(x).pow(2).sum().backward());
    const [gw, gb] = [w.grad!, bias.grad!];
    w.grad = null;
    bias.grad = null;
    const y = tidy(() => {
      const y = checkpoint(f, x);
      expect(y.requiresGrad).toBe(true);
      y.pow(2).sum().backward();
      return y;
    });
    expect(x.grad).toBeNull();
    await expectSame(w.grad!, gw, backend, 'w.grad');
    await expectSame(bias.grad!, gb, backend, 'bias.grad');
    // accumulates into .grad as any backward does
    tidy(() => checkpoint(f, x).pow(2).sum().backward());
    expectClose(await values(w.grad!), (await values(gw)).map((v) => 2 * v), tol('f32'), 'accumulated w.grad');
    for (const t of [w, bias, x, y, gw, gb]) t.dispose();
  });

  it('an array of outputs, an input returned as is, a retained graph run twice', async () => {
    const x = tensor(randomData(6, 8), [2, 3], { backend, requiresGrad: true });
    const yv = tensor(randomData(6, 9), [2, 3], { backend, requiresGrad: true });
    const f = (a: Tensor, b: Tensor): Tensor[] => [a.mul(b), a.exp(), b];
    const grads = (ckpt: boolean, twice = false): Promise<number[][]> => {
      x.zeroGrad();
      yv.zeroGrad();
      tidy(() => {
        const [p, q, r] = ckpt ? checkpoint(f, x, yv) : f(x, yv);
        const loss = p!.sum().add(q!.mul(2).sum()).add(r!.mul(3).sum());
        loss.backward(undefined, { retainGraph: twice });
        if (twice) loss.backward();
      });
      return Promise.all([values(x.grad!), values(yv.grad!)]);
    };
    const [a, b] = [await grads(false), await grads(true)];
    expectClose(b[0]!, a[0]!, tol('f32'), 'x.grad');
    expectClose(b[1]!, a[1]!, tol('f32'), 'y.grad');
    const c = await grads(true, true);
    expectClose(c[0]!, a[0]!.map((v) => 2 * v), tol('f32'), 'x.grad, twice');
    const id = checkpoint((h) => h, x);
    expect(id).not.toBe(x);
    expect(x.isLeaf).toBe(true);
    for (const t of [x, yv, id]) t.dispose();
  });

  it('agrees with central finite differences in f64 (inputs and a captured weight, with dropout)', async () => {
    if (!stores(backend, 'f64')) return;
    const xData = randomData(6, 11);
    const wData = randomData(9, 12);
    const gen = new Generator(7);
    const f64 = (d: number[], shape: number[], requiresGrad = false): Tensor => tensor(Float64Array.from(d), shape, { backend, dtype: 'f64', requiresGrad });
    const upstream = randomData(6, 13);
    // L(x, w) = Σ u ⊙ checkpoint(h ↦ tanh(dropout(h) @ w) ⊙ h)(x)
    const loss = (x: Tensor, w: Tensor): Tensor => {
      gen.manualSeed(7);
      const y = checkpoint((h) => dropout(h, 0.25, true, gen).matmul(w).tanh().mul(h), x);
      return y.mul(f64(upstream, [2, 3])).sum();
    };
    const x = f64(xData, [2, 3], true);
    const w = f64(wData, [3, 3], true);
    tidy(() => loss(x, w).backward());
    const analytic = [await values(x.grad!), await values(w.grad!)];
    const at = async (xd: number[], wd: number[]): Promise<number> => {
      const l = tidy(() => noGrad(() => loss(f64(xd, [2, 3]), f64(wd, [3, 3]))));
      const v = (await values(l))[0]!;
      l.dispose();
      return v;
    };
    const h = 1e-6;
    for (const [k, data] of [xData, wData].entries()) {
      for (let j = 0; j < data.length; j++) {
        const plus = [...data];
        const minus = [...data];
        plus[j]! += h;
        minus[j]! -= h;
        const lp = k === 0 ? await at(plus, wData) : await at(xData, plus);
        const lm = k === 0 ? await at(minus, wData) : await at(xData, minus);
        const numeric = (lp - lm) / (plus[j]! - minus[j]!);
        expectClose([analytic[k]![j]!], [numeric], { rtol: 1e-6, atol: 1e-7 }, `d/d${k === 0 ? 'x' : 'w'}[${j}]`);
      }
    }
    x.dispose();
    w.dispose();
  });

  it('refuses bad arguments, naming them', () => {
    const x = tensor([1, 2], { backend, requiresGrad: true });
    expect(() => checkpoint(5 as never, x)).toThrow(/^checkpoint: fn must be a function, got 5/);
    expect(() => checkpoint((h) => h, 'x' as never)).toThrow(/^checkpoint: input 0 must be a Tensor, got 'x'/);
    expect(() => checkpoint((a) => a, x, [1, 2] as never)).toThrow(/^checkpoint: input 1 must be a Tensor, got \[1,2\]/);
    const gone = tensor([1], { backend });
    gone.dispose();
    expect(() => checkpoint((h) => h, gone)).toThrow(/^checkpoint: input 0 was disposed/);
    const before = memory().tensors + memory().collected;
    expect(() => checkpoint(() => 3 as never, x)).toThrow(/^checkpoint: fn must return a Tensor or a non-empty array of Tensors, got 3/);
    expect(() => checkpoint(() => [] as never, x)).toThrow(/^checkpoint: fn must return .*got \[\]/);
    expect(() => checkpoint((h) => [h.mul(2), 'y'] as never, x)).toThrow(/^checkpoint: fn must return .*got 'y' at index 1/);
    expect(() => checkpoint((async (h: Tensor) => h.mul(2)) as never, x)).toThrow(/^checkpoint: fn returned a Promise/);
    // an error inside fn propagates, and nothing fn made survives it
    expect(() =>
      checkpoint((h) => {
        h.mul(3);
        throw new Error('inner');
      }, x),
    ).toThrow('inner');
    expect(memory().tensors + memory().collected).toBe(before);
    // an input changed in place before the backward
    const w = tensor([1, 2], { backend });
    const y = checkpoint((h) => h.mul(w), x);
    noGrad(() => x.copy_(tensor([3, 4], { backend })));
    expect(() => y.sum().backward()).toThrow(/modified in place/);
    for (const t of [x, w, y]) t.dispose();
  });

  // an 8-layer GPT where the activations dominate: B·T = 1024 tokens, width 64; the counters are
  // the same on every backend, so it runs where a step is quick
  it.runIf(backend === 'ref' || backend === 'cpu')('the peak memory of an 8-layer GPT training step falls by more than 40%', () => {
    const config: GPTConfig = { vocabSize: 64, blockSize: 128, nLayer: 8, nHead: 4, nEmbd: 64, dropout: 0.1 };
    const B = 8;
    const r = rng(21);
    const ids = (): Tensor => tensor(Array.from({ length: B * 128 }, () => Math.floor(r() * 64)), [B, 128], { backend, dtype: 'i32' });
    const idx = ids();
    const targets = ids();
    const peakOf = (gradientCheckpointing: boolean): number => {
      const model = new GPT({ ...config, gradientCheckpointing }, { backend, generator: new Generator(3) });
      const base = memory().backends[backend]!.bytes;
      resetPeakMemory();
      tidy(() => model.forward(idx, targets).loss!.backward());
      const peak = memory().backends[backend]!.peakBytes - base;
      model.dispose();
      return peak;
    };
    const plain = peakOf(false);
    const ckpt = peakOf(true);
    const cut = 1 - ckpt / plain;
    console.log(`[checkpoint] ${backend}: peak bytes of an 8-layer GPT step (nEmbd 64, B 8, T 128) above the model: ${plain} plain, ${ckpt} checkpointed (${(cut * 100).toFixed(1)}% less)`);
    expect(cut).toBeGreaterThanOrEqual(0.4);
    idx.dispose();
    targets.dispose();
  });
});
