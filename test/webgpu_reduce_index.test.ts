/**
 * The webgpu reduce, gather, scatterAdd and check kernels against `ref`, called through the
 * Backend contract at the shapes where their strategies change: rows reduced per invocation, by
 * one workgroup tree, or in several levels of partials (r past 2048, a full sum of 10⁶), columns
 * in one serial run or in chunks, more workgroups than one grid dimension holds; ties, −0, NaN
 * and integer overflow (the fault naming the lowest overflowing output with its exact sum).
 */
import { describe, expect, test } from 'vitest';
import * as k from '../src/index.js';
import type { Backend, ReduceOp, Storage } from '../src/backend/backend.js';
import { storageArray, type DType } from '../src/backend/dtype.js';
import { rng } from './harness.js';

const info = k.backends().find((b) => b.name === 'webgpu');
const available = !!info?.available;
if (!available) console.warn(`[kiln tests] webgpu_reduce_index.test.ts skipped: webgpu is unavailable: ${info?.reason ?? 'not registered'}`);

/** Run `fn` on a backend with fresh storages of `inputs`; the read outputs or the fault's message. */
async function on(
  b: Backend,
  inputs: { dtype: DType; data: ArrayLike<number> }[],
  outputs: { dtype: DType; size: number; init?: ArrayLike<number> }[],
  fn: (ins: Storage[], outs: Storage[]) => void,
): Promise<{ outs: number[][] } | { error: string }> {
  const make = (dtype: DType, data: ArrayLike<number>): Storage => {
    const s = b.alloc(dtype, data.length);
    const a = storageArray(dtype, data.length);
    for (let i = 0; i < data.length; i++) a[i] = data[i]!;
    b.write(s, a);
    return s;
  };
  const ins = inputs.map((x) => make(x.dtype, x.data));
  const outs = outputs.map((o) => make(o.dtype, o.init ?? new Array<number>(o.size).fill(0)));
  try {
    fn(ins, outs);
    return { outs: await Promise.all(outs.map(async (s) => Array.from(await b.read(s)))) };
  } catch (e) {
    return { error: (e as Error).message };
  } finally {
    for (const s of [...ins, ...outs]) b.free(s);
  }
}

function sameBits(got: number[], want: number[], what: string): void {
  for (let i = 0; i < want.length; i++)
    if (!Object.is(got[i], want[i]) && !(Number.isNaN(got[i]) && Number.isNaN(want[i])))
      throw new Error(`${what}[${i}]: got ${got[i]}, expected ${want[i]}`);
}

