/**
 * BERT encoders (Devlin et al. 2019) with Hugging Face's `BertModel` parameter names, so a
 * PyTorch / Hugging Face state dict loads as it is:
 *
 * - `embeddings.{word_embeddings, position_embeddings, token_type_embeddings}.weight`,
 *   `embeddings.LayerNorm.{weight, bias}`;
 * - per layer `encoder.layer.N.attention.self.{query, key, value}`,
 *   `encoder.layer.N.attention.output.{dense, LayerNorm}`, `encoder.layer.N.intermediate.dense`,
 *   `encoder.layer.N.output.{dense, LayerNorm}`;
 * - `pooler.dense` (tanh of the first token's hidden state);
 * - heads as `BertForMaskedLM` (`bert.*`, `cls.predictions.transform.{dense, LayerNorm}`,
 *   `cls.predictions.decoder.weight` tied to the word embeddings, `cls.predictions.bias`, also
 *   named `cls.predictions.decoder.bias`), `BertForSequenceClassification` and
 *   `BertForTokenClassification` (`bert.*`, `classifier`).
 *
 * The math is BERT's: embeddings summed, then LayerNorm (ε 1e-12) and dropout; post-LN layers
 * `x = LN(x + drop(W_o·attn(x)))`, `x = LN(x + drop(W_2·gelu(W_1·x)))` with the exact (erf)
 * GELU; bidirectional attention scaled by 1/√d in which padded keys (attention mask 0) get no
 * weight. Hugging Face adds `(1 − mask)·finfo.min` to the scores; kiln passes the mask to the
 * fused attention kernel as a boolean mask, which gives those keys exactly zero weight, the same
 * result whenever a sequence has one real token (a row of padding only would get zeros here,
 * Hugging Face's uniform average). The word embedding's `padTokenId` row gets no gradient from
 * the lookup, as `nn.Embedding(padding_idx=…)`, and starts at zero.
 *
 * Below the models: {@link encodeForBert} (texts → `[CLS] … [SEP]` ids and masks),
 * {@link evaluateBertClassifier} and {@link finetuneBertClassifier} (AdamW with linear warm-up
 * and decay, accuracy and macro F1 from kiln's metrics), and {@link MaskedLMPretraining}, which
 * lets `train()` pre-train a {@link BertForMaskedLM} on a token stream.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { checkMaskTokensOptions, maskTokensTensor } from '../data/mlm.js';
import { accuracy, precisionRecallF1 } from '../metrics/classification.js';
import { AdamW } from '../optim/adam.js';
import { clipGradNorm } from '../optim/clip.js';
import { LRScheduler, linearDecayLr } from '../optim/schedule.js';
import { tidy } from '../tensor/memory.js';
import { arange, full, tensor } from '../tensor/ops/creation.js';
import { cast, eq, logicalAnd, mul, tanh, where } from '../tensor/ops/elementwise.js';
import { reshape, narrow, indexSelect, unsqueeze } from '../tensor/ops/shape_ops.js';
import { scaledDotProductAttention } from '../tensor/ops/attention.js';
import { crossEntropy } from '../tensor/ops/nn.js';
import { asOp, live, relabel } from '../tensor/ops/util.js';
import { Generator } from '../tensor/random.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkChoice, checkKeys, checkNumber, show } from '../tensor/validate.js';
import { GELU } from './activation.js';
import { Dropout } from './dropout.js';
import { Embedding } from './embedding.js';
import type { ParamOptions } from './init.js';
import { Linear } from './linear.js';
import { Module, ModuleList, type LoadStateDictOptions, type LoadStateDictResult, type StateDict } from './module.js';
import { LayerNorm } from './norm.js';
import { checkConfig, options, PARAM_KEYS, paramOptions, size } from './validate.js';

// ---- configuration ---------------------------------------------------------------------------

/** The keys of {@link BertConfig}. */
const BERT_KEYS = [
  'vocabSize', 'hiddenSize', 'numHiddenLayers', 'numAttentionHeads', 'intermediateSize', 'hiddenAct', 'hiddenDropoutProb', 'attentionProbsDropoutProb',
  'maxPositionEmbeddings', 'typeVocabSize', 'layerNormEps', 'padTokenId', 'initializerRange', 'numLabels', 'classifierDropout',
] as const;

/** The shape of a BERT, named as Hugging Face's `BertConfig` (in camelCase). */
export interface BertConfig {
  /** Number of tokens V. */
  vocabSize: number;
  /** Model width C (a multiple of numAttentionHeads). */
  hiddenSize: number;
  /** Layers L. */
  numHiddenLayers: number;
  /** Attention heads H per layer. */
  numAttentionHeads: number;
  /** Width of the feed-forward layer (default 4·hiddenSize). */
  intermediateSize?: number;
  /** The feed-forward GELU: `'gelu'` (default, exact erf form, as BERT) or `'gelu_tanh'`. */
  hiddenAct?: 'gelu' | 'gelu_tanh';
  /** Dropout after the embeddings and on each residual branch (default 0.1). */
  hiddenDropoutProb?: number;
  /** Dropout on the attention weights (default 0.1). */
  attentionProbsDropoutProb?: number;
  /** Longest sequence: rows of the position embedding (default 512). */
  maxPositionEmbeddings?: number;
  /** Token types (segments A/B; default 2). */
  typeVocabSize?: number;
  /** ε of every layer norm (default 1e-12). */
  layerNormEps?: number;
  /** The padding id: its embedding row starts at zero and gets no gradient from the lookup (default 0; null: none). */
  padTokenId?: number | null;
  /** Standard deviation of the N(0, σ) initialisation of weights and embeddings (default 0.02). */
  initializerRange?: number;
  /** Classes of the classification heads (default 2). */
  numLabels?: number;
  /** Dropout before a classifier (default: hiddenDropoutProb). */
  classifierDropout?: number | null;
}

/** A {@link BertConfig} with every default filled in. */
export interface ResolvedBertConfig {
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  hiddenAct: 'gelu' | 'gelu_tanh';
  hiddenDropoutProb: number;
  attentionProbsDropoutProb: number;
  maxPositionEmbeddings: number;
  typeVocabSize: number;
  layerNormEps: number;
  padTokenId: number | null;
  initializerRange: number;
  numLabels: number;
  classifierDropout: number;
}

function resolveBertConfig(op: string, config: BertConfig): ResolvedBertConfig {
  const c = checkConfig(op, config, BERT_KEYS);
  for (const k of ['vocabSize', 'hiddenSize', 'numHiddenLayers', 'numAttentionHeads'] as const) size(op, `config.${k}`, c[k]);
  if (c.hiddenSize % c.numAttentionHeads !== 0)
    throw new Error(`${op}: config.hiddenSize (${c.hiddenSize}) must be a multiple of config.numAttentionHeads (${c.numAttentionHeads})`);
  const opt = (k: keyof BertConfig, dflt: number, spec: Parameters<typeof checkNumber>[3]): number => (c[k] === undefined ? dflt : checkNumber(op, `config.${k}`, c[k], spec));
  const p = { min: 0, max: 1, maxExclusive: true };
  const hiddenDropoutProb = opt('hiddenDropoutProb', 0.1, p);
  const vocabSize = c.vocabSize;
  const padTokenId = c.padTokenId === undefined ? Math.min(0, vocabSize - 1) : c.padTokenId === null ? null : checkNumber(op, 'config.padTokenId', c.padTokenId, { integer: true, min: 0, max: vocabSize - 1 });
  return {
    vocabSize,
    hiddenSize: c.hiddenSize,
    numHiddenLayers: c.numHiddenLayers,
    numAttentionHeads: c.numAttentionHeads,
    intermediateSize: opt('intermediateSize', 4 * c.hiddenSize, { integer: true, min: 1 }),
    hiddenAct: c.hiddenAct === undefined ? 'gelu' : checkChoice(op, 'config.hiddenAct', c.hiddenAct, ['gelu', 'gelu_tanh'] as const),
    hiddenDropoutProb,
    attentionProbsDropoutProb: opt('attentionProbsDropoutProb', 0.1, p),
    maxPositionEmbeddings: opt('maxPositionEmbeddings', 512, { integer: true, min: 1 }),
    typeVocabSize: opt('typeVocabSize', 2, { integer: true, min: 1 }),
    layerNormEps: opt('layerNormEps', 1e-12, { min: 0, minExclusive: true }),
    padTokenId,
    initializerRange: opt('initializerRange', 0.02, { min: 0 }),
    numLabels: opt('numLabels', 2, { integer: true, min: 1 }),
    classifierDropout: c.classifierDropout === undefined || c.classifierDropout === null ? hiddenDropoutProb : checkNumber(op, 'config.classifierDropout', c.classifierDropout, p),
  };
}

