/**
 * Federated averaging: the server's mean is exactly the count-weighted mean (hand-picked dyadic
 * values, and through a whole round with a one-parameter model whose one SGD step lands on its
 * client's mean token), clients are sampled by seed without replacement, the Dirichlet split
 * deals every document once (evenly at α = ∞, one label per client as α → 0), and a micro GPT
 * trained federated on non-IID clients learns, with its gap to centralised training on the same
 * number of steps printed for an IID and a non-IID split of the same documents.
 *
 * Everything runs on the `ref` backend with micro models (1 layer, width 32, context 8).
 */
import { describe, expect, it } from 'vitest';
import { AdamW, GPT, Generator, SGD, noGrad, tensor, type Tensor } from '../src/index.js';
import { averageStates, federatedAverage, federatedGap, splitNonIID, type FederatedModel } from '../src/train/federated.js';
import { heldOutLoss } from '../src/train/continual.js';

const V = 12;
const T = 8;

describe('averageStates', () => {
  it('is the mean weighted by the counts, exactly, entry by entry (integers from the first state)', async () => {
    const a = { w: tensor([1, 2, -4, 0.5], [2, 2], { backend: 'ref' }), d: tensor([1], [1], { backend: 'ref', dtype: 'f64' }), n: tensor([7], [1], { backend: 'ref', dtype: 'i32' }) };
    const b = { w: tensor([5, 6, 8, 4.5], [2, 2], { backend: 'ref' }), d: tensor([3], [1], { backend: 'ref', dtype: 'f64' }), n: tensor([9], [1], { backend: 'ref', dtype: 'i32' }) };
    const mean = averageStates([a, b], [300, 100]); // ¾·a + ¼·b, dyadic: exact in f32
    expect(Array.from(await mean.w!.data())).toEqual([2, 3, -1, 1.5]);
    expect(mean.w!.shape).toEqual([2, 2]);
    expect([mean.d!.dtype, ...(await mean.d!.data())]).toEqual(['f64', 1.5]);
    expect([mean.n!.dtype, ...(await mean.n!.data())]).toEqual(['i32', 7]);
    const equal = averageStates([a, b]);
    expect(Array.from(await equal.w!.data())).toEqual([3, 4, 2, 2.5]);
    for (const t of [...Object.values(mean), ...Object.values(equal)]) t.dispose();
    expect(() => averageStates([a, { w: a.w, d: a.d }])).toThrow(/^averageStates: states\[1\]: its entries differ from the first state's \(missing n\)/);
    expect(() => averageStates([a, { ...b, w: tensor([1, 2], [2], { backend: 'ref' }) }])).toThrow(/'w' is \[2\] f32, in the first state \[2,2\] f32/);
    expect(() => averageStates([a, b], [0, 0])).toThrow(/^averageStates: weights must not all be 0/);
    for (const t of [...Object.values(a), ...Object.values(b)]) t.dispose();
  });
});

/** p: one parameter; loss = mean((p − target)²), so one SGD step of lr ½ sets p to the batch's mean target. */
function meanModel(): FederatedModel & { p: Tensor } {
  const p = tensor([0.5], [1], { backend: 'ref', requiresGrad: true });
  let training = true;
  return {
    p,
    forward: (_idx, targets) => ({ loss: p.sub(targets.cast('f32')).square().mean() }),
    parameters: () => [p],
    train: (mode = true) => (training = mode),
    get training() {
      return training;
    },
    stateDict: () => ({ p }),
    loadStateDict: (s) => noGrad(() => p.copy_(s.p!)),
  };
}

describe('federatedAverage', () => {
  it('sets the global weights to the clients’ weights averaged by their token counts (or equally)', async () => {
    // client 0: 30 tokens of id 2 → its local weight is 2; client 1: 10 tokens of id 6 → 6
    const clients = [new Array(30).fill(2), new Array(10).fill(6)];
    const run = async (weighting: 'samples' | 'uniform'): Promise<number> => {
      const model = meanModel();
      const r = await federatedAverage({ model, clients, rounds: 1, localSteps: 1, weighting, optimizer: (m) => new SGD(m.parameters(), { lr: 0.5 }), batchSize: 2, blockSize: 4 });
      expect(r.rounds[0]!.clients).toEqual([0, 1]);
      expect(r.rounds[0]!.weights).toEqual(weighting === 'samples' ? [0.75, 0.25] : [0.5, 0.5]);
      expect(r.steps).toBe(2);
      return model.p.item();
    };
    expect(await run('samples')).toBe(3); // (30·2 + 10·6) / 40
    expect(await run('uniform')).toBe(4);
  });

  it('samples round(C·K) distinct clients a round, the same ones for the same seed; localEpochs sets the steps from a client’s size', async () => {
    const clients = Array.from({ length: 6 }, (_, k) => new Array(20 + 16 * k).fill(k));
    const rounds = async (seed: number) =>
      (await federatedAverage({ model: meanModel(), clients, rounds: 5, localEpochs: 1, clientFraction: 0.5, optimizer: (m) => new SGD(m.parameters(), { lr: 0.1 }), batchSize: 2, blockSize: 4, seed })).rounds;
    const r = await rounds(3);
    for (const x of r) {
      expect(x.clients).toHaveLength(3);
      expect(new Set(x.clients).size).toBe(3);
      // one epoch: round((nₖ − 1) / (2 · 4)) steps for client k
      expect(x.steps).toBe(x.clients.reduce((a, k) => a + Math.max(1, Math.round((20 + 16 * k - 1) / 8)), 0));
      expect(x.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
    expect(new Set(r.map((x) => x.clients.join())).size).toBeGreaterThan(1);
    expect((await rounds(3)).map((x) => x.clients)).toEqual(r.map((x) => x.clients));
  });
});

describe('splitNonIID', () => {
  const docs = Array.from({ length: 40 }, (_, i) => ({ id: i, label: i % 4 }));
  const key = (d: { label: number }): number => d.label;

  it('deals every document once; α = ∞ gives each client an even share of every label', () => {
    const parts = splitNonIID(docs, { clients: 5, alpha: Infinity, key, seed: 1 });
    expect(parts.flat().map((d) => d.id).sort((a, b) => a - b)).toEqual(docs.map((d) => d.id));
    for (const p of parts) for (let c = 0; c < 4; c++) expect(p.filter((d) => d.label === c).length).toBe(2); // 10 of each label over 5 clients
    expect(splitNonIID(docs, { clients: 5, alpha: Infinity, key, seed: 1 })).toEqual(parts); // deterministic
  });

  it('a small α puts each label on few clients', () => {
    const parts = splitNonIID(docs, { clients: 4, alpha: 0.05, key, seed: 2 });
    expect(parts.flat()).toHaveLength(40);
    expect(parts.every((p) => p.length >= 1)).toBe(true);
    // the share of each client's documents that carry its most common label: 1/4 when IID, near 1 here
    const purity = parts.map((p) => Math.max(...[0, 1, 2, 3].map((c) => p.filter((d) => d.label === c).length)) / p.length);
    expect(purity.reduce((a, b) => a + b, 0) / purity.length).toBeGreaterThan(0.8);
    const even = splitNonIID(docs, { clients: 4, alpha: 1000, key, seed: 2 }).map((p) => Math.max(...[0, 1, 2, 3].map((c) => p.filter((d) => d.label === c).length)) / p.length);
    expect(even.reduce((a, b) => a + b, 0) / even.length).toBeLessThan(0.5);
  });
});

// ---- a GPT, federated on non-IID clients ---------------------------------------------------------

/** A document of label c: a noisy cycle over 0..9 with step STEPS[c] (probability 0.9), from a fixed LCG; the labels' bigrams conflict, so a model must read the context. */
const STEPS = [1, 3];
function doc(c: number, seed: number, n = 48): number[] {
  let s = seed;
  const r = (): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return Math.floor(s / 65536) / 32768;
  };
  const out = [Math.floor(r() * 10)];
  while (out.length < n) out.push(r() < 0.9 ? (out[out.length - 1]! + STEPS[c]!) % 10 : Math.floor(r() * 10));
  return out;
}

describe('federated GPT', () => {
  const docs = Array.from({ length: 96 }, (_, i) => ({ label: i % 2, tokens: doc(i % 2, 1000 + i) }));
  const val = Array.from({ length: 16 }, (_, i) => doc(i % 2, 5000 + i)).flat();
  const gpt = (): GPT => new GPT({ vocabSize: V, blockSize: T, nLayer: 1, nHead: 2, nEmbd: 32 }, { backend: 'ref', generator: new Generator(11) });
  const setup = (alpha: number) => ({
    model: gpt(),
    clients: splitNonIID(docs, { clients: 8, alpha, key: (d) => d.label, seed: 3 }).map((p) => p.flatMap((d) => d.tokens)),
    rounds: 10,
    localSteps: 5,
    clientFraction: 0.5,
    optimizer: (m: FederatedModel) => new AdamW(m.parameters(), { lr: 1e-2 }),
    batchSize: 8,
    blockSize: T,
    clip: 1,
    seed: 4,
    val,
    evalWindows: 32,
  });

  it('converges on non-IID clients, and its gap to centralised training is small on an IID split and larger on a non-IID one', async () => {
    const nonIID = setup(0.1);
    const start = (await heldOutLoss(nonIID.model, val, { blockSize: T, maxWindows: 32 })).loss;
    const skewed = await federatedGap(nonIID);
    const iid = await federatedGap(setup(Infinity));
    const f = (x: number): string => x.toFixed(3);
    console.log(
      `[federated] val loss from ${f(start)}: IID federated ${f(iid.federatedLoss)} vs centralised ${f(iid.centralisedLoss)} (gap ${f(iid.gap)}); ` +
        `non-IID (α 0.1) federated ${f(skewed.federatedLoss)} vs centralised ${f(skewed.centralisedLoss)} (gap ${f(skewed.gap)}); ${skewed.centralisedSteps} steps each`,
    );
    const losses = skewed.federated.rounds.map((r) => r.valLoss!);
    console.log(`[federated] non-IID val loss by round: ${losses.map(f).join(' ')}`);
    expect(skewed.federated.steps).toBe(10 * 4 * 5);
    expect(skewed.centralisedSteps).toBe(200);
    expect(skewed.federatedLoss).toBeCloseTo(losses[losses.length - 1]!, 9);
    expect(skewed.federatedLoss).toBeLessThan(0.75 * start); // it learns
    expect(iid.federatedLoss).toBeLessThan(0.6 * start);
    expect(Math.abs(iid.gap)).toBeLessThan(0.15);
    expect(skewed.gap).toBeGreaterThan(iid.gap);
  });
});
