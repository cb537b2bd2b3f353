/**
 * Data preparation: reading text files, folders and JSONL; each cleaning step with exact
 * expected outputs (Unicode normalisation checked against the composition examples of UAX #15);
 * deduplication and length filters with their report; the deterministic train/validation split.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  codePointLength,
  collect,
  contentHash,
  formatReport,
  listFiles,
  normalizeUnicode,
  normalizeWhitespace,
  prepare,
  prepareStream,
  readDocuments,
  readJsonl,
  readText,
  removeControlChars,
  splitDocuments,
  type SourceIssue,
} from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'kiln-data-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const file = (name: string, content: string | Uint8Array): string => {
  const p = join(root, `${n++}-${name}`);
  writeFileSync(p, content);
  return p;
};

describe('cleaning steps', () => {
  it('normalizeUnicode composes to NFC (UAX #15 examples) and supports the other forms', () => {
    expect(normalizeUnicode('e\u0301')).toBe('\u00e9'); // e + combining acute → é
    expect(normalizeUnicode('A\u030a')).toBe('\u00c5'); // A + ring above → Å
    expect(normalizeUnicode('\u1100\u1161')).toBe('\uac00'); // Hangul L + V jamo → 가
    expect(normalizeUnicode('\u212b')).toBe('\u00c5'); // ANGSTROM SIGN is canonically Å
    expect(normalizeUnicode('\ufb01')).toBe('\ufb01'); // ﬁ is only a compatibility ligature: NFC keeps it
    expect(normalizeUnicode('\ufb01', 'NFKC')).toBe('fi');
    expect(normalizeUnicode('\u00e9', 'NFD')).toBe('e\u0301');
    expect(() => normalizeUnicode('x', 'NFX' as never)).toThrow(/normalizeUnicode: unknown form 'NFX'/);
  });

  it('removeControlChars drops C0/C1 controls and DEL but keeps whitespace controls and format characters', () => {
    expect(removeControlChars('a\u0000b\u0007c\u001bd\u007fe\u0085f\u009fg')).toBe('abcdefg');
    expect(removeControlChars('t\tn\nv\u000bf\u000cr\r')).toBe('t\tn\nv\u000bf\u000cr\r');
    expect(removeControlChars('zw\u200dj soft\u00adhyphen')).toBe('zw\u200dj soft\u00adhyphen');
  });

  it('normalizeWhitespace: line breaks, runs of spaces, line ends, blank lines, edges', () => {
    expect(normalizeWhitespace('  a\t\tb \r\n\r\n\r\nc  ')).toBe('a b\n\nc');
    expect(normalizeWhitespace('a\rb\u2028c\u2029d\u000be\u000cf')).toBe('a\nb\nc\nd\ne\nf');
    expect(normalizeWhitespace('x\u00a0\u2003\u3000y')).toBe('x y'); // NBSP, em space, ideographic space
    expect(normalizeWhitespace('\n\n  one  \n   two\n\n\n\n')).toBe('one\ntwo');
    expect(normalizeWhitespace('a\n\n\n\nb', { maxBlankLines: 0 })).toBe('a\nb');
    expect(normalizeWhitespace('a\n\n\n\nb', { maxBlankLines: 2 })).toBe('a\n\n\nb');
    expect(normalizeWhitespace('a\n\n\n\nb', { maxBlankLines: Infinity })).toBe('a\n\n\n\nb');
    expect(normalizeWhitespace('def f():\n    return 1  \n', { collapseSpaces: false })).toBe('def f():\n    return 1');
    expect(normalizeWhitespace('   \n\t\n')).toBe('');
    expect(() => normalizeWhitespace('a', { maxBlankLines: -1 })).toThrow(/maxBlankLines/);
    // a long run of spaces inside a line is linear work, not a regex backtracking trap
    const long = `a${' '.repeat(200_000)}b`;
    expect(normalizeWhitespace(long, { collapseSpaces: false })).toBe(long);
  });

  it('normalizeWhitespace is idempotent', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', ' ', '\t', '\n', '\r', '\u00a0', '\u2028') }), fc.boolean(), (s, collapse) => {
        const once = normalizeWhitespace(s, { collapseSpaces: collapse });
        expect(normalizeWhitespace(once, { collapseSpaces: collapse })).toBe(once);
      }),
    );
  });

  it('codePointLength counts a surrogate pair once and a lone surrogate once', () => {
    expect(codePointLength('')).toBe(0);
    expect(codePointLength('héllo')).toBe(5);
    expect(codePointLength('😀a')).toBe(2);
    expect(codePointLength('\ud83d')).toBe(1);
    fc.assert(
      // UTF-16 code units, surrogates (paired and lone) over-represented
      fc.property(fc.array(fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0xd800, max: 0xdfff })), { maxLength: 40 }), (units) => {
        const s = String.fromCharCode(...units);
        expect(codePointLength(s)).toBe([...s].length); // the string iterator walks code points
      }),
    );
  });

  it('contentHash is SHA-256 of the UTF-8 bytes (FIPS 180-2 test vectors)', () => {
    expect(contentHash('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(contentHash('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

describe('reading sources', () => {
  it('reads a text file whole, by line, or by paragraph; CRLF and a BOM are handled', async () => {
    const p = file('t.txt', '\ufeffFirst para\r\nline two\r\n\r\n  \r\nSecond\n\nThird\n');
    expect(await collect(readText(p))).toEqual([{ id: p, text: 'First para\r\nline two\r\n\r\n  \r\nSecond\n\nThird\n', source: p }]);
    expect(await collect(readText(p, { split: 'paragraph' }))).toEqual([
      { id: `${p}:1`, text: 'First para\nline two', source: p },
      { id: `${p}:5`, text: 'Second', source: p },
      { id: `${p}:7`, text: 'Third', source: p },
    ]);
    expect((await collect(readText(p, { split: 'line' }))).map((d) => [d.id, d.text])).toEqual([
      [`${p}:1`, 'First para'],
      [`${p}:2`, 'line two'],
      [`${p}:5`, 'Second'],
      [`${p}:7`, 'Third'],
    ]);
    await expect(collect(readText(join(root, 'missing.txt'), { split: 'line' }))).rejects.toThrow(/ENOENT/);
    await expect(collect(readText(p, { split: 'words' as never }))).rejects.toThrow(/readText: unknown split mode 'words'/);
  });

  it('walks a folder recursively in code-unit order, filtering extensions and hidden files, surviving a link cycle', async () => {
    const dir = join(root, 'corpus');
    const put = (rel: string, text: string): void => {
      mkdirSync(join(dir, rel, '..'), { recursive: true });
      writeFileSync(join(dir, rel), text);
    };
    put('b.txt', 'b');
    put('B.txt', 'B');
    put('a-b.txt', 'a-b');
    put('a/z.TXT', 'a/z');
    put('a/b/c.txt', 'a/b/c');
    put('x.md', 'x');
    put('.hidden.txt', 'hidden');
    put('.git/HEAD.txt', 'git');
    symlinkSync(dir, join(dir, 'a', 'loop')); // a/loop → the root: a cycle
    const rel = (paths: string[]): string[] => paths.map((p) => p.slice(dir.length + 1));
    // 'B' (0x42) < 'a' (0x61); a folder's files stay together; 'a' < 'a-b.txt' (prefix first)
    expect(rel(await listFiles(dir, { extensions: ['txt'] }))).toEqual(['B.txt', 'a/b/c.txt', 'a/z.TXT', 'a-b.txt', 'b.txt']);
    expect(rel(await listFiles(dir))).toEqual(['B.txt', 'a/b/c.txt', 'a/z.TXT', 'a-b.txt', 'b.txt', 'x.md']);
    expect(rel(await listFiles(dir, { extensions: ['.md'], includeHidden: true }))).toEqual(['x.md']);
    expect(rel(await listFiles(dir, { extensions: ['.txt'], includeHidden: true }))).toEqual([
      '.git/HEAD.txt',
      '.hidden.txt',
      'B.txt',
      'a/b/c.txt',
      'a/z.TXT',
      'a-b.txt',
      'b.txt',
    ]);
    const docs = await readDocuments({ type: 'folder', path: dir, extensions: ['.txt'] });
    expect(docs.map((d) => d.text)).toEqual(['B', 'a/b/c', 'a/z', 'a-b', 'b']);
    expect(docs.every((d) => d.source === dir && d.id.startsWith(dir))).toBe(true);
    // a path that is a folder is read as one
    expect((await readDocuments(dir)).length).toBe(6);
    await expect(readDocuments({ type: 'folder', path: join(dir, 'b.txt') })).rejects.toThrow(/readDocuments: '.*b\.txt' is not a folder/);
  });

  const jsonl = [
    '{"text": "first", "id": "a"}', // 1
    '{"text": "oops"', // 2: invalid JSON
    '["text"]', // 3: not an object
    '{"body": "x"}', // 4: field missing
    '{"text": 42}', // 5: not a string
    '   ', // 6: blank, ignored
    '{"text": "second\\nline", "id": 7}', // 7
    'null', // 8: not an object
  ].join('\n');

  it('reads JSONL, reporting bad lines with their numbers (skip) or throwing at the first (throw)', async () => {
    const p = file('d.jsonl', jsonl);
    const skipped: SourceIssue[] = [];
    const docs = await collect(readJsonl(p, { onError: 'skip', onSkip: (i) => skipped.push(i), idField: 'id' }));
    expect(docs).toEqual([
      { id: 'a', text: 'first', source: p },
      { id: '7', text: 'second\nline', source: p },
    ]);
    expect(skipped.map((s) => [s.line, s.reason.replace(/ \(.*/, '')])).toEqual([
      [2, 'invalid JSON'],
      [3, 'not an object'],
      [4, "field 'text' missing"],
      [5, "field 'text' is number, not a string"],
      [8, 'not an object'],
    ]);
    expect(skipped.every((s) => s.source === p)).toBe(true);
    await expect(collect(readJsonl(p))).rejects.toThrow(new RegExp(`readJsonl: ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: invalid JSON`));
    // ids default to path:line; the field is configurable; a path ending in .ndjson is JSONL
    const q = file('e.ndjson', '{"content": "c1"}\n\n{"content": "c2"}\n');
    expect(await readDocuments({ type: 'jsonl', path: q, field: 'content' })).toEqual([
      { id: `${q}:1`, text: 'c1', source: q },
      { id: `${q}:3`, text: 'c2', source: q },
    ]);
    await expect(readDocuments(q)).rejects.toThrow(/:1: field 'text' missing/);
    expect(await readDocuments(q, { onError: 'skip' })).toEqual([]);
  });

  it('reads documents given in memory, sync or async', async () => {
    async function* gen(): AsyncGenerator<string> {
      yield 'x';
      yield 'y';
    }
    expect(await readDocuments([{ type: 'documents', documents: ['a', { text: 'b', id: 'B' }] }, { type: 'documents', name: 'g', documents: gen() }])).toEqual([
      { id: 'memory:0', text: 'a', source: 'memory' },
      { id: 'B', text: 'b', source: 'memory' },
      { id: 'g:0', text: 'x', source: 'g' },
      { id: 'g:1', text: 'y', source: 'g' },
    ]);
    await expect(readDocuments({ type: 'documents', documents: [{ id: 'z' } as never] })).rejects.toThrow(/document 0 of 'memory' has no string 'text'/);
    await expect(readDocuments(join(root, 'nope'))).rejects.toThrow(/readDocuments: cannot read '.*nope': ENOENT/);
  });
});

