/**
 * BERT parity with PyTorch (fixtures from test/fixtures/make_bert_fixtures.py, torch 1.13, the
 * model written out after Hugging Face's BertModel with its parameter names): PyTorch's state
 * dict of a BertForMaskedLM loads into kiln's as it is (the tied decoder weight and bias under
 * their own names), and on a padded batch with token types the logits and losses of the MLM,
 * sequence- and token-classification heads, the pooled output, and the gradient of every
 * parameter match PyTorch's.
 *
 * The reference values are torch's float64 results rounded to f32 once, the exact answer to f32
 * precision, so kiln in f32 is held to tolerances that torch's own float32 run also meets (the
 * generator asserts it and records how far inside them torch lies in bert.json), and kiln in f64
 * to one f32 rounding (2⁻²⁴ relative), which no formula difference survives (the tanh GELU for
 * the erf one, a pre-LN residual, a missed padding mask, a gradient through the [PAD] row).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { loadSafetensors, tensor, tidy, type Tensor } from '../src/index.js';
import { BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, type BertConfig } from '../src/nn/bert.js';
import { describeBackends, expectClose, stores, values } from './harness.js';

const DIR = new URL('./fixtures/bert/', import.meta.url);
const path = (name: string): string => fileURLToPath(new URL(name, DIR));

interface Tol {
  rtol: number;
  atol: number;
}
interface Meta {
  config: BertConfig;
  inputIds: number[][];
  attentionMask: number[][];
  tokenTypeIds: number[][];
  mlmLabels: number[][];
  seqLabels: number[];
  tokLabels: number[][];
  mlmParameters: string[];
  seqParameters: string[];
  torchFloat32: { tolerances: Record<'logits' | 'loss' | 'grads', Tol>; worstRatio: Record<string, number> };
}
const META = JSON.parse(readFileSync(path('bert.json'), 'utf8')) as Meta;

/** Read a safetensors file on ref into plain arrays by name (and the names in file order). */
async function readAll(name: string): Promise<Map<string, Float32Array>> {
  const { tensors } = loadSafetensors(path(name), { backend: 'ref' });
  const out = new Map<string, Float32Array>();
  for (const [n, t] of Object.entries(tensors)) {
    out.set(n, Float32Array.from(await t.data()));
    t.dispose();
  }
  return out;
}
const EXPECTED = await readAll('expected.safetensors');
const expected = (name: string): Float32Array => {
  const e = EXPECTED.get(name);
  if (!e) throw new Error(`bert_parity: no '${name}' in expected.safetensors`);
  return e;
};

/**
 * f32: the tolerances torch's own float32 run meets (the generator checks them). Logits and the
 * pooled output are O(1) after LayerNorm; gradients go through two post-LN layers whose
 * normalisation divides by small variances, so their relative tolerance is 1e-4, with atol 2e-6
 * for sums that nearly cancel. f64: half an f32 ulp from the reference's one rounding, with
 * margin; atol covers gradients that are exactly 0 in exact arithmetic (the key biases').
 */
const TOL_F32_WRITTEN: Record<'logits' | 'loss' | 'grads', Tol> = {
  logits: { rtol: 1e-5, atol: 2e-5 },
  loss: { rtol: 1e-5, atol: 0 },
  grads: { rtol: 1e-4, atol: 2e-6 },
};
const TOL_F64: Tol = { rtol: 1e-7, atol: 1e-12 };

it('the fixture was made with the tolerances this test uses, and torch float32 meets them', () => {
  expect(META.torchFloat32.tolerances).toEqual(TOL_F32_WRITTEN);
  for (const [k, v] of Object.entries(META.torchFloat32.worstRatio)) expect(v, k).toBeLessThanOrEqual(1);
});

/** The worst |kiln − reference| / (atol + rtol·|reference|) seen per backend, dtype and kind (printed at the end). */
const worst = new Map<string, number>();
function check(key: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: Tol, what: string): void {
  let r = 0;
  for (let i = 0; i < want.length; i++) r = Math.max(r, Math.abs(got[i]! - want[i]!) / (tol.atol + tol.rtol * Math.abs(want[i]!)));
  worst.set(key, Math.max(worst.get(key) ?? 0, r));
  expectClose(got, want, tol, what);
}

