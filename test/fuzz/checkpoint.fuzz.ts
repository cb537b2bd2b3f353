/**
 * Fuzzing `loadCheckpoint`: a real checkpoint (a Linear model, AdamW with two parameter groups
 * and state, a cosine scheduler, a generator) with edits to its `kiln.checkpoint` JSON (every
 * field: wrong types, extreme numbers, deep nesting, prototype names as state ids and tensor
 * keys), to its tensors (dtypes, shapes, missing and extra entries, `model.__proto__`) and to
 * its checksum, re-signed with a correct CRC-32 (zlib's, not kiln's) so the edits get past the
 * checksum, or left stale; then byte corruptions; and arbitrary bytes. A load either restores
 * exactly the file's weights and returns its step, or throws `loadCheckpoint: …` with the
 * targets (model, optimizer, scheduler, generator) exactly as they were and no tensor leaked.
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import {
  AdamW,
  Generator,
  LRScheduler,
  Linear,
  cosineLr,
  loadCheckpoint,
  saveCheckpoint,
  tensor,
  tidy,
  type Tensor,
} from '../../src/index.js';
import {
  FORMAT_SIZES,
  Pairs,
  RawJSON,
  applyByteEdit,
  attemptAsync,
  byteEdit,
  concat,
  erase,
  expectThat,
  fresh,
  isPlainObject,
  jsonText,
  liveTensors,
  loadBackends,
  nastyValue,
  safetensorsBytes,
  scratchDir,
  setOwn,
  splitSafetensors,
  type ByteEdit,
  type Fuzzer,
} from './common.js';

const PREFIX = ['loadCheckpoint: '];
const BACKENDS = loadBackends();
const DIR = scratchDir('checkpoint');
const FILE = join(DIR, 'case.safetensors');

/** What a checkpoint restores into. */
interface Run {
  model: Linear;
  optimizer: AdamW;
  scheduler: LRScheduler;
  generator: Generator;
}

/** A run that has taken one step (so the optimizer has state), from `seed`. */
function newRun(backend: string, seed: number): Run {
  const generator = new Generator(seed);
  const model = new Linear(3, 2, { backend, generator });
  const optimizer = new AdamW([{ params: [model.weight] }, { params: [model.bias!], weightDecay: 0 }], { lr: 0.01 });
  const scheduler = new LRScheduler(optimizer, cosineLr({ warmupSteps: 2, totalSteps: 10 }));
  tidy(() => model.forward(tensor([[1, 2, 3]], [1, 3], { backend })).square().sum().backward());
  optimizer.step();
  optimizer.zeroGrad();
  scheduler.step();
  return { model, optimizer, scheduler, generator };
}

