/**
 * Latency and throughput: a meter that records the duration and token count of each step and
 * reports tokens per second, milliseconds per step (mean, median, min, max) and percentiles.
 *
 * Percentiles use NumPy's default method ('linear', Hyndman & Fan's type 7): for sorted values
 * x₀ ≤ … ≤ x_{n−1} and q in [0, 100], h = (n − 1)·(q/100) and the result is
 * x_⌊h⌋ + (h − ⌊h⌋)·(x_⌊h⌋+1 − x_⌊h⌋), evaluated as NumPy does (from the upper neighbour when
 * h − ⌊h⌋ ≥ 0.5) so that results agree to the last bit.
 *
 * Work on an asynchronous backend is only queued when an op returns: read a result (`await
 * t.data()`) before `stop()`, or the step time measures the enqueueing, not the work.
 * @module
 */
import { checkNumber, show } from '../tensor/validate.js';
import { checkOptions, optionalFunction } from './check.js';

/**
 * The q-th percentile (q in [0, 100]) of `values` with linear interpolation between closest
 * ranks, as `numpy.percentile(values, q)`. NaN values throw; an empty input throws.
 *
 * @example
 * percentile([1, 2, 3, 4], 50); // 2.5
 */
export function percentile(values: ArrayLike<number>, q: number): number {
  return percentileOf('percentile', values, q);
}

function percentileOf(op: string, values: unknown, q: unknown): number {
  const sorted = readValues(op, values);
  checkNumber(op, 'q', q, { min: 0, max: 100 });
  sorted.sort();
  return sortedPercentile(sorted, q as number);
}

/** `values` (an array of numbers or a typed array) as a Float64Array, refusing NaN and empty input. */
function readValues(op: string, values: unknown): Float64Array {
  const typed = ArrayBuffer.isView(values) && !(values instanceof DataView) && !(values instanceof BigInt64Array) && !(values instanceof BigUint64Array);
  if (!typed && !Array.isArray(values)) throw new Error(`${op}: values must be an array of numbers or a typed array, got ${show(values)}`);
  const list = values as ArrayLike<unknown>;
  if (list.length === 0) throw new Error(`${op}: no values (values is ${show(values)})`);
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    if (typeof v !== 'number') throw new Error(`${op}: values[${i}] must be a number, got ${show(v)}`);
    if (Number.isNaN(v)) throw new Error(`${op}: value ${i} is NaN`);
  }
  return Float64Array.from(list as ArrayLike<number>);
}

