/**
 * Metrics, part 1: perplexity, classification and the throughput meter.
 *
 * Sources of expected values:
 * - scikit-learn's documented examples (docstrings of accuracy_score, top_k_accuracy_score,
 *   precision_recall_fscore_support, f1_score, precision_score, confusion_matrix,
 *   classification_report), each recomputed by hand in a comment;
 * - numpy.percentile's documented example;
 * - hand computations shown step by step;
 * - random cases in test/fixtures/metrics_oracle.json (test/metrics_oracle.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { tensor, tidy, zeros } from '../src/index.js';
import {
  PerplexityMeter,
  ThroughputMeter,
  accuracy,
  argmaxRows,
  classificationReport,
  confusionMatrix,
  f1Score,
  percentile,
  perplexity,
  perplexityFromLogits,
  perplexityFromSum,
  precisionRecallF1,
  topKAccuracy,
} from '../src/metrics/index.js';
import { describeBackends, floatDtype, stored, syncReadable, liveTensors } from './harness.js';

const close = (a: number, e: number, digits = 12) => expect(a).toBeCloseTo(e, digits);

describe('perplexity', () => {
  it('is exp of the mean NLL: a uniform model over 7 classes has perplexity 7', () => {
    // NLL of every token = −log(1/7) = log 7, so exp(mean) = 7
    close(perplexity(Math.log(7)), 7);
    close(perplexityFromSum(3 * Math.log(7), 3), 7);
    expect(perplexity(0)).toBe(1);
    expect(perplexity(Infinity)).toBe(Infinity);
  });

  it('weights batches by tokens, not by batch', async () => {
    // batch 1: 2 tokens with NLL 1 and 3 (mean 2); batch 2: 6 tokens of NLL 0.5 (mean 0.5)
    // token-weighted mean = (1 + 3 + 6·0.5) / 8 = 7/8; the mean of batch means would be 1.25
    const m = new PerplexityMeter().addMean(2, 2).addSum(3, 6);
    const r = await m.result();
    close(r.nll, 7 / 8);
    close(r.perplexity, Math.exp(7 / 8));
    expect(r.tokens).toBe(8);
    close(r.sumNll, 7);
    m.reset();
    expect(m.count).toBe(0);
    await expect(m.result()).rejects.toThrow(/no tokens/);
  });

  it('rejects what is not an NLL or a count', () => {
    expect(() => perplexity(NaN)).toThrow(/perplexity: meanNll is NaN/);
    expect(() => perplexityFromSum(1, 0)).toThrow(/positive finite/);
    expect(() => new PerplexityMeter().addSum(1, -2)).toThrow(/PerplexityMeter.addSum: token count/);
    expect(() => perplexity('1' as unknown as number)).toThrow(/number or a one-element Tensor/);
  });
});

describeBackends('perplexity of kiln tensors', (backend) => {
  it('reads one-element tensors where the backend reads at once, and names the way otherwise', async () => {
    // f64, or f32 where f64 is not stored (the expected values are those of the stored logs)
    const dtype = floatDtype(backend);
    const [a, s, n, two] = tidy(() => [
      tensor([Math.log(5)], [1], { backend, dtype }),
      tensor(2 * Math.log(3), [], { backend, dtype }),
      tensor(2, [], { backend, dtype: 'i32' }),
      tensor([1, 2], [2], { backend }),
    ]);
    if (syncReadable(backend)) {
      close(perplexity(a!), Math.exp(stored(dtype)(Math.log(5))));
      close(perplexityFromSum(s!, n!), Math.exp(stored(dtype)(2 * Math.log(3)) / 2));
    } else expect(() => perplexity(a!)).toThrow(/perplexity: meanNll is on backend '.*', which cannot be read synchronously; pass .*await t\.data\(\)/);
    expect(() => perplexity(two!)).toThrow(/one-element tensor, got shape \[2\]/);
    for (const t of [a, s, n, two]) t!.dispose();
  });

  it('of uniform logits equals the vocabulary size, ignoring padded targets', async () => {
    // all-zero logits over V = 11 classes: p = 1/11 per token, so perplexity 11 whatever the targets
    const logits = zeros([2, 3, 11], { backend });
    const targets = tensor([4, 0, -100, 10, -100, 7], [2, 3], { backend, dtype: 'i32' });
    const padded = tensor(new Int32Array(6).fill(-1), [2, 3], { backend });
    const r = await perplexityFromLogits(logits, targets);
    expect(r.tokens).toBe(4);
    expect(r.perplexity).toBeCloseTo(11, 4);
    await expect(perplexityFromLogits(logits, padded, { ignoreIndex: -1 })).rejects.toThrow(/every target equals ignoreIndex -1/);
    for (const t of [logits, targets, padded]) t.dispose();
  });

  it('a meter sums loss tensors on the device and reads once, token-weighted', async () => {
    const m = new PerplexityMeter();
    const before = liveTensors();
    for (const [loss, n] of [[2, 2], [0.5, 6]] as const) {
      const l = tensor(loss, [], { backend });
      m.addMean(l, n);
      l.dispose();
    }
    m.addSum(1, 2); // host numbers mix with device sums
    expect(liveTensors()).toBe(before + 1); // the running sum
    const r = await m.result();
    close(r.sumNll, 2 * 2 + 0.5 * 6 + 1);
    expect(r.tokens).toBe(10);
    const nan = tensor(NaN, [], { backend });
    m.addMean(nan, 1);
    nan.dispose();
    await expect(m.result()).rejects.toThrow(/PerplexityMeter.result: the sum of the NLL tensors added is NaN/);
    m.reset();
    expect(liveTensors()).toBe(before);
  });
});

describe('accuracy and top-k', () => {
  it("matches sklearn's accuracy_score example", () => {
    // y_pred = [0, 2, 1, 3], y_true = [0, 1, 2, 3]: samples 0 and 3 right → 0.5, or 2 with normalize=False
    expect(accuracy([0, 1, 2, 3], [0, 2, 1, 3])).toBe(0.5);
    expect(accuracy([0, 1, 2, 3], [0, 2, 1, 3], { normalize: false })).toBe(2);
  });

  it("matches sklearn's top_k_accuracy_score example", () => {
    // rows (true class): [.5 .2 .2] (0) top-2 {0, 1}… true in; [.3 .4 .2] (1) top-2 {1, 0}: in;
    // [.2 .4 .3] (2) top-2 {1, 2}: in; [.7 .2 .1] (2) top-2 {0, 1}: out → 3/4
    const y = [0, 1, 2, 2];
    const s = [
      [0.5, 0.2, 0.2],
      [0.3, 0.4, 0.2],
      [0.2, 0.4, 0.3],
      [0.7, 0.2, 0.1],
    ];
    expect(topKAccuracy(y, s, { k: 2 })).toBe(0.75);
    expect(topKAccuracy(y, s, { k: 2, normalize: false })).toBe(3);
    // top-1: argmax rows are 0, 1, 1, 0 → right on rows 0 and 1
    expect(argmaxRows(s)).toEqual([0, 1, 1, 0]);
    expect(topKAccuracy(y, s)).toBe(0.5);
    expect(topKAccuracy(y, s, { k: 3 })).toBe(1);
  });

  it('breaks ties toward the lower class index, as argmax', () => {
    // row [1, 1, 0]: class 0 ranks first, class 1 second
    expect(topKAccuracy([0], [[1, 1, 0]])).toBe(1);
    expect(topKAccuracy([1], [[1, 1, 0]])).toBe(0);
    expect(topKAccuracy([1], [[1, 1, 0]], { k: 2 })).toBe(1);
    expect(argmaxRows([[1, 1, 0]])).toEqual([0]);
  });

  it('rejects bad input with the problem named', () => {
    expect(() => accuracy([0, 1], [0])).toThrow(/accuracy: yTrue has 2 labels but yPred has 1/);
    expect(() => accuracy([], [])).toThrow(/no samples/);
    expect(() => accuracy([0, '1'], [0, 1])).toThrow(/mix numbers and strings/);
    expect(() => topKAccuracy([3], [[1, 2]])).toThrow(/target 3 at sample 0 is not a class index in \[0, 2\)/);
    expect(() => topKAccuracy([0], [[NaN, 1]])).toThrow(/NaN score/);
    expect(() => topKAccuracy([0], [[1, 2]], { k: 0 })).toThrow(/k must be an integer ≥ 1, got 0/);
    expect(() => topKAccuracy([0, 1], [[1, 2]])).toThrow(/2 targets but 1 rows/);
  });
});

describeBackends('top-k accuracy on language-model tensors', (backend) => {
  it('flattens [B, T, V] logits against [B, T] targets and skips ignoreIndex', () => {
    tidy(() => {
      // B = 1, T = 3, V = 3; argmax per position: 2, 0, 1; targets 2, 1, −100 → 1 of 2 counted right
      const logits = tensor([0, 1, 5, 9, 2, 3, 0, 4, 1], [1, 3, 3], { backend });
      const targets = tensor([2, 1, -100], [1, 3], { backend, dtype: 'i32' });
      if (!syncReadable(backend)) {
        // metrics compute on the host: tensors the host cannot read at once must be read by the caller
        expect(() => topKAccuracy(targets, logits)).toThrow(/^topKAccuracy: scores is on backend '.*', which cannot be read synchronously; pass Array\.from\(await t\.data\(\)\) instead/);
        expect(() => argmaxRows(logits)).toThrow(/^argmaxRows: scores is on backend/);
        expect(() => accuracy(tensor([2, 0, 1], [3], { backend, dtype: 'i32' }), [2, 0, 0])).toThrow(/^accuracy: yTrue is on backend/);
        return;
      }
      expect(topKAccuracy(targets, logits, { ignoreIndex: -100 })).toBe(0.5);
      // k = 2 at position 1: scores [9, 2, 3] → top-2 {0, 2}, target 1 still out
      expect(topKAccuracy(targets, logits, { ignoreIndex: -100, k: 2 })).toBe(0.5);
      expect(argmaxRows(logits)).toEqual([2, 0, 1]);
      expect(() => topKAccuracy(tensor([1, 2], [2], { backend, dtype: 'i32' }), logits)).toThrow(/must be targets \[2\] plus a class axis/);
      // predicted labels as an i32 tensor
      expect(accuracy(tensor([2, 0, 1], [3], { backend, dtype: 'i32' }), [2, 0, 0])).toBeCloseTo(2 / 3, 12);
    });
  });
});

describe('precision, recall, F1', () => {
  // sklearn's precision_recall_fscore_support example. Per class (TP, FP, FN):
  //   cat (2, 1, 0): P 2/3, R 1, F 0.8;  dog (0, 1, 2): 0, 0, 0;  pig (0, 1, 2): 0, 0, 0
  // macro: P 2/9 = 0.222…, R 1/3, F 0.8/3 = 0.266…; micro: TP 2, FP 4, FN 4 → 1/3 each;
  // weighted by support (2, 2, 2) = macro here
  const animalsTrue = ['cat', 'dog', 'pig', 'cat', 'dog', 'pig'];
  const animalsPred = ['cat', 'pig', 'dog', 'cat', 'cat', 'dog'];

  it("matches sklearn's precision_recall_fscore_support example (strings)", () => {
    const macro = precisionRecallF1(animalsTrue, animalsPred, { average: 'macro' });
    close(macro.precision, 2 / 9);
    close(macro.recall, 1 / 3);
    close(macro.f1, 0.8 / 3);
    const micro = precisionRecallF1(animalsTrue, animalsPred, { average: 'micro' });
    close(micro.precision, 1 / 3);
    close(micro.recall, 1 / 3);
    close(micro.f1, 1 / 3);
    const weighted = precisionRecallF1(animalsTrue, animalsPred, { average: 'weighted' });
    close(weighted.precision, 2 / 9);
    close(weighted.recall, 1 / 3);
    close(weighted.f1, 0.8 / 3);
  });

  it("matches sklearn's f1_score and precision_score examples", () => {
    // y_true = [0, 1, 2, 0, 1, 2], y_pred = [0, 2, 1, 0, 0, 1]: the same counts as the animals
    const t = [0, 1, 2, 0, 1, 2];
    const p = [0, 2, 1, 0, 0, 1];
    close(f1Score(t, p, { average: 'macro' }), 0.8 / 3); // 0.26…
    close(f1Score(t, p, { average: 'micro' }), 1 / 3); // 0.33…
    close(f1Score(t, p, { average: 'weighted' }), 0.8 / 3); // 0.26…
    const r = classificationReport(t, p);
    expect(r.f1).toEqual([0.8, 0, 0]); // average=None → [0.8, 0, 0]
    expect(r.precision).toEqual([2 / 3, 0, 0]); // precision_score(average=None) → [0.66…, 0, 0]
    expect(r.recall).toEqual([1, 0, 0]);
    expect(r.support).toEqual([2, 2, 2]);
  });

  it("matches sklearn's zero_division examples", () => {
    // y_pred all 0: class 0 has TP 2, FP 4 → P 1/3; classes 1 and 2 are never predicted (0/0)
    const t = [0, 1, 2, 0, 1, 2];
    const p = [0, 0, 0, 0, 0, 0];
    expect(classificationReport(t, p).precision).toEqual([1 / 3, 0, 0]);
    expect(classificationReport(t, p, { zeroDivision: 1 }).precision).toEqual([1 / 3, 1, 1]);
    const nan = classificationReport(t, p, { zeroDivision: NaN }).precision;
    expect(nan[0]).toBe(1 / 3);
    expect(nan[1]).toBeNaN();
    expect(nan[2]).toBeNaN();
    // NaN entries leave the average: macro precision over class 0 alone = 1/3
    close(precisionRecallF1(t, p, { average: 'macro', zeroDivision: NaN }).precision, 1 / 3);
    // binary, no positive anywhere (f1_score's y_true_empty example): TP = FP = FN = 0 → zero_division
    const zeros6 = [0, 0, 0, 0, 0, 0];
    expect(f1Score(zeros6, zeros6)).toBe(0);
    expect(f1Score(zeros6, zeros6, { zeroDivision: 1 })).toBe(1);
    expect(f1Score(zeros6, zeros6, { zeroDivision: NaN })).toBeNaN();
  });

  it("matches sklearn's classification_report example", () => {
    // y_true = [0, 1, 2, 2, 2], y_pred = [0, 0, 2, 2, 1]
    // class 0 (TP 1, FP 1, FN 0): .50 1.00 .67; class 1 (0, 1, 1): 0 0 0; class 2 (2, 0, 1): 1.00 .67 .80
    // accuracy .60; macro .50 .56 .49; weighted (1, 1, 3)/5: .70 .60 .61
    const r = classificationReport([0, 1, 2, 2, 2], [0, 0, 2, 2, 1]);
    const two = (x: number) => Number(x.toFixed(2));
    expect(r.precision.map(two)).toEqual([0.5, 0, 1]);
    expect(r.recall.map(two)).toEqual([1, 0, 0.67]);
    expect(r.f1.map(two)).toEqual([0.67, 0, 0.8]);
    expect(r.support).toEqual([1, 1, 3]);
    expect(two(r.accuracy)).toBe(0.6);
    expect([r.macro.precision, r.macro.recall, r.macro.f1].map(two)).toEqual([0.5, 0.56, 0.49]);
    expect([r.weighted.precision, r.weighted.recall, r.weighted.f1].map(two)).toEqual([0.7, 0.6, 0.61]);
    // micro over all classes = accuracy
    close(r.micro.f1, 0.6);
    expect(r.tp).toEqual([1, 0, 2]);
    expect(r.fp).toEqual([1, 1, 0]);
    expect(r.fn).toEqual([0, 1, 1]);
  });

  it('binary uses posLabel and F-beta weights recall', () => {
    // y_true = [1, 1, 0, 1, 0], y_pred = [1, 0, 1, 1, 0] with positive 1: TP 2, FP 1, FN 1
    // P = 2/3, R = 2/3, F1 = 2/3; F2 = 5·2 / (5·2 + 4·1 + 1) = 10/15
    const t = [1, 1, 0, 1, 0];
    const p = [1, 0, 1, 1, 0];
    const b = precisionRecallF1(t, p);
    close(b.precision, 2 / 3);
    close(b.recall, 2 / 3);
    close(b.f1, 2 / 3);
    close(f1Score(t, p, { beta: 2 }), 10 / 15);
    // positive 0: TP 1, FP 1, FN 1 → 1/2 each
    close(f1Score(t, p, { posLabel: 0 }), 0.5);
    // booleans as labels
    close(f1Score(t.map(Boolean), p.map(Boolean), { posLabel: true }), 2 / 3);
    // F0.5 with P = 1, R = 1/2 (TP 1, FP 0, FN 1): 1.25·1 / (1.25·1 + 0.25·1 + 0) = 1.25/1.5
    close(f1Score([1, 1], [1, 0], { beta: 0.5 }), 1.25 / 1.5);
  });

  it('rejects binary averaging of more than two classes, and an absent posLabel', () => {
    expect(() => precisionRecallF1([0, 1, 2], [0, 1, 2])).toThrow(/3 classes present but average is 'binary'/);
    expect(() => precisionRecallF1(['a', 'b'], ['a', 'b'])).toThrow(/posLabel 1 is not one of the labels \[a, b\]/);
    expect(() => precisionRecallF1([0, 1], [0, 1], { average: 'mean' as 'macro' })).toThrow(/unknown average 'mean'/);
    expect(() => precisionRecallF1([0, 1], [0, 1], { zeroDivision: 0.5 })).toThrow(/zeroDivision must be 0, 1 or NaN/);
    expect(() => precisionRecallF1([0, 1], [0, 1], { average: 'macro', labels: [0, 0] })).toThrow(/duplicates/);
  });

  it('labels restricts and orders the classes; absent labels score zeroDivision', () => {
    // animals with labels [pig, cat, zebra]: per class pig 0/0/0, cat .667/1/.8, zebra P 0/0 R 0/0 F 0/0
    const r = classificationReport(animalsTrue, animalsPred, { labels: ['pig', 'cat', 'zebra'] });
    expect(r.labels).toEqual(['pig', 'cat', 'zebra']);
    expect(r.f1).toEqual([0, 0.8, 0]);
    expect(r.support).toEqual([2, 2, 0]);
    // micro over these labels: TP 2 (cat), FP 1 (pig: predicted for a dog) + 1 (cat: predicted for a dog) = 2, FN 2 (pigs) + 0
    close(r.micro.precision, 2 / 4);
    close(r.micro.recall, 2 / 4);
    // weighted: (2·0 + 2·0.8 + 0·0) / 4 = 0.4
    close(r.weighted.f1, 0.4);
  });
});

describe('confusion matrix', () => {
  it("matches sklearn's confusion_matrix examples", () => {
    // y_true = [2, 0, 2, 2, 0, 1], y_pred = [0, 0, 2, 2, 0, 2] → [[2, 0, 0], [0, 0, 1], [1, 0, 2]]
    expect(confusionMatrix([2, 0, 2, 2, 0, 1], [0, 0, 2, 2, 0, 2]).matrix).toEqual([
      [2, 0, 0],
      [0, 0, 1],
      [1, 0, 2],
    ]);
    const cm = confusionMatrix(['cat', 'ant', 'cat', 'cat', 'ant', 'bird'], ['ant', 'ant', 'cat', 'cat', 'ant', 'cat'], {
      labels: ['ant', 'bird', 'cat'],
    });
    expect(cm.matrix).toEqual([
      [2, 0, 0],
      [0, 0, 1],
      [1, 0, 2],
    ]);
    // binary: tn, fp, fn, tp = confusion_matrix([0, 1, 0, 1], [1, 1, 1, 0]).ravel() → (0, 2, 1, 1)
    expect(confusionMatrix([0, 1, 0, 1], [1, 1, 1, 0]).matrix.flat()).toEqual([0, 2, 1, 1]);
  });

  it('ignores samples outside labels', () => {
    // labels [1, 0]: the pair (2, 0) is dropped; rows/cols in the given order
    const cm = confusionMatrix([0, 1, 2, 1], [0, 0, 0, 1], { labels: [1, 0] });
    expect(cm.matrix).toEqual([
      [1, 1],
      [0, 1],
    ]);
  });
});

describe('percentile and the throughput meter', () => {
  it("matches numpy.percentile's documented example", () => {
    // a = [[10, 7, 4], [3, 2, 1]]; np.percentile(a, 50) → 3.5 (sorted 1 2 3 4 7 10, h = 2.5)
    expect(percentile([10, 7, 4, 3, 2, 1], 50)).toBe(3.5);
    // hand: sorted [1, 2, 3, 4], q = 90 → h = 3·0.9 = 2.7 → 3 + 0.7·(4 − 3) = 3.7
    expect(percentile([4, 1, 3, 2], 90)).toBeCloseTo(3.7, 14);
    expect(percentile([5], 99)).toBe(5);
    expect(() => percentile([], 50)).toThrow(/no values/);
    expect(() => percentile([1], 101)).toThrow(/q must be a number in \[0, 100\], got 101/);
    expect(() => percentile([1, NaN], 50)).toThrow(/value 1 is NaN/);
  });

  it('reports tokens/s, ms per step and percentiles, skipping warm-up steps', () => {
    // a fake clock: steps take 100 (warm-up), 10, 20, 30, 40 ms, each 50 tokens
    let t = 0;
    const m = new ThroughputMeter({ warmup: 1, now: () => t });
    for (const ms of [100, 10, 20, 30, 40]) {
      m.start();
      t += ms;
      expect(m.stop(50)).toBe(ms);
    }
    const s = m.summary();
    // counted: 10, 20, 30, 40 ms → total 100 ms, 200 tokens → 2000 tokens/s, 40 steps/s
    expect(s.steps).toBe(4);
    expect(s.skipped).toBe(1);
    expect(s.totalMs).toBe(100);
    expect(s.totalTokens).toBe(200);
    expect(s.tokensPerSecond).toBe(2000);
    expect(s.stepsPerSecond).toBe(40);
    // mean 25; median h = 1.5 → 20 + 0.5·10 = 25; p90 h = 2.7 → 30 + 0.7·10 = 37; p99 h = 2.97 → 39.7
    expect(s.msPerStep.mean).toBe(25);
    expect(s.msPerStep.median).toBe(25);
    expect(s.msPerStep.p50).toBe(25);
    expect(s.msPerStep.p90).toBeCloseTo(37, 12);
    expect(s.msPerStep.p99).toBeCloseTo(39.7, 12);
    expect(s.msPerStep.min).toBe(10);
    expect(s.msPerStep.max).toBe(40);
    expect(m.durations).toEqual([10, 20, 30, 40]);
    expect(m.percentile(0)).toBe(10);
  });

  it('records external timings and measures sync and async functions', async () => {
    let t = 0;
    const m = new ThroughputMeter({ now: () => t });
    m.record(4, 8);
    expect(m.measure(() => ((t += 6), 'x'), 12)).toBe('x');
    const v = await m.measure(async () => {
      await Promise.resolve();
      t += 10;
      return 7;
    }, 20);
    expect(v).toBe(7);
    // 4 + 6 + 10 = 20 ms for 40 tokens → 2000 tokens/s
    expect(m.summary().tokensPerSecond).toBe(2000);
    expect(() => m.measure(() => {
      throw new Error('boom');
    })).toThrow('boom');
    m.start(); // the failed measure left no step running
    expect(() => m.start()).toThrow(/already running/);
    m.reset();
    expect(() => m.stop()).toThrow(/no step is running/);
    expect(() => m.summary()).toThrow(/no steps counted \(0 recorded, warm-up 0\)/);
    expect(() => m.record(-1)).toThrow(/ms must be a number ≥ 0, got -1/);
    expect(() => new ThroughputMeter({ warmup: 1.5 })).toThrow(/warmup must be an integer ≥ 0, got 1.5/);
  });

  it('times real work with the default clock', () => {
    const m = new ThroughputMeter();
    m.measure(() => {
      let x = 0;
      for (let i = 0; i < 1e5; i++) x += i;
      return x;
    }, 1000);
    const s = m.summary();
    expect(s.steps).toBe(1);
    expect(s.totalMs).toBeGreaterThanOrEqual(0);
    expect(s.tokensPerSecond).toBeGreaterThan(0);
  });
});
