/**
 * Fuzzing `loadHFGPT2` and `hfGPT2Config`: a tiny Hugging Face GPT-2 folder (model.safetensors,
 * tied or with its own `lm_head.weight`, with or without the `transformer.` prefix, and
 * config.json) with edits: entry names (layer indices past any model, `h.01`, prototype
 * names, both prefixes), shapes (zero sizes, transposed Conv1D weights, extra dimensions),
 * dtypes, missing and extra entries, every config.json field (wrong types, extreme numbers,
 * head counts that do not divide, deep nesting), config.json's bytes, and the caller's config;
 * then byte corruptions of the weights. Either the model loads with the config `hfGPT2Config`
 * gives and the file's values in every parameter, or both calls throw the same problem, with
 * their own prefix, leaving no tensor behind and allocating no more than the file implies.
 * @module
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { GPT, Generator, hfGPT2Config, hfGPT2StateDict, loadHFGPT2, type GPTConfig } from '../../src/index.js';
import {
  FORMAT_SIZES,
  Pairs,
  applyByteEdit,
  attempt,
  byteEdit,
  concat,
  erase,
  expectThat,
  fresh,
  isPlainObject,
  jsonText,
  largestAllocation,
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

const BACKENDS = loadBackends();
const DIR = scratchDir('hf-gpt2');
const WEIGHTS = join(DIR, 'model.safetensors');
const CONFIG = join(DIR, 'config.json');

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

const CFG = { vocabSize: 5, blockSize: 4, nLayer: 2, nHead: 2, nEmbd: 4 };

/** The entries of a tiny GPT-2 in Hugging Face's layout (f32), tied or not. */
function baseEntries(tiedHead: boolean): Entry[] {
  const model = new GPT({ ...CFG, tiedHead }, { backend: BACKENDS[0], generator: new Generator(tiedHead ? 1 : 2) });
  const sd = hfGPT2StateDict(model);
  const entries = Object.entries(sd).map(([name, t]) => {
    const s = t.backend.readSync!(t._storage('fuzz'));
    return { name, dtype: 'F32', shape: [...t.shape], data: new Uint8Array(s.buffer.slice(s.byteOffset, s.byteOffset + t.size * 4)) };
  });
  for (const t of Object.values(sd)) t.dispose();
  model.dispose();
  return entries;
}

const BASES = [baseEntries(true), baseEntries(false)];
const CONFIG_JSON: Record<string, unknown> = {
  model_type: 'gpt2',
  vocab_size: 5,
  n_positions: 4,
  n_ctx: 4,
  n_embd: 4,
  n_layer: 2,
  n_head: 2,
  layer_norm_epsilon: 1e-5,
  activation_function: 'gelu_new',
  tie_word_embeddings: true,
};

const NAMES = [
  'h.99999999999.ln_1.weight',
  'h.4294967295.attn.bias',
  'h.9007199254740993.attn.masked_bias',
  `h.${'9'.repeat(400)}.attn.bias`,
  'h.2.attn.bias',
  'h.01.ln_1.weight',
  'h.-1.ln_1.weight',
  'h.1e3.ln_1.weight',
  'h.0.attn.bias',
  'h.0.__proto__',
  'transformer.wte.weight',
  'transformer.h.0.ln_1.weight',
  'lm_head.weight',
  'transformer.lm_head.weight',
  '__proto__',
  'constructor',
  'wte.weight',
  'ln_f.bias',
];
const CONFIG_FIELDS = ['n_head', 'n_positions', 'n_embd', 'n_layer', 'vocab_size', 'layer_norm_epsilon', 'activation_function', 'tie_word_embeddings', 'n_inner', 'scale_attn_weights', 'scale_attn_by_inverse_layer_idx', '__proto__'];

