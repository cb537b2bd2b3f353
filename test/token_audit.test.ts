/**
 * The glitch-token audit: a tiny GPT trained 200 steps on sequences that never use ids 48–63 of
 * its 64-token vocabulary; the audit, from the weights alone, ranks exactly those 16 at the top
 * (the raw row norm does not: the unseen rows are no smaller than the rest). Token counts,
 * escaping of byte tokens, and `kiln audit tokens` on a kiln train run, whose listed tokens are
 * all absent from the training split.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AdamW, BPETokenizer, GPT, Generator, tensor, tidy } from '../src/index.js';
import { weightDecayGroups } from '../src/train/loop.js';
import { auditTokens, escapeToken, tokenCounts } from '../src/metrics/token_audit.js';
import { main } from '../src/cli/main.js';

const V = 64;
const USED = 48;
const backend = 'ref';

/** A tiny GPT trained on sequences x → 5x + 1 + noise (mod 48): ids 48..63 never occur. */
async function trainedModel(): Promise<GPT> {
  const T = 16;
  const B = 8;
  const model = new GPT({ vocabSize: V, blockSize: T, nLayer: 1, nHead: 2, nEmbd: 32, dropout: 0 }, { backend, generator: new Generator(3) });
  const opt = new AdamW(weightDecayGroups(model, 0.1), { lr: 3e-3, betas: [0.9, 0.99] });
  let s = 11;
  const r = (k: number): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return Math.floor(s / 65536) % k;
  };
  for (let step = 0; step < 200; step++) {
    const x: number[] = [];
    const y: number[] = [];
    for (let b = 0; b < B; b++) {
      let t = r(USED);
      for (let i = 0; i < T; i++) {
        const n = (t * 5 + 1 + r(3)) % USED;
        x.push(t);
        y.push(n);
        t = n;
      }
    }
    const idx = tensor(Int32Array.from(x), [B, T], { dtype: 'i32', backend });
    const tgt = tensor(Int32Array.from(y), [B, T], { dtype: 'i32', backend });
    tidy(() => {
      model.forward(idx, tgt).loss!.backward();
      opt.step();
      model.zeroGrad();
    });
    idx.dispose();
    tgt.dispose();
  }
  return model;
}

const names = { vocabSize: V, decode: (ids: ArrayLike<number>): string => Array.from(ids, (i) => `<${i}>`).join('') };

describe('auditTokens', () => {
  it('ranks exactly the never-seen tokens of a trained GPT first, from the weights alone', async () => {
    const model = await trainedModel();
    const unseen = Array.from({ length: V - USED }, (_, i) => USED + i);
    const plain = await auditTokens(model, names);
    const top = plain.tokens.slice(0, unseen.length).map((t) => t.id).sort((a, b) => a - b);
    console.log(`[token audit] top ${unseen.length}: ${plain.tokens.slice(0, unseen.length).map((t) => `${t.id} (z ${t.z.toFixed(2)})`).join(', ')}; next: ${plain.tokens[unseen.length]!.id} (z ${plain.tokens[unseen.length]!.z.toFixed(2)})`);
    expect(top).toEqual(unseen);
    // the weights alone flag them, and nothing else
    expect(plain.flaggedByWeights).toBe(unseen.length);
    expect(plain.tokens.slice(0, unseen.length).every((t) => t.flagged && t.count === null)).toBe(true);
    expect(plain.tokens[unseen.length]!.z).toBeGreaterThan(-2);
    // the raw norm does not single them out: why the indicator removes the shared component
    const byNorm = [...plain.tokens].sort((a, b) => a.norm - b.norm).slice(0, unseen.length).map((t) => t.id);
    expect(byNorm.filter((id) => id >= USED).length).toBeLessThan(unseen.length / 2);
    // with counts, the two signals agree
    const counts = Array.from({ length: V }, (_, i) => (i < USED ? 10 + i : 0));
    const withCounts = await auditTokens(model, names, { counts });
    expect(withCounts.rare).toEqual({ count: unseen.length, threshold: 0, inLowest: unseen.length });
    expect(withCounts.tokens.slice(0, unseen.length).every((t) => t.count === 0 && t.text === `<${t.id}>`)).toBe(true);
    // rareCount flags tokens seen a few times too; the embedding matrix is the same tensor (tied)
    const rare = await auditTokens(model, names, { counts, rareCount: 12, matrix: 'embedding' });
    expect(rare.rare!.count).toBe(unseen.length + 3);
    expect(rare.tokens.filter((t) => t.flagged).length).toBe(unseen.length + 3);
    model.dispose();
  }, 60_000);

  it('counts tokens, and escapes byte tokens, control characters and quotes', () => {
    expect(Array.from(tokenCounts([0, 2, 2, 3], 5))).toEqual([1, 0, 2, 1, 0]);
    expect(() => tokenCounts([0, 5], 5)).toThrow(/tokenCounts: ids\[1\] must be an integer in \[0, 5\), got 5/);
    expect(escapeToken(' the')).toBe('" the"');
    expect(escapeToken('a\n"\u0000')).toBe('"a\\n\\"\\u0000"');
    expect(escapeToken('\u0085')).toBe('"\\u0085"');
    // a byte of a multi-byte character, from a byte-level BPE
    const tok = BPETokenizer.train(['hello world'], { vocabSize: 260 });
    const w = tensor(Array.from({ length: tok.vocabSize * 4 }, (_, i) => Math.sin(i)), [tok.vocabSize, 4]);
    return auditTokens(w, tok).then((a) => {
      const e = a.tokens.find((t) => t.id === tok.encode('é')[0])!; // 0xc3, half of 'é'
      expect(escapeToken(e.text)).toBe('"\\xc3"');
      expect(a.tokens.find((t) => t.id === tok.encode('h')[0])!.text).toBe('h');
      w.dispose();
    });
  });
});

