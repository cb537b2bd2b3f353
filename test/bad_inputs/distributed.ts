/**
 * Bad-input table: scaling out (tensor- and pipeline-parallel layers, ZeRO) on the single-process
 * communicator, and the cost model. The collectives themselves run under mpirun in
 * test/distributed.test.ts and test/distributed_parallel.test.ts.
 */
import {
  AdamW,
  Block,
  ColumnParallelLinear,
  GPT,
  GPTPipelineStage,
  Generator,
  H100_SXM,

  PipelineParallel,
  RowParallelLinear,
  TensorParallelBlock,
  TensorParallelGPT,
  ZeroRedundancyOptimizer,
  communicator,
  defaultBackendName,
  rand,
  type Communicator,
} from '../../src/index.js';
import { T, bool, choice, construct, fixed, instance, int, num, opts, type Param, type Table } from './sweep.js';

const OPTIONAL = { optional: true } as const;
const comm = (): Communicator => communicator({ kind: 'local' });
const commParam = (): Param => instance('communicator', comm);
const TINY = { vocabSize: 8, blockSize: 4, nLayer: 2, nHead: 2, nEmbd: 8 };
const gpt = (): GPT => new GPT(TINY, { backend: defaultBackendName(), generator: new Generator(0) });
const gptParam = (): Param => instance('GPT', gpt);
const act = (): Param => T(() => rand([2, 4]));

// a GPT-2 124M run and an 8-GPU layout: what the cost model's functions take
const run = { nLayer: 12, nEmbd: 768, nHead: 12, vocabSize: 50257, seqLen: 1024, microBatch: 8, globalBatch: 64 };
const pos = (good: number): Param => num({ min: 1, integer: true, good });
const runParam = (): Param =>
  opts({ nLayer: pos(12), nEmbd: pos(768), nHead: pos(12), vocabSize: pos(50257), seqLen: pos(1024), microBatch: pos(8), globalBatch: pos(64) }, { good: () => ({ ...run }), optional: false });
const layoutParam = (): Param =>
  opts(
    {
      dp: pos(8),
      tp: pos(1),
      pp: pos(1),
      zeroStage: int({ min: 0, max: 3, optional: true }),
      precision: choice(['bf16', 'fp32'], OPTIONAL),
      checkpointing: bool(OPTIONAL),
      sequenceParallel: bool(OPTIONAL),
      flashAttention: bool(OPTIONAL),
      schedule: choice(['gpipe', '1f1b'], OPTIONAL),
      overlap: bool(OPTIONAL),
    },
    { good: () => ({ dp: 8, tp: 1, pp: 1 }), optional: false },
  );
// a record of numbers: refused whole (not an object), or with its fields missing (named)
const spec = (kind: string, good: () => unknown, field: string): Param => ({
  kind,
  good,
  refuse: [
    { value: 5, needle: '5' },
    { value: 'xyzzy', needle: 'xyzzy' },
    { value: null, needle: 'null' },
    { value: {}, needle: field },
  ],
});
const device = (): Param => spec('DeviceSpec', () => H100_SXM, 'achievedFlops');

export const DISTRIBUTED_TABLE: Table = {
  // Megatron's f and g, and the split/gather pair
  copyToTensorParallel: { params: [act(), commParam()] },
  reduceFromTensorParallel: { params: [act(), commParam()] },
  scatterToTensorParallel: { params: [act(), commParam()] },
  gatherFromTensorParallel: { params: [act(), commParam()] },
  ColumnParallelLinear: {
    params: [int({ min: 0, good: 3 }), int({ min: 0, good: 4 }), commParam(), opts({ bias: bool(OPTIONAL), gatherOutput: bool(OPTIONAL), std: num({ min: 0, optional: true }) })],
    call: construct((a, b, c, o) => new ColumnParallelLinear(a, b, c, o)),
  },
  RowParallelLinear: {
    params: [int({ min: 0, good: 4 }), int({ min: 0, good: 3 }), commParam(), opts({ bias: bool(OPTIONAL), inputIsParallel: bool(OPTIONAL), std: num({ min: 0, optional: true }) })],
    call: construct((a, b, c, o) => new RowParallelLinear(a, b, c, o)),
  },
  TensorParallelBlock: {
    params: [instance('Block', () => new Block({ nEmbd: 8, nHead: 2, blockSize: 4 } as never)), commParam()],
    call: construct((b, c) => new TensorParallelBlock(b, c)),
  },
  TensorParallelGPT: { params: [gptParam(), commParam()], call: construct((m, c) => TensorParallelGPT.fromGPT(m, c)), prefix: ['TensorParallelGPT', 'TensorParallelGPT.fromGPT'] },
  GPTPipelineStage: { params: [gptParam(), commParam(), opts({ layers: { kind: 'layers', good: () => undefined, refuse: [{ value: [1], needle: '[1]' }, { value: 'x', needle: 'x' }] } })], call: (m, c, o) => new GPTPipelineStage(m, c, o) },
  PipelineParallel: {
    params: [
      fixed(() => new GPTPipelineStage(gpt(), comm())),
      commParam(),
      opts(
        {
          microBatches: pos(2),
          schedule: choice(['gpipe', '1f1b'], OPTIONAL),
          activationShape: { kind: 'shape', good: () => [2, 4, 8], refuse: [{ value: [0], needle: '[0]' }, { value: 'x', needle: 'x' }] },
        },
        { good: () => ({ microBatches: 2, activationShape: [2, 4, 8] }), optional: false },
      ),
    ],
    call: (s, c, o) => new PipelineParallel(s, c, o),
  },
  ZeroRedundancyOptimizer: {
    params: [
      gptParam(),
      fixed(() => undefined),
      commParam(),
      opts({ stage: { kind: 'stage', good: () => 2, refuse: [{ value: 3, needle: '3' }, { value: 'x', needle: 'x' }] }, bucketBytes: int({ min: 1, optional: true }) }),
    ],
    // the optimizer is made over the model the sweep passes (a bad model has none)
    call: async (m: GPT, _o: unknown, c: Communicator, o: object) => {
      const z = await ZeroRedundancyOptimizer.create(m, m instanceof GPT ? new AdamW(m.parameters(), { lr: 1e-3 }) : (undefined as never), c, o);
      z.dispose();
    },
  },
  // the cost model
  gptParamCount: { params: [opts({ nLayer: pos(12), nEmbd: pos(768), vocabSize: pos(50257), seqLen: pos(1024) }, { good: () => ({ ...run }), optional: false, strict: false })] },
  flopsPerToken: { params: [opts({ nLayer: pos(12), nEmbd: pos(768), vocabSize: pos(50257), seqLen: pos(1024) }, { good: () => ({ ...run }), optional: false, strict: false }), bool(OPTIONAL)] },
  collectiveTime: { params: [choice(['allReduce', 'reduceScatter', 'allGather']), num({ min: 0, good: 1e6 }), pos(8), spec('LinkSpec', () => H100_SXM.intraNode, 'busBandwidth')] },
  memoryPerRank: { params: [runParam(), layoutParam()] },
  stepTime: { params: [runParam(), layoutParam(), device()] },
  estimate: { params: [runParam(), layoutParam(), device()] },
};

