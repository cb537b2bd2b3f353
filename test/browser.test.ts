/**
 * kiln in a real browser: scripts/build-browser.mjs builds the core bundle and the example page
 * (examples/browser), a small static server serves the page on 127.0.0.1, and headless Chromium
 * (driven by playwright-core) trains the page's GPT for 30 steps on WebGPU, then saves the
 * weights with the page's button; `kiln sample --ckpt FILE` must read that file and sample from
 * it. A screenshot is left for a person to look at (its path is printed; a copy goes to
 * /tmp/kiln-browser.png).
 *
 * Without Chromium (`KILN_CHROMIUM`, default /usr/bin/chromium) or playwright-core the browser
 * test is skipped with the reason, unless `KILN_REQUIRE_BROWSER=1`, where it fails. The
 * checkpoint tests before it (the bytes a page saves, and `kiln sample` reading the tokenizer
 * inside them) need no browser.
 */
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdamW, BPETokenizer, GPT, Generator, backends, loadCheckpoint, saveCheckpoint, tensor, type GPTConfig } from '../src/index.js';
import { checkpointBytes } from '../src/io/checkpoint_bytes.js';
import { loadTrained } from '../src/cli/sample.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PAGE_DIR = join(ROOT, 'examples/browser');
const CHROMIUM = process.env.KILN_CHROMIUM || '/usr/bin/chromium';
const REQUIRE = process.env.KILN_REQUIRE_BROWSER === '1';
const STEPS = 30;
const SCREENSHOT_COPY = '/tmp/kiln-browser.png';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-browser-'));
const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;

// A tiny GPT with one AdamW step taken, so the optimizer has state to save.
async function tinyRun(vocabSize: number): Promise<{ model: GPT; optimizer: AdamW; config: GPTConfig }> {
  const config: GPTConfig = { vocabSize, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 16 };
  const model = new GPT(config, { backend: 'ref', generator: new Generator(3) });
  const optimizer = new AdamW(model.parameters(), { lr: 1e-2 });
  const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 7) % vocabSize);
  const x = tensor(ids, [2, 8], { backend: 'ref', dtype: 'i32' });
  const { loss } = model.forward(x, x);
  loss!.backward();
  optimizer.step();
  await loss!.item();
  loss!.dispose();
  x.dispose();
  return { model, optimizer, config };
}

describe('checkpoints saved from a page', () => {
  it('checkpointBytes gives the bytes saveCheckpoint writes, and loadCheckpoint reads them back', async () => {
    const { model, optimizer } = await tinyRun(40);
    const extra = { user: { note: 'from a page' } };
    const file = await saveCheckpoint(join(tmp, 'saved.safetensors'), { model, optimizer, step: 7, extra });
    const bytes = await checkpointBytes({ model, optimizer, step: 7, extra });
    expect(Buffer.from(bytes).equals(readFileSync(file))).toBe(true);
    const fromPage = join(tmp, 'page.safetensors');
    writeFileSync(fromPage, bytes);
    const other = new GPT(model.config, { backend: 'ref', generator: new Generator(4) });
    const loaded = await loadCheckpoint(fromPage, { model: other, backend: 'ref' });
    expect(loaded).toMatchObject({ step: 7, extra });
    const want = model.stateDict();
    for (const [name, t] of Object.entries(other.stateDict())) expect(Array.from(await t.data()), name).toEqual(Array.from(await want[name]!.data()));
    await expect(checkpointBytes({ model, step: -1 })).rejects.toThrow(/^checkpointBytes: step must be a non-negative integer, got -1/);
    await expect(checkpointBytes({ model, step: 1, extra: { n: 1n } })).rejects.toThrow(/^checkpointBytes: extra, scheduler or generator state is not JSON-serialisable/);
  });

  it('kiln sample reads the tokenizer inside a checkpoint when none is beside it, and prefers tokenizer.json', async () => {
    const tok = BPETokenizer.train('to be or not to be, that is the question; '.repeat(20), { vocabSize: 270, specialTokens: ['<|endoftext|>'] });
    const { model, config } = await tinyRun(tok.vocabSize);
    const user = { kind: 'kiln-train', model: config, config: { name: 'test' }, tokenizer: tok.toJSON() };
    const dir = join(tmp, 'embedded');
    mkdirSync(dir);
    const file = join(dir, 'model.safetensors');
    writeFileSync(file, await checkpointBytes({ model, step: 1, extra: { user } }));
    const trained = await loadTrained(file, 'ref');
    expect(trained.tokenizer.vocabSize).toBe(tok.vocabSize);
    expect(trained.tokenizer.encode('to be or not')).toEqual(tok.encode('to be or not'));
    trained.model.dispose();
    // a tokenizer.json beside the checkpoint still wins (here a different one, which it names)
    const wrong = BPETokenizer.train('abcabcabc', { vocabSize: 257 });
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(wrong.toJSON()));
    await expect(loadTrained(file, 'ref')).rejects.toThrow(`--ckpt: ${join(dir, 'tokenizer.json')} has 257 tokens, the model ${tok.vocabSize}`);
    // a broken embedded tokenizer is named
    const bad = join(tmp, 'bad.safetensors');
    writeFileSync(bad, await checkpointBytes({ model, step: 1, extra: { user: { ...user, tokenizer: { type: 'sentencepiece' } } } }));
    await expect(loadTrained(bad, 'ref')).rejects.toThrow(/^--ckpt: no tokenizer\.json beside the checkpoint in .*, and the tokenizer embedded in '.*bad\.safetensors' cannot be read: loadTokenizer: unknown tokenizer type "sentencepiece"/);
    // and with neither, the error is kiln train's
    const none = join(tmp, 'none.safetensors');
    const { tokenizer: _, ...noTokenizer } = user;
    writeFileSync(none, await checkpointBytes({ model, step: 1, extra: { user: noTokenizer } }));
    await expect(loadTrained(none, 'ref')).rejects.toThrow(/^--ckpt: no tokenizer\.json beside the checkpoint in .* \(kiln train writes one in its output folder; a run trained on llm\.c token files has none: kiln eval --data FILE\.bin scores it on a token file\)$/);
    model.dispose();
  });
});

