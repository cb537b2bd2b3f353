/**
 * RLHF with PPO (Schulman et al. 2017; as Ouyang et al. 2022 and TRL apply it to language
 * models): batched rollouts from the policy (generation with the KV cache), a scalar reward per
 * response, a per-token KL penalty against a frozen reference, a value head on the policy's
 * hidden states, generalised advantage estimation, and several epochs of the clipped objective
 * per batch of rollouts.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { generate } from '../nn/generate.js';
import { GPT } from '../nn/gpt.js';
import { options } from '../nn/validate.js';
import { checkNumber, show } from '../tensor/validate.js';
import { Linear } from '../nn/linear.js';
import { AdamW } from '../optim/adam.js';
import { tidy } from '../tensor/memory.js';
import { tensor } from '../tensor/ops/creation.js';
import { crossEntropy } from '../tensor/ops/nn.js';
import { narrow } from '../tensor/ops/shape_ops.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

/** Options of {@link ppo}. */
export interface PPOOptions {
  /** The model being optimised (trained in place). */
  policy: GPT;
  /** The frozen reference (usually a copy of the policy's starting point); never updated. */
  reference: GPT;
  /** Prompts as token ids, all of one length. */
  prompts: readonly number[][];
  /** Scalar reward of each response (its generated ids) to its prompt. */
  reward: (prompt: readonly number[], response: readonly number[]) => number | Promise<number>;
  /** Tokens generated per response (default 8). */
  responseLength?: number;
  /** Rollout batches (default 10). */
  iterations?: number;
  /** Responses per batch (default 16). */
  batchSize?: number;
  /** Optimisation epochs over each batch (default 4). */
  epochs?: number;
  /** Clip range ε of the probability ratio (default 0.2). */
  clip?: number;
  /** Coefficient of the per-token KL penalty (default 0.05). */
  klCoef?: number;
  /** Discount γ and GAE λ (defaults 1 and 0.95). */
  gamma?: number;
  lambda?: number;
  /** Weight of the value loss (default 0.1). */
  vfCoef?: number;
  lr?: number;
  /** Sampling temperature of the rollouts (default 1). */
  temperature?: number;
  generator?: Generator;
  /** Called after each iteration. */
  onIteration?: (s: PPOIteration) => void;
}

/** The statistics of one PPO iteration. */
export interface PPOIteration {
  iteration: number;
  /** Mean reward of the batch's responses (before the KL penalty). */
  reward: number;
  /** Mean over responses of Σₜ (log π − log π_ref) of the sampled tokens: the KL estimate. */
  kl: number;
  /** The last epoch's mean clipped policy loss and value loss. */
  policyLoss: number;
  valueLoss: number;
}

/** What {@link ppo} returns: every iteration's statistics, and the value head it trained. */
export interface PPOResult {
  iterations: PPOIteration[];
  valueHead: Linear;
}

// log-probabilities [B, L] of the response tokens seq[:, P : P + L] and the hidden states before them
function scoreTokens(model: GPT, seq: Tensor, P: number, L: number): { logp: Tensor; hidden: Tensor } {
  const hidden = model.transformer.forward(seq); // [B, P + L, C]
  const h = narrow(hidden, 1, P - 1, L); // the states that emitted tokens P … P + L − 1
  const logits = model.lm_head.forward(h);
  const labels = narrow(seq, 1, P, L);
  return { logp: crossEntropy(logits, labels, { reduction: 'none' }).neg(), hidden: h };
}

async function host(t: Tensor): Promise<Float64Array> {
  const v = Float64Array.from(await t.data());
  t.dispose();
  return v;
}

/**
 * Optimise `policy` with PPO against `reward` (see the module comment). Each iteration samples
 * a batch of prompts (in order, cycling), generates responses, scores them, and runs `epochs`
 * full-batch updates of the policy and its value head.
 */
