/**
 * `kiln eval`: the perplexity of a model saved by `kiln train` on a corpus, with its tokens per
 * second, and the unigram entropy of the corpus's tokens as the context-free baseline. The text
 * is tokenised with the run's tokenizer into shards cached beside the checkpoint; an llm.c token
 * file (`--data FILE.bin`) is read as it is, and needs no tokenizer (a run trained on token files
 * has none). With
 * `--report FILE`, also one offline HTML page (see report.ts): the run's loss curves from the
 * checkpoint's history, these results and the run's metrics.json as tables, and text samples.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { TokenDataset } from '../data/batches.js';
import { buildShards } from '../data/shards.js';
import { writeFileAtomic } from '../io/atomic.js';
import { generate } from '../nn/generate.js';
import { quantizeDynamic } from '../nn/quantize.js';
import { tensor } from '../tensor/ops/creation.js';
import { Generator } from '../tensor/random.js';
import { evaluate, unigramEntropy } from '../train/loop.js';
import { UsageError, type CommandSpec, type ParsedArgs } from './args.js';
import { formatCount } from './progress.js';
import { evalReport, type ReportTable } from './report.js';
import { loadTrained, loadTrainedWeights, readCheckpointInfo, resolveCheckpoint, weightBytesChange, type TrainedModel, type TrainedWeights } from './sample.js';
import { EOT, backendOption, checkOutFile, corpusSources, describeBackend, loadCorpus, makeFolder, selectBackend, threadsOption, tokenFileOf, type CommandIO } from './train.js';
import { openTokenFile } from '../data/token_files.js';

/** The declaration of `kiln eval`. */
export const evalSpec: CommandSpec = {
  name: 'eval',
  summary: 'perplexity and throughput of a model saved by kiln train on a corpus',
  usage: ['eval --ckpt DIR|FILE --data PATH [--batch-size N] [--max-batches N] [--int8] [--json] [--report FILE]'],
  options: [
    { name: 'ckpt', type: 'string', placeholder: 'DIR|FILE', help: 'the output folder of kiln train (its newest checkpoint is used) or a checkpoint file' },
    { name: 'data', type: 'string', placeholder: 'PATH', help: 'a text file (one document per paragraph), a folder of text files, a .jsonl file, or an llm.c token file (.bin: scored as its tokens are)' },
    { name: 'batch-size', type: 'int', min: 1, max: 2 ** 20, help: 'windows per batch', defaultText: '8' },
    { name: 'max-batches', type: 'int', min: 1, help: 'score only the first N batches', defaultText: 'all' },
    { name: 'int8', type: 'boolean', help: 'evaluate again with int8 Linear weights (dynamic quantization) and report the perplexity change and the speed-up against f32' },
    backendOption,
    threadsOption,
    { name: 'json', type: 'boolean', help: 'print the results as JSON' },
    { name: 'report', type: 'string', placeholder: 'FILE', help: "also write an offline HTML report: the run's loss curves, these results and its metrics.json as tables, and samples" },
    { name: 'report-samples', type: 'int', min: 0, max: 16, help: 'samples the report generates (seeds 0, 1, …), beside the run\'s sample.txt', defaultText: '2' },
  ],
};

