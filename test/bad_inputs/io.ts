/**
 * Bad-input table: the io exports (see sweep.ts): atomic writes, safetensors, checkpoints and
 * Hugging Face GPT-2 files. The files read are written once to a temporary folder under
 * `os.tmpdir()` (removed after the tests), and every write goes there. The models are tiny (a 2×2
 * `Linear` for checkpoints; a GPT-2 of vocabulary 8, width 4, one layer and one head), one per
 * backend, reused across calls.
 *
 * `saveSafetensors` and `saveHFGPT2` take a path first or not at all, so each has a spec per
 * form; in the bytes form a string first argument is a path, not a bad record. On a backend
 * without synchronous reads (async-ref) `saveSafetensorsSync`'s valid tensors are made on `ref`,
 * and a tensor on async-ref is one of the values it must refuse (naming the async function).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import {
  GPT,
  Generator,
  Linear,
  backends,
  backendSync,
  defaultBackendName,
  loadCheckpoint,
  loadHFGPT2,
  loadSafetensors,
  rand,
  saveCheckpoint,
  hfGPT2StateDict,
  hfGPT2Gradients,
  saveHFGPT2,
  saveSafetensors,
  saveSafetensorsSync,
  type Tensor,
} from '../../src/index.js';
import { choice, func, generator, opts, type Bad, type Param, type Spec, type Table } from './sweep.js';

// ---- fixtures --------------------------------------------------------------------------------

const ROOT = mkdtempSync(join(tmpdir(), 'kiln-bad-io-'));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

/** A text file (not safetensors, not a checkpoint), a folder, a path that does not exist. */
const TEXT = join(ROOT, 'a.txt');
const FOLDER = join(ROOT, 'folder');
const MISSING = join(ROOT, 'missing.safetensors');
/** A file in a folder that does not exist, and one under a file. */
const NO_FOLDER = join(ROOT, 'no-such-folder', 'out.bin');
const UNDER_FILE = join(TEXT, 'sub', 'out.safetensors');
/** Where the sweep writes. */
const OUT = join(ROOT, 'out');
writeFileSync(TEXT, 'not safetensors');
mkdirSync(FOLDER);
writeFileSync(join(FOLDER, 'keep.txt'), 'a folder that is not empty');
mkdirSync(OUT);

/** A safetensors file of one F32 tensor, by hand. */
function tinySafetensors(): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }));
  const n = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + n + 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + n);
  new DataView(out.buffer).setFloat32(8 + n, 1.5, true);
  return out;
}
const ST_FILE = join(ROOT, 'w.safetensors');
writeFileSync(ST_FILE, tinySafetensors());

const TINY = { vocabSize: 8, blockSize: 4, nLayer: 1, nHead: 1, nEmbd: 4 };
/** The tiny GPT-2's Hugging Face safetensors bytes (made on ref, read synchronously). */
let gpt2Cache: Uint8Array | null = null;
function gpt2Bytes(): Uint8Array {
  if (gpt2Cache) return gpt2Cache;
  const model = new GPT(TINY, { backend: 'ref', generator: new Generator(1) });
  const sd = hfGPT2StateDict(model);
  try {
    gpt2Cache = saveSafetensorsSync(sd, { format: 'pt' });
  } finally {
    for (const t of Object.values(sd)) t.dispose();
    model.dispose();
  }
  return gpt2Cache;
}

/** One value per backend, made on first use there (models the sweep reads but never changes). */
function perBackend<T>(make: () => T): () => T {
  const made = new Map<string, T>();
  return () => {
    const name = defaultBackendName();
    let v = made.get(name);
    if (v === undefined) made.set(name, (v = make()));
    return v;
  };
}
const gpt = perBackend(() => new GPT(TINY, { generator: new Generator(2) }));
/** A 2×2 Linear (what a checkpoint saves and loads). */
const linear = perBackend(() => new Linear(2, 2, { generator: new Generator(3) }));

/** A checkpoint of `linear()`'s shape, written once (by the first loadCheckpoint call). */
const CKPT = join(ROOT, 'ckpt.safetensors');
let ckptWritten: Promise<string> | null = null;
const checkpointFile = (): Promise<string> => (ckptWritten ??= saveCheckpoint(CKPT, { model: linear(), step: 7, extra: { note: 'fixture' } }));

