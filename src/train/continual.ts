/**
 * Continual learning: resume a trained language model on new data while replaying a sample of
 * the old, and measure what it forgot. {@link ReplayBuffer} keeps a uniform sample of the old
 * training windows by reservoir sampling (Vitter's Algorithm R); {@link continualTrain} runs one
 * phase of training on the new stream in which a fixed share of every batch's rows are replayed
 * windows (experience replay, as Chaudhry et al. 2019, "On Tiny Episodic Memories in Continual
 * Learning"), and scores the old validation stream before and after:
 * forgetting = old-val loss after − old-val loss before.
 *
 * Everything is in memory and browser-safe (the core): a stream is a `TokenDataset` (anything with
 * `length` and `window(start, length)`) or an array of token ids. The steps are the training
 * loop's (`train()`) in miniature: forward, backward, optional gradient clipping, optimizer step,
 * with the losses summed on the device and read once per phase. (`train()` itself lives in the
 * Node-only `loop.ts`, which reads shards and writes checkpoints.)
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { clipGradNorm } from '../optim/clip.js';
import { keep, tidy } from '../tensor/memory.js';
import { tensor } from '../tensor/ops/creation.js';
import { add, clone } from '../tensor/ops/elementwise.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { backendFor } from '../backend/registry.js';
import { checkKeys, checkNumber, optionalNumber, show } from '../tensor/validate.js';

/** A token stream read by windows: a `TokenDataset` fits, and so does {@link tokenSource}'s result. */
export interface TokenSource {
  /** Tokens in the stream. */
  readonly length: number;
  /** Tokens [start, start + length) of the stream. */
  window(start: number, length: number): Int32Array;
}

/** A token stream: a {@link TokenSource} (a `TokenDataset`), or the token ids themselves. */
export type TokenInput = TokenSource | readonly number[] | Int32Array | Uint32Array | Uint16Array;

/** What continual and federated training need of a model: a GPT, or anything shaped like one. */
export interface LearnerModel {
  /** idx `[B, T]` i32, targets `[B, T]` i32 → the mean cross-entropy as `loss`. */
  forward(idx: Tensor, targets: Tensor): { loss?: Tensor };
  /** The same loss without the logits, where the model can (GPT's fused head and cross-entropy); the loops prefer it. */
  loss?(idx: Tensor, targets: Tensor): Tensor;
  parameters(): Tensor[];
  /** Training mode on or off (dropout). */
  train(mode?: boolean): unknown;
  readonly training: boolean;
}

/** What the steps need of an optimizer (every kiln optimizer fits). */
export interface LearnerOptimizer {
  step(): void;
  zeroGrad(): void;
}

/**
 * A {@link TokenSource} over token ids held in memory (copied once into an Int32Array).
 *
 * @example
 * const old = tokenSource(tokenizer.encode(oldText));
 */
export function tokenSource(tokens: readonly number[] | Int32Array | Uint32Array | Uint16Array): TokenSource {
  return sourceOf('tokenSource', 'tokens', tokens);
}

/** @internal `x` as a TokenSource (arrays are checked and copied), or an error naming `op` and `name`. */
export function sourceOf(op: string, name: string, x: unknown): TokenSource {
  if (Array.isArray(x) || (ArrayBuffer.isView(x) && !(x instanceof DataView))) {
    const arr = x as ArrayLike<number>;
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i];
      if (!Number.isInteger(v) || (v as number) < 0 || (v as number) >= 2 ** 31) throw new Error(`${op}: ${name}[${i}] must be a token id (an integer ≥ 0), got ${show(v)}`);
    }
    const ids = Int32Array.from(arr);
    return {
      length: ids.length,
      window(start: number, length: number): Int32Array {
        if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length < 0 || start + length > ids.length)
          throw new Error(`${op}: window [${start}, ${start + length}) is outside the stream [0, ${ids.length})`);
        return ids.slice(start, start + length);
      },
    };
  }
  if (x !== null && typeof x === 'object' && typeof (x as TokenSource).window === 'function' && Number.isSafeInteger((x as TokenSource).length)) {
    if ((x as { closed?: unknown }).closed === true) throw new Error(`${op}: ${name} is a closed dataset`);
    return x as TokenSource;
  }
  throw new Error(`${op}: ${name} must be a TokenDataset or an array of token ids, got ${show(x)}`);
}

