/**
 * Bad-input table: the nn exports (see sweep.ts). Layers are swept twice: their constructor
 * (sizes and every option) under the class name, and each method that takes user input under
 * `Class.method`, on a fresh instance that is disposed after the call. Models are tiny (vocabulary
 * 8, one layer, width 8) so that the whole table runs in seconds on every backend.
 */
import {
  Block,
  CausalSelfAttention,
  defaultBackendName,
  Dropout,
  Embedding,
  GELU,
  GPT,
  GPTTransformer,
  KVCache,
  LayerKVCache,
  LayerNorm,
  Linear,
  LSTM,
  GRU,
  MLP,
  ModuleList,
  RMSNorm,
  ReLU,
  RotaryEmbedding,
  SiLU,
  generate,
  rand,
  type Tensor,
} from '../../src/index.js';
import { bool, choice, construct, fixed, generator, ids, instance, int, num, opts, type Param, scalar, shape, type Spec, str, T, type Table } from './sweep.js';

// ---- kinds of the nn layer -------------------------------------------------------------------

const OPTIONAL = { optional: true } as const;
const rnnKeys = (): Record<string, Param> => ({
  numLayers: int({ min: 1, optional: true }),
  bias: bool(OPTIONAL),
  batchFirst: bool(OPTIONAL),
  dropout: num({ min: 0, max: 1, optional: true }),
  bidirectional: bool(OPTIONAL),
});

/** A dtype for parameters: floating ones only. */
function floatDtype(): Param {
  const p = choice(['f32', 'f64', 'bf16', 'f16'], OPTIONAL);
  return { ...p, refuse: [...p.refuse, { value: 'i32', needle: 'i32' }, { value: 'bool', needle: 'bool' }] };
}

/** A backend's name (absent: the default backend). */
function backendName(): Param {
  return { kind: 'backend', good: () => undefined, refuse: [{ value: 'bogus', needle: 'bogus' }, { value: 5, needle: '5' }, { value: {}, needle: 'object' }], tolerate: [undefined] };
}

/** ParamOptions (dtype, backend, generator) and a layer's own options. */
const paramOpts = (extra: Record<string, Param> = {}): Param => opts({ dtype: floatDtype(), backend: backendName(), generator: generator(), ...extra });

/** A required backend name (Module.to). */
function backendArg(): Param {
  return { kind: 'backend', good: () => defaultBackendName(), refuse: [{ value: 'bogus', needle: 'bogus' }, { value: 5, needle: '5' }, { value: null, needle: 'null' }, { value: undefined, needle: 'undefined' }, { value: {}, needle: 'object' }] };
}

const disposed = (): Tensor => {
  const t = rand([2]);
  t.dispose();
  return t;
};

// ---- calling constructors and methods ----------------------------------------------------------

/** Call `run`, then `cleanup` (after the promise settles, for async methods). */
function then(run: () => unknown, cleanup: () => void): unknown {
  let r: unknown;
  try {
    r = run();
  } catch (e) {
    cleanup();
    throw e;
  }
  if (r instanceof Promise) return r.finally(cleanup);
  cleanup();
  return r;
}

/** A spec of `Class.method` on a fresh instance from `make`, cleaned up after the call. */
function method<M>(make: () => M, call: (m: M, ...a: any[]) => unknown, params: Param[], prefix: string, cleanup: (m: M) => void = (m) => (m as { dispose(): void }).dispose()): Spec {
  return { params: [fixed(make), ...params], call: (m: M, ...a: unknown[]) => then(() => call(m, ...a), () => cleanup(m)), prefix };
}

/** The tiny GPT every model entry uses. */
const TINY = { vocabSize: 8, blockSize: 4, nLayer: 1, nHead: 2, nEmbd: 8 };
const gptConfig = (): Param =>
  opts(
    {
      vocabSize: int({ min: 1 }),
      blockSize: int({ min: 1 }),
      nLayer: int({ min: 1 }),
      nHead: int({ min: 1 }),
      nEmbd: int({ min: 1 }),
      dropout: num({ min: 0, max: 1, maxExclusive: true, optional: true }),
      bias: bool(OPTIONAL),
      rope: bool(OPTIONAL),
      ropeBase: num({ min: 0, minExclusive: true, optional: true }),
      tiedHead: bool(OPTIONAL),
      activation: choice(['gelu_tanh', 'gelu'], OPTIONAL),
      layerNormEps: num({ min: 0, minExclusive: true, optional: true }),
      gradientCheckpointing: bool(OPTIONAL),
      window: int({ min: 1, optional: true }),
      kvHeads: int({ min: 1, optional: true }),
    },
    { good: () => ({ ...TINY }), optional: false },
  );

