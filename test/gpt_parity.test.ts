/**
 * GPT parity with PyTorch (fixtures from test/fixtures/make_gpt_fixtures.py, torch 1.13): a
 * small GPT-2's weights load into kiln's GPT under nanoGPT names, and the forward (logits and
 * loss), the backward (every parameter's gradient, the tied wte's summing the embedding and the
 * head) and 3 steps of AdamW and of LAMB on the same batch match PyTorch's, in f32 and in f64.
 *
 * The reference values are torch's float64 results rounded to f32 once, i.e. the exact answer
 * to f32 precision, so:
 * - kiln in f32 is held to the tolerances below, which torch's own float32 run also meets (the
 *   generator asserts it and records in gpt.json how far inside them torch lies: about 0.15 of
 *   the logits' tolerance, 0.01 of the loss's, 0.14 of the gradients' and 0.04 / 0.09 of the
 *   AdamW / LAMB parameters'; kiln's ref backend lies at 0.05, 0, 0.04, 0.03 and 0.04);
 * - kiln in f64 must equal the reference to one f32 rounding (2⁻²⁴ relative), which no formula
 *   difference (a GELU variant, a misplaced ε, a missing bias correction) survives.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { Generator, memory, tensor, tidy, type Tensor } from '../src/index.js';
import { loadSafetensors } from '../src/index.js';
import { GPT, type GPTConfig } from '../src/nn/index.js';
import { AdamW, LAMB, type Optimizer, type OptimizerOptions } from '../src/optim/index.js';
import { describeBackends, expectClose, stores, values } from './harness.js';

const DIR = new URL('./fixtures/gpt/', import.meta.url);
const path = (name: string): string => fileURLToPath(new URL(name, DIR));

interface Tol {
  rtol: number;
  atol: number;
}
interface Meta {
  config: GPTConfig;
  idx: number[][];
  targets: number[][];
  steps: number;
  gradFloor: number;
  adamw: { lr: number; betas: [number, number]; eps: number; weightDecay: number };
  lamb: { lr: number; betas: [number, number]; eps: number; weightDecay: number; biasCorrection: boolean };
  adamwLosses: number[];
  lambLosses: number[];
  torchFloat32: { tolerances: Record<'logits' | 'loss' | 'grads' | 'adamw' | 'lamb', Tol>; worstRatio: Record<string, number> };
}
const META = JSON.parse(readFileSync(path('gpt.json'), 'utf8')) as Meta;

/** The reference values by name (logits, loss, grad.<p>, adamw.<p>, lamb.<p>), read on ref once. */
const EXPECTED: Map<string, Float32Array> = await (async () => {
  const { tensors } = loadSafetensors(path('expected.safetensors'), { backend: 'ref' });
  const out = new Map<string, Float32Array>();
  for (const [name, t] of Object.entries(tensors)) {
    out.set(name, Float32Array.from(await t.data()));
    t.dispose();
  }
  return out;
})();
const expected = (name: string): Float32Array => {
  const e = EXPECTED.get(name);
  if (!e) throw new Error(`gpt_parity: no '${name}' in expected.safetensors`);
  return e;
};

/**
 * Tolerances of kiln against the reference. f32: the ones torch's own float32 run meets (the
 * generator checks it against this same table). The logits are O(1) and the loss ≈ 4.7, so
 * 1e-5 is a few f32 ulps after the ~10 roundings of a layer; gradients reach 0.3, and atol 1e-6
 * covers sums of hundreds of f32 products that nearly cancel; parameters after 3 steps are
 * O(0.01–1) and move by ~1e-3, so 1e-5 relative with atol 2e-6 catches an update that is off by
 * 0.2% of one step. f64: half an f32 ulp (2⁻²⁴ ≈ 6e-8 relative) from the reference's one
 * rounding, with margin; the atol only covers gradients that are exactly 0 in exact arithmetic
 * (the key biases'), where both sides hold f64 rounding noise (~1e-17).
 */
const TOL = {
  f32: META.torchFloat32.tolerances,
  f64: { rtol: 1e-7, atol: 1e-12 },
} as const;
const TOL_F32_WRITTEN: Record<'logits' | 'loss' | 'grads' | 'adamw' | 'lamb', Tol> = {
  logits: { rtol: 1e-5, atol: 1e-5 },
  loss: { rtol: 1e-5, atol: 0 },
  grads: { rtol: 1e-5, atol: 1e-6 },
  adamw: { rtol: 1e-5, atol: 2e-6 },
  lamb: { rtol: 1e-5, atol: 2e-6 },
};

it('the fixture was made with the tolerances this test uses, and torch float32 meets them', () => {
  expect(META.torchFloat32.tolerances).toEqual(TOL_F32_WRITTEN);
  for (const [k, v] of Object.entries(META.torchFloat32.worstRatio)) expect(v, k).toBeLessThanOrEqual(1);
});