// ---- the replay buffer -------------------------------------------------------------------------

/** Options of {@link ReplayBuffer}. */
export interface ReplayBufferOptions {
  /** The most windows kept. */
  capacity: number;
  /** Tokens per training sequence T: each window kept holds T + 1 tokens (inputs and next-token targets). */
  blockSize: number;
  /** The stream the reservoir's choices are drawn from (a fresh `Generator(0)` by default). */
  generator?: Generator;
}

/**
 * A fixed-size uniform sample of the windows offered to it, by reservoir sampling (Algorithm R):
 * the first `capacity` windows are kept; the i-th after them (0-based count i) replaces a uniformly
 * chosen slot with probability capacity / (i + 1). After any number of offers, every window
 * offered is in the buffer with the same probability.
 *
 * @example
 * const buffer = new ReplayBuffer({ capacity: 512, blockSize: 128, generator: new Generator(3) });
 * buffer.addStream(oldTrain);                     // every non-overlapping window of the old data
 * await continualTrain({ ..., replay: { buffer, ratio: 0.25 } });
 */
export class ReplayBuffer {
  readonly capacity: number;
  readonly blockSize: number;
  private readonly slots: Int32Array[] = [];
  private readonly generator: Generator;
  private offered = 0;

  constructor(opts: ReplayBufferOptions) {
    const op = 'ReplayBuffer';
    if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { capacity, blockSize, generator? }, got ${show(opts)}`);
    checkKeys(op, opts, ['capacity', 'blockSize', 'generator']);
    this.capacity = checkNumber(op, 'capacity', opts.capacity, { integer: true, min: 1 });
    this.blockSize = checkNumber(op, 'blockSize', opts.blockSize, { integer: true, min: 1 });
    if (opts.generator !== undefined && !(opts.generator instanceof Generator)) throw new Error(`${op}: generator must be a Generator, got ${show(opts.generator)}`);
    this.generator = opts.generator ?? new Generator(0);
  }

  /** Windows held now (at most `capacity`). */
  get size(): number {
    return this.slots.length;
  }

  /** Windows offered so far. */
  get seen(): number {
    return this.offered;
  }

  /** Offer one window of `blockSize + 1` token ids; returns whether it was kept. */
  add(window: ArrayLike<number>): boolean {
    const op = 'ReplayBuffer.add';
    if (!(Array.isArray(window) || (ArrayBuffer.isView(window) && !(window instanceof DataView)))) throw new Error(`${op}: window must be an array of token ids, got ${show(window)}`);
    if (window.length !== this.blockSize + 1) throw new Error(`${op}: window has ${window.length} tokens, expected blockSize + 1 = ${this.blockSize + 1}`);
    for (let i = 0; i < window.length; i++) {
      const v = window[i];
      if (!Number.isInteger(v) || (v as number) < 0 || (v as number) >= 2 ** 31) throw new Error(`${op}: window[${i}] must be a token id (an integer ≥ 0), got ${show(v)}`);
    }
    return this.offer(Int32Array.from(window));
  }

  private offer(w: Int32Array): boolean {
    const i = this.offered++;
    if (i < this.capacity) {
      this.slots.push(w);
      return true;
    }
    // keep with probability capacity / (i + 1), in a uniformly chosen slot
    const j = this.generator.draw(1, { kind: 'randint', low: 0, high: Math.min(i + 1, 2 ** 31) })[0]!;
    if (j >= this.capacity) return false;
    this.slots[j] = w;
    return true;
  }

  /**
   * Offer every window of `blockSize + 1` tokens of `source` whose start is a multiple of `stride`
   * (`blockSize` by default: non-overlapping targets, as evaluation reads a stream), in stream
   * order. Returns how many were offered.
   */
  addStream(source: TokenInput, opts: { stride?: number } = {}): number {
    const op = 'ReplayBuffer.addStream';
    const src = sourceOf(op, 'source', source);
    if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: options must be an object, got ${show(opts)}`);
    checkKeys(op, opts, ['stride']);
    const stride = optionalNumber(op, 'stride', opts.stride, this.blockSize, { integer: true, min: 1 });
    const w = this.blockSize + 1;
    let n = 0;
    for (let s = 0; s + w <= src.length; s += stride, n++) this.offer(src.window(s, w));
    return n;
  }

  /** A copy of the window in slot `i`. */
  window(i: number): Int32Array {
    checkNumber('ReplayBuffer.window', 'i', i, { integer: true, min: 0, max: Math.max(0, this.slots.length - 1) });
    if (i >= this.slots.length) throw new Error(`ReplayBuffer.window: the buffer is empty (i = ${i})`);
    return this.slots[i]!.slice();
  }

  /** `n` windows drawn uniformly with replacement from the buffer (the windows themselves: do not change them). */
  sample(n: number, generator: Generator): Int32Array[] {
    const op = 'ReplayBuffer.sample';
    checkNumber(op, 'n', n, { integer: true, min: 0 });
    if (!(generator instanceof Generator)) throw new Error(`${op}: generator must be a Generator, got ${show(generator)}`);
    if (n > 0 && this.slots.length === 0) throw new Error(`${op}: the buffer is empty (offer windows with add or addStream first)`);
    if (n === 0) return [];
    return Array.from(generator.draw(n, { kind: 'randint', low: 0, high: this.slots.length }), (j) => this.slots[j]!);
  }

  /** Forget every window (and the count of offers). */
  clear(): void {
    this.slots.length = 0;
    this.offered = 0;
  }
}

