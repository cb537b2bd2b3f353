/**
 * kiln's browser-safe core: tensors, autograd, the backend registry with the reference backends,
 * layers, optimizers, metrics, tokenizers and safetensors. Nothing here imports a `node:` module
 * (a test walks the import graph): the Node entry point (`kiln` in Node) adds the native `cpu`
 * backend, files, data preparation, the training loop and the CLI.
 *
 * @example
 * import { tensor, randn, tidy } from 'kilnjs';
 * const w = randn([3, 1], { requiresGrad: true });
 * const loss = tidy(() => tensor([[1, 2, 3]]).matmul(w).pow(2).sum());
 * loss.backward(); // w.grad
 * @packageDocumentation
 */
import './autograd/grads.js';
import './autograd/backward.js';
import './autograd/function.js';
import { registerBackend as register } from './backend/registry.js';
import { browserWebgpuEntry } from './backend/webgpu/browser.js';

register(browserWebgpuEntry());

export { Tensor, type NestedArray } from './tensor/tensor.js';
export type { DType, DataArray, StorageArray } from './backend/dtype.js';
export { DTYPES, promoteTypes, isFloat, f16Bits, bf16Bits, f16Value, bf16Value } from './backend/dtype.js';
// every type of the Backend contract (the kernels' Args interfaces too)
export type * from './backend/backend.js';
export { KERNEL_NAMES, KERNEL_FAMILY, RECORDED_OPS, FAULTS, type RecordedOp, type RandomDist as RandomDistKind } from './backend/ops.gen.js';
export { FaultLatch, faultMessage } from './backend/faults.js';
export {
  backends,
  getBackend,
  backendSync,
  setBackend,
  useBackend,
  ready,
  sync,
  flush,
  defaultBackendName,
  registerBackend,
  PRIORITY,
  type BackendInfo,
  type BackendEntry,
} from './backend/registry.js';
export { RefBackend } from './backend/ref/ref.js';
export { AsyncRefBackend, asyncRefEntry } from './backend/ref/async_ref.js';
export { WebGPUBackend, requestWebGPU, type AdapterInfo } from './backend/webgpu/webgpu.js';
export { browserWebgpuEntry } from './backend/webgpu/browser.js';
export { philox4x32, philoxFill, PhiloxWords, dropoutThreshold } from './backend/philox.js';

export { tidy, keep, memory, resetPeakMemory, type MemoryInfo, type BackendMemory, type Tracked } from './tensor/memory.js';
export { Generator, defaultGenerator, manualSeed, type GeneratorState, type RandomDist } from './tensor/random.js';
export {
  tensor,
  full,
  zeros,
  ones,
  zerosLike,
  onesLike,
  fullLike,
  arange,
  linspace,
  eye,
  rand,
  randn,
  randint,
  normal,
  uniform,
  type CreateOptions,
  type TypedData,
  type RandomOptions,
} from './tensor/ops/creation.js';
export {
  add,
  sub,
  mul,
  div,
  pow,
  maximum,
  minimum,
  eq,
  ne,
  lt,
  le,
  gt,
  ge,
  logicalAnd,
  logicalOr,
  logicalNot,
  neg,
  abs,
  sign,
  exp,
  log,
  sqrt,
  rsqrt,
  sin,
  cos,
  tanh,
  sigmoid,
  relu,
  gelu,
  silu,
  erf,
  floor,
  ceil,
  round,
  isfinite,
  cast,
  clone,
  where,
  clamp,
  type Operand,
} from './tensor/ops/elementwise.js';
export { sum, mean, max, min, argmax, argmin, logsumexp, variance, std, norm, type VarOptions, type Axes } from './tensor/ops/reduce.js';
export {
  reshape,
  flatten,
  squeeze,
  unsqueeze,
  permute,
  transpose,
  expand,
  slice,
  narrow,
  concat,
  stack,
  split,
  chunk,
  indexSelect,
  gather,
  scatterAdd,
  oneHot,
  maskedFill,
  triu,
  tril,
} from './tensor/ops/shape_ops.js';
export {
  matmul,
  linear,
  softmax,
  logSoftmax,
  crossEntropy,
  linearCrossEntropy,
  layerNorm,
  addLayerNorm,
  rmsNorm,
  dropout,
  embedding,
  type MatmulOptions,
  type CrossEntropyOptions,
  type LinearCrossEntropyOptions,
} from './tensor/ops/nn.js';
export { quantizeInt8, dequantizeInt8, linearInt8, MAX_INT8_IN_FEATURES, type Int8Weight } from './tensor/ops/quantized.js';
export { scaledDotProductAttention, packedAttention, type AttentionOptions, type PackedAttentionOptions } from './tensor/ops/attention.js';
export { noGrad, enableGrad, isGradEnabled, hasGradRule, type Node, type GradRule, type GradReads } from './autograd/tape.js';
export { checkpoint } from './autograd/checkpoint.js';
export { customFunction } from './autograd/function.js';
export {
  estimate,
  memoryPerRank,
  stepTime,
  gptParamCount,
  flopsPerToken,
  collectiveTime,
  ASSUMED_MFU,
  ASSUMED_HBM_EFFICIENCY,
  H100_SXM,
  H200_SXM,
  KILN_CPU_2PROC,
  GPT2_SIZES,
  type Collective,
  type CostEstimate,
  type DeviceSpec,
  type GPTRunConfig,
  type LinkSpec,
  type MemoryBreakdown,
  type ParallelLayout,
  type ParamCount,
  type Precision,
  type StepTimeBreakdown,
  type ZeroStage,
} from './distributed/cost_model.js';
export { adamUpdate, lambUpdate, multiNorm, multiScale, type OptimizerHyper, type TensorOrList } from './tensor/ops/optim.js';
export * from './nn/index.js';
export * from './finetune/index.js';
export * from './align/index.js';
export * from './optim/index.js';
export { profileKernels, type KernelProfile, type KernelProfileRow } from './backend/profile.js';
export { autocast, autocastScope, autocastDtype, AUTOCAST_OPS, type AutocastDtype, type AutocastOptions, type AutocastScope } from './amp/autocast.js';
export { GradScaler, type GradScalerOptions, type GradScalerState, type ScalableOptimizer } from './amp/grad_scaler.js';
export * from './io/index.js';
export * from './metrics/index.js';
export * from './data/index.js';
export * from './train/index.js';
export { installHostFiles, type HostFiles } from './host.js';
