/**
 * Perplexity: exp of the mean negative log-likelihood per token, in nats.
 *
 * The mean must be token-weighted: averaging the perplexities (or the mean losses) of batches
 * that hold different numbers of tokens gives a different, wrong number. {@link PerplexityMeter}
 * keeps the sum of token NLLs and the token count across batches for that reason.
 *
 * A {@link PerplexityMeter} given loss tensors adds them up on the device and reads once, in
 * `await meter.result()`; the one-shot functions read a tensor argument at once where the backend
 * allows it (`ref`, `cpu`) and otherwise ask for its value (`await t.item()`).
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { isFloat } from '../backend/dtype.js';
import { keep, tidy } from '../tensor/memory.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { add, clone, mul, ne } from '../tensor/ops/elementwise.js';
import { crossEntropy } from '../tensor/ops/nn.js';
import { sum } from '../tensor/ops/reduce.js';
import { reshape } from '../tensor/ops/shape_ops.js';
import { asOp, live } from '../tensor/ops/util.js';
import { checkNumber, show } from '../tensor/validate.js';
import { checkOptions } from './check.js';
import { hostValues } from './read.js';

/** A plain number or a one-element kiln tensor. */
export type Scalar = number | Tensor;

function scalar(op: string, what: string, x: unknown): number {
  if (x instanceof Tensor) {
    if (x.disposed) throw new Error(`${op}: ${what} is a disposed tensor`);
    if (x.size !== 1) throw new Error(`${op}: ${what} must be a one-element tensor, got shape ${fmt(x.shape)}`);
    return hostValues(op, what, x)[0]!;
  }
  if (typeof x !== 'number') throw new Error(`${op}: ${what} must be a number or a one-element Tensor, got ${show(x)}`);
  return x;
}

function checkNll(op: string, what: string, nll: number): void {
  // +∞ is a legitimate NLL (a token of probability 0); NaN never is
  if (Number.isNaN(nll)) throw new Error(`${op}: ${what} is NaN`);
  if (nll === -Infinity) throw new Error(`${op}: ${what} is -Infinity, not a negative log-likelihood`);
}

function checkCount(op: string, tokens: number): void {
  if (!(Number.isFinite(tokens) && tokens > 0))
    throw new Error(`${op}: token count must be a positive finite number, got ${show(tokens)}`);
}

/**
 * Perplexity from the mean cross-entropy per token in nats: `exp(meanNll)`. The loss returned
 * by `crossEntropy(logits, targets)` (reduction 'mean') is exactly that mean.
 *
 * @example
 * const loss = crossEntropy(logits, targets); // [B, T, V] vs [B, T]
 * perplexity(loss); // e^loss
 */
export function perplexity(meanNll: Scalar): number {
  const m = scalar('perplexity', 'meanNll', meanNll);
  checkNll('perplexity', 'meanNll', m);
  return Math.exp(m);
}

/**
 * Perplexity from the sum of token negative log-likelihoods (nats) and the number of tokens
 * they cover: `exp(sumNll / tokens)`.
 */
export function perplexityFromSum(sumNll: Scalar, tokens: Scalar): number {
  const s = scalar('perplexityFromSum', 'sumNll', sumNll);
  const n = scalar('perplexityFromSum', 'tokens', tokens);
  checkNll('perplexityFromSum', 'sumNll', s);
  checkCount('perplexityFromSum', n);
  return Math.exp(s / n);
}

/** Options of {@link perplexityFromLogits}. */
export interface PerplexityFromLogitsOptions {
  /** Targets equal to this are not scored and not counted (as `crossEntropy`). Default −100. */
  ignoreIndex?: number;
}

/** What {@link perplexityFromLogits} and {@link PerplexityMeter} report. */
export interface PerplexityResult {
  /** exp(nll). */
  perplexity: number;
  /** Mean negative log-likelihood per counted token, in nats. */
  nll: number;
  /** Sum of the token negative log-likelihoods, in nats. */
  sumNll: number;
  /** Number of tokens scored. */
  tokens: number;
}

/**
 * Perplexity of `logits` `[..., V]` against i32 `targets` `[...]`, skipping targets equal to
 * `ignoreIndex` (padding). Computes the summed cross-entropy with kiln's fused kernel, without
 * recording gradients, and reads back two numbers (the one sync).
 *
 * @example
 * const { perplexity, tokens } = await perplexityFromLogits(model.forward(x), y);
 */
