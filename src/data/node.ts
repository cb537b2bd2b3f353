/**
 * Node-only data preparation: reading corpora (text, folders, JSONL), cleaning with a report, a
 * deterministic train/validation split, tokenised shards cached on disk, and seeded batches read
 * lazily from them.
 * @module
 */
export * from './sources.js';
export * from './clean.js';
export * from './prepare.js';
export * from './split.js';
export * from './shards.js';
export * from './batches.js';
export * from './token_files.js';
export { Curriculum, lengthCurriculum, lossCurriculum, type CurriculumOptions, type LengthCurriculumOptions, type LossCurriculumOptions, type Pacing, type ScoringModel } from './curriculum.js';
