/**
 * Alignment and distillation (src/align): the objectives against their formulas, the data
 * formats' errors, and each technique's effect with fixed seeds — DPO raises the preferred
 * responses' log-likelihood relative to the reference, a reward model learns to rank held-out
 * pairs, and a student distilled from a larger teacher beats the same student trained alone.
 */
import { describe, expect, it } from 'vitest';
import {
  AdamW,
  GPT,
  Generator,
  RewardModel,
  batchExamples,
  bradleyTerryLoss,
  crossEntropy,
  distillationLoss,
  hiddenStateLoss,
  Linear,
  dpoLoss,
  logSigmoid,
  noGrad,
  pairAccuracy,
  packExamples,
  parseInstructions,
  parsePreferencePairs,
  ppo,
  randint,
  sequenceLogProbs,
  tensor,
  tidy,
  type Tensor,
} from '../src/index.js';
import { describeBackends, expectClose, optimize } from './harness.js';

const f64 = { dtype: 'f64' as const, backend: 'ref' };

async function vals(t: Tensor): Promise<number[]> {
  const v = Array.from(await t.data());
  t.dispose();
  return v;
}

describe('alignment objectives match their formulas', () => {
  it('logSigmoid is log σ(x), stable at ±100, with the gradient σ(−x)', async () => {
    const xs = [-100, -5, -0.5, 0, 0.5, 5, 100];
    const x = tensor(xs, [7], f64);
    x.requiresGrad = true;
    const y = logSigmoid(x);
    const want = xs.map((v) => (v < 0 ? v - Math.log1p(Math.exp(v)) : -Math.log1p(Math.exp(-v))));
    expectClose(await y.data(), want, { rtol: 1e-12, atol: 1e-12 });
    y.sum().backward();
    expectClose(await x.grad!.data(), xs.map((v) => 1 / (1 + Math.exp(v))), { rtol: 1e-12, atol: 1e-12 });
  });

  it('sequenceLogProbs sums (or averages) the log-probabilities of the scored labels', async () => {
    const logits = tensor([[[0, 1, 2], [2, 0, 0], [1, 1, 1]]], [1, 3, 3], f64);
    const labels = tensor([[2, -100, 1]], [1, 3], { dtype: 'i32', backend: 'ref' });
    const lp = (row: number[], k: number): number => row[k]! - Math.log(row.reduce((a, v) => a + Math.exp(v), 0));
    const want = lp([0, 1, 2], 2) + lp([1, 1, 1], 1);
    expectClose(await vals(sequenceLogProbs(logits, labels)), [want], { rtol: 1e-12, atol: 1e-12 });
    expectClose(await vals(sequenceLogProbs(logits, labels, { average: true })), [want / 2], { rtol: 1e-12, atol: 1e-12 });
    expect(() => sequenceLogProbs(logits, tensor([[1, 2]], [1, 2], { dtype: 'i32', backend: 'ref' }))).toThrow(/^sequenceLogProbs: logits \[B, T, V\] and labels \[B, T\] must agree, got \[1,3,3\] f64 and \[1,2\] i32/);
  });

  it('dpoLoss, its reference-free and label-smoothed forms, and the Bradley–Terry loss', async () => {
    const pc = tensor([-3, -1], [2], f64), pr = tensor([-2, -4], [2], f64);
    const rc = tensor([-3.5, -1], [2], f64), rr = tensor([-2, -3], [2], f64);
    const ls = (z: number): number => -Math.log1p(Math.exp(-z));
    const z = [0.5 * ((-3 + 3.5) - (-2 + 2)), 0.5 * ((-1 + 1) - (-4 + 3))];
    const r = dpoLoss(pc, pr, rc, rr, { beta: 0.5 });
    expectClose(await vals(r.loss), [-(ls(z[0]!) + ls(z[1]!)) / 2], { rtol: 1e-12, atol: 1e-12 });
    expectClose(await vals(r.chosenRewards), [0.25, 0], { rtol: 1e-12, atol: 1e-12 });
    expectClose(await vals(r.rejectedRewards), [0, -0.5], { rtol: 1e-12, atol: 1e-12 });
    const free = dpoLoss(pc, pr, null, null, { beta: 0.5 });
    const zf = [0.5 * (-3 + 2), 0.5 * (-1 + 4)];
    expectClose(await vals(free.loss), [-(ls(zf[0]!) + ls(zf[1]!)) / 2], { rtol: 1e-12, atol: 1e-12 });
    const smooth = dpoLoss(pc, pr, rc, rr, { beta: 0.5, labelSmoothing: 0.1 });
    const s = z.map((v) => -(0.9 * ls(v) + 0.1 * ls(-v)));
    expectClose(await vals(smooth.loss), [(s[0]! + s[1]!) / 2], { rtol: 1e-12, atol: 1e-12 });
    expectClose(await vals(bradleyTerryLoss(pc, pr)), [-(ls(-1) + ls(3)) / 2], { rtol: 1e-12, atol: 1e-12 });
    expect(() => dpoLoss(pc, pr, rc, null)).toThrow(/^dpoLoss: pass both reference log-likelihoods, or neither/);
    expect(() => dpoLoss(pc, tensor([1], [1], f64), null, null)).toThrow(/^dpoLoss: log-likelihoods must all be \[N\] with one N, got \[2\], \[1\]/);
    expect(() => dpoLoss(pc, pr, null, null, { beta: 0 })).toThrow(/^dpoLoss: beta must be/);
  });

  it('distillationLoss is α·T²·KL(teacher ‖ student) + (1 − α)·CE over the scored positions', async () => {
    const s = [[1, 0, -1], [0.5, 0.5, 0]], t = [[2, 0, 0], [0, 1, 0]];
    const T = 2, alpha = 0.7;
    const soft = (row: number[]): number[] => {
      const e = row.map((v) => Math.exp(v / T));
      const z = e.reduce((a, v) => a + v, 0);
      return e.map((v) => v / z);
    };
    const kl = (i: number): number => soft(t[i]!).reduce((a, p, k) => a + p * (Math.log(p) - Math.log(soft(s[i]!)[k]!)), 0);
    const ce = (row: number[], k: number): number => Math.log(row.reduce((a, v) => a + Math.exp(v), 0)) - row[k]!;
    const targets = tensor([2, -100], [2], { dtype: 'i32', backend: 'ref' });
    const got = distillationLoss(tensor(s.flat(), [2, 3], f64), tensor(t.flat(), [2, 3], f64), targets, { temperature: T, alpha });
    expectClose(await vals(got), [alpha * T * T * kl(0) + (1 - alpha) * ce(s[0]!, 2)], { rtol: 1e-12, atol: 1e-12 });
    const all = distillationLoss(tensor(s.flat(), [2, 3], f64), tensor(t.flat(), [2, 3], f64), null, { temperature: T });
    expectClose(await vals(all), [(T * T * (kl(0) + kl(1))) / 2], { rtol: 1e-12, atol: 1e-12 });
    expect(() => distillationLoss(tensor(s.flat(), [2, 3], f64), tensor(t.flat(), [2, 3], f64), null, { alpha: 0.5 })).toThrow(/^distillationLoss: alpha 0\.5 weighs hard labels, but no targets were given/);
  });

  it('hiddenStateLoss is the mean squared error of the projected student states against the teacher\'s', async () => {
    const hs = tensor([1, 2, 3, 4], [2, 2], f64), ht = tensor([1, 0, 0, 1, 2, 2], [2, 3], f64);
    const proj = new Linear(2, 3, { ...f64, bias: false, weight: tensor([1, 0, 0, 1, 1, 1], [3, 2], f64) });
    // projected: [1, 2, 3] and [3, 4, 7]
    const want = ([0, 2, 3, 2, 2, 5].reduce((a, d) => a + d * d, 0)) / 6;
    expectClose(await vals(hiddenStateLoss(hs, ht, proj)), [want], { rtol: 1e-12, atol: 1e-12 });
    expect(() => hiddenStateLoss(hs, ht)).toThrow(/^hiddenStateLoss: the student's width 2 differs from the teacher's 3: pass a projection/);
    expect(() => hiddenStateLoss(hs, tensor([1, 2, 3], [1, 3], f64), proj)).toThrow(/^hiddenStateLoss: student \[2,2\] and teacher \[1,3\] states must agree on every axis but the last/);
  });
});

