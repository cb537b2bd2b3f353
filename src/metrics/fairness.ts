/**
 * Group-fairness measures of a classifier with fairlearn's definitions
 * (`fairlearn.metrics.demographic_parity_*` and `equalized_odds_*`, with the `agg` option of
 * recent releases), and counterfactual token swaps for a language model. Checked against
 * fairlearn's user-guide example ("Common fairness metrics") and hand-computed rates.
 *
 * Group measures:
 * - selection rate of a group: the (weighted) fraction of its predictions equal to `posLabel`;
 *   TPR: the fraction of its true positives predicted positive; FPR: the fraction of its true
 *   negatives predicted positive. A group with no true positives (negatives) has TPR (FPR) 0, as
 *   fairlearn's rates from scikit-learn's normalised confusion matrix are.
 * - `method: 'between_groups'` (default): difference = max − min over groups, ratio = min / max;
 *   `'to_overall'`: difference = max over groups of |rate − overall rate|, ratio = min over
 *   groups of min(rate / overall, overall / rate), the overall rate being that of all samples.
 *   A ratio whose denominator is 0 is NaN, as in fairlearn (0/0); for equalized odds, a NaN
 *   ratio is left out of the mean, and the worst case is the TPR ratio unless the FPR ratio is
 *   smaller, as fairlearn's `min` over the two and pandas' `mean` give.
 * - Demographic parity: of the selection rates. Equalized odds: the larger (`agg: 'worst_case'`,
 *   default) or the mean (`'mean'`) of the TPR and FPR differences; for the ratio, the smaller or
 *   the mean of the TPR and FPR ratios.
 * - Without `posLabel`, labels must be 0/1, −1/1 or booleans, and 1 (true) is positive (as
 *   fairlearn's rates require; stricter than its `selection_rate`, which counts 1s among any
 *   labels); equalized odds needs at most two distinct labels over `yTrue` and `yPred`.
 *
 * Counterfactual swaps ({@link counterfactualSwaps}): for each prompt that contains a group term
 * (a whole word of a supplied pair, such as he ↔ she), the prompt with every such term swapped
 * (case kept: He → She), both scored by a model's log-likelihood Σₜ log p(xₜ | x₍<ₜ₎); a fair
 * model scores the two alike. The log-likelihood is the sum `sequenceLogProbs` of the align layer
 * computes, written here with the tensor ops, since metrics sit below align.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { backendFor, defaultBackendName } from '../backend/registry.js';
import { tidy } from '../tensor/memory.js';
import { tensor } from '../tensor/ops/creation.js';
import { crossEntropy } from '../tensor/ops/nn.js';
import { narrow } from '../tensor/ops/shape_ops.js';
import { asOp } from '../tensor/ops/util.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { checkChoice, checkNumber, show } from '../tensor/validate.js';
import { checkOptions, checkString } from './check.js';
import { hostValues } from './read.js';

/** A label or a group: a number (not NaN), a string or a boolean. */
export type FairnessLabel = number | string | boolean;

/** How group rates are compared: with each other, or each with the rate over all samples. */
export type DisparityMethod = 'between_groups' | 'to_overall';

/** Options of {@link demographicParityDifference} and {@link demographicParityRatio}. */
export interface DemographicParityOptions {
  /** Default 'between_groups'. */
  method?: DisparityMethod;
  /** One weight ≥ 0 per sample; equal by default. */
  sampleWeight?: readonly number[];
  /** The positive prediction. Default 1 (true for boolean labels). */
  posLabel?: FairnessLabel;
}

/** Options of {@link equalizedOddsDifference} and {@link equalizedOddsRatio}. */
export interface EqualizedOddsOptions extends DemographicParityOptions {
  /** 'worst_case' (default): the larger difference (smaller ratio) of TPR and FPR; 'mean': their mean. */
  agg?: 'worst_case' | 'mean';
}

