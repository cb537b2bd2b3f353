/**
 * `GPT`: a GPT-2 style decoder-only language model, named as nanoGPT and Hugging Face GPT-2
 * (`transformer.wte`, `transformer.wpe`, `transformer.h.N.{ln_1, attn.{c_attn, c_proj}, ln_2,
 * mlp.{c_fc, c_proj}}`, `transformer.ln_f`, `lm_head`), so PyTorch checkpoints map 1:1. With
 * `moe`, a block's feed-forward is `moe.{router, experts.E.{c_fc, c_proj}}` instead of `mlp`.
 * @module
 */
import { checkpoint } from '../autograd/checkpoint.js';
import { isGradEnabled } from '../autograd/tape.js';
import { arange } from '../tensor/ops/creation.js';
import { crossEntropy, type LinearCrossEntropyOptions } from '../tensor/ops/nn.js';
import { narrow } from '../tensor/ops/shape_ops.js';
import { asOp, live, relabel } from '../tensor/ops/util.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { isFloat } from '../backend/dtype.js';
import { checkBoolean, checkNumber, show } from '../tensor/validate.js';
import { resolveAttentionVariant } from './attention.js';
import { Block } from './block.js';
import { Dropout } from './dropout.js';
import { Embedding } from './embedding.js';
import { GPT2_INIT_STD, residualStd, type ParamOptions } from './init.js';
import { KVCache } from './kv_cache.js';
import { Linear } from './linear.js';
import type { MLPActivation } from './mlp.js';
import { Module, ModuleList } from './module.js';
import { MOE_CONFIG_KEYS, resolveMoEConfig, type MoEConfig, type ResolvedMoEConfig } from './moe.js';
import { LayerNorm } from './norm.js';
import { checkConfig, options, PARAM_KEYS, paramOptions, size } from './validate.js';

/** The keys of {@link GPTConfig}. */
const GPT_KEYS = ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd', 'dropout', 'bias', 'rope', 'ropeBase', 'tiedHead', 'activation', 'layerNormEps',
  'gradientCheckpointing', 'window', 'kvHeads', 'moe'] as const;

/** The keys of {@link GPTMoEConfig}. */
const GPT_MOE_KEYS = [...MOE_CONFIG_KEYS, 'auxLossWeight', 'every', 'hidden'] as const;

/** Mixture-of-experts feed-forwards in a {@link GPT}: the routing of {@link MoE}, and where and how much. */
export interface GPTMoEConfig extends MoEConfig {
  /**
   * The coefficient α of the blocks' mean load-balancing loss in `GPT.forward`'s loss while
   * training: loss = cross-entropy + α · mean aux loss (default 0.01, as Switch).
   */
  auxLossWeight?: number;
  /**
   * 1 (default): every block's feed-forward is a mixture of experts; 2: every other block's,
   * blocks 1, 3, 5, … (as Switch and GShard), the others keep their MLP.
   */
  every?: 1 | 2;
  /** Each expert's hidden width (4·nEmbd by default). */
  hidden?: number;
}

/** A checked {@link GPTMoEConfig} with its defaults filled in. */
export interface ResolvedGPTMoEConfig extends ResolvedMoEConfig {
  auxLossWeight: number;
  every: 1 | 2;
  hidden: number;
}

/** The shape of a {@link GPT}. */
export interface GPTConfig {
  /** Number of tokens V. */
  vocabSize: number;
  /** Context length T: the longest sequence the model reads. */
  blockSize: number;
  /** Number of transformer layers L. */
  nLayer: number;
  /** Attention heads H per layer. */
  nHead: number;
  /** Model width C (a multiple of nHead). */
  nEmbd: number;
  /** Dropout after the embeddings and on every residual branch (default 0). */
  dropout?: number;
  /** Biases in the linear layers and layer norms (default true, as GPT-2). */
  bias?: boolean;
  /**
   * Rotary position embeddings on q and k (GPT-NeoX/LLaMA half-rotation) instead of the
   * learned `wpe` (default false).
   */
  rope?: boolean;
  /** Rotary θ base (default 10000). */
  ropeBase?: number;
  /** `lm_head.weight` is the same tensor as `transformer.wte.weight` (default true, as GPT-2). */
  tiedHead?: boolean;
  /**
   * The MLP's GELU: `'gelu_tanh'` (default), the tanh approximation GPT-2 uses (Hugging Face's
   * `gelu_new`), or `'gelu'`, the exact erf form.
   */
  activation?: MLPActivation;
  /** Epsilon of every layer norm (`ln_1`, `ln_2`, `ln_f`); default 1e-5, as GPT-2. */
  layerNormEps?: number;
  /**
   * Recompute each block's activations in the backward instead of keeping them
   * ({@link checkpoint}), when training with grad on: less memory, one more forward of the
   * blocks per step (default false). The gradients are the same. The last block is not
   * recomputed (the backward starts with it): its activations are kept instead.
   */
  gradientCheckpointing?: boolean;
  /** Sliding-window attention in every layer: each position sees the `window` latest (itself included); null (default): all. */
  window?: number | null;
  /** Key/value heads of grouped-query attention (divides nHead; default nHead). */
  kvHeads?: number;
  /**
   * Mixture-of-experts feed-forwards ({@link MoE}) in every block or every other one, and the
   * weight of their load-balancing loss. A model without (the default) has no `moe` entry in its
   * resolved `config`, so its config and checkpoints are as before.
   */
  moe?: GPTMoEConfig;
}

