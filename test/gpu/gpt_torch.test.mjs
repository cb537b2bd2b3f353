// A GPT-2 training step on the backend under test against PyTorch on the same weights (node:test;
// needs only node, dist/, build/Release/kiln.node and python3 with torch, so it runs where there is
// no node_modules). gpt_step.py builds a small GPT-2 in plain PyTorch (HF names, Conv1D layout,
// tied head), on CUDA when torch has it, writes its initial weights, the batch, and after one
// forward, backward and AdamW step the loss, the first row's logits, every gradient and every
// updated parameter. Here kiln loads the same weights with loadHFGPT2, takes the same step, and
// everything is compared. Skipped, saying why, when the backend, python3 or torch is missing.
//
//   node --test test/gpu/gpt_torch.test.mjs
//   KILN_GPU_TEST_BACKEND=cpu node --test test/gpu/gpt_torch.test.mjs   (this file's own logic, no GPU)
//   KILN_GPU_TEST_PYTHON=/path/to/python3 …                             (default: python3, then /usr/bin/python3)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const kiln = await import('../../dist/index.js');
const { backends, useBackend, tensor } = kiln;

// the backend under test: cuda, or (to check this file itself on a machine without a GPU) another
const DEV = process.env.KILN_GPU_TEST_BACKEND ?? 'cuda';
const entry = backends().find((b) => b.name === DEV);
let skip = !entry?.available ? `no ${DEV} backend here: ${entry?.reason ?? 'not registered'}` : false;

const SCRIPT = fileURLToPath(new URL('./gpt_step.py', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'kiln-gpt-torch-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/**
 * Run gpt_step.py with the first interpreter that has torch: `{ ok }`, `{ skip: why }` (no python3,
 * no torch: exit 3), or `{ error }` (the script failed: that is a failure, not a skip).
 */
function runTorch() {
  const candidates = process.env.KILN_GPU_TEST_PYTHON ? [process.env.KILN_GPU_TEST_PYTHON] : [...new Set(['python3', '/usr/bin/python3'])];
  // Debian's CPU PyTorch with OpenBLAS misbehaves under these (set for other tools on some machines)
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const why = [];
  for (const py of candidates) {
    const r = spawnSync(py, [SCRIPT, dir, '--device', 'auto'], { env, encoding: 'utf8', timeout: 300_000 });
    if (r.error?.code === 'ENOENT') {
      why.push(`${py}: not found`);
      continue;
    }
    if (r.status === 3) {
      why.push(`${py}: ${r.stderr.trim().split('\n').at(-1)}`);
      continue;
    }
    if (r.status !== 0) return { error: `${py} ${SCRIPT} failed (${r.error?.message ?? `exit ${r.status}, signal ${r.signal}`}):\n${r.stdout}${r.stderr}` };
    process.stdout.write(r.stdout);
    return { ok: py };
  }
  return { skip: `no python3 with torch (${why.join('; ')})` };
}

let torchError = null;
if (!skip) {
  const r = runTorch();
  if (r.skip) skip = r.skip;
  if (r.error) torchError = r.error;
}
if (skip) console.log(`[gpu] skipped: ${skip}`);

/** The f32 tensors of a safetensors file, by name, as Float32Arrays (read here, not with kiln). */
function readF32(path) {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const out = {};
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    assert.equal(e.dtype, 'F32', `${path}: ${name}`);
    const [a, b] = e.data_offsets;
    const data = new Float32Array((b - a) / 4);
    new Uint8Array(data.buffer).set(bytes.subarray(8 + n + a, 8 + n + b));
    out[name] = { shape: e.shape, data };
  }
  return out;
}

const maxAbs = (xs) => xs.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/**
 * Compare `got` with `want` element by element: |got − want| ≤ bound(i, want[i]). Returns the
 * largest |Δ|, the largest |Δ|/bound (how close to failing) and the largest |Δ| relative to the
 * tensor's max |want|; fails naming the first element out of bounds.
 */
function compare(name, got, want, bound) {
  assert.equal(got.length, want.length, `${name}: length`);
  let worst = 0, ratio = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    const b = bound(i, want[i]);
    if (!(d <= b)) assert.fail(`${name}[${i}]: ${DEV} ${got[i]}, torch ${want[i]} (|Δ| ${d.toExponential(3)} > ${b.toExponential(3)})`);
    worst = Math.max(worst, d);
    ratio = Math.max(ratio, d / b);
  }
  return { worst, ratio, rel: worst / (maxAbs(want) || 1) };
}

