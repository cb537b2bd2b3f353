/**
 * Each bug the parser fuzzers (`test/fuzz/`, `npm run fuzz`) found, as a fixed case: a
 * RangeError escaping from an error message that quoted deeply nested JSON, errors without the
 * API's prefix, a leak when memory runs out mid-load, a hang on a pattern that matches the
 * empty string, a layer index that made the GPT-2 planner list billions of entries, a
 * `__proto__` token lost on save, and readers that accepted what they could not use. Cases that
 * used to hang run under a time limit (node:vm interrupts them), so a regression fails instead
 * of stalling the suite.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, runInContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BPETokenizer,
  Generator,
  Linear,
  WordPieceTokenizer,
  backendSync,
  hfGPT2Config,
  loadCheckpoint,
  loadHFGPT2,
  loadSafetensors,
  loadTokenizer,
  parseSafetensorsHeader,
  pretokenize,
} from '../src/index.js';
import { buildCheckpoint } from './fuzz/checkpoint.fuzz.js';
import { RawJSON, jsonText, safetensorsBytes } from './fuzz/common.js';
import { buildFolder } from './fuzz/hf_gpt2.fuzz.js';
import { liveTensors } from './harness.js';

const scratch = mkdtempSync(join(tmpdir(), 'kiln-fuzz-regressions-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** `fn()` within `ms` milliseconds of synchronous work (node:vm interrupts it), else an error. */
function within<R>(ms: number, fn: () => R): R {
  return runInContext('fn()', createContext({ fn }), { timeout: ms }) as R;
}

const DEEP = new RawJSON(`${'['.repeat(20_000)}${']'.repeat(20_000)}`);
const deep = (): unknown => JSON.parse(DEEP.text);
/** An error that is an Error (not a RangeError) with this message start. */
const named = (prefix: string): RegExp => new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);