describe('preference and instruction data', () => {
  it('parses JSONL records and names the source line of a bad one', () => {
    expect(parsePreferencePairs('{"prompt":"p","chosen":"a","rejected":"b"}\n\n{"prompt":"q","chosen":"c","rejected":"d"}\n', 'prefs.jsonl')).toEqual([
      { prompt: 'p', chosen: 'a', rejected: 'b' },
      { prompt: 'q', chosen: 'c', rejected: 'd' },
    ]);
    expect(() => parsePreferencePairs('{"prompt":"p","chosen":"a","rejected":"b"}\n{oops\n', 'prefs.jsonl')).toThrow(/^prefs\.jsonl:2: not JSON/);
    expect(() => parsePreferencePairs('{"prompt":"p","chosen":"a","rejected":"a"}', 'prefs.jsonl')).toThrow(/^prefs\.jsonl:1: 'chosen' and 'rejected' are the same response$/);
    expect(() => parsePreferencePairs('{"prompt":"p","chosen":"a"}', 'prefs.jsonl')).toThrow(/^prefs\.jsonl:1: 'rejected' must be a string, got nothing$/);
    expect(() => parsePreferencePairs('\n\n', 'prefs.jsonl')).toThrow(/^prefs\.jsonl: no records/);
    expect(parseInstructions('{"prompt":"hi","response":"hello"}\n{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}', 'sft.jsonl')).toEqual([
      { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] },
      { messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }] },
    ]);
    expect(() => parseInstructions('{"prompt":"hi"}', 'sft.jsonl')).toThrow(/^sft\.jsonl:1: a record needs 'prompt' and 'response', or 'messages'; it has prompt$/);
    expect(() => parseInstructions('{"messages":[{"role":"user","content":"q"}]}', 'sft.jsonl')).toThrow(/^sft\.jsonl:1: the last message must be the assistant's/);
    expect(() => parseInstructions('{"messages":[{"role":"bot","content":"q"}]}', 'sft.jsonl')).toThrow(/^sft\.jsonl:1: messages\[0\]\.role must be system, user or assistant, got 'bot'/);
  });

  it('batchExamples scores response tokens only, cuts long prompts from the left and pads', async () => {
    const b = batchExamples([{ prompt: [1, 2, 3], response: [4, 5] }, { prompt: [9], response: [8] }], { blockSize: 4, pad: 0, backend: 'ref' });
    expect(b.lengths).toEqual([4, 2]);
    expect(Array.from(await b.idx.data())).toEqual([2, 3, 4, 5, 9, 8, 0, 0]);
    expect(Array.from(await b.labels.data())).toEqual([-100, 4, 5, -100, 8, -100, -100, -100]);
    expect(() => batchExamples([{ prompt: [1], response: [1, 2, 3, 4] }], { blockSize: 4 })).toThrow(/^batchExamples: example 0's response has 4 tokens; with a token of prompt it does not fit blockSize 4/);
  });
});

