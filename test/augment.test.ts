/**
 * Text data augmentation (src/data/augment.ts): each transform's effect against its definition
 * (rates within binomial bounds, span lengths against the geometric mean, swaps that keep each
 * row's multiset, synonyms only from the table), determinism per seed, composition order, the
 * batcher's `transform` option, and `train({ transform })` touching training batches only.
 * Everything is host-side except the last two, which run on `ref`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdamW, GPT, Generator, TokenDataset, buildShards, train, type TokenizerLike } from '../src/index.js';
import { composeTransforms, randomSwap, spanMask, synonymReplace, tokenDropout, type BatchTransform, type TokenRows } from '../src/data/augment.js';

const B = 64;
const T = 64;

/** Rows of ids in [1, 40] (0 is free for the mask/unk id), targets the stream one later. */
function rows(seed = 3, b = B, t = T): TokenRows {
  let s = seed;
  const stream = Array.from({ length: b * (t + 1) }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return 1 + (Math.floor(s / 65536) % 40);
  });
  const input = new Int32Array(b * t);
  const target = new Int32Array(b * t);
  for (let i = 0; i < b; i++)
    for (let j = 0; j < t; j++) {
      input[i * t + j] = stream[i * (t + 1) + j]!;
      target[i * t + j] = stream[i * (t + 1) + j + 1]!;
    }
  return { input, target, shape: [b, t] };
}

/** |count − n·p| within 4.5 standard deviations of a Binomial(n, p). */
function expectBinomial(count: number, n: number, p: number): void {
  const sd = Math.sqrt(n * p * (1 - p));
  expect(Math.abs(count - n * p), `count ${count} of ${n} at p = ${p}`).toBeLessThanOrEqual(4.5 * sd + 1e-9);
}

const changed = (a: Int32Array, b: Int32Array): number => a.reduce((n, v, i) => n + (v !== b[i] ? 1 : 0), 0);

describe('tokenDropout', () => {
  it("replaces each token with probability p (binomial bounds), keeps the targets and never drops a 'keep' id", () => {
    const r = rows();
    const p = 0.2;
    const out = tokenDropout({ p, replaceId: 0 })(r, new Generator(1));
    const dropped = out.input.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
    expect(changed(out.input, r.input)).toBe(dropped);
    expectBinomial(dropped, B * T, p);
    expect(out.target).toEqual(r.target);
    expect(r.input.every((v) => v !== 0)).toBe(true); // the input rows are not changed
    const kept = tokenDropout({ p: 1, replaceId: 0, keep: [5, 7] })(r, new Generator(1));
    kept.input.forEach((v, i) => expect(v).toBe(r.input[i] === 5 || r.input[i] === 7 ? r.input[i] : 0));
  });

  it("'delete' removes dropped tokens, each kept token keeps its own target, and the tail is padId with target −100", () => {
    const r = rows();
    const p = 0.3;
    const out = tokenDropout({ p, mode: 'delete', padId: 0 })(r, new Generator(2));
    let deleted = 0;
    for (let i = 0; i < B; i++) {
      const pairs = Array.from({ length: T }, (_, j) => [r.input[i * T + j]!, r.target[i * T + j]!]);
      const got = Array.from({ length: T }, (_, j) => [out.input[i * T + j]!, out.target[i * T + j]!]);
      const n = got.findIndex(([x]) => x === 0);
      const keptN = n < 0 ? T : n;
      // the kept (input, target) pairs are a subsequence of the original pairs, in order
      let k = 0;
      for (const pr of pairs) if (k < keptN && pr[0] === got[k]![0] && pr[1] === got[k]![1]) k++;
      expect(k).toBe(keptN);
      for (let j = keptN; j < T; j++) expect(got[j]).toEqual([0, -100]);
      deleted += T - keptN;
    }
    expectBinomial(deleted, B * T, p);
  });
});

describe('spanMask', () => {
  it('masks about rate·T tokens per row in runs whose mean length is meanSpan (geometric)', () => {
    const t = 400;
    const r = rows(5, 40, t);
    const out = spanMask({ maskId: 0, rate: 0.15, meanSpan: 3, maxSpan: 1000 })(r, new Generator(3));
    const runs: number[] = [];
    for (let i = 0; i < 40; i++) {
      const row = out.input.subarray(i * t, (i + 1) * t);
      const masked = row.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
      expect(masked).toBeGreaterThanOrEqual(Math.ceil(0.15 * t));
      expect(masked).toBeLessThan(0.15 * t + 40); // at most one span past the budget
      let run = 0;
      for (let j = 0; j <= t; j++) {
        if (j < t && row[j] === 0) run++;
        else if (run) {
          runs.push(run);
          run = 0;
        }
      }
    }
    const mean = runs.reduce((a, b) => a + b, 0) / runs.length;
    // ~1000 spans of Geo(1/3): the sample mean's standard error is √6/√1000 ≈ 0.08
    expect(runs.length).toBeGreaterThan(700);
    expect(Math.abs(mean - 3)).toBeLessThan(0.35);
    expect(out.target).toEqual(r.target);
    // maxSpan clips the lengths
    const short = spanMask({ maskId: 0, rate: 0.3, meanSpan: 6, maxSpan: 2 })(r, new Generator(3));
    for (let i = 0; i < 40; i++) expect(/0{3}/.test(Array.from(short.input.subarray(i * t, (i + 1) * t), (v) => (v === 0 ? '0' : 'x')).join(''))).toBe(false);
  });
});

