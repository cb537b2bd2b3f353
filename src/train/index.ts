/**
 * Training helpers: the training loop ({@link train}) with evaluation, checkpoints, resume,
 * early stopping and callbacks; evaluation and a unigram baseline; weight-decay parameter
 * groups; and hyperparameter search.
 * @module
 */
export {
  train,
  evaluate,
  unigramEntropy,
  weightDecayGroups,
  checkpointPath,
  listCheckpoints,
  latestCheckpoint,
  type TrainOptions,
  type TrainResult,
  type TrainableModel,
  type TrainOptimizer,
  type HistoryEntry,
  type EvalRecord,
  type EvaluateOptions,
} from './loop.js';
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
} from './search.js';
