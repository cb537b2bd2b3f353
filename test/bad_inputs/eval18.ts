/**
 * Bad-input table: the evaluation additions of issue 18 (see sweep.ts): METEOR
 * (src/metrics/meteor.ts), group fairness and counterfactual swaps (src/metrics/fairness.ts),
 * and k-fold cross-validation (src/train/kfold.ts). The counterfactual model is a stand-in with
 * uniform logits made on the current backend, so the sweep needs no weights and no reads.
 */
import { rand, zeros, type Tensor } from '../../src/index.js';
import { bool, choice, int, num, opts, type Bad, type Param, type Table } from './sweep.js';

const bad = (value: unknown, needle: string | string[]): Bad => ({ value, needle });
const OPTIONAL = { optional: true } as const;
/** Values that are no list at all. */
const notAList = (): Bad[] => [bad('xyzzy', 'xyzzy'), bad(5, '5'), bad({}, 'object'), bad(true, 'true'), bad(null, 'null'), bad(undefined, 'undefined')];
const disposed = (): Tensor => {
  const t = rand([2]);
  t.dispose();
  return t;
};

// ---- METEOR -----------------------------------------------------------------------------

/** A token list (string[]); a plain string is refused (split it first). */
function tokens(good: () => string[]): Param {
  return { kind: 'tokens', good, refuse: [...notAList(), bad(['a', 5], '5'), bad(['a', null], 'null'), bad(['a', {}], 'object')], tolerate: [[]] };
}

/** One segment's references: a non-empty array of token lists. */
function referenceTokens(good: () => string[][]): Param {
  return { kind: 'references', good, refuse: [...notAList(), bad([], '[]'), bad(['a b'], 'a b'), bad([['a', 5]], '5'), bad([null], 'null')], tolerate: [[[]]] };
}

/** The synonyms option: a Map, a plain object of string arrays, or a function. */
function synonyms(): Param {
  return {
    kind: 'synonyms',
    good: () => ({ big: ['great'], dog: ['hound'] }),
    refuse: [
      bad(5, '5'),
      bad('xyzzy', 'xyzzy'),
      bad([1], '[1]'),
      bad(null, 'null'),
      bad({ big: 'great' }, "synonyms of 'big'"),
      bad({ big: [5] }, '5'),
      bad(new Map([[5, ['x']]]), '5'),
      bad(() => () => 7, '7'),
    ],
  };
}

function stemmer(): Param {
  return { kind: 'stemmer', good: () => 'porter', refuse: [bad('snowball', 'snowball'), bad(5, '5'), bad({}, 'object'), bad(null, 'null'), bad(() => () => 7, '7')] };
}

function preprocess(): Param {
  return { kind: 'preprocess', good: () => (t: string) => t.toLowerCase(), refuse: [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad({}, 'object'), bad(null, 'null'), bad(() => () => 5, '5')] };
}

const meteorOptions = (): Param =>
  opts({
    alpha: num({ min: 0, max: 1, optional: true }),
    beta: num({ min: 0, optional: true }),
    gamma: num({ min: 0, max: 1, optional: true }),
    stemmer: stemmer(),
    synonyms: synonyms(),
    preprocess: preprocess(),
  });

// ---- fairness ---------------------------------------------------------------------------

const PRED = [1, 0, 1, 1, 0, 0];
const TRUE = [1, 0, 0, 1, 1, 0];
const GROUPS = ['a', 'a', 'a', 'b', 'b', 'b'];

/** A label list of 6 (one kind of label), or a 1-d tensor. */
function labelList(kind: string, good: number[] | string[], o: { binary?: boolean } = {}): Param {
  const refuse = [
    ...notAList(),
    bad([...good.slice(0, 5), NaN], 'NaN'),
    bad([...good.slice(0, 5), {}], 'object'),
    bad([...good.slice(0, 5), null], 'null'),
    bad(good.slice(0, 5), 'has 5'),
    bad(disposed, 'disposed'),
    bad(() => rand([2, 3]), '[2,3]'),
  ];
  // alone (demographic parity) the labels need posLabel; beside 0/1 labels (equalized odds) they make four
  if (o.binary) refuse.push(bad(['no', 'yes', 'no', 'yes', 'no', 'no'], ['posLabel', 'two distinct labels']));
  return { kind, good: () => [...good], refuse };
}

const fairnessOptions = (o: { agg?: boolean } = {}): Param =>
  opts({
    method: choice(['between_groups', 'to_overall'], OPTIONAL),
    sampleWeight: { kind: 'weights', good: () => [1, 1, 1, 1, 1, 1], refuse: [bad('xyzzy', 'xyzzy'), bad(5, '5'), bad([1], '1 weights'), bad([1, 1, 1, 1, 1, -1], '-1'), bad([1, 1, 1, 1, 1, NaN], 'NaN'), bad(null, 'null')] },
    posLabel: { kind: 'label', good: () => 1, refuse: [bad({}, 'object'), bad(NaN, 'NaN'), bad([1], '[1]'), bad(null, 'null')] },
    ...(o.agg ? { agg: choice(['worst_case', 'mean'], OPTIONAL) } : {}),
  });

// ---- counterfactual swaps ---------------------------------------------------------------

const VOCAB = 8;
/** Uniform logits [1, T, 8] on the current backend. */
const uniformModel = () => ({ forward: (idx: Tensor) => zeros([1, idx.shape[1]!, VOCAB]) });
const charTokenizer = () => ({ encode: (text: string) => [...text].map((c) => c.charCodeAt(0) % VOCAB) });

