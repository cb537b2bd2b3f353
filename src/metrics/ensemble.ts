/**
 * Ensembles of language models at evaluation: the members' next-token distributions combined
 * into one, and its loss and perplexity on a token stream, scored on the same windows as
 * `evaluate()` scores one model.
 *
 * Two ways to combine, both common:
 * - `'probs'` (default, a mixture): p = Σ wᵢ·softmax(zᵢ), returned as log p. Its loss is never
 *   above the members' mean loss (−log is convex: −log Σ wᵢpᵢ ≤ Σ wᵢ(−log pᵢ)), and is below it
 *   whenever the members disagree.
 * - `'logits'`: z = Σ wᵢ·zᵢ (a product of experts, a geometric mean of the distributions up to
 *   normalisation): sharper than the mixture, with no such guarantee.
 *
 * Either result goes straight into `crossEntropy` or sampling: log-probabilities are logits
 * whose softmax is the distribution itself.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { backendFor, defaultBackendName } from '../backend/registry.js';
import { tidy } from '../tensor/memory.js';
import { tensor } from '../tensor/ops/creation.js';
import { crossEntropy, logSoftmax } from '../tensor/ops/nn.js';
import { logsumexp, sum } from '../tensor/ops/reduce.js';
import { stack } from '../tensor/ops/shape_ops.js';
import { asOp } from '../tensor/ops/util.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { checkChoice, checkKeys, checkNumber, optionalNumber, show } from '../tensor/validate.js';
import { PerplexityMeter, type PerplexityResult } from './perplexity.js';

/** How {@link ensembleLogits} combines the members: their probabilities (a mixture) or their logits. */
export type EnsembleMode = 'probs' | 'logits';

/** A member of an ensemble: idx `[B, T]` i32 → logits `[B, T, V]` (a GPT, or anything whose forward gives `{ logits }` or the logits). */
export interface EnsembleMember {
  forward(idx: Tensor): { logits: Tensor } | Tensor;
}

/** A member {@link evaluateEnsemble} can put in eval mode. */
export interface EvaluableMember extends EnsembleMember {
  train(mode?: boolean): unknown;
  readonly training: boolean;
}

/** Options of {@link ensembleLogits}. */
export interface EnsembleOptions {
  /** `'probs'` (default): log of the weighted mean of the softmaxes; `'logits'`: the weighted mean of the logits. */
  mode?: EnsembleMode;
  /** One weight ≥ 0 per member (normalised to sum to 1); equal by default. */
  weights?: readonly number[];
}

/** What {@link evaluateEnsemble} reads: a token stream (a `TokenDataset` fits). */
export interface TokenStream {
  readonly length: number;
  window(start: number, length: number): Int32Array;
  sequentialWindows(blockSize: number): number;
  sequential(blockSize: number, opts?: { batchSize?: number; backend?: string }): Iterable<{ input: Tensor; target: Tensor }>;
}

/** Options of {@link evaluateEnsemble}: those of `evaluate()`, and how to combine. */
export interface EvaluateEnsembleOptions extends EnsembleOptions {
  /** Tokens per window. */
  blockSize: number;
  /** Windows per batch; 8 by default. */
  batchSize?: number;
  /** Score at most this many batches of full windows spread evenly over the stream, as `evaluate()` chooses them; all by default. */
  maxBatches?: number;
  /** Backend of the batch tensors: the first member's parameters' backend, else the default backend. */
  backend?: string;
}

/** What {@link evaluateEnsemble} returns: the ensemble's perplexity, and each member's on the same tokens. */
export interface EnsembleResult extends PerplexityResult {
  /** Each member's own perplexity on the same windows. */
  members: PerplexityResult[];
  /** The mean of the members' losses (nats per token), the number an ensemble is compared with. */
  meanMemberNll: number;
  batches: number;
  seconds: number;
}

const ENSEMBLE_KEYS = ['mode', 'weights'] as const;

function checkMembers(op: string, models: unknown, evaluable: boolean): EvaluableMember[] {
  if (!Array.isArray(models) || models.length === 0) throw new Error(`${op}: models must be a non-empty array of models, got ${show(models)}`);
  models.forEach((m, i) => {
    if (m === null || typeof m !== 'object' || typeof (m as EnsembleMember).forward !== 'function')
      throw new Error(`${op}: models[${i}] must have forward(idx), got ${show(m)}`);
    if (evaluable && typeof (m as EvaluableMember).train !== 'function') throw new Error(`${op}: models[${i}] must have train(mode), got ${show(m)}`);
  });
  return models as EvaluableMember[];
}

