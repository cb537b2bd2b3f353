/**
 * Hardening: no crash, no silent wrong answer. Allocations past what a backend can hold are
 * Errors naming the op (never a native abort); values a dtype cannot hold are refused (as PyTorch
 * refuses out-of-range Python ints), at the call when they are host numbers, at the next read or
 * sync when they are on the device.
 */
import { expect, it } from 'vitest';
import { BPETokenizer, Embedding, SGD, WordPieceTokenizer, cast, clipGradNorm, full, loadSafetensors, pow, saveSafetensors, sentenceBleu, setNumThreads, tensor, tidy, zeros, type Tensor } from '../src/index.js';
import { describeBackends, expectClose, floatDtype, tol, values } from './harness.js';

describeBackends('hardening', (backend) => {
  it('an allocation past what the backend holds is an Error naming the op, the shape, the dtype and the size', () => {
    // past every backend's limit (V8 typed arrays: 2³² elements; Node's ArrayBuffers: 4 GiB), in f64 or,
    // on a backend without f64, in f32
    const wide = floatDtype(backend);
    const gib = wide === 'f64' ? '32\\.0' : '16\\.0';
    expect(() => zeros([2 ** 32 + 16], { backend, dtype: wide })).toThrow(
      new RegExp(`^zeros: cannot allocate \\[4294967312\\] ${wide} \\(${gib} GiB\\): backend '.*' holds at most \\d+ elements of ${wide} in one tensor`),
    );
    expect(() => zeros([2 ** 20, 2 ** 20], { backend })).toThrow(/^zeros: cannot allocate \[1048576,1048576\] f32 \(4\.10e\+3 GiB\)/);
    expect(() => new Embedding(2 ** 22, 1100, { backend })).toThrow(/cannot allocate \[4194304,1100\] f32/);
    // the cpu backend's storage is one Node ArrayBuffer: 4 GiB at most (this used to abort the process)
    if (backend === 'cpu') expect(() => zeros([2 ** 29 + 16], { backend, dtype: 'f64' })).toThrow(/^zeros: cannot allocate \[536870928\] f64 \(4\.00 GiB\)/);
    // nothing was left behind, and the backend still works
    expect(tidy(() => zeros([2], { backend }).shape)).toEqual([2]);
  });

  it('creation refuses values i32 cannot hold (NaN, ±∞, out of range); floats truncate toward zero as before', async () => {
    expect(() => tensor([2 ** 40], { backend, dtype: 'i32' })).toThrow(/^tensor: value 1099511627776 does not fit i32 \(range \[-2147483648, 2147483647\]\)/);
    expect(() => tensor([1, NaN], { backend, dtype: 'i32' })).toThrow(/^tensor: value at index 1 is NaN, which i32 cannot hold/);
    expect(() => tensor([-Infinity], { backend, dtype: 'i32' })).toThrow(/^tensor: value -Infinity does not fit i32/);
    expect(() => full([2], 2 ** 31, { backend, dtype: 'i32' })).toThrow(/^full: fill value 2147483648 does not fit i32/);
    const t = tensor([2 ** 31 - 1, -(2 ** 31), 2.9, -2.9], { backend, dtype: 'i32' });
    expect(await values(t)).toEqual([2 ** 31 - 1, -(2 ** 31), 2, -2]);
    // a scalar operand beside an i32 tensor takes i32: it must fit too
    expect(() => t.add(2 ** 40)).toThrow(/^add: the scalar 1099511627776 does not fit i32/);
    t.dispose();
  });

  it('casting floats i32 cannot hold is a fault named by cast at the next read', async () => {
    const x = tensor([1.5, 3e9, -2], { backend });
    const c = cast(x, 'i32');
    await expect(c.data()).rejects.toThrow(/^cast: value 3000000000 does not fit i32/);
    const ok = cast(tensor([1.5, -2.5], { backend }), 'i32');
    expect(await values(ok)).toEqual([1, -2]);
    for (const t of [x, c, ok]) t.dispose();
  });

  it('integers to negative integer powers are refused (no integer value), at the call or at the next read', async () => {
    const b = tensor([2, 3], { backend, dtype: 'i32' });
    expect(() => pow(b, -1)).toThrow(/^pow: integers to negative integer powers are not allowed \(exponent -1\); use a floating base/);
    const e = tensor([2, -1], { backend, dtype: 'i32' });
    const p = pow(b, e);
    await expect(p.data()).rejects.toThrow(/^pow: integers to negative integer powers are not allowed \(exponent -1\)/);
    expect(await values(pow(b, 2))).toEqual([4, 9]);
    expect(await values(pow(b.cast('f32'), -1))).toEqual([0.5, 1 / 3].map(Math.fround));
    for (const t of [b, e, p]) t.dispose();
  });
});