describeBackends('packed examples', (backend) => {
  it('packExamples fills rows in order, and the model sees each example as if it were alone', async () => {
    const ex = [
      { prompt: [1, 2, 3], response: [4, 5] },
      { prompt: [6], response: [7, 8, 9] },
      { prompt: [10, 11], response: [12] },
    ];
    const p = packExamples(ex, { blockSize: 8, pad: 0, backend });
    expect(p.rows).toEqual([[0], [1, 2]]);
    expect(Array.from(await p.idx.data())).toEqual([1, 2, 3, 4, 5, 0, 0, 0, 6, 7, 8, 9, 10, 11, 12, 0]);
    expect(Array.from(await p.positions.data())).toEqual([0, 1, 2, 3, 4, 0, 0, 0, 0, 1, 2, 3, 0, 1, 2, 0]);
    expect(Array.from(await p.labels.data())).toEqual([-100, -100, 4, 5, -100, -100, -100, -100, 7, 8, 9, -100, -100, 12, -100, -100]);
    const m = new GPT({ vocabSize: 16, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16, dropout: 0, bias: true, tiedHead: true }, { backend, generator: new Generator(3) });
    m.eval();
    const packed = await vals(tidy(() => m.forward(p.idx, null, { positions: p.positions, attnMask: p.attnMask }).logits));
    const spans: [number, number, number][] = [[0, 0, 5], [1, 0, 4], [1, 4, 3]]; // row, start, length of each example
    for (const [e, [row, start, len]] of spans.entries()) {
      const toks = [...ex[e]!.prompt, ...ex[e]!.response];
      const alone = await vals(tidy(() => m.forward(tensor(toks, [1, len], { dtype: 'i32', backend }), null).logits));
      const got = packed.slice((row * 8 + start) * 16, (row * 8 + start + len) * 16);
      expectClose(got, alone, { rtol: 1e-4, atol: 1e-5 });
    }
    expect(() => m.forward(p.idx, null, { positions: p.positions.narrow(1, 0, 4) })).toThrow(/^GPT\.forward: positions must be \[2, 8\] i32 like idx, got \[2,4\] i32/);
    for (const t of [p.idx, p.labels, p.positions, p.attnMask]) t.dispose();
    m.dispose();
  });
});