describeBackends('GPT parity with PyTorch', (backend) => {
  const ids = (rows: number[][]): Tensor => tensor(rows, { backend, dtype: 'i32' });

  /** kiln's GPT with the fixture's weights, in `dtype`. */
  function load(dtype: 'f32' | 'f64'): GPT {
    const model = new GPT(META.config, { backend, dtype, generator: new Generator(0) });
    const { tensors } = loadSafetensors(path('weights.safetensors'), { backend });
    try {
      // strict: every entry of the model is provided, lm_head.weight through its tie to wte
      const { missingKeys, unexpectedKeys } = model.loadStateDict(tensors);
      expect(missingKeys).toEqual([]);
      expect(unexpectedKeys).toEqual([]);
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
    }
    return model;
  }

  /** The parameters of kiln's GPT in nanoGPT's two groups: 2-D tensors decay, the rest do not. */
  const groups = (model: GPT, weightDecay: number): { params: Tensor[]; weightDecay: number }[] => [
    { params: model.parameters().filter((p) => p.rank >= 2), weightDecay },
    { params: model.parameters().filter((p) => p.rank < 2), weightDecay: 0 },
  ];

  it('loads the weights under nanoGPT names, the tied head from wte', () => {
    const model = load('f32');
    expect(model.lm_head.weight).toBe(model.transformer.wte.weight);
    expect(model.namedParameters().map(([n]) => n)).toEqual([...EXPECTED.keys()].filter((k) => k.startsWith('grad.')).map((k) => k.slice(5)));
    model.dispose();
  });

  for (const dtype of ['f32', 'f64'] as const) {
    const tol = (kind: keyof typeof TOL.f32): Tol => (dtype === 'f32' ? TOL.f32[kind] : TOL.f64);

    // the f64 claims (one f32 rounding from the reference) need f64: a backend without it skips them, saying so
    it.skipIf(!stores(backend, dtype))(`forward [${dtype}]: logits and loss match`, async () => {
      const model = load(dtype);
      const { logits, loss } = tidy(() => {
        const { logits, loss } = model.forward(ids(META.idx), ids(META.targets));
        return { logits, loss: loss! };
      });
      expect(logits.shape).toEqual([2, 16, META.config.vocabSize]);
      expect(logits.dtype).toBe(dtype);
      expectClose(await values(logits), expected('logits'), tol('logits'), 'logits');
      expectClose([await loss.item()], expected('loss'), tol('loss'), 'loss');
      logits.dispose();
      loss.dispose();
      model.dispose();
    });

    it.skipIf(!stores(backend, dtype))(`backward [${dtype}]: every parameter's gradient matches (the tied wte: embedding + head)`, async () => {
      const model = load(dtype);
      tidy(() => model.forward(ids(META.idx), ids(META.targets)).loss!.backward());
      for (const [name, p] of model.namedParameters()) {
        expect(p.grad, name).toBeTruthy();
        expectClose(await values(p.grad!), expected(`grad.${name}`), tol('grads'), `grad ${name}`);
      }
      model.dispose();
    });

    const steps: [string, 'adamw' | 'lamb', (m: GPT) => Optimizer<OptimizerOptions>, number[]][] = [
      [
        'AdamW',
        'adamw',
        (m) => new AdamW(groups(m, META.adamw.weightDecay), { lr: META.adamw.lr, betas: META.adamw.betas, eps: META.adamw.eps }),
        META.adamwLosses,
      ],
      [
        'LAMB',
        'lamb',
        (m) =>
          new LAMB(groups(m, META.lamb.weightDecay), {
            lr: META.lamb.lr,
            betas: META.lamb.betas,
            eps: META.lamb.eps,
            biasCorrection: META.lamb.biasCorrection,
          }) as unknown as Optimizer<OptimizerOptions>,
        META.lambLosses,
      ],
    ];
    for (const [title, key, makeOpt, losses] of steps)
      it.skipIf(!stores(backend, dtype))(`${META.steps} ${title} steps [${dtype}]: the losses and every parameter match`, async () => {
        const model = load(dtype);
        const opt = makeOpt(model);
        const lr = opt.paramGroups[0]!.lr;
        const live = (): number => memory().backends[backend]?.tensors ?? 0;
        const counts: number[] = [];
        for (let s = 0; s < META.steps; s++) {
          opt.zeroGrad();
          // the loss leaves the scope to be read outside it, and is disposed before the count
          const out = tidy(() => {
            const out = model.forward(ids(META.idx), ids(META.targets)).loss!;
            out.backward();
            return out;
          });
          const loss = await out.item();
          out.dispose();
          opt.step();
          counts.push(live());
          expectClose([loss], [losses[s]!], tol('loss'), `loss before step ${s + 1}`);
        }
        // optimizer state is made on the first step; after it, steps allocate nothing that stays
        expect(counts[counts.length - 1]).toBe(counts[0]);

        for (const [name, p] of model.namedParameters()) {
          const got = await values(p);
          const want = expected(`${key}.${name}`);
          if (dtype === 'f64') {
            // f64 noise in the zero gradients (~1e-17) is far below ε: every element is determined
            expectClose(got, want, TOL.f64, `${key} ${name}`);
            continue;
          }
          // f32: an element whose gradient is below gradFloor (the key biases', exactly 0 in exact
          // arithmetic, and a few others of ~1e-6) has an Adam direction m̂/(√v̂ + ε) made of
          // rounding noise, arbitrary in [−1, 1], so two f32 implementations cannot agree there;
          // such elements are held only to the size of the steps: AdamW moves an element at most
          // about lr per step, LAMB at most lr·trust·|r_i| ≤ lr·‖w‖.
          const grad = expected(`grad.${name}`);
          const well: number[] = [];
          const wellWant: number[] = [];
          for (let i = 0; i < want.length; i++)
            if (Math.abs(grad[i]!) >= META.gradFloor) {
              well.push(got[i]!);
              wellWant.push(want[i]!);
            } else {
              const bound = 2 * META.steps * lr * (key === 'lamb' ? norm(expected(`${key}.${name}`)) : 1);
              expect(Math.abs(got[i]! - want[i]!), `${key} ${name}[${i}] (ill-conditioned)`).toBeLessThanOrEqual(bound);
            }
          expectClose(well, wellWant, TOL.f32[key], `${key} ${name}`);
        }
        opt.disposeState();
        model.dispose();
      });
  }
});

function norm(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]! * xs[i]!;
  return Math.sqrt(s);
}