/** Options of {@link GPT.forward}. */
export interface GPTForwardOptions {
  /** Incremental decoding: `idx` holds only new positions, appended to this cache. */
  cache?: KVCache;
  /** Compute logits for the last position only (`[B, 1, V]`), as generation needs. */
  lastOnly?: boolean;
  /**
   * Position of each token `[B, T]` i32 (Hugging Face's `position_ids`; default 0, 1, …): packed
   * examples restart at 0. Learned position embeddings only (not with `rope` or a cache).
   */
  positions?: Tensor;
  /**
   * Which keys each query may see besides causality, bool `[B, 1, T, T]` (true: visible), as
   * {@link packedAttention}'s `attnMask`: packed examples see only their own tokens.
   */
  attnMask?: Tensor;
  /**
   * Added to the token embeddings `wte(idx)`, `[B, T, C]` floating (before the position
   * embeddings and dropout): the perturbation of adversarial training on embeddings
   * (`train({ adversarial })`); gradients flow into it when it requires grad.
   */
  embeddingDelta?: Tensor;
}

/** Options of {@link GPT.loss}: those of {@link GPTForwardOptions} that apply to training, and the chunk size. */
export interface GPTLossOptions extends Pick<GPTForwardOptions, 'positions' | 'attnMask' | 'embeddingDelta'> {
  /** Rows of logits computed at a time ({@link LinearCrossEntropyOptions.chunkRows}). */
  chunkRows?: number;
  /** 'mean' over the targets that are not −100 (default), or their 'sum' (a caller dividing by its own count). */
  reduction?: 'mean' | 'sum';
}

/** The layout extras of a forward pass (packed sequences), and the embedding perturbation. */
interface Layout {
  positions?: Tensor;
  attnMask?: Tensor;
  embeddingDelta?: Tensor;
}

function checkLayout(op: string, idx: Tensor, o: { positions?: Tensor; attnMask?: Tensor }, c: Required<GPTConfig>, cached: boolean): Layout {
  const [b, t] = idx.shape as [number, number];
  const out: Layout = {};
  if (o.positions !== undefined && o.positions !== null) {
    live(op, o.positions);
    if (c.rope || cached) throw new Error(`${op}: positions need learned position embeddings and no cache${c.rope ? ' (this model uses rope)' : ''}`);
    if (o.positions.dtype !== 'i32' || fmt(o.positions.shape) !== fmt([b, t])) throw new Error(`${op}: positions must be [${b}, ${t}] i32 like idx, got ${fmt(o.positions.shape)} ${o.positions.dtype}`);
    out.positions = o.positions;
  }
  if (o.attnMask !== undefined && o.attnMask !== null) {
    live(op, o.attnMask);
    if (cached) throw new Error(`${op}: attnMask cannot be used with a cache`);
    if (o.attnMask.dtype !== 'bool' || fmt(o.attnMask.shape) !== fmt([b, 1, t, t])) throw new Error(`${op}: attnMask must be [${b}, 1, ${t}, ${t}] bool, got ${fmt(o.attnMask.shape)} ${o.attnMask.dtype}`);
    out.attnMask = o.attnMask;
  }
  return out;
}

