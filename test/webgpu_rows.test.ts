/**
 * The webgpu softmax, layerNorm (and RMSNorm), crossEntropy kernels and their backwards against
 * `ref`, called through the Backend contract at every row strategy: one invocation per row (what
 * a CPU driver gets) and 4, 32 or 256 lanes per row in a workgroup tree (a GPU's path, forced
 * here), with rows of −∞, NaN, +∞ and logits near ±1000, column sums of layerNorm's backward in
 * one block or many, more workgroups than one grid dimension holds, and target faults.
 */
import { afterEach, describe, expect, test } from 'vitest';
import * as k from '../src/index.js';
import type { Backend, Storage } from '../src/backend/backend.js';
import { storageArray, type DType } from '../src/backend/dtype.js';
import { forceRowLanes } from '../src/backend/webgpu/kernels/softmax.js';
import { expectClose, rng } from './harness.js';

const info = k.backends().find((b) => b.name === 'webgpu');
const available = !!info?.available;
if (!available) console.warn(`[kiln tests] webgpu_rows.test.ts skipped: webgpu is unavailable: ${info?.reason ?? 'not registered'}`);

type Out = { dtype: DType; size: number };

/** Run `fn` on a backend with fresh storages; the read outputs or the fault's message. */
async function on(b: Backend, inputs: { dtype: DType; data: ArrayLike<number> }[], outputs: Out[], fn: (ins: Storage[], outs: Storage[]) => void): Promise<{ outs: number[][] } | { error: string }> {
  const make = (dtype: DType, data: ArrayLike<number>): Storage => {
    const s = b.alloc(dtype, data.length);
    const a = storageArray(dtype, data.length);
    for (let i = 0; i < data.length; i++) a[i] = data[i]!;
    b.write(s, a);
    return s;
  };
  const ins = inputs.map((x) => make(x.dtype, x.data));
  // outputs start as a pattern a kernel must overwrite (or, for mean under RMS, leave alone)
  const outs = outputs.map((o) => make(o.dtype, Array.from({ length: o.size }, (_, i) => 0.25 + i)));
  try {
    fn(ins, outs);
    return { outs: await Promise.all(outs.map(async (s) => Array.from(await b.read(s)))) };
  } catch (e) {
    return { error: (e as Error).message };
  } finally {
    for (const s of [...ins, ...outs]) b.free(s);
  }
}

type Call = (b: Backend, ins: Storage[], outs: Storage[]) => void;

/** The same call on webgpu and ref: the same outputs within `tol`, or the same fault message. */
async function agree(inputs: { dtype: DType; data: ArrayLike<number> }[], outputs: Out[], call: Call, what: string, t = { rtol: 2e-5, atol: 1e-6 }): Promise<void> {
  const gpu = k.backendSync('webgpu');
  const ref = k.backendSync('ref');
  const got = await on(gpu, inputs, outputs, (i, o) => call(gpu, i, o));
  const want = await on(ref, inputs, outputs, (i, o) => call(ref, i, o));
  if ('error' in want) {
    expect('error' in got ? got.error : 'no fault', what).toBe(want.error);
    return;
  }
  if ('error' in got) throw new Error(`${what}: ${got.error}`);
  want.outs.forEach((w, i) => expectClose(got.outs[i]!, w, t, `${what} output ${i}`));
}

const f32 = (data: ArrayLike<number>) => ({ dtype: 'f32' as DType, data });
const i32 = (data: ArrayLike<number>) => ({ dtype: 'i32' as DType, data });
const out = (size: number): Out => ({ dtype: 'f32', size });

/** rows × cols values: uniform in ±3 plus `shift`, and special rows when asked. */
function logits(r: () => number, rows: number, cols: number, shift: number, special: boolean): number[] {
  const v = Array.from({ length: rows * cols }, () => (r() * 2 - 1) * 3 + shift);
  if (special && cols > 0) {
    const set = (row: number, f: (c: number) => number) => {
      if (row < rows) for (let c = 0; c < cols; c++) v[row * cols + c] = f(c);
    };
    set(0, () => -Infinity); // fully masked
    set(1, (c) => (c === cols - 1 ? NaN : 1));
    set(2, (c) => (c === 0 ? Infinity : c % 2 ? -Infinity : 2));
    set(3, (c) => (c % 3 === 1 ? -Infinity : c)); // partly masked
    set(4, (c) => (c < 2 ? Infinity : 0));
  }
  return v;
}