function placeOf(op: string, opts: ParamOptions | undefined): ParamOptions {
  return paramOptions(op, options(op, opts ?? {}, PARAM_KEYS));
}

const normOpts = (c: ResolvedBertConfig, place: ParamOptions): { eps: number; dtype?: ParamOptions['dtype']; backend?: string } => ({
  eps: c.layerNormEps,
  ...(place.dtype ? { dtype: place.dtype } : {}),
  ...(place.backend ? { backend: place.backend } : {}),
});
const genOf = (place: ParamOptions): { generator?: Generator } => (place.generator ? { generator: place.generator } : {});

// ---- inputs ----------------------------------------------------------------------------------

/** Options of {@link BertModel.forward} and of the heads' forward. */
export interface BertForwardOptions {
  /** `[B, T]`: 1 (or true, or any non-zero) for tokens to attend to, 0 for padding (Hugging Face's `attention_mask`); all ones by default. */
  attentionMask?: Tensor | null;
  /** `[B, T]` i32 segment ids in [0, typeVocabSize) (Hugging Face's `token_type_ids`); zeros by default. */
  tokenTypeIds?: Tensor | null;
  /** `[B, T]` i32 positions (Hugging Face's `position_ids`); 0, 1, … by default. */
  positionIds?: Tensor | null;
}

interface CheckedInputs {
  /** bool `[B, 1, 1, T]` (true: attend), or null for no padding. */
  mask: Tensor | null;
  tokenTypeIds: Tensor | null;
  positionIds: Tensor | null;
}

function checkInputIds(op: string, inputIds: unknown, c: ResolvedBertConfig): Tensor {
  if (!(inputIds instanceof Tensor)) throw new Error(`${op}: inputIds must be a [B, T] i32 Tensor of token ids, got ${show(inputIds)}`);
  live(op, inputIds);
  if (inputIds.dtype !== 'i32' || inputIds.rank !== 2) throw new Error(`${op}: inputIds must be [B, T] i32 token ids, got ${fmt(inputIds.shape)} ${inputIds.dtype}`);
  const t = inputIds.shape[1]!;
  if (t < 1) throw new Error(`${op}: inputIds ${fmt(inputIds.shape)} has no positions`);
  if (t > c.maxPositionEmbeddings) throw new Error(`${op}: inputIds has ${t} positions, more than maxPositionEmbeddings ${c.maxPositionEmbeddings} (truncate the input)`);
  return inputIds;
}

function checkInputs(op: string, inputIds: Tensor, opts: BertForwardOptions | undefined): CheckedInputs {
  const o = options(op, opts, ['attentionMask', 'tokenTypeIds', 'positionIds']);
  const like = (name: string, v: unknown, i32: boolean): Tensor | null => {
    if (v === undefined || v === null) return null;
    if (!(v instanceof Tensor)) throw new Error(`${op}: ${name} must be a [B, T] Tensor like inputIds, got ${show(v)}`);
    live(op, v);
    if (fmt(v.shape) !== fmt(inputIds.shape) || (i32 && v.dtype !== 'i32'))
      throw new Error(`${op}: ${name} must be ${fmt(inputIds.shape)}${i32 ? ' i32' : ''} like inputIds, got ${fmt(v.shape)} ${v.dtype}`);
    return v;
  };
  const attention = like('attentionMask', o.attentionMask, false);
  const [b, t] = inputIds.shape as [number, number];
  const mask = attention ? asOp(op, () => reshape(attention.dtype === 'bool' ? attention : attention.ne(0), [b, 1, 1, t])) : null;
  return { mask, tokenTypeIds: like('tokenTypeIds', o.tokenTypeIds, true), positionIds: like('positionIds', o.positionIds, true) };
}

function checkLabels(op: string, labels: unknown, shape: readonly number[], what: string): Tensor | null {
  if (labels === undefined || labels === null) return null;
  if (!(labels instanceof Tensor)) throw new Error(`${op}: labels must be a ${fmt(shape)} i32 Tensor (${what}), got ${show(labels)}`);
  live(op, labels);
  if (labels.dtype !== 'i32' || fmt(labels.shape) !== fmt(shape)) throw new Error(`${op}: labels must be ${fmt(shape)} i32 (${what}), got ${fmt(labels.shape)} ${labels.dtype}`);
  return labels;
}

/** Mean cross-entropy over the labels that are not −100: Σ loss / max(count, 1), so a batch with none gives 0, not NaN. */
function maskedMeanCrossEntropy(logits: Tensor, labels: Tensor): Tensor {
  const total = logits.reshape([-1, logits.shape[logits.rank - 1]!]);
  const flat = labels.reshape([-1]);
  const sum = crossEntropy(total, flat, { reduction: 'sum' });
  const count = cast(flat.ne(-100), sum.dtype).sum().clamp(1);
  return sum.div(count);
}

// ---- the encoder -----------------------------------------------------------------------------

/** Word, position and token-type embeddings, summed, then LayerNorm and dropout (`embeddings.*`). */
export class BertEmbeddings extends Module {
  readonly word_embeddings: Embedding;
  readonly position_embeddings: Embedding;
  readonly token_type_embeddings: Embedding;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;
  readonly padTokenId: number | null;

