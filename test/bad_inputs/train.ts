/** Bad-input table: the training loop, evaluation, checkpoints on disk, early stopping, callbacks and search. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdamW,
  EarlyStopping,
  GPT,
  Generator,
  TokenDataset,
  buildShards,
  callAll,
  defaultBackendName,
  evaluate,
  search,
  train,
  type Trial,
  type TokenizerLike,
} from '../../src/index.js';
import { bool, choice, fixed, func, int, num, opts, str, type Param, type Table } from './sweep.js';

const root = mkdtempSync(join(tmpdir(), 'kiln-bad-train-'));
const chars: TokenizerLike = { vocabSize: 8, encode: (t) => Array.from(t, (c) => c.charCodeAt(0) % 8), fingerprint: () => 'bad-inputs-chars' };
const data = TokenDataset.open(await buildShards(['abcdefgh abcdefgh hgfedcba '.repeat(8)], chars, { cacheDir: join(root, 'cache') }));

const model = (): GPT => new GPT({ vocabSize: 8, blockSize: 4, nLayer: 1, nHead: 2, nEmbd: 8 }, { backend: defaultBackendName(), generator: new Generator(0) });
const trainOptions = (): Record<string, unknown> => {
  const m = model();
  return { model: m, optimizer: new AdamW(m.parameters(), { lr: 1e-3 }), data: { train: data }, steps: 1, batchSize: 2, blockSize: 4, generator: new Generator(1) };
};
const dir = (): Param => ({ ...str(() => root), refuse: [...str().refuse, { value: '', needle: "''" }] });
export const space = (): Param => ({
  kind: 'space',
  good: () => ({ lr: [1e-3, 3e-3], layers: [1, 2] }),
  refuse: [
    { value: null, needle: 'null' },
    { value: 5, needle: '5' },
    { value: {}, needle: 'no hyperparameters' },
    { value: { lr: [] }, needle: 'lr' },
    { value: { lr: [{}] }, needle: 'object' },
    { value: { lr: { type: 'bogus', low: 0, high: 1 } }, needle: 'lr' },
  ],
});
const randomSpace = (): Param => ({
  ...space(),
  good: () => ({ lr: { type: 'logUniform', low: 1e-4, high: 1e-2 }, layers: { type: 'int', low: 1, high: 4 }, act: ['gelu', 'relu'] }),
  refuse: [
    ...space().refuse,
    { value: { lr: { type: 'uniform', low: 1, high: 0 } }, needle: '0' },
    { value: { lr: { type: 'logUniform', low: 0, high: 1 } }, needle: 'low must be > 0' },
    { value: { n: { type: 'int', low: 0.5, high: 2 } }, needle: '0.5' },
    { value: { lr: { type: 'uniform', low: NaN, high: 1 } }, needle: 'NaN' },
    { value: { lr: { type: 'uniform', low: 0, high: 1, step: 2 } }, needle: 'step' },
  ],
});
const trial = (): Trial => ({ index: 0, config: { lr: 1e-3 }, value: 1.5, status: 'ok', steps: 10, seconds: 0.5, error: null }) as unknown as Trial;
const stopper = (): Param => fixed(() => new EarlyStopping({ patience: 2 }));

export const TRAIN_TABLE: Table = {
  // distributed (the MPI side runs under mpirun in test/distributed.test.ts)
  communicator: { params: [opts({ kind: choice(['local']) })] },
  findMpiAddon: { exempt: 'takes no arguments' },
  DistributedDataParallel: { exempt: 'made by DistributedDataParallel.create from a model and a communicator; test/distributed.test.ts runs it under mpirun' },
  train: {
    params: [
      opts(
        {
          model: { kind: 'model', good: () => undefined, refuse: [{ value: {}, needle: 'object' }, { value: 5, needle: '5' }] },
          optimizer: { kind: 'optimizer', good: () => undefined, refuse: [{ value: {}, needle: 'object' }, { value: 'adam', needle: 'adam' }] },
          generator: { kind: 'generator', good: () => undefined, refuse: [{ value: {}, needle: 'object' }, { value: 1, needle: '1' }] },
          data: { kind: 'data', good: () => undefined, refuse: [{ value: null, needle: 'null' }, { value: { train: 5 }, needle: '5' }, { value: { train: data, val: 'x' }, needle: "'x'" }, { value: { train: data, test: data }, needle: 'test' }] },
          steps: int({ min: 0 }),
          batchSize: int({ min: 1 }),
          blockSize: int({ min: 1 }),
          gradAccum: int({ min: 1, optional: true }),
          clip: num({ min: 0, optional: true }),
          logEvery: int({ min: 1, optional: true }),
          evalEvery: int({ min: 0, optional: true }),
          evalBatches: int({ min: 1, optional: true }),
          evalBatchSize: int({ min: 1, optional: true }),
          checkpointEvery: int({ min: 0, optional: true }),
          checkpointDir: { ...dir(), refuse: dir().refuse.filter((b) => b.value !== undefined) },
          keepCheckpoints: int({ min: 1, optional: true, infinity: true }),
          resume: { kind: 'resume', good: () => false, refuse: [{ value: 5, needle: '5' }, { value: '', needle: "''" }, { value: {}, needle: 'object' }] },
          earlyStopping: { kind: 'early stopping', good: () => undefined, refuse: [{ value: { patience: 0 }, needle: '0' }, { value: { patience: 2, wait: 1 }, needle: 'wait' }] },
          callbacks: { kind: 'callbacks', good: () => undefined, refuse: [{ value: [5], needle: '5' }, { value: { onStep: 5 }, needle: 'onStep' }] },
          signal: { kind: 'signal', good: () => undefined, refuse: [{ value: {}, needle: 'object' }, { value: true, needle: 'true' }] },
          backend: { kind: 'backend', good: () => undefined, refuse: [{ value: 'bogus', needle: 'bogus' }, { value: 5, needle: '5' }] },
          transform: { kind: 'transform', good: () => undefined, refuse: [{ value: 5, needle: '5' }, { value: 'x', needle: "'x'" }] },
          curriculum: { kind: 'curriculum', good: () => undefined, refuse: [{ value: {}, needle: 'object' }, { value: 5, needle: '5' }] },
          adversarial: {
            kind: 'adversarial',
            good: () => undefined,
            refuse: [
              { value: 5, needle: '5' },
              { value: { method: 'xgm', epsilon: 1 }, needle: 'xgm' },
              { value: { method: 'fgm', epsilon: 0 }, needle: '0' },
              { value: { method: 'fgm', epsilon: 1, steps: 2 }, needle: 'steps' },
              { value: { method: 'pgd', epsilon: 1, steps: 0.5 }, needle: '0.5' },
              { value: { method: 'pgd', epsilon: 1, scope: 'row' }, needle: 'row' },
              { value: { method: 'pgd', epsilon: 1, bogus: 1 }, needle: 'bogus' },
            ],
          },
        },
        { good: trainOptions, optional: false },
      ),
    ],
  },
  evaluate: {
    params: [
      { kind: 'model', good: model, refuse: [{ value: {}, needle: 'object' }, { value: null, needle: 'null' }] },
      { kind: 'data', good: () => data, refuse: [{ value: {}, needle: 'object' }, { value: 'data', needle: 'data' }] },
      opts({ blockSize: int({ min: 1 }), batchSize: int({ min: 1, optional: true }), maxBatches: int({ min: 1, optional: true, infinity: true }), backend: { kind: 'backend', good: () => undefined, refuse: [{ value: 'bogus', needle: 'bogus' }] } }, { good: () => ({ blockSize: 4, maxBatches: 1 }), optional: false }),
    ],
  },
  checkpointPath: { params: [dir(), int({ min: 0, good: 3 })] },
  listCheckpoints: { params: [dir()] },
  latestCheckpoint: { params: [dir()] },
  unigramEntropy: {
    params: [
      { kind: 'tokens', good: () => [0, 1, 1, 2], refuse: [{ value: [], needle: 'no tokens' }, { value: 'abc', needle: 'abc' }, { value: [0, 0.5], needle: '0.5' }, { value: [0, NaN], needle: 'NaN' }, { value: null, needle: 'null' }] },
    ],
  },
  weightDecayGroups: { params: [{ kind: 'model', good: model, refuse: [{ value: {}, needle: 'object' }, { value: null, needle: 'null' }] }, num({ min: 0, good: 0.1 })] },
  EarlyStopping: {
    params: [opts({ patience: int({ min: 1 }), minDelta: num({ min: 0, optional: true }), mode: choice(['min', 'max'], { optional: true }), stopOnNonFinite: bool({ optional: true }) }, { good: () => ({ patience: 2 }), optional: false })],
    call: (o: never) => new EarlyStopping(o),
  },
  'EarlyStopping.update': { params: [stopper(), { kind: 'number', good: () => 1.5, refuse: [{ value: 'low', needle: 'low' }, { value: null, needle: 'null' }, { value: [1], needle: '[1]' }], tolerate: [NaN, Infinity] }, num({ good: 3, optional: true })], call: (s: EarlyStopping, v: number, step?: number) => s.update(v, step) },
  'EarlyStopping.isImprovement': { params: [stopper(), { kind: 'number', good: () => 1.5, refuse: [{ value: 'low', needle: 'low' }, { value: null, needle: 'null' }], tolerate: [NaN] }], call: (s: EarlyStopping, v: number) => s.isImprovement(v) },
  'EarlyStopping.loadStateDict': {
    params: [
      stopper(),
      {
        kind: 'state',
        good: () => ({ best: 1, bestStep: 2, wait: 0, stopped: false, reason: null }),
        refuse: [
          { value: null, needle: 'null' },
          { value: { best: 'x', bestStep: 2, wait: 0, stopped: false }, needle: '"x"' },
          { value: { best: 1, bestStep: 2, wait: -1, stopped: false }, needle: '-1' },
          { value: { best: 1, bestStep: 2, wait: 0, stopped: false, reason: 'bored' }, needle: 'bored' },
        ],
      },
    ],
    call: (s: EarlyStopping, st: never) => s.loadStateDict(st),
  },
  callbackArray: {
    params: [{ kind: 'callbacks', good: () => [{ onStep: () => {} }], refuse: [{ value: [null], needle: 'null' }, { value: [5], needle: '5' }, { value: { onStep: 'log' }, needle: 'log' }, { value: 'cb', needle: 'cb' }], tolerate: [undefined, {}] }],
  },
  callAll: {
    params: [
      { kind: 'list', good: () => [{ onStep: () => {} }], refuse: [{ value: 5, needle: '5' }, { value: null, needle: 'null' }] },
      { ...choice(['onStart', 'onStep', 'onEval', 'onCheckpoint', 'onEnd']), good: () => 'onStep' },
      fixed(() => ({ step: 1 })),
    ],
    call: (list: never, name: never, info: never) => callAll(list, name, info),
  },
  gridConfigs: { params: [space()] },
  randomConfigs: { params: [randomSpace(), int({ min: 0, good: 3 }), int({ min: 0, good: 1, optional: true })] },
  searchTable: {
    params: [
      { kind: 'trials', good: () => [trial()], refuse: [{ value: null, needle: 'null' }, { value: [5], needle: '5' }, { value: 'x', needle: "'x'" }] },
      { kind: 'names', good: () => ['lr'], refuse: [{ value: 'lr', needle: "'lr'" }, { value: [5], needle: '[5]' }] },
      str(() => 'loss', { optional: true }),
    ],
  },
  search: {
    params: [
      opts(
        {
          space: { kind: 'space', good: () => undefined, refuse: space().refuse.filter((b) => b.value !== undefined) },
          strategy: choice(['grid', 'random'], { optional: true }),
          trials: int({ min: 1, optional: true }),
          seed: int({ min: 0, optional: true }),
          run: func(() => () => 1),
          mode: choice(['min', 'max'], { optional: true }),
          earlyStopping: { kind: 'early stopping', good: () => undefined, refuse: [{ value: { patience: -1 }, needle: '-1' }, { value: { patience: 1, mode: 'max' }, needle: 'mode' }] },
          signal: { kind: 'signal', good: () => undefined, refuse: [{ value: {}, needle: 'object' }] },
          onTrial: { kind: 'function', good: () => undefined, refuse: [{ value: 5, needle: '5' }] },
          failFast: bool({ optional: true }),
          metricName: { kind: 'string', good: () => undefined, refuse: [{ value: 5, needle: '5' }] },
        },
        { good: () => ({ space: { lr: [1, 2] }, run: (c: { lr: number }) => c.lr }), optional: false },
      ),
    ],
  },
};

void search;
void train;
void evaluate;