function instanceWith(kind: string, good: () => unknown, extra: Bad[] = []): Param {
  return { kind, good, refuse: [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad({}, 'object'), bad(null, 'null'), bad(undefined, 'undefined'), ...extra] };
}

function pairs(): Param {
  return {
    kind: 'pairs',
    good: () => [['he', 'she']],
    refuse: [
      ...notAList(),
      bad([], '[]'),
      bad([['he']], 'pairs[0]'),
      bad([['he', 5]], '5'),
      bad([['he', 'he']], 'itself'),
      bad([['he', 'she'], ['she', 'it']], 'one pair only'),
      bad([['two words', 'x']], 'two words'),
    ],
  };
}

const swapOptions = (): Param =>
  opts({
    prefix: { kind: 'token ids', good: () => [0], refuse: [bad('xyzzy', 'xyzzy'), bad(5, '5'), bad([1.5], '1.5'), bad([-1], '-1'), bad(['a'], 'a'), bad(null, 'null')] },
    backend: { kind: 'backend', good: () => undefined, refuse: [bad('bogus', 'bogus'), bad(5, '5'), bad({}, 'object')] },
  });

// ---- k-fold -----------------------------------------------------------------------------

const foldOptions = (o: { ddof?: boolean } = {}): Param =>
  opts(
    {
      shuffle: bool(OPTIONAL),
      seed: int({ min: 0, optional: true }),
      ...(o.ddof ? { ddof: { kind: 'ddof', good: () => 0, refuse: [bad(2, '2'), bad(0.5, '0.5'), bad('x', 'x'), bad(null, 'null')] } } : {}),
    },
    { good: () => ({ shuffle: true }) },
  );

const DOCS = ['d0', 'd1', 'd2', 'd3', 'd4', 'd5'];

export const EVAL18_TABLE: Table = {
  meteorScore: { params: [referenceTokens(() => [['a', 'great', 'hound'], ['the', 'dog']]), tokens(() => ['a', 'big', 'dog']), meteorOptions()] },
  meteorAlign: { params: [tokens(() => ['a', 'great', 'hound']), tokens(() => ['a', 'big', 'dog']), meteorOptions()] },
  corpusMeteor: {
    params: [
      {
        kind: 'reference lists',
        good: () => [[['a', 'great', 'hound']], [['a', 'dog']]],
        refuse: [...notAList(), bad([[['a']]], '2 hypotheses but 1'), bad([[], [['a']]], '[]'), bad([['a b'], [['a']]], 'a b')],
      },
      {
        kind: 'hypotheses',
        good: () => [['a', 'big', 'dog'], ['dog']],
        refuse: [...notAList(), bad([['a']], '1 hypotheses but 2'), bad([['a'], 'a b'], 'a b'), bad([['a'], [5]], '5')],
      },
      meteorOptions(),
    ],
  },
  demographicParityDifference: { params: [labelList('yPred', PRED, { binary: true }), labelList('groups', GROUPS), fairnessOptions()] },
  demographicParityRatio: { params: [labelList('yPred', PRED, { binary: true }), labelList('groups', GROUPS), fairnessOptions()] },
  equalizedOddsDifference: {
    params: [labelList('yTrue', TRUE, { binary: true }), labelList('yPred', PRED, { binary: true }), labelList('groups', GROUPS), fairnessOptions({ agg: true })],
  },
  equalizedOddsRatio: {
    params: [labelList('yTrue', TRUE, { binary: true }), labelList('yPred', PRED, { binary: true }), labelList('groups', GROUPS), fairnessOptions({ agg: true })],
  },
  counterfactualSwaps: {
    params: [
      instanceWith('model', uniformModel),
      instanceWith('tokenizer', charTokenizer, [bad({ encode: () => 'abc' }, 'abc'), bad({ encode: () => [1.5] }, '1.5'), bad({ encode: () => [-1] }, '-1')]),
      { kind: 'prompts', good: () => ['he ran', 'she sat', 'nobody'], refuse: [...notAList(), bad(['a', 5], '5'), bad(['a', null], 'null')], tolerate: [[]] },
      pairs(),
      swapOptions(),
    ],
  },
  kFoldSplits: {
    params: [
      { kind: 'documents', good: () => 10, refuse: [bad('xyzzy', 'xyzzy'), bad(-1, '-1'), bad(1.5, '1.5'), bad(NaN, 'NaN'), bad(null, 'null'), bad(undefined, 'undefined'), bad({}, 'object')], tolerate: [DOCS] },
      { ...int({ min: 2, good: 3 }), refuse: [...int({ min: 2 }).refuse, bad(11, '11')] },
      foldOptions(),
    ],
  },
  crossValidate: {
    params: [
      { kind: 'documents', good: () => [...DOCS], refuse: [...notAList().filter((b) => b.value !== true), bad(true, 'true')] },
      { ...int({ min: 2, good: 3 }), refuse: [...int({ min: 2 }).refuse, bad(7, '7')] },
      {
        kind: 'run',
        good: () => async (_t: string[], v: string[]) => ({ n: v.length }),
        refuse: [
          bad(5, '5'),
          bad('xyzzy', 'xyzzy'),
          bad({}, 'object'),
          bad(null, 'null'),
          bad(undefined, 'undefined'),
          bad(() => async () => 5, '5'),
          bad(() => async () => ({ a: 'x' }), 'x'),
          bad(() => async () => ({}), 'no metrics'),
        ],
      },
      foldOptions({ ddof: true }),
    ],
  },
};
