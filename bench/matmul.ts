/**
 * kiln's `cpu` backend f32 matmul against OpenBLAS (through numpy, in a child `/usr/bin/python3`)
 * and against TensorFlow.js's WebAssembly backend (in a child node per thread count, since tfjs
 * fixes its thread count once per process), on square products at 1 and 2 threads. Prints
 * GFLOP/s (2·n³ / median time) of each and the ratios kiln/OpenBLAS and kiln/tfjs-wasm.
 *
 *     npm run bench -- matmul [sizes...] [--threads 1,2] [--reps N] [--warmup N] [--min-ms T]
 *                             [--rounds R] [--transb] [--no-numpy] [--no-wasm]
 *
 * Sizes default to 256 1024 2048. Under Node, tfjs-backend-wasm runs single-threaded (it reports no
 * multithread support there), so its 2-thread column is its 1-thread build; the table says so. kiln's result is checked against an f64 product on a sample of
 * entries first. Each engine is timed `--rounds` times (default 2), interleaved with the others,
 * and the faster of its medians is kept: the reference machine's second core is shared and noisy,
 * and interleaving spreads drifting load over all engines alike.
 *
 * The OpenBLAS baseline runs with OPENBLAS_NUM_THREADS = the thread count and with
 * OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed from that child's environment only, so OpenBLAS
 * picks its kernel and blocking for this CPU itself.
 *
 * With `--dtype bf16` (sizes default to 256 512 1024 2048): kiln bf16, kiln f32 and PyTorch's
 * `torch.matmul` on bf16 CPU tensors (a child `/usr/bin/python3`, torch.set_num_threads, the
 * same environment scrubbing), interleaved the same way; prints GFLOP/s and the ratios
 * kiln bf16 / kiln f32 and kiln bf16 / torch bf16.
 *
 *     npm run bench -- matmul --dtype bf16 [sizes...] [--threads 1,2] [--rounds R] ...
 * @module
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { matmul, nativeCapabilities, setNumThreads, getNumThreads, tensor, tidy, type Tensor } from '../src/index.js';
import { keepAlive, mdTable, median, numOpt, parseArgs, printMachineInfo, randomF32, time, type TimeOptions } from './util.js';

const USAGE = `npm run bench -- matmul [sizes...] [--threads 1,2] [--reps N] [--warmup N] [--min-ms T] [--rounds R]
                        [--transb] [--no-numpy] [--no-wasm]        f32: kiln vs OpenBLAS (numpy) and tfjs-wasm (sizes 256 1024 2048)
npm run bench -- matmul --dtype bf16 [sizes...] [--threads 1,2] [--rounds R] [--no-torch]
                                                                   bf16: kiln (AMX, vdpbf16ps, via f32) vs kiln f32 vs torch bf16 (256 512 1024 2048)`;

export const description = 'cpu backend f32 matmul vs OpenBLAS (numpy) and tfjs-wasm, 1 and 2 threads; --dtype bf16: kiln bf16 vs f32 vs PyTorch bf16 (GFLOP/s, ratios)';

const PYTHON = '/usr/bin/python3';
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** One engine's timing of one (size, threads) case: the median ms of its faster round. */
interface EngineResult {
  ms: number | null;
  /** Why there is no number (engine missing or failed). */
  reason?: string;
  /** What the engine reported about itself (version, threads actually used). */
  info?: string;
}

// ---- kiln ----------------------------------------------------------------------------------

/** The f64 oracle's entry (i, j) of a·b (or a·bᵀ) at a sample of entries: three rows, every (n/64)th column. */
function sampleProduct(a: Float32Array, b: Float32Array, n: number, transB: boolean, each: (i: number, j: number, s: number) => void): void {
  for (const i of [0, n >> 1, n - 1])
    for (let j = 0; j < n; j += Math.max(1, n >> 6)) {
      let s = 0;
      for (let p = 0; p < n; p++) s += a[i * n + p]! * (transB ? b[j * n + p]! : b[p * n + j]!);
      each(i, j, s);
    }
}

