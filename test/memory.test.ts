/**
 * Explicit memory: tidy scopes, keep, dispose, Symbol.dispose, memory() accounting, views that
 * share storage, and the key property that a training loop in tidy holds a constant number of
 * tensors and bytes from one step to the next.
 */
import { expect, it } from 'vitest';
import fc from 'fast-check';
import {
  Generator,
  keep,
  memory,
  noGrad,
  ones,
  randn,
  resetPeakMemory,
  tensor,
  tidy,
  zeros,
  type DType,
  type Tensor,
} from '../src/index.js';
import { FC, describeBackends, shapeArb, size, storedDtypes, values } from './harness.js';

const ITEM: Record<DType, number> = { f64: 8, f32: 4, i32: 4, bf16: 2, f16: 2, bool: 1 };

describeBackends('memory', (backend) => {
  // live + collected (and bytes + collected bytes): immune to the collector finalizing an earlier
  // test's garbage during an await
  const live = (): number => memory().tensors + memory().collected;
  const bytes = (): number => memory().bytes + memory().collectedBytes;
  const mine = (): { tensors: number; storages: number; bytes: number } => {
    const { tensors, storages, bytes } = memory().backends[backend] ?? { tensors: 0, storages: 0, bytes: 0 };
    return { tensors, storages, bytes };
  };

  it('memory() counts tensors, storages and bytes per backend (size × item size)', () => {
    fc.assert(
      fc.property(shapeArb(4, 5), fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['f32', 'f64', 'i32', 'bf16', 'f16', 'bool'])), (shape, dtype) => {
        const before = mine();
        const total = memory();
        const t = zeros(shape, { backend, dtype });
        const during = mine();
        expect(during.tensors).toBe(before.tensors + 1);
        expect(during.storages).toBe(before.storages + 1);
        expect(during.bytes).toBe(before.bytes + size(shape) * ITEM[dtype]);
        expect(memory().tensors).toBe(total.tensors + 1);
        expect(memory().bytes).toBe(total.bytes + size(shape) * ITEM[dtype]);
        t.dispose();
        expect(mine()).toEqual(before);
        expect(memory().tensors).toBe(total.tensors);
      }),
      FC,
    );
  });

  it('the totals are the sums over backends', () => {
    const m = memory();
    const per = Object.values(m.backends);
    expect(m.tensors).toBe(per.reduce((p, b) => p + b.tensors, 0));
    expect(m.bytes).toBe(per.reduce((p, b) => p + b.bytes, 0));
  });

  it('peakBytes is the high-water mark of bytes, per backend and in total, until resetPeakMemory()', () => {
    const peak = (): number => memory().backends[backend]?.peakBytes ?? 0;
    resetPeakMemory();
    const base = memory().backends[backend]?.bytes ?? 0;
    expect(peak()).toBe(base);
    expect(memory().peakBytes).toBe(memory().bytes);
    const a = zeros([256], { backend }); // 1 KiB in f32
    const b = zeros([512], { backend }); // 2 KiB
    expect(peak()).toBe(base + 3072);
    a.dispose();
    b.dispose();
    // freeing lowers bytes, never the peak
    expect(memory().backends[backend]!.bytes).toBe(base);
    expect(peak()).toBe(base + 3072);
    const c = zeros([128], { backend });
    expect(peak()).toBe(base + 3072); // below the mark
    expect(memory().peakBytes).toBeGreaterThanOrEqual(memory().bytes + 3072 - 512);
    // a view allocates nothing
    const v = c.reshape([2, 64]);
    expect(peak()).toBe(base + 3072);
    resetPeakMemory();
    expect(peak()).toBe(base + 512);
    expect(memory().peakBytes).toBe(memory().bytes);
    const d = zeros([1024], { backend });
    expect(peak()).toBe(base + 512 + 4096);
    expect(memory().peakBytes).toBe(memory().bytes);
    for (const t of [c, v, d]) t.dispose();
    expect(peak()).toBe(base + 512 + 4096);
  });

  it('the total peakBytes is the most held at one moment over all backends', () => {
    resetPeakMemory();
    const m0 = memory();
    const a = zeros([100], { backend });
    const b = zeros([50], { backend: 'ref' });
    const m1 = memory();
    expect(m1.peakBytes).toBe(m0.bytes + 600);
    a.dispose();
    b.dispose();
    expect(memory().peakBytes).toBe(m0.bytes + 600);
    // never more than the backends' peaks together, and at least each one
    const per = Object.values(memory().backends);
    expect(memory().peakBytes).toBeLessThanOrEqual(per.reduce((p, c) => p + c.peakBytes, 0));
    for (const c of per) expect(memory().peakBytes).toBeGreaterThanOrEqual(c.peakBytes);
  });

  it('tidy disposes what fn created and keeps what it returns (alone, in arrays, in objects, in maps)', async () => {
    const n0 = live();
    const b0 = bytes();
    const outside = ones([4], { backend });
    const single = tidy(() => {
      const a = ones([4], { backend });
      const b = a.mul(2);
      b.add(1); // dropped
      return b.add(outside);
    });
    expect(single.disposed).toBe(false);
    expect(await values(single)).toEqual([3, 3, 3, 3]);
    expect(outside.disposed).toBe(false); // created outside the scope: untouched
    expect(live()).toBe(n0 + 2);

    const [x, y] = tidy(() => {
      const t = zeros([2], { backend });
      t.add(1);
      return [t.add(2), t.add(3)];
    });
    expect(await values(x!)).toEqual([2, 2]);
    expect(await values(y!)).toEqual([3, 3]);
    expect(live()).toBe(n0 + 4);

    const obj = tidy(() => {
      const t = zeros([2], { backend });
      return { a: t.add(1), nested: { b: [t.add(2)] }, n: 5, s: 'x', m: new Map([['c', t.add(3)]]) };
    });
    expect(await values(obj.a)).toEqual([1, 1]);
    expect(await values(obj.nested.b[0]!)).toEqual([2, 2]);
    expect(await values(obj.m.get('c')!)).toEqual([3, 3]);
    expect(live()).toBe(n0 + 7);

    for (const t of [outside, single, x!, y!, obj.a, obj.nested.b[0]!, obj.m.get('c')!]) t.dispose();
    expect(live()).toBe(n0);
    expect(bytes()).toBe(b0);
  });

  it('a tensor returned from a nested tidy moves to the parent scope', async () => {
    const n0 = live();
    let inner: Tensor | null = null;
    const kept = tidy(() => {
      inner = tidy(() => ones([2], { backend }).mul(3));
      expect(inner.disposed).toBe(false);
      const r = tidy(() => inner!.add(1)); // returned from the inner scope, alive in the outer
      expect(r.disposed).toBe(false);
      return r;
    });
    // the outer scope did not return `inner`: disposed when the outer scope ended
    expect(inner!.disposed).toBe(true);
    expect(kept.disposed).toBe(false);
    expect(await values(kept)).toEqual([4, 4]); // `r`, read outside the (synchronous) scopes
    expect(live()).toBe(n0 + 1);
    kept.dispose();
    expect(live()).toBe(n0);
  });

  it('keep() takes a tensor out of every scope', async () => {
    const n0 = live();
    let k: Tensor | null = null;
    const r = tidy(() =>
      tidy(() => {
        const t = ones([2], { backend });
        k = keep(t.mul(5));
        expect(keep(k)).toBe(k); // idempotent, returns its argument
        t.add(1);
        return 7;
      }),
    );
    expect(r).toBe(7);
    expect(k!.disposed).toBe(false);
    expect(await values(k!)).toEqual([5, 5]);
    expect(live()).toBe(n0 + 1);
    k!.dispose();
    expect(live()).toBe(n0);
  });

  it('dispose() twice is safe and counts once; Symbol.dispose disposes', () => {
    const n0 = live();
    const b0 = bytes();
    const t = zeros([5], { backend });
    t.dispose();
    expect(t.disposed).toBe(true);
    t.dispose();
    expect(live()).toBe(n0);
    expect(bytes()).toBe(b0);

    const u = zeros([5], { backend });
    u[Symbol.dispose]();
    expect(u.disposed).toBe(true);
    u[Symbol.dispose]();
    expect(live()).toBe(n0);
    expect(bytes()).toBe(b0);

    // a disposed tensor inside a scope is simply dropped when the scope ends
    tidy(() => zeros([2], { backend }).dispose());
    expect(live()).toBe(n0);
  });

  it('views share storage: bytes are freed only when the original and the view are both gone', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb(4, 4, 1), fc.boolean(), async (shape, viewFirst) => {
        const m0 = mine();
        const data = Array.from({ length: size(shape) }, (_, i) => i - 3);
        const t = tensor(data, shape, { backend });
        const afterT = mine();
        const v = t.reshape([size(shape)]);
        const d = t.detach();
        // two more tensors, no new storage or bytes
        expect(mine()).toEqual({ tensors: afterT.tensors + 2, storages: afterT.storages, bytes: afterT.bytes });
        (viewFirst ? v : t).dispose();
        expect(mine().bytes).toBe(afterT.bytes);
        // the survivors still read correctly
        expect(await values(viewFirst ? t : v)).toEqual(data);
        expect(await values(d)).toEqual(data);
        (viewFirst ? t : v).dispose();
        expect(mine().bytes).toBe(afterT.bytes);
        expect(mine().storages).toBe(afterT.storages);
        d.dispose();
        expect(mine()).toEqual(m0);
      }),
      FC,
    );
  });

  it('a view made inside tidy of an outside tensor keeps the storage alive only as long as the view', () => {
    const m0 = mine();
    const t = zeros([2, 3], { backend });
    const v = tidy(() => t.reshape([6]));
    t.dispose();
    expect(mine().bytes).toBe(m0.bytes + 24);
    v.dispose();
    expect(mine()).toEqual(m0);
  });

  it('tidy throws on a returned Promise and disposes what it created', () => {
    const n0 = live();
    expect(() =>
      tidy(() => {
        zeros([3], { backend });
        return Promise.resolve(1);
      }),
    ).toThrow(/^tidy: /);
    expect(live()).toBe(n0);
  });

  it('an error inside tidy still disposes the scope, and propagates', () => {
    const n0 = live();
    const b0 = bytes();
    class Boom extends Error {}
    expect(() =>
      tidy(() => {
        const a = ones([4], { backend }).mul(2);
        tidy(() => a.add(1));
        tidy(() => {
          a.sub(1);
          throw new Boom('inner');
        });
      }),
    ).toThrow(Boom);
    expect(live()).toBe(n0);
    expect(bytes()).toBe(b0);
  });

  it('any chain of ops inside tidy (with backward) leaves no tensor behind', () => {
    const ops: ((t: Tensor) => Tensor)[] = [
      (t) => t.add(1),
      (t) => t.mul(t),
      (t) => t.tanh(),
      (t) => t.exp().log(),
      (t) => t.sum(-1, true),
      (t) => t.softmax(-1),
      (t) => t.transpose(0, -1),
      (t) => t.reshape([-1]).reshape(t.shape),
      (t) => t.maximum(0),
      (t) => t.mean(),
      (t) => (t.rank > 0 ? t.slice(0, 0, 1) : t.neg()),
    ];
    fc.assert(
      fc.property(shapeArb(3, 3, 1), fc.array(fc.nat(ops.length - 1), { maxLength: 6 }), fc.boolean(), (shape, chain, grad) => {
        const n0 = live();
        const b0 = bytes();
        const x = randn(shape, { backend, requiresGrad: grad, generator: new Generator(1) });
        tidy(() => {
          let y = x;
          for (const i of chain) y = ops[i]!(y);
          if (grad) y.sum().backward();
        });
        expect(x.grad === null).toBe(!grad);
        x.dispose(); // disposes its grad too
        expect(live()).toBe(n0);
        expect(bytes()).toBe(b0);
      }),
      FC,
    );
  });

  it('training an MLP with SGD in tidy holds memory constant from step 1 to step 200, and learns', async () => {
    const n0 = live();
    const b0 = bytes();
    const g = new Generator(42);
    // a fixed regression batch: y = sin(x0) + x1·x2 − 0.5·x3
    const x = randn([32, 4], { backend, generator: g });
    const xs = await values(x);
    const ys = Array.from({ length: 32 }, (_, i) => Math.sin(xs[i * 4]!) + xs[i * 4 + 1]! * xs[i * 4 + 2]! - 0.5 * xs[i * 4 + 3]!);
    const y = tensor(ys, [32, 1], { backend });
    const w1 = tidy(() => randn([4, 16], { backend, generator: g }).mul(0.5)).requiresGrad_();
    const b1 = zeros([16], { backend, requiresGrad: true });
    const w2 = tidy(() => randn([16, 1], { backend, generator: g }).mul(0.25)).requiresGrad_();
    const b2 = zeros([1], { backend, requiresGrad: true });
    const params = [w1, b1, w2, b2];
    const lr = 0.05;

    // the loss leaves the scope to be read (asynchronously, outside tidy), then is disposed
    const step = async (): Promise<number> => {
      const loss = tidy(() => {
        for (const p of params) p.zeroGrad();
        const h = x.matmul(w1).add(b1).tanh();
        const pred = h.matmul(w2).add(b2);
        const loss = pred.sub(y).pow(2).mean();
        loss.backward();
        noGrad(() => {
          for (const p of params) p.copy_(p.sub(p.grad!.mul(lr)));
        });
        return loss;
      });
      const value = await loss.item();
      loss.dispose();
      return value;
    };

    const first = await step();
    const afterFirst = { tensors: live(), bytes: bytes() };
    // the parameters, the batch and one gradient per parameter; nothing else survives a step
    expect(afterFirst.tensors).toBe(n0 + 2 + 2 * params.length);
    let last = first;
    for (let i = 2; i <= 200; i++) {
      last = await step();
      if (i % 50 === 0) expect({ step: i, tensors: live(), bytes: bytes() }).toEqual({ step: i, ...afterFirst });
    }
    expect(live()).toBe(afterFirst.tensors);
    expect(bytes()).toBe(afterFirst.bytes);
    expect(Number.isFinite(last)).toBe(true);
    expect(last).toBeLessThan(first * 0.2);

    for (const t of [x, y, ...params]) t.dispose();
    expect(live()).toBe(n0);
    expect(bytes()).toBe(b0);
  });
});