  /** @internal Built by {@link BertModel} from a resolved config. */
  constructor(c: ResolvedBertConfig, place: ParamOptions) {
    super();
    const std = { ...place, std: c.initializerRange };
    this.padTokenId = c.padTokenId;
    this.word_embeddings = this.registerModule('word_embeddings', new Embedding(c.vocabSize, c.hiddenSize, std));
    this.position_embeddings = this.registerModule('position_embeddings', new Embedding(c.maxPositionEmbeddings, c.hiddenSize, std));
    this.token_type_embeddings = this.registerModule('token_type_embeddings', new Embedding(c.typeVocabSize, c.hiddenSize, std));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(c.hiddenSize, normOpts(c, place)));
    this.dropout = this.registerModule('dropout', new Dropout(c.hiddenDropoutProb, genOf(place)));
    if (c.padTokenId !== null) {
      // as Hugging Face's _init_weights: the padding row starts at zero
      const w = this.word_embeddings.weight;
      noGrad(() => {
        const keep = tensor(Float64Array.from({ length: c.vocabSize }, (_, i) => (i === c.padTokenId ? 0 : 1)), [c.vocabSize, 1], { dtype: w.dtype, backend: w.backend.name });
        const zeroed = mul(w, keep);
        w.copy_(zeroed);
        keep.dispose();
        zeroed.dispose();
      });
    }
  }

  /** inputIds `[B, T]` i32 (and optional token types and positions `[B, T]` i32) → `[B, T, C]`. */
  forward(inputIds: Tensor, tokenTypeIds?: Tensor | null, positionIds?: Tensor | null): Tensor {
    const op = 'BertEmbeddings.forward';
    return asOp(op, () => {
      const backend = inputIds.backend.name;
      const t = inputIds.shape[1]!;
      let x = this.word_embeddings.forward(inputIds); // [B, T, C]
      if (this.padTokenId !== null) {
        // nn.Embedding(padding_idx): the padding row's value, with no gradient through the lookup
        const isPad = unsqueeze(eq(inputIds, this.padTokenId), -1); // [B, T, 1]
        const row = indexSelect(this.word_embeddings.weight.detach(), 0, tensor([this.padTokenId], [1], { dtype: 'i32', backend })); // [1, C]
        x = where(isPad, row, x);
      }
      const types = tokenTypeIds ?? full([1, t], 0, { dtype: 'i32', backend });
      x = x.add(this.token_type_embeddings.forward(types));
      const positions = positionIds ?? arange(0, t, 1, { dtype: 'i32', backend });
      x = x.add(this.position_embeddings.forward(positions));
      return this.dropout.forward(this.LayerNorm.forward(x));
    });
  }
}

/** Multi-head bidirectional self-attention with separate `query`, `key`, `value` projections (`attention.self.*`). */
export class BertSelfAttention extends Module {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly numHeads: number;
  readonly headDim: number;
  /** Dropout probability of the attention weights (while training). */
  readonly attentionDropout: number;
  readonly generator: Generator | undefined;

  /** @internal */
  constructor(c: ResolvedBertConfig, place: ParamOptions) {
    super();
    const lin = { ...place, std: c.initializerRange };
    this.numHeads = c.numAttentionHeads;
    this.headDim = c.hiddenSize / c.numAttentionHeads;
    this.attentionDropout = c.attentionProbsDropoutProb;
    this.generator = place.generator;
    this.query = this.registerModule('query', new Linear(c.hiddenSize, c.hiddenSize, lin));
    this.key = this.registerModule('key', new Linear(c.hiddenSize, c.hiddenSize, lin));
    this.value = this.registerModule('value', new Linear(c.hiddenSize, c.hiddenSize, lin));
  }

  /** x `[B, T, C]`, mask bool `[B, 1, 1, T]` or null → the heads' outputs merged, `[B, T, C]`. */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    return asOp('BertSelfAttention.forward', () => {
      const [b, t, c] = x.shape as [number, number, number];
      const heads = (z: Tensor): Tensor => reshape(z, [b, t, this.numHeads, this.headDim]); // [B, T, H, D]
      const y = scaledDotProductAttention(heads(this.query.forward(x)), heads(this.key.forward(x)), heads(this.value.forward(x)), {
        layout: 'bthd',
        ...(mask ? { attnMask: mask } : {}),
        dropoutP: this.training ? this.attentionDropout : 0,
        ...(this.generator ? { generator: this.generator } : {}),
      });
      return reshape(y, [b, t, c]);
    });
  }
}

/** A projection, dropout and the post-LN residual: `LN(x + drop(dense(h)))` (`attention.output`, `output`). */
export class BertResidualOutput extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;

  /** @internal */
  constructor(c: ResolvedBertConfig, place: ParamOptions, inFeatures: number) {
    super();
    this.dense = this.registerModule('dense', new Linear(inFeatures, c.hiddenSize, { ...place, std: c.initializerRange }));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(c.hiddenSize, normOpts(c, place)));
    this.dropout = this.registerModule('dropout', new Dropout(c.hiddenDropoutProb, genOf(place)));
  }

  /** h `[B, T, in]`, the residual x `[B, T, C]` → `LN(x + drop(dense(h)))`. */
  forward(h: Tensor, x: Tensor): Tensor {
    return asOp('BertResidualOutput.forward', () => this.LayerNorm.forward(this.dropout.forward(this.dense.forward(h)).add(x)));
  }
}

/** Self-attention and its output block (`attention.self`, `attention.output`). */
export class BertAttention extends Module {
  readonly self: BertSelfAttention;
  readonly output: BertResidualOutput;

  /** @internal */
  constructor(c: ResolvedBertConfig, place: ParamOptions) {
    super();
    this.self = this.registerModule('self', new BertSelfAttention(c, place));
    this.output = this.registerModule('output', new BertResidualOutput(c, place, c.hiddenSize));
  }

  /** x `[B, T, C]` → `LN(x + drop(W_o·attn(x)))`. */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    return this.output.forward(this.self.forward(x, mask), x);
  }
}

/** The feed-forward's first half: `gelu(dense(x))` (`intermediate`). */
export class BertIntermediate extends Module {
  readonly dense: Linear;
  readonly act: GELU;

  /** @internal */
  constructor(c: ResolvedBertConfig, place: ParamOptions) {
    super();
    this.dense = this.registerModule('dense', new Linear(c.hiddenSize, c.intermediateSize, { ...place, std: c.initializerRange }));
    this.act = this.registerModule('act', new GELU({ approximate: c.hiddenAct === 'gelu_tanh' ? 'tanh' : 'none' }));
  }

  /** x `[B, T, C]` → `[B, T, intermediateSize]`. */
  forward(x: Tensor): Tensor {
    return asOp('BertIntermediate.forward', () => this.act.forward(this.dense.forward(x)));
  }
}

/** One post-LN transformer layer (`encoder.layer.N`): attention, then the feed-forward, each with residual and LayerNorm. */
export class BertLayer extends Module {
  readonly attention: BertAttention;
  readonly intermediate: BertIntermediate;
  readonly output: BertResidualOutput;

  /** @internal */
  constructor(c: ResolvedBertConfig, place: ParamOptions) {
    super();
    this.attention = this.registerModule('attention', new BertAttention(c, place));
    this.intermediate = this.registerModule('intermediate', new BertIntermediate(c, place));
    this.output = this.registerModule('output', new BertResidualOutput(c, place, c.intermediateSize));
  }

  /** x `[B, T, C]`, mask bool `[B, 1, 1, T]` or null → `[B, T, C]`. */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const a = this.attention.forward(x, mask);
    return this.output.forward(this.intermediate.forward(a), a);
  }
}

/** The layers (`encoder.layer.N`). */
export class BertEncoder extends Module {
  readonly layer: ModuleList<BertLayer>;

  /** @internal */
  constructor(c: ResolvedBertConfig, place: ParamOptions) {
    super();
    const layers: BertLayer[] = [];
    for (let i = 0; i < c.numHiddenLayers; i++) layers.push(new BertLayer(c, place));
    this.layer = this.registerModule('layer', new ModuleList(layers));
  }

  /** x `[B, T, C]` → `[B, T, C]` after every layer. */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    for (const l of this.layer) x = l.forward(x, mask);
    return x;
  }
}

/** `tanh(dense(h₀))` of the first (`[CLS]`) token (`pooler.dense`). */
export class BertPooler extends Module {
  readonly dense: Linear;

  /** @internal */
  constructor(c: ResolvedBertConfig, place: ParamOptions) {
    super();
    this.dense = this.registerModule('dense', new Linear(c.hiddenSize, c.hiddenSize, { ...place, std: c.initializerRange }));
  }

