// The cuda backend on a GPU machine (node:test; needs only node, dist/ and build/Release/kiln.node,
// so it runs where there is no node_modules): every kernel family against `ref` on random shapes
// that cross tile edges (outputs poisoned with NaN first, tolerances by dtype), gradients through
// the backward kernels, out of memory caught and survived, device faults named, and a short
// training run. Without a CUDA device every test is skipped, saying why.
//
//   node --test test/gpu/            (scripts/gpu-check.sh runs it, with the benches)
import assert from 'node:assert/strict';
import { test } from 'node:test';

const kiln = await import('../../dist/index.js');
const { backends, useBackend, tensor, tidy, noGrad, Generator, randn, rand } = kiln;

// the backend under test: cuda, or (to check this file itself on a machine without a GPU) another
const DEV = process.env.KILN_GPU_TEST_BACKEND ?? 'cuda';
const entry = backends().find((b) => b.name === DEV);
const skip = !entry?.available ? `no ${DEV} backend here: ${entry?.reason ?? 'not registered'}` : false;
if (skip) console.log(`[gpu] skipped: ${skip}`);
const dev = skip ? null : await useBackend(DEV);
if (dev?.device) {
  console.log(`[gpu] ${dev.device.name} (sm_${dev.device.major}${dev.device.minor}, ${dev.device.multiprocessors} SMs, ${(dev.device.totalMemory / 2 ** 30).toFixed(0)} GiB)`);
  dev.poisonAllocations(true); // every new storage starts as NaN: an output a kernel fails to write shows
}
const onlyCuda = skip || (DEV !== 'cuda' && 'needs the cuda backend');
// KILN_GPU_QUICK=1 (under compute-sanitizer): leave out the out-of-memory test and the training run
const quick = process.env.KILN_GPU_QUICK === '1' && 'KILN_GPU_QUICK=1';

const TOL = { f32: [2e-5, 1e-6], f64: [1e-10, 1e-12], bf16: [1.6e-2, 1e-2], f16: [2e-3, 1e-3], i32: [0, 0], bool: [0, 0] };

/** Values of a tensor as numbers (async read: the only sync point). */
const values = async (t) => Array.from(await t.data(), Number);

/** Run `make(backend)` on ref and on cuda from the same inputs; compare every output. */
async function against(name, make, { rtol, atol, scale } = {}) {
  const want = await Promise.all([make('ref')].flat().map(values));
  const got = await Promise.all([make(DEV)].flat().map(values));
  assert.equal(got.length, want.length, `${name}: outputs`);
  for (let o = 0; o < want.length; o++) {
    assert.equal(got[o].length, want[o].length, `${name}[${o}] length`);
    for (let i = 0; i < want[o].length; i++) {
      const [w, g] = [want[o][i], got[o][i]];
      if (Number.isNaN(w)) {
        assert.ok(Number.isNaN(g), `${name}[${o}][${i}]: expected NaN, got ${g}`);
        continue;
      }
      const bound = (atol ?? 1e-6) + (rtol ?? 2e-5) * (scale ? scale[o][i] : Math.abs(w));
      if (!(Math.abs(g - w) <= bound)) assert.fail(`${name}[${o}][${i}]: ${DEV} ${g}, ref ${w} (|Δ| ${Math.abs(g - w)} > ${bound})`);
    }
  }
}

/** The same values on both backends: drawn on ref, copied. */
function inputs(seed, shapes, dtype = 'f32') {
  const g = new Generator(seed);
  const host = shapes.map((s) => randn(s, { backend: 'ref', generator: g, dtype: dtype === 'f64' ? 'f64' : 'f32' }).dataSync());
  return (backend) => host.map((h, i) => tensor(h, shapes[i], { backend, dtype }));
}

const EDGES = [1, 7, 16, 17, 63, 64, 65, 127, 129, 257];
const pick = (g, xs) => xs[Math.floor(g.draw(1, { kind: 'uniform', low: 0, high: xs.length })[0])];

