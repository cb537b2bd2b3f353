/**
 * `kiln sample`: load a model that `kiln train` saved and continue a prompt. Also the loading
 * code `kiln eval` shares: find the newest checkpoint in a folder, read the model's configuration
 * from the checkpoint's own metadata, rebuild the GPT and load its weights, and load the
 * tokenizer saved beside it (or, for a checkpoint saved on its own, the one in its metadata).
 * @module
 */
import { existsSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { loadTokenizer, type Tokenizer, type TokenizerJSON } from '../data/tokenizer.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { generate } from '../nn/generate.js';
import { GPT, type GPTConfig } from '../nn/gpt.js';
import { quantizeDynamic } from '../nn/quantize.js';
import { tensor } from '../tensor/ops/creation.js';
import { Generator } from '../tensor/random.js';
import { latestCheckpoint } from '../train/loop.js';
import { UsageError, type CommandSpec, type ParsedArgs } from './args.js';
import { EOT, MAX_SAMPLE_TOKENS, backendOption, fsReason, selectBackend, threadsOption, type CheckpointUserExtra, type CommandIO } from './train.js';

/** The declaration of `kiln sample`. */
export const sampleSpec: CommandSpec = {
  name: 'sample',
  summary: 'generate text from a model saved by kiln train',
  usage: ['sample --ckpt DIR|FILE [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--int8] [--backend NAME] [--threads N]'],
  options: [
    { name: 'ckpt', type: 'string', placeholder: 'DIR|FILE', help: 'the output folder of kiln train (its newest checkpoint is used) or a checkpoint file' },
    { name: 'prompt', type: 'string', empty: true, placeholder: 'TEXT', help: 'the text to continue', defaultText: 'the start of a document' },
    { name: 'tokens', type: 'int', min: 0, max: MAX_SAMPLE_TOKENS, help: 'tokens to generate', defaultText: '200' },
    { name: 'temperature', type: 'number', min: 0, help: 'softmax temperature (0: greedy)', defaultText: '0.8' },
    { name: 'top-k', type: 'int', min: 1, help: 'sample among the k most likely tokens', defaultText: '40' },
    { name: 'top-p', type: 'number', above: 0, max: 1, help: 'sample among the most likely tokens holding probability p (nucleus)' },
    { name: 'seed', type: 'int', min: 0, help: 'seed of the draws', defaultText: '0' },
    { name: 'int8', type: 'boolean', help: 'multiply by int8 copies of the Linear weights (dynamic quantization: faster on cpu, slightly different logits)' },
    backendOption,
    threadsOption,
  ],
};

/** A model loaded from a `kiln train` checkpoint. */
export interface TrainedModel {
  model: GPT;
  tokenizer: Tokenizer;
  config: GPTConfig;
  /** The run's metadata in the checkpoint (its model and run configuration). */
  run: CheckpointUserExtra;
  /** The checkpoint file read, and its folder. */
  file: string;
  dir: string;
  step: number;
}

/** The checkpoint file `ckpt` names: itself, or the newest `ckpt-*.safetensors` in the folder. */
export async function resolveCheckpoint(ckpt: string): Promise<{ file: string; dir: string }> {
  let st;
  try {
    st = await stat(ckpt);
  } catch (e) {
    throw new Error(`--ckpt: cannot read '${ckpt}': ${fsReason(e)}`);
  }
  if (st.isDirectory()) {
    const latest = await latestCheckpoint(ckpt);
    if (!latest) throw new Error(`--ckpt: no checkpoint (ckpt-*.safetensors) in '${ckpt}'`);
    return { file: resolve(latest.path), dir: resolve(ckpt) };
  }
  // a FIFO or a device would block the read
  if (!st.isFile()) throw new Error(`--ckpt: '${ckpt}' is not a file or a folder`);
  return { file: resolve(ckpt), dir: dirname(resolve(ckpt)) };
}

/**
 * The JSON metadata of a checkpoint (`kiln.checkpoint` in the safetensors header), read without
 * the tensors. Throws a one-line message when the file is not a safetensors file or not a kiln
 * checkpoint.
 */
export async function readCheckpointInfo(file: string): Promise<{ step: number; extra: unknown }> {
  const bad = (why: string): never => {
    throw new Error(`'${file}' is corrupt or not a kiln checkpoint: ${why}`);
  };
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size < 8) bad(`${size} bytes is too short for a safetensors file`);
    const head = Buffer.alloc(8);
    await fh.read(head, 0, 8, 0);
    const n = Number(head.readBigUInt64LE(0));
    if (!(n > 1 && 8 + n <= size && n < 1 << 28)) bad(`the header length ${n} does not fit the file's ${size} bytes`);
    const json = Buffer.alloc(n);
    await fh.read(json, 0, n, 8);
    let header: { __metadata__?: Record<string, string> };
    try {
      header = JSON.parse(json.toString('utf8')) as typeof header;
    } catch {
      return bad('the header is not valid JSON');
    }
    const meta = header?.__metadata__?.['kiln.checkpoint'];
    if (typeof meta !== 'string') bad("no 'kiln.checkpoint' metadata");
    let info: { step?: unknown; extra?: unknown };
    try {
      info = JSON.parse(meta!) as typeof info;
    } catch {
      return bad("the 'kiln.checkpoint' metadata is not valid JSON");
    }
    if (typeof info.step !== 'number') bad('the metadata has no step');
    return { step: info.step as number, extra: info.extra };
  } finally {
    await fh.close();
  }
}

/**
 * Load the GPT and tokenizer of a `kiln train` output folder or checkpoint file (the `--ckpt` of
 * sample and eval) onto `backend`; every error names `--ckpt`.
 */
