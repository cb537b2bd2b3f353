/** Alignment: preference data, a reward model, DPO, and distillation objectives. @module */
export { IGNORE_INDEX, logSigmoid, sequenceLogProbs, bradleyTerryLoss, dpoLoss, distillationLoss, hiddenStateLoss, type DPOOptions, type DPOResult, type DistillationOptions } from './losses.js';
export { RewardModel, pairAccuracy } from './reward.js';
export {
  parsePreferencePairs,
  parseInstructions,
  batchExamples,
  packExamples,
  type PackedBatch,
  type ChatMessage,
  type PreferencePair,
  type InstructionExample,
  type TokenizedExample,
  type ExampleBatch,
} from './data.js';
export { ppo, type PPOOptions, type PPOIteration, type PPOResult } from './ppo.js';
