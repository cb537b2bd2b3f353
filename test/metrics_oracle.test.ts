/**
 * Metrics, part 3: seeded random cases against test/fixtures/metrics_oracle.json, written by
 * test/fixtures/metrics_oracle.py (plain Python 3 with numpy and `regex`; its docstring says where
 * each rule comes from). What the Python side checks here that hand examples cannot:
 * numpy.percentile itself; Python's own `re`, `str.split()`, `str.lower()` and `\b` semantics
 * on random Unicode strings (SQuAD normalisation, the 13a and international tokenisers), and an
 * implementation in another language of the BLEU, ROUGE and scikit-learn averaging rules.
 * Regenerate with: /usr/bin/python3 test/fixtures/metrics_oracle.py
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tensor } from '../src/index.js';
import {
  classificationReport,
  confusionMatrix,
  corpusBleu,
  exactMatch,
  normalizeAnswer,
  percentile,
  perplexityFromLogits,
  precisionRecallF1,
  rouge,
  tokenF1,
  tokenize13a,
  tokenizeIntl,
  topKAccuracy,
  type BleuOptions,
  type Label,
  type RougeScore,
} from '../src/metrics/index.js';
import { describeBackends } from './harness.js';

type Num = number | 'NaN';
interface PRFJ {
  precision: Num;
  recall: Num;
  f1: Num;
}
interface Oracle {
  percentile: { values: number[]; q: number[]; expected: number[] }[];
  perplexity: { shape: number[]; logits: number[]; targets: number[]; tokens: number; sumNll: number; perplexity: number }[];
  topk: { scores: number[][]; targets: number[]; expected: Record<string, number> }[];
  classification: {
    yTrue: Label[];
    yPred: Label[];
    labels: Label[] | null;
    zeroDivision: Num;
    beta: number;
    posLabel?: Label;
    expected: { micro: PRFJ; macro: PRFJ; weighted: PRFJ; binary?: PRFJ; confusion: number[][]; accuracy: number };
  }[];
  squad: {
    normalize: { input: string; expected: string }[];
    qa: { prediction: string; truths: string[]; em: number; f1: number }[];
  };
  tok13a: { input: string; expected: string }[];
  tokintl: { input: string; expected: string }[];
  bleu: {
    hyps: string[];
    refs: string[][];
    opts: BleuOptions;
    expected: { score: number; precisions: number[]; counts: number[]; totals: number[]; sysLen: number; refLen: number; bp: number };
  }[];
  rouge: { prediction: string; references: string[]; expected: Record<string, RougeScore> }[];
}

const ORACLE = JSON.parse(readFileSync(new URL('./fixtures/metrics_oracle.json', import.meta.url), 'utf8')) as Oracle;
const num = (x: Num): number => (x === 'NaN' ? NaN : x);

/** |a − e| ≤ 1e−12·max(1, |e|), NaN matching NaN. */
function near(a: number, e: number, what: string): void {
  if (Number.isNaN(e)) {
    expect(a, what).toBeNaN();
    return;
  }
  if (!(Math.abs(a - e) <= 1e-12 * Math.max(1, Math.abs(e)))) expect.fail(`${what}: got ${a}, expected ${e}`);
}

describe('oracle: numpy.percentile', () => {
  it(`agrees to the last bit on ${ORACLE.percentile.length} random samples`, () => {
    for (const c of ORACLE.percentile)
      c.q.forEach((q, i) => expect(percentile(c.values, q), `percentile(${JSON.stringify(c.values)}, ${q})`).toBe(c.expected[i]));
  });
});

describeBackends('oracle: perplexity of random logits (numpy float64 log-softmax)', (backend) => {
  it(`agrees on ${ORACLE.perplexity.length} cases with padding`, async () => {
    for (const c of ORACLE.perplexity) {
      const logits = tensor(Float64Array.from(c.logits), c.shape, { backend, dtype: 'f64' });
      const targets = tensor(Int32Array.from(c.targets), c.shape.slice(0, -1), { backend, dtype: 'i32' });
      const r = await perplexityFromLogits(logits, targets);
      logits.dispose();
      targets.dispose();
      expect(r.tokens).toBe(c.tokens);
      expect(Math.abs(r.sumNll - c.sumNll)).toBeLessThan(1e-9 * Math.max(1, Math.abs(c.sumNll)));
      expect(Math.abs(r.perplexity - c.perplexity)).toBeLessThan(1e-9 * c.perplexity);
    }
  });
}, { needs: ['f64'] });

