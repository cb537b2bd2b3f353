/**
 * Hugging Face GPT-2 weights: load a `model.safetensors` of `GPT2Model` / `GPT2LMHeadModel`
 * into kiln's {@link GPT}, and export a GPT in that layout.
 *
 * The two differ in names and in one layout. Names: Hugging Face's are kiln's without the
 * `transformer.` prefix (`wte.weight`, `h.0.attn.c_attn.weight`, `ln_f.bias`; files saved from
 * `GPT2LMHeadModel` keep the prefix, and either loads). Layout: GPT-2's projections are
 * `Conv1D` layers whose weight is `[in, out]` (y = x·W + b), the transpose of `nn.Linear`'s
 * `[out, in]` that kiln uses, so `attn.c_attn` `[C, 3C]`, `attn.c_proj` `[C, C]`, `mlp.c_fc`
 * `[C, 4C]` and `mlp.c_proj` `[4C, C]` are transposed on the way in and out. Older files also
 * carry the causal-mask buffers `h.N.attn.bias` and `h.N.attn.masked_bias`, which are ignored;
 * `lm_head.weight` is usually absent (tied to `wte.weight`).
 *
 * What no tensor size shows (the head count, the GELU variant, the layer-norm epsilon, whether
 * the head is tied) comes from the `config.json` that Hugging Face keeps beside the weights:
 * {@link loadHFGPT2} reads it, {@link saveHFGPT2} writes it.
 * @module
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DType } from '../backend/dtype.js';
import { noGrad } from '../autograd/tape.js';
import { tidy } from '../tensor/memory.js';
import { clone } from '../tensor/ops/elementwise.js';
import { transpose } from '../tensor/ops/shape_ops.js';
import type { Generator } from '../tensor/random.js';
import { fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { GPT, type GPTConfig } from '../nn/gpt.js';
import type { MLPActivation } from '../nn/mlp.js';
import { relabel } from '../tensor/ops/util.js';
import { checkBoolean, checkChoice, checkKeys, checkNumber, show } from '../tensor/validate.js';
import { writeFileAtomic } from './atomic.js';
import { describeJSON } from './describe.js';
import { makeTensors, parseHeader, saveSafetensors, type SafetensorsEntry, type SafetensorsHeader, type SafetensorsMetadata } from './safetensors.js';

/** Options of {@link loadHFGPT2}. */
export interface LoadHFGPT2Options {
  /**
   * The model's shape, wholly or in part. When the weights are a path with a `config.json`
   * beside them, that file gives `nHead` (`n_head`), `blockSize` (`n_positions`), `nEmbd`,
   * `nLayer`, `vocabSize`, `layerNormEps` (`layer_norm_epsilon`), `activation`
   * (`activation_function`) and `tiedHead` (`tie_word_embeddings`), as far as it has them, and
   * what is given here must agree with it. The sizes are also read from the tensors and must
   * match. `nHead`, which no tensor size shows, must come from config.json or from here.
   * Without either, `activation` is `'gelu_tanh'` and `layerNormEps` 1e-5 (GPT-2's) and
   * `tiedHead` is read from the file (tied when `lm_head.weight` is absent or equal to
   * `wte.weight`). Only `dropout` and `window` are free to choose (config.json's `*_pdrop` are
   * not read; default 0 and no window: a sliding window changes what the loaded model attends
   * to, not its weights); `bias` must be true, `rope` false and `kvHeads`, when given, `nHead`
   * (GPT-2 has biases, learned positions and a k and v head per query head).
   */
  config?: Partial<GPTConfig>;
  /** Backend of the model's parameters (the default backend when omitted). */
  backend?: string;
  /** Parameter dtype (default f32); the file's values are cast to it. */
  dtype?: DType;
  /** Random stream of the model's dropout (and of its initialisation, which the file overwrites). */
  generator?: Generator;
}

/** Options of {@link hfGPT2StateDict}, {@link hfGPT2Gradients} and {@link saveHFGPT2}. */
export interface HFGPT2StateDictOptions {
  /**
   * Prefix of the transformer's names: '' (default) as `GPT2Model` and the released `gpt2`
   * files, or `'transformer.'` as `GPT2LMHeadModel.save_pretrained` writes. Either loads into
   * `GPT2LMHeadModel.from_pretrained`.
   */
  prefix?: '' | 'transformer.';
}

