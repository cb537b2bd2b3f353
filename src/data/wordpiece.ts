/**
 * WordPiece encoding as in BERT (Devlin et al. 2019; the algorithm of Google's
 * `tokenization.py` and Hugging Face's `BertTokenizer`), from a vocabulary file with one token
 * per line (the line number, from 0, is the id).
 *
 * **Basic tokenisation**, in order:
 * 1. special tokens (`[CLS]`, `[SEP]`, `[MASK]`, … that are in the vocabulary) are found first
 *    and kept whole, whatever the other options;
 * 2. cleaning: U+0000, U+FFFD and every other-category character (`\p{C}`: controls, format
 *    characters, lone surrogates, private use, unassigned) are dropped, except tab, newline and
 *    carriage return, which like every separator (`\p{Z}`: spaces, U+2028, U+2029) become
 *    U+0020;
 * 3. CJK ideographs (the CJK Unified Ideographs blocks and extensions A–E, and the
 *    compatibility ideographs) get spaces around them, so each is a word of its own;
 * 4. the text is split on spaces; with `lowercase`, each word is lower-cased, and with
 *    `stripAccents` (default: the same as `lowercase`) decomposed (NFD) and stripped of
 *    non-spacing marks (`\p{Mn}`), so `"Héllo"` becomes `"hello"`;
 * 5. each word is split around punctuation: every `\p{P}` character, and the ASCII symbols
 *    `$ + < = > ^ \` | ~` too, becomes a word of its own.
 *
 * **WordPiece**: each word longer than `maxInputCharsPerWord` code points (default 100) is
 * `[UNK]`; otherwise it is covered greedily from the left by the longest vocabulary entry, the
 * pieces after the first written with the `##` prefix; if some position has no match the whole
 * word is `[UNK]`. With the vocabulary `un ##aff ##able`, `"unaffable"` is
 * `["un", "##aff", "##able"]`.
 *
 * Decoding joins the tokens with spaces and glues `##` pieces to the token before; it cannot
 * undo lower-casing, accent stripping or the spacing around punctuation.
 * @module
 */
import { hostFiles } from '../host.js';
import { describeJSON } from '../io/describe.js';
import { got, idsArg, optionsArg, pathArg, textArg } from './args.js';
import type { Tokenizer } from './tokenizer.js';

/** Options of {@link WordPieceTokenizer}. */
export interface WordPieceOptions {
  /** Lower-case words before matching (BERT's uncased models; default true). */
  lowercase?: boolean;
  /** Strip accents (NFD, drop `\p{Mn}`); default: the value of `lowercase`. */
  stripAccents?: boolean;
  /** Words with more code points than this become the unknown token (default 100). */
  maxInputCharsPerWord?: number;
  /** The unknown token; it must be in the vocabulary (default `[UNK]`). */
  unkToken?: string;
  /** The prefix of a piece that continues a word (default `##`). */
  continuingSubwordPrefix?: string;
  /**
   * Special tokens, matched in the text before anything else (default: those of `[PAD]`,
   * `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]` that are in the vocabulary). Each must be in the
   * vocabulary.
   */
  specialTokens?: readonly string[];
}

/** The JSON form of a {@link WordPieceTokenizer}: the vocabulary in id order, and the options. */
export interface WordPieceTokenizerJSON {
  type: 'wordpiece';
  version: 1;
  vocab: string[];
  lowercase: boolean;
  stripAccents: boolean;
  maxInputCharsPerWord: number;
  unkToken: string;
  continuingSubwordPrefix: string;
  specialTokens: string[];
}

const BERT_SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

const OTHER_RE = /\p{C}/u;
const SEPARATOR_RE = /\p{Z}/u;
const PUNCT_RE = /\p{P}/u;
const MARK_RE = /\p{Mn}/gu;

function isCJK(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

function isPunctuation(ch: string, cp: number): boolean {
  // BERT counts every non-alphanumeric printable ASCII character as punctuation
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) return true;
  return cp > 127 && PUNCT_RE.test(ch);
}

function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

/**
 * A BERT-style WordPiece tokenizer (see the module comment for the exact algorithm).
 *
 * @example
 * const tok = WordPieceTokenizer.fromVocab(['[UNK]', 'un', '##aff', '##able']);
 * tok.tokenize('unaffable'); // ['un', '##aff', '##able']
 * tok.encode('unaffable'); // [1, 2, 3]
 */
