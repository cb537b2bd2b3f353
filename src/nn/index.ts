/**
 * kiln's neural-network layer: `Module` and its containers, layers, the GPT model, its
 * initialisation, key/value caches and generation.
 * @module
 */
export {
  Module,
  ModuleList,
  type StateDict,
  type LoadStateDictOptions,
  type LoadStateDictResult,
  type BufferOptions,
} from './module.js';
export {
  GPT2_INIT_STD,
  residualStd,
  normalParam,
  uniformParam,
  constantParam,
  normal_,
  uniform_,
  constant_,
  zeros_,
  ones_,
  type ParamOptions,
} from './init.js';
export { Linear, type LinearOptions, type LoRAOptions, type LoRAState } from './linear.js';
export { Embedding, type EmbeddingOptions } from './embedding.js';
export { LayerNorm, RMSNorm, type LayerNormOptions, type RMSNormOptions } from './norm.js';
export { Dropout } from './dropout.js';
export { LSTM, GRU, type RNNOptions, type RNNForwardOptions } from './rnn.js';
export { GELU, SiLU, ReLU } from './activation.js';
export { MLP, type MLPActivation, type MLPOptions } from './mlp.js';
export { RotaryEmbedding, applyRotary, type RotaryOptions } from './rope.js';
export { LayerKVCache, KVCache } from './kv_cache.js';
export { CausalSelfAttention, type AttentionConfig } from './attention.js';
export { Block, type BlockConfig } from './block.js';
export { GPT, GPTTransformer, type GPTConfig, type GPTForwardOptions, type GPTOutput, type GPTMoEConfig, type ResolvedGPTMoEConfig } from './gpt.js';
export { MoE, type MoEConfig, type MoEOptions, type MoEStats, type MoEStatsTensors, type ResolvedMoEConfig } from './moe.js';
export { quantizeDynamic, type QuantizeDynamicOptions, type QuantizeReport } from './quantize.js';
export { prune, sparsity, Pruner, type PruneMethod, type PruneOptions, type PruneSelection, type ParamSparsity, type SparsityReport, type SteppableOptimizer } from './prune.js';
export {
  BertModel,
  BertForMaskedLM,
  BertForSequenceClassification,
  BertForTokenClassification,
  MaskedLMPretraining,
  evaluateMaskedLM,
  encodeForBert,
  evaluateBertClassifier,
  finetuneBertClassifier,
  type BertConfig,
  type ResolvedBertConfig,
  type BertModelOptions,
  type BertForwardOptions,
  type BertModelOutput,
  type BertHeadOutput,
  type BertClassifierOptions,
  type MLMMaskingOptions,
  type EvaluateMaskedLMOptions,
  type MaskedLMEvaluation,
  type BertEncoding,
  type ClassifierScores,
  type EvaluateBertClassifierOptions,
  type FinetuneBertClassifierOptions,
  type FinetuneBertClassifierResult,
} from './bert.js';
export { generate, sampleLogits, type GenerateOptions, type SamplingOptions } from './generate.js';
