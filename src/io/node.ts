/**
 * Node-only input and output: atomic file writes, training checkpoints, and Hugging Face GPT-2
 * folders (weights with their config.json).
 * @module
 */
export { writeFileAtomic, writeFileAtomicSync, type AsyncWriter, type SyncWriter } from './atomic.js';
export {
  saveCheckpoint,
  loadCheckpoint,
  CHECKPOINT_FILE,
  type CheckpointContents,
  type CheckpointTargets,
  type LoadedCheckpoint,
  type SaveCheckpointOptions,
  type StateDictModel,
  type StateDictOptimizer,
  type StateDictScheduler,
  type StatefulGenerator,
} from './checkpoint.js';
export {
  loadHFGPT2,
  hfGPT2Config,
  hfGPT2StateDict,
  hfGPT2Gradients,
  saveHFGPT2,
  type LoadHFGPT2Options,
  type HFGPT2StateDictOptions,
} from './hf_gpt2.js';
