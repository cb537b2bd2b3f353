/**
 * kiln in the browser: train a small GPT on text the user pastes (or on the bundled sample), on
 * WebGPU when the browser has an adapter, else on the pure-TypeScript `ref` backend. The page
 * shows the loss as it falls, the tokens per second and a sample that updates as it trains, and
 * saves the weights as a `.safetensors` checkpoint that `kiln sample --ckpt FILE` reads (the
 * tokenizer travels inside it).
 *
 * URL parameters (for tests and experiments): `steps` (default 2000), `autostart=1`,
 * `sampleEvery` (steps between samples, default 100), `sampleTokens` (default 120), `seed`.
 *
 * Build: `node scripts/build-browser.mjs`, then serve this folder with any static server
 * (`python3 -m http.server -d examples/browser 8000`) and open http://localhost:8000.
 */
import { AdamW, BPETokenizer, GPT, Generator, backends, checkpointBytes, clipGradNorm, generate, manualSeed, tensor, tidy, useBackend, type GPTConfig, type Tensor, type WebGPUBackend } from 'kilnjs';
import SAMPLE from './tinyshakespeare.txt';

const EOT = '<|endoftext|>';
const params = new URLSearchParams(location.search);
const intParam = (name: string, dflt: number, min: number): number => {
  const v = Number(params.get(name) ?? dflt);
  return Number.isInteger(v) && v >= min ? v : dflt;
};

/** The run: a GPT of a few layers over a small byte-level BPE, as `kiln train --config micro` but wider. */
const RUN = {
  vocabSize: 512,
  blockSize: 64,
  nLayer: 2,
  nHead: 4,
  nEmbd: 64,
  batchSize: 8,
  steps: intParam('steps', 2000, 1),
  lr: 3e-3,
  warmupSteps: 10,
  weightDecay: 0.1,
  betas: [0.9, 0.99] as [number, number],
  clip: 1.0,
  seed: intParam('seed', 1337, 0),
  sampleEvery: intParam('sampleEvery', 100, 1),
  sampleTokens: intParam('sampleTokens', 120, 1),
  temperature: 0.8,
  topK: 40,
  /** Pasted text beyond this is not used: BPE training and encoding stay within seconds. */
  maxChars: 1_000_000,
};

/** What the page exposes for tests and the curious (`window.kilnDemo`). */
interface DemoState {
  status: 'idle' | 'starting' | 'training' | 'done' | 'stopped' | 'error';
  backend: string;
  /** The WebGPU adapter's name, or why there is none. */
  adapter: string;
  /** Loss per optimizer step. */
  losses: number[];
  step: number;
  tokensPerSecond: number;
  sample: string;
  error: string | null;
  /** Checkpoints saved by the button. */
  saves: number;
}

const state: DemoState = { status: 'idle', backend: '', adapter: '', losses: [], step: 0, tokensPerSecond: 0, sample: '', error: null, saves: 0 };
(window as unknown as { kilnDemo: DemoState }).kilnDemo = state;

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
};
const ui = {
  text: $<HTMLTextAreaElement>('text'),
  start: $<HTMLButtonElement>('start'),
  stop: $<HTMLButtonElement>('stop'),
  save: $<HTMLButtonElement>('save'),
  backend: $('backend'),
  status: $('status'),
  stats: $('stats'),
  plot: $('plot') as unknown as SVGSVGElement,
  sample: $('sample'),
};

function show(): void {
  ui.backend.textContent = state.backend ? `${state.backend}${state.adapter ? ` — ${state.adapter}` : ''}` : 'choosing…';
  const last = state.losses.at(-1);
  ui.stats.textContent =
    state.step === 0
      ? ''
      : `step ${state.step}/${RUN.steps} · loss ${last?.toFixed(3)} · ${Math.round(state.tokensPerSecond).toLocaleString('en')} tokens/s`;
  document.body.dataset.status = state.status;
  document.body.dataset.backend = state.backend;
  document.body.dataset.step = String(state.step);
  ui.start.disabled = state.status === 'starting' || state.status === 'training';
  ui.stop.disabled = state.status !== 'training';
  ui.save.disabled = model === null || state.step === 0;
  drawLoss();
}

function setStatus(s: DemoState['status'], message: string): void {
  state.status = s;
  ui.status.textContent = message;
  show();
}

// ---- the loss plot (SVG) -------------------------------------------------------------------------

const SVG_NS = 'http://www.w3.org/2000/svg';
const W = 600;
const H = 220;
const PAD = { left: 44, right: 10, top: 10, bottom: 24 };

