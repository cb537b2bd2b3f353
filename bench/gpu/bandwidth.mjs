// Memory-bound kernels of kiln against the device-to-device copy rate (about 4.3 TB/s on an H200,
// counting bytes read and written) and against PyTorch on the same device, in one run. Goal: at
// least 85% of the copy rate at large sizes. Rows: copy (clone, and copy_ into an existing
// tensor), elementwise add, gelu, an add broadcasting a row vector, layerNorm over rows of 768
// and 4096, softmax over rows of 4096, a full sum, at 2^24, 2^26 and 2^28 elements in f32 and
// bf16; and AdamW's step over a GPT-like list of parameters of ~2^26 elements in all.
//
// GB/s = bytes a kernel must move (each input read once, each output written once; see BYTES
// below) / median time. kiln: `await backend.sync()` around N reps, median over trials. torch: a
// child python3 (the same ops, CUDA events around N reps; wall clock on cpu). The copy rate is
// torch's y.copy_(x) at the largest size (kiln's best copy when torch is missing). Needs only
// node, dist/, the built addon and python3 with PyTorch (scripts/gpu-check.sh runs it).
//
//   node bench/gpu/bandwidth.mjs [--backend cuda] [--small] [--sizes 24,26,28] [--trials 5]
//                                [--python python3] [--no-torch] [--torch-timeout 150]
//
// `--backend cpu --small` checks the script without a GPU (torch on cpu, sizes 2^16..2^20).
import { spawnSync } from 'node:child_process';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const flag = (name) => argv.includes(`--${name}`);

const backendName = opt('backend', 'cuda');
const small = flag('small');
const sizes = opt('sizes', small ? '16,18,20' : '24,26,28').split(',').map((e) => 2 ** Number(e));
const trials = Number(opt('trials', 5));
const dtypes = opt('dtypes', 'f32,bf16').split(',');
// bytes each trial moves (so a trial lasts ~5 ms on an H200, ~20 ms on a cpu), reps clamped
const trialBytes = backendName === 'cuda' ? 2e10 : 2e8;
const repsFor = (bytes) => Math.max(3, Math.min(500, Math.round(trialBytes / bytes)));
// AdamW: a GPT-like stack at width d: 5 blocks (qkv, proj, fc, fc2 with biases, two norms) and
// an embedding of 4d² ≈ 64·d² elements (2^26 at d = 1024)
const adamWidth = Number(opt('adam-width', small ? 128 : 1024));

const kiln = await import('../../dist/index.js');
const be = await kiln.useBackend(backendName);
const devName = be.device?.name ?? backendName;
const BYTES = { f32: 4, bf16: 2, f16: 2 };

// ---- the cases: [op, dtype, rows, cols] and the bytes each moves -----------------------------
// copy/clone: read n, write n. add: read 2n, write n. gelu: read n, write n. addRow: read n and
// the row, write n. layerNorm: read n, weight and bias, write n. softmax: read n, write n.
// sum: read n (the one output is not counted). adamw: per element, read param, grad, m, v and
// write param, m, v (m and v are f32 in kiln; torch keeps them in the parameter's dtype).
const cases = [];
for (const dt of dtypes)
  for (const n of sizes) {
    const s = BYTES[dt];
    const rowsOf = (cols) => Math.floor(n / cols);
    const at = cases.length;
    cases.push({ op: 'copy_', dt, rows: 1, cols: n, bytes: 2 * n * s });
    cases.push({ op: 'clone', dt, rows: 1, cols: n, bytes: 2 * n * s });
    cases.push({ op: 'add', dt, rows: 1, cols: n, bytes: 3 * n * s });
    cases.push({ op: 'gelu', dt, rows: 1, cols: n, bytes: 2 * n * s });
    cases.push({ op: 'addRow', dt, rows: rowsOf(4096), cols: 4096, bytes: (2 * rowsOf(4096) + 1) * 4096 * s });
    for (const c of [768, 4096]) cases.push({ op: 'layerNorm', dt, rows: rowsOf(c), cols: c, bytes: (2 * rowsOf(c) + 2) * c * s });
    cases.push({ op: 'softmax', dt, rows: rowsOf(4096), cols: 4096, bytes: 2 * rowsOf(4096) * 4096 * s });
    cases.push({ op: 'sum', dt, rows: 1, cols: n, bytes: n * s });
    for (const c of cases.slice(at)) c.n = n;
  }