// ---- batches, steps and evaluation (shared with federated.ts, and with loop.ts's train() and evaluate()) ----

/** A batch as host arrays: input and target `[B, T]`, row-major. */
interface HostBatch {
  input: Int32Array;
  target: Int32Array;
  rows: number;
}

/** @internal The windows of `blockSize + 1` tokens a random batch may start at, summed over `sources`. */
export function validStarts(sources: readonly TokenSource[], blockSize: number): number {
  return sources.reduce((a, s) => a + Math.max(0, s.length - blockSize), 0);
}

/**
 * @internal `rows` windows of `blockSize + 1` tokens, their starts uniform over every valid start of
 * every source (a window never crosses from one source into the next), written into `out` from row `at`.
 */
export function drawWindows(sources: readonly TokenSource[], rows: number, blockSize: number, generator: Generator, out: HostBatch, at = 0): void {
  if (rows === 0) return;
  const total = validStarts(sources, blockSize);
  const starts = generator.draw(rows, { kind: 'randint', low: 0, high: total });
  for (let r = 0; r < rows; r++) {
    let s = starts[r]!;
    let k = 0;
    while (s >= Math.max(0, sources[k]!.length - blockSize)) s -= Math.max(0, sources[k++]!.length - blockSize);
    putWindow(out, at + r, sources[k]!.window(s, blockSize + 1), blockSize);
  }
}

/** @internal Write the window `w` of `blockSize + 1` tokens into row `row` of `out` (inputs, and targets one later). */
export function putWindow(out: HostBatch, row: number, w: Int32Array, blockSize: number): void {
  out.input.set(w.subarray(0, blockSize), row * blockSize);
  out.target.set(w.subarray(1, blockSize + 1), row * blockSize);
}

/** @internal An empty host batch of `rows` × `blockSize`. */
export function hostBatch(rows: number, blockSize: number): HostBatch {
  return { input: new Int32Array(rows * blockSize), target: new Int32Array(rows * blockSize), rows };
}

/** @internal A host batch of `rows` windows drawn by {@link drawWindows}. */
export function drawBatch(sources: readonly TokenSource[], rows: number, blockSize: number, generator: Generator): HostBatch {
  const b = hostBatch(rows, blockSize);
  drawWindows(sources, rows, blockSize, generator, b);
  return b;
}

