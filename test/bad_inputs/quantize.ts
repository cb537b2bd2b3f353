/**
 * Bad-input table: int8 quantization (see sweep.ts): `quantizeInt8` and `dequantizeInt8`, the
 * `linearInt8` op (its Int8Weight argument checked field by field, the input's width, the bias,
 * and the refusal of inputs that require grad), `quantizeDynamic` over a micro GPT, and the
 * Linear methods.
 */
import { GPT, Generator, Linear, defaultBackendName, quantizeInt8, rand, tensor, zeros, type Int8Weight, type Tensor } from '../../src/index.js';
import { T, fixed, opts, type Param, type Table } from './sweep.js';

const weight = (): Int8Weight => quantizeInt8(rand([5, 6]));
const int8Weight = (): Param => ({
  kind: 'Int8Weight',
  good: weight,
  refuse: [
    { value: null, needle: 'null' },
    { value: 5, needle: 'number' },
    { value: () => rand([5, 6]), needle: 'Int8Weight' },
    { value: () => ({ ...weight(), inFeatures: 9 }), needle: '5×9' },
    { value: () => ({ ...weight(), outFeatures: 4 }), needle: '4×6' },
    { value: () => ({ ...weight(), inFeatures: -1 }), needle: '-1' },
    { value: () => ({ ...weight(), inFeatures: 1.5 }), needle: '1.5' },
    { value: () => ({ ...weight(), scale: rand([4]) }), needle: '[4] f32' },
    { value: () => ({ ...weight(), scale: zeros([5], { dtype: 'i32' }) }), needle: 'i32' },
    { value: () => ({ ...weight(), packed: rand([2, 5]) }), needle: '[2,5] f32' },
  ],
});
const floatMatrix = (): Param => {
  const p = T(() => rand([5, 6]));
  return { ...p, refuse: [...p.refuse, { value: () => rand([30]), needle: '[30]' }, { value: () => zeros([5, 6], { dtype: 'i32' }), needle: 'i32' }, { value: () => zeros([2, 131073]), needle: '131073' }] };
};
const input = (): Param => {
  const p = T(() => rand([3, 6]));
  return {
    ...p,
    refuse: [
      ...p.refuse,
      { value: () => rand([3, 5]), needle: '[3,5]' },
      { value: () => zeros([3, 6], { dtype: 'i32' }), needle: 'i32' },
      { value: () => rand([3, 6]).requiresGrad_(), needle: 'noGrad' },
    ],
  };
};
const bias = (): Param => {
  const p = T(() => rand([5]), { optional: true });
  return { ...p, refuse: [...p.refuse, { value: () => rand([4]), needle: '[4]' }, { value: () => zeros([5], { dtype: 'i32' }), needle: 'i32' }] };
};
const gpt = (): GPT => new GPT({ vocabSize: 8, blockSize: 4, nLayer: 1, nHead: 2, nEmbd: 8 }, { backend: defaultBackendName(), generator: new Generator(0) });
const model = (): Param => ({ kind: 'model', good: gpt, refuse: [{ value: null, needle: 'null' }, { value: 5, needle: '5' }, { value: {}, needle: 'object' }] });
const include = (): Param => ({ kind: 'include', good: () => undefined, refuse: [{ value: 5, needle: '5' }, { value: 'lm_head', needle: 'lm_head' }] });
const linearLayer = (): Linear => new Linear(6, 5, { backend: defaultBackendName() });

export const QUANTIZE_TABLE: Table = {
  quantizeInt8: { params: [floatMatrix()] },
  dequantizeInt8: { params: [int8Weight()] },
  linearInt8: { params: [input(), int8Weight(), bias()] },
  quantizeDynamic: { params: [model(), opts({ include: include() })] },
  MAX_INT8_IN_FEATURES: { exempt: 'a constant' },
  'Linear.quantize': {
    params: [
      {
        kind: 'layer',
        good: linearLayer,
        refuse: [
          {
            value: () => {
              const l = linearLayer();
              l.addLoRA({ rank: 2 });
              return l;
            },
            needle: 'mergeLoRA',
          },
        ],
      },
    ],
    call: (l: Linear) => l.quantize(),
    prefix: 'Linear.quantize',
  },
  'Linear.unquantize': {
    params: [{ kind: 'layer', good: () => linearLayer().quantize(), refuse: [{ value: linearLayer, needle: 'not quantized' }] }],
    call: (l: Linear) => l.unquantize(),
    prefix: 'Linear.unquantize',
  },
  'Module.unregisterBuffer': {
    params: [fixed(() => tensor([1])), { kind: 'name', good: () => 'inv_freq', refuse: [{ value: 'nope', needle: 'nope' }, { value: 5, needle: '5' }] }],
    call: (_: Tensor, name: string) => {
      const l = linearLayer();
      l.registerBuffer('inv_freq', rand([2]));
      return l.unregisterBuffer(name);
    },
    prefix: 'Linear.unregisterBuffer',
  },
};
