/**
 * Curriculum learning for the batcher: a {@link Curriculum} ranks candidate windows of a
 * {@link TokenDataset} from easiest to hardest and draws each step's batch uniformly from the
 * easiest fraction c(step) of them, the competence, which a pacing function grows to 1
 * (competence-based curriculum, Platanios et al. 2019: linear c(t) = min(1, c₀ + (1 − c₀)·t/T),
 * root c(t) = min(1, √(c₀² + (1 − c₀²)·t/T))). Difficulty comes from the documents' lengths
 * ({@link lengthCurriculum}: shorter first) or from a scoring model's per-sequence loss
 * ({@link lossCurriculum}: lower loss first). `train({ curriculum })` draws its batches from one.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { tidy } from '../tensor/memory.js';
import { tensor } from '../tensor/ops/creation.js';
import { crossEntropy } from '../tensor/ops/nn.js';
import { defaultGenerator, Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkChoice, checkNumber, show } from '../tensor/validate.js';
import { got, optionsArg } from './args.js';
import { TokenDataset, type RandomBatchOptions, type TokenBatch } from './batches.js';
import { backendFor } from '../backend/registry.js';

/** How competence grows with the step: a name, or c(step) ∈ (0, 1] itself. */
export type Pacing = 'linear' | 'root' | ((step: number) => number);

/** Options of {@link Curriculum}. */
export interface CurriculumOptions {
  /** Window starts in the stream (each window is `blockSize + 1` tokens). */
  starts: readonly number[];
  /** Difficulty of each window (lower is easier), as many as `starts`. */
  difficulty: readonly number[];
  /** Tokens per window's input. */
  blockSize: number;
  /** The step at which the whole pool is admissible (T of the pacing functions). */
  steps: number;
  /** `'root'` (default, Platanios et al.'s best) or `'linear'`, or a function step → competence. */
  pacing?: Pacing;
  /** The competence at step 0, c₀ in (0, 1] (0.1 by default). */
  initial?: number;
}

const ORDER_KEYS = ['pacing', 'initial', 'steps'] as const;

/**
 * Candidate windows ranked easiest first, and the pacing that admits them. Ties keep stream order.
 *
 * @example
 * const cur = lengthCurriculum(data, { blockSize: 128, eosId, steps: 2000 });
 * await train({ ..., data: { train: data }, curriculum: cur });
 */
export class Curriculum {
  /** The dataset the windows are read from. */
  readonly data: TokenDataset;
  readonly blockSize: number;
  /** Window starts, easiest first. */
  readonly starts: readonly number[];
  /** Their difficulties, ascending. */
  readonly difficulty: readonly number[];
  /** The step at which every window is admissible. */
  readonly steps: number;
  readonly initial: number;
  private readonly pacing: Pacing;

  constructor(data: TokenDataset, opts: CurriculumOptions) {
    const op = 'Curriculum';
    if (!(data instanceof TokenDataset)) throw new Error(`${op}: data must be a TokenDataset, got ${got(data)}`);
    if (opts === null || typeof opts !== 'object') throw new Error(`${op}: expected options { starts, difficulty, blockSize, steps, pacing?, initial? }, got ${got(opts)}`);
    const o = optionsArg<CurriculumOptions>(op, opts, ['starts', 'difficulty', 'blockSize', ...ORDER_KEYS]);
    this.blockSize = checkNumber(op, 'blockSize', o.blockSize, { integer: true, min: 1 });
    const { steps, pacing, initial } = pacingArgs(op, o);
    if (!Array.isArray(o.starts) || o.starts.length === 0) throw new Error(`${op}: starts must be a non-empty array of window starts, got ${got(o.starts)}`);
    const last = data.length - this.blockSize - 1;
    o.starts.forEach((s, i) => {
      checkNumber(op, `starts[${i}]`, s, { integer: true, min: 0 });
      if (s > last) throw new Error(`${op}: starts[${i}] = ${s}: a window of blockSize ${this.blockSize} + 1 tokens there passes the end of the stream (${data.length} tokens)`);
    });
    if (!Array.isArray(o.difficulty) || o.difficulty.length !== o.starts.length)
      throw new Error(`${op}: difficulty must be an array of ${o.starts.length} numbers (one per start), got ${got(o.difficulty)}`);
    o.difficulty.forEach((d, i) => checkNumber(op, `difficulty[${i}]`, d, { infinity: true }));
    const order = o.starts.map((_, i) => i).sort((a, b) => o.difficulty![a]! - o.difficulty![b]! || o.starts![a]! - o.starts![b]!);
    this.data = data;
    this.starts = order.map((i) => o.starts![i]!);
    this.difficulty = order.map((i) => o.difficulty![i]!);
    this.steps = steps;
    this.pacing = pacing;
    this.initial = initial;
  }

