/**
 * Run by test/distributed.test.ts under `mpirun -np 2`: each rank checks the collectives and
 * trains the shared model on its half of a batch with DistributedDataParallel; rank 0 writes what
 * it saw (and the final parameters) to OUT/rank0.json, rank 1 to OUT/rank1.json.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW, DistributedDataParallel, GPT, Generator, ZeroRedundancyOptimizer, communicator, crossEntropy, memory, narrow, randint, resetPeakMemory, tensor, tidy } from '../../src/index.js';
import { DDP_BATCH, DDP_CONFIG, DDP_STEPS, groupedAdamW } from './ddp_config.js';

const out = process.argv[2]!;
const comm = communicator();
const { rank, size } = comm;
const seen: Record<string, unknown> = { rank, size, kind: comm.kind };
const vals = async (t: { data(): Promise<ArrayLike<number>>; dispose(): void }): Promise<number[]> => {
  const v = Array.from(await t.data());
  t.dispose();
  return v;
};

// collectives on small tensors of each dtype
const s = tensor([rank + 1, 2 * (rank + 1), -rank], [3]);
await comm.allReduce(s, 'sum');
seen.sum = await vals(s);
const m = tensor([rank, 5 - rank], [2], { dtype: 'i32' });
await comm.allReduce(m, 'max');
seen.max = await vals(m);
const mean = tensor([rank + 0.5, 1], [2], { dtype: 'bf16' });
await comm.allReduce(mean, 'mean');
seen.meanBf16 = await vals(mean);
const b = tensor([rank * 10 + 1, rank * 10 + 2], [2], { dtype: 'f64' });
await comm.broadcast(b, 1);
seen.broadcast = await vals(b);
seen.allGather = await vals(await comm.allGather(tensor([rank, rank + 0.25], [2])));
seen.reduceScatter = await vals(await comm.reduceScatter(tensor([1, 2, 3, 4], [4]).mul(rank + 1)));
try {
  await comm.allReduce(tensor(new Array(rank + 2).fill(1), [rank + 2]));
  seen.mismatch = 'accepted';
} catch (e) {
  seen.mismatch = (e as Error).message;
}

// data parallel: the same model (rank 0's weights), each rank on its half of one batch
const model = new GPT(DDP_CONFIG, { generator: new Generator(100 + rank) }); // different on purpose: create() broadcasts rank 0's
const ddp = await DistributedDataParallel.create(model, comm, { bucketBytes: 4096 });
const gen = new Generator(5);
const idx = randint(0, DDP_CONFIG.vocabSize, [DDP_BATCH, DDP_CONFIG.blockSize], { generator: gen });
const tgt = randint(0, DDP_CONFIG.vocabSize, [DDP_BATCH, DDP_CONFIG.blockSize], { generator: gen });
const half = DDP_BATCH / size;
const myIdx = narrow(idx, 0, rank * half, half);
const myTgt = narrow(tgt, 0, rank * half, half);
const opt = new AdamW(model.parameters(), { lr: 1e-2 });
const losses: number[] = [];
for (let step = 0; step < DDP_STEPS; step++) {
  const l = tidy(() => {
    const loss = crossEntropy(model.forward(myIdx, null).logits, myTgt);
    opt.zeroGrad();
    loss.backward();
    return loss;
  });
  await ddp.syncGradients();
  opt.step();
  losses.push(await l.item());
  l.dispose();
}
seen.losses = losses;
seen.params = await paramsOf(model);
ddp.dispose();

// gradient accumulation: each rank's half in two micro-batches, the first under noSync
{
  const m = new GPT(DDP_CONFIG, { generator: new Generator(100 + rank) });
  // counts the allreduces, to see that noSync makes none
  let reductions = 0;
  const counting = new Proxy(comm, {
    get: (target, key) => (key === 'allReduce' ? (...a: Parameters<typeof comm.allReduce>) => (reductions++, target.allReduce(...a)) : Reflect.get(target, key)),
  });
  const d = await DistributedDataParallel.create(m, counting, { bucketBytes: 4096 });
  const o = new AdamW(m.parameters(), { lr: 1e-2 });
  const quarter = half / 2;
  const inNoSync: number[] = [];
  const micro = (j: number): void =>
    tidy(() => {
      const x = narrow(myIdx, 0, j * quarter, quarter), y = narrow(myTgt, 0, j * quarter, quarter);
      crossEntropy(m.forward(x, null).logits, y).div(2).backward();
    });
  for (let step = 0; step < DDP_STEPS; step++) {
    o.zeroGrad();
    const before = reductions;
    await d.noSync(() => micro(0));
    inNoSync.push(reductions - before);
    micro(1);
    await d.syncGradients();
    o.step();
  }
  seen.accumulated = await paramsOf(m);
  seen.reductionsInNoSync = inNoSync;
  seen.reductionsPerStep = reductions / DDP_STEPS;
  d.dispose();
  m.dispose();
}

// ZeRO stages 1 and 2, from the same initial weights and with two parameter groups
for (const stage of [1, 2] as const) {
  const m = new GPT(DDP_CONFIG, { generator: new Generator(100 + rank) });
  const zero = await ZeroRedundancyOptimizer.create(m, groupedAdamW(m), comm, { stage, bucketBytes: 4096 });
  for (let i = 0; i < DDP_STEPS; i++) await stepOf(m, zero)();
  seen[`zero${stage}`] = await paramsOf(m);
  zero.dispose();
  m.dispose();
}

// memory per rank: the optimizer state, and the most a step holds at once (everything of the
// setup: parameters, state, buckets, gradients, activations), for DDP and ZeRO 1 and 2
const mem: Record<string, { state: number; peak: number }> = {};
for (const kind of ['ddp', 'zero1', 'zero2'] as const) {
  const base = memory().bytes;
  const m = new GPT(DDP_CONFIG, { generator: new Generator(7) });
  const o = groupedAdamW(m);
  const wrapped = kind === 'ddp' ? await DistributedDataParallel.create(m, comm, { bucketBytes: 4096 }) : await ZeroRedundancyOptimizer.create(m, o, comm, { stage: kind === 'zero1' ? 1 : 2, bucketBytes: 4096 });
  const opt = wrapped instanceof ZeroRedundancyOptimizer ? wrapped : { zeroGrad: () => o.zeroGrad(), step: async () => { await wrapped.syncGradients(); o.step(); } };
  const step = stepOf(m, opt);
  await step();
  for (const p of m.parameters()) p.zeroGrad();
  resetPeakMemory();
  await step();
  const peak = memory().peakBytes - base;
  let state = 0;
  if (wrapped instanceof ZeroRedundancyOptimizer) state = wrapped.stateBytes();
  else for (const p of m.parameters()) for (const t of Object.values(o.stateOf(p)?.tensors ?? {})) state += t.size * 4;
  mem[kind] = { state, peak };
  for (const p of m.parameters()) for (const t of Object.values(o.stateOf(p)?.tensors ?? {})) t.dispose();
  wrapped.dispose();
  m.dispose();
}
seen.memory = mem;

async function paramsOf(m: GPT): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [name, p] of m.namedParameters()) out[name] = Array.from(await p.data());
  return out;
}

function stepOf(m: GPT, opt: { zeroGrad(): void; step(): void | Promise<void> }): () => Promise<void> {
  return async () => {
    const l = tidy(() => {
      const loss = crossEntropy(m.forward(myIdx, null).logits, myTgt);
      opt.zeroGrad();
      loss.backward();
      return loss;
    });
    await opt.step();
    l.dispose();
  };
}
writeFileSync(join(out, `rank${rank}.json`), JSON.stringify(seen));
await comm.barrier();