describe('prepare', () => {
  const raw = [
    'Caf\u0065\u0301  au\tlait', // 0: NFC changes it; whitespace too
    'Caf\u00e9 au lait', // 1: equal to 0 after cleaning → duplicate
    'bell\u0007 here', // 2: control char
    '   ', // 3: empty after whitespace
    'hi', // 4: too short (minChars 3)
    'x'.repeat(50), // 5: too long (maxChars 40)
    'plain text', // 6: untouched
    'plain text', // 7: exact duplicate
  ];

  it('runs every step and reports documents in, out, changed and dropped with reasons', async () => {
    const { documents, report } = await prepare({ type: 'documents', name: 'mem', documents: raw }, { length: { minChars: 3, maxChars: 40 } });
    expect(documents).toEqual([
      { id: 'mem:0', text: 'Caf\u00e9 au lait', source: 'mem' },
      { id: 'mem:2', text: 'bell here', source: 'mem' },
      { id: 'mem:6', text: 'plain text', source: 'mem' },
    ]);
    const byStep = Object.fromEntries(report.steps.map((s) => [s.step, s]));
    expect(report.steps.map((s) => s.step)).toEqual(['normalize', 'controlChars', 'whitespace', 'length', 'dedup']);
    expect(byStep.normalize).toMatchObject({ enabled: true, in: 8, out: 8, changed: 1, dropped: {} });
    expect(byStep.controlChars).toMatchObject({ in: 8, out: 8, changed: 1 });
    expect(byStep.whitespace).toMatchObject({ in: 8, out: 8, changed: 2 }); // docs 0 and 3
    expect(byStep.length).toMatchObject({ in: 8, out: 5, dropped: { empty: 1, 'too short': 1, 'too long': 1 } });
    expect(byStep.length!.examples).toEqual([
      { id: 'mem:3', reason: 'empty' },
      { id: 'mem:4', reason: 'too short', detail: '2 chars' },
      { id: 'mem:5', reason: 'too long', detail: '50 chars' },
    ]);
    expect(byStep.dedup).toMatchObject({ in: 5, out: 3, dropped: { duplicate: 2 } });
    expect(byStep.dedup!.examples).toEqual([
      { id: 'mem:1', reason: 'duplicate', detail: 'mem:0' },
      { id: 'mem:7', reason: 'duplicate', detail: 'mem:6' },
    ]);
    expect(report.documents).toEqual({ in: 8, out: 3, dropped: { empty: 1, 'too short': 1, 'too long': 1, duplicate: 2 } });
    expect(report.sources).toEqual([{ source: 'mem', documents: 8 }]);
    expect(report.chars.out).toBe('Caf\u00e9 au lait'.length + 'bell here'.length + 'plain text'.length);
    const text = formatReport(report);
    expect(text).toContain('read 8 documents from 1 source(s)');
    expect(text).toContain('dedup: 5 in, 3 out, dropped 2 duplicate');
    expect(text).toContain('kept 3 of 8 documents');
  });

  it('each step can be turned off and then passes documents through', async () => {
    const { documents, report } = await prepare({ type: 'documents', documents: raw }, { normalize: false, controlChars: false, whitespace: false, length: false, dedup: false });
    expect(documents.map((d) => d.text)).toEqual(raw);
    expect(report.steps.every((s) => !s.enabled && s.changed === 0 && s.in === 8 && s.out === 8)).toBe(true);
    expect(formatReport(report)).toContain('dedup: off');
    // without NFC the decomposed and precomposed cafés are different documents
    const r2 = await prepare({ type: 'documents', documents: raw.slice(0, 2) }, { normalize: false });
    expect(r2.documents.length).toBe(2);
    const r3 = await prepare({ type: 'documents', documents: raw.slice(0, 2) });
    expect(r3.documents.length).toBe(1);
  });

  it('reports skipped JSONL lines across sources, streams, and validates options', async () => {
    const p = file('bad.jsonl', '{"text":"one"}\n{bad\n{"text":"one"}\n');
    const t = file('plain.txt', 'one');
    const stream = prepareStream([p, t], { onError: 'skip', maxExamples: 1 });
    const docs = await collect(stream.documents);
    expect(docs.map((d) => d.id)).toEqual([`${p}:1`]);
    expect(stream.report.skippedLines).toEqual({ count: 1, examples: [{ source: p, line: 2, reason: expect.stringMatching(/^invalid JSON/) }] });
    expect(stream.report.sources).toEqual([
      { source: p, documents: 2 },
      { source: t, documents: 1 },
    ]);
    expect(stream.report.steps[4]!.examples.length).toBe(1); // capped at maxExamples
    expect(stream.report.documents.dropped).toEqual({ duplicate: 2 });
    await expect(prepare(p)).rejects.toThrow(/prepare: .*:2: invalid JSON/);
    await expect(prepare(t, { length: { minChars: 5, maxChars: 2 } })).rejects.toThrow(/prepare: length limits/);
    // minChars is 1 unless given: empty documents go even when only maxChars is set; minChars 0 keeps them
    const withEmpty = { type: 'documents', documents: ['a', ' ', 'bb'] } as const;
    expect((await prepare(withEmpty, { length: { maxChars: 1 } })).report.documents.dropped).toEqual({ empty: 1, 'too long': 1 });
    expect((await prepare(withEmpty, { length: { minChars: 0 } })).documents.map((d) => d.text)).toEqual(['a', '', 'bb']);
  });
});

