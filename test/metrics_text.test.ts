/**
 * Metrics, part 2: BLEU, ROUGE and SQuAD exact match / token F1.
 *
 * Sources of expected values:
 * - BLEU: sacreBLEU's README example (BLEU = 48.53 82.4/50.0/45.5/37.5, BP = 0.943, ratio =
 *   0.944, hyp_len = 17, ref_len = 18) and the cases of its test suite, test/test_bleu.py and
 *   test/test_sentence_bleu.py (github.com/mjpost/sacrebleu), quoted with their tolerances; the
 *   README numbers are also recomputed by hand below.
 * - ROUGE: the cases of rouge-score's rouge/rouge_scorer_test.py (github.com/google-research/
 *   google-research), including its ROUGE-1.5.5 agreement cases on the first two lines of
 *   rouge/testdata/{target,prediction}.txt, copied below.
 * - SQuAD: hand computations following the v1.1 evaluation script's rules.
 * - Random cases: test/fixtures/metrics_oracle.json (see test/metrics_oracle.test.ts).
 */
import { describe, expect, it } from 'vitest';
import {
  computeBleu,
  corpusBleu,
  corpusRouge,
  exactMatch,
  lcsLength,
  normalizeAnswer,
  rouge,
  rougeTokenize,
  sentenceBleu,
  squadScores,
  tokenF1,
  tokenize13a,
  tokenizeChars,
  tokenizeIntl,
  type BleuOptions,
} from '../src/metrics/index.js';

const close = (a: number, e: number, digits = 12) => expect(a).toBeCloseTo(e, digits);
const prf = (s: { precision: number; recall: number; fmeasure: number }, p: number, r: number, f: number, digits = 12) => {
  close(s.precision, p, digits);
  close(s.recall, r, digits);
  close(s.fmeasure, f, digits);
};

// sacreBLEU README / test_bleu.py corpus. sacreBLEU lists references as streams (refs[k][i]);
// kiln takes them per hypothesis, so the test transposes.
const STREAMS = [
  ['The dog bit the man.', 'It was not unexpected.', 'The man bit him first.'],
  ['The dog had bit the man.', 'No one was surprised.', 'The man had bitten the dog.'],
];
const HYPS = ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'];
const REFS = HYPS.map((_, i) => STREAMS.map((s) => s[i]!));