/** An edit of the folder; entry indices are taken modulo the count. */
export type HFEdit =
  | { kind: 'rename'; entry: number; name: string }
  | { kind: 'add'; name: string; dtype: string; shape: number[]; seed: number }
  | { kind: 'drop'; entry: number }
  | { kind: 'shape'; entry: number; shape: number[]; seed: number }
  | { kind: 'dtype'; entry: number; dtype: string; seed: number }
  | { kind: 'transpose'; entry: number }
  | { kind: 'resize'; dim: 'embd' | 'vocab' | 'block'; size: number }
  | { kind: 'noLayers' }
  | { kind: 'prefix' }
  | { kind: 'headIsWte' }
  | { kind: 'config'; field: string; value: unknown }
  | { kind: 'configDelete'; field: string }
  | { kind: 'configWhole'; value: unknown };

const shapeArb = fc.oneof(fc.constantFrom([5, 4], [4, 4], [4], [4, 12], [12, 4], [0], [0, 4], [5, 0], [4, 16, 1], []).map((s) => [...s]), fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 3 }));
const dtypeArb = fc.constantFrom('F32', 'F16', 'BF16', 'F64', 'I32', 'U8', 'I64', 'F8_E4M3', 'BOOL');

export const hfEditArb: fc.Arbitrary<HFEdit> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('rename' as const), entry: fc.nat(), name: fc.constantFrom(...NAMES) }), weight: 2 },
  fc.record({ kind: fc.constant('add' as const), name: fc.constantFrom(...NAMES), dtype: dtypeArb, shape: shapeArb, seed: fc.nat() }),
  fc.record({ kind: fc.constant('drop' as const), entry: fc.nat() }),
  fc.record({ kind: fc.constant('shape' as const), entry: fc.nat(), shape: shapeArb, seed: fc.nat() }),
  fc.record({ kind: fc.constant('dtype' as const), entry: fc.nat(), dtype: dtypeArb, seed: fc.nat() }),
  fc.record({ kind: fc.constant('transpose' as const), entry: fc.nat() }),
  fc.record({ kind: fc.constant('resize' as const), dim: fc.constantFrom('embd' as const, 'vocab' as const, 'block' as const), size: fc.constantFrom(0, 1, 2, 3, 6, 8) }),
  fc.constant({ kind: 'noLayers' as const }),
  fc.constant({ kind: 'prefix' as const }),
  fc.constant({ kind: 'headIsWte' as const }),
  { arbitrary: fc.record({ kind: fc.constant('config' as const), field: fc.constantFrom(...CONFIG_FIELDS), value: fc.oneof(nastyValue, fc.constantFrom(0, 1, 2, 3, 4, 8, 16, 'gelu', 'gelu_new', 'relu', 'quick_gelu', true, false, null)) }), weight: 3 },
  fc.record({ kind: fc.constant('configDelete' as const), field: fc.constantFrom(...CONFIG_FIELDS) }),
  fc.record({ kind: fc.constant('configWhole' as const), value: nastyValue }),
);

/** Bytes of `shape` × `dtype`, spread from `seed` (floats stay finite and small for F32). */
function fill(dtype: string, shape: readonly number[], seed: number): Uint8Array {
  const n = shape.reduce((p, d) => p * d, 1);
  const out = new Uint8Array(n * (FORMAT_SIZES[dtype] ?? 4));
  if (dtype === 'F32') {
    const f = new Float32Array(out.buffer);
    for (let i = 0; i < n; i++) f[i] = Math.sin(seed + i) * 0.1;
  } else for (let i = 0; i < out.length; i++) out[i] = (seed * 31 + i * 17) & 0xff;
  return out;
}

/** Resize one model dimension everywhere it appears (the data refilled), so the file stays self-consistent. */
function resize(entries: Entry[], dim: 'embd' | 'vocab' | 'block', size: number): void {
  const C = CFG.nEmbd;
  for (const e of entries) {
    const base = e.name.replace(/^transformer\./, '');
    let shape = e.shape;
    if (dim === 'embd') shape = shape.map((d) => (d === C ? size : d === 3 * C ? 3 * size : d === 4 * C ? 4 * size : d));
    else if (dim === 'vocab' && (base === 'wte.weight' || base === 'lm_head.weight')) shape = [size, shape[1]!];
    else if (dim === 'block' && base === 'wpe.weight') shape = [size, shape[1]!];
    e.shape = shape;
    e.data = fill(e.dtype, shape, e.name.length);
  }
}