/** kiln names (after `transformer.`) of the Conv1D weights, which Hugging Face stores `[in, out]`. */
const CONV1D = ['attn.c_attn.weight', 'attn.c_proj.weight', 'mlp.c_fc.weight', 'mlp.c_proj.weight'];
/** `h.<layer>.<entry>`, the layer written as PyTorch writes it (no sign, no leading zeros). */
const BLOCK = /^h\.(0|[1-9]\d*)\.(.+)$/;
const BLOCK_ENTRIES = [
  'ln_1.weight',
  'ln_1.bias',
  'attn.c_attn.weight',
  'attn.c_attn.bias',
  'attn.c_proj.weight',
  'attn.c_proj.bias',
  'ln_2.weight',
  'ln_2.bias',
  'mlp.c_fc.weight',
  'mlp.c_fc.bias',
  'mlp.c_proj.weight',
  'mlp.c_proj.bias',
];
/** Per-layer buffers of older GPT-2 files: the causal mask and the masking constant. */
const IGNORED = ['attn.bias', 'attn.masked_bias'];
const FLOAT_FILE_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16']);

const isConv1D = (name: string): boolean => CONV1D.some((c) => name.endsWith(`.${c}`));

/** The Hugging Face name (without prefix) of a GPT-2 parameter, from its kiln name. */
function hfName(kilnName: string): string {
  return kilnName.startsWith('transformer.') ? kilnName.slice('transformer.'.length) : kilnName;
}

/** Shapes of every entry a GPT-2 of `c` has in a Hugging Face file (without prefix), in file order. */
function hfShapes(c: Required<Pick<GPTConfig, 'vocabSize' | 'blockSize' | 'nLayer' | 'nEmbd'>>): Map<string, number[]> {
  const C = c.nEmbd;
  const out = new Map<string, number[]>([
    ['wte.weight', [c.vocabSize, C]],
    ['wpe.weight', [c.blockSize, C]],
  ]);
  const block: Record<string, number[]> = {
    'ln_1.weight': [C],
    'ln_1.bias': [C],
    'attn.c_attn.weight': [C, 3 * C],
    'attn.c_attn.bias': [3 * C],
    'attn.c_proj.weight': [C, C],
    'attn.c_proj.bias': [C],
    'ln_2.weight': [C],
    'ln_2.bias': [C],
    'mlp.c_fc.weight': [C, 4 * C],
    'mlp.c_fc.bias': [4 * C],
    'mlp.c_proj.weight': [4 * C, C],
    'mlp.c_proj.bias': [C],
  };
  for (let i = 0; i < c.nLayer; i++) for (const n of BLOCK_ENTRIES) out.set(`h.${i}.${n}`, block[n]!);
  out.set('ln_f.weight', [C]);
  out.set('ln_f.bias', [C]);
  return out;
}

/**
 * Hugging Face's `activation_function` values whose math kiln's MLP computes. The tanh ones are
 * 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) written out differently (`gelu_fast` rounds √(2/π)
 * to 0.7978845608, a relative 4e-12 off); the others (`gelu_10` clips, `quick_gelu` is
 * x·σ(1.702·x), relu, silu, …) are not GELUs kiln has, and loading them is an error.
 */
const HF_ACTIVATIONS = new Map<string, MLPActivation>([
  ['gelu_new', 'gelu_tanh'],
  ['gelu_pytorch_tanh', 'gelu_tanh'],
  ['gelu_fast', 'gelu_tanh'],
  ['gelu_accurate', 'gelu_tanh'],
  ['gelu', 'gelu'],
  ['gelu_python', 'gelu'],
]);

type HFField = 'size' | 'eps' | 'activation' | 'boolean';
/** config.json fields → GPTConfig keys, and what each must hold. */
const HF_FIELDS = [
  ['n_head', 'nHead', 'size'],
  ['n_positions', 'blockSize', 'size'],
  ['n_embd', 'nEmbd', 'size'],
  ['n_layer', 'nLayer', 'size'],
  ['vocab_size', 'vocabSize', 'size'],
  ['layer_norm_epsilon', 'layerNormEps', 'eps'],
  ['activation_function', 'activation', 'activation'],
  ['tie_word_embeddings', 'tiedHead', 'boolean'],
] as const satisfies readonly (readonly [string, keyof GPTConfig, HFField])[];
type HFKey = (typeof HF_FIELDS)[number][1];

/** What a config.json beside the weights says. */
interface HFConfigFile {
  /** Its path, for errors. */
  file: string;
  /** The GPTConfig values it gives. */
  config: Partial<Pick<GPTConfig, HFKey>>;
  /** The config.json field (and its value as written) each value came from. */
  source: Map<HFKey, string>;
  /** `n_inner`, the MLP width, when set (null and absent mean 4·n_embd). */
  nInner?: number;
}