/** Check kiln's product against an f64 oracle on a sample of entries: the worst error. */
function checkKiln(a: Float32Array, b: Float32Array, out: ArrayLike<number>, n: number, transB: boolean): number {
  let worst = 0;
  sampleProduct(a, b, n, transB, (i, j, s) => {
    const e = Math.abs(out[i * n + j]! - s);
    if (!(e <= worst)) worst = e;
  });
  return worst;
}

/** Time `run` at `threads` cpu threads (one case's timer). */
function kilnTimer(run: () => Tensor, threads: number, topts: TimeOptions): () => EngineResult {
  return () => {
    setNumThreads(threads);
    const t = time(() => tidy(() => void run()), topts);
    return { ms: t.median, info: `${getNumThreads()} threads` };
  };
}

function kilnCase(n: number, transB: boolean, threads: number, topts: TimeOptions): [() => EngineResult, () => void] {
  const aData = randomF32(n * n, 1);
  const bData = randomF32(n * n, 2);
  setNumThreads(threads);
  const a = tensor(aData, [n, n], { backend: 'cpu', dtype: 'f32' });
  const b = tensor(bData, [n, n], { backend: 'cpu', dtype: 'f32' });
  const run = (): Tensor => matmul(a, b, { transB });
  const r = run();
  const err = checkKiln(aData, bData, r.dataSync(), n, transB);
  r.dispose();
  const atol = 2 ** -23 * n * 4;
  if (!(err <= atol)) throw new Error(`kiln matmul ${n}³ off by ${err} (tolerance ${atol})`);
  return [kilnTimer(run, threads, topts), () => (a.dispose(), b.dispose())];
}

// ---- OpenBLAS through numpy -----------------------------------------------------------------

const NUMPY_SCRIPT = String.raw`
import json, sys, time
import numpy as np
n, trans_b, warmup, reps, min_ms, max_reps = (int(x) for x in sys.argv[1:7])
rng = np.random.default_rng(1)
a = (rng.random((n, n), dtype=np.float32) * 2 - 1)
b = (rng.random((n, n), dtype=np.float32) * 2 - 1)
bt = b.T if trans_b else b
for _ in range(warmup):
    np.matmul(a, bt)
samples = []
total = 0.0
while len(samples) < reps or (total < min_ms and len(samples) < max_reps):
    t0 = time.perf_counter()
    np.matmul(a, bt)
    ms = (time.perf_counter() - t0) * 1e3
    samples.append(ms)
    total += ms
info = ''
try:
    cfg = np.show_config(mode='dicts')
    info = str(cfg.get('Build Dependencies', {}).get('blas', {}).get('name', ''))
except Exception:
    pass
try:
    import ctypes, glob
    for lib in glob.glob('/usr/lib/x86_64-linux-gnu/openblas*/libopenblas*.so*') + glob.glob('/usr/lib/*/libopenblas*.so*'):
        try:
            h = ctypes.CDLL(lib)
            h.openblas_get_config.restype = ctypes.c_char_p
            h.openblas_get_corename.restype = ctypes.c_char_p
            info = h.openblas_get_config().decode() + ' core ' + h.openblas_get_corename().decode()
            break
        except Exception:
            continue
except Exception:
    pass
print(json.dumps({'samples': samples, 'numpy': np.__version__, 'info': info}))
`;

function numpyAvailable(): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  const r = spawnSync(PYTHON, ['-c', 'import numpy'], { encoding: 'utf8' });
  if (r.status !== 0) return `numpy is not importable by ${PYTHON} (install Debian's python3-numpy)`;
  return null;
}

function numpyCase(n: number, transB: boolean, threads: number, topts: TimeOptions): () => EngineResult {
  return () => {
    const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads) };
    // let OpenBLAS choose its own core type and cache sizes for the baseline
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    const args = [n, transB ? 1 : 0, topts.warmup ?? 3, topts.reps ?? 10, topts.minTimeMs ?? 0, topts.maxReps ?? 1000].map(String);
    const r = spawnSync(PYTHON, ['-c', NUMPY_SCRIPT, ...args], { encoding: 'utf8', env, maxBuffer: 1 << 24 });
    if (r.status !== 0) return { ms: null, reason: `python failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}` };
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { samples: number[]; numpy: string; info: string };
    return { ms: median(out.samples), info: `numpy ${out.numpy}${out.info ? `, ${out.info}` : ''}` };
  };
}