function checkDelta(op: string, idx: Tensor, delta: unknown, nEmbd: number): Tensor | undefined {
  if (delta === undefined || delta === null) return undefined;
  if (!(delta instanceof Tensor)) throw new Error(`${op}: embeddingDelta must be a [B, T, C] floating tensor, got ${show(delta)}`);
  live(op, delta);
  const [b, t] = idx.shape as [number, number];
  if (!isFloat(delta.dtype) || fmt(delta.shape) !== fmt([b, t, nEmbd]))
    throw new Error(`${op}: embeddingDelta must be [${b}, ${t}, ${nEmbd}] floating like the token embeddings, got ${fmt(delta.shape)} ${delta.dtype}`);
  return delta;
}

/** What {@link GPT.forward} returns. */
export interface GPTOutput {
  /** `[B, T, V]` (`[B, 1, V]` with `lastOnly`). */
  logits: Tensor;
  /**
   * Mean cross-entropy over the targets that are not −100, when targets were given; for a model
   * with experts in training mode, plus `moe.auxLossWeight` · {@link auxLoss}.
   */
  loss?: Tensor;
  /** With experts: the mean over the MoE blocks of their load-balancing losses (not weighted). */
  auxLoss?: Tensor;
}

function resolveMoE(op: string, value: unknown, nLayer: number, nEmbd: number): ResolvedGPTMoEConfig | null {
  if (value === undefined || value === null) return null;
  const m = value as GPTMoEConfig;
  const base = resolveMoEConfig(op, m, GPT_MOE_KEYS, 'config.moe.');
  const auxLossWeight = m.auxLossWeight === undefined ? 0.01 : checkNumber(op, 'config.moe.auxLossWeight', m.auxLossWeight, { min: 0 });
  if (m.every !== undefined && m.every !== 1 && m.every !== 2) throw new Error(`${op}: config.moe.every must be 1 or 2, got ${show(m.every)}`);
  const every = m.every ?? 1;
  if (every > nLayer) throw new Error(`${op}: config.moe.every is ${every} (experts in blocks 1, 3, …) but nLayer is ${nLayer}: no block would have experts`);
  const hidden = m.hidden === undefined ? 4 * nEmbd : size(op, 'config.moe.hidden', m.hidden);
  return { ...base, auxLossWeight, every, hidden };
}

// whether block i of a model has experts
const isMoEBlock = (moe: ResolvedGPTMoEConfig | null, i: number): moe is ResolvedGPTMoEConfig => moe !== null && i % moe.every === moe.every - 1;