describe('BLEU: sacreBLEU published values', () => {
  it('reproduces the README example with every reported field', () => {
    // By hand, after 13a tokenisation:
    //   h1 "The dog bit the man ." (6); refs 6 and 7 tokens → closest 6
    //   h2 "It wasn't surprising ." (4); refs "It was not unexpected ." 5, "No one was surprised ." 5 → 5
    //   h3 "The man had just bitten him ." (7); refs 6 and 7 → 7
    //   sysLen 17, refLen 18, BP = exp(1 − 18/17) = 0.94287
    // matches / n-grams:   1-grams   2-grams   3-grams   4-grams
    //   h1 (identical)       6/6       5/5       4/4       3/3
    //   h2 (It, .)           2/4       0/3       0/2       0/1
    //   h3 (all but "just")  6/7       2/6       1/5       0/4      ("The man", "man had"; "The man had")
    //   corpus             14/17      7/14      5/11      3/8
    // BLEU = 100 · 0.94287 · (14/17 · 7/14 · 5/11 · 3/8)^(1/4) = 48.53
    const b = corpusBleu(HYPS, REFS);
    expect(Math.abs(b.score - 48.530827)).toBeLessThan(1e-6); // test_bleu.py: EPSILON 1e-8 on score/100
    expect(b.counts).toEqual([14, 7, 5, 3]);
    expect(b.totals).toEqual([17, 14, 11, 8]);
    expect(b.precisions.map((p) => p.toFixed(1))).toEqual(['82.4', '50.0', '45.5', '37.5']);
    expect(b.bp.toFixed(3)).toBe('0.943');
    expect(b.ratio.toFixed(3)).toBe('0.944');
    expect(b.sysLen).toBe(17);
    expect(b.refLen).toBe(18);
    expect(b.bp).toBeCloseTo(Math.exp(1 - 18 / 17), 14);
    expect(b.score).toBeCloseTo(100 * Math.exp(1 - 18 / 17) * ((14 / 17) * (7 / 14) * (5 / 11) * (3 / 8)) ** 0.25, 10);
  });

  it("matches test_bleu.py's corpus cases", () => {
    const cases: [string[], BleuOptions, number][] = [
      [HYPS, {}, 48.530827],
      [['', '', ''], {}, 0], // empty hypotheses are kept, not removed
      [HYPS, { tokenize: 'none' }, 49.1919566],
      [HYPS, { tokenize: '13a' }, 48.530827],
      [HYPS, { tokenize: 'intl' }, 43.91623493],
      [HYPS, { smooth: 'none' }, 48.530827],
    ];
    for (const [h, opts, expected] of cases) expect(Math.abs(corpusBleu(h, REFS, opts).score - expected)).toBeLessThan(1e-6);
  });

  it("matches test_bleu.py's max n-gram order cases (2 decimals)", () => {
    const expected = ['77.65', '60.50', '53.93', '48.53', '46.14', '43.28'];
    expected.forEach((e, i) => expect(corpusBleu(HYPS, REFS, { maxOrder: i + 1 }).score.toFixed(2)).toBe(e));
  });

  // sacreBLEU's raw_corpus_bleu: tokenize 'none', smoothing 'floor' with the given value, effective order
  const raw = (h: string[], r: string[], smoothValue?: number) =>
    corpusBleu(h, r, { tokenize: 'none', smooth: 'floor', smoothValue, effectiveOrder: true }).score / 100;

  it("matches test_bleu.py's raw BLEU, statistics, offset and effective-order cases", () => {
    expect(raw(['this is a test', 'another test'], ['ref1', 'ref2'], 0.01)).toBe(0); // no match at all → 0 (#141)
    expect(Math.abs(raw(['this is a test'], ['this is a test'], 0.01) - 1)).toBeLessThan(1e-8);
    expect(Math.abs(raw(['this is a fest'], ['this is a test'], 0.01) - 0.223606797749979)).toBeLessThan(1e-8);

    const stats = corpusBleu(['am I am a character sequence'], ['I am a symbol string sequence a a'], { tokenize: 'none', smooth: 'floor', smoothValue: 0.01, effectiveOrder: true });
    expect(stats.counts).toEqual([4, 2, 1, 0]);
    expect(stats.totals).toEqual([6, 5, 4, 3]);
    expect(Math.abs(raw(['am I am a character sequence'], ['I am a symbol string sequence a a']) - 0.1555722182)).toBeLessThan(1e-8); // floor default 0.1
    expect(raw(['am I am a character sequence'], ['I am a symbol string sequence a a'], 0)).toBe(0);

    expect(Math.abs(raw(['test'], ['a test'], 0.01) - 0.3678794411714425)).toBeLessThan(1e-8);
    expect(Math.abs(raw(['a test'], ['a test'], 0.01) - 1)).toBeLessThan(1e-8);
    expect(Math.abs(raw(['a little test'], ['a test'], 0.01) - 0.03218297948685433)).toBeLessThan(1e-8);
  });

  it("matches test_bleu.py's scoring and degenerate-statistics cases", () => {
    const s = computeBleu({ counts: [9, 7, 5, 3], totals: [10, 8, 6, 4], sysLen: 11, refLen: 11 }, { smooth: 'none' });
    expect(Math.abs(s.score / 100 - 0.8375922397)).toBeLessThan(1e-8);
    const degenerate: [number[], number[], number, number, number][] = [
      [[0, 0, 0, 0], [4, 4, 2, 1], 0, 1, 0.0],
      [[0, 0, 0, 0], [10, 11, 12, 0], 14, 10, 0.0],
      [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.0],
      [[6, 5, 4, 0], [6, 5, 4, 3], 6, 6, 0.0],
      [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.1],
      [[0, 0, 0, 0], [0, 0, 0, 0], 1, 5, 0.01],
    ];
    for (const [counts, totals, sysLen, refLen, floor] of degenerate)
      expect(computeBleu({ counts, totals, sysLen, refLen }, { smooth: 'floor', smoothValue: floor }).score).toBe(0);
  });

  it("matches test_sentence_bleu.py's smoothing and tokeniser cases (issue #98 example)", () => {
    // Romanian with t-cedilla (U+0163) in the reference and t-comma (U+021B) in the hypothesis
    const REF = 'produc\u0163ia de zah\u0103r brut se exprim\u0103 \u00een zah\u0103r alb;';
    const SYS = 'Produc\u021bia de zah\u0103r prim\u0103 va fi exprimat\u0103 \u00een ceea ce prive\u0219te zah\u0103rul alb;';
    const cases: [BleuOptions, number][] = [
      [{ smooth: 'exp' }, 8.493],
      [{ smooth: 'none' }, 0.0],
      [{ smooth: 'floor' }, 4.51688],
      [{ smooth: 'floor', smoothValue: 0.1 }, 4.51688],
      [{ smooth: 'floor', smoothValue: 0.5 }, 10.1],
      [{ smooth: 'add-k' }, 14.882],
      [{ smooth: 'add-k', smoothValue: 1 }, 14.882],
      [{ smooth: 'add-k', smoothValue: 2 }, 21.389],
      [{ tokenize: 'none' }, 7.347],
      [{ tokenize: 'intl' }, 8.493],
      [{ tokenize: 'char' }, 40.8759],
      [{ tokenize: 'char', lowercase: true }, 42.0267],
    ];
    for (const [opts, expected] of cases)
      expect(Math.abs(sentenceBleu(SYS, [REF], { ...opts, effectiveOrder: true }).score - expected), JSON.stringify(opts)).toBeLessThan(1e-3);
    // issue #141: no match at all is 0 whatever the smoothing
    for (const smooth of ['exp', 'none', 'floor', 'add-k'] as const)
      expect(sentenceBleu('this is a cat', ['okay thanks'], { smooth, effectiveOrder: true }).score).toBe(0);
  });
});

