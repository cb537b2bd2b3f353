/**
 * The cost model of src/distributed/cost_model.ts, printed and checked.
 * (i) GPT-2 124M, 350M, 774M and 1.5B (context 1024, 512 sequences = 524,288 tokens per step) on
 * 1, 8, 16, 32 and 64 H100s in several layouts: memory per GPU, step time with and without
 * overlap of the data-parallel communication, tokens/s and MFU, from published numbers.
 * (ii) The check: kiln's cpu backend on this machine, one thread per process. The model's device
 * is measured here: achieved FLOP/s and memory bandwidth from a 1-process step of a small GPT
 * (batch 8), the link from kiln's allreduce between 2 processes (MPI, shared memory). The model
 * then predicts the 1-process step at batch 16 and the 2-process data-parallel step (batch 8 on
 * each), which are measured in the same run; it prints both and the relative error.
 *
 *   npm run bench -- scaling [--models 128x4,256x4] [--steps 10] [--no-check]
 * @module
 */
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  ASSUMED_HBM_EFFICIENCY,
  ASSUMED_MFU,
  GPT2_SIZES,
  H100_SXM,
  H200_SXM,
  KILN_CPU_2PROC,
  estimate,
  flopsPerToken,
  gptParamCount,
  memoryPerRank,
  stepTime,
  type DeviceSpec,
  type GPTRunConfig,
  type ParallelLayout,
} from '../src/distributed/cost_model.js';
import { AdamW, DistributedDataParallel, GPT, Generator, communicator, crossEntropy, memory, narrow, randint, resetPeakMemory, setNumThreads, tensor, tidy, useBackend } from '../src/index.js';
import { lastJson, mpirunCommand, mpirunVersion, runChecked, runMpi, workerArgv } from './_mpi.js';
import { fmtNum, mdTable, median, parseArgs, printMachineInfo } from './util.js';

export const description = 'cost model: GPT-2 124M–1.5B on 1–64 H100s (memory, step time), checked against 1/2-process kiln runs';

const self = fileURLToPath(import.meta.url);
const GiB = 2 ** 30;

// ---- (i) the GPT-2 tables ------------------------------------------------------------------

const GLOBAL_BATCH = 512; // sequences of 1024: 524,288 tokens, GPT-2/GPT-3 small's ~0.5M
const SEQ = 1024;
const VOCAB = 50257;

interface Row {
  gpus: number;
  name: string;
  layout: ParallelLayout;
  microBatch: number;
}

function layouts(gpus: number, nHead: number): Row[] {
  if (gpus === 1) return [{ gpus, name: '1 GPU', layout: { dp: 1, tp: 1, pp: 1 }, microBatch: 8 }];
  const rows: Row[] = [
    { gpus, name: 'DP', layout: { dp: gpus, tp: 1, pp: 1 }, microBatch: 8 },
    { gpus, name: 'DP + ZeRO-1', layout: { dp: gpus, tp: 1, pp: 1, zeroStage: 1 }, microBatch: 8 },
    { gpus, name: 'DP + ZeRO-2', layout: { dp: gpus, tp: 1, pp: 1, zeroStage: 2 }, microBatch: 8 },
    { gpus, name: 'DP + ZeRO-3', layout: { dp: gpus, tp: 1, pp: 1, zeroStage: 3 }, microBatch: 8 },
  ];
  // Tensor parallelism within a node: the widest of 8, 4, 2 that divides the heads.
  const t = [8, 4, 2].find((x) => nHead % x === 0 && gpus % x === 0);
  if (t) rows.push({ gpus, name: `TP ${t} × DP ${gpus / t} + ZeRO-1`, layout: { dp: gpus / t, tp: t, pp: 1, zeroStage: 1 }, microBatch: 8 });
  // Pipeline of 4 stages (every GPT-2 depth is a multiple of 4), 1F1B, small micro-batches.
  rows.push({ gpus, name: `PP 4 × DP ${gpus / 4} + ZeRO-1`, layout: { dp: gpus / 4, tp: 1, pp: 4, zeroStage: 1 }, microBatch: 2 });
  return rows;
}

