/**
 * Reading and writing tensors: safetensors files (compatible with Hugging Face and PyTorch
 * tooling), atomic file writes, and training checkpoints.
 * @module
 */
export {
  saveSafetensors,
  saveSafetensorsSync,
  loadSafetensors,
  parseSafetensorsHeader,
  type SafetensorsFile,
  type SafetensorsMetadata,
  type SafetensorsEntry,
  type SafetensorsHeader,
  type LoadSafetensorsOptions,
} from './safetensors.js';
export { writeFileAtomic, writeFileAtomicSync, type AsyncWriter, type SyncWriter } from './atomic.js';
export {
  saveCheckpoint,
  loadCheckpoint,
  crc32,
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