describe('oracle: classification (scikit-learn definitions)', () => {
  it(`top-k agrees with numpy's stable argsort on ${ORACLE.topk.length} score matrices with ties`, () => {
    for (const c of ORACLE.topk)
      for (const [k, e] of Object.entries(c.expected)) near(topKAccuracy(c.targets, c.scores, { k: Number(k) }), e, `top-${k} ${JSON.stringify(c)}`);
  });

  it(`precision / recall / F-beta, averages, confusion matrices and accuracy agree on ${ORACLE.classification.length} cases`, () => {
    let binaries = 0;
    for (const c of ORACLE.classification) {
      const base = { zeroDivision: num(c.zeroDivision), beta: c.beta, ...(c.labels ? { labels: c.labels } : {}) };
      const what = JSON.stringify(c);
      for (const average of ['micro', 'macro', 'weighted'] as const) {
        const got = precisionRecallF1(c.yTrue, c.yPred, { ...base, average });
        const e = c.expected[average];
        near(got.precision, num(e.precision), `${average} precision ${what}`);
        near(got.recall, num(e.recall), `${average} recall ${what}`);
        near(got.f1, num(e.f1), `${average} f ${what}`);
      }
      const rep = classificationReport(c.yTrue, c.yPred, base);
      near(rep.macro.f1, num(c.expected.macro.f1), `report macro ${what}`);
      near(rep.weighted.recall, num(c.expected.weighted.recall), `report weighted ${what}`);
      near(rep.accuracy, c.expected.accuracy, `accuracy ${what}`);
      if (c.expected.binary) {
        binaries++;
        const b = precisionRecallF1(c.yTrue, c.yPred, { ...base, posLabel: c.posLabel! });
        near(b.precision, num(c.expected.binary.precision), `binary precision ${what}`);
        near(b.recall, num(c.expected.binary.recall), `binary recall ${what}`);
        near(b.f1, num(c.expected.binary.f1), `binary f ${what}`);
      }
      expect(confusionMatrix(c.yTrue, c.yPred, c.labels ? { labels: c.labels } : {}).matrix, what).toEqual(c.expected.confusion);
    }
    expect(binaries).toBeGreaterThan(3);
  });
});

describe("oracle: SQuAD v1.1 rules run with Python's re and str", () => {
  it(`normalisation agrees on ${ORACLE.squad.normalize.length} random Unicode strings`, () => {
    for (const c of ORACLE.squad.normalize) expect(normalizeAnswer(c.input), JSON.stringify(c.input)).toBe(c.expected);
  });

  it(`exact match and token F1 agree on ${ORACLE.squad.qa.length} questions with 1-3 answers`, () => {
    for (const c of ORACLE.squad.qa) {
      expect(exactMatch(c.prediction, c.truths), JSON.stringify(c)).toBe(c.em);
      near(tokenF1(c.prediction, c.truths), c.f1, JSON.stringify(c));
    }
  });
});

describe('oracle: BLEU', () => {
  it(`the 13a tokeniser agrees with Python's re on ${ORACLE.tok13a.length} random strings`, () => {
    for (const c of ORACLE.tok13a) expect(tokenize13a(c.input), JSON.stringify(c.input)).toBe(c.expected);
  });

  it(`the international tokeniser agrees with Python's regex on ${ORACLE.tokintl.length} random strings`, () => {
    for (const c of ORACLE.tokintl) expect(tokenizeIntl(c.input), JSON.stringify(c.input)).toBe(c.expected);
  });

  it(`corpus BLEU agrees on ${ORACLE.bleu.length} random corpora over all options`, () => {
    let nonzero = 0;
    for (const c of ORACLE.bleu) {
      const b = corpusBleu(c.hyps, c.refs, c.opts);
      const what = JSON.stringify(c);
      expect(b.counts, what).toEqual(c.expected.counts);
      expect(b.totals, what).toEqual(c.expected.totals);
      expect([b.sysLen, b.refLen], what).toEqual([c.expected.sysLen, c.expected.refLen]);
      near(b.bp, c.expected.bp, `bp ${what}`);
      b.precisions.forEach((p, i) => near(p, c.expected.precisions[i]!, `p${i + 1} ${what}`));
      near(b.score, c.expected.score, `score ${what}`);
      if (b.score > 0) nonzero++;
    }
    expect(nonzero).toBeGreaterThan(ORACLE.bleu.length / 3);
  });
});

describe('oracle: ROUGE', () => {
  it(`ROUGE-1/2/3/L/Lsum agree on ${ORACLE.rouge.length} random multi-reference cases`, () => {
    const types = ['rouge1', 'rouge2', 'rouge3', 'rougeL', 'rougeLsum'] as const;
    for (const c of ORACLE.rouge) {
      const got = rouge(c.prediction, c.references, { types });
      for (const t of types)
        for (const k of ['precision', 'recall', 'fmeasure'] as const) near(got[t][k], c.expected[t]![k], `${t}.${k} ${JSON.stringify(c)}`);
    }
  });
});
