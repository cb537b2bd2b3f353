/**
 * WordPiece (BERT). Expected outputs are the published ones: the `"unaffable"` example of
 * BERT's `tokenization.py` docstring, and the cases of Google's `tokenization_test.py`
 * (basic tokenizer with and without lower-casing, CJK, accents, the WordPiece and full
 * tokenizer cases with their small vocabularies), plus cases hand-checked against the
 * algorithm's description (the character classes of the cleaning and punctuation steps, the
 * per-word length limit). Properties: pieces rebuild the word, and each piece is the longest
 * vocabulary match at its position. (The first property over `unit: 'binary'` strings spends
 * a second or two in fast-check building its code-point table, once per file.)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { WordPieceTokenizer } from '../src/data/wordpiece.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { FC } from './harness.js';

// Google BERT tokenization_test.py, test_wordpiece_tokenizer / test_full_tokenizer
const GOOGLE_VOCAB = ['[UNK]', '[CLS]', '[SEP]', 'want', '##want', '##ed', 'wa', 'un', 'runn', '##ing', ','];

const VOCAB = [
  '[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]',
  'un', '##aff', '##able', 'aff', 'able', 'hello', 'how', 'are', 'you', '!', '?', ',', '.',
  'a', '##a', '😀', '##😀', 'ah', 'zz', '\u535a', '\u63a8', 'runs', '##s', 'run',
];

describe('WordPiece', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-wordpiece-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const tok = WordPieceTokenizer.fromVocab(VOCAB);

  it('splits "unaffable" as BERT\'s docstring says', () => {
    expect(tok.tokenize('unaffable')).toEqual(['un', '##aff', '##able']);
    expect(tok.encode('unaffable')).toEqual([5, 6, 7]);
  });

  it("matches Google's WordPiece and full-tokenizer test cases", () => {
    const g = WordPieceTokenizer.fromVocab(GOOGLE_VOCAB);
    expect(g.tokenize('')).toEqual([]);
    expect(g.tokenize('unwanted running')).toEqual(['un', '##want', '##ed', 'runn', '##ing']);
    expect(g.tokenize('unwantedX running')).toEqual(['[UNK]', 'runn', '##ing']);
    expect(g.tokenize('UNwant\u00e9d,running')).toEqual(['un', '##want', '##ed', ',', 'runn', '##ing']);
    expect(g.encode('UNwant\u00e9d,running')).toEqual([7, 4, 5, 10, 8, 9]);
  });

  it("matches Google's basic-tokenizer test cases", () => {
    const lower = WordPieceTokenizer.fromVocab(VOCAB);
    const cased = WordPieceTokenizer.fromVocab(VOCAB, { lowercase: false });
    expect(lower.basicTokenize(' \tHeLLo!how  \n Are yoU?  ')).toEqual(['hello', '!', 'how', 'are', 'you', '?']);
    expect(lower.basicTokenize('H\u00e9llo')).toEqual(['hello']);
    expect(cased.basicTokenize(' \tHeLLo!how  \n Are yoU?  ')).toEqual(['HeLLo', '!', 'how', 'Are', 'yoU', '?']);
    expect(lower.basicTokenize('ah\u535a\u63a8zz')).toEqual(['ah', '\u535a', '\u63a8', 'zz']);
    expect(lower.tokenize('ah\u535a\u63a8zz')).toEqual(['ah', '\u535a', '\u63a8', 'zz']);
  });

  it('cleans, splits and normalises by the published character classes', () => {
    // NUL, U+FFFD, controls and format characters (zero-width space, soft hyphen) vanish
    expect(tok.basicTokenize('a\u0000b\ufffdc\u200bd\u00ade\u0007f')).toEqual(['abcdef']);
    // tab, newline, CR, no-break space, ideographic space, line separator separate words
    expect(tok.basicTokenize('a\tb\nc\rd\u00a0e\u3000f\u2028g')).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    // ASCII symbols count as punctuation, Unicode punctuation too, other symbols do not
    expect(tok.basicTokenize('$5^`~+=<>|')).toEqual(['$', '5', '^', '`', '~', '+', '=', '<', '>', '|']);
    expect(tok.basicTokenize('«hi»¿no?')).toEqual(['«', 'hi', '»', '¿', 'no', '?']);
    expect(tok.basicTokenize('5€ 3°')).toEqual(['5€', '3°']);
    // accents go with lower-casing by default, and can be kept or stripped apart from it
    expect(tok.basicTokenize('Crème Brûlée')).toEqual(['creme', 'brulee']);
    expect(WordPieceTokenizer.fromVocab(VOCAB, { stripAccents: false }).basicTokenize('Crème')).toEqual(['crème']);
    expect(WordPieceTokenizer.fromVocab(VOCAB, { lowercase: false, stripAccents: true }).basicTokenize('Crème')).toEqual(['Creme']);
    // precomposed and decomposed forms strip to the same word
    expect(tok.basicTokenize('e\u0301')).toEqual(tok.basicTokenize('\u00e9'));
  });

  it('keeps special tokens whole, case-sensitively', () => {
    expect(tok.tokenize('[CLS] unaffable[SEP]')).toEqual(['[CLS]', 'un', '##aff', '##able', '[SEP]']);
    expect(tok.encode('[CLS]hello[MASK]')).toEqual([2, 10, 4]);
    expect(tok.tokenize('[cls]')).toEqual(['[UNK]', '[UNK]', '[UNK]']); // '[', 'cls', ']' are not in the vocabulary
    expect([...tok.specialTokens.keys()]).toEqual(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
  });

  it('limits words to maxInputCharsPerWord code points', () => {
    expect(tok.tokenize('a'.repeat(100))).toEqual(['a', ...Array<string>(99).fill('##a')]);
    expect(tok.tokenize('a'.repeat(101))).toEqual(['[UNK]']);
    // code points, not UTF-16 units: 100 emoji are 200 units
    expect(tok.tokenize('😀'.repeat(100))).toHaveLength(100);
    expect(tok.tokenize('😀'.repeat(101))).toEqual(['[UNK]']);
    const short = WordPieceTokenizer.fromVocab(VOCAB, { maxInputCharsPerWord: 3 });
    expect(short.tokenize('aaa aaaa')).toEqual(['a', '##a', '##a', '[UNK]']);
  });

  it('decodes by gluing continuation pieces', () => {
    expect(tok.decode(tok.encode('Unaffable runs, hello!'))).toBe('unaffable runs , hello !');
    expect(tok.decode([])).toBe('');
    expect(() => tok.decode([VOCAB.length])).toThrow(/WordPieceTokenizer.decode: id 29 at position 0 is not in the vocabulary/);
  });

  it('pieces rebuild each word, and each is the longest match at its place', () => {
    const vocab = ['[UNK]', 'a', 'b', 'ab', 'abc', 'ba', 'c', '##a', '##b', '##c', '##ab', '##bca', '##cc'];
    const t = WordPieceTokenizer.fromVocab(vocab);
    const ids = new Set(vocab);
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'A', ' ', '.', 'é'), maxLength: 30 }), (text) => {
        for (const word of t.basicTokenize(text)) {
          const pieces = t.wordpiece(word);
          if (pieces.length === 1 && pieces[0] === '[UNK]') continue;
          let start = 0;
          pieces.forEach((p, i) => {
            expect(ids.has(p)).toBe(true);
            const body = i > 0 ? p.slice(2) : p;
            expect(word.startsWith(body, start)).toBe(true);
            // no longer vocabulary entry starts here
            for (let end = start + body.length + 1; end <= word.length; end++) expect(ids.has((start > 0 ? '##' : '') + word.slice(start, end))).toBe(false);
            start += body.length;
          });
          expect(start).toBe(word.length);
        }
      }),
      { numRuns: FC.numRuns * 3 },
    );
  });

  it('never throws and stays in range on arbitrary Unicode', () => {
    fc.assert(
      // full Unicode, and arbitrary code units (lone surrogates are other-category: dropped)
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 60 })), (s) => {
        for (const id of tok.encode(s)) expect(id >= 0 && id < tok.vocabSize).toBe(true);
        for (const w of tok.basicTokenize(s)) expect((w as unknown as { isWellFormed(): boolean }).isWellFormed()).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('reads vocabulary files and round-trips through JSON', () => {
    const vocabPath = join(dir, 'vocab.txt');
    writeFileSync(vocabPath, VOCAB.join('\r\n') + '\r\n');
    const fromFile = WordPieceTokenizer.fromVocabFile(vocabPath);
    expect(fromFile.vocabSize).toBe(VOCAB.length);
    expect(fromFile.encode('unaffable')).toEqual([5, 6, 7]);
    expect(fromFile.tokenToId('##aff')).toBe(6);
    expect(fromFile.idToToken(7)).toBe('##able');
    const jsonPath = join(dir, 'wp.json');
    const custom = WordPieceTokenizer.fromVocab(VOCAB, { lowercase: false, maxInputCharsPerWord: 50, specialTokens: ['[CLS]'] });
    custom.save(jsonPath);
    const back = WordPieceTokenizer.load(jsonPath);
    expect(back.toJSON()).toEqual(custom.toJSON());
    const any = loadTokenizer(jsonPath);
    expect(any.type).toBe('wordpiece');
    expect(any.encode('[CLS] Hello unaffable')).toEqual(custom.encode('[CLS] Hello unaffable'));
    // a repeated line maps to its last id, as BERT's loader does
    expect(WordPieceTokenizer.fromVocab(['[UNK]', 'a', 'a']).encode('a')).toEqual([2]);
  });

  it('rejects bad input with named errors', () => {
    expect(() => WordPieceTokenizer.fromVocab(['a'])).toThrow(/WordPieceTokenizer: the unknown token "\[UNK\]" is not in the vocabulary/);
    expect(() => WordPieceTokenizer.fromVocab(VOCAB, { specialTokens: ['<s>'] })).toThrow(/special token "<s>" is not in the vocabulary/);
    expect(() => WordPieceTokenizer.fromVocab(VOCAB, { maxInputCharsPerWord: 0 })).toThrow(/maxInputCharsPerWord/);
    expect(() => WordPieceTokenizer.fromVocabFile(join(dir, 'missing.txt'))).toThrow(/WordPieceTokenizer.fromVocabFile: cannot read/);
    expect(() => WordPieceTokenizer.fromJSON({ type: 'bpe' } as never)).toThrow(/not a WordPiece tokenizer/);
  });
});
