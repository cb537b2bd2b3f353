/**
 * Porter's suffix-stripping stemmer (Porter, "An algorithm for suffix stripping", Program 14(3),
 * 1980) with the departures of NLTK's `PorterStemmer()` in its default mode (NLTK_EXTENSIONS),
 * which is the stemmer Google's `rouge-score` applies when `use_stemmer=True`. Written from the
 * paper and NLTK's description of its mode (not its code); checked word for word against
 * NLTK 3.8 on thousands of words (test/metrics_porter.test.ts).
 *
 * The paper's notation: a letter is a vowel if it is a, e, i, o or u, or a y that follows a
 * consonant; every other character (digits included) is a consonant. Any stem reads
 * [C](VC)^m[V], and m is its measure. `*v*`: the stem has a vowel; `*d`: it ends in a double
 * consonant; `*o`: it ends consonant–vowel–consonant, the last not w, x or y.
 *
 * Where the default NLTK mode departs from the paper:
 * - The word is lower-cased. A short table of irregular forms is consulted first, with the word
 *   exactly as given (so 'skies' → 'sky' but 'Skies' → 'ski'): sky/skies → sky, dying → die,
 *   lying → lie, tying → tie, news, innings/inning, outings/outing, cannings/canning, howe,
 *   proceed, exceed and succeed stay as they are (the plural ones lose their s).
 * - Words of one or two characters are returned lower-cased, unstemmed.
 * - Step 1a: a four-letter word in -ies becomes -ie (ties → tie; flies → fli as before).
 * - Step 1b: -ied becomes -ie in a four-letter word, -i otherwise, and nothing else is done in the
 *   step (died → die, spied → spi).
 * - `*o` also holds for a two-letter stem vowel–consonant (any consonant, w, x and y included).
 * - Step 1c: y → i when a consonant other than the first letter precedes it, in place of the
 *   paper's (*v*) (happy → happi, spy → spi, dyed → dy; enjoy stays).
 * - Step 2: (m>0) -alli → -al is tried first and, when it fires, step 2 runs again on the result;
 *   -bli → -ble replaces the paper's -abli → -able; (m>0) -fulli → -ful is added; and -logi → -log
 *   when the stem with its l has m>0.
 * Each step tries its rules in order and stops at the first whose suffix matches, whether or
 * not its condition holds (the paper's longest-match rule, given the order of the lists).
 *
 * Lengths are counted in code points, as Python's are, so non-ASCII words stem as in NLTK too;
 * the one difference left is lower-casing, where `toLowerCase()` and Python's `str.lower()` differ
 * on the few letters that only the newer of their two Unicode versions has.
 * @module
 */
import { checkString } from './check.js';
import { show } from '../tensor/validate.js';

/** A word as a sequence of code points (Python's indexing of str). */
type Word = readonly string[];

const IRREGULAR = new Map<string, string>([
  ['sky', 'sky'],
  ['skies', 'sky'],
  ['dying', 'die'],
  ['lying', 'lie'],
  ['tying', 'tie'],
  ['news', 'news'],
  ['innings', 'inning'],
  ['inning', 'inning'],
  ['outings', 'outing'],
  ['outing', 'outing'],
  ['cannings', 'canning'],
  ['canning', 'canning'],
  ['howe', 'howe'],
  ['proceed', 'proceed'],
  ['exceed', 'exceed'],
  ['succeed', 'succeed'],
]);

const VOWELS = new Set(['a', 'e', 'i', 'o', 'u']);

/** consonant[i] for every position: y is a consonant at the start or after a vowel. */
function consonants(w: Word): boolean[] {
  const c = new Array<boolean>(w.length);
  for (let i = 0; i < w.length; i++) {
    const ch = w[i]!;
    c[i] = VOWELS.has(ch) ? false : ch === 'y' ? i === 0 || !c[i - 1] : true;
  }
  return c;
}

/** m in [C](VC)^m[V]: the number of vowel→consonant transitions. */
function measure(w: Word): number {
  const c = consonants(w);
  let m = 0;
  for (let i = 1; i < c.length; i++) if (!c[i - 1] && c[i]) m++;
  return m;
}