const bytesOf = (t: Tensor): number[] => {
  const s = t.backend.readSync!(t._storage('fuzz'));
  return Array.from(new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
};

/** Everything a load may change, as one string. */
function snapshot(run: Run): string {
  const opt = run.optimizer.stateDict();
  return JSON.stringify({
    model: Object.entries(run.model.stateDict()).map(([k, t]) => [k, t.shape, t.dtype, bytesOf(t)]),
    groups: opt.paramGroups,
    state: Object.entries(opt.state).map(([id, st]) => [id, st.step, Object.entries(st.tensors).map(([k, t]) => [k, t.shape, bytesOf(t)])]),
    scheduler: run.scheduler.stateDict(),
    lrs: run.optimizer.paramGroups.map((g) => g.lr),
    generator: run.generator.getState(),
  });
}

// ---- the base checkpoint, as parts that edits change -------------------------------------------

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

interface Parts {
  entries: Entry[];
  /** The `kiln.checkpoint` JSON, parsed. */
  info: Record<string, unknown>;
  /** Other metadata pairs. */
  extraMeta: [string, unknown][];
}

const BASE: { parts: Parts } = await (async () => {
  const run = newRun(BACKENDS[0]!, 1);
  await saveCheckpoint(FILE, { ...run, step: 7, extra: { note: 'base', list: [1, 2] } });
  const bytes = new Uint8Array(readFileSync(FILE));
  run.model.dispose();
  for (const st of Object.values(run.optimizer.stateDict().state)) for (const t of Object.values(st.tensors)) t.dispose();
  const { header, data } = splitSafetensors(bytes)!;
  const { __metadata__: meta, ...tensors } = JSON.parse(header) as Record<string, unknown>;
  const entries = Object.entries(tensors as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>).map(([name, e]) => ({
    name,
    dtype: e.dtype,
    shape: e.shape,
    data: data.slice(e.data_offsets[0], e.data_offsets[1]),
  }));
  return { parts: { entries, info: JSON.parse((meta as Record<string, string>)['kiln.checkpoint']!) as Record<string, unknown>, extraMeta: [] } };
})();

/** Places in the `kiln.checkpoint` JSON that edits reach. */
const INFO_PATHS = [
  'version',
  'step',
  'extra',
  'generator',
  'generator.seed',
  'generator.offset',
  'scheduler',
  'scheduler.step',
  'scheduler.baseLrs',
  'optimizer',
  'optimizer.optimizer',
  'optimizer.paramGroups',
  'optimizer.paramGroups.0',
  'optimizer.paramGroups.0.params',
  'optimizer.paramGroups.1.params.0',
  'optimizer.paramGroups.0.options',
  'optimizer.paramGroups.0.options.lr',
  'optimizer.paramGroups.0.options.betas',
  'optimizer.state',
  'optimizer.state.0',
  'optimizer.state.0.step',
  'optimizer.state.0.tensors',
  'optimizer.state.1.tensors.0',
];

/** An edit of the checkpoint; entry indices are taken modulo the count. */
export type CheckpointEdit =
  | { kind: 'info'; path: string; value: unknown }
  | { kind: 'deleteInfo'; path: string }
  | { kind: 'stateId'; from: string; to: string }
  | { kind: 'infoText'; value: unknown }
  | { kind: 'dtype'; entry: number; dtype: string; data: Uint8Array }
  | { kind: 'shape'; entry: number; shape: number[]; data: Uint8Array }
  | { kind: 'drop'; entry: number }
  | { kind: 'rename'; entry: number; name: string }
  | { kind: 'add'; name: string; dtype: string; shape: number[]; data: Uint8Array }
  | { kind: 'meta'; key: string; value: unknown };

const ODD_NAMES = ['model.__proto__', 'model.constructor', 'model.', 'model.weight.x', 'optimizer.0.__proto__', 'optimizer.0.exp_avg', 'optimizer.9.exp_avg', 'optimizer.__proto__.exp_avg', '__proto__', 'model.toString'];
const STATE_IDS = ['0', '1', '2', '-1', '01', '1e0', '0.0', 'NaN', '__proto__', 'constructor', 'toString', '9007199254740993', ''];

/** Random bytes to fill `shape` of `dtype` (a nat seed spreads them). */
const filled = (dtype: string, shape: number[], seed: number): Uint8Array => {
  const n = shape.reduce((p, d) => p * d, 1) * (FORMAT_SIZES[dtype] ?? 4);
  const out = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) out[i] = (x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) ^ i) & 0xff;
  return out;
};

const dtypeArb = fc.constantFrom(...Object.keys(FORMAT_SIZES));
const shapeArb: fc.Arbitrary<number[]> = fc.oneof(
  fc.constantFrom([2, 3], [2], [3, 2], [6], [], [0], [2, 3, 1]).map((s) => [...s]),
  fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
);

export const checkpointEditArb: fc.Arbitrary<CheckpointEdit> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('info' as const), path: fc.constantFrom(...INFO_PATHS), value: nastyValue }), weight: 6 },
  fc.record({ kind: fc.constant('deleteInfo' as const), path: fc.constantFrom(...INFO_PATHS) }),
  fc.record({ kind: fc.constant('stateId' as const), from: fc.constantFrom('0', '1'), to: fc.constantFrom(...STATE_IDS) }),
  fc.record({ kind: fc.constant('infoText' as const), value: fc.oneof(nastyValue, fc.constant(new RawJSON('{"version":2,'))) }),
  fc.record({ kind: fc.constant('dtype' as const), entry: fc.nat(), dtype: dtypeArb, data: fc.constant(new Uint8Array(0)) }),
  fc.record({ kind: fc.constant('shape' as const), entry: fc.nat(), shape: shapeArb, data: fc.constant(new Uint8Array(0)) }),
  fc.record({ kind: fc.constant('drop' as const), entry: fc.nat() }),
  fc.record({ kind: fc.constant('rename' as const), entry: fc.nat(), name: fc.constantFrom(...ODD_NAMES) }),
  fc
    .record({ name: fc.constantFrom(...ODD_NAMES), dtype: dtypeArb, shape: shapeArb, seed: fc.nat() })
    .map(({ name, dtype, shape, seed }) => ({ kind: 'add' as const, name, dtype, shape, data: filled(dtype, shape, seed) })),
  fc.record({ kind: fc.constant('meta' as const), key: fc.constantFrom('kiln.crc32', 'format', '__proto__'), value: fc.oneof(nastyValue, fc.constantFrom('00000000', 'FFFFFFFF', 'zz')) }),
);

