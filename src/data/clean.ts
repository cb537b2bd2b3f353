/**
 * Cleaning one document's text: Unicode normalisation, removal of control characters,
 * whitespace normalisation, its length in code points and its content hash. Each is a pure
 * function of a string; `prepare.ts` runs them over a corpus and reports what they did.
 * @module
 */
import { createHash } from 'node:crypto';
import { show } from '../tensor/validate.js';
import { textArg } from './args.js';
import { whitespaceAs } from './whitespace.js';

/** A Unicode normalisation form (UAX #15). */
export type NormalizationForm = 'NFC' | 'NFD' | 'NFKC' | 'NFKD';

/**
 * The text in a Unicode normalisation form, NFC by default (canonical composition: `e` + U+0301
 * becomes `é`, so one visible string has one encoding and one set of tokens).
 */
export function normalizeUnicode(text: string, form: NormalizationForm = 'NFC'): string {
  textArg('normalizeUnicode', text);
  if (form !== 'NFC' && form !== 'NFD' && form !== 'NFKC' && form !== 'NFKD')
    throw new Error(`normalizeUnicode: unknown form ${typeof form === 'string' ? `'${form}'` : show(form)} (use 'NFC', 'NFD', 'NFKC' or 'NFKD')`);
  return text.normalize(form);
}

// Unicode category Cc (U+0000–U+001F, U+007F–U+009F) less the ASCII whitespace controls
// TAB, LF, VT, FF, CR, which normalizeWhitespace handles.
const CONTROL = /[\u0000-\u0008\u000E-\u001F\u007F-\u009F]/g;

/**
 * The text without control characters (Unicode category Cc), except TAB, LF, VT, FF and CR,
 * which are whitespace and left to {@link normalizeWhitespace}. NUL, ESC, DEL and the C1 controls
 * (U+0080–U+009F, including NEL) are removed. Format characters (Cf: zero-width joiners, soft
 * hyphens) are kept: they carry meaning in several scripts.
 */
export function removeControlChars(text: string): string {
  textArg('removeControlChars', text);
  return text.replace(CONTROL, '');
}

/** Options of {@link normalizeWhitespace}. */
export interface WhitespaceOptions {
  /** Replace every run of horizontal whitespace (spaces, tabs, Unicode space separators) by one space; true by default. When false, such runs are kept, except at line ends. */
  collapseSpaces?: boolean;
  /** The most consecutive blank lines kept; 1 by default (paragraphs stay apart); `Infinity` keeps all. */
  maxBlankLines?: number;
}

/**
 * The text with whitespace normalised:
 * 1. line breaks (CRLF, CR, VT, FF, U+2028, U+2029) become `\n`;
 * 2. with `collapseSpaces` (default), each run of tabs, spaces and Unicode space separators
 *    (NBSP, em space, ideographic space, …) becomes one space, and a line's leading space goes;
 * 3. whitespace at the end of each line is removed;
 * 4. more than `maxBlankLines` (default 1) consecutive blank lines shrink to that many;
 * 5. line breaks at the start and end of the text are removed.
 *
 * @example
 * normalizeWhitespace('  a\t\tb \r\n\r\n\r\nc  '); // 'a b\n\nc'
 */
export function normalizeWhitespace(text: string, opts: WhitespaceOptions = {}): string {
  return whitespaceAs('normalizeWhitespace', text, opts);
}

/** The number of Unicode code points in `text` (a surrogate pair counts once). */
export function codePointLength(text: string): number {
  textArg('codePointLength', text);
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // a high surrogate followed by a low one is one code point
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/** The SHA-256 of the text's UTF-8 bytes, as 64 lowercase hex digits: the identity of a document's content. */
export function contentHash(text: string): string {
  textArg('contentHash', text);
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
