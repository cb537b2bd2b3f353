/**
 * addLayerNorm (a transformer's residual add and the next layer norm in one kernel pass) on every
 * backend: the layerNorm kernel with a residual against ref (the sum, the normalised rows, mean
 * and rstd) on rows past every lane split, with and without weight and bias, RMS too; the tensor op
 * against `layerNorm(x.add(r))`, values and gradients (its graph is that composition); and the
 * f64 gradient against finite differences.
 */
import { expect, it } from 'vitest';
import * as k from '../src/index.js';
import type { Backend } from '../src/index.js';
import { describeBackends, expectClose, stores } from './harness.js';

type Storage = ReturnType<Backend['alloc']>;

const draw = async (n: number, gen: k.Generator): Promise<Float32Array> => Float32Array.from(await k.randn([n], { backend: 'ref', generator: gen }).data());

describeBackends('addLayerNorm', (backend) => {
  it('the layerNorm kernel with a residual normalises x + residual and stores the sum, as ref', async () => {
    const [be, ref] = [await k.getBackend(backend), await k.getBackend('ref')];
    for (const [rows, cols] of [[5, 7], [3, 768], [2, 1025], [17, 64], [1, 4097]] as const)
      for (const [hasW, rms] of [[true, false], [false, false], [true, true]] as const) {
        const gen = new k.Generator(rows * cols);
        const [x, r, w, b] = [await draw(rows * cols, gen), await draw(rows * cols, gen), await draw(cols, gen), await draw(cols, gen)];
        const run = async (bk: Backend): Promise<number[][]> => {
          const st: Storage[] = [bk.alloc('f32', rows * cols), bk.alloc('f32', rows * cols), bk.alloc('f32', cols), bk.alloc('f32', cols), bk.alloc('f32', rows * cols), bk.alloc('f32', rows), bk.alloc('f32', rows), bk.alloc('f32', rows * cols)];
          try {
            [x, r, w, b].forEach((v, i) => bk.write(st[i]!, v));
            bk.fill({ out: st[5]!, value: 0 });
            bk.layerNorm({ x: st[0]!, residual: st[1]!, weight: hasW ? st[2]! : null, bias: hasW ? st[3]! : null, out: st[4]!, mean: st[5]!, rstd: st[6]!, sum: st[7]!, rows, cols, eps: 1e-5, rms });
            return Promise.all([st[7]!, st[4]!, st[5]!, st[6]!].map(async (s) => Array.from(await bk.read(s), Number)));
          } finally {
            for (const s of st) bk.free(s);
          }
        };
        const [got, want] = [await run(be), await run(ref)];
        const what = `${rows}×${cols} weight ${hasW} rms ${rms}`;
        expectClose(got[0]!, want[0]!, { rtol: 0, atol: 0 }, `${what} sum`); // one f32 add each
        expectClose(got[1]!, want[1]!, { rtol: 1e-4, atol: 1e-5 }, `${what} out`);
        // f32 sums of up to 4097 elements (ref sums in f64): the mean near 0 to a few 1e-6
        expectClose(got[2]!, want[2]!, { rtol: 1e-4, atol: 1e-5 }, `${what} mean`);
        expectClose(got[3]!, want[3]!, { rtol: 1e-4, atol: 1e-6 }, `${what} rstd`);
      }
  });

  it('equals [x + r, layerNorm(x + r)] with the same gradients (and two ops where it cannot fuse)', async () => {
    for (const dtype of ['f32', 'bf16'] as const) {
      if (!stores(backend, dtype)) continue;
      const gen = new k.Generator(9);
      const make = (shape: number[]): k.Tensor => k.randn(shape, { backend, generator: gen, dtype }).requiresGrad_();
      const [x, r, w, b] = [make([2, 5, 48]), make([2, 5, 48]), make([48]), make([48])];
      const g1 = k.randn([2, 5, 48], { backend, generator: gen, dtype });
      const g2 = k.randn([2, 5, 48], { backend, generator: gen, dtype });
      const grads = async (fused: boolean): Promise<number[][]> => {
        for (const t of [x, r, w, b]) t.grad = null;
        const outs = k.tidy(() => {
          const [s, y] = fused ? k.addLayerNorm(x, r, [48], w, b) : ((t: k.Tensor) => [t, k.layerNorm(t, [48], w, b)])(x.add(r));
          s!.mul(g1).sum().add(y!.mul(g2).sum()).backward();
          return [s!.detach(), y!.detach()];
        });
        const vals = [...(await Promise.all(outs.map(async (t) => Array.from(await t.data())))), ...(await Promise.all([x, r, w, b].map(async (t) => Array.from(await t.grad!.data()))))];
        for (const t of [...outs, x.grad, r.grad, w.grad, b.grad]) t?.dispose();
        return vals;
      };
      const [f, u] = [await grads(true), await grads(false)];
      const tol = dtype === 'f32' ? { rtol: 1e-5, atol: 1e-6 } : { rtol: 0, atol: 0 };
      f.forEach((v, i) => expectClose(v, u[i]!, tol, `${dtype} ${['sum', 'out', 'dx', 'dr', 'dw', 'db'][i]}`));
      for (const t of [x, r, w, b, g1, g2]) t.dispose();
    }
  });

  it('refuses operands of different shapes, naming the op; different dtypes promote as the add does', async () => {
    const a = k.zeros([2, 3], { backend });
    const c = k.zeros([3, 2], { backend });
    expect(() => k.addLayerNorm(a, c, [2])).toThrow(/addLayerNorm: x \[2,3\] f32 and residual \[3,2\] f32 must have one shape/);
    if (stores(backend, 'bf16')) {
      const h = k.ones([2, 3], { backend, dtype: 'bf16' });
      const [s, y] = k.addLayerNorm(a, h, [3]);
      expect([s.dtype, y.dtype]).toEqual(['f32', 'f32']);
      expect(await s.data()).toEqual(new Float32Array(6).fill(1));
      for (const t of [h, s, y]) t.dispose();
    }
    a.dispose();
    c.dispose();
  });
});
