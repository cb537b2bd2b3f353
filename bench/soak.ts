/**
 * Soak: `kiln train`'s default `tiny` configuration for 3,000 steps through the library's
 * `train()`, set up exactly as the command sets it up (`prepareRun`, `trainOptions`: the State of
 * the Union corpus, BPE 2048, 4 layers × width 128, batch 16 × 128, evaluation every 250 steps,
 * a checkpoint every 500, the newest 2 kept), sampling `memory()` (live tensors, bytes, tensors
 * the collector released) and the process's RSS every 100 steps. Verdict: live tensors, bytes
 * and collected tensors the same at every sample, exactly; RSS after warm-up grown by less than
 * the bound: the peak of the samples in the last 1000 steps against the peak in the 1000 steps
 * from step 500. Peaks over whole windows, because RSS swings with the checkpoints: each one's
 * buffers (the tensors read back and the encoded file, ~2 × 13 MiB here) stay allocated until
 * V8's next major collection, so single samples rise and fall by ~25 MiB with no leak; a leak
 * raises every peak. Exits with status 1 when memory is not flat.
 *
 *   npm run bench -- soak [--steps 3000] [--every 100] [--backend cpu] [--threads N] [--rss-bound 0.05] [--warmup 500] [--window 1000] [--out DIR]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getConfig } from '../src/cli/configs.js';
import { describeBackend, makeFolder, prepareRun, selectBackend, trainOptions } from '../src/cli/train.js';
import { memory, train } from '../src/index.js';
import { mdTable, numOpt, parseArgs, printMachineInfo } from './util.js';

export const description = 'kiln train (tiny) for 3000 steps: live tensors, bytes and RSS every 100 steps must stay flat';

/** One sample of memory, after an optimizer step (its loss read, before that step's evaluation or checkpoint). */
export interface MemorySample {
  step: number;
  tensors: number;
  bytes: number;
  collected: number;
  rssMiB: number;
  heapMiB: number;
  /** Memory outside the JS heap that V8 accounts for: the cpu backend's storage, its cache, buffers awaiting collection. */
  externalMiB: number;
}

/** The verdict on a run's samples: what must be flat, and whether it is. */
export interface SoakVerdict {
  tensorsFlat: boolean;
  bytesFlat: boolean;
  collectedFlat: boolean;
  /** Peak RSS of the samples in [warmup, warmup + window) and in the last `window` steps, and the growth between them. */
  rssWarm: number;
  rssEnd: number;
  rssGrowth: number;
  rssFlat: boolean;
  flat: boolean;
}

const MiB = 2 ** 20;

/** Judge `samples`: memory() counts equal at every sample, peak RSS growth after `warmup` below `bound` (windows of `window` steps). */
export function judge(samples: readonly MemorySample[], warmup: number, bound: number, window: number): SoakVerdict {
  const same = (key: 'tensors' | 'bytes' | 'collected'): boolean => samples.every((s) => s[key] === samples[0]![key]);
  const last = samples[samples.length - 1]!.step;
  const peak = (from: number, to: number): number => Math.max(...samples.filter((s) => s.step >= from && s.step < to).map((s) => s.rssMiB));
  const rssWarm = peak(warmup, warmup + window);
  const rssEnd = peak(last - window + 1, last + 1);
  const rssGrowth = rssEnd / rssWarm - 1;
  const v = { tensorsFlat: same('tensors'), bytesFlat: same('bytes'), collectedFlat: same('collected'), rssWarm, rssEnd, rssGrowth, rssFlat: rssGrowth < bound };
  return { ...v, flat: v.tensorsFlat && v.bytesFlat && v.collectedFlat && v.rssFlat };
}

function sample(step: number): MemorySample {
  const m = memory();
  const u = process.memoryUsage();
  return { step, tensors: m.tensors, bytes: m.bytes, collected: m.collected, rssMiB: u.rss / MiB, heapMiB: u.heapUsed / MiB, externalMiB: u.external / MiB };
}

