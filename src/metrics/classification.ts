/**
 * Classification metrics with scikit-learn's definitions: accuracy, top-k accuracy from scores
 * (logits or probabilities), precision / recall / F-beta with binary, micro, macro and weighted
 * averages, per-class reports and the confusion matrix.
 *
 * Zero division. A ratio whose denominator is 0 (precision with no predicted positives, recall
 * with no true positives in the data, F when TP + FP + FN = 0) takes the value `zeroDivision`:
 * 0 by default, which is scikit-learn's `zero_division="warn"` result without the warning; 1 or
 * NaN on request (NaN entries are left out of macro and weighted averages, as scikit-learn ≥ 1.3
 * does). F is computed from counts, (1+β²)·TP / ((1+β²)·TP + β²·FN + FP), as scikit-learn ≥ 1.3
 * does, so a class with TP = 0 but some FP or FN scores F = 0 whatever `zeroDivision` is.
 *
 * Labels may be numbers, strings or booleans (one kind per call), or an integer kiln tensor;
 * the classes are the sorted union of the labels seen in `yTrue` and `yPred` unless `labels`
 * names them. Tensors are read at once where the backend allows it (`ref`, `cpu`); tensors on
 * a GPU backend must be read first (`Array.from(await t.data())`), so the sync is the caller's.
 * @module
 */
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { checkNumber, show } from '../tensor/validate.js';
import { checkOptions, optionalBoolean } from './check.js';
import { hostValues } from './read.js';

/** A class label. */
export type Label = number | string | boolean;

/** A sequence of labels: an array or a kiln tensor (on a backend the host can read at once). */
export type Labels = readonly Label[] | Tensor;

/** Class scores per sample: `[N][C]` numbers, or a kiln tensor `[..., C]`. */
export type Scores = readonly (readonly number[])[] | Tensor;

/**
 * How per-class scores are combined: `'binary'` reports the class `posLabel` only (at most two
 * classes allowed); `'micro'` pools TP, FP and FN over the classes; `'macro'` is the unweighted
 * mean over classes; `'weighted'` the mean weighted by each class's support (true count).
 */
export type Average = 'binary' | 'micro' | 'macro' | 'weighted';

/** Why `l` is not a label (null when it is one). */
function badLabel(l: unknown): string | null {
  const k = typeof l;
  if (k === 'number') return Number.isNaN(l) ? 'NaN' : null;
  if (k === 'string' || k === 'boolean') return null;
  return show(l);
}

/** Check that every element of `xs` is a label (a number that is not NaN, a string or a boolean). */
function checkLabelList(op: string, what: string, xs: readonly unknown[]): Label[] {
  for (let i = 0; i < xs.length; i++) {
    const why = badLabel(xs[i]);
    if (why !== null) throw new Error(`${op}: ${what}[${i}] must be a number, string or boolean label, got ${why}`);
  }
  return xs as Label[];
}

function readLabels(op: string, what: string, x: unknown): Label[] {
  if (x instanceof Tensor) {
    if (x.disposed) throw new Error(`${op}: ${what} is a disposed tensor`);
    if (x.rank > 1) throw new Error(`${op}: ${what} must be a 1-d tensor of labels, got shape ${fmt(x.shape)}`);
    return checkLabelList(op, what, Array.from(hostValues(op, what, x)));
  }
  if (!Array.isArray(x)) throw new Error(`${op}: ${what} must be an array of labels or a Tensor, got ${show(x)}`);
  return checkLabelList(op, what, x);
}

/** The `labels` option: a non-empty array of distinct labels. */
function readLabelOption(op: string, labels: unknown): Label[] {
  if (!Array.isArray(labels) || labels.length === 0) throw new Error(`${op}: labels must be a non-empty array of labels, got ${show(labels)}`);
  const ls = [...checkLabelList(op, 'labels', labels)];
  const seen = new Set<Label>();
  for (const l of ls) {
    if (seen.has(l)) throw new Error(`${op}: labels contains duplicates (${show(l)} twice)`);
    seen.add(l);
  }
  return ls;
}