  /** c(step) ∈ (0, 1]: the fraction of the windows, easiest first, admissible at `step` (0-based). */
  competence(step: number): number {
    const op = 'Curriculum.competence';
    checkNumber(op, 'step', step, { integer: true, min: 0 });
    const c0 = this.initial;
    const x = this.steps === 0 ? 1 : Math.min(1, step / this.steps);
    if (typeof this.pacing === 'function') {
      const c = this.pacing(step);
      if (typeof c !== 'number' || !(c > 0 && c <= 1)) throw new Error(`${op}: pacing(${step}) must return a competence in (0, 1], got ${show(c)}`);
      return c;
    }
    return this.pacing === 'linear' ? Math.min(1, c0 + (1 - c0) * x) : Math.min(1, Math.sqrt(c0 * c0 + (1 - c0 * c0) * x));
  }

  /** How many windows (the easiest) are admissible at `step`: ⌈c(step)·N⌉, at least 1. */
  poolSize(step: number): number {
    return Math.max(1, Math.min(this.starts.length, Math.ceil(this.competence(step) * this.starts.length - 1e-9)));
  }

  /**
   * A batch for `step`: `batchSize` windows drawn uniformly (with replacement, as
   * `TokenDataset.batch`) from the admissible pool, read by `TokenDataset.batchAt` (so `shard`
   * and `transform` work as there).
   */
  batch(batchSize: number, step: number, generator?: Generator, opts: RandomBatchOptions = {}): TokenBatch {
    const op = 'Curriculum.batch';
    checkNumber(op, 'batchSize', batchSize, { integer: true, min: 1 });
    checkNumber(op, 'step', step, { integer: true, min: 0 });
    if (generator !== undefined && generator !== null && !(generator instanceof Generator)) throw new Error(`${op}: generator must be a Generator, got ${got(generator)}`);
    const g = generator ?? defaultGenerator;
    const pool = this.poolSize(step);
    const picks = g.draw(batchSize, { kind: 'randint', low: 0, high: pool });
    const starts = Array.from(picks, (k) => this.starts[k]!);
    try {
      return this.data.batchAt(starts, this.blockSize, g, opts);
    } catch (e) {
      if (e instanceof Error) e.message = e.message.replace(/^TokenDataset\.batchAt: /, `${op}: `);
      throw e;
    }
  }
}

function pacingArgs(op: string, o: Partial<Pick<CurriculumOptions, 'pacing' | 'initial' | 'steps'>>): { steps: number; pacing: Pacing; initial: number } {
  const steps = checkNumber(op, 'steps', o.steps, { integer: true, min: 0 });
  const pacing = typeof o.pacing === 'function' ? o.pacing : o.pacing === undefined ? 'root' : checkChoice(op, 'pacing', o.pacing, ['root', 'linear'] as const);
  const initial = o.initial === undefined ? 0.1 : checkNumber(op, 'initial', o.initial, { min: 0, max: 1, minExclusive: true });
  return { steps, pacing, initial };
}

