/**
 * METEOR (Banerjee & Lavie, 2005; the parameterised score of Lavie & Agarwal, 2007) as NLTK's
 * `nltk.translate.meteor_score` computes it (checked against NLTK 3.8 with WordNet 3.0,
 * test/fixtures/meteor/gen.py). Inputs are pre-tokenised, as NLTK's are.
 *
 * For one hypothesis and one reference:
 * - Every token is preprocessed (lower-cased by default).
 * - Alignment, in three stages, each over the tokens the stages before it left unmatched:
 *   exact (equal tokens), stem (equal Porter stems, {@link porterStem}, the stemmer NLTK uses),
 *   synonym (a reference token is among the hypothesis token's synonyms). Within a stage the
 *   choice is NLTK's greedy one: hypothesis tokens from the last to the first, each taking the
 *   last still-unmatched reference token that it matches. (NLTK's documentation speaks of the
 *   alignment with the fewest crossings; its code, and so kiln, does this.)
 * - As in NLTK, the synonym stage sees the tokens the stem stage left, stemmed: synonyms are
 *   looked up for the hypothesis token's stem and compared with the reference token's stem
 *   (with `stemmer: false`, the preprocessed tokens). NLTK's synonyms of w are the lemma names
 *   without '_' of WordNet's synsets of w; kiln has no WordNet and takes a table or a function
 *   (the fixture's table is what WordNet gives). A token is always its own synonym.
 * - With m matches, P = m / |hypothesis|, R = m / |reference|,
 *   Fmean = P·R / (α·P + (1−α)·R), chunks c = the fewest runs of matches adjacent in both
 *   sentences (counted over matches in hypothesis order), penalty = γ·(c/m)^β,
 *   score = (1 − penalty)·Fmean; 0 when m = 0 or either side is empty.
 *   Defaults α = 0.9, β = 3, γ = 0.5.
 * - Several references: the best score over them.
 *
 * Lower-casing uses `toLowerCase()`, which differs from Python's `str.lower()` only on the few
 * letters that one of their two Unicode versions lacks.
 * @module
 */
import { checkNumber, show } from '../tensor/validate.js';
import { checkOptions, checkString, optionalFunction } from './check.js';
import { stemmerOption } from './porter.js';

/**
 * Synonyms for the synonym stage: a map or a plain object from a token to its synonyms, or a
 * function of the token. Keys are tokens as the stage sees them (stemmed, see the module comment).
 */
export type MeteorSynonyms =
  | ReadonlyMap<string, Iterable<string>>
  | Readonly<Record<string, readonly string[]>>
  | ((token: string) => Iterable<string>);

/** The stemmer of the stem stage: 'porter' or `true` (NLTK's `PorterStemmer()`), a function, or `false` for none. */
export type MeteorStemmer = 'porter' | boolean | ((token: string) => string);

/** Options of {@link meteorScore}, {@link meteorAlign} and {@link corpusMeteor}; the defaults are NLTK's. */
export interface MeteorOptions {
  /** Weight of precision against recall in Fmean, in [0, 1]. Default 0.9. */
  alpha?: number;
  /** Exponent of the fragmentation penalty, ≥ 0. Default 3. */
  beta?: number;
  /** Weight of the fragmentation penalty, in [0, 1]. Default 0.5. */
  gamma?: number;
  /** Default 'porter'. */
  stemmer?: MeteorStemmer;
  /** The synonym stage's table; without one the stage matches nothing. */
  synonyms?: MeteorSynonyms;
  /** Applied to every token first. Default lower-casing (NLTK's `str.lower`). */
  preprocess?: (token: string) => string;
}

/** How one hypothesis aligns with one reference, and its score. */
export interface MeteorAlignment {
  /** [hypothesis index, reference index] pairs, by hypothesis index. */
  matches: [number, number][];
  /** The fewest runs of matches adjacent in both sentences (0 when nothing matched). */
  chunks: number;
  precision: number;
  recall: number;
  fmean: number;
  penalty: number;
  score: number;
}

interface Resolved {
  alpha: number;
  beta: number;
  gamma: number;
  pre: (token: string) => string;
  stem: ((token: string) => string) | undefined;
  syn: ((token: string) => ReadonlySet<string>) | null;
}

/** A list of tokens (`name` names it in messages). */
function checkTokens(op: string, name: string, value: unknown): readonly string[] {
  if (typeof value === 'string')
    throw new Error(`${op}: ${name} must be an array of tokens (string[]), got the string ${show(value)}; split it into tokens first`);
  if (!Array.isArray(value)) throw new Error(`${op}: ${name} must be an array of tokens (string[]), got ${show(value)}`);
  value.forEach((t, i) => checkString(op, `${name}[${i}]`, t));
  return value as readonly string[];
}

