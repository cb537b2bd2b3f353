/**
 * Bad-input table of issue 18's search additions (see sweep.ts): population-based training
 * (`pbt`, its options, and its in-memory copy of `{ model, optimizer }` states) and the pruners
 * of `search` (`search.pruner`: 'median', 'halving', and the settings of the median rule,
 * successive halving and Hyperband; errors start with `search: `). Everything is tiny: two
 * members, two rounds, one step.
 */
import { Linear, SGD, search, type SearchConfig, type TrialContext } from '../../src/index.js';
import { pbt, type PBTModelState } from '../../src/train/pbt.js';
import { choice, fixed, func, int, num, opts, type Param, type Table } from './sweep.js';
import { space as trainSpace } from './train.js';

const OPTIONAL = { optional: true } as const;

/** A search space: an object of lists or ranges. */
/** A search space (train.ts's refusals, and the ranges' bounds). */
function space(): Param {
  const p = trainSpace();
  return {
    ...p,
    good: () => undefined,
    refuse: [...p.refuse, { value: { lr: { type: 'uniform', low: 1, high: 0 } }, needle: 'high' }, { value: { lr: { type: 'logUniform', low: 0, high: 1 } }, needle: 'low' }, { value: { lr: { type: 'gamma', low: 0, high: 1 } }, needle: 'gamma' }],
  };
}

/** An optional function option (absent is valid). */
function optionalFunc(): Param {
  return { kind: 'function', good: () => undefined, refuse: [5, 'xyzzy', {}, null].map((v) => ({ value: v, needle: v === null ? 'null' : typeof v === 'object' ? 'object' : String(v) })), tolerate: [undefined] };
}

interface Toy {
  q: number;
}
const toyOptions = (): Record<string, unknown> => ({
  space: { lr: [0.1, 0.2] },
  population: 2,
  rounds: 2,
  interval: 1,
  init: () => ({ q: 0 }),
  train: (s: Toy, hp: SearchConfig) => (s.q += hp.lr as number),
  save: (s: Toy) => s.q,
  load: (s: Toy, c: unknown) => void (s.q = c as number),
});

const pbtKeys = (): Record<string, Param> => ({
  space: space(),
  population: int({ min: 2 }),
  rounds: int({ min: 1 }),
  interval: int({ min: 1 }),
  init: func(() => () => ({ q: 0 })),
  train: {
    ...func(() => () => 1),
    refuse: [...func(() => () => 1).refuse, { value: () => () => 'x', needle: "'x'" }, { value: () => () => null, needle: 'null' }],
  },
  save: optionalFunc(),
  load: optionalFunc(),
  mode: choice(['min', 'max'], OPTIONAL),
  seed: int({ min: 0, optional: true }),
  fraction: num({ min: 0, max: 0.5, optional: true }),
  resample: num({ min: 0, max: 1, optional: true }),
  perturb: {
    kind: 'factors',
    good: () => undefined,
    refuse: [
      { value: [], needle: '[]' },
      { value: [0], needle: 'perturb[0]' },
      { value: [1.2, -0.8], needle: '-0.8' },
      { value: [NaN], needle: 'NaN' },
      { value: 'x', needle: "'x'" },
      { value: 1.2, needle: '1.2' },
    ],
    tolerate: [undefined],
  },
  signal: { kind: 'signal', good: () => undefined, refuse: [{ value: {}, needle: 'object' }, { value: 5, needle: '5' }], tolerate: [undefined] },
  onRound: optionalFunc(),
});

/** Two Linear members under SGD, copied in memory (no save and load); the models are freed after. */
const modelOptions = (): Record<string, unknown> => ({
  space: { lr: { type: 'logUniform', low: 1e-3, high: 1e-1 } },
  population: 2,
  rounds: 2,
  interval: 1,
  init: (hp: SearchConfig) => {
    const model = new Linear(2, 1);
    return { model, optimizer: new SGD(model.parameters(), { lr: hp.lr as number, momentum: 0.9 }) };
  },
  train: (_s: PBTModelState, hp: SearchConfig) => hp.lr as number,
});
async function pbtModels(o: Parameters<typeof pbt<PBTModelState>>[0]): Promise<void> {
  const made: PBTModelState[] = [];
  const init = o?.init;
  try {
    await pbt<PBTModelState>(
      o && typeof o === 'object' && typeof init === 'function'
        ? {
            ...o,
            init: async (hp, i) => {
              const s = await init(hp, i);
              if (s && typeof s === 'object' && 'model' in s) made.push(s);
              return s;
            },
          }
        : o,
    );
  } finally {
    for (const s of made) s.model?.dispose?.();
  }
}

