/**
 * The one test suite, parameterised by backend: `describeBackends` runs a block once per
 * registered backend; a backend that is unavailable here is skipped, and why is printed.
 * A new backend gets the whole suite by registering itself.
 */
import { describe, expect } from 'vitest';
import fc from 'fast-check';
import { backendSync, backends, type BackendInfo, bf16Bits, bf16Value, f16Bits, f16Value, memory, randn as randnRef, tensor as tensorOf, tidy, Tensor, type DType } from '../src/index.js';

const announced = new Set<string>();

/**
 * Backends that must be available (`KILN_REQUIRE_BACKENDS=cpu,async-ref`): a missing one fails
 * the suite instead of being skipped, so a broken addon build cannot pass as a skipped suite.
 */
export const REQUIRED_BACKENDS = (process.env.KILN_REQUIRE_BACKENDS ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

for (const name of REQUIRED_BACKENDS) {
  const info = backends().find((b) => b.name === name);
  if (!info) throw new Error(`[kiln tests] KILN_REQUIRE_BACKENDS names '${name}', which is not registered (registered: ${backends().map((b) => b.name).join(', ')})`);
  if (!info.available) throw new Error(`[kiln tests] KILN_REQUIRE_BACKENDS names '${name}', which is unavailable: ${info.reason}`);
}

/**
 * The backends the parameterised suite runs on: every registered one, or with
 * `KILN_TEST_BACKENDS=cpu` only those named (ref stays the reference either way); the others are
 * reported unavailable with that reason, so their blocks are skipped and say why. CI's per-ISA
 * runs of the cpu kernels use it to leave out the other backends, which they do not change.
 */
export function testBackends(): BackendInfo[] {
  const only = (process.env.KILN_TEST_BACKENDS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return backends().map((b) =>
    only.length === 0 || only.includes(b.name) || !b.available ? b : { ...b, available: false, reason: `not in KILN_TEST_BACKENDS=${only.join(',')}` },
  );
}

/**
 * Run `fn(backendName)` inside a describe block for every registered backend. With `needs`, a
 * backend that cannot store one of those dtypes (WebGPU has no f64) skips the block, saying so.
 */
export function describeBackends(title: string, fn: (backend: string) => void, opts: { needs?: readonly DType[] } = {}): void {
  for (const b of testBackends()) {
    if (!b.available && !announced.has(b.name)) {
      announced.add(b.name);
      console.warn(`[kiln tests] backend '${b.name}' skipped: ${b.reason}`);
    }
    const lacks = b.available ? (opts.needs ?? []).filter((d) => !stores(b.name, d)) : [];
    const why = !b.available ? `: unavailable, ${b.reason}` : lacks.length ? `: skipped, it cannot store ${lacks.join(', ')}` : '';
    describe.skipIf(!b.available || lacks.length > 0)(`${title} [${b.name}${why}]`, () => fn(b.name));
  }
}

/** Whether backend `name` can read synchronously (for the few tests of dataSync/arraySync/itemSync/to). */
export function syncReadable(name: string): boolean {
  try {
    return !!backendSync(name).readSync;
  } catch {
    return false;
  }
}

/** The dtypes backend `name` stores, or null when it is unavailable here (its blocks are skipped, and why is printed). */
function dtypesOf(name: string): readonly DType[] | null {
  try {
    return backendSync(name).dtypes;
  } catch {
    return null;
  }
}

/**
 * Whether backend `name` stores `dtype`; when not, says so once, so a skipped dtype is never
 * silent (an unavailable backend stores nothing, and is announced as unavailable instead).
 */
export function stores(name: string, dtype: DType): boolean {
  const dtypes = dtypesOf(name);
  const ok = dtypes?.includes(dtype) ?? false;
  const key = `${name}/${dtype}`;
  if (!ok && dtypes && !announced.has(key)) {
    announced.add(key);
    console.warn(`[kiln tests] ${dtype} tests skipped on backend '${name}': it cannot store ${dtype}`);
  }
  return ok;
}

/**
 * The widest float dtype backend `name` stores: f64 where it can, else f32 (WebGPU has no f64).
 * A test about behaviour rather than about f64 runs in it, with `tol(floatDtype(b))` and inputs
 * rounded by `stored(floatDtype(b))`, so such a backend is still tested; a test about f64 itself
 * (promotion to f64, finite differences, f64 precision) skips instead, through `stores`.
 */
export function floatDtype(name: string): 'f64' | 'f32' {
  const dtypes = dtypesOf(name);
  // an unavailable backend runs nothing: f64, quietly
  const ok = dtypes?.includes('f64') ?? true;
  const key = `${name}/f64→f32`;
  if (!ok && !announced.has(key)) {
    announced.add(key);
    console.warn(`[kiln tests] backend '${name}' cannot store f64: tests of behaviour written in f64 run in f32 there, with f32 tolerances`);
  }
  return ok ? 'f64' : 'f32';
}

/**
 * Those of `dtypes` that backend `name` stores (each one it cannot store is announced once, by
 * `stores`). An unavailable backend gets them all back: its blocks are skipped, but they are
 * still collected, and an empty list would break `fc.constantFrom(...)` there.
 */
export function storedDtypes<D extends DType>(name: string, dtypes: readonly D[]): D[] {
  return dtypesOf(name) ? dtypes.filter((d) => stores(name, d)) : [...dtypes];
}

/** Tolerances by dtype: f64 is near-exact, f32 single rounding, halves their epsilon. */
export function tol(dtype: DType): { rtol: number; atol: number } {
  switch (dtype) {
    case 'f64':
      return { rtol: 1e-10, atol: 1e-12 };
    case 'f32':
      return { rtol: 2e-5, atol: 1e-6 };
    case 'bf16':
      return { rtol: 1.6e-2, atol: 1e-2 };
    case 'f16':
      return { rtol: 2e-3, atol: 1e-3 };
    default:
      return { rtol: 0, atol: 0 };
  }
}

/** Assert |a − e| ≤ atol + rtol·|e| elementwise (NaN matches NaN, ±∞ must match exactly). */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { rtol = 2e-5, atol = 1e-6 }: { rtol?: number; atol?: number } = {},
  what = '',
): void {
  expect(actual.length, `${what} length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e)) {
      expect(Number.isNaN(a), `${what}[${i}]: expected NaN, got ${a}`).toBe(true);
      continue;
    }
    if (!Number.isFinite(e)) {
      expect(a, `${what}[${i}]`).toBe(e);
      continue;
    }
    const ok = Math.abs(a - e) <= atol + rtol * Math.abs(e);
    if (!ok) expect.fail(`${what}[${i}]: got ${a}, expected ${e} (rtol ${rtol}, atol ${atol})`);
  }
}

/**
 * Values of a tensor as a plain number array, read asynchronously (as every backend allows:
 * a GPU backend, and the test-only `async-ref`, have no synchronous read).
 */
export async function values(t: Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

/** Round a JS number to f32, as a stored f32 input would be. */
export const f32 = Math.fround;

/** Shapes of rank 0..maxRank with dims in [0, maxDim] (size-0 and size-1 dims included). */
export function shapeArb(maxRank = 4, maxDim = 5, minDim = 0): fc.Arbitrary<number[]> {
  return fc.array(fc.integer({ min: minDim, max: maxDim }), { minLength: 0, maxLength: maxRank });
}

/** Two shapes that broadcast together, built by setting random dims of a common shape to 1 and dropping leading dims. */
export function broadcastPairArb(maxRank = 4, maxDim = 4): fc.Arbitrary<[number[], number[]]> {
  return fc
    .tuple(
      fc.array(fc.integer({ min: 0, max: maxDim }), { minLength: 0, maxLength: maxRank }),
      fc.array(fc.boolean(), { minLength: maxRank, maxLength: maxRank }),
      fc.array(fc.boolean(), { minLength: maxRank, maxLength: maxRank }),
      fc.nat(maxRank),
      fc.nat(maxRank),
    )
    .map(([base, ma, mb, da, db]) => {
      const a = base.map((d, i) => (ma[i] ? 1 : d)).slice(Math.min(da, base.length));
      const b = base.map((d, i) => (mb[i] ? 1 : d)).slice(Math.min(db, base.length));
      return [a, b];
    });
}

/** n finite floats in [-range, range]. */
export function floatsArb(n: number, range = 10): fc.Arbitrary<number[]> {
  return fc.array(fc.double({ min: -range, max: range, noNaN: true, noDefaultInfinity: true }), { minLength: n, maxLength: n });
}

export function size(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

/** Row-major strides. */
export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Read element `idx` (multi-index aligned to the right) of a flat array of `shape`, broadcasting. */
export function at(data: ArrayLike<number>, shape: readonly number[], idx: readonly number[]): number {
  const st = strides(shape);
  let off = 0;
  for (let i = 0; i < shape.length; i++) {
    const j = idx[idx.length - shape.length + i]!;
    off += (shape[i] === 1 ? 0 : j) * st[i]!;
  }
  return data[off]!;
}

/** All multi-indices of `shape`, row-major. */
export function indices(shape: readonly number[]): number[][] {
  const out: number[][] = [];
  const n = size(shape);
  for (let i = 0; i < n; i++) {
    const idx: number[] = [];
    let r = i;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx.unshift(r % shape[d]!);
      r = Math.floor(r / shape[d]!);
    }
    out.push(idx);
  }
  return out;
}

/** fast-check settings: enough runs to find edge cases, seeded from the environment when reproducing. */
export const FC = { numRuns: Number(process.env.KILN_FC_RUNS ?? 60) };

/** A small deterministic PRNG in [0, 1) (mulberry32), for test data that fast-check does not draw. */
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

/** The value a JS number becomes when stored in `dtype`. */
export function stored(dtype: DType): (x: number) => number {
  switch (dtype) {
    case 'f64':
      return (x) => x;
    case 'f32':
      return Math.fround;
    case 'bf16':
      return (x) => bf16Value(bf16Bits(x));
    case 'f16':
      return (x) => f16Value(f16Bits(x));
    case 'i32':
      return (x) => Math.trunc(x) | 0;
    case 'bool':
      return (x) => (x !== 0 ? 1 : 0);
  }
}

/**
 * Live tensors plus those the garbage collector released (memory().collected): unlike the live
 * count alone, it does not move when the collector finalizes an earlier test's garbage during an
 * await, so tests compare it before and after.
 */
export function liveTensors(): number {
  const m = memory();
  return m.tensors + m.collected;
}

/** Dispose every tensor in `x` (a tensor, or arrays and plain objects holding tensors). */
export function disposeAll(x: unknown): void {
  if (x === null || typeof x !== 'object') return;
  if (x instanceof Tensor) x.dispose();
  else if (Array.isArray(x)) for (const v of x) disposeAll(v);
  else if (Object.getPrototypeOf(x) === Object.prototype) for (const v of Object.values(x)) disposeAll(v);
}

/**
 * Build tensors in a tidy scope (synchronous: no reads in it), then `check` what `build` returned,
 * reading asynchronously, and dispose the returned tensors afterwards.
 */
export async function tidyRead<R>(build: () => R, check: (r: R) => Promise<void> | void): Promise<void> {
  const r = tidy(build);
  try {
    await check(r);
  } finally {
    disposeAll(r);
  }
}

/** A tidy whose returned tensors (alone, or in arrays and plain objects) outlive it. */
export type Step = <T>(fn: () => T) => T;

function gatherTensors(x: unknown, out: Tensor[]): void {
  if (x instanceof Tensor) out.push(x);
  else if (Array.isArray(x)) for (const v of x) gatherTensors(v, out);
  else if (x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype)
    for (const v of Object.values(x)) gatherTensors(v, out);
}

/**
 * Run an async test body whose tensor work happens in `step`s: each is a (synchronous) tidy,
 * and the tensors it returns live until the body ends, when they are disposed (their grads with
 * them), also when it throws. Reads (`await values(t)`) go between steps, never inside one.
 */
export async function scoped(body: (step: Step) => Promise<void>): Promise<void> {
  const held: Tensor[] = [];
  const step: Step = (fn) => {
    const r = tidy(fn);
    gatherTensors(r, held);
    return r;
  };
  try {
    await body(step);
  } finally {
    for (const t of held) t.dispose();
  }
}

/**
 * `randn` drawn on `ref` and copied to `opts.backend`: the same values on every backend, where
 * each backend's own `randn` agrees with ref's only to f32 rounding (a GPU's Box–Muller runs in
 * f32). Cross-backend tests compare kernels, so they start from identical inputs.
 */
export function randnFromRef(
  shape: readonly number[],
  opts: { backend: string; dtype?: DType; generator?: import('../src/index.js').Generator; requiresGrad?: boolean },
): Tensor {
  const r = randnRef(shape as number[], { backend: 'ref', dtype: opts.dtype, generator: opts.generator });
  const t = tensorOf(r.dataSync(), shape as number[], { backend: opts.backend, dtype: r.dtype, requiresGrad: opts.requiresGrad ?? false });
  r.dispose();
  return t;
}

/**
 * `steps` optimizer steps, each minimising `lossOf()` (built inside a tidy scope), with a read of
 * the loss per step as a training loop has (on webgpu the queue drains); returns the losses.
 */
export async function optimize(opt: { zeroGrad(): void; step(): void }, steps: number, lossOf: () => Tensor): Promise<number[]> {
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const l = tidy(() => {
      const loss = lossOf();
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss;
    });
    losses.push(await l.item());
    l.dispose();
  }
  return losses;
}
