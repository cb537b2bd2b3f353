/**
 * A transformer MLP's first projection and GELU, forward and backward, at GPT-2 small's width
 * (768 → 3072): kiln's `linear(x, W, b, { activation: 'gelu_tanh' })` (the GELU in the matmul's
 * epilogue, the pre-activation stored in the same pass) against kiln's
 * `gelu(linear(x, W, b), { approximate: 'tanh' })` (a second kernel reading the product back) and
 * PyTorch's `F.gelu(F.linear(x, W, b), approximate='tanh')` in a child `/usr/bin/python3`
 * (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed), f32 on the cpu backend; inference (no grad) and
 * training (forward + backward). Prints median ms and the ratios.
 *
 *     npm run bench -- mlp [--rows 256,2048] [--threads 2] [--reps N] [--no-torch]
 * @module
 */
import { gelu, Generator, linear, noGrad, randn, setNumThreads, tidy, type Tensor } from '../src/index.js';
import { mdTable, numOpt, parseArgs, printMachineInfo, time, pythonJson } from './util.js';

export const description = 'MLP c_fc + GELU fwd / fwd+bwd: GELU in the matmul epilogue vs a separate kernel vs PyTorch (ms)';

const [C, H] = [768, 3072];

const TORCH = String.raw`
import json, sys, time, torch
import torch.nn.functional as F
rows, C, H, threads, reps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
W = (torch.randn(H, C) * 0.02).requires_grad_(); b = torch.zeros(H).requires_grad_()
def med(f):
    for _ in range(2): f()
    ts = []
    while len(ts) < reps or sum(ts) < 0.5:
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    ts.sort(); return ts[len(ts) // 2] * 1e3
out = {'version': torch.__version__, 'rows': []}
for n in rows:
    x = torch.randn(n, C).requires_grad_()
    g = torch.randn(n, H)
    def infer():
        with torch.no_grad(): F.gelu(F.linear(x, W, b), approximate='tanh')
    def train():
        x.grad = None; W.grad = None; b.grad = None
        F.gelu(F.linear(x, W, b), approximate='tanh').backward(g)
    out['rows'].append([n, med(infer), med(train)])
print(json.dumps(out))
`;

function torchTimes(rows: number[], threads: number, reps: number): { ms: Map<number, [number, number]>; info: string } | { reason: string } {
  const r = pythonJson<{ version: string; rows: [number, number, number][] }>(TORCH, [JSON.stringify(rows), String(C), String(H), String(threads), String(reps)], 600_000);
  if ('reason' in r) return r;
  const o = r.value;
  return { ms: new Map(o.rows.map(([n, i, t]) => [n, [i, t]])), info: `torch ${o.version}, ${threads} thread(s)` };
}

export async function main(args: string[]): Promise<void> {
  const { opts } = parseArgs(args);
  const rowsList = String(opts.rows ?? '256,2048').split(',').map(Number);
  const threads = numOpt(opts, 'threads', 2);
  const reps = numOpt(opts, 'reps', 10);
  printMachineInfo();
  setNumThreads(threads);
  const torch = opts['no-torch'] ? { reason: '--no-torch' } : torchTimes(rowsList, threads, reps);
  console.log('info' in torch ? torch.info : `PyTorch not measured: ${torch.reason}`);
  const gen = new Generator(0);
  const w = randn([H, C], { generator: gen }).mul(0.02).detach().requiresGrad_();
  const b = randn([H], { generator: gen }).mul(0.02).detach().requiresGrad_();
  const table: (string | number)[][] = [];
  for (const n of rowsList) {
    const x = randn([n, C], { generator: gen, requiresGrad: true });
    const g = randn([n, H], { generator: gen });
    const fused = (): Tensor => linear(x, w, b, { activation: 'gelu_tanh' });
    const unfused = (): Tensor => gelu(linear(x, w, b), { approximate: 'tanh' });
    const infer = (f: () => Tensor) => () => tidy(() => noGrad(f)).dispose();
    const train = (f: () => Tensor) => () => {
      for (const t of [x, w, b]) {
        t.grad?.dispose();
        t.grad = null;
      }
      tidy(() => f().mul(g).sum().backward());
    };
    const t = (fn: () => void): number => time(fn, { reps, minTimeMs: 500 }).median;
    const [fi, ui, ft, ut] = [t(infer(fused)), t(infer(unfused)), t(train(fused)), t(train(unfused))];
    const tm = 'ms' in torch ? torch.ms.get(n) : undefined;
    table.push([n, 'inference', fi, ui, tm ? tm[0] : '–', ui / fi, tm ? tm[0] / fi : '–']);
    table.push([n, 'fwd+bwd', ft, ut, tm ? tm[1] : '–', ut / ft, tm ? tm[1] / ft : '–']);
    for (const z of [x, g]) z.dispose();
  }
  for (const z of [w, b]) z.dispose();
  console.log(mdTable(['rows', 'pass', 'kiln fused ms', 'kiln unfused ms', 'torch ms', 'unfused / fused', 'torch / fused'], table));
}
