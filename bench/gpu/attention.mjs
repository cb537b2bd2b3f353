// kiln's cuda attention against torch.nn.functional.scaled_dot_product_attention (its flash
// backend) on the same GPU, in one run: batch 8, 16 heads, T = 1024, 2048, 4096, head dim 64 and
// 128, causal and not, bf16; forward and forward+backward TFLOP/s (FlashAttention's count:
// 4·B·H·T²·D forward, 2.5× that forward+backward, halved when causal) and kiln/torch. Needs only
// node, dist/, the built addon and python3 with PyTorch (scripts/gpu-check.sh runs it).
//
//   node bench/gpu/attention.mjs [--reps N] [--quick]
import { spawnSync } from 'node:child_process';

const kiln = await import('../../dist/index.js');
const arg = (name, dflt) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : dflt);
const reps = Number(arg('--reps', 10));
const quick = process.argv.includes('--quick');
// KILN_GPU_BENCH_BACKEND=cpu with --quick checks this script where there is no GPU (B=1, H=2)
const DEV = process.env.KILN_GPU_BENCH_BACKEND ?? 'cuda';
const [B, H] = DEV === 'cuda' ? [8, 16] : [1, 2];
const CASES = [];
for (const T of quick ? [1024] : [1024, 2048, 4096]) for (const D of [64, 128]) for (const causal of [false, true]) CASES.push([T, D, causal]);

const flops = (T, D, causal) => (4 * B * H * T * T * D) / (causal ? 2 : 1);

const cuda = await kiln.useBackend(DEV);
const rows = [];
for (const [T, D, causal] of CASES) {
  const make = () => kiln.randn([B, H, T, D], { backend: DEV }).cast('bf16').requiresGrad_();
  const [q, k, v] = [make(), make(), make()];
  const g = kiln.randn([B, H, T, D], { backend: DEV }).cast('bf16');
  const fwd = () => kiln.tidy(() => kiln.noGrad(() => kiln.scaledDotProductAttention(q, k, v, { isCausal: causal }))).dispose();
  const both = () => {
    for (const t of [q, k, v]) {
      t.grad?.dispose();
      t.grad = null;
    }
    kiln.tidy(() => kiln.scaledDotProductAttention(q, k, v, { isCausal: causal }).mul(g).sum().backward());
  };
  const time = async (f) => {
    for (let i = 0; i < 2; i++) f();
    await cuda.sync();
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) f();
    await cuda.sync();
    return (performance.now() - t0) / reps;
  };
  const f = await time(fwd);
  const fb = await time(both);
  rows.push({ T, D, causal, fwd: flops(T, D, causal) / f / 1e9, both: (2.5 * flops(T, D, causal)) / fb / 1e9 });
  for (const t of [q, k, v, g]) t.dispose();
}

const py = String.raw`
import json, sys, torch
import torch.nn.functional as F
cases, B, H, reps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out = []
def time(f):
    for _ in range(2): f()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(); s.record()
    for _ in range(reps): f()
    e.record(); torch.cuda.synchronize()
    return s.elapsed_time(e) / reps
for T, D, causal in cases:
    q, k, v = (torch.randn(B, H, T, D, device='cuda', dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    g = torch.randn(B, H, T, D, device='cuda', dtype=torch.bfloat16)
    fl = 4 * B * H * T * T * D / (2 if causal else 1)
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
        def fwd():
            with torch.no_grad(): F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        def both():
            q.grad = k.grad = v.grad = None
            F.scaled_dot_product_attention(q, k, v, is_causal=causal).backward(g)
        out.append([fl / time(fwd) / 1e9, 2.5 * fl / time(both) / 1e9])
print(json.dumps({'torch': torch.__version__, 'tflops': out}))
`;
const r = DEV !== 'cuda' ? { status: 1, stderr: `not on cuda (${DEV})` } : spawnSync('python3', ['-c', py, JSON.stringify(CASES), String(B), String(H), String(reps)], { encoding: 'utf8' });
const torch = r.status === 0 ? JSON.parse(r.stdout.trim().split('\n').pop()) : null;
if (!torch) console.log(`torch not measured: ${(r.stderr || '').trim().split('\n').pop()}`);
console.log(`attention TFLOP/s, bf16, B=${B} H=${H}, on ${cuda.device?.name ?? DEV}${torch ? `, torch ${torch.torch} (flash backend)` : ''} (${reps} reps, mean)`);
console.log('| T | D | causal | kiln fwd | torch fwd | fwd kiln/torch | kiln fwd+bwd | torch fwd+bwd | fwd+bwd kiln/torch |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|');
rows.forEach((x, i) => {
  const t = torch?.tflops[i];
  const f = (a) => (a === undefined ? '–' : a.toFixed(1));
  console.log(`| ${x.T} | ${x.D} | ${x.causal} | ${f(x.fwd)} | ${f(t?.[0])} | ${t ? (x.fwd / t[0]).toFixed(2) : '–'} | ${f(x.both)} | ${f(t?.[1])} | ${t ? (x.both / t[1]).toFixed(2) : '–'} |`);
});
