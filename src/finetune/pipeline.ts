/**
 * `finetune(options)`: supervised fine-tuning of a model that `kiln train` saved, the pipeline
 * behind `kiln finetune`. It adds the chat template's tokens (resizing the embeddings), trains on
 * the responses of instruction data (a JSONL file, or a built-in set made from the default
 * corpus) packed into full rows, optionally through LoRA adapters only, evaluates exact match
 * and ROUGE-L of greedy answers to held-out prompts before and after, and writes a checkpoint
 * that `kiln sample` and `kiln eval` read (LoRA merged in), the tokenizer, the adapter folder
 * (with LoRA) and `metrics.json`.
 * @module
 */
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { packExamples, parseInstructions, type InstructionExample } from '../align/data.js';
import { IGNORE_INDEX } from '../align/losses.js';
import { loadTrained } from '../cli/sample.js';
import type { CheckpointUserExtra } from '../cli/train.js';
import { BPETokenizer } from '../data/bpe.js';
import type { TextDocument } from '../data/sources.js';
import { writeFileAtomic } from '../io/atomic.js';
import { saveCheckpoint } from '../io/checkpoint.js';
import type { GPT, GPTConfig } from '../nn/gpt.js';
import type { Module } from '../nn/module.js';
import { AdamW } from '../optim/adam.js';
import { LRScheduler, cosineLr } from '../optim/schedule.js';
import { tidy } from '../tensor/memory.js';
import { tensor } from '../tensor/ops/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { checkpointPath } from '../train/loop.js';
import { saveAdapters } from './node.js';
import { applyLoRA, removeLoRA } from './peft.js';
import { addSpecialTokens, chatExample, evaluateResponses, resizeTokenEmbeddings, type ResponseEval } from './sft.js';
import { applyStyle, parseStyleGuide, styleReport, styleSystemPrompt, type StyleGuide } from './style.js';

/** Options of {@link finetune}. */
export interface FinetuneOptions {
  /** A `kiln train` output folder or checkpoint file. */
  ckpt: string;
  /** Where to write the results (created). */
  out: string;
  /** Instruction data, JSONL (see parseInstructions); the built-in set when absent. */
  data?: string;
  /**
   * Train LoRA adapters of this rank (on every Linear of the blocks) instead of every weight;
   * the token embeddings train too when the chat tokens were added to the vocabulary.
   */
  lora?: number;
  /** Optimizer steps (default 200). */
  steps?: number;
  /** Peak learning rate (default 1e-3; 3e-3 with LoRA). */
  lr?: number;
  /** Packed rows per step (default 8). */
  batchRows?: number;
  /** Fraction of the examples held out for evaluation (default 0.1, at least 4 examples). */
  evalFraction?: number;
  /** Most held-out examples evaluated (default 40). */
  evalExamples?: number;
  /**
   * A style guide (JSON file, see parseStyleGuide): its system prompt goes before every
   * conversation, every response is rewritten to follow it, and the style score of the
   * held-out answers is reported before and after.
   */
  style?: string;
  backend: string;
  seed?: number;
  /** The built-in set's source documents (the default corpus), needed when `data` is absent. */
  documents?: readonly TextDocument[];
  /** Progress: each step's loss, and the evaluations. */
  onEvent?: (e: FinetuneEvent) => void;
}

/** What {@link finetune} reports as it goes. */
export type FinetuneEvent =
  | { type: 'data'; train: number; heldOut: number; source: string; skipped: number }
  | { type: 'eval'; when: 'before' | 'after'; result: ResponseEval; style?: number }
  | { type: 'step'; step: number; loss: number; lr: number };

/** What {@link finetune} returns (also written to `metrics.json`). */
export interface FinetuneResult {
  before: { exactMatch: number; rougeL: number; style?: number };
  after: { exactMatch: number; rougeL: number; style?: number };
  /** With a style guide: each rule's pass rate on the held-out answers after fine-tuning. */
  styleRules?: { rule: string; passRate: number }[];
  losses: number[];
  trainExamples: number;
  heldOutExamples: number;
  trainableParameters: number;
  parameters: number;
  /** The checkpoint written, and the adapter folder (with LoRA). */
  checkpoint: string;
  adapters?: string;
  seconds: number;
}

