/**
 * kiln: tensors, autograd and backends for training language models in TypeScript — the Node
 * entry point: the browser-safe core (`kilnjs/core`), plus the native `cpu` backend, file access,
 * data preparation, checkpoints and the training loop.
 *
 * @example
 * import { tensor, randn, tidy } from 'kilnjs';
 * const w = randn([3, 1], { requiresGrad: true });
 * const loss = tidy(() => tensor([[1, 2, 3]]).matmul(w).pow(2).sum());
 * loss.backward(); // w.grad
 * @packageDocumentation
 */
import './node_host.js';
import { cpuEntry } from './backend/cpu/cpu.js';
import { registerBackend } from './backend/registry.js';
import { webgpuEntry } from './backend/webgpu/node.js';
import { cudaEntry } from './backend/cuda/cuda.js';

registerBackend(cpuEntry());
registerBackend(webgpuEntry());
registerBackend(cudaEntry());

export * from './core.js';
export { webgpuEntry } from './backend/webgpu/node.js';
export { CpuBackend, cpuEntry, getNumThreads, setNumThreads, nativeCapabilities } from './backend/cpu/cpu.js';
export { CudaBackend, cudaEntry, type CudaDeviceInfo, type CudaMemoryStats, type CudaAddon } from './backend/cuda/cuda.js';
export type { NativeCapabilities, Addon, NativeBuffer } from './backend/cpu/addon.js';
export type { NativeKernelFns, NativeResult } from './backend/cpu/marshal.gen.js';
export * from './io/node.js';
export * from './data/node.js';
export * from './train/node.js';
export { saveAdapters, loadAdapters, ADAPTER_WEIGHTS, ADAPTER_CONFIG } from './finetune/node.js';
export { communicator, findMpiAddon, type Communicator, type ReduceOp } from './distributed/mpi.js';
export { DistributedDataParallel, type DDPOptions } from './distributed/ddp.js';
export { ZeroRedundancyOptimizer, type ZeroOptions } from './distributed/zero.js';
export { pretrainBert, type PretrainBertResult } from './cli/train.js';
export { gpuPeakFlops } from './cli/progress.js';
export {
  ColumnParallelLinear,
  RowParallelLinear,
  TensorParallelBlock,
  TensorParallelGPT,
  copyToTensorParallel,
  reduceFromTensorParallel,
  scatterToTensorParallel,
  gatherFromTensorParallel,
  type ParallelLinearOptions,
  type ColumnParallelOptions,
  type RowParallelOptions,
} from './distributed/tensor_parallel.js';
export { PipelineParallel, GPTPipelineStage, type PipelineStage, type PipelineSchedule, type PipelineOptions, type TiedParameter, type GPTPipelineOptions } from './distributed/pipeline.js';
// the pipelines behind kiln train, finetune, reward and align: one path for scripts and the CLI
export { pretrain, type PretrainOptions, type PretrainResult } from './cli/train.js';
export { finetune, builtinInstructions, type FinetuneOptions, type FinetuneResult, type FinetuneEvent } from './finetune/pipeline.js';
export { trainReward, align, loadReward, builtinPreferencePairs, type PreferenceRunOptions, type RewardResult, type AlignOptions, type AlignResult } from './align/pipeline.js';
export { evalReport, type EvalReportData } from './cli/report.js';
export { startLabelServer, type LabelItem, type LabelServer } from './cli/label.js';