// ---- tfjs-wasm (child node process per thread count) ------------------------------------------

// Plain ESM run by `node --input-type=module` from the repo root, so the packages resolve from
// its node_modules. tfjs-backend-wasm's thread count is set once, before the backend starts.
const WASM_SCRIPT = String.raw`
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
const [n, transB, threads, warmup, reps, minMs, maxReps] = process.argv.slice(-7).map(Number);
const require = createRequire(process.cwd() + '/package.json');
const tf = await import('@tensorflow/tfjs-core');
const wasm = await import('@tensorflow/tfjs-backend-wasm');
const dist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
wasm.setWasmPaths(dist + '/');
if (wasm.setThreadsCount) wasm.setThreadsCount(threads);
await tf.setBackend('wasm');
await tf.ready();
const used = wasm.getThreadsCount ? wasm.getThreadsCount() : -1;
let s = 1;
const rnd = () => { s = (s * 1103515245 + 12345) >>> 0; return (s / 4294967296) * 2 - 1; };
const data = (len) => { const x = new Float32Array(len); for (let i = 0; i < len; i++) x[i] = rnd(); return x; };
const a = tf.tensor2d(data(n * n), [n, n]);
const b = tf.tensor2d(data(n * n), [n, n]);
const run = () => { const r = tf.matMul(a, b, false, transB === 1); r.dataSync(); r.dispose(); };
for (let i = 0; i < warmup; i++) run();
const samples = [];
let total = 0;
while (samples.length < reps || (total < minMs && samples.length < maxReps)) {
  const t0 = process.hrtime.bigint();
  run();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  samples.push(ms);
  total += ms;
}
console.log(JSON.stringify({ samples, version: tf.version_core, threads: used }));
`;

function wasmAvailable(): string | null {
  try {
    createRequire(join(repoRoot, 'package.json')).resolve('@tensorflow/tfjs-backend-wasm');
    return null;
  } catch {
    return '@tensorflow/tfjs-backend-wasm is not installed (npm install adds it: it is a devDependency)';
  }
}

function wasmCase(n: number, transB: boolean, threads: number, topts: TimeOptions): () => EngineResult {
  return () => {
    const args = [n, transB ? 1 : 0, threads, topts.warmup ?? 3, topts.reps ?? 10, topts.minTimeMs ?? 0, topts.maxReps ?? 1000].map(String);
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', WASM_SCRIPT, '--', ...args], {
      encoding: 'utf8',
      cwd: repoRoot,
      maxBuffer: 1 << 24,
    });
    if (r.status !== 0) return { ms: null, reason: `tfjs-wasm failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' ')}` };
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { samples: number[]; version: string; threads: number };
    // say how many threads it really used: under Node, tfjs-backend-wasm reports no
    // multithread support (flags_wasm.ts: WASM_HAS_MULTITHREAD_SUPPORT is false when IS_NODE)
    // and runs its single-threaded SIMD build whatever setThreadsCount asked for
    const used = out.threads < 0 ? '?' : String(out.threads);
    return { ms: median(out.samples), info: `tfjs ${out.version}, asked ${threads} thread${threads > 1 ? 's' : ''}, used ${used}` };
  };
}

// ---- bf16: kiln bf16 and f32 against PyTorch's bf16 (child python) ------------------------------

/**
 * kiln's `dtype` product of two n×n matrices with entries in [−1, 1), checked, then timed;
 * `bf16Kernel` forces the avx512 table's bf16 kernel (KILN_CPU_BF16_MATMUL, read per call).
 */
