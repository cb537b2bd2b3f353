/**
 * Perplexity: exp of the mean negative log-likelihood per token, in nats.
 *
 * The mean must be token-weighted: averaging the perplexities (or the mean losses) of batches
 * that hold different numbers of tokens gives a different, wrong number. {@link PerplexityMeter}
 * keeps the sum of token NLLs and the token count across batches for that reason.
 *
 * Tensors are read with `item()` / `dataSync()`; on a backend without synchronous reads pass
 * `(await t.data())[0]` instead.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { tidy } from '../tensor/memory.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { ne } from '../tensor/ops/elementwise.js';
import { crossEntropy } from '../tensor/ops/nn.js';
import { sum } from '../tensor/ops/reduce.js';

/** A plain number or a one-element kiln tensor. */
export type Scalar = number | Tensor;

function scalar(op: string, what: string, x: Scalar): number {
  if (x instanceof Tensor) {
    if (x.size !== 1) throw new Error(`${op}: ${what} must be a one-element tensor, got shape ${fmt(x.shape)}`);
    return x.item();
  }
  if (typeof x !== 'number') throw new Error(`${op}: ${what} must be a number or a one-element Tensor, got ${typeof x}`);
  return x;
}

function checkNll(op: string, what: string, nll: number): void {
  // +∞ is a legitimate NLL (a token of probability 0); NaN never is
  if (Number.isNaN(nll)) throw new Error(`${op}: ${what} is NaN`);
  if (nll === -Infinity) throw new Error(`${op}: ${what} is −∞, not a negative log-likelihood`);
}

function checkCount(op: string, tokens: number): void {
  if (!(Number.isFinite(tokens) && tokens > 0))
    throw new Error(`${op}: token count must be a positive finite number, got ${tokens}`);
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
 * recording gradients, and reads back two numbers.
 *
 * @example
 * const { perplexity, tokens } = perplexityFromLogits(model.forward(x), y);
 */
export function perplexityFromLogits(logits: Tensor, targets: Tensor, opts: PerplexityFromLogitsOptions = {}): PerplexityResult {
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const [sumNll, tokens] = noGrad(() =>
    tidy(() => {
      const s = crossEntropy(logits, targets, { ignoreIndex, reduction: 'sum' });
      const n = sum(ne(targets, ignoreIndex));
      return [s.item(), n.item()];
    }),
  );
  if (tokens === 0) throw new Error(`perplexityFromLogits: every target equals ignoreIndex ${ignoreIndex}; nothing to score`);
  return { perplexity: Math.exp(sumNll / tokens), nll: sumNll / tokens, sumNll, tokens };
}

/**
 * Accumulates token NLLs over batches of different sizes and reports the token-weighted
 * perplexity of all of them.
 *
 * @example
 * const meter = new PerplexityMeter();
 * for (const [x, y] of batches) {
 *   const loss = crossEntropy(model.forward(x), y); // mean over this batch's tokens
 *   meter.addMean(loss, y.size);
 * }
 * meter.result().perplexity;
 */
export class PerplexityMeter {
  private sumNll = 0;
  private tokens = 0;

  /** Add a batch given the sum of its token NLLs (nats) and its token count. */
  addSum(sumNll: Scalar, tokens: Scalar): this {
    const s = scalar('PerplexityMeter.addSum', 'sumNll', sumNll);
    const n = scalar('PerplexityMeter.addSum', 'tokens', tokens);
    checkNll('PerplexityMeter.addSum', 'sumNll', s);
    checkCount('PerplexityMeter.addSum', n);
    this.sumNll += s;
    this.tokens += n;
    return this;
  }

  /** Add a batch given its mean token NLL (nats) and its token count. */
  addMean(meanNll: Scalar, tokens: Scalar): this {
    const m = scalar('PerplexityMeter.addMean', 'meanNll', meanNll);
    const n = scalar('PerplexityMeter.addMean', 'tokens', tokens);
    checkNll('PerplexityMeter.addMean', 'meanNll', m);
    checkCount('PerplexityMeter.addMean', n);
    this.sumNll += m * n;
    this.tokens += n;
    return this;
  }

  /** Tokens added so far. */
  get count(): number {
    return this.tokens;
  }

  /** The perplexity of everything added; throws when nothing was. */
  result(): PerplexityResult {
    if (this.tokens === 0) throw new Error('PerplexityMeter.result: no tokens were added');
    const nll = this.sumNll / this.tokens;
    return { perplexity: Math.exp(nll), nll, sumNll: this.sumNll, tokens: this.tokens };
  }

  /** Forget everything added. */
  reset(): void {
    this.sumNll = 0;
    this.tokens = 0;
  }
}