function svg(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function drawLoss(): void {
  const losses = state.losses;
  ui.plot.replaceChildren();
  ui.plot.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const x0 = PAD.left;
  const x1 = W - PAD.right;
  const y0 = H - PAD.bottom;
  const y1 = PAD.top;
  ui.plot.append(svg('line', { x1: x0, y1: y0, x2: x1, y2: y0, class: 'axis' }), svg('line', { x1: x0, y1: y0, x2: x0, y2: y1, class: 'axis' }));
  if (losses.length === 0) {
    ui.plot.append(svg('text', { x: (x0 + x1) / 2, y: (y0 + y1) / 2, 'text-anchor': 'middle', class: 'label' }, 'the training loss appears here'));
    return;
  }
  const hi = Math.max(...losses);
  const lo = Math.min(...losses);
  const span = hi - lo || 1;
  const n = Math.max(losses.length - 1, 1);
  const px = (i: number): number => x0 + ((x1 - x0) * i) / n;
  const py = (v: number): number => y0 - ((y0 - y1) * (v - lo)) / span;
  for (const v of [lo, (lo + hi) / 2, hi]) {
    ui.plot.append(svg('line', { x1: x0, y1: py(v), x2: x1, y2: py(v), class: 'grid' }));
    ui.plot.append(svg('text', { x: x0 - 4, y: py(v) + 4, 'text-anchor': 'end', class: 'label' }, v.toFixed(2)));
  }
  ui.plot.append(svg('text', { x: x0 + 4, y: H - 6, class: 'label' }, 'loss per step'));
  ui.plot.append(svg('text', { x: x1, y: H - 6, 'text-anchor': 'end', class: 'label' }, `step ${losses.length}`));
  ui.plot.append(svg('polyline', { points: losses.map((v, i) => `${px(i).toFixed(1)},${py(v).toFixed(1)}`).join(' '), class: 'loss' }));
}

// ---- the backend -----------------------------------------------------------------------------------

/** WebGPU when the browser gives an adapter, else `ref`; says which and why. */
async function chooseBackend(): Promise<void> {
  const webgpu = backends().find((b) => b.name === 'webgpu');
  let reason = webgpu ? webgpu.reason : 'this build has no webgpu backend';
  if (webgpu?.available) {
    try {
      const b = (await useBackend('webgpu')) as WebGPUBackend;
      const a = b.adapter;
      state.backend = 'webgpu';
      state.adapter = [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' ') + (a.software ? ' (a CPU implementation of WebGPU)' : '');
      return;
    } catch (e) {
      reason = (e as Error).message;
    }
  }
  await useBackend('ref');
  state.backend = 'ref';
  state.adapter = `no WebGPU: ${reason}; training on the pure-TypeScript reference backend`;
}

// ---- training ----------------------------------------------------------------------------------------

let model: GPT | null = null;
let optimizer: AdamW | null = null;
let tokenizer: BPETokenizer | null = null;
let config: GPTConfig | null = null;
let stopRequested = false;
// training steps and saves take turns: a save reads the weights between two steps
let turn: Promise<unknown> = Promise.resolve();
function exclusive<T>(fn: () => Promise<T>): Promise<T> {
  const run = turn.then(fn);
  turn = run.catch(() => undefined);
  return run;
}

const yieldToPage = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

async function start(): Promise<void> {
  stopRequested = false;
  setStatus('starting', 'starting…');
  try {
    if (!state.backend) await chooseBackend();
    const pasted = ui.text.value.trim();
    const text = (pasted.length > 0 ? pasted : SAMPLE).slice(0, RUN.maxChars);
    if (text.length < 4 * RUN.blockSize) throw new Error(`the text has ${text.length} characters; paste at least ${4 * RUN.blockSize}`);
    setStatus('starting', `training a ${RUN.vocabSize}-token BPE on ${text.length.toLocaleString('en')} characters…`);
    await yieldToPage();
    const tok = BPETokenizer.train(text, { vocabSize: RUN.vocabSize, specialTokens: [EOT] });
    const ids = Int32Array.from(tok.encode(text));
    if (ids.length < RUN.blockSize + 2) throw new Error(`the text encodes to ${ids.length} tokens; at least ${RUN.blockSize + 2} are needed`);
    manualSeed(RUN.seed);
    // a new run frees the last one's weights and moments (after any save that is reading them)
    await exclusive(async () => {
      optimizer?.disposeState();
      model?.dispose();
      [model, optimizer] = [null, null];
    });
    tokenizer = tok;
    config = { vocabSize: tok.vocabSize, blockSize: RUN.blockSize, nLayer: RUN.nLayer, nHead: RUN.nHead, nEmbd: RUN.nEmbd, dropout: 0 };
    model = new GPT(config, { generator: new Generator(RUN.seed) });
    const trainable = model.parameters().filter((p) => p.requiresGrad);
    // nanoGPT's groups: weight decay on the matrices only
    optimizer = new AdamW(
      [
        { params: trainable.filter((p) => p.rank >= 2), weightDecay: RUN.weightDecay },
        { params: trainable.filter((p) => p.rank < 2), weightDecay: 0 },
      ],
      { lr: RUN.lr, betas: RUN.betas, eps: 1e-8 },
    );
    state.losses = [];
    state.step = 0;
    state.tokensPerSecond = 0;
    setStatus('training', `training on ${ids.length.toLocaleString('en')} tokens (${tok.vocabSize} in the vocabulary)`);
    await train(model, optimizer, ids, trainable);
  } catch (e) {
    state.error = (e as Error).message ?? String(e);
    setStatus('error', `error: ${state.error}`);
  }
}

async function train(gpt: GPT, opt: AdamW, ids: Int32Array, trainable: Tensor[]): Promise<void> {
  const { batchSize: B, blockSize: T } = RUN;
  const batches = new Generator(RUN.seed + 1);
  let trainSeconds = 0;
  while (state.step < RUN.steps && !stopRequested) {
    await exclusive(async () => {
      const t0 = performance.now();
      // random windows of T + 1 tokens: input the first T, target the last T
      const starts = batches.draw(B, { kind: 'randint', low: 0, high: ids.length - T });
      const input = new Int32Array(B * T);
      const target = new Int32Array(B * T);
      starts.forEach((s, b) => {
        input.set(ids.subarray(s, s + T), b * T);
        target.set(ids.subarray(s + 1, s + T + 1), b * T);
      });
      const x = tensor(input, [B, T], { dtype: 'i32' });
      const y = tensor(target, [B, T], { dtype: 'i32' });
      // linear warm-up, then the peak rate
      const lr = RUN.lr * Math.min(1, (state.step + 1) / RUN.warmupSteps);
      for (const g of opt.paramGroups) g.lr = lr;
      let loss: Tensor;
      try {
        loss = tidy(() => {
          const l = gpt.forward(x, y).loss!;
          l.backward();
          return l.detach();
        });
      } finally {
        x.dispose();
        y.dispose();
      }
      clipGradNorm(trainable, RUN.clip).dispose();
      opt.step();
      opt.zeroGrad();
      const value = await loss.item(); // the step's one read: the plot needs every loss
      loss.dispose();
      trainSeconds += (performance.now() - t0) / 1000;
      state.losses.push(value);
      state.step++;
      state.tokensPerSecond = (state.step * B * T) / trainSeconds;
      if (!Number.isFinite(value)) throw new Error(`the loss is ${value} at step ${state.step}`);
    });
    show();
    if (state.step % RUN.sampleEvery === 0 || state.step === RUN.steps) await exclusive(() => updateSample(gpt));
    await yieldToPage();
  }
  setStatus(stopRequested ? 'stopped' : 'done', `${stopRequested ? 'stopped' : 'finished'} after ${state.step} steps; save the weights, or start again`);
}

/** Continue the start of a document (the EOT token) for a few tokens. */
async function updateSample(gpt: GPT): Promise<void> {
  const tok = tokenizer!;
  const eot = tok.specialTokens.get(EOT) ?? 0;
  const idx = tensor(Int32Array.from([eot]), [1, 1], { dtype: 'i32' });
  const out = await generate(gpt, idx, { maxNewTokens: RUN.sampleTokens, temperature: RUN.temperature, topK: RUN.topK, generator: new Generator(RUN.seed + state.step) });
  const ids = Array.from(await out.data()).slice(1);
  idx.dispose();
  out.dispose();
  state.sample = tok.decode(ids);
  ui.sample.textContent = state.sample;
}

// ---- saving ----------------------------------------------------------------------------------------

/** The weights as a checkpoint `kiln sample --ckpt FILE` reads: the model's config and the tokenizer in its metadata. */
async function save(): Promise<void> {
  if (!model || !tokenizer || !config) return;
  const bytes = await exclusive(() =>
    checkpointBytes({
      model: model!,
      step: state.step,
      extra: {
        user: {
          kind: 'kiln-train',
          model: config,
          config: {
            name: 'browser',
            description: 'trained in the browser by examples/browser',
            vocabSize: config!.vocabSize,
            blockSize: RUN.blockSize,
            nLayer: RUN.nLayer,
            nHead: RUN.nHead,
            nEmbd: RUN.nEmbd,
            dropout: 0,
            batchSize: RUN.batchSize,
            gradAccum: 1,
            steps: RUN.steps,
            lr: RUN.lr,
            minLr: RUN.lr,
            warmupSteps: RUN.warmupSteps,
            weightDecay: RUN.weightDecay,
            betas: RUN.betas,
            clip: RUN.clip,
            seed: RUN.seed,
            sampleTokens: RUN.sampleTokens,
            temperature: RUN.temperature,
            topK: RUN.topK,
          },
          // no tokenizer.json travels with a download: `kiln sample` reads this one
          tokenizer: tokenizer!.toJSON(),
          backend: state.backend,
        },
      },
    }),
  );
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `kiln-gpt-step${state.step}.safetensors`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  state.saves++;
  ui.status.textContent = `saved ${a.download} (${(bytes.length / 1e6).toFixed(2)} MB): kiln sample --ckpt ${a.download}`;
}

ui.start.addEventListener('click', () => void start());
ui.stop.addEventListener('click', () => {
  stopRequested = true;
});
ui.save.addEventListener('click', () => {
  save().catch((e: unknown) => {
    state.error = (e as Error).message ?? String(e);
    setStatus('error', `error while saving: ${state.error}`);
  });
});
ui.text.placeholder = `Paste text to train on, or leave this empty to use the bundled sample (${SAMPLE.length.toLocaleString('en')} characters of Shakespeare).`;
show();
void chooseBackend().then(() => {
  show();
  if (params.get('autostart') === '1') void start();
});