function checkLabels(op: string, what: string, x: unknown): FairnessLabel[] {
  let xs: readonly unknown[];
  if (x instanceof Tensor) {
    if (x.disposed) throw new Error(`${op}: ${what} is a disposed tensor`);
    if (x.rank > 1) throw new Error(`${op}: ${what} must be a 1-d tensor, got shape ${fmt(x.shape)}`);
    xs = Array.from(hostValues(op, what, x));
  } else if (Array.isArray(x)) xs = x;
  else throw new Error(`${op}: ${what} must be an array of labels or a 1-d Tensor, got ${show(x)}`);
  xs.forEach((v, i) => {
    const ok = typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && !Number.isNaN(v));
    if (!ok) throw new Error(`${op}: ${what}[${i}] must be a number, string or boolean, got ${show(v)}`);
  });
  return xs as FairnessLabel[];
}

interface Common {
  method: DisparityMethod;
  weights: readonly number[] | null;
  posLabel: FairnessLabel | undefined;
}

function common(op: string, o: DemographicParityOptions, n: number): Common {
  const method = o.method === undefined ? 'between_groups' : checkChoice(op, 'method', o.method, ['between_groups', 'to_overall'] as const);
  let weights: readonly number[] | null = null;
  if (o.sampleWeight !== undefined) {
    if (!Array.isArray(o.sampleWeight)) throw new Error(`${op}: sampleWeight must be an array of numbers ≥ 0, got ${show(o.sampleWeight)}`);
    if (o.sampleWeight.length !== n) throw new Error(`${op}: sampleWeight has ${o.sampleWeight.length} weights but there are ${n} samples`);
    o.sampleWeight.forEach((w, i) => checkNumber(op, `sampleWeight[${i}]`, w, { min: 0 }));
    weights = o.sampleWeight;
  }
  let posLabel: FairnessLabel | undefined;
  if (o.posLabel !== undefined) {
    const p: unknown = o.posLabel;
    if (!(typeof p === 'string' || typeof p === 'boolean' || (typeof p === 'number' && !Number.isNaN(p))))
      throw new Error(`${op}: posLabel must be a number, string or boolean, got ${show(p)}`);
    posLabel = p as FairnessLabel;
  }
  return { method, weights, posLabel };
}

/** The positive label: `posLabel`, or 1 / true when every label is 0/1, −1/1 or boolean. */
function positive(op: string, posLabel: FairnessLabel | undefined, ...lists: FairnessLabel[][]): FairnessLabel {
  if (posLabel !== undefined) return posLabel;
  const all = new Set(lists.flat());
  const bools = [...all].every((l) => typeof l === 'boolean');
  if (bools) return true;
  if ([...all].every((l) => l === 0 || l === 1) || [...all].every((l) => l === -1 || l === 1)) return 1;
  const shown = [...all].slice(0, 4).map((l) => show(l)).join(', ');
  throw new Error(`${op}: labels must be 0/1, -1/1 or booleans unless posLabel says which is positive, got ${shown}`);
}

/** Groups in first-seen order, and the sample indices of each. */
function groupIndices(groups: FairnessLabel[]): Map<FairnessLabel, number[]> {
  const m = new Map<FairnessLabel, number[]>();
  groups.forEach((g, i) => {
    let l = m.get(g);
    if (!l) m.set(g, (l = []));
    l.push(i);
  });
  return m;
}

/** Σ w over `idx` where `num` holds, over Σ w over `idx` where `den` holds (0 when the latter is 0). */
function rate(idx: Iterable<number>, w: readonly number[] | null, den: (i: number) => boolean, num: (i: number) => boolean): number {
  let a = 0;
  let b = 0;
  for (const i of idx) {
    if (!den(i)) continue;
    const wi = w ? w[i]! : 1;
    b += wi;
    if (num(i)) a += wi;
  }
  return b > 0 ? a / b : 0;
}

function difference(rates: number[], overall: number, method: DisparityMethod): number {
  if (method === 'to_overall') return Math.max(...rates.map((r) => Math.abs(r - overall)));
  return Math.max(...rates) - Math.min(...rates);
}

function ratio(rates: number[], overall: number, method: DisparityMethod): number {
  if (method === 'to_overall') return Math.min(...rates.map((r) => Math.min(r / overall, overall / r)));
  return Math.min(...rates) / Math.max(...rates);
}