function sortedPercentile(sorted: Float64Array, q: number): number {
  const n = sorted.length;
  // NumPy divides q by 100 first: h = (n − 1)·(q/100), rounded in that order
  const h = (n - 1) * (q / 100);
  if (h >= n - 1) return sorted[n - 1]!;
  const lo = Math.floor(h);
  const t = h - lo;
  const a = sorted[lo]!;
  const b = sorted[lo + 1]!;
  const d = b - a;
  // NumPy's _lerp: a + d·t, or b − d·(1 − t) when t ≥ 0.5 (exact at t = 1, monotone)
  return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

/** Options of {@link ThroughputMeter}. */
export interface ThroughputMeterOptions {
  /** The first `warmup` recorded steps are discarded (JIT compilation, caches, allocator growth). Default 0. */
  warmup?: number;
  /** Clock in milliseconds; default `performance.now`. Inject one for deterministic tests. */
  now?: () => number;
}

/** Millisecond statistics over the recorded steps. */
export interface StepTimes {
  mean: number;
  median: number;
  min: number;
  max: number;
  p50: number;
  p90: number;
  p99: number;
}

/** What {@link ThroughputMeter.summary} reports. */
export interface ThroughputSummary {
  /** Steps counted (after warm-up). */
  steps: number;
  /** Warm-up steps discarded. */
  skipped: number;
  /** Sum of the counted steps' durations, in milliseconds. */
  totalMs: number;
  /** Sum of the counted steps' tokens. */
  totalTokens: number;
  /** totalTokens / (totalMs / 1000). */
  tokensPerSecond: number;
  /** steps / (totalMs / 1000). */
  stepsPerSecond: number;
  /** Per-step milliseconds. */
  msPerStep: StepTimes;
}

/**
 * Records step latencies and token counts.
 *
 * @example
 * const meter = new ThroughputMeter({ warmup: 2 });
 * for (let i = 0; i < 20; i++) {
 *   meter.start();
 *   const loss = trainStep(batch);
 *   await loss.data(); // wait for the device
 *   meter.stop(batchTokens);
 * }
 * const { tokensPerSecond, msPerStep } = meter.summary(); // msPerStep.p90 …
 */
export class ThroughputMeter {
  private readonly warmup: number;
  private readonly now: () => number;
  private startedAt: number | null = null;
  private seen = 0;
  private readonly ms: number[] = [];
  private readonly tokens: number[] = [];

  constructor(opts: ThroughputMeterOptions = {}) {
    const op = 'ThroughputMeter';
    const o = checkOptions(op, opts, ['warmup', 'now']);
    this.warmup = o.warmup === undefined ? 0 : checkNumber(op, 'warmup', o.warmup, { integer: true, min: 0 });
    const now = optionalFunction<() => number>(op, 'now', o.now);
    this.now = now ?? (() => performance.now());
  }

  /** The clock's reading for `op`, which must be a finite number. */
  private read(op: string): number {
    const t: unknown = this.now();
    if (typeof t !== 'number' || !Number.isFinite(t)) throw new Error(`${op}: the clock (now) must return a finite number, got ${show(t)}`);
    return t;
  }

  /** Start timing a step. */
  start(): void {
    if (this.startedAt !== null) throw new Error('ThroughputMeter.start: a step is already running; call stop() first');
    this.startedAt = this.read('ThroughputMeter.start');
  }

  /** End the step begun by `start()`, crediting it `tokens`; returns its duration in ms. */
  stop(tokens = 0): number {
    return this.stopAs('ThroughputMeter.stop', tokens);
  }

  private stopAs(op: string, tokens: number): number {
    checkNumber(op, 'tokens', tokens, { min: 0 });
    if (this.startedAt === null) throw new Error(`${op}: no step is running; call start() first`);
    const ms = this.read(op) - this.startedAt;
    this.startedAt = null;
    this.recordAs(op, ms, tokens);
    return ms;
  }

  /** Record a step measured elsewhere: its duration in ms and the tokens it processed. */
  record(ms: number, tokens = 0): void {
    this.recordAs('ThroughputMeter.record', ms, tokens);
  }

  private recordAs(op: string, ms: number, tokens: number): void {
    checkNumber(op, 'ms', ms, { min: 0 });
    checkNumber(op, 'tokens', tokens, { min: 0 });
    this.seen++;
    if (this.seen <= this.warmup) return;
    this.ms.push(ms);
    this.tokens.push(tokens);
  }

  /**
   * Time `fn` as one step of `tokens` tokens and return its result; a promise is awaited
   * before the clock stops.
   */
  measure<T>(fn: () => T, tokens?: number): T;
  measure<T>(fn: () => Promise<T>, tokens?: number): Promise<T>;
  measure<T>(fn: () => T | Promise<T>, tokens = 0): T | Promise<T> {
    const op = 'ThroughputMeter.measure';
    if (typeof fn !== 'function') throw new Error(`${op}: fn must be a function, got ${show(fn)}`);
    checkNumber(op, 'tokens', tokens, { min: 0 });
    if (this.startedAt !== null) throw new Error(`${op}: a step is already running; call stop() first`);
    this.startedAt = this.read(op);
    let out: T | Promise<T>;
    try {
      out = fn();
    } catch (e) {
      this.startedAt = null;
      throw e;
    }
    if (out instanceof Promise)
      return out.then(
        (v) => {
          this.stopAs(op, tokens);
          return v;
        },
        (e: unknown) => {
          this.startedAt = null;
          throw e;
        },
      );
    this.stopAs(op, tokens);
    return out;
  }

  /** Steps counted so far (warm-up excluded). */
  get steps(): number {
    return this.ms.length;
  }

  /** The counted step durations in ms, in recording order. */
  get durations(): readonly number[] {
    return this.ms;
  }

  /** The q-th percentile (q in [0, 100]) of the counted step durations, in ms. */
  percentile(q: number): number {
    return percentileOf('ThroughputMeter.percentile', this.ms, q);
  }

  /** Statistics of the counted steps; throws if there are none. */
  summary(): ThroughputSummary {
    if (this.ms.length === 0)
      throw new Error(`ThroughputMeter.summary: no steps counted (${this.seen} recorded, warm-up ${this.warmup})`);
    const sorted = Float64Array.from(this.ms).sort();
    const totalMs = this.ms.reduce((a, b) => a + b, 0);
    const totalTokens = this.tokens.reduce((a, b) => a + b, 0);
    const seconds = totalMs / 1000;
    const p = (q: number) => sortedPercentile(sorted, q);
    return {
      steps: this.ms.length,
      skipped: this.seen - this.ms.length,
      totalMs,
      totalTokens,
      tokensPerSecond: seconds > 0 ? totalTokens / seconds : totalTokens > 0 ? Infinity : 0,
      stepsPerSecond: seconds > 0 ? this.ms.length / seconds : Infinity,
      msPerStep: { mean: totalMs / this.ms.length, median: p(50), min: sorted[0]!, max: sorted[sorted.length - 1]!, p50: p(50), p90: p(90), p99: p(99) },
    };
  }

  /** Forget all steps (the warm-up starts over). */
  reset(): void {
    this.startedAt = null;
    this.seen = 0;
    this.ms.length = 0;
    this.tokens.length = 0;
  }
}
