/**
 * Optimizers, schedules and clipping: parity with PyTorch 1.13 (SGD, Adam, AdamW) and with the
 * LAMB paper's formulas (fixtures from test/fixtures/make_optim_fixtures.py), parameter groups,
 * f32 state for half parameters, exact state-dict round trips, a constant live-tensor count over
 * 50 steps, schedules against their closed forms, clipping against torch's definition, and
 * gradient accumulation equal to one large batch.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import {
  bf16Bits,
  bf16Value,
  memory,
  noGrad,
  tensor,
  tidy,
  type DType,
  type Tensor,
} from '../src/index.js';
import {
  Adam,
  AdamW,
  LAMB,
  LRScheduler,
  SGD,
  clipGradNorm,
  clipGradValue,
  constantLr,
  cosineLr,
  inverseSqrtLr,
  linearDecayLr,
  linearWarmupLr,
  stepLr,
  type Optimizer,
  type OptimizerOptions,
} from '../src/optim/index.js';
import { describeBackends, expectClose, floatDtype, rng, stored, stores, tol, values } from './harness.js';

interface FixtureCase {
  name: string;
  optimizer: 'SGD' | 'Adam' | 'AdamW' | 'LAMB';
  defaults: Record<string, unknown>;
  groups: { params: number[]; options: Record<string, unknown> }[];
  f32: number[][][];
  f64: number[][][];
}
interface Fixture {
  shapes: number[][];
  init: number[][];
  grads: number[][][];
  cases: FixtureCase[];
}
const FIXTURE = JSON.parse(readFileSync(new URL('./fixtures/optim.json', import.meta.url), 'utf8')) as Fixture;

type AnyOptimizer = Optimizer<OptimizerOptions>;
const MAKERS: Record<string, (params: never, opts: never) => AnyOptimizer> = {
  SGD: (p, o) => new SGD(p, o) as unknown as AnyOptimizer,
  Adam: (p, o) => new Adam(p, o) as unknown as AnyOptimizer,
  AdamW: (p, o) => new AdamW(p, o) as unknown as AnyOptimizer,
  LAMB: (p, o) => new LAMB(p, o) as unknown as AnyOptimizer,
};
function make(kind: string, params: unknown, opts: unknown): AnyOptimizer {
  return MAKERS[kind]!(params as never, opts as never);
}

const bytesOf = async (t: Tensor): Promise<Uint8Array> => {
  const d = await t.data();
  return new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
};

describeBackends('optimizers', (backend) => {
  const leaf = (data: number[], shape: number[], dtype: DType = 'f32'): Tensor => tensor(data, shape, { backend, dtype, requiresGrad: true });
  const setGrad = (p: Tensor, g: number[]): void => {
    p.zeroGrad();
    p.grad = tensor(g, [...p.shape], { backend, dtype: p.dtype });
  };

  for (const c of FIXTURE.cases)
    for (const dtype of ['f32', 'f64'] as const)
      // the f64 fixtures need f64: a backend without it runs the f32 ones, and says the f64 ones are skipped
      it.skipIf(!stores(backend, dtype))(`${c.name} matches the fixture over 3 steps in ${dtype} (${c.optimizer})`, async () => {
        const params = FIXTURE.init.map((v, i) => leaf(v, FIXTURE.shapes[i]!, dtype));
        const groups = c.groups.map((g) => ({ params: g.params.map((i) => params[i]!), ...g.options }));
        const opt = make(c.optimizer, groups, c.defaults);
        const expected = c[dtype];
        const t = dtype === 'f32' ? { rtol: 1e-6, atol: 1e-9 } : { rtol: 1e-12, atol: 1e-15 };
        for (const [s, step] of FIXTURE.grads.entries()) {
          params.forEach((p, i) => setGrad(p, step[i]!));
          opt.step();
          for (const [i, p] of params.entries()) expectClose(await values(p), expected[s]![i]!, t, `${c.name} step ${s + 1} param ${i}`);
        }
        for (const p of params) {
          expect(p.dtype).toBe(dtype);
          expect(p.requiresGrad).toBe(true);
          p.dispose();
        }
        opt.disposeState();
      });

  it('SGD without momentum is w − lr·(g + λw) exactly; maximize flips the sign', async () => {
    // exactly in f64; where f64 is not stored, in f32 to f32 rounding
    const fdt = floatDtype(backend);
    const w = leaf([1, -2, 3], [3], fdt);
    const opt = new SGD([w], { lr: 0.5, weightDecay: 0.1 });
    setGrad(w, [0.25, 1, -4]);
    opt.step();
    const want = [1 - 0.5 * (0.25 + 0.1), -2 - 0.5 * (1 - 0.2), 3 - 0.5 * (-4 + 0.3)];
    if (fdt === 'f64') expect(await values(w)).toEqual(want);
    else expectClose(await values(w), want, tol(fdt));
    const v = leaf([1, 2], [2], fdt);
    const up = new SGD([v], { lr: 0.5, maximize: true });
    setGrad(v, [1, -1]);
    up.step();
    expect(await values(v)).toEqual([1.5, 1.5]);
    expect(opt.stateOf(w)!.step).toBe(1);
    expect(Object.keys(opt.stateOf(w)!.tensors)).toEqual([]); // no buffer without momentum
  });

  it('parameters without a gradient are skipped and keep no state', async () => {
    const a = leaf([1, 2], [2]);
    const b = leaf([3, 4], [2]);
    const opt = new Adam([a, b], { lr: 0.1 });
    setGrad(a, [1, 1]);
    opt.step();
    expect(await values(b)).toEqual([3, 4]);
    expect(opt.stateOf(b)).toBeUndefined();
    expect(opt.stateOf(a)!.step).toBe(1);
    expect(Object.keys(opt.stateDict().state)).toEqual(['0']);
  });

  it('zeroGrad drops every gradient', () => {
    const a = leaf([1, 2], [2]);
    const b = leaf([3], [1]);
    const opt = new SGD([{ params: [a] }, { params: [b] }], { lr: 1 });
    tidy(() => a.mul(2).sum().add(b.sum()).backward());
    expect(a.grad).not.toBeNull();
    opt.zeroGrad();
    expect(a.grad).toBeNull();
    expect(b.grad).toBeNull();
  });

  it('parameter groups: per-group options, defaults for the rest, lr readable and writable per group', async () => {
    const w = leaf([1, 1], [2]);
    const bias = leaf([1, 1], [2]);
    const opt = new AdamW([{ params: [w], weightDecay: 0.1 }, { params: [bias], weightDecay: 0 }], { lr: 0.01, betas: [0.9, 0.95] });
    expect(opt.paramGroups.map((g) => g.weightDecay)).toEqual([0.1, 0]);
    expect(opt.paramGroups.map((g) => g.lr)).toEqual([0.01, 0.01]);
    expect(opt.paramGroups[1]!.betas).toEqual([0.9, 0.95]);
    opt.paramGroups[1]!.lr = 0;
    setGrad(w, [0, 0]);
    setGrad(bias, [0, 0]);
    opt.step();
    // zero gradient: w only shrinks by the decoupled decay 1 − lr·λ, the bias (lr 0) does not move
    expectClose(await values(w), [1 - 0.01 * 0.1, 1 - 0.01 * 0.1], { rtol: 1e-7, atol: 0 });
    expect(await values(bias)).toEqual([1, 1]);
  });

  it('a plain tensor list, a single group and defaults all work; bad options are errors naming the optimizer', () => {
    const p = leaf([1], [1]);
    expect(new Adam([p]).paramGroups[0]!.lr).toBe(1e-3);
    expect(new AdamW([p]).paramGroups[0]!.weightDecay).toBe(1e-2);
    expect(new LAMB([p]).paramGroups[0]!.eps).toBe(1e-6);
    expect(() => new SGD([p], { lr: -1 })).toThrow(/^SGD: lr must be a number ≥ 0, got -1/);
    expect(() => new SGD([p], { lr: 0.1, nesterov: true })).toThrow(/^SGD: Nesterov momentum needs momentum > 0/);
    expect(() => new Adam([p], { betas: [1, 0.999] })).toThrow(/^Adam: beta1 must be a number in \[0, 1\), got 1/);
    expect(() => new AdamW([p], { betas: [0.9, -0.1] })).toThrow(/^AdamW: beta2 must be a number in \[0, 1\), got -0.1/);
    expect(() => new LAMB([p], { weightDecay: -1 })).toThrow(/^LAMB: weightDecay must be a number ≥ 0, got -1/);
    // non-finite and non-numeric hyper-parameters are refused too (Infinity used to pass `lr >= 0`)
    expect(() => new AdamW([p], { lr: Infinity })).toThrow(/^AdamW: lr must be a number ≥ 0, got Infinity/);
    expect(() => new SGD([p], { lr: 0.1, momentum: NaN })).toThrow(/^SGD: momentum must be a number ≥ 0, got NaN/);
    expect(() => new Adam([p], { eps: '1e-8' as unknown as number })).toThrow(/^Adam: eps must be a number ≥ 0, got '1e-8'/);
    expect(() => new AdamW([p], { amsgrad: 1 as unknown as boolean })).toThrow(/^AdamW: amsgrad must be true or false, got 1/);
    expect(() => new Adam([{ params: [p], momentum: 0.9 } as never])).toThrow(/^Adam: unknown option 'momentum' in parameter group 0/);
    expect(() => new LAMB([p], { amsgrad: true } as never)).toThrow(/^LAMB: unknown option 'amsgrad'/);
    expect(() => new SGD([p], {} as never)).toThrow(/^SGD: lr is required/);
    expect(() => new Adam([{ params: [p] }, { params: [p] }])).toThrow(/^Adam: parameter 0 \(\[1\]\) appears in more than one group/);
    expect(() => new Adam([tensor([1], { backend, dtype: 'i32' })])).toThrow(/^Adam: parameter 0 of group 0 must be floating, got \[1\] i32/);
    expect(() => new Adam([])).toThrow(/^Adam: got an empty parameter list/);
    const opt = new Adam([p]);
    p.grad = tensor([1, 2], { backend });
    expect(() => opt.step()).toThrow(/^Adam.step: gradient \[2\] does not match parameter \[1\]/);
    p.zeroGrad();
  });

  for (const kind of ['SGD', 'Adam', 'AdamW', 'LAMB'])
    it(`${kind}: bf16 parameters keep f32 state and get the f32 update rounded to bf16`, async () => {
      const r = rng(7);
      const init = Array.from({ length: 6 }, () => bf16Value(bf16Bits(r() * 2 - 1)));
      const grads = [0, 1, 2].map(() => Array.from({ length: 6 }, () => bf16Value(bf16Bits(r() * 2 - 1))));
      const opts = { lr: 0.05, momentum: 0.9, weightDecay: 0.01 };
      const half = leaf(init, [2, 3], 'bf16');
      const full = leaf(init, [2, 3], 'f32');
      const optH = make(kind, [half], kind === 'SGD' ? opts : { lr: 0.05, weightDecay: 0.01 });
      const optF = make(kind, [full], kind === 'SGD' ? opts : { lr: 0.05, weightDecay: 0.01 });
      for (const g of grads) {
        setGrad(half, g);
        setGrad(full, g);
        optH.step();
        optF.step();
        // f32 state seen through the same f32 math, from bf16-rounded weights
        noGrad(() => full.copy_(half));
      }
      expect(half.dtype).toBe('bf16');
      for (const t of Object.values(optH.stateOf(half)!.tensors)) expect(t.dtype).toBe('f32');
      expect(await values(half)).toEqual((await values(full)).map((x) => bf16Value(bf16Bits(x))));
      // the moments themselves are the f32 ones
      const sH = optH.stateOf(half)!.tensors;
      const sF = optF.stateOf(full)!.tensors;
      for (const k of Object.keys(sF)) expect(await values(sH[k]!)).toEqual(await values(sF[k]!));
    });

  for (const kind of ['SGD', 'Adam', 'AdamW', 'LAMB'])
    it(`${kind}: stateDict → loadStateDict is exact (state, step counts, hyper-parameters)`, async () => {
      const r = rng(11);
      const data = (n: number): number[] => Array.from({ length: n }, () => r() * 2 - 1);
      const w0 = data(6);
      const b0 = data(3);
      const grads = [0, 1, 2, 3, 4, 5].map(() => [data(6), data(3)]);
      const opts = kind === 'SGD' ? { lr: 0.1, momentum: 0.9, nesterov: true } : kind === 'Adam' ? { lr: 0.01, amsgrad: true } : { lr: 0.01 };
      const a = [leaf(w0, [2, 3]), leaf(b0, [3])];
      const optA = make(kind, [{ params: [a[0]!], weightDecay: 0.05 }, { params: [a[1]!], weightDecay: 0 }], opts);
      for (const g of grads.slice(0, 3)) {
        a.forEach((p, i) => setGrad(p, g[i]!));
        optA.step();
      }
      optA.paramGroups[0]!.lr = 0.0123; // a schedule moved it
      const b: Tensor[] = [];
      for (const p of a) b.push(leaf(await values(p), [...p.shape]));
      const optB = make(kind, [{ params: [b[0]!] }, { params: [b[1]!] }], { lr: 1 });
      optB.loadStateDict(optA.stateDict());
      expect(optB.paramGroups.map(({ params: _, ...o }) => o)).toEqual(optA.paramGroups.map(({ params: _, ...o }) => o));
      expect(optB.stateOf(b[0]!)!.step).toBe(3);
      for (const g of grads.slice(3)) {
        a.forEach((p, i) => setGrad(p, g[i]!));
        b.forEach((p, i) => setGrad(p, g[i]!));
        optA.step();
        optB.step();
      }
      for (const [i, p] of a.entries()) expect(await bytesOf(b[i]!)).toEqual(await bytesOf(p));
      // loaded state is a copy: freeing A's state leaves B's intact
      const sd = optA.stateDict();
      optA.disposeState();
      expect(Object.values(optB.stateOf(b[0]!)!.tensors).every((t) => !t.disposed)).toBe(true);
      expect(Object.values(sd.state[0]!.tensors).every((t) => t.disposed)).toBe(true);
    });

  it('loadStateDict rejects mismatched optimizers, groups, shapes and steps, changing nothing', () => {
    const p = leaf([1, 2, 3], [3]);
    const opt = new Adam([p], { lr: 0.1 });
    setGrad(p, [1, 1, 1]);
    opt.step();
    const sd = opt.stateDict();
    const q = leaf([1, 2], [2]);
    expect(() => new SGD([p], { lr: 1 }).loadStateDict(sd)).toThrow(/^SGD.loadStateDict: the state dict is from a Adam optimizer/);
    expect(() => new Adam([{ params: [p] }, { params: [q] }]).loadStateDict(sd)).toThrow(/has 1 parameter groups, this optimizer 2/);
    const other = new Adam([q]);
    expect(() => other.loadStateDict(sd)).toThrow(/^Adam.loadStateDict: state 'expAvg' of parameter 0 is \[3\], the parameter \[2\]/);
    expect(other.stateOf(q)).toBeUndefined();
    expect(() => new Adam([p]).loadStateDict({ ...sd, state: { 0: { step: -1, tensors: {} } } })).toThrow(/bad step count -1/);
    expect(() => new Adam([p]).loadStateDict({ ...sd, state: { 5: { step: 1, tensors: {} } } })).toThrow(/state for parameter 5, which does not exist/);
    expect(() =>
      new Adam([p]).loadStateDict({ ...sd, paramGroups: [{ params: [0], options: { ...sd.paramGroups[0]!.options, lr: -2 } }] }),
    ).toThrow(/^Adam.loadStateDict: lr must be a number ≥ 0, got -2/);
  });

  for (const kind of ['SGD', 'Adam', 'AdamW', 'LAMB'])
    it(`${kind}: 50 training steps do not grow the live tensor count`, () => {
      const r = rng(3);
      const w1 = leaf(Array.from({ length: 12 }, () => r() - 0.5), [4, 3]);
      const w2 = leaf(Array.from({ length: 3 }, () => r() - 0.5), [3, 1], 'bf16');
      const x = tensor(Array.from({ length: 8 }, () => r()), [2, 4], { backend });
      const y = tensor([[1], [-1]], { backend });
      const opts = { SGD: { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01 }, Adam: { lr: 0.01, amsgrad: true }, AdamW: { lr: 0.01, amsgrad: true }, LAMB: { lr: 0.01, weightDecay: 0.01 } };
      const opt = make(kind, [w1, w2], opts[kind as keyof typeof opts]);
      const trainStep = (): void => {
        tidy(() => {
          const loss = x.matmul(w1).relu().matmul(w2.cast('f32')).sub(y).square().mean();
          loss.backward();
        });
        clipGradNorm([w1, w2], 1).dispose();
        opt.step();
        opt.zeroGrad();
      };
      trainStep(); // creates the state
      const before = memory();
      for (let i = 0; i < 50; i++) trainStep();
      const after = memory();
      expect(after.tensors).toBe(before.tensors);
      expect(after.bytes).toBe(before.bytes);
      expect(opt.stateOf(w1)!.step).toBe(51);
    });

  it('LAMB: the trust ratio is ‖w‖/‖r‖, and 1 when the weights are zero', async () => {
    // one step, β1 = β2 = 0 (so m̂ = g, √v̂ = |g|): r = g/(|g|+ε) = sign(g) (ε = 0)
    // in f64, or in f32 (to f32 rounding) where f64 is not stored
    const fdt = floatDtype(backend);
    const w = leaf([3, 4], [2], fdt);
    const z = leaf([0, 0], [2], fdt);
    const opt = new LAMB([w, z], { lr: 0.1, betas: [0, 0], eps: 0 });
    setGrad(w, [2, -5]);
    setGrad(z, [1, -1]);
    opt.step();
    // ‖w‖ = 5, r = [1, −1], ‖r‖ = √2: w − 0.1·(5/√2)·r
    expectClose(await values(w), [3 - 0.5 / Math.SQRT2, 4 + 0.5 / Math.SQRT2], fdt === 'f64' ? { rtol: 1e-15, atol: 0 } : tol(fdt));
    expect(await values(z)).toEqual([-0.1, 0.1].map(stored(fdt)));
  });
});

describeBackends('gradient clipping', (backend) => {
  const withGrad = (g: number[], shape: number[], dtype: DType = 'f32'): Tensor => {
    const p = tensor(new Array(g.length).fill(0), shape, { backend, dtype, requiresGrad: true });
    p.grad = tensor(g, shape, { backend, dtype });
    return p;
  };

  it('clipGradNorm scales by maxNorm/(total + 1e-6) when over, returns the total norm, and leaves small gradients alone', async () => {
    // exactly in f64; where f64 is not stored, in f32 to f32 rounding
    const fdt = floatDtype(backend);
    const same = (got: number[], want: number[]): void => (fdt === 'f64' ? expect(got).toEqual(want) : expectClose(got, want, tol(fdt)));
    const a = withGrad([3, 0, 0, 4], [2, 2], fdt);
    const b = withGrad([12], [1], fdt);
    const total = clipGradNorm([a, b], 6.5);
    expect(await total.item()).toBe(13); // √(9 + 16 + 144)
    expect(total.dtype).toBe(fdt);
    const s = 6.5 / (13 + 1e-6);
    same(await values(a.grad!), [3 * s, 0, 0, 4 * s]);
    same(await values(b.grad!), [12 * s]);
    const c = withGrad([0.3, -0.4], [2], fdt);
    expect(await clipGradNorm(c, 1).item()).toBeCloseTo(0.5, fdt === 'f64' ? 15 : 6);
    expect(await values(c.grad!)).toEqual([0.3, -0.4].map(stored(fdt)));
    total.dispose();
  });

  it('clipGradNorm with normType 1 and Infinity, skipping parameters without grads, on bf16 grads', async () => {
    const a = withGrad([1, -2], [2]);
    const b = withGrad([-3], [1]);
    const none = tensor([1], { backend, requiresGrad: true });
    expect(await clipGradNorm([a, b, none], 100, 1).item()).toBe(6);
    expect(await clipGradNorm([a, b], 100, Infinity).item()).toBe(3);
    clipGradNorm([a, b], 1.5, Infinity);
    expectClose(await values(a.grad!), [0.5, -1], { rtol: 1e-6, atol: 0 });
    const h = withGrad([30, 40], [2], 'bf16');
    expect(await clipGradNorm(h, 5).item()).toBe(50);
    expect(h.grad!.dtype).toBe('bf16');
    expectClose(await values(h.grad!), [3, 4], { rtol: 1e-2, atol: 0 });
    expect(await clipGradNorm([none], 1).item()).toBe(0);
  });

  it('clipGradNorm errors: bad maxNorm or normType, non-finite norm when asked', async () => {
    const a = withGrad([Infinity, 1], [2]);
    expect(() => clipGradNorm(a, -1)).toThrow(/^clipGradNorm: maxNorm must be a non-negative number, got -1/);
    expect(() => clipGradNorm(a, 1, 0)).toThrow(/^clipGradNorm: normType must be a number > 0 \(or Infinity\), got 0/);
    // checked on the device: the call returns, the gradients stay unscaled, the next read throws
    const total = clipGradNorm(a, 1, 2, { errorIfNonfinite: true });
    await expect(total.data()).rejects.toThrow(/^clipGradNorm: the total norm of order 2 is non-finite \(Infinity\)/);
    total.dispose();
    expect(await values(a.grad!)).toEqual([Infinity, 1]); // untouched
  });

  it('clipGradValue clamps in place', async () => {
    const a = withGrad([-3, 0.5, 2], [3]);
    clipGradValue([a], 1);
    expect(await values(a.grad!)).toEqual([-1, 0.5, 1]);
    expect(() => clipGradValue([a], -1)).toThrow(/^clipGradValue: clip must be a non-negative number, got -1/);
  });
});

describeBackends('gradient accumulation', (backend) => {
  // k micro-batches with the loss scaled by 1/k, backward k times, one step = one step on the whole batch
  for (const kind of ['SGD', 'AdamW'])
    it(`${kind}: 4 micro-batches of 2 give the update of one batch of 8 (f64, within 1e-12; f32 to f32 rounding where f64 is not stored)`, async () => {
      const fdt = floatDtype(backend);
      const r = rng(5);
      const xs = Array.from({ length: 8 * 3 }, () => r() * 2 - 1);
      const ys = Array.from({ length: 8 }, () => r() * 2 - 1);
      const w0 = Array.from({ length: 3 * 4 }, () => r() - 0.5);
      const v0 = Array.from({ length: 4 }, () => r() - 0.5);
      const model = () => [tensor(w0, [3, 4], { backend, dtype: fdt, requiresGrad: true }), tensor(v0, [4, 1], { backend, dtype: fdt, requiresGrad: true })];
      const loss = ([w, v]: Tensor[], from: number, n: number, scale: number): void =>
        tidy(() => {
          const x = tensor(xs.slice(from * 3, (from + n) * 3), [n, 3], { backend, dtype: fdt });
          const y = tensor(ys.slice(from, from + n), [n, 1], { backend, dtype: fdt });
          x.matmul(w!).tanh().matmul(v!).sub(y).square().mean().mul(scale).backward();
        });
      const opts = kind === 'SGD' ? { lr: 0.1, momentum: 0.9 } : { lr: 0.01, weightDecay: 0.1 };
      const big = model();
      const optBig = make(kind, big, opts);
      loss(big, 0, 8, 1);
      optBig.step();
      const micro = model();
      const optMicro = make(kind, micro, opts);
      for (let k = 0; k < 4; k++) loss(micro, k * 2, 2, 1 / 4);
      optMicro.step();
      for (const [i, p] of micro.entries()) expectClose(await values(p), await values(big[i]!), fdt === 'f64' ? { rtol: 0, atol: 1e-12 } : tol(fdt), `param ${i}`);
      // and the parameters did move
      expect(await values(big[0]!)).not.toEqual(w0.map(stored(fdt)));
    });
});

describeBackends('learning-rate schedules', (backend) => {
  const optimizerWith = (...lrs: number[]): SGD =>
    new SGD(lrs.map((lr) => ({ params: [tensor([0], { backend, requiresGrad: true })], lr })), { lr: 1 });

  it('constant and linear warm-up', () => {
    expect([0, 5, 1000].map((t) => constantLr()(t, 0.3))).toEqual([0.3, 0.3, 0.3]);
    const warm = linearWarmupLr(4);
    expect([0, 1, 2, 3, 4, 100].map((t) => warm(t, 2))).toEqual([0.5, 1, 1.5, 2, 2, 2]);
    expect(linearWarmupLr(0)(0, 2)).toBe(2);
  });

  it('cosine with warm-up and a floor matches its closed form', () => {
    const [W, T, base, min] = [10, 110, 1e-3, 1e-5];
    const f = cosineLr({ warmupSteps: W, totalSteps: T, minLr: min });
    const closed = (t: number): number =>
      t < W ? (base * (t + 1)) / W : t >= T ? min : min + (base - min) * 0.5 * (1 + Math.cos((Math.PI * (t - W)) / (T - W)));
    for (let t = 0; t < 200; t++) expect(f(t, base)).toBeCloseTo(closed(t), 18);
    expect(f(W, base)).toBe(base);
    expect(f(W + 50, base)).toBeCloseTo((base + min) / 2, 18);
    expect(f(T, base)).toBe(min);
    expect(f(10_000, base)).toBe(min);
    expect(cosineLr({ totalSteps: 100 })(0, 1)).toBe(1);
  });

  it('linear decay, step and inverse square root match their closed forms', () => {
    const lin = linearDecayLr({ warmupSteps: 2, totalSteps: 12, minLr: 0.1 });
    expect([0, 1, 2, 7, 12, 20].map((t) => lin(t, 1.1))).toEqual([0.55, 1.1, 1.1, 0.1 + 1 * 0.5, 0.1, 0.1]);
    const st = stepLr(30, 0.5);
    expect([0, 29, 30, 59, 60, 95].map((t) => st(t, 0.8))).toEqual([0.8, 0.8, 0.4, 0.4, 0.2, 0.1]);
    const inv = inverseSqrtLr(4);
    expect([0, 3, 4, 15, 99].map((t) => inv(t, 1))).toEqual([0.25, 1, Math.sqrt(4 / 5), Math.sqrt(4 / 16), Math.sqrt(4 / 100)]);
    expect([0, 3].map((t) => inverseSqrtLr()(t, 1))).toEqual([1, 0.5]);
  });

  it('schedule arguments are validated', () => {
    expect(() => cosineLr({ warmupSteps: 10, totalSteps: 5 })).toThrow(/^cosineLr: totalSteps must be an integer ≥ 10, got 5/);
    expect(() => linearDecayLr({ totalSteps: 5, minLr: -1 })).toThrow(/^linearDecayLr: minLr must be a number ≥ 0, got -1/);
    expect(() => stepLr(0)).toThrow(/^stepLr: stepSize must be an integer ≥ 1, got 0/);
    expect(() => linearWarmupLr(1.5)).toThrow(/^linearWarmupLr: warmupSteps must be an integer ≥ 0, got 1.5/);
    expect(() => cosineLr({ totalSteps: Infinity })).toThrow(/^cosineLr: totalSteps must be an integer ≥ 0, got Infinity/);
    expect(() => inverseSqrtLr(-1)).toThrow(/^inverseSqrtLr/);
  });

  it('LRScheduler sets every group from its own base rate, step by step, with any optimizer', () => {
    const opt = optimizerWith(0.1, 0.01);
    const sched = new LRScheduler(opt, linearWarmupLr(2, stepLr(1, 0.5)));
    expect(sched.baseLrs).toEqual([0.1, 0.01]);
    expect(opt.paramGroups.map((g) => g.lr)).toEqual([0.05, 0.005]); // step 0 applied at construction
    sched.step();
    expect(opt.paramGroups.map((g) => g.lr)).toEqual([0.1, 0.01]);
    sched.step();
    sched.step();
    expect(sched.stepCount).toBe(3);
    expect(opt.paramGroups.map((g) => g.lr)).toEqual([0.05, 0.005]);
    expect(sched.lr(2, 1)).toBe(0.01);
    expect(sched.lrs(0)).toEqual([0.05, 0.005]);
    const lamb = new LAMB([tensor([1], { backend, requiresGrad: true })], { lr: 0.02 });
    new LRScheduler(lamb, cosineLr({ warmupSteps: 4, totalSteps: 8 }));
    expect(lamb.paramGroups[0]!.lr).toBe(0.005);
    expect(() => sched.lr(0, 5)).toThrow(/^LRScheduler.lr: no parameter group 5 \(2 groups\)/);
    expect(() => new LRScheduler(opt, constantLr(), { baseLrs: [1] })).toThrow(/^LRScheduler: got 1 base rates for 2 parameter groups/);
  });

  it('LRScheduler stateDict round-trips and restores the groups’ rates', () => {
    const opt = optimizerWith(1, 2);
    const sched = new LRScheduler(opt, cosineLr({ warmupSteps: 3, totalSteps: 20, minLr: 0.01 }));
    for (let i = 0; i < 7; i++) sched.step();
    const saved = JSON.parse(JSON.stringify(sched.stateDict()));
    const opt2 = optimizerWith(5, 5);
    const sched2 = new LRScheduler(opt2, cosineLr({ warmupSteps: 3, totalSteps: 20, minLr: 0.01 }));
    sched2.loadStateDict(saved);
    expect(sched2.stepCount).toBe(7);
    expect(sched2.baseLrs).toEqual([1, 2]);
    expect(opt2.paramGroups.map((g) => g.lr)).toEqual(opt.paramGroups.map((g) => g.lr));
    sched.step();
    sched2.step();
    expect(opt2.paramGroups.map((g) => g.lr)).toEqual(opt.paramGroups.map((g) => g.lr));
    expect(() => sched2.loadStateDict({ step: 1, baseLrs: [1] })).toThrow(/^LRScheduler.loadStateDict: expected 2 base rates/);
  });
});
