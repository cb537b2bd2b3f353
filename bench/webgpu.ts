/**
 * kiln's webgpu backend against TensorFlow.js's WebGPU backend (`@tensorflow/tfjs-backend-webgpu`)
 * on the same adapter, in the same process: f32 matmul GFLOP/s at 256…2048, and one training step
 * (forward, backward, Adam) of the small GPT of bench/gpt.ts written in each library, with kiln's
 * submits and dispatches per step. The adapter is named: a CPU driver's figures are not a GPU's.
 *
 *   npm run bench -- webgpu [--sizes 256,512,1024,2048] [--steps 10] [--seconds 1]
 */
import { AdamW, GPT, Generator, crossEntropy, matmul, randint, randn, sync, tidy, useBackend, type Tensor } from '../src/index.js';
import type { WebGPUBackend } from '../src/backend/webgpu/webgpu.js';
import { fmtNum, mdTable, median, parseArgs, printMachineInfo } from './util.js';

export const description = 'webgpu: matmul GFLOP/s and a GPT training step, kiln vs tfjs-webgpu on the same adapter';

// the model of bench/gpt.ts
const V = 65;
const T = 64;
const B = 16;
const C = 128;
const H = 4;
const L = 4;

type TF = typeof import('@tensorflow/tfjs-core');