function kilnDtypeCase(n: number, dtype: 'f32' | 'bf16', threads: number, topts: TimeOptions, bf16Kernel?: Bf16Kernel): [() => EngineResult, () => void] {
  const withKernel = <R>(f: () => R): R => {
    const before = process.env.KILN_CPU_BF16_MATMUL;
    if (bf16Kernel) process.env.KILN_CPU_BF16_MATMUL = bf16Kernel;
    try {
      return f();
    } finally {
      if (before === undefined) delete process.env.KILN_CPU_BF16_MATMUL;
      else process.env.KILN_CPU_BF16_MATMUL = before;
    }
  };
  setNumThreads(threads);
  const a = tensor(randomF32(n * n, 1), [n, n], { backend: 'cpu', dtype });
  const b = tensor(randomF32(n * n, 2), [n, n], { backend: 'cpu', dtype });
  const run = (): Tensor => withKernel(() => matmul(a, b));
  // the oracle takes the stored (rounded) inputs; bf16 output may be off by its rounding
  // (2^-8 relative) plus the f32 accumulation (n·2^-23, as |a·b| ≤ 1)
  const [av, bv] = [Float32Array.from(a.dataSync()), Float32Array.from(b.dataSync())];
  const r = run();
  const got = r.dataSync();
  r.dispose();
  sampleProduct(av, bv, n, false, (i, j, s) => {
    const bound = (dtype === 'bf16' ? 2 ** -8 * Math.abs(s) * 1.01 : 0) + n * 2 ** -23 * 4;
    if (!(Math.abs(got[i * n + j]! - s) <= bound)) throw new Error(`kiln ${dtype} matmul ${n}³ [${i}, ${j}]: ${got[i * n + j]} vs ${s} (bound ${bound})`);
  });
  return [kilnTimer(run, threads, topts), () => (a.dispose(), b.dispose())];
}

const TORCH_SCRIPT = String.raw`
import json, sys, time
import torch
n, threads, warmup, reps, min_ms, max_reps = (int(x) for x in sys.argv[1:7])
torch.set_num_threads(threads)
g = torch.Generator().manual_seed(1)
a = (torch.rand((n, n), generator=g) * 2 - 1).to(torch.bfloat16)
b = (torch.rand((n, n), generator=g) * 2 - 1).to(torch.bfloat16)
with torch.no_grad():
    for _ in range(warmup):
        torch.matmul(a, b)
    samples = []
    total = 0.0
    while len(samples) < reps or (total < min_ms and len(samples) < max_reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        ms = (time.perf_counter() - t0) * 1e3
        samples.append(ms)
        total += ms
info = 'torch %s, %d threads, mkldnn %s' % (torch.__version__, torch.get_num_threads(), torch.backends.mkldnn.is_available())
print(json.dumps({'samples': samples, 'info': info}))
`;

function torchAvailable(): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.status !== 0) return `torch is not importable by ${PYTHON} (install Debian's python3-torch)`;
  return null;
}

function torchCase(n: number, threads: number, topts: TimeOptions): () => EngineResult {
  return () => {
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads) };
    // these slow OpenBLAS (and PyTorch with it) when set for another purpose
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    const args = [n, threads, topts.warmup ?? 3, topts.reps ?? 10, topts.minTimeMs ?? 0, topts.maxReps ?? 1000].map(String);
    const r = spawnSync(PYTHON, ['-c', TORCH_SCRIPT, ...args], { encoding: 'utf8', env, maxBuffer: 1 << 24 });
    if (r.status !== 0) return { ms: null, reason: `python failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}` };
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { samples: number[]; info: string };
    return { ms: median(out.samples), info: out.info };
  };
}

/** The avx512 table's bf16 kernels (KILN_CPU_BF16_MATMUL): AMX tiles, vdpbf16ps pairs, widened to f32. */
type Bf16Kernel = 'amx' | 'dpbf16' | 'f32';

/** One (size, threads) row of the bf16 table. */
export interface MatmulBf16Row {
  n: number;
  threads: number;
  /** per bf16 kernel this CPU runs: median ms, GFLOP/s and GFLOP/s over kiln f32's */
  kernels: { kernel: Bf16Kernel; ms: number; gflops: number; overF32: number }[];
  f32Ms: number;
  torchMs: number | null;
  f32Gflops: number;
  torchGflops: number | null;
  /** kiln bf16 (the CPU's default kernel) over torch bf16, in GFLOP/s */
  bf16OverTorch: number | null;
}

