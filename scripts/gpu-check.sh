#!/usr/bin/env bash
# The GPU checks of the cuda backend, as one prepared run on a GPU machine (CUDA, python3 with
# PyTorch, no Node and no network there): node from .device/ (bash ../shared/device/prepare.sh
# packs it here), dist/ and build/ carried from here (npm run build; npm run build:native with
# nvcc). Runs the kernel tests (test/gpu/), compute-sanitizer's memcheck over the quick ones
# where it is installed, and the benches against PyTorch (matmul, bandwidth, attention, the GPT-2
# 124M step); prints a short table last. Logs go
# to $OUT when it is set. Aim: under 10 minutes on an H200.
#
#   bash scripts/gpu-check.sh
set -uo pipefail
out=${OUT:-/tmp/kiln-gpu-check}
mkdir -p "$out"
[ -f .device/setup.sh ] && source .device/setup.sh
command -v node >/dev/null || { echo "gpu-check: no node (run bash ../shared/device/prepare.sh here and carry .device)"; exit 1; }
for f in dist/index.js build/Release/kiln.node; do
  [ -e "$f" ] || { echo "gpu-check: $f is missing (carry dist and build: npm run build && npm run build:native)"; exit 1; }
done
node -e "const a=require('./build/Release/kiln.node'); const c=a.capabilities().cuda; console.log('addon: cuda compiled', c.compiled, 'devices', c.devices, c.error||''); if(!c.compiled||!a.cuda) process.exit(1)" || { echo "gpu-check: the addon was built without CUDA"; exit 1; }

summary=()
t0=$(date +%s)
node --test test/gpu/ 2>&1 | tee "$out/gpu-tests.log"
tests=$(grep -E '^# (pass|fail|skipped)' "$out/gpu-tests.log" | tr '\n' ' ')
summary+=("kernel tests (test/gpu/): $tests($(( $(date +%s) - t0 )) s)")

if command -v compute-sanitizer >/dev/null; then
  t0=$(date +%s)
  KILN_GPU_QUICK=1 timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 node --test test/gpu/ > "$out/memcheck.log" 2>&1
  summary+=("compute-sanitizer memcheck: exit $? ($(grep -c 'Invalid' "$out/memcheck.log") invalid accesses, $(( $(date +%s) - t0 )) s)")
else
  summary+=("compute-sanitizer: not installed")
fi

# kiln train on the GPU: 200 steps of the tiny config on a text file that travels with the repo
t0=$(date +%s)
KILN_CLI=dist timeout 150 node bin/kiln.mjs train --backend cuda --data examples/browser/tinyshakespeare.txt --steps 200 --eval-every 100 --out /tmp/kiln-gpu-train --overwrite > "$out/train.log" 2>&1
summary+=("kiln train --backend cuda, 200 steps: exit $? ($(( $(date +%s) - t0 )) s): $(grep -E '^step (1|100|200)/' "$out/train.log" | sed -E 's/.*(step [0-9]+)\/200.* loss ([0-9.]+).*/\1 loss \2/' | tr '\n' ';')")

t0=$(date +%s)
timeout 180 node bench/gpu/matmul.mjs 2>&1 | tee "$out/bench-matmul.log"
summary+=("matmul bench: $(( $(date +%s) - t0 )) s, table in bench-matmul.log")

# memory-bound kernels (elementwise, norms, softmax, sum, AdamW) in GB/s against the copy rate and torch
t0=$(date +%s)
timeout -k 10 240 node bench/gpu/bandwidth.mjs 2>&1 | tee "$out/bench-bandwidth.log"
summary+=("bandwidth bench: $(( $(date +%s) - t0 )) s, table in bench-bandwidth.log")

# issue 13's tables: attention against torch's flash backend, and the GPT-2 124M step against
# torch eager and torch.compile (tokens/s, MFU)
t0=$(date +%s)
timeout -k 10 180 node bench/gpu/attention.mjs 2>&1 | tee "$out/bench-attention.log"
summary+=("attention bench: $(( $(date +%s) - t0 )) s, table in bench-attention.log")
t0=$(date +%s)
timeout -k 10 300 node bench/gpu/gpt2.mjs 2>&1 | tee "$out/bench-gpt2.log"
summary+=("gpt2 bench: $(( $(date +%s) - t0 )) s, table in bench-gpt2.log")

echo
echo "== gpu-check summary ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1))"
printf '%s\n' "${summary[@]}"
grep -E '^\| (bf16|f16|f32|tf32) ' "$out/bench-matmul.log" || true
sed -n '/^copy rate: /,$p' "$out/bench-bandwidth.log"
grep -E '^\| [0-9]+ \| (64|128) ' "$out/bench-attention.log" || true
grep -E '^\| (kiln|torch)' "$out/bench-gpt2.log" || true