const d = adamWidth;
const block = [3 * d * d, 3 * d, d * d, d, 4 * d * d, 4 * d, 4 * d * d, d, d, d, d, d];
const adamSizes = [4 * d * d, ...Array.from({ length: 5 }, () => block).flat()];
const adamN = adamSizes.reduce((a, b) => a + b, 0);
for (const dt of dtypes)
  cases.push({ op: 'adamw', dt, sizes: adamSizes, rows: adamSizes.length, cols: adamN, n: adamN, bytes: adamN * (3 * BYTES[dt] + 4 * 4) });
for (const c of cases) c.reps = repsFor(c.bytes);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---- kiln ------------------------------------------------------------------------------------
const on = { backend: backendName };
const rnd = (shape, dt) => {
  const x = kiln.randn(shape, { ...on, dtype: 'f32' });
  if (dt === 'f32') return x;
  const y = x.cast(dt);
  x.dispose();
  return y;
};

// returns [run one rep, dispose the inputs]
function setup(c) {
  const { op, dt, rows, cols } = c;
  const shape = rows === 1 ? [cols] : [rows, cols];
  if (op === 'adamw') {
    const params = c.sizes.map((n) => rnd([n], dt).requiresGrad_());
    for (const p of params) p.grad = rnd(p.shape, dt).mul(1e-3);
    const o = new kiln.AdamW(params, { lr: 1e-4, weightDecay: 0.1 });
    return [() => o.step(), () => { for (const p of params) p.dispose(); }];
  }
  const x = rnd(shape, dt);
  const free = (...ts) => () => { for (const t of ts) t.dispose(); };
  const disposeAfter = (f) => () => f().dispose();
  switch (op) {
    case 'copy_': {
      const y = kiln.zeros(shape, { ...on, dtype: dt });
      return [() => y.copy_(x), free(x, y)];
    }
    case 'clone': return [disposeAfter(() => x.clone()), free(x)];
    case 'add': {
      const y = rnd(shape, dt);
      return [disposeAfter(() => kiln.add(x, y)), free(x, y)];
    }
    case 'gelu': return [disposeAfter(() => kiln.gelu(x)), free(x)];
    case 'addRow': {
      const r = rnd([cols], dt);
      return [disposeAfter(() => kiln.add(x, r)), free(x, r)];
    }
    case 'layerNorm': {
      const w = rnd([cols], dt);
      const b = rnd([cols], dt);
      return [disposeAfter(() => kiln.layerNorm(x, [cols], w, b, 1e-5)), free(x, w, b)];
    }
    case 'softmax': return [disposeAfter(() => kiln.softmax(x, -1)), free(x)];
    case 'sum': return [disposeAfter(() => kiln.sum(x)), free(x)];
  }
  throw new Error(`unknown op ${op}`);
}

async function timeKiln(c) {
  const [run, dispose] = setup(c);
  try {
    for (let i = 0; i < 2; i++) run();
    await be.sync();
    const times = [];
    for (let t = 0; t < trials; t++) {
      const t0 = performance.now();
      for (let i = 0; i < c.reps; i++) run();
      await be.sync();
      times.push((performance.now() - t0) / c.reps);
    }
    return median(times);
  } finally {
    dispose();
    await be.sync();
  }
}

const label = (c) => (c.op === 'adamw' ? `${c.rows} tensors, ${c.cols}` : c.rows === 1 ? `${c.cols}` : `${c.rows}×${c.cols}`);
const gbs = (bytes, ms) => bytes / (ms * 1e-3) / 1e9;
for (const c of cases) {
  try {
    c.kilnMs = await timeKiln(c);
    c.kiln = gbs(c.bytes, c.kilnMs);
    console.log(`kiln ${c.op} ${c.dt} ${label(c)}: ${c.kilnMs.toFixed(4)} ms, ${c.kiln.toFixed(1)} GB/s (${c.reps} reps × ${trials})`);
  } catch (e) {
    c.kilnError = String(e?.message ?? e).split('\n')[0];
    console.log(`kiln ${c.op} ${c.dt} ${label(c)}: failed: ${c.kilnError}`);
  }
}
be.emptyCache?.(); // hand kiln's cached blocks back before torch allocates