test('elementwise, casts, reductions and indexing match ref', { skip }, async () => {
  for (const dtype of ['f32', 'f64', 'bf16', 'f16']) {
    const [rtol, atol] = TOL[dtype];
    const make = inputs(1, [[33, 65], [65], [33, 1]], dtype);
    await against(`binary ${dtype}`, (b) => tidy(() => { const [x, y, z] = make(b); return [x.add(y), x.mul(z), x.sub(y).div(z.abs().add(1)), x.maximum(y), x.pow(2), x.lt(y).cast('f32')]; }), { rtol, atol });
    await against(`unary ${dtype}`, (b) => tidy(() => { const [x] = make(b); return [x.exp(), x.tanh(), x.sigmoid(), kiln.gelu(x), kiln.gelu(x, { approximate: 'tanh' }), x.relu(), kiln.silu(x), x.abs().sqrt(), kiln.round(x), kiln.erf(x)]; }), { rtol: Math.max(rtol, 1e-5), atol });
    await against(`reduce ${dtype}`, (b) => tidy(() => { const [x] = make(b); return [x.sum(1), x.max(0), x.argmax(1), x.mean([0, 1]), kiln.logsumexp(x, 1)]; }), { rtol: Math.max(rtol, 1e-4), atol: Math.max(atol, 1e-4) });
  }
  const ints = (b) => tensor(Int32Array.from({ length: 300 }, (_, i) => (i * 7919) % 1000 - 500), [300], { backend: b, dtype: 'i32' });
  await against('i32 ops', (b) => tidy(() => { const x = ints(b); return [x.add(x).mul(3), x.sum(), x.max(), x.abs(), x.cast('f32'), x.gt(0)]; }), { rtol: 0, atol: 0 });
  const make = inputs(2, [[40, 70]]);
  await against('indexing', (b) => tidy(() => {
    const [x] = make(b);
    const idx = tensor(Int32Array.from({ length: 25 }, (_, i) => (i * 13) % 40), [25], { backend: b, dtype: 'i32' });
    return [kiln.indexSelect(x, 0, idx), kiln.gather(x, 1, tensor(Int32Array.from({ length: 40 * 3 }, (_, i) => (i * 11) % 70), [40, 3], { backend: b, dtype: 'i32' })), kiln.scatterAdd(kiln.zeros([40, 70], { backend: b }), 0, kiln.zeros([25, 70], { backend: b, dtype: 'i32' }).add(idx.reshape([25, 1])), x.slice(0, 0, 25)), x.permute([1, 0]), x.slice(1, 3, 60, 2), kiln.where(x.gt(0), x, x.mul(-2))];
  }));
});

test('random draws are bit-identical to ref (integers and dropout masks), distributions close', { skip }, async () => {
  for (const n of EDGES.concat([10007])) {
    const r = await values(kiln.randint(0, 1000, [n], { backend: 'ref', generator: new Generator(n) }));
    const c = await values(kiln.randint(0, 1000, [n], { backend: DEV, generator: new Generator(n) }));
    assert.deepEqual(c, r, `randint [${n}]`);
  }
  const u = await values(rand([100000], { backend: DEV, generator: new Generator(3) }));
  const mean = u.reduce((a, b) => a + b, 0) / u.length;
  assert.ok(Math.abs(mean - 0.5) < 0.01, `uniform mean ${mean}`);
});

test('matmul and linear (every dtype, transposes, batches, bias, activation) at tile edges match ref', { skip }, async () => {
  const g = new Generator(4);
  for (let trial = 0; trial < 24; trial++) {
    const [m, n, k] = [pick(g, EDGES), pick(g, EDGES), pick(g, EDGES.concat([1000, 4097]))];
    for (const dtype of ['f32', 'bf16', 'f16', 'f64']) {
      const [rtol] = TOL[dtype];
      const make = inputs(trial, [[2, m, k], [n, k], [n], [k, n]], dtype);
      // bound: a few roundings of Σ|a·b| (the accumulation order differs)
      const scale = (b) => tidy(() => { const [a, w, bias, w2] = make(b); return [kiln.linear(a.abs(), w.abs(), bias.abs()), kiln.matmul(a.abs(), w2.abs()), kiln.matmul(a.abs(), w.abs(), { transB: true })]; });
      const s = await Promise.all(scale('ref').map(values));
      await against(`matmul ${dtype} m${m} n${n} k${k}`, (b) => tidy(() => {
        const [a, w, bias, w2] = make(b);
        return [kiln.linear(a, w, bias), kiln.matmul(a, w2), kiln.matmul(a, w, { transB: true })];
      }), { rtol: dtype === 'f64' ? 1e-12 : Math.max(rtol, (k + 2) * 2 ** -24 * 4), atol: 1e-5, scale: s });
    }
  }
});