/**
 * @internal `model.loss(input, target)` where the model has it (a {@link GPT}: no logits made),
 * else `model.forward(input, target).loss`, or an error naming `op` when the model returned none.
 */
export function forwardLoss(op: string, model: Pick<LearnerModel, 'forward' | 'loss'>, input: Tensor, target: Tensor): Tensor {
  const l = typeof model.loss === 'function' ? model.loss(input, target) : model.forward(input, target).loss;
  if (!l) throw new Error(`${op}: model.forward(input, target) returned no loss`);
  return l;
}

/**
 * @internal One micro-step's gradients: the loss of `model` on the batch (the forward pass run
 * through `forward`: autocast, say), backward of `scale(loss)` (gradient accumulation, a loss
 * scaler); returns the unscaled loss, detached, the graph freed.
 */
export function backwardLoss(
  op: string,
  model: Pick<LearnerModel, 'forward' | 'loss'>,
  input: Tensor,
  target: Tensor,
  scale: (loss: Tensor) => Tensor = (l) => l,
  forward: <R>(f: () => R) => R = (f) => f(),
): Tensor {
  return tidy(() => {
    const l = forward(() => forwardLoss(op, model, input, target));
    scale(l).backward();
    return l.detach();
  });
}

/** @internal `sum + x` on the device (`x` itself cloned when `sum` is null), kept; `sum` and `x` are disposed. */
export function accumulate(sum: Tensor | null, x: Tensor): Tensor {
  const next = keep(noGrad(() => (sum ? add(sum, x) : clone(x))));
  sum?.dispose();
  x.dispose();
  return next;
}

/**
 * @internal `steps` optimizer steps, each on the batch `next(step)` returns: forward, backward,
 * clip the gradient norm to `clip` (off at 0), step; the training mode is on during the steps and
 * restored after. Returns the mean training loss (one read, at the end), NaN when `steps` is 0.
 */
export async function runSteps(
  op: string,
  model: LearnerModel,
  optimizer: LearnerOptimizer,
  next: (step: number) => HostBatch,
  steps: number,
  blockSize: number,
  clip: number,
  backend: string,
): Promise<number> {
  const params = model.parameters();
  const wasTraining = model.training;
  let sum: Tensor | null = null; // Σ losses, on the device
  model.train(true);
  try {
    for (let s = 0; s < steps; s++) {
      const b = next(s);
      optimizer.zeroGrad();
      const input = tensor(b.input, [b.rows, blockSize], { backend });
      const target = tensor(b.target, [b.rows, blockSize], { backend });
      let loss: Tensor;
      try {
        loss = backwardLoss(op, model, input, target);
      } finally {
        input.dispose();
        target.dispose();
      }
      if (clip > 0) clipGradNorm(params, clip).dispose();
      optimizer.step();
      optimizer.zeroGrad();
      sum = accumulate(sum, loss);
    }
    if (!sum) return NaN;
    const mean = (await sum.item()) / steps;
    if (!Number.isFinite(mean)) throw new Error(`${op}: the training loss is ${mean} (lower the learning rate, or clip the gradients)`);
    return mean;
  } finally {
    (sum as Tensor | null)?.dispose();
    model.train(wasTraining);
  }
}

/** Options of {@link heldOutLoss}. */
export interface HeldOutLossOptions {
  /** Tokens per window T. */
  blockSize: number;
  /** Windows per batch; 8 by default. */
  batchSize?: number;
  /** Score at most this many windows, spread evenly over the stream (the same ones every call); all by default. */
  maxWindows?: number;
  /** Backend of the batch tensors; the backend of the model's first parameter by default. */
  backend?: string;
}

/** What {@link heldOutLoss} returns. */
export interface HeldOutLoss {
  /** The mean next-token cross-entropy in nats. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** Tokens scored. */
  tokens: number;
}

