/**
 * The training loop ({@link train}) with evaluation, checkpoints, resume, early stopping and
 * callbacks; evaluation and a unigram baseline; weight-decay parameter groups. Node-only: it
 * reads shards and writes checkpoints.
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
export { averageCheckpoints, averageCheckpointsInto, saveAveragedCheckpoint, type AverageCheckpointsOptions, type SaveAveragedCheckpointOptions, type AveragedCheckpoint } from './average.js';
export { EnergyMeter, formatEnergy, DEFAULT_WATTS_PER_CORE, DEFAULT_GRID_INTENSITY, type EnergyMeterOptions, type EnergyReport, type RaplZone, type GpuEnergy } from './energy.js';
