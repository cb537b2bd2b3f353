/**
 * Data parallel on MPI: (1) allReduce of n f32 values, kiln's `communicator().allReduce` on a
 * cpu tensor against a C program calling `MPI_Allreduce` directly (bench/native/allreduce.c,
 * built with mpicc), both under `mpirun -np 2` in the same run, median of the reps; (2) the
 * training step of a small GPT: one process on the whole batch with one thread, against two
 * processes (one thread each) on half the batch each with DistributedDataParallel: tokens per
 * second and the ratio (the goal: ≥ 1.7×).
 *
 *   npm run bench -- ddp [--sizes 262144,1048576,4194304] [--steps 20] [--model 128x4]
 * @module
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdamW, DistributedDataParallel, GPT, Generator, communicator, crossEntropy, narrow, randint, setNumThreads, tensor, tidy, useBackend } from '../src/index.js';
import { fmtNum, mdTable, median, parseArgs, printMachineInfo } from './util.js';

export const description = 'MPI allreduce (kiln vs raw MPI) and 2-process data-parallel GPT step scaling';

const MPIRUN = ['--allow-run-as-root', '--oversubscribe', '--bind-to', 'none', '--mca', 'btl', 'self,vader', '-np'];
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

async function stepWorker(steps: number, C: number, L: number): Promise<void> {
  await useBackend('cpu');
  setNumThreads(1);
  const comm = communicator();
  const B = 16, T = 64, V = 65;
  const model = new GPT({ vocabSize: V, blockSize: T, nLayer: L, nHead: C / 32, nEmbd: C, dropout: 0, bias: true, tiedHead: true }, { backend: 'cpu', generator: new Generator(0) });
  const ddp = await DistributedDataParallel.create(model, comm);
  const gen = new Generator(1);
  const idx = randint(0, V, [B, T], { backend: 'cpu', generator: gen });
  const tgt = randint(0, V, [B, T], { backend: 'cpu', generator: gen });
  const part = B / comm.size;
  const x = narrow(idx, 0, comm.rank * part, part), y = narrow(tgt, 0, comm.rank * part, part);
  const opt = new AdamW(model.parameters(), { lr: 3e-4 });
  const times: number[] = [], compute: number[] = [], sync: number[] = [];
  for (let i = 0; i < steps + 3; i++) {
    const t0 = performance.now();
    const l = tidy(() => {
      const loss = crossEntropy(model.forward(x, null).logits, y);
      opt.zeroGrad();
      loss.backward();
      return loss;
    });
    const t1 = performance.now();
    await ddp.syncGradients();
    const t2 = performance.now();
    opt.step();
    await l.item();
    l.dispose();
    if (i >= 3) {
      times.push(performance.now() - t0);
      compute.push(t1 - t0);
      sync.push(t2 - t1);
    }
  }
  await comm.barrier();
  if (comm.rank === 0 || process.env.ALLRANKS) console.log(JSON.stringify({ rank: comm.rank, size: comm.size, median_ms: median(times), compute_ms: median(compute), sync_ms: median(sync), tokens: B * T }));
}

// ---- the driver ------------------------------------------------------------------------------

function lastJson(out: string): Record<string, number> {
  const line = out.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) throw new Error(`bench ddp: a worker printed no result:\n${out.slice(-2000)}`);
  return JSON.parse(line) as Record<string, number>;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, KILN_NUM_THREADS: '1', ...env }, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`bench ddp: ${cmd} ${args.join(' ')} failed (${r.status}): ${(r.stderr || r.stdout).slice(-2000)}`);
  return r.stdout;
}

export async function main(args: string[]): Promise<void> {
  const { opts } = parseArgs(args);
  const sizes = String(opts.sizes ?? '262144,1048576,4194304').split(',').map(Number);
  const steps = Number(opts.steps ?? 20);
  const { C, L } = parseModel(String(opts.model ?? '128x4'));
  if (spawnSync('mpirun', ['--version']).status !== 0) {
    console.log('mpirun was not found: apt-get install openmpi-bin libopenmpi-dev');
    return;
  }
  printMachineInfo();
  console.log(`- mpirun: ${spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]}, ${MPIRUN.join(' ')} 2`);
  console.log(`- command: npm run bench -- ddp ${args.join(' ')}`.trimEnd());
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-ddp-'));
  const peer = join(dir, 'allreduce');
  run('mpicc', ['-O2', fileURLToPath(new URL('./native/allreduce.c', import.meta.url)), '-o', peer]);

  const rows: (string | number)[][] = [];
  for (const n of sizes) {
    const reps = String(n >= 1 << 22 ? 20 : 40);
    const k = lastJson(run('mpirun', [...MPIRUN, '2', process.execPath, '--import', 'tsx', self, '--worker', 'allreduce', String(n), reps]));
    const c = lastJson(run('mpirun', [...MPIRUN, '2', peer, String(n), reps]));
    const mb = (n * 4) / 2 ** 20;
    rows.push([n, fmtNum(mb, 3), fmtNum(k.median_ms!), fmtNum(c.median_ms!), fmtNum(mb / 1024 / (k.median_ms! / 1e3), 3), fmtNum(mb / 1024 / (c.median_ms! / 1e3), 3), fmtNum(k.median_ms! / c.median_ms!)]);
  }
  console.log('\n## allReduce (sum, in place, 2 ranks)\n');
  console.log(mdTable(['f32 values', 'MiB', 'kiln ms', 'MPI (C) ms', 'kiln GiB/s', 'MPI GiB/s', 'kiln/MPI time'], rows));

  const one = lastJson(run(process.execPath, ['--import', 'tsx', self, '--worker', 'step', String(steps), String(C), String(L)]));
  const two = lastJson(run('mpirun', [...MPIRUN, '2', process.execPath, '--import', 'tsx', self, '--worker', 'step', String(steps), String(C), String(L)]));
  const tok = (r: Record<string, number>): number => r.tokens! / (r.median_ms! / 1e3);
  console.log(`\n## GPT ${C}x${L} training step (batch 16 × 64), one thread per process\n`);
  console.log(
    mdTable(
      ['processes', 'ms/step (median)', 'tokens/s', 'speed-up'],
      [
        [1, fmtNum(one.median_ms!), fmtNum(tok(one), 4), '1.00'],
        [2, fmtNum(two.median_ms!), fmtNum(tok(two), 4), fmtNum(tok(two) / tok(one))],
      ],
    ),
  );
  console.log('\nthe goal: kiln/MPI allReduce time ≤ 1.1, and 2 processes ≥ 1.7× one.');
}

if (process.argv.includes('--worker')) {
  const i = process.argv.indexOf('--worker');
  const kind = process.argv[i + 1];
  if (kind === 'allreduce') await allreduceWorker(Number(process.argv[i + 2]), Number(process.argv[i + 3]));
  else await stepWorker(Number(process.argv[i + 2]), Number(process.argv[i + 3]), Number(process.argv[i + 4]));
}
