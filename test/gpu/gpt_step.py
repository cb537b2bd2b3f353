#!/usr/bin/env python3
"""One GPT-2 training step in plain PyTorch: the fixture of test/gpu/gpt_torch.test.mjs.

    python3 test/gpu/gpt_step.py OUT_DIR [--device auto|cpu|cuda]

Builds a small GPT-2 (token + position embeddings, pre-LN blocks with a fused c_attn, causal
attention, GELU-tanh MLP, final LN, lm_head tied to wte) with Hugging Face GPT2LMHeadModel's
parameter names and Conv1D layout (weights [in, out], y = x @ W + b), in f32, and writes to OUT_DIR:

  init.safetensors    the weights before the step (HF layout, `transformer.` names, no lm_head:
                      tied, as GPT-2's own files)
  config.json         what kiln's loadHFGPT2 reads beside them (n_head, activation, epsilon)
  result.json         config, device, torch version, the batch (idx, targets, with a few -100
                      ignored targets), the loss and the optimizer's settings
  logits.safetensors  `logits`: the logits of the batch's first row, [T, V]
  grads.safetensors   every parameter's gradient (the tied wte's: embedding + head, summed)
  after.safetensors   every parameter after one AdamW step

Plain PyTorch only (no transformers, no safetensors package), and only APIs that PyTorch 1.13 and
2.x share. Exit status 3 (and a line on stderr) when torch cannot be imported.
"""
import json
import math
import os
import struct
import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001 - any import failure means "no torch here"
    print(f"no torch: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(3)

CONFIG = dict(vocab_size=257, n_positions=64, n_embd=128, n_layer=2, n_head=4, layer_norm_epsilon=1e-5)
BATCH = 4
OPT = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)  # decay on rank >= 2 only
SEED = 1234


def write_safetensors(path, tensors):
    """A minimal safetensors writer: u64 LE header length, JSON header, raw little-endian f32 bytes."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu", torch.float32).contiguous()
        data = struct.pack(f"<{t.numel()}f", *t.reshape(-1).tolist())
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)  # pad the header to 8 bytes with spaces, as the format allows
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


class Conv1D(nn.Module):
    """Hugging Face's Conv1D: a linear layer whose weight is [in, out]."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.empty(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)


def gelu_tanh(x):
    # HF's gelu_new (NewGELUActivation), GPT-2's activation; written out, as in every torch version
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head = c["n_head"]
        self.c_attn = Conv1D(c["n_embd"], 3 * c["n_embd"])
        self.c_proj = Conv1D(c["n_embd"], c["n_embd"])

    def forward(self, x):
        b, t, C = x.shape
        hd = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (z.view(b, t, self.n_head, hd).transpose(1, 2) for z in (q, k, v))  # [B, H, T, hd]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = Conv1D(c["n_embd"], 4 * c["n_embd"])
        self.c_proj = Conv1D(4 * c["n_embd"], c["n_embd"])

    def forward(self, x):
        return self.c_proj(gelu_tanh(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        eps = c["layer_norm_epsilon"]
        self.ln_1 = nn.LayerNorm(c["n_embd"], eps=eps)
        self.attn = Attention(c)
        self.ln_2 = nn.LayerNorm(c["n_embd"], eps=eps)
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    """GPT2LMHeadModel's layout: transformer.{wte, wpe, h.N, ln_f}, lm_head tied to wte."""

    def __init__(self, c):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(c["vocab_size"], c["n_embd"]),
                wpe=nn.Embedding(c["n_positions"], c["n_embd"]),
                h=nn.ModuleList([Block(c) for _ in range(c["n_layer"])]),
                ln_f=nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"]),
            )
        )

    def forward(self, idx, targets):
        tr = self.transformer
        t = idx.shape[1]
        x = tr.wte(idx) + tr.wpe(torch.arange(t, device=idx.device))
        for block in tr.h:
            x = block(x)
        logits = F.linear(tr.ln_f(x), tr.wte.weight)  # tied head
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), ignore_index=-100)
        return logits, loss


def init_(model, c, gen):
    """GPT-2's init (N(0, 0.02), residual projections N(0, 0.02/sqrt(2L))), but with random biases
    and norm parameters too, so that their gradients and updates are not trivially alike."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("c_proj.weight"):
                std = 0.02 / math.sqrt(2 * c["n_layer"])
            elif p.dim() == 2:
                std = 0.02
            else:
                std = 0.05
            r = torch.randn(p.shape, generator=gen) * std
            if ".ln_" in name and name.endswith(".weight"):
                r += 1.0
            p.copy_(r)


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    out = args[0]
    want = args[args.index("--device") + 1] if "--device" in args else "auto"
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(want)
    # exact f32 everywhere: no TF32 in matmuls or convolutions, on any torch version
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if hasattr(torch, "set_float32_matmul_precision"):
        torch.set_float32_matmul_precision("highest")
    torch.manual_seed(SEED)

    c = CONFIG
    # everything random is drawn on the CPU from one generator: the same fixture on every device
    gen = torch.Generator().manual_seed(SEED)
    model = GPT2(c)
    init_(model, c, gen)
    t = c["n_positions"]
    idx = torch.randint(0, c["vocab_size"], (BATCH, t), generator=gen)
    targets = torch.randint(0, c["vocab_size"], (BATCH, t), generator=gen)
    targets[1, 5] = -100  # a few ignored targets: the mean is over the others
    targets[3, t - 1] = -100
    targets[0, 0] = -100

    os.makedirs(out, exist_ok=True)
    names = [n for n, _ in model.named_parameters()]
    write_safetensors(os.path.join(out, "init.safetensors"), dict(model.named_parameters()))
    hf_config = dict(
        model_type="gpt2",
        vocab_size=c["vocab_size"],
        n_positions=c["n_positions"],
        n_ctx=c["n_positions"],
        n_embd=c["n_embd"],
        n_layer=c["n_layer"],
        n_head=c["n_head"],
        layer_norm_epsilon=c["layer_norm_epsilon"],
        activation_function="gelu_new",
        tie_word_embeddings=True,
    )
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(hf_config, f, indent=2)

    model.to(device)
    model.train()
    logits, loss = model(idx.to(device), targets.to(device))
    loss.backward()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [dict(params=decay, weight_decay=OPT["weight_decay"]), dict(params=no_decay, weight_decay=0.0)],
        lr=OPT["lr"],
        betas=OPT["betas"],
        eps=OPT["eps"],
    )
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    opt.step()

    write_safetensors(os.path.join(out, "logits.safetensors"), {"logits": logits[0]})
    write_safetensors(os.path.join(out, "grads.safetensors"), grads)
    write_safetensors(os.path.join(out, "after.safetensors"), dict(model.named_parameters()))
    result = dict(
        config=c,
        batch=BATCH,
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        torch=torch.__version__,
        idx=idx.tolist(),
        targets=targets.tolist(),
        loss=float(loss.item()),
        optimizer=dict(OPT, betas=list(OPT["betas"])),
        params=names,
    )
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f)
    print(f"[gpt_step] torch {torch.__version__} on {result['device_name']}: loss {result['loss']:.7f}")


if __name__ == "__main__":
    main()
