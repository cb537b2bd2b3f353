/**
 * Training helpers: early stopping (Keras' rule, hand-worked sequences), the loop (evaluation
 * against an independent computation of the loss over the same windows, checkpoints every N
 * steps and at the end, pruning, resume that reproduces an uninterrupted run bit for bit, abort
 * that saves after the current step, early stopping that saves and stays stopped on resume,
 * gradient accumulation equal to one large batch, flat memory), weight-decay groups (nanoGPT's
 * counts), the unigram baseline, and hyperparameter search (grid order, seeded random draws,
 * ranking, early-stopped and failed trials, a real search through the loop).
 *
 * Everything runs on the `ref` backend with micro models (2 layers, width 32, context 16) on a
 * character-level corpus written here.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  GPT,
  Generator,
  LRScheduler,
  SGD,
  cosineLr,
  crossEntropy,
  loadCheckpoint,
  noGrad,
  tensor,
  tidy,
} from '../src/index.js';
import { liveTensors } from './harness.js';
import { TokenDataset, buildShards, type TokenizerLike } from '../src/index.js';
import {
  EarlyStopping,
  evaluate,
  gridConfigs,
  listCheckpoints,
  randomConfigs,
  search,
  train,
  unigramEntropy,
  weightDecayGroups,
  type CheckpointInfo,
  type TrainCallbacks,
} from '../src/index.js';

// ---- a character-level corpus ----------------------------------------------------------------

const ALPHABET = ' .abcdefghijklmnopqrstuvwxyz';
const V = ALPHABET.length + 1; // + the separator
const charTokenizer: TokenizerLike = {
  vocabSize: V,
  encode: (t) => Array.from(t, (c) => Math.max(0, ALPHABET.indexOf(c))),
  fingerprint: () => 'train-test-chars-v1',
};

/** Sentences from a tiny grammar, drawn with a fixed linear congruential generator (high bits). */
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

const root = mkdtempSync(join(tmpdir(), 'kiln-train-'));
let dirs = 0;
const freshDir = (): string => join(root, `run-${dirs++}`);
let trainData: TokenDataset;
let valData: TokenDataset;

beforeAll(async () => {
  const cacheDir = join(root, 'cache');
  trainData = TokenDataset.open(await buildShards(corpus(80, 1), charTokenizer, { cacheDir, eos: V - 1 }));
  valData = TokenDataset.open(await buildShards(corpus(12, 2), charTokenizer, { cacheDir, eos: V - 1 }));
});
afterAll(() => {
  trainData?.close();
  valData?.close();
  rmSync(root, { recursive: true, force: true });
});

const T = 16;
const B = 8;

/** A micro GPT with AdamW (decay groups) and warm-up + cosine over 20 steps, all from one seed. */
function setup(opts: { seed?: number; lr?: number; totalSteps?: number } = {}) {
  const lr = opts.lr ?? 3e-3;
  const generator = new Generator(opts.seed ?? 7);
  const model = new GPT({ vocabSize: V, blockSize: T, nLayer: 2, nHead: 2, nEmbd: 32 }, { backend: 'ref', generator });
  const optimizer = new AdamW(weightDecayGroups(model, 0.1), { lr, betas: [0.9, 0.99] });
  const scheduler = new LRScheduler(optimizer, cosineLr({ warmupSteps: 3, totalSteps: opts.totalSteps ?? 20, minLr: lr / 10 }));
  return { model, optimizer, scheduler, generator };
}

const common = () => ({ data: { train: trainData, val: valData }, batchSize: B, blockSize: T, clip: 1 });

const paramValues = async (m: GPT): Promise<number[][]> => Promise.all(m.parameters().map(async (p) => Array.from(await p.data())));

// ---- early stopping ----------------------------------------------------------------------------

