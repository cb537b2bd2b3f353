/**
 * Bad-input table: the metrics exports (see sweep.ts). Metrics compute on the host: a tensor
 * argument is read at once where the backend allows it, so on a backend without synchronous
 * reads (async-ref) the valid call passes the same values as an array (see `hostTensor`), and
 * the tensor refusals are the ones checked before any read (disposed, wrong shape, wrong dtype).
 */
import { PerplexityMeter, ThroughputMeter, backendSync, rand, tensor, type Tensor } from '../../src/index.js';
import { T, bool, choice, fixed, func, int, num, opts, str, type Bad, type Param, type Table } from './sweep.js';

// ---- kinds of the metrics' arguments ------------------------------------------------------

const disposed = (): Tensor => {
  const t = rand([2]);
  t.dispose();
  return t;
};
const bad = (value: unknown, needle: string | string[]): Bad => ({ value, needle });
/** The sweep's refused values that are not of the argument's kind at all. */
const notAList = (o: { optional?: boolean } = {}): Bad[] => [
  bad('xyzzy', 'xyzzy'),
  bad(5, '5'),
  bad({}, 'object'),
  bad(true, 'true'),
  ...(o.optional ? [] : [bad(null, 'null'), bad(undefined, 'undefined')]),
];

/** Whether the current backend reads tensors synchronously (metrics read tensor arguments at once). */
const readable = (): boolean => !!backendSync().readSync;
/** A tensor where the backend can read it at once, else the same values as `fallback`. */
const hostTensor = (make: () => Tensor, fallback: () => unknown) => (): unknown => (readable() ? make() : fallback());

/** A list of strings (a corpus' predictions); `mismatch` is the message for a list one longer than `good`. */
function strings(good: () => string[], mismatch?: string): Param {
  const refuse = [...notAList(), bad(['a', 5], '5'), bad(['a', null], 'null'), bad(['a', {}], 'object')];
  if (mismatch) refuse.push(bad([...good(), 'extra'], mismatch));
  return { kind: 'strings', good, refuse };
}

/** One segment's references: a string or a non-empty array of strings. */
function references(good: () => string | string[] = () => ['the cat sat on the mat', 'a cat sat on the mat']): Param {
  return { kind: 'references', good, refuse: [bad(5, '5'), bad({}, 'object'), bad(null, 'null'), bad(undefined, 'undefined'), bad([], '[]'), bad(['a', 5], '5'), bad(['a', null], 'null')], tolerate: ['a single reference'] };
}

/** A corpus' references: one entry per prediction, each a string or a non-empty array of strings. */
function referenceLists(good: () => (string | string[])[], mismatch: string): Param {
  return {
    kind: 'reference lists',
    good,
    refuse: [...notAList(), bad([...good(), 'extra'], mismatch), bad([5, 'a'], '5'), bad([[], 'a'], '[]'), bad([['a', 5], 'a'], '5'), bad([null, 'a'], 'null')],
  };
}

/** A NLL for the perplexity functions: a number or a one-element tensor; +∞ is a valid NLL, NaN and −∞ are not. */
function nll(o: { floatOnly?: boolean } = {}): Param {
  const refuse = [
    bad(NaN, 'NaN'),
    bad(-Infinity, '-Infinity'),
    bad('seven', 'seven'),
    bad(true, 'true'),
    bad({}, 'object'),
    bad([1], '[1]'),
    bad(undefined, 'undefined'),
    bad(null, 'null'),
    bad(disposed, 'disposed'),
    bad(() => rand([2]), '[2]'),
  ];
  if (o.floatOnly) refuse.push(bad(() => tensor([1], [1], { dtype: 'i32' }), 'i32'));
  return { kind: 'nll', good: () => 1.5, refuse, tolerate: [Infinity, 0] };
}

