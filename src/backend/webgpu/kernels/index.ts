/**
 * @internal Every kernel of the webgpu backend, by name: one TypeScript file per kernel family
 * (mirroring kernels/cpu/isa), each dispatching the entry points of its kernels/wgsl file.
 * @module
 */
import type { Kernels } from '../../backend.js';
import type { Runtime } from '../runtime.js';
import * as fillRandom from './fill_random.js';
import * as castCopy from './cast_copy.js';
import * as unary from './unary.js';
import * as binary from './binary.js';
import * as index from './index_ops.js';
import * as reduce from './reduce.js';
import * as matmul from './matmul.js';
import * as quantized from './quantized.js';
import * as softmax from './softmax.js';
import * as norm from './norm.js';
import * as crossEntropy from './cross_entropy.js';
import * as attention from './attention.js';
import * as optim from './optim.js';

type Impl = { [K in keyof Kernels]: (rt: Runtime, a: Parameters<Kernels[K]>[0]) => void };

export const KERNELS: Impl = {
  fill: fillRandom.fill,
  random: fillRandom.random,
  cast: castCopy.cast,
  copy: castCopy.copy,
  unary: unary.unary,
  unaryGrad: unary.unaryGrad,
  binary: binary.binary,
  where: binary.where,
  gather: index.gather,
  scatterAdd: index.scatterAdd,
  check: index.check,
  reduce: reduce.reduce,
  matmul: matmul.matmul,
  matmulInt8: quantized.matmulInt8,
  softmax: softmax.softmax,
  layerNorm: norm.layerNorm,
  layerNormBackward: norm.layerNormBackward,
  crossEntropy: crossEntropy.crossEntropy,
  crossEntropyBackward: crossEntropy.crossEntropyBackward,
  attention: attention.attention,
  attentionBackward: attention.attentionBackward,
  multiNorm: optim.multiNorm,
  multiScale: optim.multiScale,
  adamUpdate: optim.adamUpdate,
  lambUpdate: optim.lambUpdate,
};
