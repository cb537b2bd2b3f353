#!/usr/bin/env node
// Builds kiln's native addon with cmake-js (run by `npm install`). It never fails the install:
// without cmake or a C++ compiler, or if the build fails, it prints one warning, records why in
// <out>/kiln-status.json, and kiln runs on the reference backend (backends() says why).
//
//   node scripts/build-native.mjs [--force] [--sanitize]
//   KILN_SKIP_NATIVE=1 skips the build; KILN_NO_PREBUILT=1 ignores a shipped prebuilt addon.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const sanitize = args.has('--sanitize');
// KILN_NATIVE_BUILD names another output folder (the addon loader reads the same variable)
const out = resolve(root, process.env.KILN_NATIVE_BUILD ?? (sanitize ? 'build-sanitize' : 'build'));
const statusFile = join(out, 'kiln-status.json');
const log = (msg) => console.log(`kiln: ${msg}`);

function status(ok, reason, extra = {}) {
  mkdirSync(out, { recursive: true });
  writeFileSync(statusFile, JSON.stringify({ ok, reason, ...extra, date: new Date().toISOString() }, null, 2) + '\n');
}

function skip(reason) {
  status(false, reason);
  console.warn(`kiln: WARNING: the native addon was not built (${reason}); kiln will run on the pure-TypeScript 'ref' backend.`);
  process.exit(0);
}

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

// newest modification time under the native sources, to skip a build that is up to date
function newest(dir) {
  let t = 0;
  if (!existsSync(dir)) return t;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newest(p) : s.mtimeMs);
  }
  return t;
}

if (process.env.KILN_SKIP_NATIVE === '1') skip('KILN_SKIP_NATIVE=1');

// A published package ships a prebuilt addon for Linux x64 (scripts/release.mjs; Node-API 8, so one
// binary serves every Node >= 20): when it loads here, nothing is compiled, unless --force, or MPI
// is installed and a compiler is at hand (the MPI addon links this machine's MPI, so it is built
// from source, and the CPU addon with it).
const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'kiln.node');
if (!args.has('--force') && !sanitize && process.env.KILN_NO_PREBUILT !== '1' && existsSync(prebuilt)) {
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(prebuilt)}).capabilities()`], { encoding: 'utf8' });
  if (probe.status !== 0) log(`the prebuilt addon does not load here (${(probe.stderr || '').trim().split('\n').slice(-1)[0]}); building from source`);
  else if (!(which('mpicc') && which('cmake'))) {
    status(true, 'prebuilt', { file: prebuilt });
    log(`using the prebuilt native addon (${prebuilt})`);
    process.exit(0);
  } else log('MPI is installed: building the addons from source (the MPI addon links this machine\'s MPI)');
}
if (!which('cmake')) skip('cmake was not found on PATH');
const cxx = process.env.CXX || which('c++') || which('g++') || which('clang++');
if (!cxx) skip('no C++ compiler (c++, g++ or clang++) was found on PATH');

const addon = join(out, 'Release', 'kiln.node');
const sources = Math.max(newest(join(root, 'native')), newest(join(root, 'kernels')), statSync(join(root, 'CMakeLists.txt')).mtimeMs);
if (!args.has('--force') && existsSync(addon) && statSync(addon).mtimeMs > sources) {
  log(`native addon is up to date (${addon})`);
  process.exit(0);
}

// KILN_NO_CUDA=1: a CPU-only build even where nvcc is found (quicker; no cuda backend)
const nvcc = process.env.KILN_NO_CUDA === '1' ? null : which('nvcc') || (existsSync('/usr/local/cuda/bin/nvcc') ? '/usr/local/cuda/bin/nvcc' : null);
const require = createRequire(import.meta.url);
let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  skip('the cmake-js package is not installed');
}

const cmakeArgs = [
  cmakeJs,
  'build',
  '--directory', root,
  '--out', out,
  '--parallel', String(Math.max(2, (await import('node:os')).cpus().length)),
  '--log-level', 'warn',
  // the sanitizer build is for the CPU kernels; CUDA stays out of it
  nvcc && !sanitize ? `--CDCMAKE_CUDA_COMPILER=${nvcc}` : '--CDKILN_CUDA=OFF',
];
if (sanitize) cmakeArgs.push('--CDKILN_SANITIZE=ON', '--config', 'Release');
log(`building the native addon (${sanitize ? 'AddressSanitizer + UBSan, ' : ''}CUDA ${nvcc ? `with ${nvcc}` : process.env.KILN_NO_CUDA === '1' ? 'off (KILN_NO_CUDA=1), CPU only' : 'not found, CPU only'}) ...`);
const started = Date.now();
// a full log can run to megabytes of compiler notes: room for it all (the default 1 MB kills the build)
const r = spawnSync(process.execPath, cmakeArgs, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
const logFile = join(out, 'build.log');
mkdirSync(out, { recursive: true });
writeFileSync(logFile, `${r.stdout ?? ''}\n${r.stderr ?? ''}`);
if (r.status !== 0 || !existsSync(addon)) {
  const tail = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
  console.warn(tail);
  skip(`the build failed (${r.error ? r.error.message : `exit ${r.status ?? r.signal}`}); see ${logFile}`);
}
status(true, 'built', { cuda: nvcc ? 'compiled' : 'not compiled (no nvcc)', seconds: (Date.now() - started) / 1000, sanitize });
log(`native addon built in ${((Date.now() - started) / 1000).toFixed(1)} s: ${addon}`);
