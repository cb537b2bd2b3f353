/**
 * Training helpers that run anywhere: early stopping, callbacks and hyperparameter search. The
 * training loop with its checkpoints is Node-only (`./node.ts`).
 * @module
 */
export { EarlyStopping, type EarlyStoppingOptions, type EarlyStoppingState } from './early_stopping.js';
export {
  callAll,
  callbackArray,
  type TrainCallbacks,
  type CallbackList,
  type StepInfo,
  type EvalInfo,
  type CheckpointInfo,
  type CheckpointReason,
  type EndInfo,
  type StopReason,
} from './callbacks.js';
export {
  search,
  gridConfigs,
  randomConfigs,
  searchTable,
  type SearchOptions,
  type SearchResult,
  type SearchSpace,
  type SearchConfig,
  type ParamSpec,
  type ParamValue,
  type Trial,
  type TrialContext,
  type TrialOutcome,
  type TrialStatus,
  type PrunerOptions,
  type MedianPrunerOptions,
  type HalvingPrunerOptions,
  type HyperbandPrunerOptions,
} from './search.js';
export { EMA, type EMAOptions } from './ema.js';
export { pbt, type PBTOptions, type PBTResult, type PBTMember, type PBTRecord, type PBTContext, type PBTModelState } from './pbt.js';
export { kFoldSplits, crossValidate, type KFoldOptions, type KFold, type CrossValidateOptions, type FoldResult, type CrossValidationResult } from './kfold.js';
export { embeddingPerturbation, type AdversarialOptions, type PerturbableModel } from './adversarial.js';
export {
  ReplayBuffer,
  continualTrain,
  heldOutLoss,
  tokenSource,
  type ReplayBufferOptions,
  type ContinualTrainOptions,
  type ContinualResult,
  type ContinualEval,
  type HeldOutLoss,
  type HeldOutLossOptions,
  type TokenSource,
  type TokenInput,
  type LearnerModel,
  type LearnerOptimizer,
} from './continual.js';
export { averageStates, splitNonIID, federatedAverage, federatedGap, type SplitNonIIDOptions, type FederatedOptions, type FederatedResult, type FederatedRound, type FederatedGap, type FederatedModel } from './federated.js';