/**
 * Read and check the `config.json` in the folder of `weights`; null when there is none.
 * Values of the wrong type, sizes that are not positive integers, and settings kiln's GPT
 * cannot reproduce are errors naming the file and the field.
 */
function readHFConfigFile(op: string, weights: string): HFConfigFile | null {
  const file = join(dirname(weights), 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`${op}: cannot read '${file}': ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${op}: '${file}' is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error(`${op}: '${file}' must hold a JSON object (a Hugging Face GPT2Config), got ${Array.isArray(json) ? 'an array' : describeJSON(json)}`);
  const j = json as Record<string, unknown>;
  const bad = (field: string, want: string): Error => new Error(`${op}: '${file}': ${field} must be ${want}, got ${describeJSON(j[field])}`);
  const isSize = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1;
  const out: HFConfigFile = { file, config: {}, source: new Map() };
  const set = <K extends HFKey>(key: K, value: Required<GPTConfig>[K], field: string): void => {
    out.config[key] = value;
    out.source.set(key, `${field} ${describeJSON(j[field])}`);
  };
  for (const [field, key, kind] of HF_FIELDS) {
    const v = j[field];
    if (v === undefined) continue;
    if (kind === 'size') {
      if (!isSize(v)) throw bad(field, 'a positive integer');
      set(key as Exclude<HFKey, 'layerNormEps' | 'activation' | 'tiedHead'>, v, field);
    } else if (kind === 'eps') {
      if (typeof v !== 'number' || !(v > 0 && Number.isFinite(v))) throw bad(field, 'a positive number');
      set('layerNormEps', v, field);
    } else if (kind === 'activation') {
      if (typeof v !== 'string') throw bad(field, 'a string');
      const a = HF_ACTIVATIONS.get(v);
      if (a === undefined)
        throw new Error(
          `${op}: '${file}': activation_function ${describeJSON(v)} is not a GELU kiln's GPT has; expected one of ${[...HF_ACTIVATIONS.keys()].map((a) => describeJSON(a)).join(', ')}`,
        );
      set('activation', a, field);
    } else {
      if (typeof v !== 'boolean') throw bad(field, 'true or false');
      set('tiedHead', v, field);
    }
  }
  // settings of GPT2Config that change the computation in ways kiln's GPT does not have
  if (j.n_inner !== undefined && j.n_inner !== null) {
    if (!isSize(j.n_inner)) throw bad('n_inner', 'null or a positive integer');
    out.nInner = j.n_inner;
  }
  if (j.scale_attn_weights !== undefined && j.scale_attn_weights !== true)
    throw new Error(`${op}: '${file}': scale_attn_weights is ${describeJSON(j.scale_attn_weights)}; kiln's attention always scales by 1/√headSize`);
  if (j.scale_attn_by_inverse_layer_idx !== undefined && j.scale_attn_by_inverse_layer_idx !== false)
    throw new Error(
      `${op}: '${file}': scale_attn_by_inverse_layer_idx is ${describeJSON(j.scale_attn_by_inverse_layer_idx)}; kiln's attention has no per-layer scaling`,
    );
  return out;
}

function readSource(op: string, source: string | Uint8Array): Uint8Array {
  if (typeof source === 'string') {
    if (source === '' || source.includes('\0')) throw new Error(`${op}: expected a file path or the bytes of a safetensors file, got ${show(source.replace(/\0/g, '\\0'))}`);
    try {
      return readFileSync(source);
    } catch (e) {
      throw new Error(`${op}: cannot read '${source}': ${(e as Error).message}`);
    }
  }
  if (!(source instanceof Uint8Array)) throw new Error(`${op}: expected a file path or the bytes of a safetensors file, got ${show(source)}`);
  return source;
}

const GPT_KEYS = ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd', 'dropout', 'bias', 'rope', 'ropeBase', 'tiedHead', 'activation', 'layerNormEps', 'gradientCheckpointing', 'window', 'kvHeads'];

/**
 * The caller's partial config, checked for `op` before the file is read: an object of GPTConfig
 * keys with values of the right kinds (whether they fit the file is checked against it later).
 */