describe('BLEU: rules by hand', () => {
  it('clips each n-gram to its largest count in any single reference', () => {
    // Papineni et al.'s example: "the the the the the the the" vs refs with 2 and 1 "the" → unigram 2/7
    const b = corpusBleu(['the the the the the the the'], [['the cat is on the mat', 'there is a cat on the mat']], { tokenize: 'none', maxOrder: 1 });
    expect(b.counts).toEqual([2]);
    expect(b.totals).toEqual([7]);
    close(b.precisions[0]!, (100 * 2) / 7);
  });

  it('takes the closest reference length, the shorter on ties', () => {
    // hyp 4 tokens; refs of 3 and 5 tokens are equally close → 3 (so BP = 1); refs 2 and 6 → 2 (ties, shorter)
    const lens = (refs: string[]) => corpusBleu(['a b c d'], [refs], { tokenize: 'none' }).refLen;
    expect(lens(['a b c', 'a b c d e'])).toBe(3);
    expect(lens(['a b c d e', 'a b c'])).toBe(3);
    expect(lens(['a b', 'a b c d e f'])).toBe(2);
    expect(lens(['a b c d e f g', 'a b c d e'])).toBe(5);
    // BP: hyp 2 tokens vs ref 4 → exp(1 − 4/2) = e^−1
    close(corpusBleu(['a b'], ['a b c d'], { tokenize: 'none' }).bp, Math.exp(-1));
  });

  it("smooths zero counts as sacreBLEU's 'exp', 'floor' and 'add-k' do", () => {
    // hyp "a b c x" vs ref "a b c d": counts [3, 2, 1, 0], totals [4, 3, 2, 1], lengths equal → BP 1
    const run = (o: BleuOptions) => corpusBleu(['a b c x'], ['a b c d'], { tokenize: 'none', ...o });
    // exp: p4 = 1/(2·1) → 100·(3/4 · 2/3 · 1/2 · 1/2)^(1/4) = 100·(1/8)^(1/4)
    close(run({}).score, 100 * (1 / 8) ** 0.25, 10);
    expect(run({}).precisions).toEqual([75, (100 * 2) / 3, 50, 50]);
    // floor 0.1: p4 = 0.1/1 → 100·(3/4 · 2/3 · 1/2 · 0.1)^(1/4)
    close(run({ smooth: 'floor' }).score, 100 * (0.025) ** 0.25, 10);
    // add-k 1 (orders ≥ 2): p = 3/4, 3/4, 2/3, 1/2
    close(run({ smooth: 'add-k' }).score, 100 * ((3 / 4) * (3 / 4) * (2 / 3) * (1 / 2)) ** 0.25, 10);
    expect(run({ smooth: 'none' }).score).toBe(0);
    // effective order with 'none': the 4-gram total is 1 > 0, so it still counts → 0
    expect(run({ smooth: 'none', effectiveOrder: true }).score).toBe(0);
    // a 2-token hypothesis has no 3- or 4-grams: effective order 2 → 100·(1 · 1)^(1/2) = 100 against itself
    close(corpusBleu(['a b'], ['a b'], { tokenize: 'none', effectiveOrder: true }).score, 100, 10);
    // without it the missing orders have precision 0 → 0
    expect(corpusBleu(['a b'], ['a b'], { tokenize: 'none', smooth: 'none' }).score).toBe(0);
  });

  it('tokenises with mteval-v13a rules', () => {
    expect(tokenize13a("It wasn't surprising.")).toBe("It wasn't surprising .");
    // numbers keep their separators; a dash after a digit splits; an apostrophe and a word-internal hyphen stay
    expect(tokenize13a('1,000.50 and 3-4 x-ray, (ok)!')).toBe('1,000.50 and 3 - 4 x-ray , ( ok ) !');
    expect(tokenize13a('a &quot;b&quot; &amp; c&lt;d&gt; <skipped>e')).toBe('a " b " & c < d > e');
    expect(tokenize13a('line-\nbreak\nnext')).toBe('linebreak next');
    expect(tokenize13a('end.')).toBe('end .');
    expect(tokenizeChars('ab c')).toBe('a b c');
    // intl: punctuation split unless beside a number; symbols (€, +) always
    expect(tokenizeIntl('Preis: 3,50€ + «x».')).toBe('Preis : 3,50 € + « x » .');
  });

  it('lower-cases, accepts a custom tokeniser and validates input', () => {
    expect(corpusBleu(['THE CAT'], ['the cat'], { lowercase: true, effectiveOrder: true }).score).toBeCloseTo(100, 10);
    expect(corpusBleu(['the|cat'], ['the cat'], { tokenize: (s) => s.replace('|', ' '), effectiveOrder: true }).score).toBeCloseTo(100, 10);
    expect(() => corpusBleu(['a'], [])).toThrow(/corpusBleu: 1 hypotheses but 0 reference lists/);
    expect(() => corpusBleu(['a'], [[]])).toThrow(/corpusBleu: references\[0\] must be a string or a non-empty array of strings, got \[\]/);
    expect(() => corpusBleu([], [])).toThrow(/corpusBleu: no hypotheses/);
    expect(() => corpusBleu(['a'], ['a'], { smooth: 'bogus' as 'exp' })).toThrow(/unknown smoothing 'bogus'/);
    expect(() => corpusBleu(['a'], ['a'], { tokenize: 'zh' as '13a' })).toThrow(/unknown tokenizer 'zh'/);
    expect(() => corpusBleu(['a'], ['a'], { maxOrder: 0 })).toThrow(/maxOrder must be an integer ≥ 1, got 0/);
    expect(() => computeBleu({ counts: [1], totals: [1, 2], sysLen: 1, refLen: 1 })).toThrow(/stats.counts has 1 entries but stats.totals has 2/);
  });
});

