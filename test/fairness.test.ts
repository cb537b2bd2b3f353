/**
 * Fairness measures: fairlearn's documented example (user guide, "Common fairness metrics":
 * demographic parity difference 0.25, ratio 0.666…, equalized odds difference 1.0, ratio 0.0),
 * the group rates behind it worked by hand, the other methods and options against the
 * definitions in src/metrics/fairness.ts; counterfactual swaps with a bigram model whose
 * log-likelihoods are computed by hand, and with a GPT against the align layer's
 * `sequenceLogProbs`.
 */
import { describe, expect, it } from 'vitest';
import { GPT, Generator, noGrad, sequenceLogProbs, tensor, type Tensor } from '../src/index.js';
import {
  counterfactualSwaps,
  demographicParityDifference,
  demographicParityRatio,
  equalizedOddsDifference,
  equalizedOddsRatio,
} from '../src/metrics/fairness.js';
import { describeBackends } from './harness.js';

// fairlearn's user guide (docs/user_guide/assessment/common_fairness_metrics.rst)
const Y_TRUE = [0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1];
const Y_PRED = [0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0];
const SF = ['b', 'b', 'a', 'b', 'b', 'c', 'c', 'c', 'a', 'a', 'c', 'a', 'b', 'c', 'c', 'b', 'c', 'c'];

const near = (a: number, e: number) => expect(Math.abs(a - e)).toBeLessThanOrEqual(1e-12);

describe('demographic parity (fairlearn)', () => {
  it("reproduces fairlearn's user-guide example: 0.25 and 0.666…", () => {
    // selection rates by hand: a 3/4, b 3/6, c 4/8
    near(demographicParityDifference(Y_PRED, SF), 0.25);
    near(demographicParityRatio(Y_PRED, SF), 2 / 3);
  });

  it("'to_overall' compares each group with the overall rate (10/18)", () => {
    const overall = 10 / 18;
    near(demographicParityDifference(Y_PRED, SF, { method: 'to_overall' }), 3 / 4 - overall);
    near(demographicParityRatio(Y_PRED, SF, { method: 'to_overall' }), Math.min(overall / (3 / 4), 0.5 / overall));
  });

  it('weights, posLabel, booleans and string labels', () => {
    // group x: preds 1, 0 with weights 3, 1 → 3/4; group y: 1, 1 → 1
    near(demographicParityDifference([1, 0, 1, 1], ['x', 'x', 'y', 'y'], { sampleWeight: [3, 1, 1, 1] }), 0.25);
    near(demographicParityDifference([true, false, true, true], ['x', 'x', 'y', 'y']), 0.5);
    near(demographicParityDifference(['no', 'yes', 'yes', 'yes'], [0, 0, 1, 1], { posLabel: 'yes' }), 0.5);
    near(demographicParityDifference([-1, 1, 1, 1], [0, 0, 1, 1]), 0.5);
    expect(demographicParityDifference([1, 0], ['only', 'only'])).toBe(0);
    expect(demographicParityRatio([0, 0, 0], ['a', 'b', 'a'])).toBeNaN(); // 0/0
    expect(() => demographicParityDifference(['no', 'yes'], [0, 1])).toThrow(/^demographicParityDifference: labels must be 0\/1, -1\/1 or booleans unless posLabel/);
  });

  it('accepts a 1-d tensor of predictions', () => {
    near(demographicParityDifference(tensor(Y_PRED, [18], { dtype: 'i32', backend: 'ref' }), SF), 0.25);
  });
});

