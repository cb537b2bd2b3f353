/**
 * Smaller and cheaper models: magnitude pruning (global, per layer, 2:4) whose masks survive
 * fine-tuning, an EMA of the weights checked against a host EMA of the parameter trajectory,
 * checkpoint averaging checked against the element-wise mean, and logit ensembles that beat
 * their members. Each test prints the effect it shows (losses before and after).
 *
 * Micro GPTs (1–2 layers, width 32, context 16) on a character-level corpus written here, a few
 * dozen steps each, on every backend.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  AdamW,
  GPT,
  Generator,
  Linear,
  TokenDataset,
  buildShards,
  evaluate,
  loadCheckpoint,
  noGrad,
  saveCheckpoint,
  tensor,
  tidy,
  train,
  type Tensor,
  type TokenizerLike,
} from '../src/index.js';
import { prune, sparsity } from '../src/nn/prune.js';
import { EMA } from '../src/train/ema.js';
import { averageCheckpoints, averageCheckpointsInto, saveAveragedCheckpoint } from '../src/train/average.js';
import { ensembleLogits, evaluateEnsemble } from '../src/metrics/ensemble.js';
import { describeBackends, liveTensors } from './harness.js';

// ---- a character-level corpus ----------------------------------------------------------------

const ALPHABET = ' .abcdefghijklmnopqrstuvwxyz';
const V = ALPHABET.length + 1;
const chars: TokenizerLike = { vocabSize: V, encode: (t) => Array.from(t, (c) => Math.max(0, ALPHABET.indexOf(c))), fingerprint: () => 'compress-test-chars-v1' };

function corpus(n: number, seed: number): string[] {
  const subj = ['the cat', 'a dog', 'the farmer', 'my sister', 'the river', 'a bird'];
  const verb = ['sees', 'likes', 'builds', 'finds', 'paints'];
  const obj = ['the house', 'a field', 'the road', 'a door', 'the lake', 'a boat'];
  let s = seed;
  const r = (k: number): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return Math.floor(s / 65536) % k;
  };
  return Array.from({ length: n }, () => Array.from({ length: 3 + r(3) }, () => `${subj[r(6)]} ${verb[r(5)]} ${obj[r(6)]}.`).join(' '));
}

const root = mkdtempSync(join(tmpdir(), 'kiln-compress-'));
let trainData: TokenDataset;
let valData: TokenDataset;

beforeAll(async () => {
  const cacheDir = join(root, 'cache');
  trainData = TokenDataset.open(await buildShards(corpus(60, 1), chars, { cacheDir, eos: V - 1 }));
  valData = TokenDataset.open(await buildShards(corpus(10, 2), chars, { cacheDir, eos: V - 1 }));
});
afterAll(() => {
  trainData?.close();
  valData?.close();
  rmSync(root, { recursive: true, force: true });
});

const T = 16;
const B = 8;
const STEPS = 80;
const EVAL = { blockSize: T, batchSize: 8, maxBatches: 4 };

const gpt = (backend: string, seed: number, nLayer = 2): GPT => new GPT({ vocabSize: V, blockSize: T, nLayer, nHead: 2, nEmbd: 32 }, { backend, generator: new Generator(seed) });

/** Train `model` for `steps` AdamW steps on the corpus (batches drawn with `seed`). */
async function fit(model: GPT, steps: number, seed: number, callbacks: Parameters<typeof train>[0]['callbacks'] = undefined): Promise<void> {
  const optimizer = new AdamW(model.parameters(), { lr: 1e-2, betas: [0.9, 0.99], weightDecay: 0.01 });
  await train({ model, optimizer, data: { train: trainData }, steps, batchSize: B, blockSize: T, logEvery: steps, generator: new Generator(seed), callbacks });
  optimizer.disposeState();
}

const valLoss = async (model: GPT, backend: string): Promise<number> => (await evaluate(model, valData, { ...EVAL, backend })).nll;

const f32 = Math.fround;
const fmt4 = (x: number): string => x.toFixed(4);

