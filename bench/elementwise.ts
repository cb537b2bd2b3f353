/**
 * Elementwise and reduction kernels of the `cpu` backend against `ref`, called directly on the
 * backends' storages (no tensor layer), on f32 operands of `--n` elements (default 2^20):
 * add (same shape, a row broadcast [n/1024, 1024] + [1024], a scalar broadcast), mul, exp,
 * gelu, and sum over the last axis ([n/1024, 1024] → [n/1024]). Prints milliseconds (median),
 * effective bandwidth (bytes read + written / median time) of each backend and cpu/ref speedup,
 * for each thread count in `--threads` (default: 1 and all the cores).
 *
 *     npm run bench -- elementwise [--n N] [--threads 1,2] [--reps N] [--warmup N] [--min-ms T]
 *
 * Before timing, each cpu result is checked against ref's (f32 tolerance).
 * @module
 */
import {
  backendSync,
  getNumThreads,
  nativeCapabilities,
  setNumThreads,
  type Backend,
  type BinaryOp,
  type Storage,
  type UnaryOp,
} from '../src/index.js';
import { keepAlive, mdTable, numOpt, parseArgs, printMachineInfo, randomF32, time, type TimeOptions } from './util.js';

export const description = 'cpu vs ref elementwise kernels (add, broadcast add, mul, exp, gelu, row sum) at 1M f32: GB/s and ratio';

/** One benchmark case: how to run it on a backend over prepared storages, and its traffic. */
interface Case {
  name: string;
  shape: string;
  /** Bytes read plus written by one call. */
  bytes: number;
  /** Prepare storages on `b` and return the call to time plus the output storage. */
  setup(b: Backend): { run: () => void; out: Storage; free: () => void };
}

function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

function input(b: Backend, n: number, seed: number, scale = 1): Storage {
  const s = b.alloc('f32', n);
  const data = randomF32(n, seed);
  if (scale !== 1) for (let i = 0; i < n; i++) data[i]! *= scale;
  b.write(s, data);
  return s;
}

function binaryCase(name: string, op: BinaryOp, rows: number, cols: number, bShape: 'same' | 'row' | 'scalar'): Case {
  const n = rows * cols;
  const shape = [rows, cols];
  const bn = bShape === 'same' ? n : bShape === 'row' ? cols : 1;
  const bStrides = bShape === 'same' ? stridesOf(shape) : bShape === 'row' ? [0, 1] : [0, 0];
  return {
    name,
    shape: bShape === 'same' ? `[${rows}, ${cols}] ${op} [${rows}, ${cols}]` : bShape === 'row' ? `[${rows}, ${cols}] ${op} [${cols}]` : `[${rows}, ${cols}] ${op} scalar`,
    bytes: 4 * (2 * n + bn),
    setup(b) {
      const x = input(b, n, 1);
      const y = input(b, bn, 2);
      const out = b.alloc('f32', n);
      return {
        run: () => b.binary({ op, a: x, aStrides: stridesOf(shape), b: y, bStrides, out, shape }),
        out,
        free: () => [x, y, out].forEach((s) => b.free(s)),
      };
    },
  };
}

function unaryCase(op: UnaryOp, n: number): Case {
  return {
    name: op,
    shape: `[${n}]`,
    bytes: 8 * n,
    setup(b) {
      const x = input(b, n, 3, 4);
      const out = b.alloc('f32', n);
      return { run: () => b.unary({ op, x, out }), out, free: () => [x, out].forEach((s) => b.free(s)) };
    },
  };
}

function sumCase(rows: number, cols: number): Case {
  return {
    name: 'sum (last axis)',
    shape: `[${rows}, ${cols}] → [${rows}]`,
    bytes: 4 * (rows * cols + rows),
    setup(b) {
      const x = input(b, rows * cols, 4);
      const out = b.alloc('f32', rows);
      return { run: () => b.reduce({ reduceOp: 'sum', x, outer: rows, r: cols, inner: 1, out, op: 'sum' }), out, free: () => [x, out].forEach((s) => b.free(s)) };
    },
  };
}

