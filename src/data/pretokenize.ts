/**
 * GPT-2 pre-tokenisation: the text is cut into pieces (words with their leading space, runs of
 * digits, runs of punctuation, runs of whitespace, English contractions) before byte-pair
 * merging, so that no merge ever crosses a piece boundary.
 *
 * The split is GPT-2's published pattern (Radford et al. 2019, `encoder.py` of openai/gpt-2):
 *
 * ```text
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * ```
 *
 * run as a JavaScript regular expression with the `u` flag, so `\s`, `\p{L}` and `\p{N}` have
 * their ECMAScript meanings (JavaScript's `\s` includes U+FEFF, Python's does not), a
 * surrogate pair is one code point and a lone surrogate is a code point of its own that is
 * neither letter, number nor space. In words: at each position the first alternative that
 * matches wins — a lower-case contraction after an apostrophe; else an optional single space
 * followed by a run of letters, or of numbers, or of anything else that is not whitespace;
 * else a run of whitespace, which leaves its last character to the next piece when a
 * non-space follows (so `"a  b"` splits as `"a"`, `" "`, `" b"`).
 *
 * {@link splitGPT2} is a hand-written scanner with exactly that behaviour (tested against the
 * regular expression on arbitrary Unicode); it is what the BPE encoder uses, because it is
 * several times faster than running the regular expression.
 * @module
 */
import { got, textArg } from './args.js';

/** GPT-2's pre-tokenisation pattern (the source of a regular expression; compile it with the `u` flag). */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/**
 * Cut `text` into pieces with a pre-tokenisation pattern (GPT-2's by default). Text that no
 * match covers (possible only with a custom pattern) is returned as pieces of its own, so the
 * pieces always concatenate back to `text`.
 *
 * @example
 * pretokenize("Hello world, it's 2024!"); // ['Hello', ' world', ',', ' it', "'s", ' 2024', '!']
 */
export function pretokenize(text: string, pattern: string = GPT2_PATTERN): string[] {
  textArg('pretokenize', text);
  const out: string[] = [];
  if (pattern === GPT2_PATTERN) {
    scanGPT2(text, 0, text.length, (s, e) => {
      out.push(text.slice(s, e));
    });
    return out;
  }
  scanRegExp(text, 0, text.length, patternRegExp('pretokenize', pattern), (s, e) => {
    out.push(text.slice(s, e));
  });
  return out;
}

/** Compile a pre-tokenisation pattern as a global Unicode regular expression, with a named error. */
export function compilePattern(pattern: string): RegExp {
  return patternRegExp('compilePattern', pattern);
}

/** @internal {@link compilePattern} with errors named `op`. */
export function patternRegExp(op: string, pattern: unknown): RegExp {
  textArg(op, pattern, 'pattern');
  try {
    return new RegExp(pattern as string, 'gu');
  } catch (e) {
    throw new Error(`${op}: invalid pattern ${JSON.stringify(pattern)}: ${(e as Error).message}`);
  }
}

// The checks of the public splitters: a string, a range inside it, a callback.
function checkRange(op: string, text: unknown, from: unknown, to: unknown, piece: unknown): void {
  const t = textArg(op, text);
  const index = (name: string, v: unknown, min: number): void => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > t.length)
      throw new Error(`${op}: ${name} must be an integer in [${min}, ${t.length}] (the text has ${t.length} code units), got ${got(v)}`);
  };
  index('from', from, 0);
  index('to', to, from as number);
  if (typeof piece !== 'function') throw new Error(`${op}: piece must be a function (start, end) => void, got ${got(piece)}`);
}

/**
 * Call `piece(start, end)` for each piece of `text.slice(from, to)` that `re` (global, Unicode)
 * matches, in order, and for every gap between matches too; empty matches are skipped.
 */
export function splitByRegExp(text: string, from: number, to: number, re: RegExp, piece: (start: number, end: number) => void): void {
  const op = 'splitByRegExp';
  checkRange(op, text, from, to, piece);
  // a regular expression without the g (or y) flag would match at the same place forever
  if (!(re instanceof RegExp)) throw new Error(`${op}: re must be a regular expression with the g flag, got ${got(re)}`);
  if (!re.global && !re.sticky) throw new Error(`${op}: re must have the g flag (global), got ${String(re)}`);
  scanRegExp(text, from, to, re, piece);
}