// ---- the page in Chromium ---------------------------------------------------------------------------

/** What the test uses of playwright-core (imported by name at run time: it may be absent). */
interface Playwright {
  chromium: { launch(o: { executablePath: string; args: string[]; headless: boolean; ignoreDefaultArgs: string[] }): Promise<Browser> };
}
interface Browser {
  version(): string;
  newContext(o: { acceptDownloads: boolean; viewport: { width: number; height: number } }): Promise<{ newPage(): Promise<Page> }>;
  close(): Promise<void>;
}
interface Page {
  on(event: 'console', fn: (m: { type(): string; text(): string }) => void): void;
  on(event: 'pageerror', fn: (e: Error) => void): void;
  goto(url: string): Promise<unknown>;
  waitForFunction(fn: string, arg: unknown, o: { timeout: number; polling: number }): Promise<unknown>;
  evaluate<T>(fn: string): Promise<T>;
  screenshot(o: { path: string; fullPage: boolean }): Promise<unknown>;
  waitForEvent(event: 'download', o: { timeout: number }): Promise<{ saveAs(path: string): Promise<void>; suggestedFilename(): string }>;
  click(selector: string): Promise<void>;
}
interface DemoState {
  status: string;
  backend: string;
  adapter: string;
  losses: number[];
  step: number;
  tokensPerSecond: number;
  sample: string;
  error: string | null;
}

// Why the browser test cannot run here, or null.
async function loadPlaywright(): Promise<{ pw: Playwright | null; reason: string | null }> {
  if (!existsSync(CHROMIUM)) return { pw: null, reason: `no Chromium at ${CHROMIUM} (apt-get install chromium, or set KILN_CHROMIUM)` };
  const name = 'playwright-core'; // not a literal: the type checker must not need it
  try {
    return { pw: (await import(name)) as Playwright, reason: null };
  } catch (e) {
    return { pw: null, reason: `playwright-core cannot be imported (npm install --no-save playwright-core@1): ${(e as Error).message}` };
  }
}

const { pw, reason } = await loadPlaywright();
if (reason) console.warn(`test/browser.test.ts: the browser test is ${REQUIRE ? 'required (KILN_REQUIRE_BROWSER=1) and fails' : 'skipped'}: ${reason}`);

const CONTENT_TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.map': 'application/json', '.txt': 'text/plain; charset=utf-8' };