const V = 24;
const tiny = { vocabSize: V, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32, dropout: 0, bias: true, tiedHead: true };

// prompts of 4 random tokens from 12..23; a response is 3 tokens of 0..11
function prompts(n: number, seed: number): number[][] {
  let s = seed;
  const r = (): number => ((s = (s * 1103515245 + 12345) % 2147483648), s / 2147483648);
  return Array.from({ length: n }, () => Array.from({ length: 4 }, () => 12 + Math.floor(r() * 12)));
}

describeBackends('alignment effects', (backend) => {
  it('DPO raises the chosen responses\' log-likelihood relative to the reference, on held-out prompts too', async () => {
    const policy = new GPT(tiny, { backend, generator: new Generator(1) });
    const ref = new GPT(tiny, { backend, generator: new Generator(1) });
    ref.eval();
    for (const p of ref.parameters()) p.requiresGrad = false;
    // preferred: the response (1, 2, 3); dispreferred: (4, 5, 6)
    const pairs = (ps: number[][]): [ReturnType<typeof batchExamples>, ReturnType<typeof batchExamples>] => [
      batchExamples(ps.map((p) => ({ prompt: p, response: [1, 2, 3] })), { blockSize: 16, backend }),
      batchExamples(ps.map((p) => ({ prompt: p, response: [4, 5, 6] })), { blockSize: 16, backend }),
    ];
    const logp = (m: GPT, b: ReturnType<typeof batchExamples>): Tensor => sequenceLogProbs(m.forward(b.idx, null).logits, b.labels);
    const [trainC, trainR] = pairs(prompts(8, 3));
    const [testC, testR] = pairs(prompts(8, 77));
    const margin = async (): Promise<{ chosen: number; margin: number }> => {
      const r = tidy(() =>
        noGrad(() => {
          const d = dpoLoss(logp(policy, testC), logp(policy, testR), logp(ref, testC), logp(ref, testR), { beta: 0.5 });
          return [d.chosenRewards.mean(), d.chosenRewards.sub(d.rejectedRewards).mean()];
        }),
      );
      return { chosen: (await vals(r[0]!))[0]!, margin: (await vals(r[1]!))[0]! };
    };
    const before = await margin();
    expect(before.margin).toBe(0); // the policy is the reference
    const losses = await optimize(new AdamW(policy.parameters(), { lr: 3e-3, weightDecay: 0 }), 15, () => {
      const refC = noGrad(() => logp(ref, trainC));
      const refR = noGrad(() => logp(ref, trainR));
      return dpoLoss(logp(policy, trainC), logp(policy, trainR), refC, refR, { beta: 0.5 }).loss;
    });
    const after = await margin();
    console.log(`[align] ${backend}: DPO loss ${losses[0]!.toFixed(4)} → ${losses[losses.length - 1]!.toFixed(4)}; held-out margin ${after.margin.toFixed(3)}, chosen reward ${after.chosen.toFixed(3)}`);
    expect(losses[0]!).toBeCloseTo(Math.log(2), 5);
    expect(losses[losses.length - 1]!).toBeLessThan(0.3);
    expect(after.margin).toBeGreaterThan(1);
    expect(after.chosen).toBeGreaterThan(0); // chosen responses gained likelihood over the reference
    for (const t of [trainC, trainR, testC, testR]) (t.idx.dispose(), t.labels.dispose());
    policy.dispose();
    ref.dispose();
  });

  it('a reward model trained with the Bradley–Terry loss ranks held-out pairs', async () => {
    const rm = new RewardModel(tiny, { backend, generator: new Generator(2) });
    // preferred responses end in token 7, dispreferred ones in token 9 (the rest random)
    const make = (ps: number[][], last: number): ReturnType<typeof batchExamples> =>
      batchExamples(ps.map((p, i) => ({ prompt: p, response: [(p[0]! + i) % 12, (p[1]! * 3) % 12, last] })), { blockSize: 16, backend });
    const trainP = prompts(16, 5), testP = prompts(16, 99);
    const [tc, tr, vc, vr] = [make(trainP, 7), make(trainP, 9), make(testP, 7), make(testP, 9)];
    const before = await pairAccuracy(rm, vc, vr);
    await optimize(new AdamW(rm.parameters(), { lr: 3e-3, weightDecay: 0 }), 25, () => bradleyTerryLoss(rm.forward(tc.idx, tc.lengths), rm.forward(tr.idx, tr.lengths)));
    const after = await pairAccuracy(rm, vc, vr);
    console.log(`[align] ${backend}: reward model held-out accuracy ${before.toFixed(3)} → ${after.toFixed(3)}`);
    expect(after).toBe(1);
    for (const t of [tc, tr, vc, vr]) (t.idx.dispose(), t.labels.dispose());
    rm.dispose();
  });
});