interface Folder {
  weights: Uint8Array;
  /** config.json's bytes; null: none. */
  config: Uint8Array | null;
}

export function buildFolder(base: number, edits: readonly HFEdit[], withConfig: boolean, weightEdits: readonly ByteEdit[], configEdits: readonly ByteEdit[]): Folder {
  const entries: Entry[] = BASES[base]!.map((e) => ({ ...e, shape: [...e.shape], data: e.data.slice() }));
  let config: unknown = structuredClone(CONFIG_JSON);
  if (base === 1 && isPlainObject(config)) config.tie_word_embeddings = false;
  for (const e of fresh(edits)) {
    const k = entries.length === 0 ? -1 : 'entry' in e ? e.entry % entries.length : -1;
    const cfg = isPlainObject(config) ? config : null;
    switch (e.kind) {
      case 'rename':
        if (k >= 0) entries[k]!.name = e.name;
        break;
      case 'add':
        entries.push({ name: e.name, dtype: e.dtype, shape: e.shape, data: fill(e.dtype, e.shape, e.seed) });
        break;
      case 'drop':
        if (k >= 0) entries.splice(k, 1);
        break;
      case 'shape':
        if (k >= 0) Object.assign(entries[k]!, { shape: e.shape, data: fill(entries[k]!.dtype, e.shape, e.seed) });
        break;
      case 'dtype':
        if (k >= 0) Object.assign(entries[k]!, { dtype: e.dtype, data: fill(e.dtype, entries[k]!.shape, e.seed) });
        break;
      case 'transpose':
        if (k >= 0 && entries[k]!.shape.length === 2) entries[k]!.shape = [entries[k]!.shape[1]!, entries[k]!.shape[0]!];
        break;
      case 'resize':
        resize(entries, e.dim, e.size);
        break;
      case 'noLayers':
        for (let i = entries.length - 1; i >= 0; i--) if (/^(transformer\.)?h\./.test(entries[i]!.name)) entries.splice(i, 1);
        break;
      case 'prefix':
        for (const x of entries) if (x.name !== 'lm_head.weight') x.name = `transformer.${x.name}`;
        break;
      case 'headIsWte': {
        const wte = entries.find((x) => /^(transformer\.)?wte\.weight$/.test(x.name));
        if (wte) entries.push({ ...wte, name: 'lm_head.weight', data: wte.data.slice() });
        break;
      }
      case 'config':
        if (cfg) setOwn(cfg, e.field, e.value);
        break;
      case 'configDelete':
        if (cfg) delete cfg[e.field];
        break;
      case 'configWhole':
        config = e.value;
        break;
    }
  }
  const pairs: [string, unknown][] = [['__metadata__', { format: 'pt' }]];
  let at = 0;
  for (const e of entries) {
    pairs.push([e.name, { dtype: e.dtype, shape: e.shape, data_offsets: [at, at + e.data.length] }]);
    at += e.data.length;
  }
  let weights = safetensorsBytes(jsonText(new Pairs(pairs)), concat(...entries.map((e) => e.data)));
  for (const b of weightEdits) weights = applyByteEdit(weights, b);
  let configBytes: Uint8Array | null = withConfig ? new TextEncoder().encode(jsonText(config)) : null;
  if (configBytes) for (const b of configEdits) configBytes = applyByteEdit(configBytes, b);
  return { weights, config: configBytes };
}

