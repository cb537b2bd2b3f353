/**
 * Tokenised shards and batches: tokens read back equal tokens written (across shard boundaries
 * with a tiny shard size), the cache hits on a second run and misses when the tokenizer or a
 * document changes, uint16 vs uint32 storage, seeded batches (same seed, same batch; targets are
 * inputs shifted by one; starts drawn exactly as `randint` draws them), the sequential evaluation
 * iterator, and reading a window without reading whole files. The tokenizers are written here
 * (UTF-8 bytes; Unicode code points) so the oracle is `TextEncoder`, not kiln's BPE.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Generator, randint } from '../src/index.js';
import {
  SHARD_FORMAT_VERSION,
  TokenDataset,
  buildShards,
  readShardIndex,
  shardKey,
  contentHash,
  tokenDType,
  tokenizerFingerprint,
  type ShardIndex,
  type TokenizerLike,
} from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'kiln-shards-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = (): string => join(root, `cache-${dirs++}`);

const utf8 = new TextEncoder();
const EOS = 256;
/** UTF-8 bytes as tokens, one extra id (256) for the separator; counts its encode calls. */
function bytesTokenizer(fp = 'utf8-bytes-v1'): TokenizerLike & { calls: number } {
  const tok = {
    calls: 0,
    vocabSize: 257,
    encode(text: string): Uint8Array {
      tok.calls++;
      return utf8.encode(text);
    },
    fingerprint: () => fp,
  };
  return tok;
}
/** Unicode code points as tokens (vocabulary 0x110000: needs uint32). */
const codePointTokenizer: TokenizerLike = {
  vocabSize: 0x110000,
  encode: (text) => Array.from(text, (c) => c.codePointAt(0)!),
  fingerprint: () => 'code-points',
};

const docs = ['Hello, world!', 'né', '', 'The quick brown fox jumps over the lazy dog.', '日本語 😀'];
/** The oracle stream: each document's UTF-8 bytes followed by EOS. */
const expectedStream = (texts: string[], eos: number | null = EOS): number[] => texts.flatMap((t) => [...utf8.encode(t), ...(eos === null ? [] : [eos])]);

