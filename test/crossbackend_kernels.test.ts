/**
 * The fast kernels against `ref` at the sizes where fast kernels break: shapes past every tile
 * and block of the native kernels, with ragged edges (matmul beyond its k-, m- and n-blocks —
 * KC up to 1024, NC up to 512, MR 14 — with transposes, batch broadcasting and a bias; attention
 * with T beyond the query and key tiles, causal at several alignments, masks, dropout, uneven T
 * and D, in every layout). CI runs this file once per compiled instruction set
 * (KILN_CPU_ISA=avx2, =base, and the machine's own), so each kernel table is checked every run.
 *
 * Tolerances come from error bounds, not fixed constants: a matmul entry may differ from the
 * f64-accumulated reference by a few units of f32 rounding times Σ|a·b| over its k products
 * (bf16 and f16: see halfMatmulBound).
 */
import { describe, test } from 'vitest';
import fc from 'fast-check';
import * as k from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { expectClose, FC, randnFromRef, testBackends } from './harness.js';
import { runAttention, type AttnCase } from './attention_case.js';

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

// Halves: the same, with k also past the bf16-pair kernel's k block (2048; 3 blocks above
// 4096), and k = 1, 2, 3 (one zero-padded pair, one whole pair, one and a half)
const halfMatmulArb: fc.Arbitrary<MatmulCase> = fc
  .tuple(matmulArb, fc.constantFrom(null, null, null, 1, 2, 3, 2047, 2049, 4111))
  .map(([c, k]) => (k === null ? c : { ...c, k, m: k > 1000 ? Math.min(c.m, 37) : c.m, n: k > 1000 ? Math.min(c.n, 45) : c.n }));

// Run every time, besides the random ones: three k blocks with an odd tail and a bias, k = 1
// (one zero-padded pair) transposed and broadcast, k just past one block, a tall thin product
const HALF_MATMUL_EXAMPLES: [MatmulCase][] = [
  [{ m: 37, n: 45, k: 4111, transA: false, transB: true, batchA: [], batchB: [], bias: true, seed: 1 }],
  [{ m: 31, n: 33, k: 1, transA: true, transB: false, batchA: [2], batchB: [1], bias: false, seed: 2 }],
  [{ m: 15, n: 70, k: 2049, transA: true, transB: true, batchA: [3, 1], batchB: [2], bias: false, seed: 3 }],
  [{ m: 320, n: 5, k: 3, transA: false, transB: false, batchA: [], batchB: [], bias: true, seed: 4 }],
];

/**
 * The most a bf16/f16 matmul entry may differ from ref's, derived. Both read the same inputs,
 * exact in f32, and a product of two halves is exact in f32 (2·8 or 2·11 significant bits ≤ 24),
 * so only the additions differ: the kernel adds k products and the bias in f32, in its own
 * order (error ≤ (k + 1)·u·S, u = 2^-24, S = Σ|a·b| + |bias|), ref adds them in f64 and rounds
 * to f32 once (≤ u·|s|). Each result is then rounded to the half once, which moves it by at most
 * half a unit of the half: ≤ 2^-p·|x|/(1 − 2^-p) (p = 8 for bf16, 11 for f16) for each of got
 * and want, plus 2^-25 each in f16's subnormal range. `scale` (S, computed in the half by ref)
 * is itself rounded, hence the 1.01. vdpbf16ps flushes results below 2^-126: 2^-126 per step.
 */
function halfMatmulBound(dtype: 'bf16' | 'f16', kk: number, got: number, want: number, scale: number): number {
  const p = dtype === 'bf16' ? 8 : 11;
  const rounding = (2 ** -p / (1 - 2 ** -p)) * (Math.abs(got) + Math.abs(want)) + (dtype === 'f16' ? 2 ** -24 : 0);
  return (kk + 2) * 2 ** -24 * scale * 1.01 + rounding + kk * 2 ** -126;
}

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

    for (const dtype of ['bf16', 'f16'] as const) {
      test(`matmul in ${dtype} (f32 accumulation, rounded once) past every tile and k block: within the derived bound of ref`, async () => {
        await fc.assert(
          fc.asyncProperty(halfMatmulArb, async (c) => {
            const [want, scale] = await read(runMatmul(c, 'ref', dtype));
            const [got] = await read(runMatmul(c, b.name, dtype));
            for (let i = 0; i < want!.length; i++) {
              const bound = halfMatmulBound(dtype, c.k, got![i]!, want![i]!, scale![i]!);
              if (!(Math.abs(got![i]! - want![i]!) <= bound)) throw new Error(`${dtype} matmul [${i}]: ${got![i]} vs ${want![i]} (bound ${bound}) ${JSON.stringify(c)}`);
            }
          }),
          { numRuns: RUNS, examples: HALF_MATMUL_EXAMPLES },
        );
      });
    }

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