/** Whether the current backend reads tensors synchronously. */
const readable = (): boolean => !!backendSync().readSync;
const asyncRef = backends().some((b) => b.name === 'async-ref' && b.available);

// ---- kinds of the io arguments -----------------------------------------------------------------

const OPTIONAL = { optional: true } as const;
const bad = (value: unknown, needle: string | string[]): Bad => ({ value, needle });
const kind = (name: string, good: () => unknown, refuse: Bad[], tolerate: unknown[] = []): Param => ({ kind: name, good, refuse, tolerate });

/** Values of no kind an argument here takes (`string: false` leaves out the string). */
const notAnything = (o: { optional?: boolean; string?: boolean } = {}): Bad[] => [
  ...(o.string === false ? [] : [bad('xyzzy', 'xyzzy')]),
  bad(5, '5'),
  bad(true, 'true'),
  bad({}, ['object', '{}']),
  bad([1], '[1]'),
  ...(o.optional ? [] : [bad(null, 'null'), bad(undefined, 'undefined')]),
];

/**
 * A path to write (its folder exists); `more` adds refusals. `folders: false` for saveCheckpoint,
 * which creates missing folders and writes into a folder it is given.
 */
const outPath = (good: () => string, more: Bad[] = [], o: { folders?: boolean } = {}): Param =>
  kind('output path', good, [...notAnything({ string: false }), bad('', "''"), ...(o.folders === false ? [] : [bad(NO_FOLDER, NO_FOLDER), bad(FOLDER, FOLDER)]), ...more]);

/** Bytes. */
const bytes = (good: () => Uint8Array = () => new Uint8Array([1, 2, 3]), more: Bad[] = []): Param =>
  kind('bytes', good, [...notAnything(), bad([1, 2], '[1,2]'), ...more], [new Uint8Array(0)]);

/** What a safetensors reader refuses as bytes. */
const badSafetensors = (): Bad[] => [
  bad(new Uint8Array(3), 'file is 3 bytes'),
  bad(() => {
    const b = tinySafetensors();
    b[9] = 0x7b; // '{{': not JSON
    return b;
  }, 'not valid JSON'),
];

/** A safetensors source: bytes or a path. */
const safetensorsSource = (good: () => Uint8Array | string, more: Bad[] = []): Param =>
  kind(
    'safetensors source',
    good,
    [...notAnything({ string: false }), bad('', "''"), bad(MISSING, MISSING), bad(FOLDER, FOLDER), bad(TEXT, TEXT), ...badSafetensors(), ...more],
    [],
  );

/** A backend's name (absent: the default backend). */
const backendName = (): Param => kind('backend', () => undefined, [bad('bogus', 'bogus'), bad(5, '5'), bad({}, 'object')], [undefined]);

/** A record of tensors; `make` makes the valid one's tensor. */
const tensorRecord = (make: () => Tensor = () => rand([2]), o: { path?: boolean } = {}): Param => {
  const disposed = (): Tensor => {
    const t = rand([2]);
    t.dispose();
    return t;
  };
  return kind(
    'tensors',
    () => ({ w: make() }),
    [
      // in the form without a path a string first argument is the path; {} is an empty record
      ...notAnything({ string: o.path === true }).filter((b) => !(b.value !== null && typeof b.value === 'object' && !Array.isArray(b.value))),
      bad(() => ({ w: 5 }), '5'),
      bad(() => ({ w: disposed() }), 'disposed'),
      bad(() => ({ __metadata__: make() }), '__metadata__'),
    ],
    [{}],
  );
};

/** String metadata (absent or null: none). */
const metadata = (): Param => kind('metadata', () => ({ format: 'pt' }), [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad([1], '[1]'), bad(true, 'true'), bad({ k: 1 }, "'k'")], [undefined, null, {}]);

/** The tiny GPT of this backend; `path: false` leaves out strings (a path in the form that takes one). */
const model = (o: { path?: boolean } = {}): Param => kind('model', gpt, [...notAnything({ string: o.path !== false }), bad(() => linear(), 'Linear')]);
const hfOptions = (): Param => opts({ prefix: choice(['', 'transformer.'], OPTIONAL) });