async function mainBf16(args: string[], positional: string[], opts: Record<string, string | true>): Promise<MatmulBf16Row[]> {
  const sizes = positional.length ? positional.map(Number) : [256, 512, 1024, 2048];
  if (sizes.some((s) => !Number.isInteger(s) || s < 1)) throw new Error(`sizes must be positive integers, got ${positional.join(' ')}`);
  const threadList = typeof opts.threads === 'string' ? opts.threads.split(',').map(Number) : [1, 2];
  if (threadList.some((t) => !Number.isInteger(t) || t < 1)) throw new Error(`--threads needs positive integers, got ${String(opts.threads)}`);
  const topts: TimeOptions = { warmup: numOpt(opts, 'warmup', 3), reps: numOpt(opts, 'reps', 10), minTimeMs: numOpt(opts, 'min-ms', 1000), maxReps: 500 };
  const rounds = Math.max(1, numOpt(opts, 'rounds', 2));
  const caps = nativeCapabilities();
  if ('unavailable' in caps) throw new Error(`the cpu backend is not available: ${caps.unavailable}`);
  const noTorch = opts['no-torch'] ? '--no-torch' : torchAvailable();
  const threadsBefore = getNumThreads();
  // AMX only where the default is AMX (the CPU has it and the OS granted it); the other two run
  // on any avx512 table; avx2 and base have the f32 path only
  const kernels: Bf16Kernel[] = caps.isa !== 'avx512' ? ['f32'] : caps.bf16Matmul === 'amx' ? ['amx', 'dpbf16', 'f32'] : ['dpbf16', 'f32'];

  console.log('# matmul bf16: kiln cpu bf16 vs kiln f32 vs PyTorch bf16 (torch.matmul, CPU), a @ b\n');
  printMachineInfo();
  console.log(`- kiln native: isa ${caps.isa}, matmul computes ${caps.computes.matmul?.join(', ')}; bf16 kernel by default: ${caps.bf16Matmul}`);
  if (caps.isa !== 'avx512') console.log(`- the ${caps.isa} table has neither AMX nor vdpbf16ps: kiln bf16 is its f32-converting kernel`);
  else if (caps.bf16Matmul !== 'amx') console.log('- no AMX column: this CPU (or its OS) does not offer AMX tiles');
  console.log(`- command: npm run bench -- matmul ${args.join(' ')}`.trimEnd());
  console.log(`- timing: ${topts.warmup} warm-up calls, then ≥ ${topts.reps} reps and ≥ ${topts.minTimeMs} ms; ${rounds} interleaved rounds per engine, median of the faster round`);
  if (noTorch) console.log(`- torch column skipped: ${noTorch}`);

  const rows: MatmulBf16Row[] = [];
  const infos = new Set<string>();
  try {
    for (const n of sizes)
      for (const threads of threadList) {
        const cases = kernels.map((k) => kilnDtypeCase(n, 'bf16', threads, topts, k));
        const [f32, disposeF32] = kilnDtypeCase(n, 'f32', threads, topts);
        const engines: [string, () => EngineResult][] = kernels.map((k, i) => [`kiln bf16 ${k}`, cases[i]![0]]);
        engines.push(['kiln f32', f32]);
        if (!noTorch) engines.push(['torch bf16', torchCase(n, threads, topts)]);
        const best = new Map<string, EngineResult>();
        for (let r = 0; r < rounds; r++)
          for (const [name, run] of engines) {
            const res = run();
            if (res.info && name.startsWith('torch')) infos.add(`${name}: ${res.info}`);
            const prev = best.get(name);
            if (!prev || prev.ms === null || (res.ms !== null && res.ms < prev.ms)) best.set(name, res);
          }
        for (const [, dispose] of cases) dispose();
        disposeF32();
        for (const [name, res] of best) if (res.ms === null) console.log(`- ${name} ${n}³ ${threads}T: ${res.reason}`);
        const gf = (ms: number | null | undefined): number | null => (ms ? (2 * n * n * n) / (ms * 1e6) : null);
        const f32Ms = best.get('kiln f32')!.ms!;
        const torchMs = best.get('torch bf16')?.ms ?? null;
        const perKernel = kernels.map((kernel) => {
          const ms = best.get(`kiln bf16 ${kernel}`)!.ms!;
          return { kernel, ms, gflops: gf(ms)!, overF32: f32Ms / ms };
        });
        const dflt = perKernel.find((k) => k.kernel === (caps.isa === 'avx512' ? caps.bf16Matmul : 'f32'))!;
        const row: MatmulBf16Row = {
          n,
          threads,
          kernels: perKernel,
          f32Ms,
          torchMs,
          f32Gflops: gf(f32Ms)!,
          torchGflops: gf(torchMs),
          bf16OverTorch: torchMs ? torchMs / dflt.ms : null,
        };
        rows.push(row);
        keepAlive(row);
      }
  } finally {
    setNumThreads(threadsBefore);
  }
  for (const i of [...infos].sort()) console.log(`- ${i}`);
  console.log('');
  const cell = (x: number | null): string | number => (x === null ? '—' : x);
  console.log(
    mdTable(
      ['n (m=n=k)', 'threads', ...kernels.map((k) => `kiln bf16 ${k} GFLOP/s`), 'kiln f32 GFLOP/s', 'torch bf16 GFLOP/s', ...kernels.map((k) => `${k}/f32`), 'kiln bf16 (default)/torch bf16'],
      rows.map((r) => [`${r.n}`, r.threads, ...r.kernels.map((k) => k.gflops), r.f32Gflops, cell(r.torchGflops), ...r.kernels.map((k) => k.overF32), cell(r.bf16OverTorch)]),
    ),
  );
  console.log('\nratios are of GFLOP/s (2·n³ / median time): > 1 means the first is faster. "amx": AMX tiles (tdpbf16ps);');
  console.log('"dpbf16": vdpbf16ps on bf16 pairs; "f32": bf16 widened to f32 while packing, the f32 kernel (the avx2/base path).');
  return rows;
}