describe('equalized odds (fairlearn)', () => {
  it("reproduces fairlearn's user-guide example: 1.0 and 0.0", () => {
    // by hand: TPR a 1/2, b 3/5, c 2/5 (difference 0.2); FPR a 2/2, b 0/1, c 2/3 (difference 1)
    near(equalizedOddsDifference(Y_TRUE, Y_PRED, SF), 1);
    near(equalizedOddsRatio(Y_TRUE, Y_PRED, SF), 0);
    near(equalizedOddsDifference(Y_TRUE, Y_PRED, SF, { agg: 'mean' }), (0.2 + 1) / 2);
    near(equalizedOddsRatio(Y_TRUE, Y_PRED, SF, { agg: 'mean' }), (0.4 / 0.6 + 0) / 2);
  });

  it("'to_overall': overall TPR 8/12, FPR 4/6", () => {
    const tpr = [1 / 2, 3 / 5, 2 / 5];
    const fpr = [1, 0, 2 / 3];
    const d = (rs: number[], o: number) => Math.max(...rs.map((r) => Math.abs(r - o)));
    near(equalizedOddsDifference(Y_TRUE, Y_PRED, SF, { method: 'to_overall' }), Math.max(d(tpr, 8 / 12), d(fpr, 4 / 6)));
  });

  it('a group without positives has TPR 0, as scikit-learn’s normalised confusion matrix gives', () => {
    // group p: true 0, 0 pred 1, 0 → FPR 1/2, TPR 0 (no positives); group q: true 1, 0 pred 1, 0 → TPR 1, FPR 0
    near(equalizedOddsDifference([0, 0, 1, 0], [1, 0, 1, 0], ['p', 'p', 'q', 'q']), 1);
  });

  it('a NaN ratio is skipped by the mean, and the worst case keeps the TPR ratio unless the FPR one is smaller', () => {
    // FPR 0 in both groups → FPR ratio 0/0; TPR 1/2 and 1 → ratio 1/2
    near(equalizedOddsRatio([1, 1, 0, 1, 0], [1, 0, 0, 1, 0], ['a', 'a', 'a', 'b', 'b'], { agg: 'mean' }), 0.5);
    near(equalizedOddsRatio([1, 1, 0, 1, 0], [1, 0, 0, 1, 0], ['a', 'a', 'a', 'b', 'b']), 0.5);
  });

  it('refuses more than two labels', () => {
    expect(() => equalizedOddsDifference([0, 1, 2], [0, 1, 1], ['a', 'a', 'b'])).toThrow(/^equalizedOddsDifference: yTrue and yPred must hold at most two distinct labels, got 3/);
  });
});

// ---- counterfactual swaps ---------------------------------------------------------------------

const CHARS = ' abcdefghijklmnopqrstuvwxyz.';
const charTokenizer = { encode: (text: string) => [...text.toLowerCase()].map((c) => Math.max(0, CHARS.indexOf(c))) };
const V = CHARS.length;

/** A bigram model: logits[t] = TABLE[idx[t]], TABLE[i][j] = sin(i·V + j) (any fixed numbers). */
const TABLE = Array.from({ length: V }, (_, i) => Array.from({ length: V }, (_, j) => Math.sin(i * V + j)));
const bigram = {
  forward(idx: Tensor): Tensor {
    const ids = Array.from(idx.dataSync());
    return tensor(ids.flatMap((i) => TABLE[i]!), [1, ids.length, V], { backend: idx.backend.name });
  },
};
/** Σₜ log softmax(TABLE[x_{t−1}])[x_t] in f64, over t ≥ start (≥ 1). */
function bigramLogLik(text: string, prefix: number[] = []): number {
  const ids = [...prefix, ...charTokenizer.encode(text)];
  let ll = 0;
  for (let t = Math.max(1, prefix.length); t < ids.length; t++) {
    const row = TABLE[ids[t - 1]!]!;
    const m = Math.max(...row);
    ll += row[ids[t]!]! - m - Math.log(row.reduce((s, z) => s + Math.exp(z - m), 0));
  }
  return ll;
}

