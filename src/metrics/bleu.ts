/**
 * Corpus BLEU (Papineni et al., 2002) with sacreBLEU's (Post, 2018) conventions and defaults, so
 * that scores are comparable with published ones: 13a tokenisation, n-grams up to 4, clipping
 * against the maximum count in any one reference, the brevity penalty against the reference
 * length closest to each hypothesis, and smoothing method 'exp'.
 *
 * The algorithm, as sacreBLEU 2.x computes it:
 *
 * - Each segment is lower-cased if asked, stripped of trailing whitespace and tokenised; tokens
 *   are the whitespace-separated pieces of the tokeniser's output.
 * - For each hypothesis and n = 1..N, `totals[n]` counts its n-grams and `counts[n]` its n-grams
 *   matched, each n-gram g counting min(count in hypothesis, max over references of count in that
 *   reference).
 * - The effective reference length of a segment is the length of the reference closest to the
 *   hypothesis length, the shorter one on ties. sysLen and refLen are sums over segments, and so
 *   are counts and totals.
 * - BP = 1 if sysLen ≥ refLen, exp(1 − refLen/sysLen) if 0 < sysLen < refLen, 0 if sysLen = 0.
 * - If no n-gram of any order matched, the score is 0 (all precisions 0), whatever the smoothing.
 * - Otherwise, for n = 1..N while totals[n] > 0: p_n = counts[n]/totals[n]; when counts[n] = 0,
 *   'exp' uses 1/(2^j · totals[n]) for the j-th such order, 'floor' uses ε/totals[n] (ε = 0.1),
 *   'none' leaves 0; 'add-k' adds k (default 1) to counts[n] and totals[n] for n ≥ 2 first. Orders
 *   after the first with totals[n] = 0 keep p_n = 0.
 * - score = 100 · BP · exp(Σ log p_n / N'), with log 0 = −∞ (so any zero precision gives 0), and
 *   N' = N, or with `effectiveOrder` the last n with totals[n] > 0 (for sentence-level BLEU).
 *
 * Precisions are reported in percent, as sacreBLEU does; counts and totals are the raw ones
 * (before add-k).
 * @module
 */

import { checkNumber, show } from '../tensor/validate.js';
import { checkCorpus, checkOptions, checkReferences, checkString, optionalBoolean } from './check.js';

/** A built-in tokeniser name or a function from a segment to space-separated tokens. */
export type BleuTokenizer = '13a' | 'none' | 'intl' | 'char' | ((segment: string) => string);

/** sacreBLEU's smoothing methods (Chen & Cherry, 2014: methods 1, 2 and 3). */
export type BleuSmoothing = 'exp' | 'floor' | 'add-k' | 'none';

/** Options of {@link corpusBleu}; the defaults are sacreBLEU's. */
export interface BleuOptions {
  /** Tokeniser; default '13a' (mteval-v13a). */
  tokenize?: BleuTokenizer;
  /** Lower-case hypotheses and references first. Default false. */
  lowercase?: boolean;
  /** Smoothing; default 'exp'. */
  smooth?: BleuSmoothing;
  /** ε of 'floor' (default 0.1) or k of 'add-k' (default 1); ignored by the others. */
  smoothValue?: number;
  /** Largest n-gram order N. Default 4. */
  maxOrder?: number;
  /** Average only over the orders with n-grams in the hypotheses (sentence-level BLEU). Default false. */
  effectiveOrder?: boolean;
}

/** A BLEU result, with sacreBLEU's fields in camelCase. */
export interface BleuScore {
  /** BLEU in [0, 100]. */
  score: number;
  /** Matched (clipped) n-grams for n = 1..N. */
  counts: number[];
  /** Hypothesis n-grams for n = 1..N. */
  totals: number[];
  /** Modified n-gram precisions in percent (smoothed where smoothing applied). */
  precisions: number[];
  /** Brevity penalty. */
  bp: number;
  /** sysLen / refLen (0 when refLen is 0). */
  ratio: number;
  /** Total hypothesis tokens. */
  sysLen: number;
  /** Total effective reference tokens. */
  refLen: number;
}