/** Set (or delete) an own property along a dotted path, never assigning a prototype; nothing when the path is not there. */
function setPath(root: unknown, path: string, value: unknown, remove = false): void {
  const keys = path.split('.');
  let at = root as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) {
    const next = Object.hasOwn(at, k) ? at[k] : undefined;
    if (!isPlainObject(next) && !Array.isArray(next)) return;
    at = next as Record<string, unknown>;
  }
  const last = keys[keys.length - 1]!;
  if (remove) delete at[last];
  else setOwn(at, last, value);
}

/** How the edited file is signed. */
export type Sign = 'v2' | 'v1' | 'stale';

/** The checkpoint's bytes after `edits`, signed as `sign` says. */
export function buildCheckpoint(edits: readonly CheckpointEdit[], sign: Sign): Uint8Array {
  const parts: Parts = structuredClone(BASE.parts);
  let infoText: string | null = null;
  for (const e of fresh(edits)) {
    const k = parts.entries.length === 0 ? -1 : ('entry' in e ? e.entry % parts.entries.length : -1);
    if (e.kind === 'info') setPath(parts.info, e.path, e.value);
    else if (e.kind === 'deleteInfo') setPath(parts.info, e.path, undefined, true);
    else if (e.kind === 'stateId') {
      const state = (parts.info.optimizer as { state?: Record<string, unknown> } | null)?.state;
      if (isPlainObject(state) && Object.hasOwn(state, e.from)) {
        const v = state[e.from];
        delete state[e.from];
        setOwn(state, e.to, v);
        for (const entry of parts.entries) if (entry.name.startsWith(`optimizer.${e.from}.`)) entry.name = `optimizer.${e.to}.${entry.name.slice(`optimizer.${e.from}.`.length)}`;
      }
    } else if (e.kind === 'infoText') infoText = jsonText(e.value);
    else if (e.kind === 'meta') parts.extraMeta.push([e.key, e.value]);
    else if (e.kind === 'add') parts.entries.push({ name: e.name, dtype: e.dtype, shape: e.shape, data: e.data });
    else if (k >= 0) {
      const entry = parts.entries[k]!;
      if (e.kind === 'drop') parts.entries.splice(k, 1);
      else if (e.kind === 'rename') entry.name = e.name;
      else if (e.kind === 'dtype') {
        entry.dtype = e.dtype;
        entry.data = filled(e.dtype, entry.shape, entry.data.length + k);
      } else if (e.kind === 'shape') {
        entry.shape = e.shape;
        entry.data = filled(entry.dtype, e.shape, entry.data.length + k);
      }
    }
  }
  if (sign === 'v1' && infoText === null) setPath(parts.info, 'version', 1);
  const json = infoText ?? jsonText(parts.info);
  const data = concat(...parts.entries.map((e) => e.data));
  let version: unknown = null;
  try {
    version = (JSON.parse(json) as { version?: unknown } | null)?.version;
  } catch {
    // not JSON: signed as version 2
  }
  // version 1 checksums the data; version 2 the JSON, then the data
  const crc = sign === 'stale' ? '00000000' : (version === 1 ? zlibCrc32(data) : zlibCrc32(data, zlibCrc32(json))).toString(16).padStart(8, '0');
  const pairs: [string, unknown][] = [['__metadata__', new Pairs([['kiln.crc32', crc], ['kiln.checkpoint', json], ...parts.extraMeta])]];
  let at = 0;
  for (const e of parts.entries) {
    pairs.push([e.name, { dtype: e.dtype, shape: e.shape, data_offsets: [at, at + e.data.length] }]);
    at += e.data.length;
  }
  return safetensorsBytes(jsonText(new Pairs(pairs)), data);
}

/** What a successful load must have done: the model holds the file's `model.*` values. */
function checkRestored(bytes: Uint8Array, run: Run, step: number): void {
  const { header, data } = splitSafetensors(bytes)!;
  const json = JSON.parse(header) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const info = JSON.parse((json.__metadata__ as unknown as Record<string, string>)['kiln.checkpoint']!) as { step: number };
  expectThat(step === info.step, `returned step ${step}, the file has ${info.step}`);
  for (const [name, p] of Object.entries(run.model.stateDict())) {
    const e = json[`model.${name}`];
    expectThat(e !== undefined, `loaded without 'model.${name}'`);
    const raw = data.subarray(e.data_offsets[0], e.data_offsets[1]);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const got = p.backend.readSync!(p._storage('fuzz'));
    for (let i = 0; i < p.size; i++) {
      const want = e.dtype === 'F32' ? dv.getFloat32(i * 4, true) : e.dtype === 'F64' ? Math.fround(dv.getFloat64(i * 8, true)) : null;
      if (want !== null) expectThat(Object.is(got[i], want) || (Number.isNaN(want) && Number.isNaN(got[i] as number)), `model.${name}[${i}] is ${got[i]}, the file has ${want}`);
    }
  }
}