/**
 * The mean next-token cross-entropy of `model` on a token stream, over full non-overlapping
 * windows of `blockSize` targets (window j: inputs [jT, (j+1)T), targets one later), all of them
 * or `maxWindows` spread evenly, in eval mode without gradients (the mode is restored after). It
 * scores the windows `evaluate()` scores when the stream divides into full windows; unlike
 * `evaluate()` it is in the core and takes tokens in memory.
 *
 * @example
 * const { loss, perplexity } = await heldOutLoss(model, oldVal, { blockSize: 64, maxWindows: 64 });
 */
export async function heldOutLoss(model: LearnerModel, data: TokenInput, opts: HeldOutLossOptions): Promise<HeldOutLoss> {
  const op = 'heldOutLoss';
  checkModel(op, model);
  const src = sourceOf(op, 'data', data);
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { blockSize, batchSize?, maxWindows?, backend? }, got ${show(opts)}`);
  checkKeys(op, opts, ['blockSize', 'batchSize', 'maxWindows', 'backend']);
  const blockSize = checkNumber(op, 'blockSize', opts.blockSize, { integer: true, min: 1 });
  const batchSize = optionalNumber(op, 'batchSize', opts.batchSize, 8, { integer: true, min: 1 });
  const maxWindows = optionalNumber(op, 'maxWindows', opts.maxWindows, Infinity, { integer: true, min: 1, infinity: true });
  const backend = backendOf(op, model, opts.backend);
  return scoreStream(op, model, src, blockSize, batchSize, maxWindows, backend);
}

/** @internal {@link heldOutLoss} after its checks. */
export async function scoreStream(op: string, model: LearnerModel, src: TokenSource, blockSize: number, batchSize: number, maxWindows: number, backend: string): Promise<HeldOutLoss> {
  const full = Math.floor((src.length - 1) / blockSize);
  if (full < 1) throw new Error(`${op}: the stream has ${src.length} tokens, fewer than blockSize + 1 = ${blockSize + 1} (one full window)`);
  const n = Math.min(full, maxWindows);
  const wasTraining = model.training;
  model.train(false);
  let sum: Tensor | null = null; // Σ mean loss × rows, on the device
  try {
    for (let j0 = 0; j0 < n; j0 += batchSize) {
      const rows = Math.min(batchSize, n - j0);
      const b = hostBatch(rows, blockSize);
      for (let r = 0; r < rows; r++) putWindow(b, r, src.window(Math.floor(((j0 + r) * full) / n) * blockSize, blockSize + 1), blockSize);
      const input = tensor(b.input, [rows, blockSize], { backend });
      const target = tensor(b.target, [rows, blockSize], { backend });
      try {
        sum = accumulate(sum, tidy(() => noGrad(() => forwardLoss(op, model, input, target).mul(rows))));
      } finally {
        input.dispose();
        target.dispose();
      }
    }
    const loss = (await sum!.item()) / n;
    return { loss, perplexity: Math.exp(loss), tokens: n * blockSize };
  } finally {
    (sum as Tensor | null)?.dispose();
    model.train(wasTraining);
  }
}

/** @internal Throws unless `model` has forward, parameters and train. */
export function checkModel(op: string, model: unknown): asserts model is LearnerModel {
  const m = model as Partial<LearnerModel> | null;
  if (m === null || typeof m !== 'object' || typeof m.forward !== 'function' || typeof m.parameters !== 'function' || typeof m.train !== 'function')
    throw new Error(`${op}: model must have forward(idx, targets), parameters() and train(mode), got ${show(model)}`);
}

/** @internal The batch backend: `backend` when given (checked), else that of the model's first parameter. */
export function backendOf(op: string, model: LearnerModel, backend: unknown): string {
  if (backend !== undefined) {
    if (typeof backend !== 'string') throw new Error(`${op}: backend must be a backend's name, got ${show(backend)}`);
    backendFor(op, backend);
    return backend;
  }
  const p = model.parameters()[0];
  if (!p) throw new Error(`${op}: the model has no parameters`);
  return p.backend.name;
}