interface Rates {
  method: DisparityMethod;
  groups: number[][];
  overall: number[];
}

function selectionRates(op: string, yPred: unknown, groups: unknown, opts: DemographicParityOptions | undefined): Rates {
  const o = checkOptions(op, opts, ['method', 'sampleWeight', 'posLabel']);
  const p = checkLabels(op, 'yPred', yPred);
  const g = checkLabels(op, 'groups', groups);
  if (p.length !== g.length) throw new Error(`${op}: yPred has ${p.length} labels but groups has ${g.length}`);
  if (p.length === 0) throw new Error(`${op}: no samples (yPred is empty)`);
  const c = common(op, o, p.length);
  const pos = positive(op, c.posLabel, p);
  const all = () => true;
  const sel = (i: number) => p[i] === pos;
  const byGroup = [...groupIndices(g).values()];
  return { method: c.method, groups: [byGroup.map((idx) => rate(idx, c.weights, all, sel))], overall: [rate(p.keys(), c.weights, all, sel)] };
}

function oddsRates(op: string, yTrue: unknown, yPred: unknown, groups: unknown, opts: EqualizedOddsOptions | undefined): Rates & { agg: 'worst_case' | 'mean' } {
  const o = checkOptions(op, opts, ['method', 'sampleWeight', 'posLabel', 'agg']);
  const t = checkLabels(op, 'yTrue', yTrue);
  const p = checkLabels(op, 'yPred', yPred);
  const g = checkLabels(op, 'groups', groups);
  if (t.length !== p.length) throw new Error(`${op}: yTrue has ${t.length} labels but yPred has ${p.length}`);
  if (g.length !== t.length) throw new Error(`${op}: yTrue has ${t.length} labels but groups has ${g.length}`);
  if (t.length === 0) throw new Error(`${op}: no samples (yTrue is empty)`);
  const c = common(op, o, t.length);
  const agg = o.agg === undefined ? 'worst_case' : checkChoice(op, 'agg', o.agg, ['worst_case', 'mean'] as const);
  const distinct = new Set([...t, ...p]);
  if (distinct.size > 2) throw new Error(`${op}: yTrue and yPred must hold at most two distinct labels, got ${distinct.size} (${[...distinct].slice(0, 4).map((l) => show(l)).join(', ')}, …)`);
  const pos = positive(op, c.posLabel, t, p);
  const isPos = (i: number) => t[i] === pos;
  const isNeg = (i: number) => t[i] !== pos;
  const predPos = (i: number) => p[i] === pos;
  const byGroup = [...groupIndices(g).values()];
  const tpr = byGroup.map((idx) => rate(idx, c.weights, isPos, predPos));
  const fpr = byGroup.map((idx) => rate(idx, c.weights, isNeg, predPos));
  return { method: c.method, agg, groups: [tpr, fpr], overall: [rate(t.keys(), c.weights, isPos, predPos), rate(t.keys(), c.weights, isNeg, predPos)] };
}

/**
 * fairlearn's `demographic_parity_difference`: the largest minus the smallest selection rate
 * over the groups (0: every group is selected at the same rate).
 *
 * @example
 * demographicParityDifference([1, 1, 0, 1, 0, 0], ['a', 'a', 'a', 'b', 'b', 'b']); // 2/3 − 1/3
 */
export function demographicParityDifference(yPred: readonly FairnessLabel[] | Tensor, groups: readonly FairnessLabel[] | Tensor, opts: DemographicParityOptions = {}): number {
  const r = selectionRates('demographicParityDifference', yPred, groups, opts);
  return difference(r.groups[0]!, r.overall[0]!, r.method);
}

/** fairlearn's `demographic_parity_ratio`: the smallest over the largest selection rate (1: parity). */
export function demographicParityRatio(yPred: readonly FairnessLabel[] | Tensor, groups: readonly FairnessLabel[] | Tensor, opts: DemographicParityOptions = {}): number {
  const r = selectionRates('demographicParityRatio', yPred, groups, opts);
  return ratio(r.groups[0]!, r.overall[0]!, r.method);
}

