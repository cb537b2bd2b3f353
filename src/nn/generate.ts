/**
 * Autoregressive generation from a {@link GPT}: a key/value cache, and sampling with
 * temperature, top-k and top-p (nucleus) filters drawn from a seeded {@link Generator}.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { tidy } from '../tensor/memory.js';
import { rand, tensor } from '../tensor/ops/creation.js';
import { asOp, live } from '../tensor/ops/util.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkNumber, show } from '../tensor/validate.js';
import { GPT } from './gpt.js';
import { KVCache } from './kv_cache.js';
import { options, paramOptions } from './validate.js';

const SAMPLING_KEYS = ['temperature', 'topK', 'topP', 'greedy'] as const;

/** How to pick each next token. */
export interface SamplingOptions {
  /** Divide the logits by this before sampling (default 1; 0 means greedy). */
  temperature?: number;
  /** Keep only the k most likely tokens (ties with the k-th included). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (0 < p ≤ 1). */
  topP?: number;
  /** Take the most likely token (the first on ties); no randomness. */
  greedy?: boolean;
}

/** Options of {@link generate}. */
export interface GenerateOptions extends SamplingOptions {
  /** Tokens to append. */
  maxNewTokens: number;
  /** The stream the draws come from (the default generator when omitted): one seed, one output. */
  generator?: Generator;
  /** Stop once every row has produced this token; finished rows are padded with it. */
  eos?: number;
  /** Reuse keys and values of earlier positions (default true); results are the same either way. */
  useCache?: boolean;
}

function checkSampling(op: string, o: SamplingOptions): void {
  const { temperature, topK, topP, greedy } = o;
  if (temperature !== undefined) checkNumber(op, 'temperature', temperature, { min: 0 });
  if (topK !== undefined) checkNumber(op, 'topK', topK, { integer: true, min: 1 });
  if (topP !== undefined) checkNumber(op, 'topP', topP, { min: 0, minExclusive: true, max: 1 });
  if (greedy !== undefined) checkBoolean(op, 'greedy', greedy);
}

/**
 * Pick a token from one row of logits: greedy (argmax), or a draw by inverse CDF at `u` ∈ [0, 1)
 * from softmax(logits/temperature) restricted by top-k, then top-p.
 */
