/**
 * The tree-structured Parzen estimator (Bergstra et al. 2011, "Algorithms for Hyper-Parameter
 * Optimization"), the Bayesian optimisation behind Hyperopt and Optuna's default sampler, in its
 * univariate form: the finished trials are split into the best γ fraction and the rest, each
 * hyperparameter's values in the two groups become densities l(x) and g(x) (Parzen windows:
 * truncated Gaussians at the observed values plus a broad prior, for ranges; smoothed counts for
 * lists), candidates are drawn from l and the one with the largest l(x)/g(x) (the expected
 * improvement's maximiser under this model) is the next configuration. Until `startup` trials
 * have finished, configurations are drawn at random.
 * @module
 */
import { Generator } from '../tensor/random.js';
import type { ParamSpec, ParamValue, SearchConfig, SearchSpace } from './search.js';

/** Options of the TPE sampler (search's `tpe` option). */
export interface TPEOptions {
  /** Random configurations before the model takes over (default 10, as Optuna). */
  startup?: number;
  /** The fraction of finished trials counted as good (default 0.25, as Hyperopt). */
  gamma?: number;
  /** Candidates drawn from l(x) per suggestion (default 24, as both). */
  candidates?: number;
}

/** A finished trial as the sampler sees it: its configuration and value (null or NaN: failed). */
export interface Observation {
  config: SearchConfig;
  value: number | null;
}

type Range = Exclude<ParamSpec, readonly ParamValue[]>;

// the range's bounds in the space the model works in (log for logUniform, ±½ around integers)
function bounds(s: Range): [number, number] {
  if (s.type === 'logUniform') return [Math.log(s.low), Math.log(s.high)];
  if (s.type === 'int') return [s.low - 0.5, s.high + 0.5];
  return [s.low, s.high];
}
const toModel = (s: Range, v: number): number => (s.type === 'logUniform' ? Math.log(v) : v);
function fromModel(s: Range, x: number): number {
  if (s.type === 'logUniform') return Math.min(s.high, Math.max(s.low, Math.exp(x)));
  if (s.type === 'int') return Math.min(s.high, Math.max(s.low, Math.round(x)));
  return Math.min(s.high, Math.max(s.low, x));
}

// the normal CDF, from erf (Abramowitz and Stegun 7.1.26: |error| < 1.5e-7)
function phi(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
}

/** A Parzen window over [lo, hi]: Gaussians at the points and one broad prior, each truncated to the range. */
class Parzen {
  readonly mu: number[];
  readonly sigma: number[];
  private readonly mass: number[];

  constructor(points: readonly number[], readonly lo: number, readonly hi: number) {
    const span = hi - lo;
    const prior = (lo + hi) / 2;
    const all = [...points, prior].sort((a, b) => a - b);
    // each point's width: the larger gap to its neighbours (the range's ends at the edges), clipped
    // to [span / min(100, n + 1), span] (Hyperopt's rule); the prior's: the whole span
    const minSigma = span / Math.min(100, all.length);
    const width = (x: number): number => {
      const i = all.indexOf(x);
      const left = i > 0 ? x - all[i - 1]! : x - lo;
      const right = i < all.length - 1 ? all[i + 1]! - x : hi - x;
      return Math.min(span, Math.max(minSigma, left, right));
    };
    this.mu = [...points, prior];
    this.sigma = [...points.map(width), span];
    this.mass = this.mu.map((m, k) => Math.max(1e-12, phi((hi - m) / this.sigma[k]!) - phi((lo - m) / this.sigma[k]!)));
  }

  /** The density at x (components weighted equally). */
  density(x: number): number {
    let p = 0;
    for (let k = 0; k < this.mu.length; k++) {
      const z = (x - this.mu[k]!) / this.sigma[k]!;
      p += Math.exp(-0.5 * z * z) / (this.sigma[k]! * Math.sqrt(2 * Math.PI) * this.mass[k]!);
    }
    return p / this.mu.length;
  }