/**
 * fairlearn's `equalized_odds_difference`: the larger of the TPR difference and the FPR
 * difference over the groups (or their mean with `agg: 'mean'`).
 */
export function equalizedOddsDifference(
  yTrue: readonly FairnessLabel[] | Tensor,
  yPred: readonly FairnessLabel[] | Tensor,
  groups: readonly FairnessLabel[] | Tensor,
  opts: EqualizedOddsOptions = {},
): number {
  const r = oddsRates('equalizedOddsDifference', yTrue, yPred, groups, opts);
  const d = r.groups.map((rates, k) => difference(rates, r.overall[k]!, r.method));
  return r.agg === 'mean' ? (d[0]! + d[1]!) / 2 : Math.max(d[0]!, d[1]!);
}

/** fairlearn's `equalized_odds_ratio`: the smaller of the TPR ratio and the FPR ratio (or their mean). */
export function equalizedOddsRatio(
  yTrue: readonly FairnessLabel[] | Tensor,
  yPred: readonly FairnessLabel[] | Tensor,
  groups: readonly FairnessLabel[] | Tensor,
  opts: EqualizedOddsOptions = {},
): number {
  const r = oddsRates('equalizedOddsRatio', yTrue, yPred, groups, opts);
  const q = r.groups.map((rates, k) => ratio(rates, r.overall[k]!, r.method));
  const [tpr, fpr] = q as [number, number];
  // as fairlearn: pandas' mean skips a NaN (a 0/0 ratio); Python's min keeps the TPR ratio unless the FPR one is smaller
  if (r.agg === 'mean') return Number.isNaN(tpr) ? fpr : Number.isNaN(fpr) ? tpr : (tpr + fpr) / 2;
  return fpr < tpr ? fpr : tpr;
}

// ---- counterfactual token swaps --------------------------------------------------------

/** A language model: idx `[1, T]` i32 → logits `[1, T, V]` (a GPT, or anything whose forward gives `{ logits }` or the logits). */
export interface CounterfactualModel {
  forward(idx: Tensor): { logits: Tensor } | Tensor;
}

/** What {@link counterfactualSwaps} needs of a tokenizer. */
export interface CounterfactualTokenizer {
  encode(text: string): ArrayLike<number>;
}

/** Options of {@link counterfactualSwaps}. */
export interface CounterfactualOptions {
  /** Token ids put before every text and not scored (a BOS token); without them the first token is not scored. */
  prefix?: readonly number[];
  /** Backend of the id tensors: the model's parameters' backend, else the default backend. */
  backend?: string;
}

/** One prompt and its swapped counterpart, each with its log-likelihood (nats) and scored tokens. */
export interface CounterfactualItem {
  /** Index of the prompt in `prompts`. */
  index: number;
  original: string;
  swapped: string;
  /** Indices into `pairs` of the pairs whose terms the prompt contains. */
  pairs: number[];
  originalLogLik: number;
  swappedLogLik: number;
  originalTokens: number;
  swappedTokens: number;
  /** swappedLogLik − originalLogLik. */
  difference: number;
}

/** Per supplied pair [a, b]: the mean of log p(text with b) − log p(text with a) over the prompts that hold only one of its terms. */
export interface CounterfactualPairSummary {
  pair: [string, string];
  count: number;
  meanDifference: number;
}

/** What {@link counterfactualSwaps} returns. */
export interface CounterfactualResult {
  items: CounterfactualItem[];
  /** Indices of the prompts with no group term (not scored). */
  skipped: number[];
  byPair: CounterfactualPairSummary[];
  /** Mean of `difference` over the items (NaN when there are none). */
  meanDifference: number;
  /** Mean of |difference| over the items (NaN when there are none). */
  meanAbsDifference: number;
}

// a word: a run of letters, digits and marks (an apostrophe ends it, so "he's" swaps to "she's")
const WORD = /[\p{L}\p{N}\p{M}]+/gu;

function keepCase(template: string, word: string): string {
  if (template === template.toLowerCase()) return word;
  if (template === template.toUpperCase() && template.length > 1) return word.toUpperCase();
  if (template[0] === template[0]!.toUpperCase()) return word.charAt(0).toUpperCase() + word.slice(1);
  return word;
}

