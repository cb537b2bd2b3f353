/**
 * The training loop as a library call: {@link train} runs optimizer steps on random batches of
 * a {@link TokenDataset} with gradient accumulation and clipping, evaluates on a fixed set of
 * validation batches every N steps, stops early on the validation loss, writes checkpoints every
 * N steps and at the end (model, optimizer, scheduler, generator, step, history), resumes from
 * the latest one, and stops cleanly after the current step when its `AbortSignal` fires.
 *
 * A resumed run continues exactly: the batch generator's state is in the checkpoint, so the same
 * batches follow, and (without dropout) the same losses as an uninterrupted run.
 * @module
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { noGrad } from '../autograd/tape.js';
import type { TokenBatch, TokenDataset } from '../data/batches.js';
import type { BatchTransform } from '../data/augment.js';
import { Curriculum } from '../data/curriculum.js';
import { adversarialBackward, resolveAdversarial, type AdversarialOptions, type PerturbableModel } from './adversarial.js';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint.js';
import { PerplexityMeter, type PerplexityResult } from '../metrics/perplexity.js';
import { autocast } from '../amp/autocast.js';
import { GradScaler, type GradScalerState, type ScalableOptimizer } from '../amp/grad_scaler.js';
import { clipGradNorm } from '../optim/clip.js';
import type { OptimizerStateDict } from '../optim/optimizer.js';
import type { LRScheduler } from '../optim/schedule.js';
import { tidy } from '../tensor/memory.js';
import { tensor } from '../tensor/ops/creation.js';
import { isfinite } from '../tensor/ops/elementwise.js';
import { Generator } from '../tensor/random.js';
import { backendFor } from '../backend/registry.js';
import { asOp } from '../tensor/ops/util.js';
import { checkChoice, checkKeys, checkNumber, optionalNumber, show } from '../tensor/validate.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import { DistributedDataParallel } from '../distributed/ddp.js';
import type { Communicator } from '../distributed/mpi.js';
import { callAll, callbackArray, type CallbackList, type CheckpointReason, type StopReason } from './callbacks.js';
import { EarlyStopping, type EarlyStoppingOptions, type EarlyStoppingState } from './early_stopping.js';
import { accumulate, backwardLoss, forwardLoss, hostBatch, putWindow, type LearnerOptimizer } from './continual.js';
import type { FederatedModel } from './federated.js';

/** What the loop needs of a model: a GPT, or anything shaped like one (what federated training needs too). */
export type TrainableModel = FederatedModel;

/** What the loop needs of an optimizer (every kiln optimizer fits). */
export interface TrainOptimizer extends LearnerOptimizer {
  /** Each group's learning rate (and its parameters: f16 training's loss scaler unscales their gradients). */
  paramGroups: { lr: number; params?: readonly Tensor[] }[];
  stateDict(): OptimizerStateDict;
  loadStateDict(state: OptimizerStateDict): void;
}

