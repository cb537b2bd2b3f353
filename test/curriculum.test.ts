/**
 * Curriculum ordering (src/data/curriculum.ts): the pacing functions against Platanios et al.'s
 * formulas, early batches drawn from the easy pool and later ones from all windows, ordering by
 * document length, ordering by a scoring model's per-sequence loss checked against the same loss
 * computed here in plain JS, and `train({ curriculum })`. Runs on `ref`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdamW, GPT, Generator, TokenDataset, buildShards, embedding, tensor, train, type Tensor, type TokenizerLike } from '../src/index.js';
import { Curriculum, lengthCurriculum, lossCurriculum } from '../src/data/curriculum.js';

const V = 8;
const EOS = 7;
const tok: TokenizerLike = { vocabSize: V, encode: (t) => Array.from(t, (c) => 'abcdef'.indexOf(c) + 1), fingerprint: () => 'curriculum-test' };
const root = mkdtempSync(join(tmpdir(), 'kiln-curriculum-'));
let data: TokenDataset;
// documents of lengths 2 … 40 (plus the eos), in a shuffled order
const LENGTHS = Array.from({ length: 39 }, (_, i) => 2 + ((i * 17) % 39));
beforeAll(async () => {
  const docs = LENGTHS.map((n, i) => Array.from({ length: n }, (_, j) => 'abcdef'[(i + j * (i % 3 === 0 ? 0 : 1)) % 6]).join(''));
  data = TokenDataset.open(await buildShards(docs, tok, { cacheDir: join(root, 'c'), eos: EOS }));
});
afterAll(() => {
  data?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('Curriculum', () => {
  it("pacing: linear c₀ + (1 − c₀)·t/T and root √(c₀² + (1 − c₀²)·t/T), capped at 1", () => {
    const mk = (pacing: 'linear' | 'root') => new Curriculum(data, { starts: [0, 1, 2, 3], difficulty: [4, 3, 2, 1], blockSize: 4, steps: 100, initial: 0.2, pacing });
    const lin = mk('linear');
    const root = mk('root');
    for (const t of [0, 10, 50, 99, 100, 500]) {
      expect(lin.competence(t)).toBeCloseTo(Math.min(1, 0.2 + 0.8 * Math.min(1, t / 100)), 12);
      expect(root.competence(t)).toBeCloseTo(Math.min(1, Math.sqrt(0.04 + 0.96 * Math.min(1, t / 100))), 12);
    }
    expect(lin.starts).toEqual([3, 2, 1, 0]); // easiest first
    expect([lin.poolSize(0), lin.poolSize(50), lin.poolSize(100)]).toEqual([1, 3, 4]);
    const custom = new Curriculum(data, { starts: [0, 1], difficulty: [0, 1], blockSize: 4, steps: 10, pacing: (s) => (s < 5 ? 0.5 : 1) });
    expect([custom.poolSize(4), custom.poolSize(5)]).toEqual([1, 2]);
  });

  it('by length: early batches come from the shortest documents, later ones from all', async () => {
    const T = 4;
    const cur = lengthCurriculum(data, { eosId: EOS, blockSize: T, steps: 100, pacing: 'linear', initial: 0.2 });
    // one candidate per document (all leave room for a window), ranked by length
    expect(cur.starts.length).toBe(LENGTHS.length);
    expect(cur.difficulty).toEqual([...LENGTHS].map((n) => n + 1).sort((a, b) => a - b));
    const easy = new Set(cur.starts.slice(0, cur.poolSize(0)));
    const g = new Generator(1);
    const early = new Set<number>();
    const late = new Set<number>();
    for (let k = 0; k < 20; k++) {
      const b = cur.batch(8, 0, g, { backend: 'ref' });
      b.starts.forEach((s) => early.add(s));
      // the window starting at a document's start begins with its tokens
      const w = data.window(b.starts[0]!, T + 1);
      expect(Array.from((await b.input.data()).subarray(0, T))).toEqual(Array.from(w.subarray(0, T)));
      b.input.dispose();
      b.target.dispose();
      const l = cur.batch(8, 200, g, { backend: 'ref' });
      l.starts.forEach((s) => late.add(s));
      l.input.dispose();
      l.target.dispose();
    }
    for (const s of early) expect(easy.has(s)).toBe(true);
    expect(early.size).toBe(easy.size); // 160 draws from 8 windows reach them all
    expect(late.size).toBeGreaterThan(easy.size + 15);
    expect([...late].some((s) => !easy.has(s))).toBe(true);
  });

  it('by a scoring model: windows ordered by its per-sequence loss, lowest first', async () => {
    // a bigram scorer: logits = W[token]; its loss is computed again here in plain JS
    const W = Array.from({ length: V * V }, (_, i) => Math.sin(i * 1.7) * 3);
    const weight = tensor(W, [V, V], { backend: 'ref' });
    const scorer = { forward: (idx: Tensor) => ({ logits: embedding(idx, weight) }) };
    const T = 6;
    const cur = await lossCurriculum(data, scorer, { blockSize: T, steps: 10, batchSize: 5, backend: 'ref' });
    const full = Math.floor((data.length - 1) / T);
    expect(cur.starts.length).toBe(full);
    const jsLoss = (s: number): number => {
      const w = data.window(s, T + 1);
      let l = 0;
      for (let t = 0; t < T; t++) {
        const row = W.slice(w[t]! * V, w[t]! * V + V);
        const m = Math.max(...row);
        l += m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) - row[w[t + 1]!]!;
      }
      return l / T;
    };
    cur.starts.forEach((s, i) => expect(cur.difficulty[i]).toBeCloseTo(jsLoss(s), 4));
    for (let i = 1; i < cur.starts.length; i++) expect(jsLoss(cur.starts[i]!)).toBeGreaterThanOrEqual(jsLoss(cur.starts[i - 1]!) - 1e-5);
    // the first batch comes from the lowest-loss windows
    const b = cur.batch(4, 0, new Generator(2), { backend: 'ref' });
    const pool = new Set(cur.starts.slice(0, cur.poolSize(0)));
    b.starts.forEach((s) => expect(pool.has(s)).toBe(true));
    b.input.dispose();
    b.target.dispose();
    const some = await lossCurriculum(data, scorer, { blockSize: T, steps: 10, candidates: [0, 6, 12], backend: 'ref' });
    expect([...some.starts].sort((a, c) => a - c)).toEqual([0, 6, 12]);
    weight.dispose();
  });

  it('train({ curriculum }) draws from it, and refuses one built for another blockSize or dataset', async () => {
    const generator = new Generator(3);
    const model = new GPT({ vocabSize: V, blockSize: 4, nLayer: 1, nHead: 2, nEmbd: 8 }, { backend: 'ref', generator });
    const cur = lengthCurriculum(data, { eosId: EOS, blockSize: 4, steps: 4 });
    const seen: number[] = [];
    const orig = cur.batch.bind(cur);
    cur.batch = (b, step, g, o) => {
      seen.push(step);
      return orig(b, step, g, o);
    };
    const base = { model, optimizer: new AdamW(model.parameters(), { lr: 1e-3 }), data: { train: data }, batchSize: 2, blockSize: 4, generator };
    const res = await train({ ...base, steps: 3, curriculum: cur });
    expect(res.step).toBe(3);
    expect(seen).toEqual([0, 1, 2]);
    await expect(train({ ...base, steps: 1, blockSize: 3, curriculum: cur })).rejects.toThrow(/^train: curriculum was built for blockSize 4, the run's blockSize is 3/);
    await expect(train({ ...base, steps: 1, curriculum: {} as Curriculum })).rejects.toThrow(/^train: curriculum must be a Curriculum/);
    model.dispose();
  });
});
