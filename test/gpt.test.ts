/**
 * The GPT model: Hugging Face / nanoGPT parameter names, tied head, parameter count, GPT-2
 * initialisation statistics and seeding, a tiny model overfitting a batch with a constant live
 * tensor count, gradient checks in f64 (learned positions and RoPE) by central differences,
 * RoPE's relative-position invariance, the key/value cache against the uncached forward, and
 * generation (greedy, top-k = 1, seeded sampling, top-p, windowing past blockSize, eos).
 */
import { expect, it } from 'vitest';
import {
  AdamW,
  Generator,
  keep,
  matmul,
  noGrad,
  randint,
  randn,
  tensor,
  tidy,
  zerosLike,
  type Tensor,
} from '../src/index.js';
import { GPT, KVCache, RotaryEmbedding, generate, residualStd, sampleLogits, type GPTConfig, type GPTOutput } from '../src/nn/index.js';
import { describeBackends, expectClose, floatDtype, rng, stores, tol, values, liveTensors } from './harness.js';

const TINY: GPTConfig = { vocabSize: 13, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 8 };

/** The nanoGPT / Hugging Face GPT-2 names of an L-layer model with biases and learned positions. */
function gpt2Names(nLayer: number): string[] {
  const block = (i: number): string[] =>
    ['ln_1.weight', 'ln_1.bias', 'attn.c_attn.weight', 'attn.c_attn.bias', 'attn.c_proj.weight', 'attn.c_proj.bias', 'ln_2.weight', 'ln_2.bias', 'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight', 'mlp.c_proj.bias'].map(
      (n) => `transformer.h.${i}.${n}`,
    );
  return ['transformer.wte.weight', 'transformer.wpe.weight', ...Array.from({ length: nLayer }, (_, i) => block(i)).flat(), 'transformer.ln_f.weight', 'transformer.ln_f.bias'];
}

/** Population standard deviation and mean of a list. */
function stats(xs: ArrayLike<number>): { mean: number; std: number } {
  const a = Array.from(xs);
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  return { mean, std: Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length) };
}