/** Options of {@link train}. */
export interface TrainOptions {
  model: TrainableModel;
  optimizer: TrainOptimizer;
  /** Stepped once after every optimizer step; saved in checkpoints. */
  scheduler?: LRScheduler;
  /** Training batches are drawn at random from `train`; evaluation reads `val` in order. */
  data: { train: TokenDataset; val?: TokenDataset | null };
  /** The step the run ends at (counted from the start of training, so a resumed run does `steps − resumed step`). */
  steps: number;
  /** Sequences per micro-batch. */
  batchSize: number;
  /** Tokens per sequence (at most the model's context). */
  blockSize: number;
  /** Micro-batches whose gradients are summed (each loss divided by this) before one optimizer step; 1 by default. */
  gradAccum?: number;
  /** Clip the total gradient norm to this before each step (`clipGradNorm`); off when 0 or omitted. */
  clip?: number;
  /**
   * Mixed precision: 'bf16' or 'f16' runs each forward pass under {@link autocast} (weights,
   * gradients and optimizer state stay f32; evaluation runs in f32), and 'f16' scales the loss
   * with a {@link GradScaler} (`scaler`, or one with PyTorch's defaults), skipping a step whose
   * gradients overflowed. 'f32' (default): no autocast.
   */
  precision?: 'f32' | 'bf16' | 'f16';
  /** The loss scaler of an f16 run (its state is saved in checkpoints); only with precision 'f16'. */
  scaler?: GradScaler;
  /**
   * Read the training loss (and gradient norm) every this many steps, and at the last step: the
   * losses in between are summed on the device, and `onStep` gets their mean at these steps only.
   * Reading waits for the device, so a GPU runs ahead between reads. 1 (every step) by default.
   */
  logEvery?: number;
  /** Evaluate every this many steps (and at the end); 0 or omitted: only at the end. Needs `data.val`. */
  evalEvery?: number;
  /** Validation batches per evaluation: full windows spread evenly over the validation stream, the same each time (see {@link evaluate}); 8 by default. */
  evalBatches?: number;
  /** Sequences per validation batch; `batchSize` by default. */
  evalBatchSize?: number;
  /** Write a checkpoint every this many steps; 0 or omitted: only at the end. Needs `checkpointDir`. */
  checkpointEvery?: number;
  /** Where checkpoints go (`ckpt-<step>.safetensors`); none are written without it. */
  checkpointDir?: string;
  /** Keep only the newest this many checkpoints in `checkpointDir` (all by default). */
  keepCheckpoints?: number;
  /**
   * `true`: continue from the newest checkpoint in `checkpointDir` when there is one (else start
   * fresh); a path: continue from that checkpoint (it must exist).
   */
  resume?: boolean | string;
  /** The stream training batches are drawn from; saved in checkpoints, so a resumed run draws the same batches. */
  generator: Generator;
  /** Stop when the validation loss stops improving (needs `data.val` and `evalEvery`). */
  earlyStopping?: EarlyStopping | EarlyStoppingOptions;
  callbacks?: CallbackList;
  /** When it fires, the loop finishes the current step, writes a checkpoint and returns with reason `'aborted'`. */
  signal?: AbortSignal;
  /** Backend of the batch tensors; the backend of the model's first parameter by default. */
  backend?: string;
  /** Any JSON to keep in every checkpoint (the run's configuration, say); read back as `extra.user`. */
  extra?: unknown;
  /**
   * Data parallelism over these ranks (`communicator()` under mpirun): the model is wrapped in
   * {@link DistributedDataParallel}, `batchSize` is the whole batch (a multiple of the ranks),
   * each rank computing its rows of it; losses are averaged over the ranks; rank 0 writes the
   * checkpoints, which any number of ranks resumes from (every rank reads it). Every rank
   * evaluates the whole validation set. A stop (the signal) on any rank stops them all at the same step.
   */
  comm?: Communicator;
  /**
   * Augment each training batch's token rows (`augment.ts`: tokenDropout, spanMask, randomSwap,
   * synonymReplace, composeTransforms) before it becomes tensors; validation batches never are.
   * Its draws are seeded from `generator`, so a resumed run augments as the uninterrupted one.
   */
  transform?: BatchTransform;
  /**
   * Draw training batches from this curriculum (easiest windows first, the pool growing with
   * the step: {@link Curriculum}) instead of uniformly over `data.train`; it must read
   * `data.train` and have been built for `blockSize`.
   */
  curriculum?: Curriculum;
  /**
   * Adversarial training on the token embeddings (`adversarial.ts`): each micro-batch's gradient
   * is that of L(x) + L(x + r), r the FGM or PGD perturbation of the embeddings within an L2 ball of
   * radius `epsilon` (per sequence, or per token with `scope: 'token'`). The model must take
   * `forward(idx, targets, { embeddingDelta })` and have `config.nEmbd` (a {@link GPT} does).
   * The logged loss is the clean L(x). Not with `comm` (data parallelism).
   */
  adversarial?: AdversarialOptions;
}

/** One logged step in a run's history: the mean loss since the previous logged step. */
export interface HistoryEntry {
  step: number;
  loss: number;
  lr: number;
}

/** One evaluation in a run's history. */
export interface EvalRecord {
  step: number;
  valLoss: number;
  perplexity: number;
}

/** What {@link train} returns. */
export interface TrainResult {
  /** The step reached. */
  step: number;
  /** The step this process started from (the resumed step, or 0). */
  startStep: number;
  reason: StopReason;
  /** The checkpoint resumed from, or null. */
  resumedFrom: string | null;
  /** Mean training loss over the last (up to) 20 steps, or null when no step has run. */
  loss: number | null;
  /** The last evaluation's validation loss and perplexity, or null. */
  valLoss: number | null;
  perplexity: number | null;
  /** The best validation loss and its step, or null. */
  bestValLoss: number | null;
  bestStep: number | null;
  /** Every step since the start of training (a resumed run includes the steps before it). */
  history: HistoryEntry[];
  /** Every evaluation since the start of training. */
  evals: EvalRecord[];
  /** Tokens trained on by this process. */
  tokens: number;
  /** Wall time of this process's part of the run. */
  seconds: number;
  /** Tokens per second over this process's steps (time spent in steps only). */
  tokensPerSecond: number;
  /** Median milliseconds per step in this process (0 when none ran). */
  msPerStep: number;
  /** The newest checkpoint written (or resumed from), or null. */
  checkpoint: string | null;
}

/** The loop's own part of a checkpoint's `extra`. */
interface LoopState {
  version: 1;
  /** [step, loss, lr] per step. */
  history: [number, number, number][];
  /** [step, valLoss] per evaluation. */
  evals: [number, number][];
  earlyStopping: EarlyStoppingState | null;
  bestValLoss: number | null;
  bestStep: number | null;
  /** The loss scaler's state (f16 runs). */
  scaler?: GradScalerState | null;
}

const CKPT_RE = /^ckpt-(\d+)\.safetensors$/;