  /** hidden `[B, T, C]` → `[B, C]`. */
  forward(hidden: Tensor): Tensor {
    return asOp('BertPooler.forward', () => {
      const [b, , c] = hidden.shape as [number, number, number];
      return reshape(tanh(this.dense.forward(narrow(hidden, 1, 0, 1))), [b, c]);
    });
  }
}

/** Options of {@link BertModel}: where parameters are made, and whether it has a pooler. */
export interface BertModelOptions extends ParamOptions {
  /** Add `pooler.dense` (default true, as Hugging Face's `add_pooling_layer`). */
  addPoolingLayer?: boolean;
}

/** What {@link BertModel.forward} returns. */
export interface BertModelOutput {
  /** `[B, T, C]`: the last layer's hidden states. */
  lastHiddenState: Tensor;
  /** `[B, C]`: the pooler's output, or null without a pooler. */
  poolerOutput: Tensor | null;
}

/**
 * The BERT encoder (Hugging Face's `BertModel`): embeddings, `numHiddenLayers` post-LN layers
 * and an optional pooler, initialised as Hugging Face does (weights and embeddings N(0, 0.02),
 * biases 0, norms 1; the padding row 0). Every random draw comes from `opts.generator`.
 *
 * @example
 * const bert = new BertModel({ vocabSize: 30522, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12 }, { generator: new Generator(0) });
 * const { lastHiddenState, poolerOutput } = tidy(() => bert.forward(inputIds, { attentionMask }));
 */
export class BertModel extends Module {
  readonly config: ResolvedBertConfig;
  readonly embeddings: BertEmbeddings;
  readonly encoder: BertEncoder;
  /** The pooler, or null (`addPoolingLayer: false`). */
  readonly pooler: BertPooler | null;

  constructor(config: BertConfig, opts: BertModelOptions = {}) {
    super();
    const op = 'BertModel';
    const c = (this.config = resolveBertConfig(op, config));
    const o = options(op, opts, [...PARAM_KEYS, 'addPoolingLayer']);
    const pool = o.addPoolingLayer === undefined ? true : checkBoolean(op, 'addPoolingLayer', o.addPoolingLayer);
    const place = paramOptions(op, o);
    // every option is checked: only an allocation can fail below
    try {
      this.embeddings = this.registerModule('embeddings', new BertEmbeddings(c, place));
      this.encoder = this.registerModule('encoder', new BertEncoder(c, place));
      this.pooler = pool ? this.registerModule('pooler', new BertPooler(c, place)) : null;
    } catch (e) {
      this.dispose();
      throw relabel(op, e);
    }
  }

  /** inputIds `[B, T]` i32 → `{ lastHiddenState [B, T, C], poolerOutput [B, C] | null }`. */
  forward(inputIds: Tensor, opts: BertForwardOptions = {}): BertModelOutput {
    return this.run('BertModel.forward', inputIds, opts);
  }

  /** @internal {@link forward} under the public name `op` (a head's). */
  run(op: string, inputIds: Tensor, opts: BertForwardOptions | undefined): BertModelOutput {
    checkInputIds(op, inputIds, this.config);
    const inputs = checkInputs(op, inputIds, opts);
    return asOp(op, () => {
      const x = this.embeddings.forward(inputIds, inputs.tokenTypeIds, inputs.positionIds);
      const lastHiddenState = this.encoder.forward(x, inputs.mask);
      return { lastHiddenState, poolerOutput: this.pooler ? this.pooler.forward(lastHiddenState) : null };
    });
  }
}

// ---- heads -----------------------------------------------------------------------------------

/** `LN(gelu(dense(h)))` before the MLM decoder (`cls.predictions.transform`). */
export class BertPredictionHeadTransform extends Module {
  readonly dense: Linear;
  readonly act: GELU;
  readonly LayerNorm: LayerNorm;

  /** @internal */
  constructor(c: ResolvedBertConfig, place: ParamOptions) {
    super();
    this.dense = this.registerModule('dense', new Linear(c.hiddenSize, c.hiddenSize, { ...place, std: c.initializerRange }));
    this.act = this.registerModule('act', new GELU({ approximate: c.hiddenAct === 'gelu_tanh' ? 'tanh' : 'none' }));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(c.hiddenSize, normOpts(c, place)));
  }

  /** h `[B, T, C]` → `[B, T, C]`. */
  forward(h: Tensor): Tensor {
    return asOp('BertPredictionHeadTransform.forward', () => this.LayerNorm.forward(this.act.forward(this.dense.forward(h))));
  }
}

/** The MLM head (`cls.predictions`): transform, then the decoder tied to the word embeddings, plus `bias`. */
export class BertLMPredictionHead extends Module {
  readonly transform: BertPredictionHeadTransform;
  /** Weight: the word embeddings; bias: {@link bias} (as Hugging Face's `decoder.bias = bias`). */
  readonly decoder: Linear;

  /** @internal */
  constructor(c: ResolvedBertConfig, place: ParamOptions, wordEmbeddings: Tensor) {
    super();
    const bias = full([c.vocabSize], 0, { dtype: wordEmbeddings.dtype, backend: wordEmbeddings.backend.name });
    this.registerParameter('bias', bias);
    this.transform = this.registerModule('transform', new BertPredictionHeadTransform(c, place));
    this.decoder = this.registerModule('decoder', new Linear(c.hiddenSize, c.vocabSize, { ...place, bias: false, weight: wordEmbeddings }));
    this.decoder.registerParameter('bias', bias);
  }

  /** `[V]`, shared with `decoder.bias`. */
  get bias(): Tensor {
    return this.getParameter('bias');
  }

  /** h `[B, T, C]` → logits `[B, T, V]`. */
  forward(h: Tensor): Tensor {
    return asOp('BertLMPredictionHead.forward', () => this.decoder.forward(this.transform.forward(h)));
  }
}

/** `cls`: the MLM head under `predictions`. */
export class BertOnlyMLMHead extends Module {
  readonly predictions: BertLMPredictionHead;

  /** @internal */
  constructor(c: ResolvedBertConfig, place: ParamOptions, wordEmbeddings: Tensor) {
    super();
    this.predictions = this.registerModule('predictions', new BertLMPredictionHead(c, place, wordEmbeddings));
  }

  /** h `[B, T, C]` → logits `[B, T, V]`. */
  forward(h: Tensor): Tensor {
    return this.predictions.forward(h);
  }
}

/** What the heads' forward returns. */
export interface BertHeadOutput {
  /** `[B, T, V]` (MLM), `[B, numLabels]` (sequence) or `[B, T, numLabels]` (token classification). */
  logits: Tensor;
  /** The mean cross-entropy over the labels that are not −100, when labels were given. */
  loss?: Tensor;
}

/**
 * BERT with the masked-language-model head (Hugging Face's `BertForMaskedLM`): `bert` (no
 * pooler) and `cls.predictions`, whose decoder weight is the word embedding. The loss is the
 * mean cross-entropy over labels that are not −100 (0 when there are none).
 *
 * @example
 * const mlm = new BertForMaskedLM({ vocabSize: 1000, hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 4 }, { generator: new Generator(0) });
 * const { inputIds, labels } = maskTokensTensor(ids, { vocabSize: 1000, maskId: 4, specialIds: [0, 1, 2, 3], generator: g });
 * const { loss } = mlm.forward(inputIds, labels, { attentionMask });
 */
export class BertForMaskedLM extends Module {
  readonly config: ResolvedBertConfig;
  readonly bert: BertModel;
  readonly cls: BertOnlyMLMHead;