/** Options of {@link lengthCurriculum}. */
export interface LengthCurriculumOptions extends Omit<CurriculumOptions, 'starts' | 'difficulty'> {
  /** The id that ends each document in the stream (the `eos` the shards were built with). */
  eosId: number;
}

/**
 * A curriculum by document length: every document (the tokens after an `eosId`, or the stream's
 * start, up to and including the next `eosId`) whose start leaves room for a window is a
 * candidate window starting there, and its difficulty is the document's length, so windows
 * that begin with short documents come first. Reads the stream once, in chunks.
 */
export function lengthCurriculum(data: TokenDataset, opts: LengthCurriculumOptions): Curriculum {
  const op = 'lengthCurriculum';
  if (!(data instanceof TokenDataset)) throw new Error(`${op}: data must be a TokenDataset, got ${got(data)}`);
  if (opts === null || typeof opts !== 'object') throw new Error(`${op}: expected options { eosId, blockSize, steps, pacing?, initial? }, got ${got(opts)}`);
  const o = optionsArg<LengthCurriculumOptions>(op, opts, ['eosId', 'blockSize', ...ORDER_KEYS]);
  const eos = checkNumber(op, 'eosId', o.eosId, { integer: true, min: 0 });
  const blockSize = checkNumber(op, 'blockSize', o.blockSize, { integer: true, min: 1 });
  pacingArgs(op, o);
  const starts: number[] = [];
  const lengths: number[] = [];
  let docStart = 0;
  const CHUNK = 1 << 20;
  for (let at = 0; at < data.length; at += CHUNK) {
    const w = data.window(at, Math.min(CHUNK, data.length - at));
    for (let i = 0; i < w.length; i++)
      if (w[i] === eos) {
        starts.push(docStart);
        lengths.push(at + i + 1 - docStart);
        docStart = at + i + 1;
      }
  }
  if (docStart < data.length) {
    starts.push(docStart);
    lengths.push(data.length - docStart);
  }
  const last = data.length - blockSize - 1;
  const keep = starts.map((_, i) => i).filter((i) => starts[i]! <= last);
  if (keep.length === 0) throw new Error(`${op}: no document starts at least ${blockSize + 1} tokens before the end of the stream (${data.length} tokens, blockSize ${blockSize})`);
  return new Curriculum(data, { ...pick(o), blockSize, starts: keep.map((i) => starts[i]!), difficulty: keep.map((i) => lengths[i]!) });
}

const pick = (o: Partial<CurriculumOptions>): { steps: number; pacing?: Pacing; initial?: number } => ({
  steps: o.steps!,
  ...(o.pacing !== undefined ? { pacing: o.pacing } : {}),
  ...(o.initial !== undefined ? { initial: o.initial } : {}),
});

/** What {@link lossCurriculum} needs of a scoring model: logits from token ids. */
export interface ScoringModel {
  /** idx `[B, T]` i32 → `{ logits [B, T, V] }`. */
  forward(idx: Tensor): { logits: Tensor };
  train?(mode?: boolean): unknown;
  readonly training?: boolean;
}

/** Options of {@link lossCurriculum}. */
export interface LossCurriculumOptions extends Omit<CurriculumOptions, 'starts' | 'difficulty'> {
  /**
   * The candidate windows: their starts, or a count of non-overlapping windows spread evenly over
   * the stream (all of them by default, `⌊(length − 1)/blockSize⌋`).
   */
  candidates?: number | readonly number[];
  /** Windows scored per forward pass (16 by default). */
  batchSize?: number;
  /** Backend of the scoring batches (the default backend when omitted). */
  backend?: string;
}

/**
 * A curriculum by a scoring model's loss: each candidate window is scored by `model`'s mean
 * next-token cross-entropy over it (in eval mode, without gradients; the model's mode is
 * restored), and lower loss is easier (as in self-paced learning and Xu et al. 2020's
 * teacher-scored curricula).
 */
