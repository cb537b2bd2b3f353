/** Bad-input table: tensor creation, elementwise, reduction, shape, index, nn and optimizer ops. */
import * as k from '../../src/index.js';
import { Generator, rand, tensor, zeros } from '../../src/index.js';
import { T, Ts, axis, bool, choice, dtype, func, generator, ids, int, num, operand, opts, scalar, shape, str, type Param, type Spec, type Table } from './sweep.js';

const backendName = (): Param => ({ kind: 'backend', good: () => undefined, refuse: [{ value: 'bogus', needle: 'bogus' }, { value: 5, needle: '5' }], tolerate: [undefined] });

const create = (extra: Record<string, Param> = {}): Param => opts({ dtype: dtype({ optional: true }), backend: backendName(), requiresGrad: bool({ optional: true }), ...extra });
const random = (): Param => create({ generator: generator() });
const axes = (rank = 2): Param => {
  const p = axis(rank, { optional: true, nullable: true });
  const refuse = p.refuse.filter((b) => !Array.isArray(b.value));
  return { ...p, kind: 'axes', refuse: [...refuse, { value: [0, 0], needle: '0,0' }, { value: [rank], needle: String(rank) }, { value: ['x'], needle: 'x' }], tolerate: [undefined, null, [0], [0, 1], [-1]] };
};

const unary = (): Spec => ({ params: [T()] });
const binary = (): Spec => ({ params: [operand(), operand()] });
const compare = binary;
const bools = (): Param => T(() => tensor([1, 0, 1, 1, 0, 0], [2, 3], { dtype: 'bool' }));
const reduceSpec = (): Spec => ({ params: [T(), axes(), bool({ optional: true })] });
const optimHyper = (): Param =>
  opts(
    { lr: num({ min: 0 }), beta1: num({ min: 0, max: 1, maxExclusive: true }), beta2: num({ min: 0, max: 1, maxExclusive: true }), eps: num({ min: 0 }), weightDecay: num({ min: 0 }), step: steps() },
    { good: () => ({ lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 }), optional: false },
  );
const steps = (): Param => {
  const p = int({ min: 1 });
  return { ...p, refuse: [...p.refuse.filter((b) => !Array.isArray(b.value)), { value: [0], needle: '0' }, { value: [1, 1], needle: '2 step counts' }] };
};
const fourStates = (): Param[] => [T(() => rand([4])), T(() => rand([4])), T(() => zeros([4])), T(() => zeros([4]))];

