/**
 * llm.c token files as training data (issue 13): the file format round-trips through
 * `writeTokenFile` and `TokenDataset` (and against bytes written by hand from llm.c's
 * `write_datafile` layout), `kiln train --data FILE.bin` trains without a tokenizer,
 * `--config gpt2-124m` is GPT-2 small and starts on cpu with small overrides, and the MFU of the
 * progress line and the summary is `flopsPerToken(...).model × tok/s ÷ peak`.
 */
import { mkdtempSync, readFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getConfig } from '../src/cli/configs.js';
import { main } from '../src/cli/main.js';
import { ProgressBar, gpuPeakFlops, modelFlopsUtilization } from '../src/cli/progress.js';
import { modelFlopsPerToken } from '../src/cli/train.js';
import { Generator, TokenDataset, flopsPerToken, isTokenFile, openTokenFile, readTokenFileHeader, writeTokenFile } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'kiln-tokens-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A token file by hand, as llm.c's `write_datafile` lays it out: 256 int32 (magic, version, count), then uint16 tokens. */
function llmcBytes(tokens: number[], magic = 20240520, version = 1): Uint8Array {
  const out = new Uint8Array(1024 + 2 * tokens.length);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, magic, true);
  dv.setInt32(4, version, true);
  dv.setInt32(8, tokens.length, true);
  tokens.forEach((t, i) => dv.setUint16(1024 + 2 * i, t, true));
  return out;
}

/** A stream with structure a tiny model can learn: a repeated pattern over `vocab` ids. */
const pattern = (n: number, vocab: number): number[] => Array.from({ length: n }, (_, i) => (i * 7 + Math.floor(i / 5)) % vocab);

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { code, stdout, stderr };
}

describe('llm.c token files', () => {
  it('round-trip: writeTokenFile writes the bytes of llm.c’s layout, and TokenDataset reads the same tokens', async () => {
    const tokens = pattern(3000, 50257).map((t, i) => (i === 7 ? 50256 : t));
    const path = join(root, 'round.bin');
    await writeTokenFile(path, tokens);
    expect(new Uint8Array(readFileSync(path))).toEqual(llmcBytes(tokens));
    expect(isTokenFile(path)).toBe(true);
    expect(readTokenFileHeader(path)).toMatchObject({ format: 'gpt-2', magic: 20240520, version: 1, dtype: 'uint16', tokens: 3000, vocabSize: 50257 });

    const data = openTokenFile(path);
    expect(data).toBeInstanceOf(TokenDataset);
    expect(data.length).toBe(3000);
    expect(data.vocabSize).toBe(50257);
    expect(Array.from(data.window(0, 3000))).toEqual(tokens);
    // slices read their own range; batches come from the windows of the file
    const tail = data.slice(2900, 3000);
    expect(Array.from(tail.window(0, 100))).toEqual(tokens.slice(2900));
    const b = data.batch(3, 16, new Generator(5));
    const input = Array.from(await b.input.data());
    const target = Array.from(await b.target.data());
    b.starts.forEach((s, r) => {
      expect(input.slice(16 * r, 16 * r + 16)).toEqual(tokens.slice(s, s + 16));
      expect(target.slice(16 * r, 16 * r + 16)).toEqual(tokens.slice(s + 1, s + 17));
    });
    b.input.dispose();
    b.target.dispose();
    tail.close();
    data.close();

    // llama-3's uint32 format too
    const wide = join(root, 'wide.bin');
    await writeTokenFile(wide, [0, 70000, 128255], { format: 'llama-3' });
    expect(readTokenFileHeader(wide)).toMatchObject({ format: 'llama-3', magic: 20240801, version: 7, dtype: 'uint32', tokens: 3 });
    const w = openTokenFile(wide);
    expect(Array.from(w.window(0, 3))).toEqual([0, 70000, 128255]);
    w.close();
  });

  it('refuses a wrong magic, version or size, naming the file and what is wrong', async () => {
    const bad = (name: string, bytes: Uint8Array): string => {
      const p = join(root, name);
      writeFileSync(p, bytes);
      return p;
    };
    expect(() => readTokenFileHeader(bad('magic.bin', llmcBytes([1, 2], 123)))).toThrow(/readTokenFileHeader: .*magic\.bin.*magic 123/);
    expect(() => readTokenFileHeader(bad('version.bin', llmcBytes([1, 2], 20240520, 2)))).toThrow(/version 2/);
    expect(() => openTokenFile(bad('short.bin', llmcBytes([1, 2, 3]).subarray(0, 1028)))).toThrow(/openTokenFile: .*1028 bytes.*3 tokens/);
    expect(() => readTokenFileHeader(bad('tiny.bin', new Uint8Array(10)))).toThrow(/shorter than the 1024-byte header/);
    await expect(writeTokenFile(join(root, 'x.bin'), [70000])).rejects.toThrow(/writeTokenFile: tokens\[0\] = .*70000/);
  });
});