/** A token count: a positive finite number or a one-element tensor. */
function count(): Param {
  const p = num({ min: 0, minExclusive: true, good: 6 });
  return { ...p, kind: 'count', refuse: [...p.refuse, bad(disposed, 'disposed'), bad(() => rand([2]), '[2]')] };
}

/** Class labels (yTrue, yPred): an array or a 1-d tensor; the other argument holds 4. */
function labels(which: 'yTrue' | 'yPred', o: { tensor?: boolean } = {}): Param {
  const values = which === 'yTrue' ? [0, 1, 1, 0] : [0, 1, 0, 0];
  const short = which === 'yTrue' ? 'yTrue has 2 labels but yPred has 4' : 'yTrue has 4 labels but yPred has 2';
  return {
    kind: 'labels',
    good: o.tensor ? hostTensor(() => tensor(values, [4], { dtype: 'i32' }), () => [...values]) : () => [...values],
    refuse: [
      ...notAList(),
      bad([0, 1], short),
      bad([0, {}, 1, 0], 'object'),
      bad([0, NaN, 1, 0], 'NaN'),
      bad([0, null, 1, 0], 'null'),
      bad([0, undefined, 1, 0], 'undefined'),
      bad([0, 'x', 1, 0], 'mix numbers and strings'),
      bad(disposed, 'disposed'),
      bad(() => rand([2, 2]), '[2,2]'),
    ],
  };
}

/** The `labels` option: a non-empty array of distinct labels. */
function labelList(): Param {
  return {
    kind: 'label list',
    good: () => [0, 1],
    refuse: [bad('xyzzy', 'xyzzy'), bad(5, '5'), bad({}, 'object'), bad(null, 'null'), bad([], '[]'), bad([0, 0], 'duplicates'), bad([0, NaN], 'NaN'), bad([0, {}], 'object')],
  };
}

/** A single label (posLabel). */
function label(): Param {
  return { kind: 'label', good: () => 1, refuse: [bad({}, 'object'), bad([1], '[1]'), bad(null, 'null'), bad(NaN, 'NaN')] };
}

/** zeroDivision: 0, 1 or NaN. */
function zeroDivision(): Param {
  return {
    kind: 'zeroDivision',
    good: () => 0,
    refuse: [bad(0.5, '0.5'), bad(-1, '-1'), bad(Infinity, 'Infinity'), bad('seven', 'seven'), bad(true, 'true'), bad({}, 'object'), bad([1], '[1]'), bad(null, 'null')],
    tolerate: [NaN, 1, undefined],
  };
}

const AVERAGES = ['binary', 'micro', 'macro', 'weighted'] as const;
const prfOptions = (o: { posLabelChecked?: boolean } = {}): Param => {
  const p = opts({ average: choice(AVERAGES, { optional: true }), posLabel: label(), labels: labelList(), zeroDivision: zeroDivision(), beta: num({ min: 0, optional: true }) });
  // a posLabel that is no class of a two-class problem (average 'binary'; classificationReport ignores posLabel)
  if (o.posLabelChecked) p.refuse.push(bad(() => ({ posLabel: 5 }), 'posLabel 5 is not one of the labels'));
  return p;
};

/** Class scores `[N][C]`; the targets hold 2 samples of 3 classes. */
function scoreRows(): Param {
  return {
    kind: 'scores',
    good: () => [
      [0.5, 0.2, 0.3],
      [0.1, 0.2, 0.7],
    ],
    refuse: [
      ...notAList(),
      bad([[1, 2, 3]], '2 targets but 1 rows'),
      bad([[1, 2, 3], [1, 2]], 'score row 1 has 2 classes'),
      bad([[1, 2, 3], 'x'], 'x'),
      bad([[1, 2, 'a'], [1, 2, 3]], 'a'),
      bad([[1, 2, null], [1, 2, 3]], 'null'),
      bad([[1, 2, NaN], [1, 2, 3]], 'NaN'),
      bad(disposed, 'disposed'),
      bad(() => tensor(5), '[]'),
    ],
  };
}