test('fused epilogues: linear with an activation (pre-activation kept for the backward), linearCrossEntropy (chunks summed by matmul accumulate, f32 sums of bf16 products) match ref', { skip }, async () => {
  // gradients of x, w, b through `f` on backend b: [out, dx, dw, db]
  const grads = (make, f) => (b) => {
    const [x, w, bias, ...rest] = make(b);
    for (const t of [x, w, bias]) t.requiresGrad_();
    const out = f(x, w, bias, rest, b);
    tidy(() => (out.rank === 0 ? out : out.mul(rest[0])).sum().backward());
    return [out.detach(), x.grad, w.grad, bias.grad];
  };
  for (const [m, n, k] of [[37, 129, 65], [1, 4097, 17], [300, 3072, 768]]) {
    const make = inputs(m + n, [[m, k], [n, k], [n], [m, n]]);
    for (const activation of ['gelu_tanh', 'gelu', 'relu', 'silu'])
      // dx sums n products of unit size, dw m: an absolute bound growing with them (f32 sums in any order)
      await against(`linear ${activation} ${m}×${n}×${k}`, grads(make, (x, w, bias) => kiln.linear(x, w, bias, { activation })), { rtol: 1e-4, atol: 1e-6 * (n + m + k) });
  }
  for (const [rows, v, c, chunkRows] of [[130, 257, 33, 7], [2048, 50257, 64, 1024]]) {
    const make = (b) => {
      const [x, w, bias] = inputs(rows + v, [[rows, c], [v, c], [v]])(b);
      const t = tensor(Int32Array.from({ length: rows }, (_, i) => (i * 7919) % (v + 20) < v ? (i * 7919) % (v + 20) : -100), [rows], { backend: b, dtype: 'i32' });
      return [x, w, bias, t];
    };
    const loss = (x, w, bias, [t]) => kiln.linearCrossEntropy(x, w, t, { bias, chunkRows });
    await against(`linearCrossEntropy ${rows}×${v}×${c}`, grads(make, loss), { rtol: 1e-4, atol: 1e-5 });
    // bf16 autocast: the head in bf16, dweight summed in f32 (an f32 out for bf16 operands)
    await against(`linearCrossEntropy bf16 ${rows}×${v}×${c}`, grads(make, (...a) => kiln.autocast({ dtype: 'bf16' }, () => loss(...a))), { rtol: 3e-2, atol: 3e-3 });
  }
});

test('int8 linear equals ref bit for bit', { skip }, async () => {
  for (const [m, n, k] of [[1, 2304, 768], [37, 129, 257], [256, 64, 4]]) {
    const make = inputs(m + n + k, [[m, k], [n, k], [n]]);
    await against(`linearInt8 ${m}×${n}×${k}`, (b) => tidy(() => { const [x, w, bias] = make(b); const q = kiln.quantizeInt8(w); return noGrad(() => kiln.linearInt8(x, q, bias)); }), { rtol: 0, atol: 0 });
  }
});

test('softmax, layer norm, cross-entropy and attention, forward and backward, match ref', { skip }, async () => {
  for (const cols of [1, 31, 32, 1000, 4097]) {
    const make = inputs(cols, [[17, cols], [cols], [cols]]);
    await against(`softmax/layerNorm ${cols}`, (b) => tidy(() => {
      const [x, w, bias] = make(b);
      return [kiln.softmax(x, -1), kiln.logSoftmax(x, -1), kiln.layerNorm(x, [cols], w, bias), kiln.rmsNorm(x, [cols], w)];
    }), { rtol: 1e-5, atol: 1e-5 });
    await against(`backward ${cols}`, (b) => tidy(() => {
      const [x0, w0, b0] = make(b);
      const [x, w, bias] = [x0.requiresGrad_(), w0.requiresGrad_(), b0.requiresGrad_()];
      const t = tensor(Int32Array.from({ length: 17 }, (_, i) => (i * 5) % cols), [17], { backend: b, dtype: 'i32' });
      const loss = kiln.crossEntropy(kiln.layerNorm(x, [cols], w, bias), t, { labelSmoothing: 0.1 });
      loss.backward();
      return [loss, x.grad.clone(), w.grad.clone(), bias.grad.clone()]; // the leaves (and their grads) go with the tidy
    }), { rtol: 1e-4, atol: 1e-5 });
  }
  for (const [T, D, causal, window, kvHeads] of [[1, 64, true, 0, 2], [129, 64, true, 0, 1], [200, 128, false, 0, 2], [257, 64, true, 40, 2], [64, 80, true, 0, 4]]) {
    const make = inputs(T + D, [[2, 4, T, D], [2, kvHeads, T, D], [2, kvHeads, T, D]]);
    await against(`attention T${T} D${D} causal ${causal} window ${window} kv ${kvHeads}`, (b) => tidy(() => {
      const [q0, k0, v0] = make(b);
      const [q, k, v] = [q0.requiresGrad_(), k0.requiresGrad_(), v0.requiresGrad_()];
      const y = kiln.scaledDotProductAttention(q, k, v, { isCausal: causal, enableGqa: kvHeads !== 4, ...(window ? { window } : {}) });
      y.mul(y).sum().backward();
      return [y, q.grad.clone(), k.grad.clone(), v.grad.clone()];
    }), { rtol: 1e-4, atol: 1e-4 });
  }
});