/** The sorted distinct labels of the arrays (numbers numerically, strings by code unit, false < true). */
function uniqueSorted(op: string, ...arrays: Label[][]): Label[] {
  const seen = new Set<Label>();
  let kind: string | null = null;
  for (const a of arrays)
    for (const l of a) {
      const k = typeof l;
      if (kind === null) kind = k;
      else if (kind !== k) throw new Error(`${op}: labels mix ${kind}s and ${k}s (${show(l)}); use one kind of label`);
      seen.add(l);
    }
  const out = [...seen];
  if (kind === 'number') (out as number[]).sort((a, b) => a - b);
  else if (kind === 'string') (out as string[]).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  else out.sort((a, b) => Number(a) - Number(b));
  return out;
}

function pair(op: string, yTrue: unknown, yPred: unknown): [Label[], Label[]] {
  const t = readLabels(op, 'yTrue', yTrue);
  const p = readLabels(op, 'yPred', yPred);
  if (t.length !== p.length) throw new Error(`${op}: yTrue has ${t.length} labels but yPred has ${p.length}`);
  return [t, p];
}

/** Options of {@link accuracy}. */
export interface AccuracyOptions {
  /** Return the fraction correct (default) or, when false, the number correct. */
  normalize?: boolean;
}

/**
 * Fraction of samples whose predicted label equals the true one (`sklearn.metrics.accuracy_score`).
 * Throws on empty input.
 *
 * @example
 * accuracy([0, 1, 2, 3], [0, 2, 1, 3]); // 0.5
 */
export function accuracy(yTrue: Labels, yPred: Labels, opts: AccuracyOptions = {}): number {
  const o = checkOptions('accuracy', opts, ['normalize']);
  const normalize = optionalBoolean('accuracy', 'normalize', o.normalize, true);
  const [t, p] = pair('accuracy', yTrue, yPred);
  if (t.length === 0) throw new Error('accuracy: no samples');
  uniqueSorted('accuracy', t, p);
  let correct = 0;
  for (let i = 0; i < t.length; i++) if (t[i] === p[i]) correct++;
  return normalize ? correct / t.length : correct;
}

/** Options of {@link topKAccuracy}. */
export interface TopKAccuracyOptions {
  /** A sample is correct when its true class is among the k highest scores. Default 1. */
  k?: number;
  /** Samples whose target equals this are skipped (padding in language-model batches). */
  ignoreIndex?: number;
  /** Return the fraction correct (default) or, when false, the number correct. */
  normalize?: boolean;
}

/**
 * Top-k accuracy from class scores (logits, log-probabilities or probabilities: any monotone
 * transform gives the same answer). `scores` is `[N][C]` or a tensor `[..., C]` whose leading
 * axes match `targets` (so a language model's `[B, T, V]` logits against `[B, T]` targets work
 * directly); targets are class indices in [0, C).
 *
 * Ties: a sample is correct when fewer than k classes rank above its true class, where class j
 * ranks above class y if s_j > s_y, or s_j = s_y and j < y (the lower index wins, as `argmax`).
 * With k = 1 this is the accuracy of `argmax(scores)`. (scikit-learn's `top_k_accuracy_score`
 * breaks ties the other way.) NaN scores throw.
 *
 * @example
 * topKAccuracy([0, 1, 2, 2], [[0.5, 0.2, 0.2], [0.3, 0.4, 0.2], [0.2, 0.4, 0.3], [0.7, 0.2, 0.1]], { k: 2 }); // 0.75
 */
