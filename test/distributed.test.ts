/**
 * Distributed training on MPI: test/mpi/ddp_check.mts runs under `mpirun -np 2` and checks the
 * collectives on every dtype (and that ranks passing different shapes get an Error, not a hang),
 * then trains a GPT with DistributedDataParallel, each rank on half of a batch; its parameters
 * after 5 AdamW steps must equal one process's on the whole batch. Without mpirun or the MPI addon
 * this file says why and skips, unless KILN_REQUIRE_MPI=1 (CI), where that is a failure.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AdamW, GPT, Generator, communicator, randint, tensor } from '../src/index.js';
import { DDP_BATCH, DDP_CONFIG, groupedAdamW, trainWhole } from './mpi/ddp_config.js';
import { mpiMissing, mpirun2 } from './mpi/launch.js';

const script = fileURLToPath(new URL('./mpi/ddp_check.mts', import.meta.url));
const missing = mpiMissing();
if (missing && process.env.KILN_REQUIRE_MPI !== '1') console.warn(`[kiln tests] distributed (MPI) skipped: ${missing}`);

describe('a single-process communicator', () => {
  it('is the identity, and names what it cannot do', async () => {
    const c = communicator({ kind: 'local' });
    expect([c.rank, c.size, c.kind]).toEqual([0, 1, 'local']);
    const t = tensor([1, 2], [2]);
    await c.allReduce(t, 'mean');
    expect(Array.from(await t.data())).toEqual([1, 2]);
    expect((await c.allGather(t)).shape).toEqual([1, 2]);
    await expect(c.send(t, 0)).rejects.toThrow(/^send: a single-process communicator has no other rank/);
    await expect(c.allReduce(5 as never)).rejects.toThrow(/^allReduce: expected a Tensor, got 5/);
    expect(() => communicator({ kind: 'nccl' as never })).toThrow(/^communicator: kind must be mpi or local, got 'nccl'/);
  });
});

describe.skipIf(missing !== null && process.env.KILN_REQUIRE_MPI !== '1')(`MPI, 2 processes${missing ? `: ${missing}` : ''}`, () => {
  it('collectives, a shape mismatch, and data parallel training equal to one process on the whole batch', async () => {
    if (missing) throw new Error(`KILN_REQUIRE_MPI=1 but ${missing}`);
    const out = mkdtempSync(join(tmpdir(), 'kiln-mpi-'));
    try {
      const r = mpirun2(script, [out], {}, 180_000);
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      const ranks = [0, 1].map((i) => JSON.parse(readFileSync(join(out, `rank${i}.json`), 'utf8')) as Record<string, unknown>);
      for (const [i, s] of ranks.entries()) {
        expect(s).toMatchObject({ rank: i, size: 2, kind: 'mpi', sum: [3, 6, -1], max: [1, 5], meanBf16: [1, 1], broadcast: [11, 12], allGather: [0, 0.25, 1, 1.25] });
        expect(s.mismatch).toBe('allReduce: the ranks disagree on the tensor: rank 0 [2] f32, rank 1 [3] f32');
      }
      expect(ranks.map((s) => s.reduceScatter)).toEqual([
        [3, 6],
        [9, 12],
      ]);
      // the ranks end equal, and equal to one process on the whole batch
      const [p0, p1] = ranks.map((s) => s.params as Record<string, number[]>);
      expect(p1).toEqual(p0);
      const gen = new Generator(5);
      const idx = randint(0, DDP_CONFIG.vocabSize, [DDP_BATCH, DDP_CONFIG.blockSize], { generator: gen });
      const tgt = randint(0, DDP_CONFIG.vocabSize, [DDP_BATCH, DDP_CONFIG.blockSize], { generator: gen });
      // |got − want| ≤ 1e-4 + 1e-3·|want|: the keys' bias has a zero gradient up to rounding (softmax
      // ignores a constant added to every score), and Adam normalises that noise into steps of up
      // to lr, so those entries differ by ~2e-5 whatever the summation order; the rest by ~1e-7
      const worstAgainst = async (model: GPT, got: Record<string, number[]>): Promise<number> => {
        let worst = 0;
        for (const [name, p] of model.namedParameters()) {
          const want = Array.from(await p.data());
          expect(got[name]!.length, name).toBe(want.length);
          for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[name]![i]! - want[i]!) / (1e-4 + 1e-3 * Math.abs(want[i]!)));
        }
        return worst;
      };
      const model = new GPT(DDP_CONFIG, { generator: new Generator(100) }); // rank 0's initial weights
      await trainWhole(model, new AdamW(model.parameters(), { lr: 1e-2 }), idx, tgt);
      const worst = await worstAgainst(model, p0!);
      console.log(`[mpi] data parallel on 2 ranks against 1 process, after 5 AdamW steps: worst difference ${worst.toFixed(3)} of the tolerance`);
      expect(worst).toBeLessThan(1);

      // accumulation over two micro-batches per rank, the first without a reduction
      const acc = ranks.map((s) => s.accumulated as Record<string, number[]>);
      expect(acc[1]).toEqual(acc[0]);
      expect(ranks[0]!.reductionsInNoSync).toEqual([0, 0, 0, 0, 0]);
      expect(ranks[0]!.reductionsPerStep).toBeGreaterThan(1); // one per bucket, from the last micro-batch's backward
      const wAcc = await worstAgainst(model, acc[0]!);
      console.log(`[mpi] data parallel with 2 accumulated micro-batches per rank (noSync) against 1 process: worst difference ${wAcc.toFixed(3)} of the tolerance`);
      expect(wAcc).toBeLessThan(1);

      // ZeRO 1 and 2 (two parameter groups): the ranks agree, and equal one process with those groups
      const grouped = new GPT(DDP_CONFIG, { generator: new Generator(100) });
      await trainWhole(grouped, groupedAdamW(grouped), idx, tgt);
      for (const stage of [1, 2]) {
        const [z0, z1] = ranks.map((s) => s[`zero${stage}`] as Record<string, number[]>);
        expect(z1).toEqual(z0);
        const w = await worstAgainst(grouped, z0!);
        console.log(`[mpi] ZeRO stage ${stage} on 2 ranks against 1 process, after 5 AdamW steps: worst difference ${w.toFixed(3)} of the tolerance`);
        expect(w).toBeLessThan(1);
      }
      grouped.dispose();
      model.dispose();
      // memory per rank: Adam's state (m and v, 2N values) against ZeRO's (m, v and the f32 copy
      // of 1/size of the parameters each: 3N/2 here), and the most a step holds at once
      const mem = ranks[0]!.memory as Record<string, { state: number; peak: number }>;
      console.log(`[mpi] memory per rank (bytes): optimizer state ddp ${mem.ddp!.state}, zero1 ${mem.zero1!.state}, zero2 ${mem.zero2!.state}; step peak ddp ${mem.ddp!.peak}, zero1 ${mem.zero1!.peak}, zero2 ${mem.zero2!.peak}`);
      const n = mem.ddp!.state / 8; // parameters: Adam keeps two f32 values of each
      for (const z of [mem.zero1!, mem.zero2!]) {
        expect(z.state).toBeGreaterThanOrEqual((3 * n * 4) / 2);
        expect(z.state).toBeLessThan((3 * n * 4) / 2 + 3 * 4 * 16); // + the padding: under size elements per bucket
      }
      expect(mem.zero1!.peak).toBeLessThan(mem.ddp!.peak);
      expect(mem.zero2!.peak).toBeLessThan(mem.zero1!.peak);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 200_000);

  it('kiln train --nproc 2, resumed by one process, ends where one process alone does', () => {
    if (missing) throw new Error(`KILN_REQUIRE_MPI=1 but ${missing}`);
    const dir = mkdtempSync(join(tmpdir(), 'kiln-nproc-'));
    try {
      const words = 'the quick brown fox jumps over a lazy dog while seven bold kings sing of rivers and stone'.split(' ');
      const paragraphs = Array.from({ length: 60 }, (_, i) => Array.from({ length: 40 }, (_, j) => words[(i * 7 + j * 3 + ((i * j) % 5)) % words.length]).join(' '));
      writeFileSync(join(dir, 'corpus.txt'), paragraphs.join('\n\n'));
      const bin = fileURLToPath(new URL('../bin/kiln.mjs', import.meta.url));
      const common = ['--data', join(dir, 'corpus.txt'), '--vocab-size', '300', '--n-layer', '1', '--n-head', '2', '--n-embd', '32', '--block-size', '16', '--batch-size', '4', '--dropout', '0', '--precision', 'f32', '--eval-every', '0', '--sample-tokens', '4', '--backend', 'cpu', '--log-every', '1'];
      const kiln = (args: string[]): string => {
        const r = spawnSync(process.execPath, [bin, 'train', ...args], { encoding: 'utf8', env: { ...process.env, KILN_NUM_THREADS: '1' }, timeout: 180_000 });
        expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
        return r.stdout + r.stderr;
      };
      const metrics = (d: string): { trainLoss: number; valLoss: number } => JSON.parse(readFileSync(join(dir, d, 'metrics.json'), 'utf8'));
      const close = (what: string, a: { trainLoss: number; valLoss: number }, b: { trainLoss: number; valLoss: number }): void => {
        console.log(`[mpi] kiln train, ${what}: val loss ${a.valLoss.toFixed(6)} vs ${b.valLoss.toFixed(6)}, train loss ${a.trainLoss} vs ${b.trainLoss}`);
        expect(Math.abs(a.valLoss - b.valLoss)).toBeLessThan(1e-4);
        expect(Math.abs(a.trainLoss - b.trainLoss)).toBeLessThan(1e-4);
      };
      // 6 steps with a checkpoint at 3: on 2 ranks (a) and on one process (b)
      const two = kiln([...common, '--nproc', '2', '--steps', '6', '--checkpoint-every', '3', '--out', join(dir, 'a')]);
      expect(two).toMatch(/data parallel over 2 processes \(MPI\)/);
      kiln([...common, '--steps', '6', '--checkpoint-every', '3', '--out', join(dir, 'b')]);
      const [a, b] = [metrics('a'), metrics('b')];
      close('2 ranks against 1 process', a, b);
      // each resumed from its step-3 checkpoint on the other number of processes
      const resume = ['--resume', '--backend', 'cpu', '--sample-tokens', '4'];
      rmSync(join(dir, 'a', 'ckpt-00000006.safetensors'));
      kiln([...resume, '--out', join(dir, 'a')]);
      close('2 ranks to step 3, then 1 process, against 1 process', metrics('a'), b);
      rmSync(join(dir, 'b', 'ckpt-00000006.safetensors'));
      kiln([...resume, '--nproc', '2', '--out', join(dir, 'b')]);
      close('1 process to step 3, then 2 ranks, against 2 ranks', metrics('b'), a);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 200_000);

  it('a rank that dies, throws or leaves early ends the job with a message instead of a hang', () => {
    if (missing) throw new Error(`KILN_REQUIRE_MPI=1 but ${missing}`);
    const dead = fileURLToPath(new URL('./mpi/dead_rank.mts', import.meta.url));
    const expectations: [string, RegExp][] = [
      ['exits', /rank 0: MPI_\w+ has waited 2 s for the other ranks: another rank has died, hangs, or is not making the same call/],
      ['killed', /signal 9|Killed/i],
      ['throws', /rank 1 failed on purpose/],
    ];
    for (const [mode, message] of expectations) {
      const t0 = Date.now();
      const r = mpirun2(dead, [mode], { KILN_MPI_TIMEOUT: '2' }, 60_000);
      const seconds = (Date.now() - t0) / 1000;
      console.log(`[mpi] rank 1 ${mode}: the job ended in ${seconds.toFixed(1)} s with status ${r.status}`);
      expect(r.signal, `mpirun hung (${mode})`).toBeNull();
      expect(r.status, `${r.stdout}\n${r.stderr}`).not.toBe(0);
      expect(`${r.stdout}\n${r.stderr}`).toMatch(message);
      expect(r.stdout).not.toMatch(/should not have/);
    }
  }, 200_000);
});
