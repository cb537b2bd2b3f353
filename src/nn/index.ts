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
export { GPT, GPTTransformer, type GPTConfig, type GPTForwardOptions, type GPTOutput } from './gpt.js';
export { generate, sampleLogits, type GenerateOptions, type SamplingOptions } from './generate.js';