/** The file name of the checkpoint of `step` in `dir`: `ckpt-<step, 8 digits>.safetensors`. */
export function checkpointPath(dir: string, step: number): string {
  checkDir('checkpointPath', dir);
  checkNumber('checkpointPath', 'step', step, { integer: true, min: 0 });
  return join(dir, `ckpt-${String(step).padStart(8, '0')}.safetensors`);
}

/** The checkpoints {@link train} wrote in `dir`, oldest step first (an empty list when `dir` does not exist). */
export async function listCheckpoints(dir: string): Promise<{ path: string; step: number }[]> {
  return checkpointsIn('listCheckpoints', dir);
}

function checkDir(op: string, dir: unknown): asserts dir is string {
  if (typeof dir !== 'string' || dir === '') throw new Error(`${op}: dir must be a folder's path, got ${show(dir)}`);
}

async function checkpointsIn(op: string, dir: string): Promise<{ path: string; step: number }[]> {
  checkDir(op, dir);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`${op}: cannot read '${dir}': ${(e as Error).message}`);
  }
  return names
    .map((n) => [n, CKPT_RE.exec(n)] as const)
    .filter(([, m]) => m !== null)
    .map(([n, m]) => ({ path: join(dir, n), step: Number(m![1]) }))
    .sort((a, b) => a.step - b.step);
}

/** The newest checkpoint in `dir` (highest step), or null. */
export async function latestCheckpoint(dir: string): Promise<{ path: string; step: number } | null> {
  const all = await checkpointsIn('latestCheckpoint', dir);
  return all.length ? all[all.length - 1]! : null;
}

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** Tokens per window. */
  blockSize: number;
  /** Windows per batch; 8 by default. */
  batchSize?: number;
  /**
   * Score at most this many batches: `maxBatches × batchSize` full windows spread evenly over the
   * stream (window j of n of the N in the stream is window ⌊j·N/n⌋), the same ones every call.
   * The whole stream by default.
   */
  maxBatches?: number;
  /** Backend of the batch tensors (the default backend when omitted). */
  backend?: string;
}

/**
 * The batches {@link evaluate} scores: every window in order (`TokenDataset.sequential`), or with
 * `maxBatches`, that many batches of full windows spread evenly over the stream.
 */
function* evalBatchesOf(data: TokenDataset, blockSize: number, batchSize: number, maxBatches: number, backend?: string): IterableIterator<TokenBatch> {
  const place = backend ? { backend } : {};
  const full = Math.floor((data.length - 1) / blockSize); // windows of blockSize targets
  const wanted = maxBatches * batchSize;
  if (wanted >= data.sequentialWindows(blockSize)) {
    yield* data.sequential(blockSize, { batchSize, ...place });
    return;
  }
  for (let j0 = 0; j0 < wanted; j0 += batchSize) {
    const n = Math.min(batchSize, wanted - j0);
    const b = hostBatch(n, blockSize);
    const starts: number[] = [];
    for (let i = 0; i < n; i++) {
      const start = Math.floor(((j0 + i) * full) / wanted) * blockSize;
      putWindow(b, i, data.window(start, blockSize + 1), blockSize);
      starts.push(start);
    }
    yield { input: tensor(b.input, [n, blockSize], place), target: tensor(b.target, [n, blockSize], place), starts };
  }
}

/**
 * Perplexity of `model` on a token stream: the token-weighted mean cross-entropy over
 * non-overlapping windows (all of them in stream order, or with `maxBatches` a fixed subset
 * spread evenly over the stream), in eval mode without gradients; the model's mode is restored
 * after. Repeated calls score the same tokens.
 *
 * @example
 * const { perplexity, nll, tokens } = await evaluate(model, TokenDataset.open(valShards), { blockSize: 128 });
 */
export async function evaluate(
  model: Pick<TrainableModel, 'forward' | 'train' | 'training'>,
  data: TokenDataset,
  opts: EvaluateOptions,
): Promise<PerplexityResult & { batches: number; seconds: number }> {
  const t0 = performance.now();
  const op = 'evaluate';
  if (!model || typeof model.forward !== 'function' || typeof model.train !== 'function') throw new Error(`${op}: model must have forward(idx, targets) and train(mode), got ${show(model)}`);
  if (!data || typeof data.sequential !== 'function' || typeof data.window !== 'function') throw new Error(`${op}: data must be a TokenDataset, got ${show(data)}`);
  if (opts === null || typeof opts !== 'object') throw new Error(`${op}: expected options { blockSize, batchSize?, maxBatches?, backend? }, got ${show(opts)}`);
  checkKeys(op, opts, ['blockSize', 'batchSize', 'maxBatches', 'backend']);
  checkNumber(op, 'blockSize', opts.blockSize, { integer: true, min: 1 });
  const batchSize = optionalNumber(op, 'batchSize', opts.batchSize, 8, { integer: true, min: 1 });
  const maxBatches = optionalNumber(op, 'maxBatches', opts.maxBatches, Infinity, { integer: true, min: 1, infinity: true });
  if (opts.backend !== undefined) backendFor(op, opts.backend);
  if (data.length < 2) throw new Error(`evaluate: the stream has ${data.length} token(s); at least 2 are needed to score one`);
  const meter = new PerplexityMeter();
  const wasTraining = model.training;
  model.train(false);
  let batches = 0;
  try {
    for (const b of evalBatchesOf(data, opts.blockSize, batchSize, maxBatches, opts.backend)) {
      try {
        const loss = tidy(() => noGrad(() => forwardLoss(op, model, b.input, b.target)));
        // summed on the device: the one read is meter.result()
        meter.addMean(loss, b.target.size);
        loss.dispose();
      } finally {
        b.input.dispose();
        b.target.dispose();
      }
      batches++;
    }
    return { ...(await meter.result()), batches, seconds: (performance.now() - t0) / 1000 };
  } finally {
    meter.reset();
    model.train(wasTraining);
  }
}

