import { readFileSync } from 'node:fs';
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
