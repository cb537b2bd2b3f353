/**
 * Flash-style attention (`scaledDotProductAttention`, one fused kernel forward and backward)
 * against the naive composition `softmax(q·kᵀ·scale + causal mask)·v` built from kiln ops
 * (matmul with transB, maskedFill with a triu mask, softmax, matmul; backward through autograd),
 * on the same backend: time and peak memory at T = 256, 1024, 4096.
 *
 *     npm run bench -- attention [--ts 256,1024,4096] [--backend cpu] [--heads 4] [--d 64]
 *                                [--reps N] [--warmup N] [--no-causal] [--max-naive-mb 8192]
 *                                [--window W] [--kv-heads Hkv]
 *
 * Shapes: q, k, v [B·H, T, D] with B = 1, H = 4, D = 64, f32; causal by default. One
 * forward + backward is `out = attn(q, k, v)` then `out.backward(dout)` (dout random, fixed).
 * `--window W` (causal only) gives each query the W latest keys: the kernel skips the key tiles
 * outside the window (time O(T·W)), the naive composition masks them too (j ≤ i − W) and still
 * computes all T² scores. `--kv-heads Hkv` makes k and v [Hkv, T, D] (grouped-query attention);
 * the naive composition expands them to H heads first.
 *
 * Peak memory: every (implementation, T) runs in its own child process, which reports its
 * resident-set high-water mark (`process.resourceUsage().maxRSS`); a baseline child that builds
 * the same inputs and runs nothing is subtracted. That counts everything the run touched:
 * tensors, the autograd graph's saved tensors, and the kernels' own scratch (which kiln's
 * `memory()` does not see), but it is a high-water mark of the process, so allocator caching can
 * only make it larger, never smaller. The live tensor bytes after the forward (what autograd
 * holds for the backward, from `memory().bytes`) are printed alongside.
 * @module
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import {
  getNumThreads,
  logicalOr,
  matmul,
  maskedFill,
  memory,
  nativeCapabilities,
  ones,
  randn,
  scaledDotProductAttention,
  manualSeed,
  sync,
  tidy,
  useBackend,
  type Tensor,
} from '../src/index.js';
import { median, mdTable, numOpt, parseArgs, printMachineInfo } from './util.js';

export const description = 'flash attention fwd+bwd vs the naive matmul/softmax composition (time, peak memory)';

type Impl = 'baseline' | 'flash' | 'naive';

/** What one child process reports. */
interface CaseResult {
  impl: Impl;
  t: number;
  fwdMs: number[];
  bwdMs: number[];
  /** Resident-set high-water mark of the child, bytes. */
  maxRss: number;
  /** kiln's live tensor bytes right after the forward (held for the backward). */
  heldBytes: number;
  /** Σ out, Σ dq, Σ dk, Σ dv of the last repetition: flash and naive should agree. */
  sums: number[];
}

const MARK = '@@attention-bench ';