describe('buildShards', () => {
  it('round-trips the token stream across many tiny shards, with a valid index', async () => {
    const cacheDir = freshDir();
    const res = await buildShards(docs, bytesTokenizer(), { cacheDir, eos: EOS, maxShardBytes: 14 }); // 7 uint16 tokens a shard
    const expected = expectedStream(docs);
    expect(res.cache).toBe('miss');
    expect(res.reason).toBe('no index');
    expect(res.dir).toBe(join(cacheDir, res.key));
    const index = readShardIndex(res.dir);
    expect(index).toEqual(res.index);
    expect(index).toMatchObject({ version: SHARD_FORMAT_VERSION, key: res.key, dtype: 'uint16', vocabSize: 257, tokens: expected.length, documents: 5, eos: EOS, tokenizer: 'utf8-bytes-v1' });
    expect(index.shards.length).toBe(Math.ceil(expected.length / 7));
    expect(index.shards.every((s, i) => s.file === `shard-${String(i).padStart(5, '0')}.bin` && s.tokens === (i < index.shards.length - 1 ? 7 : expected.length - 7 * i))).toBe(true);
    expect(Number.isNaN(Date.parse(index.created))).toBe(false);
    // the files themselves: little-endian uint16, concatenated = the stream
    const bytes = Buffer.concat(index.shards.map((s) => readFileSync(join(res.dir, s.file))));
    expect(Array.from({ length: bytes.length / 2 }, (_, i) => bytes.readUInt16LE(2 * i))).toEqual(expected);
    // no temporary files left behind
    expect(readdirSync(res.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    using data = TokenDataset.open(res, { maxOpenFiles: 2 });
    expect(data.length).toBe(expected.length);
    expect(Array.from(data.window(0, data.length))).toEqual(expected);
    // every window, including those spanning 2, 3 … shards, equals the slice of the stream
    for (let start = 0; start <= expected.length; start++)
      for (let len = 0; start + len <= expected.length; len += 3) expect(Array.from(data.window(start, len))).toEqual(expected.slice(start, start + len));
    expect(() => data.window(expected.length - 2, 3)).toThrow(/TokenDataset.window: \[\d+, \d+\) is outside the stream/);
  });

  it('matches the stream for random corpora, shard sizes and separators', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ maxLength: 20 }), { maxLength: 6 }), fc.integer({ min: 1, max: 12 }), fc.boolean(), async (texts, shardTokens, withEos) => {
        const res = await buildShards(texts, bytesTokenizer(), { cacheDir: freshDir(), eos: withEos ? EOS : null, maxShardBytes: 2 * shardTokens + 1 });
        const expected = expectedStream(texts, withEos ? EOS : null);
        using data = TokenDataset.open(res.dir);
        expect(res.index.shards.every((s) => s.tokens <= shardTokens)).toBe(true);
        expect(Array.from(data.window(0, data.length))).toEqual(expected);
      }),
      { numRuns: 20 },
    );
  });

  it('reuses the cache on the second run without tokenising, and misses when the tokenizer, a document or the separator changes', async () => {
    const cacheDir = freshDir();
    const tok = bytesTokenizer();
    const first = await buildShards(docs, tok, { cacheDir, eos: EOS });
    expect(first.cache).toBe('miss');
    expect(tok.calls).toBe(docs.length);

    const second = await buildShards(docs, tok, { cacheDir, eos: EOS });
    expect(second.cache).toBe('hit');
    expect(tok.calls).toBe(docs.length); // not one more encode
    expect(second.key).toBe(first.key);
    expect(second.index).toEqual(first.index);

    // a function returning a fresh iterable is accepted and hits too
    expect((await buildShards(() => docs.values(), tok, { cacheDir, eos: EOS })).cache).toBe('hit');

    const otherTok = await buildShards(docs, bytesTokenizer('utf8-bytes-v2'), { cacheDir, eos: EOS });
    expect(otherTok.cache).toBe('miss');
    expect(otherTok.key).not.toBe(first.key);

    const edited = await buildShards([...docs.slice(0, 4), '日本語 😀!'], tok, { cacheDir, eos: EOS });
    expect(edited.cache).toBe('miss');
    const reordered = await buildShards([...docs].reverse(), tok, { cacheDir, eos: EOS });
    expect(reordered.cache).toBe('miss');
    const noEos = await buildShards(docs, tok, { cacheDir });
    expect(noEos.cache).toBe('miss');
    expect(new Set([first.key, otherTok.key, edited.key, reordered.key, noEos.key]).size).toBe(5);

    // the key is the documented recipe over the content hashes
    expect(first.key).toBe(shardKey(docs.map(contentHash), tok, EOS));
    // the shard size is not part of the key: a different layout of the same tokens is reused
    expect((await buildShards(docs, tok, { cacheDir, eos: EOS, maxShardBytes: 8 })).cache).toBe('hit');
  });

  it('rebuilds when the cached index or a shard is damaged, saying why', async () => {
    const cacheDir = freshDir();
    const first = await buildShards(docs, bytesTokenizer(), { cacheDir, eos: EOS, maxShardBytes: 20 });
    const shard = join(first.dir, first.index.shards[1]!.file);
    truncateSync(shard, 4);
    const second = await buildShards(docs, bytesTokenizer(), { cacheDir, eos: EOS, maxShardBytes: 20 });
    expect(second.cache).toBe('miss');
    expect(second.reason).toMatch(/invalid index \(readShardIndex: .* shard shard-00001.bin has 4 bytes, the index says 10 tokens of 2 bytes\)/);
    expect(statSync(shard).size).toBe(20);
    rmSync(shard);
    expect((await buildShards(docs, bytesTokenizer(), { cacheDir, eos: EOS, maxShardBytes: 1000 })).reason).toMatch(/shard shard-00001.bin is missing/);
    writeFileSync(join(first.dir, 'index.json'), '{"version": 99}');
    const third = await buildShards(docs, bytesTokenizer(), { cacheDir, eos: EOS, maxShardBytes: 20 });
    expect(third.reason).toMatch(/format version 99, this reader knows 1/);
    expect(() => TokenDataset.open(join(cacheDir, 'nothing'))).toThrow(/TokenDataset.open: cannot read/);
  });

  it('grows its buffer up to a shard for large documents', async () => {
    // 200 000 tokens with shards of 150 000: the write buffer starts at 65 536 and grows twice
    const big = 'ab'.repeat(100_000);
    const res = await buildShards([big, 'c'], bytesTokenizer(), { cacheDir: freshDir(), maxShardBytes: 300_000 });
    expect(res.index.shards.map((s) => s.tokens)).toEqual([150_000, 50_001]);
    using data = TokenDataset.open(res);
    expect(Array.from(data.window(149_998, 4))).toEqual([97, 98, 97, 98]);
    expect(Array.from(data.window(199_999, 2))).toEqual([98, 99]);
    expect(data.bytesRead).toBe(12);
  });

  it('stores uint16 up to a vocabulary of 65536 and uint32 above', async () => {
    expect(tokenDType(1)).toBe('uint16');
    expect(tokenDType(65536)).toBe('uint16');
    expect(tokenDType(65537)).toBe('uint32');
    expect(tokenDType(50257)).toBe('uint16'); // GPT-2
    expect(() => tokenDType(0)).toThrow(/vocabSize must be an integer in \[1, 2\^31\]/);
    const texts = ['a😀', '\u{10fffd}z'];
    const res = await buildShards(texts, codePointTokenizer, { cacheDir: freshDir(), eos: 0 });
    expect(res.index.dtype).toBe('uint32');
    const expected = [0x61, 0x1f600, 0, 0x10fffd, 0x7a, 0];
    expect(statSync(join(res.dir, res.index.shards[0]!.file)).size).toBe(4 * expected.length);
    using data = TokenDataset.open(res);
    expect(Array.from(data.window(0, 6))).toEqual(expected);
    expect(Array.from(data.window(1, 3))).toEqual([0x1f600, 0, 0x10fffd]);
    const max16 = { vocabSize: 65536, encode: () => [65535, 0], fingerprint: () => 'max16' };
    const r16 = await buildShards(['x'], max16, { cacheDir: freshDir() });
    expect(r16.index.dtype).toBe('uint16');
    using d16 = TokenDataset.open(r16);
    expect(Array.from(d16.window(0, 2))).toEqual([65535, 0]);
  });

  it('validates its inputs and the tokenizer output', async () => {
    const tok = bytesTokenizer();
    await expect(buildShards(docs, tok, { cacheDir: freshDir(), eos: 257 })).rejects.toThrow(/buildShards: eos must be an integer in \[0, 257\), got 257/);
    await expect(buildShards(docs, tok, { cacheDir: freshDir(), maxShardBytes: 1 })).rejects.toThrow(/maxShardBytes must be an integer ≥ 2/);
    const bad = { vocabSize: 10, encode: () => [3, 12], fingerprint: () => 'bad' };
    await expect(buildShards(['x'], bad, { cacheDir: freshDir() })).rejects.toThrow(/buildShards: token 12 at position 1 of document 0 is outside \[0, 10\)/);
    await expect(buildShards(['x'], { vocabSize: 10, encode: () => [1] }, { cacheDir: freshDir() })).rejects.toThrow(/neither fingerprint\(\) nor toJSON\(\)/);
    // an empty corpus is a valid, empty stream
    const empty = await buildShards([], tok, { cacheDir: freshDir() });
    expect(empty.index).toMatchObject({ tokens: 0, documents: 0, shards: [] });
    using e = TokenDataset.open(empty);
    expect(e.length).toBe(0);
    expect(Array.from(e.window(0, 0))).toEqual([]);
    expect([...e.sequential(4)]).toEqual([]);
    // an index cannot point outside its folder
    const idx = JSON.parse(readFileSync(join(empty.dir, 'index.json'), 'utf8')) as ShardIndex;
    writeFileSync(join(empty.dir, 'index.json'), JSON.stringify({ ...idx, shards: [{ file: '..', tokens: 0 }] }));
    expect(() => TokenDataset.open(empty.dir)).toThrow(/TokenDataset.open: .*bad shard file name "\.\."/);
    let n = 0;
    const shifting = (): string[] => [`doc ${n++}`];
    await expect(buildShards(shifting, tok, { cacheDir: freshDir() })).rejects.toThrow(/documents changed between the two passes/);
  });

  it('fingerprints a tokenizer without fingerprint() by its JSON', () => {
    const a = { toJSON: () => ({ merges: ['a b'] }) };
    const b = { toJSON: () => ({ merges: ['a c'] }) };
    expect(tokenizerFingerprint(a)).toBe(contentHash(JSON.stringify({ merges: ['a b'] })));
    expect(tokenizerFingerprint(a)).not.toBe(tokenizerFingerprint(b));
    expect(tokenizerFingerprint({ fingerprint: () => 'fp', toJSON: () => 1 })).toBe('fp');
  });
});

