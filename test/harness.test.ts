/**
 * The suite's own switches: KILN_REQUIRE_BACKENDS makes a missing backend fail the run (CI sets
 * it, so a broken addon build cannot pass as a skipped suite); KILN_TEST_BACKENDS narrows the
 * parameterised suite to the backends named.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

it('KILN_REQUIRE_BACKENDS fails (does not skip) a suite when a named backend is missing', () => {
  const run = spawnSync(process.execPath, [fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url)), 'run', 'test/metrics_oracle.test.ts'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, KILN_REQUIRE_BACKENDS: 'async-ref,nonesuch' },
  });
  expect(run.status).not.toBe(0);
  expect(run.stdout + run.stderr).toContain("KILN_REQUIRE_BACKENDS names 'nonesuch', which is not registered");
}, 120_000);

it('KILN_TEST_BACKENDS runs the parameterised suite on the named backends only, saying why the others are skipped', () => {
  const run = spawnSync(process.execPath, [fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url)), 'run', '--reporter=verbose', 'test/metrics_oracle.test.ts'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, KILN_REQUIRE_BACKENDS: '', KILN_TEST_BACKENDS: 'async-ref' },
  });
  const text = run.stdout + run.stderr;
  expect(run.status).toBe(0);
  expect(text).toContain("backend 'ref' skipped: not in KILN_TEST_BACKENDS=async-ref");
  expect(text).toMatch(/✓[^\n]*\[async-ref\]/);
  expect(text).toMatch(/↓[^\n]*\[ref: unavailable, not in KILN_TEST_BACKENDS=async-ref\]/);
  expect(text).not.toMatch(/✓[^\n]*\[(ref|cpu|webgpu)\]/);
}, 120_000);