export class WordPieceTokenizer implements Tokenizer {
  /** Always `'wordpiece'`. */
  readonly type = 'wordpiece' as const;
  /** The number of vocabulary entries (lines). */
  readonly vocabSize: number;
  /** Special tokens and their ids. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** Whether words are lower-cased. */
  readonly lowercase: boolean;
  /** Whether accents are stripped. */
  readonly stripAccents: boolean;
  /** Longer words become the unknown token. */
  readonly maxInputCharsPerWord: number;
  /** The unknown token. */
  readonly unkToken: string;
  /** The prefix of continuation pieces. */
  readonly continuingSubwordPrefix: string;

  private readonly vocab: readonly string[];
  private readonly ids: Map<string, number>;
  private readonly unkId: number;
  private readonly specialRe: RegExp | null;

  /** A tokenizer over `vocab` (token of id i at index i). */
  constructor(vocab: readonly string[], opts: WordPieceOptions = {}) {
    // the options often come from a file (fromJSON): check every type, so a wrong one is named here
    if (!Array.isArray(vocab) || !vocab.every((t) => typeof t === 'string'))
      throw new Error(`WordPieceTokenizer: the vocabulary must be an array of strings, got ${describeJSON(vocab)}`);
    if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`WordPieceTokenizer: options must be an object, got ${describeJSON(opts)}`);
    optionsArg('WordPieceTokenizer', opts, ['lowercase', 'stripAccents', 'maxInputCharsPerWord', 'unkToken', 'continuingSubwordPrefix', 'specialTokens']);
    const bad = (name: keyof WordPieceOptions, want: string): Error =>
      new Error(`WordPieceTokenizer: ${name} must be ${want}, got ${describeJSON(opts[name])}`);
    for (const name of ['lowercase', 'stripAccents'] as const)
      if (opts[name] !== undefined && typeof opts[name] !== 'boolean') throw bad(name, 'true or false');
    for (const name of ['unkToken', 'continuingSubwordPrefix'] as const)
      if (opts[name] !== undefined && typeof opts[name] !== 'string') throw bad(name, 'a string');
    if (opts.specialTokens !== undefined && (!Array.isArray(opts.specialTokens) || !opts.specialTokens.every((t) => typeof t === 'string')))
      throw bad('specialTokens', 'an array of strings');
    this.vocab = [...vocab];
    this.ids = new Map();
    // a repeated line maps to its last id, as BERT's vocabulary loader does
    this.vocab.forEach((t, i) => this.ids.set(t, i));
    this.vocabSize = this.vocab.length;
    this.lowercase = opts.lowercase ?? true;
    this.stripAccents = opts.stripAccents ?? this.lowercase;
    const maxChars = opts.maxInputCharsPerWord ?? 100;
    if (typeof maxChars !== 'number' || !Number.isSafeInteger(maxChars) || maxChars < 1) throw bad('maxInputCharsPerWord', 'a positive integer');
    this.maxInputCharsPerWord = maxChars;
    this.unkToken = opts.unkToken ?? '[UNK]';
    this.continuingSubwordPrefix = opts.continuingSubwordPrefix ?? '##';
    const unk = this.ids.get(this.unkToken);
    if (unk === undefined) throw new Error(`WordPieceTokenizer: the unknown token ${describeJSON(this.unkToken)} is not in the vocabulary`);
    this.unkId = unk;
    const specials = new Map<string, number>();
    for (const s of opts.specialTokens ?? BERT_SPECIALS.filter((t) => this.ids.has(t))) {
      const id = this.ids.get(s);
      if (id === undefined) throw new Error(`WordPieceTokenizer: special token ${describeJSON(s)} is not in the vocabulary`);
      if (s.length === 0) throw new Error('WordPieceTokenizer: a special token must not be empty');
      specials.set(s, id);
    }
    this.specialTokens = specials;
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
  }

  /** A tokenizer from the text of a vocabulary file (one token per line) or its lines. */
  static fromVocab(vocab: string | readonly string[], opts?: WordPieceOptions): WordPieceTokenizer {
    return fromVocabAs('WordPieceTokenizer.fromVocab', vocab, opts);
  }

  /** A tokenizer from a vocabulary file (`vocab.txt`: one token per line, the line number is the id). */
  static fromVocabFile(path: string, opts?: WordPieceOptions): WordPieceTokenizer {
    pathArg('WordPieceTokenizer.fromVocabFile', path);
    let text: string;
    try {
      text = hostFiles('WordPieceTokenizer.fromVocabFile', 'the text to WordPieceTokenizer.fromVocab').readText(path);
    } catch (e) {
      throw new Error(`WordPieceTokenizer.fromVocabFile: cannot read ${path}: ${(e as Error).message}`);
    }
    return fromVocabAs('WordPieceTokenizer.fromVocabFile', text, opts);
  }

  /** The id of a token, or undefined. */
  tokenToId(token: string): number | undefined {
    textArg('WordPieceTokenizer.tokenToId', token, 'token');
    return this.ids.get(token);
  }

  /** The token of an id; throws when out of range. */
  idToToken(id: number): string {
    return this.tokenOf('WordPieceTokenizer.idToToken', id);
  }

  private tokenOf(op: string, id: unknown, at = ''): string {
    const t = typeof id === 'number' && Number.isInteger(id) ? this.vocab[id] : undefined;
    if (t === undefined) throw new Error(`${op}: id ${typeof id === 'number' ? id : got(id)}${at} is not in the vocabulary (vocabSize ${this.vocabSize})`);
    return t;
  }

  /** The words of `text` after basic tokenisation (steps 2–5 of the module comment), special tokens not treated apart. */
  basicTokenize(text: string): string[] {
    textArg('WordPieceTokenizer.basicTokenize', text);
    // steps 2 and 3: clean, space out CJK
    let clean = '';
    for (const ch of text) {
      const cp = ch.codePointAt(0)!;
      if (cp === 9 || cp === 10 || cp === 13 || cp === 32 || (cp > 127 && SEPARATOR_RE.test(ch))) clean += ' ';
      else if (cp === 0 || cp === 0xfffd || OTHER_RE.test(ch)) continue;
      else if (isCJK(cp)) clean += ` ${ch} `;
      else clean += ch;
    }
    const out: string[] = [];
    for (let word of clean.split(' ')) {
      if (word === '') continue;
      if (this.lowercase) word = word.toLowerCase();
      if (this.stripAccents) word = word.normalize('NFD').replace(MARK_RE, '');
      // step 5: punctuation
      let cur = '';
      for (const ch of word) {
        if (isPunctuation(ch, ch.codePointAt(0)!)) {
          if (cur !== '') out.push(cur);
          out.push(ch);
          cur = '';
        } else cur += ch;
      }
      if (cur !== '') out.push(cur);
    }
    return out;
  }

  /** The WordPiece tokens of one word (greedy longest match first; `[UNK]` when it fails). */
  wordpiece(word: string): string[] {
    textArg('WordPieceTokenizer.wordpiece', word, 'word');
    const chars = Array.from(word);
    if (chars.length > this.maxInputCharsPerWord) return [this.unkToken];
    const pieces: string[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let found: string | undefined;
      while (end > start) {
        let sub = chars.slice(start, end).join('');
        if (start > 0) sub = this.continuingSubwordPrefix + sub;
        if (this.ids.has(sub)) {
          found = sub;
          break;
        }
        end--;
      }
      if (found === undefined) return [this.unkToken];
      pieces.push(found);
      start = end;
    }
    return pieces;
  }

  /** The tokens of `text`: special tokens whole, every other word through {@link WordPieceTokenizer.wordpiece}. */
  tokenize(text: string): string[] {
    textArg('WordPieceTokenizer.tokenize', text);
    const out: string[] = [];
    const words = (s: string): void => {
      for (const w of this.basicTokenize(s)) for (const p of this.wordpiece(w)) out.push(p);
    };
    const re = this.specialRe;
    if (re === null) {
      words(text);
      return out;
    }
    re.lastIndex = 0;
    let start = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(text)) !== null) {
      words(text.slice(start, m.index));
      out.push(m[0]);
      start = m.index + m[0].length;
    }
    words(text.slice(start));
    return out;
  }

  /** The ids of {@link WordPieceTokenizer.tokenize}'s tokens (no `[CLS]`/`[SEP]` added). */
  encode(text: string): number[] {
    textArg('WordPieceTokenizer.encode', text);
    return this.tokenize(text).map((t) => this.ids.get(t) ?? this.unkId);
  }

  /** The tokens of `ids` joined by spaces, with `##` pieces glued to the token before. */
  decode(ids: ArrayLike<number>): string {
    idsArg('WordPieceTokenizer.decode', ids);
    let s = '';
    const pre = this.continuingSubwordPrefix;
    for (let i = 0; i < ids.length; i++) {
      const t = this.tokenOf('WordPieceTokenizer.decode', ids[i], ` at position ${i}`);
      if (pre !== '' && t.startsWith(pre) && s !== '') s += t.slice(pre.length);
      else s += s === '' ? t : ` ${t}`;
    }
    return s;
  }

  /** The JSON form (see {@link WordPieceTokenizerJSON}). */
  toJSON(): WordPieceTokenizerJSON {
    return {
      type: 'wordpiece',
      version: 1,
      vocab: [...this.vocab],
      lowercase: this.lowercase,
      stripAccents: this.stripAccents,
      maxInputCharsPerWord: this.maxInputCharsPerWord,
      unkToken: this.unkToken,
      continuingSubwordPrefix: this.continuingSubwordPrefix,
      specialTokens: [...this.specialTokens.keys()],
    };
  }

  /** Write the JSON form to `path`. */
  save(path: string): void {
    const op = 'WordPieceTokenizer.save';
    pathArg(op, path);
    const files = hostFiles(op, 'tokenizer.toJSON()');
    try {
      files.writeText(path, JSON.stringify(this.toJSON()));
    } catch (e) {
      throw new Error(`${op}: cannot write '${path}': ${(e as Error)?.message ?? String(e)}`);
    }
  }

  /** A tokenizer from its JSON form; throws `WordPieceTokenizer.fromJSON: …` naming the first field that does not fit. */
  static fromJSON(json: WordPieceTokenizerJSON): WordPieceTokenizer {
    if (json === null || typeof json !== 'object' || Array.isArray(json))
      throw new Error(`WordPieceTokenizer.fromJSON: expected a WordPiece tokenizer's JSON object, got ${Array.isArray(json) ? describeJSON(json) : got(json)}`);
    if (json.type !== 'wordpiece') {
      throw new Error(`WordPieceTokenizer.fromJSON: not a WordPiece tokenizer (type ${describeJSON((json as { type?: unknown } | null)?.type)})`);
    }
    if (json.version !== 1) throw new Error(`WordPieceTokenizer.fromJSON: unsupported version ${describeJSON(json.version)} (this kiln reads version 1)`);
    if (!Array.isArray(json.vocab) || !json.vocab.every((t) => typeof t === 'string')) throw new Error('WordPieceTokenizer.fromJSON: vocab must be an array of strings');
    try {
      return new WordPieceTokenizer(json.vocab, {
        lowercase: json.lowercase,
        stripAccents: json.stripAccents,
        maxInputCharsPerWord: json.maxInputCharsPerWord,
        unkToken: json.unkToken,
        continuingSubwordPrefix: json.continuingSubwordPrefix,
        specialTokens: json.specialTokens,
      });
    } catch (e) {
      throw new Error(`WordPieceTokenizer.fromJSON: ${(e as Error).message}`);
    }
  }

  /** Read a tokenizer written by {@link WordPieceTokenizer.save}. */
  static load(path: string): WordPieceTokenizer {
    pathArg('WordPieceTokenizer.load', path);
    let json: WordPieceTokenizerJSON;
    try {
      json = JSON.parse(hostFiles('WordPieceTokenizer.load', 'the JSON to WordPieceTokenizer.fromJSON').readText(path)) as WordPieceTokenizerJSON;
    } catch (e) {
      throw new Error(`WordPieceTokenizer.load: cannot read ${path}: ${(e as Error).message}`);
    }
    return WordPieceTokenizer.fromJSON(json);
  }
}

/** {@link WordPieceTokenizer.fromVocab} as the public method `op`: the constructor's errors are prefixed with `op`. */
function fromVocabAs(op: string, vocab: unknown, opts: WordPieceOptions | undefined): WordPieceTokenizer {
  if (typeof vocab !== 'string' && !Array.isArray(vocab)) throw new Error(`${op}: vocab must be the text of a vocabulary file or an array of tokens, got ${got(vocab)}`);
  let lines = vocab as readonly string[];
  if (typeof vocab === 'string') {
    const split = vocab.split(/\r?\n/);
    if (split.length > 0 && split[split.length - 1] === '') split.pop(); // the final newline
    lines = split;
  }
  try {
    return new WordPieceTokenizer(lines, opts);
  } catch (e) {
    if (e instanceof Error && !e.message.startsWith(`${op}: `)) e.message = `${op}: ${e.message}`;
    throw e;
  }
}