describeBackends('compression', (backend) => {
  // two micro GPTs of different seeds, trained the same way on the same batches
  let a: GPT;
  let b: GPT;
  beforeAll(async () => {
    a = gpt(backend, 11);
    b = gpt(backend, 12);
    await fit(a, STEPS, 5);
    await fit(b, STEPS, 5);
  });
  afterAll(() => {
    a?.dispose();
    b?.dispose();
  });

  it('pruning 50% globally and per layer gives exactly that sparsity; 2:4 leaves exactly 2 zeros in every group of 4', async () => {
    for (const method of ['global', 'layer'] as const) {
      const m = gpt(backend, 3);
      const before = (await Promise.all(m.parameters().map(async (p) => Array.from(await p.data())))) as number[][];
      const pruner = await prune(m, { method, amount: 0.5 });
      const r = await pruner.sparsity();
      // the default choice: the Linear weights (attention, MLP), not the tied head, embeddings, norms or biases
      expect(r.params.map((p) => p.name)).toEqual(m.namedParameters().filter(([n, p]) => p.rank === 2 && n.startsWith('transformer.h.')).map(([n]) => n));
      expect(Math.abs(r.zeros - r.size / 2)).toBeLessThanOrEqual(1);
      if (method === 'layer') for (const p of r.params) expect(Math.abs(p.zeros - p.size / 2), p.name).toBeLessThanOrEqual(1);
      // the zeros are the smallest magnitudes: every pruned |w| ≤ every kept |w| (over all weights, or per layer)
      const chosen = new Set(r.params.map((p) => p.name));
      const named = m.namedParameters();
      const groups: { pruned: number[]; kept: number[] }[] = [];
      for (const [i, [name, p]] of named.entries()) {
        const after = Array.from(await p.data());
        if (!chosen.has(name)) {
          expect(after, `${name} is untouched`).toEqual(before[i]);
          continue;
        }
        if (method === 'layer' || groups.length === 0) groups.push({ pruned: [], kept: [] });
        const g = groups[groups.length - 1]!;
        after.forEach((v, j) => (v === 0 ? g.pruned : g.kept).push(Math.abs(before[i]![j]!)));
      }
      for (const g of groups) expect(Math.max(...g.pruned)).toBeLessThanOrEqual(Math.min(...g.kept));
      console.log(`[compress ${backend}] prune ${method} 50%: ${r.zeros} of ${r.size} zeros (${(100 * r.sparsity).toFixed(2)}%), per parameter ${r.params.map((p) => `${(100 * p.sparsity).toFixed(1)}%`).join(' ')}`);
      pruner.dispose();
      m.dispose();
    }

    const m = gpt(backend, 4);
    const pruner = await prune(m, { method: '2:4' });
    const r = await sparsity(m);
    expect(r.zeros).toBe(r.size / 2);
    for (const name of pruner.names) {
      const [, w] = m.namedParameters().find(([n]) => n === name)!;
      const v = await w.data();
      const zerosPerGroup = new Set<number>();
      for (let g = 0; g < v.length; g += 4) zerosPerGroup.add([0, 1, 2, 3].filter((k) => v[g + k] === 0).length);
      expect([...zerosPerGroup], name).toEqual([2]);
    }
    // the groups are 4 consecutive inputs of a row of the [out, in] weight: `in` must be a multiple of 4
    const odd = new Linear(6, 3, { backend });
    await expect(prune(odd, { method: '2:4' })).rejects.toThrow(/^prune: method '2:4' .* parameter 'weight' is \[3,6\]/);
    odd.dispose();
    console.log(`[compress ${backend}] prune 2:4: ${r.zeros} of ${r.size} zeros, 2 in each of ${r.size / 4} groups of 4`);
    pruner.dispose();
    m.dispose();
  });

  it('masks survive 10 AdamW fine-tuning steps (pruned weights stay exactly 0) and fine-tuning recovers the loss', async () => {
    const m = gpt(backend, 11);
    noGrad(() => m.loadStateDict(a.stateDict()));
    const dense = await valLoss(m, backend);
    const pruner = await prune(m, { method: 'global', amount: 0.5 });
    const pruned = await valLoss(m, backend);
    await fit(m, 10, 9, [pruner.callback()]);
    const tuned = await valLoss(m, backend);
    // every masked weight is exactly zero after the 10 steps; the kept ones moved
    const masks = pruner.stateDict();
    let moved = 0;
    for (const [name, p] of m.namedParameters()) {
      const mask = masks[name];
      if (!mask) continue;
      const [w, k] = [await p.data(), await mask.data()];
      for (let i = 0; i < w.length; i++) if (!k[i]) expect(w[i], `${name}[${i}]`).toBe(0);
      moved += w.length;
    }
    expect(moved).toBeGreaterThan(0);
    const r = await pruner.sparsity();
    expect(Math.abs(r.zeros - r.size / 2)).toBeLessThanOrEqual(1);
    // without the mask, one more AdamW step (momentum) moves the pruned weights off zero; apply() zeroes them again
    const opt = new AdamW(m.parameters(), { lr: 1e-2 });
    tidy(() => {
      const batch = trainData.batch(B, T, new Generator(1), { backend });
      m.forward(batch.input, batch.target).loss!.backward();
      opt.step();
      m.zeroGrad();
    });
    opt.disposeState();
    const drifted = (await sparsity(m)).zeros;
    expect(drifted).toBeLessThan(r.zeros);
    pruner.apply();
    expect((await sparsity(m)).zeros).toBe(r.zeros);
    console.log(`[compress ${backend}] val loss: dense ${fmt4(dense)}, pruned 50% ${fmt4(pruned)} (+${fmt4(pruned - dense)}), after 10 fine-tuning steps ${fmt4(tuned)} (${r.zeros} of ${r.size} weights zero throughout)`);
    expect(tuned).toBeLessThan(pruned);
    pruner.dispose();
    // the loss against the fraction pruned (globally, no fine-tuning)
    const curve: string[] = [];
    for (const amount of [0.3, 0.5, 0.7, 0.9]) {
      noGrad(() => m.loadStateDict(a.stateDict()));
      (await prune(m, { amount })).dispose();
      curve.push(`${amount * 100}% ${fmt4(await valLoss(m, backend))}`);
    }
    console.log(`[compress ${backend}] val loss by fraction pruned: 0% ${fmt4(dense)}, ${curve.join(', ')}`);
    m.dispose();
  });

  it('EMA equals the host EMA of the parameter trajectory; applyTo then restore gives the weights back bit for bit', async () => {
    const m = gpt(backend, 21, 1);
    const decay = 0.9;
    const ema = new EMA(m, { decay, warmup: true });
    const read = async (): Promise<number[][]> => Promise.all(m.parameters().map(async (p) => Array.from(await p.data())));
    // the host EMA in f32, as the device computes it: s = fround(fround(s·d) + fround(p·(1 − d)))
    let host = await read();
    const opt = new AdamW(m.parameters(), { lr: 1e-2 });
    const gen = new Generator(3);
    for (let t = 0; t < 6; t++) {
      tidy(() => {
        const batch = trainData.batch(B, T, gen, { backend });
        m.forward(batch.input, batch.target).loss!.backward();
        opt.step();
        m.zeroGrad();
      });
      const d = Math.min(decay, (1 + t) / (10 + t));
      expect(ema.currentDecay).toBe(d);
      ema.update();
      const p = await read();
      host = host.map((s, i) => s.map((x, j) => f32(f32(x * f32(d)) + f32(p[i]![j]! * f32(1 - d)))));
    }
    opt.disposeState();
    expect(ema.updates).toBe(6);
    const shadows = Object.values(ema.shadows);
    let worst = 0;
    for (const [i, s] of shadows.entries()) {
      const got = await s.data();
      host[i]!.forEach((x, j) => (worst = Math.max(worst, Math.abs(got[j]! - x) / Math.max(1e-6, Math.abs(x)))));
    }
    console.log(`[compress ${backend}] EMA of 6 steps vs host f32 EMA: largest relative difference ${worst}`);
    expect(worst).toBeLessThanOrEqual(backend === 'webgpu' ? 1e-6 : 0);

    // evaluate with the EMA weights, then go back to the model's own, bit for bit
    const own = await read();
    const lossOwn = await valLoss(m, backend);
    ema.applyTo();
    for (const [i, p] of m.parameters().entries()) expect(Array.from(await p.data())).toEqual(Array.from(await shadows[i]!.data()));
    const lossEma = await valLoss(m, backend);
    ema.restore();
    const back = await read();
    back.forEach((v, i) => expect(new Float32Array(v)).toEqual(new Float32Array(own[i]!)));
    expect(back).toEqual(own);
    console.log(`[compress ${backend}] val loss after 6 steps: own weights ${fmt4(lossOwn)}, EMA weights ${fmt4(lossEma)}`);

    ema.dispose();
    m.dispose();

    // through train(), from the trained model at a high learning rate: updates after every 2nd
    // step, off the hot path; the EMA saves as a checkpoint that any GPT of the shape loads
    const noisy = gpt(backend, 11);
    noGrad(() => noisy.loadStateDict(a.stateDict()));
    const every2 = new EMA(noisy, { decay: 0.8, updateEvery: 2 });
    const optimizer = new AdamW(noisy.parameters(), { lr: 3e-2 });
    await train({ model: noisy, optimizer, data: { train: trainData }, steps: 20, batchSize: B, blockSize: T, logEvery: 20, generator: new Generator(4), callbacks: [every2.callback()] });
    optimizer.disposeState();
    expect(every2.updates).toBe(10);
    const path = await saveCheckpoint(join(root, `ema-${backend}.safetensors`), { model: every2, step: 20, extra: { emaUpdates: every2.updates } });
    const fresh = gpt(backend, 99);
    await loadCheckpoint(path, { model: fresh, backend });
    const sh = every2.shadows;
    for (const [name, p] of fresh.namedParameters()) expect(Array.from(await p.data()), name).toEqual(Array.from(await sh[name]!.data()));
    console.log(`[compress ${backend}] 20 more steps at lr 3e-2 from the trained model: val loss own weights ${fmt4(await valLoss(noisy, backend))}, EMA (decay 0.8, every 2 steps) ${fmt4(await valLoss(fresh, backend))}`);
    every2.dispose();
    fresh.dispose();
    noisy.dispose();
  });

  it('averaging 3 checkpoints gives the element-wise mean (into a state dict, a model, a new checkpoint)', async () => {
    const models = [31, 32, 33].map((s) => gpt(backend, s, 1));
    const paths: string[] = [];
    for (const [i, m] of models.entries()) paths.push(await saveCheckpoint(join(root, `avg-${backend}`, `ckpt-${i}.safetensors`), { model: m, step: 100 * (i + 1) }));
    const live = liveTensors();
    const { state, steps } = await averageCheckpoints(paths, { backend });
    expect(steps).toEqual([100, 200, 300]);
    const sds = models.map((m) => m.stateDict());
    expect(Object.keys(state)).toEqual(Object.keys(sds[0]!));
    let worst = 0;
    for (const [name, t] of Object.entries(state)) {
      const xs = await Promise.all(sds.map(async (sd) => sd[name]!.data()));
      const got = await t.data();
      for (let j = 0; j < got.length; j++) {
        const mean = (xs[0]![j]! + xs[1]![j]! + xs[2]![j]!) / 3;
        // f32 sums of the scaled inputs: a few roundings of the largest input's size
        const scale = Math.max(...xs.map((x) => Math.abs(x[j]!)), 1e-30);
        worst = Math.max(worst, Math.abs(got[j]! - mean) / scale);
      }
    }
    console.log(`[compress ${backend}] average of 3 checkpoints vs the f64 mean: largest difference relative to the largest input ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(3e-7);
    for (const t of Object.values(state)) t.dispose();
    expect(liveTensors()).toBe(live);

    // weights [1, 0, 0] give the first checkpoint exactly; into a model, and into a new file
    const target = gpt(backend, 0, 1);
    await averageCheckpointsInto(target, paths, { weights: [1, 0, 0], backend });
    for (const [name, p] of target.namedParameters()) expect(Array.from(await p.data()), name).toEqual(Array.from(await sds[0]![name]!.data()));
    const out = await saveAveragedCheckpoint(join(root, `avg-${backend}`, 'averaged.safetensors'), paths, { backend });
    const loaded = await loadCheckpoint(out, { model: target, backend });
    expect(loaded.step).toBe(300);
    expect((loaded.extra as { averagedFrom: { step: number }[] }).averagedFrom.map((a) => a.step)).toEqual([100, 200, 300]);
    const again = await averageCheckpoints(paths, { backend });
    for (const [name, p] of target.namedParameters()) expect(Array.from(await p.data()), name).toEqual(Array.from(await again.state[name]!.data()));
    for (const t of Object.values(again.state)) t.dispose();
    // a checkpoint of another architecture is refused by name
    const other = gpt(backend, 1, 2);
    const odd = await saveCheckpoint(join(root, `avg-${backend}`, 'other.safetensors'), { model: other, step: 1 });
    await expect(averageCheckpoints([paths[0]!, odd], { backend })).rejects.toThrow(/^averageCheckpoints: paths\[1\]: .*extra transformer\.h\.1/);
    for (const m of [...models, target, other]) m.dispose();
  });

  it('an ensemble of 2 differently seeded models has a lower validation loss than the mean of theirs', async () => {
    const probs = await evaluateEnsemble([a, b], valData, { ...EVAL, backend });
    const logits = await evaluateEnsemble([a, b], valData, { ...EVAL, backend, mode: 'logits' });
    // the members' own losses are evaluate()'s, on the same windows
    for (const [i, m] of [a, b].entries()) expect(probs.members[i]!.nll).toBeCloseTo(await valLoss(m, backend), 5);
    console.log(
      `[compress ${backend}] val loss: members ${probs.members.map((r) => fmt4(r.nll)).join(', ')} (mean ${fmt4(probs.meanMemberNll)}); ` +
        `ensemble of probabilities ${fmt4(probs.nll)}, of logits ${fmt4(logits.nll)} (${probs.tokens} tokens)`,
    );
    expect(probs.nll).toBeLessThan(probs.meanMemberNll);
    expect(logits.nll).toBeLessThan(logits.meanMemberNll);
    // one member: the ensemble is the model itself
    const single = await evaluateEnsemble([a], valData, { ...EVAL, backend });
    expect(single.nll).toBeCloseTo(probs.members[0]!.nll, 5);

    // ensembleLogits against the mixture computed on the host from each member's logits
    const idx = tensor([[1, 2, 3, 4, 5, 6]], [1, 6], { dtype: 'i32', backend });
    const [za, zb, mix, mean] = noGrad(() => [a.forward(idx).logits, b.forward(idx).logits, ensembleLogits([a, b], idx), ensembleLogits([a, b], idx, { mode: 'logits', weights: [3, 1] })]);
    const [va, vb, vm, vl] = await Promise.all([za, zb, mix, mean].map(async (t: Tensor) => Array.from(await t.data())));
    for (let r = 0; r < 6; r++) {
      const row = (v: number[]): number[] => v.slice(r * V, (r + 1) * V);
      const softmax = (z: number[]): number[] => {
        const mx = Math.max(...z);
        const e = z.map((x) => Math.exp(x - mx));
        const s = e.reduce((x, y) => x + y, 0);
        return e.map((x) => x / s);
      };
      const [pa, pb] = [softmax(row(va!)), softmax(row(vb!))];
      row(vm!).forEach((x, k) => expect(x).toBeCloseTo(Math.log((pa[k]! + pb[k]!) / 2), 5));
      row(vl!).forEach((x, k) => expect(x).toBeCloseTo(0.75 * row(va!)[k]! + 0.25 * row(vb!)[k]!, 5));
    }
    for (const t of [idx, za, zb, mix, mean]) t!.dispose();
  });
});