/** Run `kiln eval`; returns the exit status. */
export async function evalCommand(args: ParsedArgs, io: CommandIO): Promise<number> {
  if (args.ckpt === undefined) throw new UsageError('--ckpt is required (the output folder of kiln train, or a checkpoint file)');
  if (args.data === undefined) throw new UsageError('--data is required (the text to evaluate on)');
  // bad paths fail before the backend loads
  await resolveCheckpoint(String(args.ckpt));
  const dataPath = String(args.data);
  const tokenFile = tokenFileOf('--data', dataPath) !== null;
  if (!tokenFile) corpusSources(dataPath);
  const reportPath = args.report === undefined ? null : resolve(String(args.report));
  if (reportPath !== null) checkOutFile(reportPath, '--report');
  if (reportPath === null && args.reportSamples !== undefined) throw new UsageError('--report-samples applies with --report FILE');
  const backend = await selectBackend(args.backend === undefined ? undefined : String(args.backend), args.threads as number | undefined);
  const trained = tokenFile ? await loadTrainedWeights(String(args.ckpt), backend) : await loadTrained(String(args.ckpt), backend);
  const { model, config, file, step } = trained;
  const { data, label, documents } = tokenFile ? openTokens(dataPath, config.vocabSize) : await tokenizeCorpus(trained as TrainedModel, dataPath);
  try {
    if (data.length < 2) throw new Error(`--data: '${label}' has ${data.length} token(s); at least 2 are needed`);
    const evalOptions = {
      blockSize: config.blockSize,
      batchSize: (args.batchSize as number | undefined) ?? 8,
      ...(args.maxBatches === undefined ? {} : { maxBatches: args.maxBatches as number }),
      backend,
    };
    const r = await evaluate(model, data, evalOptions);
    const q8 = args.int8 ? await int8Evaluation(trained, () => evaluate(model, data, evalOptions), r) : null;
    const entropy = unigramEntropy(data.window(0, data.length));
    const result = {
      checkpoint: file,
      step,
      data: label,
      ...(documents === null ? {} : { documents }),
      backend,
      tokens: r.tokens,
      loss: r.nll,
      perplexity: r.perplexity,
      unigramEntropy: entropy,
      unigramPerplexity: Math.exp(entropy),
      batches: r.batches,
      seconds: r.seconds,
      tokensPerSecond: r.tokens / r.seconds,
      ...q8,
    };
    if (reportPath !== null) {
      const html = await reportOf(trained, result, (args.reportSamples as number | undefined) ?? 2, backend);
      await makeFolder(dirname(reportPath), '--report');
      await writeFileAtomic(reportPath, new TextEncoder().encode(html));
      io.stderr.write(`report: ${reportPath}\n`);
    }
    if (args.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else
      io.stdout.write(
        [
          `kiln eval: ${file} (step ${step}) on ${label}, backend ${describeBackend(backend)}`,
          `  tokens           ${r.tokens}`,
          `  loss             ${r.nll.toFixed(4)} nats/token`,
          `  perplexity       ${r.perplexity.toFixed(2)}`,
          `  unigram entropy  ${entropy.toFixed(4)} (perplexity ${Math.exp(entropy).toFixed(2)})`,
          `  throughput       ${formatCount(result.tokensPerSecond)} tokens/s (${r.batches} batches in ${r.seconds.toFixed(2)}s)`,
          ...(q8
            ? [
                `  int8             ${q8.int8Layers} Linear layers, ${weightBytesChange(q8.floatWeightBytes, q8.int8WeightBytes)}`,
                `  int8 perplexity  ${q8.int8Perplexity.toFixed(2)} (${signed(100 * q8.int8PerplexityChange)}% against f32)`,
                `  int8 throughput  ${formatCount(q8.int8TokensPerSecond)} tokens/s (${q8.int8Speedup.toFixed(2)}× f32)`,
              ]
            : []),
          '',
        ].join('\n'),
      );
    return 0;
  } finally {
    data.close();
  }
}

// the text at `path` as the run's tokens: shards cached beside the checkpoint
async function tokenizeCorpus(t: TrainedModel, path: string): Promise<{ data: TokenDataset; label: string; documents: number }> {
  const corpus = await loadCorpus(path);
  const eos = t.tokenizer.specialTokens.get(EOT) ?? null;
  const shards = await buildShards(corpus.documents, t.tokenizer, { cacheDir: join(t.dir, 'cache'), eos });
  return { data: TokenDataset.open(shards), label: corpus.label, documents: corpus.documents.length };
}

// an llm.c token file as it is; its ids must fit the model's vocabulary (checked as batches read them)
function openTokens(path: string, vocabSize: number): { data: TokenDataset; label: string; documents: null } {
  try {
    return { data: openTokenFile(path, { vocabSize }), label: path, documents: null };
  } catch (e) {
    throw new Error(`--data: ${(e as Error).message.replace(/^openTokenFile: /, '')}`);
  }
}

/**
 * Quantize the model's Linear layers to int8 and evaluate again (`again`): the int8 perplexity,
 * its relative change and the speed-up against the f32 result `f32`.
 */
async function int8Evaluation(t: TrainedWeights, again: () => ReturnType<typeof evaluate>, f32: Awaited<ReturnType<typeof evaluate>>) {
  const q = quantizeDynamic(t.model);
  const r = await again();
  return {
    int8Layers: q.layers.length,
    floatWeightBytes: q.floatBytes,
    int8WeightBytes: q.int8Bytes,
    int8Loss: r.nll,
    int8Perplexity: r.perplexity,
    int8PerplexityChange: r.perplexity / f32.perplexity - 1,
    int8TokensPerSecond: r.tokens / r.seconds,
    int8Speedup: f32.seconds / r.seconds,
  };
}

const signed = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(2)}`;

/** The run's metrics.json beside the checkpoint, or null (a checkpoint copied on its own has none). */
function runMetrics(dir: string): Record<string, unknown> | null {
  const path = join(dir, 'metrics.json');
  if (!existsSync(path)) return null;
  try {
    const m = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return m !== null && typeof m === 'object' && !Array.isArray(m) ? (m as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

type Scalar = string | number | boolean | null;
const isScalar = (v: unknown): v is Scalar => v === null || ['string', 'number', 'boolean'].includes(typeof v);

// metrics.json's scalars (the sample is shown as a sample; nested objects one level deep, as a.b)
function metricRows(m: Record<string, unknown>): [string, Scalar][] {
  const rows: [string, Scalar][] = [];
  for (const [k, v] of Object.entries(m)) {
    if (k === 'sample' || k === 'kind') continue;
    if (isScalar(v)) rows.push([k, v]);
    else if (v !== null && typeof v === 'object' && !Array.isArray(v))
      for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) if (isScalar(v2)) rows.push([`${k}.${k2}`, v2]);
  }
  return rows;
}

// the HTML report of `kiln eval --report`: history from the checkpoint, tables, samples
async function reportOf(t: TrainedWeights, result: Record<string, unknown> & { loss: number; perplexity: number; unigramEntropy: number }, nSamples: number, backend: string): Promise<string> {
  const info = await readCheckpointInfo(t.file);
  const loop = (info.extra as { train?: { history?: unknown; evals?: unknown } } | null)?.train;
  const history = Array.isArray(loop?.history) ? (loop!.history as unknown[]) : [];
  const evals = Array.isArray(loop?.evals) ? (loop!.evals as unknown[]) : [];
  const train = history.filter((h): h is [number, number] => Array.isArray(h) && typeof h[0] === 'number' && typeof h[1] === 'number').map(([step, loss]) => ({ step, loss }));
  const val = evals.filter((e): e is [number, number] => Array.isArray(e) && typeof e[0] === 'number' && typeof e[1] === 'number').map(([step, valLoss]) => ({ step, valLoss }));
  const tables: ReportTable[] = [{ title: 'Evaluation', rows: Object.entries(result).filter((e): e is [string, Scalar] => isScalar(e[1])) }];
  const metrics = runMetrics(t.dir);
  if (metrics) tables.push({ title: "The run's metrics.json", rows: metricRows(metrics) });
  const samples: { label: string; prompt: string; text: string }[] = [];
  if (typeof metrics?.sample === 'string') samples.push({ label: "kiln train's sample (metrics.json)", prompt: '', text: metrics.sample });
  const tok = t.tokenizer;
  const eos = tok?.specialTokens.get(EOT) ?? 0;
  // without a tokenizer (a token-file run) there is no text to show
  for (let seed = 0; tok && seed < nSamples; seed++) {
    const idx = tensor(Int32Array.from([eos]), [1, 1], { backend, dtype: 'i32' });
    const ids = await generate(t.model, idx, { maxNewTokens: Math.min(80, t.config.blockSize * 4), temperature: 0.8, topK: 40, generator: new Generator(seed) });
    const text = tok.decode(Array.from(await ids.data()).slice(1));
    idx.dispose();
    ids.dispose();
    samples.push({ label: `seed ${seed} (temperature 0.8, top-k 40)`, prompt: '', text });
  }
  return evalReport({
    title: `kiln eval: ${t.file}`,
    subtitle: [`step ${t.step}; data ${String(result.data)}; backend ${backend}`, `written ${new Date().toISOString()}`],
    train,
    val,
    baseline: { value: result.unigramEntropy, label: `unigram entropy ${result.unigramEntropy.toFixed(3)}` },
    tables,
    samples,
  });
}
