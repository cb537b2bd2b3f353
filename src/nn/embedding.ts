/** `Embedding`: a lookup table of learned vectors. @module */
import { embedding } from '../tensor/ops/nn.js';
import type { Tensor } from '../tensor/tensor.js';
import { normalParam, type ParamOptions } from './init.js';
import { Module } from './module.js';

/** Options of {@link Embedding}. */
export interface EmbeddingOptions extends ParamOptions {
  /** Standard deviation of the N(0, std) initialisation (1 by default, as PyTorch; GPT-2 uses 0.02). */
  std?: number;
}

/**
 * A table of `numEmbeddings` vectors of size `embeddingDim` (as `torch.nn.Embedding`): i32 ids
 * `[...]` → `[..., dim]`. Parameter: `weight` `[num, dim]`.
 */
export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;

  constructor(numEmbeddings: number, embeddingDim: number, opts: EmbeddingOptions = {}) {
    super();
    for (const [n, v] of [['numEmbeddings', numEmbeddings], ['embeddingDim', embeddingDim]] as const)
      if (!Number.isInteger(v) || v < 0) throw new Error(`Embedding: ${n} must be a non-negative integer, got ${v}`);
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    this.registerParameter('weight', normalParam([numEmbeddings, embeddingDim], opts.std ?? 1, opts));
  }

  /** `[num, dim]`. */
  get weight(): Tensor {
    return this.getParameter('weight');
  }

  /** i32 ids `[...]` → vectors `[..., dim]`. */
  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight);
  }
}