function resolveConfig(op: string, config: GPTConfig): Required<GPTConfig> {
  const c = checkConfig(op, config, GPT_KEYS);
  for (const k of ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd'] as const) size(op, `config.${k}`, c[k]);
  if (c.nEmbd % c.nHead !== 0) throw new Error(`${op}: nEmbd (${c.nEmbd}) must be divisible by nHead (${c.nHead})`);
  const flag = (k: 'bias' | 'rope' | 'tiedHead' | 'gradientCheckpointing', dflt: boolean): boolean => (c[k] === undefined ? dflt : checkBoolean(op, `config.${k}`, c[k]));
  // the attention weights' dropout, as scaledDotProductAttention's dropoutP, is below 1
  const dropout = c.dropout === undefined ? 0 : checkNumber(op, 'config.dropout', c.dropout, { min: 0, max: 1, maxExclusive: true });
  const rope = flag('rope', false);
  if (rope && (c.nEmbd / c.nHead) % 2 !== 0) throw new Error(`${op}: rope needs an even head size, got nEmbd/nHead = ${c.nEmbd / c.nHead}`);
  const ropeBase = c.ropeBase === undefined ? 10000 : checkNumber(op, 'config.ropeBase', c.ropeBase, { min: 0, minExclusive: true });
  const activation = c.activation ?? 'gelu_tanh';
  if (activation !== 'gelu' && activation !== 'gelu_tanh')
    throw new Error(`${op}: config.activation must be 'gelu' or 'gelu_tanh', got ${show(activation)}`);
  const { kvHeads, window } = resolveAttentionVariant(op, c.nHead, c.kvHeads, c.window, 'config.');
  const layerNormEps = c.layerNormEps ?? 1e-5;
  if (typeof layerNormEps !== 'number' || !(layerNormEps > 0 && Number.isFinite(layerNormEps)))
    throw new Error(`${op}: config.layerNormEps must be a positive finite number, got ${show(layerNormEps)}`);
  const moe = resolveMoE(op, c.moe, c.nLayer, c.nEmbd);
  // the entry is absent without experts, so a plain model's config (and what is saved of it) is unchanged
  const resolved: GPTConfig = {
    vocabSize: c.vocabSize,
    blockSize: c.blockSize,
    nLayer: c.nLayer,
    nHead: c.nHead,
    nEmbd: c.nEmbd,
    dropout,
    bias: flag('bias', true),
    rope,
    ropeBase,
    tiedHead: flag('tiedHead', true),
    activation,
    layerNormEps,
    gradientCheckpointing: flag('gradientCheckpointing', false),
    window,
    kvHeads,
    ...(moe ? { moe } : {}),
  };
  return resolved as Required<GPTConfig>;
}

function checkCache(op: string, cache: unknown, nLayer: number): KVCache | undefined {
  if (cache === undefined || cache === null) return undefined;
  if (!(cache instanceof KVCache)) throw new Error(`${op}: cache must be a KVCache, got ${show(cache)}`);
  if (cache.layers.length !== nLayer) throw new Error(`${op}: the cache has ${cache.layers.length} layers, the model ${nLayer}`);
  return cache;
}

// idx [B, T] i32 (only the new positions with a cache) → hidden [B, T, C] after ln_f, as the public
// method `op`; the load-balancing losses of the MoE blocks are pushed onto `aux`
function runTransformer(op: string, m: GPTTransformer, idx: Tensor, cache: KVCache | undefined, layout: Layout = {}, aux: Tensor[] = []): Tensor {
  const c = m.config;
  const t = idx.shape[1]!;
  const past = cache?.length ?? 0;
  if (t < 1) throw new Error(`${op}: idx ${fmt(idx.shape)} has no positions`);
  if (past + t > c.blockSize) throw new Error(`${op}: ${t} positions${past ? ` after ${past} cached` : ''} exceed blockSize ${c.blockSize} (crop the input)`);
  return asOp(op, () => {
    let x = m.wte.forward(idx); // [B, T, C]
    if (layout.embeddingDelta) x = x.add(layout.embeddingDelta);
    if (m.wpe) {
      const pos = layout.positions ?? arange(past, past + t, 1, { backend: idx.backend.name, dtype: 'i32' });
      x = x.add(m.wpe.forward(pos)); // + [T, C] (or [B, T, C])
    }
    x = m.drop.forward(x);
    let i = 0;
    // a cache means inference: nothing to recompute
    const recompute = c.gradientCheckpointing && m.training && isGradEnabled() && !cache;
    // the last block is not checkpointed: the backward starts with it, so it would be recomputed
    // at once; keeping its activations through the head instead costs one block's worth of peak
    // memory (8-layer test model: 64% less than plain instead of 74%) for 1/L of the recompute
    const last = m.h.length - 1;
    for (const block of m.h) {
      const j = i++;
      const mask = layout.attnMask;
      const moe = block.moe;
      if (!(recompute && j < last)) {
        x = block.forward(x, cache?.layers[j], mask);
        if (moe) aux.push(moe.lastAuxLoss!);
      } else if (moe) {
        // the aux loss is a second output of the checkpoint, so its gradient reaches the router
        const [y, a] = checkpoint((h) => [block.forward(h, undefined, mask), moe.lastAuxLoss!], x);
        x = y!;
        aux.push(a!);
      } else x = checkpoint((h) => block.forward(h, undefined, mask), x);
    }
    return m.ln_f.forward(x);
  });
}

// the mean of the MoE blocks' load-balancing losses (a tensor of its own), or null without experts
function meanOf(aux: readonly Tensor[]): Tensor | null {
  if (aux.length === 0) return null;
  return aux.length === 1 ? aux[0]!.mul(1) : aux.reduce((a, b) => a.add(b)).div(aux.length);
}

function checkIdx(op: string, idx: Tensor): void {
  live(op, idx);
  if (idx.dtype !== 'i32' || idx.rank !== 2) throw new Error(`${op}: idx must be [B, T] i32 token ids, got ${fmt(idx.shape)} ${idx.dtype}`);
}

/**
 * The transformer body of a {@link GPT} (Hugging Face's `GPT2Model`): token (and position)
 * embeddings, dropout, the blocks `h` and the final norm `ln_f`; idx `[B, T]` → hidden `[B, T, C]`.
 */
export class GPTTransformer extends Module {
  readonly config: Required<GPTConfig>;
  readonly wte: Embedding;
  /** Learned position embeddings, or null with `rope`. */
  readonly wpe: Embedding | null;
  readonly drop: Dropout;
  readonly h: ModuleList<Block>;
  readonly ln_f: LayerNorm;

  constructor(config: GPTConfig, opts: ParamOptions = {}) {
    super();
    const op = 'GPTTransformer';
    const c = (this.config = resolveConfig(op, config));
    const o = paramOptions(op, options(op, opts, PARAM_KEYS));
    const place = { ...(o.dtype ? { dtype: o.dtype } : {}), ...(o.backend ? { backend: o.backend } : {}) };
    const gen = o.generator ? { generator: o.generator } : {};
    // every option is checked: only an allocation can fail below
    try {
      this.wte = this.registerModule('wte', new Embedding(c.vocabSize, c.nEmbd, { ...o, std: GPT2_INIT_STD }));
      this.wpe = c.rope ? null : this.registerModule('wpe', new Embedding(c.blockSize, c.nEmbd, { ...o, std: GPT2_INIT_STD }));
      this.drop = this.registerModule('drop', new Dropout(c.dropout, gen));
      const blocks: Block[] = [];
      const moe = (c.moe as ResolvedGPTMoEConfig | undefined) ?? null;
      for (let i = 0; i < c.nLayer; i++)
        blocks.push(
          new Block({
            ...o,
            nEmbd: c.nEmbd,
            nHead: c.nHead,
            bias: c.bias,
            dropout: c.dropout,
            rope: c.rope,
            blockSize: c.blockSize,
            ropeBase: c.ropeBase,
            activation: c.activation,
            layerNormEps: c.layerNormEps,
            kvHeads: c.kvHeads,
            window: c.window,
            std: GPT2_INIT_STD,
            projStd: residualStd(c.nLayer),
            ...(isMoEBlock(moe, i)
              ? {
                  mlpHidden: moe.hidden,
                  moe: {
                    experts: moe.experts,
                    topK: moe.topK,
                    capacityFactor: moe.capacityFactor,
                    evalCapacityFactor: moe.evalCapacityFactor,
                    noisyGating: moe.noisyGating,
                    renormalize: moe.renormalize,
                    routerStd: moe.routerStd,
                  },
                }
              : {}),
          }),
        );
      this.h = this.registerModule('h', new ModuleList(blocks));
      this.ln_f = this.registerModule('ln_f', new LayerNorm(c.nEmbd, { ...place, bias: c.bias, eps: c.layerNormEps }));
    } catch (e) {
      this.dispose();
      throw relabel(op, e);
    }
  }

  /** idx `[B, T]` i32 (only the new positions with a cache) → hidden states `[B, T, C]` after `ln_f`. */
  forward(idx: Tensor, cache?: KVCache): Tensor {
    const op = 'GPTTransformer.forward';
    checkIdx(op, idx);
    return runTransformer(op, this, idx, checkCache(op, cache, this.config.nLayer));
  }
}

/**
 * A GPT-2 language model (as nanoGPT's `GPT` / Hugging Face's `GPT2LMHeadModel`), initialised
 * as GPT-2: weights N(0, 0.02), residual projections N(0, 0.02/√(2·nLayer)), biases 0, norms 1.
 * All random draws (initialisation, then dropout) come from `opts.generator`, so one seed gives
 * one model on every backend.
 *
 * @example
 * const model = new GPT({ vocabSize: 50257, blockSize: 1024, nLayer: 12, nHead: 12, nEmbd: 768 },
 *                       { generator: new Generator(1337) });
 * const { logits, loss } = tidy(() => model.forward(idx, targets)); // idx, targets: [B, T] i32
 */
export class GPT extends Module {
  readonly config: Required<GPTConfig>;
  readonly transformer: GPTTransformer;
  readonly lm_head: Linear;

  constructor(config: GPTConfig, opts: ParamOptions = {}) {
    super();
    let transformer: GPTTransformer;
    try {
      transformer = new GPTTransformer(config, opts);
    } catch (e) {
      throw relabel('GPT', e);
    }
    this.transformer = this.registerModule('transformer', transformer);
    const c = (this.config = this.transformer.config);
    const o = paramOptions('GPT', opts ?? {});
    try {
      this.lm_head = this.registerModule(
        'lm_head',
        new Linear(c.nEmbd, c.vocabSize, {
          ...o,
          bias: false,
          std: GPT2_INIT_STD,
          ...(c.tiedHead ? { weight: this.transformer.wte.weight } : {}),
        }),
      );
    } catch (e) {
      this.dispose();
      throw relabel('GPT', e);
    }
  }

  /**
   * idx `[B, T]` i32 → `{ logits [B, T, V], loss? }`; with targets `[B, T]` i32 (−100 ignored),
   * the mean cross-entropy. With `opts.cache`, idx holds only the positions after the cached ones.
   * Where only the loss is wanted, {@link GPT.loss} gives it without the logits.
   */
  forward(idx: Tensor, targets?: Tensor | null, opts: GPTForwardOptions = {}): GPTOutput {
    const op = 'GPT.forward';
    const o = options(op, opts, ['cache', 'lastOnly', 'positions', 'attnMask', 'embeddingDelta']);
    const lastOnly = o.lastOnly === undefined ? false : checkBoolean(op, 'lastOnly', o.lastOnly);
    const hasTargets = targets !== undefined && targets !== null;
    if (hasTargets && lastOnly) throw new Error(`${op}: lastOnly computes one position, so it cannot take targets`);
    const { x: h, aux } = this.hidden(op, idx, targets, o);
    return asOp(op, () => {
      const x = lastOnly ? narrow(h, 1, h.shape[1]! - 1, 1) : h;
      const logits = this.lm_head.forward(x);
      const auxLoss = meanOf(aux);
      const out: GPTOutput = auxLoss ? { logits, auxLoss } : { logits };
      if (hasTargets) out.loss = this.withAux(crossEntropy(logits, targets), auxLoss);
      return out;
    });
  }

  /**
   * `forward(idx, targets).loss` without the logits: the head and the cross-entropy are one
   * {@link linearCrossEntropy}, a chunk of rows at a time, so the `[B, T, V]` logits (and their
   * gradient) never exist whole: at GPT-2's vocabulary, most of a step's activation memory. The
   * same value as `forward`'s loss up to the order of its sums, and the same gradients. The
   * training loops ({@link train}, evaluation) call this when a model has it.
   */
  loss(idx: Tensor, targets: Tensor, opts: GPTLossOptions = {}): Tensor {
    const op = 'GPT.loss';
    const o = options(op, opts, ['positions', 'attnMask', 'embeddingDelta', 'chunkRows', 'reduction']);
    if (targets === undefined || targets === null) throw new Error(`${op}: targets [B, T] i32 are required, got ${show(targets)}`);
    const ce = { ...(o.chunkRows === undefined ? {} : { chunkRows: o.chunkRows }), ...(o.reduction === undefined ? {} : { reduction: o.reduction }) };
    const { x, aux } = this.hidden(op, idx, targets, o);
    return asOp(op, () => this.withAux(this.lm_head.crossEntropy(x, targets, ce), meanOf(aux)));
  }

  // the checks both entry points share, then the transformer: hidden states [B, T, C] after ln_f
  // and the MoE blocks' load-balancing losses
  private hidden(op: string, idx: Tensor, targets: Tensor | null | undefined, o: GPTForwardOptions): { x: Tensor; aux: Tensor[] } {
    checkIdx(op, idx);
    const cache = checkCache(op, o.cache, this.config.nLayer);
    if (targets !== undefined && targets !== null) {
      live(op, targets);
      if (targets.dtype !== 'i32') throw new Error(`${op}: targets must be i32 token ids, got ${fmt(targets.shape)} ${targets.dtype}`);
      if (targets.rank !== 2 || targets.shape[0] !== idx.shape[0] || targets.shape[1] !== idx.shape[1])
        throw new Error(`${op}: targets ${fmt(targets.shape)} must match idx ${fmt(idx.shape)}`);
    }
    const aux: Tensor[] = [];
    const layout = checkLayout(op, idx, o, this.config, cache !== undefined);
    const delta = checkDelta(op, idx, o.embeddingDelta, this.config.nEmbd);
    if (delta) layout.embeddingDelta = delta;
    return { x: runTransformer(op, this.transformer, idx, cache, layout, aux), aux };
  }

  // the training loss: the cross-entropy, plus moe.auxLossWeight · the load-balancing loss in
  // training mode
  private withAux(ce: Tensor, auxLoss: Tensor | null): Tensor {
    if (!auxLoss) return ce;
    const weight = (this.config.moe as ResolvedGPTMoEConfig).auxLossWeight;
    return this.training && weight > 0 ? ce.add(auxLoss.mul(weight)) : ce;
  }
}