const RUNS = new Map<string, Run>();
const runOn = (backend: string): Run => {
  let r = RUNS.get(backend);
  if (!r) RUNS.set(backend, (r = newRun(backend, 2)));
  return r;
};

interface Targets {
  backend: string;
  optimizer: boolean;
  scheduler: boolean;
  generator: boolean;
  /** Backend the tensors are loaded on (a name that does not exist now and then). */
  loadOn: string;
}

const targetsArb: fc.Arbitrary<Targets> = fc.record({
  backend: fc.constantFrom(...BACKENDS),
  optimizer: fc.boolean(),
  scheduler: fc.boolean(),
  generator: fc.boolean(),
  loadOn: fc.oneof({ arbitrary: fc.constantFrom(...BACKENDS), weight: 19 }, { arbitrary: fc.constant('no-such-backend'), weight: 1 }),
});

/** One case: write `bytes`, load into the run of `t`; the contract of the module comment. */
export async function checkCheckpointBytes(bytes: Uint8Array, t: Targets): Promise<void> {
  const run = runOn(t.backend);
  const before = snapshot(run);
  const live = liveTensors();
  const stateTensors = (): number => Object.values(run.optimizer.stateDict().state).reduce((s, st) => s + Object.keys(st.tensors).length, 0);
  const held = stateTensors();
  writeFileSync(FILE, bytes);
  const r = await attemptAsync(
    () =>
      loadCheckpoint(FILE, {
        model: run.model,
        ...(t.optimizer ? { optimizer: run.optimizer } : {}),
        ...(t.scheduler ? { scheduler: run.scheduler } : {}),
        ...(t.generator ? { generator: run.generator } : {}),
        backend: t.loadOn,
      }),
    PREFIX,
  );
  if (!r.ok) {
    expectThat(snapshot(run) === before, `a failed load changed the targets: ${r.error.message}`);
    expectThat(liveTensors() === live, `a failed load left ${liveTensors() - live} tensors alive: ${r.error.message}`);
    return;
  }
  checkRestored(bytes, run, r.value.step);
  // the optimizer's state tensors are replaced, nothing else is kept
  expectThat(liveTensors() === live + stateTensors() - held, `a load left ${liveTensors() - live - (stateTensors() - held)} extra tensors alive`);
}

interface EditedCase {
  edits: CheckpointEdit[];
  sign: Sign;
  byteEdits: ByteEdit[];
  targets: Targets;
}

const edited: Fuzzer<EditedCase> = {
  parser: 'checkpoint',
  name: 'loadCheckpoint: a real checkpoint with metadata, tensor and checksum edits, re-signed',
  async: true,
  arb: fc.record({
    edits: fc.array(checkpointEditArb, { maxLength: 3 }),
    sign: fc.constantFrom<Sign>('v2', 'v2', 'v2', 'v1', 'stale'),
    byteEdits: fc.oneof({ arbitrary: fc.constant<ByteEdit[]>([]), weight: 4 }, { arbitrary: fc.array(byteEdit, { minLength: 1, maxLength: 2 }), weight: 1 }),
    targets: targetsArb,
  }),
  async check({ edits, sign, byteEdits, targets }) {
    let bytes = buildCheckpoint(edits, sign);
    for (const e of byteEdits) bytes = applyByteEdit(bytes, e);
    await checkCheckpointBytes(bytes, targets);
  },
};

interface ArbitraryCase {
  bytes: Uint8Array;
  targets: Targets;
}

const arbitrary: Fuzzer<ArbitraryCase> = {
  parser: 'checkpoint',
  name: 'loadCheckpoint: arbitrary bytes, and safetensors files with arbitrary kiln.checkpoint JSON (correctly signed)',
  async: true,
  arb: fc.record({
    bytes: fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.oneof(fc.json(), nastyValue.map(jsonText)).map((json) => {
        const crc = zlibCrc32(new Uint8Array(0), zlibCrc32(json)).toString(16).padStart(8, '0');
        return safetensorsBytes(jsonText({ __metadata__: { 'kiln.crc32': crc, 'kiln.checkpoint': json } }), new Uint8Array(0));
      }),
    ),
    targets: targetsArb,
  }),
  async check({ bytes, targets }) {
    await checkCheckpointBytes(bytes, targets);
  },
};

export const fuzzers: Fuzzer<unknown>[] = [erase(edited), erase(arbitrary)];