const LANES = [null, 1, 4, 32, 256] as const;
// [rows, cols]: a single element, short rows, rows shorter and longer than the lanes, rows not
// filling the last workgroup
const SHAPES: [number, number][] = [[1, 1], [7, 3], [6, 10], [5, 64], [300, 33], [3, 257], [2, 1000], [9, 4099]];

describe.skipIf(!available)('webgpu softmax, norm and cross-entropy kernels against ref', () => {
  afterEach(() => forceRowLanes(null));

  for (const lanes of LANES)
    test(`softmax and logSoftmax, ${lanes ?? 'the policy\'s'} lanes per row`, async () => {
      forceRowLanes(lanes);
      const r = rng(11);
      for (const [rows, cols] of SHAPES)
        for (const shift of [0, 1000, -1000])
          for (const log of [false, true]) {
            const x = logits(r, rows, cols, shift, shift === 0);
            // log-softmax near ±1000: the reference rounds once, f32 rounds x − m and log s
            await agree([f32(x)], [out(rows * cols)], (b, [xs], [o]) => b.softmax({ x: xs!, out: o!, rows, cols, log }), `softmax [${rows},${cols}] shift ${shift} log ${log}`, log ? { rtol: 2e-5, atol: 1e-5 } : undefined);
          }
    }, 300_000);

  for (const lanes of LANES)
    test(`layerNorm and rmsNorm forward and backward, ${lanes ?? 'the policy\'s'} lanes per row`, async () => {
      forceRowLanes(lanes);
      const r = rng(12);
      for (const [rows, cols] of [...SHAPES, [1000, 8] as [number, number], [40, 300] as [number, number]])
        for (const rms of [false, true])
          // every optional combination on the CPU driver's path; two on the (slow here) forced ones
          for (const [hasW, hasB] of (lanes === null || lanes === 1 ? [[true, true], [false, false], [true, false], [false, true]] : [[true, false], [false, true]]) as [boolean, boolean][]) {
            const x = logits(r, rows, cols, rms ? 0 : 5, false);
            const w = logits(r, 1, cols, 0, false);
            const bias = logits(r, 1, cols, 0, false);
            const dy = logits(r, rows, cols, 0, false);
            const what = `[${rows},${cols}] rms ${rms} w ${hasW} b ${hasB}`;
            const eps = rms ? 2 ** -23 : 1e-5;
            const t = { rtol: 1e-4, atol: 1e-5 };
            await agree(
              [f32(x), f32(w), f32(bias)],
              [out(rows * cols), out(rows), out(rows)],
              (b, [xs, ws, bs], [o, mean, rstd]) => b.layerNorm({ x: xs!, weight: hasW ? ws! : null, bias: hasB ? bs! : null, out: o!, mean: mean!, rstd: rstd!, rows, cols, eps, rms, residual: null, sum: null }),
              `layerNorm ${what}`,
              t,
            );
            // the backward from the reference's statistics, so both see the same mean and rstd
            const ref = k.backendSync('ref');
            const stats = await on(ref, [f32(x)], [out(rows * cols), out(rows), out(rows)], ([xs], [o, mean, rstd]) => ref.layerNorm({ x: xs!, weight: null, bias: null, out: o!, mean: mean!, rstd: rstd!, rows, cols, eps, rms, residual: null, sum: null }));
            if ('error' in stats) throw new Error(stats.error);
            const [, mean, rstd] = stats.outs;
            await agree(
              [f32(dy), f32(x), f32(w), f32(mean!), f32(rstd!)],
              [out(rows * cols), out(cols), out(cols)],
              (b, [g, xs, ws, m, s], [dx, dw, db]) =>
                b.layerNormBackward({ dy: g!, x: xs!, weight: hasW ? ws! : null, mean: m!, rstd: s!, dx: dx!, dWeight: hasW ? dw! : null, dBias: hasB ? db! : null, rows, cols, rms }),
              `layerNormBackward ${what}`,
              { rtol: 1e-4, atol: 1e-4 },
            );
          }
    }, 300_000);

  for (const lanes of LANES)
    test(`crossEntropy forward and backward, ${lanes ?? 'the policy\'s'} lanes per row`, async () => {
      forceRowLanes(lanes);
      const r = rng(13);
      for (const [rows, classes] of SHAPES)
        for (const shift of [0, 1000])
          for (const smoothing of [0, 0.1, 1]) {
            const x = logits(r, rows, classes, shift, shift === 0);
            const ignoreIndex = smoothing === 0.1 ? 1 : -100;
            const tv = Array.from({ length: rows }, (_, i) => (i % 4 === 3 ? ignoreIndex : Math.floor(r() * classes)));
            const dloss = logits(r, rows, 1, 0, false);
            const what = `[${rows},${classes}] shift ${shift} ε ${smoothing}`;
            // near 1000 the reference's lse − x[t] is itself rounded from f32 logits: compare loosely
            const t = shift ? { rtol: 1e-4, atol: 1e-3 } : { rtol: 2e-5, atol: 1e-5 };
            await agree([f32(x), i32(tv)], [out(rows), out(rows)], (b, [xs, ts], [loss, lse]) => b.crossEntropy({ logits: xs!, targets: ts!, loss: loss!, lse: lse!, rows, classes, ignoreIndex, smoothing, op: 'crossEntropy' }), `crossEntropy ${what}`, t);
            const ref = k.backendSync('ref');
            const fwd = await on(ref, [f32(x), i32(tv)], [out(rows), out(rows)], ([xs, ts], [loss, lse]) => ref.crossEntropy({ logits: xs!, targets: ts!, loss: loss!, lse: lse!, rows, classes, ignoreIndex, smoothing, op: 'crossEntropy' }));
            if ('error' in fwd) throw new Error(fwd.error);
            await agree(
              [f32(x), i32(tv), f32(fwd.outs[1]!), f32(dloss)],
              [out(rows * classes)],
              (b, [xs, ts, lse, dl], [d]) => b.crossEntropyBackward({ logits: xs!, targets: ts!, lse: lse!, dloss: dl!, dlogits: d!, rows, classes, ignoreIndex, smoothing, op: 'crossEntropy' }),
              `crossEntropyBackward ${what}`,
              { rtol: 1e-4, atol: 1e-5 },
            );
          }
    }, 300_000);

  test('a target outside [0, classes) that is not ignoreIndex faults with the value, forward and backward', async () => {
    for (const lanes of [1, 32]) {
      forceRowLanes(lanes);
      for (const [bad, classes] of [[5, 5], [-1, 3], [-100, 4], [2147483647, 2], [0, 0]] as const) {
        const rows = 3;
        const x = Array.from({ length: rows * classes }, (_, i) => i / 7);
        const tv = [0, bad, 0].map((v, i) => (i === 1 ? v : Math.min(v, Math.max(classes - 1, 0))));
        // ignoreIndex -7 so that -100 counts as a bad target
        const call = (op: 'fwd' | 'bwd'): Call => (b, [xs, ts, lse, dl], [o, o2]) =>
          op === 'fwd'
            ? b.crossEntropy({ logits: xs!, targets: ts!, loss: o!, lse: o2!, rows, classes, ignoreIndex: -7, smoothing: 0.1, op: 'crossEntropy' })
            : b.crossEntropyBackward({ logits: xs!, targets: ts!, lse: lse!, dloss: dl!, dlogits: o!, rows, classes, ignoreIndex: -7, smoothing: 0.1, op: 'crossEntropy' });
        const ins = [f32(x), i32(tv), f32([1, 2, 3]), f32([1, 1, 1])];
        for (const op of ['fwd', 'bwd'] as const) {
          const gpu = k.backendSync('webgpu');
          const got = await on(gpu, ins, [out(Math.max(rows * classes, rows)), out(rows)], (i, o) => call(op)(gpu, i, o));
          expect('error' in got ? got.error : 'no fault').toBe(`crossEntropy: target ${bad} is out of range [0, ${classes}) and is not ignoreIndex`);
        }
      }
    }
  });

  test('more row workgroups than one grid dimension holds (256 lanes per row, 65600 rows)', async () => {
    forceRowLanes(256);
    const rows = 65600;
    const cols = 3;
    const r = rng(14);
    const x = logits(r, rows, cols, 0, false);
    await agree([f32(x)], [out(rows * cols)], (b, [xs], [o]) => b.softmax({ x: xs!, out: o!, rows, cols, log: false }), 'softmax 65600 rows');
    await agree([f32(x)], [out(rows * cols), out(rows), out(rows)], (b, [xs], [o, m, s]) => b.layerNorm({ x: xs!, weight: null, bias: null, out: o!, mean: m!, rstd: s!, rows, cols, eps: 1e-5, rms: false, residual: null, sum: null }), 'layerNorm 65600 rows', { rtol: 1e-4, atol: 1e-5 });
    const tv = Array.from({ length: rows }, (_, i) => i % cols);
    await agree([f32(x), i32(tv)], [out(rows), out(rows)], (b, [xs, ts], [l, z]) => b.crossEntropy({ logits: xs!, targets: ts!, loss: l!, lse: z!, rows, classes: cols, ignoreIndex: -100, smoothing: 0, op: 'crossEntropy' }), 'crossEntropy 65600 rows');
  }, 120_000);
});