// ---- tolerances ------------------------------------------------------------------------------
// Both sides compute in f32 (TF32 off on both: kiln's setAllowTf32(false), torch's allow_tf32 =
// False), so the differences are rounding in different accumulation orders: matmuls and
// reductions over K ≤ 512 terms (c_proj of the MLP, B·T = 256 rows in weight gradients),
// softmax/layer-norm/cross-entropy reductions over ≤ 257, through 2 blocks forward and back. One
// sum of K terms differs by ≲ √K·u ~ 1e-6 of the scale of its terms (u = 2^-24 ≈ 6e-8), and the
// chain of ops compounds it a few times. Elements that are small through cancellation keep an
// absolute error of that size relative to the tensor's scale, not to themselves, so each bound
// has a part relative to the element and one relative to the tensor's largest |value|. On the
// CPUs (kiln cpu against torch 1.13 cpu) the differences reach ~3-5% of these bounds: room for GPU
// kernels' other reduction trees (split-K, atomics, warp shuffles) at an order of magnitude more.
const LOSS_RTOL = 1e-5; // a mean of 253 cross-entropies: ~1e-7 relative seen on the CPUs
// logits: [T, V] of row 0; |Δ| ≤ 1e-5·|w| + 1e-5·max|logits|
const LOGIT_RTOL = 1e-5, LOGIT_ATOL_SCALE = 1e-5;
// gradients: |Δ| ≤ 1e-4·|w| + 1e-5·max|grad of that tensor| (two matmuls deeper than the logits,
// and the weight gradients sum over all 256 positions)
const GRAD_RTOL = 1e-4, GRAD_ATOL_SCALE = 1e-5;
// parameters after AdamW's first step: p' = p·(1 − lr·λ) − lr·g/(|g| + ε) (m̂ = g, v̂ = g² at
// t = 1), so the update is ~lr·sign(g) and a gradient error δ moves it by
// lr·|g/(|g|+ε) − g'/(|g'|+ε)| for g' in [g − δ, g + δ]: ~0 where |g| ≫ δ, up to 2·lr where the
// gradient is as small as its own error (its sign is then noise). The bound is that, with δ the
// gradient bound above, plus the f32 rounding of p·(1 − lr·λ), of the update and of their
// difference: a few ulp of |p| + lr (not of |p'|, which cancels to ~0 where p ≈ lr·sign(g)).
const PARAM_ULPS = 8 * 2 ** -24;
// And kiln's AdamW by itself, without the gradient noise: its p' against the same formula in f64
// from the initial p and kiln's own gradient, within that rounding bound alone.

