/**
 * Bad-input table: continual learning (`src/train/continual.ts`: the replay buffer, held-out loss,
 * one continual phase) and federated averaging (`src/train/federated.ts`: the weighted mean of
 * states, the non-IID split, FedAvg and its gap to centralised training). See sweep.ts. The
 * valid calls train a micro GPT (width 8, context 4) for one step, so the table runs in seconds
 * on every backend.
 */
import { AdamW, GPT, Generator, defaultBackendName, rand, type Tensor } from '../../src/index.js';
import { ReplayBuffer } from '../../src/train/continual.js';
import { backendName, fixed, int, num, opts, choice, type Param, type Table } from './sweep.js';

const OPTIONAL = { optional: true } as const;
const T = 4;
const tokens = (n: number): number[] => Array.from({ length: n }, (_, i) => (i * 3) % 8);
const model = (): GPT => new GPT({ vocabSize: 8, blockSize: T, nLayer: 1, nHead: 2, nEmbd: 8 }, { backend: defaultBackendName(), generator: new Generator(0) });
const filled = (blockSize = T, n = 3): ReplayBuffer => {
  const b = new ReplayBuffer({ capacity: 8, blockSize, generator: new Generator(1) });
  b.addStream(tokens(blockSize * n + 1));
  return b;
};

/** A token stream: an array of ids (or a TokenDataset); `min` tokens at least. */
function stream(n = 20, o: { optional?: boolean; min?: number } = {}): Param {
  const refuse: { value: unknown; needle: string }[] = [
    { value: 5, needle: '5' },
    { value: 'abc', needle: 'abc' },
    { value: {}, needle: 'object' },
    { value: [0, 1.5, 2], needle: '1.5' },
    { value: [0, -1, 2], needle: '-1' },
    { value: [0, NaN], needle: 'NaN' },
  ];
  if (!o.optional) refuse.push({ value: null, needle: 'null' });
  if (o.min !== undefined) refuse.push({ value: tokens(o.min - 1), needle: `${o.min - 1} tokens` });
  return { kind: 'tokens', good: () => tokens(n), refuse, tolerate: o.optional ? [undefined] : [] };
}

function modelParam(): Param {
  return { kind: 'model', good: model, refuse: [{ value: {}, needle: 'object' }, { value: 5, needle: '5' }, { value: null, needle: 'null' }] };
}

function generatorParam(): Param {
  return { kind: 'generator', good: () => new Generator(2), refuse: [{ value: {}, needle: 'object' }, { value: 1, needle: '1' }, { value: null, needle: 'null' }, { value: undefined, needle: 'undefined' }] };
}

/** Options of continualTrain: a one-step phase of a micro GPT. */
const continualOptions = (): Record<string, unknown> => {
  const m = model();
  return { model: m, optimizer: new AdamW(m.parameters(), { lr: 1e-3 }), data: { train: tokens(40), oldVal: tokens(20) }, steps: 1, batchSize: 2, blockSize: T, generator: new Generator(1) };
};

/** Options of federatedAverage (and federatedGap, with val): one round of two clients. */
const federatedOptions = (): Record<string, unknown> => ({
  model: model(),
  clients: [tokens(12), tokens(16)],
  rounds: 1,
  localSteps: 1,
  optimizer: (m: GPT) => new AdamW(m.parameters(), { lr: 1e-3 }),
  batchSize: 2,
  blockSize: T,
  val: tokens(12),
});

const federatedKeys = (): Record<string, Param> => ({
  model: {
    kind: 'model',
    good: () => undefined,
    refuse: [
      { value: {}, needle: 'object' },
      { value: 5, needle: '5' },
      { value: { forward: () => ({}), parameters: () => [], train: () => {}, training: true }, needle: 'stateDict' },
    ],
  },
  clients: {
    kind: 'clients',
    good: () => undefined,
    refuse: [
      { value: [], needle: '[]' },
      { value: 5, needle: '5' },
      { value: null, needle: 'null' },
      { value: [5], needle: 'clients[0]' },
      { value: [tokens(12), [0, -3]], needle: '-3' },
      { value: [tokens(3)], needle: '3 tokens' },
    ],
  },
  rounds: int({ min: 0 }),
  localSteps: int({ min: 1, optional: true }),
  // with the base's localSteps, any localEpochs is refused (exactly one of the two), naming the value
  localEpochs: num({ min: 0, minExclusive: true, optional: true }),
  clientFraction: num({ min: 0, max: 1, minExclusive: true, optional: true }),
  weighting: choice(['samples', 'uniform'], OPTIONAL),
  optimizer: {
    kind: 'optimizer factory',
    good: () => undefined,
    refuse: [
      { value: 5, needle: '5' },
      { value: {}, needle: 'object' },
      { value: () => () => ({}), needle: 'optimizer(model)' },
    ],
  },
  batchSize: int({ min: 1 }),
  blockSize: int({ min: 1 }),
  seed: int({ min: 0, optional: true }),
  clip: num({ min: 0, optional: true }),
  val: stream(12, { optional: true }),
  evalWindows: int({ min: 1, optional: true, infinity: true }),
  backend: backendName(),
});