/** tfjs-core with its WebGPU backend on Dawn's `navigator.gpu`. */
async function loadTfjs(): Promise<TF | string> {
  try {
    const dawn = (await import('webgpu')) as unknown as { create(o: string[]): GPU; globals: Record<string, unknown> };
    for (const [k, v] of Object.entries(dawn.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    const gpu = dawn.create([]);
    Object.defineProperty(globalThis, 'navigator', { value: { gpu, userAgent: 'node' }, configurable: true });
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) return 'tfjs could not start its webgpu backend';
    await tf.ready();
    return tf;
  } catch (e) {
    return `tfjs-webgpu not run: ${(e as Error).message}`;
  }
}

/** Seconds per call of `step` (which queues work), timed over enough calls to fill `seconds`. */
async function perCall(step: () => void, wait: () => Promise<void>, seconds: number): Promise<number> {
  step();
  await wait(); // warm-up: pipelines compiled, buffers pooled
  let t0 = performance.now();
  step();
  await wait();
  const once = (performance.now() - t0) / 1000;
  const reps = Math.max(1, Math.min(50, Math.round(seconds / Math.max(once, 1e-4))));
  t0 = performance.now();
  for (let i = 0; i < reps; i++) step();
  await wait();
  return (performance.now() - t0) / 1000 / reps;
}

async function kilnMatmul(n: number, seconds: number): Promise<number> {
  const gen = new Generator(1);
  const a = randn([n, n], { generator: gen });
  const b = randn([n, n], { generator: gen });
  let c: Tensor | null = null;
  const s = await perCall(
    () => {
      c?.dispose();
      c = matmul(a, b);
    },
    () => sync('webgpu'),
    seconds,
  );
  (c as Tensor | null)?.dispose();
  a.dispose();
  b.dispose();
  return (2 * n ** 3) / s / 1e9;
}

async function tfMatmul(tf: TF, n: number, seconds: number): Promise<number> {
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  let c: import('@tensorflow/tfjs-core').Tensor | null = null;
  const s = await perCall(
    () => {
      c?.dispose();
      c = tf.matMul(a, b);
    },
    async () => {
      await c!.data(); // tfjs has no queue-wide sync; reading the last result waits for the queue
    },
    seconds,
  );
  (c as import('@tensorflow/tfjs-core').Tensor | null)?.dispose();
  a.dispose();
  b.dispose();
  return (2 * n ** 3) / s / 1e9;
}

/** Median ms of a kiln GPT step on webgpu, with submits and dispatches per step. */
async function kilnStep(backend: WebGPUBackend, steps: number): Promise<{ ms: number; submits: number; dispatches: number; loss: number }> {
  const gen = new Generator(0);
  const model = new GPT({ vocabSize: V, blockSize: T, nLayer: L, nHead: H, nEmbd: C, dropout: 0, bias: true, tiedHead: true }, { backend: 'webgpu', generator: gen });
  const opt = new AdamW(model.parameters(), { lr: 3e-4 });
  const idx = randint(0, V, [B, T], { backend: 'webgpu', generator: gen });
  const tgt = randint(0, V, [B, T], { backend: 'webgpu', generator: gen });
  const times: number[] = [];
  let loss = 0;
  let submits = 0;
  let dispatches = 0;
  for (let i = 0; i < steps + 2; i++) {
    const before = backend.stats();
    const t0 = performance.now();
    const l = tidy(() => {
      const { logits } = model.forward(idx, null);
      const l = crossEntropy(logits, tgt);
      opt.zeroGrad();
      l.backward();
      opt.step();
      return l;
    });
    loss = await l.item(); // one read per step, as PyTorch's loss.item()
    l.dispose();
    const after = backend.stats();
    if (i >= 2) {
      times.push(performance.now() - t0);
      submits = after.submits - before.submits;
      dispatches = after.dispatches - before.dispatches;
    }
  }
  return { ms: median(times), submits, dispatches, loss };
}

/** The same GPT step in tfjs: pre-norm blocks, causal attention, GELU MLP, tied head, Adam. */
async function tfStep(tf: TF, steps: number): Promise<{ ms: number; loss: number }> {
  const D = C / H;
  const w = (shape: number[], std = 0.02): import('@tensorflow/tfjs-core').Variable => tf.variable(tf.randomNormal(shape, 0, std));
  const ones = (n: number): import('@tensorflow/tfjs-core').Variable => tf.variable(tf.ones([n]));
  const zeros = (n: number): import('@tensorflow/tfjs-core').Variable => tf.variable(tf.zeros([n]));
  const wte = w([V, C]);
  const wpe = w([T, C]);
  const blocks = Array.from({ length: L }, () => ({
    ln1g: ones(C), ln1b: zeros(C), attnW: w([C, 3 * C]), attnB: zeros(3 * C), projW: w([C, C]), projB: zeros(C),
    ln2g: ones(C), ln2b: zeros(C), fcW: w([C, 4 * C]), fcB: zeros(4 * C), fc2W: w([4 * C, C]), fc2B: zeros(C),
  }));
  const lnfg = ones(C);
  const lnfb = zeros(C);
  const mask = tf.linalg.bandPart(tf.ones([T, T]), -1, 0); // lower triangle: causal
  const negInf = tf.mul(tf.sub(1, mask), -1e9);
  type T_ = import('@tensorflow/tfjs-core').Tensor;
  const ln = (x: T_, g: T_, b: T_): T_ => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b);
  };
  const gelu = (x: T_): T_ => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI)))));
  const lin = (x: T_, W: T_, b: T_): T_ => tf.add(tf.matMul(tf.reshape(x, [-1, x.shape[x.shape.length - 1]!]), W), b);
  const idx = tf.randomUniform([B, T], 0, V, 'int32');
  const tgt = tf.oneHot(tf.reshape(tf.randomUniform([B, T], 0, V, 'int32'), [-1]), V);
  const opt = tf.train.adam(3e-4);
  const lossFn = (): import('@tensorflow/tfjs-core').Scalar => {
    let x = tf.add(tf.gather(wte, idx), wpe) as T_; // [B, T, C]
    for (const p of blocks) {
      const qkv = tf.reshape(lin(ln(x, p.ln1g, p.ln1b), p.attnW, p.attnB), [B, T, 3, H, D]);
      const [q, k, v] = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4])); // each [B, H, T, D]
      const att = tf.softmax(tf.add(tf.mul(tf.matMul(q!, k!, false, true), 1 / Math.sqrt(D)), negInf));
      const y = tf.reshape(tf.transpose(tf.matMul(att, v!), [0, 2, 1, 3]), [B, T, C]);
      x = tf.add(x, tf.reshape(lin(y, p.projW, p.projB), [B, T, C]));
      const h = gelu(lin(ln(x, p.ln2g, p.ln2b), p.fcW, p.fcB));
      x = tf.add(x, tf.reshape(lin(h, p.fc2W, p.fc2B), [B, T, C]));
    }
    const logits = tf.matMul(tf.reshape(ln(x, lnfg, lnfb), [B * T, C]), wte, false, true);
    return tf.losses.softmaxCrossEntropy(tgt, logits) as import('@tensorflow/tfjs-core').Scalar;
  };
  const times: number[] = [];
  let loss = 0;
  for (let i = 0; i < steps + 2; i++) {
    const t0 = performance.now();
    const l = opt.minimize(lossFn, true)!;
    loss = (await l.data())[0]!;
    l.dispose();
    if (i >= 2) times.push(performance.now() - t0);
  }
  return { ms: median(times), loss };
}