/** The options of attention (and, with `extra`, of a block). */
const attentionConfig = (extra: Record<string, Param> = {}): Param =>
  opts(
    {
      nEmbd: int({ min: 1 }),
      nHead: int({ min: 1 }),
      kvHeads: int({ min: 1, optional: true }),
      window: int({ min: 1, optional: true }),
      bias: bool(OPTIONAL),
      dropout: num({ min: 0, max: 1, maxExclusive: true, optional: true }),
      rope: bool(OPTIONAL),
      blockSize: int({ min: 1, optional: true }),
      ropeBase: num({ min: 0, minExclusive: true, optional: true }),
      std: num({ min: 0, optional: true }),
      projStd: num({ min: 0, optional: true }),
      dtype: floatDtype(),
      backend: backendName(),
      generator: generator(),
      ...extra,
    },
    { good: () => ({ nEmbd: 8, nHead: 2 }), optional: false },
  );

const linear = (): Linear => new Linear(3, 2);

/** A state dict for `linear()`. */
function stateDict(): Param {
  const good = (): Record<string, unknown> => ({ weight: rand([2, 3]), bias: rand([2]) });
  return {
    kind: 'state dict',
    good,
    refuse: [
      { value: 5, needle: '5' },
      { value: 'xyzzy', needle: 'xyzzy' },
      { value: null, needle: 'null' },
      { value: undefined, needle: 'undefined' },
      { value: [1], needle: '[1]' },
      { value: () => ({ ...good(), weight: 5 }), needle: '5' },
      { value: () => ({ ...good(), weight: disposed() }), needle: 'disposed' },
      { value: () => ({ ...good(), weight: rand([3, 3]) }), needle: 'shape mismatch' },
      { value: () => ({ ...good(), extra: rand([1]) }), needle: 'extra' },
      { value: () => ({ bias: rand([2]) }), needle: 'weight' },
    ],
    tolerate: [],
  };
}

/** Logits for sampleLogits. */
function logits(): Param {
  return {
    kind: 'logits',
    good: () => [0.5, 2, -1],
    refuse: [
      { value: 5, needle: '5' },
      { value: 'xyzzy', needle: 'xyzzy' },
      { value: null, needle: 'null' },
      { value: undefined, needle: 'undefined' },
      { value: {}, needle: 'object' },
      { value: [], needle: 'no logits' },
      { value: ['a', 1], needle: 'a' },
      { value: [1, NaN], needle: 'NaN' },
    ],
  };
}

const samplingKeys = (): Record<string, Param> => ({
  temperature: num({ min: 0, optional: true }),
  topK: int({ min: 1, optional: true }),
  topP: num({ min: 0, minExclusive: true, max: 1, optional: true }),
  greedy: bool(OPTIONAL),
});

// ---- the table -----------------------------------------------------------------------------------

