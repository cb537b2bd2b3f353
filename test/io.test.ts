/**
 * safetensors and checkpoints: reading a file written by Python from the format's definition
 * (test/fixtures/make_safetensors.py), Python reading kiln's output, bit-exact round trips of
 * every dtype, validation of every header field (each a `loadSafetensors: …` error, never a read
 * past the buffer, never a leak), atomic writes that survive a failure mid-write, and exact
 * resumption of training from a checkpoint.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  Generator,
  dropout,
  noGrad,
  tensor,
  tidy,
  type DType,
  type Tensor,
} from '../src/index.js';
import { AdamW, LRScheduler, SGD, clipGradNorm, cosineLr } from '../src/optim/index.js';
import {
  crc32,
  loadCheckpoint,
  loadSafetensors,
  parseSafetensorsHeader,
  saveCheckpoint,
  saveSafetensors,
  saveSafetensorsSync,
  writeFileAtomic,
  writeFileAtomicSync,
} from '../src/index.js';
import { describeBackends, FC, floatDtype, rng, shapeArb, size, stores, storedDtypes, values, syncReadable, liveTensors } from './harness.js';

const FIXTURES = new URL('./fixtures/', import.meta.url);
const PYTHON = '/usr/bin/python3';
const HAVE_PYTHON = existsSync(PYTHON);
if (!HAVE_PYTHON) console.warn(`[kiln tests] Python cross-checks of safetensors skipped: ${PYTHON} not found`);

const scratch = mkdtempSync(join(tmpdir(), 'kiln-io-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let fileCount = 0;
const tmpFile = (name = 'f.safetensors'): string => join(mkdtempSync(join(scratch, `t${++fileCount}-`)), name);

const rawBytes = async (t: Tensor): Promise<Uint8Array> => {
  const raw = await t.backend.read(t._storage('test'));
  return new Uint8Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
};

// Non-finite values travel through JSON as strings.
const fromJson = (v: number | boolean | string): number =>
  v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === 'nan' ? NaN : Number(v);

/** safetensors bytes with `header` (an object, or raw JSON text) and `data`, header length as given or computed. */
function craft(header: unknown, data: Uint8Array = new Uint8Array(0), length?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(length ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/**
 * The safetensors `bytes` without the entries of dtype `drop` (`F64`): the header keeps its own
 * key order and metadata, the data buffer the file's order, with the offsets closed up.
 */
function withoutDtype(bytes: Uint8Array, drop: string): Uint8Array {
  const { entries, dataStart } = parseSafetensorsHeader(bytes);
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const json = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  const kept = entries.filter((e) => e.dtype !== drop);
  const offsets = new Map<string, [number, number]>();
  let at = 0;
  for (const e of kept) offsets.set(e.name, [at, (at += e.end - e.begin)]);
  const data = new Uint8Array(at);
  for (const e of kept) data.set(bytes.subarray(dataStart + e.begin, dataStart + e.end), offsets.get(e.name)![0]);
  const header: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) {
    if (k === '__metadata__') header[k] = v;
    else if (offsets.has(k)) header[k] = { ...(v as object), data_offsets: offsets.get(k) };
  }
  return craft(header, data);
}

describeBackends('safetensors', (backend) => {
  it('reads the file Python wrote from the format definition: every dtype, metadata, scalars, empty tensors, widened integers', async () => {
    const expected = JSON.parse(readFileSync(new URL('sample.expected.json', FIXTURES), 'utf8')) as {
      metadata: Record<string, string>;
      tensors: Record<string, { dtype: DType; shape: number[]; values: (number | string | boolean)[] }>;
    };
    const path = new URL('sample.safetensors', FIXTURES).pathname;
    let source: string | Uint8Array = path;
    let want = expected.tensors;
    if (!stores(backend, 'f64')) {
      // a backend without f64 (WebGPU) refuses the file's F64 tensor, naming the dtype and leaving
      // nothing behind; every other tensor of the file is then read from it without that entry
      const n0 = liveTensors();
      expect(() => loadSafetensors(path, { backend })).toThrow(/^loadSafetensors: backend '.*' cannot store f64 tensors/);
      expect(liveTensors()).toBe(n0);
      source = withoutDtype(readFileSync(path), 'F64');
      want = Object.fromEntries(Object.entries(want).filter(([, e]) => e.dtype !== 'f64'));
      expect(Object.keys(want).length).toBe(Object.keys(expected.tensors).length - 1);
    }
    const { tensors, metadata } = loadSafetensors(source, { backend });
    expect(metadata).toEqual(expected.metadata);
    expect(Object.keys(tensors).sort()).toEqual(Object.keys(want).sort());
    for (const [name, e] of Object.entries(want)) {
      const t = tensors[name]!;
      expect(t.backend.name).toBe(backend);
      expect([name, t.dtype, t.shape]).toEqual([name, e.dtype, e.shape]);
      expect(await values(t), name).toEqual(e.values.map(fromJson));
      t.dispose();
    }
    // the file's order is the data order, not the header's
    expect(Object.keys(tensors)[0]).toBe('weights.f32');
  });

  // every dtype the backend stores (the f64 case is skipped, saying so, where it cannot)
  const dtypeArb = fc.constantFrom<DType>(...storedDtypes<DType>(backend, ['f32', 'f64', 'i32', 'bf16', 'f16', 'bool']));
  const valueArb = (dtype: DType): fc.Arbitrary<number> =>
    dtype === 'bool'
      ? fc.constantFrom(0, 1)
      : dtype === 'i32'
        ? fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })
        : fc.oneof(fc.double(), fc.constantFrom(0, -0, Infinity, -Infinity, NaN, 1e-40, 65504, 3e38));

  it('save → load is bit-exact for every dtype and shape, with metadata (sync and async agree)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          dtypeArb.chain((dtype) => shapeArb(3, 4).chain((shape) => fc.tuple(fc.constant(dtype), fc.constant(shape), fc.array(valueArb(dtype), { minLength: size(shape), maxLength: size(shape) })))),
          { minLength: 0, maxLength: 5 },
        ),
        fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }),
        async (specs, metadata) => {
          const n0 = liveTensors();
          const input: Record<string, Tensor> = {};
          specs.forEach(([dtype, shape, vals], i) => (input[`t${i}.${dtype}`] = tensor(vals, shape, { backend, dtype })));
          const bytes = (await saveSafetensors(input, metadata)) as Uint8Array;
          if (syncReadable(backend)) expect(saveSafetensorsSync(input, metadata)).toEqual(bytes);
          else if (specs.length > 0) expect(() => saveSafetensorsSync(input, metadata)).toThrow(/^saveSafetensorsSync: backend '.*' of tensor '.*' cannot be read synchronously; use the async saveSafetensors/);
          const header = parseSafetensorsHeader(bytes);
          expect(header.dataStart % 8).toBe(0);
          const { tensors, metadata: meta } = loadSafetensors(bytes, { backend });
          expect(meta).toEqual(metadata);
          expect(Object.keys(tensors)).toEqual(Object.keys(input));
          for (const [name, t] of Object.entries(input)) {
            const u = tensors[name]!;
            expect([u.dtype, u.shape]).toEqual([t.dtype, t.shape]);
            expect(await rawBytes(u)).toEqual(await rawBytes(t));
          }
          for (const t of [...Object.values(input), ...Object.values(tensors)]) t.dispose();
          expect(liveTensors()).toBe(n0);
        },
      ),
      { numRuns: Math.min(FC.numRuns, 40) },
    );
  });

  it('writes the layout the format defines: u64 LE length, space-padded JSON, contiguous offsets in order', async () => {
    const a = tensor([1, 2, 3], { backend });
    // b is f64 (f32 where f64 is not stored): 8 (4) bytes an element
    const wide = floatDtype(backend);
    const w = wide === 'f64' ? 8 : 4;
    const b = tensor([[1, 2]], { backend, dtype: wide });
    const c = tensor(true, { backend });
    const bytes = (await saveSafetensors({ a, b, c }, { note: 'x' })) as Uint8Array;
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text.trimEnd().length).toBeGreaterThan(n - 8);
    expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/);
    expect(JSON.parse(text)).toEqual({
      __metadata__: { note: 'x' },
      a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
      b: { dtype: wide.toUpperCase(), shape: [1, 2], data_offsets: [12, 12 + 2 * w] },
      c: { dtype: 'BOOL', shape: [], data_offsets: [12 + 2 * w, 13 + 2 * w] },
    });
    expect(bytes.length).toBe(8 + n + 13 + 2 * w);
    expect(Array.from(new Float32Array(bytes.slice(8 + n, 8 + n + 12).buffer))).toEqual([1, 2, 3]);
    // no metadata: no __metadata__ key at all
    const plain = (await saveSafetensors({ a })) as Uint8Array;
    expect(Object.keys(JSON.parse(new TextDecoder().decode(plain.subarray(8, parseSafetensorsHeader(plain).dataStart))))).toEqual(['a']);
  });

  it('saves to a path atomically and loads from it', async () => {
    const file = tmpFile();
    const w = tensor([[0.5, -1]], { backend, dtype: 'bf16' });
    await saveSafetensors(file, { w }, { step: '3' });
    if (syncReadable(backend)) {
      const sync = tmpFile();
      saveSafetensorsSync(sync, { w }, { step: '3' });
      expect(readFileSync(file)).toEqual(readFileSync(sync));
    }
    const { tensors, metadata } = loadSafetensors(file, { backend });
    expect(metadata).toEqual({ step: '3' });
    expect(await values(tensors.w!)).toEqual([0.5, -1]);
    expect(readdirSync(join(file, '..'))).toEqual(['f.safetensors']);
  });

  it.skipIf(!HAVE_PYTHON)('Python (standard library, independent reader) parses what kiln writes', async () => {
    const r = rng(9);
    const pick = (n: number, f: () => number): number[] => Array.from({ length: n }, f);
    const input: Record<string, Tensor> = {
      f32: tensor(pick(6, () => r() * 200 - 100), [2, 3], { backend }),
      // (no f64 tensor where the backend cannot store one)
      ...(stores(backend, 'f64') ? { f64: tensor(pick(3, () => r() * 1e10), [3], { backend, dtype: 'f64' }) } : {}),
      i32: tensor([-(2 ** 31), 7, 2 ** 31 - 1], { backend, dtype: 'i32' }),
      bf16: tensor([1.5, -1e-3, Infinity, 3e38], { backend, dtype: 'bf16' }),
      f16: tensor([[65504, -6e-8], [0.1, -Infinity]], { backend, dtype: 'f16' }),
      bool: tensor([true, false, true], { backend }),
      scalar: tensor(3.25, { backend }),
      empty: tensor([], [0, 2], { backend }),
    };
    const file = tmpFile();
    await saveSafetensors(file, input, { who: 'kiln' });
    const run = spawnSync(PYTHON, [new URL('read_safetensors.py', FIXTURES).pathname, file], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const parsed = JSON.parse(run.stdout) as { metadata: unknown; tensors: Record<string, { dtype: string; shape: number[]; values: (number | string | boolean)[] }> };
    expect(parsed.metadata).toEqual({ who: 'kiln' });
    const names = { f32: 'F32', f64: 'F64', i32: 'I32', bf16: 'BF16', f16: 'F16', bool: 'BOOL', scalar: 'F32', empty: 'F32' };
    for (const [name, t] of Object.entries(input)) {
      const p = parsed.tensors[name]!;
      expect([p.dtype, p.shape]).toEqual([names[name as keyof typeof names], t.shape]);
      expect(p.values.map(fromJson), name).toEqual(await values(t));
    }
  });

  const f32Entry = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const eight = new Uint8Array(8);
  const cases: [string, () => Uint8Array, RegExp][] = [
    ['a file shorter than 8 bytes', () => new Uint8Array(5), /^loadSafetensors: file is 5 bytes, too short for the 8-byte header length$/],
    ['a header length past the end', () => craft({}, eight, 1000), /^loadSafetensors: header length 1000 is larger than the 10 bytes that follow it/],
    ['a header length of 2^64 − 1', () => craft({}, eight, Number.MAX_SAFE_INTEGER), /^loadSafetensors: header length 9007199254740991 is larger than/],
    ['invalid UTF-8', () => { const b = craft('{"a":1}'); b[10] = 0xff; return b; }, /^loadSafetensors: header is not valid UTF-8$/],
    ['invalid JSON', () => craft('{"a": {'), /^loadSafetensors: header is not valid JSON/],
    ['a JSON array', () => craft('[1,2]'), /^loadSafetensors: header must be a JSON object, got an array/],
    ['an entry that is not an object', () => craft({ w: 3 }), /^loadSafetensors: tensor 'w': entry must be an object with dtype, shape and data_offsets/],
    ['a missing dtype', () => craft({ w: { shape: [2], data_offsets: [0, 8] } }, eight), /^loadSafetensors: tensor 'w': dtype must be a string, got undefined/],
    ['an unknown dtype', () => craft({ w: { ...f32Entry, dtype: 'F33' } }, eight), /^loadSafetensors: tensor 'w': unknown dtype 'F33'/],
    ['a dtype kiln lacks', () => craft({ w: { dtype: 'F8_E4M3', shape: [8], data_offsets: [0, 8] } }, eight), /^loadSafetensors: tensor 'w' has dtype F8_E4M3, which kiln cannot load/],
    ['a negative dim', () => craft({ w: { ...f32Entry, shape: [-2] } }, eight), /^loadSafetensors: tensor 'w': shape must be an array of non-negative integers, got \[-2\]/],
    ['a fractional dim', () => craft({ w: { ...f32Entry, shape: [1.5] } }, eight), /^loadSafetensors: tensor 'w': shape must be an array of non-negative integers/],
    ['offsets not a pair', () => craft({ w: { ...f32Entry, data_offsets: [0] } }, eight), /^loadSafetensors: tensor 'w': data_offsets must be \[begin, end\]/],
    ['begin after end', () => craft({ w: { ...f32Entry, data_offsets: [8, 0] } }, eight), /^loadSafetensors: tensor 'w': data_offsets must be \[begin, end\] with 0 ≤ begin ≤ end, got \[8,0\]/],
    ['offsets past the buffer', () => craft({ w: { ...f32Entry, data_offsets: [0, 16] } }, eight), /^loadSafetensors: tensor 'w': data_offsets \[0, 16\] run past the 8-byte data buffer/],
    ['a size that disagrees with dtype × shape', () => craft({ w: { ...f32Entry, shape: [3] } }, eight), /^loadSafetensors: tensor 'w': F32 \[3\] needs 12 bytes, data_offsets \[0, 8\] hold 8/],
    ['a gap between tensors', () => craft({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'U8', shape: [2], data_offsets: [6, 8] } }, eight), /^loadSafetensors: tensor 'b' starts at byte 6, leaving a gap after byte 4/],
    ['overlapping tensors', () => craft({ a: f32Entry, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, eight), /^loadSafetensors: tensor 'b' starts at byte 4, overlapping the tensor that ends at byte 8/],
    ['a first tensor not at 0', () => craft({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, eight), /^loadSafetensors: tensor 'a' starts at byte 4, leaving a gap after byte 0/],
    ['bytes after the last tensor', () => craft({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, eight), /^loadSafetensors: the tensors cover 4 bytes but the data buffer has 8 \(extra bytes at the end\)/],
    ['non-string metadata', () => craft({ __metadata__: { a: 1 } }), /^loadSafetensors: __metadata__ 'a' must be a string, got number/],
    ['an I64 that does not fit i32', () => craft({ n: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array([0, 0, 0, 0, 1, 0, 0, 0])), /^loadSafetensors: tensor 'n': I64 value 4294967296 at index 0 does not fit in i32/],
  ];
  for (const [what, bytes, message] of cases)
    it(`rejects ${what}, leaking nothing`, () => {
      const n0 = liveTensors();
      expect(() => loadSafetensors(bytes(), { backend })).toThrow(message);
      expect(liveTensors()).toBe(n0);
    });

  it('every truncation and any corrupted byte of a valid file gives a safetensors error or a valid load, never another failure', () => {
    const file = readFileSync(new URL('sample.safetensors', FIXTURES));
    for (let n = 0; n < file.length; n++)
      expect(() => loadSafetensors(file.subarray(0, n), { backend }), `truncated to ${n} bytes`).toThrow(/^loadSafetensors: /);
    fc.assert(
      fc.property(fc.nat(file.length - 1), fc.integer({ min: 0, max: 255 }), (at, byte) => {
        const b = new Uint8Array(file);
        b[at] = byte;
        try {
          for (const t of Object.values(loadSafetensors(b, { backend }).tensors)) t.dispose();
        } catch (e) {
          expect((e as Error).message).toMatch(/^loadSafetensors: /);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('save errors name the problem; a bad path names the file', () => {
    const a = tensor([1], { backend });
    expect(() => saveSafetensorsSync({ __metadata__: a })).toThrow(/^saveSafetensorsSync: '__metadata__' is reserved/);
    expect(() => saveSafetensorsSync({ a }, { k: 1 as unknown as string })).toThrow(/^saveSafetensorsSync: metadata 'k' must be a string, got number/);
    expect(() => saveSafetensorsSync({ a: [1] as unknown as Tensor })).toThrow(/^saveSafetensorsSync: 'a' is not a Tensor/);
    const gone = tensor([1], { backend });
    gone.dispose();
    expect(() => saveSafetensorsSync({ gone })).toThrow(/^saveSafetensorsSync: tensor 'gone' was disposed/);
    expect(() => loadSafetensors(join(scratch, 'missing.safetensors'))).toThrow(/^loadSafetensors: cannot read '.*missing.safetensors'/);
    const bad = tmpFile();
    writeFileSync(bad, craft('nope'));
    expect(() => loadSafetensors(bad)).toThrow(/^loadSafetensors: header is not valid JSON .* \(in '.*f.safetensors'\)$/);
  });
});

// ---- checkpoints ---------------------------------------------------------------------------

/** A two-layer MLP made of plain tensors, with the state-dict interface a Module has. */
class TinyMLP {
  readonly w1: Tensor;
  readonly b1: Tensor;
  readonly w2: Tensor;
  constructor(seed: number, backend: string) {
    const r = rng(seed);
    const init = (n: number, scale: number): number[] => Array.from({ length: n }, () => (r() * 2 - 1) * scale);
    this.w1 = tensor(init(4 * 8, 0.5), [4, 8], { backend, requiresGrad: true });
    this.b1 = tensor(init(8, 0.1), [8], { backend, requiresGrad: true });
    this.w2 = tensor(init(8 * 2, 0.5), [8, 2], { backend, requiresGrad: true });
  }
  stateDict(): Record<string, Tensor> {
    return { 'fc1.weight': this.w1, 'fc1.bias': this.b1, 'fc2.weight': this.w2 };
  }
  loadStateDict(s: Record<string, Tensor>): void {
    noGrad(() => {
      for (const [name, p] of Object.entries(this.stateDict())) {
        const src = s[name];
        if (!src) throw new Error(`TinyMLP.loadStateDict: missing '${name}'`);
        p.copy_(src);
      }
    });
  }
  /** Dropout on the hidden layer draws from `gen`, so the generator's state matters on resume. */
  forward(x: Tensor, gen: Generator): Tensor {
    return dropout(x.matmul(this.w1).add(this.b1).tanh(), 0.25, true, gen).matmul(this.w2);
  }
}

interface Run {
  model: TinyMLP;
  optimizer: AdamW;
  scheduler: LRScheduler;
  generator: Generator;
}

function newRun(backend: string, seed: number, genSeed: number): Run {
  const model = new TinyMLP(seed, backend);
  const optimizer = new AdamW([{ params: [model.w1, model.w2], weightDecay: 0.1 }, { params: [model.b1], weightDecay: 0 }], { lr: 0.01, betas: [0.9, 0.95] });
  const scheduler = new LRScheduler(optimizer, cosineLr({ warmupSteps: 3, totalSteps: 10, minLr: 1e-3 }));
  return { model, optimizer, scheduler, generator: new Generator(genSeed) };
}

function trainStep(run: Run, step: number, backend: string): void {
  const r = rng(1000 + step); // the batch of step t depends only on t
  tidy(() => {
    const x = tensor(Array.from({ length: 3 * 4 }, () => r() * 2 - 1), [3, 4], { backend });
    const y = tensor(Array.from({ length: 3 * 2 }, () => r() * 2 - 1), [3, 2], { backend });
    run.model.forward(x, run.generator).sub(y).square().mean().backward();
  });
  clipGradNorm([run.model.w1, run.model.b1, run.model.w2], 0.5).dispose();
  run.optimizer.step();
  run.optimizer.zeroGrad();
  run.scheduler.step();
}

const snapshot = async (run: Run): Promise<Uint8Array[]> =>
  Promise.all([
    ...Object.values(run.model.stateDict()).map(rawBytes),
    ...Object.values(run.optimizer.stateDict().state).flatMap((s) => Object.values(s.tensors).map(rawBytes)),
  ]);

describeBackends('checkpoints', (backend) => {
  it('10 steps straight equal 5 steps, save, load into fresh objects, 5 more steps — bit for bit', async () => {
    const straight = newRun(backend, 1, 42);
    for (let t = 0; t < 10; t++) trainStep(straight, t, backend);

    const first = newRun(backend, 1, 42);
    for (let t = 0; t < 5; t++) trainStep(first, t, backend);
    const file = tmpFile('run.safetensors');
    expect(await saveCheckpoint(file, { ...first, step: 5, extra: { data: { epoch: 0, cursor: 15 } } })).toBe(file);

    const resumed = newRun(backend, 2, 7); // different weights, generator and (fresh) optimizer state
    const n0 = liveTensors();
    const info = await loadCheckpoint(file, resumed);
    expect(liveTensors()).toBe(n0 + 6); // the optimizer state of 3 parameters, nothing else
    expect(info).toEqual({ step: 5, extra: { data: { epoch: 0, cursor: 15 } }, path: file });
    expect(resumed.generator.getState()).toEqual(first.generator.getState());
    expect(resumed.scheduler.stateDict()).toEqual(first.scheduler.stateDict());
    expect(resumed.optimizer.paramGroups.map((g) => g.lr)).toEqual(first.optimizer.paramGroups.map((g) => g.lr));
    expect(await snapshot(resumed)).toEqual(await snapshot(first));
    for (let t = 5; t < 10; t++) trainStep(resumed, t, backend);

    expect(await snapshot(resumed)).toEqual(await snapshot(straight));
    expect(resumed.optimizer.stateOf(resumed.model.w1)!.step).toBe(10);
    expect(resumed.generator.getState()).toEqual(straight.generator.getState());
  });

  it('a directory path holds checkpoint.safetensors, a valid safetensors file with the model under model.*', async () => {
    const dir = join(scratch, `dir-${++fileCount}`);
    const run = newRun(backend, 3, 1);
    trainStep(run, 0, backend);
    const file = await saveCheckpoint(`${dir}/`, { model: run.model, step: 1 });
    expect(file).toBe(join(dir, 'checkpoint.safetensors'));
    const { tensors, metadata } = loadSafetensors(file, { backend });
    expect(Object.keys(tensors).sort()).toEqual(['model.fc1.bias', 'model.fc1.weight', 'model.fc2.weight']);
    expect(Object.keys(metadata).sort()).toEqual(['kiln.checkpoint', 'kiln.crc32']);
    expect(await rawBytes(tensors['model.fc1.weight']!)).toEqual(await rawBytes(run.model.w1));
    const fresh = newRun(backend, 4, 1);
    expect((await loadCheckpoint(dir, { model: fresh.model })).step).toBe(1);
    expect(await rawBytes(fresh.model.w2)).toEqual(await rawBytes(run.model.w2));
    // asking for what the checkpoint lacks is an error, before anything is restored
    await expect(loadCheckpoint(dir, { model: fresh.model, optimizer: fresh.optimizer })).rejects.toThrow(/^loadCheckpoint: '.*checkpoint.safetensors' has no optimizer state/);
    await expect(loadCheckpoint(dir, { model: fresh.model, generator: fresh.generator })).rejects.toThrow(/has no generator state/);
    for (const t of Object.values(tensors)) t.dispose();
  });

  it('a write that fails midway leaves the previous checkpoint intact and no temporary file', async () => {
    const file = tmpFile('ckpt.safetensors');
    const run = newRun(backend, 5, 5);
    trainStep(run, 0, backend);
    await saveCheckpoint(file, { ...run, step: 1 });
    const before = readFileSync(file);
    trainStep(run, 1, backend);
    const failing = async (fh: import('node:fs/promises').FileHandle, data: Uint8Array): Promise<void> => {
      await fh.write(data, 0, data.length >> 1);
      throw new Error('disk full (simulated)');
    };
    await expect(saveCheckpoint(file, { ...run, step: 2 }, { write: failing })).rejects.toThrow('disk full (simulated)');
    expect(readFileSync(file)).toEqual(before);
    expect(readdirSync(join(file, '..'))).toEqual(['ckpt.safetensors']);
    // a crash after the temporary file was written but before the rename: the target is untouched
    writeFileSync(join(file, '..', '.ckpt.safetensors.99999.1.tmp'), before.subarray(0, 100));
    const fresh = newRun(backend, 6, 6);
    expect((await loadCheckpoint(file, fresh)).step).toBe(1);
  });

  it('a failed load leaves the model, optimizer, scheduler and generator exactly as they were (another optimizer kind, a bad model)', async () => {
    const file = tmpFile('all-or-nothing.safetensors');
    const run = newRun(backend, 11, 11);
    trainStep(run, 0, backend);
    await saveCheckpoint(file, { ...run, step: 1 });
    // the targets: trained differently, with an SGD optimizer (the checkpoint holds AdamW state)
    const target = newRun(backend, 12, 12);
    trainStep(target, 0, backend);
    trainStep(target, 1, backend);
    const sgd = new SGD([target.model.w1, target.model.b1, target.model.w2], { lr: 0.1, momentum: 0.9 });
    const snapshot = async (): Promise<unknown> => ({
      model: await Promise.all(Object.entries(target.model.stateDict()).map(async ([k, t]) => [k, Array.from(await t.data())])),
      adam: await Promise.all(Object.values(target.optimizer.stateDict().state).flatMap((st) => Object.values(st.tensors).map(async (t) => Array.from(await t.data())))),
      sched: target.scheduler.stateDict(),
      gen: target.generator.getState(),
    });
    const before = await snapshot();
    await expect(loadCheckpoint(file, { model: target.model, optimizer: sgd, scheduler: target.scheduler, generator: target.generator })).rejects.toThrow(
      /^loadCheckpoint: '.*all-or-nothing.safetensors' does not fit the targets, which are unchanged: SGD.loadStateDict: the state dict is from a AdamW optimizer/,
    );
    expect(await snapshot()).toEqual(before);
    // a model of other sizes: refused before anything changes
    await expect(loadCheckpoint(file, { ...target, model: { stateDict: () => ({}), loadStateDict: () => { throw new Error('nope'); } } })).rejects.toThrow(/does not fit the targets, which are unchanged: nope/);
    expect(await snapshot()).toEqual(before);
  });

  it('corrupt or foreign files give clear errors', async () => {
    const file = tmpFile('c.safetensors');
    const run = newRun(backend, 8, 8);
    trainStep(run, 0, backend);
    await saveCheckpoint(file, { ...run, step: 1 });
    const good = readFileSync(file);
    const fresh = newRun(backend, 9, 9);
    const n0 = liveTensors();
    const flipped = new Uint8Array(good);
    flipped[flipped.length - 3]! ^= 0x10;
    writeFileSync(file, flipped);
    await expect(loadCheckpoint(file, fresh)).rejects.toThrow(/^loadCheckpoint: '.*c.safetensors' is corrupt or not a checkpoint: checksum mismatch \(header and data crc32 [0-9a-f]{8}, recorded [0-9a-f]{8}\): the file is corrupt or was edited/);
    // an edited header (the step, a learning rate) is caught too: the checksum covers it
    const text = new TextDecoder('latin1').decode(good);
    // the metadata JSON sits inside the header JSON as a string: its quotes are escaped
    expect(text).toContain('\\"step\\":1,');
    const edited = Uint8Array.from(text.replace('\\"step\\":1,', '\\"step\\":7,'), (ch) => ch.charCodeAt(0));
    expect(edited.length).toBe(good.length);
    writeFileSync(file, edited);
    await expect(loadCheckpoint(file, fresh)).rejects.toThrow(/checksum mismatch \(header and data crc32/);
    writeFileSync(file, good.subarray(0, good.length - 10));
    await expect(loadCheckpoint(file, fresh)).rejects.toThrow(/is corrupt or not a checkpoint: safetensors: tensor '.*': data_offsets \[\d+, \d+\] run past the \d+-byte data buffer/);
    writeFileSync(file, good.subarray(0, 20));
    await expect(loadCheckpoint(file, fresh)).rejects.toThrow(/is corrupt or not a checkpoint: safetensors: header length \d+ is larger than the 12 bytes/);
    const one = tensor([1], { backend });
    await saveSafetensors(file, { w: one });
    one.dispose();
    await expect(loadCheckpoint(file, fresh)).rejects.toThrow(/is corrupt or not a checkpoint: not a kiln checkpoint \(no 'kiln.checkpoint' metadata\)/);
    await expect(loadCheckpoint(join(scratch, 'nothing-here.safetensors'), fresh)).rejects.toThrow(/^loadCheckpoint: cannot read '.*nothing-here.safetensors'/);
    expect(liveTensors()).toBe(n0);
    // the fresh run was not touched by any failed load
    expect(fresh.optimizer.stateOf(fresh.model.w1)).toBeUndefined();
    await expect(saveCheckpoint(file, { model: run.model, step: -1 })).rejects.toThrow(/^saveCheckpoint: step must be a non-negative integer, got -1/);
  });
});

it('writeFileAtomic replaces a file; a failing writer removes its temporary file (async and sync)', async () => {
  const file = tmpFile('atomic.bin');
  await writeFileAtomic(file, new Uint8Array([1, 2, 3]));
  expect([...readFileSync(file)]).toEqual([1, 2, 3]);
  writeFileAtomicSync(file, new Uint8Array([4]));
  expect([...readFileSync(file)]).toEqual([4]);
  await expect(writeFileAtomic(file, new Uint8Array(10), { write: async () => Promise.reject(new Error('boom')) })).rejects.toThrow('boom');
  expect(() => writeFileAtomicSync(file, new Uint8Array(10), { write: () => { throw new Error('bang'); } })).toThrow('bang');
  expect([...readFileSync(file)]).toEqual([4]);
  expect(readdirSync(join(file, '..'))).toEqual(['atomic.bin']);
});

it('crc32 is the zlib checksum', () => {
  expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  expect(crc32(new Uint8Array(0))).toBe(0);
});
