/**
 * The fast kernels against `ref` at the sizes where fast kernels break: shapes past every tile
 * and block of the native kernels, with ragged edges (matmul beyond its k-, m- and n-blocks —
 * KC up to 1024, NC up to 512, MR 14 — with transposes, batch broadcasting and a bias; attention
 * with T beyond the query and key tiles, causal at several alignments, masks, dropout, uneven T
 * and D, in every layout). CI runs this file once per compiled instruction set
 * (KILN_CPU_ISA=avx2, =base, and the machine's own), so each kernel table is checked every run.
 *
 * Tolerances come from error bounds, not fixed constants: a matmul entry may differ from the
 * f64-accumulated reference by a few units of f32 rounding times Σ|a·b| over its k products.
 */
import { describe, test } from 'vitest';
import fc from 'fast-check';
import * as k from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { expectClose, FC, randnFromRef, testBackends } from './harness.js';

const others = testBackends().filter((b) => b.name !== 'ref');
const RUNS = Math.max(3, Math.min(FC.numRuns, 8));

/** Values read from a tidy-built tensor list, then disposed. */
async function read(ts: Tensor[]): Promise<number[][]> {
  try {
    return await Promise.all(ts.map(async (t) => Array.from(await t.data())));
  } finally {
    for (const t of ts) t.dispose();
  }
}

/** |got − want| ≤ bound elementwise, bound = c·u·scale (u: f32 unit roundoff). */
function expectWithin(got: number[], want: number[], scale: number[], c: number, what: string): void {
  const u = 2 ** -24;
  for (let i = 0; i < want.length; i++) {
    const bound = c * u * scale[i]! + 1e-30;
    if (!(Math.abs(got[i]! - want[i]!) <= bound)) throw new Error(`${what}[${i}]: got ${got[i]}, expected ${want[i]} (bound ${bound})`);
  }
}

interface MatmulCase {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  batchA: number[];
  batchB: number[];
  bias: boolean;
  seed: number;
}

// one dimension large (past the k-, n- or m-block), the others small and ragged
const matmulArb: fc.Arbitrary<MatmulCase> = fc
  .record({
    big: fc.constantFrom('k', 'n', 'm'),
    large: fc.integer({ min: 200, max: 1300 }),
    a: fc.integer({ min: 1, max: 45 }),
    b: fc.integer({ min: 1, max: 45 }),
    transA: fc.boolean(),
    transB: fc.boolean(),
    batch: fc.constantFrom<[number[], number[]]>([[], []], [[2], [2]], [[2], [1]], [[3, 1], [2]]),
    bias: fc.boolean(),
    seed: fc.nat(1e6),
  })
  .map(({ big, large, a, b, transA, transB, batch, bias, seed }) => ({
    m: big === 'm' ? Math.min(large, 320) : a,
    n: big === 'n' ? Math.min(large, 600) : b,
    k: big === 'k' ? large : Math.max(1, (a * 7 + b) % 41),
    transA,
    transB,
    batchA: batch[0],
    batchB: batch[1],
    bias: bias && batch[0].length === 0 && batch[1].length === 0,
    seed,
  }));

function runMatmul(c: MatmulCase, backend: string, dtype: k.DType): Tensor[] {
  return k.tidy(() => {
    const gen = new k.Generator(c.seed);
    const aShape = [...c.batchA, ...(c.transA ? [c.k, c.m] : [c.m, c.k])];
    const bShape = [...c.batchB, ...(c.transB ? [c.n, c.k] : [c.k, c.n])];
    const a = randnFromRef(aShape, { backend, dtype, generator: gen });
    const b = randnFromRef(bShape, { backend, dtype, generator: gen });
    if (c.bias) {
      const bias = randnFromRef([c.n], { backend, dtype, generator: gen });
      // linear: x [m, k] @ wᵀ [n, k] + bias
      const x = c.transA ? a.mT : a;
      const w = c.transB ? b : b.mT;
      return [k.linear(x, w, bias), k.linear(x.abs(), w.abs(), bias.abs())];
    }
    const opts = { transA: c.transA, transB: c.transB };
    return [k.matmul(a, b, opts), k.matmul(a.abs(), b.abs(), opts)];
  });
}

/** A random attention problem in one of the three layouts, with its gradient seed. */
interface AttnCase {
  layout: 'bhtd' | 'bthd' | 'packed';
  b: number;
  h: number;
  /** kv heads (grouped-query attention): h / group */
  hkv: number;
  tq: number;
  tk: number;
  d: number;
  dv: number;
  causal: boolean;
  offset: number;
  /** sliding window (with causal only), null for none */
  window: number | null;
  mask: 'none' | 'bool' | 'float';
  dropout: number;
  seed: number;
}