function check(c: Case, cpu: Backend, ref: Backend): void {
  const a = c.setup(cpu);
  const b = c.setup(ref);
  try {
    a.run();
    b.run();
    const got = cpu.readSync!(a.out);
    const want = ref.readSync!(b.out);
    for (let i = 0; i < want.length; i++) {
      const e = want[i]!;
      if (Math.abs(got[i]! - e) > 1e-5 + 2e-5 * Math.abs(e)) throw new Error(`${c.name}: cpu[${i}] = ${got[i]}, ref = ${e}`);
    }
  } finally {
    a.free();
    b.free();
  }
}

interface Row {
  name: string;
  shape: string;
  threads: number;
  cpuMs: number;
  refMs: number;
  cpuGBs: number;
  refGBs: number;
  ratio: number;
}

export function main(args: string[]): Row[] {
  const { opts } = parseArgs(args);
  const n = numOpt(opts, 'n', 1 << 20);
  const cols = 1024;
  if (!Number.isInteger(n) || n < cols || n % cols !== 0) throw new Error(`--n must be a positive multiple of ${cols}, got ${n}`);
  const rows = n / cols;
  const topts: TimeOptions = {
    warmup: numOpt(opts, 'warmup', 3),
    reps: numOpt(opts, 'reps', 10),
    minTimeMs: numOpt(opts, 'min-ms', 300),
    maxReps: 500,
  };
  const refTopts: TimeOptions = { ...topts, reps: Math.min(topts.reps ?? 10, 5), minTimeMs: Math.min(topts.minTimeMs ?? 0, 300) };
  const caps = nativeCapabilities();
  if ('unavailable' in caps) throw new Error(`the cpu backend is not available: ${caps.unavailable}`);
  const cpu = backendSync('cpu');
  const ref = backendSync('ref');
  const threadsBefore = getNumThreads();
  const threadList =
    typeof opts.threads === 'string' ? opts.threads.split(',').map(Number) : [...new Set([1, caps.threads])];
  if (threadList.some((t) => !Number.isInteger(t) || t < 1)) throw new Error(`--threads must list positive integers, got ${String(opts.threads)}`);

  const cases: Case[] = [
    binaryCase('add', 'add', rows, cols, 'same'),
    binaryCase('add (row broadcast)', 'add', rows, cols, 'row'),
    binaryCase('add (scalar)', 'add', rows, cols, 'scalar'),
    binaryCase('mul', 'mul', rows, cols, 'same'),
    unaryCase('exp', n),
    unaryCase('gelu', n),
    sumCase(rows, cols),
  ];

  console.log('# elementwise: kiln cpu vs ref, f32\n');
  printMachineInfo();
  console.log(`- cpu backend: ISA ${caps.isa}, ${caps.threads} threads available`);
  console.log(`- command: npm run bench -- elementwise ${args.join(' ')}`.trimEnd());
  console.log(`- timing: kernels called on the backends' storages; ${topts.warmup} warm-up calls, then ≥ ${topts.reps} reps and ≥ ${topts.minTimeMs} ms (ref: ≥ ${refTopts.reps} reps); medians`);
  console.log('- GB/s: bytes read + written per call / median time\n');

  for (const c of cases) check(c, cpu, ref);
  const refMs = new Map<string, number>();
  const rowsOut: Row[] = [];
  try {
    for (const threads of threadList) {
      setNumThreads(threads);
      for (const c of cases) {
        const a = c.setup(cpu);
        const cpuT = time(a.run, topts);
        a.free();
        let r = refMs.get(c.name);
        if (r === undefined) {
          const b = c.setup(ref);
          r = time(b.run, refTopts).median;
          b.free();
          refMs.set(c.name, r);
        }
        const row: Row = {
          name: c.name,
          shape: c.shape,
          threads,
          cpuMs: cpuT.median,
          refMs: r,
          cpuGBs: c.bytes / (cpuT.median * 1e6),
          refGBs: c.bytes / (r * 1e6),
          ratio: r / cpuT.median,
        };
        rowsOut.push(row);
        keepAlive(row);
      }
    }
  } finally {
    setNumThreads(threadsBefore);
  }
  console.log(
    mdTable(
      ['op', 'shape', 'threads', 'cpu ms', 'ref ms', 'cpu GB/s', 'ref GB/s', 'cpu/ref'],
      rowsOut.map((r) => [r.name, r.shape, r.threads, r.cpuMs, r.refMs, r.cpuGBs, r.refGBs, r.ratio]),
    ),
  );
  console.log('\ncpu/ref = ref time / cpu time: how many times faster the cpu backend is.');
  return rowsOut;
}