function gptTable(size: keyof typeof GPT2_SIZES, device: DeviceSpec, gpuCounts: number[]): string {
  const shape = GPT2_SIZES[size];
  const out: (string | number)[][] = [];
  for (const gpus of gpuCounts) {
    for (const row of layouts(gpus, shape.nHead)) {
      const cfg: GPTRunConfig = { ...shape, vocabSize: VOCAB, seqLen: SEQ, microBatch: row.microBatch, globalBatch: GLOBAL_BATCH };
      const est = estimate(cfg, row.layout, device);
      const noOverlap = stepTime(cfg, { ...row.layout, overlap: false }, device);
      const m = est.memory;
      const states = m.parameters + m.gradients + m.optimizerState + m.masterWeights + m.workspace;
      out.push([
        gpus,
        row.name,
        `${row.microBatch}×${est.time.microBatches}`,
        fmtNum(states / GiB),
        fmtNum(m.activations / GiB),
        fmtNum(m.total / GiB),
        est.fits ? 'yes' : 'no',
        fmtNum(est.time.total * 1e3),
        fmtNum(noOverlap.total * 1e3),
        fmtNum(est.tokensPerSecond / 1e6, 3),
        `${(est.mfu * 100).toFixed(1)}%`,
        fmtNum(est.time.dpExposed * 1e3 + est.time.tpComm * 1e3 + est.time.ppComm * 1e3),
        est.time.bubbleFraction > 0 ? `${(est.time.bubbleFraction * 100).toFixed(0)}%` : '—',
      ]);
    }
  }
  return mdTable(['GPUs', 'layout', 'b×m', 'model states GiB', 'activations GiB', 'total GiB', 'fits', 'step ms', 'step ms, no overlap', 'M tokens/s', 'MFU', 'exposed comm ms', 'bubble'], out);
}

function printTables(): void {
  const d = H100_SXM;
  console.log(`\n## (i) GPT-2 on H100 SXM (model, bf16 mixed precision, Adam)\n`);
  console.log(`- device: ${d.name}: ${fmtNum(d.achievedFlops.bf16 / 1e12)} TFLOP/s achieved (${ASSUMED_MFU} × 989.4 bf16 dense peak), HBM ${fmtNum(d.memoryBandwidth / 1e12, 3)} TB/s achieved (${ASSUMED_HBM_EFFICIENCY} × 3.35), ${d.memoryBytes / GiB} GiB;`);
  console.log(`  NVLink ring busbw ${d.intraNode.busBandwidth / 1e9} GB/s, α ${d.intraNode.latency * 1e6} µs; NDR IB ${d.interNode.busBandwidth / 1e9} GB/s per GPU, α ${d.interNode.latency * 1e6} µs; ${d.gpusPerNode} GPUs per node`);
  console.log(`- global batch ${GLOBAL_BATCH} × ${SEQ} = ${GLOBAL_BATCH * SEQ} tokens per step; vocab ${VOCAB}; flash attention; no recomputation; b×m = micro-batch × micro-batches per replica`);
  console.log('- model states = weights + gradients + Adam moments + fp32 master weights (+ ZeRO-3 gathered layers); the worst rank');
  for (const size of Object.keys(GPT2_SIZES) as (keyof typeof GPT2_SIZES)[]) {
    const shape = GPT2_SIZES[size];
    const n = gptParamCount({ ...shape, vocabSize: VOCAB, seqLen: SEQ }).total;
    const f = flopsPerToken({ ...shape, vocabSize: VOCAB, seqLen: SEQ }).model;
    console.log(`\n### GPT-2 ${size}: ${shape.nLayer} layers × ${shape.nEmbd}, ${shape.nHead} heads, ${n.toLocaleString('en-US')} parameters, ${fmtNum(f / 1e9)} GFLOP per token\n`);
    console.log(gptTable(size, d, [1, 8, 16, 32, 64]));
    if (shape.nHead % 2 !== 0) console.log(`\n(${shape.nHead} heads: no tensor-parallel degree of 2, 4 or 8 divides them, so no TP row.)`);
  }
  // H200 against H100 where memory matters: 1.5B on one node.
  const cfg: GPTRunConfig = { ...GPT2_SIZES['1.5B'], vocabSize: VOCAB, seqLen: SEQ, microBatch: 16, globalBatch: GLOBAL_BATCH };
  const rows = [
    { name: '1 GPU, b = 16', layout: { dp: 1, tp: 1, pp: 1 } },
    { name: 'DP 8, b = 16', layout: { dp: 8, tp: 1, pp: 1 } },
    { name: 'DP 8 + ZeRO-1, b = 16', layout: { dp: 8, tp: 1, pp: 1, zeroStage: 1 as const } },
    { name: 'DP 8 + ZeRO-1, b = 16, recompute', layout: { dp: 8, tp: 1, pp: 1, zeroStage: 1 as const, checkpointing: true } },
  ];
  console.log('\n### GPT-2 1.5B, micro-batch 16: H100 (80 GiB) against H200 (141 GB)\n');
  console.log(
    mdTable(
      ['layout', 'GiB per GPU', 'fits H100', 'fits H200', 'H100 step ms', 'H200 step ms'],
      rows.map((r) => {
        const a = estimate(cfg, r.layout, H100_SXM);
        const b = estimate(cfg, r.layout, H200_SXM);
        return [r.name, fmtNum(a.memory.total / GiB), a.fits ? 'yes' : 'no', b.fits ? 'yes' : 'no', fmtNum(a.time.total * 1e3), fmtNum(b.time.total * 1e3)];
      }),
    ),
  );
}

