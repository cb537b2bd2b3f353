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

/**
 * The q-th percentile (q in [0, 100]) of `values` with linear interpolation between closest
 * ranks, as `numpy.percentile(values, q)`. NaN values throw; an empty input throws.
 *
 * @example
 * percentile([1, 2, 3, 4], 50); // 2.5
 */
export function percentile(values: ArrayLike<number>, q: number): number {
  const sorted = Float64Array.from(values as ArrayLike<number>);
  checkValues('percentile', sorted);
  sorted.sort();
  return sortedPercentile('percentile', sorted, q);
}

function checkValues(op: string, v: Float64Array): void {
  if (v.length === 0) throw new Error(`${op}: no values`);
  for (let i = 0; i < v.length; i++) if (Number.isNaN(v[i]!)) throw new Error(`${op}: value ${i} is NaN`);
}

function sortedPercentile(op: string, sorted: Float64Array, q: number): number {
  if (!(q >= 0 && q <= 100)) throw new Error(`${op}: q must be in [0, 100], got ${q}`);
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
    const warmup = opts.warmup ?? 0;
    if (!(Number.isInteger(warmup) && warmup >= 0)) throw new Error(`ThroughputMeter: warmup must be a non-negative integer, got ${warmup}`);
    this.warmup = warmup;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Start timing a step. */
  start(): void {
    if (this.startedAt !== null) throw new Error('ThroughputMeter.start: a step is already running; call stop() first');
    this.startedAt = this.now();
  }

  /** End the step begun by `start()`, crediting it `tokens`; returns its duration in ms. */
  stop(tokens = 0): number {
    if (this.startedAt === null) throw new Error('ThroughputMeter.stop: no step is running; call start() first');
    const ms = this.now() - this.startedAt;
    this.startedAt = null;
    this.record(ms, tokens);
    return ms;
  }

  /** Record a step measured elsewhere: its duration in ms and the tokens it processed. */
  record(ms: number, tokens = 0): void {
    if (!(Number.isFinite(ms) && ms >= 0)) throw new Error(`ThroughputMeter.record: ms must be a finite non-negative number, got ${ms}`);
    if (!(Number.isFinite(tokens) && tokens >= 0))
      throw new Error(`ThroughputMeter.record: tokens must be a finite non-negative number, got ${tokens}`);
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
    this.start();
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
          this.stop(tokens);
          return v;
        },
        (e: unknown) => {
          this.startedAt = null;
          throw e;
        },
      );
    this.stop(tokens);
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
    return percentile(this.ms, q);
  }

  /** Statistics of the counted steps; throws if there are none. */
  summary(): ThroughputSummary {
    if (this.ms.length === 0)
      throw new Error(`ThroughputMeter.summary: no steps counted (${this.seen} recorded, warm-up ${this.warmup})`);
    const sorted = Float64Array.from(this.ms).sort();
    const totalMs = this.ms.reduce((a, b) => a + b, 0);
    const totalTokens = this.tokens.reduce((a, b) => a + b, 0);
    const seconds = totalMs / 1000;
    const p = (q: number) => sortedPercentile('ThroughputMeter.summary', sorted, q);
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