export const NN_TABLE: Table = {
  // the base class and its methods (on a Linear(3, 2), or a RotaryEmbedding for buffers)
  Module: { exempt: 'abstract base class whose constructor takes no arguments; its methods are swept as Module.*' },
  'Module.loadStateDict': method(linear, (m, s, o) => m.loadStateDict(s, o), [stateDict(), opts({ strict: bool(OPTIONAL) })], 'Linear.loadStateDict'),
  'Module.to': method(linear, (m, name) => m.to(name), [backendArg()], 'Linear.to'),
  'Module.toAsync': method(linear, (m, name) => m.toAsync(name), [backendArg()], 'Linear.toAsync'),
  'Module.train': method(linear, (m, mode) => m.train(mode), [bool(OPTIONAL)], 'Linear.train'),
  'Module.requiresGrad_': method(linear, (m, flag) => m.requiresGrad_(flag), [bool(OPTIONAL)], 'Linear.requiresGrad_'),
  'Module.numParameters': method(linear, (m, only) => m.numParameters(only), [bool(OPTIONAL)], 'Linear.numParameters'),
  'Module.freeze': method(linear, (m, name) => m.freeze(name), [str(() => 'weight')], 'Linear.freeze'),
  'Module.unfreeze': method(linear, (m, name) => m.unfreeze(name), [str(() => 'weight')], 'Linear.unfreeze'),
  'Module.registerParameter': method(linear, (m, n, t) => m.registerParameter(n, t), [str(() => 'extra'), T(() => rand([2]))], 'Linear.registerParameter'),
  'Module.registerBuffer': method(linear, (m, n, t, o) => m.registerBuffer(n, t, o), [str(() => 'extra'), T(() => rand([2])), opts({ persistent: bool(OPTIONAL) })], 'Linear.registerBuffer'),
  'Module.registerModule': method(linear, (m, n, c) => m.registerModule(n, c), [str(() => 'child'), instance('module', () => new ReLU())], 'Linear.registerModule'),
  'Module.getParameter': method(linear, (m, n) => m.getParameter(n), [str(() => 'weight')], 'Linear.getParameter'),
  'Module.hasParameter': method(linear, (m, n) => m.hasParameter(n), [str(() => 'weight')], 'Linear.hasParameter'),
  'Module.getBuffer': method(() => new RotaryEmbedding(4, 8), (m, n) => m.getBuffer(n), [str(() => 'cos')], 'RotaryEmbedding.getBuffer'),
  'Module.namedModules': method(linear, (m, p) => m.namedModules(p), [str(() => 'net', OPTIONAL)], 'Linear.namedModules'),
  ModuleList: {
    params: [
      {
        kind: 'modules',
        good: () => [new ReLU(), new SiLU()],
        refuse: [
          { value: 5, needle: '5' },
          { value: 'xyzzy', needle: 'xyzzy' },
          { value: null, needle: 'null' },
          { value: {}, needle: 'object' },
          { value: [5], needle: '5' },
          { value: ['x'], needle: 'x' },
        ],
        tolerate: [undefined],
      },
    ],
    call: construct((mods) => new ModuleList(mods)),
  },
  'ModuleList.append': method(() => new ModuleList([new ReLU()]), (m, c) => m.append(c), [instance('module', () => new SiLU())], 'ModuleList.append'),
  'ModuleList.at': method(() => new ModuleList([new ReLU(), new SiLU()]), (m, i) => m.at(i), [int({ min: -2, max: 1, good: 0 })], 'ModuleList.at'),
  // initialisation
  residualStd: { params: [int({ min: 1, good: 2 }), num({ min: 0, good: 0.02, optional: true })] },
  normalParam: { params: [shape(), num({ min: 0, good: 0.02 }), paramOpts(), num({ good: 0, optional: true })] },
  uniformParam: { params: [shape(), num({ good: -1 }), num({ good: 1 }), paramOpts()] },
  constantParam: { params: [shape(), scalar(1), paramOpts()] },
  normal_: { params: [T(), num({ good: 0, optional: true }), num({ min: 0, good: 1, optional: true }), generator()] },
  uniform_: { params: [T(), num({ good: 0, optional: true }), num({ good: 1, optional: true }), generator()] },
  constant_: { params: [T(), scalar(0)] },
  zeros_: { params: [T()] },
  ones_: { params: [T()] },
  // layers
  Linear: {
    params: [int({ min: 0, good: 3 }), int({ min: 0, good: 2 }), paramOpts({ bias: bool(OPTIONAL), std: num({ min: 0, optional: true }), weight: T(() => rand([2, 3]), OPTIONAL) })],
    call: construct((a, b, o) => new Linear(a, b, o)),
  },
  'Linear.forward': method(linear, (m, x) => m.forward(x), [T(() => rand([4, 3]))], 'Linear.forward'),
  Embedding: { params: [int({ min: 0, good: 4 }), int({ min: 0, good: 5 }), paramOpts({ std: num({ min: 0, optional: true }) })], call: construct((a, b, o) => new Embedding(a, b, o)) },
  LSTM: {
    params: [int({ min: 1, good: 3 }), int({ min: 1, good: 4 }), paramOpts(rnnKeys())],
    call: construct((a, b, o) => new LSTM(a, b, o)),
  },
  GRU: {
    params: [int({ min: 1, good: 3 }), int({ min: 1, good: 4 }), paramOpts(rnnKeys())],
    call: construct((a, b, o) => new GRU(a, b, o)),
  },
  'LSTM.forward': method(() => new LSTM(3, 4, { batchFirst: true }), (m, x, h, c, o) => m.forward(x, h, c, o), [T(() => rand([2, 5, 3])), T(() => rand([1, 2, 4]), OPTIONAL), T(() => rand([1, 2, 4]), OPTIONAL), opts({ lengths: { kind: 'lengths', good: () => undefined, refuse: [{ value: [5], needle: '[5]' }, { value: [0, 5], needle: '0' }, { value: 'x', needle: 'x' }] } })], 'LSTM.forward'),
  'GRU.forward': method(() => new GRU(3, 4, { batchFirst: true }), (m, x, h, o) => m.forward(x, h, o), [T(() => rand([2, 5, 3])), T(() => rand([1, 2, 4]), OPTIONAL), opts({ lengths: { kind: 'lengths', good: () => undefined, refuse: [{ value: [6, 1], needle: '6' }] } })], 'GRU.forward'),
  'Embedding.forward': method(() => new Embedding(4, 5), (m, x) => m.forward(x), [ids([2, 3], 4)], 'Embedding.forward'),
  LayerNorm: {
    params: [int({ min: 1, good: 3 }), paramOpts({ eps: num({ min: 0, optional: true }), elementwiseAffine: bool(OPTIONAL), bias: bool(OPTIONAL) })],
    call: construct((d, o) => new LayerNorm(d, o)),
  },
  'LayerNorm.forward': method(() => new LayerNorm(3), (m, x) => m.forward(x), [T()], 'LayerNorm.forward'),
  RMSNorm: { params: [int({ min: 1, good: 3 }), paramOpts({ eps: num({ min: 0, optional: true }), elementwiseAffine: bool(OPTIONAL) })], call: construct((d, o) => new RMSNorm(d, o)) },
  'RMSNorm.forward': method(() => new RMSNorm(3), (m, x) => m.forward(x), [T()], 'RMSNorm.forward'),
  Dropout: { params: [num({ min: 0, max: 1, good: 0.5, optional: true }), opts({ generator: generator() })], call: construct((p, o) => new Dropout(p, o)) },
  'Dropout.forward': method(() => new Dropout(0.5), (m, x) => m.forward(x), [T()], 'Dropout.forward'),
  GELU: { params: [opts({ approximate: choice(['none', 'tanh'], OPTIONAL) })], call: construct((o) => new GELU(o)) },
  'GELU.forward': method(() => new GELU(), (m, x) => m.forward(x), [T()], 'GELU.forward'),
  SiLU: { exempt: 'its constructor takes no arguments; SiLU.forward is swept' },
  'SiLU.forward': method(() => new SiLU(), (m, x) => m.forward(x), [T()], 'SiLU.forward'),
  ReLU: { exempt: 'its constructor takes no arguments; ReLU.forward is swept' },
  'ReLU.forward': method(() => new ReLU(), (m, x) => m.forward(x), [T()], 'ReLU.forward'),
  MLP: {
    params: [
      int({ min: 1, good: 4 }),
      paramOpts({
        hidden: int({ min: 1, optional: true }),
        bias: bool(OPTIONAL),
        activation: choice(['gelu_tanh', 'gelu'], OPTIONAL),
        dropout: num({ min: 0, max: 1, optional: true }),
        std: num({ min: 0, optional: true }),
        projStd: num({ min: 0, optional: true }),
      }),
    ],
    call: construct((n, o) => new MLP(n, o)),
  },
  'MLP.forward': method(() => new MLP(4), (m, x) => m.forward(x), [T(() => rand([2, 4]))], 'MLP.forward'),
  RotaryEmbedding: {
    params: [int({ min: 2, good: 4 }), int({ min: 1, good: 8 }), opts({ dtype: floatDtype(), backend: backendName(), generator: generator(), base: num({ min: 0, minExclusive: true, optional: true }) })],
    call: construct((d, n, o) => new RotaryEmbedding(d, n, o)),
  },
  'RotaryEmbedding.forward': method(
    () => new RotaryEmbedding(4, 8),
    (m, x, offset, layout) => m.forward(x, offset, layout),
    [T(() => rand([1, 2, 3, 4])), int({ min: 0, max: 5, good: 0, optional: true }), choice(['bhtd', 'bthd'], OPTIONAL)],
    'RotaryEmbedding.forward',
  ),
  applyRotary: { params: [T(() => rand([1, 2, 3, 4])), T(() => rand([3, 2])), T(() => rand([3, 2]))] },
  // caches
  LayerKVCache: { exempt: 'its constructor takes no arguments; LayerKVCache.append is swept' },
  'LayerKVCache.append': method(
    () => new LayerKVCache(),
    (c, k, v) => c.append(k, v),
    [T(() => rand([1, 2, 2, 4])), T(() => rand([1, 2, 2, 4]))],
    'LayerKVCache.append',
    (c) => c.clear(),
  ),
  KVCache: { params: [int({ min: 1, good: 2 })], call: construct((n) => new KVCache(n)) },
  // transformer parts and models
  CausalSelfAttention: { params: [attentionConfig()], call: construct((c) => new CausalSelfAttention(c)) },
  'CausalSelfAttention.forward': method(
    () => new CausalSelfAttention({ nEmbd: 8, nHead: 2 }),
    (m, x, cache) => m.forward(x, cache),
    [T(() => rand([1, 3, 8])), instance('cache', () => undefined, OPTIONAL)],
    'CausalSelfAttention.forward',
  ),
  Block: {
    params: [attentionConfig({ mlpHidden: int({ min: 1, optional: true }), activation: choice(['gelu_tanh', 'gelu'], OPTIONAL), layerNormEps: num({ min: 0, optional: true }) })],
    call: construct((c) => new Block(c)),
  },
  'Block.forward': method(() => new Block({ nEmbd: 8, nHead: 2 }), (m, x, cache) => m.forward(x, cache), [T(() => rand([1, 3, 8])), instance('cache', () => undefined, OPTIONAL)], 'Block.forward'),
  GPTTransformer: { params: [gptConfig(), paramOpts()], call: construct((c, o) => new GPTTransformer(c, o)) },
  'GPTTransformer.forward': method(() => new GPTTransformer(TINY), (m, idx, cache) => m.forward(idx, cache), [ids([1, 3], 8), instance('cache', () => undefined, OPTIONAL)], 'GPTTransformer.forward'),
  GPT: { params: [gptConfig(), paramOpts()], call: construct((c, o) => new GPT(c, o)) },
  'GPT.forward': method(
    () => new GPT(TINY),
    (m, idx, targets, o) => m.forward(idx, targets, o),
    [ids([1, 3], 8), T(ids([1, 3], 8).good as () => Tensor, OPTIONAL), opts({ cache: instance('cache', () => undefined, OPTIONAL), lastOnly: bool(OPTIONAL) })],
    'GPT.forward',
  ),
  // generation
  generate: {
    params: [
      instance('model', () => new GPT(TINY)),
      ids([1, 2], 8),
      opts(
        { maxNewTokens: int({ min: 0 }), generator: generator(), eos: int({ min: 0, max: 7, optional: true }), useCache: bool(OPTIONAL), ...samplingKeys() },
        { good: () => ({ maxNewTokens: 2 }), optional: false },
      ),
    ],
    call: (model: unknown, idx: Tensor, o: never) => then(() => generate(model as GPT, idx, o), () => (model instanceof GPT ? model.dispose() : undefined)),
  },
  sampleLogits: { params: [logits(), opts(samplingKeys()), num({ min: 0, max: 1, maxExclusive: true, good: 0.5, optional: true })] },
};
