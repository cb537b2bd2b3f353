/**
 * Hugging Face GPT-2 files (src/io/hf_gpt2.ts): the fixture test/fixtures/gpt/hf_gpt2.safetensors
 * (written by test/fixtures/make_gpt_fixtures.py in GPT-2's layout: no prefix, Conv1D weights
 * [in, out], the attn.bias / attn.masked_bias buffers, no lm_head; the script checks it with a
 * forward written against that layout) loads into kiln's GPT and gives PyTorch's logits, with
 * the same parameters, bit for bit, as the nanoGPT-named weights; kiln → HF → kiln round trips
 * are exact (tied and untied heads, with and without the `transformer.` prefix, through a file
 * and its config.json); the sizes are read from the tensors, the rest from config.json
 * (test/fixtures/hf_gpt2_config/, written by make_hf_gpt2_config_fixtures.py with the exact GELU
 * and eps 0.1, whose logits and HF-layout gradients PyTorch computed) or from the caller, and
 * the head count is never guessed; malformed files fail before anything is allocated.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { Generator, cast, memory, tensor, tidy, transpose, type Tensor } from '../src/index.js';
import { loadSafetensors, parseSafetensorsHeader, saveSafetensors } from '../src/index.js';
import { hfGPT2Config, hfGPT2Gradients, hfGPT2StateDict, loadHFGPT2, saveHFGPT2 } from '../src/index.js';
import { GPT, type GPTConfig } from '../src/nn/index.js';
import { describeBackends, expectClose, storedDtypes, stores, values } from './harness.js';

const DIR = new URL('./fixtures/gpt/', import.meta.url);
const path = (name: string): string => fileURLToPath(new URL(name, DIR));
const HF_FILE = path('hf_gpt2.safetensors');
const META = JSON.parse(readFileSync(path('gpt.json'), 'utf8')) as { config: GPTConfig; idx: number[][]; targets: number[][] };
const EXPECTED = loadSafetensors(path('expected.safetensors'), { backend: 'ref' }).tensors;
const EXPECTED_LOGITS = Float32Array.from(await EXPECTED.logits!.data());
const EXPECTED_LOSS = (await EXPECTED.loss!.data())[0]!;
for (const t of Object.values(EXPECTED)) t.dispose();

// the config.json fixture: exact GELU, layer_norm_epsilon 0.1, n_head 4
const CFG_DIR = fileURLToPath(new URL('./fixtures/hf_gpt2_config/', import.meta.url));
const CFG_FILE = join(CFG_DIR, 'model.safetensors');
const CFG_JSON = JSON.parse(readFileSync(join(CFG_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
const CFG_CONFIG: GPTConfig = { vocabSize: 19, blockSize: 8, nLayer: 2, nHead: 4, nEmbd: 16, activation: 'gelu', layerNormEps: 0.1 };
const CFG_EXPECTED = await (async () => {
  const ts = loadSafetensors(join(CFG_DIR, 'expected.safetensors'), { backend: 'ref' }).tensors;
  const out: Record<string, { shape: number[]; data: number[] }> = {};
  for (const [n, t] of Object.entries(ts)) out[n] = { shape: [...t.shape], data: Array.from(await t.data()) };
  for (const t of Object.values(ts)) t.dispose();
  return out;
})();
const rows = (e: { shape: number[]; data: number[] }): number[][] =>
  Array.from({ length: e.shape[0]! }, (_, i) => e.data.slice(i * e.shape[1]!, (i + 1) * e.shape[1]!));

const TMP = mkdtempSync(join(tmpdir(), 'kiln-hf-gpt2-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

/** Bytes of a tensor's elements, for bitwise comparison. */
const bits = async (t: Tensor): Promise<Uint8Array> => {
  const d = await t.data();
  return new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
};
/** A fresh folder under TMP. */
let folders = 0;
const folder = (): string => {
  const dir = join(TMP, `d${++folders}`);
  mkdirSync(dir);
  return dir;
};
/** The config.json fixture's weights in a fresh folder beside `config` (an object is written as JSON, a string as is); the weights' path. */
const withConfig = (config: Record<string, unknown> | string | null): string => {
  const dir = folder();
  copyFileSync(CFG_FILE, join(dir, 'model.safetensors'));
  if (config !== null) writeFileSync(join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return join(dir, 'model.safetensors');
};

describeBackends('Hugging Face GPT-2', (backend) => {
  const ids = (rows: number[][]): Tensor => tensor(rows, { backend, dtype: 'i32' });
  const live = (): number => memory().backends[backend]?.tensors ?? 0;
  const dispose = (ts: Record<string, Tensor>): void => Object.values(ts).forEach((t) => t.dispose());
  /** The fixture's HF file as tensors, edited by `edit`, re-encoded. */
  const editedFile = async (edit: (ts: Record<string, Tensor>) => Record<string, Tensor>): Promise<Uint8Array> => {
    const ts = loadSafetensors(HF_FILE, { backend }).tensors;
    const edited = edit(ts);
    const bytes = (await saveSafetensors(edited, { format: 'pt' })) as Uint8Array;
    dispose(ts);
    dispose(edited);
    return bytes;
  };
  /** Every parameter of `b` equals `a`'s bit for bit (names and ties included), and the configs but dropout agree. */
  const expectSameModel = async (a: GPT, b: GPT): Promise<void> => {
    expect(b.namedParameters().map(([n]) => n)).toEqual(a.namedParameters().map(([n]) => n));
    expect({ ...b.config, dropout: 0 }).toEqual({ ...a.config, dropout: 0 });
    const pb = new Map(b.namedParameters());
    for (const [n, p] of a.namedParameters()) expect(await bits(pb.get(n)!), n).toEqual(await bits(p));
  };
  /** Logits (and loss) of `model` on a batch, read. */
  const run = async (model: GPT, idx: number[][], targets?: number[][]): Promise<{ logits: Float32Array | Float64Array; loss?: number }> => {
    const out = tidy(() => model.forward(ids(idx), targets ? ids(targets) : null));
    const logits = (await out.logits.data()) as Float32Array | Float64Array;
    const loss = out.loss ? (await out.loss.data())[0]! : undefined;
    out.logits.dispose();
    out.loss?.dispose();
    return loss === undefined ? { logits } : { logits, loss };
  };

  it('reads the sizes from the tensors and nHead from the caller; no config.json and no nHead is an error, not a guess', async () => {
    expect(hfGPT2Config(HF_FILE, { nHead: 2 })).toEqual({
      ...META.config,
      bias: true,
      rope: false,
      tiedHead: true,
      activation: 'gelu_tanh',
      layerNormEps: 1e-5,
    });
    expect(() => hfGPT2Config(HF_FILE)).toThrow(
      `hfGPT2Config: the head count cannot be read from the weights (no tensor's size shows it) and there is no config.json beside '${HF_FILE}'; pass it as { config: { nHead } }`,
    );
    expect(() => loadHFGPT2(HF_FILE, { backend })).toThrow(/^loadHFGPT2: the head count cannot be read from the weights .*no config\.json beside/);
    expect(() => hfGPT2Config(HF_FILE, { nHead: 2, nLayer: 3 })).toThrow('hfGPT2Config: config.nLayer is 3 but the file has nLayer 2');
    expect(() => hfGPT2Config(HF_FILE, { nHead: 2, rope: true })).toThrow(/config\.rope must be false/);
    expect(() => hfGPT2Config(HF_FILE, { nHead: 2, bias: false })).toThrow(/config\.bias must be true/);
    // GPT-2 small's sizes (nEmbd 768) no longer imply 12 heads: bytes have no config.json
    const small = new GPT({ vocabSize: 7, blockSize: 4, nLayer: 1, nHead: 12, nEmbd: 768 }, { backend, generator: new Generator(1) });
    const sd = hfGPT2StateDict(small);
    const bytes = (await saveSafetensors(sd)) as Uint8Array;
    dispose(sd);
    small.dispose();
    expect(() => hfGPT2Config(bytes)).toThrow(
      "hfGPT2Config: the head count cannot be read from the weights (no tensor's size shows it) and weights given as bytes come without a config.json; pass it as { config: { nHead } }",
    );
    expect(() => loadHFGPT2(bytes, { backend })).toThrow(/^loadHFGPT2: the head count cannot be read/);
    expect(hfGPT2Config(bytes, { nHead: 12 }).nHead).toBe(12);
  });

  // the f64 checks (one f32 rounding from the reference) need f64: a backend without it skips them, saying so
  for (const dtype of ['f32', 'f64'] as const)
    it.skipIf(!stores(backend, dtype))(`loads the PyTorch model's HF-layout file and gives its logits and loss [${dtype}]`, async () => {
      const model = loadHFGPT2(HF_FILE, { backend, dtype, config: { nHead: 2 } });
      expect(model.lm_head.weight).toBe(model.transformer.wte.weight);
      expect(model.transformer.h.at(0).attn.c_attn.weight.shape).toEqual([96, 32]);
      const { logits, loss } = await run(model, META.idx, META.targets);
      // f32: the tolerances of gpt_parity.test.ts; f64: the reference's one f32 rounding
      const tol = dtype === 'f32' ? { rtol: 1e-5, atol: 1e-5 } : { rtol: 1e-7, atol: 1e-12 };
      expectClose(logits, EXPECTED_LOGITS, tol, 'logits');
      expectClose([loss!], [EXPECTED_LOSS], { rtol: dtype === 'f32' ? 1e-5 : 1e-7, atol: 0 }, 'loss');
      model.dispose();
    });

  it('gives, bit for bit, the parameters of the nanoGPT-named weights (transposes are exact)', async () => {
    const fromHF = loadHFGPT2(HF_FILE, { backend, config: { nHead: 2 } });
    const fromNano = new GPT(META.config, { backend, generator: new Generator(9) });
    const w = loadSafetensors(path('weights.safetensors'), { backend }).tensors;
    fromNano.loadStateDict(w);
    dispose(w);
    await expectSameModel(fromNano, fromHF);
    fromHF.dispose();
    fromNano.dispose();
  });

  it('exports the HF layout: the fixture file again, without its buffers', async () => {
    const model = loadHFGPT2(HF_FILE, { backend, config: { nHead: 2 } });
    const sd = hfGPT2StateDict(model);
    const file = loadSafetensors(HF_FILE, { backend }).tensors;
    const params = Object.keys(file).filter((n) => !/\.attn\.(bias|masked_bias)$/.test(n));
    expect(Object.keys(sd)).toEqual(params); // same names, same order, no lm_head (tied)
    for (const n of params) {
      expect(sd[n]!.shape, n).toEqual(file[n]!.shape);
      expect(await bits(sd[n]!), n).toEqual(await bits(file[n]!));
    }
    expect(sd['h.0.attn.c_attn.weight']!.shape).toEqual([32, 96]); // Conv1D: [in, out]
    expect(sd['h.1.mlp.c_proj.weight']!.shape).toEqual([128, 32]);
    // copies the caller owns: the model is untouched by disposing them
    expect(sd['wte.weight']).not.toBe(model.transformer.wte.weight);
    dispose(sd);
    dispose(file);
    expect(model.transformer.wte.weight.disposed).toBe(false);
    model.dispose();
  });

  const ROUND_TRIP: GPTConfig = { vocabSize: 11, blockSize: 8, nLayer: 3, nHead: 2, nEmbd: 16 };

  it('round-trips kiln → HF bytes → kiln exactly, tied and untied, with and without the prefix', async () => {
    for (const tiedHead of [true, false])
      for (const prefix of ['', 'transformer.'] as const) {
        const a = new GPT({ ...ROUND_TRIP, tiedHead }, { backend, generator: new Generator(tiedHead ? 5 : 6) });
        const bytes = await saveHFGPT2(a, { prefix });
        const b = loadHFGPT2(bytes, { backend, config: { nHead: 2 } });
        expect(b.config.tiedHead).toBe(tiedHead);
        expect(b.lm_head.weight === b.transformer.wte.weight).toBe(tiedHead);
        await expectSameModel(a, b);
        const names = parseSafetensorsHeader(bytes).entries.map((e) => e.name);
        expect(names.includes('lm_head.weight')).toBe(!tiedHead);
        expect(names.filter((n) => n !== 'lm_head.weight').every((n) => n.startsWith(prefix) && !n.startsWith(`${prefix}transformer.`))).toBe(true);
        a.dispose();
        b.dispose();
      }
  });

  it('round-trips through a file on disk and its config.json, with no config given', async () => {
    const a = new GPT(ROUND_TRIP, { backend, generator: new Generator(7) });
    const file = join(folder(), 'model.safetensors');
    await saveHFGPT2(file, a);
    const b = loadHFGPT2(file, { backend, config: { dropout: 0.1 } });
    expect(b.config.dropout).toBe(0.1);
    await expectSameModel(a, b);
    a.dispose();
    b.dispose();
  });

  it('ties lm_head.weight when the file has it equal to wte.weight, unties it when it differs', async () => {
    const equal = await editedFile((ts) => ({ ...clones(ts), 'lm_head.weight': ts['wte.weight']!.clone() }));
    const tied = loadHFGPT2(equal, { backend, config: { nHead: 2 } });
    expect(tied.lm_head.weight).toBe(tied.transformer.wte.weight);
    tied.dispose();

    const head = await editedFile((ts) => ({ ...clones(ts), 'lm_head.weight': ts['wte.weight']!.mul(2) }));
    const untied = loadHFGPT2(head, { backend, config: { nHead: 2 } });
    expect(untied.config.tiedHead).toBe(false);
    expectClose(await values(untied.lm_head.weight), (await values(untied.transformer.wte.weight)).map((x) => 2 * x), { rtol: 0, atol: 0 });
    untied.dispose();
    expect(() => loadHFGPT2(head, { backend, config: { nHead: 2, tiedHead: true } })).toThrow(
      "loadHFGPT2: config.tiedHead is true but the file's lm_head.weight differs from wte.weight",
    );

    // an untied model from a file without a head: the head starts as a copy of wte
    const own = loadHFGPT2(HF_FILE, { backend, config: { nHead: 2, tiedHead: false } });
    expect(own.lm_head.weight).not.toBe(own.transformer.wte.weight);
    expect(await bits(own.lm_head.weight)).toEqual(await bits(own.transformer.wte.weight));
    own.dispose();
  });

  it('loads half-precision files, casting to the parameter dtype', async () => {
    const half = await editedFile((ts) => Object.fromEntries(Object.entries(ts).map(([n, t]) => [n, cast(t, t.dtype === 'f32' ? 'f16' : t.dtype)])));
    const m = loadHFGPT2(half, { backend, config: { nHead: 2 } });
    const ref = loadSafetensors(half, { backend }).tensors;
    expect(m.transformer.wte.weight.dtype).toBe('f32');
    expect(await values(m.transformer.wte.weight)).toEqual(await values(ref['wte.weight']!));
    const linear = transpose(ref['h.1.mlp.c_fc.weight']!, 0, 1);
    expect(await values(m.transformer.h.at(1).mlp.c_fc.weight)).toEqual(await values(linear));
    linear.dispose();
    dispose(ref);
    m.dispose();
  });

  it('fails before allocating anything, naming the entries: missing, unexpected, Linear layout, dtype', async () => {
    const before = live();
    const drop = await editedFile((ts) => without(ts, 'h.1.mlp.c_fc.bias'));
    const extra = await editedFile((ts) => ({ ...clones(ts), 'h.0.attn.rotary.inv_freq': tensor([1, 2], { backend }) }));
    const linear = await editedFile((ts) => replaced(ts, 'h.0.attn.c_attn.weight', transpose(ts['h.0.attn.c_attn.weight']!, 0, 1)));
    const ints = await editedFile((ts) => replaced(ts, 'wpe.weight', cast(ts['wpe.weight']!, 'i32')));
    const mixed = await editedFile((ts) => ({ ...clones(ts), 'transformer.wte.weight': ts['wte.weight']!.clone() }));
    const noWte = await editedFile((ts) => without(ts, 'wte.weight'));
    const count = live();
    const opts = { backend, config: { nHead: 2 } };
    expect(() => loadHFGPT2(drop, opts)).toThrow('loadHFGPT2: missing entries: h.1.mlp.c_fc.bias');
    expect(() => loadHFGPT2(extra, opts)).toThrow('loadHFGPT2: entries that are not part of GPT-2: h.0.attn.rotary.inv_freq');
    expect(() => loadHFGPT2(linear, opts)).toThrow(
      "loadHFGPT2: 'h.0.attn.c_attn.weight' is [96,32], expected [32,96] (Conv1D weights are [in, out], the transpose of nn.Linear)",
    );
    expect(() => loadHFGPT2(ints, opts)).toThrow("loadHFGPT2: 'wpe.weight' has dtype I32, expected a floating dtype");
    expect(() => loadHFGPT2(mixed, opts)).toThrow("loadHFGPT2: 'wte.weight' appears both with and without the 'transformer.' prefix");
    expect(() => loadHFGPT2(noWte, opts)).toThrow(/loadHFGPT2: no 2-D 'wte.weight'/);
    expect(() => loadHFGPT2(join(TMP, 'absent.safetensors'), opts)).toThrow(/loadHFGPT2: cannot read '.*absent\.safetensors'/);
    expect(() => loadHFGPT2(new Uint8Array([1, 2, 3]), opts)).toThrow(/safetensors: file is 3 bytes/);
    expect(() => loadHFGPT2(HF_FILE, { backend, config: { nHead: 2, nEmbd: 64 } })).toThrow(
      `loadHFGPT2: config.nEmbd is 64 but the file has nEmbd 32 (in '${HF_FILE}')`,
    );
    expect(live()).toBe(count);
    // and a successful load leaves only the model's parameters
    const m = loadHFGPT2(HF_FILE, opts);
    expect(live()).toBe(count + m.namedParameters().length);
    m.dispose();
    expect(live()).toBe(before);
  });

  it('refuses to export models that GPT-2 cannot hold (rotary positions, no biases, grouped-query heads, a sliding window)', () => {
    const rope = new GPT({ ...ROUND_TRIP, rope: true }, { backend, generator: new Generator(1) });
    const nobias = new GPT({ ...ROUND_TRIP, bias: false }, { backend, generator: new Generator(1) });
    const gqa = new GPT({ ...ROUND_TRIP, kvHeads: 1 }, { backend, generator: new Generator(1) });
    const local = new GPT({ ...ROUND_TRIP, window: 2 }, { backend, generator: new Generator(1) });
    const before = live();
    expect(() => hfGPT2StateDict(rope)).toThrow(/hfGPT2StateDict: the model uses rotary positions/);
    expect(() => hfGPT2StateDict(nobias)).toThrow(/hfGPT2StateDict: the model has no biases/);
    expect(() => hfGPT2StateDict(gqa)).toThrow(/hfGPT2StateDict: the model has 1 key\/value heads for \d+ query heads/);
    expect(() => hfGPT2StateDict(local)).toThrow(/hfGPT2StateDict: the model attends through a sliding window of 2/);
    expect(() => hfGPT2StateDict(rope.transformer as unknown as GPT)).toThrow('hfGPT2StateDict: expected a GPT model');
    expect(live()).toBe(before);
    gqa.dispose();
    local.dispose();
    rope.dispose();
    nobias.dispose();
  });

  it('reads config.json beside the weights: every field, and the GELU and epsilon that PyTorch used', async () => {
    expect(hfGPT2Config(CFG_FILE)).toEqual({ ...CFG_CONFIG, bias: true, rope: false, tiedHead: true });
    for (const dtype of storedDtypes(backend, ['f32', 'f64'] as const)) {
      const model = loadHFGPT2(CFG_FILE, { backend, dtype });
      expect(model.config).toEqual({ ...CFG_CONFIG, dropout: 0, bias: true, rope: false, ropeBase: 10000, tiedHead: true, gradientCheckpointing: false, kvHeads: CFG_CONFIG.nHead, window: null });
      const blocks = [...model.transformer.h];
      expect(blocks.map((b) => b.mlp.act.approximate)).toEqual(['none', 'none']);
      expect([...blocks.flatMap((b) => [b.ln_1.eps, b.ln_2.eps]), model.transformer.ln_f.eps]).toEqual([0.1, 0.1, 0.1, 0.1, 0.1]);
      const { logits, loss } = await run(model, rows(CFG_EXPECTED.idx!), rows(CFG_EXPECTED.targets!));
      const tol = dtype === 'f32' ? { rtol: 1e-5, atol: 1e-5 } : { rtol: 1e-7, atol: 1e-12 };
      expectClose(logits, CFG_EXPECTED.logits!.data, tol, `logits [${dtype}]`);
      expectClose([loss!], CFG_EXPECTED.loss!.data, { rtol: dtype === 'f32' ? 1e-5 : 1e-7, atol: 0 }, `loss [${dtype}]`);
      model.dispose();
    }
    // the same bytes without config.json, as GPT-2's defaults (gelu_new, 1e-5): PyTorch's other logits
    const bytes = readFileSync(CFG_FILE);
    const plain = loadHFGPT2(bytes, { backend, config: { nHead: 4 } });
    expect(plain.config).toMatchObject({ activation: 'gelu_tanh', layerNormEps: 1e-5 });
    expectClose((await run(plain, rows(CFG_EXPECTED.idx!))).logits, CFG_EXPECTED.logits_default!.data, { rtol: 1e-5, atol: 1e-5 }, 'default logits');
    // and config.json's model equals, bit for bit, a GPT built with the explicit config and the same weights
    const fromJSON = loadHFGPT2(CFG_FILE, { backend });
    const explicit = new GPT(CFG_CONFIG, { backend, generator: new Generator(3) });
    explicit.loadStateDict(fromJSON.stateDict());
    const [a, b] = [await run(fromJSON, rows(CFG_EXPECTED.idx!)), await run(explicit, rows(CFG_EXPECTED.idx!))];
    expect(Array.from(b.logits)).toEqual(Array.from(a.logits));
    for (const m of [plain, fromJSON, explicit]) m.dispose();
  });

  it('maps each config.json field: sizes checked against the tensors, tie_word_embeddings, activation_function names', () => {
    // the sizes are read: a wrong one is an error naming the field and both values
    for (const [field, key, value, found] of [
      ['n_positions', 'blockSize', 16, 8],
      ['n_embd', 'nEmbd', 32, 16],
      ['n_layer', 'nLayer', 3, 2],
      ['vocab_size', 'vocabSize', 50257, 19],
    ] as const) {
      const file = withConfig({ ...CFG_JSON, [field]: value });
      expect(() => loadHFGPT2(file, { backend }), field).toThrow(
        `loadHFGPT2: '${join(file, '..', 'config.json')}' has ${field} ${value} but the weights have ${key} ${found} (in '${file}')`,
      );
    }
    // tie_word_embeddings false: an untied head, starting from wte
    const untied = loadHFGPT2(withConfig({ ...CFG_JSON, tie_word_embeddings: false }), { backend });
    expect(untied.config.tiedHead).toBe(false);
    expect(untied.lm_head.weight).not.toBe(untied.transformer.wte.weight);
    untied.dispose();
    // a config.json without the optional fields: GPT-2's defaults, the head tied as the file says
    const minimal = withConfig({ n_head: 4 });
    expect(hfGPT2Config(minimal)).toEqual({ ...CFG_CONFIG, activation: 'gelu_tanh', layerNormEps: 1e-5, bias: true, rope: false, tiedHead: true });
    // the activation names whose math is the tanh approximation or the exact erf
    for (const [name, activation] of [
      ['gelu_new', 'gelu_tanh'],
      ['gelu_pytorch_tanh', 'gelu_tanh'],
      ['gelu_fast', 'gelu_tanh'],
      ['gelu_accurate', 'gelu_tanh'],
      ['gelu', 'gelu'],
      ['gelu_python', 'gelu'],
    ] as const)
      expect(hfGPT2Config(withConfig({ ...CFG_JSON, activation_function: name })).activation, name).toBe(activation);
    for (const name of ['quick_gelu', 'gelu_10', 'relu', 'silu', 'constructor'])
      expect(() => hfGPT2Config(withConfig({ ...CFG_JSON, activation_function: name })), name).toThrow(
        new RegExp(`^hfGPT2Config: '.*config\\.json': activation_function "${name}" is not a GELU kiln's GPT has; expected one of "gelu_new", `),
      );
  });

  it("GPTConfig's activation and layerNormEps reach the MLPs and every norm, and are checked", () => {
    const m = new GPT({ ...ROUND_TRIP, activation: 'gelu', layerNormEps: 1e-3 }, { backend, generator: new Generator(2) });
    expect([...m.transformer.h].map((b) => [b.mlp.act.approximate, b.ln_1.eps, b.ln_2.eps])).toEqual(Array(3).fill(['none', 1e-3, 1e-3]));
    expect(m.transformer.ln_f.eps).toBe(1e-3);
    m.dispose();
    const d = new GPT(ROUND_TRIP, { backend, generator: new Generator(2) });
    expect(d.config).toMatchObject({ activation: 'gelu_tanh', layerNormEps: 1e-5 });
    expect(d.transformer.h.at(0).mlp.act.approximate).toBe('tanh');
    d.dispose();
    expect(() => new GPT({ ...ROUND_TRIP, activation: 'gelu_new' as 'gelu' }, { backend })).toThrow(
      "GPT: config.activation must be 'gelu' or 'gelu_tanh', got 'gelu_new'",
    );
    expect(() => new GPT({ ...ROUND_TRIP, layerNormEps: 0 }, { backend })).toThrow('GPT: config.layerNormEps must be a positive finite number, got 0');
  });

  it('an explicit config must agree with config.json; the error names both values', () => {
    const json = join(CFG_DIR, 'config.json');
    const cases: [Partial<GPTConfig>, string][] = [
      [{ nHead: 2 }, `config.nHead is 2 but '${json}' has n_head 4`],
      [{ activation: 'gelu_tanh' }, `config.activation is "gelu_tanh" but '${json}' has activation_function "gelu"`],
      [{ layerNormEps: 1e-5 }, `config.layerNormEps is 0.00001 but '${json}' has layer_norm_epsilon 0.1`],
      [{ tiedHead: false }, `config.tiedHead is false but '${json}' has tie_word_embeddings true`],
      [{ blockSize: 16 }, `config.blockSize is 16 but '${json}' has n_positions 8`],
      [{ vocabSize: 20 }, `config.vocabSize is 20 but '${json}' has vocab_size 19`],
    ];
    for (const [config, message] of cases) {
      expect(() => loadHFGPT2(CFG_FILE, { backend, config }), message).toThrow(`loadHFGPT2: ${message} (in '${CFG_FILE}')`);
      expect(() => hfGPT2Config(CFG_FILE, config), message).toThrow(`hfGPT2Config: ${message}`);
    }
    const newGelu = withConfig({ ...CFG_JSON, activation_function: 'gelu_new' });
    expect(() => hfGPT2Config(newGelu, { activation: 'gelu' })).toThrow(
      `hfGPT2Config: config.activation is "gelu" but '${join(newGelu, '..', 'config.json')}' has activation_function "gelu_new" (kiln's "gelu_tanh")`,
    );
    expect(hfGPT2Config(newGelu, { activation: 'gelu_tanh' }).activation).toBe('gelu_tanh');
    // agreeing values (and dropout, which config.json does not set) are fine
    const m = loadHFGPT2(CFG_FILE, { backend, config: { nHead: 4, activation: 'gelu', layerNormEps: 0.1, tiedHead: true, dropout: 0.2 } });
    expect(m.config).toMatchObject({ ...CFG_CONFIG, dropout: 0.2 });
    m.dispose();
  });

  it('a malformed config.json is an error naming the file and the field, before anything is allocated', () => {
    const before = live();
    const cases: [Record<string, unknown> | string, RegExp | string][] = [
      ['{"n_head": 4,', /is not valid JSON: /],
      ['[4]', 'must hold a JSON object (a Hugging Face GPT2Config), got an array'],
      ['12', 'must hold a JSON object (a Hugging Face GPT2Config), got 12'],
      [{ ...CFG_JSON, n_head: '4' }, `: n_head must be a positive integer, got "4"`],
      [{ ...CFG_JSON, n_head: 2.5 }, ': n_head must be a positive integer, got 2.5'],
      [{ ...CFG_JSON, n_head: 0 }, ': n_head must be a positive integer, got 0'],
      [{ ...CFG_JSON, n_head: null }, ': n_head must be a positive integer, got null'],
      [{ ...CFG_JSON, n_positions: -8 }, ': n_positions must be a positive integer, got -8'],
      [{ ...CFG_JSON, vocab_size: 19.5 }, ': vocab_size must be a positive integer, got 19.5'],
      [{ ...CFG_JSON, layer_norm_epsilon: '1e-5' }, ': layer_norm_epsilon must be a positive number, got "1e-5"'],
      [{ ...CFG_JSON, layer_norm_epsilon: 0 }, ': layer_norm_epsilon must be a positive number, got 0'],
      [{ ...CFG_JSON, activation_function: 1 }, ': activation_function must be a string, got 1'],
      [{ ...CFG_JSON, tie_word_embeddings: 'yes' }, ': tie_word_embeddings must be true or false, got "yes"'],
      [{ ...CFG_JSON, n_inner: 'wide' }, ': n_inner must be null or a positive integer, got "wide"'],
      [{ ...CFG_JSON, n_inner: 32 }, " has n_inner 32; kiln's GPT has an MLP of width 4·n_embd = 64"],
      [{ ...CFG_JSON, scale_attn_weights: false }, ": scale_attn_weights is false; kiln's attention always scales by 1/√headSize"],
      [{ ...CFG_JSON, scale_attn_by_inverse_layer_idx: true }, ": scale_attn_by_inverse_layer_idx is true; kiln's attention has no per-layer scaling"],
      [{ n_embd: 16 }, "' has no n_head; pass it as { config: { nHead } }"],
    ];
    for (const [config, message] of cases) {
      const file = withConfig(config);
      const json = `'${join(file, '..', 'config.json')}'`;
      const what = typeof config === 'string' ? config : JSON.stringify(config).slice(0, 60);
      let error: Error | undefined;
      try {
        loadHFGPT2(file, { backend });
      } catch (e) {
        error = e as Error;
      }
      expect(error?.message, what).toMatch(/^loadHFGPT2: /);
      expect(error!.message, what).toContain(json);
      if (typeof message === 'string') expect(error!.message, what).toContain(message);
      else expect(error!.message, what).toMatch(message);
    }
    // a config.json that cannot be read
    const dir = folder();
    copyFileSync(CFG_FILE, join(dir, 'model.safetensors'));
    mkdirSync(join(dir, 'config.json'));
    expect(() => loadHFGPT2(join(dir, 'model.safetensors'), { backend })).toThrow(`loadHFGPT2: cannot read '${join(dir, 'config.json')}'`);
    expect(live()).toBe(before);
  });

  it('saves config.json beside the weights (atomically), so a save → load round-trip needs no config', async () => {
    for (const [config, activation] of [
      [{ ...ROUND_TRIP, activation: 'gelu', layerNormEps: 1e-3, tiedHead: false }, 'gelu'],
      [ROUND_TRIP, 'gelu_new'],
    ] as const) {
      const a = new GPT(config, { backend, generator: new Generator(8) });
      const dir = folder();
      const file = join(dir, 'model.safetensors');
      await saveHFGPT2(file, a, { prefix: 'transformer.' });
      expect(readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']); // no temporary files left
      expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))).toEqual({
        model_type: 'gpt2',
        architectures: ['GPT2LMHeadModel'],
        vocab_size: 11,
        n_positions: 8,
        n_ctx: 8,
        n_embd: 16,
        n_layer: 3,
        n_head: 2,
        layer_norm_epsilon: a.config.layerNormEps,
        activation_function: activation,
        tie_word_embeddings: a.config.tiedHead,
      });
      const b = loadHFGPT2(file, { backend });
      await expectSameModel(a, b);
      const x = [[1, 2, 3, 4, 5, 6, 7, 8]];
      expect(Array.from((await run(b, x)).logits)).toEqual(Array.from((await run(a, x)).logits));
      a.dispose();
      b.dispose();
    }
  });

  it('hfGPT2Gradients: the gradients under the HF names and layout, as PyTorch computes them on the HF tensors', async () => {
    for (const dtype of storedDtypes(backend, ['f32', 'f64'] as const)) {
      const model = loadHFGPT2(CFG_FILE, { backend, dtype });
      expect(hfGPT2Gradients(model)).toEqual({}); // no gradient yet: nothing
      tidy(() => model.forward(ids(rows(CFG_EXPECTED.idx!)), ids(rows(CFG_EXPECTED.targets!))).loss!.backward());
      const before = live();
      const grads = hfGPT2Gradients(model);
      const sd = hfGPT2StateDict(model);
      // the names and shapes of the state dict (wte's gradient holds the tied head's)
      expect(Object.keys(grads)).toEqual(Object.keys(sd));
      for (const n of Object.keys(sd)) expect(grads[n]!.shape, n).toEqual(sd[n]!.shape);
      expect(grads['h.0.attn.c_attn.weight']!.shape).toEqual([16, 48]);
      // PyTorch's gradients of the HF-layout tensors
      const tol = dtype === 'f32' ? { rtol: 1e-5, atol: 1e-6 } : { rtol: 1e-7, atol: 1e-12 };
      for (const [n, g] of Object.entries(grads)) expectClose(await values(g), CFG_EXPECTED[`grad.${n}`]!.data, tol, `grad ${n} [${dtype}]`);
      // bit for bit kiln's .grad: Conv1D ones transposed element by element, the others as they are
      for (const [name, p] of model.namedParameters()) {
        const hf = grads[name.replace(/^transformer\./, '')]!;
        if (/\.(c_attn|c_proj|c_fc)\.weight$/.test(name)) {
          // hf [in, out][i][j] = kiln [out, in][j][i]
          const k = await p.grad!.data();
          const [outDim, inDim] = p.shape as [number, number];
          const t = dtype === 'f32' ? new Float32Array(k.length) : new Float64Array(k.length);
          for (let i = 0; i < inDim; i++) for (let j = 0; j < outDim; j++) t[i * outDim + j] = k[j * inDim + i]!;
          expect(await bits(hf), `${name}: the transpose of kiln's grad`).toEqual(new Uint8Array(t.buffer));
        } else expect(await bits(hf), name).toEqual(await bits(p.grad!));
      }
      // copies the caller owns
      dispose(grads);
      dispose(sd);
      expect(live()).toBe(before);
      expect(model.transformer.h.at(0).attn.c_attn.weight.grad!.disposed).toBe(false);
      model.dispose();
    }
  });

  it('hfGPT2Gradients: the prefix, an untied head, and parameters without a gradient left out', async () => {
    const model = new GPT({ ...ROUND_TRIP, tiedHead: false }, { backend, generator: new Generator(4) });
    model.freeze('transformer.wpe', 'transformer.h.1.mlp.c_fc.weight');
    const x = [[1, 2, 3, 4, 5, 6, 7, 8]];
    tidy(() => model.forward(ids(x), ids([[2, 3, 4, 5, 6, 7, 8, 9]])).loss!.backward());
    const grads = hfGPT2Gradients(model, { prefix: 'transformer.' });
    const names = hfGPT2StateDict(model, { prefix: 'transformer.' });
    const expected = Object.keys(names).filter((n) => n !== 'transformer.wpe.weight' && n !== 'transformer.h.1.mlp.c_fc.weight');
    expect(Object.keys(grads)).toEqual(expected);
    expect(Object.keys(grads)).toContain('lm_head.weight');
    expect(await bits(grads['lm_head.weight']!)).toEqual(await bits(model.lm_head.weight.grad!));
    dispose(grads);
    dispose(names);
    expect(() => hfGPT2Gradients(model.transformer as unknown as GPT)).toThrow('hfGPT2Gradients: expected a GPT model');
    const rope = new GPT({ ...ROUND_TRIP, rope: true }, { backend, generator: new Generator(1) });
    expect(() => hfGPT2Gradients(rope)).toThrow(/^hfGPT2Gradients: the model uses rotary positions/);
    rope.dispose();
    model.dispose();
  });

  /** Copies of every tensor of `ts` (so an edit can be disposed apart from the original). */
  function clones(ts: Record<string, Tensor>): Record<string, Tensor> {
    return Object.fromEntries(Object.entries(ts).map(([n, t]) => [n, t.clone()]));
  }
  /** Copies of the tensors of `ts`, `t` in place of entry `name` (in the same position). */
  function replaced(ts: Record<string, Tensor>, name: string, t: Tensor): Record<string, Tensor> {
    return Object.fromEntries(Object.entries(ts).map(([n, x]) => [n, n === name ? t : x.clone()]));
  }
  /** Copies of every tensor of `ts` but `name`. */
  function without(ts: Record<string, Tensor>, name: string): Record<string, Tensor> {
    return clones(Object.fromEntries(Object.entries(ts).filter(([n]) => n !== name)));
  }
});