describe('splitDocuments', () => {
  const docs = Array.from({ length: 100 }, (_, i) => ({ id: `d${i}`, text: `document number ${i}`, source: 'm' }));
  const ids = (xs: { id: string }[]): string[] => xs.map((d) => d.id);

  it('is deterministic, exact in size, order-independent, and keeps each side in input order', () => {
    const a = splitDocuments(docs, { valFraction: 0.1, seed: 3 });
    const b = splitDocuments(docs, { valFraction: 0.1, seed: 3 });
    expect(ids(a.val)).toEqual(ids(b.val));
    expect(a.val.length).toBe(10);
    expect(a.train.length).toBe(90);
    expect(new Set([...ids(a.train), ...ids(a.val)]).size).toBe(100);
    const pos = (d: { id: string }): number => Number(d.id.slice(1));
    expect(a.val.map(pos)).toEqual([...a.val.map(pos)].sort((x, y) => x - y));
    const reversed = splitDocuments([...docs].reverse(), { valFraction: 0.1, seed: 3 });
    expect(new Set(ids(reversed.val))).toEqual(new Set(ids(a.val)));
    const other = splitDocuments(docs, { valFraction: 0.1, seed: 4 });
    expect(ids(other.val)).not.toEqual(ids(a.val));
    expect(splitDocuments(docs, { valFraction: 0.37 }).val.length).toBe(37);
    expect(splitDocuments(docs).val.length).toBe(10); // default 0.1
  });

  it('keeps both sides non-empty when possible, and honours 0 and 1', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 30 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.nat(1000), (count, f, seed) => {
        const { train, val } = splitDocuments(docs.slice(0, count), { valFraction: f, seed });
        expect(train.length + val.length).toBe(count);
        if (f === 0) expect(val.length).toBe(0);
        else if (f === 1) expect(train.length).toBe(0);
        else if (count >= 2) {
          expect(val.length).toBeGreaterThanOrEqual(1);
          expect(train.length).toBeGreaterThanOrEqual(1);
          expect(Math.abs(val.length - count * f)).toBeLessThanOrEqual(Math.max(0.5, 1 - count * f, count * f - (count - 1)) + 1e-9);
        } else expect(val.length).toBe(0);
      }),
    );
  });

  it('ranks by content by default (equal texts together) or by id', () => {
    const twins = [
      { id: 'x1', text: 'same' },
      { id: 'x2', text: 'same' },
      ...docs.slice(0, 8),
    ];
    const s = splitDocuments(twins, { valFraction: 0.5 });
    // two equal texts have equal ranks, so they are adjacent in rank order: they split together
    // unless the cut falls between them; ties resolve by input position (x1 before x2)
    const inVal = (id: string): boolean => s.val.some((d) => d.id === id);
    expect(inVal('x1') || !inVal('x2')).toBe(true);
    const byId = splitDocuments(docs, { valFraction: 0.2, by: 'id', seed: 1 });
    const renamed = splitDocuments(
      docs.map((d) => ({ ...d, text: `changed ${d.text}` })),
      { valFraction: 0.2, by: 'id', seed: 1 },
    );
    expect(ids(byId.val)).toEqual(ids(renamed.val));
    expect(() => splitDocuments(docs, { valFraction: 1.5 })).toThrow(/splitDocuments: valFraction must be a number in \[0, 1\], got 1.5/);
    expect(() => splitDocuments(docs, { by: 'name' as never })).toThrow(/by must be/);
  });
});