export function topKAccuracy(targets: Labels, scores: Scores, opts: TopKAccuracyOptions = {}): number {
  const op = 'topKAccuracy';
  const o = checkOptions(op, opts, ['k', 'ignoreIndex', 'normalize']);
  const k = o.k === undefined ? 1 : checkNumber(op, 'k', o.k, { integer: true, min: 1 });
  const ignoreIndex = o.ignoreIndex === undefined ? undefined : checkNumber(op, 'ignoreIndex', o.ignoreIndex, { integer: true });
  const normalize = optionalBoolean(op, 'normalize', o.normalize, true);
  // shapes first, values after: a mismatch is reported without reading a tensor
  let n: number;
  let c: number;
  let rows: (readonly number[])[] | null = null;
  if (scores instanceof Tensor) {
    if (scores.disposed) throw new Error(`${op}: scores is a disposed tensor`);
    if (scores.rank < 1) throw new Error(`${op}: scores must have a class axis, got shape ${fmt(scores.shape)}`);
    c = scores.shape[scores.rank - 1]!;
    n = scores.size / Math.max(c, 1);
    if (targets instanceof Tensor) {
      const lead = scores.shape.slice(0, -1);
      if (targets.rank !== lead.length || targets.shape.some((d, i) => d !== lead[i]))
        throw new Error(`${op}: scores ${fmt(scores.shape)} must be targets ${fmt(targets.shape)} plus a class axis`);
    }
  } else {
    if (!Array.isArray(scores)) throw new Error(`${op}: scores must be an array of rows or a Tensor, got ${show(scores)}`);
    n = scores.length;
    rows = scores.map((row, i) => checkRow(op, i, row));
    c = n > 0 ? rows[0]!.length : 0;
    rows.forEach((row, i) => {
      if (row.length !== c) throw new Error(`${op}: score row ${i} has ${row.length} classes, row 0 has ${c}`);
    });
  }
  let targetCount: number;
  if (targets instanceof Tensor) {
    if (targets.disposed) throw new Error(`${op}: targets is a disposed tensor`);
    targetCount = targets.size;
  } else if (Array.isArray(targets)) targetCount = targets.length;
  else throw new Error(`${op}: targets must be an array of class indices or a Tensor, got ${show(targets)}`);
  if (targetCount !== n) throw new Error(`${op}: ${targetCount} targets but ${n} rows of scores`);
  let flat: ArrayLike<number>;
  if (rows) {
    const f = new Float64Array(n * c);
    rows.forEach((row, i) => {
      for (let j = 0; j < c; j++) f[i * c + j] = row[j]!;
    });
    flat = f;
  } else flat = hostValues(op, 'scores', scores as Tensor);
  const y: readonly unknown[] = targets instanceof Tensor ? Array.from(hostValues(op, 'targets', targets)) : (targets as readonly unknown[]);
  let counted = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const t = y[i] as number;
    if (ignoreIndex !== undefined && t === ignoreIndex) continue;
    if (!(Number.isInteger(t) && t >= 0 && t < c)) throw new Error(`${op}: target ${show(t)} at sample ${i} is not a class index in [0, ${c})`);
    const st = flat[i * c + t]!;
    if (Number.isNaN(st)) throw new Error(`${op}: NaN score at sample ${i}`);
    let above = 0;
    for (let j = 0; j < c; j++) {
      const s = flat[i * c + j]!;
      if (Number.isNaN(s)) throw new Error(`${op}: NaN score at sample ${i}`);
      if (s > st || (s === st && j < t)) above++;
    }
    counted++;
    if (above < k) correct++;
  }
  if (!normalize) return correct;
  if (counted === 0) throw new Error(`${op}: no samples to score`);
  return correct / counted;
}

/** Row `i` of array scores: an array of numbers. */
function checkRow(op: string, i: number, row: unknown): readonly number[] {
  if (!Array.isArray(row)) throw new Error(`${op}: scores[${i}] must be an array of numbers, got ${show(row)}`);
  for (let j = 0; j < row.length; j++)
    if (typeof row[j] !== 'number') throw new Error(`${op}: scores[${i}][${j}] must be a number, got ${show(row[j])}`);
  return row as readonly number[];
}