/**
 * The entropy in nats of the unigram distribution of `tokens` (−Σ p·ln p over the token
 * frequencies): the loss of the best model that ignores context, fitted to these very tokens.
 * A language model has learned something about order only when its loss is below this.
 *
 * @example
 * unigramEntropy([0, 0, 1, 1]); // ln 2
 */
export function unigramEntropy(tokens: ArrayLike<number>): number {
  if (!(Array.isArray(tokens) || ArrayBuffer.isView(tokens))) throw new Error(`unigramEntropy: tokens must be an array of token ids, got ${show(tokens)}`);
  const n = tokens.length;
  if (n === 0) throw new Error('unigramEntropy: no tokens');
  for (let i = 0; i < n; i++) if (!Number.isInteger(tokens[i])) throw new Error(`unigramEntropy: tokens[${i}] must be an integer id, got ${show(tokens[i])}`);
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) counts.set(tokens[i]!, (counts.get(tokens[i]!) ?? 0) + 1);
  let h = 0;
  for (const c of counts.values()) {
    const p = c / n;
    h -= p * Math.log(p);
  }
  return h;
}

/**
 * Parameter groups for AdamW as nanoGPT makes them: every parameter of rank ≥ 2 (the matrices
 * of the linear layers and the embeddings) gets `weightDecay`, biases and norm gains get none.
 * Frozen parameters (`requiresGrad` false) are left out.
 *
 * @example
 * const opt = new AdamW(weightDecayGroups(model, 0.1), { lr: 1e-3, betas: [0.9, 0.95] });
 */
export function weightDecayGroups(model: { parameters(): Tensor[] }, weightDecay: number): [{ params: Tensor[]; weightDecay: number }, { params: Tensor[]; weightDecay: number }] {
  if (!model || typeof model.parameters !== 'function') throw new Error(`weightDecayGroups: model must have parameters(), got ${show(model)}`);
  checkNumber('weightDecayGroups', 'weightDecay', weightDecay, { min: 0 });
  const params = model.parameters().filter((p) => p.requiresGrad);
  return [
    { params: params.filter((p) => p.rank >= 2), weightDecay },
    { params: params.filter((p) => p.rank < 2), weightDecay: 0 },
  ];
}

function checkCount(name: string, v: number | undefined, min: number): number {
  if (v === undefined) return min === 1 ? 1 : 0;
  return checkNumber('train', name, v, { integer: true, min });
}

const TRAIN_KEYS = [
  'model', 'optimizer', 'scheduler', 'data', 'steps', 'batchSize', 'blockSize', 'gradAccum', 'clip', 'precision', 'scaler', 'logEvery', 'evalEvery', 'evalBatches',
  'evalBatchSize', 'checkpointEvery', 'checkpointDir', 'keepCheckpoints', 'resume', 'generator', 'earlyStopping', 'callbacks', 'signal', 'backend', 'extra', 'comm',
  'transform', 'curriculum', 'adversarial',
] as const;

function readLoopState(extra: unknown): LoopState | null {
  const s = (extra as { train?: LoopState } | null)?.train;
  if (!s || s.version !== 1 || !Array.isArray(s.history) || !Array.isArray(s.evals)) return null;
  return s;
}