/** Class indices for `scoreRows` (2 samples, 3 classes). */
function targets(): Param {
  return {
    kind: 'targets',
    good: () => [0, 2],
    refuse: [...notAList(), bad([0, 3], 'target 3'), bad([0, -1], 'target -1'), bad([0, 0.5], '0.5'), bad([0, 'a'], 'a'), bad([0, null], 'null'), bad([0, 1, 2], '3 targets but 2 rows'), bad(disposed, 'disposed')],
  };
}

const topKOptions = (): Param => opts({ k: int({ min: 1, optional: true }), ignoreIndex: int({ optional: true }), normalize: bool({ optional: true }) });

/** A tokenizer for BLEU: a built-in name or a function returning a string. */
function bleuTokenizer(): Param {
  return { kind: 'tokenizer', good: () => '13a', refuse: [bad('bogus', 'bogus'), bad(5, '5'), bad({}, 'object'), bad([1], '[1]'), bad(null, 'null')], tolerate: ['none', 'intl', 'char'] };
}

const bleuOptions = (o: { tokenizes?: boolean } = { tokenizes: true }): Param => {
  const p = opts({
    tokenize: bleuTokenizer(),
    lowercase: bool({ optional: true }),
    smooth: choice(['exp', 'floor', 'add-k', 'none'], { optional: true }),
    smoothValue: num({ min: 0, optional: true }),
    maxOrder: int({ min: 1, optional: true }),
    effectiveOrder: bool({ optional: true }),
  });
  // a tokenize function must return a string (computeBleu tokenises nothing)
  if (o.tokenizes) p.refuse.push(bad(() => ({ tokenize: () => 5 }), '5'));
  return p;
};

/** BLEU's sufficient statistics. */
function bleuStats(): Param {
  const good = () => ({ counts: [3, 1], totals: [4, 3], sysLen: 4, refLen: 5 });
  return {
    kind: 'stats',
    good,
    refuse: [
      ...notAList().filter((b) => b.needle !== 'object'),
      bad([1], '[1]'),
      bad({}, 'stats.counts'),
      bad(() => ({ ...good(), counts: 'x' }), 'x'),
      bad(() => ({ ...good(), counts: [] }), '[]'),
      bad(() => ({ ...good(), totals: [4] }), 'stats.counts has 2 entries but stats.totals has 1'),
      bad(() => ({ ...good(), counts: [-1, 1] }), '-1'),
      bad(() => ({ ...good(), counts: [3, NaN] }), 'NaN'),
      bad(() => ({ ...good(), counts: [5, 1] }), 'stats.counts[0] is 5'),
      bad(() => ({ ...good(), sysLen: Infinity }), 'Infinity'),
      bad(() => ({ ...good(), refLen: 'x' }), 'x'),
    ],
  };
}

/** A ROUGE stemmer: 'porter', true, false or a function. */
function stemmer(o: { optional?: boolean } = {}): Param {
  return {
    kind: 'stemmer',
    good: () => 'porter',
    refuse: [bad('snowball', 'snowball'), bad(5, '5'), bad({}, 'object'), bad(null, 'null')],
    tolerate: [true, false, ...(o.optional ? [undefined] : [])],
  };
}

/** ROUGE types: a non-empty array of 'rouge1'…'rouge9', 'rougeL', 'rougeLsum'. */
function rougeTypes(): Param {
  return {
    kind: 'rouge types',
    good: () => ['rouge1', 'rougeL', 'rougeLsum'],
    refuse: [bad('rouge1', 'rouge1'), bad([], '[]'), bad(['rouge0'], 'rouge0'), bad(['rouge1', 5], '5'), bad(5, '5'), bad({}, 'object'), bad(null, 'null')],
  };
}