describe('randomSwap', () => {
  it('keeps each row’s multiset of tokens and swaps at about rate p; distance bounds how far a token moves', () => {
    const r = rows();
    const out = randomSwap({ p: 0.1 })(r, new Generator(4));
    for (let i = 0; i < B; i++) {
      const a = Array.from(r.input.subarray(i * T, (i + 1) * T)).sort((x, y) => x - y);
      const b = Array.from(out.input.subarray(i * T, (i + 1) * T)).sort((x, y) => x - y);
      expect(b).toEqual(a);
    }
    // each swap moves ≤ 2 positions (equal neighbours move none), and swaps rarely chain at p = 0.1
    const moved = changed(out.input, r.input);
    expect(moved).toBeGreaterThan(0.1 * B * T);
    expect(moved).toBeLessThan(0.3 * B * T);
    expect(out.target).toEqual(r.target);
    // distance 3: a token lands at most 3·(chain) away; with p small, every changed position holds a token from within 3 places
    const far = randomSwap({ p: 0.02, distance: 3 })(r, new Generator(5));
    for (let k = 0; k < far.input.length; k++)
      if (far.input[k] !== r.input[k]) {
        const j = k % T;
        const near = [-6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6].some((d) => j + d >= 0 && j + d < T && r.input[k + d] === far.input[k]);
        expect(near).toBe(true);
      }
  });

  it("targets: 'follow' makes the targets the swapped text's next tokens", () => {
    const r = rows();
    const out = randomSwap({ p: 0.2, targets: 'follow' })(r, new Generator(4));
    for (let i = 0; i < B; i++) {
      for (let j = 0; j < T - 1; j++) expect(out.target[i * T + j]).toBe(out.input[i * T + j + 1]);
      expect(out.target[i * T + T - 1]).toBe(r.target[i * T + T - 1]);
    }
  });
});

describe('synonymReplace', () => {
  it('replaces table tokens at rate p with synonyms from their own entry only', () => {
    const r = rows();
    const table = new Map<number, number[]>([
      [3, [100, 101]],
      [4, [102]],
      [9, [103, 104, 105]],
    ]);
    const p = 0.5;
    const out = synonymReplace({ table, p })(r, new Generator(6));
    let eligible = 0;
    let replaced = 0;
    const seen = new Set<number>();
    for (let k = 0; k < r.input.length; k++) {
      const syn = table.get(r.input[k]!);
      if (!syn) {
        expect(out.input[k]).toBe(r.input[k]);
        continue;
      }
      eligible++;
      if (out.input[k] !== r.input[k]) {
        replaced++;
        expect(syn).toContain(out.input[k]);
        seen.add(out.input[k]!);
      }
    }
    expect(eligible).toBeGreaterThan(200);
    expectBinomial(replaced, eligible, p);
    expect(seen).toEqual(new Set([100, 101, 102, 103, 104, 105]));
    expect(out.target).toEqual(r.target);
  });

  it('reads a table of words through a tokenizer, and refuses a word of several tokens', () => {
    const vocab = ['<unk>', 'big', 'large', 'huge', 'cat', 'a'];
    const tok = { encode: (s: string) => s.split(' ').map((w) => Math.max(0, vocab.indexOf(w))) };
    const r: TokenRows = { input: Int32Array.from([5, 1, 4, 1]), target: Int32Array.from([1, 4, 1, 0]), shape: [1, 4] };
    const out = synonymReplace({ table: { big: ['large', 'huge'] }, tokenizer: tok, p: 1 })(r, new Generator(0));
    expect([out.input[0], out.input[2]]).toEqual([5, 4]);
    expect([2, 3]).toContain(out.input[1]);
    expect([2, 3]).toContain(out.input[3]);
    expect(() => synonymReplace({ table: { big: ['very large'] }, tokenizer: tok, p: 1 })).toThrow(/^synonymReplace: .*'very large' encodes to 2 tokens/);
    expect(() => synonymReplace({ table: { big: ['large'] }, p: 1 })).toThrow(/^synonymReplace: .*'big' is a word; pass a tokenizer/);
  });
});

