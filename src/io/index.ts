/**
 * Reading and writing tensors as safetensors (compatible with Hugging Face and PyTorch tooling),
 * browser-safe: bytes in and out (paths through the Node entry point). Files, checkpoints and
 * Hugging Face GPT-2 folders are in `./node.ts`.
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
export { checkpointBytes, crc32, type CheckpointBytesContents } from './checkpoint_bytes.js';