// ---- torch, in a child python3 ---------------------------------------------------------------
const py = String.raw`
import json, sys, time
try:
    import torch
    import torch.nn.functional as F
except Exception as e:
    print(json.dumps({'error': 'no torch: %s' % e})); sys.exit(3)
cases, trials, device = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if device == 'cuda' and not torch.cuda.is_available():
    print(json.dumps({'error': 'torch %s sees no CUDA device' % torch.__version__})); sys.exit(3)
DT = {'f32': torch.float32, 'bf16': torch.bfloat16, 'f16': torch.float16}
def rnd(shape, dt): return torch.randn(*shape, device=device, dtype=torch.float32).to(DT[dt])
def setup(c):
    op, dt, rows, cols = c['op'], c['dt'], c['rows'], c['cols']
    shape = [cols] if rows == 1 else [rows, cols]
    if op == 'adamw':
        ps = [rnd([n], dt).requires_grad_() for n in c['sizes']]
        for p in ps: p.grad = rnd(p.shape, dt) * 1e-3
        kind = 'foreach'
        try:
            if device != 'cuda': raise TypeError('fused AdamW is cuda-only')
            o = torch.optim.AdamW(ps, lr=1e-4, weight_decay=0.1, fused=True); kind = 'fused'
        except (TypeError, RuntimeError, ValueError):
            o = torch.optim.AdamW(ps, lr=1e-4, weight_decay=0.1, foreach=True)
        st = DT[dt].itemsize if hasattr(DT[dt], 'itemsize') else torch.empty(0, dtype=DT[dt]).element_size()
        n = sum(c['sizes'])
        return o.step, n * (3 * st + 4 * st), kind   # m and v in the parameter's dtype
    x = rnd(shape, dt)
    if op == 'copy_':
        y = torch.empty_like(x); return (lambda: y.copy_(x)), None, ''
    if op == 'clone': return (lambda: x.clone()), None, ''
    if op == 'add':
        y = rnd(shape, dt); return (lambda: x + y), None, ''
    if op == 'gelu': return (lambda: F.gelu(x)), None, ''
    if op == 'addRow':
        r = rnd([cols], dt); return (lambda: x + r), None, ''
    if op == 'layerNorm':
        w, b = rnd([cols], dt), rnd([cols], dt)
        return (lambda: F.layer_norm(x, (cols,), w, b, 1e-5)), None, ''
    if op == 'softmax': return (lambda: torch.softmax(x, -1)), None, ''
    if op == 'sum': return (lambda: x.sum()), None, ''
    raise ValueError(op)
def sync():
    if device == 'cuda': torch.cuda.synchronize()
out = []
with torch.no_grad():
    for c in cases:
        try:
            run, nbytes, kind = setup(c)
            for _ in range(2): run()
            sync()
            times = []
            for _ in range(trials):
                if device == 'cuda':
                    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    s.record()
                    for _ in range(c['reps']): run()
                    e.record(); torch.cuda.synchronize()
                    times.append(s.elapsed_time(e) / c['reps'])
                else:
                    t0 = time.perf_counter()
                    for _ in range(c['reps']): run()
                    times.append((time.perf_counter() - t0) * 1e3 / c['reps'])
            times.sort()
            ms = times[len(times) // 2] if len(times) % 2 else (times[len(times) // 2 - 1] + times[len(times) // 2]) / 2
            out.append({'ms': ms, 'bytes': nbytes, 'kind': kind})
        except Exception as e:
            out.append({'error': str(e).split('\n')[0][:120]})
        run = None
        if device == 'cuda': torch.cuda.empty_cache()
name = torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu'
print(json.dumps({'torch': torch.__version__, 'device': name, 'cases': out}))
`;