export const TENSOR_TABLE: Table = {
  // creation
  tensor: [
    { params: [{ kind: 'data', good: () => [[1, 2], [3, 4]], refuse: [{ value: 'xyzzy', needle: 'xyzzy' }, { value: null, needle: 'null' }, { value: undefined, needle: 'undefined' }, { value: [[1, 2], [3]], needle: 'ragged' }, { value: [1, 'a'], needle: 'a' }, { value: [{}], needle: 'object' }] }, create()], label: 'nested' },
    {
      params: [
        { kind: 'data', good: () => [1, 2, 3, 4, 5, 6], refuse: [] },
        { ...shape([2, 3], { allocates: false }), refuse: shape([2, 3], { allocates: false }).refuse.filter((b) => b.value !== null && b.value !== undefined && !(typeof b.value === 'object' && !Array.isArray(b.value))).concat([{ value: [4, 2], needle: '[4,2]' }]) },
        create(),
      ],
      label: 'flat with a shape',
    },
  ],
  full: { params: [shape(), scalar(2), create()] },
  zeros: { params: [shape(), create()] },
  ones: { params: [shape(), create()] },
  zerosLike: { params: [T(), create()] },
  onesLike: { params: [T(), create()] },
  fullLike: { params: [T(), scalar(3), create()] },
  arange: { params: [num({ good: 0 }), num({ good: 5, optional: true }), num({ good: 1, optional: true }), create()] },
  linspace: { params: [num({ good: 0 }), num({ good: 1 }), int({ min: 0, good: 5 }), create()] },
  eye: { params: [int({ min: 0, good: 3 }), int({ min: 0, good: 2, optional: true }), create()] },
  rand: { params: [shape(), random()] },
  randn: { params: [shape(), random()] },
  randint: { params: [int({ good: 0 }), int({ good: 10 }), shape(), random()] },
  normal: { params: [shape(), num({ good: 0 }), num({ min: 0, good: 1 }), random()] },
  uniform: { params: [shape(), num({ good: 0 }), num({ good: 1 }), random()] },
  manualSeed: { params: [int({ min: 0, good: 7 })] },
  // elementwise
  add: binary(),
  sub: binary(),
  mul: binary(),
  div: binary(),
  pow: binary(),
  maximum: binary(),
  minimum: binary(),
  eq: compare(),
  ne: compare(),
  lt: compare(),
  le: compare(),
  gt: compare(),
  ge: compare(),
  logicalAnd: { params: [operand(bools().good as () => k.Tensor), operand(bools().good as () => k.Tensor)] },
  logicalOr: { params: [operand(bools().good as () => k.Tensor), operand(bools().good as () => k.Tensor)] },
  logicalNot: { params: [bools()] },
  neg: unary(),
  abs: unary(),
  sign: unary(),
  exp: unary(),
  log: unary(),
  sqrt: unary(),
  rsqrt: unary(),
  sin: unary(),
  cos: unary(),
  tanh: unary(),
  sigmoid: unary(),
  relu: unary(),
  silu: unary(),
  erf: unary(),
  floor: unary(),
  ceil: unary(),
  round: unary(),
  isfinite: unary(),
  gelu: { params: [T(), opts({ approximate: choice(['none', 'tanh'], { optional: true }) })] },
  cast: { params: [T(), dtype()] },
  clone: unary(),
  where: { params: [bools(), operand(), operand()] },
  clamp: { params: [T(), scalar(0, { optional: true, nullable: true }), scalar(1, { optional: true, nullable: true })] },
  // reductions
  sum: reduceSpec(),
  mean: reduceSpec(),
  max: reduceSpec(),
  min: reduceSpec(),
  argmax: { params: [T(), axis(2, { optional: true, nullable: true }), bool({ optional: true })] },
  argmin: { params: [T(), axis(2, { optional: true, nullable: true }), bool({ optional: true })] },
  logsumexp: reduceSpec(),
  variance: { params: [T(), axes(), opts({ correction: num({ min: 0, optional: true }), keepdim: bool({ optional: true }) })] },
  std: { params: [T(), axes(), opts({ correction: num({ min: 0, optional: true }), keepdim: bool({ optional: true }) })] },
  norm: { params: [T(), num({ min: 0, minExclusive: true, infinity: true, good: 2, optional: true }), axes(), bool({ optional: true })] },
  // shape
  reshape: { params: [T(), { ...shape([3, 2], { allocates: false }), refuse: shape([3, 2], { allocates: false }).refuse.filter((b) => JSON.stringify(b.value) !== '[-1]').concat([{ value: [-1, -1], needle: '-1' }, { value: [-2, 3], needle: '-2' }]) }] },
  flatten: { params: [T(), axis(2, { optional: true }), axis(2, { optional: true })] },
  squeeze: { params: [T(() => rand([2, 1])), { ...axis(2, { optional: true }), refuse: axis(2, { optional: true }).refuse.filter((b) => !Array.isArray(b.value)), tolerate: [undefined, [1], [0, 1]] }] },
  unsqueeze: { params: [T(), int({ min: -3, max: 2, good: 0 })] },
  permute: { params: [T(), { kind: 'dims', good: () => [1, 0], refuse: [{ value: [0, 0], needle: '0,0' }, { value: [0], needle: '0' }, { value: 'xyzzy', needle: 'xyzzy' }, { value: null, needle: 'null' }, { value: [0, 2], needle: '2' }, { value: [0.5, 1], needle: '0.5' }] }] },
  transpose: { params: [T(), axis(2, { optional: true }), axis(2, { optional: true })] },
  expand: { params: [T(() => rand([1, 3])), shape([4, 3], { allocates: false })] },
  slice: { params: [T(), axis(2), int({ good: 0, optional: true }), int({ good: 2, optional: true }), int({ min: 1, good: 1, optional: true })] },
  narrow: { params: [T(), axis(2), int({ min: 0, max: 3, good: 0 }), int({ min: 0, max: 3, good: 2 })] },
  concat: { params: [Ts(), axis(2, { optional: true })] },
  stack: { params: [Ts(), int({ min: -3, max: 2, good: 0, optional: true })] },
  split: { params: [T(), int({ min: 1, good: 1 }), axis(2, { optional: true })] },
  chunk: { params: [T(), int({ min: 1, good: 2 }), axis(2, { optional: true })] },
  // indexing
  indexSelect: { params: [T(), axis(2), ids([2], 2)] },
  gather: { params: [T(), axis(2), ids([2, 3], 2)] },
  scatterAdd: { params: [T(), axis(2), ids([2, 3], 2), T()] },
  oneHot: { params: [ids([4], 3), int({ min: 1, good: 3 }), choice(['i32', 'f32', 'f64', 'bool'], { optional: true })] },
  maskedFill: { params: [T(), bools(), scalar(0)] },
  triu: { params: [T(), int({ good: 0, optional: true })] },
  tril: { params: [T(), int({ good: 0, optional: true })] },
  embedding: { params: [ids([2, 3], 4), T(() => rand([4, 5]))] },
  // nn
  matmul: { params: [T(() => rand([2, 3])), T(() => rand([3, 4])), opts({ transA: bool({ optional: true }), transB: bool({ optional: true }) })] },
  linear: { params: [T(() => rand([2, 3])), T(() => rand([4, 3])), T(() => rand([4]), { optional: true }), opts({ activation: choice(['gelu_tanh', 'none', 'relu', 'gelu', 'silu'], { optional: true }) })] },
  linearCrossEntropy: {
    params: [
      T(() => rand([3, 4])),
      T(() => rand([5, 4])),
      ids([3], 5),
      opts({
        bias: T(() => rand([5]), { optional: true }),
        ignoreIndex: int({ optional: true }),
        labelSmoothing: num({ min: 0, max: 1, optional: true }),
        reduction: choice(['mean', 'sum'], { optional: true }),
        chunkRows: int({ min: 1, good: 2, optional: true }),
      }),
    ],
  },
  addLayerNorm: { params: [T(), T(), shape([3], { allocates: false }), T(() => rand([3]), { optional: true }), T(() => rand([3]), { optional: true }), num({ min: 0, good: 1e-5, optional: true })] },
  gpuPeakFlops: { params: [str(() => 'NVIDIA H200')] },
  softmax: { params: [T(), axis(2, { optional: true })] },
  logSoftmax: { params: [T(), axis(2, { optional: true })] },
  crossEntropy: {
    params: [
      T(() => rand([3, 4])),
      ids([3], 4),
      opts({ ignoreIndex: int({ optional: true }), labelSmoothing: num({ min: 0, max: 1, optional: true }), reduction: choice(['mean', 'sum', 'none'], { optional: true }) }),
    ],
  },
  layerNorm: { params: [T(), shape([3], { allocates: false }), T(() => rand([3]), { optional: true }), T(() => rand([3]), { optional: true }), num({ min: 0, good: 1e-5, optional: true })] },
  rmsNorm: { params: [T(), shape([3], { allocates: false }), T(() => rand([3]), { optional: true }), num({ min: 0, good: 1e-6, optional: true })] },
  dropout: { params: [T(), num({ min: 0, max: 1, good: 0.5 }), bool({ optional: true }), generator()] },
  scaledDotProductAttention: {
    params: [
      T(() => rand([1, 2, 3, 4])),
      T(() => rand([1, 2, 3, 4])),
      T(() => rand([1, 2, 3, 4])),
      opts({
        attnMask: T(() => rand([3, 3]), { optional: true }),
        isCausal: bool({ optional: true }),
        causalOffset: int({ optional: true }),
        window: int({ min: 1, optional: true }),
        scale: num({ optional: true }),
        dropoutP: num({ min: 0, max: 1, maxExclusive: true, optional: true }),
        generator: generator(),
        layout: choice(['bhtd', 'bthd'], { optional: true }),
        enableGqa: bool({ optional: true }),
      }),
    ],
  },
  packedAttention: {
    params: [
      T(() => rand([1, 3, 12])),
      int({ min: 1, good: 2 }),
      opts({
        attnMask: T(() => rand([3, 3]), { optional: true }),
        isCausal: bool({ optional: true }),
        causalOffset: int({ optional: true }),
        window: int({ min: 1, optional: true }),
        kvHeads: int({ min: 1, optional: true }),
        scale: num({ optional: true }),
        dropoutP: num({ min: 0, max: 1, maxExclusive: true, optional: true }),
        generator: generator(),
      }),
    ],
  },
  // multi-tensor optimizer kernels
  adamUpdate: { params: [...fourStates(), optimHyper()] },
  lambUpdate: { params: [...fourStates(), optimHyper()] },
  multiNorm: { params: [Ts(), num({ min: 0, minExclusive: true, infinity: true, good: 2, optional: true })] },
  multiScale: { params: [Ts(), T(() => tensor(0.5))] },
  // autograd and memory
  noGrad: { params: [{ kind: 'function', good: () => () => 1, refuse: [{ value: 5, needle: '5' }, { value: null, needle: 'null' }, { value: 'xyzzy', needle: 'xyzzy' }] }] },
  enableGrad: { params: [{ kind: 'function', good: () => () => 1, refuse: [{ value: 5, needle: '5' }, { value: null, needle: 'null' }, { value: 'xyzzy', needle: 'xyzzy' }] }] },
  tidy: { params: [{ kind: 'function', good: () => () => 1, refuse: [{ value: 5, needle: '5' }, { value: null, needle: 'null' }, { value: 'xyzzy', needle: 'xyzzy' }] }] },
  keep: { params: [T()] },
  isGradEnabled: { exempt: 'takes no arguments' },
  memory: { exempt: 'takes no arguments' },
  resetPeakMemory: { exempt: 'takes no arguments' },
  customFunction: {
    params: [
      str(() => 'twice'),
      Ts(() => [rand([2, 3])]),
      func(() => (x: k.Tensor) => x.mul(2)),
      func(() => (dy: k.Tensor) => [dy.mul(2)]),
    ],
    prefix: ['customFunction', 'twice'],
  },
  checkpoint: {
    params: [
      { kind: 'function', good: () => (x: k.Tensor) => x.mul(2), refuse: [{ value: 5, needle: '5' }, { value: null, needle: 'null' }, { value: 'xyzzy', needle: 'xyzzy' }] },
      T(() => rand([2, 3]).requiresGrad_()),
    ],
  },
  Generator: { params: [int({ min: 0, good: 1, optional: true })], call: (seed: number) => new Generator(seed) },
};

