/**
 * The named training configurations of `kiln train --config NAME`: model shape, tokenizer size,
 * batch, schedule and the intervals of evaluation, checkpoints and logging. Every one uses the
 * recipe of nanoGPT and GPT-2 training: AdamW (β₂ 0.95 or 0.99) with weight decay on the
 * matrices only, linear warm-up then cosine decay to a tenth of the peak rate, gradient clipping
 * at 1.0. `gpt2-124m` is GPT-2 small with the recipe of Karpathy's reproduction (see its entry).
 * @module
 */

/** A complete `kiln train` configuration. */
export interface RunConfig {
  /** The name `--config` takes. */
  name: string;
  /** One line for `--help`. */
  description: string;
  /** BPE vocabulary size (256 bytes + merges + `<|endoftext|>`). */
  vocabSize: number;
  /** Context length T. */
  blockSize: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  dropout: number;
  /** Sequences per micro-batch. */
  batchSize: number;
  /** Micro-batches per optimizer step. */
  gradAccum: number;
  /** Optimizer steps. */
  steps: number;
  /** Peak learning rate (after warm-up). */
  lr: number;
  /** The rate the cosine decays to. */
  minLr: number;
  warmupSteps: number;
  /** AdamW decoupled weight decay on rank-≥2 parameters. */
  weightDecay: number;
  betas: [number, number];
  /** Maximum total gradient norm. */
  clip: number;
  evalEvery: number;
  /** Validation batches per evaluation during training (the final evaluation reads the whole split). */
  evalBatches: number;
  checkpointEvery: number;
  /** Checkpoints kept in the output folder (the newest). */
  keepCheckpoints: number;
  /** Log a line every this many steps when stderr is not a terminal. */
  logEvery: number;
  /** Fraction of documents held out for validation. */
  valFraction: number;
  /** Seed of initialisation, batches and the split. */
  seed: number;
  /** Tokens sampled at the end. */
  sampleTokens: number;
  temperature: number;
  topK: number;
  /** Mixed precision of the training steps (`train()`'s `precision`); f32 when absent. */
  precision?: 'f32' | 'bf16' | 'f16';
}

const RECIPE = { dropout: 0, gradAccum: 1, weightDecay: 0.1, clip: 1.0, valFraction: 0.05, seed: 1337, temperature: 0.8, topK: 40, keepCheckpoints: 2 };

/** The configurations by name. */
export const CONFIGS: Readonly<Record<string, RunConfig>> = Object.freeze({
  micro: {
    ...RECIPE,
    name: 'micro',
    description: 'for tests and smoke runs: 2 layers, width 32, context 16; seconds on any backend',
    vocabSize: 300,
    blockSize: 16,
    nLayer: 2,
    nHead: 2,
    nEmbd: 32,
    batchSize: 8,
    steps: 30,
    lr: 3e-3,
    minLr: 3e-4,
    warmupSteps: 5,
    betas: [0.9, 0.99],
    evalEvery: 10,
    evalBatches: 4,
    checkpointEvery: 10,
    logEvery: 5,
    valFraction: 0.1,
    sampleTokens: 40,
  },
  tiny: {
    ...RECIPE,
    name: 'tiny',
    description: 'the default: 4 layers, 4 heads, width 128, context 128, BPE 2048, batch 16, 1000 steps; about 6 min on 2 cores (cpu backend)',
    vocabSize: 2048,
    blockSize: 128,
    nLayer: 4,
    nHead: 4,
    nEmbd: 128,
    batchSize: 16,
    // measured: about 350 ms per step on the cpu backend with 2 Zen 5 cores, so the steps take
    // about 6 minutes, and data preparation plus tokenizer training about 5 seconds more
    steps: 1000,
    lr: 1e-3,
    minLr: 1e-4,
    warmupSteps: 100,
    betas: [0.9, 0.99],
    evalEvery: 250,
    evalBatches: 8,
    checkpointEvery: 500,
    logEvery: 100,
    sampleTokens: 200,
  },
  small: {
    ...RECIPE,
    name: 'small',
    description: '6 layers, 6 heads, width 384, context 256, BPE 4096, batch 16 × 2 accumulation, 5000 steps, dropout 0.1; for many cores or a GPU',
    vocabSize: 4096,
    blockSize: 256,
    nLayer: 6,
    nHead: 6,
    nEmbd: 384,
    dropout: 0.1,
    batchSize: 16,
    gradAccum: 2,
    steps: 5000,
    lr: 6e-4,
    minLr: 6e-5,
    warmupSteps: 200,
    betas: [0.9, 0.95],
    evalEvery: 250,
    evalBatches: 20,
    checkpointEvery: 500,
    logEvery: 50,
    sampleTokens: 300,
  },
  // GPT-2 small as OpenAI released it (Radford et al. 2019: 12 layers, 12 heads, width 768,
  // context 1024, GPT-2's 50257 tokens, tied head, GPT-2's initialisation: kiln's GPT defaults),
  // trained with the recipe of Karpathy's GPT-2 (124M) reproduction, build-nanogpt's
  // train_gpt2.py (the recipe llm.c's train_gpt2.cu runs for its 124M model): AdamW β (0.9, 0.95),
  // eps 1e-8, weight decay 0.1 on the matrices, clip 1.0, 524288 = 2^19 tokens per step, peak lr
  // 6e-4 after 715 linear warm-up steps, cosine to 6e-5 at step 19073 (one pass over FineWeb's
  // 10B tokens at that batch). The micro-batch of 16 × 1024 with 32 accumulation steps makes the
  // 2^19 tokens; a GPU with the memory can take --batch-size 32 --grad-accum 16 (or 64 × 8, as
  // llm.c on an 80 GB GPU).
  'gpt2-124m': {
    ...RECIPE,
    name: 'gpt2-124m',
    description: "GPT-2 small (124M): 12 layers, 12 heads, width 768, context 1024, GPT-2's 50257 tokens; build-nanogpt's recipe (lr 6e-4, warm-up 715, cosine to step 19073, 2^19 tokens a step), bf16; for --backend cuda and llm.c token files (--data FILE.bin)",
    vocabSize: 50257,
    blockSize: 1024,
    nLayer: 12,
    nHead: 12,
    nEmbd: 768,
    batchSize: 16,
    gradAccum: 32,
    steps: 19073,
    lr: 6e-4,
    minLr: 6e-5,
    warmupSteps: 715,
    betas: [0.9, 0.95],
    evalEvery: 250,
    evalBatches: 20,
    checkpointEvery: 5000,
    logEvery: 10,
    sampleTokens: 64,
    precision: 'bf16',
  },
});

/** The configuration called `name` (a copy); throws naming the ones that exist. */
export function getConfig(name: string): RunConfig {
  const c = CONFIGS[name];
  if (!c) throw new Error(`unknown config '${name}'; choose one of ${Object.keys(CONFIGS).join(', ')}`);
  return { ...c, betas: [...c.betas] };
}