const rougeOptions = (): Param => {
  const p = opts({ types: rougeTypes(), stemmer: stemmer(), tokenizer: { ...func(() => (s: string) => s.split(' ')), refuse: [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad({}, 'object'), bad(null, 'null')] } });
  p.refuse.push(bad(() => ({ tokenizer: () => 5 }), '5'), bad(() => ({ tokenizer: () => ['a', 7] }), '7'), bad(() => ({ stemmer: () => 7 }), '7'));
  return p;
};

/** Values for percentile: an array of numbers or a typed array. */
function values(): Param {
  return {
    kind: 'values',
    good: () => [4, 1, 3, 2],
    refuse: [...notAList(), bad([], '[]'), bad([1, NaN], 'NaN'), bad([1, 'a'], 'a'), bad([1, null], 'null')],
    tolerate: [new Float64Array([1, 2, 3])],
  };
}

const meter = (): ThroughputMeter => {
  const m = new ThroughputMeter({ now: () => 0 });
  m.record(3, 10);
  m.record(5, 10);
  return m;
};
const started = (): ThroughputMeter => {
  const m = new ThroughputMeter();
  m.start();
  return m;
};

const corpus = {
  hypotheses: () => ['the cat sat on the mat', 'a dog barked'],
  references: () => [['the cat sat on the mat', 'a cat is on the mat'], 'the dog barked'],
};

