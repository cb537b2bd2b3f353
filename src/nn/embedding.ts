/** `Embedding`: a lookup table of learned vectors. @module */
import { embedding } from '../tensor/ops/nn.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkNumber } from '../tensor/validate.js';
import { makeNormal, type ParamOptions } from './init.js';
import { Module } from './module.js';
import { options, PARAM_KEYS, paramOptions, size } from './validate.js';
import { asOp } from '../tensor/ops/util.js';

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
    const op = 'Embedding';
    // zero-sized tables are allowed, as in PyTorch
    this.numEmbeddings = size(op, 'numEmbeddings', numEmbeddings, 0);
    this.embeddingDim = size(op, 'embeddingDim', embeddingDim, 0);
    const o = options(op, opts, [...PARAM_KEYS, 'std']);
    const std = o.std === undefined ? 1 : checkNumber(op, 'std', o.std, { min: 0 });
    this.registerParameter('weight', makeNormal(op, [numEmbeddings, embeddingDim], std, paramOptions(op, o)));
  }

  /** `[num, dim]`. */
  get weight(): Tensor {
    return this.getParameter('weight');
  }

  /** i32 ids `[...]` → vectors `[..., dim]`. */
  forward(ids: Tensor): Tensor {
    return asOp('Embedding.forward', () => embedding(ids, this.weight));
  }
}