/** Run one implementation at one T in this process and print the result for the parent. */
async function child(impl: Impl, t: number, backend: string, heads: number, d: number, causal: boolean, warmup: number, reps: number, window: number | null, kvHeads: number): Promise<void> {
  manualSeed(1234);
  const shape = [heads, t, d];
  const q = randn(shape, { backend }).requiresGrad_();
  const k = randn([kvHeads, t, d], { backend }).requiresGrad_();
  const v = randn([kvHeads, t, d], { backend }).requiresGrad_();
  const dout = randn(shape, { backend });
  const scale = 1 / Math.sqrt(d);
  // the causal (and window) mask is a constant of the model (as a registered buffer in PyTorch): built once
  let hide = impl === 'naive' && causal ? ones([t, t], { backend, dtype: 'bool' }).triu(1) : null;
  if (hide && window !== null) hide = logicalOr(hide, ones([t, t], { backend, dtype: 'bool' }).tril(-window));
  const g = heads / kvHeads;
  const repeat = (x: Tensor): Tensor => (g === 1 ? x : x.reshape([kvHeads, 1, t, d]).expand([kvHeads, g, t, d]).reshape([heads, t, d]));
  const forward = (): Tensor => {
    if (impl === 'flash') return scaledDotProductAttention(q, k, v, { isCausal: causal, scale, window, enableGqa: true });
    const s = matmul(q, repeat(k), { transB: true }).mul(scale);
    return matmul((hide ? maskedFill(s, hide, -Infinity) : s).softmax(-1), repeat(v));
  };
  const fwdMs: number[] = [];
  const bwdMs: number[] = [];
  let heldBytes = 0;
  let sums: number[] = [];
  if (impl !== 'baseline')
    for (let r = 0; r < warmup + reps; r++) {
      for (const x of [q, k, v]) x.zeroGrad();
      const before = memory().bytes;
      const t0 = process.hrtime.bigint();
      const out = forward();
      await sync(backend); // waits for queued work on a device backend; immediate on cpu
      const t1 = process.hrtime.bigint();
      heldBytes = memory().bytes - before;
      out.backward(dout);
      await sync(backend);
      const t2 = process.hrtime.bigint();
      if (r >= warmup) {
        fwdMs.push(Number(t1 - t0) / 1e6);
        bwdMs.push(Number(t2 - t1) / 1e6);
      }
      const totals = tidy(() => [out, q.grad!, k.grad!, v.grad!].map((x) => x.sum()));
      sums = await Promise.all(totals.map((x) => x.item()));
      for (const x of [...totals, out]) x.dispose();
    }
  const res: CaseResult = { impl, t, fwdMs, bwdMs, maxRss: process.resourceUsage().maxRSS * 1024, heldBytes, sums };
  console.log(MARK + JSON.stringify(res));
}

/** Spawn a child for one case; null (and a printed reason) if it failed. */
function spawnCase(args: string[]): CaseResult | null {
  const index = join(dirname(fileURLToPath(import.meta.url)), 'index.ts');
  const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), index, 'attention', '--child', ...args], {
    encoding: 'utf8',
    env: process.env,
    maxBuffer: 1 << 24,
  });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith(MARK));
  if (r.status !== 0 || !line) {
    console.log(`  (case ${args.join(' ')} failed: exit ${r.status ?? r.signal}; ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')})`);
    return null;
  }
  return JSON.parse(line.slice(MARK.length)) as CaseResult;
}

const mb = (bytes: number): number => bytes / 2 ** 20;

