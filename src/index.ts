/**
 * kiln: tensors, autograd and backends for training language models in TypeScript.
 *
 * @example
 * import { tensor, randn, tidy } from 'kiln';
 * const w = randn([3, 1], { requiresGrad: true });
 * const loss = tidy(() => tensor([[1, 2, 3]]).matmul(w).pow(2).sum());
 * loss.backward(); // w.grad
 * @packageDocumentation
 */
import './autograd/grads.js';
import './autograd/backward.js';

export { Tensor, type NestedArray } from './tensor/tensor.js';
export type { DType, DataArray, StorageArray } from './backend/dtype.js';
export { DTYPES, promoteTypes, isFloat, f16Bits, bf16Bits, f16Value, bf16Value } from './backend/dtype.js';
export type {
  Backend,
  Storage,
  UnaryOp,
  BinaryOp,
  ReduceOp,
  KernelFamily,
  RandomDist,
  CopyArgs,
  MatmulArgs,
  IndexArgs,
  AttentionArgs,
  OptimizerArgs,
} from './backend/backend.js';
export {
  backends,
  getBackend,
  setBackend,
  defaultBackendName,
  registerBackend,
  PRIORITY,
  type BackendInfo,
  type BackendEntry,
} from './backend/registry.js';
export { RefBackend } from './backend/ref/ref.js';
export { CpuBackend, getNumThreads, setNumThreads, nativeCapabilities } from './backend/cpu/cpu.js';
export type { NativeCapabilities, Addon, NativeBuffer } from './backend/cpu/addon.js';
export { philox4x32, philoxFill } from './backend/philox.js';

export { tidy, keep, memory, type MemoryInfo, type BackendMemory, type Tracked } from './tensor/memory.js';
export { Generator, defaultGenerator, manualSeed, type GeneratorState } from './tensor/random.js';
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
  layerNorm,
  rmsNorm,
  dropout,
  embedding,
  scaledDotProductAttention,
  type MatmulOptions,
  type CrossEntropyOptions,
  type AttentionOptions,
} from './tensor/ops/nn.js';
export { noGrad, enableGrad, isGradEnabled, type Node, type GradRule } from './autograd/tape.js';
export { adamUpdate, lambUpdate, type OptimizerHyper } from './tensor/ops/optim.js';
export * from './nn/index.js';
export * from './optim/index.js';
export * from './io/index.js';
export * from './metrics/index.js';
export * from './data/index.js';
export { GPT2_PATTERN, pretokenize, splitGPT2, splitByRegExp, compilePattern } from './data/pretokenize.js';
export * from './train/index.js';
