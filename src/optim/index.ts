/**
 * Optimizers (SGD, Adam, AdamW, LAMB) with parameter groups and exact state dicts, learning-rate
 * schedules, and gradient clipping.
 * @module
 */
export {
  Optimizer,
  stateDtype,
  byDtype,
  type GroupItem,
  type HyperParam,
  type OptimizerOptions,
  type ParamGroup,
  type ParamGroupSpec,
  type Params,
  type ParamState,
  type OptimizerStateDict,
} from './optimizer.js';
export { SGD, sgdUpdate, type SGDOptions } from './sgd.js';
export { Adam, AdamW, adamComposite, type AdamOptions } from './adam.js';
export { LAMB, lambComposite, type LAMBOptions } from './lamb.js';
export {
  LRScheduler,
  constantLr,
  linearWarmupLr,
  cosineLr,
  linearDecayLr,
  stepLr,
  inverseSqrtLr,
  type Schedule,
  type DecayOptions,
  type HasParamGroups,
  type SchedulerStateDict,
} from './schedule.js';
export { clipGradNorm, clipGradValue, type ClipGradNormOptions } from './clip.js';
