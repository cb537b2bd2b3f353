/**
 * Tensor and pipeline parallelism. test/mpi/parallel_check.mts runs under `mpirun -np 2`; this
 * process computes the same things on one process and compares: column- and row-parallel Linear
 * layers (outputs and input, weight and bias gradients), a tensor-parallel GPT and a
 * pipeline-parallel GPT (GPipe and 1F1B, tied and untied head) after a few AdamW steps, and a
 * pipeline whose activations are far past MPI's eager limit (a deadlock check). Without mpirun or
 * the MPI addon those say why and skip, unless KILN_REQUIRE_MPI=1. The single-process paths
 * (one rank) and the bad-input errors run everywhere.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AdamW, GPT, Generator, Linear, communicator, crossEntropy, gelu, memory, normal, randint, tensor, tidy, type Communicator, type Tensor } from '../src/index.js';
import { GPTPipelineStage, PipelineParallel } from '../src/distributed/pipeline.js';
import {
  ColumnParallelLinear,
  RowParallelLinear,
  TensorParallelAttention,
  TensorParallelBlock,
  TensorParallelGPT,
  TensorParallelMLP,
  TensorParallelTransformer,
  copyToTensorParallel,
  gatherFromTensorParallel,
  reduceFromTensorParallel,
  scatterToTensorParallel,
} from '../src/distributed/tensor_parallel.js';
import { BATCH, DATA_SEED, LINEAR, LR, MICRO_BATCHES, PP_CONFIG, PP_SEED, PP_TIED_CONFIG, STEPS, TP_CONFIG, TP_SEED } from './mpi/parallel_config.js';
import { mpiMissing, mpirun2 } from './mpi/launch.js';

const script = fileURLToPath(new URL('./mpi/parallel_check.mts', import.meta.url));
const missing = mpiMissing();
if (missing && process.env.KILN_REQUIRE_MPI !== '1') console.warn(`[kiln tests] tensor/pipeline parallel (MPI) skipped: ${missing}`);

const vals = async (t: Tensor): Promise<number[]> => Array.from(await t.data());

// the worst |got − want| / (atol + rtol·|want|) over the elements (below 1 passes)
function worstRatio(got: readonly number[], want: readonly number[], atol: number, rtol: number, what: string): number {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (atol + rtol * Math.abs(want[i]!)));
  return worst;
}

// one process: `steps` AdamW steps of a GPT on the whole batch; returns the model and its losses
async function trainOne(config: typeof TP_CONFIG | typeof PP_CONFIG, seed: number, idx: Tensor, tgt: Tensor, steps: number): Promise<{ model: GPT; losses: number[] }> {
  const model = new GPT(config, { generator: new Generator(seed) });
  const opt = new AdamW(model.parameters(), { lr: LR });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const l = tidy(() => {
      const loss = crossEntropy(model.forward(idx, null).logits, tgt);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss;
    });
    losses.push(await l.item());
    l.dispose();
  }
  return { model, losses };
}

function batch(): { idx: Tensor; tgt: Tensor } {
  const gen = new Generator(DATA_SEED);
  const idx = randint(0, TP_CONFIG.vocabSize, [BATCH, TP_CONFIG.blockSize], { generator: gen });
  const tgt = randint(0, TP_CONFIG.vocabSize, [BATCH, TP_CONFIG.blockSize], { generator: gen });
  return { idx, tgt };
}

// a communicator of `size` ranks that only validation sees (nothing is sent)
function fakeComm(size: number, rank = 0): Communicator {
  const no = (): never => {
    throw new Error('fake communicator: no collectives');
  };
  return { rank, size, kind: 'mpi', allReduce: no, allReduceNow: no, broadcast: no, allGather: no, reduceScatter: no, send: no, recv: no, barrier: no } as unknown as Communicator;
}

describe('tensor parallelism on one rank', () => {
  const local = communicator({ kind: 'local' });

  it('parallel Linear layers equal the Linear they are cut from, outputs and gradients', async () => {
    const full = new Linear(6, 8, { generator: new Generator(1) });
    const x = normal([2, 3, 6], 0, 1, { generator: new Generator(2) });
    const run = async (f: (t: Tensor) => Tensor, w: Tensor): Promise<number[][]> => {
      const xi = x.clone();
      xi.requiresGrad = true;
      const y = f(xi);
      y.sum().backward();
      const out = [await vals(y), await vals(xi.grad!), await vals(w.grad!)];
      w.zeroGrad();
      xi.dispose();
      return out;
    };
    const want = await run((t) => full.forward(t), full.weight);
    const col = ColumnParallelLinear.fromLinear(full, local, { gatherOutput: true });
    const row = RowParallelLinear.fromLinear(full, local, { inputIsParallel: false });
    expect([col.outPerRank, row.inPerRank]).toEqual([8, 6]);
    for (const got of [await run((t) => col.forward(t), col.weight), await run((t) => row.forward(t), row.weight)])
      for (const [i, g] of got.entries()) expect(worstRatio(g, want[i]!, 1e-6, 1e-5, `part ${i}`)).toBeLessThan(1);
    // the whole layer back, and a fresh layer drawn as Linear draws it
    const back = await col.toLinear();
    expect(await vals(back.weight)).toEqual(await vals(full.weight));
    const fresh = new ColumnParallelLinear(6, 8, local, { generator: new Generator(1) });
    expect(await vals(fresh.weight)).toEqual(await vals(full.weight));
    for (const m of [full, col, row, back, fresh]) m.dispose();
    x.dispose();
  });

  it('a tensor-parallel GPT on one rank computes the GPT, and gathers back its state', async () => {
    const { idx, tgt } = batch();
    const model = new GPT({ ...TP_CONFIG, kvHeads: 2, tiedHead: false }, { generator: new Generator(3) });
    const tp = TensorParallelGPT.fromGPT(model, local);
    const want = tidy(() => model.forward(idx, tgt).loss!);
    const got = tidy(() => tp.forward(idx, tgt).loss!);
    expect(Math.abs((await got.item()) - (await want.item()))).toBeLessThan(1e-5);
    const sd = await tp.gatherStateDict();
    expect(Object.keys(sd).sort()).toEqual(model.namedParameters().map(([n]) => n).sort());
    for (const [name, p] of model.namedParameters()) expect(await vals(sd[name]!), name).toEqual(await vals(p));
    for (const t of [idx, tgt, want, got, ...Object.values(sd)]) t.dispose();
    tp.dispose();
    model.dispose();
  });

  it('the collectives are the identity on one rank', async () => {
    const x = tensor([1, 2, 3, 4], [2, 2]);
    for (const f of [copyToTensorParallel, reduceFromTensorParallel, scatterToTensorParallel, gatherFromTensorParallel]) expect(await vals(f(x, local))).toEqual([1, 2, 3, 4]);
    x.dispose();
  });

  it('names the op and the offending shapes and values for bad arguments', () => {
    const three = fakeComm(3);
    const lin = new Linear(16, 10);
    expect(() => new ColumnParallelLinear(16, 10, three)).toThrow(/^ColumnParallelLinear: outFeatures 10 is not divisible by the 3 ranks of the communicator$/);
    expect(() => new RowParallelLinear(10, 16, three)).toThrow(/^RowParallelLinear: inFeatures 10 is not divisible by the 3 ranks/);
    expect(() => ColumnParallelLinear.fromLinear(lin, three)).toThrow(/^ColumnParallelLinear.fromLinear: outFeatures 10 \(weight \[10,16\] f32\) is not divisible by the 3 ranks/);
    expect(() => RowParallelLinear.fromLinear(new Linear(10, 4), fakeComm(4))).toThrow(/^RowParallelLinear.fromLinear: inFeatures 10 \(weight \[4,10\] f32\) is not divisible by the 4 ranks/);
    expect(() => ColumnParallelLinear.fromLinear({} as Linear, local)).toThrow(/^ColumnParallelLinear.fromLinear: linear must be a Linear, got/);
    expect(() => new ColumnParallelLinear(16, 10, { rank: 0 } as Communicator)).toThrow(/^ColumnParallelLinear: comm must be a Communicator/);
    expect(() => new ColumnParallelLinear(16, 8, fakeComm(2, 2))).toThrow(/^ColumnParallelLinear: comm has rank 2 of size 2/);
    expect(() => new ColumnParallelLinear(16, 8, local, { gatherOutput: 1 as never })).toThrow(/^ColumnParallelLinear: gatherOutput must be/);
    expect(() => new RowParallelLinear(16, 8, local, { bais: true } as never)).toThrow(/^RowParallelLinear: .*bais/);
    const col = ColumnParallelLinear.fromLinear(lin, local);
    const x = tensor(new Array(24).fill(0), [2, 12]);
    expect(() => col.forward(x)).toThrow(/^ColumnParallelLinear.forward: expected x \[\.\.\., 16\], got \[2,12\] f32$/);
    const row = RowParallelLinear.fromLinear(lin, local);
    expect(() => row.forward(x)).toThrow(/^RowParallelLinear.forward: expected x \[\.\.\., 16\] \(this rank's block of 16 input features\), got \[2,12\] f32$/);
    const withLoRA = new Linear(16, 8).addLoRA({ rank: 2 });
    expect(() => ColumnParallelLinear.fromLinear(withLoRA, local)).toThrow(/^ColumnParallelLinear.fromLinear: the Linear has a LoRA adapter/);
    expect(() => copyToTensorParallel(5 as never, local)).toThrow(/^copyToTensorParallel: x must be a Tensor, got 5/);
    expect(() => reduceFromTensorParallel(tensor([1, 2], [2], { dtype: 'i32' }), local)).toThrow(/^reduceFromTensorParallel: x must be a floating tensor of rank ≥ 1, got \[2\] i32/);
    expect(() => scatterToTensorParallel(tensor([1, 2, 3, 4], [4]), three)).toThrow(/^scatterToTensorParallel: the last axis of x \[4\] f32 is not divisible by the 3 ranks/);
    expect(() => gatherFromTensorParallel(tensor([1], [1]), null as never)).toThrow(/^gatherFromTensorParallel: comm must be a Communicator/);
    const gpt = new GPT({ ...TP_CONFIG, nHead: 2 }, { generator: new Generator(1) });
    expect(() => TensorParallelGPT.fromGPT(gpt, fakeComm(4))).toThrow(/^TensorParallelGPT.fromGPT: nHead 2 is not divisible by the 4 ranks/);
    expect(() => TensorParallelGPT.fromGPT({} as GPT, local)).toThrow(/^TensorParallelGPT.fromGPT: model must be a GPT/);
    const drop = new GPT({ ...TP_CONFIG, dropout: 0.1 }, { generator: new Generator(1) });
    expect(() => TensorParallelGPT.fromGPT(drop, local)).toThrow(/^TensorParallelGPT.fromGPT: config.dropout 0.1 is not supported/);
    const rope = new GPT({ ...TP_CONFIG, rope: true }, { generator: new Generator(1) });
    expect(() => TensorParallelGPT.fromGPT(rope, local)).toThrow(/^TensorParallelGPT.fromGPT: rotary position embeddings/);
    expect(() => new TensorParallelAttention(gpt.transformer.h.at(0).attn, fakeComm(4))).toThrow(/^TensorParallelAttention: 2 heads \(2 key\/value heads\) cannot be split over 4 ranks/);
    expect(() => new TensorParallelMLP(gpt.transformer.h.at(0).mlp, fakeComm(3))).toThrow(/^TensorParallelMLP: the hidden width 64 is not divisible by the 3 ranks/);
    expect(() => new TensorParallelBlock({} as never, local)).toThrow(/^TensorParallelBlock: block must be a Block, got/);
    expect(() => new TensorParallelTransformer(gpt as never, local)).toThrow(/^TensorParallelTransformer: t must be a GPTTransformer/);
    expect(() => new TensorParallelTransformer(gpt.transformer, fakeComm(4))).toThrow(/^TensorParallelTransformer: 2 heads \(2 key\/value heads\) cannot be split over 4 ranks/);
    const tp = TensorParallelGPT.fromGPT(gpt, local);
    expect(() => tp.forward(tensor([1, 2], [1, 2]))).toThrow(/^TensorParallelGPT.forward: idx must be \[B, T\] i32 token ids, got \[1,2\] f32/);
    const long = randint(0, 16, [1, 9]);
    expect(() => tp.forward(long)).toThrow(/^TensorParallelGPT.forward: idx \[1,9\] must have 1 to blockSize \(8\) positions/);
    for (const m of [lin, col, row, withLoRA, gpt, drop, rope, tp]) m.dispose();
    x.dispose();
    long.dispose();
  });
});

describe('pipeline parallelism on one rank', () => {
  const local = communicator({ kind: 'local' });

  it('GPipe and 1F1B over 4 micro-batches give the whole batch gradients, and free what they kept', async () => {
    const { idx, tgt } = batch();
    const model = new GPT(PP_CONFIG, { generator: new Generator(PP_SEED) });
    const want = tidy(() => {
      const loss = model.forward(idx, tgt).loss!;
      loss.backward();
      return loss;
    });
    const grads = new Map<Tensor, number[]>();
    for (const p of model.parameters()) grads.set(p, await vals(p.grad!));
    model.zeroGrad();
    const stage = new GPTPipelineStage(model, local);
    expect(stage.parameters().length).toBe(model.parameters().length);
    for (const schedule of ['gpipe', '1f1b'] as const) {
      const pipe = stage.pipeline({ microBatches: MICRO_BATCHES, schedule });
      const before = memory().tensors;
      const loss = await pipe.step([idx, tgt]);
      expect(memory().tensors - before, `${schedule}: live tensors after a step besides the gradients`).toBe(model.parameters().length);
      expect(Math.abs(loss - (await want.item()))).toBeLessThan(1e-5);
      let worst = 0;
      for (const p of model.parameters()) worst = Math.max(worst, worstRatio(await vals(p.grad!), grads.get(p)!, 1e-6, 1e-4, schedule));
      expect(worst, schedule).toBeLessThan(1);
      model.zeroGrad();
    }
    for (const t of [idx, tgt, want]) t.dispose();
    model.dispose();
  });

  it('names the op and the offending shapes and values for bad arguments', async () => {
    const model = new GPT(PP_CONFIG, { generator: new Generator(1) });
    const stage = new GPTPipelineStage(model, local);
    const { idx, tgt } = batch();
    const opts = { microBatches: 2, activationShape: [1, 8, 16] };
    expect(() => new PipelineParallel(stage, local, { ...opts, microBatches: 0 })).toThrow(/^PipelineParallel: microBatches must be an integer ≥ 1, got 0/);
    expect(() => new PipelineParallel(stage, local, { ...opts, schedule: 'zigzag' as never })).toThrow(/^PipelineParallel: schedule must be one of/);
    expect(() => new PipelineParallel(stage, local, { ...opts, activationShape: [1, -8] })).toThrow(/^PipelineParallel: activationShape must be a shape of positive integers or a function of the micro-batch, got \[1,-8\]/);
    expect(() => new PipelineParallel(stage, local, { ...opts, activationDtype: 'i32' })).toThrow(/^PipelineParallel: activationDtype must be a floating dtype, got 'i32'/);
    expect(() => new PipelineParallel({} as never, local, opts)).toThrow(/^PipelineParallel: stage must be an object with a forward\(x, microBatch\) method/);
    expect(() => new PipelineParallel(stage, {} as never, opts)).toThrow(/^PipelineParallel: comm must be a Communicator/);
    expect(() => new PipelineParallel(stage, fakeComm(2), { ...opts, tied: [{ stages: [0, 2], parameter: null }] })).toThrow(/^PipelineParallel: tied\[0\].stages must be two different ranks in \[0, 2\), got \[0,2\]/);
    const pipe = new PipelineParallel(stage, local, { ...opts, microBatches: 3 });
    await expect(pipe.step([idx, tgt])).rejects.toThrow(/^PipelineParallel.step: batch size 8 is not divisible by 3 micro-batches$/);
    const short = randint(0, 16, [4, 8]);
    await expect(pipe.step([idx, short])).rejects.toThrow(/^PipelineParallel.step: every tensor of the batch must have the same first \(batch\) axis: \[8,8\], \[4,8\]/);
    await expect(pipe.step([] as never)).rejects.toThrow(/^PipelineParallel.step: batch must be a non-empty array of Tensors/);
    // a stage whose activation is not the declared shape (checked on stages that send it)
    const two = new GPTPipelineStage(new GPT({ ...PP_CONFIG, nLayer: 2 }, { generator: new Generator(1) }), fakeComm(2));
    const wrong = new PipelineParallel(two, fakeComm(2), { microBatches: 2, activationShape: [4, 8, 12] });
    await expect(wrong.step([idx, tgt])).rejects.toThrow(/^PipelineParallel.step: stage 0 returned \[4,8,16\] f32, but the activation is \[4,8,12\] f32/);
    expect(() => new GPTPipelineStage(model, fakeComm(2), { layers: [2, 2] })).toThrow(/^GPTPipelineStage: layers must be 2 counts of blocks \(one per rank\) summing to nLayer 3, got \[2,2\]/);
    expect(() => new GPTPipelineStage(model, fakeComm(6))).toThrow(/^GPTPipelineStage: 3 layers cannot fill the 4 stages between the first and the last/);
    expect(() => new GPTPipelineStage({} as GPT, local)).toThrow(/^GPTPipelineStage: model must be a GPT/);
    expect(() => stage.forward(null, [idx])).toThrow(/^GPTPipelineStage.forward: microBatch must be \[idx, targets\]/);
    expect(() => stage.pipeline({ microBatches: 2.5 })).toThrow(/^GPTPipelineStage.pipeline: microBatches must be an integer/);
    for (const t of [idx, tgt, short]) t.dispose();
    two.model.dispose();
    model.dispose();
  });
});

describe.skipIf(missing !== null && process.env.KILN_REQUIRE_MPI !== '1')(`tensor and pipeline parallelism, 2 MPI processes${missing ? `: ${missing}` : ''}`, () => {
  it('parallel Linear layers, a tensor-parallel GPT and a pipeline-parallel GPT (GPipe, 1F1B) equal one process', async () => {
    if (missing) throw new Error(`KILN_REQUIRE_MPI=1 but ${missing}`);
    const out = mkdtempSync(join(tmpdir(), 'kiln-mpi-parallel-'));
    try {
      const r = mpirun2(script, [out], {}, 180_000);
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      type Run = { y: number[]; dx: number[]; grads: number[][] };
      type Params = { losses: number[]; params: Record<string, number[]>; blocks?: number; shardShape?: number[] };
      const ranks = [0, 1].map((i) => JSON.parse(readFileSync(join(out, `rank${i}.json`), 'utf8')) as Record<string, unknown> & Record<'columnGathered' | 'column' | 'row' | 'chain', Run>);
      for (const [i, s] of ranks.entries()) expect(s).toMatchObject({ rank: i, size: 2, kind: 'mpi' });

      // (a) the layers on one process, with the same seeds as the ranks
      const full = new Linear(LINEAR.in, LINEAR.out, { generator: new Generator(LINEAR.seed) });
      const back = new Linear(LINEAR.out, LINEAR.in, { generator: new Generator(LINEAR.seed + 1) });
      const g = new Generator(LINEAR.seed + 2);
      const xIn = normal([2, 3, LINEAR.in], 0, 1, { generator: g });
      const xOut = normal([2, 3, LINEAR.out], 0, 1, { generator: g });
      const reference = async (x0: Tensor, f: (x: Tensor) => Tensor, r: Tensor, params: Tensor[]): Promise<Run> => {
        const x = x0.clone();
        x.requiresGrad = true;
        const y = f(x);
        y.mul(r).sum().backward();
        const res = { y: await vals(y), dx: await vals(x.grad!), grads: await Promise.all(params.map((p) => vals(p.grad!))) };
        for (const p of params) p.zeroGrad();
        x.dispose();
        return res;
      };
      // rows [r·n, (r+1)·n) of a row-major [rows, cols] matrix (or a vector: cols 1), and columns
      const rowsOf = (v: number[], cols: number, rank: number, n: number): number[] => v.slice(rank * n * cols, (rank + 1) * n * cols);
      const colsOf = (v: number[], cols: number, rank: number, n: number): number[] => v.filter((_, i) => Math.floor((i % cols) / n) === rank);
      const lin = await reference(xIn, (x) => full.forward(x), xOut, [full.weight, full.bias!]);
      const rowRef = await reference(xOut, (x) => back.forward(x), xIn, [back.weight, back.bias!]);
      const chain = await reference(xIn, (x) => back.forward(gelu(full.forward(x))), xIn, [full.weight, full.bias!, back.weight, back.bias!]);
      const n = LINEAR.out / 2;
      let worstLinear = 0;
      const check = (got: number[], want: number[], what: string): void => {
        const w = worstRatio(got, want, 1e-6, 1e-5, what);
        expect(w, what).toBeLessThan(1);
        worstLinear = Math.max(worstLinear, w);
      };
      for (const [rank, s] of ranks.entries()) {
        const at = `rank ${rank}`;
        check(s.columnGathered.y, lin.y, `${at} column (gathered) y`);
        check(s.columnGathered.dx, lin.dx, `${at} column (gathered) dx`);
        check(s.columnGathered.grads[0]!, rowsOf(lin.grads[0]!, LINEAR.in, rank, n), `${at} column (gathered) dW`);
        check(s.columnGathered.grads[1]!, rowsOf(lin.grads[1]!, 1, rank, n), `${at} column (gathered) db`);
        check(s.column.y, colsOf(lin.y, LINEAR.out, rank, n), `${at} column y`);
        check(s.column.dx, lin.dx, `${at} column dx`);
        check(s.column.grads[0]!, rowsOf(lin.grads[0]!, LINEAR.in, rank, n), `${at} column dW`);
        check(s.row.y, rowRef.y, `${at} row y`);
        check(s.row.dx, rowRef.dx, `${at} row dx`);
        check(s.row.grads[0]!, colsOf(rowRef.grads[0]!, LINEAR.out, rank, n), `${at} row dW`);
        check(s.row.grads[1]!, rowRef.grads[1]!, `${at} row db`);
        check(s.chain.y, chain.y, `${at} column→row y`);
        check(s.chain.dx, chain.dx, `${at} column→row dx`);
        check(s.chain.grads[0]!, rowsOf(chain.grads[0]!, LINEAR.in, rank, n), `${at} column→row dW of c_fc`);
        check(s.chain.grads[2]!, colsOf(chain.grads[2]!, LINEAR.out, rank, n), `${at} column→row dW of c_proj`);
        check(s.chain.grads[3]!, chain.grads[3]!, `${at} column→row db of c_proj`);
      }
      console.log(`[mpi] column/row-parallel Linear on 2 ranks against one Linear: worst difference ${worstLinear.toFixed(3)} of the tolerance (1e-6 + 1e-5·|want|)`);
      for (const t of [xIn, xOut]) t.dispose();
      full.dispose();
      back.dispose();

      // (b), (c): GPTs after STEPS AdamW steps against one process on the whole batch, with the
      // DDP check's tolerance |got − want| ≤ 1e-4 + 1e-3·|want| (Adam normalises the rounding noise
      // of the keys' bias, whose gradient is zero up to rounding, into steps of up to lr)
      const { idx, tgt } = batch();
      const compare = async (model: GPT, got: Record<string, number[]>, what: string): Promise<number> => {
        let worst = 0;
        for (const [name, p] of model.namedParameters()) {
          expect(got[name], `${what}: ${name}`).toBeDefined();
          worst = Math.max(worst, worstRatio(got[name]!, await vals(p), 1e-4, 1e-3, `${what}: ${name}`));
        }
        expect(Object.keys(got).length, what).toBe(model.namedParameters().length);
        return worst;
      };
      const tp = ranks.map((s) => s.tp as Params);
      expect(tp[0]!.shardShape).toEqual([24, 16]); // 2 of 4 query heads, with their keys and values: 3·2·4 rows
      expect(tp[1]!.params).toEqual(tp[0]!.params);
      const one = await trainOne(TP_CONFIG, TP_SEED, idx, tgt, STEPS);
      expect(worstRatio(tp[0]!.losses, one.losses, 1e-5, 1e-5, 'tensor-parallel losses')).toBeLessThan(1);
      const worstTp = await compare(one.model, tp[0]!.params, 'tensor parallel');
      console.log(`[mpi] tensor-parallel GPT on 2 ranks against 1 process, after ${STEPS} AdamW steps: worst difference ${worstTp.toFixed(3)} of the tolerance`);
      expect(worstTp).toBeLessThan(1);
      one.model.dispose();

      for (const [name, config] of [['untied', PP_CONFIG], ['tied', PP_TIED_CONFIG]] as const) {
        const ref = await trainOne(config, PP_SEED, idx, tgt, STEPS);
        for (const schedule of ['gpipe', '1f1b'] as const) {
          const what = `pipeline (${name} head, ${schedule})`;
          const [s0, s1] = ranks.map((s) => s[`pp_${name}_${schedule}`] as Params);
          expect([s0!.blocks, s1!.blocks], what).toEqual(config.nLayer === 3 ? [2, 1] : [1, 1]);
          expect(s1!.losses, what).toEqual(s0!.losses);
          expect(worstRatio(s0!.losses, ref.losses, 1e-5, 1e-5, `${what} losses`)).toBeLessThan(1);
          // each stage reports its own parameters; a tied embedding is on both and must agree
          for (const k of Object.keys(s0!.params)) if (k in s1!.params) expect(s1!.params[k], `${what}: ${k} on both stages`).toEqual(s0!.params[k]);
          const worst = await compare(ref.model, { ...s0!.params, ...s1!.params }, what);
          console.log(`[mpi] ${what} on 2 stages, ${MICRO_BATCHES} micro-batches, against 1 process after ${STEPS} AdamW steps: worst difference ${worst.toFixed(3)} of the tolerance`);
          expect(worst).toBeLessThan(1);
        }
        ref.model.dispose();
      }

      // (d) large activations through 1F1B: done (no deadlock), and equal to one process
      for (const s of ranks.map((x) => x.large as { loss: number; want: number; gradDiff: number; gradScale: number })) {
        expect(Math.abs(s.loss - s.want)).toBeLessThan(1e-6 * Math.abs(s.want) + 1e-9);
        expect(s.gradDiff).toBeLessThanOrEqual(1e-5 * s.gradScale);
      }
      idx.dispose();
      tgt.dispose();
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 200_000);
});
