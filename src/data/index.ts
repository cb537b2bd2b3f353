/**
 * Tokenizers (browser-safe): byte-level BPE (training, GPT-2 files, special tokens) and WordPiece.
 * Reading corpora, cleaning, splitting, shards and batches are Node-only (`./node.ts`).
 *
 * @example
 * const { documents, report } = await prepare('corpus/', { length: { minChars: 20 } });
 * const { train, val } = splitDocuments(documents, { valFraction: 0.05 });
 * const shards = await buildShards(train, tokenizer, { cacheDir: '.kiln/cache', eos: 50256 });
 * const data = TokenDataset.open(shards);
 * const { input, target } = data.batch(8, 256, new Generator(1));
 * @module
 */
export * from './tokenizer.js';
export * from './bpe.js';
export * from './wordpiece.js';
export { GPT2_PATTERN, pretokenize, splitGPT2, splitByRegExp, compilePattern } from './pretokenize.js';
export { maskTokens, maskTokensTensor, trainWordPiece, type MaskTokensOptions, type MaskedTokens, type MaskedTokensTensor, type TrainWordPieceOptions } from './mlm.js';
export {
  tokenDropout,
  spanMask,
  randomSwap,
  synonymReplace,
  composeTransforms,
  type BatchTransform,
  type TokenRows,
  type TokenDropoutOptions,
  type SpanMaskOptions,
  type RandomSwapOptions,
  type SynonymReplaceOptions,
  type SynonymTokenizer,
} from './augment.js';