/** @internal {@link splitByRegExp} without the argument checks (the encoder's inner loop). */
export function scanRegExp(text: string, from: number, to: number, re: RegExp, piece: (start: number, end: number) => void): void {
  const sub = from === 0 && to === text.length ? text : text.slice(from, to);
  re.lastIndex = 0;
  let last = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(sub)) !== null) {
    const len = m[0].length;
    if (len === 0) {
      // step over a whole code point: in unicode mode an index inside a surrogate pair matches at
      // the pair's start again, so stepping one code unit would loop forever (AdvanceStringIndex)
      const at = re.lastIndex;
      const c = sub.charCodeAt(at);
      const d = sub.charCodeAt(at + 1);
      re.lastIndex = at + (c >= 0xd800 && c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff ? 2 : 1);
      continue;
    }
    if (m.index > last) piece(from + last, from + m.index);
    piece(from + m.index, from + m.index + len);
    last = m.index + len;
  }
  if (last < sub.length) piece(from + last, from + sub.length);
}

// Character classes of the pattern: letter (\p{L}), number (\p{N}), whitespace (\s), other.
const OTHER = 0;
const LETTER = 1;
const NUMBER = 2;
const SPACE = 3;

const LETTER_RE = /^\p{L}$/u;
const NUMBER_RE = /^\p{N}$/u;
const SPACE_RE = /^\s$/u;

function classifyCodePoint(cp: number): number {
  const ch = String.fromCodePoint(cp);
  if (LETTER_RE.test(ch)) return LETTER;
  if (NUMBER_RE.test(ch)) return NUMBER;
  if (SPACE_RE.test(ch)) return SPACE;
  return OTHER;
}

// The class of every BMP code unit, filled on first use (65,536 regex tests, a few ms); lone
// surrogates are classified as themselves (OTHER), as the `u`-flag regex does.
let bmpClass: Uint8Array | null = null;
function bmpTable(): Uint8Array {
  if (bmpClass !== null) return bmpClass;
  const t = new Uint8Array(65536);
  for (let c = 0; c < 65536; c++) t[c] = c >= 0xd800 && c <= 0xdfff ? OTHER : classifyCodePoint(c);
  bmpClass = t;
  return t;
}
const astralClass = new Map<number, number>();
function astral(cp: number): number {
  let k = astralClass.get(cp);
  if (k === undefined) {
    k = classifyCodePoint(cp);
    astralClass.set(cp, k);
  }
  return k;
}

/**
 * GPT-2's split of `text.slice(from, to)` without a regular expression: calls
 * `piece(start, end)` (indices into `text`) for each piece, in order. Same pieces as
 * {@link GPT2_PATTERN} run with the `u` flag.
 */
export function splitGPT2(text: string, from: number, to: number, piece: (start: number, end: number) => void): void {
  checkRange('splitGPT2', text, from, to, piece);
  scanGPT2(text, from, to, piece);
}

/** @internal {@link splitGPT2} without the argument checks (the encoder's inner loop). */
export function scanGPT2(text: string, from: number, to: number, piece: (start: number, end: number) => void): void {
  const tbl = bmpTable();
  // class of the code point at i and its length in code units, packed as cls | (len << 2)
  const at = (i: number): number => {
    const c = text.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) return tbl[c]! | 4;
    if (c <= 0xdbff && i + 1 < to) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) return astral(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000) | 8;
    }
    return OTHER | 4;
  };
  // end of the run of code points of class `cls` starting at i
  const run = (i: number, cls: number): number => {
    while (i < to) {
      const k = at(i);
      if ((k & 3) !== cls) break;
      i += k >> 2;
    }
    return i;
  };
  let i = from;
  while (i < to) {
    const c = text.charCodeAt(i);
    // 's 't 're 've 'm 'll 'd
    if (c === 39 && i + 1 < to) {
      const c1 = text.charCodeAt(i + 1);
      if (c1 === 115 || c1 === 116 || c1 === 109 || c1 === 100) {
        piece(i, i + 2);
        i += 2;
        continue;
      }
      if (i + 2 < to) {
        const c2 = text.charCodeAt(i + 2);
        if ((c1 === 114 && c2 === 101) || (c1 === 118 && c2 === 101) || (c1 === 108 && c2 === 108)) {
          piece(i, i + 3);
          i += 3;
          continue;
        }
      }
    }
    const k0 = at(i);
    const cls = k0 & 3;
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: a single U+0020 may lead a non-space run
    if (c === 32 && i + 1 < to) {
      const k1 = at(i + 1);
      if ((k1 & 3) !== SPACE) {
        const e = run(i + 1 + (k1 >> 2), k1 & 3);
        piece(i, e);
        i = e;
        continue;
      }
    }
    if (cls !== SPACE) {
      const e = run(i + (k0 >> 2), cls);
      piece(i, e);
      i = e;
      continue;
    }
    // whitespace: `\s+(?!\S)` takes the run but its last code point when a non-space follows;
    // a run of one followed by a non-space falls through to `\s+`
    const e = run(i + 1, SPACE);
    if (e === to) {
      piece(i, e);
      i = e;
      continue;
    }
    // whitespace code points are all in the BMP, so the last one is one code unit
    const cut = e - 1 > i ? e - 1 : e;
    piece(i, cut);
    i = cut;
  }
}
