/**
 * ROUGE (Lin, 2004) as Google's `rouge-score` package computes it, which reproduces
 * ROUGE-1.5.5 run with `-e data -n 2` (no stemming, no stop-word removal):
 *
 * - Tokens: lower-case, turn every run of characters outside [a-z0-9] into a space, split;
 *   optionally stem tokens longer than 3 characters; drop empty tokens. rouge-score's
 *   `use_stemmer=True` is `stemmer: 'porter'` (or `true`): {@link porterStem}, which returns what
 *   NLTK's `PorterStemmer()` does, so stemmed scores match rouge-score's too.
 * - ROUGE-N: with c = Σ over n-grams g of min(count in prediction, count in reference),
 *   P = c / prediction n-grams, R = c / reference n-grams (denominators floored at 1), F = 2PR/(P+R)
 *   (0 when P + R = 0).
 * - ROUGE-L: the longest common subsequence ℓ of the token sequences; P = ℓ / prediction
 *   tokens, R = ℓ / reference tokens, F as above; all 0 when either side is empty.
 * - ROUGE-Lsum: summary-level LCS over newline-separated sentences (Lin 2004, section 3.2): for
 *   each reference sentence the union of its LCS token positions with every prediction
 *   sentence, each token counted at most as often as it occurs on both sides.
 * - Several references: the score of each type is that of the reference with the highest F.
 *
 * Argument order is prediction first (as BLEU's hypothesis), the reverse of rouge-score's
 * `score(target, prediction)`.
 * @module
 */
import { show } from '../tensor/validate.js';
import { checkCorpus, checkOptions, checkReferences, checkString, checkStrings, optionalFunction } from './check.js';
import { stemmerOption } from './porter.js';

/** A ROUGE type: 'rouge1' … 'rouge9' (n-gram), 'rougeL' (sentence LCS) or 'rougeLsum' (summary LCS). */
export type RougeType = `rouge${1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9}` | 'rougeL' | 'rougeLsum';

/** Precision, recall and F-measure, each in [0, 1]. */
export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

/**
 * A stemmer for ROUGE tokens: 'porter' or `true` for {@link porterStem} (rouge-score's
 * `use_stemmer=True`), a function of your own, or `false` for none.
 */
export type RougeStemmer = 'porter' | boolean | ((token: string) => string);

/** Options of {@link rouge} and {@link corpusRouge}. */
export interface RougeOptions {
  /** Which scores to compute. Default ['rouge1', 'rouge2', 'rougeL']. */
  types?: readonly RougeType[];
  /**
   * Applied to every token longer than 3 characters: 'porter' or `true` as rouge-score's
   * `use_stemmer=True`, or a function. Default none.
   */
  stemmer?: RougeStemmer;
  /** Replaces the default tokeniser (the stemmer is then not applied). */
  tokenizer?: (text: string) => string[];
}

const NON_ALNUM = /[^a-z0-9]+/g;
const TOKEN = /^[a-z0-9]+$/;

/**
 * rouge-score's default tokeniser (see the module comment), with an optional stemmer.
 *
 * @example
 * rougeTokenize('The cats were running!', 'porter'); // ['the', 'cat', 'were', 'run']
 */
export function rougeTokenize(text: string, stemmer?: RougeStemmer): string[] {
  checkString('rougeTokenize', 'text', text);
  return tokenize(text, stemmerOption('rougeTokenize', stemmer, false));
}

function tokenize(text: string, stem: ((token: string) => string) | undefined): string[] {
  let tokens = text.toLowerCase().replace(NON_ALNUM, ' ').split(/\s+/);
  if (stem) tokens = tokens.map((t) => (t.length > 3 ? stem(t) : t));
  return tokens.filter((t) => TOKEN.test(t));
}

function fmeasure(precision: number, recall: number): number {
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

function ngrams(tokens: string[], n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const g = tokens.slice(i, i + n).join(' ');
    m.set(g, (m.get(g) ?? 0) + 1);
  }
  return m;
}

