/**
 * Continual learning: the reservoir keeps every offered window with the same probability
 * (capacity / offers, counted over many seeds), a phase's batches replay exactly the share of
 * rows asked for (read back from the batches a spy model sees), held-out loss equals an
 * independent computation over the same windows, and the real thing: a micro GPT trained on
 * corpus A (a rising cycle), then on corpus B (a falling cycle over the same tokens), forgets A
 * far less with replay than without while B's loss still falls. A `TokenDataset` read from
 * shards works wherever tokens in memory do.
 *
 * Everything runs on the `ref` backend with a micro model (1 layer, width 32, context 8).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AdamW, GPT, Generator, TokenDataset, buildShards, crossEntropy, keep, noGrad, tensor, tidy, type Tensor } from '../src/index.js';
import { ReplayBuffer, continualTrain, heldOutLoss, tokenSource, type LearnerModel } from '../src/train/continual.js';

const V = 12;
const T = 8;
const B = 8;

/** A noisy cycle over tokens 0..9: the next token is (x + step) mod 10 with probability 0.9, else uniform (a fixed LCG). */
function cycle(n: number, step: number, seed: number): number[] {
  let s = seed;
  const r = (): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return Math.floor(s / 65536) / 32768;
  };
  const out = [Math.floor(r() * 10)];
  while (out.length < n) out.push(r() < 0.9 ? (out[out.length - 1]! + step + 10) % 10 : Math.floor(r() * 10));
  return out;
}

const A = { train: cycle(2000, 1, 1), val: cycle(400, 1, 2) };
const Bc = { train: cycle(2000, -1, 3), val: cycle(400, -1, 4) };

const gpt = (seed = 0): GPT => new GPT({ vocabSize: V, blockSize: T, nLayer: 1, nHead: 2, nEmbd: 32 }, { backend: 'ref', generator: new Generator(seed) });
const snapshot = (m: GPT): Record<string, Tensor> => Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, noGrad(() => t.clone())]));

const root = mkdtempSync(join(tmpdir(), 'kiln-continual-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('ReplayBuffer', () => {
  it('keeps the first `capacity` windows, then each of N offered with probability capacity / N (reservoir sampling)', () => {
    const buf = new ReplayBuffer({ capacity: 3, blockSize: 1, generator: new Generator(1) });
    for (let i = 0; i < 3; i++) expect(buf.add([i, i])).toBe(true);
    expect(buf.size).toBe(3);
    expect([0, 1, 2].map((i) => buf.window(i)[0])).toEqual([0, 1, 2]);
    // inclusion counts of 20 offers into 5 slots over 600 seeds: expected 600 · 5/20 = 150 each (sd ≈ 10.6)
    const N = 20;
    const capacity = 5;
    const counts = new Array<number>(N).fill(0);
    for (let seed = 0; seed < 600; seed++) {
      const b = new ReplayBuffer({ capacity, blockSize: 1, generator: new Generator(seed) });
      for (let i = 0; i < N; i++) b.add([i, 0]);
      expect(b.size).toBe(capacity);
      expect(b.seen).toBe(N);
      const held = new Set(Array.from({ length: capacity }, (_, j) => b.window(j)[0]!));
      expect(held.size).toBe(capacity);
      for (const i of held) counts[i]!++;
    }
    for (const c of counts) expect(Math.abs(c - 150)).toBeLessThan(50); // > 4.5 sd
    // the last offers are as likely as the first (a FIFO would keep only the last 5)
    expect(counts.slice(0, 5).reduce((a, b) => a + b, 0)).toBeGreaterThan(500);
  });

  it('addStream offers the non-overlapping windows of a stream (or every stride-th); sample draws with replacement', () => {
    const buf = new ReplayBuffer({ capacity: 100, blockSize: 4 });
    expect(buf.addStream(Array.from({ length: 21 }, (_, i) => i))).toBe(5); // starts 0, 4, 8, 12, 16 (17..20 is the last)
    expect(Array.from(buf.window(1))).toEqual([4, 5, 6, 7, 8]);
    expect(buf.addStream(tokenSource([9, 9, 9, 9, 9, 9]), { stride: 1 })).toBe(2);
    expect(buf.size).toBe(7);
    const drawn = buf.sample(50, new Generator(3));
    expect(drawn).toHaveLength(50);
    expect(drawn.every((w) => w.length === 5)).toBe(true);
    expect(new Set(drawn.map((w) => w[0])).size).toBeGreaterThan(3);
    buf.clear();
    expect([buf.size, buf.seen]).toEqual([0, 0]);
    expect(() => buf.sample(1, new Generator(0))).toThrow(/^ReplayBuffer.sample: the buffer is empty/);
  });
});