/**
 * Instructions made from a corpus, each checkable by exact match: the first word of a sentence,
 * the word that follows two given words in a sentence, and a phrase wrapped in brackets. The
 * answers are spans of the text, so a model trained on that text can learn to find them.
 */
export function builtinInstructions(documents: readonly TextDocument[], opts: { count?: number; seed?: number; maxWords?: number } = {}): InstructionExample[] {
  const count = opts.count ?? 600;
  const maxWords = opts.maxWords ?? 12;
  const sentences: string[][] = [];
  for (const d of documents)
    for (const s of d.text.split(/(?<=[.!?])\s+/)) {
      const words = s.trim().split(/\s+/).filter(Boolean);
      if (words.length >= 4 && words.length <= maxWords) sentences.push(words);
    }
  if (sentences.length === 0) throw new Error(`builtinInstructions: the corpus has no sentences of 4 to ${maxWords} words`);
  let state = (opts.seed ?? 0) * 2654435761 + 1;
  const rand = (n: number): number => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return Math.floor((state / 2147483648) * n);
  };
  const out: InstructionExample[] = [];
  for (let i = 0; i < count; i++) {
    const w = sentences[rand(sentences.length)]!;
    const text = w.join(' ');
    let prompt: string, response: string;
    switch (i % 3) {
      case 0:
        prompt = `First word of: ${text}`;
        response = w[0]!;
        break;
      case 1: {
        const j = rand(w.length - 2);
        prompt = `In "${text}", what follows "${w[j]} ${w[j + 1]}"?`;
        response = w[j + 2]!;
        break;
      }
      default: {
        const j = rand(w.length - 2);
        const phrase = w.slice(j, j + 3).join(' ');
        prompt = `Put in brackets: ${phrase}`;
        response = `[${phrase}]`;
      }
    }
    out.push({ messages: [{ role: 'user', content: prompt }, { role: 'assistant', content: response }] });
  }
  return out;
}

/**
 * @internal `steps` batches of `size` items (all of them when fewer), drawn without replacement
 * from a fresh Fisher–Yates shuffle each epoch (an LCG from `state`).
 */