export async function perplexityFromLogits(logits: Tensor, targets: Tensor, opts: PerplexityFromLogitsOptions = {}): Promise<PerplexityResult> {
  const op = 'perplexityFromLogits';
  live(op, logits, targets);
  const o = checkOptions(op, opts, ['ignoreIndex']);
  const ignoreIndex = o.ignoreIndex === undefined ? -100 : checkNumber(op, 'ignoreIndex', o.ignoreIndex, { integer: true });
  const [s, n] = asOp(op, () =>
    noGrad(() => tidy(() => [crossEntropy(logits, targets, { ignoreIndex, reduction: 'sum' }), sum(ne(targets, ignoreIndex))])),
  );
  let sumNll: number;
  let tokens: number;
  try {
    // a bad target (out of range) may surface when the kernel's result is read: name this call
    [sumNll, tokens] = [await s!.item(), await n!.item()];
  } catch (e) {
    if (e instanceof Error && !e.message.startsWith(`${op}: `)) e.message = `${op}: ${e.message.replace(/^[A-Za-z_]+: /, '')}`;
    throw e;
  } finally {
    s!.dispose();
    n!.dispose();
  }
  if (tokens === 0) throw new Error(`perplexityFromLogits: every target equals ignoreIndex ${ignoreIndex}; nothing to score`);
  return { perplexity: Math.exp(sumNll / tokens), nll: sumNll / tokens, sumNll, tokens };
}

/**
 * Accumulates token NLLs over batches of different sizes and reports the token-weighted
 * perplexity of all of them. Loss tensors are summed on the device (no sync per batch); the
 * values are read once, by {@link PerplexityMeter.result}.
 *
 * @example
 * const meter = new PerplexityMeter();
 * for (const [x, y] of batches) {
 *   const loss = crossEntropy(model.forward(x), y); // mean over this batch's tokens
 *   meter.addMean(loss, y.size);
 * }
 * (await meter.result()).perplexity;
 */
export class PerplexityMeter implements Disposable {
  private sumNll = 0;
  private tokens = 0;
  // Σ of the tensor batches' NLL sums, on the device (a kept 0-d tensor), and how many were added
  private deviceSum: Tensor | null = null;

  /** Add a batch given the sum of its token NLLs (nats) and its token count. */
  addSum(sumNll: Scalar, tokens: Scalar): this {
    return this.add('PerplexityMeter.addSum', 'sumNll', sumNll, tokens, 1);
  }

  /** Add a batch given its mean token NLL (nats) and its token count. */
  addMean(meanNll: Scalar, tokens: Scalar): this {
    return this.add('PerplexityMeter.addMean', 'meanNll', meanNll, tokens, 0);
  }

  private add(op: string, what: string, nll: Scalar, tokens: Scalar, isSum: 0 | 1): this {
    const n = scalar(op, 'tokens', tokens);
    checkCount(op, n);
    if (nll instanceof Tensor) {
      if (nll.disposed) throw new Error(`${op}: ${what} is a disposed tensor`);
      if (nll.size !== 1) throw new Error(`${op}: ${what} must be a one-element tensor, got shape ${fmt(nll.shape)}`);
      if (!isFloat(nll.dtype)) throw new Error(`${op}: ${what} must be floating, got ${nll.dtype}`);
      if (this.deviceSum && this.deviceSum.backend !== nll.backend)
        throw new Error(`${op}: ${what} is on backend '${nll.backend.name}', earlier batches on '${this.deviceSum.backend.name}'`);
      const prev = this.deviceSum;
      this.deviceSum = keep(noGrad(() => tidy(() => {
        const s = reshape(isSum ? nll : mul(nll, n), []);
        return prev ? add(prev, s) : clone(s);
      })));
      prev?.dispose();
    } else {
      const v = scalar(op, what, nll);
      checkNll(op, what, v);
      this.sumNll += isSum ? v : v * n;
    }
    this.tokens += n;
    return this;
  }

  /** Tokens added so far. */
  get count(): number {
    return this.tokens;
  }

  /** The perplexity of everything added (reads the device sum: a sync); throws when nothing was added. */
  async result(): Promise<PerplexityResult> {
    if (this.tokens === 0) throw new Error('PerplexityMeter.result: no tokens were added');
    let sumNll = this.sumNll;
    if (this.deviceSum) {
      const d = await this.deviceSum.item();
      checkNll('PerplexityMeter.result', 'the sum of the NLL tensors added', d);
      sumNll += d;
    }
    const nll = sumNll / this.tokens;
    return { perplexity: Math.exp(nll), nll, sumNll, tokens: this.tokens };
  }

  /** Forget everything added. */
  reset(): void {
    this.sumNll = 0;
    this.tokens = 0;
    this.deviceSum?.dispose();
    this.deviceSum = null;
  }

  /** Same as {@link reset}: frees the device sum. */
  [Symbol.dispose](): void {
    this.reset();
  }
}