describe('kiln audit tokens', () => {
  const root = mkdtempSync(join(tmpdir(), 'kiln-audit-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("lists tokens absent from the run's training split first, with ids, escaped text and counts", async () => {
    const corpus = join(root, 'corpus.txt');
    const words = ['the cat', 'a dog', 'sees', 'likes', 'the red house', 'a green field'];
    let s = 5;
    const r = (k: number): number => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return Math.floor(s / 65536) % k;
    };
    writeFileSync(corpus, `${Array.from({ length: 30 }, () => Array.from({ length: 5 }, () => `${words[r(2)]} ${words[2 + r(2)]} ${words[4 + r(2)]}.`).join(' ')).join('\n\n')}\n`);
    const out = join(root, 'run');
    let stdout = '';
    let stderr = '';
    const io = { stdout: { write: (x: string) => (stdout += x) }, stderr: { write: (x: string) => (stderr += x) } };
    expect(await main(['train', '--data', corpus, '--config', 'micro', '--backend', 'ref', '--steps', '30', '--sample-tokens', '2', '--out', out], io), stderr).toBe(0);
    stdout = '';
    expect(await main(['audit', 'tokens', '--ckpt', out, '--backend', 'ref', '--top', '10'], io), stderr).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^kiln audit tokens: .*ckpt-00000030\.safetensors \(step 30\), unembedding matrix \[\d+ × 32\]; counts from the training split of /);
    const rows = lines.filter((l) => /^\s+\d+\s+\d+\s+-?\d/.test(l));
    expect(rows).toHaveLength(10);
    console.log(`[token audit] kiln audit tokens, micro run:\n${lines.slice(0, 6).join('\n')}`);
    // the audit's counts agree: most of the listed tokens never occur in the training split
    const zeros = rows.filter((l) => / 0 {2}"/.test(l)).length;
    expect(zeros).toBeGreaterThanOrEqual(8);
    // --json lists every token; --data counts another text; bad audits are usage errors
    stdout = '';
    expect(await main(['audit', 'tokens', '--ckpt', out, '--backend', 'ref', '--json', '--data', corpus], io)).toBe(0);
    const j = JSON.parse(stdout) as { tokens: { id: number; count: number }[]; rare: { count: number; inLowest: number } };
    expect(j.tokens.length).toBeGreaterThan(256);
    expect(j.rare.inLowest / j.rare.count).toBeGreaterThan(0.8);
    stderr = '';
    expect(await main(['audit', 'weights', '--ckpt', out], io)).toBe(2);
    expect(stderr).toMatch(/^kiln audit: unknown audit 'weights'; the audits are tokens/);
  }, 120_000);
});