  constructor(config: BertConfig, opts: ParamOptions = {}) {
    super();
    const op = 'BertForMaskedLM';
    const place = placeOf(op, opts);
    try {
      this.bert = this.registerModule('bert', new BertModel(config, { ...place, addPoolingLayer: false }));
    } catch (e) {
      throw relabel(op, e);
    }
    this.config = this.bert.config;
    try {
      this.cls = this.registerModule('cls', new BertOnlyMLMHead(this.config, place, this.bert.embeddings.word_embeddings.weight));
    } catch (e) {
      this.dispose();
      throw relabel(op, e);
    }
  }

  /** inputIds `[B, T]` i32, labels `[B, T]` i32 (−100 ignored) → `{ logits [B, T, V], loss? }`. */
  forward(inputIds: Tensor, labels?: Tensor | null, opts: BertForwardOptions = {}): BertHeadOutput {
    const op = 'BertForMaskedLM.forward';
    checkInputIds(op, inputIds, this.config);
    const l = checkLabels(op, labels, inputIds.shape, 'the original ids at masked positions, −100 elsewhere');
    const { lastHiddenState } = this.bert.run(op, inputIds, opts);
    return asOp(op, () => {
      const logits = this.cls.forward(lastHiddenState);
      return l ? { logits, loss: maskedMeanCrossEntropy(logits, l) } : { logits };
    });
  }
}

/** A classification head's options: where parameters are made. */
export type BertClassifierOptions = ParamOptions;

/**
 * What the two classifiers share (Hugging Face's `BertFor{Sequence,Token}Classification`):
 * `bert`, `dropout` (`classifierDropout`) and `classifier` (Linear C → numLabels, N(0,
 * initializerRange), bias 0), registered in that order; the subclass says whether `bert` has a
 * pooler and which hidden states, labelled how, reach the classifier.
 */
abstract class BertClassifierBase extends Module {
  readonly config: ResolvedBertConfig;
  readonly bert: BertModel;
  readonly dropout: Dropout;
  readonly classifier: Linear;

  protected constructor(op: string, config: BertConfig, opts: BertClassifierOptions, addPoolingLayer: boolean) {
    super();
    const place = placeOf(op, opts);
    try {
      this.bert = this.registerModule('bert', new BertModel(config, { ...place, addPoolingLayer }));
    } catch (e) {
      throw relabel(op, e);
    }
    const c = (this.config = this.bert.config);
    // the encoder exists: a failure below must free it
    try {
      this.dropout = this.registerModule('dropout', new Dropout(c.classifierDropout, genOf(place)));
      this.classifier = this.registerModule('classifier', new Linear(c.hiddenSize, c.numLabels, { ...place, std: c.initializerRange }));
    } catch (e) {
      this.dispose();
      throw relabel(op, e);
    }
  }

  /**
   * @internal `classifier(dropout(pick(bert(inputIds))))`, with the loss when labels are given; their
   * shape follows from the checked inputIds, `what` describes them in errors.
   */
  protected classify(
    op: string,
    inputIds: Tensor,
    labels: Tensor | null | undefined,
    opts: BertForwardOptions,
    labelShape: (ids: Tensor) => readonly number[],
    what: string,
    pick: (out: BertModelOutput) => Tensor,
  ): BertHeadOutput {
    checkInputIds(op, inputIds, this.config);
    const l = checkLabels(op, labels, labelShape(inputIds), what);
    const out = this.bert.run(op, inputIds, opts);
    return asOp(op, () => {
      const logits = this.classifier.forward(this.dropout.forward(pick(out)));
      return l ? { logits, loss: maskedMeanCrossEntropy(logits, l) } : { logits };
    });
  }
}

/**
 * BERT with a sequence classifier (Hugging Face's `BertForSequenceClassification`): the pooler's
 * `[CLS]` vector, dropout (`classifierDropout`), then `classifier` (Linear C → numLabels). The
 * loss is the mean cross-entropy over labels `[B]` that are not −100.
 */
export class BertForSequenceClassification extends BertClassifierBase {
  constructor(config: BertConfig, opts: BertClassifierOptions = {}) {
    super('BertForSequenceClassification', config, opts, true);
  }

  /** inputIds `[B, T]` i32, labels `[B]` i32 class ids → `{ logits [B, numLabels], loss? }`. */
  forward(inputIds: Tensor, labels?: Tensor | null, opts: BertForwardOptions = {}): BertHeadOutput {
    const op = 'BertForSequenceClassification.forward';
    return this.classify(op, inputIds, labels, opts, (ids) => [ids.shape[0]!], `class ids in [0, ${this.config.numLabels})`, (o) => o.poolerOutput!);
  }
}

/**
 * BERT with a per-token classifier (Hugging Face's `BertForTokenClassification`, tagging):
 * `bert` (no pooler), dropout, `classifier` on every position. Labels `[B, T]`, −100 ignored.
 */
export class BertForTokenClassification extends BertClassifierBase {
  constructor(config: BertConfig, opts: BertClassifierOptions = {}) {
    super('BertForTokenClassification', config, opts, false);
  }

  /** inputIds `[B, T]` i32, labels `[B, T]` i32 (−100 ignored) → `{ logits [B, T, numLabels], loss? }`. */
  forward(inputIds: Tensor, labels?: Tensor | null, opts: BertForwardOptions = {}): BertHeadOutput {
    const op = 'BertForTokenClassification.forward';
    return this.classify(op, inputIds, labels, opts, (ids) => ids.shape, `class ids in [0, ${this.config.numLabels}) or −100`, (o) => o.lastHiddenState);
  }
}

// ---- masked-language-model pre-training with train() -------------------------------------------

/** Options of {@link MaskedLMPretraining} and {@link evaluateMaskedLM}: BERT's masking (see `maskTokens`). */
export interface MLMMaskingOptions {
  /** The `[MASK]` id. */
  maskId: number;
  /** Ids never selected and never drawn as replacements (`[PAD]`, `[CLS]`, `[SEP]`, …). */
  specialIds?: readonly number[];
  /** Default 0.15. */
  mlmProbability?: number;
  /** Default 0.8. */
  maskFraction?: number;
  /** Default 0.1. */
  randomFraction?: number;
  /** The stream of the masking draws. */
  generator: Generator;
}

const MLM_MASK_KEYS = ['maskId', 'specialIds', 'mlmProbability', 'maskFraction', 'randomFraction', 'generator'];

function checkMasking(op: string, o: MLMMaskingOptions, vocabSize: number): MLMMaskingOptions & { vocabSize: number } {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new Error(`${op}: expected options { maskId, generator, ... }, got ${show(o)}`);
  checkKeys(op, o, MLM_MASK_KEYS);
  const m = { ...o, vocabSize };
  checkMaskTokensOptions(op, m);
  return m;
}

/**
 * A {@link BertForMaskedLM} as `train()` takes a language model: `forward(idx, targets)` masks
 * idx `[B, T]` with BERT's 80/10/10 rule (drawing from `generator`; targets are ignored) and
 * returns the MLM loss. Parameters, modes and the state dict are the model's own (the state
 * dict under its Hugging Face names, with no prefix), so checkpoints hold a plain
 * `BertForMaskedLM`. Passing the run's generator (the one `train()` draws batches from and
 * checkpoints) makes a resumed run mask exactly as an uninterrupted one.
 *
 * @example
 * const objective = new MaskedLMPretraining(new BertForMaskedLM(config), { maskId: 4, specialIds: [0, 1, 2, 3], generator });
 * await train({ model: objective, optimizer, data: { train, val }, steps: 1000, batchSize: 16, blockSize: 128, generator });
 */