export const TENSOR_EXPORTS = k as unknown as Record<string, unknown>;

// ---- Tensor methods -------------------------------------------------------------------------
// A method that delegates to an op is swept as that op, with the tensor as `this` (which can only
// be bad by being disposed); the others have their own specs.

/** Methods named differently from the op they call. */
const ALIASES: Record<string, string> = { var: 'variance', view: 'reshape' };
/** Methods with no arguments beyond `this`. */
export const TENSOR_NO_ARGS = ['square', 'detach', 'zeroGrad', 'retainGrad', 'dispose', 'toString', 'data', 'array', 'item', 'dataSync', 'arraySync', 'itemSync'];

function methodSpecs(): Table {
  const out: Table = {};
  const proto = k.Tensor.prototype as unknown as Record<string, unknown>;
  for (const m of Object.getOwnPropertyNames(proto)) {
    if (m === 'constructor' || m.startsWith('_') || typeof Object.getOwnPropertyDescriptor(proto, m)?.value !== 'function') continue;
    const op = ALIASES[m] ?? m;
    const entry = TENSOR_TABLE[op];
    if (!entry || 'exempt' in entry) continue;
    const specs = (Array.isArray(entry) ? entry : [entry]).filter((s) => s.params[0]?.kind === 'tensor' || s.params[0]?.kind === 'operand');
    if (specs.length === 0) continue;
    out[`Tensor.${m}`] = specs.map((s) => ({
      ...s,
      params: [{ ...s.params[0]!, refuse: s.params[0]!.refuse.filter((b) => b.needle === 'disposed'), tolerate: [] }, ...s.params.slice(1)],
      call: (self: k.Tensor, ...rest: unknown[]) => (self[m as keyof k.Tensor] as (...a: unknown[]) => unknown).call(self, ...rest),
      prefix: s.prefix ?? op,
    }));
  }
  return out;
}