describeBackends('BERT parity with PyTorch', (backend) => {
  const i32 = (rows: number[][] | number[]): Tensor => tensor(rows, { backend, dtype: 'i32' });
  const inputs = (): { ids: Tensor; opts: { attentionMask: Tensor; tokenTypeIds: Tensor } } => ({
    ids: i32(META.inputIds),
    opts: { attentionMask: i32(META.attentionMask), tokenTypeIds: i32(META.tokenTypeIds) },
  });

  function mlmState(): Record<string, Tensor> {
    return loadSafetensors(path('mlm.safetensors'), { backend }).tensors;
  }

  function loadMLM(dtype: 'f32' | 'f64'): BertForMaskedLM {
    const model = new BertForMaskedLM(META.config, { backend, dtype });
    const state = mlmState();
    try {
      // strict, as PyTorch's state_dict() gives it: the tied decoder weight and bias included
      const { missingKeys, unexpectedKeys } = model.loadStateDict(state);
      expect(missingKeys).toEqual([]);
      expect(unexpectedKeys).toEqual([]);
    } finally {
      for (const t of Object.values(state)) t.dispose();
    }
    return model;
  }

  function loadHead<M extends BertForSequenceClassification | BertForTokenClassification>(make: () => M, classifier: 'classifier' | 'token_classifier'): M {
    const model = make();
    const state = mlmState();
    const heads = loadSafetensors(path('heads.safetensors'), { backend }).tensors;
    try {
      const given: Record<string, Tensor> = {};
      for (const [n, t] of Object.entries(state)) if (n.startsWith('bert.')) given[n] = t;
      if (model instanceof BertForSequenceClassification) for (const n of ['bert.pooler.dense.weight', 'bert.pooler.dense.bias']) given[n] = heads[n]!;
      given['classifier.weight'] = heads[`${classifier}.weight`]!;
      given['classifier.bias'] = heads[`${classifier}.bias`]!;
      model.loadStateDict(given);
    } finally {
      for (const t of [...Object.values(state), ...Object.values(heads)]) t.dispose();
    }
    return model;
  }

  it('loads PyTorch state dicts under Hugging Face names; the decoder is tied to the word embeddings', () => {
    const model = loadMLM('f32');
    expect(model.cls.predictions.decoder.weight).toBe(model.bert.embeddings.word_embeddings.weight);
    expect(model.cls.predictions.decoder.bias).toBe(model.cls.predictions.bias);
    expect(model.namedParameters().map(([n]) => n)).toEqual(META.mlmParameters);
    const state = mlmState();
    // kiln's state dict has PyTorch's entries in PyTorch's order
    expect(Object.keys(model.stateDict())).toEqual(Object.keys(state));
    for (const t of Object.values(state)) t.dispose();
    model.dispose();
    const seq = loadHead(() => new BertForSequenceClassification(META.config, { backend }), 'classifier');
    expect(seq.namedParameters().map(([n]) => n)).toEqual(META.seqParameters);
    seq.dispose();
  });

  for (const dtype of ['f32', 'f64'] as const) {
    const tol = (kind: 'logits' | 'loss' | 'grads'): Tol => (dtype === 'f32' ? TOL_F32_WRITTEN[kind] : TOL_F64);
    const key = (kind: string): string => `${backend} ${dtype} ${kind}`;

    it.skipIf(!stores(backend, dtype))(`masked LM [${dtype}]: logits, loss and every parameter's gradient (the tied embedding: lookup + decoder)`, async () => {
      const model = loadMLM(dtype);
      const { ids, opts } = inputs();
      const labels = i32(META.mlmLabels);
      const { logits, loss } = tidy(() => {
        const out = model.forward(ids, labels, opts);
        out.loss!.backward();
        return { logits: out.logits, loss: out.loss! };
      });
      expect(logits.shape).toEqual([3, 12, META.config.vocabSize]);
      expect(logits.dtype).toBe(dtype);
      check(key('logits'), await values(logits), expected('mlm.logits'), tol('logits'), 'mlm logits');
      check(key('loss'), [await loss.item()], expected('mlm.loss'), tol('loss'), 'mlm loss');
      for (const [name, p] of model.namedParameters()) {
        expect(p.grad, name).toBeTruthy();
        check(key('grads'), await values(p.grad!), expected(`mlm.grad.${name}`), tol('grads'), `grad ${name}`);
      }
      for (const t of [logits, loss, ids, labels, opts.attentionMask, opts.tokenTypeIds]) t.dispose();
      model.dispose();
    });

    it.skipIf(!stores(backend, dtype))(`sequence classification [${dtype}]: pooled output, logits, loss and every gradient`, async () => {
      const model = loadHead(() => new BertForSequenceClassification(META.config, { backend, dtype }), 'classifier');
      const { ids, opts } = inputs();
      const labels = i32(META.seqLabels);
      const pooled = tidy(() => model.bert.forward(ids, opts).poolerOutput!);
      check(key('logits'), await values(pooled), expected('seq.pooled'), tol('logits'), 'pooled');
      const { logits, loss } = tidy(() => {
        const out = model.forward(ids, labels, opts);
        out.loss!.backward();
        return { logits: out.logits, loss: out.loss! };
      });
      check(key('logits'), await values(logits), expected('seq.logits'), tol('logits'), 'seq logits');
      check(key('loss'), [await loss.item()], expected('seq.loss'), tol('loss'), 'seq loss');
      for (const [name, p] of model.namedParameters()) check(key('grads'), await values(p.grad!), expected(`seq.grad.${name}`), tol('grads'), `seq grad ${name}`);
      for (const t of [pooled, logits, loss, ids, labels, opts.attentionMask, opts.tokenTypeIds]) t.dispose();
      model.dispose();
    });

    it.skipIf(!stores(backend, dtype))(`token classification [${dtype}]: logits, loss (padding ignored) and the classifier's gradient`, async () => {
      const model = loadHead(() => new BertForTokenClassification(META.config, { backend, dtype }), 'token_classifier');
      const { ids, opts } = inputs();
      const labels = i32(META.tokLabels);
      const { logits, loss } = tidy(() => {
        const out = model.forward(ids, labels, opts);
        out.loss!.backward();
        return { logits: out.logits, loss: out.loss! };
      });
      check(key('logits'), await values(logits), expected('tok.logits'), tol('logits'), 'tok logits');
      check(key('loss'), [await loss.item()], expected('tok.loss'), tol('loss'), 'tok loss');
      for (const name of ['classifier.weight', 'classifier.bias']) {
        const p = model.namedParameters().find(([n]) => n === name)![1];
        check(key('grads'), await values(p.grad!), expected(`tok.grad.${name}`), tol('grads'), `tok grad ${name}`);
      }
      for (const t of [logits, loss, ids, labels, opts.attentionMask, opts.tokenTypeIds]) t.dispose();
      model.dispose();
    });
  }

  it('reports the worst deviations (fractions of the tolerance)', () => {
    const mine = [...worst].filter(([k]) => k.startsWith(`${backend} `));
    console.log(`[bert parity] ${backend}: ${mine.map(([k, v]) => `${k.slice(backend.length + 1)} ${v.toPrecision(2)}`).join(', ')}`);
  });
});
