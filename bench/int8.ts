/**
 * Int8 linear layers on the `cpu` backend: kiln's `linearInt8` (AVX-512 VNNI where present)
 * against kiln's f32 `linear` on the same weights, and PyTorch's dynamically quantized Linear
 * (`torch.ao.quantization.quantize_dynamic`, the engine Debian's torch has: onednn) against its
 * f32 Linear, in a child `/usr/bin/python3` with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed.
 * Shapes are GPT-2 small's: decode steps (one row: memory-bound, the int8 weight is a quarter
 * of the bytes) and prefill blocks (64 and 256 rows: compute-bound). Prints the median ms of
 * each and the ratios f32/int8 (the speed-up) and kiln int8 / torch int8.
 *
 *     npm run bench -- int8 [--threads 1,2] [--reps N] [--no-torch]
 * @module
 */
import { Generator, linear, linearInt8, noGrad, quantizeInt8, randn, setNumThreads, tidy, type Tensor } from '../src/index.js';
import { mdTable, numOpt, parseArgs, printMachineInfo, time, pythonJson } from './util.js';

export const description = 'cpu int8 linear (VNNI) vs f32 linear, and PyTorch quantize_dynamic Linear vs f32 (ms, speed-ups)';


/** [rows, out, in]: GPT-2 small's projections and head. */
const SHAPES: [number, number, number][] = [
  [1, 2304, 768], // c_attn, one token
  [1, 3072, 768], // c_fc
  [1, 768, 3072], // c_proj of the MLP
  [1, 50257, 768], // lm_head
  [64, 3072, 768],
  [256, 768, 3072],
];

const TORCH = String.raw`
import json, sys, time, torch
shapes, threads, reps = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
torch.backends.quantized.engine = 'onednn' if 'onednn' in torch.backends.quantized.supported_engines else torch.backends.quantized.engine
out = {'engine': torch.backends.quantized.engine, 'version': torch.__version__, 'rows': []}
def med(f):
    for _ in range(3): f()
    ts = []
    while len(ts) < reps or sum(ts) < 0.3:
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    ts.sort(); return ts[len(ts) // 2] * 1e3
for th in threads:
    torch.set_num_threads(th)
    for m, n, k in shapes:
        lin = torch.nn.Linear(k, n)
        q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
        x = torch.randn(m, k)
        with torch.no_grad():
            f32 = med(lambda: lin(x)); i8 = med(lambda: q(x))
        out['rows'].append([th, m, n, k, f32, i8])
print(json.dumps(out))
`;

function torchTimes(threads: number[], reps: number): { rows: Map<string, [number, number]>; info: string } | { reason: string } {
  const r = pythonJson<{ engine: string; version: string; rows: [number, number, number, number, number, number][] }>(TORCH, [JSON.stringify(SHAPES), JSON.stringify(threads), String(reps)], 600_000);
  if ('reason' in r) return r;
  const o = r.value;
  return { rows: new Map(o.rows.map(([th, m, n, k, f, q]) => [`${th} ${m} ${n} ${k}`, [f, q]])), info: `torch ${o.version}, quantized engine ${o.engine}` };
}

export async function main(args: string[]): Promise<void> {
  const { opts } = parseArgs(args);
  const threads = String(opts.threads ?? '1,2').split(',').map(Number);
  const reps = numOpt(opts, 'reps', 20);
  printMachineInfo();
  const torch = opts['no-torch'] ? { reason: '--no-torch' } : torchTimes(threads, reps);
  if ('info' in torch) console.log(torch.info);
  else console.log(`PyTorch not measured: ${torch.reason}`);
  const rows: (string | number)[][] = [];
  for (const th of threads) {
    setNumThreads(th);
    for (const [m, n, k] of SHAPES) {
      const gen = new Generator(m + n + k);
      const [x, w, b] = [randn([m, k], { generator: gen }), randn([n, k], { generator: gen }).mul(0.05), randn([n], { generator: gen })];
      const q = quantizeInt8(w);
      const run = (f: () => Tensor) => () => tidy(() => noGrad(f)).dispose();
      const minTimeMs = 300;
      const f32 = time(run(() => linear(x, w, b)), { reps, minTimeMs }).median;
      const i8 = time(run(() => linearInt8(x, q, b)), { reps, minTimeMs }).median;
      const t = 'rows' in torch ? torch.rows.get(`${th} ${m} ${n} ${k}`) : undefined;
      rows.push([th, `${m}×${k} · ${k}×${n}`, f32, i8, f32 / i8, t ? t[0] : '–', t ? t[1] : '–', t ? t[0] / t[1] : '–', t ? t[1] / i8 : '–']);
      for (const z of [x, w, b, q.packed, q.scale]) z.dispose();
    }
  }
  console.log(
    mdTable(['threads', 'x · Wᵀ', 'kiln f32 ms', 'kiln int8 ms', 'kiln speed-up', 'torch f32 ms', 'torch int8 ms', 'torch speed-up', 'torch int8 / kiln int8'], rows),
  );
}
