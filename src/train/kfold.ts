/**
 * k-fold cross-validation over documents, with scikit-learn's `KFold` splits: the (optionally
 * shuffled) index order is cut into k contiguous validation folds, the first n mod k of size
 * ⌊n/k⌋ + 1 and the rest ⌊n/k⌋, so every document is in exactly one validation fold and fold
 * sizes differ by at most 1; each fold trains on the other documents. Index lists are returned
 * sorted, as `KFold.split` returns them. The shuffle is a seeded permutation from kiln's Philox
 * {@link Generator} (the same folds on every machine; not numpy's permutation, so not the same
 * folds as scikit-learn with the same seed).
 *
 * {@link crossValidate} runs the caller's training and evaluation once per fold and reports each
 * fold's metrics with their mean and standard deviation. The deviation is the population one
 * (ddof = 0) by default, as `np.std` of `cross_val_score`'s scores, the figure scikit-learn users
 * report as "mean ± std"; `ddof: 1` gives the sample deviation (larger by √(k/(k−1))).
 * @module
 */
import { Generator } from '../tensor/random.js';
import { checkBoolean, checkKeys, checkNumber, show } from '../tensor/validate.js';

/** Options of {@link kFoldSplits} and {@link crossValidate}. */
export interface KFoldOptions {
  /** Shuffle the documents before cutting the folds. Default false (contiguous folds, as KFold). */
  shuffle?: boolean;
  /** Seed of the shuffle (an integer ≥ 0). Default 0; only with `shuffle`. */
  seed?: number;
}

/** One fold: the indices to train on and the ones to validate on, each sorted. */
export interface KFold {
  fold: number;
  train: number[];
  validation: number[];
}

/** Options of {@link crossValidate}. */
export interface CrossValidateOptions extends KFoldOptions {
  /** Delta degrees of freedom of the standard deviation: 0 (default, np.std) or 1 (sample). */
  ddof?: 0 | 1;
}

/** One fold's result. */
export interface FoldResult extends KFold {
  metrics: Record<string, number>;
}

/** What {@link crossValidate} returns. */
export interface CrossValidationResult {
  folds: FoldResult[];
  mean: Record<string, number>;
  std: Record<string, number>;
  ddof: 0 | 1;
}

function checkFoldOptions(op: string, opts: unknown, extra: readonly string[] = []): { shuffle: boolean; seed: number } {
  if (opts !== undefined && opts !== null && (typeof opts !== 'object' || Array.isArray(opts))) throw new Error(`${op}: options must be an object, got ${show(opts)}`);
  const o = (opts ?? {}) as KFoldOptions;
  checkKeys(op, o, ['shuffle', 'seed', ...extra]);
  const shuffle = o.shuffle === undefined ? false : checkBoolean(op, 'shuffle', o.shuffle);
  const seed = o.seed === undefined ? 0 : checkNumber(op, 'seed', o.seed, { integer: true, min: 0 });
  if (o.seed !== undefined && !shuffle) throw new Error(`${op}: seed ${o.seed} has no effect without shuffle: true (scikit-learn refuses random_state without shuffle too)`);
  return { shuffle, seed };
}

function splits(n: number, k: number, shuffle: boolean, seed: number): KFold[] {
  let order = Array.from({ length: n }, (_, i) => i);
  if (shuffle) {
    // a uniform permutation: sort by i.i.d. uniform keys (index breaks the measure-zero ties)
    const u = new Generator(seed).draw(n, { kind: 'uniform', low: 0, high: 1 });
    order = order.sort((a, b) => u[a]! - u[b]! || a - b);
  }
  const base = Math.floor(n / k);
  const extra = n % k;
  const folds: KFold[] = [];
  let start = 0;
  for (let f = 0; f < k; f++) {
    const size = base + (f < extra ? 1 : 0);
    const inFold = new Uint8Array(n);
    for (const i of order.slice(start, start + size)) inFold[i] = 1;
    const train: number[] = [];
    const validation: number[] = [];
    for (let i = 0; i < n; i++) (inFold[i] ? validation : train).push(i);
    folds.push({ fold: f, train, validation });
    start += size;
  }
  return folds;
}

function countOf(op: string, nOrDocs: unknown): number {
  if (Array.isArray(nOrDocs)) return nOrDocs.length;
  if (typeof nOrDocs === 'number') return checkNumber(op, 'n', nOrDocs, { integer: true, min: 0 });
  throw new Error(`${op}: expected a document count or an array of documents, got ${show(nOrDocs)}`);
}