// ---- (ii) the check on this machine --------------------------------------------------------

const V = 65;
const T = 64;

function parseModel(s: string): { C: number; L: number } {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m || Number(m[1]) % 32 !== 0) throw new Error(`bench scaling: --models takes WIDTHxLAYERS with WIDTH a multiple of 32, got '${s}'`);
  return { C: Number(m[1]), L: Number(m[2]) };
}

/** The run: allreduce timings (with 2 ranks), then a DDP GPT step timed by phase. */
async function worker(steps: number, C: number, L: number, batchPerRank: number, sync: boolean): Promise<void> {
  await useBackend('cpu');
  setNumThreads(1);
  const comm = communicator();
  const allreduce: Record<string, number> = {};
  if (comm.size > 1) {
    for (const n of [1 << 20, 1 << 22]) {
      const t = tensor(new Float32Array(n).fill(1e-3), [n], { backend: 'cpu' });
      for (let i = 0; i < 3; i++) await comm.allReduce(t);
      const times: number[] = [];
      for (let i = 0; i < 20; i++) {
        await comm.barrier();
        const t0 = performance.now();
        await comm.allReduce(t);
        times.push(performance.now() - t0);
      }
      allreduce[n] = Math.min(...times); // the link's capability: the fastest of 20, robust to a busy core
      t.dispose();
    }
  }
  const model = new GPT({ vocabSize: V, blockSize: T, nLayer: L, nHead: C / 32, nEmbd: C, dropout: 0, bias: true, tiedHead: true }, { backend: 'cpu', generator: new Generator(0) });
  const params = model.parameters().reduce((s, p) => s + p.size, 0);
  const ddp = await DistributedDataParallel.create(model, comm);
  const gen = new Generator(1);
  const B = batchPerRank * comm.size;
  const idx = randint(0, V, [B, T], { backend: 'cpu', generator: gen });
  const tgt = randint(0, V, [B, T], { backend: 'cpu', generator: gen });
  // Without sync every rank trains on the same rows alone: what sharing the machine costs.
  const first = sync ? comm.rank * batchPerRank : 0;
  const x = narrow(idx, 0, first, batchPerRank);
  const y = narrow(tgt, 0, first, batchPerRank);
  const opt = new AdamW(model.parameters(), { lr: 3e-4 });
  const step: number[] = [], compute: number[] = [], syncMs: number[] = [], update: number[] = [];
  let peakBytes = 0;
  for (let i = 0; i < steps + 3; i++) {
    if (i === 3) resetPeakMemory();
    await comm.barrier();
    const t0 = performance.now();
    const l = tidy(() => {
      const loss = crossEntropy(model.forward(x, null).logits, y);
      opt.zeroGrad();
      loss.backward();
      return loss;
    });
    const t1 = performance.now();
    if (sync) await ddp.syncGradients();
    const t2 = performance.now();
    opt.step();
    await l.item();
    const t3 = performance.now();
    l.dispose();
    if (i >= 3) {
      step.push(t3 - t0);
      compute.push(t1 - t0);
      syncMs.push(t2 - t1);
      update.push(t3 - t2);
    }
  }
  peakBytes = memory().peakBytes;
  // The slowest rank sets the step: report the larger of the ranks' medians.
  const mine = [median(step), median(compute), median(syncMs), median(update)];
  const all = comm.size > 1 ? await gatherMax(comm, mine) : mine;
  await comm.barrier();
  if (comm.rank === 0) console.log(JSON.stringify({ size: comm.size, params, batchPerRank, step_ms: all[0], compute_ms: all[1], sync_ms: all[2], opt_ms: all[3], peakBytes, allreduce }));
}

