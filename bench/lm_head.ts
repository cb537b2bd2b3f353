/**
 * A language model's head and loss, forward and backward, at GPT-2's sizes (width 768,
 * vocabulary 50257): kiln's fused `linearCrossEntropy` (a chunk of rows at a time, no [N, V]
 * logits) against kiln's unfused `crossEntropy(linear(x, W), targets)` and PyTorch's
 * `F.cross_entropy(F.linear(x, W), t)` (a child `/usr/bin/python3` with OPENBLAS_CORETYPE /
 * OPENBLAS_L2_SIZE removed), in f32 on the cpu backend. Prints the median ms of each, and the
 * most memory kiln held during the step beyond its inputs (PyTorch's CPU allocator keeps no
 * such count; its unfused graph holds the same [N, V] logits and gradient as kiln's).
 *
 *     npm run bench -- lm_head [--rows 1024,4096] [--threads 2] [--reps N] [--no-torch]
 * @module
 */
import { crossEntropy, Generator, linear, linearCrossEntropy, memory, randn, resetPeakMemory, setNumThreads, tensor, tidy, type Tensor } from '../src/index.js';
import { mdTable, numOpt, parseArgs, printMachineInfo, time, pythonJson } from './util.js';

export const description = 'GPT-2 head + cross-entropy fwd+bwd: fused linearCrossEntropy vs unfused vs PyTorch (ms, peak MiB)';

const [C, V] = [768, 50257];

const TORCH = String.raw`
import json, sys, time, torch
import torch.nn.functional as F
rows, C, V, threads, reps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
out = {'version': torch.__version__, 'rows': []}
W = (torch.randn(V, C) * 0.02).requires_grad_()
for n in rows:
    x = torch.randn(n, C).requires_grad_()
    t = torch.randint(0, V, (n,))
    def step():
        x.grad = None; W.grad = None
        F.cross_entropy(F.linear(x, W), t).backward()
    for _ in range(2): step()
    ts = []
    while len(ts) < reps or sum(ts) < 1.0:
        t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
    ts.sort(); out['rows'].append([n, ts[len(ts) // 2] * 1e3])
print(json.dumps(out))
`;

function torchTimes(rows: number[], threads: number, reps: number): { ms: Map<number, number>; info: string } | { reason: string } {
  const r = pythonJson<{ version: string; rows: [number, number][] }>(TORCH, [JSON.stringify(rows), String(C), String(V), String(threads), String(reps)], 900_000);
  if ('reason' in r) return r;
  const o = r.value;
  return { ms: new Map(o.rows), info: `torch ${o.version}, ${threads} thread(s)` };
}

export async function main(args: string[]): Promise<void> {
  const { opts } = parseArgs(args);
  const rowsList = String(opts.rows ?? '1024,4096').split(',').map(Number);
  const threads = numOpt(opts, 'threads', 2);
  const reps = numOpt(opts, 'reps', 5);
  printMachineInfo();
  setNumThreads(threads);
  const torch = opts['no-torch'] ? { reason: '--no-torch' } : torchTimes(rowsList, threads, reps);
  console.log('info' in torch ? torch.info : `PyTorch not measured: ${torch.reason}`);
  const table: (string | number)[][] = [];
  const gen = new Generator(0);
  const w = randn([V, C], { generator: gen, requiresGrad: true }).mul(0.02).detach().requiresGrad_();
  for (const n of rowsList) {
    const x = randn([n, C], { generator: gen, requiresGrad: true });
    const t = tensor(Int32Array.from(gen.draw(n, { kind: 'randint', low: 0, high: V })), [n], { dtype: 'i32' });
    const measure = (loss: () => Tensor): { ms: number; peakMiB: number } => {
      const step = (): void => {
        x.grad?.dispose();
        w.grad?.dispose();
        x.grad = null;
        w.grad = null;
        tidy(() => loss().backward());
      };
      step();
      resetPeakMemory();
      const base = memory().bytes;
      step();
      const peakMiB = (memory().peakBytes - base) / 2 ** 20;
      return { ms: time(step, { reps, minTimeMs: 1000 }).median, peakMiB };
    };
    const fused = measure(() => linearCrossEntropy(x, w, t));
    const unfused = measure(() => crossEntropy(linear(x, w), t));
    const tm = 'ms' in torch ? torch.ms.get(n) : undefined;
    table.push([n, fused.ms, unfused.ms, tm ?? '–', unfused.ms / fused.ms, tm ? tm / fused.ms : '–', fused.peakMiB, unfused.peakMiB]);
    for (const z of [x, t]) z.dispose();
  }
  w.dispose();
  console.log(
    mdTable(['rows N', 'kiln fused ms', 'kiln unfused ms', 'torch ms', 'unfused / fused', 'torch / fused', 'fused peak MiB', 'unfused peak MiB'], table),
  );
}