export function* shuffledBatches<T>(items: readonly T[], size: number, steps: number, state: number): IterableIterator<T[]> {
  let order: number[] = [];
  let s = state;
  for (let step = 0; step < steps; step++) {
    if (order.length < Math.min(size, items.length)) {
      order = Array.from({ length: items.length }, (_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        s = (s * 1103515245 + 12345) % 2147483648;
        const j = s % (i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
    }
    yield order.splice(0, Math.min(size, items.length)).map((i) => items[i]!);
  }
}

/**
 * @internal Write a run's results to `dir` (created): the checkpoint at `step` (with `user` as
 * its run metadata), the tokenizer, and metrics.json, made from the checkpoint's path once it
 * is written. Returns that path.
 */
export async function writeRun(dir: string, model: Module, tokenizer: BPETokenizer, step: number, user: unknown, metrics: (checkpoint: string) => unknown): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = await saveCheckpoint(checkpointPath(dir, step), { model, step, extra: { user } });
  tokenizer.save(join(dir, 'tokenizer.json'));
  await writeFileAtomic(join(dir, 'metrics.json'), new TextEncoder().encode(`${JSON.stringify(metrics(file), null, 2)}\n`));
  return file;
}

/** @internal The text of the file a flag names, the flag naming it in the error. */
export function readArgFile(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${flag}: cannot read '${path}': ${(e as Error).message}`);
  }
}

/** @internal A `kiln train` model made ready for the chat template, and its run's metadata. */
export interface ChatModel {
  /** The model with its embeddings resized for the chat tokens (a copy: the loaded one is disposed). */
  model: GPT;
  /** The run's tokenizer with {@link CHAT_TOKENS} added. */
  tokenizer: BPETokenizer;
  /** The loaded model's configuration (its vocabulary before the chat tokens). */
  config: GPTConfig;
  /** The checkpoint read, and the configuration of the run that wrote it. */
  file: string;
  baseUser: CheckpointUserExtra;
}

/** @internal Load a `kiln train` output (`ckpt`) for fine-tuning or alignment; errors start with `op`. */
export async function loadChatModel(ckpt: string, backend: string, op: string): Promise<ChatModel> {
  const trained = await loadTrained(ckpt, backend);
  if (!(trained.tokenizer instanceof BPETokenizer)) {
    trained.model.dispose();
    throw new Error(`${op}: the model's tokenizer is ${trained.tokenizer.type}; the chat template needs a BPE tokenizer`);
  }
  const tokenizer = addSpecialTokens(trained.tokenizer);
  const model = tokenizer.vocabSize === trained.config.vocabSize ? trained.model : resizeTokenEmbeddings(trained.model, tokenizer.vocabSize);
  if (model !== trained.model) trained.model.dispose();
  return { model, tokenizer, config: trained.config, file: trained.file, baseUser: trained.run };
}

/** Fine-tune a `kiln train` model on instructions (see the module comment). */
export async function finetune(options: FinetuneOptions): Promise<FinetuneResult> {
  const t0 = performance.now();
  const { backend, out } = options;
  const seed = options.seed ?? 0;
  const emit = options.onEvent ?? ((): void => {});
  const steps = options.steps ?? 200;
  const rowsPerStep = options.batchRows ?? 8;
  const lr = options.lr ?? (options.lora ? 3e-3 : 1e-3);
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`finetune: steps must be a positive integer, got ${steps}`);

  const trained = await loadChatModel(options.ckpt, backend, 'finetune');
  const { model, tokenizer } = trained;

  // data: examples that fit the context, split into train and held-out
  let all: InstructionExample[];
  let source: string;
  if (options.data !== undefined) {
    all = parseInstructions(readArgFile(options.data, '--data'), options.data);
    source = options.data;
  } else {
    if (!options.documents) throw new Error('finetune: without data, the built-in set needs the corpus documents');
    all = builtinInstructions(options.documents, { seed });
    source = 'built-in instructions from the default corpus';
  }
  let guide: StyleGuide | undefined;
  if (options.style !== undefined) {
    const g = (guide = parseStyleGuide(readArgFile(options.style, '--style'), options.style));
    const system = styleSystemPrompt(g);
    all = all.map((e) => ({
      messages: [
        { role: 'system' as const, content: system },
        ...e.messages.filter((m) => m.role !== 'system').map((m, i, ms) => (i === ms.length - 1 ? { ...m, content: applyStyle(g, m.content) } : m)),
      ],
    }));
  }
  const block = model.config.blockSize;
  const encoded = all.map((e) => ({ e, t: chatExample(tokenizer, e.messages) }));
  const fits = encoded.filter(({ t }) => t.prompt.length + t.response.length <= block);
  // a user's file is never shortened silently; the built-in set drops what does not fit, and says so
  const skipped = all.length - fits.length;
  if (skipped && options.data !== undefined)
    throw new Error(`finetune: ${skipped} of ${all.length} examples do not fit the model's context of ${block} tokens (shorten them; none is dropped silently)`);
  const heldOut = Math.max(4, Math.round(fits.length * (options.evalFraction ?? 0.1)));
  if (fits.length - heldOut < 1) throw new Error(`finetune: ${fits.length} examples leave none to train on after holding out ${heldOut}`);
  const evalSet = fits.slice(0, Math.min(heldOut, options.evalExamples ?? 40)).map(({ e }) => e);
  const train = fits.slice(heldOut).map(({ t }) => t);
  emit({ type: 'data', train: train.length, heldOut: evalSet.length, source, skipped });

  if (options.lora) {
    // the chat tokens' embedding rows are new: they train with the adapters (PEFT's modules_to_save)
    const grown = tokenizer.vocabSize > trained.config.vocabSize;
    const trainable = grown ? ['transformer.wte', ...(model.config.tiedHead ? [] : ['lm_head'])] : [];
    applyLoRA(model, { rank: options.lora, alpha: 2 * options.lora, targets: ['c_attn', 'c_proj', 'c_fc'], generator: new Generator(seed), trainable });
  }
  const params = model.parameters().filter((p) => p.requiresGrad);
  const before = await evaluateResponses(model, tokenizer, evalSet, { maxNewTokens: 24 });
  const styleBefore = guide ? styleReport(guide, before.predictions).score : undefined;
  emit({ type: 'eval', when: 'before', result: before, ...(styleBefore !== undefined ? { style: styleBefore } : {}) });

  const opt = new AdamW(params, { lr, weightDecay: 0, betas: [0.9, 0.99] });
  const sched = new LRScheduler(opt, cosineLr({ warmupSteps: Math.min(20, Math.floor(steps / 10)), totalSteps: steps, minLr: lr / 10 }));
  const packed = packExamples(train, { blockSize: block, backend });
  const nRows = packed.rows.length;
  const losses: number[] = [];
  try {
    let step = 0;
    for (const pick of shuffledBatches(Array.from({ length: nRows }, (_, i) => i), rowsPerStep, steps, seed + 1)) {
      const l = tidy(() => {
        const rows = tensor(pick, [pick.length], { dtype: 'i32', backend });
        const sel = (t: Tensor): Tensor => t.indexSelect(0, rows);
        const labels = sel(packed.labels);
        // the summed negative log-likelihood of the scored tokens over their count, the head and
        // the loss fused (no [rows, T, V] logits)
        const scored = labels.ne(IGNORE_INDEX).cast('f32').sum().maximum(1);
        const nll = model.loss(sel(packed.idx), labels, { positions: sel(packed.positions), attnMask: sel(packed.attnMask), reduction: 'sum' });
        const loss = nll.div(scored);
        opt.zeroGrad();
        loss.backward();
        opt.step();
        sched.step();
        return loss;
      });
      const v = await l.item();
      l.dispose();
      if (!Number.isFinite(v)) throw new Error(`finetune: the loss is ${v} at step ${step + 1}; lower --lr`);
      losses.push(v);
      emit({ type: 'step', step: ++step, loss: v, lr: opt.paramGroups[0]!.lr });
    }
  } finally {
    for (const t of [packed.idx, packed.labels, packed.positions, packed.attnMask]) t.dispose();
  }

  const after = await evaluateResponses(model, tokenizer, evalSet, { maxNewTokens: 24 });
  const styleAfter = guide ? styleReport(guide, after.predictions) : undefined;
  emit({ type: 'eval', when: 'after', result: after, ...(styleAfter ? { style: styleAfter.score } : {}) });

  // results: adapters as trained, then the merged model as a kiln checkpoint
  let adapters: string | undefined;
  const trainable = params.reduce((n, p) => n + p.size, 0);
  if (options.lora) {
    adapters = join(out, 'adapter');
    await saveAdapters(adapters, model);
    removeLoRA(model, { merge: true });
  }
  // the base run's configuration rides along, so kiln sample and kiln eval read the result as theirs
  const extra: CheckpointUserExtra = { kind: 'kiln-train', model: { ...trained.config, vocabSize: tokenizer.vocabSize }, config: trained.baseUser.config };
  let result!: FinetuneResult;
  await writeRun(out, model, tokenizer, steps, extra, (checkpoint) => {
    result = {
      before: { exactMatch: before.exactMatch, rougeL: before.rougeL, ...(styleBefore !== undefined ? { style: styleBefore } : {}) },
      after: { exactMatch: after.exactMatch, rougeL: after.rougeL, ...(styleAfter ? { style: styleAfter.score } : {}) },
      ...(styleAfter ? { styleRules: styleAfter.rules } : {}),
      losses,
      trainExamples: train.length,
      heldOutExamples: evalSet.length,
      trainableParameters: trainable,
      parameters: model.numParameters(),
      checkpoint,
      ...(adapters ? { adapters } : {}),
      seconds: (performance.now() - t0) / 1000,
    };
    const samples = evalSet.slice(0, 8).map((e, i) => ({ prompt: e.messages[0]!.content, reference: e.messages[e.messages.length - 1]!.content, before: before.predictions[i], after: after.predictions[i] }));
    return { ...result, samples };
  });
  model.dispose();
  return result;
}
