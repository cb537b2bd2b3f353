/**
 * Sliding-window and grouped-query attention on every backend, forward and backward, against a
 * composed reference built from elementary kiln ops (q·kᵀ, a bool mask of what each query may
 * see, softmax, ·v; k and v expanded to q's heads for GQA), at sizes past the kernels' tiles (odd
 * T, T > 64, D not a multiple of 8), with key-padding masks; dropout against the kernel without
 * the window (the same band as a bool mask) and without GQA (k and v expanded), which draw the
 * same dropout elements; and the arguments the op refuses.
 */
import { expect, it } from 'vitest';
import * as k from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { describeBackends, expectClose, randnFromRef } from './harness.js';

interface Case {
  layout: 'bhtd' | 'bthd' | 'packed' | 'bhtd3';
  b: number;
  h: number;
  hkv: number;
  tq: number;
  tk: number;
  d: number;
  dv: number;
  causal: boolean;
  offset: number;
  window: number | null;
  /** Keys padded (hidden) at the end of each batch entry's row: a [B, 1, 1, Tk] bool mask. */
  pad: number[] | null;
  seed: number;
}

const CASES: Case[] = [
  // a window spanning several key tiles, with tiles wholly outside it on both sides
  { layout: 'bhtd', b: 2, h: 2, hkv: 2, tq: 200, tk: 200, d: 13, dv: 13, causal: true, offset: 0, window: 40, pad: null, seed: 1 },
  // GQA alone, non-causal, flash-attention's layout
  { layout: 'bthd', b: 1, h: 4, hkv: 2, tq: 70, tk: 75, d: 12, dv: 5, causal: false, offset: 0, window: null, pad: null, seed: 2 },
  // window + GQA + a key-padding mask, bottom-right aligned (a chunk after cached keys)
  { layout: 'bhtd', b: 2, h: 6, hkv: 2, tq: 37, tk: 81, d: 10, dv: 7, causal: true, offset: 44, window: 33, pad: [0, 9], seed: 3 },
  // packed projection [B, T, (H + 2·Hkv)·D] with one kv head (multi-query), window, padding
  { layout: 'packed', b: 2, h: 4, hkv: 1, tq: 67, tk: 67, d: 9, dv: 9, causal: true, offset: 0, window: 17, pad: [5, 0], seed: 4 },
  // PyTorch's unbatched [H, T, D], a negative offset (the first rows see nothing) and a window of 1
  { layout: 'bhtd3', b: 1, h: 4, hkv: 2, tq: 30, tk: 30, d: 8, dv: 8, causal: true, offset: -2, window: 1, pad: null, seed: 5 },
  { layout: 'bthd', b: 1, h: 3, hkv: 1, tq: 65, tk: 65, d: 17, dv: 3, causal: true, offset: 0, window: 64, pad: [3], seed: 6 },
];

/** What query i may see of key j (b's padding, causal, window), as a [B, 1, Tq, Tk] bool tensor. */
function allowedMask(c: Case, backend: string): Tensor {
  const data: boolean[] = [];
  for (let b = 0; b < c.b; b++)
    for (let i = 0; i < c.tq; i++)
      for (let j = 0; j < c.tk; j++) {
        let ok = !c.pad || j < c.tk - c.pad[b]!;
        if (c.causal) ok &&= j <= i + c.offset && (c.window === null || j > i + c.offset - c.window);
        data.push(ok);
      }
  return k.tensor(data, [c.b, 1, c.tq, c.tk], { backend });
}

/** The key-padding mask, [B, 1, 1, Tk], or null. */
function padMask(c: Case, backend: string): Tensor | null {
  if (!c.pad) return null;
  const data: boolean[] = [];
  for (let b = 0; b < c.b; b++) for (let j = 0; j < c.tk; j++) data.push(j < c.tk - c.pad[b]!);
  return k.tensor(data, [c.b, 1, 1, c.tk], { backend });
}

/** [B, Hkv, T, W] → [B, H, T, W], each kv head repeated for its H/Hkv query heads (a copy). */
function repeatHeads(x: Tensor, g: number): Tensor {
  const [b, hk, t, w] = x.shape as [number, number, number, number];
  return x.reshape([b, hk, 1, t, w]).expand([b, hk, g, t, w]).reshape([b, hk * g, t, w]);
}

/** softmax(q·kᵀ·scale where allowed)·v from elementary ops, q [B, H, Tq, D], k and v [B, Hkv, Tk, ·]. */
function composed(q: Tensor, kk: Tensor, v: Tensor, allowed: Tensor, g: number): Tensor {
  const ke = repeatHeads(kk, g);
  const ve = repeatHeads(v, g);
  const s = k.matmul(q, ke.transpose(-1, -2)).mul(1 / Math.sqrt(q.shape[3]!));
  const p = k.softmax(k.where(allowed, s, -Infinity), -1);
  // a row that sees nothing is NaN after the softmax: 0 there, as the kernels
  return k.matmul(k.where(allowed, p, 0), ve);
}

