/**
 * @internal Whitespace normalisation (see `normalizeWhitespace` in `clean.ts`), with its errors
 * named by the public function that was called, for `prepare` and `prepareStream`.
 * @module
 */
import { checkBoolean, checkNumber, show } from '../tensor/validate.js';
import { optionsArg, textArg } from './args.js';
import type { WhitespaceOptions } from './clean.js';

// CRLF, CR, VT, FF, LINE SEPARATOR, PARAGRAPH SEPARATOR
const LINE_BREAK = /\r\n|[\r\u000B\u000C\u2028\u2029]/g;
// TAB and Unicode category Zs (space separators)
const HSPACE = '\\t \\u00A0\\u1680\\u2000-\\u200A\\u202F\\u205F\\u3000';
const HSPACE_RUN = new RegExp(`[${HSPACE}]+`, 'g');
const IS_HSPACE = new RegExp(`[${HSPACE}]`);

// Each line without its trailing horizontal whitespace (a scan from the end: linear, where a
// `[ ]+$` regex would backtrack quadratically over a long run of spaces inside a line).
function trimLineEnds(t: string): string {
  const lines = t.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    let e = line.length;
    while (e > 0 && IS_HSPACE.test(line[e - 1]!)) e--;
    if (e < line.length) lines[i] = line.slice(0, e);
  }
  return lines.join('\n');
}

/** @internal Check {@link WhitespaceOptions} for `op`; the options with their defaults. */
export function whitespaceOptions(op: string, opts: unknown, name = 'options'): Required<WhitespaceOptions> {
  if (opts !== undefined && opts !== null && (typeof opts !== 'object' || Array.isArray(opts))) throw new Error(`${op}: ${name} must be an object, got ${show(opts)}`);
  const o = optionsArg<WhitespaceOptions>(op, opts, ['collapseSpaces', 'maxBlankLines']);
  const maxBlankLines = o.maxBlankLines === undefined ? 1 : checkNumber(op, 'maxBlankLines', o.maxBlankLines, { integer: true, min: 0, infinity: true });
  const collapseSpaces = o.collapseSpaces === undefined ? true : checkBoolean(op, 'collapseSpaces', o.collapseSpaces);
  return { maxBlankLines, collapseSpaces };
}

/** @internal {@link normalizeWhitespace} as the public function `op`. */
export function whitespaceAs(op: string, text: string, opts: unknown): string {
  textArg(op, text);
  const { maxBlankLines: maxBlank, collapseSpaces } = whitespaceOptions(op, opts);
  let t = text.replace(LINE_BREAK, '\n');
  if (collapseSpaces) t = t.replace(HSPACE_RUN, ' ').replace(/^ /gm, '');
  t = trimLineEnds(t);
  if (maxBlank !== Infinity) t = t.replace(new RegExp(`\\n{${maxBlank + 2},}`, 'g'), '\n'.repeat(maxBlank + 1));
  return t.replace(/^\n+|\n+$/g, '');
}