/** Python's `str.split()` / `str.rstrip()` whitespace, which sacreBLEU relies on. */
const PY_SPACE = /[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;
const PY_TRAILING_SPACE = /[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/;

function pySplit(s: string): string[] {
  return s.split(PY_SPACE).filter((t) => t.length > 0);
}

// mteval-v13a's punctuation: { | } ~, [ \ ] ^ _ `, space ! " # $ % &, ( ) * +, : ; < = > ? @, and /
// (the apostrophe and hyphen stay inside words; period and comma have their own rules)
const V13A_SYMBOLS = /([\x7b-\x7e\x5b-\x60\x20-\x26\x28-\x2b\x3a-\x40\x2f])/g;
const V13A_PERIOD_COMMA_AFTER_NON_DIGIT = /([^0-9])([.,])/g;
const V13A_PERIOD_COMMA_BEFORE_NON_DIGIT = /([.,])([^0-9])/g;
const V13A_DASH_AFTER_DIGIT = /([0-9])(-)/g;

/**
 * The mteval-v13a tokeniser (WMT's standard, sacreBLEU's default): unescape `&quot; &amp; &lt;
 * &gt;`, drop `<skipped>`, join lines, then pad the punctuation listed above with spaces; split
 * `.` and `,` from a neighbour unless both sides are digits (1,000.5 stays whole); split `-`
 * after a digit; collapse spaces. Returns the tokens joined by single spaces.
 *
 * @example
 * tokenize13a("It wasn't surprising."); // "It wasn't surprising ."
 */
export function tokenize13a(line: string): string {
  checkString('tokenize13a', 'line', line);
  let s = line
    .split('<skipped>').join('')
    .split('-\n').join('')
    .split('\n').join(' ')
    .split('&quot;').join('"')
    .split('&amp;').join('&')
    .split('&lt;').join('<')
    .split('&gt;').join('>');
  s = ` ${s} `;
  s = s.replace(V13A_SYMBOLS, ' $1 ');
  s = s.replace(V13A_PERIOD_COMMA_AFTER_NON_DIGIT, '$1 $2 ');
  s = s.replace(V13A_PERIOD_COMMA_BEFORE_NON_DIGIT, ' $1 $2');
  s = s.replace(V13A_DASH_AFTER_DIGIT, '$1 $2 ');
  return pySplit(s).join(' ');
}

const INTL_PUNCT_AFTER_NON_NUMBER = /(\P{N})(\p{P})/gu;
const INTL_PUNCT_BEFORE_NON_NUMBER = /(\p{P})(\P{N})/gu;
const INTL_SYMBOL = /(\p{S})/gu;

/**
 * The mteval-v14 "international" tokeniser (sacreBLEU's 'intl'): split Unicode punctuation from
 * a neighbour that is not a number, and every Unicode symbol from both neighbours.
 */
export function tokenizeIntl(line: string): string {
  checkString('tokenizeIntl', 'line', line);
  let s = line.replace(INTL_PUNCT_AFTER_NON_NUMBER, '$1 $2 ');
  s = s.replace(INTL_PUNCT_BEFORE_NON_NUMBER, ' $1 $2');
  s = s.replace(INTL_SYMBOL, ' $1 ');
  return pySplit(s).join(' ');
}

/** Every character (code point) a token, whitespace dropped (sacreBLEU's 'char'). */
export function tokenizeChars(line: string): string {
  checkString('tokenizeChars', 'line', line);
  return pySplit(Array.from(line).join(' ')).join(' ');
}

function tokenizer(op: string, t: unknown): (s: string) => string {
  if (typeof t === 'function')
    return (s) => {
      const out: unknown = t(s);
      if (typeof out !== 'string') throw new Error(`${op}: the tokenize function must return a string, got ${show(out)}`);
      return out;
    };
  switch (t) {
    case '13a':
      return tokenize13a;
    case 'intl':
      return tokenizeIntl;
    case 'char':
      return tokenizeChars;
    case 'none':
      return (s) => s;
    default:
      throw new Error(`${op}: unknown tokenizer ${show(t)}; use '13a', 'intl', 'char', 'none' or a function`);
  }
}

/** n-gram counts for n = 1..maxOrder, keyed by the tokens joined with spaces (tokens hold none). */
function ngramCounts(tokens: string[], maxOrder: number): Map<string, number>[] {
  const out: Map<string, number>[] = [];
  // keys[i] is the n-gram starting at i, extended by one token per order
  const keys = tokens.slice();
  for (let n = 1; n <= maxOrder; n++) {
    const m = new Map<string, number>();
    for (let i = 0; i + n <= tokens.length; i++) {
      if (n > 1) keys[i] = `${keys[i]!} ${tokens[i + n - 1]!}`;
      const g = keys[i]!;
      m.set(g, (m.get(g) ?? 0) + 1);
    }
    out.push(m);
  }
  return out;
}

/** Sufficient statistics of BLEU, summable over segments. */
export interface BleuStats {
  counts: number[];
  totals: number[];
  sysLen: number;
  refLen: number;
}

interface Resolved {
  tok: (s: string) => string;
  lowercase: boolean;
  smooth: BleuSmoothing;
  smoothValue: number;
  maxOrder: number;
  effectiveOrder: boolean;
}

const BLEU_OPTIONS = ['tokenize', 'lowercase', 'smooth', 'smoothValue', 'maxOrder', 'effectiveOrder'] as const;

/** Check `opts` (unknown keys refused) and fill in the defaults; `maxOrder` replaces an absent `opts.maxOrder`. */
function resolve(op: string, opts: BleuOptions | undefined, defaults: { maxOrder?: number; effectiveOrder?: boolean } = {}): Resolved {
  const o = checkOptions(op, opts, BLEU_OPTIONS);
  const smooth = o.smooth === undefined ? 'exp' : o.smooth;
  if (!(['exp', 'floor', 'add-k', 'none'] as unknown[]).includes(smooth))
    throw new Error(`${op}: unknown smoothing ${show(smooth)}; use 'exp', 'floor', 'add-k' or 'none'`);
  const smoothValue = o.smoothValue === undefined ? (smooth === 'floor' ? 0.1 : smooth === 'add-k' ? 1 : 0) : checkNumber(op, 'smoothValue', o.smoothValue, { min: 0 });
  const maxOrder = o.maxOrder === undefined ? (defaults.maxOrder ?? 4) : checkNumber(op, 'maxOrder', o.maxOrder, { integer: true, min: 1 });
  return {
    tok: tokenizer(op, o.tokenize === undefined ? '13a' : o.tokenize),
    lowercase: optionalBoolean(op, 'lowercase', o.lowercase, false),
    smooth,
    smoothValue,
    maxOrder,
    effectiveOrder: optionalBoolean(op, 'effectiveOrder', o.effectiveOrder, defaults.effectiveOrder ?? false),
  };
}

function preprocess(r: Resolved, s: string): string[] {
  const x = r.lowercase ? s.toLowerCase() : s;
  return pySplit(r.tok(x.replace(PY_TRAILING_SPACE, '')));
}

/** The length of the reference closest to `hypLen`, the shorter on ties. */
function closestRefLen(hypLen: number, refLens: number[]): number {
  let best = refLens[0]!;
  for (const l of refLens) {
    const d = Math.abs(hypLen - l);
    const bd = Math.abs(hypLen - best);
    if (d < bd || (d === bd && l < best)) best = l;
  }
  return best;
}

function segmentStats(r: Resolved, hyp: string, refs: readonly string[]): BleuStats {
  const h = preprocess(r, hyp);
  const hc = ngramCounts(h, r.maxOrder);
  // clip against the largest count of each n-gram in any one reference
  const maxRef = Array.from({ length: r.maxOrder }, () => new Map<string, number>());
  const refLens: number[] = [];
  for (const ref of refs) {
    const t = preprocess(r, ref);
    refLens.push(t.length);
    ngramCounts(t, r.maxOrder).forEach((m, n) => {
      for (const [g, c] of m) if (c > (maxRef[n]!.get(g) ?? 0)) maxRef[n]!.set(g, c);
    });
  }
  const counts = new Array<number>(r.maxOrder).fill(0);
  const totals = new Array<number>(r.maxOrder).fill(0);
  hc.forEach((m, n) => {
    for (const [g, c] of m) {
      totals[n]! += c;
      counts[n]! += Math.min(c, maxRef[n]!.get(g) ?? 0);
    }
  });
  return { counts, totals, sysLen: h.length, refLen: closestRefLen(h.length, refLens) };
}

/**
 * BLEU from its sufficient statistics (sacreBLEU's `BLEU.compute_bleu`), with the smoothing and
 * order of `opts` (tokenisation options are ignored here). `counts` and `totals` have one entry
 * per order 1..N. Smoothing defaults to 'exp' as everywhere else in this module (sacreBLEU's
 * `compute_bleu` alone defaults to 'none').
 */
export function computeBleu(stats: BleuStats, opts: BleuOptions = {}): BleuScore {
  const op = 'computeBleu';
  const st = checkStats(op, stats);
  return scoreOf(st, resolve(op, opts, { maxOrder: st.counts.length }), op);
}

/** `stats` when it holds BLEU statistics: equal-length non-empty counts and totals, lengths, all finite and ≥ 0. */
function checkStats(op: string, stats: unknown): BleuStats {
  if (stats === null || typeof stats !== 'object' || Array.isArray(stats))
    throw new Error(`${op}: stats must be an object { counts, totals, sysLen, refLen }, got ${show(stats)}`);
  const { counts, totals, sysLen, refLen } = stats as Record<string, unknown>;
  const list = (name: string, v: unknown): number[] => {
    if (!Array.isArray(v) || v.length === 0) throw new Error(`${op}: stats.${name} must be a non-empty array of counts, got ${show(v)}`);
    v.forEach((x, i) => checkNumber(op, `stats.${name}[${i}]`, x, { min: 0 }));
    return v as number[];
  };
  const c = list('counts', counts);
  const t = list('totals', totals);
  if (c.length !== t.length) throw new Error(`${op}: stats.counts has ${c.length} entries but stats.totals has ${t.length}`);
  c.forEach((x, i) => {
    if (x > t[i]!) throw new Error(`${op}: stats.counts[${i}] is ${x}, more than stats.totals[${i}] ${t[i]!}`);
  });
  checkNumber(op, 'stats.sysLen', sysLen, { min: 0 });
  checkNumber(op, 'stats.refLen', refLen, { min: 0 });
  return stats as BleuStats;
}

function scoreOf(stats: BleuStats, r: Resolved, op: string): BleuScore {
  const { sysLen, refLen } = stats;
  if (stats.counts.length !== r.maxOrder || stats.totals.length !== r.maxOrder)
    throw new Error(`${op}: counts (${stats.counts.length}) and totals (${stats.totals.length}) must have maxOrder ${r.maxOrder} entries`);
  const bp = sysLen < refLen ? (sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0) : 1;
  const ratio = refLen > 0 ? sysLen / refLen : 0;
  const precisions = new Array<number>(r.maxOrder).fill(0);
  const base = { counts: [...stats.counts], totals: [...stats.totals], bp, ratio, sysLen, refLen };
  if (!stats.counts.some((c) => c > 0)) return { score: 0, precisions, ...base };

  let expFactor = 1;
  let order = r.maxOrder;
  for (let n = 0; n < r.maxOrder; n++) {
    let correct = stats.counts[n]!;
    let total = stats.totals[n]!;
    if (r.smooth === 'add-k' && n > 0) {
      correct += r.smoothValue;
      total += r.smoothValue;
    }
    if (total === 0) break;
    if (r.effectiveOrder) order = n + 1;
    if (correct === 0) {
      if (r.smooth === 'exp') {
        expFactor *= 2;
        precisions[n] = 100 / (expFactor * total);
      } else if (r.smooth === 'floor') precisions[n] = (100 * r.smoothValue) / total;
    } else precisions[n] = (100 * correct) / total;
  }
  let logSum = 0;
  for (let n = 0; n < order; n++) logSum += Math.log(precisions[n]!);
  // precisions are percentages: BP · exp(mean log p) is already in [0, 100]
  const score = bp * Math.exp(logSum / order);
  return { score, precisions, ...base };
}

/**
 * Corpus BLEU of `hypotheses` against `references`, where `references[i]` is the reference (or
 * the list of references) of hypothesis i; segments may have different numbers of references.
 * (sacreBLEU takes the transpose, one stream per reference: its `refs[k][i]` is `references[i][k]`,
 * and a `None` there, a missing reference, is simply absent here.)
 * Empty hypotheses are kept (they count 0 tokens and lower the brevity penalty).
 *
 * @example
 * corpusBleu(['The dog bit the man.'], [['The dog bit the man.', 'The dog had bit the man.']]).score; // 100
 */
export function corpusBleu(
  hypotheses: readonly string[],
  references: readonly (string | readonly string[])[],
  opts: BleuOptions = {},
): BleuScore {
  return bleu('corpusBleu', hypotheses, references, resolve('corpusBleu', opts));
}

function bleu(op: string, hypotheses: unknown, references: unknown, r: Resolved): BleuScore {
  const c = checkCorpus(op, hypotheses, references, { predictions: 'hypotheses', references: 'references', referencesNoun: 'reference lists' });
  if (c.predictions.length === 0) throw new Error(`${op}: no hypotheses`);
  const total: BleuStats = { counts: new Array<number>(r.maxOrder).fill(0), totals: new Array<number>(r.maxOrder).fill(0), sysLen: 0, refLen: 0 };
  c.predictions.forEach((h, i) => {
    const s = segmentStats(r, h, c.references[i]!);
    for (let n = 0; n < r.maxOrder; n++) {
      total.counts[n]! += s.counts[n]!;
      total.totals[n]! += s.totals[n]!;
    }
    total.sysLen += s.sysLen;
    total.refLen += s.refLen;
  });
  return scoreOf(total, r, op);
}

/**
 * BLEU of one hypothesis against its reference(s): {@link corpusBleu} on a corpus of one, with
 * sacreBLEU's `sentence_bleu()` defaults: `effectiveOrder: true` (orders with no n-gram in the
 * hypothesis do not count, so a one-word exact match scores 100, not 0), 'exp' smoothing.
 */
export function sentenceBleu(hypothesis: string, references: string | readonly string[], opts: BleuOptions = {}): BleuScore {
  const op = 'sentenceBleu';
  const r = resolve(op, opts, { effectiveOrder: true });
  checkString(op, 'hypothesis', hypothesis);
  return bleu(op, [hypothesis], [checkReferences(op, 'references', references)], r);
}