export const LEARN18_TABLE: Table = {
  // ---- continual.ts ----
  tokenSource: { params: [stream()] },
  ReplayBuffer: {
    params: [
      opts(
        {
          capacity: int({ min: 1 }),
          blockSize: int({ min: 1 }),
          generator: { kind: 'generator', good: () => undefined, refuse: [{ value: {}, needle: 'object' }, { value: 1, needle: '1' }] },
        },
        { good: () => ({ capacity: 4, blockSize: 2 }), optional: false },
      ),
    ],
    call: (o: never) => new ReplayBuffer(o),
  },
  'ReplayBuffer.add': {
    params: [
      fixed(() => new ReplayBuffer({ capacity: 2, blockSize: 2 })),
      {
        kind: 'window',
        good: () => [1, 2, 3],
        refuse: [
          { value: [1, 2, 3, 4], needle: '4 tokens' },
          { value: 'abc', needle: 'abc' },
          { value: [0, -1, 2], needle: '-1' },
          { value: [0, 0.5, 1], needle: '0.5' },
          { value: null, needle: 'null' },
          { value: {}, needle: 'object' },
        ],
      },
    ],
    call: (b: ReplayBuffer, w: number[]) => b.add(w),
    prefix: 'ReplayBuffer.add',
  },
  'ReplayBuffer.addStream': {
    params: [fixed(() => new ReplayBuffer({ capacity: 2, blockSize: 2 })), stream(), opts({ stride: int({ min: 1, optional: true }) })],
    call: (b: ReplayBuffer, s: number[], o?: { stride?: number }) => b.addStream(s, o),
    prefix: 'ReplayBuffer.addStream',
  },
  'ReplayBuffer.window': {
    params: [fixed(() => filled(2, 2)), int({ min: 0, max: 1 })],
    call: (b: ReplayBuffer, i: number) => b.window(i),
    prefix: 'ReplayBuffer.window',
  },
  'ReplayBuffer.sample': {
    params: [fixed(() => filled()), int({ min: 0, good: 2 }), generatorParam()],
    call: (b: ReplayBuffer, n: number, g: Generator) => b.sample(n, g),
    prefix: 'ReplayBuffer.sample',
  },
  heldOutLoss: {
    params: [
      modelParam(),
      stream(20, { min: T + 1 }),
      opts(
        { blockSize: int({ min: 1 }), batchSize: int({ min: 1, optional: true }), maxWindows: int({ min: 1, optional: true, infinity: true }), backend: backendName() },
        { good: () => ({ blockSize: T }), optional: false },
      ),
    ],
  },
  continualTrain: {
    params: [
      opts(
        {
          model: { kind: 'model', good: () => undefined, refuse: [{ value: {}, needle: 'object' }, { value: 5, needle: '5' }] },
          optimizer: { kind: 'optimizer', good: () => undefined, refuse: [{ value: {}, needle: 'object' }, { value: 'adam', needle: 'adam' }] },
          data: {
            kind: 'data',
            good: () => undefined,
            refuse: [
              { value: null, needle: 'null' },
              { value: { train: 5, oldVal: tokens(20) }, needle: '5' },
              { value: { train: tokens(40) }, needle: 'oldVal' },
              { value: { train: tokens(40), oldVal: tokens(20), newVal: 'x' }, needle: "'x'" },
              { value: { train: tokens(40), oldVal: tokens(20), test: tokens(20) }, needle: 'test' },
              { value: { train: tokens(4), oldVal: tokens(20) }, needle: '4 tokens' },
              { value: { train: tokens(40), oldVal: tokens(4) }, needle: '4 tokens' },
            ],
          },
          replay: {
            kind: 'replay',
            good: () => undefined,
            refuse: [
              { value: 5, needle: '5' },
              { value: () => ({ buffer: {}, ratio: 0.5 }), needle: 'object' },
              { value: () => ({ buffer: filled(), ratio: 1 }), needle: 'ratio' },
              { value: () => ({ buffer: filled(), ratio: -0.25 }), needle: '-0.25' },
              { value: () => ({ buffer: filled(), ratio: NaN }), needle: 'NaN' },
              { value: () => ({ buffer: filled(2), ratio: 0.5 }), needle: 'blockSize 2' },
              { value: () => ({ buffer: new ReplayBuffer({ capacity: 2, blockSize: T }), ratio: 0.5 }), needle: 'empty' },
              { value: () => ({ buffer: filled(), ratio: 0.5, size: 3 }), needle: 'size' },
            ],
          },
          steps: int({ min: 0 }),
          batchSize: int({ min: 1 }),
          blockSize: int({ min: 1 }),
          generator: { kind: 'generator', good: () => undefined, refuse: [{ value: {}, needle: 'object' }, { value: 1, needle: '1' }] },
          clip: num({ min: 0, optional: true }),
          evalWindows: int({ min: 1, optional: true, infinity: true }),
          evalBatchSize: int({ min: 1, optional: true }),
          backend: backendName(),
        },
        { good: continualOptions, optional: false },
      ),
    ],
  },
  // ---- federated.ts ----
  averageStates: {
    params: [
      {
        kind: 'states',
        good: () => [{ w: rand([2]) }, { w: rand([2]) }],
        refuse: [
          { value: [], needle: '[]' },
          { value: 5, needle: '5' },
          { value: null, needle: 'null' },
          { value: [5], needle: 'states[0]' },
          { value: () => [{}, {}], needle: 'no entries' },
          { value: () => [{ w: 5 }, { w: rand([2]) }], needle: "'w'" },
          { value: () => [{ w: rand([2]) }, { v: rand([2]) }], needle: 'missing w' },
          { value: () => [{ w: rand([2]) }, { w: rand([3]) }], needle: '[3]' },
          {
            value: () => {
              const t: Tensor = rand([2]);
              t.dispose();
              return [{ w: t }, { w: rand([2]) }];
            },
            needle: 'disposed',
          },
        ],
      },
      {
        kind: 'weights',
        good: () => [3, 1],
        refuse: [
          { value: [1], needle: '1 entries' },
          { value: [-1, 1], needle: '-1' },
          { value: [0, 0], needle: 'all be 0' },
          { value: [NaN, 1], needle: 'NaN' },
          { value: 'x', needle: "'x'" },
          { value: null, needle: 'null' },
        ],
        tolerate: [undefined],
      },
    ],
  },
  splitNonIID: {
    params: [
      {
        kind: 'documents',
        good: () => Array.from({ length: 10 }, (_, i) => ({ i, label: i % 2 })),
        refuse: [
          { value: 5, needle: '5' },
          { value: 'abc', needle: 'abc' },
          { value: null, needle: 'null' },
          { value: {}, needle: 'object' },
          { value: [1], needle: 'cannot give' },
        ],
      },
      opts(
        {
          clients: int({ min: 1 }),
          alpha: num({ min: 0, minExclusive: true, infinity: true }),
          key: {
            kind: 'key',
            good: () => undefined,
            refuse: [
              { value: 5, needle: '5' },
              { value: () => () => null, needle: 'null' },
              { value: () => () => ({}), needle: 'object' },
              { value: () => () => NaN, needle: 'NaN' },
            ],
          },
          seed: int({ min: 0, optional: true }),
          minDocs: int({ min: 0, optional: true }),
        },
        { good: () => ({ clients: 2, alpha: 1, key: (d: { label: number }) => d.label }), optional: false },
      ),
    ],
  },
  federatedAverage: { params: [opts(federatedKeys(), { good: federatedOptions, optional: false })] },
  federatedGap: {
    params: [
      opts(
        { ...federatedKeys(), val: { ...stream(12), refuse: [...stream(12).refuse, { value: tokens(3), needle: '3 tokens' }] } },
        { good: federatedOptions, optional: false },
      ),
    ],
  },
};