/** Elementwise maximum of a few numbers over the ranks. */
async function gatherMax(comm: ReturnType<typeof communicator>, xs: number[]): Promise<number[]> {
  const t = tensor(new Float32Array(xs), [xs.length], { backend: 'cpu' });
  await comm.allReduce(t, 'max');
  const out = Array.from(await t.data());
  t.dispose();
  return out;
}

interface Measured {
  size: number;
  params: number;
  batchPerRank: number;
  step_ms: number;
  compute_ms: number;
  sync_ms: number;
  opt_ms: number;
  peakBytes: number;
  allreduce: Record<string, number>;
}

function pct(model: number, measured: number): string {
  const e = (model - measured) / measured;
  return `${e >= 0 ? '+' : ''}${(e * 100).toFixed(1)}%`;
}

function check(C: number, L: number, steps: number): { device: DeviceSpec; lines: (string | number)[][] } {
  const workerArgs = (b: number, sync = true): string[] => workerArgv(self, [steps, C, L, b, sync ? 'sync' : 'nosync']);
  const oneProcess = (b: number): Measured => lastJson<Measured>('scaling', runChecked('scaling', process.execPath, workerArgs(b).slice(1)));
  const one8 = oneProcess(8);
  const one16 = oneProcess(16);
  const two8 = lastJson<Measured>('scaling', runMpi('scaling', 2, workerArgs(8)));
  const alone8 = lastJson<Measured>('scaling', runMpi('scaling', 2, workerArgs(8, false)));

  const shape = { nLayer: L, nEmbd: C, nHead: C / 32, vocabSize: V, seqLen: T };
  const n = gptParamCount(shape).total;
  if (n !== one8.params) throw new Error(`bench scaling: the model counts ${n} parameters, kiln's GPT has ${one8.params}`);
  // Calibration (1 process, batch 8): FLOP/s from forward+backward, bandwidth from the update.
  const flops = flopsPerToken(shape).hardware * 8 * T;
  const achieved = flops / (one8.compute_ms / 1e3);
  const bandwidth = (28 * n) / (one8.opt_ms / 1e3);
  // The link, from two allreduce sizes on 2 ranks (the fastest of 20 each): t = 2α + n/β at p = 2.
  const [n1, n2] = [(1 << 20) * 4, (1 << 22) * 4];
  const [t1, t2] = [two8.allreduce[1 << 20]! / 1e3, two8.allreduce[1 << 22]! / 1e3];
  // β from the larger (where 2α is negligible), then α from the smaller: a two-point slope
  // would go negative when a busy core slows the small one.
  const beta = n2 / t2;
  const alpha = Math.max(0, (t1 - n1 / beta) / 2);
  const device: DeviceSpec = {
    ...KILN_CPU_2PROC,
    peakFlops: { bf16: achieved, fp32: achieved },
    achievedFlops: { bf16: achieved, fp32: achieved },
    memoryBandwidth: bandwidth,
    intraNode: { busBandwidth: beta, latency: alpha },
  };
  const cfg = (b: number, g: number): GPTRunConfig => ({ ...shape, microBatch: b, globalBatch: g });
  // kiln's DDP does not overlap its allreduce with the backward yet; kiln's runs are f32.
  const base: ParallelLayout = { dp: 1, tp: 1, pp: 1, precision: 'fp32', overlap: false };
  const m8 = stepTime(cfg(8, 8), base, device);
  const m16 = stepTime(cfg(16, 16), base, device);
  const m2 = stepTime(cfg(8, 16), { ...base, dp: 2 }, device);
  const mem1 = memoryPerRank(cfg(8, 8), base);
  const ms = (s: number): string => fmtNum(s * 1e3);
  const lines: (string | number)[][] = [
    [`${C}x${L}`, '1 process, batch 8 (calibration)', ms(m8.total), fmtNum(one8.step_ms), pct(m8.total * 1e3, one8.step_ms), `${ms(m8.compute)} / ${fmtNum(one8.compute_ms)}`, `— / ${fmtNum(one8.sync_ms)}`, `${ms(m8.optimizer)} / ${fmtNum(one8.opt_ms)}`],
    [`${C}x${L}`, '1 process, batch 16', ms(m16.total), fmtNum(one16.step_ms), pct(m16.total * 1e3, one16.step_ms), `${ms(m16.compute)} / ${fmtNum(one16.compute_ms)}`, `— / ${fmtNum(one16.sync_ms)}`, `${ms(m16.optimizer)} / ${fmtNum(one16.opt_ms)}`],
    [`${C}x${L}`, '2 processes, batch 8 each, no allreduce', ms(m8.total), fmtNum(alone8.step_ms), pct(m8.total * 1e3, alone8.step_ms), `${ms(m8.compute)} / ${fmtNum(alone8.compute_ms)}`, '— / —', `${ms(m8.optimizer)} / ${fmtNum(alone8.opt_ms)}`],
    [`${C}x${L}`, '2 processes (DDP), compute and update taken from the row above', fmtNum(alone8.compute_ms + alone8.opt_ms + m2.dpExposed * 1e3), fmtNum(two8.step_ms), pct(alone8.compute_ms + alone8.opt_ms + m2.dpExposed * 1e3, two8.step_ms), `${fmtNum(alone8.compute_ms)} / ${fmtNum(two8.compute_ms)}`, `${ms(m2.dpExposed)} / ${fmtNum(two8.sync_ms)}`, `${fmtNum(alone8.opt_ms)} / ${fmtNum(two8.opt_ms)}`],
    [`${C}x${L}`, '2 processes (DDP), batch 8 each', ms(m2.total), fmtNum(two8.step_ms), pct(m2.total * 1e3, two8.step_ms), `${ms(m2.compute)} / ${fmtNum(two8.compute_ms)}`, `${ms(m2.dpExposed)} / ${fmtNum(two8.sync_ms)}`, `${ms(m2.optimizer)} / ${fmtNum(two8.opt_ms)}`],
  ];
  console.log(
    `- ${C}x${L} (${n.toLocaleString('en-US')} parameters): measured ${fmtNum(achieved / 1e9)} GFLOP/s (forward+backward, batch 8), ${fmtNum(bandwidth / 1e9)} GB/s in AdamW, ` +
      `allreduce α ${fmtNum(alpha * 1e6)} µs, β ${fmtNum(beta / 1e9)} GB/s (${fmtNum(t1 * 1e3)} ms for 4 MiB, ${fmtNum(t2 * 1e3)} ms for 16 MiB); ` +
      `speed-up of 2 processes: measured ${fmtNum(one16.step_ms / two8.step_ms)}×, model ${fmtNum(m16.total / m2.total)}×; ` +
      `memory per rank (1 process, batch 8): model ${fmtNum(mem1.total / 2 ** 20)} MiB, kiln's peakBytes ${fmtNum(one8.peakBytes / 2 ** 20)} MiB`,
  );
  return { device, lines };
}