/** What the caller passes as `config`. */
const givenArb: fc.Arbitrary<Partial<GPTConfig>> = fc.oneof(
  { arbitrary: fc.constant({ nHead: 2 }), weight: 6 },
  { arbitrary: fc.constant({}), weight: 2 },
  fc.constantFrom<Partial<GPTConfig>>({ nHead: 3 }, { nHead: 1 }, { nHead: 4, nEmbd: 4 }, { nHead: 2, vocabSize: 6 }, { nHead: 2, tiedHead: true }, { nHead: 2, tiedHead: false }, { nHead: 2, activation: 'gelu' }, { nHead: 2, dropout: 0.1 }),
);

const sameMessage = (load: string, config: string): boolean =>
  load.replace(/^loadHFGPT2: /, '').replace(/ \(in '[^']*'\)$/, '') === config.replace(/^hfGPT2Config: /, '').replace(/ \(in '[^']*'\)$/, '');

/** IEEE half-precision bits as a number. */
function half(h: number): number {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
}

/** The values of a float entry of the file, read from the format's definition. */
function fileValues(weights: Uint8Array, name: string): { dtype: string; values: number[] } | undefined {
  const parts = splitSafetensors(weights)!;
  const header = JSON.parse(parts.header) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const e = Object.hasOwn(header, name) ? header[name] : undefined;
  if (!e) return undefined;
  const raw = parts.data.subarray(e.data_offsets[0], e.data_offsets[1]);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const size = FORMAT_SIZES[e.dtype]!;
  const values: number[] = [];
  for (let o = 0; o < raw.length; o += size)
    values.push(
      e.dtype === 'F32' ? dv.getFloat32(o, true)
      : e.dtype === 'F64' ? dv.getFloat64(o, true)
      : e.dtype === 'F16' ? half(dv.getUint16(o, true))
      : new Float32Array(new Uint32Array([dv.getUint16(o, true) << 16]).buffer)[0]!,
    );
  return { dtype: e.dtype, values };
}

/** Every parameter of `model` holds the file's value, cast to the model's dtype. */
function checkWeights(model: GPT, weights: Uint8Array): void {
  const mine = hfGPT2StateDict(model);
  try {
    for (const [name, t] of Object.entries(mine)) {
      // an untied head without lm_head.weight in the file starts from wte
      const src = fileValues(weights, name) ?? fileValues(weights, `transformer.${name}`) ?? (name === 'lm_head.weight' ? (fileValues(weights, 'wte.weight') ?? fileValues(weights, 'transformer.wte.weight')) : undefined);
      expectThat(src !== undefined, `the model has '${name}', the file has no such entry`);
      const got = t.dataSync() as ArrayLike<number>;
      expectThat(got.length === src.values.length, `'${name}' has ${got.length} values, the file ${src.values.length}`);
      for (let i = 0; i < got.length; i++) {
        const want = t.dtype === 'f32' ? Math.fround(src.values[i]!) : src.values[i]!;
        expectThat(Object.is(got[i], want) || (Number.isNaN(want) && Number.isNaN(got[i]!)), () => `'${name}'[${i}] is ${got[i]}, the file has ${want} (${src.dtype})`);
      }
    }
  } finally {
    for (const t of Object.values(mine)) t.dispose();
  }
}

interface EditedCase {
  base: number;
  edits: HFEdit[];
  /** Read from a path (with config.json when `withConfig`), or from the bytes. */
  fromPath: boolean;
  withConfig: boolean;
  weightEdits: ByteEdit[];
  configEdits: ByteEdit[];
  given: Partial<GPTConfig>;
  backend: string;
  dtype: 'f32' | 'f64';
}