function rougeN(pred: string[], ref: string[], n: number): RougeScore {
  const p = ngrams(pred, n);
  const r = ngrams(ref, n);
  let overlap = 0;
  for (const [g, c] of r) overlap += Math.min(c, p.get(g) ?? 0);
  const precision = overlap / Math.max(pred.length - n + 1, 1);
  const recall = overlap / Math.max(ref.length - n + 1, 1);
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/** LCS length table, (|a|+1) × (|b|+1), row-major. */
function lcsTable(a: readonly string[], b: readonly string[]): Int32Array {
  const w = b.length + 1;
  const t = new Int32Array((a.length + 1) * w);
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      t[i * w + j] = a[i - 1] === b[j - 1] ? t[(i - 1) * w + j - 1]! + 1 : Math.max(t[(i - 1) * w + j]!, t[i * w + j - 1]!);
  return t;
}

/** The length of the longest common subsequence of two token sequences. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  checkStrings('lcsLength', 'a', a);
  checkStrings('lcsLength', 'b', b);
  // the table needs (|a|+1)·(|b|+1) cells; the last row alone would do, but say so plainly first
  if ((a.length + 1) * (b.length + 1) > 2 ** 30)
    throw new Error(`lcsLength: a (${a.length} tokens) and b (${b.length} tokens) are too long: the table would need ${(a.length + 1) * (b.length + 1)} cells (at most 2^30)`);
  return lcs(a, b);
}

function lcs(a: readonly string[], b: readonly string[]): number {
  return lcsTable(a, b)[(a.length + 1) * (b.length + 1) - 1]!;
}

function rougeL(pred: string[], ref: string[]): RougeScore {
  if (pred.length === 0 || ref.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const l = lcs(ref, pred);
  const precision = l / pred.length;
  const recall = l / ref.length;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/** Positions in `ref` of one longest common subsequence with `cand` (rouge-score's backtrack order). */
function lcsPositions(ref: string[], cand: string[]): number[] {
  const t = lcsTable(ref, cand);
  const w = cand.length + 1;
  const out: number[] = [];
  let i = ref.length;
  let j = cand.length;
  while (i > 0 && j > 0) {
    if (ref[i - 1] === cand[j - 1]) {
      out.push(i - 1);
      i--;
      j--;
    } else if (t[i * w + j - 1]! > t[(i - 1) * w + j]!) j--;
    else i--;
  }
  return out.reverse();
}

function rougeLsum(pred: string[][], ref: string[][]): RougeScore {
  const m = ref.reduce((s, x) => s + x.length, 0);
  const n = pred.reduce((s, x) => s + x.length, 0);
  if (m === 0 || n === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const count = (sents: string[][]) => {
    const c = new Map<string, number>();
    for (const s of sents) for (const t of s) c.set(t, (c.get(t) ?? 0) + 1);
    return c;
  };
  const refLeft = count(ref);
  const predLeft = count(pred);
  let hits = 0;
  for (const r of ref) {
    const union = new Set<number>();
    for (const c of pred) for (const i of lcsPositions(r, c)) union.add(i);
    for (const i of [...union].sort((a, b) => a - b)) {
      const tok = r[i]!;
      if ((refLeft.get(tok) ?? 0) > 0 && (predLeft.get(tok) ?? 0) > 0) {
        hits++;
        refLeft.set(tok, refLeft.get(tok)! - 1);
        predLeft.set(tok, predLeft.get(tok)! - 1);
      }
    }
  }
  const precision = hits / n;
  const recall = hits / m;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

const DEFAULT_TYPES: readonly RougeType[] = ['rouge1', 'rouge2', 'rougeL'];

function checkTypes(op: string, types: unknown): readonly RougeType[] {
  if (!Array.isArray(types) || types.length === 0) throw new Error(`${op}: types must be a non-empty array of ROUGE types, got ${show(types)}`);
  for (const t of types)
    if (typeof t !== 'string' || !/^rouge([1-9]|L|Lsum)$/.test(t))
      throw new Error(`${op}: unknown ROUGE type ${show(t)}; use 'rouge1'…'rouge9', 'rougeL' or 'rougeLsum'`);
  return types as readonly RougeType[];
}

interface ResolvedRouge {
  types: readonly RougeType[];
  tok: (text: string) => string[];
}

function resolve(op: string, opts: RougeOptions | undefined): ResolvedRouge {
  const o = checkOptions(op, opts, ['types', 'stemmer', 'tokenizer']);
  const types = checkTypes(op, o.types === undefined ? DEFAULT_TYPES : o.types);
  const stem = stemmerOption(op, o.stemmer, false);
  const custom = optionalFunction<(text: string) => string[]>(op, 'tokenizer', o.tokenizer);
  const tok = custom
    ? (text: string): string[] => {
        const out: unknown = custom(text);
        if (!Array.isArray(out) || out.some((t) => typeof t !== 'string'))
          throw new Error(`${op}: the tokenizer must return an array of strings, got ${show(out)}`);
        return out as string[];
      }
    : (text: string) => tokenize(text, stem);
  return { types, tok };
}

function scoreOne(prediction: string, reference: string, types: readonly RougeType[], tok: (text: string) => string[]): Record<string, RougeScore> {
  let p: string[] | null = null;
  let r: string[] | null = null;
  const out: Record<string, RougeScore> = {};
  for (const t of types) {
    if (t === 'rougeLsum') {
      const sents = (s: string) => s.split('\n').filter((x) => x.length > 0).map(tok);
      out[t] = rougeLsum(sents(prediction), sents(reference));
      continue;
    }
    p ??= tok(prediction);
    r ??= tok(reference);
    out[t] = t === 'rougeL' ? rougeL(p, r) : rougeN(p, r, Number(t.slice(5)));
  }
  return out;
}

/**
 * ROUGE scores of one prediction against one reference, or against several (each type then
 * takes the reference with the highest F-measure).
 *
 * @example
 * rouge('testing one', 'testing one two').rougeL; // { precision: 1, recall: 2/3, fmeasure: 0.8 }
 */
export function rouge(prediction: string, reference: string | readonly string[], opts: RougeOptions = {}): Record<RougeType, RougeScore> {
  const op = 'rouge';
  const r = resolve(op, opts);
  checkString(op, 'prediction', prediction);
  return best(prediction, checkReferences(op, 'reference', reference), r);
}

/** The scores of `prediction` against the reference with the highest F of each type. */
function best(prediction: string, refs: readonly string[], r: ResolvedRouge): Record<RougeType, RougeScore> {
  const all = refs.map((ref) => scoreOne(prediction, ref, r.types, r.tok));
  const out: Record<string, RougeScore> = {};
  for (const t of r.types) {
    // the first reference wins ties
    let b = all[0]![t]!;
    for (const s of all) if (s[t]!.fmeasure > b.fmeasure) b = s[t]!;
    out[t] = b;
  }
  return out as Record<RougeType, RougeScore>;
}

/**
 * ROUGE averaged over a corpus: the arithmetic mean of each per-pair precision, recall and
 * F-measure (no bootstrap resampling; rouge-score's `BootstrapAggregator` reports a resampled
 * estimate of the same mean).
 */
export function corpusRouge(
  predictions: readonly string[],
  references: readonly (string | readonly string[])[],
  opts: RougeOptions = {},
): Record<RougeType, RougeScore> {
  const op = 'corpusRouge';
  const c = checkCorpus(op, predictions, references, { predictions: 'predictions', references: 'references' });
  if (c.predictions.length === 0) throw new Error(`${op}: no predictions`);
  const r = resolve(op, opts);
  const sum: Record<string, RougeScore> = {};
  for (const t of r.types) sum[t] = { precision: 0, recall: 0, fmeasure: 0 };
  c.predictions.forEach((p, i) => {
    const s = best(p, c.references[i]!, r);
    for (const t of r.types) {
      sum[t]!.precision += s[t].precision;
      sum[t]!.recall += s[t].recall;
      sum[t]!.fmeasure += s[t].fmeasure;
    }
  });
  const k = c.predictions.length;
  for (const t of r.types) sum[t] = { precision: sum[t]!.precision / k, recall: sum[t]!.recall / k, fmeasure: sum[t]!.fmeasure / k };
  return sum as Record<RougeType, RougeScore>;
}
