/**
 * Hugging Face GPT-2 files (src/io/hf_gpt2.ts): the fixture test/fixtures/gpt/hf_gpt2.safetensors
 * (written by test/fixtures/make_gpt_fixtures.py in GPT-2's layout: no prefix, Conv1D weights
 * [in, out], the attn.bias / attn.masked_bias buffers, no lm_head; the script checks it with a
 * forward written against that layout) loads into kiln's GPT and gives PyTorch's logits, with
 * the same parameters, bit for bit, as the nanoGPT-named weights; kiln → HF → kiln round trips
 * are exact (tied and untied heads, with and without the `transformer.` prefix, through a file);
 * the config is read from the sizes; and malformed files fail before anything is allocated.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { Generator, cast, memory, tensor, tidy, transpose, type Tensor } from '../src/index.js';
import { loadSafetensors, parseSafetensorsHeader, saveSafetensorsSync } from '../src/io/index.js';
import { hfGPT2Config, hfGPT2StateDict, loadHFGPT2, saveHFGPT2 } from '../src/io/hf_gpt2.js';
import { GPT, type GPTConfig } from '../src/nn/index.js';
import { describeBackends, expectClose, values } from './harness.js';

const DIR = new URL('./fixtures/gpt/', import.meta.url);
const path = (name: string): string => fileURLToPath(new URL(name, DIR));
const HF_FILE = path('hf_gpt2.safetensors');
const META = JSON.parse(readFileSync(path('gpt.json'), 'utf8')) as { config: GPTConfig; idx: number[][]; targets: number[][] };
const EXPECTED = loadSafetensors(path('expected.safetensors'), { backend: 'ref' }).tensors;
const EXPECTED_LOGITS = Float32Array.from(EXPECTED.logits!.dataSync());
const EXPECTED_LOSS = EXPECTED.loss!.item();
for (const t of Object.values(EXPECTED)) t.dispose();

const TMP = mkdtempSync(join(tmpdir(), 'kiln-hf-gpt2-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

/** Bytes of a tensor's elements, for bitwise comparison. */
const bits = (t: Tensor): Uint8Array => {
  const d = t.dataSync();
  return new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
};

