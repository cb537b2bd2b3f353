/**
 * Bad-input table: the BERT exports (see sweep.ts): the models (constructor configs and options,
 * each forward's ids, labels and masks), the MLM objective and evaluation, masking, the
 * WordPiece trainer and the fine-tuning helpers. Models are tiny (vocabulary 10, one layer,
 * width 8, 8 positions) so that the table runs in seconds on every backend.
 */
import { Generator, rand, tensor, type Tensor } from '../../src/index.js';
import { trainWordPiece } from '../../src/data/mlm.js';
import {
  BertForMaskedLM,
  BertForSequenceClassification,
  BertForTokenClassification,
  BertModel,
  MaskedLMPretraining,
  evaluateBertClassifier,
  evaluateMaskedLM,
  finetuneBertClassifier,
} from '../../src/nn/bert.js';
import { backendName, bool, choice, construct, floatDtype, func, generator, instance, int, method, num, opts, type Param, T, type Table } from './sweep.js';

const OPTIONAL = { optional: true } as const;

/** The tiny BERT every entry uses. */
const TINY = { vocabSize: 10, hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 2, maxPositionEmbeddings: 8 };

const bertConfig = (): Param =>
  opts(
    {
      vocabSize: int({ min: 1, good: 10 }),
      hiddenSize: int({ min: 1, good: 8 }),
      numHiddenLayers: int({ min: 1 }),
      numAttentionHeads: int({ min: 1, good: 2 }),
      intermediateSize: int({ min: 1, optional: true }),
      hiddenAct: choice(['gelu', 'gelu_tanh'], OPTIONAL),
      hiddenDropoutProb: num({ min: 0, max: 1, maxExclusive: true, optional: true }),
      attentionProbsDropoutProb: num({ min: 0, max: 1, maxExclusive: true, optional: true }),
      maxPositionEmbeddings: int({ min: 1, good: 8, optional: true }),
      typeVocabSize: int({ min: 1, optional: true }),
      layerNormEps: num({ min: 0, minExclusive: true, optional: true }),
      padTokenId: int({ min: 0, max: 9, good: 0, optional: true, nullable: true }),
      initializerRange: num({ min: 0, optional: true }),
      numLabels: int({ min: 1, optional: true }),
      classifierDropout: num({ min: 0, max: 1, maxExclusive: true, optional: true, nullable: true }),
    },
    { good: () => ({ ...TINY }), optional: false },
  );

const paramOpts = (extra: Record<string, Param> = {}): Param => opts({ dtype: floatDtype(), backend: backendName(), generator: generator(), ...extra });

/** Token ids `[B, T]` i32 in [0, 10). */
const ids = (rows = 2, cols = 4): (() => Tensor) => () => tensor(Array.from({ length: rows * cols }, (_, i) => (i * 3) % 10), [rows, cols], { dtype: 'i32' });
/** The ids of a forward: refuses floats, the wrong rank, and more positions than the model has. */
function inputIds(): Param {
  const p = T(ids());
  return {
    ...p,
    refuse: [
      ...p.refuse,
      { value: () => rand([2, 4]), needle: 'f32' },
      { value: () => tensor([1, 2, 3], { dtype: 'i32' }), needle: '[3]' },
      { value: ids(1, 9), needle: '9 positions' },
    ],
  };
}
/** An optional `[B, T]` companion of the ids (labels, masks): refuses a shape unlike them. */
function likeIds(make: () => Tensor = ids(), i32 = true): Param {
  const p = T(make, OPTIONAL);
  return { ...p, refuse: [...p.refuse, { value: ids(2, 3), needle: '[2,3]' }, ...(i32 ? [{ value: () => rand([2, 4]), needle: 'f32' }] : [])] };
}
const forwardOpts = (): Param => opts({ attentionMask: likeIds(() => tensor([[1, 1, 1, 0], [1, 1, 0, 0]], { dtype: 'i32' }), false), tokenTypeIds: likeIds(), positionIds: likeIds() });

