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
} from './search.js';
export { EMA, type EMAOptions } from './ema.js';
