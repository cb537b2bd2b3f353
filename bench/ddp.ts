/**
 * Data parallel on MPI: (1) allReduce of n f32 values, kiln's `communicator().allReduce` on a
 * cpu tensor against a C program calling `MPI_Allreduce` directly (bench/native/allreduce.c,
 * built with mpicc), both under `mpirun -np 2` in the same run, median of the reps; (2) the
 * training step of a small GPT: one process on the whole batch with one thread, against two
 * processes (one thread each) on half the batch each with DistributedDataParallel, and with ZeRO
 * stages 1 and 2: tokens per second and the ratio (the goal: ≥ 1.7×), the optimizer state per rank
 * and the most memory (kiln's live tensors) one step holds.
 *
 *   npm run bench -- ddp [--sizes 262144,1048576,4194304] [--steps 20] [--model 128x4] [--batch 16]
 * @module
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdamW, DistributedDataParallel, GPT, Generator, ZeroRedundancyOptimizer, communicator, crossEntropy, memory, narrow, randint, resetPeakMemory, setNumThreads, tensor, tidy, useBackend } from '../src/index.js';
import { lastJson, mpirunCommand, mpirunVersion, runChecked, runMpi, workerArgv } from './_mpi.js';
import { fmtNum, mdTable, median, parseArgs, printMachineInfo } from './util.js';

export const description = 'MPI allreduce (kiln vs raw MPI) and 2-process data-parallel GPT step scaling';

const self = fileURLToPath(import.meta.url);

function parseModel(s: string): { C: number; L: number } {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m) throw new Error(`bench ddp: --model takes WIDTHxLAYERS, got '${s}'`);
  return { C: Number(m[1]), L: Number(m[2]) };
}

// ---- the workers (run under mpirun, or alone) ----------------------------------------------

async function allreduceWorker(n: number, reps: number): Promise<void> {
  await useBackend('cpu');
  const comm = communicator();
  const t = tensor(new Float32Array(n).fill(1e-3 * (comm.rank + 1)), [n], { backend: 'cpu' });
  for (let i = 0; i < 5; i++) await comm.allReduce(t);
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    await comm.barrier();
    const t0 = performance.now();
    await comm.allReduce(t);
    times.push(performance.now() - t0);
  }
  if (comm.rank === 0) console.log(JSON.stringify({ n, median_ms: median(times) }));
}

// one training step per iteration, the gradients averaged by DDP (after the backward: its buckets
// start from the backward itself) or by ZeRO stage 1 or 2; the median step, how much of it is the
// backward (the bucket allreduces started from it included) and the wait after it, the optimizer
// state per rank and the most one step holds at once
async function stepWorker(steps: number, C: number, L: number, mode: 'ddp' | 'zero1' | 'zero2', B: number): Promise<void> {
  await useBackend('cpu');
  setNumThreads(1);
  const comm = communicator();
  const T = 64, V = 65;
  const model = new GPT({ vocabSize: V, blockSize: T, nLayer: L, nHead: C / 32, nEmbd: C, dropout: 0, bias: true, tiedHead: true }, { backend: 'cpu', generator: new Generator(0) });
  const opt = new AdamW(model.parameters(), { lr: 3e-4 });
  const ddp = mode === 'ddp' ? await DistributedDataParallel.create(model, comm) : null;
  const zero = mode === 'ddp' ? null : await ZeroRedundancyOptimizer.create(model, opt, comm, { stage: mode === 'zero1' ? 1 : 2 });
  const gen = new Generator(1);
  const idx = randint(0, V, [B, T], { backend: 'cpu', generator: gen });
  const tgt = randint(0, V, [B, T], { backend: 'cpu', generator: gen });
  const part = B / comm.size;
  const x = narrow(idx, 0, comm.rank * part, part), y = narrow(tgt, 0, comm.rank * part, part);
  const times: number[] = [], compute: number[] = [], sync: number[] = [];
  let peak = 0;
  for (let i = 0; i < steps + 3; i++) {
    for (const p of model.parameters()) p.zeroGrad();
    if (i === 3) resetPeakMemory();
    const t0 = performance.now();
    const l = tidy(() => {
      const loss = crossEntropy(model.forward(x, null).logits, y);
      loss.backward();
      return loss;
    });
    const t1 = performance.now();
    if (zero) await zero.step();
    else {
      await ddp!.syncGradients();
      opt.step();
    }
    const t2 = performance.now();
    await l.item();
    l.dispose();
    if (i >= 3) {
      times.push(performance.now() - t0);
      compute.push(t1 - t0);
      sync.push(t2 - t1);
    }
  }
  peak = memory().peakBytes;
  let state = 0;
  if (zero) state = zero.stateBytes();
  else for (const p of model.parameters()) for (const t of Object.values(opt.stateOf(p)?.tensors ?? {})) state += t.size * 4;
  await comm.barrier();
  if (comm.rank === 0 || process.env.ALLRANKS)
    console.log(JSON.stringify({ rank: comm.rank, size: comm.size, median_ms: median(times), backward_ms: median(compute), after_ms: median(sync), tokens: B * T, state, peak, params: model.numParameters() }));
}

// ---- the driver ------------------------------------------------------------------------------

export async function main(args: string[]): Promise<void> {
  const { opts } = parseArgs(args);
  const sizes = String(opts.sizes ?? '262144,1048576,4194304').split(',').map(Number);
  const steps = Number(opts.steps ?? 20);
  const { C, L } = parseModel(String(opts.model ?? '128x4'));
  const batch = Number(opts.batch ?? 16);
  if (!Number.isInteger(batch) || batch < 2 || batch % 2) throw new Error(`bench ddp: --batch takes an even number of sequences, got '${opts.batch}'`);
  const version = mpirunVersion();
  if (version === null) {
    console.log('mpirun was not found: apt-get install openmpi-bin libopenmpi-dev');
    return;
  }
  printMachineInfo();
  console.log(`- mpirun: ${version}, ${mpirunCommand(2)}`);
  console.log(`- command: npm run bench -- ddp ${args.join(' ')}`.trimEnd());
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-ddp-'));
  const peer = join(dir, 'allreduce');
  runChecked('ddp', 'mpicc', ['-O2', fileURLToPath(new URL('./native/allreduce.c', import.meta.url)), '-o', peer]);

  const rows: (string | number)[][] = [];
  for (const n of sizes) {
    const reps = String(n >= 1 << 22 ? 20 : 40);
    const k = lastJson('ddp', runMpi('ddp', 2, workerArgv(self, ['allreduce', n, reps])));
    const c = lastJson('ddp', runMpi('ddp', 2, [peer, String(n), reps]));
    const mb = (n * 4) / 2 ** 20;
    rows.push([n, fmtNum(mb, 3), fmtNum(k.median_ms!), fmtNum(c.median_ms!), fmtNum(mb / 1024 / (k.median_ms! / 1e3), 3), fmtNum(mb / 1024 / (c.median_ms! / 1e3), 3), fmtNum(k.median_ms! / c.median_ms!)]);
  }
  console.log('\n## allReduce (sum, in place, 2 ranks)\n');
  console.log(mdTable(['f32 values', 'MiB', 'kiln ms', 'MPI (C) ms', 'kiln GiB/s', 'MPI GiB/s', 'kiln/MPI time'], rows));

  const worker = (mode: string): string[] => workerArgv(self, ['step', steps, C, L, mode, batch]);
  const one = lastJson('ddp', runChecked('ddp', process.execPath, worker('ddp').slice(1)));
  const two: Record<string, Record<string, number>> = {};
  for (const mode of ['ddp', 'zero1', 'zero2']) two[mode] = lastJson('ddp', runMpi('ddp', 2, worker(mode)));
  const tok = (r: Record<string, number>): number => r.tokens! / (r.median_ms! / 1e3);
  const mib = (b: number): string => fmtNum(b / 2 ** 20, 3);
  console.log(`\n## GPT ${C}x${L} training step (batch ${batch} × 64, ${fmtNum(one.params! / 1e6, 3)}M parameters, AdamW), one thread per process\n`);
  const row = (name: string, r: Record<string, number>): (string | number)[] => [name, fmtNum(r.median_ms!), fmtNum(r.backward_ms!), fmtNum(r.after_ms!), fmtNum(tok(r), 4), fmtNum(tok(r) / tok(one)), mib(r.state!), mib(r.peak!)];
  console.log(
    mdTable(
      ['processes', 'ms/step (median)', 'forward+backward ms', 'reduce+update ms', 'tokens/s', 'speed-up', 'optimizer state MiB/rank', 'peak MiB/rank'],
      [row('1', one), row('2, DDP', two.ddp!), row('2, ZeRO-1', two.zero1!), row('2, ZeRO-2', two.zero2!)],
    ),
  );
  console.log('\nthe goal: kiln/MPI allReduce time ≤ 1.1, and 2 processes ≥ 1.7× one.');
}

if (process.argv.includes('--worker')) {
  const i = process.argv.indexOf('--worker');
  const kind = process.argv[i + 1];
  if (kind === 'allreduce') await allreduceWorker(Number(process.argv[i + 2]), Number(process.argv[i + 3]));
  else await stepWorker(Number(process.argv[i + 2]), Number(process.argv[i + 3]), Number(process.argv[i + 4]), process.argv[i + 5] as 'ddp' | 'zero1' | 'zero2', Number(process.argv[i + 6]));
}