function checkGiven(op: string, config: unknown): Partial<GPTConfig> {
  if (config === undefined) return {};
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new Error(`${op}: config must be an object (a partial GPTConfig), got ${show(config)}`);
  checkKeys(op, config, GPT_KEYS);
  const c = config as Record<string, unknown>;
  for (const k of ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd', 'kvHeads']) if (c[k] !== undefined) checkNumber(op, `config.${k}`, c[k], { integer: true, min: 1 });
  if (c.window !== undefined && c.window !== null) checkNumber(op, 'config.window', c.window, { integer: true, min: 1 });
  for (const k of ['bias', 'rope', 'tiedHead', 'gradientCheckpointing']) if (c[k] !== undefined) checkBoolean(op, `config.${k}`, c[k]);
  if (c.dropout !== undefined) checkNumber(op, 'config.dropout', c.dropout, { min: 0, max: 1, maxExclusive: true });
  if (c.ropeBase !== undefined) checkNumber(op, 'config.ropeBase', c.ropeBase, { min: 0, minExclusive: true });
  if (c.layerNormEps !== undefined) checkNumber(op, 'config.layerNormEps', c.layerNormEps, { min: 0, minExclusive: true });
  if (c.activation !== undefined) checkChoice(op, 'config.activation', c.activation, ['gelu_tanh', 'gelu']);
  return config as Partial<GPTConfig>;
}

interface HFPlan {
  header: SafetensorsHeader;
  config: GPTConfig;
  /** Hugging Face name (as in the file) of each kiln state-dict name to load. */
  sources: Map<string, string>;
}

/**
 * The config.json beside `source` (when it is a path and there is one), checked against the
 * caller's `given` values; every conflict is an error naming both.
 */
function hfConfigFile(op: string, source: string | Uint8Array, given: Partial<GPTConfig>): HFConfigFile | null {
  const json = typeof source === 'string' ? readHFConfigFile(op, source) : null;
  if (json)
    for (const [key, from] of json.source) {
      const g = given[key];
      const v = json.config[key];
      // an HF activation name that is not kiln's is followed by the kiln one it maps to
      const kiln = key === 'activation' && from !== `activation_function ${describeJSON(v)}` ? ` (kiln's ${describeJSON(v)})` : '';
      if (g !== undefined && g !== v) throw new Error(`${op}: config.${key} is ${describeJSON(g)} but '${json.file}' has ${from}${kiln}`);
    }
  return json;
}

// Read names, shapes and the config from the header (and config.json) alone; every check before
// any allocation. `noJSON` says why there is no config.json, for the error when nHead is missing.
function plan(op: string, bytes: Uint8Array, given: Partial<GPTConfig>, json: HFConfigFile | null, noJSON: string): HFPlan {
  let header: SafetensorsHeader;
  try {
    header = parseHeader(bytes);
  } catch (e) {
    throw new Error(`${op}: ${(e as Error).message}`);
  }
  // strip the GPT2LMHeadModel prefix; lm_head.weight has none either way
  const byName = new Map<string, SafetensorsEntry>();
  for (const e of header.entries) {
    const name = e.name.startsWith('transformer.') ? e.name.slice('transformer.'.length) : e.name;
    if (byName.has(name)) throw new Error(`${op}: '${name}' appears both with and without the 'transformer.' prefix`);
    byName.set(name, e);
  }
  const unexpected: string[] = [];
  const blocks = new Set<number>();
  // the highest layer index, and how the file writes it (past 2^53 a number would not say)
  let top = -1;
  let last = '';
  for (const name of byName.keys()) {
    const m = BLOCK.exec(name);
    if (m) {
      const index = Number(m[1]);
      blocks.add(index);
      if (index > top) [top, last] = [index, m[1]!];
      if (!BLOCK_ENTRIES.includes(m[2]!) && !IGNORED.includes(m[2]!)) unexpected.push(name);
    } else if (!['wte.weight', 'wpe.weight', 'ln_f.weight', 'ln_f.bias', 'lm_head.weight'].includes(name)) unexpected.push(name);
  }
  if (unexpected.length) throw new Error(`${op}: entries that are not part of GPT-2: ${unexpected.join(', ')}`);
  const layers = top + 1;
  // a layer index past the entries (h.4294967295.attn.bias) names a layer the file lacks: found
  // here, before the expected entries of every layer up to it are listed
  if (layers > blocks.size) {
    let gap = 0;
    while (blocks.has(gap)) gap++;
    throw new Error(`${op}: missing entries: no h.${gap}.* although the file has h.${last}.* (layers are numbered from 0 without gaps)`);
  }
  const wte = byName.get('wte.weight');
  const wpe = byName.get('wpe.weight');
  if (!wte || wte.shape.length !== 2) throw new Error(`${op}: no 2-D 'wte.weight' (token embeddings) in the file; is it a GPT-2 checkpoint?`);
  if (!wpe || wpe.shape.length !== 2) throw new Error(`${op}: no 2-D 'wpe.weight' (position embeddings) in the file; is it a GPT-2 checkpoint?`);

  // the config: sizes from the file, checked against config.json and what the caller gave
  const found = { vocabSize: wte.shape[0]!, nEmbd: wte.shape[1]!, blockSize: wpe.shape[0]!, nLayer: layers };
  for (const k of ['vocabSize', 'nEmbd', 'blockSize', 'nLayer'] as const) {
    if (json?.config[k] !== undefined && json.config[k] !== found[k])
      throw new Error(`${op}: '${json.file}' has ${json.source.get(k)!} but the weights have ${k} ${found[k]}`);
    if (given[k] !== undefined && given[k] !== found[k])
      throw new Error(`${op}: config.${k} is ${given[k]} but the file has ${k} ${found[k]}`);
  }
  if (found.vocabSize < 1 || found.nEmbd < 1)
    throw new Error(`${op}: '${wte.name}' is ${fmt(wte.shape)}; a GPT-2 has at least one token and one embedding channel`);
  if (found.blockSize < 1) throw new Error(`${op}: '${wpe.name}' is ${fmt(wpe.shape)}; a GPT-2 has at least one position`);
  if (found.nLayer < 1) throw new Error(`${op}: no blocks (h.0.*) in the file; a GPT-2 has at least one layer`);
  if (json?.nInner !== undefined && json.nInner !== 4 * found.nEmbd)
    throw new Error(`${op}: '${json.file}' has n_inner ${json.nInner}; kiln's GPT has an MLP of width 4·n_embd = ${4 * found.nEmbd}`);
  if (given.rope) throw new Error(`${op}: GPT-2 has learned position embeddings (wpe); config.rope must be false`);
  if (given.bias === false) throw new Error(`${op}: GPT-2 has biases in every projection and norm; config.bias must be true`);
  const nHead = given.nHead ?? json?.config.nHead;
  if (nHead === undefined) {
    const why = json ? `'${json.file}' has no n_head` : noJSON;
    throw new Error(`${op}: the head count cannot be read from the weights (no tensor's size shows it) and ${why}; pass it as { config: { nHead } }`);
  }
  const headFrom = given.nHead !== undefined ? `config.nHead ${describeJSON(nHead)}` : `'${json!.file}' has ${json!.source.get('nHead')!}`;
  if (!Number.isSafeInteger(nHead) || nHead < 1) throw new Error(`${op}: ${headFrom}; the head count must be a positive integer`);
  if (given.kvHeads !== undefined && given.kvHeads !== nHead)
    throw new Error(`${op}: config.kvHeads is ${given.kvHeads} but GPT-2 has a key/value head per query head (${headFrom}): its c_attn makes 3·n_embd outputs`);
  if (found.nEmbd % nHead !== 0) throw new Error(`${op}: ${headFrom}, which does not divide the weights' nEmbd ${found.nEmbd}`);

  // shapes and dtypes of every entry the model needs
  const expected = hfShapes(found);
  const missing = [...expected.keys()].filter((n) => !byName.has(n));
  if (missing.length) throw new Error(`${op}: missing entries: ${missing.join(', ')}`);
  const bad: string[] = [];
  for (const [name, shape] of expected) {
    const e = byName.get(name)!;
    if (!FLOAT_FILE_DTYPES.has(e.dtype)) bad.push(`'${e.name}' has dtype ${e.dtype}, expected a floating dtype`);
    else if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
      const conv = isConv1D(name) ? ' (Conv1D weights are [in, out], the transpose of nn.Linear)' : '';
      bad.push(`'${e.name}' is ${fmt(e.shape)}, expected ${fmt(shape)}${conv}`);
    }
  }
  if (bad.length) throw new Error(`${op}: ${bad.join('; ')}`);

  // the head: absent or equal to wte (tied, as GPT-2), else a head of its own
  const head = byName.get('lm_head.weight');
  let sameAsWte = head === undefined;
  if (head) {
    if (head.shape.length !== 2 || head.shape[0] !== found.vocabSize || head.shape[1] !== found.nEmbd)
      throw new Error(`${op}: 'lm_head.weight' is ${fmt(head.shape)}, expected ${fmt([found.vocabSize, found.nEmbd])}`);
    if (!FLOAT_FILE_DTYPES.has(head.dtype)) throw new Error(`${op}: 'lm_head.weight' has dtype ${head.dtype}, expected a floating dtype`);
    sameAsWte = head.dtype === wte.dtype && equalBytes(bytes, header.dataStart, head, wte);
  }
  const tied = given.tiedHead ?? json?.config.tiedHead;
  if (tied === true && !sameAsWte)
    throw new Error(
      `${op}: ${given.tiedHead !== undefined ? 'config.tiedHead is true' : `'${json!.file}' has tie_word_embeddings true`} but the file's lm_head.weight differs from wte.weight`,
    );
  const tiedHead = tied ?? sameAsWte;

  const sources = new Map<string, string>();
  for (const name of expected.keys()) sources.set(`transformer.${name}`, byName.get(name)!.name);
  // an untied head starts from the file's head, or from wte when the file has none
  if (!tiedHead) sources.set('lm_head.weight', head ? head.name : wte.name);
  const config: GPTConfig = {
    ...json?.config,
    ...given,
    ...found,
    nHead,
    bias: true,
    rope: false,
    tiedHead,
    activation: given.activation ?? json?.config.activation ?? 'gelu_tanh',
    layerNormEps: given.layerNormEps ?? json?.config.layerNormEps ?? 1e-5,
  };
  return { header, config, sources };
}

