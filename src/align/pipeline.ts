/**
 * `trainReward(options)` and `align(options)`: the pipelines behind `kiln reward` and `kiln
 * align`. Both start from a model that `kiln train` (or `kiln finetune`) saved, use preference
 * pairs from JSONL (`{prompt, chosen, rejected}`) or a built-in set made from the default corpus
 * whose preferences are checkable (the correct answer to an instruction over a wrong one), hold
 * some pairs out, and report held-out figures before and after.
 * - trainReward: a {@link RewardModel} (the model's body and a scalar head) trained with the
 *   Bradley–Terry loss; held-out pair accuracy.
 * - align dpo: DPO against a frozen copy of the starting model; held-out likelihood accuracy
 *   (how often the policy finds the chosen response more likely than the rejected one) before
 *   and after, and the implicit reward margin (and how often it is positive) after.
 * - align ppo: PPO against a reward model that trainReward saved; the mean reward of sampled
 *   responses to held-out prompts, and the KL to the starting model.
 * @module
 */
import { join } from 'node:path';
import { noGrad } from '../autograd/tape.js';
import { readCheckpointInfo } from '../cli/sample.js';
import type { CheckpointUserExtra } from '../cli/train.js';
import { BPETokenizer } from '../data/bpe.js';
import type { TextDocument } from '../data/sources.js';
import { builtinInstructions, loadChatModel, readArgFile, shuffledBatches, writeRun } from '../finetune/pipeline.js';
import { chatExample, chatPrompt } from '../finetune/sft.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { GPT } from '../nn/gpt.js';
import { AdamW } from '../optim/adam.js';
import { tidy } from '../tensor/memory.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { generate } from '../nn/generate.js';
import { tensor } from '../tensor/ops/creation.js';
import { latestCheckpoint } from '../train/loop.js';
import { batchExamples, parsePreferencePairs, type ExampleBatch, type PreferencePair, type TokenizedExample } from './data.js';
import { bradleyTerryLoss, dpoLoss, sequenceLogProbs } from './losses.js';
import { ppo } from './ppo.js';
import { RewardModel } from './reward.js';

/**
 * Preference pairs made from a corpus: the instructions of the built-in fine-tuning set, with
 * the correct answer chosen and a checkably wrong one rejected (another word of the sentence, a
 * phrase without its brackets).
 */