describeBackends('distillation', (backend) => {
  // x → x + 1 (mod 16) with 40% of the labels replaced by random tokens
  const noisy = async (n: number, seed: number): Promise<[Tensor, Tensor]> => {
    const gen = new Generator(seed);
    const idx = randint(0, 16, [n, 16], { backend, generator: gen });
    const noise = await randint(0, 16, [n, 16], { generator: gen }).data();
    const flip = await randint(0, 10, [n, 16], { generator: gen }).data();
    const x = await idx.data();
    const y = Array.from(x, (v, i) => (flip[i]! < 4 ? noise[i]! : (v + 1) % 16));
    return [idx, tensor(y, [n, 16], { dtype: 'i32', backend })];
  };
  const cfg = (nEmbd: number, nLayer: number) => ({ vocabSize: 16, blockSize: 16, nLayer, nHead: 2, nEmbd, dropout: 0, bias: true, tiedHead: true });

  it('a student distilled from a larger teacher reaches a lower validation loss than the same student trained alone', async () => {
    const [bigX, bigY] = await noisy(64, 1); // the teacher's data
    const [smallX, smallY] = await noisy(4, 2); // the student's
    const [valX, valY] = await noisy(64, 3);
    const fit = async (m: GPT, x: Tensor, y: Tensor, steps: number, lr: number, teacher?: GPT, proj?: Linear): Promise<void> => {
      await optimize(new AdamW([...m.parameters(), ...(proj ? proj.parameters() : [])], { lr, weightDecay: 0 }), steps, () => {
        const hidden = m.transformer.forward(x);
        const logits = m.lm_head.forward(hidden);
        const loss = teacher ? distillationLoss(logits, noGrad(() => teacher.forward(x, null).logits), y, { temperature: 2, alpha: 0.9 }) : crossEntropy(logits, y);
        // with a projection, also match the teacher's last hidden states
        return teacher && proj ? loss.add(hiddenStateLoss(hidden, noGrad(() => teacher.transformer.forward(x)), proj).mul(0.5)) : loss;
      });
    };
    const valLoss = async (m: GPT): Promise<number> => (await vals(tidy(() => noGrad(() => crossEntropy(m.forward(valX, null).logits, valY)))))[0]!;
    const teacher = new GPT(cfg(48, 2), { backend, generator: new Generator(4) });
    await fit(teacher, bigX, bigY, 60, 1e-2);
    teacher.eval();
    const alone = new GPT(cfg(16, 1), { backend, generator: new Generator(5) });
    const distilled = new GPT(cfg(16, 1), { backend, generator: new Generator(5) });
    const matched = new GPT(cfg(16, 1), { backend, generator: new Generator(5) });
    const proj = new Linear(16, 48, { backend, generator: new Generator(6) });
    await fit(alone, smallX, smallY, 60, 1e-2);
    await fit(distilled, smallX, smallY, 60, 1e-2, teacher);
    await fit(matched, smallX, smallY, 60, 1e-2, teacher, proj);
    const [t, a, d, h] = [await valLoss(teacher), await valLoss(alone), await valLoss(distilled), await valLoss(matched)];
    console.log(`[distill] ${backend}: validation loss teacher ${t.toFixed(4)}, student alone ${a.toFixed(4)}, distilled ${d.toFixed(4)}, distilled with hidden-state matching ${h.toFixed(4)}`);
    expect(d).toBeLessThan(a - 0.05);
    expect(h).toBeLessThan(a - 0.05);
    for (const x of [bigX, bigY, smallX, smallY, valX, valY]) x.dispose();
    for (const m of [teacher, alone, distilled, matched, proj]) m.dispose();
  });
});

