/**
 * Bad-input table for issue 18's data and training additions (see sweep.ts): the augmentation
 * transforms (`augment.ts`: their options, and the transforms they return called with bad rows
 * or a bad generator), the curriculum (`curriculum.ts`), `TokenDataset.batchAt` and the batcher's
 * `transform` option, `embeddingPerturbation` (`adversarial.ts`) and the `embeddingDelta` option
 * of `GPT.forward`. Everything is tiny: a 64-token stream, a width-8 one-layer GPT.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT, Generator, TokenDataset, buildShards, embedding, rand, tensor, type Tensor, type TokenizerLike } from '../../src/index.js';
import { composeTransforms, randomSwap, spanMask, synonymReplace, tokenDropout, type TokenRows } from '../../src/data/augment.js';
import { Curriculum, lengthCurriculum, lossCurriculum } from '../../src/data/curriculum.js';
import { embeddingPerturbation } from '../../src/train/adversarial.js';
import { backendName, bool, choice, func, generator, int, method, num, opts, T, type Param, type Spec, type Table } from './sweep.js';

const OPTIONAL = { optional: true } as const;
const root = mkdtempSync(join(tmpdir(), 'kiln-bad-data18-'));
const chars: TokenizerLike = { vocabSize: 8, encode: (t) => Array.from(t, (c) => c.charCodeAt(0) % 7), fingerprint: () => 'bad-inputs-data18' };
const SHARDS = (await buildShards(['abcdefg abcdefg gfedcba '.repeat(3)], chars, { cacheDir: join(root, 'cache'), eos: 7 })).dir;
const STREAM = TokenDataset.open(SHARDS).length;
const dataset = (): TokenDataset => TokenDataset.open(SHARDS);

const goodRows = (): TokenRows => ({ input: Int32Array.from([1, 2, 3, 4, 5, 6]), target: Int32Array.from([2, 3, 4, 5, 6, 1]), shape: [2, 3] });
/** Token rows: `{ input, target, shape }`. */
const rowsParam = (): Param => ({
  kind: 'rows',
  good: goodRows,
  refuse: [
    { value: null, needle: 'null' },
    { value: 5, needle: '5' },
    { value: {}, needle: 'object' },
    { value: () => ({ ...goodRows(), input: [1, 2, 3, 4, 5, 6] }), needle: 'object' },
    { value: () => ({ ...goodRows(), shape: [2, -3] }), needle: '-3' },
    { value: () => ({ ...goodRows(), shape: [3, 3] }), needle: '[3, 3]' },
  ],
});
const gen = (): Param => ({ kind: 'generator', good: () => new Generator(1), refuse: [{ value: undefined, needle: 'undefined' }, { value: 5, needle: '5' }, { value: {}, needle: 'object' }] });
const ids = (o: { optional?: boolean } = {}): Param => int({ min: 0, max: 2 ** 31 - 1, ...o });
const idList = (): Param => ({ kind: 'ids', good: () => [1], refuse: [{ value: 5, needle: '5' }, { value: [1.5], needle: '1.5' }, { value: [-1], needle: '-1' }], tolerate: [undefined] });

/** The transform `make()` returns, called with (rows, generator). */
const applied = (name: string, make: () => (r: TokenRows, g: Generator) => TokenRows): Spec => ({ params: [rowsParam(), gen()], call: (r: TokenRows, g: Generator) => make()(r, g), prefix: name, label: 'the returned transform' });

const synTable = (): Param => ({
  kind: 'table',
  good: () => ({ 1: [2, 3] }),
  refuse: [
    { value: null, needle: 'null' },
    { value: 5, needle: '5' },
    { value: {}, needle: 'no entries' },
    { value: { 1: [] }, needle: 'non-empty' },
    { value: { 1: 2 }, needle: '2' },
    { value: { 1: [-2] }, needle: '-2' },
    { value: { big: [1] }, needle: 'big' },
    { value: new Map([[1.5, [1]]]), needle: '1.5' },
  ],
});

const startsParam = (max: number): Param => ({
  kind: 'starts',
  good: () => [0, 3],
  refuse: [
    { value: null, needle: 'null' },
    { value: 5, needle: '5' },
    { value: [], needle: 'non-empty' },
    { value: [0.5], needle: '0.5' },
    { value: [-1], needle: '-1' },
    { value: [max + 1], needle: String(max + 1) },
    { value: ['a'], needle: "'a'" },
  ],
});
const pacing = (): Param => ({ kind: 'pacing', good: () => undefined, refuse: [{ value: 'bogus', needle: 'bogus' }, { value: 5, needle: '5' }, { value: null, needle: 'null' }], tolerate: [undefined] });
const pacingKeys = (): Record<string, Param> => ({ steps: int({ min: 0 }), pacing: pacing(), initial: num({ min: 0, max: 1, minExclusive: true, optional: true }) });
const curriculum = (): Curriculum => new Curriculum(dataset(), { starts: [0, 3, 5], difficulty: [3, 1, 2], blockSize: 4, steps: 10 });


