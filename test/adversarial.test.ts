/**
 * Adversarial training on embeddings (src/train/adversarial.ts, GPT.forward's embeddingDelta):
 * the gradient through the new embedding path against central differences in f64, FGM and PGD
 * perturbations that raise the loss and stay in the ε-ball (per sequence and per token), the
 * parameters' gradients left alone by the ascent, and a tiny GPT trained with FGM and with PGD
 * through `train()` converging on a small synthetic corpus. Runs on `ref`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdamW, GPT, Generator, TokenDataset, buildShards, noGrad, norm, randn, tensor, tidy, train, type Tensor, type TokenizerLike } from '../src/index.js';
import { embeddingPerturbation } from '../src/train/adversarial.js';

const V = 10;
const T = 8;
const CFG = { vocabSize: V, blockSize: T, nLayer: 1, nHead: 2, nEmbd: 16 };
const ids = (seed: number, b: number, t: number): Tensor => {
  let s = seed;
  return tensor(
    Array.from({ length: b * t }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return Math.floor(s / 65536) % V;
    }),
    [b, t],
    { dtype: 'i32', backend: 'ref' },
  );
};

const lossAt = async (m: GPT, x: Tensor, y: Tensor, d?: Tensor): Promise<number> => {
  const l = tidy(() => noGrad(() => m.forward(x, y, d ? { embeddingDelta: d } : {}).loss!));
  const v = await l.item();
  l.dispose();
  return v;
};

describe('GPT.forward embeddingDelta', () => {
  it('is added to the token embeddings: its gradient matches central differences in f64', async () => {
    const m = new GPT({ ...CFG, nEmbd: 8, vocabSize: 6, blockSize: 4 }, { backend: 'ref', dtype: 'f64', generator: new Generator(3) });
    const x = tensor([1, 4, 2, 5, 0, 3], [2, 3], { dtype: 'i32', backend: 'ref' });
    const y = tensor([4, 2, 5, 0, 3, 1], [2, 3], { dtype: 'i32', backend: 'ref' });
    const base = Array.from(await randn([2, 3, 8], { backend: 'ref', dtype: 'f64', generator: new Generator(5) }).mul(0.3).data());
    const mk = (v: number[], grad = false): Tensor => tensor(Float64Array.from(v), [2, 3, 8], { backend: 'ref', dtype: 'f64', requiresGrad: grad });
    const d = mk(base, true);
    tidy(() => m.forward(x, y, { embeddingDelta: d }).loss!.backward());
    const analytic = Array.from(await d.grad!.data());
    for (let j = 0; j < base.length; j++) {
      const h = 1e-6;
      const plus = [...base];
      const minus = [...base];
      plus[j]! += h;
      minus[j]! -= h;
      const [dp, dm] = [mk(plus), mk(minus)];
      const numeric = ((await lossAt(m, x, y, dp)) - (await lossAt(m, x, y, dm))) / (plus[j]! - minus[j]!);
      dp.dispose();
      dm.dispose();
      expect(Math.abs(analytic[j]! - numeric), `d loss / d delta[${j}]: ${analytic[j]} vs ${numeric}`).toBeLessThan(1e-7 + 1e-6 * Math.abs(numeric));
    }
    // a zero delta changes nothing; the parameters got their gradients through the same graph
    const zero = mk(Array(48).fill(0));
    expect(await lossAt(m, x, y, zero)).toBe(await lossAt(m, x, y));
    expect(m.transformer.wte.weight.grad).not.toBeNull();
    [d, zero, x, y].forEach((t) => t.dispose());
    m.dispose();
  });

  it('refuses a delta of the wrong shape or dtype', () => {
    const m = new GPT(CFG, { backend: 'ref', generator: new Generator(1) });
    const x = ids(1, 2, 4);
    const bad = tensor(Array(2 * 4 * 8).fill(0), [2, 4, 8], { backend: 'ref' });
    expect(() => m.forward(x, null, { embeddingDelta: bad })).toThrow(/^GPT\.forward: embeddingDelta must be \[2, 4, 16\] floating .*\[2,4,8\] f32/);
    expect(() => m.forward(x, null, { embeddingDelta: 5 as unknown as Tensor })).toThrow(/^GPT\.forward: embeddingDelta must be .*5/);
    [x, bad].forEach((t) => t.dispose());
    m.dispose();
  });
});

describe('embeddingPerturbation', () => {
  it('FGM and PGD raise the loss and stay in the ε-ball (per sequence and per token); parameter gradients are untouched', async () => {
    const m = new GPT(CFG, { backend: 'ref', generator: new Generator(2) });
    const x = ids(3, 4, T);
    const y = ids(4, 4, T);
    const clean = await lossAt(m, x, y);
    const eps = 0.5;
    const report: string[] = [`clean ${clean.toFixed(4)}`];
    for (const scope of ['sequence', 'token'] as const)
      for (const o of [{ method: 'fgm' as const }, { method: 'pgd' as const, steps: 3 }]) {
        const r = embeddingPerturbation(m, x, y, { ...o, epsilon: eps, scope });
        expect(r.shape).toEqual([4, T, 16]);
        expect(r.requiresGrad).toBe(false);
        const n = norm(r, 2, scope === 'sequence' ? [1, 2] : [2]);
        const norms = Array.from(await n.data());
        n.dispose();
        for (const v of norms) expect(v).toBeLessThanOrEqual(eps * (1 + 1e-5));
        // FGM's step is exactly ε long; PGD's last projection leaves it on the sphere when α is large
        if (o.method === 'fgm') for (const v of norms) expect(v).toBeCloseTo(eps, 4);
        const adv = await lossAt(m, x, y, r);
        report.push(`${o.method}/${scope} ${adv.toFixed(4)}`);
        expect(adv).toBeGreaterThan(clean);
        // a random direction of the same size raises the loss less
        const rand = tidy(() => {
          const g = randn(r.shape, { backend: 'ref', generator: new Generator(7) });
          return g.mul(eps).div(norm(g, 2, scope === 'sequence' ? [1, 2] : [2], true));
        });
        expect(adv).toBeGreaterThan(await lossAt(m, x, y, rand));
        rand.dispose();
        r.dispose();
      }
    console.log(`[adversarial] loss on one batch, epsilon ${eps}: ${report.join(', ')}`);
    for (const p of m.parameters()) expect(p.grad).toBeNull();
    [x, y].forEach((t) => t.dispose());
    m.dispose();
  });

  it('checks its options', () => {
    const m = new GPT(CFG, { backend: 'ref', generator: new Generator(2) });
    const x = ids(3, 2, 4);
    expect(() => embeddingPerturbation(m, x, x, { method: 'fgm', epsilon: 1, steps: 3 })).toThrow(/^embeddingPerturbation: opts\.steps is for method 'pgd'/);
    expect(() => embeddingPerturbation(m, x, x, { method: 'pgd', epsilon: 0 })).toThrow(/^embeddingPerturbation: opts\.epsilon .*0/);
    expect(() => embeddingPerturbation(m, x, x, { method: 'xgm' as 'fgm', epsilon: 1 })).toThrow(/^embeddingPerturbation: .*xgm/);
    x.dispose();
    m.dispose();
  });
});

// ---- training ----------------------------------------------------------------------------------

const tok: TokenizerLike = { vocabSize: V, encode: (t) => Array.from(t, (c) => 'abcdefgh '.indexOf(c) + 1), fingerprint: () => 'adversarial-test' };
const root = mkdtempSync(join(tmpdir(), 'kiln-adv-'));
let data: TokenDataset;
beforeAll(async () => {
  // a periodic corpus: easy to learn, so the loss must fall far below ln V
  data = TokenDataset.open(await buildShards(['abcdefgh hgfedcba '.repeat(40)], tok, { cacheDir: join(root, 'c') }));
});
afterAll(() => {
  data?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('train({ adversarial })', () => {
  it('a tiny GPT trained with FGM and with PGD still converges', async () => {
    // ε is relative to the embeddings' scale: a sequence's [8, 16] GPT-2-initialised embeddings
    // have norm ≈ 0.02·√128 ≈ 0.23, so ε = 0.1 is a real but not overwhelming perturbation
    // (at ε = 0.5, PGD keeps this model near ln V for 100 steps)
    const results: string[] = [];
    for (const adversarial of [undefined, { method: 'fgm' as const, epsilon: 0.1 }, { method: 'pgd' as const, epsilon: 0.1, steps: 2 }]) {
      const generator = new Generator(4);
      const model = new GPT(CFG, { backend: 'ref', generator });
      const res = await train({
        model,
        optimizer: new AdamW(model.parameters(), { lr: 1e-2 }),
        data: { train: data },
        steps: 100,
        batchSize: 8,
        blockSize: T,
        generator,
        ...(adversarial ? { adversarial } : {}),
      });
      const first = res.history[0]!.loss;
      const last = res.history.slice(-5).reduce((a, h) => a + h.loss, 0) / 5;
      results.push(`${adversarial?.method ?? 'none'} ${first.toFixed(3)} → ${last.toFixed(3)}`);
      expect(first).toBeGreaterThan(2);
      expect(last).toBeLessThan(0.5 * first);
      for (const p of model.parameters()) expect(p.requiresGrad).toBe(true);
      model.dispose();
    }
    console.log(`[adversarial] train loss (first step → mean of last 5), 100 steps: ${results.join('; ')}`);
  });

  it('refuses bad adversarial options and a model without embeddingDelta', async () => {
    const generator = new Generator(4);
    const model = new GPT(CFG, { backend: 'ref', generator });
    const base = { model, optimizer: new AdamW(model.parameters(), { lr: 1e-2 }), data: { train: data }, steps: 1, batchSize: 2, blockSize: T, generator };
    await expect(train({ ...base, adversarial: { method: 'pgd', epsilon: -1 } })).rejects.toThrow(/^train: adversarial\.epsilon .*-1/);
    await expect(train({ ...base, adversarial: { method: 'fgm', epsilon: 1, alpha: 1 } })).rejects.toThrow(/^train: adversarial\.alpha is for method 'pgd'/);
    await expect(train({ ...base, adversarial: { method: 'pgd', epsilon: 1, norm: 2 } as never })).rejects.toThrow(/^train: .*norm/);
    const plain = { forward: model.forward.bind(model), parameters: () => model.parameters(), train: () => {}, training: true, stateDict: () => model.stateDict(), loadStateDict: () => {} };
    await expect(train({ ...base, model: plain, adversarial: { method: 'fgm', epsilon: 1 } })).rejects.toThrow(/^train: adversarial needs a model with config\.nEmbd/);
    model.dispose();
  });
});