describe.skipIf(!available)('webgpu reduce, gather, scatterAdd and check against ref', () => {
  const gpu = (): Backend => k.backendSync('webgpu');
  const ref = (): Backend => k.backendSync('ref');

  // [outer, r, inner]: rows and columns in one serial run, in strided chunks with a second level,
  // rows in workgroup trees (r past 1024) with one and two further levels, many short rows
  const shapes: [number, number, number][] = [
    [1, 1, 1], [4, 1, 3], [7, 64, 1], [3, 256, 1], [3, 257, 1], [2, 1000, 1], [2, 1024, 1], [2, 1025, 1],
    [1, 5000, 1], [5, 17, 4], [2, 256, 3], [2, 257, 3], [1, 700, 130], [3, 20000, 2], [20000, 65, 1], [1, 300000, 1],
  ];

  async function compare(op: ReduceOp, dtype: DType, [outer, r, inner]: [number, number, number], data: number[]): Promise<void> {
    const outDtype: DType = op === 'argmax' || op === 'argmin' || (op === 'sum' && dtype === 'bool') ? 'i32' : dtype;
    const run = (b: Backend) =>
      on(b, [{ dtype, data }], [{ dtype: outDtype, size: outer * inner }], ([x], [out]) =>
        b.reduce({ reduceOp: op, x: x!, outer, r, inner, out: out!, op }),
      );
    const [want, got] = await Promise.all([run(ref()), run(gpu())]);
    const what = `${op} ${dtype} [${outer}, ${r}, ${inner}]`;
    if ('error' in want) {
      expect('error' in got ? got.error : 'no fault', what).toBe(want.error);
      return;
    }
    if ('error' in got) throw new Error(`${what}: ${got.error}`);
    if (op === 'sum' && dtype === 'f32') {
      // a sum may differ by its order: a few roundings of Σ|x| per output
      const w = want.outs[0]!;
      const g = got.outs[0]!;
      for (let o = 0; o < outer; o++)
        for (let i = 0; i < inner; i++) {
          let abs = 0;
          for (let j = 0; j < r; j++) abs += Math.abs(data[(o * r + j) * inner + i]!);
          const at = o * inner + i;
          const bound = 16 * 2 ** -24 * abs * Math.log2(r + 2);
          if (!(Math.abs(g[at]! - w[at]!) <= bound) && !(Number.isNaN(g[at]) && Number.isNaN(w[at])))
            throw new Error(`${what}[${at}]: got ${g[at]}, expected ${w[at]} (bound ${bound})`);
        }
    } else sameBits(got.outs[0]!, want.outs[0]!, what);
  }

  test('f32: sums within their rounding, max/min/argmax/argmin exact (ties, −0, NaN first)', async () => {
    const rand = rng(1);
    for (const shape of shapes) {
      const n = shape[0] * shape[1] * shape[2];
      const normal = Array.from({ length: n }, () => Math.fround(rand() * 8 - 4));
      // few distinct values (ties), −0 beside +0, and NaN in some outputs
      const ties = Array.from({ length: n }, () => [0, -0, 1, -1, 2][Math.floor(rand() * 5)]!);
      const nans = ties.map((v) => (rand() < 0.002 ? NaN : v));
      await compare('sum', 'f32', shape, normal);
      for (const op of ['max', 'min', 'argmax', 'argmin'] as const) {
        await compare(op, 'f32', shape, normal);
        await compare(op, 'f32', shape, ties);
        await compare(op, 'f32', shape, nans);
      }
    }
  }, 300_000);

  test('a full f32 sum of 10⁶ elements stays accurate', async () => {
    const rand = rng(2);
    const data = Array.from({ length: 1_000_003 }, () => Math.fround(rand()));
    await compare('sum', 'f32', [1, data.length, 1], data);
    await compare('sum', 'f32', [1, 1, data.length], data);
    await compare('argmax', 'f32', [1, data.length, 1], data);
  }, 120_000);

  test('i32 and bool: exact sums, extremes and indices', async () => {
    const rand = rng(3);
    for (const shape of shapes.slice(0, 13)) {
      const n = shape[0] * shape[1] * shape[2];
      const ints = Array.from({ length: n }, () => Math.floor(rand() * 2001) - 1000);
      const bools = Array.from({ length: n }, () => (rand() < 0.5 ? 1 : 0));
      for (const op of ['sum', 'max', 'min', 'argmax', 'argmin'] as const) {
        await compare(op, 'i32', shape, ints);
        await compare(op, 'bool', shape, bools);
      }
    }
  }, 300_000);

  test('an i32 sum past i32 faults with the sum of the first overflowing output; the output wraps', async () => {
    const big = 2 ** 31 - 1;
    // several outputs overflow and the lowest is named, over rows, columns and levels of partials;
    // the fault carries the exact 64-bit sum, as the reference names it
    const cases: [[number, number, number], number[], number][] = [
      [[1, 4, 1], [big, 1, 5, -3], 2147483650],
      [[2, 2, 2], [5, -3, 1, 2, big, big, 3, 1], big + 3],
      [[3, 3000, 1], [...new Array(3000).fill(1), ...new Array(3000).fill(big), ...new Array(3000).fill(7)], 3000 * big],
      [[1, 600, 3], Array.from({ length: 1800 }, (_, i) => (i % 3 === 2 ? 2 ** 22 : i % 3)), 600 * 2 ** 22],
      [[1, 3, 1], [-big, -2, -3], -big - 5],
      [[1, 2, 1], [-(2 ** 31), -(2 ** 31)], -(2 ** 32)],
    ];
    for (const [[outer, r, inner], data, value] of cases) {
      const run = (b: Backend) =>
        on(b, [{ dtype: 'i32', data }], [{ dtype: 'i32', size: outer * inner }], ([x], [out]) =>
          b.reduce({ reduceOp: 'sum', x: x!, outer, r, inner, out: out!, op: 'sum' }),
        );
      const [want, got] = await Promise.all([run(ref()), run(gpu())]);
      const message = (v: number) => `sum: the sum ${v} does not fit i32 (range [-2147483648, 2147483647]); cast to a floating dtype first`;
      expect(want).toHaveProperty('error');
      expect(got, `${data.slice(0, 4)}`).toEqual({ error: message(value) });
      expect(got).toEqual(want);
    }
    // sums that come back inside i32 do not fault
    await compare('sum', 'i32', [1, 4, 1], [big, 1, -big, -1]);
    await compare('sum', 'i32', [1, 3000, 1], Array.from({ length: 3000 }, (_, i) => (i % 2 ? big : -big)));
  });

  test('gather and scatterAdd match ref; a bad index faults with its value; scatterAdd accumulates duplicates', async () => {
    const rand = rng(4);
    for (const [outer, srcDim, n, inner, strides] of [
      [1, 5, 3, 1, [0, 1, 0]],
      [3, 7, 4, 5, [0, 1, 0]],
      [3, 7, 4, 5, [20, 5, 1]],
      [2, 300, 1000, 33, [0, 1, 0]],
    ] as [number, number, number, number, number[]][]) {
      const indexSize = strides[0] === 0 ? n : outer * n * inner;
      for (const bad of [false, true]) {
        const index = Array.from({ length: indexSize }, () => Math.floor(rand() * srcDim));
        if (bad) index[Math.floor(indexSize / 2)] = rand() < 0.5 ? -2 : srcDim;
        for (const dtype of ['f32', 'i32', 'f16', 'bool'] as DType[]) {
          const x = Array.from({ length: outer * srcDim * inner }, (_, i) => (dtype === 'bool' ? i % 2 : (i % 97) - 40));
          const args = { indexStrides: strides, outer, srcDim, n, inner };
          const g = async (b: Backend) =>
            on(b, [{ dtype, data: x }, { dtype: 'i32', data: index }], [{ dtype, size: outer * n * inner }], ([xs, idx], [out]) =>
              b.gather({ x: xs!, out: out!, index: idx!, ...args, op: 'gather' }),
            );
          const [want, got] = await Promise.all([g(ref()), g(gpu())]);
          expect(got, `gather ${dtype}`).toEqual(want);
          if (dtype === 'f16') continue;
          const src = Array.from({ length: outer * n * inner }, (_, i) => (dtype === 'bool' ? (i % 3) & 1 : (i % 13) - 6));
          const s = async (b: Backend) =>
            on(b, [{ dtype, data: src }, { dtype: 'i32', data: index }], [{ dtype, size: x.length, init: dtype === 'bool' ? undefined : x }], ([ss, idx], [dst]) =>
              b.scatterAdd({ dst: dst!, src: ss!, index: idx!, ...args, op: 'scatterAdd' }),
            );
          const [sw, sg] = await Promise.all([s(ref()), s(gpu())]);
          // ref's bool storage counts (1 + 1 = 2); webgpu's keeps bool words 0 or 1: compare truth
          if (dtype === 'bool' && 'outs' in sw && 'outs' in sg) expect(sg.outs[0]!.map(Boolean)).toEqual(sw.outs[0]!.map(Boolean));
          else expect(sg, `scatterAdd ${dtype}`).toEqual(sw);
        }
      }
    }
  }, 120_000);

  test('check reports the first failing element, with its value or its index', async () => {
    for (const n of [1, 5, 1000, 70000]) {
      for (const failing of [[], [n - 1], [Math.floor(n / 2), n - 1, 0].filter((v, i, a) => a.indexOf(v) === i)]) {
        const cond = new Array<number>(n).fill(1);
        for (const i of failing) cond[i] = 0;
        for (const dtype of [null, 'f32', 'i32', 'bf16'] as (DType | null)[]) {
          const vals = Array.from({ length: n }, (_, i) => (dtype === 'bf16' ? 16256 + (i % 100) : i * 3 - 7.5 * (dtype === 'f32' ? 1 : 0)));
          const c = async (b: Backend) =>
            on(b, dtype ? [{ dtype: 'bool', data: cond }, { dtype, data: vals }] : [{ dtype: 'bool', data: cond }], [{ dtype: 'f32', size: 1 }], ([cs, vs]) =>
              b.check({ cond: cs!, values: vs ?? null, op: 'probe', message: 'element {value} failed' }),
            );
          const [want, got] = await Promise.all([c(ref()), c(gpu())]);
          expect(got, `check n=${n} ${dtype} [${failing}]`).toEqual(want);
        }
      }
    }
  }, 120_000);
});