describe('safetensors', () => {
  it('quotes deeply nested header values without overflowing the stack', () => {
    for (const field of ['dtype', 'shape', 'data_offsets']) {
      const entry = { dtype: 'F32', shape: [0], data_offsets: [0, 0], [field]: DEEP };
      const bytes = safetensorsBytes(jsonText({ w: entry }), new Uint8Array(0));
      expect(() => parseSafetensorsHeader(bytes)).toThrow(/^parseSafetensorsHeader: tensor 'w': .* got \[\[\[\[…\]\]\]\]$/);
    }
  });

  it('quotes a 10,000-dimension shape in a short message', () => {
    const bytes = safetensorsBytes(jsonText({ w: { dtype: 'F32', shape: new Array(10_000).fill(2), data_offsets: [0, 4] } }), new Uint8Array(4));
    let message = '';
    try {
      parseSafetensorsHeader(bytes);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^parseSafetensorsHeader: tensor 'w': F32 \[2,2,.*…/);
    expect(message.length).toBeLessThan(300);
  });

  it('frees what it made and names itself when memory runs out part-way', () => {
    const bytes = safetensorsBytes(
      jsonText({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }),
      new Uint8Array(8),
    );
    const ref = backendSync('ref');
    const alloc = ref.alloc;
    let calls = 0;
    ref.alloc = (dtype, size) => {
      if (++calls === 2) throw new Error('out of memory (simulated)');
      return alloc.call(ref, dtype, size);
    };
    const before = liveTensors();
    try {
      expect(() => loadSafetensors(bytes, { backend: 'ref' })).toThrow(/^loadSafetensors: cannot allocate \[1\] f32 .*out of memory \(simulated\)/);
    } finally {
      ref.alloc = alloc;
    }
    expect(liveTensors()).toBe(before);
  });
});

describe('loadCheckpoint', () => {
  const file = join(scratch, 'c.safetensors');
  const model = new Linear(3, 2, { backend: 'ref', generator: new Generator(1) });
  const weight = (): number[] => Array.from(model.weight.dataSync() as Float32Array);

  it('names itself when a correctly signed file holds a tensor kiln cannot load, or the backend is unknown', async () => {
    writeFileSync(file, buildCheckpoint([{ kind: 'add', name: 'model.extra', dtype: 'I64', shape: [1], data: new Uint8Array([0, 0, 0, 0, 1, 0, 0, 0]) }], 'v2'));
    const w = weight();
    await expect(loadCheckpoint(file, { model, backend: 'ref' })).rejects.toThrow(/^loadCheckpoint: '.*' cannot be loaded: safetensors: tensor 'model.extra': I64 value 4294967296 .* does not fit in i32/);
    writeFileSync(file, buildCheckpoint([{ kind: 'add', name: 'model.extra', dtype: 'F8_E4M3', shape: [1], data: new Uint8Array(1) }], 'v2'));
    await expect(loadCheckpoint(file, { model, backend: 'ref' })).rejects.toThrow(/^loadCheckpoint: .* cannot be loaded: safetensors: tensor 'model.extra' has dtype F8_E4M3/);
    writeFileSync(file, buildCheckpoint([], 'v2'));
    await expect(loadCheckpoint(file, { model, backend: 'no-such-backend' })).rejects.toThrow(/^loadCheckpoint: .* cannot be loaded: safetensors: /);
    expect(weight()).toEqual(w);
  });

  it('quotes deeply nested metadata values, and checks that optimizer state lists tensor names', async () => {
    writeFileSync(file, buildCheckpoint([{ kind: 'info', path: 'version', value: DEEP }], 'v2'));
    await expect(loadCheckpoint(file, { model })).rejects.toThrow(/^loadCheckpoint: .* is corrupt or not a checkpoint: unsupported checkpoint version \[\[\[\[…\]\]\]\]$/);
    writeFileSync(file, buildCheckpoint([{ kind: 'info', path: 'optimizer.state.1.tensors.0', value: DEEP }], 'v2'));
    await expect(loadCheckpoint(file, { model })).rejects.toThrow(
      /^loadCheckpoint: .* malformed optimizer state: parameter "1" must list its tensors as an array of names, got \[\[\[\[…\]\]\],"expAvgSq"\]$/,
    );
  });

  it("reads an entry named 'model.__proto__' as an entry (the model refuses it), not as a prototype", async () => {
    writeFileSync(file, buildCheckpoint([{ kind: 'add', name: 'model.__proto__', dtype: 'F32', shape: [1], data: new Uint8Array(4) }], 'v2'));
    await expect(loadCheckpoint(file, { model, backend: 'ref' })).rejects.toThrow(/does not fit the targets, which are unchanged: Linear.loadStateDict: unexpected keys: __proto__/);
  });
});

describe('tokenizer JSON and vocabulary files', () => {
  it('a pattern that matches the empty string no longer loops forever on characters outside the BMP', () => {
    expect(within(2000, () => pretokenize('a😀b', ''))).toEqual(['a😀b']);
    expect(within(2000, () => pretokenize('😀a😀', 'a*'))).toEqual(['😀', 'a', '😀']);
    const tok = within(2000, () => BPETokenizer.fromJSON({ ...BPETokenizer.train('', { vocabSize: 256 }).toJSON(), pattern: '' }));
    expect(within(2000, () => tok.decode(tok.encode('emoji 😀 here')))).toBe('emoji 😀 here');
  });

  it("saves a token spelled '__proto__' as a vocabulary entry, so the file reads back", () => {
    const tok = BPETokenizer.train('__proto__ '.repeat(8), { vocabSize: 270, pattern: '\\S+|\\s+' });
    const json = JSON.parse(JSON.stringify(tok.toJSON())) as ReturnType<BPETokenizer['toJSON']>;
    expect(Object.hasOwn(json.vocab, '__proto__')).toBe(true);
    const again = BPETokenizer.fromJSON(json);
    expect(again.encode('__proto__')).toEqual(tok.encode('__proto__'));
    expect(tok.encode('__proto__')).toHaveLength(1);
  });

  it('writes the JSON of a tokenizer with an id near 2^26 from its defined ids only', () => {
    const json = BPETokenizer.train('', { vocabSize: 256 }).toJSON();
    const tok = within(1000, () => BPETokenizer.fromJSON({ ...json, specialTokens: { '<s>': 2 ** 26 - 1 } }));
    expect(tok.vocabSize).toBe(2 ** 26);
    expect(Object.keys(within(1000, () => tok.toJSON()).vocab)).toHaveLength(256);
  });

  it('BPETokenizer.fromJSON and loadTokenizer quote nested values and check every field type', () => {
    const json = BPETokenizer.train('', { vocabSize: 256 }).toJSON();
    expect(() => loadTokenizer({ type: deep() } as never)).toThrow(/^loadTokenizer: unknown tokenizer type \[\[\[\[…\]\]\]\]/);
    expect(() => BPETokenizer.fromJSON({ ...json, version: deep() } as never)).toThrow(/^BPETokenizer.fromJSON: unsupported version \[\[\[\[…\]\]\]\]/);
    expect(() => BPETokenizer.fromJSON({ ...json, vocab: { ...json.vocab, x: deep() } } as never)).toThrow(/^BPETokenizer.fromJSON: vocabulary token "x" has id \[\[\[\[…\]\]\]\]/);
    expect(() => BPETokenizer.fromJSON({ ...json, pattern: 5 } as never)).toThrow(/^BPETokenizer.fromJSON: BPETokenizer: pattern must be a string/);
    expect(() => BPETokenizer.fromJSON({ ...json, specialTokens: 'ab' } as never)).toThrow(/^BPETokenizer.fromJSON: BPETokenizer: specialTokens must be an object/);
  });

  it('WordPieceTokenizer.fromJSON names itself and checks every option type', () => {
    const json = WordPieceTokenizer.fromVocab(['[UNK]', 'a']).toJSON();
    expect(() => WordPieceTokenizer.fromJSON({ ...json, unkToken: 'x' })).toThrow(named('WordPieceTokenizer.fromJSON: WordPieceTokenizer: the unknown token "x"'));
    expect(() => WordPieceTokenizer.fromJSON({ ...json, specialTokens: 5 } as never)).toThrow(named('WordPieceTokenizer.fromJSON: WordPieceTokenizer: specialTokens must be an array of strings, got 5'));
    expect(() => WordPieceTokenizer.fromJSON({ ...json, lowercase: 'yes' } as never)).toThrow(named('WordPieceTokenizer.fromJSON: WordPieceTokenizer: lowercase must be true or false, got "yes"'));
    expect(() => WordPieceTokenizer.fromJSON({ ...json, continuingSubwordPrefix: 5 } as never)).toThrow(/continuingSubwordPrefix must be a string/);
    expect(() => WordPieceTokenizer.fromJSON({ ...json, type: deep() } as never)).toThrow(/^WordPieceTokenizer.fromJSON: not a WordPiece tokenizer \(type \[\[\[\[…\]\]\]\]\)/);
    expect(() => WordPieceTokenizer.fromVocab(5 as never)).toThrow(named('WordPieceTokenizer.fromVocab: vocab must be the text of a vocabulary file or an array of tokens, got number 5'));
  });

  it('BPETokenizer.fromGPT2 checks what its two files hold, and only own entries are special tokens', () => {
    const encoder = BPETokenizer.train('', { vocabSize: 256 }).toJSON().vocab;
    expect(() => BPETokenizer.fromGPT2(encoder, 5 as never, [])).toThrow(named('BPETokenizer.fromGPT2: vocab.bpe must be text, got number'));
    expect(() => BPETokenizer.fromGPT2(null as never, '', [])).toThrow(named('BPETokenizer.fromGPT2: encoder.json must hold an object of token → id, got null'));
    expect(() => BPETokenizer.fromGPT2(encoder, '', ['constructor'])).toThrow(named('BPETokenizer.fromGPT2: special token "constructor" is not in encoder.json'));
    expect(BPETokenizer.fromGPT2(encoder, '#version: 0.2\n', []).vocabSize).toBe(256);
  });
});

describe('loadHFGPT2 / hfGPT2Config', () => {
  const opts = { backend: 'ref', config: { nHead: 2 } };
  const both = (bytes: Uint8Array, message: string): void => {
    expect(() => hfGPT2Config(bytes, { nHead: 2 })).toThrow(named(`hfGPT2Config: ${message}`));
    const before = liveTensors();
    expect(() => loadHFGPT2(bytes, opts)).toThrow(named(`loadHFGPT2: ${message}`));
    expect(liveTensors()).toBe(before);
  };

  it('names itself on a malformed safetensors header', () => {
    both(new Uint8Array([1, 2, 3]), 'safetensors: file is 3 bytes');
  });

  it('refuses a layer index past the entries before listing the entries of every layer up to it', () => {
    const huge = buildFolder(0, [{ kind: 'add', name: 'h.4294967295.attn.bias', dtype: 'F32', shape: [1], seed: 1 }], false, [], []).weights;
    expect(() => within(2000, () => hfGPT2Config(huge, { nHead: 2 }))).toThrow(
      named('hfGPT2Config: missing entries: no h.2.* although the file has h.4294967295.* (layers are numbered from 0 without gaps)'),
    );
    const endless = buildFolder(0, [{ kind: 'add', name: `h.${'9'.repeat(400)}.attn.bias`, dtype: 'F32', shape: [1], seed: 1 }], false, [], []).weights;
    expect(() => within(2000, () => loadHFGPT2(endless, opts))).toThrow(/^loadHFGPT2: missing entries: no h\.2\.\* although the file has h\.9{400}\.\*/);
  });

  it('refuses layer indices written other than PyTorch writes them', () => {
    both(buildFolder(0, [{ kind: 'add', name: 'h.01.ln_1.weight', dtype: 'F32', shape: [4], seed: 1 }], false, [], []).weights, 'entries that are not part of GPT-2: h.01.ln_1.weight');
  });

  it('checks sizes and the head count before building the model', () => {
    both(buildFolder(0, [{ kind: 'resize', dim: 'embd', size: 0 }], false, [], []).weights, "'wte.weight' is [5,0]; a GPT-2 has at least one token and one embedding channel");
    both(buildFolder(0, [{ kind: 'noLayers' }], false, [], []).weights, 'no blocks (h.0.*) in the file; a GPT-2 has at least one layer');
    const bytes = buildFolder(0, [], false, [], []).weights;
    expect(() => hfGPT2Config(bytes, { nHead: 3 })).toThrow(named("hfGPT2Config: config.nHead 3, which does not divide the weights' nEmbd 4"));
    expect(() => loadHFGPT2(bytes, { ...opts, config: { nHead: 3 } })).toThrow(named("loadHFGPT2: config.nHead 3, which does not divide the weights' nEmbd 4"));
    expect(() => loadHFGPT2(bytes, { ...opts, config: { nHead: 2, dropout: 2 } })).toThrow(named('loadHFGPT2: config.dropout must be a number in [0, 1), got 2'));
    expect(() => loadHFGPT2(bytes, { ...opts, backend: 'no-such-backend' })).toThrow(named('loadHFGPT2: safetensors: '));
  });

  it('reads only the entries the model takes: an ignored buffer of a dtype kiln cannot hold is skipped', () => {
    const bytes = buildFolder(0, [{ kind: 'add', name: 'h.0.attn.bias', dtype: 'F8_E4M3', shape: [2], seed: 1 }], false, [], []).weights;
    expect(hfGPT2Config(bytes, { nHead: 2 }).nLayer).toBe(2);
    const before = liveTensors();
    const model = loadHFGPT2(bytes, opts);
    expect(liveTensors()).toBe(before + model.namedParameters().length);
    model.dispose();
  });

  it("quotes a deeply nested config.json value", () => {
    const dir = mkdtempSync(join(scratch, 'hf-'));
    writeFileSync(join(dir, 'model.safetensors'), buildFolder(0, [], false, [], []).weights);
    writeFileSync(join(dir, 'config.json'), `{"n_head":${DEEP.text}}`);
    expect(() => hfGPT2Config(join(dir, 'model.safetensors'))).toThrow(/^hfGPT2Config: '.*config\.json': n_head must be a positive integer, got \[\[\[\[…\]\]\]\] \(in '.*model\.safetensors'\)$/);
  });
});