// rouge-score's rouge/testdata/target.txt and prediction.txt, lines 1 and 2 (random text on purpose)
const TARGETS = [
  "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr q'wtion wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n",
  "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion gMPfJpwGw p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n",
];
const PREDICTIONS = [
  "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi\n",
  "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n",
];

describe('ROUGE: rouge-score published values', () => {
  it("matches rouge_scorer_test.py's small cases", () => {
    // score(target, prediction) there; rouge(prediction, reference) here
    prf(rouge('testing', 'testing one two', { types: ['rouge1'] }).rouge1, 1, 1 / 3, 1 / 2);
    prf(rouge('testing one', 'testing one two', { types: ['rouge2'] }).rouge2, 1, 1 / 2, 2 / 3);
    prf(rouge('testing one', 'testing one two', { types: ['rougeL'] }).rougeL, 1, 2 / 3, 4 / 5);
    prf(rouge('testing two', 'testing one two', { types: ['rougeL'] }).rougeL, 1, 2 / 3, 4 / 5);
    const both = rouge('testing one', 'testing one two', { types: ['rouge1', 'rougeL'] });
    expect(Object.keys(both).sort()).toEqual(['rouge1', 'rougeL']);
    prf(both.rouge1, 1, 2 / 3, 4 / 5);
    for (const t of ['rouge1', 'rouge2', 'rougeL', 'rougeLsum'] as const) prf(rouge('', 'testing one two', { types: [t] })[t], 0, 0, 0);
  });

  it("matches rouge_scorer_test.py's ROUGE-1.5.5 agreement cases (5 decimals)", () => {
    const r0 = rouge(PREDICTIONS[0]!, TARGETS[0]!, { types: ['rouge1', 'rouge2', 'rougeL'] });
    const r1 = rouge(PREDICTIONS[1]!, TARGETS[1]!, { types: ['rouge1', 'rouge2', 'rougeL'] });
    prf(r0.rouge1, 0.6875, 0.40741, 0.51163, 5);
    prf(r1.rouge1, 0.65385, 0.40476, 0.5, 5);
    prf(r0.rouge2, 0.53333, 0.30769, 0.39024, 5);
    prf(r1.rouge2, 0.48, 0.29268, 0.36364, 5);
    prf(r0.rougeL, 0.6875, 0.40741, 0.51163, 5);
    prf(r1.rougeL, 0.65385, 0.40476, 0.5, 5);
  });

  it("matches rouge_scorer_test.py's LCS and ROUGE-Lsum cases", () => {
    // LCS of [1 2 3 4 5] and [2 5 3 4] is 3 (2 3 4)
    expect(lcsLength(['1', '2', '3', '4', '5'], ['2', '5', '3', '4'])).toBe(3);
    expect(lcsLength(['1', '2', '3', '4', '5'], ['8', '9'])).toBe(0);
    // Lin 2004 §3.2: union LCS of ref w1..w5 with "w1 w2 w6 w7 w8" (w1 w2) and "w1 w3 w8 w9 w5" (w1 w3 w5)
    // = w1 w2 w3 w5 → 4 hits; R = 4/5, P = 4/10, F = 0.5333
    const s = rouge('w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5', 'w1 w2 w3 w4 w5', { types: ['rougeLsum'] }).rougeLsum;
    prf(s, 0.4, 0.8, (2 * 0.4 * 0.8) / 1.2);
    expect(s.fmeasure).toBeCloseTo(0.5333, 3);
    prf(rouge('', 'w1 w2 w3 w4 w5', { types: ['rougeLsum'] }).rougeLsum, 0, 0, 0);
    prf(rouge('w1', '', { types: ['rougeLsum'] }).rougeLsum, 0, 0, 0);
    prf(rouge('/', 'w1 w2 w3 w4 w5', { types: ['rougeLsum'] }).rougeLsum, 0, 0, 0);
  });
});