// a search whose trial reports once at step 1, so the pruner is asked
const run = (c: SearchConfig, ctx: TrialContext): number => {
  ctx.report(c.q as number, 1);
  return c.q as number;
};
const searchWith = (pruner: unknown): Promise<unknown> => search({ space: { q: [1, 2, 3] }, run, pruner: pruner as never });
const halvingKeys = (): Record<string, Param> => ({
  type: choice(['halving']),
  minResource: num({ min: 0, minExclusive: true, optional: true }),
  reductionFactor: num({ min: 1, minExclusive: true, optional: true }),
  minEarlyStoppingRate: int({ min: 0, optional: true }),
  maxResource: num({ min: 1, minExclusive: true, optional: true }),
});

export const SEARCH18_TABLE: Table = {
  pbt: [
    { params: [opts(pbtKeys(), { good: toyOptions, optional: false })] },
    {
      label: 'save and load go together',
      params: [
        {
          kind: 'options',
          good: toyOptions,
          refuse: [
            { value: () => ({ ...toyOptions(), save: undefined }), needle: 'load alone' },
            { value: () => ({ ...toyOptions(), load: undefined }), needle: 'save alone' },
          ],
        },
      ],
    },
    {
      label: 'model states copied in memory',
      call: pbtModels,
      prefix: 'pbt',
      params: [
        {
          kind: 'options',
          good: modelOptions,
          refuse: [
            { value: () => ({ ...modelOptions(), init: () => ({ q: 0 }) }), needle: 'init must return { model' },
            { value: () => ({ ...modelOptions(), init: () => ({ model: {} }) }), needle: 'object' },
            { value: () => ({ ...modelOptions(), init: () => null }), needle: 'null' },
          ],
        },
      ],
    },
  ],
  'search.pruner': [
    {
      label: 'names and the median rule',
      call: searchWith,
      prefix: 'search',
      params: [
        {
          ...opts({ type: choice(['median']), startupTrials: int({ min: 1, optional: true }), warmupSteps: int({ min: 0, optional: true }) }, { good: () => ({ type: 'median' }), optional: false }),
          refuse: [
            ...opts({ type: choice(['median']), startupTrials: int({ min: 1, optional: true }), warmupSteps: int({ min: 0, optional: true }) }, { good: () => ({ type: 'median' }), optional: false }).refuse,
            { value: 'asha', needle: 'asha' },
            { value: 'hyperband', needle: 'hyperband' },
            { value: { type: 'median', reductionFactor: 3 }, needle: 'reductionFactor' },
          ],
          tolerate: [undefined, 'median', 'halving'],
        },
      ],
    },
    {
      label: 'successive halving',
      call: searchWith,
      prefix: 'search',
      params: [opts(halvingKeys(), { good: () => ({ type: 'halving' }), optional: false })],
    },
    {
      label: 'hyperband',
      call: searchWith,
      prefix: 'search',
      params: [
        {
          ...opts({ ...halvingKeys(), type: choice(['hyperband']), minEarlyStoppingRate: fixed(() => undefined), maxResource: num({ min: 1, minExclusive: true, good: 9 }) }, { good: () => ({ type: 'hyperband', maxResource: 9 }), optional: false }),
          refuse: [
            ...opts({ ...halvingKeys(), type: choice(['hyperband']), minEarlyStoppingRate: fixed(() => undefined), maxResource: num({ min: 1, minExclusive: true, good: 9 }) }, { good: () => ({ type: 'hyperband', maxResource: 9 }), optional: false }).refuse,
            { value: { type: 'hyperband' }, needle: 'maxResource' },
            { value: { type: 'hyperband', maxResource: 9, minEarlyStoppingRate: 1 }, needle: 'minEarlyStoppingRate' },
            { value: { type: 'hyperband', maxResource: 9, minResource: 9 }, needle: '9' },
          ],
        },
      ],
    },
  ],
};
