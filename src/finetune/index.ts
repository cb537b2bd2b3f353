/** Fine-tuning: parameter-efficient adapters (LoRA, bottleneck adapters) and their files. @module */
export {
  PEFT_PREFIX,
  applyLoRA,
  applyAdapters,
  loraLayers,
  mergeLoRA,
  unmergeLoRA,
  removeLoRA,
  peftStateDict,
  peftConfig,
  loadPeftState,
  BottleneckAdapter,
  type LoRAConfig,
  type AdapterConfig,
  type PeftConfigJSON,
} from './peft.js';
export { CHAT_TOKENS, addSpecialTokens, resizeTokenEmbeddings, chatExample, chatPrompt, evaluateResponses, type ResponseEval } from './sft.js';
export { parseStyleGuide, styleSystemPrompt, describeRule, followsRule, styleScore, styleReport, applyStyle, type StyleGuide, type StyleRule } from './style.js';
