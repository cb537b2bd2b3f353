/**
 * BERT beyond parity (test/bert_parity.test.ts holds the PyTorch comparison):
 * - MLM masking: the 80/10/10 proportions of 15% of the non-special tokens on a large sample
 *   (within 5 standard deviations of the binomial), specials never selected, labels −100
 *   elsewhere; the device version equals the host one, draw for draw, on every backend;
 * - the WordPiece trainer: specials first, deterministic, merges frequent words whole;
 * - the encoder: padding changes nothing at the real positions (the mask hides padded keys),
 *   token types and the tied decoder;
 * - MaskedLMPretraining's state dict has no prefix; fine-tuning learns a toy task;
 * - `kiln train --model bert` (a child process, as users run it) reports masked-token accuracy
 *   and writes it to metrics.json; `--resume` continues it;
 * - examples/bert_decades.ts runs and its classifier beats the majority-class baseline.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { Generator, tensor, tidy, type Tensor } from '../src/index.js';
import { maskTokens, maskTokensTensor, trainWordPiece } from '../src/data/mlm.js';
import { BertForMaskedLM, BertForSequenceClassification, BertModel, MaskedLMPretraining, encodeForBert, evaluateMaskedLM, finetuneBertClassifier } from '../src/nn/bert.js';
import { describeBackends, expectClose, tol } from './harness.js';

const SPECIALS = [0, 1, 2, 3, 4];
const MASK = 4;

describe('MLM masking', () => {
  it('selects 15% of the non-special tokens, of which 80% become [MASK], 10% a random token, 10% stay', () => {
    const V = 1000;
    const n = 400_000;
    // a stream with specials at 5% of the positions
    const g0 = new Generator(1);
    const draws = g0.draw(n, { kind: 'randint', low: 0, high: V });
    const ids = Int32Array.from(draws, (d, i) => (i % 20 === 0 ? SPECIALS[i % 5]! : Math.max(5, d)));
    const { inputIds, labels } = maskTokens(ids, { vocabSize: V, maskId: MASK, specialIds: SPECIALS, generator: new Generator(2) });
    let plain = 0;
    let selected = 0;
    let masked = 0;
    let replaced = 0;
    let kept = 0;
    for (let i = 0; i < n; i++) {
      const special = SPECIALS.includes(ids[i]!);
      if (special) {
        expect(labels[i]).toBe(-100);
        expect(inputIds[i]).toBe(ids[i]);
        continue;
      }
      plain++;
      if (labels[i] === -100) {
        expect(inputIds[i]).toBe(ids[i]);
        continue;
      }
      selected++;
      expect(labels[i]).toBe(ids[i]);
      if (inputIds[i] === MASK) masked++;
      else if (inputIds[i] === ids[i]) kept++;
      else {
        replaced++;
        expect(SPECIALS).not.toContain(inputIds[i]);
      }
    }
    // within 5σ of the binomial proportions (a random draw equal to the original counts as kept: p 1/995)
    const within = (count: number, total: number, p: number, what: string): void => {
      const sd = Math.sqrt(total * p * (1 - p));
      expect(Math.abs(count - total * p), `${what}: ${count} of ${total}, expected ${(total * p).toFixed(0)} ± ${sd.toFixed(0)}`).toBeLessThan(5 * sd);
    };
    within(selected, plain, 0.15, 'selected');
    within(masked, selected, 0.8, '[MASK]');
    const pSame = 0.1 / (V - SPECIALS.length);
    within(replaced, selected, 0.1 - pSame, 'random');
    within(kept, selected, 0.1 + pSame, 'kept');
    console.log(`[mlm] ${plain} non-special tokens: ${(selected / plain).toFixed(4)} selected; of those ${(masked / selected).toFixed(4)} [MASK], ${(replaced / selected).toFixed(4)} random, ${(kept / selected).toFixed(4)} kept`);
  });

  it('is reproducible from the generator and honours the fractions given', () => {
    const ids = Array.from({ length: 5000 }, (_, i) => 5 + (i % 90));
    const a = maskTokens(ids, { vocabSize: 100, maskId: MASK, specialIds: SPECIALS, generator: new Generator(9) });
    const b = maskTokens(ids, { vocabSize: 100, maskId: MASK, specialIds: SPECIALS, generator: new Generator(9) });
    expect(a).toEqual(b);
    const all = maskTokens(ids, { vocabSize: 100, maskId: MASK, mlmProbability: 1, maskFraction: 1, randomFraction: 0, generator: new Generator(1) });
    expect(Array.from(all.inputIds).every((x) => x === MASK)).toBe(true);
    expect(Array.from(all.labels)).toEqual(ids);
    const none = maskTokens(ids, { vocabSize: 100, maskId: MASK, mlmProbability: 0, generator: new Generator(1) });
    expect(Array.from(none.labels).every((x) => x === -100)).toBe(true);
  });
});

describeBackends('MLM masking on a device', (backend) => {
  it('maskTokensTensor equals maskTokens from the same generator state, without reading the ids', async () => {
    const ids = Array.from({ length: 6 * 50 }, (_, i) => (i % 17 === 0 ? 2 : 5 + ((i * 37) % 95)));
    const host = maskTokens(ids, { vocabSize: 100, maskId: MASK, specialIds: SPECIALS, generator: new Generator(4), mlmProbability: 0.3 });
    const t = tensor(Int32Array.from(ids), [6, 50], { dtype: 'i32', backend });
    const dev = maskTokensTensor(t, { vocabSize: 100, maskId: MASK, specialIds: SPECIALS, generator: new Generator(4), mlmProbability: 0.3 });
    expect(dev.inputIds.shape).toEqual([6, 50]);
    expect(Array.from(await dev.inputIds.data())).toEqual(Array.from(host.inputIds));
    expect(Array.from(await dev.labels.data())).toEqual(Array.from(host.labels));
    for (const x of [t, dev.inputIds, dev.labels]) x.dispose();
  });
});

describe('trainWordPiece', () => {
  const texts = ['The Union is strong. The union of the States!', 'the states of the union', 'Strong states, strong union.'];
  it('puts the special tokens first, merges frequent words whole, and is deterministic', () => {
    const tok = trainWordPiece(texts, { vocabSize: 60 });
    const vocab = tok.toJSON().vocab;
    expect(vocab.slice(0, 5)).toEqual(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
    expect(vocab.length).toBeLessThanOrEqual(60);
    for (const w of ['the', 'union', 'states', 'strong']) expect(tok.tokenize(w)).toEqual([w]);
    expect(trainWordPiece(texts, { vocabSize: 60 }).toJSON()).toEqual(tok.toJSON());
    expect(tok.tokenize('[CLS] the unions [SEP]')).toEqual(['[CLS]', 'the', 'union', '##s', '[SEP]']);
    // an unseen character: the word is [UNK]
    expect(tok.tokenize('zebra')).toEqual(['[UNK]']);
  });
});

describeBackends('BERT encoder', (backend) => {
  const config = { vocabSize: 40, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, maxPositionEmbeddings: 12, hiddenDropoutProb: 0, attentionProbsDropoutProb: 0 };
  const i32 = (rows: number[][]): Tensor => tensor(rows, { dtype: 'i32', backend });

  it('padding changes nothing at the real positions: padded keys get no weight', async () => {
    const model = new BertModel(config, { backend, generator: new Generator(3) });
    const seq = [2, 7, 8, 9, 10, 3];
    const short = tidy(() => model.forward(i32([seq])).lastHiddenState);
    // the same sequence padded two ways ([PAD] = 0 and, to show the mask does the work, other ids)
    const padded = i32([
      [...seq, 0, 0, 0, 0],
      [...seq, 11, 12, 13, 14],
    ]);
    const mask = i32([
      [1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
      [1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
    ]);
    const { lastHiddenState, poolerOutput } = tidy(() => model.forward(padded, { attentionMask: mask }));
    const want = Array.from(await short.data());
    const got = Array.from(await lastHiddenState.data());
    const C = config.hiddenSize;
    for (const row of [0, 1]) expectClose(got.slice(row * 10 * C, row * 10 * C + 6 * C), want, tol('f32'), `row ${row}`);
    const pooled = Array.from(await poolerOutput!.data());
    expectClose(pooled.slice(0, C), pooled.slice(C), tol('f32'), 'pooled');
    // without the mask the padding is seen
    const unmasked = tidy(() => model.forward(padded).lastHiddenState);
    const u = Array.from(await unmasked.data());
    expect(Math.max(...u.slice(0, 6 * C).map((x, i) => Math.abs(x - want[i]!)))).toBeGreaterThan(1e-3);
    for (const t of [short, padded, mask, lastHiddenState, poolerOutput!, unmasked]) t.dispose();
    model.dispose();
  });

  it('token types change the output; the [PAD] row starts at zero and gets no gradient from the lookup', async () => {
    const model = new BertForMaskedLM({ ...config, padTokenId: 0 }, { backend, generator: new Generator(5) });
    const w = model.bert.embeddings.word_embeddings.weight;
    expect(Array.from(await w.data()).slice(0, config.hiddenSize).every((x) => x === 0)).toBe(true);
    expect(model.cls.predictions.decoder.weight).toBe(w);
    const ids = i32([[2, 5, 6, 3, 0, 0]]);
    const a = tidy(() => model.bert.forward(ids).lastHiddenState);
    const b = tidy(() => model.bert.forward(ids, { tokenTypeIds: i32([[0, 0, 1, 1, 0, 0]]) }).lastHiddenState);
    expect(Array.from(await a.data())).not.toEqual(Array.from(await b.data()));
    // only the decoder reaches row 0: its gradient equals the decoder's part, Σ over positions of dlogits[:, 0]·h
    const labels = i32([[-100, 5, -100, 3, -100, -100]]);
    tidy(() => model.forward(ids, labels, { attentionMask: i32([[1, 1, 1, 1, 0, 0]]) }).loss!.backward());
    const g = Array.from(await w.grad!.data());
    expect(g.slice(0, config.hiddenSize).some((x) => x !== 0)).toBe(true); // the decoder's share
    model.zeroGrad();
    // with the head cut off (hidden states only), row 0 gets nothing although [PAD] is looked up
    tidy(() => model.bert.forward(ids).lastHiddenState.sum().backward());
    expect(Array.from(await w.grad!.data()).slice(0, config.hiddenSize).every((x) => x === 0)).toBe(true);
    for (const t of [ids, a, b, labels]) t.dispose();
    model.dispose();
  });

  it('MaskedLMPretraining: the model’s state dict with no prefix, a loss on masked windows, accuracy by evaluateMaskedLM', async () => {
    const model = new BertForMaskedLM(config, { backend, generator: new Generator(6) });
    const objective = new MaskedLMPretraining(model, { maskId: MASK, specialIds: SPECIALS, generator: new Generator(7) });
    expect(Object.keys(objective.stateDict())).toEqual(Object.keys(model.stateDict()));
    expect(objective.parameters()).toEqual(model.parameters());
    const idx = i32([Array.from({ length: 12 }, (_, i) => 5 + i), Array.from({ length: 12 }, (_, i) => 20 + i)]);
    const { loss, labels } = tidy(() => objective.forward(idx));
    expect(labels.shape).toEqual([2, 12]);
    expect(Number.isFinite(await loss.item())).toBe(true);
    const tokens = Array.from({ length: 240 }, (_, i) => 5 + (i % 30));
    const ev = await evaluateMaskedLM(model, tokens, { blockSize: 12, batchSize: 4, maskId: MASK, specialIds: SPECIALS, generator: new Generator(1) });
    expect(ev.batches).toBe(5);
    expect(ev.maskedTokens).toBeGreaterThan(10);
    expect(ev.accuracy).toBeGreaterThanOrEqual(0);
    // the same masks every call from a fresh generator of the same seed
    expect(await evaluateMaskedLM(model, tokens, { blockSize: 12, batchSize: 4, maskId: MASK, specialIds: SPECIALS, generator: new Generator(1) })).toEqual(ev);
    for (const t of [idx, loss, labels]) t.dispose();
    model.dispose();
  });
});

describe('fine-tuning helpers', () => {
  it('encodeForBert adds [CLS] and [SEP], cuts to maxLength and pads with a mask', () => {
    const tok = trainWordPiece(['alpha beta gamma delta', 'alpha beta'], { vocabSize: 40 });
    const [cls, sep, pad] = ['[CLS]', '[SEP]', '[PAD]'].map((s) => tok.specialTokens.get(s)!);
    const enc = encodeForBert(tok, ['alpha beta gamma delta', 'beta'], { maxLength: 4 });
    expect(enc.inputIds[0]).toEqual([cls, tok.tokenToId('alpha'), tok.tokenToId('beta'), sep]);
    expect(enc.inputIds[1]).toEqual([cls, tok.tokenToId('beta'), sep, pad]);
    expect(enc.attentionMask).toEqual([
      [1, 1, 1, 1],
      [1, 1, 1, 0],
    ]);
  });

  it('finetuneBertClassifier learns a toy task and reports accuracy and macro F1 against the majority baseline', async () => {
    const words = ['red', 'green', 'blue', 'cat', 'dog', 'house', 'tree', 'river'];
    const g = new Generator(3);
    const make = (n: number): { texts: string[]; labels: number[] } => {
      const u = g.draw(n * 6, { kind: 'randint', low: 0, high: 8 });
      const texts: string[] = [];
      const labels: number[] = [];
      for (let i = 0; i < n; i++) {
        const ws = Array.from(u.slice(i * 6, i * 6 + 6), (k) => words[k]!);
        const label = i % 2;
        ws[Number(u[i * 6]) % 6] = label ? 'yes' : 'no';
        texts.push(ws.join(' '));
        labels.push(label);
      }
      return { texts, labels };
    };
    const train = make(240);
    const heldOut = make(60);
    const tokenizer = trainWordPiece(train.texts, { vocabSize: 60 });
    const model = new BertForSequenceClassification({ vocabSize: tokenizer.vocabSize, hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 4, maxPositionEmbeddings: 10, numLabels: 2 }, { generator: new Generator(1) });
    const r = await finetuneBertClassifier({ model, tokenizer, train, eval: heldOut, epochs: 6, batchSize: 16, lr: 3e-3 });
    expect(r.steps).toBe(6 * 15);
    expect(r.epochLosses.at(-1)!).toBeLessThan(r.epochLosses[0]!);
    expect(r.baseline!.accuracy).toBeCloseTo(0.5, 10);
    expect(r.eval!.accuracy).toBeGreaterThan(0.9);
    expect(r.eval!.macroF1).toBeGreaterThan(0.9);
    model.dispose();
  });
});

// ---- the command and the example ---------------------------------------------------------------

const BIN = fileURLToPath(new URL('../bin/kiln.mjs', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'kiln-bert-'));
const corpus = join(root, 'corpus.txt');

function kiln(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: root, env: { ...process.env, KILN_DEBUG: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

beforeAll(() => {
  // paragraphs of sentences from a small grammar (a fixed LCG), separated by blank lines
  const subj = ['the cat', 'a dog', 'the old farmer', 'my sister', 'the river', 'a small bird'];
  const verb = ['sees', 'likes', 'follows', 'builds', 'finds', 'paints'];
  const obj = ['the red house', 'a green field', 'the long road', 'an open door', 'the quiet lake', 'a wooden boat'];
  let s = 77;
  const r = (k: number): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return Math.floor(s / 65536) % k;
  };
  const paras = Array.from({ length: 60 }, () => Array.from({ length: 4 + r(4) }, () => `${subj[r(6)]} ${verb[r(6)]} ${obj[r(6)]}.`).join(' '));
  writeFileSync(corpus, `${paras.join('\n\n')}\n`);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('kiln train --model bert', () => {
  const args = ['train', '--model', 'bert', '--data', corpus, '--config', 'micro', '--backend', 'cpu', '--batch-size', '4', '--block-size', '16', '--n-embd', '16', '--eval-every', '0'];

  it('pre-trains a small BERT by masked-language modelling and reports masked-token accuracy (stdout and metrics.json)', async () => {
    const out = join(root, 'out');
    const r = await kiln([...args, '--steps', '5', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/tokenizer: WordPiece, \d+ tokens \(trained\)/);
    expect(r.stderr).toMatch(/model: BERT 2 layers, 2 heads, width 16/);
    const m = /MLM accuracy\s+([\d.]+)%/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as Record<string, unknown>;
    expect(metrics.model).toBe('bert');
    expect(metrics.steps).toBe(5);
    expect(metrics.mlmAccuracy).toBeCloseTo(Number(m![1]) / 100, 4);
    expect(metrics.maskedTokens as number).toBeGreaterThan(0);
    expect((metrics.tokenizer as { type: string }).type).toBe('wordpiece');
    expect(existsSync(join(out, 'ckpt-00000005.safetensors'))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')).arch).toBe('bert');
    console.log(`[bert cli] ${r.stdout.split('\n').find((l) => l.includes('MLM accuracy'))!.trim()}`);

    // --resume continues the BERT run (in-process, as the command)
    let stdout = '';
    let stderr = '';
    const io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } };
    const code = await main(['train', '--resume', '--out', out, '--steps', '7', '--backend', 'cpu'], io);
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/resumed from step 5/);
    expect(stdout).toMatch(/model bert, backend cpu, step 7/);
    const code2 = await main(['train', '--resume', '--model', 'gpt', '--out', out, '--steps', '9', '--backend', 'cpu'], io);
    expect(code2).toBe(2);
    expect(stderr).toMatch(/--model gpt differs from the resumed run's \(bert\)/);
  }, 120_000);

  it('refuses options that only apply to a GPT', async () => {
    const r = await kiln([...args, '--steps', '1', '--out', join(root, 'never'), '--prompt', 'hi']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--prompt applies to --model gpt/);
  }, 60_000);
});

describe('examples/bert_decades.ts', () => {
  it('classifies held-out State of the Union passages by decade better than the majority class', () => {
    const tsx = fileURLToPath(new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url));
    const example = fileURLToPath(new URL('../examples/bert_decades.ts', import.meta.url));
    const cwd = fileURLToPath(new URL('..', import.meta.url));
    const r = spawnSync(process.execPath, ['--import', tsx, example], { cwd, encoding: 'utf8', timeout: 170_000 });
    expect(r.status, r.stderr).toBe(0);
    const num = (re: RegExp): number => Number(re.exec(r.stdout)?.[1]);
    const acc = num(/^passages: accuracy ([\d.]+)%/m);
    const f1 = num(/^passages: accuracy [\d.]+%, macro F1 ([\d.]+)/m);
    const baseAcc = num(/^baseline: accuracy ([\d.]+)%/m);
    const baseF1 = num(/^baseline: accuracy [\d.]+%, macro F1 ([\d.]+)/m);
    console.log(`[bert decades] ${r.stdout.trim().split('\n').slice(-3).join(' | ')}`);
    expect(acc).toBeGreaterThan(baseAcc);
    expect(f1).toBeGreaterThan(baseF1);
  }, 180_000);
});