export const METRICS_TABLE: Table = {
  // perplexity
  perplexity: [
    { params: [nll()] },
    { params: [{ ...T(() => tensor([1.5])), refuse: nll().refuse, good: hostTensor(() => tensor([1.5]), () => 1.5) }], label: 'a tensor' },
  ],
  perplexityFromSum: { params: [nll(), count()] },
  perplexityFromLogits: {
    params: [
      T(() => rand([2, 3, 5])),
      (() => {
        const p = T(() => tensor([0, 1, 2, 3, 4, 0], [2, 3], { dtype: 'i32' }));
        const more = [
          bad(() => tensor([0, 1, 2], [3], { dtype: 'i32' }), '[3]'),
          bad(() => rand([2, 3]), 'f32'),
          bad(() => tensor([0, 1, 2, 3, 4, 9], [2, 3], { dtype: 'i32' }), 'target 9'),
        ];
        return { ...p, kind: 'targets', refuse: [...p.refuse, ...more] };
      })(),
      opts({ ignoreIndex: int({ optional: true }) }),
    ],
  },
  PerplexityMeter: { params: [], call: () => new PerplexityMeter() },
  'PerplexityMeter.addSum': { params: [fixed(() => new PerplexityMeter()), nll({ floatOnly: true }), count()], call: (m: PerplexityMeter, s, n) => m.addSum(s, n) },
  'PerplexityMeter.addMean': { params: [fixed(() => new PerplexityMeter()), nll({ floatOnly: true }), count()], call: (m: PerplexityMeter, s, n) => m.addMean(s, n) },
  // classification
  accuracy: [
    { params: [labels('yTrue'), labels('yPred'), opts({ normalize: bool({ optional: true }) })] },
    { params: [labels('yTrue', { tensor: true }), labels('yPred', { tensor: true })], label: 'tensors' },
  ],
  topKAccuracy: [
    { params: [targets(), scoreRows(), topKOptions()] },
    {
      params: [
        { kind: 'targets', good: hostTensor(() => tensor([0, 2], [2], { dtype: 'i32' }), () => [0, 2]), refuse: [...notAList(), bad(disposed, 'disposed'), bad(() => tensor([0, 1, 2], [3], { dtype: 'i32' }), ['[3]', '3 targets'])] },
        { kind: 'scores', good: hostTensor(() => rand([2, 3]), () => [[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]]), refuse: [...notAList(), bad(disposed, 'disposed'), bad(() => tensor(5), '[]'), bad(() => rand([3, 3]), ['[3,3]', '3 rows'])] },
      ],
      label: 'tensors',
    },
  ],
  argmaxRows: [
    {
      params: [
        {
          kind: 'scores',
          good: () => [[1, 2], [3, 0]],
          refuse: [...notAList(), bad([[1, 'a']], 'a'), bad(['x'], 'x'), bad([[]], 'row 0 is empty'), bad([[1, null]], 'null'), bad(disposed, 'disposed'), bad(() => tensor(5), '[]')],
          tolerate: [[]],
        },
      ],
    },
    { params: [{ ...T(), good: hostTensor(() => rand([2, 3]), () => [[1, 2, 3]]) }], label: 'a tensor' },
  ],
  confusionMatrix: { params: [labels('yTrue'), labels('yPred'), opts({ labels: labelList() })] },
  precisionRecallF1: { params: [labels('yTrue'), labels('yPred'), prfOptions({ posLabelChecked: true })] },
  f1Score: { params: [labels('yTrue'), labels('yPred'), prfOptions({ posLabelChecked: true })] },
  classificationReport: { params: [labels('yTrue'), labels('yPred'), prfOptions()] },
  // question answering
  normalizeAnswer: { params: [str(() => 'The  Eiffel-Tower!')] },
  exactMatch: { params: [str(() => 'the cat'), references(() => ['a cat', 'cat'])] },
  tokenF1: { params: [str(() => 'the cat sat'), references(() => ['a cat sat down'])] },
  squadScores: { params: [strings(() => ['the cat', 'a dog'], '3 predictions but 2 ground-truth lists'), referenceLists(() => [['a cat'], 'dog'], '2 predictions but 3 ground-truth lists')] },
  // BLEU
  corpusBleu: { params: [strings(corpus.hypotheses, '3 hypotheses but 2 reference lists'), referenceLists(corpus.references, '2 hypotheses but 3 reference lists'), bleuOptions()] },
  sentenceBleu: { params: [str(() => 'the cat sat on the mat'), references(), bleuOptions()] },
  computeBleu: { params: [bleuStats(), bleuOptions({ tokenizes: false })] },
  tokenize13a: { params: [str(() => "It wasn't surprising.")] },
  tokenizeIntl: { params: [str(() => 'Hello, world!')] },
  tokenizeChars: { params: [str(() => 'abc d')] },
  // ROUGE
  rouge: { params: [str(() => 'the cats were running'), references(), rougeOptions()] },
  corpusRouge: { params: [strings(corpus.hypotheses, '3 predictions but 2 references'), referenceLists(corpus.references, '2 predictions but 3 references'), rougeOptions()] },
  rougeTokenize: { params: [str(() => 'The cats were running!'), stemmer({ optional: true })] },
  lcsLength: { params: [strings(() => ['1', '2', '3', '4', '5']), strings(() => ['2', '5', '3', '4'])] },
  porterStem: { params: [str(() => 'running')] },
  // throughput
  percentile: { params: [values(), num({ min: 0, max: 100, good: 50 })] },
  ThroughputMeter: {
    params: [opts({ warmup: int({ min: 0, optional: true }), now: { ...func(() => () => 0), refuse: [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad({}, 'object'), bad(null, 'null')] } })],
    call: (o) => new ThroughputMeter(o),
  },
  'ThroughputMeter.record': { params: [fixed(meter), num({ min: 0, good: 4 }), num({ min: 0, optional: true, good: 12 })], call: (m: ThroughputMeter, ms, tokens) => m.record(ms, tokens) },
  'ThroughputMeter.stop': { params: [fixed(started), num({ min: 0, optional: true, good: 12 })], call: (m: ThroughputMeter, tokens) => m.stop(tokens) },
  'ThroughputMeter.measure': { params: [fixed(meter), func(() => () => 1), num({ min: 0, optional: true, good: 12 })], call: (m: ThroughputMeter, fn, tokens) => m.measure(fn, tokens) },
  'ThroughputMeter.percentile': { params: [fixed(meter), num({ min: 0, max: 100, good: 90 })], call: (m: ThroughputMeter, q) => m.percentile(q) },
};