// ---- main -----------------------------------------------------------------------------------

export interface MatmulBenchRow {
  n: number;
  threads: number;
  kilnMs: number;
  blasMs: number | null;
  wasmMs: number | null;
  kilnGflops: number;
  blasGflops: number | null;
  wasmGflops: number | null;
  kilnOverBlas: number | null;
  kilnOverWasm: number | null;
}

export async function main(args: string[]): Promise<MatmulBenchRow[] | MatmulBf16Row[]> {
  const { positional, opts } = parseArgs(args);
  if (opts.help || opts.h) {
    console.log(USAGE);
    return [];
  }
  if (opts.dtype === 'bf16') return mainBf16(args, positional, opts);
  if (opts.dtype !== undefined && opts.dtype !== 'f32') throw new Error(`--dtype is f32 (the default) or bf16, got ${String(opts.dtype)}`);
  const sizes = positional.length ? positional.map(Number) : [256, 1024, 2048];
  if (sizes.some((s) => !Number.isInteger(s) || s < 1)) throw new Error(`sizes must be positive integers, got ${positional.join(' ')}`);
  const threadList = typeof opts.threads === 'string' ? opts.threads.split(',').map(Number) : [1, 2];
  if (threadList.some((t) => !Number.isInteger(t) || t < 1)) throw new Error(`--threads needs positive integers, got ${String(opts.threads)}`);
  const topts: TimeOptions = {
    warmup: numOpt(opts, 'warmup', 3),
    reps: numOpt(opts, 'reps', 10),
    minTimeMs: numOpt(opts, 'min-ms', 1000),
    maxReps: 500,
  };
  const rounds = Math.max(1, numOpt(opts, 'rounds', 2));
  const transB = opts.transb === true;

  const caps = nativeCapabilities();
  if ('unavailable' in caps) throw new Error(`the cpu backend is not available: ${caps.unavailable}`);
  const noNumpy = opts['no-numpy'] ? '--no-numpy' : numpyAvailable();
  const noWasm = opts['no-wasm'] ? '--no-wasm' : wasmAvailable();
  const threadsBefore = getNumThreads();

  console.log(`# matmul: kiln cpu vs OpenBLAS (numpy) and tfjs-wasm, f32${transB ? ', a @ bᵀ' : ', a @ b'}\n`);
  printMachineInfo();
  console.log(`- kiln native: ${JSON.stringify(caps)}`);
  console.log(`- command: npm run bench -- matmul ${args.join(' ')}`.trimEnd());
  console.log(
    `- timing: ${topts.warmup} warm-up calls, then ≥ ${topts.reps} reps and ≥ ${topts.minTimeMs} ms; ${rounds} interleaved rounds per engine, median of the faster round`,
  );
  if (noNumpy) console.log(`- OpenBLAS column skipped: ${noNumpy}`);
  if (noWasm) console.log(`- tfjs-wasm column skipped: ${noWasm}`);

  const rows: MatmulBenchRow[] = [];
  const infos = new Set<string>();
  try {
    for (const n of sizes)
      for (const threads of threadList) {
        const [kiln, disposeKiln] = kilnCase(n, transB, threads, topts);
        const engines: [string, () => EngineResult][] = [['kiln', kiln]];
        if (!noNumpy) engines.push(['blas', numpyCase(n, transB, threads, topts)]);
        if (!noWasm) engines.push(['wasm', wasmCase(n, transB, threads, topts)]);
        const best = new Map<string, EngineResult>();
        for (let r = 0; r < rounds; r++)
          for (const [name, run] of engines) {
            const res = run();
            if (res.info) infos.add(`${name}: ${res.info}`);
            if (res.ms === null) {
              if (!best.has(name)) best.set(name, res);
              continue;
            }
            const prev = best.get(name);
            if (!prev || prev.ms === null || res.ms < prev.ms) best.set(name, res);
          }
        disposeKiln();
        for (const [name, res] of best) if (res.ms === null) console.log(`- ${name} ${n}³ ${threads}T: ${res.reason}`);
        const flops = 2 * n * n * n;
        const gf = (ms: number | null | undefined): number | null => (ms ? flops / (ms * 1e6) : null);
        const kilnMs = best.get('kiln')!.ms!;
        const blasMs = best.get('blas')?.ms ?? null;
        const wasmMs = best.get('wasm')?.ms ?? null;
        const row: MatmulBenchRow = {
          n,
          threads,
          kilnMs,
          blasMs,
          wasmMs,
          kilnGflops: gf(kilnMs)!,
          blasGflops: gf(blasMs),
          wasmGflops: gf(wasmMs),
          kilnOverBlas: blasMs ? blasMs / kilnMs : null,
          kilnOverWasm: wasmMs ? wasmMs / kilnMs : null,
        };
        rows.push(row);
        keepAlive(row);
      }
  } finally {
    setNumThreads(threadsBefore);
  }

  for (const i of [...infos].sort()) console.log(`- ${i}`);
  console.log('');
  const cell = (x: number | null): string | number => (x === null ? '—' : x);
  console.log(
    mdTable(
      ['n (m=n=k)', 'threads', 'kiln ms', 'OpenBLAS ms', 'tfjs-wasm ms', 'kiln GFLOP/s', 'OpenBLAS GFLOP/s', 'tfjs-wasm GFLOP/s', 'kiln/OpenBLAS', 'kiln/tfjs-wasm'],
      rows.map((r) => [
        `${r.n}`,
        r.threads,
        r.kilnMs,
        cell(r.blasMs),
        cell(r.wasmMs),
        r.kilnGflops,
        cell(r.blasGflops),
        cell(r.wasmGflops),
        cell(r.kilnOverBlas),
        cell(r.kilnOverWasm),
      ]),
    ),
  );
  console.log('\nratios = other time / kiln time (GFLOP/s ratio): > 1 means kiln is faster.');
  const goal = (t: number, want: number): void => {
    const r = rows.find((x) => x.n === 1024 && x.threads === t);
    if (r?.kilnOverBlas != null)
      console.log(`1024³ on ${t} thread${t > 1 ? 's' : ''}: kiln/OpenBLAS = ${r.kilnOverBlas.toFixed(2)} (goal ≥ ${want.toFixed(1)}: ${r.kilnOverBlas >= want ? 'met' : 'NOT met'})`);
  };
  goal(1, 1.0);
  goal(2, 0.9);
  return rows;
}