/** A partial GPTConfig for the Hugging Face readers (the file has no config.json: nHead is given). */
const hfConfig = (): Param =>
  kind('config', () => ({ nHead: 1 }), [
    bad(5, '5'),
    bad('xyzzy', 'xyzzy'),
    bad([1], '[1]'),
    bad(null, 'null'),
    bad({ nHead: 1, bogusOption: 1 }, 'bogusOption'),
    bad({ nHead: 3 }, '3'),
    bad({ nHead: 0 }, '0'),
    bad({ nHead: 'x' }, "'x'"),
    bad({ nHead: 1, vocabSize: 9 }, '9'),
    bad({ nHead: 1, nEmbd: 2.5 }, '2.5'),
    bad({ nHead: 1, dropout: 2 }, '2'),
    bad({ nHead: 1, rope: true }, 'rope'),
    bad({ nHead: 1, bias: 'yes' }, 'yes'),
    bad({ nHead: 1, activation: 'relu' }, 'relu'),
    bad({ nHead: 1, layerNormEps: -1 }, '-1'),
    bad({ nHead: 1, tiedHead: 5 }, '5'),
    bad({ nHead: 1, gradientCheckpointing: 'on' }, 'on'),
    bad({ nHead: 1, kvHeads: 2 }, 'kvHeads is 2'),
    bad({ nHead: 1, window: 0 }, '0'),
  ]);

/** Checkpoint contents: the Linear and a step. */
const contents = (): Param => {
  const m = (): Record<string, unknown> => ({ model: linear(), step: 3 });
  return kind('checkpoint contents', m, [
    ...notAnything().filter((b) => !(b.value !== null && typeof b.value === 'object' && !Array.isArray(b.value))),
    bad({}, 'model'),
    bad(() => ({ ...m(), step: -1 }), '-1'),
    bad(() => ({ ...m(), step: 0.5 }), '0.5'),
    bad(() => ({ ...m(), step: 'x' }), "'x'"),
    bad(() => ({ model: linear() }), 'undefined'),
    bad(() => ({ ...m(), model: 5 }), '5'),
    bad(() => ({ ...m(), optimizer: 5 }), '5'),
    bad(() => ({ ...m(), generator: {} }), 'generator'),
    bad(() => ({ ...m(), bogusOption: 1 }), 'bogusOption'),
    bad(() => ({ ...m(), extra: 1n }), 'JSON'),
  ]);
};

/** Checkpoint targets: the Linear. */
const targets = (): Param => {
  const t = (): Record<string, unknown> => ({ model: linear() });
  return kind('checkpoint targets', t, [
    ...notAnything().filter((b) => !(b.value !== null && typeof b.value === 'object' && !Array.isArray(b.value))),
    bad({}, 'model'),
    bad(() => ({ ...t(), bogusOption: 1 }), 'bogusOption'),
    bad(() => ({ ...t(), backend: 5 }), '5'),
    bad(() => ({ ...t(), backend: 'bogus' }), 'bogus'),
    bad(() => ({ ...t(), optimizer: {} }), 'optimizer'),
    bad(() => ({ ...t(), generator: new Generator(1) }), 'no generator state'),
    bad(() => ({ model: new Linear(3, 3) }), 'does not fit'),
  ]);
};

/** A checkpoint path to read. */
const checkpointPath = (): Param =>
  kind('checkpoint path', () => CKPT, [...notAnything({ string: false }), bad('', "''"), bad(MISSING, MISSING), bad(FOLDER, FOLDER), bad(TEXT, TEXT)]);

/** Run `call`, then `cleanup` of its result (disposing what it made). */
function then<R>(call: () => R | Promise<R>, cleanup: (r: R) => void): unknown {
  const r = call();
  if (r instanceof Promise) return r.then(cleanup);
  cleanup(r);
  return undefined;
}

const disposeTensors = (f: { tensors: Record<string, Tensor> }): void => {
  for (const t of Object.values(f.tensors)) t.dispose();
};