const hasVowel = (w: Word): boolean => consonants(w).includes(false);

/** `*d`. */
function endsDoubleConsonant(w: Word): boolean {
  const n = w.length;
  return n >= 2 && w[n - 1] === w[n - 2] && consonants(w)[n - 1]!;
}

/** `*o`, with NLTK's two-letter vowel–consonant case. */
function endsCvc(w: Word): boolean {
  const n = w.length;
  const c = consonants(w);
  if (n === 2) return !c[0] && c[1]!;
  return n >= 3 && c[n - 3]! && !c[n - 2] && c[n - 1]! && !'wxy'.includes(w[n - 1]!);
}

function endsWith(w: Word, suffix: string): boolean {
  if (suffix.length > w.length) return false;
  const off = w.length - suffix.length;
  for (let k = 0; k < suffix.length; k++) if (w[off + k] !== suffix[k]) return false;
  return true;
}

/** w with its last `drop` code points replaced by the ASCII string `add`. */
const replaceEnd = (w: Word, drop: number, add: string): Word => [...w.slice(0, w.length - drop), ...add];

/** [suffix, replacement, condition on the stem left once the suffix is removed]. */
type Rule = readonly [string, string, (stem: Word) => boolean];

/** The first rule whose suffix matches decides: its replacement if its condition holds, else w. */
function applyRules(w: Word, rules: readonly Rule[]): Word {
  for (const [suffix, replacement, condition] of rules) {
    if (!endsWith(w, suffix)) continue;
    const stem = w.slice(0, w.length - suffix.length);
    return condition(stem) ? [...stem, ...replacement] : w;
  }
  return w;
}

const always = (): boolean => true;
const mGt0 = (stem: Word): boolean => measure(stem) > 0;
const mGt1 = (stem: Word): boolean => measure(stem) > 1;

const STEP1A: readonly Rule[] = [
  ['sses', 'ss', always],
  ['ies', 'i', always],
  ['ss', 'ss', always],
  ['s', '', always],
];

function step1a(w: Word): Word {
  if (w.length === 4 && endsWith(w, 'ies')) return replaceEnd(w, 3, 'ie');
  return applyRules(w, STEP1A);
}

function step1b(w: Word): Word {
  if (endsWith(w, 'ied')) return replaceEnd(w, 3, w.length === 4 ? 'ie' : 'i');
  if (endsWith(w, 'eed')) return mGt0(w.slice(0, -3)) ? replaceEnd(w, 1, '') : w;
  let stem: Word;
  if (endsWith(w, 'ed') && hasVowel(w.slice(0, -2))) stem = w.slice(0, -2);
  else if (endsWith(w, 'ing') && hasVowel(w.slice(0, -3))) stem = w.slice(0, -3);
  else return w;
  // restore an e so that -ate, -ble and -ize are seen by later steps; undouble hopp → hop
  if (endsWith(stem, 'at') || endsWith(stem, 'bl') || endsWith(stem, 'iz')) return [...stem, 'e'];
  if (endsDoubleConsonant(stem)) return 'lsz'.includes(stem[stem.length - 1]!) ? stem : stem.slice(0, -1);
  return measure(stem) === 1 && endsCvc(stem) ? [...stem, 'e'] : stem;
}

function step1c(w: Word): Word {
  if (!endsWith(w, 'y')) return w;
  const stem = w.slice(0, -1);
  return stem.length > 1 && consonants(stem)[stem.length - 1] ? [...stem, 'i'] : w;
}