export function builtinPreferencePairs(documents: readonly TextDocument[], opts: { count?: number; seed?: number } = {}): PreferencePair[] {
  return builtinInstructions(documents, { count: opts.count ?? 600, seed: opts.seed ?? 1 }).map((ex, i) => {
    const prompt = ex.messages[0]!.content;
    const chosen = ex.messages[1]!.content;
    let rejected: string;
    if (chosen.startsWith('[')) rejected = chosen.slice(1, -1);
    else {
      // a word of the sentence that is not the answer
      const words = (prompt.match(/[A-Za-z']+/g) ?? []).filter((w) => w !== chosen && !['First', 'word', 'of', 'In', 'what', 'follows'].includes(w));
      rejected = words[(i * 7) % Math.max(1, words.length)] ?? `${chosen}s`;
    }
    return { prompt, chosen, rejected: rejected === chosen ? `${chosen}!` : rejected };
  });
}

/** Common options of the two pipelines. */
export interface PreferenceRunOptions {
  /** A `kiln train` (or `kiln finetune`) output folder or checkpoint file. */
  ckpt: string;
  out: string;
  /** Preference pairs, JSONL; the built-in set when absent (then `documents` is needed). */
  data?: string;
  documents?: readonly TextDocument[];
  backend: string;
  steps?: number;
  lr?: number;
  /** Pairs per step (default 16). */
  batchPairs?: number;
  seed?: number;
  onEvent?: (e: { type: 'data'; train: number; heldOut: number; source: string } | { type: 'step'; step: number; loss: number } | { type: 'eval'; when: 'before' | 'after'; metrics: Record<string, number> }) => void;
}

interface Prepared {
  model: GPT;
  tokenizer: BPETokenizer;
  train: PreferencePair[];
  heldOut: PreferencePair[];
  source: string;
  baseUser: CheckpointUserExtra;
}

async function prepare(o: PreferenceRunOptions, op: string): Promise<Prepared> {
  const { model, tokenizer, baseUser } = await loadChatModel(o.ckpt, o.backend, op);
  let pairs: PreferencePair[];
  let source: string;
  if (o.data !== undefined) {
    pairs = parsePreferencePairs(readArgFile(o.data, '--data'), o.data);
    source = o.data;
  } else {
    if (!o.documents) throw new Error(`${op}: without data, the built-in pairs need the corpus documents`);
    pairs = builtinPreferencePairs(o.documents, { seed: o.seed ?? 1 });
    source = 'built-in preference pairs from the default corpus';
  }
  const block = model.config.blockSize;
  const tooLong = pairs.filter((p) => [p.chosen, p.rejected].some((r) => exampleOf(tokenizer, p.prompt, r).prompt.length + exampleOf(tokenizer, p.prompt, r).response.length > block));
  if (tooLong.length) throw new Error(`${op}: ${tooLong.length} of ${pairs.length} pairs do not fit the model's context of ${block} tokens (shorten them; none is dropped silently)`);
  const nHeld = Math.max(4, Math.round(pairs.length * 0.1));
  if (pairs.length - nHeld < 1) throw new Error(`${op}: ${pairs.length} pairs leave none to train on after holding out ${nHeld}`);
  const heldOut = pairs.slice(0, Math.min(nHeld, 64));
  const train = pairs.slice(nHeld);
  o.onEvent?.({ type: 'data', train: train.length, heldOut: heldOut.length, source });
  return { model, tokenizer, train, heldOut, source, baseUser };
}

function exampleOf(tokenizer: BPETokenizer, prompt: string, response: string): TokenizedExample {
  return chatExample(tokenizer, [
    { role: 'user', content: prompt },
    { role: 'assistant', content: response },
  ]);
}

function pairBatches(tokenizer: BPETokenizer, pairs: readonly PreferencePair[], block: number, backend: string): [ExampleBatch, ExampleBatch] {
  return [
    batchExamples(pairs.map((p) => exampleOf(tokenizer, p.prompt, p.chosen)), { blockSize: block, backend }),
    batchExamples(pairs.map((p) => exampleOf(tokenizer, p.prompt, p.rejected)), { blockSize: block, backend }),
  ];
}

function dispose(...bs: ExampleBatch[]): void {
  for (const b of bs) (b.idx.dispose(), b.labels.dispose());
}

// `steps` optimizer steps over shuffled minibatches of the training pairs, each minimising
// lossOf(chosen batch, rejected batch); returns the losses
async function pairSteps(p: Prepared, o: PreferenceRunOptions, steps: number, opt: AdamW, block: number, lossOf: (c: ExampleBatch, r: ExampleBatch) => Tensor): Promise<number[]> {
  const losses: number[] = [];
  let step = 0;
  for (const mb of shuffledBatches(p.train, o.batchPairs ?? 16, steps, (o.seed ?? 0) * 2654435761 + 7)) {
    const [c, r] = pairBatches(p.tokenizer, mb, block, o.backend);
    const l = tidy(() => {
      const loss = lossOf(c, r);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss;
    });
    const v = await l.item();
    l.dispose();
    dispose(c, r);
    losses.push(v);
    o.onEvent?.({ type: 'step', step: ++step, loss: v });
  }
  return losses;
}

/** What {@link trainReward} returns. */
export interface RewardResult {
  accuracyBefore: number;
  accuracyAfter: number;
  losses: number[];
  trainPairs: number;
  heldOutPairs: number;
  checkpoint: string;
  seconds: number;
}

/** Held-out accuracy of a reward model: the fraction of pairs scored chosen > rejected. */
async function rewardAccuracy(rm: RewardModel, c: ExampleBatch, r: ExampleBatch): Promise<number> {
  const d = tidy(() => noGrad(() => rm.forward(c.idx, c.lengths).sub(rm.forward(r.idx, r.lengths))));
  const v = await d.data();
  d.dispose();
  return Array.from(v).filter((x) => x > 0).length / v.length;
}

/** Train a reward model on preference pairs (see the module comment). */
export async function trainReward(o: PreferenceRunOptions): Promise<RewardResult> {
  const t0 = performance.now();
  const op = 'trainReward';
  const p = await prepare(o, op);
  const rm = RewardModel.fromGPT(p.model, { generator: new Generator(o.seed ?? 0) });
  p.model.dispose();
  const block = rm.config.blockSize;
  const [hc, hr] = pairBatches(p.tokenizer, p.heldOut, block, o.backend);
  const before = await rewardAccuracy(rm, hc, hr);
  o.onEvent?.({ type: 'eval', when: 'before', metrics: { accuracy: before } });
  const steps = o.steps ?? 200;
  const opt = new AdamW(rm.parameters(), { lr: o.lr ?? 3e-4, weightDecay: 0 });
  const losses = await pairSteps(p, o, steps, opt, block, (c, r) => bradleyTerryLoss(rm.forward(c.idx, c.lengths), rm.forward(r.idx, r.lengths)));
  const after = await rewardAccuracy(rm, hc, hr);
  o.onEvent?.({ type: 'eval', when: 'after', metrics: { accuracy: after } });
  dispose(hc, hr);
  const user = { kind: 'kiln-reward', model: { ...rm.config } };
  let result!: RewardResult;
  await writeRun(o.out, rm, p.tokenizer, steps, user, (checkpoint) => {
    result = { accuracyBefore: before, accuracyAfter: after, losses, trainPairs: p.train.length, heldOutPairs: p.heldOut.length, checkpoint, seconds: (performance.now() - t0) / 1000 };
    return { ...result, source: p.source };
  });
  rm.dispose();
  return result;
}

/** A reward model that {@link trainReward} saved, with its tokenizer. */
export async function loadReward(dir: string, backend: string): Promise<{ model: RewardModel; tokenizer: BPETokenizer }> {
  const op = 'loadReward';
  const latest = await latestCheckpoint(dir);
  if (!latest) throw new Error(`${op}: no checkpoint (ckpt-*.safetensors) in '${dir}' (kiln reward writes one)`);
  const user = ((await readCheckpointInfo(latest.path)).extra as { user?: { kind?: string; model?: unknown } } | null)?.user;
  if (user?.kind !== 'kiln-reward' || !user.model) throw new Error(`${op}: '${latest.path}' is not a reward model written by kiln reward`);
  const model = new RewardModel(user.model as ConstructorParameters<typeof RewardModel>[0], { backend });
  await loadCheckpoint(latest.path, { model, backend });
  model.eval();
  return { model, tokenizer: BPETokenizer.load(join(dir, 'tokenizer.json')) };
}

/** Options of {@link align}. */
export interface AlignOptions extends PreferenceRunOptions {
  method: 'dpo' | 'ppo';
  /** DPO's β (default 0.1), or PPO's KL coefficient (default 0.05). */
  beta?: number;
  /** PPO: the folder `kiln reward` wrote. */
  reward?: string;
  /** PPO: tokens per sampled response (default 8). */
  responseLength?: number;
}

/** What {@link align} returns (also in `metrics.json`). */
export interface AlignResult {
  method: 'dpo' | 'ppo';
  before: Record<string, number>;
  after: Record<string, number>;
  losses: number[];
  checkpoint: string;
  seconds: number;
}

/** Align a model to preferences with DPO or PPO (see the module comment). */
export async function align(o: AlignOptions): Promise<AlignResult> {
  const t0 = performance.now();
  const op = 'align';
  if (o.method !== 'dpo' && o.method !== 'ppo') throw new Error(`${op}: method must be dpo or ppo, got ${String(o.method)}`);
  if (o.method === 'ppo' && !o.reward) throw new Error(`${op}: ppo needs --reward, the folder kiln reward wrote`);
  const p = await prepare(o, op);
  const policy = p.model;
  const reference = new GPT(policy.config, { backend: o.backend });
  reference.loadStateDict(policy.stateDict());
  reference.eval();
  for (const q of reference.parameters()) q.requiresGrad = false;
  const block = policy.config.blockSize;
  const steps = o.steps ?? 200;
  const losses: number[] = [];
  let before: Record<string, number>;
  let after: Record<string, number>;
  try {
    if (o.method === 'dpo') {
      const beta = o.beta ?? 0.1;
      const logp = (m: GPT, b: ExampleBatch): Tensor => sequenceLogProbs(m.forward(b.idx, null).logits, b.labels);
      const [hc, hr] = pairBatches(p.tokenizer, p.heldOut, block, o.backend);
      // the policy's own preference: how often log π(chosen) > log π(rejected); and DPO's implicit
      // reward margin β·((π_c − ref_c) − (π_r − ref_r)), 0 while the policy is the reference
      const likelihoodAccuracy = async (m: GPT): Promise<number> => {
        const a = tidy(() => noGrad(() => logp(m, hc).sub(logp(m, hr)).gt(0).cast('f32').mean()));
        const v = (await a.data())[0]!;
        a.dispose();
        return v;
      };
      before = { likelihoodAccuracy: await likelihoodAccuracy(policy), rewardMargin: 0 };
      o.onEvent?.({ type: 'eval', when: 'before', metrics: before });
      const opt = new AdamW(policy.parameters(), { lr: o.lr ?? 1e-4, weightDecay: 0 });
      losses.push(
        ...(await pairSteps(p, o, steps, opt, block, (c, r) => {
          const rc = noGrad(() => logp(reference, c));
          const rr = noGrad(() => logp(reference, r));
          return dpoLoss(logp(policy, c), logp(policy, r), rc, rr, { beta }).loss;
        })),
      );
      const [margin, marginAcc] = tidy(() =>
        noGrad(() => {
          const d = dpoLoss(logp(policy, hc), logp(policy, hr), logp(reference, hc), logp(reference, hr), { beta });
          const m = d.chosenRewards.sub(d.rejectedRewards);
          return [m.mean(), m.gt(0).cast('f32').mean()];
        }),
      );
      after = { likelihoodAccuracy: await likelihoodAccuracy(policy), rewardMargin: (await margin.data())[0]!, marginAccuracy: (await marginAcc.data())[0]! };
      margin.dispose();
      marginAcc.dispose();
      dispose(hc, hr);
    } else {
      const { model: rm, tokenizer: rtok } = await loadReward(o.reward!, o.backend);
      try {
        if (rtok.vocabSize !== p.tokenizer.vocabSize) throw new Error(`${op}: the reward model's tokenizer (${rtok.vocabSize} tokens) is not the policy's (${p.tokenizer.vocabSize})`);
        const L = o.responseLength ?? 8;
        // PPO batches prompts of one length: each prompt's last P tokens (its end and the assistant header)
        const encoded = (ps: readonly PreferencePair[]): number[][] => ps.map((q) => p.tokenizer.encode(chatPrompt([{ role: 'user', content: q.prompt }])));
        const trainP = encoded(p.train), heldP = encoded(p.heldOut);
        const P = Math.min(24, block - L, ...trainP.map((x) => x.length), ...heldP.map((x) => x.length));
        const crop = (xs: number[][]): number[][] => xs.map((x) => x.slice(x.length - P));
        const score = async (prompt: readonly number[], response: readonly number[]): Promise<number> => {
          const ids = [...prompt, ...response];
          const idx = tensor(ids, [1, ids.length], { dtype: 'i32', backend: o.backend });
          const r = tidy(() => noGrad(() => rm.forward(idx, [ids.length])));
          const v = (await r.data())[0]!;
          r.dispose();
          idx.dispose();
          return v;
        };
        const evalPPO = async (): Promise<Record<string, number>> => {
          const prompts = crop(heldP);
          const idx = tensor(prompts.flat(), [prompts.length, P], { dtype: 'i32', backend: o.backend });
          policy.eval();
          const out = await generate(policy, idx, { maxNewTokens: L, greedy: true });
          const ids = Array.from(await out.data());
          idx.dispose();
          out.dispose();
          let total = 0;
          for (let b = 0; b < prompts.length; b++) total += await score(prompts[b]!, ids.slice(b * (P + L) + P, (b + 1) * (P + L)));
          return { meanReward: total / prompts.length };
        };
        before = await evalPPO();
        o.onEvent?.({ type: 'eval', when: 'before', metrics: before });
        const r = await ppo({
          policy,
          reference,
          prompts: crop(trainP),
          reward: score,
          responseLength: L,
          iterations: steps,
          batchSize: o.batchPairs ?? 16,
          klCoef: o.beta ?? 0.05,
          lr: o.lr ?? 1e-4,
          generator: new Generator(o.seed ?? 0),
          onIteration: (s) => {
            losses.push(s.policyLoss);
            o.onEvent?.({ type: 'step', step: s.iteration, loss: s.reward });
          },
        });
        r.valueHead.dispose();
        after = { ...(await evalPPO()), kl: r.iterations[r.iterations.length - 1]!.kl };
      } finally {
        rm.dispose();
      }
    }
    o.onEvent?.({ type: 'eval', when: 'after', metrics: after });
    const user: CheckpointUserExtra = { ...p.baseUser, model: { ...policy.config } };
    let result!: AlignResult;
    await writeRun(o.out, policy, p.tokenizer, steps, user, (checkpoint) => {
      result = { method: o.method, before, after, losses, checkpoint, seconds: (performance.now() - t0) / 1000 };
      return { ...result, source: p.source };
    });
    return result;
  } finally {
    policy.dispose();
    reference.dispose();
  }
}
