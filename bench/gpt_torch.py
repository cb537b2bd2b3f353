"""One GPT training step in PyTorch (forward, backward, AdamW), the peer of bench/gpt.ts.

The model is the same as kiln's GPT (nanoGPT layout: pre-norm blocks, tied head, GELU tanh),
written here with an explicit causal mask since torch 1.13 has no scaled_dot_product_attention.
Arguments: threads steps [precision f32|bf16] [C H L]; bf16 runs the forward under
torch.autocast("cpu", dtype=torch.bfloat16).
Prints one JSON line: {"median_ms", "steps", "max_rss_mib", "threads"}.
"""
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

V, T, B = 65, 64, 16
threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
precision = sys.argv[3] if len(sys.argv) > 3 else "f32"
C, H, L = (int(a) for a in sys.argv[4:7]) if len(sys.argv) > 6 else (128, 4, 4)
torch.set_num_threads(threads)
torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C)
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)
        self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)))

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (z.view(b, t, H, C // H).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H))
        att = att.masked_fill(~self.mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for blk in self.h:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, V), targets.view(-1))


model = GPT()
opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
idx = torch.randint(0, V, (B, T))
tgt = torch.randint(0, V, (B, T))
times = []
for i in range(steps + 3):
    t0 = time.perf_counter()
    if precision == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(idx, tgt)
    else:
        loss = model(idx, tgt)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if i >= 3:
        times.append((time.perf_counter() - t0) * 1000)
print(json.dumps({
    "median_ms": statistics.median(times),
    "steps": steps,
    "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "threads": torch.get_num_threads(),
    "torch": torch.__version__,
}))