/** The index of the largest score of each row (the first on ties), e.g. predicted classes from logits. */
export function argmaxRows(scores: Scores): number[] {
  let rows: readonly (readonly number[])[];
  if (scores instanceof Tensor) {
    if (scores.disposed) throw new Error('argmaxRows: scores is a disposed tensor');
    const c = scores.shape[scores.rank - 1] ?? 0;
    if (scores.rank < 1 || c === 0) throw new Error(`argmaxRows: scores need a non-empty class axis, got shape ${fmt(scores.shape)}`);
    const d = hostValues('argmaxRows', 'scores', scores);
    const out: number[][] = [];
    for (let i = 0; i < d.length; i += c) out.push(Array.from(d.subarray(i, i + c)));
    rows = out;
  } else if (Array.isArray(scores)) rows = scores.map((row, i) => checkRow('argmaxRows', i, row));
  else throw new Error(`argmaxRows: scores must be an array of rows or a Tensor, got ${show(scores)}`);
  return rows.map((r, i) => {
    if (r.length === 0) throw new Error(`argmaxRows: row ${i} is empty (scores[${i}] is [])`);
    let best = 0;
    for (let j = 1; j < r.length; j++) if (r[j]! > r[best]! || (Number.isNaN(r[j]!) && !Number.isNaN(r[best]!))) best = j;
    return best;
  });
}

/** Options of {@link confusionMatrix}. */
export interface ConfusionMatrixOptions {
  /** The classes and their order; samples with other labels are ignored. Default: the sorted labels seen. */
  labels?: readonly Label[];
}

/** A confusion matrix: `matrix[i][j]` counts samples of true class `labels[i]` predicted as `labels[j]`. */
export interface ConfusionMatrix {
  labels: Label[];
  matrix: number[][];
}

/**
 * The confusion matrix, rows true classes and columns predicted ones (`sklearn.metrics.confusion_matrix`).
 * For binary labels [0, 1] the counts are `[[TN, FP], [FN, TP]]`.
 */
export function confusionMatrix(yTrue: Labels, yPred: Labels, opts: ConfusionMatrixOptions = {}): ConfusionMatrix {
  const op = 'confusionMatrix';
  const o = checkOptions(op, opts, ['labels']);
  const given = o.labels === undefined ? undefined : readLabelOption(op, o.labels);
  const [t, p] = pair(op, yTrue, yPred);
  const labels = given ?? uniqueSorted(op, t, p);
  if (given) uniqueSorted(op, labels, t, p);
  const index = new Map<Label, number>(labels.map((l, i) => [l, i]));
  const matrix = labels.map(() => new Array<number>(labels.length).fill(0));
  for (let i = 0; i < t.length; i++) {
    const a = index.get(t[i]!);
    const b = index.get(p[i]!);
    if (a !== undefined && b !== undefined) matrix[a]![b]!++;
  }
  return { labels, matrix };
}

/** Options of {@link precisionRecallF1} and {@link classificationReport}. */
export interface PRFOptions {
  /** How classes combine; default `'binary'`. See {@link Average}. */
  average?: Average;
  /** The positive class for `average: 'binary'`. Default 1. */
  posLabel?: Label;
  /** The classes to score and their order (micro/macro/weighted). Default: the sorted labels seen. */
  labels?: readonly Label[];
  /** Value of a ratio with a zero denominator: 0 (default), 1 or NaN. */
  zeroDivision?: number;
  /** β of F-beta (recall weighted β times as much as precision). Default 1 (F1). */
  beta?: number;
}

/** Precision, recall and F-beta (named f1 whatever β is). */
export interface PRF {
  precision: number;
  recall: number;
  f1: number;
}

/** Per-class counts and scores, in the order of `labels`. */
export interface PerClassPRF {
  labels: Label[];
  precision: number[];
  recall: number[];
  f1: number[];
  /** Number of true samples of each class. */
  support: number[];
  tp: number[];
  fp: number[];
  fn: number[];
}

interface Counts {
  labels: Label[];
  tp: number[];
  fp: number[];
  fn: number[];
  support: number[];
}

const AVERAGES: readonly Average[] = ['binary', 'micro', 'macro', 'weighted'];

interface ResolvedPRF {
  zd: number;
  beta2: number;
  average: Average;
  posLabel: Label;
  labels: Label[] | undefined;
}