describe('TokenDataset batches', () => {
  const corpus = Array.from({ length: 40 }, (_, i) => `document ${i}: ${'abcdefghij'.slice(0, (i * 7) % 10)} end`);
  const stream = expectedStream(corpus);
  let dir = '';
  const open = async (): Promise<TokenDataset> => {
    if (!dir) dir = (await buildShards(corpus, bytesTokenizer(), { cacheDir: freshDir(), eos: EOS, maxShardBytes: 64 })).dir;
    return TokenDataset.open(dir, { maxOpenFiles: 3 });
  };

  it('gives [B, T] i32 inputs and targets, targets shifted by one, from windows of the stream', async () => {
    using data = await open();
    const B = 6;
    const T = 17;
    const { input, target, starts } = data.batch(B, T, new Generator(7));
    expect(input.shape).toEqual([B, T]);
    expect(target.shape).toEqual([B, T]);
    expect(input.dtype).toBe('i32');
    expect(target.dtype).toBe('i32');
    const x = Array.from(await input.data());
    const y = Array.from(await target.data());
    for (let b = 0; b < B; b++) {
      const s = starts[b]!;
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s + T + 1).toBeLessThanOrEqual(stream.length);
      expect(x.slice(b * T, (b + 1) * T)).toEqual(stream.slice(s, s + T));
      expect(y.slice(b * T, (b + 1) * T)).toEqual(stream.slice(s + 1, s + T + 1));
      expect(y.slice(b * T, (b + 1) * T - 1)).toEqual(x.slice(b * T + 1, (b + 1) * T)); // target = input shifted by one
    }
    input.dispose();
    target.dispose();
  });

  it('draws the same batches from the same seed, exactly as randint would, and resumes from a saved state', async () => {
    using data = await open();
    const T = 9;
    const n = data.validStarts(T);
    expect(n).toBe(stream.length - T);
    const g1 = new Generator(42);
    const g2 = new Generator(42);
    const oracle = new Generator(42);
    for (let step = 0; step < 5; step++) {
      const a = data.batch(4, T, g1);
      const b = data.batch(4, T, g2);
      expect(a.starts).toEqual(b.starts);
      expect(Array.from(await a.input.data())).toEqual(Array.from(await b.input.data()));
      const r = randint(0, n, [4], { generator: oracle, backend: 'ref' });
      expect(a.starts).toEqual(Array.from(await r.data()));
      for (const t of [a.input, a.target, b.input, b.target, r]) t.dispose();
    }
    expect(g1.getState()).toEqual(oracle.getState());
    const saved = g1.getState();
    const next = data.batch(4, T, g1);
    const resumed = new Generator(0);
    resumed.setState(saved);
    const again = data.batch(4, T, resumed);
    expect(again.starts).toEqual(next.starts);
    const other = data.batch(4, T, new Generator(43));
    expect(other.starts).not.toEqual(data.batch(4, T, new Generator(42)).starts);
    // starts cover the valid range: with many draws every start in a small range appears
    const seen = new Set<number>();
    const g = new Generator(1);
    for (let i = 0; i < 40; i++) for (const s of data.batch(16, stream.length - 8, g).starts) seen.add(s);
    expect([...seen].sort((p, q) => p - q)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const t of [next, again, other]) {
      t.input.dispose();
      t.target.dispose();
    }
    expect(() => data.batch(1, stream.length)).toThrow(/blockSize \d+ needs at least \d+ tokens/);
    expect(() => data.batch(0, 4)).toThrow(/TokenDataset.batch: batchSize must be an integer ≥ 1, got 0/);
  });

  it('iterates sequential windows that make every token after the first a target exactly once', async () => {
    using data = await open();
    for (const [T, B] of [
      [16, 3],
      [7, 1],
      [stream.length - 1, 2],
      [stream.length + 5, 1],
    ] as const) {
      const inputs: number[] = [];
      const targets: number[] = [];
      let windows = 0;
      for (const { input, target, starts } of data.sequential(T, { batchSize: B })) {
        expect(input.shape[0]).toBe(starts.length);
        expect(input.shape[0]).toBeLessThanOrEqual(B);
        windows += starts.length;
        inputs.push(...(await input.data()));
        targets.push(...(await target.data()));
        input.dispose();
        target.dispose();
      }
      expect(windows).toBe(data.sequentialWindows(T));
      expect(inputs).toEqual(stream.slice(0, -1));
      expect(targets).toEqual(stream.slice(1));
    }
    // dropLast leaves out the short final window
    const full = [...data.sequential(16, { dropLast: true })];
    expect(full.length).toBe(Math.floor((stream.length - 1) / 16));
    expect(full.every((b) => b.input.shape[1] === 16)).toBe(true);
    for (const b of full) {
      b.input.dispose();
      b.target.dispose();
    }
  });

  it('closes its files and refuses to read afterwards', async () => {
    const data = await open();
    data.window(0, 10);
    data.close();
    expect(data.closed).toBe(true);
    expect(() => data.window(0, 1)).toThrow(/TokenDataset.window: the dataset was closed/);
  });
});