describe('EarlyStopping', () => {
  it("follows Keras' rule: an improvement must beat best − minDelta; stop after `patience` evaluations without one", () => {
    // worked by hand: best 1.0; 0.95 ≥ 0.9 (wait 1); 0.85 < 0.9 (best, wait 0); 0.86 (wait 1); 0.80 ≥ 0.75 (wait 2: stop)
    const s = new EarlyStopping({ patience: 2, minDelta: 0.1 });
    expect([1.0, 0.95, 0.85, 0.86, 0.8].map((v, i) => s.update(v, (i + 1) * 10))).toEqual([false, false, false, false, true]);
    expect(s.best).toBe(0.85);
    expect(s.bestStep).toBe(30);
    expect(s.reason).toBe('patience');
    expect(s.update(0.1)).toBe(true); // stays stopped
    s.reset();
    expect(s.stopped).toBe(false);
    expect(s.best).toBeNull();
  });

  it("in 'max' mode higher is better; equal values are not improvements (minDelta 0)", () => {
    const s = new EarlyStopping({ patience: 2, mode: 'max' });
    expect([0.5, 0.6, 0.6, 0.7, 0.65, 0.7].map((v) => s.update(v))).toEqual([false, false, false, false, false, true]);
    expect(s.best).toBe(0.7);
  });

  it('a NaN or infinite value stops at once, unless stopOnNonFinite is false', () => {
    const s = new EarlyStopping({ patience: 5 });
    s.update(2);
    expect(s.update(NaN)).toBe(true);
    expect(s.reason).toBe('non-finite');
    const lenient = new EarlyStopping({ patience: 2, stopOnNonFinite: false });
    expect([2, Infinity, NaN].map((v) => lenient.update(v))).toEqual([false, false, true]);
    expect(lenient.reason).toBe('patience');
  });

  it('round-trips its state as JSON and rejects bad options', () => {
    const s = new EarlyStopping({ patience: 3 });
    [3, 2, 2.5].forEach((v, i) => s.update(v, i));
    const copy = new EarlyStopping({ patience: 3 });
    copy.loadStateDict(JSON.parse(JSON.stringify(s.stateDict())));
    expect(copy.stateDict()).toEqual(s.stateDict());
    expect([copy.update(2.4), copy.update(2.3)]).toEqual([false, true]);
    expect(() => new EarlyStopping({ patience: 0 })).toThrow(/^EarlyStopping: patience must be an integer ≥ 1, got 0/);
    expect(() => new EarlyStopping({ patience: 1, minDelta: -1 })).toThrow(/minDelta/);
    expect(() => new EarlyStopping({ patience: 1, mode: 'up' as 'min' })).toThrow(/mode/);
    expect(() => copy.loadStateDict({ best: 'x' } as never)).toThrow(/malformed/);
  });
});

// ---- helpers -----------------------------------------------------------------------------------

describe('unigramEntropy and weightDecayGroups', () => {
  it('unigramEntropy is −Σ p ln p of the token frequencies', () => {
    expect(unigramEntropy([0, 0, 1, 1])).toBeCloseTo(Math.log(2), 15);
    expect(unigramEntropy([5, 5, 5])).toBe(0);
    expect(unigramEntropy(Int32Array.from({ length: 64 }, (_, i) => i % 8))).toBeCloseTo(Math.log(8), 14);
    // p = (1/2, 1/4, 1/4): H = ½ ln 2 + 2·¼ ln 4 = 1.5 ln 2
    expect(unigramEntropy([7, 7, 3, 9])).toBeCloseTo(1.5 * Math.log(2), 15);
    expect(() => unigramEntropy([])).toThrow(/no tokens/);
  });

  it("decays the rank-2 parameters only, with nanoGPT's counts", () => {
    // nanoGPT's configure_optimizers on GPT-2 124M (L = 12, C = 768) prints "num decayed parameter
    // tensors: 50 ... num non-decayed parameter tensors: 98, with 121,344 parameters": 2 + 4L
    // matrices (wte, wpe, c_attn, attn.c_proj, c_fc, mlp.c_proj), 8L + 2 vectors holding 13·L·C + 2C values.
    const count = (L: number, C: number) => ({ decay: 2 + 4 * L, noDecay: 8 * L + 2, noDecayValues: 13 * L * C + 2 * C });
    expect(count(12, 768)).toEqual({ decay: 50, noDecay: 98, noDecayValues: 121344 });
    const model = new GPT({ vocabSize: 40, blockSize: 8, nLayer: 3, nHead: 2, nEmbd: 16 }, { backend: 'ref', generator: new Generator(0) });
    const [decay, noDecay] = weightDecayGroups(model, 0.1);
    const want = count(3, 16);
    expect(decay.params.length).toBe(want.decay);
    expect(noDecay.params.length).toBe(want.noDecay);
    expect(noDecay.params.reduce((n, p) => n + p.size, 0)).toBe(want.noDecayValues);
    expect([decay.weightDecay, noDecay.weightDecay]).toEqual([0.1, 0]);
    expect(decay.params.length + noDecay.params.length).toBe(model.parameters().length);
    expect(() => weightDecayGroups(model, -1)).toThrow(/weightDecay/);
  });
});

