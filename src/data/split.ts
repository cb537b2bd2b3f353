/**
 * A deterministic train/validation split by document. Each document gets a rank, the SHA-256 of
 * the seed and its content (or id); the documents of lowest rank form the validation set. So the
 * split depends only on which documents there are and the seed: not on their order, not on the
 * machine, and a document keeps its side when others are added, as long as the cut-off rank
 * does not pass it.
 * @module
 */
import { createHash } from 'node:crypto';
import { checkChoice, checkNumber, show } from '../tensor/validate.js';
import { got, optionsArg } from './args.js';

/** Options of {@link splitDocuments}. */
export interface SplitOptions {
  /** Fraction of documents for validation, in [0, 1]; 0.1 by default. */
  valFraction?: number;
  /** Different seeds give different splits; 0 by default. */
  seed?: number;
  /** What a document's rank is computed from: its text (default; equal texts fall on one side) or its id. */
  by?: 'content' | 'id';
}

/** The two sides of a split, each in the input's order. */
export interface TrainValSplit<T> {
  train: T[];
  val: T[];
}

/**
 * Split documents into train and validation sets. The validation set has `round(n·valFraction)`
 * documents, but at least one and at most n − 1 when 0 < valFraction < 1 and n ≥ 2, so both
 * sides are non-empty whenever that is possible (a single document goes to train).
 *
 * @example
 * const { train, val } = splitDocuments(documents, { valFraction: 0.05, seed: 1 });
 */
export function splitDocuments<T extends { id: string; text: string }>(documents: readonly T[], opts: SplitOptions = {}): TrainValSplit<T> {
  const op = 'splitDocuments';
  if (!Array.isArray(documents)) throw new Error(`${op}: documents must be an array of { id, text }, got ${got(documents)}`);
  const o = optionsArg<SplitOptions>(op, opts, ['valFraction', 'seed', 'by']);
  const fraction = o.valFraction === undefined ? 0.1 : checkNumber(op, 'valFraction', o.valFraction, { min: 0, max: 1 });
  const seed = o.seed === undefined ? 0 : checkNumber(op, 'seed', o.seed, { integer: true });
  const by = o.by === undefined ? 'content' : checkChoice(op, 'by', o.by, ['content', 'id'] as const);
  const field = by === 'content' ? 'text' : 'id';
  documents.forEach((d, i) => {
    if (d === null || typeof d !== 'object' || typeof (d as Record<string, unknown>)[field] !== 'string')
      throw new Error(`${op}: document ${i} must be an object with a string ${field}, got ${d !== null && typeof d === 'object' && !Array.isArray(d) ? `${field} ${show((d as Record<string, unknown>)[field])}` : got(d)}`);
  });
  const n = documents.length;
  let nVal = Math.round(n * fraction);
  if (fraction > 0 && fraction < 1) nVal = n >= 2 ? Math.min(n - 1, Math.max(1, nVal)) : 0; // a lone document trains
  const ranks = documents.map((d, i) => ({
    i,
    rank: createHash('sha256')
      .update(`kiln-split\0${seed}\0`)
      .update(by === 'content' ? d.text : d.id, 'utf8')
      .digest('hex'),
  }));
  // equal ranks (repeated texts) fall back to input position, so the result stays deterministic
  ranks.sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : a.i - b.i));
  const isVal = new Uint8Array(n);
  for (let k = 0; k < nVal; k++) isVal[ranks[k]!.i] = 1;
  const out: TrainValSplit<T> = { train: [], val: [] };
  documents.forEach((d, i) => (isVal[i] ? out.val : out.train).push(d));
  return out;
}
