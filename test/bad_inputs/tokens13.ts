/**
 * Bad-input table: llm.c token files (`data/token_files.ts`) and what they added to the shard
 * reader: `checkShardIndex` (an index not read from disk), `TokenDataset.fromIndex` and
 * `TokenDataset.slice`. Fixtures are a token file of 64 GPT-2-format tokens, a text file, a
 * folder and a missing path, written once.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { GPT, Generator, TokenDataset, openTokenFile, rand, tensor, type ShardIndex, type Tensor } from '../../src/index.js';
import { T, choice, int, method, opts, type Bad, type Param, type Table } from './sweep.js';

const ids32 = (shape: number[]): Tensor => tensor(Array.from({ length: shape[0]! * shape[1]! }, (_, i) => i % 4), shape, { dtype: 'i32' });
/** [2, 3] i32 token ids; refused: f32 values, another shape. */
const ids = (name: string): Param => ({ ...T(() => ids32([2, 3])), kind: name, refuse: [...T(() => ids32([2, 3])).refuse, { value: () => rand([2, 3]), needle: 'f32' }, { value: () => ids32([2, 2]), needle: '[2,2]' }] });

const ROOT = mkdtempSync(join(tmpdir(), 'kiln-bad-tokens-'));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

const STREAM = 64;
/** A GPT-2-format token file of 64 tokens, written by hand as llm.c lays it out. */
const TOKENS = join(ROOT, 'train.bin');
const TEXT = join(ROOT, 'a.txt');
const FOLDER = join(ROOT, 'folder');
const MISSING = join(ROOT, 'missing.bin');
const NO_FOLDER = join(ROOT, 'no-such-folder', 'out.bin');

{
  const bytes = new Uint8Array(1024 + 2 * STREAM);
  const dv = new DataView(bytes.buffer);
  dv.setInt32(0, 20240520, true);
  dv.setInt32(4, 1, true);
  dv.setInt32(8, STREAM, true);
  for (let i = 0; i < STREAM; i++) dv.setUint16(1024 + 2 * i, i % 50, true);
  writeFileSync(TOKENS, bytes);
  writeFileSync(TEXT, 'hello world\n\nnot a token file\n');
  mkdirSync(FOLDER);
}

const bad = (value: unknown, needle: string | string[]): Bad => ({ value, needle });
const notPaths = (): Bad[] => [bad(5, '5'), bad(true, 'true'), bad({}, 'object'), bad(null, 'null'), bad(undefined, 'undefined'), bad('', "''")];

/** A path to read a token file from: the fixture; not a string, missing, a folder, a text file. */
function tokenPath(): Param {
  return { kind: 'token file', good: () => TOKENS, refuse: [...notPaths(), bad(MISSING, MISSING), bad(FOLDER, FOLDER), bad(TEXT, TEXT)] };
}

/** The index openTokenFile builds for the fixture. */
const INDEX = (): ShardIndex => ({
  version: 1,
  key: 'llm.c:train.bin',
  dtype: 'uint16',
  vocabSize: 50257,
  tokens: STREAM,
  shards: [{ file: 'train.bin', tokens: STREAM, offset: 1024 }],
  documents: 0,
  eos: 50256,
  tokenizer: 'gpt-2',
  created: new Date(0).toISOString(),
});

/** A shard index for ROOT: not an object, the wrong version, dtype, file name, counts, offset. */
function index(): Param {
  const base = INDEX();
  const shard = base.shards[0]!;
  return {
    kind: 'index',
    good: INDEX,
    refuse: [
      bad(5, '5'),
      bad(null, 'null'),
      bad('xyzzy', 'xyzzy'),
      bad({}, 'version'),
      bad({ ...base, version: 9 }, '9'),
      bad({ ...base, dtype: 'int8' }, 'int8'),
      bad({ ...base, vocabSize: 70000 }, '70000'),
      bad({ ...base, shards: 5 }, 'shards'),
      bad({ ...base, shards: [{ ...shard, file: '../train.bin' }] }, '../train.bin'),
      bad({ ...base, shards: [{ ...shard, file: 'missing.bin' }] }, 'missing.bin'),
      bad({ ...base, shards: [{ ...shard, tokens: -1 }] }, '-1'),
      bad({ ...base, shards: [{ ...shard, offset: -3 }] }, '-3'),
      bad({ ...base, shards: [{ ...shard, offset: 0 }] }, 'train.bin'),
      bad({ ...base, tokens: 999 }, '999'),
    ],
  };
}

/** A folder path (the shards' folder). */
function dirPath(): Param {
  return { kind: 'folder', good: () => ROOT, refuse: [...notPaths(), bad(FOLDER, 'train.bin')] };
}

const dataset = (): TokenDataset => openTokenFile(TOKENS);

export const TOKENS13_TABLE: Table = {
  isTokenFile: { params: [{ kind: 'path', good: () => TOKENS, refuse: notPaths(), tolerate: [MISSING, FOLDER, TEXT] }] },
  readTokenFileHeader: { params: [tokenPath()] },
  writeTokenFile: {
    params: [
      { kind: 'path', good: () => join(ROOT, 'out.bin'), refuse: [...notPaths(), bad(FOLDER, FOLDER), bad(NO_FOLDER, NO_FOLDER)] },
      {
        kind: 'tokens',
        good: () => [1, 2, 3],
        refuse: [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad(null, 'null'), bad(undefined, 'undefined'), bad([70000], '70000'), bad([-1], '-1'), bad([1.5], '1.5'), bad([Number.NaN], 'NaN'), bad(['1'], '1')],
      },
      opts({ format: choice(['gpt-2', 'llama-3'], { optional: true }) }),
    ],
  },
  openTokenFile: {
    params: [tokenPath(), opts({ vocabSize: int({ min: 1, max: 65536, optional: true }), maxOpenFiles: int({ min: 1, optional: true }) })],
    call: (p, o) => openTokenFile(p, o).close(),
  },
  checkShardIndex: { params: [dirPath(), index()] },
  'TokenDataset.fromIndex': {
    params: [dirPath(), index(), opts({ maxOpenFiles: int({ min: 1, optional: true }) })],
    call: (d, i, o) => TokenDataset.fromIndex(d, i, o).close(),
  },
  'TokenDataset.slice': method(dataset, (d, s, e) => d.slice(s, e).close(), [int({ min: 0, max: STREAM, good: 0 }), int({ min: 0, max: STREAM, good: STREAM })], 'TokenDataset.slice', (d) => d.close()),
  // the fused head and loss: idx and targets as GPT.forward's, and its options
  'GPT.loss': method(
    () => new GPT({ vocabSize: 8, blockSize: 4, nLayer: 1, nHead: 2, nEmbd: 8 }, { generator: new Generator(0) }),
    (m, idx, t, o) => m.loss(idx, t, o),
    [
      ids('idx'),
      ids('targets'),
      opts({ chunkRows: int({ min: 1, good: 2, optional: true }), reduction: choice(['mean', 'sum'], { optional: true }), positions: T(() => ids32([2, 3]), { optional: true }) }),
    ],
    'GPT.loss',
    (m) => m.dispose(),
  ),
};
