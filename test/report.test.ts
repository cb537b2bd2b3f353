/**
 * The evaluation report: evalReport's page is self-contained (no address but the SVG namespace,
 * no script), its tags close in order, text is escaped, tables hold the numbers; and
 * `kiln eval --report` writes one for a tiny kiln train run with its loss curves from the
 * checkpoint's history, the eval and metrics.json tables, and samples.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { evalReport, escapeHtml, formatValue } from '../src/cli/report.js';
import { main } from '../src/cli/main.js';

const root = mkdtempSync(join(tmpdir(), 'kiln-report-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Tags close in order (void elements aside), and no stray '<' or '&' outside tags and entities. */
function checkHtml(html: string): void {
  const VOID = new Set(['meta', 'input', 'br', 'hr', 'img', 'link']);
  const stack: string[] = [];
  const body = html.replace(/^<!DOCTYPE html>\n/, '').replace(/<style>[\s\S]*?<\/style>/, '<style></style>');
  for (const m of body.matchAll(/<(\/?)([a-zA-Z][\w-]*)((?:\s+[\w:-]+(?:="[^"<]*")?)*)\s*(\/?)>/g)) {
    const [, close, name, , self] = m;
    if (self || VOID.has(name!.toLowerCase())) continue;
    if (close) expect(stack.pop(), `closing </${name}>`).toBe(name);
    else stack.push(name!);
  }
  expect(stack).toEqual([]);
  expect(body.replace(/<[^>]*>/g, '').match(/<|&(?!(amp|lt|gt|quot|apos|#39);)/)).toBeNull();
  // offline: no script, no stylesheet or font from elsewhere, no address but the SVG namespace
  expect(html).not.toMatch(/<script|<link|@import|url\(/i);
  expect(html.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, '')).not.toMatch(/https?:/);
}

describe('evalReport', () => {
  it('writes a self-contained page: the loss chart, tables with the numbers, escaped samples', () => {
    const html = evalReport({
      title: 'run <a> & "b"',
      subtitle: ['step 30'],
      train: Array.from({ length: 30 }, (_, i) => ({ step: i + 1, loss: 5 - i / 10 })),
      val: [{ step: 10, valLoss: 4.5 }, { step: 30, valLoss: 2.25 }],
      baseline: { value: 3, label: 'unigram <entropy>' },
      tables: [{ title: 'Evaluation', rows: [['perplexity', 12.3456789], ['tokens', 321], ['note', '<b>bold</b>'], ['missing', null]] }],
      samples: [{ label: 'seed 0', prompt: 'Once <', text: '<script>alert("x")</script> & more' }],
    });
    checkHtml(html);
    expect(html).toContain('<title>run &lt;a&gt; &amp; &quot;b&quot;</title>');
    expect(html.match(/<polyline /g)).toHaveLength(3); // raw, smoothed, validation
    expect(html).toContain('<td>perplexity</td><td class="num">12.3457</td>');
    expect(html).toContain('<td>tokens</td><td class="num">321</td>');
    expect(html).toContain('<td>note</td><td>&lt;b&gt;bold&lt;/b&gt;</td>');
    expect(html).toContain('<td class="num">30</td><td class="num">2.25</td><td class="num">9.48774</td>');
    expect(html).toContain('<pre><span class="prompt">Once &lt;</span>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more</pre>');
    expect(html).toContain('unigram &lt;entropy&gt;');
    expect(escapeHtml(`<'&">`)).toBe('&lt;&#39;&amp;&quot;&gt;');
    expect([formatValue(1e-7), formatValue(2), formatValue(null), formatValue(true)]).toEqual(['1.0000e-7', '2', '—', 'true']);
    expect(() => evalReport({ title: 'x', train: null } as never)).toThrow(/^evalReport: train must be an array, got null/);
  });
});

describe('kiln eval --report', () => {
  it('writes the report of a tiny run: history from the checkpoint, both tables, samples', async () => {
    const corpus = join(root, 'corpus.txt');
    writeFileSync(corpus, `${Array.from({ length: 30 }, (_, i) => `the cat ${i % 3 ? 'sees' : 'likes'} the red house & a "dog" <finds> an open door ${i}.`).join('\n\n')}\n`);
    const out = join(root, 'run');
    let stdout = '';
    let stderr = '';
    const io = { stdout: { write: (x: string) => (stdout += x) }, stderr: { write: (x: string) => (stderr += x) } };
    expect(await main(['train', '--data', corpus, '--config', 'micro', '--backend', 'ref', '--steps', '20', '--eval-every', '10', '--sample-tokens', '8', '--out', out], io), stderr).toBe(0);
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { perplexity: number; sample: string };
    stdout = '';
    const file = join(root, 'reports', 'r.html');
    expect(await main(['eval', '--ckpt', out, '--data', corpus, '--backend', 'ref', '--report', file, '--json'], io), stderr).toBe(0);
    const result = JSON.parse(stdout) as { perplexity: number; tokens: number };
    expect(existsSync(file)).toBe(true);
    const html = readFileSync(file, 'utf8');
    checkHtml(html);
    const polylines = [...html.matchAll(/<polyline [^>]*points="([^"]+)"/g)];
    expect(polylines).toHaveLength(3);
    expect(polylines[0]![1]!.split(' ').length).toBe(4); // one point per logged step (micro logs every 5)
    expect(polylines[2]![1]!.split(' ').length).toBe(2); // evaluations at steps 10 and 20
    expect(html).toContain(`<td>perplexity</td><td class="num">${formatValue(result.perplexity)}</td>`);
    expect(html).toContain(`<td>tokens</td><td class="num">${result.tokens}</td>`);
    expect(html).toContain(`<td>perplexity</td><td class="num">${formatValue(metrics.perplexity)}</td>`); // metrics.json's
    expect(html).toContain('<td>energy.method</td>');
    expect(html).toContain(`<pre>${escapeHtml(metrics.sample)}</pre>`);
    expect(html.match(/<h3>seed \d/g)).toHaveLength(2);
    expect(stderr).toContain(`report: ${file}`);
    // --report-samples without --report, and a --report under a file, are refused
    stderr = '';
    expect(await main(['eval', '--ckpt', out, '--data', corpus, '--report-samples', '1'], io)).toBe(2);
    expect(await main(['eval', '--ckpt', out, '--data', corpus, '--report', join(corpus, 'x.html')], io)).toBe(1);
    expect(stderr).toMatch(/kiln eval: --report-samples applies with --report FILE.*\nkiln eval: --report: cannot use '.*corpus.txt\/x.html': a parent is not a folder/);
  }, 120_000);
});