export async function main(args: string[]): Promise<void> {
  const { opts } = parseArgs(args);
  const sizes = String(opts.sizes ?? '256,512,1024,2048').split(',').map(Number);
  const steps = Number(opts.steps ?? 10);
  const seconds = Number(opts.seconds ?? 1);
  let backend: WebGPUBackend;
  try {
    backend = (await useBackend('webgpu')) as WebGPUBackend;
  } catch (e) {
    console.log(`webgpu is not available: ${(e as Error).message}`);
    return;
  }
  const tf = await loadTfjs();
  printMachineInfo();
  const a = backend.adapter;
  console.log(`- adapter: ${a.description || a.device} (vendor ${a.vendor || '?'}, architecture ${a.architecture || '?'})${a.software ? ': a CPU driver, not a GPU' : ''}`);
  console.log(`- features: ${a.features.join(', ')}`);
  console.log(`- command: npm run bench -- webgpu ${args.join(' ')}\n`);
  if (typeof tf === 'string') console.log(tf);
  const rows: (string | number)[][] = [];
  for (const n of sizes) {
    const k = await kilnMatmul(n, seconds);
    const t = typeof tf === 'string' ? null : await tfMatmul(tf, n, seconds);
    rows.push([`matmul ${n}×${n}×${n} f32 (GFLOP/s)`, fmtNum(k), t === null ? '—' : fmtNum(t), t === null ? '—' : fmtNum(k / t)]);
  }
  const ks = await kilnStep(backend, steps);
  // tfjs-core's npm build registers no gradients (the @tensorflow/tfjs umbrella package does, and
  // its ESM files cannot be imported one by one in Node): the step row then says why it is empty
  let ts: { ms: number; loss: number } | null = null;
  if (typeof tf !== 'string')
    ts = await tfStep(tf, steps).catch((e: Error) => (console.log(`tfjs-webgpu GPT step not run: ${e.message}`), null));
  rows.push([`GPT step B=${B} T=${T} C=${C} L=${L} (ms)`, fmtNum(ks.ms), ts ? fmtNum(ts.ms) : '—', ts ? fmtNum(ts.ms / ks.ms) : '—']);
  console.log(mdTable(['what', 'kiln', 'tfjs-webgpu', 'kiln speed-up'], rows));
  console.log(`\nkiln GPT step: ${ks.submits} submits, ${ks.dispatches} dispatches (loss ${fmtNum(ks.loss)}${ts ? `; tfjs loss ${fmtNum(ts.loss)}` : ''}).`);
  console.log('Speed-up is kiln/tfjs throughput (GFLOP/s) or tfjs/kiln time (step): the goal is ≥ 1.5 on every row, and ≤ 4 submits per step.');
  backend.destroy();
}