/** @internal Throws unless `optimizer` has step and zeroGrad. */
export function checkOptimizer(op: string, name: string, optimizer: unknown): asserts optimizer is LearnerOptimizer {
  const o = optimizer as Partial<LearnerOptimizer> | null;
  if (o === null || typeof o !== 'object' || typeof o.step !== 'function' || typeof o.zeroGrad !== 'function')
    throw new Error(`${op}: ${name} must be an optimizer (AdamW, SGD, ...), got ${show(optimizer)}`);
}

// ---- one continual phase -----------------------------------------------------------------------

/** Options of {@link continualTrain}. */
export interface ContinualTrainOptions {
  /** The trained model, resumed in place. */
  model: LearnerModel;
  optimizer: LearnerOptimizer;
  /** The new training stream; the old validation stream (scored before and after); optionally the new one. */
  data: { train: TokenInput; oldVal: TokenInput; newVal?: TokenInput };
  /**
   * Experience replay: `ratio` of each batch's rows (in [0, 1)) are windows drawn from `buffer`;
   * over the phase, exactly ⌊steps·ratio·batchSize⌋ rows are replayed (step s takes
   * ⌊(s+1)·r·B⌋ − ⌊s·r·B⌋ of them). None (plain fine-tuning on the new data) when omitted or null.
   */
  replay?: { buffer: ReplayBuffer; ratio: number } | null;
  /** Optimizer steps on the new data. */
  steps: number;
  /** Sequences per batch. */
  batchSize: number;
  /** Tokens per sequence (at most the model's context); a replay buffer must hold windows of this size. */
  blockSize: number;
  /** The stream the batches (and the replayed windows) are drawn from. */
  generator: Generator;
  /** Clip the total gradient norm to this before each step; off when 0 or omitted. */
  clip?: number;
  /** Validation windows scored per stream (spread evenly), all by default; see {@link heldOutLoss}. */
  evalWindows?: number;
  /** Windows per validation batch; `batchSize` by default. */
  evalBatchSize?: number;
  /** Backend of the batch tensors; the backend of the model's first parameter by default. */
  backend?: string;
}

/** The validation losses at one end of a phase. */
export interface ContinualEval {
  /** Mean cross-entropy on the old validation stream, and its exp. */
  oldLoss: number;
  oldPerplexity: number;
  /** The same on the new validation stream, or null without `data.newVal`. */
  newLoss: number | null;
  newPerplexity: number | null;
}

/** What {@link continualTrain} returns. */
export interface ContinualResult {
  before: ContinualEval;
  after: ContinualEval;
  /** after.oldLoss − before.oldLoss: how much worse the model got on the old data (nats; negative: it improved). */
  forgetting: number;
  /** Mean training loss over the phase's batches (new and replayed rows together). */
  trainLoss: number;
  steps: number;
  /** Rows drawn from the replay buffer over the phase, and from the new data. */
  replayedRows: number;
  newRows: number;
}

const CONTINUAL_KEYS = ['model', 'optimizer', 'data', 'replay', 'steps', 'batchSize', 'blockSize', 'generator', 'clip', 'evalWindows', 'evalBatchSize', 'backend'] as const;

/**
 * One phase of continual learning: score the old (and new) validation streams, train `steps`
 * steps on batches of the new stream mixed with replayed old windows, score them again. Run it
 * with and without `replay`, from the same weights, to see what replay saves.
 *
 * @example
 * const buffer = new ReplayBuffer({ capacity: 256, blockSize: 64, generator: new Generator(5) });
 * buffer.addStream(oldTrain);
 * const r = await continualTrain({
 *   model, optimizer: new AdamW(model.parameters(), { lr: 1e-3 }),
 *   data: { train: newTrain, oldVal, newVal }, replay: { buffer, ratio: 0.25 },
 *   steps: 500, batchSize: 16, blockSize: 64, generator: new Generator(6),
 * });
 * r.forgetting; // old-val loss after − before, in nats
 */
