/**
 * Bad-input table: pruning, the EMA of weights, checkpoint averaging and ensembles. Models are
 * micro GPTs (vocabulary 8, one layer, width 8) made on the backend under test; the checkpoints
 * averaged are written once, on `ref`, when the table loads.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT, Generator, TokenDataset, buildShards, defaultBackendName, ones, rand, saveCheckpoint, tensor, type TokenizerLike } from '../../src/index.js';
import { Pruner } from '../../src/nn/prune.js';
import { EMA } from '../../src/train/ema.js';
import { averageCheckpoints, averageCheckpointsInto, saveAveragedCheckpoint } from '../../src/train/average.js';
import { ensembleLogits } from '../../src/metrics/ensemble.js';
import { bool, choice, construct, instance, int, num, opts, str, T, type Param, type Table } from './sweep.js';

const root = mkdtempSync(join(tmpdir(), 'kiln-bad-compress-'));
const chars: TokenizerLike = { vocabSize: 8, encode: (t) => Array.from(t, (c) => c.charCodeAt(0) % 8), fingerprint: () => 'bad-inputs-compress-chars' };
const data = TokenDataset.open(await buildShards(['abcdefgh abcdefgh hgfedcba '.repeat(8)], chars, { cacheDir: join(root, 'cache') }));

const config = { vocabSize: 8, blockSize: 4, nLayer: 1, nHead: 2, nEmbd: 8 };
const model = (backend = defaultBackendName()): GPT => new GPT(config, { backend, generator: new Generator(0) });
const checkpoints: string[] = [];
for (const step of [1, 2]) {
  const m = model('ref');
  checkpoints.push(await saveCheckpoint(join(root, `ckpt-${step}.safetensors`), { model: m, step }));
  m.dispose();
}

const WEIGHT = 'transformer.h.0.attn.c_attn.weight'; // [24, 8]
const OPTIONAL = { optional: true } as const;

const modelArg = (): Param => instance('model', () => model());
const names = (): Param => ({
  kind: 'names',
  good: () => undefined,
  refuse: [
    { value: 5, needle: '5' },
    { value: 'transformer', needle: "'transformer'" },
    { value: ['nope'], needle: 'nope' },
    { value: [''], needle: "''" },
    { value: [7], needle: '7' },
  ],
});
const masks = (): Param => ({
  kind: 'masks',
  good: () => ({ [WEIGHT]: ones([24, 8], { dtype: 'bool' }) }),
  refuse: [
    { value: 5, needle: '5' },
    { value: null, needle: 'null' },
    { value: 'xyzzy', needle: 'xyzzy' },
    { value: () => ({ bogus: ones([24, 8], { dtype: 'bool' }) }), needle: 'bogus' },
    { value: () => ({ [WEIGHT]: ones([2], { dtype: 'bool' }) }), needle: '[2]' },
    { value: () => ({ [WEIGHT]: ones([24, 8], { dtype: 'i32' }) }), needle: 'i32' },
    { value: { [WEIGHT]: 'mask' }, needle: "'mask'" },
  ],
});
const pruner = (): Pruner => new Pruner(model(), { [WEIGHT]: ones([24, 8], { dtype: 'bool' }) });
const prunerArg = (): Param => ({
  kind: 'pruner',
  good: pruner,
  refuse: [
    {
      value: () => {
        const p = pruner();
        p.dispose();
        return p;
      },
      needle: 'disposed',
    },
  ],
});
const ema = (): EMA => new EMA(model(), { decay: 0.9 });
const emaArg = (): Param => ({
  kind: 'EMA',
  good: ema,
  refuse: [
    {
      value: () => {
        const e = ema();
        e.dispose();
        return e;
      },
      needle: 'disposed',
    },
  ],
});
const weights = (): Param => ({
  kind: 'weights',
  good: () => undefined,
  refuse: [
    { value: 5, needle: '5' },
    { value: [1], needle: '1 entries' },
    { value: [-1, 1], needle: '-1' },
    { value: [0, 0], needle: 'all be 0' },
    { value: [NaN, 1], needle: 'NaN' },
  ],
});
const backendArg = (): Param => ({ kind: 'backend', good: () => undefined, refuse: [{ value: 'bogus', needle: 'bogus' }, { value: 5, needle: '5' }] });
const models = (n = 2): Param => ({
  kind: 'models',
  good: () => Array.from({ length: n }, () => model()),
  refuse: [
    { value: 5, needle: '5' },
    { value: null, needle: 'null' },
    { value: [], needle: '[]' },
    { value: [5], needle: '5' },
    { value: [{}], needle: 'object' },
  ],
});
const ensembleKeys = (): Record<string, Param> => ({ mode: choice(['probs', 'logits'], OPTIONAL), weights: weights() });
const paths = (): Param => ({
  kind: 'paths',
  good: () => [...checkpoints],
  refuse: [
    { value: [], needle: '[]' },
    { value: 5, needle: '5' },
    { value: 'ckpt.safetensors', needle: 'ckpt.safetensors' },
    { value: [5], needle: '5' },
    { value: [''], needle: "''" },
    { value: [join(root, 'nonexistent.safetensors')], needle: 'nonexistent' },
    { value: () => [checkpoints[0], join(root, 'cache')], needle: 'cache' },
    { value: null, needle: 'null' },
  ],
});
const averageKeys = (): Record<string, Param> => ({ weights: weights(), backend: backendArg() });

export const COMPRESS_TABLE: Table = {
  prune: {
    params: [
      modelArg(),
      opts(
        { method: choice(['global', 'layer'], OPTIONAL), amount: num({ min: 0, max: 1, optional: true }), params: names(), exclude: names() },
        { good: () => ({ amount: 0.5 }), optional: false },
      ),
    ],
  },
  sparsity: { params: [modelArg(), opts({ params: names(), exclude: names() })] },
  Pruner: { params: [modelArg(), masks()], call: construct((m: unknown, k: unknown) => new Pruner(m as GPT, k as never)) },
  'Pruner.apply': { params: [prunerArg()], call: (p: Pruner) => p.apply(), prefix: 'Pruner.apply' },
  'Pruner.step': {
    params: [prunerArg(), instance('optimizer', () => ({ step: () => {} }))],
    call: (p: Pruner, o: never) => p.step(o),
    prefix: 'Pruner.step',
  },
  'Pruner.sparsity': { params: [prunerArg()], call: (p: Pruner) => p.sparsity(), prefix: 'Pruner.sparsity' },
  EMA: {
    params: [modelArg(), opts({ decay: num({ min: 0, max: 1, good: 0.9 }), updateEvery: int({ min: 1, optional: true }), warmup: bool(OPTIONAL) }, { good: () => ({ decay: 0.9 }), optional: false })],
    call: construct((m: unknown, o: unknown) => new EMA(m as GPT, o as never)),
  },
  'EMA.update': {
    params: [{ ...emaArg(), refuse: [...emaArg().refuse, { value: applied, needle: 'restore()' }] }],
    call: (e: EMA) => e.update(),
    prefix: 'EMA.update',
  },
  'EMA.applyTo': { params: [emaArg(), instance('model', () => undefined, OPTIONAL)], call: (e: EMA, m: never) => e.applyTo(m), prefix: 'EMA.applyTo' },
  'EMA.copyTo': { params: [emaArg(), instance('model', () => undefined, OPTIONAL)], call: (e: EMA, m: never) => e.copyTo(m), prefix: 'EMA.copyTo' },
  'EMA.restore': { params: [{ ...emaArg(), good: applied, refuse: [{ value: ema, needle: 'applyTo()' }] }], call: (e: EMA) => e.restore(), prefix: 'EMA.restore' },
  'EMA.loadStateDict': {
    params: [
      emaArg(),
      {
        kind: 'state',
        good: () => model().stateDict(),
        refuse: [
          { value: null, needle: 'null' },
          { value: 5, needle: '5' },
          { value: {}, needle: 'missing' },
          { value: () => ({ ...model().stateDict(), bogus: rand([2]) }), needle: 'bogus' },
          { value: () => ({ ...model().stateDict(), [WEIGHT]: rand([2]) }), needle: '[2]' },
          { value: () => ({ ...model().stateDict(), [WEIGHT]: 'w' }), needle: "'w'" },
        ],
      },
    ],
    call: (e: EMA, s: never) => e.loadStateDict(s),
    prefix: 'EMA.loadStateDict',
  },
  'EMA.updates': { params: [emaArg(), int({ min: 0, good: 3 })], call: (e: EMA, n: number) => void (e.updates = n), prefix: 'EMA.updates' },
  'EMA.callback': {
    params: [emaArg(), { kind: 'step info', good: () => ({ step: 2 }), refuse: [{ value: null, needle: 'null' }, { value: 5, needle: '5' }, { value: { step: 0.5 }, needle: '0.5' }, { value: { step: 'x' }, needle: "'x'" }] }],
    call: (e: EMA, info: never) => e.callback().onStep(info),
    prefix: 'EMA.callback',
  },
  ensembleLogits: {
    params: [models(), T(() => tensor([[1, 2, 3]], [1, 3], { dtype: 'i32' })), opts(ensembleKeys())],
    call: (ms: never, idx: never, o: never) => ensembleLogits(ms, idx, o),
  },
  evaluateEnsemble: {
    params: [
      models(),
      { kind: 'data', good: () => data, refuse: [{ value: {}, needle: 'object' }, { value: 'data', needle: 'data' }, { value: null, needle: 'null' }] },
      opts(
        { blockSize: int({ min: 1 }), batchSize: int({ min: 1, optional: true }), maxBatches: int({ min: 1, optional: true, infinity: true }), backend: backendArg(), ...ensembleKeys() },
        { good: () => ({ blockSize: 4, maxBatches: 1 }), optional: false },
      ),
    ],
  },
  averageCheckpoints: { params: [paths(), opts(averageKeys())], call: (p: never, o: never) => averageCheckpoints(p, o) },
  averageCheckpointsInto: { params: [modelArg(), paths(), opts(averageKeys())], call: (m: never, p: never, o: never) => averageCheckpointsInto(m, p, o) },
  saveAveragedCheckpoint: {
    params: [
      { ...str(() => join(root, 'averaged.safetensors')), refuse: [...str().refuse, { value: '', needle: "''" }] },
      paths(),
      opts({ ...averageKeys(), step: int({ min: 0, optional: true }) }),
    ],
    call: (out: never, p: never, o: never) => saveAveragedCheckpoint(out, p, o),
  },
};

// an EMA whose weights are applied to its model (update and applyTo refuse it; restore takes it)
function applied(): EMA {
  const e = ema();
  e.applyTo();
  return e;
}
