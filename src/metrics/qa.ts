/**
 * Extractive question answering scores as the official SQuAD v1.1 evaluation script computes
 * them: exact match and token-overlap F1 after normalisation, the best over the ground truths.
 *
 * Normalisation, in this order: lower-case; delete ASCII punctuation (Python's
 * `string.punctuation`, the 32 characters !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~); replace the whole
 * words a, an, the with a space (a word boundary is any character that is not a Unicode letter,
 * digit or underscore, as Python's `\b`); collapse runs of whitespace (Python's definition) to
 * one space and trim. Punctuation goes first, so "the-end" becomes "theend" and keeps its "the".
 * @module
 */

import { checkCorpus, checkReferences, checkString } from './check.js';

/** Python's `string.punctuation`. */
const PUNCTUATION = /[!-/:-@[-`{-~]/g;
/** `\b(a|an|the)\b` with Python 3's Unicode word characters ([\p{L}\p{N}_]). */
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;
/** Python's `str.split()` whitespace. */
const PY_SPACE = /[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

function tokens(s: string): string[] {
  return s.split(PY_SPACE).filter((t) => t.length > 0);
}

/**
 * SQuAD's answer normalisation: lower-case, strip punctuation, drop articles, collapse spaces.
 *
 * @example
 * normalizeAnswer('The  Eiffel-Tower!'); // 'eiffeltower'
 */
export function normalizeAnswer(s: string): string {
  checkString('normalizeAnswer', 'answer', s);
  const noPunct = s.toLowerCase().replace(PUNCTUATION, '');
  return tokens(noPunct.replace(ARTICLES, ' ')).join(' ');
}

function truths(op: string, groundTruths: unknown): readonly string[] {
  return checkReferences(op, 'groundTruths', groundTruths);
}

function em1(prediction: string, truth: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(truth) ? 1 : 0;
}

function f1One(prediction: string, truth: string): number {
  const p = tokens(normalizeAnswer(prediction));
  const g = tokens(normalizeAnswer(truth));
  const counts = new Map<string, number>();
  for (const t of g) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of p) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      same++;
      counts.set(t, c - 1);
    }
  }
  // v1.1: no common token (two empty answers included) scores 0
  if (same === 0) return 0;
  const precision = same / p.length;
  const recall = same / g.length;
  return (2 * precision * recall) / (precision + recall);
}

/** 1 when the normalised prediction equals some normalised ground truth, else 0. */
export function exactMatch(prediction: string, groundTruths: string | readonly string[]): number {
  checkString('exactMatch', 'prediction', prediction);
  return Math.max(...truths('exactMatch', groundTruths).map((g) => em1(prediction, g)));
}

/**
 * Token F1 between the normalised prediction and each ground truth (bag-of-tokens overlap:
 * P = common / prediction tokens, R = common / truth tokens), the best over ground truths.
 *
 * @example
 * tokenF1('the cat sat', ['a cat sat down']); // P = 2/2, R = 2/3 → 0.8
 */
export function tokenF1(prediction: string, groundTruths: string | readonly string[]): number {
  checkString('tokenF1', 'prediction', prediction);
  return Math.max(...truths('tokenF1', groundTruths).map((g) => f1One(prediction, g)));
}

/** Dataset-level SQuAD scores, in percent as the official script prints them. */
export interface SquadScores {
  /** 100 × mean exact match. */
  exactMatch: number;
  /** 100 × mean token F1. */
  f1: number;
  /** Number of questions. */
  count: number;
}

/**
 * Mean exact match and token F1 over questions, ×100 (the official script's `exact_match` and
 * `f1`). `groundTruths[i]` holds the accepted answers of question i.
 */
export function squadScores(predictions: readonly string[], groundTruths: readonly (string | readonly string[])[]): SquadScores {
  const c = checkCorpus('squadScores', predictions, groundTruths, { predictions: 'predictions', references: 'groundTruths', referencesNoun: 'ground-truth lists' });
  if (predictions.length === 0) throw new Error('squadScores: no questions');
  let em = 0;
  let f1 = 0;
  c.predictions.forEach((p, i) => {
    const gs = c.references[i]!;
    em += Math.max(...gs.map((g) => em1(p, g)));
    f1 += Math.max(...gs.map((g) => f1One(p, g)));
  });
  return { exactMatch: (100 * em) / predictions.length, f1: (100 * f1) / predictions.length, count: predictions.length };
}
