/**
 * kiln's `ref` backend f32 matmul against TensorFlow.js's pure-JS `cpu` backend, in the same
 * process on the same seeded random inputs. Prints GFLOP/s (2·m·n·k / median time) of each and
 * the ratio kiln/tfjs (> 1: kiln is faster). Both results are checked against an f64 oracle first.
 *
 *     npm run bench -- ref-matmul [sizes...] [--reps N] [--warmup N] [--min-ms T] [--no-transb]
 *
 * Sizes default to 128 256 512 (square m = n = k); each is run as `a @ b` and, unless
 * `--no-transb`, as `a @ bᵀ` (the layout of `linear`'s weight).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { matmul, tensor, tidy } from '../src/index.js';
import { keepAlive, mdTable, numOpt, parseArgs, printMachineInfo, randomF32, time, type TimeOptions } from './util.js';

export const description = "ref backend f32 matmul vs TensorFlow.js cpu backend (GFLOP/s, ratio)";

/** The f64 product of row-major a [m×k] and b [k×n] (or b stored [n×k] when transB). */
function oracle(a: Float32Array, b: Float32Array, m: number, n: number, k: number, transB: boolean): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p]! * (transB ? b[j * k + p]! : b[p * n + j]!);
      out[i * n + j] = s;
    }
  return out;
}

function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) return Infinity;
  let d = 0;
  for (let i = 0; i < x.length; i++) {
    const e = Math.abs(x[i]! - y[i]!);
    if (!(e <= d)) d = e; // NaN-sticky
  }
  return d;
}

export interface MatmulRow {
  size: string;
  transB: boolean;
  kilnMs: number;
  kilnMinMs: number;
  tfjsMs: number;
  tfjsMinMs: number;
  kilnGflops: number;
  tfjsGflops: number;
  ratio: number;
  kilnErr: number;
  tfjsErr: number;
}

/** Run one case: check both against the f64 oracle, then time both. */
export function benchCase(m: number, n: number, k: number, transB: boolean, topts: TimeOptions): MatmulRow {
  const aData = randomF32(m * k, 1);
  const bData = randomF32(k * n, 2);
  const bShape = transB ? [n, k] : [k, n];

  const ka = tensor(aData, [m, k], { backend: 'ref', dtype: 'f32' });
  const kb = tensor(bData, bShape, { backend: 'ref', dtype: 'f32' });
  const ta = tf.tensor2d(aData, [m, k], 'float32');
  const tb = tf.tensor2d(bData, bShape as [number, number], 'float32');
  try {
    const kilnRun = (): ArrayLike<number> => tidy(() => matmul(ka, kb, { transB }).dataSync());
    const tfjsRun = (): ArrayLike<number> =>
      tf.tidy(() => {
        const r = tf.matMul(ta, tb, false, transB);
        return r.dataSync();
      });

    // correctness once: both within f32 tolerance of the f64 product (error grows ~ k·ε·|a||b|)
    const want = oracle(aData, bData, m, n, k, transB);
    const kilnErr = maxAbsDiff(kilnRun(), want);
    const tfjsErr = maxAbsDiff(tfjsRun(), want);
    const atol = 2 ** -23 * k * 4;
    if (!(kilnErr <= atol)) throw new Error(`kiln matmul ${m}×${n}×${k} off by ${kilnErr} (tolerance ${atol})`);
    if (!(tfjsErr <= atol)) throw new Error(`tfjs matmul ${m}×${n}×${k} off by ${tfjsErr} (tolerance ${atol})`);

    // interleave the two so drifting machine load hits both alike; keep the faster half-run of each
    const kt = time(kilnRun, topts);
    const tt = time(tfjsRun, topts);
    const kt2 = time(kilnRun, { ...topts, warmup: 1 });
    const tt2 = time(tfjsRun, { ...topts, warmup: 1 });
    const kMed = Math.min(kt.median, kt2.median);
    const tMed = Math.min(tt.median, tt2.median);
    const flops = 2 * m * n * k;
    return {
      size: `${m}×${n}×${k}`,
      transB,
      kilnMs: kMed,
      kilnMinMs: Math.min(kt.min, kt2.min),
      tfjsMs: tMed,
      tfjsMinMs: Math.min(tt.min, tt2.min),
      kilnGflops: flops / (kMed * 1e6),
      tfjsGflops: flops / (tMed * 1e6),
      ratio: tMed / kMed,
      kilnErr,
      tfjsErr,
    };
  } finally {
    ka.dispose();
    kb.dispose();
    ta.dispose();
    tb.dispose();
  }
}

export async function main(args: string[]): Promise<MatmulRow[]> {
  const { positional, opts } = parseArgs(args);
  const sizes = positional.length ? positional.map(Number) : [128, 256, 512];
  if (sizes.some((s) => !Number.isInteger(s) || s < 1)) throw new Error(`sizes must be positive integers, got ${positional.join(' ')}`);
  const topts: TimeOptions = {
    warmup: numOpt(opts, 'warmup', 3),
    reps: numOpt(opts, 'reps', 7),
    minTimeMs: numOpt(opts, 'min-ms', 500),
    maxReps: 200,
  };
  const transBs = opts['no-transb'] ? [false] : [false, true];

  await tf.setBackend('cpu');
  await tf.ready();
  // tfjs's one-time "install tfjs-node" notice would land in the middle of the table
  (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  console.log('# ref-matmul: kiln ref vs TensorFlow.js cpu, f32\n');
  printMachineInfo();
  console.log(`- tfjs-core ${tf.version_core}, backend ${tf.getBackend()}`);
  console.log(`- command: npm run bench -- ref-matmul ${args.join(' ')}`.trimEnd());
  console.log(`- timing: ${topts.warmup} warm-up calls, then ≥ ${topts.reps} reps and ≥ ${topts.minTimeMs} ms, twice (interleaved); median of the faster run\n`);

  const rows: MatmulRow[] = [];
  for (const s of sizes)
    for (const transB of transBs) {
      const r = benchCase(s, s, s, transB, topts);
      rows.push(r);
      keepAlive(r);
    }
  console.log(
    mdTable(
      ['m×n×k', 'op', 'kiln ms (median)', 'kiln ms (min)', 'tfjs ms (median)', 'tfjs ms (min)', 'kiln GFLOP/s', 'tfjs GFLOP/s', 'kiln/tfjs', 'max |err| kiln', 'max |err| tfjs'],
      rows.map((r) => [
        r.size,
        r.transB ? 'a @ bᵀ' : 'a @ b',
        r.kilnMs,
        r.kilnMinMs,
        r.tfjsMs,
        r.tfjsMinMs,
        r.kilnGflops,
        r.tfjsGflops,
        r.ratio,
        r.kilnErr.toExponential(1),
        r.tfjsErr.toExponential(1),
      ]),
    ),
  );
  console.log('\nkiln/tfjs = tfjs time / kiln time (GFLOP/s ratio): > 1 means kiln is faster.');
  const at256 = rows.find((r) => r.size === '256×256×256' && !r.transB);
  if (at256) console.log(`256×256×256 a @ b: kiln/tfjs = ${at256.ratio.toFixed(2)} ${at256.ratio >= 1 ? '(kiln at least as fast: OK)' : '(kiln SLOWER than tfjs)'}`);
  return rows;
}
