/**
 * The interface every kiln tokenizer implements (byte-level BPE in `bpe.ts`, WordPiece in
 * `wordpiece.ts`), and {@link loadTokenizer}, which reads either kind back from its JSON.
 * @module
 */
import { hostFiles } from '../host.js';
import { describeJSON } from '../io/describe.js';
import { got, pathArg } from './args.js';
import { BPETokenizer, type BPETokenizerJSON } from './bpe.js';
import { WordPieceTokenizer, type WordPieceTokenizerJSON } from './wordpiece.js';

/**
 * A tokenizer: text to token ids and back, with a JSON form that {@link loadTokenizer} (or the
 * class's own static `load`/`fromJSON`) reads back into an identical tokenizer.
 */
export interface Tokenizer {
  /** Which algorithm: the `type` field of the JSON form. */
  readonly type: TokenizerJSON['type'];
  /** One more than the largest token id (special tokens included): the embedding table's row count. */
  readonly vocabSize: number;
  /** Special tokens (`<|endoftext|>`, `[CLS]`, …) and their ids; they are matched in the text before anything else and never split or merged. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** The ids of `text`. */
  encode(text: string): number[];
  /** The text of `ids`. */
  decode(ids: ArrayLike<number>): string;
  /** The JSON-serialisable form (what {@link Tokenizer.save} writes). */
  toJSON(): TokenizerJSON;
  /** Write {@link Tokenizer.toJSON} to `path` as a JSON file. */
  save(path: string): void;
}

/** The JSON form of any kiln tokenizer; `type` says which. */
export type TokenizerJSON = BPETokenizerJSON | WordPieceTokenizerJSON;

/**
 * Read a tokenizer saved by {@link Tokenizer.save} (a path), or build one from its JSON form
 * (an object), whatever its type.
 *
 * @example
 * const tok = loadTokenizer('tokenizer.json');
 * tok.decode(tok.encode('hello')); // 'hello'
 */
export function loadTokenizer(source: string | TokenizerJSON): Tokenizer {
  let json: unknown = source;
  if (typeof source !== 'string' && (source === null || typeof source !== 'object' || Array.isArray(source)))
    throw new Error(`loadTokenizer: expected a path or a tokenizer's JSON object, got ${Array.isArray(source) ? describeJSON(source) : got(source)}`);
  if (typeof source === 'string') {
    pathArg('loadTokenizer', source);
    try {
      json = JSON.parse(hostFiles('loadTokenizer', 'the tokenizer JSON itself').readText(source));
    } catch (e) {
      throw new Error(`loadTokenizer: cannot read ${source}: ${(e as Error).message}`);
    }
  }
  const type = json !== null && typeof json === 'object' ? (json as { type?: unknown }).type : undefined;
  switch (type) {
    case 'bpe':
      return BPETokenizer.fromJSON(json as BPETokenizerJSON);
    case 'wordpiece':
      return WordPieceTokenizer.fromJSON(json as WordPieceTokenizerJSON);
    default:
      throw new Error(`loadTokenizer: unknown tokenizer type ${describeJSON(type)} (expected 'bpe' or 'wordpiece')`);
  }
}