describe('counterfactualSwaps', () => {
  it('swaps whole words both ways, keeps case, and skips prompts without a term', async () => {
    const prompts = ['He said she was late.', 'Nothing here.', 'The theme is HIS.', 'her hat'];
    const r = await counterfactualSwaps(bigram, charTokenizer, prompts, [['he', 'she'], ['his', 'hers']]);
    expect(r.items.map((i) => i.swapped)).toEqual(['She said he was late.', 'The theme is HERS.']);
    expect(r.skipped).toEqual([1, 3]); // 'theme' and 'her' are not terms
    expect(r.items.map((i) => i.pairs)).toEqual([[0], [1]]);
  });

  it("swaps a term before an apostrophe: he's → she's", async () => {
    const r = await counterfactualSwaps(bigram, charTokenizer, ["He's late, isn't he?"], [['he', 'she']]);
    expect(r.items[0]!.swapped).toBe("She's late, isn't she?");
  });

  it('log-likelihoods, differences and means agree with a hand computation', async () => {
    const prompts = ['he is a doctor.', 'she is a nurse.', 'they left.', 'he and she met.'];
    const r = await counterfactualSwaps(bigram, charTokenizer, prompts, [['he', 'she']]);
    expect(r.items.length).toBe(3);
    const diffs: number[] = [];
    for (const it of r.items) {
      expect(Math.abs(it.originalLogLik - bigramLogLik(it.original))).toBeLessThan(1e-4); // f32 logits
      expect(Math.abs(it.swappedLogLik - bigramLogLik(it.swapped))).toBeLessThan(1e-4);
      expect(it.originalTokens).toBe(it.original.length - 1);
      expect(it.swappedTokens).toBe(it.swapped.length - 1);
      expect(it.difference).toBe(it.swappedLogLik - it.originalLogLik);
      diffs.push(it.difference);
    }
    expect(r.meanDifference).toBeCloseTo((diffs[0]! + diffs[1]! + diffs[2]!) / 3, 12);
    expect(r.meanAbsDifference).toBeCloseTo(diffs.reduce((s, d) => s + Math.abs(d), 0) / 3, 12);
    // by pair, oriented log p(with 'she') − log p(with 'he'): item 0 as is, item 1 negated, item 2 (both terms) left out
    expect(r.byPair[0]!.count).toBe(2);
    expect(r.byPair[0]!.meanDifference).toBeCloseTo((diffs[0]! - diffs[1]!) / 2, 12);
  });

  it('a prefix (BOS) is prepended and not scored, and the first text token then is', async () => {
    const r = await counterfactualSwaps(bigram, charTokenizer, ['he ran.'], [['he', 'she']], { prefix: [0] });
    const it = r.items[0]!;
    expect(it.originalTokens).toBe(7);
    expect(Math.abs(it.originalLogLik - bigramLogLik('he ran.', [0]))).toBeLessThan(1e-4);
  });

  it('an empty result has NaN means', async () => {
    const r = await counterfactualSwaps(bigram, charTokenizer, ['nobody'], [['he', 'she']]);
    expect(r.items).toEqual([]);
    expect(r.meanDifference).toBeNaN();
    expect(r.byPair[0]).toMatchObject({ count: 0 });
  });

  it('refuses a term in two pairs', async () => {
    await expect(counterfactualSwaps(bigram, charTokenizer, ['x'], [['his', 'her'], ['him', 'her']])).rejects.toThrow(/^counterfactualSwaps: 'her' is in pairs\[0\] and pairs\[1\]/);
  });
});

describeBackends('counterfactualSwaps with a GPT', (backend) => {
  it('scores as sequenceLogProbs does, in eval mode, and restores the mode', async () => {
    const gpt = new GPT({ vocabSize: V, blockSize: 32, nLayer: 1, nHead: 2, nEmbd: 16, dropout: 0.5, bias: true, tiedHead: true }, { backend, generator: new Generator(18) });
    gpt.train(true);
    const r = await counterfactualSwaps(gpt, charTokenizer, ['she sings.'], [['he', 'she']]);
    expect(gpt.training).toBe(true);
    gpt.train(false);
    for (const [text, ll] of [
      [r.items[0]!.original, r.items[0]!.originalLogLik],
      [r.items[0]!.swapped, r.items[0]!.swappedLogLik],
    ] as const) {
      const ids = charTokenizer.encode(text);
      const expected = noGrad(() => {
        const idx = tensor(ids.slice(0, -1), [1, ids.length - 1], { dtype: 'i32', backend });
        const labels = tensor(ids.slice(1), [1, ids.length - 1], { dtype: 'i32', backend });
        return sequenceLogProbs(gpt.forward(idx).logits, labels);
      });
      // the last position's logits do not count, so a forward on all but the last token gives the same sum
      expect(Math.abs(ll - (await expected.data())[0]!)).toBeLessThan(1e-3);
      expected.dispose();
    }
    expect(r.items[0]!.swapped).toBe('he sings.');
    gpt.dispose();
  });
});