function checkK(op: string, k: unknown, n: number): number {
  checkNumber(op, 'k', k, { integer: true, min: 2 });
  if ((k as number) > n) throw new Error(`${op}: k = ${k as number} folds need at least ${k as number} documents, got ${n}`);
  return k as number;
}

/**
 * scikit-learn `KFold(n_splits=k, shuffle, random_state=seed).split` over n documents (or over
 * an array of them): k folds, each with sorted train and validation indices.
 *
 * @example
 * kFoldSplits(5, 2).map((f) => f.validation); // [[0, 1, 2], [3, 4]]
 */
export function kFoldSplits(nOrDocs: number | readonly unknown[], k: number, opts: KFoldOptions = {}): KFold[] {
  const op = 'kFoldSplits';
  const n = countOf(op, nOrDocs);
  const kk = checkK(op, k, n);
  const { shuffle, seed } = checkFoldOptions(op, opts);
  return splits(n, kk, shuffle, seed);
}

function checkMetrics(op: string, fold: number, m: unknown, keys: readonly string[] | null): Record<string, number> {
  if (m === null || typeof m !== 'object' || Array.isArray(m))
    throw new Error(`${op}: run must resolve to an object of metrics (name → number), got ${show(m)} for fold ${fold}`);
  const rec = m as Record<string, unknown>;
  const names = Object.keys(rec);
  if (names.length === 0) throw new Error(`${op}: run returned no metrics for fold ${fold}`);
  for (const name of names)
    if (typeof rec[name] !== 'number' || Number.isNaN(rec[name])) throw new Error(`${op}: metric '${name}' of fold ${fold} must be a number, got ${show(rec[name])}`);
  if (keys) {
    const missing = keys.filter((x) => !(x in rec));
    const added = names.filter((x) => !keys.includes(x));
    if (missing.length || added.length)
      throw new Error(`${op}: fold ${fold} returned metrics [${names.join(', ')}] but fold 0 returned [${keys.join(', ')}]; every fold must report the same metrics`);
  }
  return { ...(rec as Record<string, number>) };
}

/**
 * Cross-validate over documents: for each of the k folds, `await run(train, validation, fold)`
 * with the fold's documents (in index order), one fold after another; each call resolves to its
 * metrics by name. Returns every fold's metrics, and each metric's mean and standard deviation
 * over the folds (ddof 0 by default; see the module comment).
 *
 * @example
 * const cv = await crossValidate(docs, 5, async (train, val) => {
 *   const model = await fit(train);
 *   return { loss: await evalLoss(model, val) };
 * }, { shuffle: true, seed: 1 });
 * console.log(`${cv.mean.loss} ± ${cv.std.loss}`);
 */
export async function crossValidate<D>(
  docs: readonly D[],
  k: number,
  run: (train: D[], validation: D[], fold: number) => Promise<Record<string, number>> | Record<string, number>,
  opts: CrossValidateOptions = {},
): Promise<CrossValidationResult> {
  const op = 'crossValidate';
  if (!Array.isArray(docs)) throw new Error(`${op}: docs must be an array of documents, got ${show(docs)}`);
  const kk = checkK(op, k, docs.length);
  if (typeof run !== 'function') throw new Error(`${op}: run must be a function (train, validation, fold) => Promise<metrics>, got ${show(run)}`);
  const { shuffle, seed } = checkFoldOptions(op, opts, ['ddof']);
  const ddofRaw = (opts ?? {}).ddof;
  if (ddofRaw !== undefined && ddofRaw !== 0 && ddofRaw !== 1) throw new Error(`${op}: ddof must be 0 or 1, got ${show(ddofRaw)}`);
  const ddof: 0 | 1 = ddofRaw ?? 0;
  const folds: FoldResult[] = [];
  let keys: string[] | null = null;
  for (const f of splits(docs.length, kk, shuffle, seed)) {
    const metrics = checkMetrics(op, f.fold, await run(f.train.map((i) => docs[i]!), f.validation.map((i) => docs[i]!), f.fold), keys);
    keys ??= Object.keys(metrics);
    folds.push({ ...f, metrics });
  }
  const mean: Record<string, number> = {};
  const std: Record<string, number> = {};
  for (const key of keys!) {
    const xs = folds.map((f) => f.metrics[key]!);
    const mu = xs.reduce((s, x) => s + x, 0) / xs.length;
    // Σ(x − μ)² / (k − ddof); k ≥ 2, so ddof 1 never divides by zero
    const ss = xs.reduce((s, x) => s + (x - mu) * (x - mu), 0);
    mean[key] = mu;
    std[key] = Math.sqrt(ss / (xs.length - ddof));
  }
  return { folds, mean, std, ddof };
}
