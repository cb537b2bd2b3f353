#!/usr/bin/env node
// Makes the npm package: builds dist/ (tsup: ESM, CJS, types; the browser bundle), makes sure the native addon is
// built and current (cmake), copies it to prebuilds/<platform>-<arch>/kiln.node (the binary the
// package ships, loaded before any source build; Node-API 8, so one binary serves every
// Node >= 20), and runs `npm pack` into --out (default: the repository folder). Prints the
// tarball's path on its last line.
//
//   node scripts/release.mjs [--out DIR] [--skip-dist]
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const outAt = argv.indexOf('--out');
const out = resolve(outAt >= 0 ? argv[outAt + 1] : root);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`release: ${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})`);
  return r.stdout;
}

if (!argv.includes('--skip-dist')) {
  run(process.execPath, [join(root, 'node_modules', 'tsup', 'dist', 'cli-default.js')]);
  run(process.execPath, [join(root, 'scripts', 'build-browser.mjs')]); // the one-file ES module for browsers (after tsup, whose clean empties dist/)
}
for (const f of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/core.js', 'dist/cli/main.js', 'dist/browser/kiln.js'])
  if (!existsSync(join(root, f))) throw new Error(`release: ${f} is missing after the build`);

// the addon, current with the sources (the install script rebuilds only what changed)
run(process.execPath, [join(root, 'scripts', 'build-native.mjs')], { env: { ...process.env, KILN_NATIVE_BUILD: 'build' } });
const addon = join(root, 'build', 'Release', 'kiln.node');
if (!existsSync(addon)) throw new Error(`release: ${addon} was not built (see build/build.log); the package needs its prebuilt addon`);
const target = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(target, { recursive: true });
copyFileSync(addon, join(target, 'kiln.node'));

mkdirSync(out, { recursive: true });
// --ignore-scripts: the package's own install hook is not for packing
const packed = run('npm', ['pack', '--ignore-scripts', '--pack-destination', out, '--json']);
const [info] = JSON.parse(packed);
console.log(`release: ${info.name}@${info.version}: ${info.entryCount} files, ${(info.size / 2 ** 20).toFixed(2)} MiB packed, ${(info.unpackedSize / 2 ** 20).toFixed(2)} MiB unpacked`);
console.log(join(out, info.filename));