function swapTable(op: string, pairs: unknown): { map: Map<string, { to: string; pair: number; first: boolean }>; list: [string, string][] } {
  if (!Array.isArray(pairs) || pairs.length === 0) throw new Error(`${op}: pairs must be a non-empty array of [term, term] pairs, got ${show(pairs)}`);
  const map = new Map<string, { to: string; pair: number; first: boolean }>();
  const list: [string, string][] = [];
  pairs.forEach((p, k) => {
    if (!Array.isArray(p) || p.length !== 2) throw new Error(`${op}: pairs[${k}] must be a pair [term, term], got ${show(p)}`);
    const [a, b] = p.map((t, j) => {
      checkString(op, `pairs[${k}][${j}]`, t);
      const w = (t as string).toLowerCase();
      if (w.match(WORD)?.[0] !== w) throw new Error(`${op}: pairs[${k}][${j}] must be one word, got ${show(t)}`);
      return w;
    }) as [string, string];
    if (a === b) throw new Error(`${op}: pairs[${k}] swaps '${a}' with itself`);
    for (const [w, to, first] of [[a, b, true], [b, a, false]] as const) {
      const had = map.get(w);
      if (had) throw new Error(`${op}: '${w}' is in pairs[${had.pair}] and pairs[${k}]; each term may be in one pair only (a swap must be one-to-one)`);
      map.set(w, { to, pair: k, first });
    }
    list.push([a, b]);
  });
  return { map, list };
}

function checkIds(op: string, what: string, ids: unknown): number[] {
  if (!Array.isArray(ids) && !ArrayBuffer.isView(ids)) throw new Error(`${op}: ${what} must be an array of token ids, got ${show(ids)}`);
  const out = Array.from(ids as ArrayLike<unknown>);
  out.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1) throw new Error(`${op}: ${what}[${i}] must be a token id (an integer ≥ 0), got ${show(v)}`);
  });
  return out as number[];
}

/** Σ log p(tokens[t] | tokens[<t]) over t ≥ start, and how many tokens that is. */
async function logLikelihood(op: string, model: CounterfactualModel, ids: number[], start: number, backend: string): Promise<{ ll: number; tokens: number }> {
  const n = ids.length;
  if (n - start <= 0 || n < 2) return { ll: 0, tokens: 0 };
  const idx = tensor(Int32Array.from(ids), [1, n], { backend, dtype: 'i32' });
  // targets [1, n−1]: position t predicts ids[t+1]; positions before `start` do not count
  const targets = tensor(Int32Array.from(ids.slice(1), (v, t) => (t + 1 >= start ? v : -100)), [1, n - 1], { backend, dtype: 'i32' });
  try {
    const total = tidy(() =>
      noGrad(() => {
        const out = model.forward(idx);
        const logits = out instanceof Tensor ? out : out?.logits;
        if (!(logits instanceof Tensor) || logits.rank !== 3 || logits.shape[0] !== 1 || logits.shape[1] !== n)
          throw new Error(`${op}: the model must map idx [1, ${n}] to logits [1, ${n}, V], got ${logits instanceof Tensor ? fmt(logits.shape) : show(logits)}`);
        return asOp(op, () => crossEntropy(narrow(logits, 1, 0, n - 1), targets, { reduction: 'none' }).sum().neg());
      }),
    );
    try {
      const v = (await total.data())[0]!;
      return { ll: Number(v), tokens: n - Math.max(start, 1) };
    } finally {
      total.dispose();
    }
  } finally {
    idx.dispose();
    targets.dispose();
  }
}

/**
 * Counterfactual token swaps: for each prompt holding a term of `pairs` (whole words, any case),
 * the prompt with every such term replaced by its partner, and both texts' log-likelihoods under
 * `model` (in eval mode, without gradients; its mode is restored after). Reports each pair of
 * texts, the mean difference per supplied pair, and the mean (and mean absolute) difference
 * swapped − original. Prompts with no term are listed in `skipped`.
 *
 * @example
 * const r = await counterfactualSwaps(gpt, tok, ['He is a doctor.', 'She said no.'], [['he', 'she']]);
 * r.items[0].swapped; // 'She is a doctor.'
 * r.meanAbsDifference; // nats; 0 for a model that ignores the term
 */
