/**
 * k-fold splits (scikit-learn KFold's fold sizes and order) and cross-validation: folds
 * partition the documents, the mean / std arithmetic (ddof 0 and 1, against values worked by
 * hand), and a small real use: a nearest-centroid bag-of-words classifier scored with kiln's
 * `accuracy` on each held-out fold.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { accuracy } from '../src/metrics/classification.js';
import { crossValidate, kFoldSplits } from '../src/train/kfold.js';

describe('kFoldSplits', () => {
  it('gives scikit-learn KFold’s folds without shuffling', () => {
    // KFold(3).split(range(10)): test folds [0..3], [4..6], [7..9]
    expect(kFoldSplits(10, 3).map((f) => f.validation)).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6],
      [7, 8, 9],
    ]);
    expect(kFoldSplits(10, 3)[1]!.train).toEqual([0, 1, 2, 3, 7, 8, 9]);
    expect(kFoldSplits(['a', 'b', 'c', 'd', 'e'], 2).map((f) => f.validation)).toEqual([
      [0, 1, 2],
      [3, 4],
    ]);
    expect(kFoldSplits(4, 4).map((f) => f.validation)).toEqual([[0], [1], [2], [3]]);
  });

  it('partitions the documents: each in exactly one validation fold, sizes within 1, train the complement', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 60 }), fc.integer({ min: 2, max: 12 }), fc.boolean(), fc.nat(1000), (n, k0, shuffle, seed) => {
        const k = Math.min(k0, n);
        const folds = kFoldSplits(n, k, shuffle ? { shuffle, seed } : {});
        expect(folds.length).toBe(k);
        const seen = new Array<number>(n).fill(0);
        const sizes = folds.map((f) => f.validation.length);
        for (const f of folds) {
          for (const i of f.validation) seen[i]!++;
          expect([...f.train, ...f.validation].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
          expect(f.train).toEqual([...f.train].sort((a, b) => a - b));
          expect(f.validation).toEqual([...f.validation].sort((a, b) => a - b));
        }
        expect(seen.every((c) => c === 1)).toBe(true);
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
        // the larger folds come first, as KFold's
        expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
      }),
      { numRuns: 200 },
    );
  });

  it('shuffles with a seed: reproducible, seed-dependent, not contiguous', () => {
    const a = kFoldSplits(20, 4, { shuffle: true, seed: 7 });
    expect(kFoldSplits(20, 4, { shuffle: true, seed: 7 })).toEqual(a);
    expect(kFoldSplits(20, 4, { shuffle: true, seed: 8 })).not.toEqual(a);
    expect(a).not.toEqual(kFoldSplits(20, 4));
  });

  it('refuses k < 2, k > n and a seed without shuffle', () => {
    expect(() => kFoldSplits(5, 1)).toThrow(/^kFoldSplits: k must be .*1/);
    expect(() => kFoldSplits(3, 4)).toThrow(/^kFoldSplits: k = 4 folds need at least 4 documents, got 3/);
    expect(() => kFoldSplits(5, 2, { seed: 3 })).toThrow(/^kFoldSplits: seed 3 has no effect without shuffle/);
  });
});

describe('crossValidate', () => {
  it('passes each fold its documents and reports mean and std (ddof 0 and 1) worked by hand', async () => {
    const docs = ['d0', 'd1', 'd2', 'd3', 'd4', 'd5'];
    const calls: [string[], string[], number][] = [];
    // fold f scores f + 1 and 10·(f + 1): means 2 and 20; Σ(x−μ)² = 2 and 200
    const run = async (train: string[], val: string[], fold: number) => {
      calls.push([train, val, fold]);
      return { a: fold + 1, b: 10 * (fold + 1) };
    };
    const cv = await crossValidate(docs, 3, run);
    expect(calls).toEqual([
      [['d2', 'd3', 'd4', 'd5'], ['d0', 'd1'], 0],
      [['d0', 'd1', 'd4', 'd5'], ['d2', 'd3'], 1],
      [['d0', 'd1', 'd2', 'd3'], ['d4', 'd5'], 2],
    ]);
    expect(cv.folds.map((f) => f.metrics)).toEqual([
      { a: 1, b: 10 },
      { a: 2, b: 20 },
      { a: 3, b: 30 },
    ]);
    expect(cv.mean).toEqual({ a: 2, b: 20 });
    expect(cv.ddof).toBe(0);
    expect(cv.std.a).toBeCloseTo(Math.sqrt(2 / 3), 14);
    expect(cv.std.b).toBeCloseTo(Math.sqrt(200 / 3), 12);
    const sample = await crossValidate(docs, 3, run, { ddof: 1 });
    expect(sample.std.a).toBeCloseTo(1, 14);
    expect(sample.std.b).toBeCloseTo(10, 12);
  });

  it('a nearest-centroid classifier: every document is predicted once out of fold', async () => {
    const topics: Record<string, string[]> = {
      sport: ['ball', 'goal', 'team', 'match', 'score', 'coach'],
      food: ['bread', 'soup', 'salt', 'cook', 'taste', 'oven'],
      space: ['star', 'orbit', 'moon', 'rocket', 'planet', 'comet'],
    };
    const names = Object.keys(topics);
    // 30 documents, 10 per topic, each 5 topic words and 1 shared noise word, in a fixed order
    const docs = Array.from({ length: 30 }, (_, i) => {
      const label = names[i % 3]!;
      const words = topics[label]!;
      return { label, words: [...Array.from({ length: 5 }, (_, j) => words[(i + j * 7) % words.length]!), 'the'] };
    });
    type Doc = (typeof docs)[number];
    const predicted = new Map<Doc, string>();
    const cv = await crossValidate(
      docs,
      5,
      async (train, val) => {
        const counts = new Map<string, Map<string, number>>();
        for (const d of train) {
          const c = counts.get(d.label) ?? new Map<string, number>();
          for (const w of d.words) c.set(w, (c.get(w) ?? 0) + 1);
          counts.set(d.label, c);
        }
        const guess = (d: Doc) => {
          let best = '';
          let bestScore = -1;
          for (const [label, c] of counts) {
            const total = [...c.values()].reduce((s, x) => s + x, 0);
            const score = d.words.reduce((s, w) => s + (c.get(w) ?? 0) / total, 0);
            if (score > bestScore) [best, bestScore] = [label, score];
          }
          predicted.set(d, best);
          return best;
        };
        const yPred = val.map(guess);
        return { accuracy: accuracy(val.map((d) => d.label), yPred), n: val.length };
      },
      { shuffle: true, seed: 3 },
    );
    expect(cv.folds.length).toBe(5);
    expect(predicted.size).toBe(30);
    expect(cv.folds.every((f) => f.metrics.n === 6)).toBe(true);
    // equal folds: the mean of the fold accuracies is the out-of-fold accuracy
    const correct = docs.filter((d) => predicted.get(d) === d.label).length;
    expect(cv.mean.accuracy).toBeCloseTo(correct / 30, 12);
    expect(cv.mean.accuracy).toBeGreaterThan(0.9);
    expect(cv.std.n).toBe(0);
  });

  it('refuses folds that disagree on their metrics', async () => {
    await expect(crossValidate([1, 2, 3, 4], 2, async (_t, _v, f): Promise<Record<string, number>> => (f === 0 ? { a: 1 } : { b: 1 }))).rejects.toThrow(
      /^crossValidate: fold 1 returned metrics \[b\] but fold 0 returned \[a\]/,
    );
    await expect(crossValidate([1, 2, 3, 4], 2, async () => ({ a: 'x' }) as never)).rejects.toThrow(/^crossValidate: metric 'a' of fold 0 must be a number, got 'x'/);
  });
});