const attnArb: fc.Arbitrary<AttnCase> = fc
  .record({
    layout: fc.constantFrom('bhtd', 'bthd', 'packed'),
    b: fc.integer({ min: 1, max: 2 }),
    // [query heads, kv heads]: GQA in most cases, few heads in all (the property stays fast on lavapipe)
    heads: fc.constantFrom([1, 1], [2, 2], [2, 1], [2, 1], [3, 1]),
    tq: fc.integer({ min: 1, max: 300 }),
    tk: fc.integer({ min: 1, max: 300 }),
    d: fc.integer({ min: 1, max: 130 }),
    dv: fc.integer({ min: 1, max: 130 }),
    causal: fc.boolean(),
    offset: fc.constantFrom(0, -3, 'bottom'),
    window: fc.oneof(fc.constant(null), fc.constant(null), fc.integer({ min: 1, max: 150 })),
    mask: fc.constantFrom('none', 'bool', 'float'),
    dropout: fc.constantFrom(0, 0, 0.1, 0.5),
    seed: fc.nat(1e6),
  })
  .map((r) => {
    const packed = r.layout === 'packed';
    const tk = packed ? r.tq : r.tk;
    const { heads, ...rest } = r;
    return {
      ...rest,
      h: heads[0]!,
      hkv: heads[1]!,
      window: r.causal ? r.window : null,
      layout: r.layout as AttnCase['layout'],
      mask: r.mask as AttnCase['mask'],
      tk,
      dv: packed ? r.d : r.dv,
      offset: r.offset === 'bottom' ? tk - r.tq : (r.offset as number),
    };
  });

function runAttention(c: AttnCase, backend: string): Tensor[] {
  return k.tidy(() => {
    const gen = new k.Generator(c.seed);
    const o = { backend, generator: gen, requiresGrad: true } as const;
    const maskOf = (): Tensor | null => {
      if (c.mask === 'none') return null;
      const m = k.rand([c.b, 1, c.tq, c.tk], { backend, generator: gen }); // broadcast over heads
      return c.mask === 'bool' ? m.gt(0.2) : m.mul(-3);
    };
    const opts = { isCausal: c.causal, causalOffset: c.offset, window: c.window, attnMask: maskOf(), dropoutP: c.dropout, generator: new k.Generator(c.seed + 1) };
    let inputs: Tensor[];
    let out: Tensor;
    if (c.layout === 'packed') {
      inputs = [randnFromRef([c.b, c.tq, (c.h + 2 * c.hkv) * c.d], o)];
      out = k.packedAttention(inputs[0]!, c.h, { ...opts, kvHeads: c.hkv });
    } else {
      const shape = (t: number, h: number, w: number): number[] => (c.layout === 'bthd' ? [c.b, t, h, w] : [c.b, h, t, w]);
      inputs = [randnFromRef(shape(c.tq, c.h, c.d), o), randnFromRef(shape(c.tk, c.hkv, c.d), o), randnFromRef(shape(c.tk, c.hkv, c.dv), o)];
      out = k.scaledDotProductAttention(inputs[0]!, inputs[1]!, inputs[2]!, { ...opts, layout: c.layout, enableGqa: true });
    }
    const w = randnFromRef(out.shape, { backend, generator: gen });
    out.mul(w).sum().backward();
    return [out, ...inputs.map((x) => x.grad!), ...inputs];
  });
}

for (const b of others) {
  describe.skipIf(!b.available)(`${b.name}: kernels past every tile agree with ref${b.available ? '' : `: unavailable, ${b.reason}`}`, () => {
    test('matmul past the k-, n- and m-blocks, ragged, transposed, batched, with bias (f32, error-bounded)', async () => {
      await fc.assert(
        fc.asyncProperty(matmulArb, async (c) => {
          const [want, scale] = await read(runMatmul(c, 'ref', 'f32'));
          const [got] = await read(runMatmul(c, b.name, 'f32'));
          // blocked and vectorised sums round at most ~k times more than one rounding each
          expectWithin(got!, want!, scale!.map((s) => s * (c.k + 2)), 2, `matmul ${JSON.stringify(c)}`);
        }),
        { numRuns: RUNS },
      );
    });

    test('matmul in bf16 (computes in f32, rounds once): within a bf16 rounding of ref', async () => {
      await fc.assert(
        fc.asyncProperty(matmulArb, async (c) => {
          const [want, scale] = await read(runMatmul(c, 'ref', 'bf16'));
          const [got] = await read(runMatmul(c, b.name, 'bf16'));
          for (let i = 0; i < want!.length; i++) {
            const bound = 2 ** -7 * Math.abs(want![i]!) + (c.k + 2) * 2 ** -23 * scale![i]!;
            if (!(Math.abs(got![i]! - want![i]!) <= bound)) throw new Error(`bf16 matmul [${i}]: ${got![i]} vs ${want![i]} (bound ${bound}) ${JSON.stringify(c)}`);
          }
        }),
        { numRuns: RUNS },
      );
    });

    test('attention past the query and key tiles: layouts, causal offsets, sliding windows, grouped-query heads, masks, dropout, uneven T and D (forward and backward)', async () => {
      await fc.assert(
        fc.asyncProperty(attnArb, async (c) => {
          const want = await read(runAttention(c, 'ref'));
          const got = await read(runAttention(c, b.name));
          const n = c.layout === 'packed' ? 1 : 3;
          // inputs are drawn from one seed on both backends: they agree exactly
          for (let i = 0; i < n; i++) expectClose(got[1 + n + i]!, want[1 + n + i]!, { rtol: 0, atol: 0 }, 'inputs');
          const what = JSON.stringify(c);
          expectClose(got[0]!, want[0]!, { rtol: 2e-4, atol: 2e-5 }, `out ${what}`);
          for (let i = 0; i < n; i++) expectClose(got[1 + i]!, want[1 + i]!, { rtol: 1e-3, atol: 1e-4 * Math.sqrt(c.tk) }, `grad ${i} ${what}`);
        }),
        { numRuns: RUNS },
      );
    });
  });
}