describeBackends('hardening: names that are not what they seem', (backend) => {
  it("a safetensors tensor named '__proto__' (or 'constructor') round-trips like any other", async () => {
    const t = tensor([1, 2], { backend });
    const u = tensor([3], { backend });
    const input: Record<string, Tensor> = Object.create(null) as Record<string, Tensor>;
    input['__proto__'] = t;
    input['constructor'] = u;
    const bytes = (await saveSafetensors(input)) as Uint8Array;
    const { tensors } = loadSafetensors(bytes, { backend });
    expect(Object.keys(tensors).sort()).toEqual(['__proto__', 'constructor']);
    expect(await values(tensors['__proto__']!)).toEqual([1, 2]);
    expect(await values(tensors['constructor']!)).toEqual([3]);
    for (const x of [t, u, ...Object.values(tensors)]) x.dispose();
  });
});

it('special tokens with any characters, regular-expression syntax included, are matched literally', () => {
  const specials = ['<|end-of-text|>', '[MASK]', 'a.b', '(x)', '$^', '{2}', 'a|b', 'a/b', 'a\\b'];
  const tok = BPETokenizer.train('hello world ' + specials.join(' hello '), { vocabSize: 300, specialTokens: specials });
  for (const s of specials) {
    const ids = tok.encode(`x${s}y`);
    expect(ids).toContain(tok.specialTokens.get(s));
    expect(tok.decode(ids)).toBe(`x${s}y`);
  }
});

describeBackends('hardening: errors name the call a user made', (backend) => {
  it('a disposed gradient is named by the optimizer step or the clipping that met it', () => {
    const p = tensor([1, 2], { backend, requiresGrad: true });
    tidy(() => p.mul(p).sum().backward());
    p.grad!.dispose();
    expect(() => new SGD([p], { lr: 0.1 }).step()).toThrow(/^SGD.step: the gradient of parameter \[2\] was disposed/);
    expect(() => clipGradNorm([p], 1)).toThrow(/^clipGradNorm: the gradient of parameter 0 \(\[2\] f32\) was disposed/);
    p.dispose();
  });
});

it('tokenizers given null or the wrong type throw Errors naming the method, not raw TypeErrors', () => {
  const bpe = BPETokenizer.train('hello world', { vocabSize: 260 });
  expect(() => bpe.encode(null as unknown as string)).toThrow(/^BPETokenizer.encode: text must be a string, got null/);
  expect(() => bpe.encodeOrdinary(3 as unknown as string)).toThrow(/^BPETokenizer.encodeOrdinary: text must be a string, got number/);
  expect(() => bpe.decode(null as unknown as number[])).toThrow(/^BPETokenizer.decode: ids must be an array of token ids, got null/);
  const wp = WordPieceTokenizer.fromVocab('[UNK]\nhello\nworld\n');
  expect(() => wp.encode(undefined as unknown as string)).toThrow(/^WordPieceTokenizer.encode: text must be a string, got undefined/);
  expect(() => wp.decode('abc' as unknown as number[])).toThrow(/^WordPieceTokenizer.decode: ids must be an array of token ids, got string/);
});

it('setNumThreads refuses counts the pool cannot take instead of wrapping them', () => {
  expect(() => setNumThreads(2 ** 32 + 1)).toThrow(/^setNumThreads: n must be an integer in \[1, 1024\], got 4294967297/);
  expect(() => setNumThreads(1.5)).toThrow(/^setNumThreads: n must be an integer in \[1, 1024\], got 1.5/);
});

describeBackends('hardening: integer sums', (backend) => {
  it('an i32 sum that does not fit i32 is a fault naming the exact sum (as PyTorch, which sums to int64, would not wrap)', async () => {
    const x = tensor([2 ** 31 - 1, 1, 5, -3], [2, 2], { backend, dtype: 'i32' });
    const all = x.sum();
    await expect(all.data()).rejects.toThrow(/^sum: the sum 2147483650 does not fit i32 \(range \[-2147483648, 2147483647\]\); cast to a floating dtype first/);
    // per axis: the offending column is named, the others were fine
    const cols = x.sum(0);
    await expect(cols.data()).rejects.toThrow(/^sum: the sum 2147483652 does not fit i32/);
    const rows = x.sum(1);
    await expect(rows.data()).rejects.toThrow(/^sum: the sum 2147483648 does not fit i32/);
    const ok = tensor([2 ** 31 - 1, -1], { backend, dtype: 'i32' }).sum();
    expect(await values(ok)).toEqual([2 ** 31 - 2]);
    // in floats the same sum is fine: exact in f64, within f32 rounding where f64 is not stored
    const wide = floatDtype(backend);
    if (wide === 'f64') expect(await values(x.cast('f64').sum())).toEqual([2 ** 31 + 2]);
    else expectClose(await values(x.cast(wide).sum()), [2 ** 31 + 2], tol(wide));
    for (const t of [x, all, cols, rows, ok]) t.dispose();
  });
});

it("sentenceBleu takes sacreBLEU's sentence_bleu() defaults (effective order): a one-word exact match scores 100", () => {
  expect(sentenceBleu('hello', 'hello').score).toBeCloseTo(100, 10);
  expect(sentenceBleu('hello', 'hello', { effectiveOrder: false }).score).toBe(0);
});