export async function main(args: string[]): Promise<void> {
  const { opts } = parseArgs(args);
  const backend = typeof opts.backend === 'string' ? opts.backend : 'cpu';
  const heads = numOpt(opts, 'heads', 4);
  const d = numOpt(opts, 'd', 64);
  const causal = opts['no-causal'] === undefined;
  const window = opts.window === undefined ? null : numOpt(opts, 'window', 0);
  const kvHeads = numOpt(opts, 'kv-heads', heads);
  if (window !== null && (!causal || !(Number.isInteger(window) && window >= 1))) throw new Error('bench attention: --window needs a positive integer and causal masking');
  if (!(Number.isInteger(kvHeads) && kvHeads >= 1 && heads % kvHeads === 0)) throw new Error(`bench attention: --kv-heads ${kvHeads} must divide --heads ${heads}`);
  if (typeof opts.child === 'string') {
    // --child <impl> <T> <warmup> <reps>: parseArgs takes <impl> as the value of --child
    const [t, warmup, reps] = parseArgs(args).positional;
    await useBackend(backend);
    await child(opts.child as Impl, Number(t), backend, heads, d, causal, Number(warmup), Number(reps), window, kvHeads);
    return;
  }
  const ts = (typeof opts.ts === 'string' ? opts.ts : '256,1024,4096').split(',').map(Number);
  const maxNaiveMb = numOpt(opts, 'max-naive-mb', 8192);

  console.log('## attention: flash-style kernel vs naive composition, forward + backward\n');
  printMachineInfo();
  const caps = nativeCapabilities();
  console.log(`- backend: ${backend}${'isa' in caps ? ` (ISA ${caps.isa}, ${getNumThreads()} threads)` : ''}`);
  console.log(`- load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')} (other work on the machine inflates the times)`);
  console.log(
    `- shapes: q [B·H = ${heads}, T, D = ${d}], k, v [${kvHeads}, T, ${d}] f32, ${causal ? 'causal' : 'no mask'}${window !== null ? `, sliding window ${window}` : ''}; scale 1/√D`,
  );
  console.log(
    '- naive: matmul(q, k, {transB}) · scale → maskedFill(triu(ones [T,T] bool, 1), −∞) → softmax → matmul(·, v), backward by autograd; flash: scaledDotProductAttention(q, k, v, {isCausal})',
  );
  console.log(
    '- time: median over the repetitions after warm-up (each T, implementation in its own process); peak memory: child maxRSS minus a baseline child that only builds the inputs (see the header of bench/attention.ts)',
  );
  console.log(`- naive is skipped where its estimated footprint (8 score-sized tensors of B·H·T²·4 bytes) exceeds --max-naive-mb ${maxNaiveMb}\n`);

  const rows: (string | number)[][] = [];
  for (const t of ts) {
    const warmup = numOpt(opts, 'warmup', t >= 4096 ? 1 : 2);
    const reps = numOpt(opts, 'reps', t >= 4096 ? 3 : t >= 1024 ? 5 : 10);
    const common = [
      '--backend', backend, '--heads', String(heads), '--d', String(d), '--kv-heads', String(kvHeads),
      ...(causal ? [] : ['--no-causal']), ...(window !== null ? ['--window', String(window)] : []),
    ];
    const base = spawnCase(['baseline', String(t), '0', '0', ...common]);
    const results: Partial<Record<Impl, CaseResult>> = {};
    for (const impl of ['flash', 'naive'] as const) {
      const naiveMb = mb(8 * heads * t * t * 4);
      if (impl === 'naive' && naiveMb > maxNaiveMb) {
        rows.push([t, impl, 'skipped', '', '', '', `est. ${naiveMb.toFixed(0)} MB > ${maxNaiveMb}`, '']);
        continue;
      }
      const r = spawnCase([impl, String(t), String(warmup), String(reps), ...common]);
      if (!r) continue;
      results[impl] = r;
      const fwd = median(r.fwdMs);
      const bwd = median(r.bwdMs);
      const total = median(r.fwdMs.map((f, i) => f + r.bwdMs[i]!));
      rows.push([
        t,
        impl,
        total,
        fwd,
        bwd,
        base ? mb(r.maxRss - base.maxRss) : NaN,
        mb(r.heldBytes),
        r.fwdMs.length,
      ]);
    }
    const f = results.flash;
    const n = results.naive;
    if (f && n) {
      const rel = Math.max(...f.sums.map((s, i) => Math.abs(s - n.sums[i]!) / Math.max(1, Math.abs(n.sums[i]!))));
      const speed = median(n.fwdMs.map((x, i) => x + n.bwdMs[i]!)) / median(f.fwdMs.map((x, i) => x + f.bwdMs[i]!));
      const memRatio = base ? (n.maxRss - base.maxRss) / Math.max(1, f.maxRss - base.maxRss) : NaN;
      console.log(`T=${t}: flash is ${speed.toFixed(2)}× faster, naive uses ${memRatio.toFixed(1)}× the peak memory; Σout/Σgrads agree to ${rel.toExponential(1)} (relative)`);
    }
  }
  console.log('');
  console.log(
    mdTable(['T', 'impl', 'fwd+bwd ms', 'fwd ms', 'bwd ms', 'peak MB (RSS − baseline)', 'held after fwd MB', 'reps'], rows),
  );
}