export async function lossCurriculum(data: TokenDataset, model: ScoringModel, opts: LossCurriculumOptions): Promise<Curriculum> {
  const op = 'lossCurriculum';
  if (!(data instanceof TokenDataset)) throw new Error(`${op}: data must be a TokenDataset, got ${got(data)}`);
  if (model === null || typeof model !== 'object' || typeof (model as ScoringModel).forward !== 'function') throw new Error(`${op}: model must have forward(idx) → { logits }, got ${got(model)}`);
  if (opts === null || typeof opts !== 'object') throw new Error(`${op}: expected options { blockSize, steps, candidates?, batchSize?, backend?, pacing?, initial? }, got ${got(opts)}`);
  const o = optionsArg<LossCurriculumOptions>(op, opts, ['candidates', 'batchSize', 'backend', 'blockSize', ...ORDER_KEYS]);
  const blockSize = checkNumber(op, 'blockSize', o.blockSize, { integer: true, min: 1 });
  pacingArgs(op, o);
  const batchSize = o.batchSize === undefined ? 16 : checkNumber(op, 'batchSize', o.batchSize, { integer: true, min: 1 });
  if (o.backend !== undefined && typeof o.backend !== 'string') throw new Error(`${op}: backend must be a string, got ${got(o.backend)}`);
  if (o.backend !== undefined) backendFor(op, o.backend); // an unknown name is refused here, under this function's name
  const full = Math.floor((data.length - 1) / blockSize);
  if (full < 1 || data.length < blockSize + 1) throw new Error(`${op}: the stream has ${data.length} tokens, fewer than blockSize + 1 = ${blockSize + 1}`);
  let starts: number[];
  if (Array.isArray(o.candidates)) {
    if (o.candidates.length === 0) throw new Error(`${op}: candidates is an empty array`);
    const last = data.length - blockSize - 1;
    starts = o.candidates.map((s, i) => {
      checkNumber(op, `candidates[${i}]`, s, { integer: true, min: 0 });
      if (s > last) throw new Error(`${op}: candidates[${i}] = ${s}: a window of ${blockSize + 1} tokens there passes the end of the stream (${data.length} tokens)`);
      return s;
    });
  } else {
    const n = o.candidates === undefined ? full : checkNumber(op, 'candidates', o.candidates, { integer: true, min: 1 });
    if (o.candidates !== undefined && typeof o.candidates !== 'number') throw new Error(`${op}: candidates must be a count or an array of starts, got ${got(o.candidates)}`);
    const m = Math.min(n, full);
    starts = Array.from({ length: m }, (_, j) => Math.floor((j * full) / m) * blockSize);
  }
  const place = o.backend ? { backend: o.backend } : {};
  const scores: number[] = [];
  const wasTraining = model.training;
  model.train?.(false);
  try {
    for (let k = 0; k < starts.length; k += batchSize) {
      const chunk = starts.slice(k, k + batchSize);
      const input = new Int32Array(chunk.length * blockSize);
      const target = new Int32Array(chunk.length * blockSize);
      chunk.forEach((s, i) => {
        const w = data.window(s, blockSize + 1);
        input.set(w.subarray(0, blockSize), i * blockSize);
        target.set(w.subarray(1), i * blockSize);
      });
      const perSeq = tidy(() =>
        noGrad(() => {
          const x = tensor(input, [chunk.length, blockSize], place);
          const y = tensor(target, [chunk.length, blockSize], place);
          const out = model.forward(x);
          if (!out || !out.logits) throw new Error(`${op}: model.forward(idx) returned no logits`);
          return crossEntropy(out.logits, y, { reduction: 'none' }).mean(1); // [b]
        }),
      );
      try {
        scores.push(...Array.from(await perSeq.data()));
      } finally {
        perSeq.dispose();
      }
    }
  } finally {
    if (wasTraining !== undefined) model.train?.(wasTraining);
  }
  return new Curriculum(data, { ...pick(o), blockSize, starts, difficulty: scores });
}
