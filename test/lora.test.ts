/**
 * Parameter-efficient fine-tuning (src/finetune/peft.ts): LoRA on chosen Linear layers and
 * bottleneck adapters between blocks. Each property is shown by its effect: the frozen base is
 * bit for bit untouched by training, the adapted model starts equal to the base, merged outputs
 * equal unmerged ones, the trainable fraction is the formula's, the adapters learn (the loss
 * falls), and what saveAdapters writes loads onto a fresh base and gives the same outputs.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AdamW,
  GPT,
  Generator,
  Linear,
  PEFT_PREFIX,
  applyAdapters,
  applyLoRA,
  crossEntropy,
  loadAdapters,
  loadPeftState,
  loadSafetensors,
  loraLayers,
  mergeLoRA,
  noGrad,
  peftConfig,
  peftStateDict,
  randint,
  randn,
  removeLoRA,
  saveAdapters,
  tidy,
  unmergeLoRA,
  tensor,
  type Tensor,
} from '../src/index.js';
import { describeBackends, expectClose, floatDtype, optimize } from './harness.js';

const V = 40;
const config = { vocabSize: V, blockSize: 16, nLayer: 2, nHead: 4, nEmbd: 32, dropout: 0, bias: true, tiedHead: true };

// GPT-2's initialisation (std 0.02) with the tied embedding scaled to std 0.2: frozen, tiny
// embeddings would cap every logit near 0, leaving adapters nothing to learn (a trained base has
// embeddings of that size)
function model(backend: string, seed = 3): GPT {
  const m = new GPT(config, { backend, generator: new Generator(seed) });
  const wte = m.stateDict()['transformer.wte.weight']!;
  noGrad(() => tidy(() => void wte.copy_(wte.mul(10))));
  return m;
}

async function values(ts: Record<string, Tensor> | Tensor[]): Promise<Map<string, Float64Array>> {
  const out = new Map<string, Float64Array>();
  for (const [k, t] of Object.entries(ts)) out.set(k, Float64Array.from(await t.data()));
  return out;
}

// tokens and their successors (t + 1 mod V): a mapping the adapters can learn in a few steps
async function task(backend: string, seed: number, batch: number): Promise<[Tensor, Tensor]> {
  const idx = randint(0, V, [batch, 16], { backend, generator: new Generator(seed) });
  const next = Array.from(await idx.data(), (t) => (t + 1) % V);
  return [idx, tensor(next, [batch, 16], { dtype: 'i32', backend })];
}

async function logits(m: GPT, idx: Tensor): Promise<Float64Array> {
  const l = tidy(() => noGrad(() => m.forward(idx, null).logits));
  const v = Float64Array.from(await l.data());
  l.dispose();
  return v;
}

// a few AdamW steps on the trainable parameters; returns the losses
function trainSteps(m: GPT, idx: Tensor, tgt: Tensor, steps: number, lr = 5e-2): Promise<number[]> {
  return optimize(new AdamW(m.parameters().filter((p) => p.requiresGrad), { lr, weightDecay: 0 }), steps, () => crossEntropy(m.forward(idx, null).logits, tgt));
}

describeBackends('LoRA', (backend) => {
  const tol = floatDtype(backend) === 'f64' ? { rtol: 1e-6, atol: 1e-6 } : { rtol: 1e-4, atol: 1e-5 };

  it('adapts the named layers, starts equal to the base, trains only r·(in + out) per layer and leaves the base bit for bit untouched', async () => {
    const m = model(backend);
    const [idx, tgt] = await task(backend, 5, 4);
    try {
      const before = await logits(m, idx);
      const base = await values(m.stateDict());
      const names = applyLoRA(m, { rank: 8, alpha: 16, targets: ['c_attn', 'c_proj'], generator: new Generator(9) });
      // c_proj names both the attention's and the MLP's output projection
      expect(names).toEqual(['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.attn.c_attn', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj']);
      const perBlock = 8 * (32 + 96) + 8 * (32 + 32) + 8 * (128 + 32);
      expect(m.numParameters(true)).toBe(2 * perBlock);
      expect(loraLayers(m).map(([n]) => n)).toEqual(names);
      // B starts at zero: the output is the base's, exactly
      expect(await logits(m, idx)).toEqual(before);

      const losses = await trainSteps(m, idx, tgt, 30);
      console.log(`[lora] ${backend}: LoRA losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
      expect(losses[losses.length - 1]!).toBeLessThan(losses[0]! * 0.5);
      const after = await values(m.stateDict());
      for (const [k, v] of base) expect(after.get(k), k).toEqual(v); // every base tensor, bit for bit
      const lora = [...after.keys()].filter((k) => !base.has(k));
      expect(lora).toHaveLength(12);
      for (const k of lora) expect(k).toMatch(/\.lora_[AB]\.weight$/);
      expect(Math.max(...after.get('transformer.h.0.attn.c_attn.lora_B.weight')!.map(Math.abs))).toBeGreaterThan(0);
    } finally {
      m.dispose();
      idx.dispose();
      tgt.dispose();
    }
  });

  it('merged outputs equal unmerged ones; unmerging restores the weight; remove with and without merging', async () => {
    const m = model(backend);
    const idx = randint(0, V, [2, 16], { backend, generator: new Generator(6) });
    try {
      applyLoRA(m, { rank: 2, alpha: 4, targets: [/.*\.c_fc/], generator: new Generator(1) });
      // give B values, so the update is not zero
      noGrad(() => {
        for (const [, l] of loraLayers(m)) l.lora!.B.copy_(randn(l.lora!.B.shape, { backend, generator: new Generator(2) }).mul(0.1));
      });
      const w0 = await values([loraLayers(m)[0]![1].weight]);
      const unmerged = await logits(m, idx);
      mergeLoRA(m);
      expect(loraLayers(m).every(([, l]) => l.lora!.merged)).toBe(true);
      expectClose(await logits(m, idx), unmerged, tol);
      expect(() => loraLayers(m)[0]![1].mergeLoRA()).toThrow(/^Linear\.mergeLoRA: the adapter is already merged/);
      unmergeLoRA(m);
      expectClose((await values([loraLayers(m)[0]![1].weight])).get('0')!, w0.get('0')!, tol);
      expectClose(await logits(m, idx), unmerged, tol);

      // merge_and_unload keeps the update in the weights; a plain remove drops it
      removeLoRA(m, { merge: true });
      expect(loraLayers(m)).toEqual([]);
      expect(m.numParameters(true)).toBe(m.numParameters());
      expectClose(await logits(m, idx), unmerged, tol);
    } finally {
      m.dispose();
      idx.dispose();
    }
  });

  it('saveAdapters writes PEFT files that loadAdapters puts onto a fresh base, giving the same outputs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-lora-'));
    const m = model(backend);
    const fresh = model(backend); // the same seed: the same base weights
    const [idx, tgt] = await task(backend, 8, 2);
    try {
      applyLoRA(m, { rank: 4, alpha: 4, dropout: 0.1, targets: ['c_attn'], generator: new Generator(4), trainable: ['transformer.wte'] });
      applyAdapters(m, { bottleneck: 8, generator: new Generator(4) });
      await trainSteps(m, idx, tgt, 3);
      m.eval();
      await saveAdapters(dir, m);
      const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      expect(cfg).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 4, lora_dropout: 0.1, bias: 'none', bottleneck: 8, modules_to_save: ['transformer.wte'] });
      expect(cfg.target_modules).toEqual(['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn']);
      const file = loadSafetensors(join(dir, 'adapter_model.safetensors'));
      const keys = Object.keys(file.tensors).sort();
      expect(keys).toContain(`${PEFT_PREFIX}transformer.h.0.attn.c_attn.lora_A.weight`);
      expect(keys).toContain(`${PEFT_PREFIX}transformer.h.1.adapter.up.weight`);
      expect(keys.every((k) => k.startsWith(PEFT_PREFIX))).toBe(true);
      expect(keys).toContain(`${PEFT_PREFIX}transformer.wte.weight`); // trained with the adapters
      expect(keys).toHaveLength(4 + 2 * 4 + 1);
      for (const t of Object.values(file.tensors)) t.dispose();

      loadAdapters(dir, fresh);
      fresh.eval();
      expect(await logits(fresh, idx)).toEqual(await logits(m, idx));
      expect(fresh.numParameters(true)).toBe(m.numParameters(true));
    } finally {
      m.dispose();
      fresh.dispose();
      idx.dispose();
      tgt.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bottleneck adapters start as the identity, learn, and leave the base untouched', async () => {
    const m = model(backend);
    const [idx, tgt] = await task(backend, 11, 4);
    try {
      const before = await logits(m, idx);
      const base = await values(m.stateDict());
      expect(applyAdapters(m, { bottleneck: 8, generator: new Generator(2) })).toEqual(['transformer.h.0.adapter', 'transformer.h.1.adapter']);
      expect(m.numParameters(true)).toBe(2 * (32 * 8 + 8 + 8 * 32 + 32));
      expect(await logits(m, idx)).toEqual(before);
      const losses = await trainSteps(m, idx, tgt, 12);
      console.log(`[lora] ${backend}: adapter losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
      expect(losses[losses.length - 1]!).toBeLessThan(losses[0]! * 0.8);
      const after = await values(m.stateDict());
      for (const [k, v] of base) expect(after.get(k), k).toEqual(v);
    } finally {
      m.dispose();
      idx.dispose();
      tgt.dispose();
    }
  });
});

describe('LoRA: bad input names the op and the problem', () => {
  it('throws for no matching layer, a bad rank, a second adapter, and mismatched weights', () => {
    const m = model('ref');
    try {
      expect(() => applyLoRA(m, { rank: 4, targets: ['q_proj'] })).toThrow(/^applyLoRA: targets q_proj match none of the model's Linear layers \(transformer\.h\.0\.attn\.c_attn, /);
      expect(() => applyLoRA(m, { rank: 0 })).toThrow(/^applyLoRA: rank must be/);
      expect(() => applyLoRA(m, { rank: 2, targets: [] })).toThrow(/^applyLoRA: targets must be a non-empty array/);
      expect(() => applyLoRA(m, { rank: 2, ranks: 3 } as never)).toThrow(/^applyLoRA: .*ranks/);
      applyLoRA(m, { rank: 2 });
      expect(() => applyLoRA(m, { rank: 2 })).toThrow(/^applyLoRA: this layer already has a LoRA adapter \(rank 2\)/);
      expect(() => new Linear(3, 2).unmergeLoRA()).toThrow(/^Linear\.unmergeLoRA: this layer has no LoRA adapter/);
      const sd = peftStateDict(m);
      const fresh = model('ref');
      try {
        const cfg = peftConfig(m);
        const bad = { ...sd, [`${PEFT_PREFIX}transformer.h.0.attn.c_attn.lora_A.weight`]: randn([3, 32]) };
        delete (bad as Record<string, Tensor>)[`${PEFT_PREFIX}transformer.h.1.attn.c_attn.lora_B.weight`];
        expect(() => loadPeftState(fresh, cfg, bad)).toThrow(
          /^loadPeftState: the adapter weights do not fit the model: missing base_model\.model\.transformer\.h\.1\.attn\.c_attn\.lora_B\.weight; wrong shape .*lora_A\.weight: \[3,32\] for \[2,32\]$/,
        );
      } finally {
        fresh.dispose();
      }
      expect(() => loadAdapters('/nonexistent/kiln-adapter', model('ref'))).toThrow(/^loadAdapters: cannot read \/nonexistent\/kiln-adapter\/adapter_config\.json/);
    } finally {
      m.dispose();
    }
  });

  it('the gradient of a LoRA layer matches central finite differences in f64', async () => {
    const gen = new Generator(4);
    const f64 = { dtype: 'f64' as const, backend: 'ref' };
    const lin = new Linear(5, 3, { ...f64, generator: gen }).addLoRA({ rank: 2, alpha: 3, dropout: 0, generator: gen });
    const x = randn([4, 5], { ...f64, generator: gen });
    const w = randn([4, 3], { ...f64, generator: gen });
    const set = (p: Tensor, vals: ArrayLike<number>): void => noGrad(() => tidy(() => void p.copy_(tensor(Array.from(vals), [...p.shape], f64))));
    try {
      set(lin.lora!.B, (await randn([3, 2], { ...f64, generator: gen }).data()) as Float64Array);
      const l = lin.forward(x).mul(w).sum();
      l.backward();
      l.dispose();
      for (const p of [lin.lora!.A, lin.lora!.B]) {
        const grad = Float64Array.from(await p.grad!.data());
        const v = Float64Array.from(await p.data());
        const lossAt = (i: number, d: number): number => {
          const u = v.slice();
          u[i] = v[i]! + d;
          set(p, u);
          return tidy(() => noGrad(() => lin.forward(x).mul(w).sum()).itemSync());
        };
        for (let i = 0; i < v.length; i++) expect(grad[i]!).toBeCloseTo((lossAt(i, 1e-6) - lossAt(i, -1e-6)) / 2e-6, 6);
        set(p, v);
      }
    } finally {
      lin.dispose();
      x.dispose();
      w.dispose();
    }
  });
});