describe('ROUGE: rules by hand', () => {
  it('tokenises as rouge-score: lower-case, non-alphanumerics to spaces', () => {
    expect(rougeTokenize("The Cat's (big) mat, é-x 3.5!")).toEqual(['the', 'cat', 's', 'big', 'mat', 'x', '3', '5']);
    // a stemmer applies to tokens longer than 3 characters only
    expect(rougeTokenize('cats sat running', (t) => t.replace(/(s|ning)$/, ''))).toEqual(['cat', 'sat', 'run']);
  });

  it('takes the reference with the best F per type, and averages a corpus', () => {
    // pred "the cat sat": ref A "the cat" → R1 P 2/3 R 1 F 0.8; ref B "a dog" → 0
    const r = rouge('the cat sat', ['a dog', 'the cat'], { types: ['rouge1'] });
    prf(r.rouge1, 2 / 3, 1, 0.8);
    // corpus mean of (P, R, F) = (2/3, 1, 0.8) and (1, 1, 1) from an exact match
    const c = corpusRouge(['the cat sat', 'on the mat'], [['a dog', 'the cat'], 'on the mat'], { types: ['rouge1'] });
    prf(c.rouge1, (2 / 3 + 1) / 2, 1, 0.9);
    // default types: rouge1, rouge2, rougeL
    expect(Object.keys(corpusRouge(['a'], ['a'])).sort()).toEqual(['rouge1', 'rouge2', 'rougeL']);
    // ROUGE-2 of "the cat sat" vs "the cat": bigrams {the cat, cat sat} vs {the cat} → P 1/2, R 1, F 2/3
    prf(rouge('the cat sat', 'the cat', { types: ['rouge2'] }).rouge2, 1 / 2, 1, 2 / 3);
    // ROUGE-L with a gap: "a x b y c" vs "a b c" → LCS 3, P 3/5, R 1, F 0.75
    prf(rouge('a x b y c', 'a b c', { types: ['rougeL'] }).rougeL, 3 / 5, 1, 0.75);
  });

  it('validates input', () => {
    expect(() => rouge('a', 'a', { types: ['rouge0' as 'rouge1'] })).toThrow(/unknown ROUGE type 'rouge0'/);
    expect(() => rouge('a', [])).toThrow(/rouge: reference must be a string or a non-empty array of strings, got \[\]/);
    expect(() => corpusRouge(['a'], [])).toThrow(/1 predictions but 0 references/);
  });
});