/** One segment's references: a non-empty array of token lists. */
function checkReferenceTokens(op: string, name: string, value: unknown): readonly (readonly string[])[] {
  if (!Array.isArray(value) || value.length === 0)
    throw new Error(`${op}: ${name} must be a non-empty array of token lists (string[][]), got ${show(value)}`);
  return value.map((r, i) => checkTokens(op, `${name}[${i}]`, r));
}

function synonymSet(op: string, token: string, value: unknown): ReadonlySet<string> {
  if (typeof value === 'string' || value === null || typeof value !== 'object' || !(Symbol.iterator in value))
    throw new Error(`${op}: the synonyms of '${token}' must be an array (or another iterable) of strings, got ${show(value)}`);
  const out = new Set<string>();
  for (const s of value as Iterable<unknown>) {
    if (typeof s !== 'string') throw new Error(`${op}: the synonyms of '${token}' must be strings, got ${show(s)}`);
    out.add(s);
  }
  return out;
}

const NONE: ReadonlySet<string> = new Set();

function synonymsOf(op: string, synonyms: unknown): ((token: string) => ReadonlySet<string>) | null {
  if (synonyms === undefined) return null;
  if (typeof synonyms === 'function')
    return (token) => synonymSet(op, token, (synonyms as (t: string) => unknown)(token));
  let entries: [unknown, unknown][];
  if (synonyms instanceof Map) entries = [...synonyms.entries()];
  else if (synonyms !== null && typeof synonyms === 'object' && !Array.isArray(synonyms) && [Object.prototype, null].includes(Object.getPrototypeOf(synonyms)))
    entries = Object.entries(synonyms);
  else throw new Error(`${op}: synonyms must be a Map, a plain object (token → string[]) or a function, got ${show(synonyms)}`);
  // checked once up front, so a bad entry fails every call, not just the ones that reach it
  const table = new Map<string, ReadonlySet<string>>();
  for (const [k, v] of entries) {
    if (typeof k !== 'string') throw new Error(`${op}: synonyms keys must be strings, got ${show(k)}`);
    table.set(k, synonymSet(op, k, v));
  }
  return (token) => table.get(token) ?? NONE;
}

function resolve(op: string, opts: MeteorOptions | undefined): Resolved {
  const o = checkOptions(op, opts, ['alpha', 'beta', 'gamma', 'stemmer', 'synonyms', 'preprocess']);
  const alpha = o.alpha === undefined ? 0.9 : checkNumber(op, 'alpha', o.alpha, { min: 0, max: 1 });
  const beta = o.beta === undefined ? 3 : checkNumber(op, 'beta', o.beta, { min: 0 });
  const gamma = o.gamma === undefined ? 0.5 : checkNumber(op, 'gamma', o.gamma, { min: 0, max: 1 });
  const custom = optionalFunction<(t: string) => unknown>(op, 'preprocess', o.preprocess);
  const pre = custom
    ? (token: string): string => {
        const out = custom(token);
        if (typeof out !== 'string') throw new Error(`${op}: preprocess must return a string, got ${show(out)} for '${token}'`);
        return out;
      }
    : (token: string) => token.toLowerCase();
  return { alpha, beta, gamma, pre, stem: stemmerOption(op, o.stemmer, true), syn: synonymsOf(op, o.synonyms) };
}

interface Tok {
  i: number;
  w: string;
}

/**
 * One stage: hypothesis tokens from last to first, each matched to the last unmatched reference
 * token `same` accepts; matched tokens leave both lists.
 */
function stage(hyp: Tok[], ref: Tok[], same: (h: Tok, r: Tok) => boolean, out: [number, number][]): void {
  for (let a = hyp.length - 1; a >= 0; a--) {
    for (let b = ref.length - 1; b >= 0; b--) {
      if (same(hyp[a]!, ref[b]!)) {
        out.push([hyp[a]!.i, ref[b]!.i]);
        hyp.splice(a, 1);
        ref.splice(b, 1);
        break;
      }
    }
  }
}