test('optimizers (AdamW, LAMB) step every parameter as on ref', { skip }, async () => {
  for (const Opt of [kiln.AdamW, kiln.LAMB]) {
    await against(Opt.name, (b) => {
      const make = inputs(9, [[129, 65], [65], [129, 65], [65]]);
      const [w, bias, gw, gb] = make(b);
      w.requiresGrad_();
      bias.requiresGrad_();
      const opt = new Opt([w, bias], { lr: 1e-2, weightDecay: 0.1 });
      for (let s = 0; s < 3; s++) {
        w.grad = gw.mul(s + 1);
        bias.grad = gb.mul(s + 1);
        opt.step();
      }
      return [w, bias];
    }, { rtol: 1e-5, atol: 1e-6 });
  }
});

test('a bad index is a device fault reported at the next read, naming the op; the backend keeps working', { skip }, async () => {
  const table = randn([10, 4], { backend: DEV });
  const idx = tensor(Int32Array.of(1, 12, 3), [3], { backend: DEV, dtype: 'i32' });
  const y = kiln.embedding(idx, table);
  await assert.rejects(y.data(), /index 12 is out of range \[0, 10\)/);
  assert.deepEqual(await values(tensor([1, 2], { backend: DEV }).add(1)), [2, 3]);
});

test('out of memory: a catchable Error naming the request and what is in use; the process and backend go on', { skip: onlyCuda || quick }, async () => {
  const held = [];
  let error = null;
  try {
    for (let i = 0; i < 64; i++) held.push(kiln.zeros([2 ** 30], { backend: 'cuda', dtype: 'f32' })); // 4 GiB each
  } catch (e) {
    error = e;
  }
  assert.ok(error, 'allocating 256 GiB did not fail');
  assert.match(error.message, /out of memory.*in use/);
  console.log(`[gpu] out of memory after ${held.length} × 4 GiB: ${error.message}`);
  for (const t of held) t.dispose();
  dev.emptyCache();
  assert.deepEqual(await values(tensor([1, 2, 3], { backend: DEV }).mul(2)), [2, 4, 6]);
});

test('200 training steps of a small GPT: the loss falls', { skip: skip || quick }, async () => {
  const gpt = new kiln.GPT({ vocabSize: 64, blockSize: 32, nLayer: 2, nHead: 4, nEmbd: 128 }, { backend: DEV, generator: new Generator(0) });
  const opt = new kiln.AdamW(gpt.parameters(), { lr: 3e-3 });
  const text = 'the quick brown fox jumps over the lazy dog. '.repeat(40);
  const ids = Int32Array.from(text, (c) => c.charCodeAt(0) % 64);
  const g = new Generator(1);
  const losses = [];
  for (let step = 0; step < 200; step++) {
    const starts = Array.from(g.draw(8, { kind: 'randint', low: 0, high: ids.length - 33 }));
    const x = new Int32Array(8 * 32), y = new Int32Array(8 * 32);
    starts.forEach((s, r) => { x.set(ids.subarray(s, s + 32), r * 32); y.set(ids.subarray(s + 1, s + 33), r * 32); });
    const loss = tidy(() => {
      const { loss } = gpt.forward(tensor(x, [8, 32], { backend: DEV, dtype: 'i32' }), tensor(y, [8, 32], { backend: DEV, dtype: 'i32' }));
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss;
    });
    if (step % 20 === 0 || step === 199) losses.push(await loss.item());
    loss.dispose();
  }
  console.log(`[gpu] GPT losses every 20 steps: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  assert.ok(losses.at(-1) < 0.5 * losses[0], `loss ${losses[0]} → ${losses.at(-1)}`);
});