export function sampleLogits(logits: ArrayLike<number>, opts: SamplingOptions = {}, u = 0): number {
  opts = options('sampleLogits', opts, SAMPLING_KEYS);
  checkSampling('sampleLogits', opts);
  if (!Array.isArray(logits) && !(ArrayBuffer.isView(logits) && !(logits instanceof DataView)))
    throw new Error(`sampleLogits: logits must be an array of numbers, got ${show(logits)}`);
  const n = logits.length;
  if (n === 0) throw new Error('sampleLogits: no logits');
  // a distribution needs finite logits (−∞ rules a token out); NaN or +∞ means the model broke
  let finite = 0;
  for (let i = 0; i < n; i++) {
    const l = logits[i]!;
    if (typeof l !== 'number') throw new Error(`sampleLogits: logit ${i} is ${show(l)}, not a number`);
    if (Number.isNaN(l) || l === Infinity) throw new Error(`sampleLogits: logit ${i} is ${l}; the model's output is not a distribution (did training diverge?)`);
    if (l !== -Infinity) finite++;
  }
  if (finite === 0) throw new Error('sampleLogits: every logit is −∞; no token can be drawn');
  checkNumber('sampleLogits', 'u', u, { min: 0, max: 1, maxExclusive: true });
  const temperature = opts.temperature ?? 1;
  if (opts.greedy || temperature === 0) {
    let best = 0;
    for (let i = 1; i < n; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  const z = Float64Array.from(logits, (l) => l / temperature);
  if (opts.topK !== undefined && opts.topK < n) {
    const kth = Float64Array.from(z).sort().reverse()[opts.topK - 1]!;
    for (let i = 0; i < n; i++) if (z[i]! < kth) z[i] = -Infinity;
  }
  // p = softmax(z), computed stably
  let m = -Infinity;
  for (const v of z) if (v > m) m = v;
  const p = z.map((v) => (v === -Infinity ? 0 : Math.exp(v - m)));
  let total = p.reduce((s, v) => s + v, 0);
  for (let i = 0; i < n; i++) p[i]! /= total;
  if (opts.topP !== undefined && opts.topP < 1) {
    const order = [...p.keys()].sort((a, b) => p[b]! - p[a]! || a - b);
    let mass = 0;
    let kept = 0;
    while (kept < n && (kept === 0 || mass < opts.topP)) mass += p[order[kept++]!]!;
    for (const i of order.slice(kept)) p[i] = 0;
  }
  total = p.reduce((s, v) => s + v, 0);
  const target = u * total;
  let acc = 0;
  let last = -1;
  for (let i = 0; i < n; i++) {
    if (p[i] === 0) continue;
    acc += p[i]!;
    last = i;
    if (acc > target) return i;
  }
  if (last < 0) throw new Error('sampleLogits: no token has a finite logit');
  return last; // u·total beyond the rounded sum
}

/**
 * Append `maxNewTokens` tokens to each row of `idx` `[B, T]` i32 and return the whole sequences
 * `[B, T + n]` (n < maxNewTokens when every row has hit `eos`). Runs in eval mode (restoring the
 * model's mode after) without gradients, reusing keys and values through a {@link KVCache}.
 * Once a sequence outgrows `blockSize`, each step recomputes the last `blockSize` tokens.
 *
 * @example
 * const out = await generate(model, tensor([[0]], { dtype: 'i32' }), { maxNewTokens: 50, topK: 40, generator: new Generator(7) });
 */
export async function generate(model: GPT, idx: Tensor, opts: GenerateOptions): Promise<Tensor> {
  const op = 'generate';
  if (!(model instanceof GPT)) throw new Error(`${op}: model must be a GPT, got ${show(model)}`);
  live(op, idx);
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: options must be an object with maxNewTokens, got ${show(opts)}`);
  options(op, opts, [...SAMPLING_KEYS, 'maxNewTokens', 'generator', 'eos', 'useCache']);
  checkSampling(op, opts);
  const { maxNewTokens, eos } = opts;
  checkNumber(op, 'maxNewTokens', maxNewTokens, { integer: true, min: 0 });
  if (opts.useCache !== undefined) checkBoolean(op, 'useCache', opts.useCache);
  paramOptions(op, { generator: opts.generator });
  if (idx.dtype !== 'i32' || idx.rank !== 2 || idx.shape[1] === 0)
    throw new Error(`${op}: idx must be [B, T] i32 with T ≥ 1, got ${fmt(idx.shape)} ${idx.dtype}`);
  const { blockSize, nLayer, vocabSize } = model.config;
  if (eos !== undefined && !(Number.isInteger(eos) && eos >= 0 && eos < vocabSize))
    throw new Error(`${op}: eos must be a token id in [0, ${vocabSize}), got ${show(eos)}`);
  const generator = opts.generator ?? defaultGenerator;
  const { temperature, topK, topP } = opts;
  const sampling: SamplingOptions | null =
    opts.greedy || temperature === 0
      ? null
      : { ...(temperature !== undefined ? { temperature } : {}), ...(topK !== undefined ? { topK } : {}), ...(topP !== undefined ? { topP } : {}) };
  const backend = idx.backend.name;
  const [b, t0] = idx.shape as [number, number];
  const flat = await idx.data();
  for (let i = 0; i < flat.length; i++)
    if (!(flat[i]! >= 0 && flat[i]! < vocabSize)) throw new Error(`${op}: idx holds token ${flat[i]}, outside the model's vocabulary [0, ${vocabSize})`);
  const rows = Array.from({ length: b }, (_, r) => Array.from(flat.subarray(r * t0, (r + 1) * t0)));
  const done = new Array<boolean>(b).fill(false);
  let cache = (opts.useCache ?? true) ? new KVCache(nLayer) : null;
  const wasTraining = model.training;
  model.eval();
  try {
    for (let step = 0; step < maxNewTokens && !done.every(Boolean); step++) {
      const len = rows[0]!.length;
      if (cache && len > blockSize) {
        cache.dispose(); // the window slides from here on: positions no longer match the cache
        cache = null;
      }
      const start = cache ? cache.length : Math.max(0, len - blockSize);
      const input = rows.flatMap((r) => r.slice(start));
      const logits = asOp(op, () =>
        tidy(() =>
          noGrad(() => {
            const ids = tensor(Int32Array.from(input), [b, len - start], { backend, dtype: 'i32' });
            return model.forward(ids, null, { lastOnly: true, ...(cache ? { cache } : {}) }).logits; // [B, 1, V]
          }),
        ),
      );
      const values = await logits.data();
      logits.dispose();
      let draws: ArrayLike<number> = new Float64Array(b);
      if (sampling) {
        const u = rand([b], { backend, generator });
        draws = await u.data();
        u.dispose();
      }
      const v = vocabSize;
      for (let r = 0; r < b; r++) {
        const next = done[r] ? eos! : sampleLogits(values.subarray(r * v, (r + 1) * v), sampling ?? { greedy: true }, draws[r]!);
        rows[r]!.push(next);
        if (next === eos) done[r] = true;
      }
    }
  } finally {
    cache?.dispose();
    model.train(wasTraining);
  }
  return tensor(Int32Array.from(rows.flat()), [b, rows[0]!.length], { backend, dtype: 'i32' });
}