export async function ppo(o: PPOOptions): Promise<PPOResult> {
  const op = 'ppo';
  options(op, o, ['policy', 'reference', 'prompts', 'reward', 'responseLength', 'iterations', 'batchSize', 'epochs', 'clip', 'klCoef', 'gamma', 'lambda', 'vfCoef', 'lr', 'temperature', 'generator', 'onIteration']);
  const { policy, reference, prompts } = o;
  if (!(policy instanceof GPT)) throw new Error(`${op}: policy must be a GPT, got ${show(policy)}`);
  if (!(reference instanceof GPT)) throw new Error(`${op}: reference must be a GPT, got ${show(reference)}`);
  if (typeof o.reward !== 'function') throw new Error(`${op}: reward must be a function (prompt, response) → number, got ${show(o.reward)}`);
  if (o.onIteration !== undefined && typeof o.onIteration !== 'function') throw new Error(`${op}: onIteration must be a function, got ${show(o.onIteration)}`);
  if (!Array.isArray(prompts)) throw new Error(`${op}: prompts must be an array of token id arrays, got ${show(prompts)}`);
  prompts.forEach((p, i) => {
    if (!Array.isArray(p)) throw new Error(`${op}: prompts[${i}] must be an array of token ids, got ${show(p)}`);
    const t = p.find((x) => !Number.isInteger(x) || x < 0 || x >= policy.config.vocabSize);
    if (t !== undefined) throw new Error(`${op}: prompts[${i}] has token ${show(t)}, not an id in [0, ${policy.config.vocabSize})`);
  });
  if (prompts.length === 0) throw new Error(`${op}: no prompts`);
  const int = (k: keyof PPOOptions, min: number): void => void (o[k] === undefined || checkNumber(op, k, o[k], { integer: true, min }));
  const real = (k: keyof PPOOptions, r: { min?: number; max?: number; minExclusive?: boolean }): void => void (o[k] === undefined || checkNumber(op, k, o[k], r));
  int('responseLength', 1);
  int('iterations', 1);
  int('batchSize', 1);
  int('epochs', 1);
  real('clip', { min: 0, minExclusive: true });
  real('klCoef', { min: 0 });
  real('gamma', { min: 0, max: 1 });
  real('lambda', { min: 0, max: 1 });
  real('vfCoef', { min: 0 });
  real('lr', { min: 0, minExclusive: true });
  real('temperature', { min: 0 });
  if (o.generator !== undefined && !(o.generator instanceof Generator)) throw new Error(`${op}: generator must be a Generator, got ${show(o.generator)}`);
  const P = prompts[0]!.length;
  if (P < 1 || prompts.some((p) => p.length !== P)) throw new Error(`${op}: prompts must be non-empty and of one length (got lengths ${[...new Set(prompts.map((p) => p.length))].join(', ')})`);
  const L = o.responseLength ?? 8;
  if (P + L > policy.config.blockSize) throw new Error(`${op}: prompt ${P} + response ${L} tokens exceed blockSize ${policy.config.blockSize}`);
  const B = o.batchSize ?? 16;
  const [epochs, clip, klCoef, gamma, lam, vfCoef] = [o.epochs ?? 4, o.clip ?? 0.2, o.klCoef ?? 0.05, o.gamma ?? 1, o.lambda ?? 0.95, o.vfCoef ?? 0.1];
  const gen = o.generator ?? new Generator(0);
  const p0 = policy.parameters()[0]!;
  const backend = p0.backend.name;
  const valueHead = new Linear(policy.config.nEmbd, 1, { backend, dtype: p0.dtype, std: 0.01, generator: gen });
  const opt = new AdamW([...policy.parameters().filter((p) => p.requiresGrad), ...valueHead.parameters()], { lr: o.lr ?? 1e-4, weightDecay: 0 });
  reference.eval();
  const stats: PPOIteration[] = [];
  let cursor = 0;
  for (let it = 0; it < (o.iterations ?? 10); it++) {
    // rollouts
    const batch = Array.from({ length: B }, () => prompts[cursor++ % prompts.length]!);
    const promptIdx = tensor(batch.flat(), [B, P], { dtype: 'i32', backend });
    policy.eval();
    const seq = await generate(policy, promptIdx, { maxNewTokens: L, generator: gen, temperature: o.temperature ?? 1 });
    promptIdx.dispose();
    const ids = Array.from(await seq.data());
    const responses = batch.map((_, b) => ids.slice(b * (P + L) + P, (b + 1) * (P + L)));
    const scores: number[] = [];
    for (let b = 0; b < B; b++) scores.push(await o.reward(batch[b]!, responses[b]!));
    // old log-probs, the reference's, and the values, without gradients
    const [oldLogp, refLogp, values] = await Promise.all(
      tidy(() =>
        noGrad(() => {
          const s = scoreTokens(policy, seq, P, L);
          const r = scoreTokens(reference, seq, P, L);
          return [s.logp, r.logp, valueHead.forward(s.hidden).squeeze(-1)];
        }),
      ).map(host),
    );
    // per-token rewards: −β·KL at every token, the score added at the last; GAE backwards
    const adv = new Float64Array(B * L);
    const ret = new Float64Array(B * L);
    let klSum = 0;
    for (let b = 0; b < B; b++) {
      let next = 0;
      let nextValue = 0;
      for (let t = L - 1; t >= 0; t--) {
        const i = b * L + t;
        const kl = oldLogp[i]! - refLogp[i]!;
        klSum += kl;
        const r = -klCoef * kl + (t === L - 1 ? scores[b]! : 0);
        const delta = r + gamma * nextValue - values[i]!;
        next = delta + gamma * lam * next;
        adv[i] = next;
        ret[i] = next + values[i]!;
        nextValue = values[i]!;
      }
    }
    // whitened advantages
    let mean = 0;
    for (const a of adv) mean += a;
    mean /= adv.length;
    let v = 0;
    for (const a of adv) v += (a - mean) ** 2;
    const sd = Math.sqrt(v / adv.length) + 1e-8;
    const advT = tensor(Array.from(adv, (a) => (a - mean) / sd), [B, L], { dtype: p0.dtype, backend });
    const retT = tensor(Array.from(ret), [B, L], { dtype: p0.dtype, backend });
    const oldT = tensor(Array.from(oldLogp), [B, L], { dtype: p0.dtype, backend });
    policy.train();
    let pl = 0;
    let vl = 0;
    for (let e = 0; e < epochs; e++) {
      const [a, c] = tidy(() => {
        const { logp, hidden } = scoreTokens(policy, seq, P, L);
        const ratio = logp.sub(oldT).exp();
        const pg = advT.mul(ratio).minimum(advT.mul(ratio.clamp(1 - clip, 1 + clip))).neg().mean();
        const vf = valueHead.forward(hidden).squeeze(-1).sub(retT).pow(2).mean();
        const loss = pg.add(vf.mul(vfCoef));
        opt.zeroGrad();
        loss.backward();
        opt.step();
        return [pg, vf];
      });
      [pl, vl] = [(await host(a))[0]!, (await host(c))[0]!];
    }
    for (const t of [advT, retT, oldT, seq]) t.dispose();
    const s: PPOIteration = { iteration: it + 1, reward: scores.reduce((x, y) => x + y, 0) / B, kl: klSum / B, policyLoss: pl, valueLoss: vl };
    stats.push(s);
    o.onIteration?.(s);
  }
  return { iterations: stats, valueHead };
}