export class MaskedLMPretraining extends Module {
  readonly model: BertForMaskedLM;
  readonly masking: MLMMaskingOptions & { vocabSize: number };

  constructor(model: BertForMaskedLM, opts: MLMMaskingOptions) {
    super();
    const op = 'MaskedLMPretraining';
    if (!(model instanceof BertForMaskedLM)) throw new Error(`${op}: model must be a BertForMaskedLM, got ${show(model)}`);
    checkKeys(op, opts, MLM_MASK_KEYS);
    this.masking = checkMasking(op, opts, model.config.vocabSize);
    this.model = this.registerModule('model', model);
  }

  /** idx `[B, T]` i32 (targets ignored) → `{ loss, logits [B, T, V], labels [B, T] }` on a fresh masking of idx. */
  forward(idx: Tensor, targets?: Tensor | null): { loss: Tensor; logits: Tensor; labels: Tensor } {
    const op = 'MaskedLMPretraining.forward';
    void targets;
    checkInputIds(op, idx, this.model.config);
    return asOp(op, () => {
      const { inputIds, labels } = maskTokensTensor(idx, this.masking);
      const { logits, loss } = this.model.forward(inputIds, labels);
      return { loss: loss!, logits, labels };
    });
  }

  /** The model's state dict (Hugging Face names, no prefix). */
  override stateDict(): StateDict {
    return this.model.stateDict();
  }

  /** Load into the model (see {@link Module.loadStateDict}). */
  override loadStateDict(state: StateDict | Map<string, Tensor>, opts: LoadStateDictOptions = {}): LoadStateDictResult {
    return asOp('MaskedLMPretraining.loadStateDict', () => this.model.loadStateDict(state, opts));
  }
}

/** Options of {@link evaluateMaskedLM}. */
export interface EvaluateMaskedLMOptions extends MLMMaskingOptions {
  /** Tokens per window (at most maxPositionEmbeddings). */
  blockSize: number;
  /** Windows per batch (default 8). */
  batchSize?: number;
  /** Score at most this many batches (default: every full window). */
  maxBatches?: number;
}

/** What {@link evaluateMaskedLM} returns. */
export interface MaskedLMEvaluation {
  /** Fraction of the selected tokens whose original id is the argmax of the logits. */
  accuracy: number;
  /** Mean cross-entropy over the selected tokens. */
  loss: number;
  /** Selected (scored) tokens. */
  maskedTokens: number;
  batches: number;
}

/**
 * Masked-token accuracy of `model` on a token stream: the stream cut into full windows of
 * `blockSize`, each masked with BERT's rule from `generator` (pass a fresh `new Generator(seed)`
 * to score the same masks every time), in eval mode without gradients; the accuracy counts every
 * selected position (masked, replaced or kept), as BERT's `masked_lm_accuracy`. Sums stay on the
 * device until the one read at the end.
 */
export async function evaluateMaskedLM(model: BertForMaskedLM, tokens: ArrayLike<number>, opts: EvaluateMaskedLMOptions): Promise<MaskedLMEvaluation> {
  const op = 'evaluateMaskedLM';
  if (!(model instanceof BertForMaskedLM)) throw new Error(`${op}: model must be a BertForMaskedLM, got ${show(model)}`);
  if (!Array.isArray(tokens) && !(ArrayBuffer.isView(tokens) && !(tokens instanceof DataView))) throw new Error(`${op}: tokens must be an array of token ids, got ${show(tokens)}`);
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { blockSize, maskId, generator, ... }, got ${show(opts)}`);
  checkKeys(op, opts, [...MLM_MASK_KEYS, 'blockSize', 'batchSize', 'maxBatches']);
  const blockSize = checkNumber(op, 'blockSize', opts.blockSize, { integer: true, min: 1, max: model.config.maxPositionEmbeddings });
  const batchSize = opts.batchSize === undefined ? 8 : checkNumber(op, 'batchSize', opts.batchSize, { integer: true, min: 1 });
  const maxBatches = opts.maxBatches === undefined ? Infinity : checkNumber(op, 'maxBatches', opts.maxBatches, { integer: true, min: 1 });
  const { blockSize: _b, batchSize: _s, maxBatches: _m, ...maskOpts } = opts;
  void _b, _s, _m;
  const masking = checkMasking(op, maskOpts, model.config.vocabSize);
  const windows = Math.floor(tokens.length / blockSize);
  if (windows < 1) throw new Error(`${op}: the stream has ${tokens.length} tokens, fewer than one window of blockSize ${blockSize}`);
  for (let i = 0; i < windows * blockSize; i++) {
    const v = tokens[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= model.config.vocabSize) throw new Error(`${op}: tokens[${i}] must be a token id in [0, ${model.config.vocabSize}), got ${show(v)}`);
  }
  const backend = model.bert.embeddings.word_embeddings.weight.backend.name;
  const wasTraining = model.training;
  model.eval();
  let correct: Tensor | null = null;
  let count: Tensor | null = null;
  let lossSum: Tensor | null = null;
  const addTo = (acc: Tensor | null, x: Tensor): Tensor => {
    const next = noGrad(() => (acc ? acc.add(x) : x.clone()));
    acc?.dispose();
    return next;
  };
  let batches = 0;
  try {
    for (let w0 = 0; w0 < windows && batches < maxBatches; w0 += batchSize) {
      const n = Math.min(batchSize, windows - w0);
      const ids = Int32Array.from({ length: n * blockSize }, (_, i) => tokens[w0 * blockSize + i]!);
      const [c, k, l] = tidy(() =>
        noGrad(() => {
          const idx = tensor(ids, [n, blockSize], { dtype: 'i32', backend });
          const { inputIds, labels } = maskTokensTensor(idx, masking);
          const { logits } = model.forward(inputIds);
          const scored = labels.ne(-100);
          const hit = logicalAnd(logits.argmax(-1).eq(labels), scored);
          const ce = crossEntropy(logits.reshape([-1, logits.shape[2]!]), labels.reshape([-1]), { reduction: 'sum' });
          const f = logits.dtype === 'f64' ? 'f64' : 'f32';
          return [cast(hit, f).sum(), cast(scored, f).sum(), ce];
        }),
      );
      correct = addTo(correct, c!);
      count = addTo(count, k!);
      lossSum = addTo(lossSum, l!);
      c!.dispose();
      k!.dispose();
      l!.dispose();
      batches++;
    }
    const [nc, nk, nl] = [await correct!.item(), await count!.item(), await lossSum!.item()];
    return { accuracy: nk > 0 ? nc / nk : 0, loss: nk > 0 ? nl / nk : 0, maskedTokens: nk, batches };
  } finally {
    correct?.dispose();
    count?.dispose();
    lossSum?.dispose();
    model.train(wasTraining);
  }
}

// ---- fine-tuning helpers ---------------------------------------------------------------------

/** Texts as BERT inputs: `[CLS] tokens [SEP]`, padded with `[PAD]` to the longest (rows of equal length). */
export interface BertEncoding {
  inputIds: number[][];
  /** 1 for tokens, 0 for padding. */
  attentionMask: number[][];
}

function specialId(op: string, tokenizer: Tokenizer, name: string): number {
  const id = tokenizer.specialTokens.get(name);
  if (id === undefined) throw new Error(`${op}: the tokenizer has no ${name} special token (train a WordPiece vocabulary with it)`);
  return id;
}

function checkTokenizer(op: string, tokenizer: unknown): Tokenizer {
  const t = tokenizer as Tokenizer | null;
  if (t === null || typeof t !== 'object' || typeof t.encode !== 'function' || !(t.specialTokens instanceof Map))
    throw new Error(`${op}: tokenizer must be a Tokenizer with [CLS], [SEP] and [PAD] special tokens, got ${show(tokenizer)}`);
  return t;
}

function checkTexts(op: string, name: string, texts: unknown): readonly string[] {
  if (!Array.isArray(texts)) throw new Error(`${op}: ${name} must be an array of strings, got ${show(texts)}`);
  texts.forEach((t, i) => {
    if (typeof t !== 'string') throw new Error(`${op}: ${name}[${i}] must be a string, got ${show(t)}`);
  });
  return texts as string[];
}

// [CLS] ids… [SEP], the ids cut to maxLength − 2
function tokenizeAll(op: string, tokenizer: Tokenizer, texts: readonly string[], maxLength: number): number[][] {
  const [cls, sep] = [specialId(op, tokenizer, '[CLS]'), specialId(op, tokenizer, '[SEP]')];
  return texts.map((t) => [cls, ...tokenizer.encode(t).slice(0, maxLength - 2), sep]);
}

function padRows(rows: readonly number[][], pad: number): BertEncoding {
  const len = Math.max(...rows.map((r) => r.length));
  return {
    inputIds: rows.map((r) => [...r, ...Array<number>(len - r.length).fill(pad)]),
    attentionMask: rows.map((r) => [...Array<number>(r.length).fill(1), ...Array<number>(len - r.length).fill(0)]),
  };
}

/**
 * Encode texts for BERT: `[CLS]`, the tokenizer's ids (cut so the row is at most `maxLength`),
 * `[SEP]`, then `[PAD]` up to the longest row, with the matching attention mask.
 *
 * @example
 * const { inputIds, attentionMask } = encodeForBert(tok, ['a text', 'another'], { maxLength: 64 });
 * model.forward(tensor(inputIds, { dtype: 'i32' }), null, { attentionMask: tensor(attentionMask, { dtype: 'i32' }) });
 */
export function encodeForBert(tokenizer: Tokenizer, texts: readonly string[], opts: { maxLength: number }): BertEncoding {
  const op = 'encodeForBert';
  checkTokenizer(op, tokenizer);
  checkTexts(op, 'texts', texts);
  if (texts.length === 0) throw new Error(`${op}: texts is empty`);
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { maxLength }, got ${show(opts)}`);
  checkKeys(op, opts, ['maxLength']);
  const maxLength = checkNumber(op, 'maxLength', opts.maxLength, { integer: true, min: 2 });
  return padRows(tokenizeAll(op, tokenizer, texts, maxLength), specialId(op, tokenizer, '[PAD]'));
}

