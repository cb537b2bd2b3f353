/**
 * The suite's own switches: KILN_REQUIRE_BACKENDS makes a missing backend fail the run (CI sets
 * it, so a broken addon build cannot pass as a skipped suite).
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