export async function continualTrain(opts: ContinualTrainOptions): Promise<ContinualResult> {
  const op = 'continualTrain';
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected an options object, got ${show(opts)}`);
  checkKeys(op, opts, CONTINUAL_KEYS);
  const { model, optimizer, generator } = opts;
  checkModel(op, model);
  checkOptimizer(op, 'optimizer', optimizer);
  if (!(generator instanceof Generator)) throw new Error(`${op}: generator must be a Generator (it draws the batches), got ${show(generator)}`);
  if (opts.data === null || typeof opts.data !== 'object' || Array.isArray(opts.data)) throw new Error(`${op}: data must be { train, oldVal, newVal? }, got ${show(opts.data)}`);
  checkKeys(`${op}: data`, opts.data, ['train', 'oldVal', 'newVal']);
  const train = sourceOf(op, 'data.train', opts.data.train);
  const oldVal = sourceOf(op, 'data.oldVal', opts.data.oldVal);
  const newVal = opts.data.newVal === undefined ? null : sourceOf(op, 'data.newVal', opts.data.newVal);
  const steps = checkNumber(op, 'steps', opts.steps, { integer: true, min: 0 });
  const batchSize = checkNumber(op, 'batchSize', opts.batchSize, { integer: true, min: 1 });
  const blockSize = checkNumber(op, 'blockSize', opts.blockSize, { integer: true, min: 1 });
  const clip = optionalNumber(op, 'clip', opts.clip, 0, { min: 0 });
  const evalWindows = optionalNumber(op, 'evalWindows', opts.evalWindows, Infinity, { integer: true, min: 1, infinity: true });
  const evalBatchSize = optionalNumber(op, 'evalBatchSize', opts.evalBatchSize, batchSize, { integer: true, min: 1 });
  const replay = opts.replay ?? null;
  let ratio = 0;
  if (replay !== null) {
    if (typeof replay !== 'object' || Array.isArray(replay)) throw new Error(`${op}: replay must be { buffer, ratio } or null, got ${show(replay)}`);
    checkKeys(`${op}: replay`, replay, ['buffer', 'ratio']);
    if (!(replay.buffer instanceof ReplayBuffer)) throw new Error(`${op}: replay.buffer must be a ReplayBuffer, got ${show(replay.buffer)}`);
    ratio = checkNumber(op, 'replay.ratio', replay.ratio, { min: 0, max: 1, maxExclusive: true });
    if (replay.buffer.blockSize !== blockSize) throw new Error(`${op}: replay.buffer holds windows of blockSize ${replay.buffer.blockSize}, the phase's blockSize is ${blockSize}`);
    if (ratio > 0 && replay.buffer.size === 0) throw new Error(`${op}: replay.buffer is empty (offer it the old windows with addStream first)`);
  }
  const backend = backendOf(op, model, opts.backend);
  if (validStarts([train], blockSize) < 1) throw new Error(`${op}: data.train has ${train.length} tokens, fewer than blockSize + 1 = ${blockSize + 1}`);

  const score = async (): Promise<ContinualEval> => {
    const o = await scoreStream(`${op}: data.oldVal`, model, oldVal, blockSize, evalBatchSize, evalWindows, backend);
    const n = newVal ? await scoreStream(`${op}: data.newVal`, model, newVal, blockSize, evalBatchSize, evalWindows, backend) : null;
    return { oldLoss: o.loss, oldPerplexity: o.perplexity, newLoss: n?.loss ?? null, newPerplexity: n?.perplexity ?? null };
  };
  const before = await score();
  let replayedRows = 0;
  const perBatch = ratio * batchSize;
  const next = (s: number): HostBatch => {
    const r = Math.floor((s + 1) * perBatch) - Math.floor(s * perBatch);
    const b = hostBatch(batchSize, blockSize);
    drawWindows([train], batchSize - r, blockSize, generator, b);
    if (r > 0) replay!.buffer.sample(r, generator).forEach((w, i) => putWindow(b, batchSize - r + i, w, blockSize));
    replayedRows += r;
    return b;
  };
  const trainLoss = await runSteps(op, model, optimizer, next, steps, blockSize, clip, backend);
  const after = await score();
  return { before, after, forgetting: after.oldLoss - before.oldLoss, trainLoss, steps, replayedRows, newRows: steps * batchSize - replayedRows };
}