/** Scores of a classifier on labelled texts. */
export interface ClassifierScores {
  accuracy: number;
  /** Unweighted mean of the per-class F1 over the classes in the labels or the predictions. */
  macroF1: number;
  predictions: number[];
}

function checkLabelList(op: string, name: string, labels: unknown, n: number, numLabels: number): number[] {
  if (!Array.isArray(labels)) throw new Error(`${op}: ${name} must be an array of class ids, got ${show(labels)}`);
  if (labels.length !== n) throw new Error(`${op}: ${name} has ${labels.length} labels for ${n} texts`);
  labels.forEach((l, i) => checkNumber(op, `${name}[${i}]`, l, { integer: true, min: 0, max: numLabels - 1 }));
  return labels as number[];
}

const scoresOf = (labels: readonly number[], predictions: number[]): ClassifierScores => ({
  accuracy: accuracy(labels, predictions),
  macroF1: precisionRecallF1(labels, predictions, { average: 'macro' }).f1,
  predictions,
});

async function predict(op: string, model: BertForSequenceClassification, rows: number[][], pad: number, batchSize: number): Promise<number[]> {
  const backend = model.classifier.weight.backend.name;
  const wasTraining = model.training;
  model.eval();
  const out: number[] = [];
  try {
    for (let i = 0; i < rows.length; i += batchSize) {
      const enc = padRows(rows.slice(i, i + batchSize), pad);
      const pred = tidy(() =>
        noGrad(() => {
          const ids = tensor(enc.inputIds, { dtype: 'i32', backend });
          const mask = tensor(enc.attentionMask, { dtype: 'i32', backend });
          return model.forward(ids, null, { attentionMask: mask }).logits.argmax(-1);
        }),
      );
      out.push(...Array.from(await pred.data(), Number));
      pred.dispose();
    }
  } catch (e) {
    throw relabel(op, e);
  } finally {
    model.train(wasTraining);
  }
  return out;
}

/** Options of {@link evaluateBertClassifier}. */
export interface EvaluateBertClassifierOptions {
  /** Longest row, `[CLS]` and `[SEP]` included (default min(128, maxPositionEmbeddings)). */
  maxLength?: number;
  /** Texts per forward pass (default 32). */
  batchSize?: number;
}

/**
 * Accuracy and macro F1 (kiln's metrics) of a sequence classifier on labelled texts, in eval
 * mode without gradients.
 */
export async function evaluateBertClassifier(
  model: BertForSequenceClassification,
  tokenizer: Tokenizer,
  texts: readonly string[],
  labels: readonly number[],
  opts: EvaluateBertClassifierOptions = {},
): Promise<ClassifierScores> {
  const op = 'evaluateBertClassifier';
  if (!(model instanceof BertForSequenceClassification)) throw new Error(`${op}: model must be a BertForSequenceClassification, got ${show(model)}`);
  checkTokenizer(op, tokenizer);
  checkTexts(op, 'texts', texts);
  if (texts.length === 0) throw new Error(`${op}: texts is empty`);
  checkLabelList(op, 'labels', labels, texts.length, model.config.numLabels);
  const o = options(op, opts, ['maxLength', 'batchSize']);
  const maxLength = o.maxLength === undefined ? Math.min(128, model.config.maxPositionEmbeddings) : checkNumber(op, 'maxLength', o.maxLength, { integer: true, min: 2, max: model.config.maxPositionEmbeddings });
  const batchSize = o.batchSize === undefined ? 32 : checkNumber(op, 'batchSize', o.batchSize, { integer: true, min: 1 });
  const rows = tokenizeAll(op, tokenizer, texts, maxLength);
  return scoresOf(labels, await predict(op, model, rows, specialId(op, tokenizer, '[PAD]'), batchSize));
}

/** Options of {@link finetuneBertClassifier}. */
export interface FinetuneBertClassifierOptions {
  model: BertForSequenceClassification;
  tokenizer: Tokenizer;
  /** Labelled training texts (class ids in [0, numLabels)). */
  train: { texts: readonly string[]; labels: readonly number[] };
  /** Held-out texts scored after training (and against the majority class of the training labels). */
  eval?: { texts: readonly string[]; labels: readonly number[] };
  /** Passes over the training texts (default 3). */
  epochs?: number;
  /** Texts per step (default 16). */
  batchSize?: number;
  /** Peak learning rate of AdamW (default 5e-5, as BERT's fine-tuning). */
  lr?: number;
  /** Decoupled weight decay on matrices and embeddings (default 0.01). */
  weightDecay?: number;
  /** Fraction of the steps of linear warm-up before the linear decay to 0 (default 0.1). */
  warmupFraction?: number;
  /** Longest row (default min(128, maxPositionEmbeddings)). */
  maxLength?: number;
  /** Clip the gradient norm to this (default 1; 0: off). */
  clip?: number;
  /** The stream of the shuffling (default a Generator seeded 0). Dropout draws from the model's own generator. */
  generator?: Generator;
  /** Called after each epoch with its mean training loss. */
  onEpoch?: (e: { epoch: number; loss: number; step: number }) => void;
}