const self = (make: () => k.Tensor = () => rand([2, 3])): Param => ({ ...T(make), refuse: T(make).refuse.filter((b) => b.needle === 'disposed'), tolerate: [] });
const backendArg = (): Param => ({ ...str(() => 'own'), refuse: [...str().refuse, { value: 'bogus', needle: 'bogus' }] });
const reader = (m: 'data' | 'array' | 'item' | 'dataSync' | 'arraySync' | 'itemSync'): Spec => ({
  params: [self(() => rand([1]))],
  call: (t: k.Tensor) => t[m](),
  prefix: m,
});

Object.assign(TENSOR_TABLE, methodSpecs(), {
  Tensor: { exempt: 'the constructor is internal: tensors come from the creation functions, swept above' },
  'Tensor.data': reader('data'),
  'Tensor.array': reader('array'),
  'Tensor.item': { params: [{ ...self(() => rand([1])), refuse: [...self().refuse, { value: () => rand([2, 3]), needle: '[2,3]' }] }], call: (t: k.Tensor) => t.item(), prefix: 'item' },
  // the valid call moves a tensor to its own backend ('own'), which every backend can do synchronously
  'Tensor.to': { params: [self(), backendArg()], call: (t: k.Tensor, name: string) => t.to(name === 'own' ? t.backend.name : name), prefix: 'to' },
  'Tensor.toAsync': { params: [self(), backendArg()], call: (t: k.Tensor, name: string) => t.toAsync(name === 'own' ? t.backend.name : name), prefix: 'toAsync' },
  'Tensor.copy_': { params: [self(), operand(() => rand([2, 3]))], call: (t: k.Tensor, src: k.Tensor) => t.copy_(src), prefix: 'copy_' },
  'Tensor.requiresGrad_': { params: [self(), bool({ optional: true })], call: (t: k.Tensor, v: boolean) => t.requiresGrad_(v), prefix: 'requiresGrad' },
  'Tensor.registerPostAccumulateGradHook': { params: [self(), func(() => () => undefined)], call: (t: k.Tensor, f: () => void) => t.registerPostAccumulateGradHook(f)(), prefix: 'registerPostAccumulateGradHook' },
  'Tensor.backward': {
    params: [self(() => rand([1], { requiresGrad: true })), T(() => rand([1]), { optional: true }), opts({ retainGraph: bool({ optional: true }) })],
    call: (t: k.Tensor, g: k.Tensor | undefined, o: { retainGraph?: boolean }) => t.mul(2).backward(g, o),
    prefix: ['backward', 'mul'],
  },
});