describeBackends('PPO', (backend) => {
  it('raises a known reward (responses that use token 3); the KL penalty keeps the policy near the reference', async () => {
    const cfg = { vocabSize: 16, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 32, dropout: 0, bias: true, tiedHead: true };
    const prompts = Array.from({ length: 8 }, (_, i) => [i, (i * 5) % 16, (i * 7 + 1) % 16, 9]);
    const rule = (_p: readonly number[], r: readonly number[]): number => r.filter((t) => t === 3).length / r.length;
    const run = async (klCoef: number): Promise<{ rewards: number[]; kls: number[] }> => {
      const policy = new GPT(cfg, { backend, generator: new Generator(7) });
      const reference = new GPT(cfg, { backend, generator: new Generator(7) });
      const r = await ppo({ policy, reference, prompts, reward: rule, responseLength: 6, iterations: 12, batchSize: 16, epochs: 4, lr: 3e-3, klCoef, generator: new Generator(1) });
      for (const s of r.iterations) expect(Number.isFinite(s.policyLoss) && Number.isFinite(s.valueLoss)).toBe(true);
      r.valueHead.dispose();
      policy.dispose();
      reference.dispose();
      return { rewards: r.iterations.map((s) => s.reward), kls: r.iterations.map((s) => s.kl) };
    };
    const weak = await run(0.02);
    const strong = await run(0.3);
    for (const [name, x] of [['β 0.02', weak], ['β 0.3', strong]] as const)
      console.log(`[ppo] ${backend} ${name}: reward ${x.rewards.map((v) => v.toFixed(2)).join(' ')}; KL ${x.kls.map((v) => v.toFixed(2)).join(' ')}`);
    const ends = (v: number[]): [number, number] => [(v[0]! + v[1]!) / 2, (v[10]! + v[11]!) / 2];
    const [w0, w1] = ends(weak.rewards);
    expect(w1).toBeGreaterThan(w0 + 0.5); // the reward is learnt
    expect(ends(strong.kls)[1]).toBeLessThan(ends(weak.kls)[1] / 2); // which holds the policy nearer the reference
  });
});
