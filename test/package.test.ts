/**
 * The npm package as a user gets it: scripts/release.mjs builds dist/, the prebuilt addon and the
 * tarball; its file list holds what a user and a source build need and nothing of the repository's
 * tests, fixtures or benches; installed into an empty folder on a machine with no cmake (PATH holds
 * only node, npm and sh), it takes the prebuilt addon, runs the README's example on the cpu
 * backend, and its `kiln` command answers.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'kiln-package-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? root, env: opts.env ?? process.env, encoding: 'utf8', timeout: opts.timeout ?? 600_000, maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${(r.stdout ?? '').slice(-3000)}\n${(r.stderr ?? '').slice(-3000)}`);
  return `${r.stdout}\n${r.stderr}`;
}

describe('the npm package', () => {
  let tarball = '';
  let files: string[] = [];

  it('packs dist (ESM, CJS, types), the native sources and build script, and the prebuilt addon; no tests, fixtures or benches', () => {
    const out = sh(process.execPath, [join(root, 'scripts', 'release.mjs'), '--out', work]);
    tarball = out.trim().split('\n').filter((l) => l.endsWith('.tgz')).at(-1)!;
    console.log(`[package] ${out.split('\n').find((l) => l.startsWith('release: kilnjs')) ?? tarball}`);
    files = sh('tar', ['-tzf', tarball]).split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
    for (const f of [
      'package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'bin/kiln.mjs',
      'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'dist/core.js', 'dist/core.d.ts', 'dist/cli/main.js', 'dist/browser/kiln.js',
      'native/addon.cc', 'native/mpi/mpi_addon.cc', 'kernels/ops.gen.h', 'CMakeLists.txt', 'scripts/build-native.mjs', 'prebuilds/linux-x64/kiln.node',
    ])
      expect(files, f).toContain(f);
    expect(files.filter((f) => /^(test|bench|src|examples|docs|coverage|build|\.ci)\//.test(f) || /fixtures|\.test\.|__snapshots__/.test(f))).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string };
    expect(pkg.name).toBe('kilnjs');
  }, 900_000);

  it('installs where there is no cmake, loads its prebuilt addon, and runs the README example', () => {
    expect(tarball).not.toBe('');
    // PATH: node, npm and sh only (no cmake, no compiler, no mpicc)
    const bin = join(work, 'bin');
    sh('mkdir', ['-p', bin]);
    symlinkSync(process.execPath, join(bin, 'node'));
    const npmCli = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
    writeFileSync(join(bin, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${npmCli}" "$@"\n`, { mode: 0o755 });
    symlinkSync('/bin/sh', join(bin, 'sh'));
    const env = { HOME: process.env.HOME ?? work, PATH: bin, npm_config_cache: process.env.npm_config_cache ?? join(process.env.HOME ?? work, '.npm') };
    expect(spawnSync('sh', ['-c', 'command -v cmake'], { env }).status).not.toBe(0);
    const app = join(work, 'app');
    sh('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    const install = sh(join(bin, 'npm'), ['install', tarball, '--no-audit', '--no-fund', '--foreground-scripts'], { cwd: app, env });
    expect(install).toMatch(/using the prebuilt native addon/);

    // the README's example, as a user writes it (TypeScript stripped), on the default backend
    const example = readFileSync(join(root, 'examples', 'quickstart.ts'), 'utf8');
    expect(example).toMatch(/from 'kilnjs'/);
    writeFileSync(join(app, 'quickstart.mjs'), transformSync(example, { loader: 'ts', format: 'esm' }).code);
    const run = sh(process.execPath, ['quickstart.mjs'], { cwd: app, env });
    const losses = run.split('\n').filter((l) => l.startsWith('step')).map((l) => Number(l.split('loss ')[1]));
    expect(losses.length).toBe(4);
    expect(losses[3]!).toBeLessThan(losses[0]! / 20);
    const backend = sh(process.execPath, ['-e', "import('kilnjs').then((k) => console.log('backend', k.defaultBackendName(), k.nativeCapabilities().isa))"], { cwd: app, env });
    expect(backend).toMatch(/backend cpu \w+/);
    const help = sh(join(app, 'node_modules', '.bin', 'kiln'), ['--help'], { cwd: app, env });
    expect(help).toMatch(/train/);
    console.log(`[package] installed without cmake: ${backend.trim().split('\n')[0]}; README example losses ${losses.map((l) => l.toFixed(3)).join(' → ')}`);
  }, 900_000);
});