// the normalised weights, or null for equal ones
function checkWeights(op: string, weights: unknown, n: number): number[] | null {
  if (weights === undefined) return null;
  if (!Array.isArray(weights)) throw new Error(`${op}: weights must be an array of ${n} numbers ≥ 0, got ${show(weights)}`);
  if (weights.length !== n) throw new Error(`${op}: weights has ${weights.length} entries for ${n} models`);
  weights.forEach((w, i) => checkNumber(op, `weights[${i}]`, w, { min: 0 }));
  const total = (weights as number[]).reduce((a, b) => a + b, 0);
  if (!(total > 0)) throw new Error(`${op}: weights must not all be 0, got ${show(weights)}`);
  return (weights as number[]).map((w) => w / total);
}

function checkEnsembleOptions(op: string, opts: unknown, n: number, keys: readonly string[]): { mode: EnsembleMode; weights: number[] | null } {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: options must be an object, got ${show(opts)}`);
  checkKeys(op, opts, keys);
  const o = opts as EnsembleOptions;
  const mode = checkChoice(op, 'mode', o.mode ?? 'probs', ['probs', 'logits'] as const);
  return { mode, weights: checkWeights(op, o.weights, n) };
}

// each member's logits for idx, checked to agree in shape
function memberLogits(op: string, models: readonly EnsembleMember[], idx: Tensor): Tensor[] {
  const out: Tensor[] = [];
  models.forEach((m, i) => {
    const r = asOp(op, () => m.forward(idx));
    const z = r instanceof Tensor ? r : (r as { logits?: unknown } | null)?.logits;
    if (!(z instanceof Tensor)) throw new Error(`${op}: models[${i}].forward(idx) must give logits (a Tensor or { logits }), got ${show(z)}`);
    if (out.length && (z.rank !== out[0]!.rank || z.shape.some((d, j) => d !== out[0]!.shape[j])))
      throw new Error(`${op}: models[${i}] gives logits ${fmt(z.shape)}, models[0] ${fmt(out[0]!.shape)} (the members must share a vocabulary)`);
    out.push(z);
  });
  return out;
}

// Σ wᵢ·zᵢ, or log Σ wᵢ·softmax(zᵢ) = logsumexpᵢ(log_softmax(zᵢ) + log wᵢ)
function combine(zs: readonly Tensor[], mode: EnsembleMode, weights: number[] | null): Tensor {
  const n = zs.length;
  const w = weights ?? zs.map(() => 1 / n);
  if (mode === 'logits') {
    if (n === 1) return zs[0]!.mul(1);
    const scaled = zs.map((z, i) => z.mul(w[i]!));
    return sum(stack(scaled), 0);
  }
  const logp = zs.map((z, i) => (weights === null ? logSoftmax(z) : logSoftmax(z).add(Math.log(w[i]!))));
  if (n === 1) return logp[0]!;
  const lse = logsumexp(stack(logp), 0);
  return weights === null ? lse.sub(Math.log(n)) : lse;
}

/**
 * The ensemble's prediction for `idx` `[B, T]`: `[B, T, V]`, the log of the (weighted) mean of
 * the members' softmaxes (`mode: 'probs'`, the default: log-probabilities) or the (weighted) mean
 * of their logits (`mode: 'logits'`). Differentiable; run it under `noGrad` to evaluate.
 *
 * @example
 * const logp = noGrad(() => ensembleLogits([gptA, gptB], idx));    // mixture log-probabilities
 * const loss = crossEntropy(logp, targets);
 * const z = noGrad(() => ensembleLogits([gptA, gptB], idx, { mode: 'logits', weights: [2, 1] }));
 */
export function ensembleLogits(models: readonly EnsembleMember[], idx: Tensor, opts: EnsembleOptions = {}): Tensor {
  const op = 'ensembleLogits';
  const members = checkMembers(op, models, false);
  if (!(idx instanceof Tensor)) throw new Error(`${op}: idx must be a Tensor of token ids, got ${show(idx)}`);
  if (idx.disposed) throw new Error(`${op}: idx was disposed`);
  const { mode, weights } = checkEnsembleOptions(op, opts ?? {}, members.length, ENSEMBLE_KEYS);
  return tidy(() => asOp(op, () => combine(memberLogits(op, members, idx), mode, weights)));
}

/**
 * The batches `evaluate()` scores: every window in order, or `maxBatches` batches of full
 * windows spread evenly over the stream (window j of n is window ⌊j·N/n⌋ of the N full ones).
 */
function* batchesOf(data: TokenStream, blockSize: number, batchSize: number, maxBatches: number, backend: string): IterableIterator<{ input: Tensor; target: Tensor }> {
  const full = Math.floor((data.length - 1) / blockSize);
  const wanted = maxBatches * batchSize;
  if (wanted >= data.sequentialWindows(blockSize)) {
    yield* data.sequential(blockSize, { batchSize, backend });
    return;
  }
  for (let j0 = 0; j0 < wanted; j0 += batchSize) {
    const n = Math.min(batchSize, wanted - j0);
    const input = new Int32Array(n * blockSize);
    const target = new Int32Array(n * blockSize);
    for (let i = 0; i < n; i++) {
      const w = data.window(Math.floor(((j0 + i) * full) / wanted) * blockSize, blockSize + 1);
      input.set(w.subarray(0, blockSize), i * blockSize);
      target.set(w.subarray(1), i * blockSize);
    }
    yield { input: tensor(input, [n, blockSize], { backend }), target: tensor(target, [n, blockSize], { backend }) };
  }
}

/**
 * Loss and perplexity of an ensemble on a token stream, on the windows `evaluate()` scores with
 * the same options, in eval mode without gradients (each member's mode is restored after), with
 * each member's own result on the same tokens. Sums stay on the device: the reads are at the end.
 *
 * @example
 * const r = await evaluateEnsemble([gptA, gptB], TokenDataset.open(valShards), { blockSize: 128, maxBatches: 20 });
 * console.log(r.nll, r.meanMemberNll, r.members.map((m) => m.nll));
 */
export async function evaluateEnsemble(models: readonly EvaluableMember[], data: TokenStream, opts: EvaluateEnsembleOptions): Promise<EnsembleResult> {
  const t0 = performance.now();
  const op = 'evaluateEnsemble';
  const members = checkMembers(op, models, true);
  if (data === null || typeof data !== 'object' || typeof data.sequential !== 'function' || typeof data.window !== 'function')
    throw new Error(`${op}: data must be a TokenDataset, got ${show(data)}`);
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { blockSize, batchSize?, maxBatches?, backend?, mode?, weights? }, got ${show(opts)}`);
  const { mode, weights } = checkEnsembleOptions(op, opts, members.length, [...ENSEMBLE_KEYS, 'blockSize', 'batchSize', 'maxBatches', 'backend']);
  const blockSize = checkNumber(op, 'blockSize', opts.blockSize, { integer: true, min: 1 });
  const batchSize = optionalNumber(op, 'batchSize', opts.batchSize, 8, { integer: true, min: 1 });
  const maxBatches = optionalNumber(op, 'maxBatches', opts.maxBatches, Infinity, { integer: true, min: 1, infinity: true });
  if (opts.backend !== undefined) {
    if (typeof opts.backend !== 'string') throw new Error(`${op}: backend must be a backend's name, got ${show(opts.backend)}`);
    backendFor(op, opts.backend);
  }
  if (data.length < 2) throw new Error(`${op}: the stream has ${data.length} token(s); at least 2 are needed to score one`);
  const first = (members[0] as { parameters?: () => Tensor[] }).parameters?.()[0];
  const backend = opts.backend ?? first?.backend.name ?? defaultBackendName();
  const meter = new PerplexityMeter();
  const meters = members.map(() => new PerplexityMeter());
  const modes = members.map((m) => m.training);
  for (const m of members) m.train(false);
  let batches = 0;
  try {
    for (const b of batchesOf(data, blockSize, batchSize, maxBatches, backend)) {
      try {
        const losses = tidy(() =>
          noGrad(() => {
            const zs = memberLogits(op, members, b.input);
            const own = zs.map((z) => asOp(op, () => crossEntropy(z, b.target)));
            return [asOp(op, () => crossEntropy(combine(zs, mode, weights), b.target)), ...own];
          }),
        );
        meter.addMean(losses[0]!, b.target.size);
        losses.slice(1).forEach((l, i) => meters[i]!.addMean(l, b.target.size));
        for (const l of losses) l.dispose();
      } finally {
        b.input.dispose();
        b.target.dispose();
      }
      batches++;
    }
    const result = await meter.result();
    const each: PerplexityResult[] = [];
    for (const m of meters) each.push(await m.result());
    const meanMemberNll = each.reduce((a, r) => a + r.nll, 0) / each.length;
    return { ...result, members: each, meanMemberNll, batches, seconds: (performance.now() - t0) / 1000 };
  } finally {
    meter.reset();
    for (const m of meters) m.reset();
    members.forEach((m, i) => m.train(modes[i]));
  }
}