test('a GPT-2 training step (loss, logits, every gradient, AdamW update) matches PyTorch', { skip }, async () => {
  if (torchError) assert.fail(torchError);
  const fx = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8'));
  const [c, B, T] = [fx.config, fx.batch, fx.config.n_positions];
  console.log(`[gpu] torch ${fx.torch} on ${fx.device_name} against kiln ${DEV}`);

  const dev = await useBackend(DEV);
  dev.setAllowTf32?.(false); // exact f32 matmuls, as torch's
  dev.poisonAllocations?.(true); // every new storage starts as NaN: an output a kernel fails to write shows

  // the initial weights, through the HF GPT-2 loader (Conv1D [in, out] → Linear [out, in], tied head)
  const model = kiln.loadHFGPT2(join(dir, 'init.safetensors'), { backend: DEV });
  assert.equal(model.config.nHead, c.n_head);
  assert.equal(model.config.activation, 'gelu_tanh');
  assert.equal(model.config.tiedHead, true);
  assert.equal(model.config.layerNormEps, c.layer_norm_epsilon);
  model.train();

  const ids = (rows) => tensor(Int32Array.from(rows.flat()), [B, T], { backend: DEV, dtype: 'i32' });
  const [idx, targets] = [ids(fx.idx), ids(fx.targets)];
  const { logits, loss } = model.forward(idx, targets);
  loss.backward();
  const lossValue = await loss.item();
  const logits0 = (await logits.data()).subarray(0, T * c.vocab_size); // row 0: [T, V]

  // the same optimizer: AdamW, decay on the rank ≥ 2 weights only (torch's groups: p.dim() >= 2)
  const o = fx.optimizer;
  const groups = kiln.weightDecayGroups(model, o.weight_decay);
  const nameOf = new Map(model.namedParameters().map(([n, p]) => [p, n]));
  const decayed = groups[0].params.map((p) => nameOf.get(p)).sort();
  const torchParams = readF32(join(dir, 'init.safetensors'));
  assert.deepEqual(decayed, fx.params.filter((n) => torchParams[n].shape.length >= 2).sort(), 'the weight-decay groups differ from torch\'s');
  assert.equal(groups[0].params.length + groups[1].params.length, fx.params.length, 'parameter count');
  const grads = kiln.hfGPT2Gradients(model, { prefix: 'transformer.' }); // copies, before the step
  const opt = new kiln.AdamW(groups, { lr: o.lr, betas: o.betas, eps: o.eps });
  opt.step();
  const after = kiln.hfGPT2StateDict(model, { prefix: 'transformer.' });

  const summary = [];
  // loss
  const dLoss = Math.abs(lossValue - fx.loss);
  console.log(`[gpu] loss: ${DEV} ${lossValue}, torch ${fx.loss} (|Δ| ${dLoss.toExponential(2)})`);
  assert.ok(dLoss <= LOSS_RTOL * Math.abs(fx.loss), `loss: ${DEV} ${lossValue}, torch ${fx.loss}`);

  // logits of row 0
  const wantLogits = readF32(join(dir, 'logits.safetensors')).logits.data;
  const logitScale = maxAbs(wantLogits);
  const lg = compare('logits[0]', logits0, wantLogits, (_, w) => LOGIT_RTOL * Math.abs(w) + LOGIT_ATOL_SCALE * logitScale);
  summary.push(`logits[0]: max |Δ| ${lg.worst.toExponential(2)} (${lg.rel.toExponential(2)} of max |logit|, ${(100 * lg.ratio).toFixed(1)}% of the bound)`);

  // every gradient, and every parameter after the step
  const wantGrads = readF32(join(dir, 'grads.safetensors'));
  const wantAfter = readF32(join(dir, 'after.safetensors'));
  assert.deepEqual(Object.keys(grads).sort(), Object.keys(wantGrads).sort(), 'gradient names');
  assert.deepEqual(Object.keys(after).sort(), Object.keys(wantAfter).sort(), 'parameter names');
  const upd = (g) => g / (Math.abs(g) + o.eps);
  let gWorst = { rel: 0 }, pWorst = { worst: 0 }, gRatio = 0, pRatio = 0, adamRatio = 0, loose = 0, total = 0;
  for (const name of fx.params) {
    assert.deepEqual(grads[name].shape, wantGrads[name].shape, `${name}: gradient shape`);
    assert.deepEqual(after[name].shape, wantAfter[name].shape, `${name}: parameter shape`);
    const gw = wantGrads[name].data;
    const gScale = maxAbs(gw);
    const gBound = (i, w) => GRAD_RTOL * Math.abs(w) + GRAD_ATOL_SCALE * gScale;
    const g = compare(`grad ${name}`, await grads[name].data(), gw, gBound);
    const p0 = torchParams[name].data;
    const pBound = (i) => {
      const [gi, d] = [gw[i], gBound(i, gw[i])];
      const moved = Math.max(Math.abs(upd(gi + d) - upd(gi)), Math.abs(upd(gi - d) - upd(gi)));
      return o.lr * moved + PARAM_ULPS * (Math.abs(p0[i]) + o.lr);
    };
    const got = await after[name].data();
    const p = compare(`updated ${name}`, got, wantAfter[name].data, pBound);
    // the same step in f64 from kiln's gradient: λ on the rank ≥ 2 weights, m̂ = g, v̂ = g² at t = 1
    const [gk, lambda] = [await grads[name].data(), wantGrads[name].shape.length >= 2 ? o.weight_decay : 0];
    const exact = Float64Array.from(p0, (x, i) => x * (1 - o.lr * lambda) - o.lr * upd(gk[i]));
    const a = compare(`AdamW step of ${name} (f64 from ${DEV}'s gradient)`, got, exact, (i) => PARAM_ULPS * (Math.abs(p0[i]) + o.lr));
    adamRatio = Math.max(adamRatio, a.ratio);
    loose += p0.reduce((n, _, i) => n + (pBound(i) > 1e-3 * o.lr ? 1 : 0), 0);
    total += p0.length;
    if (g.rel > gWorst.rel) gWorst = { ...g, name };
    if (p.worst > pWorst.worst) pWorst = { ...p, name };
    gRatio = Math.max(gRatio, g.ratio);
    pRatio = Math.max(pRatio, p.ratio);
  }
  summary.push(`gradients (${fx.params.length}): worst ${gWorst.name}, max |Δ| ${gWorst.worst.toExponential(2)} = ${gWorst.rel.toExponential(2)} of its max |grad|; at most ${(100 * gRatio).toFixed(1)}% of a bound`);
  summary.push(`parameters after AdamW: worst ${pWorst.name}, max |Δ| ${pWorst.worst.toExponential(2)} (lr ${o.lr}); at most ${(100 * pRatio).toFixed(1)}% of a bound; ${loose} of ${total} elements (a gradient near 0, where the update's sign is noise) allowed more than lr/1000`);
  summary.push(`${DEV}'s AdamW step against f64 from its own gradient: at most ${(100 * adamRatio).toFixed(1)}% of the rounding bound`);
  for (const line of summary) console.log(`[gpu] ${line}`);

  for (const t of [...Object.values(grads), ...Object.values(after), logits, loss, idx, targets]) t.dispose();
  model.dispose();
});
