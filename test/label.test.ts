/**
 * The labelling server over HTTP, in this process on a free port: the page shows both
 * completions escaped, a choice appends one {prompt, chosen, rejected} line that
 * parsePreferencePairs reads, skip writes nothing, a form without the server's token is refused,
 * a restart skips what is already labelled; and `kiln label --pairs` end to end.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parsePreferencePairs } from '../src/align/data.js';
import { parseLabelItems, startLabelServer } from '../src/cli/label.js';
import { main } from '../src/cli/main.js';

const root = mkdtempSync(join(tmpdir(), 'kiln-label-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const items = [
  { prompt: 'Say hi <politely>', a: 'Hello & welcome.', b: 'Go away.' },
  { prompt: 'Count', a: '1 2 3', b: 'three two one' },
  { prompt: 'Same', a: 'x', b: 'x' },
];

async function form(url: string): Promise<{ html: string; token: string; index: number }> {
  const html = await (await fetch(url)).text();
  return { html, token: /name="token" value="([0-9a-f]+)"/.exec(html)?.[1] ?? '', index: Number(/name="index" value="(\d+)"/.exec(html)?.[1] ?? -1) };
}
const post = (url: string, fields: Record<string, string>): Promise<Response> =>
  fetch(new URL('/choose', url), { method: 'POST', body: new URLSearchParams(fields), redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' } });

describe('startLabelServer', () => {
  it('serves the pair, appends each choice as a preference pair, refuses forged forms, resumes', async () => {
    const out = join(root, 'prefs.jsonl');
    const server = await startLabelServer({ items, out, port: 0 });
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/`);
    let f = await form(server.url);
    expect(f.index).toBe(0);
    expect(f.html).toContain('<pre id="a">Hello &amp; welcome.</pre>');
    expect(f.html).toContain('Say hi &lt;politely&gt;');
    expect(f.html).not.toMatch(/<script|https?:/);
    // a form without this server's token (another site posting to localhost) is refused
    expect((await post(server.url, { index: '0', choice: 'a', token: 'f'.repeat(32) })).status).toBe(403);
    expect((await post(server.url, { index: '0', choice: 'maybe', token: f.token })).status).toBe(400);
    const r = await post(server.url, { index: '0', choice: 'b', token: f.token });
    expect(r.status).toBe(303);
    expect(readFileSync(out, 'utf8')).toBe(`${JSON.stringify({ prompt: items[0]!.prompt, chosen: 'Go away.', rejected: 'Hello & welcome.' })}\n`);
    expect((await post(server.url, { index: '0', choice: 'a', token: f.token })).status).toBe(409); // already labelled
    f = await form(server.url);
    expect(f.index).toBe(1);
    expect((await post(server.url, { index: '1', choice: 'skip', token: f.token })).status).toBe(303);
    f = await form(server.url);
    expect(f.index).toBe(2);
    expect(f.html).toMatch(/value="a" disabled/); // the same text twice: only skip
    expect((await post(server.url, { index: '2', choice: 'a', token: f.token })).status).toBe(400);
    expect((await post(server.url, { index: '2', choice: 'skip', token: f.token })).status).toBe(303);
    expect(await server.finished).toEqual({ labelled: 1, skipped: 2 });
    expect(await (await fetch(new URL('/state', server.url))).json()).toEqual({ labelled: 1, skipped: 2, total: 3, next: -1 });
    await server.close();
    // the reward model's reader takes the file
    expect(parsePreferencePairs(readFileSync(out, 'utf8'), out)).toEqual([{ prompt: 'Say hi <politely>', chosen: 'Go away.', rejected: 'Hello & welcome.' }]);
    // a new session shows only what is not in the file yet
    const again = await startLabelServer({ items, out });
    expect((await form(again.url)).index).toBe(1);
    await again.close();
  });

  it('kiln label --pairs serves until every item is done, then exits 0', async () => {
    const pairs = join(root, 'in.jsonl');
    writeFileSync(pairs, `${JSON.stringify({ prompt: 'p1', a: 'good', b: 'bad' })}\n\n${JSON.stringify({ prompt: 'p2', completions: ['meh', 'fine'] })}\n`);
    expect(parseLabelItems(readFileSync(pairs, 'utf8'), pairs)).toHaveLength(2);
    const out = join(root, 'sub', 'out.jsonl');
    let stdout = '';
    let stderr = '';
    let announce!: (url: string) => void;
    const url = new Promise<string>((r) => (announce = r));
    const io = {
      stdout: { write: (x: string) => (stdout += x) },
      stderr: {
        write: (x: string) => {
          stderr += x;
          const m = /open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(x);
          if (m) announce(m[1]!);
        },
      },
    };
    const run = main(['label', '--pairs', pairs, '--out', out, '--port', '0'], io);
    const u = await url;
    let f = await form(u);
    expect((await post(u, { index: String(f.index), choice: 'a', token: f.token })).status).toBe(303);
    f = await form(u);
    expect((await post(u, { index: String(f.index), choice: 'b', token: f.token })).status).toBe(303);
    expect(await run, stderr).toBe(0);
    expect(stdout).toContain('kiln label: done: 2 labelled, 0 skipped');
    expect(parsePreferencePairs(readFileSync(out, 'utf8'), out)).toEqual([
      { prompt: 'p1', chosen: 'good', rejected: 'bad' },
      { prompt: 'p2', chosen: 'fine', rejected: 'meh' },
    ]);
    // usage errors
    stderr = '';
    expect(await main(['label', '--out', out], io)).toBe(2);
    expect(await main(['label', '--pairs', pairs, '--ckpt', root, '--out', out], io)).toBe(2);
    writeFileSync(pairs, '{"prompt": "p", "a": 5, "b": "x"}\n');
    expect(await main(['label', '--pairs', pairs, '--out', out], io)).toBe(1);
    expect(stderr).toContain(`${pairs}:1: expected two completions as strings`);
  });
});
