/**
 * One GPT training step (forward, backward, AdamW) on kiln's `cpu` backend against the same
 * model in PyTorch CPU, at 1 and 2 threads: median step time, tokens/s and peak RSS, in f32 and
 * (with `--precision f32,bf16`) under bf16 autocast in both (kiln's `autocast`, PyTorch's
 * `torch.autocast('cpu', dtype=torch.bfloat16)`).
 * Models (`--models`): `128x4` (default): vocab 65, context 64, batch 16, width 128, 4 heads,
 * 4 layers; `512x8`: width 512, 8 heads, 8 layers; MLP 4×, tied head.
 * Each configuration runs in its own process, so peak RSS is that configuration's alone.
 * `--profile` prints, per configuration, where kiln's step goes: ms and calls per step of each
 * kernel (`profileKernels`) and the time outside kernels. `--checkpointing` also times kiln with
 * `gradientCheckpointing` (every block but the last recomputed in the backward pass) and prints
 * its cost over the plain step.
 *
 *   npm run bench -- gpt [--steps 20] [--threads 1,2] [--backend cpu] [--precision f32,bf16] [--models 128x4,512x8] [--profile] [--checkpointing]
 */
import { spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdamW, GPT, Generator, autocast, backends, profileKernels, type KernelProfile, getNumThreads, randint, setNumThreads, tidy, useBackend } from '../src/index.js';
import { fmtNum, mdTable, median, parseArgs, printMachineInfo } from './util.js';

export const description = 'GPT training step (fwd+bwd+AdamW), kiln cpu vs PyTorch, 1 and 2 threads';

const V = 65;
const T = 64;
const B = 16;

/** A model size: width C, heads H, layers L. */
interface Size {
  C: number;
  H: number;
  L: number;
}

function parseSize(s: string): Size {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m) throw new Error(`bench gpt: --models takes WIDTHxLAYERS (128x4), got '${s}'`);
  const C = Number(m[1]);
  return { C, H: Math.max(1, C / 32), L: Number(m[2]) }; // 128 → 4 heads (the default model), 512 → 16
}

interface Result {
  median_ms: number;
  max_rss_mib: number;
  threads: number;
  /** With --profile: per kernel, ms per step and calls per step, over the timed steps. */
  profile?: { kernel: string; ms: number; calls: number }[];
}

// The measured run, in a child process: `tsx bench/gpt.ts --worker <backend> <threads> <steps>`.
async function worker(backend: string, threads: number, steps: number, precision: string, size: Size, profile: boolean, checkpointing: boolean): Promise<void> {
  await useBackend(backend);
  if (backend === 'cpu') setNumThreads(threads);
  const gen = new Generator(0);
  const { C, H, L } = size;
  const model = new GPT({ vocabSize: V, blockSize: T, nLayer: L, nHead: H, nEmbd: C, dropout: 0, bias: true, tiedHead: true, gradientCheckpointing: checkpointing }, { backend, generator: gen });
  const opt = new AdamW(model.parameters(), { lr: 3e-4 });
  const idx = randint(0, V, [B, T], { backend, generator: gen });
  const tgt = randint(0, V, [B, T], { backend, generator: gen });
  const times: number[] = [];
  let loss = 0;
  let prof: KernelProfile | null = null;
  for (let i = 0; i < steps + 3; i++) {
    if (profile && i === 3) prof = profileKernels(backend);
    const t0 = performance.now();
    const l = tidy(() => {
      const l = precision === 'bf16' ? autocast({ dtype: 'bf16' }, () => model.loss(idx, tgt)) : model.loss(idx, tgt);
      opt.zeroGrad();
      l.backward();
      opt.step();
      return l;
    });
    loss = await l.item(); // a sync every step, as PyTorch's loss.item(): the step time is the work's
    l.dispose();
    if (i >= 3) times.push(performance.now() - t0);
  }
  const rows = prof?.stop();
  const result: Result & { loss: number } = {
    median_ms: median(times),
    max_rss_mib: process.resourceUsage().maxRSS / 1024,
    threads: backend === 'cpu' ? getNumThreads() : 1,
    loss,
    ...(rows ? { profile: rows.map((r) => ({ kernel: r.kernel, ms: r.ms / steps, calls: r.calls / steps })) } : {}),
  };
  console.log(JSON.stringify(result));
}