describeBackends('Hugging Face GPT-2', (backend) => {
  const ids = (rows: number[][]): Tensor => tensor(rows, { backend, dtype: 'i32' });
  const live = (): number => memory().backends[backend]?.tensors ?? 0;
  const dispose = (ts: Record<string, Tensor>): void => Object.values(ts).forEach((t) => t.dispose());
  /** The fixture's HF file as tensors, edited by `edit`, re-encoded. */
  const editedFile = (edit: (ts: Record<string, Tensor>) => Record<string, Tensor>): Uint8Array => {
    const ts = loadSafetensors(HF_FILE, { backend }).tensors;
    const edited = edit(ts);
    const bytes = saveSafetensorsSync(edited, { format: 'pt' });
    dispose(ts);
    dispose(edited);
    return bytes;
  };
  /** Every parameter of `b` equals `a`'s bit for bit (names and ties included), and the configs but dropout agree. */
  const expectSameModel = (a: GPT, b: GPT): void => {
    expect(b.namedParameters().map(([n]) => n)).toEqual(a.namedParameters().map(([n]) => n));
    expect({ ...b.config, dropout: 0 }).toEqual({ ...a.config, dropout: 0 });
    const pb = new Map(b.namedParameters());
    for (const [n, p] of a.namedParameters()) expect(bits(pb.get(n)!), n).toEqual(bits(p));
  };

  it('reads the config from the sizes (nHead from the caller, or nEmbd/64 as every GPT-2)', () => {
    expect(hfGPT2Config(HF_FILE, { nHead: 2 })).toEqual({ ...META.config, bias: true, rope: false, tiedHead: true });
    expect(() => hfGPT2Config(HF_FILE)).toThrow(/hfGPT2Config: cannot infer nHead for nEmbd 32 .*pass config\.nHead/);
    expect(() => hfGPT2Config(HF_FILE, { nHead: 2, nLayer: 3 })).toThrow('hfGPT2Config: config.nLayer is 3 but the file has nLayer 2');
    expect(() => hfGPT2Config(HF_FILE, { nHead: 2, rope: true })).toThrow(/config\.rope must be false/);
    expect(() => hfGPT2Config(HF_FILE, { nHead: 2, bias: false })).toThrow(/config\.bias must be true/);
    // GPT-2 small's shape: 12 heads of 64 from nEmbd 768, read from a header of the right sizes
    const small = new GPT({ vocabSize: 7, blockSize: 4, nLayer: 1, nHead: 12, nEmbd: 768 }, { backend, generator: new Generator(1) });
    const sd = hfGPT2StateDict(small);
    const bytes = saveSafetensorsSync(sd);
    dispose(sd);
    small.dispose();
    expect(hfGPT2Config(bytes).nHead).toBe(12);
  });

  for (const dtype of ['f32', 'f64'] as const)
    it(`loads the PyTorch model's HF-layout file and gives its logits and loss [${dtype}]`, () => {
      const model = loadHFGPT2(HF_FILE, { backend, dtype, config: { nHead: 2 } });
      expect(model.lm_head.weight).toBe(model.transformer.wte.weight);
      expect(model.transformer.h.at(0).attn.c_attn.weight.shape).toEqual([96, 32]);
      tidy(() => {
        const { logits, loss } = model.forward(ids(META.idx), ids(META.targets));
        // f32: the tolerances of gpt_parity.test.ts; f64: the reference's one f32 rounding
        const tol = dtype === 'f32' ? { rtol: 1e-5, atol: 1e-5 } : { rtol: 1e-7, atol: 1e-12 };
        expectClose(values(logits), EXPECTED_LOGITS, tol, 'logits');
        expectClose([loss!.item()], [EXPECTED_LOSS], { rtol: dtype === 'f32' ? 1e-5 : 1e-7, atol: 0 }, 'loss');
      });
      model.dispose();
    });

  it('gives, bit for bit, the parameters of the nanoGPT-named weights (transposes are exact)', () => {
    const fromHF = loadHFGPT2(HF_FILE, { backend, config: { nHead: 2 } });
    const fromNano = new GPT(META.config, { backend, generator: new Generator(9) });
    const w = loadSafetensors(path('weights.safetensors'), { backend }).tensors;
    fromNano.loadStateDict(w);
    dispose(w);
    expectSameModel(fromNano, fromHF);
    fromHF.dispose();
    fromNano.dispose();
  });

  it('exports the HF layout: the fixture file again, without its buffers', () => {
    const model = loadHFGPT2(HF_FILE, { backend, config: { nHead: 2 } });
    const sd = hfGPT2StateDict(model);
    const file = loadSafetensors(HF_FILE, { backend }).tensors;
    const params = Object.keys(file).filter((n) => !/\.attn\.(bias|masked_bias)$/.test(n));
    expect(Object.keys(sd)).toEqual(params); // same names, same order, no lm_head (tied)
    for (const n of params) {
      expect(sd[n]!.shape, n).toEqual(file[n]!.shape);
      expect(bits(sd[n]!), n).toEqual(bits(file[n]!));
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
        expectSameModel(a, b);
        const names = parseSafetensorsHeader(bytes).entries.map((e) => e.name);
        expect(names.includes('lm_head.weight')).toBe(!tiedHead);
        expect(names.filter((n) => n !== 'lm_head.weight').every((n) => n.startsWith(prefix) && !n.startsWith(`${prefix}transformer.`))).toBe(true);
        a.dispose();
        b.dispose();
      }
  });

  it('round-trips through a file on disk', async () => {
    const a = new GPT(ROUND_TRIP, { backend, generator: new Generator(7) });
    const file = join(TMP, `model-${backend}.safetensors`);
    await saveHFGPT2(file, a);
    const b = loadHFGPT2(file, { backend, config: { nHead: 2, dropout: 0.1 } });
    expect(b.config.dropout).toBe(0.1);
    expectSameModel(a, b);
    a.dispose();
    b.dispose();
  });

  it('ties lm_head.weight when the file has it equal to wte.weight, unties it when it differs', () => {
    const equal = editedFile((ts) => ({ ...clones(ts), 'lm_head.weight': ts['wte.weight']!.clone() }));
    const tied = loadHFGPT2(equal, { backend, config: { nHead: 2 } });
    expect(tied.lm_head.weight).toBe(tied.transformer.wte.weight);
    tied.dispose();

    const head = editedFile((ts) => ({ ...clones(ts), 'lm_head.weight': ts['wte.weight']!.mul(2) }));
    const untied = loadHFGPT2(head, { backend, config: { nHead: 2 } });
    expect(untied.config.tiedHead).toBe(false);
    expectClose(values(untied.lm_head.weight), values(untied.transformer.wte.weight).map((x) => 2 * x), { rtol: 0, atol: 0 });
    untied.dispose();
    expect(() => loadHFGPT2(head, { backend, config: { nHead: 2, tiedHead: true } })).toThrow(
      "loadHFGPT2: config.tiedHead is true but the file's lm_head.weight differs from wte.weight",
    );

    // an untied model from a file without a head: the head starts as a copy of wte
    const own = loadHFGPT2(HF_FILE, { backend, config: { nHead: 2, tiedHead: false } });
    expect(own.lm_head.weight).not.toBe(own.transformer.wte.weight);
    expect(bits(own.lm_head.weight)).toEqual(bits(own.transformer.wte.weight));
    own.dispose();
  });

  it('loads half-precision files, casting to the parameter dtype', () => {
    const half = editedFile((ts) => Object.fromEntries(Object.entries(ts).map(([n, t]) => [n, cast(t, t.dtype === 'f32' ? 'f16' : t.dtype)])));
    const m = loadHFGPT2(half, { backend, config: { nHead: 2 } });
    const ref = loadSafetensors(half, { backend }).tensors;
    expect(m.transformer.wte.weight.dtype).toBe('f32');
    expect(values(m.transformer.wte.weight)).toEqual(values(ref['wte.weight']!));
    tidy(() => expect(values(m.transformer.h.at(1).mlp.c_fc.weight)).toEqual(values(transpose(ref['h.1.mlp.c_fc.weight']!, 0, 1))));
    dispose(ref);
    m.dispose();
  });

  it('fails before allocating anything, naming the entries: missing, unexpected, Linear layout, dtype', () => {
    const before = live();
    const drop = editedFile((ts) => without(ts, 'h.1.mlp.c_fc.bias'));
    const extra = editedFile((ts) => ({ ...clones(ts), 'h.0.attn.rotary.inv_freq': tensor([1, 2], { backend }) }));
    const linear = editedFile((ts) => replaced(ts, 'h.0.attn.c_attn.weight', transpose(ts['h.0.attn.c_attn.weight']!, 0, 1)));
    const ints = editedFile((ts) => replaced(ts, 'wpe.weight', cast(ts['wpe.weight']!, 'i32')));
    const mixed = editedFile((ts) => ({ ...clones(ts), 'transformer.wte.weight': ts['wte.weight']!.clone() }));
    const noWte = editedFile((ts) => without(ts, 'wte.weight'));
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

  it('refuses to export models that GPT-2 cannot hold (rotary positions, no biases)', () => {
    const rope = new GPT({ ...ROUND_TRIP, rope: true }, { backend, generator: new Generator(1) });
    const nobias = new GPT({ ...ROUND_TRIP, bias: false }, { backend, generator: new Generator(1) });
    const before = live();
    expect(() => hfGPT2StateDict(rope)).toThrow(/hfGPT2StateDict: the model uses rotary positions/);
    expect(() => hfGPT2StateDict(nobias)).toThrow(/hfGPT2StateDict: the model has no biases/);
    expect(() => hfGPT2StateDict(rope.transformer as unknown as GPT)).toThrow('hfGPT2StateDict: expected a GPT model');
    expect(live()).toBe(before);
    rope.dispose();
    nobias.dispose();
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