export async function main(args: string[]): Promise<void> {
  const { opts } = parseArgs(args);
  const steps = Number(opts.steps ?? 10);
  const models = String(opts.models ?? '128x4,256x4').split(',').map(parseModel);
  printMachineInfo();
  console.log(`- command: npm run bench -- scaling ${args.join(' ')}`.trimEnd());
  printTables();
  if (opts['no-check']) return;
  const version = mpirunVersion();
  if (version === null) {
    console.log('\n(ii) skipped: mpirun was not found (apt-get install openmpi-bin libopenmpi-dev)');
    return;
  }
  console.log(`\n## (ii) The model against kiln on this machine (cpu backend, 1 thread per process, f32, GPT vocab ${V}, context ${T})\n`);
  console.log(`- mpirun: ${version}, ${mpirunCommand(2)}; ${steps} timed steps after 3, median, the slower rank`);
  const rows: (string | number)[][] = [];
  const load0 = loadavg()[0]!;
  for (const { C, L } of models) rows.push(...check(C, L, steps).lines);
  console.log(`- load average (1 min) before and after: ${load0.toFixed(2)}, ${loadavg()[0]!.toFixed(2)} on ${availableParallelism()} cores`);
  console.log('');
  console.log(mdTable(['model', 'run', 'model ms', 'measured ms', 'error', 'compute ms (model / measured)', 'allreduce ms (exposed / measured sync)', 'optimizer ms (model / measured)'], rows));
}

if (process.argv.includes('--worker')) {
  const i = process.argv.indexOf('--worker');
  await worker(Number(process.argv[i + 1]), Number(process.argv[i + 2]), Number(process.argv[i + 3]), Number(process.argv[i + 4]), process.argv[i + 5] !== 'nosync');
}
