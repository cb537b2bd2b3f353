// kiln's cuda matmul against torch.matmul (cuBLAS) on the same GPU, in one run: bf16 and f16 at
// 1024, 4096 and 8192, GPT-2 small's shapes (B·T = 8192 rows: 768→2304, 768→3072, 3072→768),
// and f32 at 4096 exact and with TF32. Prints TFLOP/s of each and kiln/torch. Needs only node,
// dist/, the built addon and python3 with PyTorch (scripts/gpu-check.sh runs it).
//
//   node bench/gpu/matmul.mjs [--reps N]
import { spawnSync } from 'node:child_process';

const kiln = await import('../../dist/index.js');
const reps = Number(process.argv[process.argv.indexOf('--reps') + 1] || 20);
const CASES = [
  ['bf16', 1024, 1024, 1024], ['bf16', 4096, 4096, 4096], ['bf16', 8192, 8192, 8192],
  ['f16', 4096, 4096, 4096], ['f16', 8192, 8192, 8192],
  ['bf16', 8192, 2304, 768], ['bf16', 8192, 3072, 768], ['bf16', 8192, 768, 3072],
  ['f32', 4096, 4096, 4096], ['tf32', 4096, 4096, 4096],
];

const cuda = await kiln.useBackend('cuda');
const rows = [];
for (const [dt, m, n, k] of CASES) {
  cuda.setAllowTf32(dt === 'tf32');
  const dtype = dt === 'tf32' ? 'f32' : dt;
  const a = kiln.randn([m, k], { backend: 'cuda', dtype: 'f32' }).cast(dtype);
  const b = kiln.randn([k, n], { backend: 'cuda', dtype: 'f32' }).cast(dtype);
  for (let i = 0; i < 3; i++) kiln.matmul(a, b).dispose();
  await cuda.sync();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) kiln.matmul(a, b).dispose();
  await cuda.sync();
  const ms = (performance.now() - t0) / reps;
  rows.push({ dt, m, n, k, kiln: (2 * m * n * k) / ms / 1e9 });
  a.dispose();
  b.dispose();
}
cuda.setAllowTf32(false);

const py = String.raw`
import json, sys, torch
cases, reps = json.loads(sys.argv[1]), int(sys.argv[2])
out = []
for dt, m, n, k in cases:
    torch.backends.cuda.matmul.allow_tf32 = dt == 'tf32'
    dtype = {'bf16': torch.bfloat16, 'f16': torch.float16, 'f32': torch.float32, 'tf32': torch.float32}[dt]
    a = torch.randn(m, k, device='cuda', dtype=dtype); b = torch.randn(k, n, device='cuda', dtype=dtype)
    for _ in range(3): a @ b
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(); s.record()
    for _ in range(reps): a @ b
    e.record(); torch.cuda.synchronize()
    out.append(2 * m * n * k / (s.elapsed_time(e) / reps) / 1e9)
print(json.dumps({'torch': torch.__version__, 'tflops': out}))
`;
const r = spawnSync('python3', ['-c', py, JSON.stringify(CASES), String(reps)], { encoding: 'utf8' });
const torch = r.status === 0 ? JSON.parse(r.stdout.trim().split('\n').pop()) : null;
if (!torch) console.log(`torch not measured: ${(r.stderr || '').trim().split('\n').pop()}`);
console.log(`matmul TFLOP/s on ${cuda.device.name}${torch ? `, torch ${torch.torch}` : ''} (${reps} reps, mean)`);
console.log('| dtype | m×n×k | kiln | torch | kiln/torch |\n|---|---|---:|---:|---:|');
rows.forEach((x, i) => {
  const t = torch?.tflops[i];
  console.log(`| ${x.dt} | ${x.m}×${x.n}×${x.k} | ${x.kiln.toFixed(1)} | ${t ? t.toFixed(1) : '–'} | ${t ? (x.kiln / t).toFixed(2) : '–'} |`);
});