const edited: Fuzzer<EditedCase> = {
  parser: 'hf_gpt2',
  name: 'loadHFGPT2 / hfGPT2Config: a tiny GPT-2 folder (weights + config.json) with edits',
  arb: fc.record({
    base: fc.nat({ max: BASES.length - 1 }),
    edits: fc.array(hfEditArb, { maxLength: 3 }),
    fromPath: fc.boolean(),
    withConfig: fc.boolean(),
    weightEdits: fc.oneof({ arbitrary: fc.constant<ByteEdit[]>([]), weight: 5 }, { arbitrary: fc.array(byteEdit, { minLength: 1, maxLength: 2 }), weight: 1 }),
    configEdits: fc.oneof({ arbitrary: fc.constant<ByteEdit[]>([]), weight: 5 }, { arbitrary: fc.array(byteEdit, { minLength: 1, maxLength: 2 }), weight: 1 }),
    given: givenArb,
    backend: fc.constantFrom(...BACKENDS),
    dtype: fc.constantFrom('f32' as const, 'f64' as const),
  }),
  check(c) {
    const folder = buildFolder(c.base, c.edits, c.withConfig, c.weightEdits, c.configEdits);
    checkFolder(folder, c);
  },
};

/** One case: read the folder both ways; the contract of the module comment. */
function checkFolder(folder: Folder, c: Pick<EditedCase, 'fromPath' | 'given' | 'backend' | 'dtype'>): void {
  let source: string | Uint8Array = folder.weights;
  if (c.fromPath) {
    writeFileSync(WEIGHTS, folder.weights);
    if (folder.config) writeFileSync(CONFIG, folder.config);
    else if (existsSync(CONFIG)) rmSync(CONFIG);
    source = WEIGHTS;
  }
  const before = liveTensors();
  const config = attempt(() => hfGPT2Config(source, c.given), ['hfGPT2Config: ']);
  expectThat(liveTensors() === before, 'hfGPT2Config made tensors');
  largestAllocation();
  const load = attempt(() => loadHFGPT2(source, { config: c.given, backend: c.backend, dtype: c.dtype }), ['loadHFGPT2: ']);
  const allocated = largestAllocation();
  // F16 weights in an f64 model: 4 bytes per file byte at most
  expectThat(allocated <= 4 * folder.weights.length + 4096, `allocated ${allocated} bytes for a ${folder.weights.length}-byte file`);
  if (!load.ok) {
    expectThat(liveTensors() === before, `a failed load left ${liveTensors() - before} tensors alive: ${load.error.message}`);
    if (!config.ok) expectThat(sameMessage(load.error.message, config.error.message), () => `hfGPT2Config said '${config.error.message}', loadHFGPT2 '${load.error.message}'`);
    else expectThat(false, () => `hfGPT2Config accepted what loadHFGPT2 refused: ${load.error.message}`);
    return;
  }
  const model = load.value;
  try {
    expectThat(config.ok, () => `loadHFGPT2 accepted what hfGPT2Config refused: ${config.ok ? '' : config.error.message}`);
    for (const [k, v] of Object.entries(config.value)) expectThat((model.config as Record<string, unknown>)[k] === v, () => `config.${k} is ${String((model.config as Record<string, unknown>)[k])}, hfGPT2Config says ${String(v)}`);
    checkWeights(model, folder.weights);
  } finally {
    model.dispose();
  }
  expectThat(liveTensors() === before, `disposing the model left ${liveTensors() - before} tensors alive`);
}

interface ArbitraryCase {
  weights: Uint8Array;
  config: unknown;
  fromPath: boolean;
  backend: string;
}

const arbitrary: Fuzzer<ArbitraryCase> = {
  parser: 'hf_gpt2',
  name: 'loadHFGPT2 / hfGPT2Config: arbitrary bytes as weights, arbitrary JSON as config.json',
  arb: fc.record({
    weights: fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.constant(buildFolder(0, [], false, [], []).weights)),
    config: fc.oneof(fc.jsonValue(), nastyValue, fc.dictionary(fc.constantFrom(...CONFIG_FIELDS), fc.oneof(fc.jsonValue(), nastyValue))),
    fromPath: fc.boolean(),
    backend: fc.constantFrom(...BACKENDS),
  }),
  check({ weights, config, fromPath, backend }) {
    checkFolder({ weights, config: new TextEncoder().encode(jsonText(config)) }, { fromPath, given: { nHead: 2 }, backend, dtype: 'f32' });
  },
};

export const fuzzers: Fuzzer<unknown>[] = [erase(edited), erase(arbitrary)];