// ---- the loop ----------------------------------------------------------------------------------

describe('train', () => {
  it('evaluates every N steps on a fixed spread of validation batches, matching an independent computation', async () => {
    const s = setup();
    const evals: number[] = [];
    const r = await train({ ...s, ...common(), steps: 20, evalEvery: 10, evalBatches: 2, callbacks: { onEval: (e) => void evals.push(e.step) } });
    expect(r.reason).toBe('completed');
    expect(r.step).toBe(20);
    expect(evals).toEqual([10, 20]); // the end evaluation is not repeated at step 20
    expect(r.evals.map((e) => e.step)).toEqual([10, 20]);
    expect(r.history).toHaveLength(20);
    expect(r.history[0]!.lr).toBeCloseTo(3e-3 / 3, 9); // warm-up: base·(t+1)/W at t = 0
    expect(r.perplexity).toBeCloseTo(Math.exp(r.valLoss!), 9);
    // oracle: the 2 × 8 windows spread over the stream (window ⌊j·N/16⌋ of N), read with window(), the loss summed here
    const N = Math.floor((valData.length - 1) / T);
    expect(N).toBeGreaterThan(4 * 2 * B); // a real subset
    const windows = Array.from({ length: 2 * B }, (_, j) => valData.window(Math.floor((j * N) / (2 * B)) * T, T + 1));
    const nllSum = noGrad(() =>
      tidy(() => {
        const x = tensor(Int32Array.from(windows.flatMap((w) => [...w.subarray(0, T)])), [2 * B, T], { backend: 'ref', dtype: 'i32' });
        const y = tensor(Int32Array.from(windows.flatMap((w) => [...w.subarray(1)])), [2 * B, T], { backend: 'ref', dtype: 'i32' });
        s.model.eval();
        const logits = s.model.forward(x).logits;
        s.model.train();
        return crossEntropy(logits, y, { reduction: 'sum' });
      }),
    );
    const sumNll = await nllSum.item();
    nllSum.dispose();
    expect(r.valLoss!).toBeCloseTo(sumNll / (2 * B * T), 5);
    const direct = await evaluate(s.model, valData, { blockSize: T, batchSize: B, maxBatches: 2, backend: 'ref' });
    expect(direct.tokens).toBe(2 * B * T);
    expect(direct.nll).toBeCloseTo(sumNll / (2 * B * T), 5);
    // without maxBatches: every window in order, each target once (the last window shorter)
    const all = await evaluate(s.model, valData, { blockSize: T, batchSize: B, backend: 'ref' });
    expect(all.tokens).toBe(valData.length - 1);
    expect(all.batches).toBe(Math.ceil(N / B) + ((valData.length - 1) % T ? 1 : 0));
    expect(s.model.training).toBe(true); // evaluate restores the mode
  });

  it('writes a checkpoint every N steps and keeps the newest ones; the file restores the model', async () => {
    const dir = freshDir();
    const s = setup();
    const saved: CheckpointInfo[] = [];
    const r = await train({ ...s, ...common(), steps: 12, checkpointEvery: 5, checkpointDir: dir, keepCheckpoints: 2, extra: { note: 'hi' }, callbacks: { onCheckpoint: (c) => void saved.push(c) } });
    expect(saved.map((c) => [c.step, c.reason])).toEqual([
      [5, 'interval'],
      [10, 'interval'],
      [12, 'end'],
    ]);
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([10, 12]);
    expect(r.checkpoint).toBe(saved[2]!.path);
    const fresh = setup({ seed: 99 });
    const loaded = await loadCheckpoint(r.checkpoint!, { model: fresh.model, optimizer: fresh.optimizer, scheduler: fresh.scheduler, generator: fresh.generator, backend: 'ref' });
    expect(loaded.step).toBe(12);
    expect((loaded.extra as { user: unknown }).user).toEqual({ note: 'hi' });
    expect(await paramValues(fresh.model)).toEqual(await paramValues(s.model));
    expect(fresh.generator.getState()).toEqual(s.generator.getState());
  });

  it('resumes from the newest checkpoint and continues exactly as an uninterrupted run', async () => {
    const straight = setup();
    const a = await train({ ...straight, ...common(), steps: 20, evalEvery: 5, evalBatches: 1 });
    const dir = freshDir();
    const first = setup();
    const b1 = await train({ ...first, ...common(), steps: 10, evalEvery: 5, evalBatches: 1, checkpointDir: dir });
    expect(b1.step).toBe(10);
    const second = setup(); // a new process, in effect: fresh model, optimizer, scheduler, generator
    const starts: number[] = [];
    const b2 = await train({ ...second, ...common(), steps: 20, evalEvery: 5, evalBatches: 1, checkpointDir: dir, resume: true, callbacks: { onStart: (i) => void starts.push(i.step) } });
    expect(starts).toEqual([10]);
    expect(b2.startStep).toBe(10);
    expect(b2.resumedFrom).toMatch(/ckpt-00000010\.safetensors$/);
    expect(b2.history.map((h) => h.loss)).toEqual(a.history.map((h) => h.loss)); // steps 1–10 from the checkpoint, 11–20 recomputed
    expect(b2.evals).toEqual(a.evals);
    expect(await paramValues(second.model)).toEqual(await paramValues(straight.model));
    // resuming a finished run trains nothing and writes nothing new
    const third = setup();
    const b3 = await train({ ...third, ...common(), steps: 20, evalEvery: 5, evalBatches: 1, checkpointDir: dir, resume: true });
    expect([b3.startStep, b3.step, b3.tokens]).toEqual([20, 20, 0]);
  });

  it('an aborted signal stops after the current step and saves a checkpoint', async () => {
    const dir = freshDir();
    const s = setup();
    const controller = new AbortController();
    const reasons: string[] = [];
    const cb: TrainCallbacks = {
      onStep: (i) => {
        if (i.step === 7) controller.abort();
      },
      onCheckpoint: (c) => void reasons.push(`${c.step}:${c.reason}`),
    };
    const r = await train({ ...s, ...common(), steps: 50, checkpointDir: dir, signal: controller.signal, callbacks: cb });
    expect(r.reason).toBe('aborted');
    expect(r.step).toBe(7);
    expect(reasons).toEqual(['7:abort']);
    expect(existsSync(join(dir, 'ckpt-00000007.safetensors'))).toBe(true);
  });

  it('stops early when the validation loss stops improving, saves, and stays stopped on resume', async () => {
    // lr 0: the weights never change, so every evaluation gives the same loss (no improvement)
    const dir = freshDir();
    const s = setup({ lr: 0 });
    const ends: string[] = [];
    const r = await train({ ...s, ...common(), steps: 30, evalEvery: 2, evalBatches: 1, checkpointDir: dir, earlyStopping: { patience: 2 }, callbacks: { onEnd: (e) => void ends.push(`${e.step}:${e.reason}`) } });
    expect(r.reason).toBe('early-stopped');
    expect(r.step).toBe(6); // best at 2, no improvement at 4 and 6
    expect(r.evals.map((e) => e.step)).toEqual([2, 4, 6]);
    expect(r.bestStep).toBe(2);
    expect(ends).toEqual(['6:early-stopped']);
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([6]);
    const again = await train({ ...setup({ lr: 0 }), ...common(), steps: 30, evalEvery: 2, evalBatches: 1, checkpointDir: dir, earlyStopping: { patience: 2 }, resume: true });
    expect([again.reason, again.step, again.tokens]).toEqual(['early-stopped', 6, 0]);
  });

  it('gradient accumulation over 2 × 4 sequences equals one step on 8', async () => {
    // batches of 4 starts draw Philox counters 0 and 1, as one batch of 8 does, so the windows are the same
    const run = async (batchSize: number, gradAccum: number): Promise<number[][]> => {
      const generator = new Generator(3);
      const model = new GPT({ vocabSize: V, blockSize: T, nLayer: 2, nHead: 2, nEmbd: 32 }, { backend: 'ref', generator });
      await train({ model, optimizer: new SGD(model.parameters(), { lr: 0.5 }), data: { train: trainData }, steps: 1, batchSize, gradAccum, blockSize: T, generator });
      return await paramValues(model);
    };
    const big = (await run(8, 1)).flat();
    const acc = (await run(4, 2)).flat();
    const init = (await paramValues(new GPT({ vocabSize: V, blockSize: T, nLayer: 2, nHead: 2, nEmbd: 32 }, { backend: 'ref', generator: new Generator(3) }))).flat();
    let diff = 0;
    let moved = 0;
    big.forEach((v, i) => {
      diff = Math.max(diff, Math.abs(v - acc[i]!));
      moved = Math.max(moved, Math.abs(v - init[i]!));
    });
    expect(moved).toBeGreaterThan(1e-3); // the step did something
    expect(diff).toBeLessThan(1e-6);
  });

  it('keeps memory flat across steps, evaluations and checkpoints, and reports throughput', async () => {
    const s = setup();
    const live: Record<number, number> = {};
    const infos: { tps: number; gradNorm?: number }[] = [];
    const r = await train({
      ...s,
      ...common(),
      steps: 24,
      evalEvery: 4,
      evalBatches: 1,
      checkpointEvery: 8,
      checkpointDir: freshDir(),
      callbacks: {
        onStep: (i) => {
          live[i.step] = liveTensors();
          infos.push({ tps: i.tokensPerSecond, gradNorm: i.gradNorm });
        },
      },
    });
    // no growth (live + collected does not move when the collector finalizes older garbage)
    expect(live[24]).toBe(live[4]!);
    expect(live[16]).toBe(live[4]!);
    expect(infos.every((i) => i.tps > 0 && i.gradNorm! > 0)).toBe(true);
    expect(r.tokens).toBe(24 * B * T);
    expect(r.tokensPerSecond).toBeGreaterThan(0);
    expect(r.msPerStep).toBeGreaterThan(0);
  });

  it('rejects inconsistent options with a message naming them', async () => {
    const s = setup();
    await expect(train({ ...s, ...common(), steps: -1 })).rejects.toThrow(/train: steps must be an integer/);
    await expect(train({ ...s, ...common(), steps: 5, checkpointEvery: 2 })).rejects.toThrow(/checkpointEvery needs checkpointDir/);
    await expect(train({ ...s, data: { train: trainData }, batchSize: B, blockSize: T, steps: 5, evalEvery: 2 })).rejects.toThrow(/evalEvery needs data.val/);
    await expect(train({ ...s, ...common(), steps: 5, earlyStopping: { patience: 1 } })).rejects.toThrow(/earlyStopping needs/);
    await expect(train({ ...s, ...common(), steps: 5, blockSize: 10 ** 6 })).rejects.toThrow(/fewer than blockSize/);
    await expect(train({ ...s, ...common(), steps: 5, resume: join(root, 'missing.safetensors') })).rejects.toThrow(/cannot read/);
  });
});