const round = (x: number): number => (Number.isFinite(x) ? Number(x.toPrecision(7)) : x);
/** The start of the error a diverged run throws (after `train: `). */
const DIVERGED = 'the loss diverged at step';
const yieldToEventLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Train a language model. Each step draws `gradAccum` random batches of `batchSize` ×
 * `blockSize` tokens from `data.train` with `generator`, backpropagates each loss divided by
 * `gradAccum`, clips the total gradient norm to `clip`, steps the optimizer and the scheduler.
 * Every step runs in a `tidy` scope and drops its gradients after the update, so memory stays
 * flat. Between steps the loop yields to the event loop, so signal handlers and timers run.
 *
 * @example
 * const model = new GPT({ vocabSize: 2048, blockSize: 128, nLayer: 4, nHead: 4, nEmbd: 128 }, { generator: new Generator(1) });
 * const optimizer = new AdamW(weightDecayGroups(model, 0.1), { lr: 1e-3, betas: [0.9, 0.95] });
 * const scheduler = new LRScheduler(optimizer, cosineLr({ warmupSteps: 100, totalSteps: 2000, minLr: 1e-4 }));
 * const result = await train({
 *   model, optimizer, scheduler, data: { train, val }, steps: 2000, batchSize: 16, blockSize: 128,
 *   clip: 1, evalEvery: 200, evalBatches: 10, checkpointEvery: 500, checkpointDir: 'runs/a', resume: true,
 *   generator: new Generator(2), earlyStopping: { patience: 3 },
 *   callbacks: { onStep: ({ step, loss }) => console.log(step, loss) },
 * });
 * result.bestValLoss;
 */
