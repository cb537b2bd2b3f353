/**
 * Data for training language models: reading corpora (text, folders, JSONL), cleaning with a
 * report, a deterministic train/validation split, tokenised shards cached on disk, and seeded
 * batches read lazily from them.
 *
 * @example
 * const { documents, report } = await prepare('corpus/', { length: { minChars: 20 } });
 * const { train, val } = splitDocuments(documents, { valFraction: 0.05 });
 * const shards = await buildShards(train, tokenizer, { cacheDir: '.kiln/cache', eos: 50256 });
 * const data = TokenDataset.open(shards);
 * const { input, target } = data.batch(8, 256, new Generator(1));
 * @module
 */
export * from './sources.js';
export * from './clean.js';
export * from './prepare.js';
export * from './split.js';
export * from './shards.js';
export * from './batches.js';
export * from './tokenizer.js';
export * from './bpe.js';
export * from './wordpiece.js';