// ---- masking, vocabulary, tokenizer ---------------------------------------------------------------

const maskOpts = (extra: Record<string, Param> = {}, good: () => Record<string, unknown> = () => ({ vocabSize: 10, maskId: 4, specialIds: [0, 1, 2, 3], generator: new Generator(1) }), withVocab = true): Param =>
  opts(
    {
      ...(withVocab ? { vocabSize: int({ min: 1, good: 10 }) } : {}),
      maskId: int({ min: 0, max: 9, good: 4 }),
      specialIds: { kind: 'ids', good: () => [0, 1], refuse: [{ value: 5, needle: '5' }, { value: 'xyzzy', needle: 'xyzzy' }, { value: [1.5], needle: '1.5' }, { value: [10], needle: '10' }, { value: [-1], needle: '-1' }] },
      mlmProbability: num({ min: 0, max: 1, optional: true }),
      maskFraction: num({ min: 0, max: 1, optional: true }),
      randomFraction: num({ min: 0, max: 1, optional: true }),
      generator: { kind: 'generator', good: () => new Generator(1), refuse: [{ value: 5, needle: '5' }, { value: 'xyzzy', needle: 'xyzzy' }, { value: {}, needle: 'object' }, { value: null, needle: 'null' }] },
      ...extra,
    },
    { good, optional: false },
  );

/** Texts to train or encode. */
function texts(good = (): string[] => ['the union is strong', 'the state of the union']): Param {
  return { kind: 'texts', good, refuse: [{ value: 5, needle: '5' }, { value: 'xyzzy', needle: 'xyzzy' }, { value: null, needle: 'null' }, { value: undefined, needle: 'undefined' }, { value: [5], needle: '5' }, { value: ['a', null], needle: 'null' }] };
}

const wordpiece = () => trainWordPiece(['the union is strong', 'the state of the union'], { vocabSize: 40 });
/** A tokenizer with [CLS], [SEP] and [PAD]. */
const tokenizer = (): Param => ({
  kind: 'tokenizer',
  good: wordpiece,
  refuse: [
    { value: 5, needle: '5' },
    { value: 'xyzzy', needle: 'xyzzy' },
    { value: null, needle: 'null' },
    { value: {}, needle: 'object' },
    { value: () => trainWordPiece(['the union'], { vocabSize: 20, specialTokens: ['[UNK]'] }), needle: ['[CLS]', '[PAD]'] },
  ],
});

/** Class ids for two texts (numLabels 2). */
function labels(n = 2): Param {
  return {
    kind: 'labels',
    good: () => Array.from({ length: n }, (_, i) => i % 2),
    refuse: [{ value: 5, needle: '5' }, { value: 'xyzzy', needle: 'xyzzy' }, { value: null, needle: 'null' }, { value: [0], needle: '1 labels' }, { value: [0, 2], needle: '2' }, { value: [0, 0.5], needle: '0.5' }, { value: [0, -1], needle: '-1' }],
  };
}

const classifier = (): BertForSequenceClassification => new BertForSequenceClassification({ ...TINY, vocabSize: 40, numLabels: 2 });
const mlm = (): BertForMaskedLM => new BertForMaskedLM(TINY);
const modelOf = <M>(kind: string, good: () => M): Param => instance(kind, good);

// ---- the table -----------------------------------------------------------------------------------