/** q, k, v of a case in the kernel's layout, and the same as [B, H(kv), T, ·] for the reference. */
function inputs(c: Case, backend: string, gen: k.Generator): { kernel: Tensor[]; bhtd: (xs: Tensor[]) => Tensor[] } {
  const o = { backend, generator: gen, requiresGrad: true } as const;
  if (c.layout === 'packed') {
    const qkv = randnFromRef([c.b, c.tq, (c.h + 2 * c.hkv) * c.d], o);
    const split = ([x]: Tensor[]): Tensor[] => {
      const part = (start: number, heads: number): Tensor => k.narrow(x!, 2, start * c.d, heads * c.d).reshape([c.b, c.tq, heads, c.d]).transpose(1, 2);
      return [part(0, c.h), part(c.h, c.hkv), part(c.h + c.hkv, c.hkv)];
    };
    return { kernel: [qkv], bhtd: split };
  }
  if (c.layout === 'bthd') {
    const xs = [randnFromRef([c.b, c.tq, c.h, c.d], o), randnFromRef([c.b, c.tk, c.hkv, c.d], o), randnFromRef([c.b, c.tk, c.hkv, c.dv], o)];
    return { kernel: xs, bhtd: (ts) => ts.map((t) => t.transpose(1, 2)) };
  }
  if (c.layout === 'bhtd3') {
    const xs = [randnFromRef([c.h, c.tq, c.d], o), randnFromRef([c.hkv, c.tk, c.d], o), randnFromRef([c.hkv, c.tk, c.dv], o)];
    return { kernel: xs, bhtd: (ts) => ts.map((t) => t.unsqueeze(0)) };
  }
  const xs = [randnFromRef([c.b, c.h, c.tq, c.d], o), randnFromRef([c.b, c.hkv, c.tk, c.d], o), randnFromRef([c.b, c.hkv, c.tk, c.dv], o)];
  return { kernel: xs, bhtd: (ts) => ts };
}

/** The output (as [B, H, Tq, Dv]) and the inputs' gradients, by the kernel or the composed reference. */
function run(c: Case, backend: string, how: 'kernel' | 'composed'): Tensor[] {
  return k.tidy(() => {
    const gen = new k.Generator(c.seed);
    const { kernel, bhtd } = inputs(c, backend, gen);
    let out: Tensor;
    if (how === 'composed') {
      const [q, kk, v] = bhtd(kernel);
      out = composed(q!, kk!, v!, allowedMask(c, backend), c.h / c.hkv);
    } else {
      const opts = { isCausal: c.causal, causalOffset: c.offset, window: c.window, attnMask: padMask(c, backend) };
      if (c.layout === 'packed') {
        out = k.packedAttention(kernel[0]!, c.h, { ...opts, kvHeads: c.hkv }).reshape([c.b, c.tq, c.h, c.dv]).transpose(1, 2);
      } else {
        const bthd = c.layout === 'bthd';
        out = k.scaledDotProductAttention(kernel[0]!, kernel[1]!, kernel[2]!, { ...opts, enableGqa: true, layout: bthd ? 'bthd' : 'bhtd' });
        out = bthd ? out.transpose(1, 2) : c.layout === 'bhtd3' ? out.unsqueeze(0) : out;
      }
    }
    const w = randnFromRef(out.shape, { backend, generator: gen });
    out.mul(w).sum().backward();
    return [out, ...kernel.map((x) => x.grad!), ...kernel];
  });
}

async function read(ts: Tensor[]): Promise<number[][]> {
  try {
    return await Promise.all(ts.map(async (t) => Array.from(await t.data())));
  } finally {
    for (const t of ts) t.dispose();
  }
}