describe('SQuAD exact match and token F1', () => {
  it('normalises as the v1.1 script: lower, drop punctuation, drop articles, collapse spaces', () => {
    expect(normalizeAnswer('The  Eiffel Tower!')).toBe('eiffel tower');
    // punctuation goes before articles: "the-end" → "theend" keeps its letters
    expect(normalizeAnswer('the-end')).toBe('theend');
    expect(normalizeAnswer('An apple, a day')).toBe('apple day');
    // "théâtre" and "anthem" are not articles; "é" is a word character, so "éthe" keeps "the"
    expect(normalizeAnswer('Théâtre anthem éthe')).toBe('théâtre anthem éthe');
    // non-ASCII punctuation is kept (Python's string.punctuation is ASCII only)
    expect(normalizeAnswer('«Paris»')).toBe('«paris»');
    expect(normalizeAnswer('\u00a0a\u3000b\tc\n')).toBe('b c');
  });

  it('scores the best ground truth', () => {
    expect(exactMatch('the Denver Broncos', ['Denver Broncos', 'Broncos'])).toBe(1);
    expect(exactMatch('Denver', ['Denver Broncos'])).toBe(0);
    // prediction "cat sat" (articles dropped) vs "a cat sat down" → tokens [cat sat] vs [cat sat down]:
    // common 2, P = 2/2, R = 2/3, F = 2·1·(2/3)/(1 + 2/3) = 0.8
    close(tokenF1('the cat sat', 'a cat sat down'), 0.8);
    // repeated tokens match once per occurrence: pred [x x y] vs truth [x y y] share one x and
    // one y → common 2, P = 2/3, R = 2/3 → F 2/3
    close(tokenF1('x x y', ['x y y']), 2 / 3);
    // max over truths: 0 for "dog", 0.8 for "cat sat down"
    close(tokenF1('cat sat', ['dog', 'cat sat down']), 0.8);
    // v1.1: two empty answers have no common token → F1 0 (exact match 1)
    expect(tokenF1('the', 'a')).toBe(0);
    expect(exactMatch('the', 'a')).toBe(1);
  });

  it('averages over questions in percent, as the official script prints', () => {
    // EM: 1, 0 → 50; F1: 1, 0.8 → 90
    const s = squadScores(['Denver Broncos', 'the cat sat'], [['Denver Broncos'], ['a cat sat down']]);
    expect(s.exactMatch).toBe(50);
    close(s.f1, 90);
    expect(s.count).toBe(2);
    expect(() => squadScores(['a'], [[]])).toThrow(/squadScores: groundTruths\[0\] must be a string or a non-empty array of strings, got \[\]/);
    expect(() => squadScores(['a'], [])).toThrow(/1 predictions but 0 ground-truth lists/);
    expect(() => squadScores([], [])).toThrow(/no questions/);
  });
});