let torch = null;
let torchWhy = '';
if (flag('no-torch')) torchWhy = '--no-torch';
else {
  const device = backendName === 'cuda' ? 'cuda' : 'cpu';
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE; // set for node's OpenBLAS here; wrong for torch's
  delete env.OPENBLAS_L2_SIZE;
  const given = opt('python', process.env.KILN_PYTHON);
  const torchTimeout = Number(opt('torch-timeout', 150)); // s; a hung child must not outlive gpu-check's timeout
  const pythons = given ? [given] : ['python3', '/usr/bin/python3'];
  const payload = JSON.stringify(cases.map(({ op, dt, rows, cols, sizes: s, reps }) => ({ op, dt, rows, cols, sizes: s, reps })));
  for (const python of pythons) {
    const r = spawnSync(python, ['-c', py, payload, String(trials), device], { encoding: 'utf8', env, maxBuffer: 1 << 24, timeout: torchTimeout * 1000, killSignal: 'SIGKILL' });
    let res = null;
    try { res = JSON.parse((r.stdout || '').trim().split('\n').pop()); } catch {}
    if (r.status === 0 && res?.cases) { torch = res; torch.python = python; break; }
    const why = res?.error ?? (r.error ? r.error.message : (r.stderr || '').trim().split('\n').pop() || `exit ${r.status}`);
    torchWhy += `${torchWhy ? '; ' : ''}${python}: ${why}`;
  }
}
if (torch) {
  cases.forEach((c, i) => {
    const t = torch.cases[i];
    if (t?.error) c.torchError = t.error;
    else if (t) {
      c.torchBytes = t.bytes ?? c.bytes;
      c.torch = gbs(c.torchBytes, t.ms);
      c.torchKind = t.kind;
      console.log(`torch ${c.op} ${c.dt} ${label(c)}: ${t.ms.toFixed(4)} ms, ${c.torch.toFixed(1)} GB/s${t.kind ? ` (${t.kind})` : ''}`);
    }
  });
} else console.log(`torch not measured: ${torchWhy}`);

// ---- the copy rate and the table ---------------------------------------------------------------
const largest = Math.max(...sizes);
const copies = (key) => cases.filter((c) => c.n === largest && (c.op === 'copy_' || c.op === 'clone') && c[key]);
const torchCopy = copies('torch').filter((c) => c.op === 'copy_');
const ref = torchCopy.length
  ? { rate: Math.max(...torchCopy.map((c) => c.torch)), what: 'torch y.copy_(x)' }
  : { rate: Math.max(0, ...copies('kiln').map((c) => c.kiln)), what: "kiln's best copy" };

const fmt = (x, dp = 1) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(dp));
const pct = (c) => (c.kiln && ref.rate ? (100 * c.kiln) / ref.rate : undefined);
const pctCell = (c) => (pct(c) === undefined ? '–' : `${pct(c).toFixed(0)}%`);
const low = cases.filter((c) => (c.n === largest || c.op === 'adamw') && !(pct(c) >= 85));
console.log();
console.log(`copy rate: ${fmt(ref.rate)} GB/s (${ref.what} at ${largest} elements)`);
console.log(low.length ? `below 85% of it at the largest size: ${low.map((c) => `${c.op} ${c.dt}${c.op === 'layerNorm' ? ` ×${c.cols}` : ''}`).join(', ')}` : 'every kernel at the largest size reaches 85% of it');
const torchNote = torch ? `torch ${torch.torch} (${torch.python})` : `torch not measured (${torchWhy})`;
console.log(`bandwidth GB/s of memory-bound kernels on ${devName} (kiln ${backendName}; ${torchNote}; median of ${trials} trials)`);
console.log('| op | dtype | elements | MB moved | kiln GB/s | torch GB/s | kiln % of copy | kiln/torch |');
console.log('|---|---|---|---:|---:|---:|---:|---:|');
for (const c of cases) {
  const note = c.kilnError ? ` (kiln failed: ${c.kilnError})` : '';
  const tcol = c.torchError ? `– (${c.torchError})` : `${fmt(c.torch)}${c.torchKind ? ` ${c.torchKind}` : ''}${c.torchBytes && c.torchBytes !== c.bytes ? ` (${(c.torchBytes / 1e6).toFixed(1)} MB: m, v in ${c.dt})` : ''}`;
  const ratio = c.kiln && c.torch ? fmt(c.kiln / c.torch, 2) : '–';
  console.log(`| ${c.op} | ${c.dt} | ${label(c)} | ${(c.bytes / 1e6).toFixed(1)} | ${fmt(c.kiln)}${note} | ${tcol} | ${pctCell(c)} | ${ratio} |`);
}