// ---- search ------------------------------------------------------------------------------------

describe('search', () => {
  it('gridConfigs enumerates every combination, the last key fastest', () => {
    expect(gridConfigs({ lr: [1, 2], n: ['a', 'b', 'c'] })).toEqual([
      { lr: 1, n: 'a' },
      { lr: 1, n: 'b' },
      { lr: 1, n: 'c' },
      { lr: 2, n: 'a' },
      { lr: 2, n: 'b' },
      { lr: 2, n: 'c' },
    ]);
    expect(() => gridConfigs({ lr: { type: 'uniform', low: 0, high: 1 } })).toThrow(/grid search needs a list/);
    expect(() => gridConfigs({ lr: [] })).toThrow(/lists no values/);
  });

  it('randomConfigs draws from lists and ranges, the same for the same seed', () => {
    const space = {
      lr: { type: 'logUniform', low: 1e-4, high: 1e-1 },
      wd: { type: 'uniform', low: 0, high: 0.2 },
      layers: { type: 'int', low: 1, high: 3 },
      act: ['gelu', 'relu'],
    } as const;
    const a = randomConfigs(space, 200, 5);
    expect(randomConfigs(space, 200, 5)).toEqual(a);
    expect(randomConfigs(space, 200, 6)).not.toEqual(a);
    for (const c of a) {
      expect(c.lr).toBeGreaterThanOrEqual(1e-4);
      expect(c.lr).toBeLessThan(1e-1);
      expect(c.wd).toBeGreaterThanOrEqual(0);
      expect(c.wd).toBeLessThan(0.2);
      expect([1, 2, 3]).toContain(c.layers);
      expect(['gelu', 'relu']).toContain(c.act);
    }
    // every integer and every choice turns up, and the log-uniform draws spread over the decades
    expect(new Set(a.map((c) => c.layers)).size).toBe(3);
    expect(new Set(a.map((c) => c.act)).size).toBe(2);
    const decades = new Set(a.map((c) => Math.floor(Math.log10(c.lr as number))));
    expect(decades).toEqual(new Set([-4, -3, -2]));
  });

  it('ranks trials by value, early-stopped trials ranked by what they reached, failures last', async () => {
    // trial value: the final point of a curve that falls to (lr − 0.01)² ·1e4 + 1; lr 0.3 plateaus at once and is stopped
    const result = await search({
      space: { lr: [0.03, 0.01, 0.3, -1, 0.02] },
      earlyStopping: { patience: 2 },
      metricName: 'val loss',
      run: (cfg, ctx) => {
        const lr = cfg.lr as number;
        if (lr < 0) throw new Error('negative learning rate');
        const floor = (lr - 0.01) ** 2 * 1e4 + 1;
        let steps = 0;
        for (let k = 1; k <= 10; k++) {
          steps = k;
          const v = lr > 0.1 ? floor : floor + 10 / k;
          if (ctx.report(v, k)) break;
        }
        return { value: Math.min(...(lr > 0.1 ? [floor] : [floor + 10 / steps])), steps };
      },
    });
    expect(result.trials.map((t) => t.status)).toEqual(['ok', 'ok', 'early-stopped', 'failed', 'ok']);
    expect(result.trials[2]!.steps).toBe(3); // best at 1, no improvement at 2 and 3
    expect(result.ranked.map((t) => t.config.lr)).toEqual([0.01, 0.02, 0.03, 0.3, -1]);
    expect(result.best!.config.lr).toBe(0.01);
    expect(result.trials[3]!.error).toBe('negative learning rate');
    const lines = result.table.split('\n');
    expect(lines[0]).toBe('| rank | trial | lr | val loss | status | steps | seconds |');
    expect(lines).toHaveLength(2 + 5);
    expect(lines[2]).toMatch(/^\| 1 \| 1 \| 0\.01 \| 2 \| ok \| 10 \|/);
    expect(lines[6]).toMatch(/^\| 5 \| 3 \| -1 \| — \| failed \(negative learning rate\) \|/);
  });

  it("in 'max' mode the highest value ranks first; an aborted search stops launching trials", async () => {
    const r = await search({ space: { x: [1, 3, 2] }, mode: 'max', run: (c) => c.x as number });
    expect(r.ranked.map((t) => t.value)).toEqual([3, 2, 1]);
    const controller = new AbortController();
    const r2 = await search({
      space: { x: [1, 2, 3] },
      signal: controller.signal,
      run: (c, ctx) => {
        controller.abort();
        expect(ctx.signal.aborted).toBe(true); // the running trial sees the abort
        return c.x as number;
      },
    });
    expect(r2.aborted).toBe(true);
    expect(r2.trials.map((t) => t.status)).toEqual(['aborted']);
    await expect(search({ space: { x: [1] }, strategy: 'random', run: () => 1 })).rejects.toThrow(/needs trials/);
  });

  it('runs short trainings through the loop: the learning rate that trains ranks first, lr 0 stops early', async () => {
    const result = await search({
      space: { lr: [0, 3e-3] },
      earlyStopping: { patience: 2 },
      run: (cfg, ctx) => {
        const s = setup({ lr: cfg.lr as number });
        return train({ ...s, ...common(), steps: 16, evalEvery: 2, evalBatches: 1, earlyStopping: ctx.earlyStopping!, signal: ctx.signal });
      },
    });
    expect(result.trials.map((t) => [t.status, t.steps])).toEqual([
      ['early-stopped', 6],
      ['ok', 16],
    ]);
    expect(result.best!.config.lr).toBe(3e-3);
    expect(result.ranked[1]!.value!).toBeGreaterThan(result.ranked[0]!.value!);
  });
});