describe('seeding and composition', () => {
  const all = (): [string, BatchTransform][] => [
    ['tokenDropout', tokenDropout({ p: 0.2, replaceId: 0 })],
    ['tokenDropout delete', tokenDropout({ p: 0.2, mode: 'delete', padId: 0 })],
    ['spanMask', spanMask({ maskId: 0 })],
    ['randomSwap', randomSwap({ p: 0.2, distance: 2 })],
    ['synonymReplace', synonymReplace({ table: { 3: [50], 4: [51, 52] }, p: 0.5 })],
  ];

  it('one seed gives one result, another seed another; the generator advances the same whatever the content', () => {
    for (const [name, t] of all()) {
      const a = t(rows(), new Generator(11));
      const b = t(rows(), new Generator(11));
      const c = t(rows(), new Generator(12));
      expect(b.input, name).toEqual(a.input);
      expect(b.target, name).toEqual(a.target);
      expect(changed(c.input, a.input), name).toBeGreaterThan(0);
      if (name !== 'spanMask') {
        // draws per position, not per token found
        const g1 = new Generator(1);
        const g2 = new Generator(1);
        t(rows(1), g1);
        t(rows(2), g2);
        expect(g1.getState(), name).toEqual(g2.getState());
      }
    }
  });

  it('composeTransforms applies left to right', () => {
    const drop = tokenDropout({ p: 1, replaceId: 7 });
    const syn = synonymReplace({ table: { 7: [8] }, p: 1 });
    const r = rows();
    expect(Array.from(new Set(composeTransforms(drop, syn)(r, new Generator(0)).input))).toEqual([8]);
    expect(Array.from(new Set(composeTransforms(syn, drop)(r, new Generator(0)).input))).toEqual([7]);
    // one generator, drawn by each in turn: the same as applying them by hand
    const g = new Generator(3);
    const byHand = randomSwap({ p: 0.3 })(tokenDropout({ p: 0.3, replaceId: 0 })(r, g), g);
    const composed = composeTransforms(tokenDropout({ p: 0.3, replaceId: 0 }), randomSwap({ p: 0.3 }))(r, new Generator(3));
    expect(composed.input).toEqual(byHand.input);
    expect(composeTransforms()(r, new Generator(0)).input).toEqual(r.input);
    expect(() => composeTransforms((() => 5) as unknown as BatchTransform)(r, new Generator(0))).toThrow(/^composeTransforms: rows must be .*got number 5/);
  });
});

// ---- the hooks ---------------------------------------------------------------------------------

const V = 12;
const tok: TokenizerLike = { vocabSize: V, encode: (t) => Array.from(t, (c) => 1 + (c.charCodeAt(0) % (V - 2))), fingerprint: () => 'augment-test' };
const root = mkdtempSync(join(tmpdir(), 'kiln-augment-'));
let data: TokenDataset;
let val: TokenDataset;
beforeAll(async () => {
  data = TokenDataset.open(await buildShards(['the quick brown fox jumps over the lazy dog. '.repeat(20)], tok, { cacheDir: join(root, 'c'), eos: V - 1 }));
  val = TokenDataset.open(await buildShards(['a lazy dog. '.repeat(10)], tok, { cacheDir: join(root, 'c'), eos: V - 1 }));
});
afterAll(() => {
  data?.close();
  val?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('hooks', () => {
  it('TokenDataset.batch({ transform }) draws the same windows and augments them reproducibly', async () => {
    const plain = data.batch(4, 8, new Generator(9), { backend: 'ref' });
    const t = tokenDropout({ p: 0.5, replaceId: 0 });
    const aug = data.batch(4, 8, new Generator(9), { backend: 'ref', transform: t });
    const again = data.batch(4, 8, new Generator(9), { backend: 'ref', transform: t });
    expect(aug.starts).toEqual(plain.starts);
    const [pi, ai, gi] = await Promise.all([plain.input.data(), aug.input.data(), again.input.data()]);
    expect(Array.from(gi)).toEqual(Array.from(ai));
    Array.from(ai).forEach((v, i) => expect(v === 0 || v === pi[i]).toBe(true));
    expect(Array.from(ai).filter((v) => v === 0).length).toBeGreaterThan(0);
    expect(Array.from(await aug.target.data())).toEqual(Array.from(await plain.target.data()));
    for (const b of [plain, aug, again]) [b.input, b.target].forEach((x) => x.dispose());
  });

  it('train({ transform }) augments every training micro-batch and no validation batch', async () => {
    const generator = new Generator(1);
    const model = new GPT({ vocabSize: V, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 16 }, { backend: 'ref', generator });
    const shapes: string[] = [];
    const transform: BatchTransform = (r, g) => {
      shapes.push(r.shape.join('x'));
      return tokenDropout({ p: 0.1, replaceId: 0 })(r, g);
    };
    const res = await train({
      model,
      optimizer: new AdamW(model.parameters(), { lr: 1e-2 }),
      data: { train: data, val },
      steps: 3,
      gradAccum: 2,
      batchSize: 4,
      blockSize: 8,
      evalEvery: 1,
      evalBatches: 2,
      generator,
      transform,
    });
    expect(res.step).toBe(3);
    expect(res.evals.length).toBe(3);
    expect(shapes).toEqual(Array(6).fill('4x8'));
    model.dispose();
  });
});