describe('kiln train on token files', () => {
  const data = join(root, 'train.bin');
  const val = join(root, 'val.bin');

  it('kiln train --data tiny.bin --steps 3 trains without a tokenizer, writes metrics.json and skips the sample with a reason', async () => {
    await writeTokenFile(data, pattern(4000, 300));
    const out = join(root, 'run-a');
    const r = await run(['train', '--data', data, '--config', 'micro', '--vocab-size', '300', '--backend', 'cpu', '--steps', '3', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('llm.c token file (gpt-2, 4.00k tokens');
    expect(r.stderr).toContain('tokenizer: none');
    expect(r.stdout).toMatch(/sample: skipped: no tokenizer/);
    expect(existsSync(join(out, 'sample.txt'))).toBe(false);
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(m.steps).toBe(3);
    expect(m.tokenizer).toMatchObject({ type: 'none', vocabSize: 300 });
    // micro holds out 10%: the last 400 tokens of the file
    expect(m.data).toMatchObject({ trainTokens: 3600, valTokens: 400 });
    expect(Number.isFinite(m.valLoss)).toBe(true);
    expect(m.mfu).toBeUndefined(); // no peak known on cpu without --peak-tflops
    expect(r.stderr).not.toContain('MFU');
  });

  it('kiln eval --data FILE.bin scores a token-file run without a tokenizer (its val loss again); kiln sample says why it cannot', async () => {
    const out = join(root, 'run-a'); // trained by the test above
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    // the held-out tokens as a file of their own: the same windows the run's validation scored
    const heldOut = join(root, 'heldout.bin');
    await writeTokenFile(heldOut, pattern(4000, 300).slice(3600));
    const r = await run(['eval', '--ckpt', out, '--data', heldOut, '--backend', 'cpu', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const e = JSON.parse(r.stdout);
    expect(e.data).toBe(heldOut);
    expect(e.documents).toBeUndefined();
    expect(e.tokens).toBeGreaterThan(0);
    expect(e.perplexity).toBeCloseTo(Math.exp(e.loss), 6);
    // the run's own validation loss came from these tokens (its windows may differ at the ends)
    expect(Math.abs(e.loss - m.valLoss)).toBeLessThan(0.25);
    const s = await run(['sample', '--ckpt', out, '--backend', 'cpu']);
    expect(s.code).not.toBe(0);
    expect(s.stderr).toMatch(/no tokenizer\.json beside the checkpoint .*llm\.c token files has none: kiln eval --data FILE\.bin/);
  });

  it('--val-data reads the validation split from its own file; ids past the vocabulary are refused', async () => {
    await writeTokenFile(val, pattern(500, 300));
    const out = join(root, 'run-b');
    const r = await run(['train', '--data', data, '--val-data', val, '--config', 'micro', '--vocab-size', '300', '--backend', 'cpu', '--steps', '2', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(m.data).toMatchObject({ trainTokens: 4000, valTokens: 500 });
    const r2 = await run(['train', '--data', data, '--config', 'micro', '--vocab-size', '257', '--backend', 'cpu', '--steps', '2', '--out', join(root, 'run-c')]);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toMatch(/--data: .*train\.bin' holds token id \d+, outside the vocabulary of 257/);
  });

  it('--config gpt2-124m is GPT-2 small with build-nanogpt’s recipe, and runs 2 steps on cpu with small overrides', async () => {
    const c = getConfig('gpt2-124m');
    expect(c).toMatchObject({ nLayer: 12, nHead: 12, nEmbd: 768, blockSize: 1024, vocabSize: 50257, lr: 6e-4, minLr: 6e-5, warmupSteps: 715, steps: 19073, betas: [0.9, 0.95], weightDecay: 0.1, clip: 1, precision: 'bf16' });
    expect(c.batchSize * c.blockSize * c.gradAccum).toBe(2 ** 19);
    const out = join(root, 'run-gpt2');
    const r = await run([
      'train', '--data', data, '--config', 'gpt2-124m', '--backend', 'cpu', '--steps', '2',
      '--batch-size', '2', '--grad-accum', '1', '--block-size', '16', '--n-layer', '1', '--n-embd', '48', '--n-head', '2', '--vocab-size', '300',
      '--eval-every', '0', '--out', out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(m.config).toBe('gpt2-124m');
    expect(m.steps).toBe(2);
    expect(m.runConfig).toMatchObject({ lr: 6e-4, warmupSteps: 2, betas: [0.9, 0.95] });
    expect(m.model).toMatchObject({ nLayer: 1, nEmbd: 48, vocabSize: 300, tiedHead: true });
  });

  it('--peak-tflops shows MFU in the progress lines and the summary, as flopsPerToken × tok/s ÷ peak', async () => {
    const out = join(root, 'run-mfu');
    const r = await run(['train', '--data', data, '--config', 'micro', '--vocab-size', '300', '--backend', 'cpu', '--steps', '3', '--log-every', '1', '--peak-tflops', '0.001', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    const micro = getConfig('micro');
    // 6·(12·L·C² + V·C) + 12·L·T·C for L 2, C 32, V 300, T 16
    const fpt = 6 * (12 * 2 * 32 * 32 + 300 * 32) + 12 * 2 * 16 * 32;
    expect(fpt).toBe(flopsPerToken({ nLayer: micro.nLayer, nEmbd: micro.nEmbd, vocabSize: 300, seqLen: micro.blockSize }).model);
    expect(m.flopsPerToken).toBe(fpt);
    expect(m.peakFlops).toBe(1e9);
    expect(m.mfu).toBeCloseTo((m.tokensPerSecond * fpt) / 1e9, 12);
    expect(r.stderr).toMatch(/MFU: against 0\.0 TFLOP\/s per device \(--peak-tflops 0\.001\)/);
    expect(r.stderr).toMatch(/step 3\/3 .* tok\/s MFU \d+\.\d%/);
    expect(r.stdout).toContain(`MFU              ${(100 * m.mfu).toFixed(1)}%`);
  });
});

describe('MFU arithmetic and the peak table', () => {
  it('modelFlopsUtilization is tokens/s × FLOPs per token over the peak of all devices', () => {
    const gpt2 = { nLayer: 12, nEmbd: 768, vocabSize: 50257 };
    const fpt = modelFlopsPerToken(gpt2, 1024);
    expect(fpt).toBe(6 * (12 * 12 * 768 * 768 + 50257 * 768) + 12 * 12 * 1024 * 768);
    // about 0.88 GFLOP per token: 400k tok/s on one H100 is 35.6% MFU
    expect(modelFlopsUtilization(400e3, fpt, 989.4e12)).toBeCloseTo((400e3 * fpt) / 989.4e12, 15);
    expect(modelFlopsUtilization(400e3, fpt, 989.4e12, 2)).toBeCloseTo((400e3 * fpt) / (2 * 989.4e12), 15);
  });

  it('knows the dense bf16 peaks of the GPUs by the names CUDA reports', () => {
    expect(gpuPeakFlops('NVIDIA H100 80GB HBM3')?.peakFlops).toBe(989.4e12);
    expect(gpuPeakFlops('NVIDIA H200')?.peakFlops).toBe(989.4e12);
    expect(gpuPeakFlops('NVIDIA H100 PCIe')?.peakFlops).toBe(756.5e12);
    expect(gpuPeakFlops('NVIDIA A100-SXM4-80GB')?.peakFlops).toBe(312e12);
    expect(gpuPeakFlops('NVIDIA A10')?.peakFlops).toBe(125e12);
    expect(gpuPeakFlops('NVIDIA GeForce GTX 1080')).toBeNull();
  });

  it('the progress line shows MFU only when given', () => {
    let text = '';
    const stream = { write: (s: string) => (text += s) };
    const bar = new ProgressBar({ total: 2, stream, tty: false, every: 1, now: () => 0 });
    bar.update({ step: 1, loss: 2, lr: 1e-3, tokensPerSecond: 1000, mfu: 0.1234 });
    bar.update({ step: 2, loss: 2, lr: 1e-3, tokensPerSecond: 1000 });
    const [a, b] = text.trim().split('\n');
    expect(a).toContain('tok/s MFU 12.3% elapsed');
    expect(b).not.toContain('MFU');
  });
});