export async function main(args: string[]): Promise<void> {
  const { opts } = parseArgs(args);
  const steps = numOpt(opts, 'steps', 3000);
  const every = numOpt(opts, 'every', 100);
  const warmup = numOpt(opts, 'warmup', 500);
  const bound = numOpt(opts, 'rss-bound', 0.05);
  const window = numOpt(opts, 'window', 1000);
  const threads = opts.threads === undefined ? undefined : numOpt(opts, 'threads', 0);
  const keep = typeof opts.out === 'string';
  const out = keep ? (opts.out as string) : mkdtempSync(join(tmpdir(), 'kiln-soak-'));

  const config = getConfig('tiny');
  config.steps = steps;
  // between loss reads the loop holds two running sums (loss, gradient norm) on the device: sample where it has just read them
  if (!(warmup + window <= steps - window + 1)) throw new Error(`soak: --steps ${steps} is too short for a --warmup ${warmup} and two windows of ${window} steps`);
  if (!(every > 0 && every % config.logEvery === 0)) throw new Error(`soak: --every must be a multiple of ${config.logEvery} (the steps at which the loop reads the loss), got ${every}`);
  const backend = await selectBackend(typeof opts.backend === 'string' ? opts.backend : 'cpu', threads);
  await makeFolder(out);
  console.log(`# soak: kiln train (tiny) for ${steps} steps, memory every ${every} steps`);
  printMachineInfo();
  console.log(`- backend: ${describeBackend(backend)}; output ${out}${keep ? '' : ' (removed at the end)'}`);

  const run = await prepareRun(config, { out, backend, log: (line) => console.log(`- ${line}`) });
  const samples: MemorySample[] = [];
  const t0 = performance.now();
  try {
    const result = await train({
      ...trainOptions(config, run, { out, backend }),
      callbacks: {
        onStep: (s) => {
          if (s.step % every !== 0) return;
          const m = sample(s.step);
          samples.push(m);
          const loss = s.loss === undefined ? '' : `, loss ${s.loss.toFixed(3)}`;
          console.log(`step ${m.step}: ${m.tensors} tensors, ${m.bytes} bytes, rss ${m.rssMiB.toFixed(1)} MiB${loss} (${((performance.now() - t0) / 1000).toFixed(0)}s)`);
        },
        onEval: (e) => console.log(`step ${e.step}: validation loss ${e.valLoss.toFixed(4)}`),
        onCheckpoint: (c) => console.log(`step ${c.step}: checkpoint ${c.path}`),
      },
    });
    console.log(`\n${result.step} steps in ${((performance.now() - t0) / 1000).toFixed(0)}s (${result.msPerStep.toFixed(0)} ms/step median), final train loss ${result.loss?.toFixed(3)}, val loss ${result.valLoss?.toFixed(3)}\n`);
  } finally {
    run.trainData.close();
    run.valData.close();
    if (!keep) rmSync(out, { recursive: true, force: true });
  }

  console.log(
    mdTable(
      ['step', 'tensors', 'bytes', 'collected', 'rss MiB', 'heap MiB', 'external MiB'],
      samples.map((s) => [s.step, s.tensors, s.bytes, s.collected, Number(s.rssMiB.toFixed(1)), Number(s.heapMiB.toFixed(1)), Number(s.externalMiB.toFixed(1))]),
    ),
  );
  const v = judge(samples, warmup, bound, window);
  const first = samples[0]!;
  const range = (key: 'tensors' | 'bytes' | 'collected'): string => `${Math.min(...samples.map((s) => s[key]))}–${Math.max(...samples.map((s) => s[key]))}`;
  console.log('');
  console.log(`- live tensors: ${v.tensorsFlat ? `${first.tensors} at every sample (flat)` : `${range('tensors')} (NOT flat)`}`);
  console.log(`- live bytes: ${v.bytesFlat ? `${first.bytes} at every sample (flat)` : `${range('bytes')} (NOT flat)`}`);
  console.log(`- collected (released by the garbage collector, undisposed): ${v.collectedFlat ? `${first.collected} at every sample (flat)` : `${range('collected')} (NOT flat)`}`);
  console.log(
    `- RSS: peak ${v.rssWarm.toFixed(1)} MiB over steps ${warmup}–${warmup + window - 1}, ${v.rssEnd.toFixed(1)} MiB over the last ${window} steps: ` +
      `${(v.rssGrowth * 100).toFixed(2)}% growth (bound < ${(bound * 100).toFixed(0)}%) (${v.rssFlat ? 'flat' : 'NOT flat'})`,
  );
  const peaks: string[] = [];
  for (let from = 0; from < steps; from += window) {
    const inWindow = samples.filter((s) => s.step >= from && s.step < from + window);
    if (inWindow.length) peaks.push(`${from}–${from + window - 1}: ${Math.max(...inWindow.map((s) => s.rssMiB)).toFixed(1)}`);
  }
  console.log(`- RSS peaks (MiB) by ${window} steps: ${peaks.join(', ')}`);
  console.log(`\n**Verdict: ${v.flat ? 'memory is flat' : 'memory is NOT flat'}.**`);
  if (!v.flat) process.exitCode = 1;
}