export async function loadTrained(ckpt: string, backend: string): Promise<TrainedModel> {
  const t = await loadTrainedWeights(ckpt, backend);
  if (t.tokenizer) return t as TrainedModel;
  t.model.dispose();
  throw new Error(`--ckpt: ${t.noTokenizer}`);
}

/** A run's model, and its tokenizer where it has one (a run trained on llm.c token files has none: `noTokenizer` says why). */
export type TrainedWeights = Omit<TrainedModel, 'tokenizer'> & { tokenizer: Tokenizer | null; noTokenizer?: string };

/** {@link loadTrained} for what needs no tokenizer (scoring a token file): the model loads without one. */
export async function loadTrainedWeights(ckpt: string, backend: string): Promise<TrainedWeights> {
  try {
    return await loadTrainedFrom(await resolveCheckpoint(ckpt), backend);
  } catch (e) {
    const message = (e as Error).message ?? String(e);
    throw message.startsWith('--ckpt') ? e : new Error(`--ckpt: ${message}`);
  }
}

async function loadTrainedFrom({ file, dir }: { file: string; dir: string }, backend: string): Promise<TrainedWeights> {
  let info;
  try {
    info = await readCheckpointInfo(file);
  } catch (e) {
    if (!(e as NodeJS.ErrnoException).code) throw e;
    throw new Error(`cannot read '${file}': ${fsReason(e)}`);
  }
  const user = (info.extra as { user?: CheckpointUserExtra } | null)?.user;
  if (!user || user.kind !== 'kiln-train' || !user.model) throw new Error(`'${file}' was not written by kiln train (no model configuration in its metadata)`);
  const model = new GPT(user.model, { backend });
  const loaded = await loadCheckpoint(file, { model, backend }); // checks the data's checksum
  const tokPath = join(dir, 'tokenizer.json');
  // a checkpoint saved on its own (the browser example's) carries its tokenizer's JSON in its metadata
  const embedded = (user as CheckpointUserExtra & { tokenizer?: unknown }).tokenizer;
  let tokenizer: Tokenizer | null = null;
  let noTokenizer: string | undefined;
  let tokSource = tokPath;
  if (existsSync(tokPath)) tokenizer = loadTokenizer(tokPath);
  else if (embedded !== undefined && embedded !== null) {
    tokSource = `the tokenizer embedded in '${file}'`;
    try {
      tokenizer = loadTokenizer(embedded as TokenizerJSON);
    } catch (e) {
      throw new Error(`no tokenizer.json beside the checkpoint in ${dir}, and ${tokSource} cannot be read: ${(e as Error).message}`);
    }
  } else {
    noTokenizer = `no tokenizer.json beside the checkpoint in ${dir} (kiln train writes one in its output folder; a run trained on llm.c token files has none: kiln eval --data FILE.bin scores it on a token file)`;
  }
  if (tokenizer && tokenizer.vocabSize !== user.model.vocabSize)
    throw new Error(`${tokSource} has ${tokenizer.vocabSize} tokens, the model ${user.model.vocabSize}: they are not from the same run`);
  model.eval();
  return { model, tokenizer, ...(noTokenizer ? { noTokenizer } : {}), config: user.model, run: user, file, dir, step: loaded.step };
}

/** Run `kiln sample`; returns the exit status. */
export async function sampleCommand(args: ParsedArgs, io: CommandIO): Promise<number> {
  if (args.ckpt === undefined) throw new UsageError('--ckpt is required (the output folder of kiln train, or a checkpoint file)');
  const topP = args.topP as number | undefined;
  await resolveCheckpoint(String(args.ckpt)); // a bad --ckpt fails before the backend loads
  const backend = await selectBackend(args.backend === undefined ? undefined : String(args.backend), args.threads as number | undefined);
  const { model, tokenizer, config, file, step } = await loadTrained(String(args.ckpt), backend);
  if (args.int8) {
    const q = quantizeDynamic(model);
    io.stderr.write(`int8: ${q.layers.length} Linear layers quantized, ${weightBytesChange(q.floatBytes, q.int8Bytes)}\n`);
  }
  const prompt = args.prompt === undefined ? '' : String(args.prompt);
  const eos = tokenizer.specialTokens.get(EOT);
  const promptIds = prompt ? tokenizer.encode(prompt) : [eos ?? 0];
  if (promptIds.length === 0) throw new UsageError('--prompt encodes to no tokens');
  const context = promptIds.slice(-config.blockSize); // generate slides the window from here on
  const idx = tensor(Int32Array.from(context), [1, context.length], { backend, dtype: 'i32' });
  const t0 = performance.now();
  const outIds = await generate(model, idx, {
    maxNewTokens: (args.tokens as number | undefined) ?? 200,
    temperature: (args.temperature as number | undefined) ?? 0.8,
    topK: (args.topK as number | undefined) ?? 40,
    ...(topP === undefined ? {} : { topP }),
    generator: new Generator((args.seed as number | undefined) ?? 0),
  });
  const ids = Array.from(await outIds.data()).slice(context.length);
  idx.dispose();
  outIds.dispose();
  const secs = (performance.now() - t0) / 1000;
  io.stderr.write(`sampled ${ids.length} tokens from ${file} (step ${step}) in ${secs.toFixed(2)}s (${(ids.length / secs).toFixed(1)} tokens/s${args.int8 ? ', int8' : ''})\n`);
  io.stdout.write(`${prompt}${tokenizer.decode(ids)}\n`);
  return 0;
}

/** `weights 4.00 → 1.03 MiB`: the f32 and int8 sizes of the quantized weights (kiln sample and eval --int8). */
export function weightBytesChange(floatBytes: number, int8Bytes: number): string {
  const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(2);
  return `weights ${mib(floatBytes)} → ${mib(int8Bytes)} MiB`;
}
