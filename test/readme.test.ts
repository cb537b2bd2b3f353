import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test, vi } from 'vitest';

test('the README example is examples/quickstart.ts verbatim, and it trains', async () => {
  const example = readFileSync(new URL('../examples/quickstart.ts', import.meta.url), 'utf8');
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  expect(readme).toContain(example.trim());
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  await import('../examples/quickstart.js');
  spy.mockRestore();
  const losses = lines.filter((l) => l.startsWith('step')).map((l) => Number(l.split('loss ')[1]));
  expect(losses.length).toBe(4);
  expect(losses[3]!).toBeLessThan(losses[0]! / 20);
  // x, y and the three parameters (their grads are dropped every step)
  expect(lines.at(-1)).toBe('live tensors: 5');
});

test('the README GPT workflow is examples/gpt.ts verbatim, and it trains, saves, loads and samples', () => {
  const example = readFileSync(new URL('../examples/gpt.ts', import.meta.url), 'utf8');
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  expect(readme).toContain(example.trim());
  // run as a user would, in a folder of its own (it writes tiny-gpt.safetensors there)
  const dir = mkdtempSync(join(tmpdir(), 'kiln-readme-'));
  try {
    const index = fileURLToPath(new URL('../src/index.ts', import.meta.url));
    writeFileSync(join(dir, 'gpt.mts'), example.replace("from 'kilnjs'", `from ${JSON.stringify(index)}`));
    const tsx = fileURLToPath(new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url));
    const r = spawnSync(process.execPath, ['--import', tsx, 'gpt.mts'], { cwd: dir, encoding: 'utf8', env: { ...process.env, KILN_NUM_THREADS: '1' }, timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const losses = r.stdout.split('\n').filter((l) => l.startsWith('step')).map((l) => Number(l.split('loss ')[1]));
    expect(losses.length).toBe(3);
    expect(losses[2]!).toBeLessThan(losses[0]!);
    expect(existsSync(join(dir, 'tiny-gpt.safetensors'))).toBe(true);
    expect(r.stdout).toMatch(/^sample: the cat/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 150_000);