function checkPRFOptions(op: string, opts: PRFOptions | undefined): ResolvedPRF {
  const o = checkOptions(op, opts, ['average', 'posLabel', 'labels', 'zeroDivision', 'beta']);
  const zd: unknown = o.zeroDivision === undefined ? 0 : o.zeroDivision;
  if (!(zd === 0 || zd === 1 || Number.isNaN(zd))) throw new Error(`${op}: zeroDivision must be 0, 1 or NaN, got ${show(zd)}`);
  const beta = o.beta === undefined ? 1 : checkNumber(op, 'beta', o.beta, { min: 0 });
  const average = o.average === undefined ? 'binary' : o.average;
  if (!AVERAGES.includes(average)) throw new Error(`${op}: unknown average ${show(average)}; use 'binary', 'micro', 'macro' or 'weighted'`);
  const posLabel = o.posLabel === undefined ? 1 : o.posLabel;
  const why = badLabel(posLabel);
  if (why !== null) throw new Error(`${op}: posLabel must be a number, string or boolean label, got ${why}`);
  const labels = o.labels === undefined ? undefined : readLabelOption(op, o.labels);
  return { zd: zd as number, beta2: beta * beta, average, posLabel, labels };
}

function countsFor(op: string, t: Label[], p: Label[], labels: readonly Label[] | undefined): Counts {
  const present = uniqueSorted(op, t, p);
  let ls: Label[];
  if (labels) {
    ls = [...labels];
    uniqueSorted(op, ls, present);
  } else ls = present;
  const index = new Map<Label, number>(ls.map((l, i) => [l, i]));
  const z = () => new Array<number>(ls.length).fill(0);
  const tp = z();
  const fp = z();
  const fn = z();
  const support = z();
  for (let i = 0; i < t.length; i++) {
    const a = index.get(t[i]!);
    const b = index.get(p[i]!);
    if (a !== undefined) support[a]!++;
    if (a !== undefined && a === b) tp[a]!++;
    else {
      if (a !== undefined) fn[a]!++;
      if (b !== undefined) fp[b]!++;
    }
  }
  return { labels: ls, tp, fp, fn, support };
}

function ratio(num: number, den: number, zd: number): number {
  return den === 0 ? zd : num / den;
}

/** F-beta from counts: (1+β²)·TP / ((1+β²)·TP + β²·FN + FP). */
function fbeta(tp: number, fp: number, fn: number, beta2: number, zd: number): number {
  return ratio((1 + beta2) * tp, (1 + beta2) * tp + beta2 * fn + fp, zd);
}

/** Weighted mean leaving NaN entries out (NaN when nothing is left); `weights` undefined = equal. */
function nanAverage(values: number[], zd: number, weights?: number[]): number {
  let s = 0;
  let w = 0;
  for (let i = 0; i < values.length; i++) {
    if (Number.isNaN(values[i]!)) continue;
    const wi = weights ? weights[i]! : 1;
    s += wi * values[i]!;
    w += wi;
  }
  if (w === 0) {
    // every class had zero support (weighted) or every value was NaN
    return values.some((v) => !Number.isNaN(v)) ? zd : NaN;
  }
  return s / w;
}

function perClass(c: Counts, zd: number, beta2: number): PerClassPRF {
  const precision = c.labels.map((_, i) => ratio(c.tp[i]!, c.tp[i]! + c.fp[i]!, zd));
  const recall = c.labels.map((_, i) => ratio(c.tp[i]!, c.tp[i]! + c.fn[i]!, zd));
  const f1 = c.labels.map((_, i) => fbeta(c.tp[i]!, c.fp[i]!, c.fn[i]!, beta2, zd));
  return { labels: c.labels, precision, recall, f1, support: c.support, tp: c.tp, fp: c.fp, fn: c.fn };
}