export const BERT_TABLE: Table = {
  // models
  BertModel: { params: [bertConfig(), paramOpts({ addPoolingLayer: bool(OPTIONAL) })], call: construct((c, o) => new BertModel(c, o)) },
  'BertModel.forward': method(() => new BertModel(TINY), (m, x, o) => m.forward(x, o), [inputIds(), forwardOpts()], 'BertModel.forward'),
  BertForMaskedLM: { params: [bertConfig(), paramOpts()], call: construct((c, o) => new BertForMaskedLM(c, o)) },
  'BertForMaskedLM.forward': method(mlm, (m, x, l, o) => m.forward(x, l, o), [inputIds(), likeIds(), forwardOpts()], 'BertForMaskedLM.forward'),
  BertForSequenceClassification: { params: [bertConfig(), paramOpts()], call: construct((c, o) => new BertForSequenceClassification(c, o)) },
  'BertForSequenceClassification.forward': method(
    () => new BertForSequenceClassification(TINY),
    (m, x, l, o) => m.forward(x, l, o),
    [inputIds(), { ...T(() => tensor([0, 1], { dtype: 'i32' }), OPTIONAL), refuse: [...T(undefined, OPTIONAL).refuse, { value: () => tensor([0, 1, 1], { dtype: 'i32' }), needle: '[3]' }] }, forwardOpts()],
    'BertForSequenceClassification.forward',
  ),
  BertForTokenClassification: { params: [bertConfig(), paramOpts()], call: construct((c, o) => new BertForTokenClassification(c, o)) },
  'BertForTokenClassification.forward': method(
    () => new BertForTokenClassification(TINY),
    (m, x, l, o) => m.forward(x, l, o),
    [inputIds(), likeIds(() => tensor([[0, 1, 1, -100], [1, 0, -100, -100]], { dtype: 'i32' })), forwardOpts()],
    'BertForTokenClassification.forward',
  ),
  // pre-training
  MaskedLMPretraining: {
    params: [modelOf('model', mlm), maskOpts({}, () => ({ maskId: 4, specialIds: [0, 1, 2, 3], generator: new Generator(1) }), false)],
    call: (m: unknown, o: never) => {
      try {
        return void new MaskedLMPretraining(m as BertForMaskedLM, o);
      } finally {
        if (m instanceof BertForMaskedLM) m.dispose();
      }
    },
  },
  'MaskedLMPretraining.forward': method(() => new MaskedLMPretraining(mlm(), { maskId: 4, generator: new Generator(1) }), (m, x) => m.forward(x), [inputIds()], 'MaskedLMPretraining.forward'),
  'MaskedLMPretraining.loadStateDict': method(
    () => new MaskedLMPretraining(mlm(), { maskId: 4, generator: new Generator(1) }),
    (m, s) => m.loadStateDict(s),
    [{ kind: 'state dict', good: () => mlm().stateDict(), refuse: [{ value: 5, needle: '5' }, { value: null, needle: 'null' }, { value: () => ({ extra: rand([1]) }), needle: 'extra' }] }],
    'MaskedLMPretraining.loadStateDict',
  ),
  evaluateMaskedLM: {
    params: [
      modelOf('model', mlm),
      { kind: 'tokens', good: () => Array.from({ length: 16 }, (_, i) => 5 + (i % 5)), refuse: [{ value: 5, needle: '5' }, { value: 'xyzzy', needle: 'xyzzy' }, { value: [1, 2], needle: 'fewer than one window' }, { value: [1, 2, 3, 40, 5, 6, 7, 8], needle: '40' }] },
      maskOpts({ blockSize: int({ min: 1, max: 8, good: 8 }), batchSize: int({ min: 1, optional: true }), maxBatches: int({ min: 1, optional: true }) }, () => ({ blockSize: 8, maskId: 4, generator: new Generator(1) }), false),
    ],
    call: (m: unknown, t: unknown, o: never) => {
      const r = (async () => evaluateMaskedLM(m as BertForMaskedLM, t as number[], o))();
      return r.finally(() => (m instanceof BertForMaskedLM ? m.dispose() : undefined));
    },
  },
  maskTokens: {
    params: [
      { kind: 'ids', good: () => [0, 5, 6, 7], refuse: [{ value: 5, needle: '5' }, { value: 'xyzzy', needle: 'xyzzy' }, { value: null, needle: 'null' }, { value: [0, 'x'], needle: 'x' }, { value: [0, 10], needle: '10' }, { value: [0.5], needle: '0.5' }] },
      maskOpts(),
    ],
  },
  maskTokensTensor: { params: [{ ...T(ids()), refuse: [...T(ids()).refuse, { value: () => rand([2, 4]), needle: 'f32' }] }, maskOpts()] },
  trainWordPiece: {
    params: [
      texts(),
      opts(
        {
          vocabSize: int({ min: 5, max: 2 ** 24, good: 30 }),
          specialTokens: { kind: 'tokens', good: () => ['[UNK]'], refuse: [{ value: 5, needle: '5' }, { value: ['[PAD]'], needle: '[UNK]' }, { value: ['[UNK]', '[UNK]'], needle: 'repeated' }, { value: ['[UNK]', ''], needle: "''" }] },
          lowercase: bool(OPTIONAL),
          minFrequency: int({ min: 1, optional: true }),
          minCharFrequency: int({ min: 1, optional: true }),
        },
        { good: () => ({ vocabSize: 30 }), optional: false },
      ),
    ],
  },
  // fine-tuning
  encodeForBert: { params: [tokenizer(), texts(), opts({ maxLength: int({ min: 2, good: 8 }) }, { good: () => ({ maxLength: 8 }), optional: false })] },
  evaluateBertClassifier: {
    params: [modelOf('model', classifier), tokenizer(), texts(), labels(), opts({ maxLength: int({ min: 2, max: 8, good: 8, optional: true }), batchSize: int({ min: 1, optional: true }) })],
    call: (m: unknown, ...a: unknown[]) => {
      const r = (async () => evaluateBertClassifier(m as BertForSequenceClassification, ...(a as [never, never, never, never])))();
      return r.finally(() => (m instanceof BertForSequenceClassification ? m.dispose() : undefined));
    },
  },
  finetuneBertClassifier: {
    params: [
      opts(
        {
          model: modelOf('model', classifier),
          tokenizer: tokenizer(),
          train: { kind: 'split', good: () => ({ texts: ['the union', 'the state'], labels: [0, 1] }), refuse: [{ value: 5, needle: '5' }, { value: { texts: ['a'], labels: [0, 1] }, needle: '2 labels' }, { value: { texts: 'a', labels: [0] }, needle: 'a' }, { value: { texts: ['a'], labels: [3] }, needle: '3' }] },
          eval: { kind: 'split', good: () => undefined, refuse: [{ value: 5, needle: '5' }, { value: { texts: [], labels: [] }, needle: 'empty' }], tolerate: [undefined] },
          epochs: int({ min: 1, optional: true }),
          batchSize: int({ min: 1, optional: true }),
          lr: num({ min: 0, optional: true }),
          weightDecay: num({ min: 0, optional: true }),
          warmupFraction: num({ min: 0, max: 1, optional: true }),
          maxLength: int({ min: 2, max: 8, good: 8, optional: true }),
          clip: num({ min: 0, optional: true }),
          generator: generator(),
          onEpoch: { ...func(() => () => {}), good: () => undefined, tolerate: [undefined], refuse: func(() => () => {}).refuse.filter((b) => b.value !== undefined && b.value !== null) },
        },
        { good: () => ({ model: classifier(), tokenizer: wordpiece(), train: { texts: ['the union', 'the state'], labels: [0, 1] }, epochs: 1 }), optional: false },
      ),
    ],
    call: (o: { model?: unknown } | undefined) => {
      const r = (async () => finetuneBertClassifier(o as never))();
      return r.finally(() => (o && typeof o === 'object' && o.model instanceof BertForSequenceClassification ? o.model.dispose() : undefined));
    },
  },
  // the Node pipeline
  pretrainBert: { exempt: 'runs kiln train --model bert from a configuration; test/bert.test.ts runs the command, which covers its arguments' },
};