/** What {@link finetuneBertClassifier} returns. */
export interface FinetuneBertClassifierResult {
  steps: number;
  /** The mean training loss of each epoch. */
  epochLosses: number[];
  /** Scores on `eval`, when given. */
  eval?: ClassifierScores;
  /** Predicting the most frequent training label for every `eval` text. */
  baseline?: { label: number; accuracy: number; macroF1: number };
}

/**
 * Fine-tune a sequence classifier on labelled texts as BERT does (Devlin et al. 2019, §4.1):
 * AdamW (weight decay on matrices and embeddings only), linear warm-up then linear decay to 0,
 * gradient clipping, shuffled batches padded to their longest text; then, with `eval`, accuracy
 * and macro F1 on the held-out texts beside the majority-class baseline.
 *
 * @example
 * const r = await finetuneBertClassifier({ model, tokenizer, train: { texts, labels }, eval: heldOut, epochs: 3, lr: 3e-4 });
 * console.log(r.eval!.accuracy, r.baseline!.accuracy);
 */
export async function finetuneBertClassifier(opts: FinetuneBertClassifierOptions): Promise<FinetuneBertClassifierResult> {
  const op = 'finetuneBertClassifier';
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { model, tokenizer, train, ... }, got ${show(opts)}`);
  checkKeys(op, opts, ['model', 'tokenizer', 'train', 'eval', 'epochs', 'batchSize', 'lr', 'weightDecay', 'warmupFraction', 'maxLength', 'clip', 'generator', 'onEpoch']);
  const { model } = opts;
  if (!(model instanceof BertForSequenceClassification)) throw new Error(`${op}: model must be a BertForSequenceClassification, got ${show(model)}`);
  const tokenizer = checkTokenizer(op, opts.tokenizer);
  const split = (name: 'train' | 'eval', s: unknown): { texts: readonly string[]; labels: number[] } => {
    if (s === null || typeof s !== 'object' || Array.isArray(s)) throw new Error(`${op}: ${name} must be { texts, labels }, got ${show(s)}`);
    checkKeys(`${op}: ${name}`, s, ['texts', 'labels']);
    const v = s as { texts: unknown; labels: unknown };
    const texts = checkTexts(op, `${name}.texts`, v.texts);
    if (texts.length === 0) throw new Error(`${op}: ${name}.texts is empty`);
    return { texts, labels: checkLabelList(op, `${name}.labels`, v.labels, texts.length, model.config.numLabels) };
  };
  const trainSet = split('train', opts.train);
  const evalSet = opts.eval === undefined ? null : split('eval', opts.eval);
  const epochs = opts.epochs === undefined ? 3 : checkNumber(op, 'epochs', opts.epochs, { integer: true, min: 1 });
  const batchSize = opts.batchSize === undefined ? 16 : checkNumber(op, 'batchSize', opts.batchSize, { integer: true, min: 1 });
  const lr = opts.lr === undefined ? 5e-5 : checkNumber(op, 'lr', opts.lr, { min: 0 });
  const weightDecay = opts.weightDecay === undefined ? 0.01 : checkNumber(op, 'weightDecay', opts.weightDecay, { min: 0 });
  const warmupFraction = opts.warmupFraction === undefined ? 0.1 : checkNumber(op, 'warmupFraction', opts.warmupFraction, { min: 0, max: 1 });
  const maxLength = opts.maxLength === undefined ? Math.min(128, model.config.maxPositionEmbeddings) : checkNumber(op, 'maxLength', opts.maxLength, { integer: true, min: 2, max: model.config.maxPositionEmbeddings });
  const clip = opts.clip === undefined ? 1 : checkNumber(op, 'clip', opts.clip, { min: 0 });
  if (opts.generator !== undefined && !(opts.generator instanceof Generator)) throw new Error(`${op}: generator must be a Generator, got ${show(opts.generator)}`);
  if (opts.onEpoch !== undefined && typeof opts.onEpoch !== 'function') throw new Error(`${op}: onEpoch must be a function, got ${show(opts.onEpoch)}`);
  const generator = opts.generator ?? new Generator(0);

  const pad = specialId(op, tokenizer, '[PAD]');
  const rows = tokenizeAll(op, tokenizer, trainSet.texts, maxLength);
  const backend = model.classifier.weight.backend.name;
  const params = model.parameters().filter((p) => p.requiresGrad);
  const optimizer = new AdamW(
    [
      { params: params.filter((p) => p.rank >= 2), weightDecay },
      { params: params.filter((p) => p.rank < 2), weightDecay: 0 },
    ],
    { lr },
  );
  const perEpoch = Math.ceil(rows.length / batchSize);
  const totalSteps = perEpoch * epochs;
  const scheduler = new LRScheduler(optimizer, linearDecayLr({ warmupSteps: Math.round(warmupFraction * totalSteps), totalSteps }));
  const epochLosses: number[] = [];
  const wasTraining = model.training;
  model.train();
  let step = 0;
  try {
    for (let epoch = 1; epoch <= epochs; epoch++) {
      // a Fisher–Yates shuffle from the generator's host draws
      const order = Array.from({ length: rows.length }, (_, i) => i);
      const u = generator.draw(rows.length, { kind: 'uniform', low: 0, high: 1 });
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.min(i, Math.floor(u[i]! * (i + 1)));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      let sum: Tensor | null = null;
      for (let b = 0; b < rows.length; b += batchSize) {
        const pick = order.slice(b, b + batchSize);
        const enc = padRows(pick.map((i) => rows[i]!), pad);
        optimizer.zeroGrad();
        const loss = tidy(() => {
          const ids = tensor(enc.inputIds, { dtype: 'i32', backend });
          const mask = tensor(enc.attentionMask, { dtype: 'i32', backend });
          const y = tensor(pick.map((i) => trainSet.labels[i]!), [pick.length], { dtype: 'i32', backend });
          const l = model.forward(ids, y, { attentionMask: mask }).loss!;
          l.backward();
          return l.detach();
        });
        if (clip > 0) clipGradNorm(params, clip).dispose();
        optimizer.step();
        optimizer.zeroGrad();
        scheduler.step();
        step++;
        const next: Tensor = noGrad(() => (sum ? sum.add(loss) : loss.clone()));
        (sum as Tensor | null)?.dispose();
        loss.dispose();
        sum = next;
      }
      const mean = (await sum!.item()) / perEpoch;
      sum!.dispose();
      epochLosses.push(mean);
      opts.onEpoch?.({ epoch, loss: mean, step });
    }
  } catch (e) {
    throw relabel(op, e);
  } finally {
    optimizer.disposeState();
    model.train(wasTraining);
  }
  const result: FinetuneBertClassifierResult = { steps: step, epochLosses };
  if (evalSet) {
    const evalRows = tokenizeAll(op, tokenizer, evalSet.texts, maxLength);
    result.eval = scoresOf(evalSet.labels, await predict(op, model, evalRows, pad, 32));
    const counts = new Map<number, number>();
    for (const l of trainSet.labels) counts.set(l, (counts.get(l) ?? 0) + 1);
    const label = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0];
    const base = scoresOf(evalSet.labels, evalSet.labels.map(() => label));
    result.baseline = { label, accuracy: base.accuracy, macroF1: base.macroF1 };
  }
  return result;
}