function align(reference: readonly string[], hypothesis: readonly string[], r: Resolved): MeteorAlignment {
  let hyp: Tok[] = hypothesis.map((w, i) => ({ i, w: r.pre(w) }));
  let ref: Tok[] = reference.map((w, i) => ({ i, w: r.pre(w) }));
  const matches: [number, number][] = [];
  stage(hyp, ref, (h, x) => h.w === x.w, matches);
  if (r.stem) {
    const stem = r.stem;
    hyp = hyp.map((t) => ({ i: t.i, w: stem(t.w) }));
    ref = ref.map((t) => ({ i: t.i, w: stem(t.w) }));
    stage(hyp, ref, (h, x) => h.w === x.w, matches);
  }
  if (r.syn) {
    const syn = r.syn;
    const cache = new Map<string, ReadonlySet<string>>();
    const lookup = (w: string) => {
      let s = cache.get(w);
      if (!s) cache.set(w, (s = syn(w)));
      return s;
    };
    stage(hyp, ref, (h, x) => h.w === x.w || lookup(h.w).has(x.w), matches);
  }
  matches.sort((p, q) => p[0] - q[0]);
  const m = matches.length;
  if (m === 0) return { matches, chunks: 0, precision: 0, recall: 0, fmean: 0, penalty: 0, score: 0 };
  let chunks = 1;
  for (let k = 1; k < m; k++) if (!(matches[k]![0] === matches[k - 1]![0] + 1 && matches[k]![1] === matches[k - 1]![1] + 1)) chunks++;
  // the same operations in the same order as NLTK, so scores agree to the last bit or two
  const precision = m / hypothesis.length;
  const recall = m / reference.length;
  const fmean = (precision * recall) / (r.alpha * precision + (1 - r.alpha) * recall);
  const penalty = r.gamma * (chunks / m) ** r.beta;
  return { matches, chunks, precision, recall, fmean, penalty, score: (1 - penalty) * fmean };
}

/**
 * The alignment of one hypothesis with one reference (NLTK's `align_words`) and its METEOR
 * score, with the precision, recall, Fmean, chunks and penalty it is made of.
 *
 * @example
 * meteorAlign(['the', 'dogs', 'ran'], ['a', 'dog', 'ran']).matches; // [[1, 1], [2, 2]]
 */
export function meteorAlign(reference: readonly string[], hypothesis: readonly string[], opts: MeteorOptions = {}): MeteorAlignment {
  const op = 'meteorAlign';
  const ref = checkTokens(op, 'reference', reference);
  const hyp = checkTokens(op, 'hypothesis', hypothesis);
  return align(ref, hyp, resolve(op, opts));
}

/**
 * METEOR of one tokenised hypothesis against one or more tokenised references: the best score
 * over the references, as NLTK's `meteor_score(references, hypothesis)`.
 *
 * @example
 * const synonyms = { big: ['great', 'large'], dog: ['hound'] };
 * meteorScore([['a', 'great', 'hound']], ['a', 'big', 'dog'], { synonyms }); // 0.9815 (1 − 0.5·(1/3)³)
 */
export function meteorScore(references: readonly (readonly string[])[], hypothesis: readonly string[], opts: MeteorOptions = {}): number {
  const op = 'meteorScore';
  const refs = checkReferenceTokens(op, 'references', references);
  const hyp = checkTokens(op, 'hypothesis', hypothesis);
  const r = resolve(op, opts);
  return best(refs, hyp, r);
}

function best(refs: readonly (readonly string[])[], hyp: readonly string[], r: Resolved): number {
  let score = 0;
  for (const ref of refs) score = Math.max(score, align(ref, hyp, r).score);
  return score;
}

/**
 * The mean segment METEOR of a corpus (what Hugging Face `evaluate`'s `meteor` reports):
 * `references[i]` holds the tokenised references of `hypotheses[i]`.
 */
export function corpusMeteor(
  references: readonly (readonly (readonly string[])[])[],
  hypotheses: readonly (readonly string[])[],
  opts: MeteorOptions = {},
): number {
  const op = 'corpusMeteor';
  if (!Array.isArray(hypotheses)) throw new Error(`${op}: hypotheses must be an array of token lists (string[][]), got ${show(hypotheses)}`);
  if (!Array.isArray(references)) throw new Error(`${op}: references must be an array (one list of references per hypothesis), got ${show(references)}`);
  if (hypotheses.length !== references.length) throw new Error(`${op}: ${hypotheses.length} hypotheses but ${references.length} reference lists`);
  if (hypotheses.length === 0) throw new Error(`${op}: no hypotheses`);
  const hyps = hypotheses.map((h, i) => checkTokens(op, `hypotheses[${i}]`, h));
  const refs = references.map((rs, i) => checkReferenceTokens(op, `references[${i}]`, rs));
  const r = resolve(op, opts);
  let sum = 0;
  hyps.forEach((h, i) => (sum += best(refs[i]!, h, r)));
  return sum / hyps.length;
}
