/**
 * The webgpu attention kernels in each of their three shapes (src/backend/webgpu/kernels/
 * attention.ts): `lanes` (tile rows shared through subgroups, CPU drivers), `regs` (several rows
 * per invocation, CPU drivers without subgroups) and `gpu` (one row per invocation, 64 per
 * workgroup). The parameterised suite runs only the shape the adapter picks; this file runs the
 * others on the same device, forward and backward against ref, past their row tiles, with
 * causal offsets, sliding windows, grouped-query heads (dk and dv summed over a kv head's query
 * heads), masks, dropout and every layout, and rows wider than one pass of 256 columns.
 */
import { afterAll, describe, expect, test } from 'vitest';
import * as k from '../src/index.js';
import type { Tensor } from '../src/index.js';
import type { WebGPUBackend } from '../src/backend/webgpu/webgpu.js';
import { attentionShapeFor, useAttentionShape } from '../src/backend/webgpu/kernels/attention.js';
import { expectClose } from './harness.js';
import { runAttention, type AttnCase } from './attention_case.js';

const info = k.backends().find((b) => b.name === 'webgpu');
const available = !!info?.available;

type Case = AttnCase;

const CASES: Case[] = [
  { layout: 'bhtd', b: 2, h: 1, tq: 37, tk: 70, d: 16, dv: 24, causal: true, offset: 33, mask: 'bool', dropout: 0.3, seed: 1 },
  { layout: 'bthd', b: 1, h: 2, hkv: 1, tq: 70, tk: 33, d: 40, dv: 5, causal: false, offset: 0, mask: 'float', dropout: 0, seed: 2 },
  { layout: 'packed', b: 1, h: 4, hkv: 2, tq: 85, tk: 85, d: 12, dv: 12, causal: true, offset: -3, window: 21, mask: 'none', dropout: 0.1, seed: 3 },
];

/** Rows of v (and out) past one pass: the forward and dk/dv run two passes of columns. */
const WIDE: Case = { layout: 'bhtd', b: 1, h: 1, tq: 9, tk: 20, d: 3, dv: 260, causal: true, offset: 11, mask: 'none', dropout: 0.5, seed: 4 };

/** The values of the first `n` tensors; all are disposed. */
async function read(ts: Tensor[], n: number): Promise<number[][]> {
  try {
    return await Promise.all(ts.slice(0, n).map(async (t) => Array.from(await t.data())));
  } finally {
    for (const t of ts) t.dispose();
  }
}

async function agree(c: Case): Promise<void> {
  const n = c.layout === 'packed' ? 1 : 3;
  const want = await read(runAttention(c, 'ref'), 1 + n);
  const got = await read(runAttention(c, 'webgpu'), 1 + n);
  const what = JSON.stringify(c);
  expectClose(got[0]!, want[0]!, { rtol: 2e-4, atol: 2e-5 }, `out ${what}`);
  for (let i = 1; i <= n; i++) expectClose(got[i]!, want[i]!, { rtol: 1e-3, atol: 1e-4 * Math.sqrt(c.tk) }, `grad ${i - 1} ${what}`);
}

describe.skipIf(!available)(`webgpu attention shapes${available ? '' : `: unavailable, ${info?.reason}`}`, () => {
  const rt = (): WebGPUBackend['rt'] => (k.backendSync('webgpu') as WebGPUBackend).rt;
  afterAll(() => {
    if (available) useAttentionShape(rt(), null);
  });

  for (const kind of ['regs', 'gpu', 'lanes'] as const) {
    test(`${kind}: forward and backward agree with ref past the row tiles, in every layout`, async (ctx) => {
      const noLanes = kind === 'lanes' && attentionShapeFor(rt()) !== 'lanes';
      const why = 'webgpu attention shape lanes skipped: it needs a fixed subgroup size of 8 or 16, which this adapter lacks';
      if (noLanes) console.warn(`[kiln tests] ${why}`);
      ctx.skip(noLanes, why);
      useAttentionShape(rt(), kind);
      try {
        for (const c of kind === attentionShapeFor(rt()) ? [WIDE] : [...CASES, WIDE]) await agree(c);
      } finally {
        useAttentionShape(rt(), null);
      }
    });
  }

  test('rows that see no key get zeros, and keys no row sees zero gradients', async () => {
    // query i sees keys j ≤ i − 3: queries 0..2 none, keys 2..6 by no query
    const c: Case = { layout: 'bhtd', b: 1, h: 1, tq: 5, tk: 7, d: 4, dv: 4, causal: true, offset: -3, mask: 'none', dropout: 0, seed: 5 };
    const [out, dq, dk, dv] = await read(runAttention(c, 'webgpu'), 4);
    const zeros = (xs: number[]): boolean => xs.every((x) => x === 0);
    expect(zeros(out!.slice(0, 12)) && zeros(dq!.slice(0, 12)) && zeros(dk!.slice(8)) && zeros(dv!.slice(8))).toBe(true);
    await agree(c);
  });
});