describeBackends('GPT', (backend) => {
  const ids = (rows: number[][]): Tensor => tensor(rows, { backend, dtype: 'i32' });
  const model = (config: Partial<GPTConfig> = {}, seed = 0, dtype: 'f32' | 'f64' = 'f32'): GPT =>
    new GPT({ ...TINY, ...config }, { backend, dtype, generator: new Generator(seed) });
  const randomIds = (b: number, t: number, v: number, seed: number): Tensor => randint(0, v, [b, t], { backend, generator: new Generator(seed) });

  it('names parameters as Hugging Face GPT-2 / nanoGPT, with the tied lm_head listed once', () => {
    const m = model();
    expect(m.namedParameters().map(([n]) => n)).toEqual(gpt2Names(2));
    expect(m.lm_head.weight).toBe(m.transformer.wte.weight);
    // the state dict has the tied entry under both names, as PyTorch's
    const sd = m.stateDict();
    expect(Object.keys(sd)).toEqual([...gpt2Names(2), 'lm_head.weight']);
    expect(sd['lm_head.weight']).toBe(sd['transformer.wte.weight']);
    const shapes = Object.fromEntries(m.namedParameters().map(([n, p]) => [n, p.shape]));
    expect(shapes['transformer.wte.weight']).toEqual([13, 8]);
    expect(shapes['transformer.wpe.weight']).toEqual([8, 8]);
    expect(shapes['transformer.h.1.attn.c_attn.weight']).toEqual([24, 8]);
    expect(shapes['transformer.h.1.mlp.c_proj.weight']).toEqual([8, 32]);
  });

  it('variants: no biases, RoPE (no wpe, non-persistent tables), untied head', () => {
    const names = model({ bias: false, rope: true, tiedHead: false }).namedParameters().map(([n]) => n);
    expect(names).toEqual([
      'transformer.wte.weight',
      ...[0, 1].flatMap((i) => ['ln_1.weight', 'attn.c_attn.weight', 'attn.c_proj.weight', 'ln_2.weight', 'mlp.c_fc.weight', 'mlp.c_proj.weight'].map((n) => `transformer.h.${i}.${n}`)),
      'transformer.ln_f.weight',
      'lm_head.weight',
    ]);
    const rope = model({ rope: true });
    expect(rope.transformer.wpe).toBeNull();
    expect(rope.namedBuffers().map(([n]) => n)).toEqual(['transformer.h.0.attn.rotary.cos', 'transformer.h.0.attn.rotary.sin', 'transformer.h.1.attn.rotary.cos', 'transformer.h.1.attn.rotary.sin']);
    expect(Object.keys(rope.stateDict()).some((k) => k.includes('rotary'))).toBe(false);
    const untied = model({ tiedHead: false });
    expect(untied.lm_head.weight).not.toBe(untied.transformer.wte.weight);
  });

  it('loads a state dict without the tied lm_head.weight (as Hugging Face files store it) in strict mode', async () => {
    const a = model({}, 1);
    const b = model({}, 2);
    const sd = { ...a.stateDict() };
    delete sd['lm_head.weight'];
    expect(b.loadStateDict(sd)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(await values(b.lm_head.weight)).toEqual(await values(a.transformer.wte.weight));
    expect(b.lm_head.weight).toBe(b.transformer.wte.weight);
    const untied = model({ tiedHead: false });
    expect(() => untied.loadStateDict(sd)).toThrow(/GPT.loadStateDict: missing keys: lm_head.weight/);
    const idx = ids([[1, 2]]);
    const out: GPTOutput = b.call(idx);
    expect(await values(out.logits)).toEqual(await values(a.forward(idx).logits));
  });

  it('the parameter count follows the GPT-2 formula V·C + T·C + L·(12·C² + 13·C) + 2·C (tied)', () => {
    const cfg = { vocabSize: 101, blockSize: 32, nLayer: 3, nHead: 4, nEmbd: 48 };
    const [V, T, L, C] = [cfg.vocabSize, cfg.blockSize, cfg.nLayer, cfg.nEmbd];
    const m = model(cfg);
    expect(m.numParameters()).toBe(V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C);
    expect(model({ ...cfg, tiedHead: false }).numParameters()).toBe(2 * V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C);
    expect(model({ ...cfg, rope: true }).numParameters()).toBe(V * C + L * (12 * C * C + 13 * C) + 2 * C);
    // GPT-2 small (124M) by the same formula, without allocating it
    expect(50257 * 768 + 1024 * 768 + 12 * (12 * 768 * 768 + 13 * 768) + 2 * 768).toBe(124439808);
  });

  it('initialises as GPT-2: N(0, 0.02) weights, residual projections 0.02/√(2L), zero biases, unit norms', async () => {
    const L = 4;
    const m = model({ vocabSize: 512, blockSize: 64, nLayer: L, nHead: 4, nEmbd: 64 }, 7);
    const near = async (name: string, t: Tensor, std: number): Promise<void> => {
      const s = stats(await values(t));
      expect(Math.abs(s.std / std - 1), `${name} std ${s.std} vs ${std}`).toBeLessThan(0.05);
      expect(Math.abs(s.mean), `${name} mean`).toBeLessThan(std * 0.05);
    };
    const p = Object.fromEntries(m.namedParameters());
    await near('wte', p['transformer.wte.weight']!, 0.02);
    await near('wpe', p['transformer.wpe.weight']!, 0.02);
    await near('c_attn', p['transformer.h.0.attn.c_attn.weight']!, 0.02);
    await near('c_fc', p['transformer.h.3.mlp.c_fc.weight']!, 0.02);
    expect(residualStd(L)).toBeCloseTo(0.02 / Math.sqrt(8), 12);
    await near('attn.c_proj', p['transformer.h.1.attn.c_proj.weight']!, residualStd(L));
    await near('mlp.c_proj', p['transformer.h.2.mlp.c_proj.weight']!, residualStd(L));
    for (const [n, t] of m.namedParameters()) {
      if (n.endsWith('.bias')) expect((await values(t)).every((v) => v === 0), n).toBe(true);
      if (n.includes('ln_') && n.endsWith('.weight')) expect((await values(t)).every((v) => v === 1), n).toBe(true);
    }
  });

  it('one seed gives one model; another seed another', async () => {
    const a = model({}, 11).stateDict();
    const b = model({}, 11).stateDict();
    const c = model({}, 12).stateDict();
    for (const k of Object.keys(a)) expect(await values(b[k]!), k).toEqual(await values(a[k]!));
    expect(await values(c['transformer.wte.weight']!)).not.toEqual(await values(a['transformer.wte.weight']!));
  });

  it('forward gives [B, T, V] logits and the mean cross-entropy, honouring ignoreIndex −100', async () => {
    const m = model();
    const idx = randomIds(3, 5, 13, 1);
    const { logits, loss } = m.forward(idx, idx);
    expect(logits.shape).toEqual([3, 5, 13]);
    expect(loss!.shape).toEqual([]);
    expect(Math.abs((await loss!.item()) - Math.log(13))).toBeLessThan(0.3); // near uniform at init
    expect(m.forward(idx).loss).toBeUndefined();
    // ignoring every target but one gives that position's loss
    const t = (await values(idx)).map((v, i) => (i === 4 ? v : -100));
    const one = await m.forward(idx, tensor(t, [3, 5], { backend, dtype: 'i32' })).loss!.item();
    const lp = logits.logSoftmax(-1);
    expect(one).toBeCloseTo(-(await values(lp))[4 * 13 + (await values(idx))[4]!]!, 5);
    expect(m.forward(idx, null, { lastOnly: true }).logits.shape).toEqual([3, 1, 13]);
    expectClose(await values(m.forward(idx, null, { lastOnly: true }).logits), await values(logits.narrow(1, 4, 1)), { rtol: 1e-5, atol: 1e-6 });
  });

  it('validates its config and inputs', () => {
    expect(() => model({ nEmbd: 10, nHead: 4 })).toThrow(/GPT: nEmbd \(10\) must be divisible by nHead \(4\)/);
    expect(() => model({ nLayer: 0 })).toThrow(/^GPT: config.nLayer must be an integer ≥ 1, got 0/);
    expect(() => model({ dropout: 1 })).toThrow(/^GPT: config.dropout must be a number in \[0, 1\), got 1/);
    expect(() => model({ nEmbd: 6, nHead: 2, rope: true })).toThrow(/rope needs an even head size/);
    const m = model();
    expect(() => m.forward(tensor([[1, 2]], { backend }))).toThrow(/GPT.forward: idx must be \[B, T\] i32 token ids, got \[1,2\] f32/);
    expect(() => m.forward(randomIds(1, 9, 13, 1))).toThrow(/GPT.forward: 9 positions exceed blockSize 8/);
    expect(() => m.forward(ids([[1, 2]]), ids([[1, 2, 3]]))).toThrow(/GPT.forward: targets \[1,3\] must match idx \[1,2\]/);
    expect(() => m.forward(ids([[1, 2]]), ids([[1, 2]]), { lastOnly: true })).toThrow(/lastOnly/);
    const cache = new KVCache(2);
    m.forward(randomIds(1, 6, 13, 2), null, { cache });
    expect(() => m.forward(randomIds(1, 3, 13, 3), null, { cache })).toThrow(/GPT.forward: 3 positions after 6 cached exceed blockSize 8/);
    expect(() => m.forward(ids([[1]]), null, { cache: new KVCache(3) })).toThrow(/the cache has 3 layers, the model 2/);
    cache.dispose();
  });

  it('dropout follows train()/eval()', async () => {
    const m = model({ dropout: 0.5 });
    const idx = randomIds(2, 6, 13, 1);
    const run = async (): Promise<number[]> => {
      const logits = tidy(() => m.forward(idx).logits);
      const v = await values(logits);
      logits.dispose();
      return v;
    };
    expect(await run()).not.toEqual(await run());
    m.eval();
    expect(await run()).toEqual(await run());
    m.train();
    expect(m.transformer.h.at(1).attn.resid_dropout.training).toBe(true);
  });

  it('freezing the embeddings leaves them without gradients while the rest trains', () => {
    const m = model();
    m.freeze('transformer.wte', 'transformer.wpe');
    const idx = randomIds(2, 6, 13, 1);
    tidy(() => m.forward(idx, idx).loss!.backward());
    for (const [n, p] of m.namedParameters()) expect(p.grad === null, n).toBe(n.includes('wte') || n.includes('wpe'));
    m.zeroGrad();
    expect(m.parameters().every((p) => p.grad === null)).toBe(true);
  });

  it('a tiny GPT overfits a fixed batch in 100 Adam steps, with a constant live tensor count', async () => {
    const m = model({ vocabSize: 16, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 32 }, 3);
    const x = randomIds(4, 8, 16, 10);
    const y = randomIds(4, 8, 16, 11);
    const ps = m.parameters();
    const [b1, b2, lr, eps] = [0.9, 0.99, 1e-2, 1e-8];
    const mom = ps.map((p) => keep(zerosLike(p)));
    const vel = ps.map((p) => keep(zerosLike(p)));
    const losses: number[] = [];
    const counts: number[] = [];
    for (let step = 1; step <= 100; step++) {
      // the loss leaves the scope to be read outside it, and is disposed before counting
      const loss = tidy(() => {
        const { loss } = m.forward(x, y);
        loss!.backward();
        noGrad(() =>
          ps.forEach((p, i) => {
            const g = p.grad!;
            // m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= lr·m̂/(√v̂ + ε)
            mom[i]!.copy_(mom[i]!.mul(b1).add(g.mul(1 - b1)));
            vel[i]!.copy_(vel[i]!.mul(b2).add(g.mul(g).mul(1 - b2)));
            const mh = mom[i]!.div(1 - b1 ** step);
            const vh = vel[i]!.div(1 - b2 ** step);
            p.copy_(p.sub(mh.mul(lr).div(vh.sqrt().add(eps))));
          }),
        );
        m.zeroGrad();
        return loss!;
      });
      losses.push(await loss.item());
      loss.dispose();
      counts.push(liveTensors());
    }
    expect(losses[0]).toBeGreaterThan(2);
    expect(losses[99]).toBeLessThan(0.2);
    // no growth: the count never rises above step 1's (it may fall when the garbage collector
    // finalizes tensors that earlier tests left undisposed)
    expect(Math.max(...counts.slice(1)), `live tensors per step: ${counts.join(', ')}`).toBeLessThanOrEqual(counts[1]!);
    expect(counts[99]).toBeLessThanOrEqual(counts[0]!);
    for (const t of [...mom, ...vel]) t.dispose();
  });

  it('plain SGD (p ← p − lr·g under noGrad) lowers the loss too', async () => {
    const m = model({}, 4);
    const x = randomIds(2, 8, 13, 1);
    const step = async (): Promise<number> => {
      const loss = tidy(() => {
        const { loss } = m.forward(x, x);
        loss!.backward();
        noGrad(() => m.parameters().forEach((p) => p.copy_(p.sub(p.grad!.mul(0.5)))));
        m.zeroGrad();
        return loss!;
      });
      const v = await loss.item();
      loss.dispose();
      return v;
    };
    const first = await step();
    let last = first;
    for (let i = 0; i < 30; i++) last = await step();
    expect(last).toBeLessThan(first - 0.3);
  });

  /** Central differences of the loss on random entries of every parameter, against backward. */
  async function gradCheck(config: Partial<GPTConfig>, seed: number): Promise<void> {
    const m = model(config, seed, 'f64');
    const v = m.config.vocabSize;
    const idx = randomIds(2, 5, v, seed + 1);
    const tgt = (await values(randomIds(2, 5, v, seed + 2))).map((t, i) => (i === 3 ? -100 : t));
    const targets = tensor(tgt, [2, 5], { backend, dtype: 'i32' });
    const lossAt = async (): Promise<number> => {
      const loss = tidy(() => noGrad(() => m.forward(idx, targets).loss!));
      const value = await loss.item();
      loss.dispose();
      return value;
    };
    tidy(() => m.forward(idx, targets).loss!.backward());
    const r = rng(seed);
    const h = 1e-5;
    let checked = 0;
    for (const [name, p] of m.namedParameters()) {
      const grad = await values(p.grad!);
      const data = Float64Array.from(await values(p));
      for (let k = 0; k < 3; k++) {
        const i = Math.floor(r() * p.size);
        const set = (x: number): void => {
          data[i] = x;
          noGrad(() => tidy(() => p.copy_(tensor(data, p.shape as number[], { backend, dtype: 'f64' }))));
        };
        const x0 = data[i]!;
        set(x0 + h);
        const up = await lossAt();
        set(x0 - h);
        const down = await lossAt();
        set(x0);
        const numeric = (up - down) / (2 * h);
        expect(Math.abs(numeric - grad[i]!), `${name}[${i}]: numeric ${numeric}, backward ${grad[i]}`).toBeLessThan(1e-8 + 1e-6 * Math.abs(numeric));
        checked++;
      }
    }
    expect(checked).toBe(3 * m.namedParameters().length);
  }

  // central differences need f64: a backend without it skips them, saying so
  it.skipIf(!stores(backend, 'f64'))('gradient check of a tiny GPT in f64 (learned positions, tied head)', async () => {
    await gradCheck({ vocabSize: 7, blockSize: 6, nLayer: 2, nHead: 2, nEmbd: 8 }, 21);
  });

  it.skipIf(!stores(backend, 'f64'))('gradient check of a tiny RoPE GPT in f64 (no biases, untied head)', async () => {
    await gradCheck({ vocabSize: 7, blockSize: 6, nLayer: 1, nHead: 2, nEmbd: 8, rope: true, bias: false, tiedHead: false }, 22);
  });

  it.skipIf(!stores(backend, 'f64'))('gradient check of a tiny GPT in f64 with a sliding window and grouped-query heads', async () => {
    await gradCheck({ vocabSize: 7, blockSize: 6, nLayer: 1, nHead: 4, nEmbd: 8, kvHeads: 2, window: 2 }, 23);
  });

  // ---- sliding window and grouped-query attention ---------------------------------------------

  const GQA: Partial<GPTConfig> = { vocabSize: 16, blockSize: 12, nLayer: 2, nHead: 4, nEmbd: 16, kvHeads: 2, window: 3 };

  it('window and kvHeads: config checked, c_attn shrinks to (H + 2·Hkv)·D outputs, the cache keeps Hkv heads', () => {
    expect(() => model({ nHead: 2, kvHeads: 3 })).toThrow(/^GPT: config.kvHeads \(3\) must divide config.nHead \(2\)/);
    expect(() => model({ kvHeads: 0 })).toThrow(/^GPT: config.kvHeads must be an integer ≥ 1, got 0/);
    expect(() => model({ window: 0 })).toThrow(/^GPT: config.window .*0/);
    expect(() => model({ window: 1.5 })).toThrow(/^GPT: config.window .*1\.5/);
    const m = model(GQA);
    expect(m.config.kvHeads).toBe(2);
    expect(m.config.window).toBe(3);
    expect(model().config).toMatchObject({ kvHeads: 2, window: null });
    // D = 4: q 4 heads, k and v 2 each
    expect(m.transformer.h.at(0).attn.c_attn.weight.shape).toEqual([(4 + 2 * 2) * 4, 16]);
    const cache = new KVCache(2);
    tidy(() => m.forward(randomIds(3, 5, 16, 1), null, { cache }));
    expect(cache.layers[1]!.k!.shape).toEqual([3, 5, 2, 4]);
    cache.dispose();
    m.dispose();
  });

  for (const rope of [false, true]) {
    it(`a GPT with window 3 and 2 kv heads for 4 query heads${rope ? ' and RoPE' : ''} trains (loss falls) and generates, the same with and without the cache`, async () => {
      const m = model({ ...GQA, rope }, 13);
      const x = randomIds(4, 12, 16, 20);
      const y = randomIds(4, 12, 16, 21);
      const opt = new AdamW(m.parameters(), { lr: 1e-2 });
      const losses: number[] = [];
      for (let step = 0; step < 15; step++) {
        const loss = tidy(() => {
          const { loss } = m.forward(x, y);
          loss!.backward();
          opt.step();
          opt.zeroGrad();
          return loss!;
        });
        losses.push(await loss.item());
        loss.dispose();
      }
      expect(losses[14]!, `losses ${losses.map((l) => l.toFixed(3)).join(', ')}`).toBeLessThan(losses[0]! * 0.85);
      const prompt = ids([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]);
      const cached = await values(await generate(m, prompt, { maxNewTokens: 6, greedy: true }));
      const uncached = await values(await generate(m, prompt, { maxNewTokens: 6, greedy: true, useCache: false }));
      expect(cached).toEqual(uncached);
      expect(cached.length).toBe(22);
      x.dispose();
      y.dispose();
      m.dispose();
    });
  }

  it('window and kvHeads with dropout and gradientCheckpointing: the recomputed blocks give the same gradients', async () => {
    const x = randomIds(2, 12, 16, 30);
    const y = randomIds(2, 12, 16, 31);
    const run = async (ckpt: boolean): Promise<number[][]> => {
      const m = model({ ...GQA, dropout: 0.2, gradientCheckpointing: ckpt }, 15);
      tidy(() => m.forward(x, y).loss!.backward());
      const out = await Promise.all(m.parameters().map((p) => values(p.grad!)));
      m.dispose();
      return out;
    };
    const [plain, ckpt] = [await run(false), await run(true)];
    plain.forEach((g, i) => expectClose(ckpt[i]!, g, tol('f32'), `parameter ${i}`));
    x.dispose();
    y.dispose();
  });

  it('generate prefills the whole prompt in one forward (causal offset 0), then runs one token per step after the cache', async () => {
    const m = model({ ...GQA, rope: true }, 14);
    const calls: { t: number; cached: number; after: number[] | null }[] = [];
    const forward = m.forward.bind(m);
    m.forward = (idx, targets, opts) => {
      const cached = opts?.cache?.length ?? 0;
      const out = forward(idx, targets, opts);
      calls.push({ t: idx.shape[1]!, cached, after: opts?.cache ? [...opts.cache.layers[0]!.k!.shape] : null });
      return out;
    };
    await generate(m, ids([[1, 2, 3, 4, 5, 6, 7]]), { maxNewTokens: 4, greedy: true });
    // the fourth token needs no forward after it
    expect(calls).toEqual([
      { t: 7, cached: 0, after: [1, 7, 2, 4] },
      { t: 1, cached: 7, after: [1, 8, 2, 4] },
      { t: 1, cached: 8, after: [1, 9, 2, 4] },
      { t: 1, cached: 9, after: [1, 10, 2, 4] },
    ]);
    m.dispose();
  });

  it('RoPE: scores q·k depend only on relative positions, and rotation keeps norms', async () => {
    // in f64, or in f32 (with f32 tolerances) where f64 is not stored
    const dtype = floatDtype(backend);
    const close = dtype === 'f64' ? { rtol: 1e-10, atol: 1e-12 } : tol('f32');
    const rope = new RotaryEmbedding(8, 16, { backend, dtype });
    const q = randn([2, 4, 8], { backend, dtype, generator: new Generator(1) });
    const k = randn([2, 4, 8], { backend, dtype, generator: new Generator(2) });
    const scores = (offset: number): Promise<number[]> => values(matmul(rope.forward(q, offset), rope.forward(k, offset), { transB: true }));
    const base = await scores(0);
    expectClose(await scores(5), base, close);
    expectClose(await scores(12), base, close);
    // at offset 0 the first position is not rotated; norms are kept at every position
    expectClose(await values(rope.forward(q, 3).pow(2).sum(-1)), await values(q.pow(2).sum(-1)), dtype === 'f64' ? { rtol: 1e-12, atol: 1e-12 } : close);
    expect(await values(rope.forward(q, 0).narrow(1, 0, 1))).toEqual(await values(q.narrow(1, 0, 1)));
    expect(() => rope.forward(q, 13)).toThrow(/RotaryEmbedding.forward: positions 13..16 exceed the table of 16/);
    expect(() => new RotaryEmbedding(7, 4)).toThrow(/headDim must be a positive even integer/);
  });

  for (const variant of [{ name: 'learned positions', cfg: {} }, { name: 'RoPE', cfg: { rope: true } }]) {
    it(`KV-cache logits equal the uncached forward (${variant.name})`, async () => {
      const m = model({ ...variant.cfg, blockSize: 10 }, 5).eval();
      const idx = randomIds(2, 10, 13, 6);
      const full = await values(noGrad(() => m.forward(idx).logits)); // [2, 10, 13]
      const cache = new KVCache(2);
      // a prompt of 3, a chunk of 3 after it (masked), then one token at a time
      const chunks = [3, 3, 1, 1, 1, 1];
      let pos = 0;
      for (const n of chunks) {
        const logits = tidy(() => noGrad(() => m.forward(idx.narrow(1, pos, n), null, { cache }).logits));
        const got = await values(logits);
        logits.dispose();
        const want: number[] = [];
        for (let b = 0; b < 2; b++) want.push(...full.slice((b * 10 + pos) * 13, (b * 10 + pos + n) * 13));
        expectClose(got, want, { rtol: 1e-4, atol: 1e-5 }, `positions ${pos}..${pos + n - 1}`);
        pos += n;
        expect(cache.length).toBe(pos);
      }
      const live = liveTensors();
      cache.dispose();
      expect(liveTensors()).toBe(live - 4);
    });
  }

  it('greedy generation is deterministic and follows the argmax of the uncached forward', async () => {
    const m = model({}, 8);
    const prompt = ids([[1, 2, 3], [4, 5, 6]]);
    const out = await generate(m, prompt, { maxNewTokens: 4, greedy: true });
    expect(out.shape).toEqual([2, 7]);
    expect(out.dtype).toBe('i32');
    expect(await values(await generate(m, prompt, { maxNewTokens: 4, greedy: true }))).toEqual(await values(out));
    // the same tokens, one uncached forward per step
    let seq = [[1, 2, 3], [4, 5, 6]];
    for (let s = 0; s < 4; s++) {
      const logits = await values(noGrad(() => m.eval().forward(ids(seq), null, { lastOnly: true }).logits));
      seq = seq.map((r, b) => [...r, sampleLogits(logits.slice(b * 13, (b + 1) * 13), { greedy: true })]);
    }
    expect(await values(out)).toEqual(seq.flat());
    expect(await values(await generate(m, prompt, { maxNewTokens: 4, temperature: 0 }))).toEqual(await values(out));
  });

  it('top-k = 1 equals greedy; the same seed gives the same samples, with or without the cache', async () => {
    const m = model({}, 9);
    const prompt = ids([[1], [2], [3]]);
    const greedy = await values(await generate(m, prompt, { maxNewTokens: 6, greedy: true }));
    expect(await values(await generate(m, prompt, { maxNewTokens: 6, topK: 1, generator: new Generator(1) }))).toEqual(greedy);
    const a = await values(await generate(m, prompt, { maxNewTokens: 6, temperature: 2, generator: new Generator(42) }));
    const b = await values(await generate(m, prompt, { maxNewTokens: 6, temperature: 2, generator: new Generator(42) }));
    const c = await values(await generate(m, prompt, { maxNewTokens: 6, temperature: 2, generator: new Generator(42), useCache: false }));
    const d = await values(await generate(m, prompt, { maxNewTokens: 6, temperature: 2, generator: new Generator(43) }));
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    expect(d).not.toEqual(a);
  });

  it('generation past blockSize slides the window, the same with and without the cache', async () => {
    const m = model({ blockSize: 4 }, 10);
    const prompt = ids([[1, 2, 3]]);
    const out = await values(await generate(m, prompt, { maxNewTokens: 7, topK: 5, generator: new Generator(3) }));
    expect(out.length).toBe(10);
    expect(await values(await generate(m, prompt, { maxNewTokens: 7, topK: 5, generator: new Generator(3), useCache: false }))).toEqual(out);
    // a prompt longer than blockSize is cropped to its last blockSize tokens
    const long = await values(await generate(m, ids([[0, 0, 1, 2, 3, 4]]), { maxNewTokens: 2, greedy: true }));
    const short = await values(await generate(m, ids([[1, 2, 3, 4]]), { maxNewTokens: 2, greedy: true }));
    expect(long.slice(6)).toEqual(short.slice(4));
  });

  it('generate stops at eos, restores the training mode and leaks no tensors', async () => {
    const m = model({}, 12);
    const prompt = ids([[1, 2], [3, 4]]);
    const free = await values(await generate(m, prompt, { maxNewTokens: 6, greedy: true }));
    const eos = free[2]!; // row 0's first new token
    const live = liveTensors();
    const out = await generate(m, prompt, { maxNewTokens: 6, greedy: true, eos });
    expect(liveTensors()).toBe(live + 1);
    expect(m.training).toBe(true);
    const rows = [(await values(out)).slice(0, out.shape[1]), (await values(out)).slice(out.shape[1])];
    expect(rows[0]![2]).toBe(eos);
    // finished rows are padded with eos; generation ends once every row has finished
    expect(rows[0]!.slice(2).every((t) => t === eos)).toBe(true);
    const row1 = free.slice(8);
    const stop = row1.indexOf(eos);
    expect(out.shape[1]).toBe(stop >= 0 ? 2 + stop + 1 : 8);
    await expect(generate(m, prompt, { maxNewTokens: 1, eos: 13 })).rejects.toThrow(/generate: eos must be a token id in \[0, 13\), got 13/);
    await expect(generate(m, tensor([[1]], { backend }), { maxNewTokens: 1 })).rejects.toThrow(/generate: idx must be \[B, T\] i32/);
    await expect(generate(m, prompt, { maxNewTokens: 1, topP: 0 })).rejects.toThrow(/^generate: topP must be a number in \(0, 1\], got 0/);
  });

  it('sampleLogits: temperature, top-k, top-p and the inverse CDF', () => {
    const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)];
    expect(sampleLogits(logits, { greedy: true })).toBe(0);
    expect(sampleLogits([1, 3, 3], { greedy: true })).toBe(1);
    // inverse CDF over [0.5, 0.3, 0.15, 0.05]
    expect([0, 0.49, 0.51, 0.79, 0.81, 0.96].map((u) => sampleLogits(logits, {}, u))).toEqual([0, 0, 1, 1, 2, 3]);
    // top-k = 2 renormalises over [0.5, 0.3]
    expect([0.6, 0.7].map((u) => sampleLogits(logits, { topK: 2 }, u))).toEqual([0, 1]);
    expect(sampleLogits(logits, { topK: 2 }, 0.999)).toBe(1);
    // top-p = 0.75 keeps {0.5, 0.3} (the smallest set reaching 0.75); 0.5 keeps only the first
    expect(sampleLogits(logits, { topP: 0.75 }, 0.999)).toBe(1);
    expect(sampleLogits(logits, { topP: 0.5 }, 0.999)).toBe(0);
    // a low temperature sharpens towards the argmax, a high one flattens
    expect(sampleLogits(logits, { temperature: 0.01 }, 0.999)).toBe(0);
    expect(sampleLogits(logits, { temperature: 100 }, 0.6)).toBe(2);
    expect(() => sampleLogits(logits, { topK: 0 })).toThrow(/^sampleLogits: topK must be an integer ≥ 1, got 0/);
    expect(() => sampleLogits(logits, { temperature: -1 })).toThrow(/^sampleLogits: temperature must be a number ≥ 0, got -1/);
    // no token from logits that are not a distribution, greedy or not
    for (const opts of [{}, { greedy: true }]) {
      expect(() => sampleLogits([NaN, NaN], opts)).toThrow(/^sampleLogits: logit 0 is NaN; the model's output is not a distribution/);
      expect(() => sampleLogits([1, Infinity], opts)).toThrow(/^sampleLogits: logit 1 is Infinity/);
      expect(() => sampleLogits([-Infinity, -Infinity], opts)).toThrow(/^sampleLogits: every logit is −∞; no token can be drawn/);
    }
    expect(sampleLogits([-Infinity, 0], {}, 0.5)).toBe(1);
    expect(() => sampleLogits(logits, {}, 1)).toThrow(/^sampleLogits: u must be a number in \[0, 1\), got 1/);
  });
});