describeBackends('attention variants: sliding window and grouped-query heads', (backend) => {
  const f32 = !['ref', 'async-ref'].includes(backend);
  const tolOut = f32 ? { rtol: 2e-4, atol: 2e-5 } : { rtol: 1e-5, atol: 1e-6 };

  for (const c of CASES) {
    const what = `${c.layout} B${c.b} H${c.h}/${c.hkv} Tq${c.tq} Tk${c.tk} D${c.d}/${c.dv}${c.causal ? ` causal@${c.offset}` : ''}${c.window ? ` window ${c.window}` : ''}${c.pad ? ' padded' : ''}`;
    it(`${what}: forward and backward match the composed reference`, async () => {
      const want = await read(run(c, backend, 'composed'));
      const got = await read(run(c, backend, 'kernel'));
      const n = c.layout === 'packed' ? 1 : 3;
      expectClose(got[0]!, want[0]!, tolOut, `out ${what}`);
      for (let i = 1; i <= n; i++) expectClose(got[i]!, want[i]!, { rtol: 1e-3, atol: 1e-4 * Math.sqrt(c.tk) }, `grad ${i - 1} ${what}`);
    });
  }

  it('dropout: window + GQA draw the same elements as the band given as a bool mask over k and v expanded', async () => {
    const c: Case = { layout: 'bhtd', b: 2, h: 4, hkv: 2, tq: 70, tk: 70, d: 11, dv: 6, causal: true, offset: 0, window: 23, pad: [0, 4], seed: 7 };
    const once = (how: 'fused' | 'expanded'): Tensor[] =>
      k.tidy(() => {
        const gen = new k.Generator(c.seed);
        const { kernel } = inputs(c, backend, gen);
        const [q, kk, v] = kernel as [Tensor, Tensor, Tensor];
        const dropout = { dropoutP: 0.3, generator: new k.Generator(99) };
        const out =
          how === 'fused'
            ? k.scaledDotProductAttention(q, kk, v, { isCausal: true, window: c.window, attnMask: padMask(c, backend), enableGqa: true, ...dropout })
            : k.scaledDotProductAttention(q, repeatHeads(kk, 2), repeatHeads(v, 2), { attnMask: allowedMask(c, backend), ...dropout });
        const w = randnFromRef(out.shape, { backend, generator: gen });
        out.mul(w).sum().backward();
        return [out, q.grad!, kk.grad!, v.grad!, q, kk, v];
      });
    const want = await read(once('expanded'));
    const got = await read(once('fused'));
    expectClose(got[0]!, want[0]!, tolOut, 'out');
    // dk, dv of the expanded run sum over each group through expand's backward
    for (let i = 1; i <= 3; i++) expectClose(got[i]!, want[i]!, { rtol: 1e-3, atol: 1e-4 * Math.sqrt(c.tk) }, `grad ${i - 1}`);
    expect(got[0]!.some((x, i) => x !== 0 && Math.abs(x - want[0]![i]!) < 1e-3)).toBe(true);
  });

  it('rejects bad windows, head counts and shapes before any kernel runs, naming them', () => {
    k.tidy(() => {
      const o = { backend };
      const q = k.zeros([1, 4, 5, 8], o);
      const kv = k.zeros([1, 2, 5, 8], o);
      const sdpa = (...a: Parameters<typeof k.scaledDotProductAttention>): (() => Tensor) => () => k.scaledDotProductAttention(...a);
      expect(sdpa(q, q, q, { isCausal: true, window: 0 })).toThrow(/^scaledDotProductAttention: .*window.*0/);
      expect(sdpa(q, q, q, { isCausal: true, window: -3 })).toThrow(/^scaledDotProductAttention: .*window.*-3/);
      expect(sdpa(q, q, q, { isCausal: true, window: 2.5 })).toThrow(/^scaledDotProductAttention: .*window.*2\.5/);
      expect(sdpa(q, q, q, { window: 4 })).toThrow(/^scaledDotProductAttention: window 4 needs isCausal/);
      expect(sdpa(q, kv, kv)).toThrow(/^scaledDotProductAttention: shapes do not match: q \[1,4,5,8\], k \[1,2,5,8\].*enableGqa/);
      const k3 = k.zeros([1, 3, 5, 8], o);
      expect(sdpa(q, k3, k3, { enableGqa: true })).toThrow(/^scaledDotProductAttention: shapes do not match: q \[1,4,5,8\], k \[1,3,5,8\]/);
      expect(sdpa(q, kv, k3, { enableGqa: true })).toThrow(/^scaledDotProductAttention: shapes do not match: .*v \[1,3,5,8\]/);
      expect(sdpa(q, kv, k.zeros([1, 2, 6, 8], o), { enableGqa: true })).toThrow(/^scaledDotProductAttention: shapes do not match: .*v \[1,2,6,8\]/);
      expect(sdpa(q, kv, kv, { enableGqa: 1 as unknown as boolean })).toThrow(/^scaledDotProductAttention: enableGqa/);
      const qkv = k.zeros([1, 5, 64], o);
      expect(() => k.packedAttention(qkv, 4, { kvHeads: 3 })).toThrow(/^packedAttention: kvHeads 3 must divide heads 4/);
      expect(() => k.packedAttention(qkv, 4, { kvHeads: 0 })).toThrow(/^packedAttention: .*kvHeads.*0/);
      expect(() => k.packedAttention(k.zeros([1, 5, 60], o), 4, { kvHeads: 2 })).toThrow(/^packedAttention: qkv must be \[B, T, \(H \+ 2·Hkv\)·D\] with H = 4, Hkv = 2.*\[1,5,60\]/);
      expect(() => k.packedAttention(qkv, 4, { kvHeads: 2, window: 3 })).toThrow(/^packedAttention: window 3 needs isCausal/);
    });
  });

  it('a window as wide as the sequence is no window at all', async () => {
    const c: Case = { layout: 'bthd', b: 1, h: 2, hkv: 1, tq: 40, tk: 40, d: 6, dv: 6, causal: true, offset: 0, window: 40, pad: null, seed: 8 };
    const wide = await read(run(c, backend, 'kernel'));
    const none = await read(run({ ...c, window: null }, backend, 'kernel'));
    for (let i = 0; i < 4; i++) expectClose(wide[i]!, none[i]!, { rtol: 0, atol: 0 }, `tensor ${i}`);
  });
});
