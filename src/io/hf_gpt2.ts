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
 * @module
 */
import { readFileSync } from 'node:fs';
import type { DType } from '../backend/dtype.js';
import { noGrad } from '../autograd/tape.js';
import { tidy } from '../tensor/memory.js';
import { clone } from '../tensor/ops/elementwise.js';
import { transpose } from '../tensor/ops/shape_ops.js';
import type { Generator } from '../tensor/random.js';
import { fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { GPT, type GPTConfig } from '../nn/gpt.js';
import { loadSafetensors, parseSafetensorsHeader, saveSafetensors, type SafetensorsEntry, type SafetensorsMetadata } from './safetensors.js';

/** Options of {@link loadHFGPT2}. */
export interface LoadHFGPT2Options {
  /**
   * The model's shape, wholly or in part. What is left out is read from the tensor sizes
   * (vocabSize, blockSize, nEmbd, nLayer), except `nHead`, which no size shows: it defaults to
   * nEmbd/64, the head size of every released GPT-2 (12 heads for gpt2, 16, 20 and 25 for
   * medium, large and xl). Given sizes must match the file's. Only `dropout` is free to choose;
   * `bias` must be true and `rope` false (GPT-2 has biases and learned positions), and
   * `tiedHead` is read from the file unless given.
   */
  config?: Partial<GPTConfig>;
  /** Backend of the model's parameters (the default backend when omitted). */
  backend?: string;
  /** Parameter dtype (default f32); the file's values are cast to it. */
  dtype?: DType;
  /** Random stream of the model's dropout (and of its initialisation, which the file overwrites). */
  generator?: Generator;
}

/** Options of {@link hfGPT2StateDict} and {@link saveHFGPT2}. */
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
const BLOCK = /^h\.(\d+)\.(.+)$/;
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

function readSource(op: string, source: string | Uint8Array): Uint8Array {
  if (typeof source === 'string') {
    try {
      return readFileSync(source);
    } catch (e) {
      throw new Error(`${op}: cannot read '${source}': ${(e as Error).message}`);
    }
  }
  if (!(source instanceof Uint8Array)) throw new Error(`${op}: expected a file path or the bytes of a safetensors file`);
  return source;
}

interface HFPlan {
  config: GPTConfig;
  /** Hugging Face name (as in the file) of each kiln state-dict name to load. */
  sources: Map<string, string>;
}

// Read names, shapes and the config from the header alone; every check before any allocation.
function plan(op: string, bytes: Uint8Array, given: Partial<GPTConfig>): HFPlan {
  const header = parseSafetensorsHeader(bytes);
  // strip the GPT2LMHeadModel prefix; lm_head.weight has none either way
  const byName = new Map<string, SafetensorsEntry>();
  for (const e of header.entries) {
    const name = e.name.startsWith('transformer.') ? e.name.slice('transformer.'.length) : e.name;
    if (byName.has(name)) throw new Error(`${op}: '${name}' appears both with and without the 'transformer.' prefix`);
    byName.set(name, e);
  }
  const unexpected: string[] = [];
  let layers = 0;
  for (const name of byName.keys()) {
    const m = BLOCK.exec(name);
    if (m) {
      layers = Math.max(layers, Number(m[1]) + 1);
      if (!BLOCK_ENTRIES.includes(m[2]!) && !IGNORED.includes(m[2]!)) unexpected.push(name);
    } else if (!['wte.weight', 'wpe.weight', 'ln_f.weight', 'ln_f.bias', 'lm_head.weight'].includes(name)) unexpected.push(name);
  }
  if (unexpected.length) throw new Error(`${op}: entries that are not part of GPT-2: ${unexpected.join(', ')}`);
  const wte = byName.get('wte.weight');
  const wpe = byName.get('wpe.weight');
  if (!wte || wte.shape.length !== 2) throw new Error(`${op}: no 2-D 'wte.weight' (token embeddings) in the file; is it a GPT-2 checkpoint?`);
  if (!wpe || wpe.shape.length !== 2) throw new Error(`${op}: no 2-D 'wpe.weight' (position embeddings) in the file; is it a GPT-2 checkpoint?`);

  // the config: sizes from the file, checked against what the caller gave
  const found = { vocabSize: wte.shape[0]!, nEmbd: wte.shape[1]!, blockSize: wpe.shape[0]!, nLayer: layers };
  for (const k of ['vocabSize', 'nEmbd', 'blockSize', 'nLayer'] as const)
    if (given[k] !== undefined && given[k] !== found[k])
      throw new Error(`${op}: config.${k} is ${given[k]} but the file has ${k} ${found[k]}`);
  if (given.rope) throw new Error(`${op}: GPT-2 has learned position embeddings (wpe); config.rope must be false`);
  if (given.bias === false) throw new Error(`${op}: GPT-2 has biases in every projection and norm; config.bias must be true`);
  let nHead = given.nHead;
  if (nHead === undefined) {
    if (found.nEmbd % 64 !== 0)
      throw new Error(`${op}: cannot infer nHead for nEmbd ${found.nEmbd} (not a multiple of GPT-2's head size 64); pass config.nHead`);
    nHead = found.nEmbd / 64;
  }

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
  if (given.tiedHead === true && !sameAsWte)
    throw new Error(`${op}: config.tiedHead is true but the file's lm_head.weight differs from wte.weight`);
  const tiedHead = given.tiedHead ?? sameAsWte;

  const sources = new Map<string, string>();
  for (const name of expected.keys()) sources.set(`transformer.${name}`, byName.get(name)!.name);
  // an untied head starts from the file's head, or from wte when the file has none
  if (!tiedHead) sources.set('lm_head.weight', head ? head.name : wte.name);
  const config: GPTConfig = { ...given, ...found, nHead, bias: true, rope: false, tiedHead };
  return { config, sources };
}

function equalBytes(bytes: Uint8Array, start: number, a: SafetensorsEntry, b: SafetensorsEntry): boolean {
  if (a.end - a.begin !== b.end - b.begin) return false;
  const x = bytes.subarray(start + a.begin, start + a.end);
  const y = bytes.subarray(start + b.begin, start + b.end);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * Read the {@link GPTConfig} of a Hugging Face GPT-2 safetensors file (a path or its bytes)
 * from its header alone, as {@link loadHFGPT2} would build the model: sizes from the tensors,
 * `config` for the rest (see {@link LoadHFGPT2Options.config}). Validates every entry's name,
 * shape and dtype, and throws `hfGPT2Config: …` naming what does not fit.
 */
export function hfGPT2Config(source: string | Uint8Array, config: Partial<GPTConfig> = {}): GPTConfig {
  return plan('hfGPT2Config', readSource('hfGPT2Config', source), config).config;
}

/**
 * Load Hugging Face GPT-2 weights (`model.safetensors` of `gpt2`, or any file in its layout)
 * into a new kiln {@link GPT}: names mapped (with or without the `transformer.` prefix), the
 * Conv1D weights transposed to `[out, in]`, the `attn.bias` / `attn.masked_bias` buffers
 * ignored, `lm_head.weight` tied to `wte.weight` when absent or equal to it (a different head
 * gives an untied model). Everything is checked from the header before anything is allocated;
 * errors read `loadHFGPT2: …` and name the entries. The model is in training mode, as a new
 * GPT; call `eval()` for inference with dropout.
 *
 * @example
 * const model = loadHFGPT2('gpt2/model.safetensors'); // 124M: nHead 12 from nEmbd 768
 * const tiny = loadHFGPT2(bytes, { config: { nHead: 2 }, backend: 'cpu' });
 */
export function loadHFGPT2(source: string | Uint8Array, opts: LoadHFGPT2Options = {}): GPT {
  const op = 'loadHFGPT2';
  const bytes = readSource(op, source);
  let p: HFPlan;
  try {
    p = plan(op, bytes, opts.config ?? {});
  } catch (e) {
    if (typeof source === 'string' && e instanceof Error) e.message = `${e.message} (in '${source}')`;
    throw e;
  }
  const place = { ...(opts.backend !== undefined ? { backend: opts.backend } : {}) };
  const file = loadSafetensors(bytes, place).tensors;
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
    throw e;
  } finally {
    for (const t of Object.values(file)) t.dispose();
  }
}

/**
 * The weights of `model` as Hugging Face GPT-2 names them and lays them out: no prefix (or
 * `transformer.`, see {@link HFGPT2StateDictOptions.prefix}), Conv1D weights transposed to
 * `[in, out]`, the tied head left out (an untied head is `lm_head.weight`). The tensors are new
 * copies that the caller owns: dispose them after saving. The model must be GPT-2 shaped:
 * learned positions (no `rope`) and biases.
 *
 * @example
 * const sd = hfGPT2StateDict(model);
 * saveSafetensorsSync('model.safetensors', sd, { format: 'pt' });
 * for (const t of Object.values(sd)) t.dispose();
 */
export function hfGPT2StateDict(model: GPT, opts: HFGPT2StateDictOptions = {}): Record<string, Tensor> {
  const op = 'hfGPT2StateDict';
  if (!(model instanceof GPT)) throw new Error(`${op}: expected a GPT model`);
  const c = model.config;
  if (c.rope) throw new Error(`${op}: the model uses rotary positions; GPT-2 has learned ones (wpe), so it has no Hugging Face GPT-2 layout`);
  if (!c.bias) throw new Error(`${op}: the model has no biases; Hugging Face GPT-2 has them in every projection and norm`);
  const prefix = opts.prefix ?? '';
  if (prefix !== '' && prefix !== 'transformer.') throw new Error(`${op}: prefix must be '' or 'transformer.', got '${String(prefix)}'`);
  const out: Record<string, Tensor> = {};
  // a copy per entry: [out, in] → [in, out] for Conv1D, else a clone
  noGrad(() => {
    for (const [name, t] of model.namedParameters()) {
      const hf = name === 'lm_head.weight' ? name : prefix + hfName(name);
      out[hf] = isConv1D(name) ? transpose(t, 0, 1) : clone(t);
    }
  });
  return out;
}

/**
 * Write `model` as a Hugging Face GPT-2 safetensors file (metadata `format: pt`), atomically to
 * `path`, or return the bytes without one; waits for device work. See {@link hfGPT2StateDict}
 * for the layout. The file loads with `GPT2LMHeadModel.from_pretrained` beside a `config.json`
 * of the same sizes, and with {@link loadHFGPT2}.
 */
export function saveHFGPT2(path: string, model: GPT, opts?: HFGPT2StateDictOptions): Promise<void>;
export function saveHFGPT2(model: GPT, opts?: HFGPT2StateDictOptions): Promise<Uint8Array>;
export async function saveHFGPT2(
  a: string | GPT,
  b?: GPT | HFGPT2StateDictOptions,
  c?: HFGPT2StateDictOptions,
): Promise<void | Uint8Array> {
  const [path, model, opts] = typeof a === 'string' ? [a, b as GPT, c] : [undefined, a, b as HFGPT2StateDictOptions | undefined];
  const sd = hfGPT2StateDict(model, opts);
  const metadata: SafetensorsMetadata = { format: 'pt' };
  try {
    return path === undefined ? await saveSafetensors(sd, metadata) : await saveSafetensors(path, sd, metadata);
  } finally {
    for (const t of Object.values(sd)) t.dispose();
  }
}