export async function counterfactualSwaps(
  model: CounterfactualModel,
  tokenizer: CounterfactualTokenizer,
  prompts: readonly string[],
  pairs: readonly (readonly [string, string])[],
  opts: CounterfactualOptions = {},
): Promise<CounterfactualResult> {
  const op = 'counterfactualSwaps';
  if (model === null || typeof model !== 'object' || typeof (model as { forward?: unknown }).forward !== 'function')
    throw new Error(`${op}: model must have forward(idx) → logits (a GPT), got ${show(model)}`);
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof (tokenizer as { encode?: unknown }).encode !== 'function')
    throw new Error(`${op}: tokenizer must have encode(text) → token ids, got ${show(tokenizer)}`);
  if (!Array.isArray(prompts)) throw new Error(`${op}: prompts must be an array of strings, got ${show(prompts)}`);
  prompts.forEach((p, i) => checkString(op, `prompts[${i}]`, p));
  const { map, list } = swapTable(op, pairs);
  const o = checkOptions(op, opts, ['prefix', 'backend']);
  const prefix = o.prefix === undefined ? [] : checkIds(op, 'prefix', o.prefix);
  if (o.backend !== undefined) {
    if (typeof o.backend !== 'string') throw new Error(`${op}: backend must be a backend's name, got ${show(o.backend)}`);
    backendFor(op, o.backend);
  }
  const first = (model as { parameters?: () => Tensor[] }).parameters?.()[0];
  const backend = o.backend ?? first?.backend.name ?? defaultBackendName();
  const encode = (text: string) => [...prefix, ...checkIds(op, `tokenizer.encode(${show(text)})`, tokenizer.encode(text))];

  const trainable = model as { train?: (mode?: boolean) => unknown; training?: boolean };
  const wasTraining = typeof trainable.train === 'function' && typeof trainable.training === 'boolean' ? trainable.training : null;
  if (wasTraining !== null) trainable.train!(false);
  const items: CounterfactualItem[] = [];
  const skipped: number[] = [];
  const sums = list.map(() => ({ n: 0, sum: 0 }));
  try {
    for (let i = 0; i < prompts.length; i++) {
      const text = prompts[i]!;
      const seen = new Map<number, { first: boolean; second: boolean }>();
      const swapped = text.replace(WORD, (w: string) => {
        const hit = map.get(w.toLowerCase());
        if (!hit) return w;
        const s = seen.get(hit.pair) ?? { first: false, second: false };
        if (hit.first) s.first = true;
        else s.second = true;
        seen.set(hit.pair, s);
        return keepCase(w, hit.to);
      });
      if (seen.size === 0) {
        skipped.push(i);
        continue;
      }
      const a = await logLikelihood(op, model, encode(text), prefix.length, backend);
      const b = await logLikelihood(op, model, encode(swapped), prefix.length, backend);
      const difference = b.ll - a.ll;
      for (const [k, s] of seen) {
        if (s.first === s.second) continue; // both terms: no direction a → b
        sums[k]!.n++;
        sums[k]!.sum += s.first ? difference : -difference;
      }
      items.push({
        index: i,
        original: text,
        swapped,
        pairs: [...seen.keys()].sort((x, y) => x - y),
        originalLogLik: a.ll,
        swappedLogLik: b.ll,
        originalTokens: a.tokens,
        swappedTokens: b.tokens,
        difference,
      });
    }
  } finally {
    if (wasTraining !== null) trainable.train!(wasTraining);
  }
  const mean = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);
  return {
    items,
    skipped,
    byPair: list.map((pair, k) => ({ pair, count: sums[k]!.n, meanDifference: sums[k]!.n ? sums[k]!.sum / sums[k]!.n : NaN })),
    meanDifference: mean(items.map((it) => it.difference)),
    meanAbsDifference: mean(items.map((it) => Math.abs(it.difference))),
  };
}