describe('TokenDataset memory', () => {
  it('reads only the bytes of the window', async () => {
    const res = await buildShards(['x'.repeat(5000), 'y'.repeat(5000)], bytesTokenizer(), { cacheDir: freshDir(), eos: EOS, maxShardBytes: 4096 });
    using data = TokenDataset.open(res);
    expect(data.bytesRead).toBe(0); // opening reads no tokens
    data.window(1000, 50);
    expect(data.bytesRead).toBe(100);
    data.window(2040, 20); // spans shards 0 and 1 (2048 tokens a shard)
    expect(data.bytesRead).toBe(140);
    const b = data.batch(3, 31, new Generator(0));
    expect(data.bytesRead).toBe(140 + 3 * 32 * 2);
    b.input.dispose();
    b.target.dispose();
  });

  it('reads a window at the end of a 4 GiB sparse shard without loading it', () => {
    // a shard of 2^31 uint16 tokens, all zero except the last four; the file is sparse, so the
    // test needs no disk space, and reading it whole would need 4 GiB of memory
    const dir = freshDir();
    const tokens = 2 ** 31;
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'shard-00000.bin');
    const fd = openSync(file, 'w');
    const tail = Buffer.alloc(8);
    [11, 22, 33, 65535].forEach((v, i) => tail.writeUInt16LE(v, 2 * i));
    writeSync(fd, tail, 0, 8, 2 * tokens - 8);
    closeSync(fd);
    const index: ShardIndex = { version: SHARD_FORMAT_VERSION, key: 'sparse', dtype: 'uint16', vocabSize: 65536, tokens, shards: [{ file: 'shard-00000.bin', tokens }], documents: 1, eos: null, tokenizer: 'test', created: new Date().toISOString() };
    writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
    const rss = process.memoryUsage().rss;
    using data = TokenDataset.open(dir);
    expect(data.length).toBe(tokens);
    expect(Array.from(data.window(tokens - 6, 6))).toEqual([0, 0, 11, 22, 33, 65535]);
    expect(data.bytesRead).toBe(12);
    const b = data.batch(2, 8, new Generator(3));
    expect(b.starts.every((s) => s >= 0 && s <= tokens - 9)).toBe(true);
    b.input.dispose();
    b.target.dispose();
    expect(process.memoryUsage().rss - rss).toBeLessThan(256 * 2 ** 20);
  });
});