function runKiln(backend: string, threads: number, steps: number, precision: string, size: Size, profile: boolean, checkpointing = false): Result {
  const self = fileURLToPath(import.meta.url);
  const flags = [profile ? 'profile' : '', checkpointing ? 'checkpointing' : ''].join(',');
  const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--worker', backend, String(threads), String(steps), precision, `${size.C}x${size.L}`, flags], {
    encoding: 'utf8',
    env: { ...process.env, KILN_NUM_THREADS: String(threads) },
  });
  if (r.status !== 0) throw new Error(`kiln worker failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Result;
}

function runTorch(threads: number, steps: number, precision: string, size: Size): Result | string {
  const env: Record<string, string | undefined> = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: '1' };
  // these overrides halve OpenBLAS on this CPU; the baseline runs without them
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const script = join(fileURLToPath(new URL('.', import.meta.url)), 'gpt_torch.py');
  const r = spawnSync('/usr/bin/python3', [script, String(threads), String(steps), precision, String(size.C), String(size.H), String(size.L)], { encoding: 'utf8', env });
  if (r.error || r.status !== 0) return `PyTorch not run: ${r.error?.message ?? r.stderr.trim().split('\n').pop()}`;
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Result;
}

/**
 * Which BLAS Debian's PyTorch (built with BLAS_INFO=generic) loads for its f32 matmuls: the
 * libblas.so.3 alternative. With only the reference BLAS installed (no libopenblas0), its f32
 * step is 20–30× slower than with OpenBLAS and is no baseline (measured: 30.6 s against 1.20 s
 * per 512x8 step).
 */
function torchBlas(): string {
  let path: string;
  try {
    path = realpathSync('/usr/lib/x86_64-linux-gnu/libblas.so.3');
  } catch {
    return 'unknown (no /usr/lib/x86_64-linux-gnu/libblas.so.3)';
  }
  if (/\/blas\/libblas\.so/.test(path)) return `${path}: the unoptimised reference BLAS, so the torch f32 rows are no baseline (apt-get install libopenblas0-pthread)`;
  return path;
}

/**
 * The per-kernel profile of one configuration: ms and calls per step, and the rest of the step
 * (JS: validation, autograd, allocation; and the read's wait), against the median step time.
 */
function printProfile(title: string, r: Result): void {
  const inKernels = r.profile!.reduce((a, p) => a + p.ms, 0);
  const rows = r.profile!.map((p) => [p.kernel, fmtNum(p.calls), fmtNum(p.ms), `${fmtNum((100 * p.ms) / r.median_ms)}%`]);
  rows.push(['(outside kernels)', '', fmtNum(r.median_ms - inKernels), `${fmtNum((100 * (r.median_ms - inKernels)) / r.median_ms)}%`]);
  console.log(`\nprofile, ${title}: ${fmtNum(r.median_ms)} ms per step (median)`);
  console.log(mdTable(['kernel', 'calls/step', 'ms/step', 'share'], rows));
}

export function main(args: string[]): void {
  const { opts } = parseArgs(args);
  const steps = Number(opts.steps ?? 20);
  const threadList = String(opts.threads ?? '1,2').split(',').map(Number);
  const backend = String(opts.backend ?? 'cpu');
  const precisions = String(opts.precision ?? 'f32').split(',');
  const profile = opts.profile !== undefined;
  const checkpointing = opts.checkpointing !== undefined;
  for (const p of precisions) if (p !== 'f32' && p !== 'bf16') throw new Error(`bench gpt: --precision takes f32 and bf16, got '${p}'`);
  const sizes = String(opts.models ?? '128x4').split(',').map(parseSize);
  const info = backends().find((b) => b.name === backend);
  if (!info?.available) {
    console.log(`backend '${backend}' is not available: ${info?.reason ?? 'not registered'}`);
    return;
  }
  printMachineInfo();
  console.log(`- PyTorch's BLAS: ${torchBlas()}`);
  console.log(`- command: npm run bench -- gpt ${args.join(' ')}`);
  console.log(`- models: V=${V} T=${T} B=${B}, ${sizes.map((z) => `C=${z.C} H=${z.H} L=${z.L}`).join('; ')}, tied head; ${steps} timed steps after 3 warm-up, median\n`);
  const rows: (string | number)[][] = [];
  const f32ms = new Map<string, number>();
  const runs = sizes.flatMap((size) => precisions.flatMap((precision) => threadList.map((n) => ({ size, precision, n }))));
  for (const { size, precision, n } of runs) {
    const k = runKiln(backend, n, steps, precision, size, profile);
    if (k.profile) printProfile(`${size.C}x${size.L} ${precision}, ${n} thread(s)`, k);
    const ck = checkpointing ? runKiln(backend, n, steps, precision, size, false, true) : null;
    const p = runTorch(n, steps, precision, size);
    const tok = (ms: number): string => fmtNum((B * T) / (ms / 1000), 4);
    if (typeof p === 'string') console.log(p);
    const pt = typeof p === 'string' ? null : p;
    const key = `${size.C}x${size.L}/${n}`;
    if (precision === 'f32') f32ms.set(key, k.median_ms);
    const base = f32ms.get(key);
    rows.push([
      `${size.C}x${size.L}`,
      precision,
      n,
      fmtNum(k.median_ms),
      pt ? fmtNum(pt.median_ms) : '—',
      tok(k.median_ms),
      pt ? tok(pt.median_ms) : '—',
      fmtNum(k.max_rss_mib),
      pt ? fmtNum(pt.max_rss_mib) : '—',
      pt ? fmtNum(k.median_ms / pt.median_ms) : '—',
      precision !== 'f32' && base ? fmtNum(base / k.median_ms) : '—',
      ...(ck ? [fmtNum(ck.median_ms), `${fmtNum(100 * (ck.median_ms / k.median_ms - 1))}%`, fmtNum(ck.max_rss_mib)] : []),
    ]);
  }
  console.log(mdTable(['model', 'precision', 'threads', 'kiln ms/step', 'torch ms/step', 'kiln tok/s', 'torch tok/s', 'kiln peak RSS MiB', 'torch peak RSS MiB', 'kiln/torch time', 'kiln speed-up over its f32', ...(checkpointing ? ['kiln checkpointed ms/step', 'checkpointing cost', 'kiln checkpointed peak RSS MiB'] : [])], rows));
  console.log('\nkiln/torch time ≤ 1.0 means kiln is at least as fast (the goal); the bf16 rows compare autocast in both.');
}

if (process.argv.includes('--worker')) {
  const i = process.argv.indexOf('--worker');
  const flags = (process.argv[i + 6] ?? '').split(',');
  await worker(process.argv[i + 1]!, Number(process.argv[i + 2]), Number(process.argv[i + 3]), process.argv[i + 4] ?? 'f32', parseSize(process.argv[i + 5] ?? '128x4'), flags.includes('profile'), flags.includes('checkpointing'));
}