  /** A draw: a component, then its Gaussian truncated to the range (by rejection). */
  sample(u: () => number): number {
    const k = Math.min(this.mu.length - 1, Math.floor(u() * this.mu.length));
    for (let tries = 0; tries < 64; tries++) {
      // Box–Muller
      const z = Math.sqrt(-2 * Math.log(Math.max(u(), 1e-300))) * Math.cos(2 * Math.PI * u());
      const x = this.mu[k]! + this.sigma[k]! * z;
      if (x >= this.lo && x <= this.hi) return x;
    }
    return Math.min(this.hi, Math.max(this.lo, this.mu[k]!));
  }
}

// a list's values as a smoothed categorical distribution (one pseudo-count per value)
function categorical(values: readonly ParamValue[], seen: readonly ParamValue[]): number[] {
  const counts = values.map((v) => seen.filter((s) => s === v).length + 1);
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => c / total);
}

/**
 * The next configuration for `space` given the finished trials (better is lower in 'min' mode):
 * a random draw while fewer than `startup` have a value, else the TPE choice. `gen` is the stream
 * its draws come from (the search keeps one, so a seed gives the same sequence).
 */
export function tpeSuggest(space: SearchSpace, observations: readonly Observation[], gen: Generator, mode: 'min' | 'max' = 'min', opts: TPEOptions = {}): SearchConfig {
  const startup = opts.startup ?? 10;
  const gamma = opts.gamma ?? 0.25;
  const nCandidates = opts.candidates ?? 24;
  const buffer: number[] = [];
  const u = (): number => {
    if (buffer.length === 0) buffer.push(...gen.draw(64, { kind: 'uniform', low: 0, high: 1 }));
    return buffer.pop()!;
  };
  const entries = Object.entries(space);
  const finite = observations.filter((o) => o.value !== null && Number.isFinite(o.value));
  const draw = (name: string, spec: ParamSpec): ParamValue => {
    void name;
    if (Array.isArray(spec)) return spec[Math.min(spec.length - 1, Math.floor(u() * spec.length))]!;
    const s = spec as Range;
    const [lo, hi] = bounds(s);
    return fromModel(s, lo + u() * (hi - lo));
  };
  if (finite.length < startup) return Object.fromEntries(entries.map(([n, s]) => [n, draw(n, s)]));

  const sorted = [...finite].sort((a, b) => (mode === 'min' ? a.value! - b.value! : b.value! - a.value!));
  const nGood = Math.max(1, Math.ceil(gamma * sorted.length));
  const good = sorted.slice(0, nGood);
  // the rest, and the trials without a value, are the bad group
  const bad = [...sorted.slice(nGood), ...observations.filter((o) => !finite.includes(o))];

  // per hyperparameter: a sampler from l and the log ratio log l − log g
  const models = entries.map(([name, spec]) => {
    if (Array.isArray(spec)) {
      const l = categorical(spec, good.map((o) => o.config[name]!));
      const g = categorical(spec, bad.map((o) => o.config[name]!));
      return {
        name,
        sample: (): ParamValue => {
          let r = u();
          for (let i = 0; i < spec.length; i++) if ((r -= l[i]!) <= 0) return spec[i]!;
          return spec[spec.length - 1]!;
        },
        score: (v: ParamValue): number => {
          const i = spec.indexOf(v);
          return Math.log(l[i]!) - Math.log(g[i]!);
        },
      };
    }
    const s = spec as Range;
    const [lo, hi] = bounds(s);
    const pts = (os: readonly Observation[]): number[] => os.map((o) => o.config[name]).filter((v): v is number => typeof v === 'number').map((v) => toModel(s, v));
    const l = new Parzen(pts(good), lo, hi);
    const g = new Parzen(pts(bad), lo, hi);
    return {
      name,
      sample: (): ParamValue => fromModel(s, l.sample(u)),
      score: (v: ParamValue): number => {
        const x = toModel(s, v as number);
        return Math.log(l.density(x) + 1e-300) - Math.log(g.density(x) + 1e-300);
      },
    };
  });

  let best: SearchConfig | null = null;
  let bestScore = -Infinity;
  for (let c = 0; c < nCandidates; c++) {
    const config: SearchConfig = {};
    let score = 0;
    for (const m of models) {
      const v = m.sample();
      config[m.name] = v;
      score += m.score(v);
    }
    if (score > bestScore) {
      bestScore = score;
      best = config;
    }
  }
  return best!;
}