const safetensorsSpecs = (save: typeof saveSafetensors | typeof saveSafetensorsSync, sync: boolean): Spec[] => {
  // on async-ref the valid tensors of the sync form are made on ref, which reads synchronously
  const make = sync ? (): Tensor => rand([2], readable() ? {} : { backend: 'ref' }) : (): Tensor => rand([2]);
  const refusals = sync && asyncRef ? [bad(() => ({ w: rand([2], { backend: 'async-ref' }) }), 'saveSafetensors')] : [];
  const record = (path: boolean): Param => {
    const p = tensorRecord(make, { path });
    return { ...p, refuse: [...p.refuse, ...refusals] };
  };
  return [
    { label: 'bytes', params: [record(false), metadata()], call: (t, m) => (save as (t: unknown, m: unknown) => unknown)(t, m) },
    { label: 'path', params: [outPath(() => join(OUT, 'w.safetensors')), record(true), metadata()], call: (p, t, m) => (save as (p: unknown, t: unknown, m: unknown) => unknown)(p, t, m) },
  ];
};

// ---- the table ---------------------------------------------------------------------------------

export const IO_TABLE: Table = {
  // atomic writes
  writeFileAtomic: { params: [outPath(() => join(OUT, 'atomic.bin')), bytes(), opts({ write: func(() => async () => {}) })] },
  writeFileAtomicSync: { params: [outPath(() => join(OUT, 'atomic-sync.bin')), bytes(), opts({ write: func(() => () => {}) })] },

  // safetensors
  parseSafetensorsHeader: { params: [bytes(tinySafetensors, badSafetensors())] },
  loadSafetensors: {
    params: [safetensorsSource(tinySafetensors), opts({ backend: backendName() })],
    call: (s, o) => then(() => loadSafetensors(s, o), disposeTensors),
  },
  saveSafetensors: safetensorsSpecs(saveSafetensors, false),
  saveSafetensorsSync: safetensorsSpecs(saveSafetensorsSync, true),

  // checkpoints
  crc32: { params: [bytes()] },
  checkpointBytes: { params: [contents()] },
  saveCheckpoint: {
    params: [outPath(() => join(OUT, 'ckpt.safetensors'), [bad(UNDER_FILE, TEXT)], { folders: false }), contents(), opts({ write: func(() => async (fh: { writeFile(d: Uint8Array): Promise<void> }, d: Uint8Array) => fh.writeFile(d)) })],
  },
  loadCheckpoint: {
    params: [checkpointPath(), targets()],
    call: async (p, t) => {
      await checkpointFile();
      return loadCheckpoint(p, t);
    },
  },

  // Hugging Face GPT-2
  hfGPT2Config: { params: [safetensorsSource(gpt2Bytes), hfConfig()] },
  loadHFGPT2: {
    params: [
      safetensorsSource(gpt2Bytes),
      opts(
        {
          config: hfConfig(),
          backend: backendName(),
          dtype: { ...choice(['f32', 'f64', 'bf16', 'f16'], OPTIONAL), refuse: [...choice(['f32'], OPTIONAL).refuse, bad('i32', 'i32')] },
          generator: generator(),
        },
        { good: () => ({ config: { nHead: 1 } }), optional: false },
      ),
    ],
    call: (s, o) => then(() => loadHFGPT2(s, o), (m) => m.dispose()),
  },
  hfGPT2StateDict: { params: [model(), hfOptions()], call: (m, o) => hfGPT2StateDict(m, o) },
  hfGPT2Gradients: { params: [model(), hfOptions()], call: (m, o) => hfGPT2Gradients(m, o) },
  saveHFGPT2: [
    { label: 'bytes', params: [model({ path: false }), hfOptions()], call: (m, o) => saveHFGPT2(m, o) },
    { label: 'path', params: [outPath(() => join(OUT, 'gpt2', 'model.safetensors'), [bad(UNDER_FILE, TEXT)]), model(), hfOptions()], call: (p, m, o) => saveHFGPT2(p, m, o) },
  ],
};

// the path form writes its folder's config.json beside the weights
mkdirSync(join(OUT, 'gpt2'));