describe('heldOutLoss', () => {
  it('is the token-weighted mean cross-entropy of the full windows, all of them or a spread', async () => {
    const model = gpt(5);
    const stream = A.val.slice(0, 8 * T + 3); // 8 full windows and a short rest, left out
    const all = await heldOutLoss(model, stream, { blockSize: T, batchSize: 3 });
    expect(all.tokens).toBe(8 * T);
    const oracle = async (starts: number[]): Promise<number> => {
      const x = tensor(Int32Array.from(starts.flatMap((s) => stream.slice(s, s + T))), [starts.length, T], { backend: 'ref' });
      const y = tensor(Int32Array.from(starts.flatMap((s) => stream.slice(s + 1, s + T + 1))), [starts.length, T], { backend: 'ref' });
      const nll = noGrad(() => tidy(() => crossEntropy(model.forward(x).logits, y)));
      const v = await nll.item();
      [x, y, nll].forEach((t) => t.dispose());
      return v;
    };
    expect(all.loss).toBeCloseTo(await oracle([0, 1, 2, 3, 4, 5, 6, 7].map((j) => j * T)), 5);
    expect(all.perplexity).toBeCloseTo(Math.exp(all.loss), 9);
    const some = await heldOutLoss(model, stream, { blockSize: T, maxWindows: 3 });
    expect(some.tokens).toBe(3 * T);
    expect(some.loss).toBeCloseTo(await oracle([0, 2, 5].map((j) => j * T)), 5); // window ⌊j·8/3⌋
    expect(model.training).toBe(true);
  });
});

/** A one-parameter model that keeps the input rows it is given (and has a loss to step on). */
function spy(): LearnerModel & { seen: Tensor[] } {
  const p = tensor([0.5], [1], { backend: 'ref', requiresGrad: true });
  let training = true;
  const seen: Tensor[] = [];
  return {
    seen,
    forward: (idx) => {
      seen.push(keep(noGrad(() => idx.clone()))); // kept: forward runs inside the step's tidy
      return { loss: p.square().sum() };
    },
    parameters: () => [p],
    train: (mode = true) => (training = mode),
    get training() {
      return training;
    },
  };
}