const STEP2: readonly Rule[] = [
  ['ational', 'ate', mGt0],
  ['tional', 'tion', mGt0],
  ['enci', 'ence', mGt0],
  ['anci', 'ance', mGt0],
  ['izer', 'ize', mGt0],
  ['bli', 'ble', mGt0],
  ['alli', 'al', mGt0],
  ['entli', 'ent', mGt0],
  ['eli', 'e', mGt0],
  ['ousli', 'ous', mGt0],
  ['ization', 'ize', mGt0],
  ['ation', 'ate', mGt0],
  ['ator', 'ate', mGt0],
  ['alism', 'al', mGt0],
  ['iveness', 'ive', mGt0],
  ['fulness', 'ful', mGt0],
  ['ousness', 'ous', mGt0],
  ['aliti', 'al', mGt0],
  ['iviti', 'ive', mGt0],
  ['biliti', 'ble', mGt0],
  ['fulli', 'ful', mGt0],
  // the l stays with the stem, so that geo-logi and theo-logi qualify as archaeo-logi does
  ['logi', 'log', (stem) => mGt0([...stem, 'l'])],
];

function step2(w: Word): Word {
  if (endsWith(w, 'alli') && mGt0(w.slice(0, -4))) return step2(replaceEnd(w, 2, ''));
  return applyRules(w, STEP2);
}

const STEP3: readonly Rule[] = [
  ['icate', 'ic', mGt0],
  ['ative', '', mGt0],
  ['alize', 'al', mGt0],
  ['iciti', 'ic', mGt0],
  ['ical', 'ic', mGt0],
  ['ful', '', mGt0],
  ['ness', '', mGt0],
];

const STEP4: readonly Rule[] = [
  ...['al', 'ance', 'ence', 'er', 'ic', 'able', 'ible', 'ant', 'ement', 'ment', 'ent'].map((s): Rule => [s, '', mGt1]),
  ['ion', '', (stem) => mGt1(stem) && (stem[stem.length - 1] === 's' || stem[stem.length - 1] === 't')],
  ...['ou', 'ism', 'ate', 'iti', 'ous', 'ive', 'ize'].map((s): Rule => [s, '', mGt1]),
];

function step5a(w: Word): Word {
  if (!endsWith(w, 'e')) return w;
  const stem = w.slice(0, -1);
  const m = measure(stem);
  return m > 1 || (m === 1 && !endsCvc(stem)) ? stem : w;
}

// -ll → -l when the word less one l has m > 1 (controll → control, roll stays)
const STEP5B: readonly Rule[] = [['ll', 'l', (stem) => mGt1([...stem, 'l'])]];

/**
 * The Porter stem of one word, as NLTK's `PorterStemmer().stem(word)` (default mode) returns it;
 * the module comment lists where that departs from Porter's 1980 paper. The result is lower-case.
 *
 * @example
 * porterStem('running');     // 'run'
 * porterStem('generously');  // 'gener'
 * porterStem('skies');       // 'sky'
 * porterStem('Relational');  // 'relat'
 */
export function porterStem(word: string): string {
  checkString('porterStem', 'word', word);
  const irregular = IRREGULAR.get(word);
  if (irregular !== undefined) return irregular;
  const lower = word.toLowerCase();
  // counted in code points of the word as given, before lower-casing (≤ 2 code points ⇒ ≤ 4 units)
  if (word.length <= 4 && Array.from(word).length <= 2) return lower;
  let w: Word = Array.from(lower);
  w = step1a(w);
  w = step1b(w);
  w = step1c(w);
  w = step2(w);
  w = applyRules(w, STEP3);
  w = applyRules(w, STEP4);
  w = step5a(w);
  w = applyRules(w, STEP5B);
  return w.join('');
}

/**
 * The `stemmer` option of the text metrics: 'porter' or true for NLTK's Porter stemmer, false for
 * none, a function (its results checked to be strings), or, when undefined, `byDefault`'s choice.
 */
export function stemmerOption(op: string, stemmer: unknown, byDefault: boolean): ((token: string) => string) | undefined {
  if (stemmer === undefined) stemmer = byDefault;
  if (stemmer === false) return undefined;
  if (stemmer === true || stemmer === 'porter') return porterStem;
  if (typeof stemmer === 'function')
    return (token) => {
      const out: unknown = (stemmer as (t: string) => unknown)(token);
      if (typeof out !== 'string') throw new Error(`${op}: the stemmer must return a string, got ${show(out)} for '${token}'`);
      return out;
    };
  throw new Error(`${op}: stemmer must be 'porter', true, false or a function (token: string) => string, got ${show(stemmer)}`);
}
