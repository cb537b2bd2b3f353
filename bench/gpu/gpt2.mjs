// GPT-2 small (124M: 12 layers, 12 heads, width 768, context 1024, vocabulary 50257, tied head)
// training steps on one GPU, kiln against PyTorch eager and torch.compile on the same batch
// shape in one run: bf16 autocast, AdamW (lr 6e-4, weight decay 0.1 on matrices), flash
// attention, batch 16 × 1024 tokens, random tokens. Prints tokens/s, the ms of a step and MFU
// (6·N + 12·L·C·T FLOPs per token over the card's dense bf16 peak) of each, and kiln/torch. Needs
// only node, dist/, the built addon and python3 with PyTorch (scripts/gpu-check.sh runs it).
//
//   node bench/gpu/gpt2.mjs [--steps N] [--batch B]
import { spawnSync } from 'node:child_process';

const kiln = await import('../../dist/index.js');
const arg = (name, dflt) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : dflt);
const steps = Number(arg('--steps', 10));
const batch = Number(arg('--batch', 16));
// KILN_GPU_BENCH_BACKEND=cpu checks this script where there is no GPU (a 2-layer, width-64 model)
const DEV = process.env.KILN_GPU_BENCH_BACKEND ?? 'cuda';
const small = DEV !== 'cuda';
const cfg = small
  ? { vocabSize: 512, blockSize: 64, nLayer: 2, nHead: 2, nEmbd: 64 }
  : { vocabSize: 50257, blockSize: 1024, nLayer: 12, nHead: 12, nEmbd: 768 };
const T = cfg.blockSize;
const B = small ? 2 : batch;

const dev = await kiln.useBackend(DEV);
const model = new kiln.GPT({ ...cfg, dropout: 0 }, { backend: DEV, generator: new kiln.Generator(0) });
model.train();
const opt = new kiln.AdamW(kiln.weightDecayGroups(model, 0.1), { lr: 6e-4, betas: [0.9, 0.95], eps: 1e-8 });
const gen = new kiln.Generator(1);
const tokens = () => kiln.tensor(Int32Array.from(gen.draw(B * T, { kind: 'randint', low: 0, high: cfg.vocabSize })), [B, T], { backend: DEV, dtype: 'i32' });
const [x, y] = [tokens(), tokens()];
const step = () => {
  opt.zeroGrad();
  kiln.tidy(() => kiln.autocast({ dtype: 'bf16' }, () => model.loss(x, y)).backward());
  opt.step();
};
for (let i = 0; i < 2; i++) step();
await dev.sync();
const t0 = performance.now();
for (let i = 0; i < steps; i++) step();
await dev.sync();
const kilnMs = (performance.now() - t0) / steps;
const params = model.parameters().reduce((n, p) => n + p.size, 0);
const flopsPerToken = 6 * params + 12 * cfg.nLayer * cfg.nEmbd * T;

const py = String.raw`
import json, math, sys, time, torch
import torch.nn as nn
import torch.nn.functional as F
cfg, B, steps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
V, T, L, H, C = cfg['vocabSize'], cfg['blockSize'], cfg['nLayer'], cfg['nHead'], cfg['nEmbd']
class Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.ln_1, s.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        s.c_attn, s.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        s.c_fc, s.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
    def forward(s, x):
        q, k, v = s.c_attn(s.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(x.size(0), T, H, C // H).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(x.size(0), T, C)
        x = x + s.c_proj(a)
        return x + s.mlp_proj(F.gelu(s.c_fc(s.ln_2(x)), approximate='tanh'))
class GPT(nn.Module):
    def __init__(s):
        super().__init__()
        s.wte, s.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        s.h = nn.ModuleList(Block() for _ in range(L))
        s.ln_f = nn.LayerNorm(C)
        s.head = nn.Linear(C, V, bias=False); s.head.weight = s.wte.weight
    def forward(s, idx, y):
        x = s.wte(idx) + s.wpe(torch.arange(T, device=idx.device))
        for b in s.h: x = b(x)
        return F.cross_entropy(s.head(s.ln_f(x)).view(-1, V), y.view(-1))
def run(compiled):
    torch.manual_seed(0)
    m = GPT().cuda()
    decay = [p for p in m.parameters() if p.dim() >= 2]; rest = [p for p in m.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': rest, 'weight_decay': 0.0}], lr=6e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    f = torch.compile(m) if compiled else m
    x = torch.randint(0, V, (B, T), device='cuda'); y = torch.randint(0, V, (B, T), device='cuda')
    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast('cuda', dtype=torch.bfloat16): loss = f(x, y)
        loss.backward(); opt.step()
    for _ in range(3): step()
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(steps): step()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps * 1e3
out = {'torch': torch.__version__, 'eager': run(False)}
try: out['compile'] = run(True)
except Exception as e: out['compileError'] = str(e).split('\n')[0]
print(json.dumps(out))
`;
const r = small ? { status: 1, stderr: `not on cuda (${DEV})` } : spawnSync('python3', ['-c', py, JSON.stringify(cfg), String(B), String(steps)], { encoding: 'utf8', timeout: 900_000 });
const torch = r.status === 0 ? JSON.parse(r.stdout.trim().split('\n').pop()) : null;
if (!torch) console.log(`torch not measured: ${(r.stderr || '').trim().split('\n').pop()}`);
const name = dev.device?.name ?? DEV;
const peak = kiln.gpuPeakFlops(name)?.peakFlops ?? null; // dense bf16, by the name CUDA reports
const tps = (ms) => (B * T) / (ms / 1e3);
const mfu = (ms) => (peak ? `${((100 * tps(ms) * flopsPerToken) / peak).toFixed(1)}%` : '–');
console.log(`GPT-2 ${(params / 1e6).toFixed(1)}M training step, bf16 autocast, AdamW, batch ${B}×${T}, on ${name}${torch ? `, torch ${torch.torch}` : ''} (${steps} steps, mean)`);
console.log('| run | ms/step | tokens/s | MFU | kiln speed-up |\n|---|---:|---:|---:|---:|');
console.log(`| kiln | ${kilnMs.toFixed(1)} | ${Math.round(tps(kilnMs))} | ${mfu(kilnMs)} | – |`);
if (torch) {
  console.log(`| torch eager | ${torch.eager.toFixed(1)} | ${Math.round(tps(torch.eager))} | ${mfu(torch.eager)} | ${(torch.eager / kilnMs).toFixed(2)} |`);
  if (torch.compile) console.log(`| torch.compile | ${torch.compile.toFixed(1)} | ${Math.round(tps(torch.compile))} | ${mfu(torch.compile)} | ${(torch.compile / kilnMs).toFixed(2)} |`);
  else console.log(`| torch.compile | failed: ${torch.compileError} | | | |`);
}
