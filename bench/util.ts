/**
 * Shared helpers for the benches: timing with warm-up (median and min, since the second core
 * of the reference machine is noisy), markdown tables, machine info and seeded random data.
 * @module
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** Options of {@link time}. */
export interface TimeOptions {
  /** Untimed calls first, to let the JIT settle (default 3). */
  warmup?: number;
  /** Timed repetitions (default 10). */
  reps?: number;
  /** Keep repeating past `reps` until this many milliseconds have been timed in all (default 0). */
  minTimeMs?: number;
  /** Stop repeating after this many repetitions, whatever `minTimeMs` says (default 1000). */
  maxReps?: number;
}

/** Timings of one function, in milliseconds per call. */
export interface Timing {
  median: number;
  min: number;
  mean: number;
  max: number;
  reps: number;
  /** Every timed sample, in call order. */
  samples: number[];
}

/** The median of `xs` (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/**
 * Time `fn`: `warmup` untimed calls, then at least `reps` timed ones (and more while less than
 * `minTimeMs` has been timed). Report medians rather than means: one noisy core skews means.
 */
export function time(fn: () => unknown, opts: TimeOptions = {}): Timing {
  const warmup = opts.warmup ?? 3;
  const reps = Math.max(1, opts.reps ?? 10);
  const minTimeMs = opts.minTimeMs ?? 0;
  const maxReps = Math.max(reps, opts.maxReps ?? 1000);
  let sink: unknown;
  for (let i = 0; i < warmup; i++) sink = fn();
  const samples: number[] = [];
  let total = 0;
  while (samples.length < reps || (total < minTimeMs && samples.length < maxReps)) {
    const t0 = process.hrtime.bigint();
    sink = fn();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    samples.push(ms);
    total += ms;
  }
  keepAlive(sink);
  return {
    median: median(samples),
    min: Math.min(...samples),
    mean: total / samples.length,
    max: Math.max(...samples),
    reps: samples.length,
    samples,
  };
}

let blackhole: unknown;
/** Stop the JIT from dropping a result as dead code. */
export function keepAlive(x: unknown): void {
  blackhole = x;
}
/** @internal */
export function _blackhole(): unknown {
  return blackhole;
}

/** A markdown table; numbers are right-aligned. */
export function mdTable(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? fmtNum(c) : c)));
  const numeric = headers.map((_, j) => rows.length > 0 && rows.every((r) => typeof r[j] === 'number'));
  const width = headers.map((h, j) => Math.max(3, h.length, ...cells.map((r) => (r[j] ?? '').length)));
  const pad = (s: string, j: number): string => (numeric[j] ? s.padStart(width[j]!) : s.padEnd(width[j]!));
  const line = (r: readonly string[]): string => `| ${headers.map((_, j) => pad(r[j] ?? '', j)).join(' | ')} |`;
  const rule = `|${width.map((w, j) => (numeric[j] ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
  return [line(headers), rule, ...cells.map(line)].join('\n');
}

/** A number with about 3 significant digits (integers as they are). */
export function fmtNum(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x) && Math.abs(x) < 1e9) return String(x);
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(0);
  return x.toPrecision(digits);
}

/** What machine and runtime a result came from. */
export interface MachineInfo {
  cpu: string;
  cores: number;
  node: string;
  platform: string;
  date: string;
}

/** The CPU model (from /proc/cpuinfo where there is one), core count, node version and the date. */
export function machineInfo(): MachineInfo {
  let cpu = os.cpus()[0]?.model?.trim() ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1]!.trim();
  } catch {
    // not Linux: keep what os.cpus() said
  }
  return {
    cpu,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    date: new Date().toString(),
  };
}

/** Print {@link machineInfo} as a few markdown-friendly lines. */
export function printMachineInfo(info: MachineInfo = machineInfo()): void {
  console.log(`- machine: ${info.cpu}, ${info.cores} cores (${info.platform})`);
  console.log(`- node: ${info.node}`);
  console.log(`- date: ${info.date}`);
}

/** A seeded PRNG (mulberry32): uniform in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` seeded uniform values in [-1, 1). */
export function randomF32(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = r() * 2 - 1;
  return out;
}

/** Parse `--name value` / `--name=value` / `--flag` options and positional args. */
export function parseArgs(args: readonly string[]): { positional: string[]; opts: Record<string, string | true> } {
  const positional: string[] = [];
  const opts: Record<string, string | true> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) opts[a.slice(2, eq)] = a.slice(eq + 1);
      else if (i + 1 < args.length && !args[i + 1]!.startsWith('--')) opts[a.slice(2)] = args[++i]!;
      else opts[a.slice(2)] = true;
    } else positional.push(a);
  }
  return { positional, opts };
}

/** A numeric option, or `dflt` when absent. */
export function numOpt(opts: Record<string, string | true>, name: string, dflt: number): number {
  const v = opts[name];
  if (v === undefined) return dflt;
  const x = Number(v);
  if (v === true || !Number.isFinite(x)) throw new Error(`--${name} needs a number, got ${String(v)}`);
  return x;
}

/**
 * Run a Python `script` (a `-c` string) under Debian's `/usr/bin/python3` with `args`, the
 * OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides removed (they slow OpenBLAS, so PyTorch), and
 * parse the JSON its last line prints; or say why it did not run.
 */
export function pythonJson<T>(script: string, args: readonly string[], timeoutMs = 600_000): { value: T } | { reason: string } {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync('/usr/bin/python3', ['-c', script, ...args], { env, encoding: 'utf8', timeout: timeoutMs });
  if (r.status !== 0) return { reason: (r.stderr || r.error?.message || 'failed').trim().split('\n').pop()! };
  return { value: JSON.parse(r.stdout.trim().split('\n').pop()!) as T };
}