describe('continualTrain', () => {
  it('replays exactly ⌊steps · ratio · batchSize⌋ rows, spread over the batches, from the buffer', async () => {
    const buffer = new ReplayBuffer({ capacity: 4, blockSize: T });
    buffer.addStream(new Array(40).fill(3));
    const model = spy();
    const r = await continualTrain({
      model,
      optimizer: new AdamW(model.parameters(), { lr: 0.01 }),
      data: { train: new Array(100).fill(7), oldVal: new Array(20).fill(3) },
      replay: { buffer, ratio: 0.3 },
      steps: 10,
      batchSize: 4,
      blockSize: T,
      generator: new Generator(0),
    });
    expect([r.replayedRows, r.newRows]).toEqual([12, 28]); // ⌊10 · 0.3 · 4⌋ = 12
    // the spy saw the 2 evaluations of oldVal (2 windows each, one batch) and the 10 training batches
    const training = model.seen.slice(1, 11);
    const replayedPerBatch = await Promise.all(training.map(async (t) => Array.from(await t.data()).filter((v) => v === 3).length / T));
    expect(replayedPerBatch.reduce((a, b) => a + b, 0)).toBe(12);
    expect(replayedPerBatch.every((n) => n === 1 || n === 2)).toBe(true); // 1.2 a batch: 1 or 2, never 0 and 3
    model.seen.forEach((t) => t.dispose());
    expect(r.forgetting).toBeCloseTo(r.after.oldLoss - r.before.oldLoss, 12);
  });

  it('a GPT trained on A then B forgets A far less with replay than without, and still learns B', async () => {
    const model = gpt(1);
    const phase = { batchSize: B, blockSize: T, clip: 1, evalWindows: 32 };
    // corpus A from scratch
    const a = await continualTrain({ model, optimizer: new AdamW(model.parameters(), { lr: 1e-2 }), data: { train: A.train, oldVal: A.val }, steps: 150, generator: new Generator(2), ...phase });
    expect(a.after.oldLoss).toBeLessThan(0.6 * a.before.oldLoss);
    const trainedOnA = snapshot(model);
    // corpus B, twice from the same weights and seed: without replay, then with a quarter of each batch's rows replayed
    const runB = async (replay: boolean) => {
      model.loadStateDict(trainedOnA);
      const buffer = new ReplayBuffer({ capacity: 64, blockSize: T, generator: new Generator(4) });
      buffer.addStream(A.train);
      return continualTrain({
        model,
        optimizer: new AdamW(model.parameters(), { lr: 1e-2 }),
        data: { train: Bc.train, oldVal: A.val, newVal: Bc.val },
        replay: replay ? { buffer, ratio: 0.25 } : null,
        steps: 150,
        generator: new Generator(5),
        ...phase,
      });
    };
    const plain = await runB(false);
    const replayed = await runB(true);
    Object.values(trainedOnA).forEach((t) => t.dispose());
    const fmt = (x: number): string => x.toFixed(3);
    console.log(
      `[continual] A-val loss after A ${fmt(a.after.oldLoss)}; after B without replay ${fmt(plain.after.oldLoss)} (forgetting ${fmt(plain.forgetting)}), ` +
        `with 25% replay ${fmt(replayed.after.oldLoss)} (forgetting ${fmt(replayed.forgetting)}); B-val loss ${fmt(plain.before.newLoss!)} → ${fmt(plain.after.newLoss!)} without, → ${fmt(replayed.after.newLoss!)} with`,
    );
    expect(plain.before.oldLoss).toBeCloseTo(a.after.oldLoss, 5);
    expect(replayed.before.oldLoss).toBeCloseTo(a.after.oldLoss, 5);
    expect(plain.forgetting).toBeGreaterThan(0.5); // fine-tuning on B alone forgets A
    expect(replayed.forgetting).toBeLessThan(0.25 * plain.forgetting);
    // B is learned either way
    expect(plain.after.newLoss!).toBeLessThan(0.6 * plain.before.newLoss!);
    expect(replayed.after.newLoss!).toBeLessThan(0.6 * replayed.before.newLoss!);
  });

  it('reads a TokenDataset opened from shards as it reads tokens in memory', async () => {
    const chars = { vocabSize: V, encode: (t: string) => Array.from(t, (c) => Number(c)), fingerprint: () => 'continual-digits' };
    const docs = [A.val.slice(0, 200).join(''), A.val.slice(200).join('')];
    const ds = TokenDataset.open(await buildShards(docs, chars, { cacheDir: join(root, 'cache') }));
    try {
      const model = gpt(3);
      const fromDisk = await heldOutLoss(model, ds, { blockSize: T });
      const tokens = Array.from(ds.window(0, ds.length));
      const inMemory = await heldOutLoss(model, tokens, { blockSize: T });
      expect(fromDisk.tokens).toBe(inMemory.tokens);
      expect(fromDisk.loss).toBeCloseTo(inMemory.loss, 6);
      const buf = new ReplayBuffer({ capacity: 1000, blockSize: T });
      expect(buf.addStream(ds)).toBe(Math.floor((ds.length - 1) / T));
    } finally {
      ds.close();
    }
  });
});