const TINY = { vocabSize: 8, blockSize: 4, nLayer: 1, nHead: 2, nEmbd: 8 };
const gpt = (): GPT => new GPT(TINY, { generator: new Generator(0) });
const tokens = (b = 2, t = 3): Tensor => tensor(Array.from({ length: b * t }, (_, i) => i % 8), [b, t], { dtype: 'i32' });
const idsParam = (name: string): Param => ({ ...T(() => tokens()), kind: name, refuse: [...T(() => tokens()).refuse, { value: () => rand([2, 3]), needle: 'f32' }, { value: () => tokens(2, 2), needle: '[2, 2]' }] });

const closeCur = (c: Curriculum): void => c.data.close();

export const DATA18_TABLE: Table = {
  tokenDropout: [
    { params: [opts({ p: num({ min: 0, max: 1 }), mode: choice(['replace', 'delete'], OPTIONAL), replaceId: ids(), padId: ids(OPTIONAL), keep: idList() }, { good: () => ({ p: 0.1, replaceId: 0 }), optional: false })] },
    { params: [opts({ mode: choice(['delete']), padId: ids(), replaceId: ids(OPTIONAL) }, { good: () => ({ p: 0.1, mode: 'delete', padId: 0 }), optional: false })], label: "mode 'delete'" },
    applied('tokenDropout', () => tokenDropout({ p: 0.5, replaceId: 0 })),
  ],
  spanMask: [
    { params: [opts({ maskId: ids(), rate: num({ min: 0, max: 1, maxExclusive: true, optional: true }), meanSpan: num({ min: 1, optional: true }), maxSpan: int({ min: 1, optional: true }) }, { good: () => ({ maskId: 0 }), optional: false })] },
    applied('spanMask', () => spanMask({ maskId: 0 })),
  ],
  randomSwap: [
    { params: [opts({ p: num({ min: 0, max: 1 }), distance: int({ min: 1, optional: true }), targets: choice(['clean', 'follow'], OPTIONAL) }, { good: () => ({ p: 0.1 }), optional: false })] },
    applied('randomSwap', () => randomSwap({ p: 0.5, targets: 'follow' })),
  ],
  synonymReplace: [
    {
      params: [
        opts(
          {
            table: synTable(),
            p: num({ min: 0, max: 1 }),
            tokenizer: { kind: 'tokenizer', good: () => undefined, refuse: [{ value: 5, needle: '5' }, { value: {}, needle: 'object' }, { value: null, needle: 'null' }], tolerate: [undefined] },
            targets: choice(['clean', 'follow'], OPTIONAL),
          },
          { good: () => ({ table: { 1: [2, 3] }, p: 0.5 }), optional: false },
        ),
      ],
    },
    applied('synonymReplace', () => synonymReplace({ table: { 1: [2] }, p: 0.5 })),
  ],
  composeTransforms: [
    { params: [func(() => tokenDropout({ p: 0.1, replaceId: 0 })), { ...func(() => randomSwap({ p: 0.1 })), refuse: [{ value: 5, needle: '5' }, { value: 'x', needle: 'x' }, { value: null, needle: 'null' }], tolerate: [undefined] }] },
    applied('composeTransforms', () => composeTransforms(tokenDropout({ p: 0.1, replaceId: 0 }))),
  ],
  Curriculum: {
    params: [
      { kind: 'data', good: dataset, refuse: [{ value: null, needle: 'null' }, { value: {}, needle: 'object' }, { value: 'dir', needle: 'dir' }] },
      opts(
        {
          starts: startsParam(STREAM - 5),
          difficulty: { kind: 'difficulty', good: () => undefined, refuse: [{ value: [1], needle: 'array' }, { value: 5, needle: '5' }, { value: [1, NaN], needle: 'NaN' }, { value: [1, 'x'], needle: "'x'" }] },
          blockSize: int({ min: 1, max: STREAM - 1, good: 4 }),
          ...pacingKeys(),
        },
        { good: () => ({ starts: [0, 3], difficulty: [1, 2], blockSize: 4, steps: 10 }), optional: false },
      ),
    ],
    call: (d: TokenDataset, o: never) => {
      try {
        return new Curriculum(d, o);
      } finally {
        if (d instanceof TokenDataset) d.close();
      }
    },
  },
  'Curriculum.competence': method(curriculum, (c, s) => c.competence(s), [int({ min: 0, good: 3 })], 'Curriculum.competence', closeCur),
  'Curriculum.poolSize': method(curriculum, (c, s) => c.poolSize(s), [int({ min: 0, good: 3 })], 'Curriculum.competence', closeCur),
  'Curriculum.batch': method(
    curriculum,
    (c, b, s, g, o) => c.batch(b, s, g, o),
    [int({ min: 1, good: 2 }), int({ min: 0, good: 1 }), generator(), opts({ backend: backendName(), transform: { kind: 'transform', good: () => undefined, refuse: [{ value: 5, needle: '5' }, { value: 'x', needle: 'x' }] }, shard: { kind: 'shard', good: () => undefined, refuse: [{ value: { rank: 2, size: 2 }, needle: '2' }, { value: { rank: 0, size: 3 }, needle: '3' }] } })],
    'Curriculum.batch',
    closeCur,
  ),
  lengthCurriculum: {
    params: [
      { kind: 'data', good: dataset, refuse: [{ value: null, needle: 'null' }, { value: 'dir', needle: 'dir' }] },
      opts({ eosId: int({ min: 0 }), blockSize: int({ min: 1, good: 4 }), ...pacingKeys() }, { good: () => ({ eosId: 7, blockSize: 4, steps: 10 }), optional: false }),
    ],
    call: (d: TokenDataset, o: never) => {
      try {
        return lengthCurriculum(d, o);
      } finally {
        if (d instanceof TokenDataset) d.close();
      }
    },
  },
  lossCurriculum: {
    params: [
      { kind: 'data', good: dataset, refuse: [{ value: null, needle: 'null' }, { value: 'dir', needle: 'dir' }] },
      { kind: 'model', good: () => ({ forward: (idx: Tensor) => ({ logits: embedding(idx, rand([8, 8])) }) }), refuse: [{ value: null, needle: 'null' }, { value: {}, needle: 'object' }, { value: 5, needle: '5' }] },
      opts(
        {
          blockSize: int({ min: 1, max: STREAM - 1, good: 4 }),
          candidates: { kind: 'candidates', good: () => undefined, refuse: [{ value: 0, needle: '0' }, { value: 1.5, needle: '1.5' }, { value: [], needle: 'empty' }, { value: [STREAM], needle: String(STREAM) }, { value: 'all', needle: 'all' }], tolerate: [undefined] },
          batchSize: int({ min: 1, optional: true }),
          backend: backendName(),
          ...pacingKeys(),
        },
        { good: () => ({ blockSize: 4, steps: 10, candidates: 3 }), optional: false },
      ),
    ],
    call: async (d: TokenDataset, m: never, o: never) => {
      try {
        return await lossCurriculum(d, m, o);
      } finally {
        if (d instanceof TokenDataset) d.close();
      }
    },
  },
  'TokenDataset.batchAt': method(
    dataset,
    (d, s, t, g, o) => d.batchAt(s, t, g, o),
    [startsParam(STREAM - 5), int({ min: 1, max: STREAM - 4, good: 4 }), generator(), opts({ backend: backendName(), transform: { kind: 'transform', good: () => undefined, refuse: [{ value: 5, needle: '5' }, { value: () => () => 5, needle: '5' }] }, shard: { kind: 'shard', good: () => undefined, refuse: [{ value: { rank: 0, size: 3 }, needle: '3' }] } })],
    'TokenDataset.batchAt',
    (d) => d.close(),
  ),
  'TokenDataset.batch (transform)': method(
    dataset,
    (d, o) => d.batch(2, 4, new Generator(0), o),
    [opts({ transform: { kind: 'transform', good: () => undefined, refuse: [{ value: 5, needle: '5' }, { value: {}, needle: 'object' }, { value: () => () => ({ input: new Int32Array(1), target: new Int32Array(1), shape: [1, 1] }), needle: '[1, 1]' }] } })],
    'TokenDataset.batch',
    (d) => d.close(),
  ),
  embeddingPerturbation: method(
    gpt,
    (m, x, y, o) => embeddingPerturbation(m, x, y, o),
    [
      idsParam('input'),
      idsParam('target'),
      opts(
        { method: choice(['pgd']), epsilon: num({ min: 0, minExclusive: true }), alpha: num({ min: 0, minExclusive: true, optional: true }), steps: int({ min: 1, optional: true }), scope: choice(['sequence', 'token'], OPTIONAL) },
        { good: () => ({ method: 'pgd', epsilon: 0.1, steps: 2 }), optional: false },
      ),
    ],
    'embeddingPerturbation',
    (m) => m.dispose(),
  ),
  'GPT.forward (embeddingDelta)': method(
    gpt,
    (m, d) => m.forward(tokens(), null, { embeddingDelta: d }),
    [{ ...T(() => rand([2, 3, 8]), OPTIONAL), refuse: [...T(() => rand([2, 3, 8]), OPTIONAL).refuse, { value: () => rand([2, 3, 4]), needle: '[2,3,4]' }, { value: () => tensor(Array(48).fill(0), [2, 3, 8], { dtype: 'i32' }), needle: 'i32' }] }],
    'GPT.forward',
    (m) => m.dispose(),
  ),
};

void bool;