export async function train(opts: TrainOptions): Promise<TrainResult> {
  if (!opts || typeof opts !== 'object') throw new Error(`train: expected an options object, got ${show(opts)}`);
  checkKeys('train', opts, TRAIN_KEYS);
  const { model, optimizer, scheduler, generator, signal } = opts;
  if (!model || typeof model.forward !== 'function' || typeof model.parameters !== 'function') throw new Error(`train: model must have forward(idx, targets) and parameters(), got ${show(model)}`);
  if (!optimizer || typeof optimizer.step !== 'function') throw new Error(`train: optimizer must be an optimizer (AdamW, ...), got ${show(optimizer)}`);
  if (!(generator instanceof Generator)) throw new Error(`train: generator must be a Generator (it draws the batches), got ${show(generator)}`);
  if (scheduler !== undefined && (scheduler === null || typeof scheduler.step !== 'function')) throw new Error(`train: scheduler must be an LRScheduler, got ${show(scheduler)}`);
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new Error(`train: signal must be an AbortSignal, got ${show(signal)}`);
  if (opts.data === null || typeof opts.data !== 'object') throw new Error(`train: data must be { train, val? } TokenDatasets, got ${show(opts.data)}`);
  checkKeys('train: data', opts.data, ['train', 'val']);
  const trainData = opts.data.train;
  const valData = opts.data.val ?? null;
  if (!trainData || typeof trainData.batch !== 'function') throw new Error(`train: data.train must be a TokenDataset, got ${show(trainData)}`);
  if (valData !== null && typeof valData.sequential !== 'function') throw new Error(`train: data.val must be a TokenDataset, got ${show(valData)}`);
  const steps = checkNumber('train', 'steps', opts.steps, { integer: true, min: 0 });
  const batchSize = checkNumber('train', 'batchSize', opts.batchSize, { integer: true, min: 1 });
  const blockSize = checkNumber('train', 'blockSize', opts.blockSize, { integer: true, min: 1 });
  const gradAccum = checkCount('gradAccum', opts.gradAccum, 1);
  const evalEvery = checkCount('evalEvery', opts.evalEvery, 0);
  const logEvery = checkCount('logEvery', opts.logEvery, 1);
  const evalBatches = checkCount('evalBatches', opts.evalBatches ?? 8, 1);
  const evalBatchSize = checkCount('evalBatchSize', opts.evalBatchSize ?? batchSize, 1);
  const checkpointEvery = checkCount('checkpointEvery', opts.checkpointEvery, 0);
  const keep = optionalNumber('train', 'keepCheckpoints', opts.keepCheckpoints, Infinity, { integer: true, min: 1, infinity: true });
  const clip = optionalNumber('train', 'clip', opts.clip, 0, { min: 0 });
  const precision = checkChoice('train', 'precision', opts.precision ?? 'f32', ['f32', 'bf16', 'f16'] as const);
  if (opts.scaler !== undefined && !(opts.scaler instanceof GradScaler)) throw new Error(`train: scaler must be a GradScaler, got ${show(opts.scaler)}`);
  if (opts.scaler !== undefined && precision !== 'f16') throw new Error(`train: a scaler is for precision 'f16', got precision '${precision}'`);
  const scaler = precision === 'f16' ? (opts.scaler ?? new GradScaler()) : null;
  if (scaler && !optimizer.paramGroups.every((g) => Array.isArray(g.params))) throw new Error("train: precision 'f16' needs an optimizer whose paramGroups list their params (the scaler unscales their gradients)");
  if (opts.checkpointDir !== undefined) checkDir('train', opts.checkpointDir);
  if (opts.resume !== undefined && typeof opts.resume !== 'boolean' && (typeof opts.resume !== 'string' || !opts.resume))
    throw new Error(`train: resume must be true, false or a checkpoint's path, got ${show(opts.resume)}`);
  if (opts.backend !== undefined) backendFor('train', opts.backend);
  const dir = opts.checkpointDir ?? null;
  if (checkpointEvery > 0 && !dir) throw new Error('train: checkpointEvery needs checkpointDir');
  if (opts.resume === true && !dir) throw new Error('train: resume: true needs checkpointDir (or pass the checkpoint path)');
  if (evalEvery > 0 && !valData) throw new Error('train: evalEvery needs data.val');
  const stopper = opts.earlyStopping === undefined ? null : opts.earlyStopping instanceof EarlyStopping ? opts.earlyStopping : asOp('train', () => new EarlyStopping(opts.earlyStopping as EarlyStoppingOptions));
  if (stopper && (!valData || evalEvery === 0)) throw new Error('train: earlyStopping needs data.val and evalEvery > 0');
  if (trainData.validStarts(blockSize) < 1) throw new Error(`train: the training stream has ${trainData.length} tokens, fewer than blockSize + 1 = ${blockSize + 1}`);
  if (valData && valData.length < 2) throw new Error(`train: the validation stream has ${valData.length} token(s); at least 2 are needed`);
  const params = model.parameters();
  if (params.length === 0) throw new Error('train: the model has no parameters');
  const backend = opts.backend ?? params[0]!.backend.name;
  const cbs = asOp('train', () => callbackArray(opts.callbacks));
  if (opts.comm !== undefined && (opts.comm === null || typeof opts.comm !== 'object' || typeof opts.comm.allReduce !== 'function'))
    throw new Error(`train: comm must be a Communicator, got ${show(opts.comm)}`);
  const dp = opts.comm && opts.comm.size > 1 ? opts.comm : null;
  if (dp && batchSize % dp.size !== 0) throw new Error(`train: batchSize ${batchSize} is not a multiple of the ${dp.size} ranks (batchSize is the whole batch, shared by the ranks)`);
  const shard = dp ? { shard: { rank: dp.rank, size: dp.size } } : {};
  if (opts.transform !== undefined && typeof opts.transform !== 'function') throw new Error(`train: transform must be a function (rows, generator) → rows, got ${show(opts.transform)}`);
  const curriculum = opts.curriculum ?? null;
  if (curriculum !== null) {
    if (!(curriculum instanceof Curriculum)) throw new Error(`train: curriculum must be a Curriculum, got ${show(curriculum)}`);
    if (curriculum.data !== trainData) throw new Error('train: curriculum reads another dataset than data.train');
    if (curriculum.blockSize !== blockSize) throw new Error(`train: curriculum was built for blockSize ${curriculum.blockSize}, the run's blockSize is ${blockSize}`);
  }
  const adversarial = opts.adversarial === undefined ? null : resolveAdversarial('train', opts.adversarial);
  if (adversarial) {
    const nEmbd = (model as unknown as { config?: { nEmbd?: unknown } }).config?.nEmbd;
    if (typeof nEmbd !== 'number') throw new Error(`train: adversarial needs a model with config.nEmbd and forward(idx, targets, { embeddingDelta }) (a GPT), got ${show(model)}`);
    if (dp) throw new Error('train: adversarial is not supported with data parallelism (comm with more than one rank)');
  }
  const batchOpts = { backend, ...shard, ...(opts.transform ? { transform: opts.transform } : {}) };

  // ---- resume ----
  let step = 0;
  let history: [number, number, number][] = [];
  let evals: [number, number][] = [];
  let bestValLoss: number | null = null;
  let bestStep: number | null = null;
  let resumedFrom: string | null = null;
  let lastCheckpoint: string | null = null;
  if (opts.resume) {
    const found = typeof opts.resume === 'string' ? { path: opts.resume } : await latestCheckpoint(dir!);
    if (found) {
      const loaded = await loadCheckpoint(found.path, { model, optimizer, generator, backend, ...(scheduler ? { scheduler } : {}) });
      step = loaded.step;
      resumedFrom = lastCheckpoint = loaded.path;
      const st = readLoopState(loaded.extra);
      if (st) {
        history = st.history.filter((h) => h[0] <= step);
        evals = st.evals.filter((e) => e[0] <= step);
        bestValLoss = st.bestValLoss;
        bestStep = st.bestStep;
        if (stopper && st.earlyStopping) stopper.loadStateDict(st.earlyStopping);
        if (scaler && st.scaler) scaler.loadStateDict(st.scaler);
      }
    }
  }
  const startStep = step;
  // after loading: rank 0's weights become every rank's (they are equal already, from one seed or one checkpoint)
  const ddp = dp ? await DistributedDataParallel.create(model as unknown as Module, dp) : null;

  const loopState = (): LoopState => ({ version: 1, history, evals, earlyStopping: stopper ? stopper.stateDict() : null, bestValLoss, bestStep, scaler: scaler?.stateDict() ?? null });
  let lastSaved = resumedFrom ? step : -1;
  let lastLr = optimizer.paramGroups[0]?.lr ?? NaN;
  const save = async (reason: CheckpointReason): Promise<void> => {
    if (!dir || lastSaved === step) return;
    if (dp && dp.rank !== 0) {
      // rank 0 writes it; the others go on once it is on disk
      await dp.barrier();
      lastSaved = step;
      lastCheckpoint = checkpointPath(dir, step);
      return;
    }
    const t0 = performance.now();
    // a checkpoint holds finite weights only: an update can overflow while its step's loss was
    // still finite (a huge lr), and the read saveCheckpoint makes raises this before it writes
    for (const p of params) {
      const finite = noGrad(() => isfinite(p));
      p.backend.check({ cond: finite._storage('train'), values: p._storage('train'), op: 'train', message: `${DIVERGED} ${step} (lr ${lastLr}): a parameter is {value} after the update` });
      finite.dispose();
    }
    const path = await saveCheckpoint(checkpointPath(dir, step), {
      model,
      optimizer,
      generator,
      step,
      extra: { train: loopState(), user: opts.extra ?? null },
      ...(scheduler ? { scheduler } : {}),
    });
    lastSaved = step;
    lastCheckpoint = path;
    if (keep !== Infinity) {
      const all = await checkpointsIn('latestCheckpoint', dir);
      for (const old of all.slice(0, Math.max(0, all.length - keep))) await rm(old.path, { force: true });
    }
    await dp?.barrier();
    await callAll(cbs, 'onCheckpoint', { step, path, reason, seconds: (performance.now() - t0) / 1000 });
  };

  let lastEval = evals.length ? evals[evals.length - 1]![0] : -1;
  const runEval = async (): Promise<void> => {
    if (!valData || lastEval === step) return;
    const r = await evaluate(model, valData, { blockSize, batchSize: evalBatchSize, maxBatches: evalBatches, backend });
    lastEval = step;
    evals.push([step, round(r.nll)]);
    const improved = bestValLoss === null || r.nll < bestValLoss;
    if (improved) {
      bestValLoss = r.nll;
      bestStep = step;
    }
    stopper?.update(r.nll, step);
    await callAll(cbs, 'onEval', { step, valLoss: r.nll, perplexity: r.perplexity, tokens: r.tokens, improved, bestValLoss: bestValLoss!, seconds: r.seconds });
  };

  // ---- the steps ----
  const t0 = performance.now();
  const tokensPerStep = batchSize * blockSize * gradAccum;
  const stepMs: number[] = [];
  const wasTraining = model.training;
  let reason: StopReason = stopper?.stopped ? 'early-stopped' : 'completed';
  // Σ of the micro-batch losses and of the gradient norms since the last read, on the device
  let lossSum = null as Tensor | null; // (assigned in microStep, which flow analysis does not follow)
  let normSum: Tensor | null = null;
  let sinceLog = 0;
  await callAll(cbs, 'onStart', { step, totalSteps: steps, resumedFrom });
  model.train(true);
  let diverged = false;
  // a stop asked for on any rank stops every rank at the same step
  let stopping: boolean;
  const agreeStop = async (): Promise<boolean> => {
    if (!dp) return signal?.aborted ?? false;
    const flag = tensor([signal?.aborted ? 1 : 0], [1], { dtype: 'i32', backend });
    try {
      await dp.allReduce(flag, 'max');
      return (await flag.item()) > 0;
    } finally {
      flag.dispose();
    }
  };
  // each micro-batch's loss is divided by gradAccum (and scaled by an f16 run's scaler) before its backward
  const scaleLoss = (l: Tensor): Tensor => {
    const scaled = gradAccum > 1 ? l.div(gradAccum) : l;
    return scaler ? scaler.scale(scaled) : scaled;
  };
  const forwardIn = <R>(f: () => R): R => (precision === 'f32' ? f() : autocast({ dtype: precision }, f));
  const microStep = (lr: number): void => {
    const batch = curriculum ? curriculum.batch(batchSize, step, generator, batchOpts) : trainData.batch(batchSize, blockSize, generator, batchOpts);
    let loss: Tensor;
    try {
      if (adversarial) {
        const r = adversarialBackward('train', model as unknown as PerturbableModel, batch.input, batch.target, adversarial, scaleLoss, forwardIn);
        r.advLoss.dispose();
        loss = r.loss;
      } else loss = backwardLoss('train', model, batch.input, batch.target, scaleLoss, forwardIn);
    } finally {
      batch.input.dispose();
      batch.target.dispose();
    }
    // a non-finite loss is caught on the device (a fault, read at the next sync) naming this step
    const finite = noGrad(() => isfinite(loss));
    loss.backend.check({ cond: finite._storage('train'), values: loss._storage('train'), op: 'train', message: `${DIVERGED} ${step + 1} (lr ${lr}): the loss is {value}` });
    finite.dispose();
    lossSum = accumulate(lossSum, loss);
  };
  try {
    while (step < steps && reason === 'completed') {
      stopping = await agreeStop();
      if (stopping) {
        reason = 'aborted';
        break;
      }
      const ts = performance.now();
      const lr = optimizer.paramGroups[0]?.lr ?? NaN;
      lastLr = lr;
      optimizer.zeroGrad();
      for (let micro = 0; micro < gradAccum; micro++) {
        // data parallel: the micro-batches before the last reduce nothing; the last one's backward reduces the sums
        if (ddp && micro < gradAccum - 1) await ddp.noSync(() => microStep(lr));
        else microStep(lr);
      }
      await ddp?.syncGradients();
      if (scaler) scaler.unscale(optimizer as ScalableOptimizer); // clipping sees the true gradients
      if (clip > 0) normSum = accumulate(normSum, clipGradNorm(params, clip));
      if (scaler) {
        await scaler.step(optimizer as ScalableOptimizer); // skipped (and the scale lowered) when a gradient overflowed
        scaler.update();
      } else optimizer.step();
      optimizer.zeroGrad(); // gradients are not needed until the next backward: free them now
      scheduler?.step();
      params[0]!.backend.flush(); // a GPU backend submits the step's work now, without waiting
      step++;
      sinceLog++;
      // a read (a sync) only at log steps: the mean of the steps since the last one (over the ranks;
      // one process also reads when a stop was asked for, which the ranks agree on only at the next step)
      let loss: number | undefined;
      let gradNorm: number | undefined;
      if (step % logEvery === 0 || step === steps || (!dp && signal?.aborted)) {
        if (dp) await dp.allReduce(lossSum!, 'mean');
        loss = (await lossSum!.item()) / (gradAccum * sinceLog);
        if (normSum) gradNorm = (await normSum.item()) / sinceLog;
        lossSum!.dispose();
        normSum?.dispose();
        [lossSum, normSum, sinceLog] = [null, null, 0];
        history.push([step, round(loss), round(lr)]);
      }
      const ms = performance.now() - ts;
      stepMs.push(ms);
      const recent = stepMs.slice(-20);
      const tokensPerSecond = (tokensPerStep * recent.length) / (recent.reduce((a, b) => a + b, 0) / 1000);
      await callAll(cbs, 'onStep', {
        step,
        totalSteps: steps,
        ...(loss === undefined ? {} : { loss }),
        lr,
        ...(gradNorm === undefined ? {} : { gradNorm }),
        tokensPerSecond,
        ms,
        tokens: tokensPerStep,
        elapsed: (performance.now() - t0) / 1000,
      });
      await yieldToEventLoop(); // lets a SIGINT handler (or any timer) run between steps
      if (evalEvery > 0 && step % evalEvery === 0) {
        await runEval();
        if (stopper?.stopped) {
          reason = 'early-stopped';
          break;
        }
      }
      if (checkpointEvery > 0 && step % checkpointEvery === 0) await save('interval');
    }
    if (reason === 'completed' && valData) await runEval();
    if (reason !== 'aborted' || step > startStep) await save(reason === 'aborted' ? 'abort' : reason === 'early-stopped' ? 'early-stop' : 'end');
  } catch (e) {
    // the first non-finite loss surfaces at the next read (a log line, an eval, a checkpoint):
    // stop there, write nothing more, and say where the last good checkpoint is
    if (!(e instanceof Error) || !e.message.startsWith(`train: ${DIVERGED}`)) throw e;
    diverged = true;
    throw new Error(`${e.message}; stopped${lastCheckpoint ? `, the last checkpoint is '${lastCheckpoint}'` : ', no checkpoint was written'} (lower the learning rate, or clip the gradients)`);
  } finally {
    if (diverged) reason = 'aborted';
    lossSum?.dispose();
    normSum?.dispose();
    ddp?.dispose();
    model.train(wasTraining);
  }

  const seconds = (performance.now() - t0) / 1000;
  await callAll(cbs, 'onEnd', { step, reason, seconds });
  const tail = history.slice(-20);
  const sorted = [...stepMs].sort((a, b) => a - b);
  const stepSeconds = stepMs.reduce((a, b) => a + b, 0) / 1000;
  const last = evals.length ? evals[evals.length - 1]! : null;
  return {
    step,
    startStep,
    reason,
    resumedFrom,
    loss: tail.length ? tail.reduce((a, h) => a + h[1], 0) / tail.length : null,
    valLoss: last ? last[1] : null,
    perplexity: last ? Math.exp(last[1]) : null,
    bestValLoss,
    bestStep,
    history: history.map(([s, l, r]) => ({ step: s, loss: l, lr: r })),
    evals: evals.map(([s, v]) => ({ step: s, valLoss: v, perplexity: Math.exp(v) })),
    tokens: stepMs.length * tokensPerStep,
    seconds,
    tokensPerSecond: stepSeconds > 0 ? (stepMs.length * tokensPerStep) / stepSeconds : 0,
    msPerStep: sorted.length ? (sorted[(sorted.length - 1) >> 1]! + sorted[sorted.length >> 1]!) / 2 : 0,
    checkpoint: lastCheckpoint,
  };
}
