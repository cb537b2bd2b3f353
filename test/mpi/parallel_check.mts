/**
 * Run by test/distributed_parallel.test.ts under `mpirun -np 2`. Each rank:
 * (a) runs column- and row-parallel Linear layers cut from one Linear, and a column → GELU → row
 *     chain, and records their outputs and gradients (its shards);
 * (b) trains a tensor-parallel GPT for a few AdamW steps and records the gathered parameters;
 * (c) trains a pipeline-parallel GPT (its stage) with GPipe and with 1F1B, and records its
 *     stage's parameters;
 * (d) runs 1F1B on a two-stage toy model whose activations are 512 KiB per micro-batch (far past
 *     MPI's eager limit, so an unordered exchange would deadlock) and records its loss and the
 *     single-process loss.
 * Rank r writes OUT/rank<r>.json.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW, GPT, Generator, Linear, communicator, gelu, normal, randint, tidy, type Tensor } from '../../src/index.js';
import { GPTPipelineStage, PipelineParallel, type PipelineStage } from '../../src/distributed/pipeline.js';
import { ColumnParallelLinear, RowParallelLinear, TensorParallelGPT } from '../../src/distributed/tensor_parallel.js';
import { BATCH, DATA_SEED, LINEAR, LR, MICRO_BATCHES, PP_CONFIG, PP_SEED, PP_TIED_CONFIG, STEPS, TP_CONFIG, TP_SEED } from './parallel_config.js';

const out = process.argv[2]!;
const comm = communicator();
const { rank, size } = comm;
const seen: Record<string, unknown> = { rank, size, kind: comm.kind };
const vals = async (t: Tensor | null): Promise<number[] | null> => (t ? Array.from(await t.data()) : null);

// (a) parallel Linear layers against the layers they are cut from (compared in the test process):
// loss = Σ y·r for a fixed r, so dy = r
{
  const full = new Linear(LINEAR.in, LINEAR.out, { generator: new Generator(LINEAR.seed) }); // [out, in]
  const back = new Linear(LINEAR.out, LINEAR.in, { generator: new Generator(LINEAR.seed + 1) }); // [in, out]
  const g = new Generator(LINEAR.seed + 2);
  const xIn = normal([2, 3, LINEAR.in], 0, 1, { generator: g });
  const xOut = normal([2, 3, LINEAR.out], 0, 1, { generator: g });
  const run = async (x0: Tensor, f: (x: Tensor) => Tensor, r: Tensor, params: Tensor[]): Promise<Record<string, unknown>> => {
    const x = x0.clone();
    x.requiresGrad = true;
    const y = f(x);
    y.mul(r).sum().backward();
    const res = { y: await vals(y), dx: await vals(x.grad), grads: await Promise.all(params.map((p) => vals(p.grad))) };
    x.dispose();
    return res;
  };
  const n = LINEAR.out / size;
  const colG = ColumnParallelLinear.fromLinear(full, comm, { gatherOutput: true });
  seen.columnGathered = await run(xIn, (x) => colG.forward(x), xOut, [colG.weight, colG.bias!]);
  const col = ColumnParallelLinear.fromLinear(full, comm);
  seen.column = await run(xIn, (x) => col.forward(x), xOut.narrow(-1, rank * n, n), [col.weight, col.bias!]);
  const row = RowParallelLinear.fromLinear(back, comm, { inputIsParallel: false });
  seen.row = await run(xOut, (x) => row.forward(x), xIn, [row.weight, row.bias!]);
  // column → GELU → row, as a block's MLP: x [2, 3, in] → [2, 3, in]
  const fc = ColumnParallelLinear.fromLinear(full, comm);
  const proj = RowParallelLinear.fromLinear(back, comm);
  seen.chain = await run(xIn, (x) => proj.forward(gelu(fc.forward(x))), xIn, [fc.weight, fc.bias!, proj.weight, proj.bias!]);
  for (const m of [colG, col, row, fc, proj, full, back]) m.dispose();
}

const gen = new Generator(DATA_SEED);
const idx = randint(0, TP_CONFIG.vocabSize, [BATCH, TP_CONFIG.blockSize], { generator: gen });
const tgt = randint(0, TP_CONFIG.vocabSize, [BATCH, TP_CONFIG.blockSize], { generator: gen });

const dump = async (named: [string, Tensor][]): Promise<Record<string, number[]>> => {
  const params: Record<string, number[]> = {};
  for (const [name, p] of named) params[name] = Array.from(await p.data());
  return params;
};

// (b) a tensor-parallel GPT, trained on the whole batch on every rank
{
  const model = new GPT(TP_CONFIG, { generator: new Generator(TP_SEED) }); // the same on every rank
  const tp = TensorParallelGPT.fromGPT(model, comm);
  model.dispose();
  const opt = new AdamW(tp.parameters(), { lr: LR });
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const l = tidy(() => {
      const { loss } = tp.forward(idx, tgt);
      opt.zeroGrad();
      loss!.backward();
      opt.step();
      return loss!;
    });
    losses.push(await l.item());
    l.dispose();
  }
  const sd = await tp.gatherStateDict();
  seen.tp = { losses, shardShape: tp.transformer.h.at(0).attn.c_attn.weight.shape, params: await dump(Object.entries(sd)) };
  for (const t of Object.values(sd)) t.dispose();
  tp.dispose();
}

// (c) a pipeline-parallel GPT: this rank's stage, with each schedule
for (const [name, config] of [['untied', PP_CONFIG], ['tied', PP_TIED_CONFIG]] as const) {
  for (const schedule of ['gpipe', '1f1b'] as const) {
    const model = new GPT(config, { generator: new Generator(PP_SEED) });
    const stage = new GPTPipelineStage(model, comm);
    const pipe = stage.pipeline({ microBatches: MICRO_BATCHES, schedule });
    const opt = new AdamW(stage.parameters(), { lr: LR });
    const losses: number[] = [];
    for (let step = 0; step < STEPS; step++) {
      opt.zeroGrad();
      losses.push(await pipe.step([idx, tgt]));
      opt.step();
    }
    const mine = new Set(stage.parameters());
    seen[`pp_${name}_${schedule}`] = { losses, blocks: stage.blocks.length, params: await dump(model.namedParameters().filter(([, p]) => mine.has(p))) };
    model.dispose();
  }
}

// (d) 1F1B with large activations: stage 0 maps x [mb, 4] to h [mb, 2^16], stage 1 reduces it to a loss
{
  const width = 2 ** 16;
  const a = new Linear(4, width, { generator: new Generator(11) });
  const b = new Linear(width, 1, { generator: new Generator(12) });
  const x = normal([8, 4], 0, 1, { generator: new Generator(13) });
  const stage: PipelineStage = { forward: (h, [xb]) => (rank === 0 ? a.forward(xb!) : b.forward(h!).pow(2).mean()) };
  const pipe = new PipelineParallel(stage, comm, { microBatches: 4, schedule: '1f1b', activationShape: ([xb]) => [xb!.shape[0]!, width] });
  const loss = await pipe.step([x]);
  const want = tidy(() => b.forward(a.forward(x)).pow(2).mean());
  const grad = rank === 0 ? a.weight.grad! : b.weight.grad!;
  const ref = new Linear(4, width, { generator: new Generator(11) });
  const refB = new Linear(width, 1, { generator: new Generator(12) });
  tidy(() => refB.forward(ref.forward(x)).pow(2).mean().backward());
  const refGrad = rank === 0 ? ref.weight.grad! : refB.weight.grad!;
  const diff = tidy(() => grad.sub(refGrad).abs().max());
  seen.large = { loss, want: await want.item(), gradDiff: await diff.item(), gradScale: await tidy(() => refGrad.abs().max()).item() };
}

writeFileSync(join(out, `rank${rank}.json`), JSON.stringify(seen));
await comm.barrier();