// A static server of `dir` on 127.0.0.1 (a secure context, as WebGPU needs), on a free port.
async function serve(dir: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = normalize(join(dir, path === '/' ? 'index.html' : path));
    if (!file.startsWith(dir + sep) || !existsSync(file)) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('the example page in Chromium', () => {
  if (reason && REQUIRE) {
    it('has Chromium and playwright-core (KILN_REQUIRE_BROWSER=1)', () => {
      throw new Error(reason);
    });
    return;
  }

  let browser: Browser | null = null;
  let server: Server | null = null;
  beforeAll(() => {
    if (reason) return;
    // the build's own checks: no Node built-in in either bundle, the core within its budget
    process.stdout.write(execFileSync(process.execPath, [join(ROOT, 'scripts/build-browser.mjs')], { cwd: ROOT, encoding: 'utf8' }));
  });
  afterAll(async () => {
    await browser?.close();
    server?.close();
  });

  it.skipIf(reason !== null)(`trains ${STEPS} steps on WebGPU, the loss falls, and kiln sample reads the saved weights`, async () => {
    const served = await serve(PAGE_DIR);
    server = served.server;
    browser = await pw!.chromium.launch({
      executablePath: CHROMIUM,
      // new headless mode has WebGPU; without a GPU Chromium's adapter is SwiftShader (Vulkan on the CPU)
      args: ['--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--enable-unsafe-webgpu'],
      headless: true,
      ignoreDefaultArgs: ['--headless'],
    });
    const page = await (await browser.newContext({ acceptDownloads: true, viewport: { width: 900, height: 1000 } })).newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));

    const t0 = performance.now();
    await page.goto(`${served.url}/index.html?steps=${STEPS}&autostart=1&sampleEvery=${STEPS}&sampleTokens=40`);
    await page.waitForFunction("['done', 'error', 'stopped'].includes(window.kilnDemo?.status)", null, { timeout: 150_000, polling: 250 });
    const seconds = (performance.now() - t0) / 1000;
    const state = await page.evaluate<DemoState>('window.kilnDemo');
    const shot = join(tmp, 'kiln-browser.png');
    await page.screenshot({ path: shot, fullPage: true });
    copyFileSync(shot, SCREENSHOT_COPY);
    const { losses } = state;
    const [first, last] = [mean(losses.slice(0, 5)), mean(losses.slice(-5))];
    console.log(
      `browser: Chromium ${browser.version()}, backend ${state.backend} (${state.adapter}), ${state.step} steps in ${seconds.toFixed(1)} s with the page load and one sample, ` +
        `${Math.round(state.tokensPerSecond)} tokens/s; loss ${losses[0]?.toFixed(3)} → ${losses.at(-1)?.toFixed(3)} (mean of the first 5 ${first.toFixed(3)}, of the last 5 ${last.toFixed(3)}); ` +
        `sample ${JSON.stringify(state.sample.slice(0, 80))}; screenshot ${shot} (copy: ${SCREENSHOT_COPY})`,
    );
    expect(state.error).toBeNull();
    expect(state.status).toBe('done');
    expect(state.backend).toBe('webgpu');
    expect(state.adapter).not.toBe('');
    expect(losses).toHaveLength(STEPS);
    expect(losses.every(Number.isFinite)).toBe(true);
    // from ln(vocab) ≈ 6.2 the first steps learn the unigram statistics: well over 0.5 nats in 30 steps
    expect(first - last).toBeGreaterThan(0.5);
    expect(state.tokensPerSecond).toBeGreaterThan(0);
    expect(state.sample.length).toBeGreaterThan(0);

    // the save button downloads a checkpoint with the tokenizer inside; the CLI samples from it
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.click('#save')]);
    const dir = join(tmp, 'download');
    mkdirSync(dir);
    const file = join(dir, download.suggestedFilename());
    await download.saveAs(file);
    expect(existsSync(join(dir, 'tokenizer.json'))).toBe(false);
    const cpu = backends().find((b) => b.name === 'cpu');
    const backend = cpu?.available ? 'cpu' : 'ref';
    if (backend !== 'cpu') console.warn(`browser: kiln sample runs on ref: the cpu backend is not available here (${cpu?.reason ?? 'not registered'})`);
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, [join(ROOT, 'bin/kiln.mjs'), 'sample', '--ckpt', file, '--tokens', '10', '--backend', backend], { cwd: tmp }, (_, stdout, stderr) =>
        resolve({ code: child.exitCode, stdout, stderr }),
      );
    });
    console.log(`browser: kiln sample --ckpt ${file} --tokens 10 --backend ${backend}: exit ${run.code}; ${run.stderr.trim()}; ${JSON.stringify(run.stdout)}`);
    expect(run.stderr).toContain(`sampled 10 tokens from ${file} (step ${STEPS})`);
    expect(run.code).toBe(0);
    expect(run.stdout.trim().length).toBeGreaterThan(0);
    expect(errors).toEqual([]);
  });

  it.skipIf(reason !== null)('without a WebGPU adapter, trains on ref and says so', async () => {
    const served = server ? null : await serve(PAGE_DIR);
    if (served) server = served.server;
    const url = served?.url ?? `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
    const noGpu = await pw!.chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-features=WebGPU'],
      headless: true,
      ignoreDefaultArgs: ['--headless'],
    });
    try {
      const page = await (await noGpu.newContext({ acceptDownloads: false, viewport: { width: 900, height: 1000 } })).newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
      await page.goto(`${url}/index.html?steps=3&autostart=1&sampleEvery=3&sampleTokens=5`);
      await page.waitForFunction("['done', 'error', 'stopped'].includes(window.kilnDemo?.status)", null, { timeout: 60_000, polling: 100 });
      const state = await page.evaluate<DemoState>('window.kilnDemo');
      console.log(`browser without WebGPU: backend ${state.backend} (${state.adapter}), ${Math.round(state.tokensPerSecond)} tokens/s, losses ${state.losses.map((l) => l.toFixed(3)).join(' ')}`);
      expect(state).toMatchObject({ status: 'done', backend: 'ref', error: null, step: 3 });
      expect(state.adapter).toMatch(/^no WebGPU: .*; training on the pure-TypeScript reference backend$/);
      expect(await page.evaluate<string>("document.getElementById('backend').textContent")).toContain('ref — no WebGPU');
      expect(errors).toEqual([]);
    } finally {
      await noGpu.close();
    }
  });
});