function equalBytes(bytes: Uint8Array, start: number, a: SafetensorsEntry, b: SafetensorsEntry): boolean {
  if (a.end - a.begin !== b.end - b.begin) return false;
  const x = bytes.subarray(start + a.begin, start + a.end);
  const y = bytes.subarray(start + b.begin, start + b.end);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Why a source has no config.json, for errors. */
const noConfigFile = (source: string | Uint8Array): string =>
  typeof source === 'string' ? `there is no config.json beside '${source}'` : 'weights given as bytes come without a config.json';

/**
 * Read the {@link GPTConfig} of a Hugging Face GPT-2 safetensors file (a path or its bytes)
 * from its header and the `config.json` beside it, as {@link loadHFGPT2} would build the model:
 * sizes from the tensors, the rest from config.json and `config` (see
 * {@link LoadHFGPT2Options.config}). Validates every entry's name, shape and dtype, and throws
 * `hfGPT2Config: …` naming what does not fit.
 */
export function hfGPT2Config(source: string | Uint8Array, config: Partial<GPTConfig> = {}): GPTConfig {
  const op = 'hfGPT2Config';
  const given = checkGiven(op, config);
  const bytes = readSource(op, source);
  try {
    return plan(op, bytes, given, hfConfigFile(op, source, given), noConfigFile(source)).config;
  } catch (e) {
    if (typeof source === 'string' && e instanceof Error) e.message = `${e.message} (in '${source}')`;
    throw e;
  }
}

/**
 * Load Hugging Face GPT-2 weights (`model.safetensors` of `gpt2`, or any file in its layout)
 * into a new kiln {@link GPT}: names mapped (with or without the `transformer.` prefix), the
 * Conv1D weights transposed to `[out, in]`, the `attn.bias` / `attn.masked_bias` buffers
 * ignored, `lm_head.weight` tied to `wte.weight` when absent or equal to it (a different head
 * gives an untied model). The head count, GELU variant and layer-norm epsilon come from the
 * `config.json` beside a weights path, or from `opts.config` (which must agree with it); with
 * neither, the head count is an error, since no tensor shows it (see
 * {@link LoadHFGPT2Options.config}). Everything is checked from the header and config.json
 * before anything is allocated; errors read `loadHFGPT2: …` and name the entries, fields and
 * values. The model is in training mode, as a new GPT; call `eval()` for inference with dropout.
 *
 * @example
 * const model = loadHFGPT2('gpt2/model.safetensors'); // gpt2/config.json: n_head 12, gelu_new, 1e-5
 * const tiny = loadHFGPT2(bytes, { config: { nHead: 2 }, backend: 'cpu' }); // bytes: no config.json
 */
export function loadHFGPT2(source: string | Uint8Array, opts: LoadHFGPT2Options = {}): GPT {
  const op = 'loadHFGPT2';
  if (opts !== undefined && (opts === null || typeof opts !== 'object' || Array.isArray(opts))) throw new Error(`${op}: options must be an object, got ${show(opts)}`);
  checkKeys(op, opts, ['config', 'backend', 'dtype', 'generator']);
  const given = checkGiven(op, opts.config);
  if (opts.backend !== undefined && typeof opts.backend !== 'string') throw new Error(`${op}: backend must be a backend's name, got ${show(opts.backend)}`);
  const bytes = readSource(op, source);
  let p: HFPlan;
  try {
    p = plan(op, bytes, given, hfConfigFile(op, source, given), noConfigFile(source));
  } catch (e) {
    if (typeof source === 'string' && e instanceof Error) e.message = `${e.message} (in '${source}')`;
    throw e;
  }
  const place = { ...(opts.backend !== undefined ? { backend: opts.backend } : {}) };
  // the errors that only making the tensors finds (a backend that is not there, memory), with this op's name
  const named = (e: unknown): Error => {
    const message = (e as Error)?.message ?? String(e);
    return message.startsWith(`${op}: `) ? (e as Error) : new Error(`${op}: ${message}`);
  };
  let file: Record<string, Tensor>;
  try {
    // only the entries the model takes: the ignored attn.bias buffers are neither read nor held
    const wanted = new Set(p.sources.values());
    file = makeTensors(bytes, p.header.dataStart, p.header.entries.filter((e) => wanted.has(e.name)), place);
  } catch (e) {
    throw named(e);
  }
  let model: GPT | undefined;
  try {
    model = new GPT(p.config, {
      ...place,
      ...(opts.dtype !== undefined ? { dtype: opts.dtype } : {}),
      ...(opts.generator !== undefined ? { generator: opts.generator } : {}),
    });
    const m = model;
    noGrad(() =>
      tidy(() => {
        const state: Record<string, Tensor> = {};
        // Conv1D [in, out] → Linear [out, in]
        for (const [kiln, hf] of p.sources) state[kiln] = isConv1D(kiln) ? transpose(file[hf]!, 0, 1) : file[hf]!;
        m.loadStateDict(state);
      }),
    );
    return model;
  } catch (e) {
    model?.dispose();
    throw named(e);
  } finally {
    for (const t of Object.values(file)) t.dispose();
  }
}

/**
 * The weights of `model` as Hugging Face GPT-2 names them and lays them out: no prefix (or
 * `transformer.`, see {@link HFGPT2StateDictOptions.prefix}), Conv1D weights transposed to
 * `[in, out]`, the tied head left out (an untied head is `lm_head.weight`). The tensors are new
 * copies that the caller owns: dispose them after saving. The model must be GPT-2 shaped:
 * learned positions (no `rope`), biases, a key/value head per query head and no sliding window.
 *
 * @example
 * const sd = hfGPT2StateDict(model);
 * saveSafetensorsSync('model.safetensors', sd, { format: 'pt' });
 * for (const t of Object.values(sd)) t.dispose();
 */
export function hfGPT2StateDict(model: GPT, opts: HFGPT2StateDictOptions = {}): Record<string, Tensor> {
  return hfLayout('hfGPT2StateDict', model, opts, (p) => p);
}

/**
 * The gradients of `model`'s parameters (their `.grad`) as Hugging Face GPT-2 names and lays
 * them out, exactly as {@link hfGPT2StateDict} maps the parameters: the same names and
 * `prefix`, Conv1D gradients transposed to `[in, out]`, the tied head's gradient (embedding
 * and head summed) under `wte.weight` alone, as `transformers` accumulates it. Parameters
 * without a gradient (none computed yet, or `requiresGrad` off) are left out, so the result
 * may have fewer entries than the state dict. The tensors are new copies that the caller owns.
 *
 * @example
 * tidy(() => model.forward(idx, targets).loss!.backward());
 * const grads = hfGPT2Gradients(model); // compare with {n: p.grad for n, p in hf.transformer.named_parameters()}
 * for (const t of Object.values(grads)) t.dispose();
 */
export function hfGPT2Gradients(model: GPT, opts: HFGPT2StateDictOptions = {}): Record<string, Tensor> {
  return hfLayout('hfGPT2Gradients', model, opts, (p) => p.grad);
}

/**
 * The one mapping of kiln's parameters to Hugging Face GPT-2's names and layout: for each
 * parameter whose `pick` is not null, a copy of it under the HF name, transposed for Conv1D.
 */
function hfLayout(op: string, model: GPT, opts: HFGPT2StateDictOptions | undefined, pick: (param: Tensor) => Tensor | null): Record<string, Tensor> {
  if (!(model instanceof GPT)) throw new Error(`${op}: expected a GPT model, got ${show(model)}`);
  if (opts !== undefined && (opts === null || typeof opts !== 'object' || Array.isArray(opts))) throw new Error(`${op}: options must be an object, got ${show(opts)}`);
  checkKeys(op, opts, ['prefix']);
  const c = model.config;
  if (c.rope) throw new Error(`${op}: the model uses rotary positions; GPT-2 has learned ones (wpe), so it has no Hugging Face GPT-2 layout`);
  if (!c.bias) throw new Error(`${op}: the model has no biases; Hugging Face GPT-2 has them in every projection and norm`);
  if (c.kvHeads !== c.nHead)
    throw new Error(`${op}: the model has ${c.kvHeads} key/value heads for ${c.nHead} query heads (grouped-query attention); Hugging Face GPT-2 has one per query head`);
  if (c.window !== null) throw new Error(`${op}: the model attends through a sliding window of ${c.window}; Hugging Face GPT-2 has no such setting, so it would attend to everything`);
  const prefix = opts?.prefix ?? '';
  if (prefix !== '' && prefix !== 'transformer.') throw new Error(`${op}: prefix must be '' or 'transformer.', got ${show(prefix)}`);
  const out: Record<string, Tensor> = {};
  // a copy per entry: [out, in] → [in, out] for Conv1D, else a clone
  try {
    noGrad(() => {
      for (const [name, param] of model.namedParameters()) {
        const t = pick(param);
        if (t === null) continue;
        const hf = name === 'lm_head.weight' ? name : prefix + hfName(name);
        out[hf] = isConv1D(name) ? transpose(t, 0, 1) : clone(t);
      }
    });
  } catch (e) {
    for (const t of Object.values(out)) t.dispose();
    throw e;
  }
  return out;
}

/**
 * The `config.json` Hugging Face keeps beside GPT-2 weights, for a model of config `c`: what
 * `GPT2LMHeadModel.from_pretrained` and {@link loadHFGPT2} need to rebuild it.
 */
function hfConfigJSON(c: Required<GPTConfig>): Record<string, unknown> {
  return {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    vocab_size: c.vocabSize,
    n_positions: c.blockSize,
    n_ctx: c.blockSize,
    n_embd: c.nEmbd,
    n_layer: c.nLayer,
    n_head: c.nHead,
    layer_norm_epsilon: c.layerNormEps,
    activation_function: c.activation === 'gelu_tanh' ? 'gelu_new' : 'gelu',
    tie_word_embeddings: c.tiedHead,
  };
}

/**
 * Write `model` as a Hugging Face GPT-2 safetensors file (metadata `format: pt`), atomically to
 * `path`, and beside it (atomically, in the same folder) the `config.json` that
 * `GPT2LMHeadModel.from_pretrained` and {@link loadHFGPT2} read: `model_type` `gpt2`,
 * `architectures`, `vocab_size`, `n_positions` and `n_ctx` (blockSize), `n_embd`, `n_layer`,
 * `n_head`, `layer_norm_epsilon`, `activation_function` (`gelu_new` for the tanh GELU, `gelu`
 * for the exact one) and `tie_word_embeddings`. A config.json already in the folder is
 * replaced. Without a path, returns the weights' bytes alone. Waits for device work. See
 * {@link hfGPT2StateDict} for the layout.
 *
 * @example
 * await saveHFGPT2('out/model.safetensors', model); // writes out/model.safetensors and out/config.json
 * const again = loadHFGPT2('out/model.safetensors'); // no config needed
 */
export function saveHFGPT2(path: string, model: GPT, opts?: HFGPT2StateDictOptions): Promise<void>;
export function saveHFGPT2(model: GPT, opts?: HFGPT2StateDictOptions): Promise<Uint8Array>;
export async function saveHFGPT2(
  a: string | GPT,
  b?: GPT | HFGPT2StateDictOptions,
  c?: HFGPT2StateDictOptions,
): Promise<void | Uint8Array> {
  const op = 'saveHFGPT2';
  if (typeof a !== 'string' && !(a instanceof GPT)) throw new Error(`${op}: expected a path or a GPT model, got ${show(a)}`);
  if (a === '' || (typeof a === 'string' && a.includes('\0'))) throw new Error(`${op}: path must be a file path (a non-empty string), got ${show(a)}`);
  const [path, model, opts] = typeof a === 'string' ? [a, b as GPT, c] : [undefined, a, b as HFGPT2StateDictOptions | undefined];
  const sd = hfLayout(op, model, opts, (p) => p);
  const metadata: SafetensorsMetadata = { format: 'pt' };
  try {
    if (path === undefined) return await saveSafetensors(sd, metadata);
    await saveSafetensors(path, sd, metadata);
  } catch (e) {
    throw relabel(op, e);
  } finally {
    for (const t of Object.values(sd)) t.dispose();
  }
  const json = `${JSON.stringify(hfConfigJSON(model.config), null, 2)}\n`;
  try {
    await writeFileAtomic(join(dirname(path), 'config.json'), new TextEncoder().encode(json));
  } catch (e) {
    throw relabel(op, e);
  }
}