function averaged(c: Counts, average: Exclude<Average, 'binary'>, zd: number, beta2: number): PRF {
  if (average === 'micro') {
    const tp = c.tp.reduce((a, b) => a + b, 0);
    const fp = c.fp.reduce((a, b) => a + b, 0);
    const fn = c.fn.reduce((a, b) => a + b, 0);
    return { precision: ratio(tp, tp + fp, zd), recall: ratio(tp, tp + fn, zd), f1: fbeta(tp, fp, fn, beta2, zd) };
  }
  const pc = perClass(c, zd, beta2);
  const w = average === 'weighted' ? c.support : undefined;
  return { precision: nanAverage(pc.precision, zd, w), recall: nanAverage(pc.recall, zd, w), f1: nanAverage(pc.f1, zd, w) };
}

/**
 * Precision, recall and F-beta (`sklearn.metrics.precision_recall_fscore_support`), averaged as
 * `average` says (default `'binary'` with `posLabel` 1). With every class included, micro
 * precision = micro recall = micro F1 = accuracy.
 *
 * @example
 * precisionRecallF1([0, 1, 2, 0, 1, 2], [0, 2, 1, 0, 0, 1], { average: 'macro' }); // { precision: 0.222…, recall: 0.333…, f1: 0.266… }
 * precisionRecallF1([0, 1, 1, 0], [0, 1, 0, 1]); // binary, positive class 1
 */
export function precisionRecallF1(yTrue: Labels, yPred: Labels, opts: PRFOptions = {}): PRF {
  return prf('precisionRecallF1', yTrue, yPred, opts);
}

function prf(op: string, yTrue: Labels, yPred: Labels, opts: PRFOptions | undefined): PRF {
  const { zd, beta2, average, posLabel: pos, labels } = checkPRFOptions(op, opts);
  const [t, p] = pair(op, yTrue, yPred);
  if (average === 'binary') {
    const present = uniqueSorted(op, t, p);
    if (present.length > 2)
      throw new Error(`${op}: ${present.length} classes present but average is 'binary'; use 'micro', 'macro' or 'weighted'`);
    if (present.length === 2 && !present.includes(pos))
      throw new Error(`${op}: posLabel ${String(pos)} is not one of the labels [${present.map(String).join(', ')}]`);
    if (present.length > 0) uniqueSorted(op, present, [pos]);
    const c = countsFor(op, t, p, [pos]);
    return { precision: ratio(c.tp[0]!, c.tp[0]! + c.fp[0]!, zd), recall: ratio(c.tp[0]!, c.tp[0]! + c.fn[0]!, zd), f1: fbeta(c.tp[0]!, c.fp[0]!, c.fn[0]!, beta2, zd) };
  }
  return averaged(countsFor(op, t, p, labels), average, zd, beta2);
}

/** F-beta alone (F1 by default); see {@link precisionRecallF1}. */
export function f1Score(yTrue: Labels, yPred: Labels, opts: PRFOptions = {}): number {
  return prf('f1Score', yTrue, yPred, opts).f1;
}

/** Everything {@link classificationReport} returns. */
export interface ClassificationReport extends PerClassPRF {
  accuracy: number;
  micro: PRF;
  macro: PRF;
  weighted: PRF;
}

/**
 * Per-class precision, recall, F-beta, support and counts, their micro, macro and weighted
 * averages, and accuracy (the numbers of `sklearn.metrics.classification_report`). `average`
 * and `posLabel` are ignored.
 */
export function classificationReport(yTrue: Labels, yPred: Labels, opts: PRFOptions = {}): ClassificationReport {
  const op = 'classificationReport';
  const { zd, beta2, labels } = checkPRFOptions(op, opts);
  const [t, p] = pair(op, yTrue, yPred);
  if (t.length === 0) throw new Error(`${op}: no samples`);
  const c = countsFor(op, t, p, labels);
  let correct = 0;
  for (let i = 0; i < t.length; i++) if (t[i] === p[i]) correct++;
  return {
    ...perClass(c, zd, beta2),
    accuracy: correct / t.length,
    micro: averaged(c, 'micro', zd, beta2),
    macro: averaged(c, 'macro', zd, beta2),
    weighted: averaged(c, 'weighted', zd, beta2),
  };
}
