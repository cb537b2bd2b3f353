/**
 * Hyperparameter search: grid search (every combination of the listed values) and random search
 * (seeded draws from lists and ranges), running one short training per configuration through a
 * caller's `run(config, context)` and ranking the results. Each trial gets a fresh
 * {@link EarlyStopping} and an `AbortSignal`; a trial that stops early is kept and ranked by the
 * value it reached. Random draws come from kiln's Philox {@link Generator}, so a seed gives the
 * same configurations on every machine. A pruner stops unpromising trials at their `report`s:
 * the median rule, asynchronous successive halving (ASHA) or Hyperband over it.
 * @module
 */
import { Generator } from '../tensor/random.js';
import { asOp } from '../tensor/ops/util.js';
import { checkBoolean, checkChoice, checkKeys, checkNumber, show } from '../tensor/validate.js';
import { EarlyStopping, type EarlyStoppingOptions } from './early_stopping.js';
import { tpeSuggest, type TPEOptions } from './tpe.js';

/** A value a hyperparameter can take. */
export type ParamValue = number | string | boolean | null;

/**
 * How one hyperparameter varies: a list of values (grid search tries each, random search draws
 * one uniformly), or for random search a range: `uniform` and `logUniform` over [low, high),
 * `int` over the integers low..high inclusive.
 */
export type ParamSpec =
  | readonly ParamValue[]
  | { type: 'uniform'; low: number; high: number }
  | { type: 'logUniform'; low: number; high: number }
  | { type: 'int'; low: number; high: number };

/** Hyperparameters by name. */
export type SearchSpace = Record<string, ParamSpec>;

/** One configuration: a value for every hyperparameter of the space. */
export type SearchConfig = Record<string, ParamValue>;

/** What a trial's `run` receives besides its configuration. */
export interface TrialContext {
  /** The trial's number, from 0. */
  index: number;
  /** Fires when the search is aborted: finish quickly (the loop helper saves and returns). */
  signal: AbortSignal;
  /** This trial's own early-stopping rule (null when the search has none); pass it to `train({ earlyStopping })`. */
  earlyStopping: EarlyStopping | null;
  /**
   * Record an intermediate value (a validation loss at `step`); returns true when the trial
   * should stop (its early-stopping rule fired). For `run` functions that do not use {@link train}.
   */
  report(value: number, step?: number): boolean;
}

/**
 * What `run` returns: the trial's value, or an object with it; a {@link TrainResult}-like
 * object (`{ bestValLoss, step, reason }`) works as it is. Returning nothing uses the best value
 * passed to `report`.
 */
export type TrialOutcome =
  | number
  | void
  | { value: number; steps?: number; earlyStopped?: boolean }
  | { bestValLoss: number | null; step: number; reason: string };

/** How a trial ended ('pruned': stopped by the search's pruner, as worse than the median or outside a rung's top 1/η). */
export type TrialStatus = 'ok' | 'early-stopped' | 'pruned' | 'failed' | 'aborted';

/** One trial of a search. */
export interface Trial {
  index: number;
  config: SearchConfig;
  /** The trial's value (lower is better in `'min'` mode), or null when it has none. */
  value: number | null;
  status: TrialStatus;
  /** Steps the trial ran, when it said. */
  steps: number | null;
  /** Values passed to `report`. */
  reports: { step: number | null; value: number }[];
  seconds: number;
  /** The error message of a failed trial. */
  error?: string;
  /** The step (resource) of the report at which the pruner stopped a 'pruned' trial. */
  prunedAt?: number;
  /** The Hyperband bracket the trial ran in (its minimum early-stopping rate), with `pruner: { type: 'hyperband' }`. */
  bracket?: number;
}

/** The median rule (as Vizier's and Optuna's): see {@link SearchOptions.pruner}. */
export interface MedianPrunerOptions {
  type: 'median';
  /** Finished trials needed before any trial is pruned (default 3). */
  startupTrials?: number;
  /** Reports before this step never prune (default 0). */
  warmupSteps?: number;
}

/**
 * Asynchronous successive halving (ASHA, Li et al. 2018, "A System for Massively Parallel
 * Hyperparameter Tuning"): rungs at resources (steps) r·η^(s+k), k = 0, 1, …; a trial whose
 * report first reaches a rung records its best value so far there, and goes on only while that
 * value is among the top ⌊n/η⌋ (at least 1) of the n values recorded at the rung so far, by any
 * trial. A trial that is not is stopped and marked 'pruned'. In a sequential search no trial can
 * wait to be promoted later, so a trial that is not promotable now stops.
 */
export interface HalvingPrunerOptions {
  type: 'halving';
  /** r: the resource (step) of the first rung before the early-stopping rate; default 1. */
  minResource?: number;
  /** η > 1: the next rung is η times further, and the top 1/η go on; default 3. */
  reductionFactor?: number;
  /** s: the first rung is at r·η^s; default 0. */
  minEarlyStoppingRate?: number;
  /** R: a trial's whole budget; no rung at or beyond it (default: rungs without end). */
  maxResource?: number;
}

/**
 * Hyperband (Li et al. 2018, "Hyperband: A Novel Bandit-Based Approach to Hyperparameter
 * Optimization") over asynchronous successive halving: brackets s = 0 … s_max with
 * s_max = ⌊log_η(R/r)⌋, bracket s a halving rule whose first rung is at r·η^s (bracket 0 prunes
 * most eagerly, bracket s_max least). Trials are dealt to brackets in turn, in proportion to
 * Hyperband's n_s = ⌈(s_max+1)/(s_max−s+1)·η^(s_max−s)⌉, and compete only with trials of their own
 * bracket; each trial records its bracket.
 */
export interface HyperbandPrunerOptions {
  type: 'hyperband';
  /** r: the first rung of the most eager bracket; default 1. */
  minResource?: number;
  /** R: a trial's whole budget (its last step). */
  maxResource: number;
  /** η > 1; default 3. */
  reductionFactor?: number;
}

/** A search's pruner: a name with the default settings, or the settings. */
export type PrunerOptions = 'median' | 'halving' | MedianPrunerOptions | HalvingPrunerOptions | HyperbandPrunerOptions;

/** Options of {@link search}. */
export interface SearchOptions {
  space: SearchSpace;
  /**
   * `'grid'` (default): every combination; `'random'`: `trials` seeded draws; `'tpe'`: `trials`
   * configurations chosen one after another by the tree-structured Parzen estimator from the
   * trials before (Bayesian optimisation; random for the first `tpe.startup`).
   */
  strategy?: 'grid' | 'random' | 'tpe';
  /** Number of configurations to draw (random search, TPE), or the most to try (grid). */
  trials?: number;
  /** The TPE sampler's settings. */
  tpe?: TPEOptions;
  /**
   * Stop bad trials early; a stopped trial's `report` returns true and it is marked 'pruned'.
   * `'median'` (as Vizier's and Optuna's median rule): at a `report` from step `warmupSteps` on,
   * once `startupTrials` trials have finished, a trial whose best value so far is worse than the
   * median of the finished trials' best values up to the same step stops. `'halving'`:
   * asynchronous successive halving ({@link HalvingPrunerOptions}); `{ type: 'hyperband' }`:
   * Hyperband's brackets of it ({@link HyperbandPrunerOptions}). Steps are those passed to
   * `report` (the report's index when none is given).
   */
  pruner?: PrunerOptions;
  /** Seed of the random draws; 0 by default. */
  seed?: number;
  /** Runs one trial: a short training of `config`, returning its value (see {@link TrialOutcome}). */
  run(config: SearchConfig, context: TrialContext): TrialOutcome | Promise<TrialOutcome>;
  /** Whether lower (`'min'`, default) or higher values are better. */
  mode?: 'min' | 'max';
  /** The rule each trial gets (a fresh {@link EarlyStopping} per trial, in the search's `mode`). */
  earlyStopping?: Omit<EarlyStoppingOptions, 'mode'>;
  /** Stops the search: the running trial's signal fires, and no further trial starts. */
  signal?: AbortSignal;
  /** Called after each trial. */
  onTrial?(trial: Trial): void | Promise<void>;
  /** Stop at the first failed trial and throw its error (default false: record it and go on). */
  failFast?: boolean;
  /** The value's name in the table; `'value'` by default. */
  metricName?: string;
}

/** What {@link search} returns. */
export interface SearchResult {
  /** Trials in the order they ran. */
  trials: Trial[];
  /** Trials best first: those with a finite value by value (ties by index), then the rest by index. */
  ranked: Trial[];
  /** The best trial, or null when none has a finite value. */
  best: Trial | null;
  /** The ranked trials as a Markdown table. */
  table: string;
  /** Whether the search was aborted before every trial ran. */
  aborted: boolean;
}

/** @internal Validate a space (`op` names the caller); returns its entries in key order. */
export function checkSpace(op: string, space: SearchSpace, strategy: 'grid' | 'random'): [string, ParamSpec][] {
  if (!space || typeof space !== 'object' || Array.isArray(space)) throw new Error(`${op}: space must be an object of hyperparameters, got ${show(space)}`);
  const entries = Object.entries(space);
  if (entries.length === 0) throw new Error(`${op}: the space has no hyperparameters`);
  for (const [name, spec] of entries) {
    if (Array.isArray(spec)) {
      if (spec.length === 0) throw new Error(`${op}: '${name}' lists no values`);
      spec.forEach((v, i) => {
        if (v !== null && !['number', 'string', 'boolean'].includes(typeof v)) throw new Error(`${op}: '${name}'[${i}] must be a number, string, boolean or null, got ${show(v)}`);
      });
      continue;
    }
    const s = spec as Exclude<ParamSpec, readonly ParamValue[]>;
    if (!s || typeof s !== 'object' || !['uniform', 'logUniform', 'int'].includes(s.type))
      throw new Error(`${op}: '${name}' must be a list of values or { type: 'uniform' | 'logUniform' | 'int', low, high }, got ${s && typeof s === 'object' && 'type' in s ? `type ${show(s.type)}` : show(s)}`);
    checkKeys(`${op}: '${name}'`, s, ['type', 'low', 'high']);
    if (strategy === 'grid') throw new Error(`${op}: grid search needs a list of values for '${name}', got a ${s.type} range (use strategy: 'random')`);
    checkNumber(op, `'${name}'.low`, s.low, s.type === 'int' ? { integer: true } : {});
    checkNumber(op, `'${name}'.high`, s.high, { min: s.low, ...(s.type === 'int' ? { integer: true } : {}) });
    if (s.type === 'logUniform' && !(s.low > 0)) throw new Error(`${op}: '${name}' is logUniform, so low must be > 0, got ${s.low}`);
  }
  return entries;
}

/**
 * Every combination of the space's values, the last hyperparameter varying fastest (as nested
 * loops in the order the keys are written).
 *
 * @example
 * gridConfigs({ lr: [1e-3, 3e-3], layers: [2, 4] });
 * // [{ lr: 1e-3, layers: 2 }, { lr: 1e-3, layers: 4 }, { lr: 3e-3, layers: 2 }, { lr: 3e-3, layers: 4 }]
 */
export function gridConfigs(space: SearchSpace): SearchConfig[] {
  const entries = checkSpace('gridConfigs', space, 'grid') as [string, readonly ParamValue[]][];
  let out: SearchConfig[] = [{}];
  for (const [name, values] of entries) out = out.flatMap((c) => values.map((v) => ({ ...c, [name]: v })));
  return out;
}

/**
 * `n` configurations drawn independently: a list gives each value with equal probability,
 * `uniform` is uniform on [low, high), `logUniform` has a uniform logarithm, `int` is uniform on
 * low..high. Configuration i uses uniforms i·k … i·k + k − 1 (k hyperparameters, in key order) of
 * the Philox stream of `seed`, so a seed gives the same draws everywhere.
 */
export function randomConfigs(space: SearchSpace, n: number, seed = 0): SearchConfig[] {
  const entries = checkSpace('randomConfigs', space, 'random');
  checkNumber('randomConfigs', 'n', n, { integer: true, min: 0 });
  checkNumber('randomConfigs', 'seed', seed, { integer: true, min: 0 });
  if (n === 0) return [];
  const k = entries.length;
  const u = new Generator(seed).draw(n * k, { kind: 'uniform', low: 0, high: 1 });
  return Array.from({ length: n }, (_, i) => {
    const c: SearchConfig = {};
    entries.forEach(([name, spec], j) => (c[name] = drawValue(spec, u[i * k + j]!)));
    return c;
  });
}

/** @internal The value of `spec` that a uniform draw `x` in [0, 1) picks (as {@link randomConfigs} does). */
export function drawValue(spec: ParamSpec, x: number): ParamValue {
  if (Array.isArray(spec)) return spec[Math.min(spec.length - 1, Math.floor(x * spec.length))]!;
  const s = spec as Exclude<ParamSpec, readonly ParamValue[]>;
  if (s.type === 'uniform') return s.low + x * (s.high - s.low);
  if (s.type === 'logUniform') return Math.exp(Math.log(s.low) + x * (Math.log(s.high) - Math.log(s.low)));
  return Math.min(s.high, s.low + Math.floor(x * (s.high - s.low + 1)));
}

function tpeOptions(o: TPEOptions | undefined, strategy: string): TPEOptions {
  if (o === undefined) return {};
  if (strategy !== 'tpe') throw new Error(`search: tpe options are for strategy 'tpe', got strategy '${strategy}'`);
  checkKeys('search: tpe', o, ['startup', 'gamma', 'candidates']);
  if (o.startup !== undefined) checkNumber('search', 'tpe.startup', o.startup, { integer: true, min: 1 });
  if (o.gamma !== undefined) checkNumber('search', 'tpe.gamma', o.gamma, { min: 0, minExclusive: true, max: 1, maxExclusive: true });
  if (o.candidates !== undefined) checkNumber('search', 'tpe.candidates', o.candidates, { integer: true, min: 1 });
  return o;
}

/** A pruning rule, asked after each report of the running trial (trials run one at a time). */
interface Pruner {
  /** A new trial starts; returns its Hyperband bracket, if any. */
  start(index: number): number | undefined;
  /** Whether the running trial should stop at its latest report. */
  prune(index: number, reports: Trial['reports'], done: readonly Trial[]): boolean;
}

const PRUNER_SHAPES = "'median', 'halving', { type: 'median', startupTrials?, warmupSteps? }, { type: 'halving', minResource?, reductionFactor?, minEarlyStoppingRate?, maxResource? } or { type: 'hyperband', minResource?, maxResource, reductionFactor? }";

function prunerOptions(o: SearchOptions['pruner'], mode: 'min' | 'max'): Pruner | null {
  if (o === undefined) return null;
  if (o === 'median' || o === 'halving') o = { type: o };
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new Error(`search: pruner must be ${PRUNER_SHAPES}, got ${show(o)}`);
  const type = checkChoice('search', 'pruner.type', (o as { type?: unknown }).type, ['median', 'halving', 'hyperband'] as const);
  if (type === 'median') {
    const m = o as MedianPrunerOptions;
    checkKeys('search: pruner', m, ['type', 'startupTrials', 'warmupSteps']);
    return medianPruner(
      m.startupTrials === undefined ? 3 : checkNumber('search', 'pruner.startupTrials', m.startupTrials, { integer: true, min: 1 }),
      m.warmupSteps === undefined ? 0 : checkNumber('search', 'pruner.warmupSteps', m.warmupSteps, { integer: true, min: 0 }),
      mode,
    );
  }
  const h = o as HalvingPrunerOptions | HyperbandPrunerOptions;
  checkKeys('search: pruner', h, type === 'halving' ? ['type', 'minResource', 'reductionFactor', 'minEarlyStoppingRate', 'maxResource'] : ['type', 'minResource', 'reductionFactor', 'maxResource']);
  const r = h.minResource === undefined ? 1 : checkNumber('search', 'pruner.minResource', h.minResource, { min: 0, minExclusive: true });
  const eta = h.reductionFactor === undefined ? 3 : checkNumber('search', 'pruner.reductionFactor', h.reductionFactor, { min: 1, minExclusive: true });
  if (type === 'halving') {
    const hv = h as HalvingPrunerOptions;
    const s = hv.minEarlyStoppingRate === undefined ? 0 : checkNumber('search', 'pruner.minEarlyStoppingRate', hv.minEarlyStoppingRate, { integer: true, min: 0 });
    const maxR = hv.maxResource === undefined ? Infinity : checkNumber('search', 'pruner.maxResource', hv.maxResource, { min: r, minExclusive: true });
    const rule = halving(r, eta, s, maxR, mode);
    return { start: () => undefined, prune: (index, reports) => rule(index, reports) };
  }
  if (h.maxResource === undefined) throw new Error(`search: pruner.maxResource is needed by hyperband (a trial's whole budget in steps), got undefined`);
  const maxR = checkNumber('search', 'pruner.maxResource', h.maxResource, { min: r, minExclusive: true });
  return hyperband(r, eta, maxR, mode);
}

const better = (mode: 'min' | 'max') => (a: number, b: number): boolean => (mode === 'min' ? a < b : a > b);
const stepOf = (reports: Trial['reports'], i: number): number => reports[i]!.step ?? i;

// the median rule at this trial's latest report: its best so far against the median of the
// finished trials' best values reported up to the same step (the report's index when no step is given)
function medianPruner(startupTrials: number, warmupSteps: number, mode: 'min' | 'max'): Pruner {
  const isBetter = better(mode);
  return {
    start: () => undefined,
    prune(_index, reports, done) {
      const step = stepOf(reports, reports.length - 1);
      if (step < warmupSteps) return false;
      const bestUpTo = (rs: Trial['reports']): number | null => {
        let best: number | null = null;
        rs.forEach((r, i) => {
          if (stepOf(rs, i) <= step && Number.isFinite(r.value) && (best === null || isBetter(r.value, best))) best = r.value;
        });
        return best;
      };
      const others = done.map((t) => bestUpTo(t.reports)).filter((v): v is number => v !== null);
      if (others.length < startupTrials) return false;
      const sorted = others.sort((a, b) => a - b);
      const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
      const mine = bestUpTo(reports);
      return mine === null || isBetter(median, mine);
    },
  };
}

/**
 * One asynchronous successive-halving ladder: rung k at r·η^(s+k) (below maxR). Returns the rule
 * for the running trial's latest report.
 */
function halving(r: number, eta: number, s: number, maxR: number, mode: 'min' | 'max'): (index: number, reports: Trial['reports']) => boolean {
  const isBetter = better(mode);
  const worst = mode === 'min' ? Infinity : -Infinity;
  const rungAt = (k: number): number => r * eta ** (s + k);
  const rungs: Map<number, number>[] = []; // rung k: trial index → its best value on reaching the rung
  const next = new Map<number, number>(); // trial index → the first rung it has not reached
  return (index, reports) => {
    const step = stepOf(reports, reports.length - 1);
    let k = next.get(index) ?? 0;
    // a rung is reached once a report's step is at or past it (allowing for η^k's rounding)
    while (rungAt(k) < maxR * (1 - 1e-12) && rungAt(k) <= step * (1 + 1e-12)) {
      let mine = worst;
      for (const rep of reports) if (Number.isFinite(rep.value) && isBetter(rep.value, mine)) mine = rep.value;
      const rung = (rungs[k] ??= new Map());
      rung.set(index, mine);
      // promotable: fewer than max(1, ⌊n/η⌋) of the rung's values are strictly better than this one
      const keep = Math.max(1, Math.floor(rung.size / eta + 1e-9));
      let ahead = 0;
      for (const [j, v] of rung) if (j !== index && isBetter(v, mine)) ahead++;
      next.set(index, ++k);
      if (ahead >= keep) return true;
    }
    return false;
  };
}

function hyperband(r: number, eta: number, maxR: number, mode: 'min' | 'max'): Pruner {
  const sMax = Math.floor(Math.log(maxR / r) / Math.log(eta) + 1e-9);
  // bracket s (minimum early-stopping rate s) gets Hyperband's n for its s_max − s
  const weights = Array.from({ length: sMax + 1 }, (_, s) => Math.ceil(((sMax + 1) / (sMax - s + 1)) * eta ** (sMax - s)));
  const total = weights.reduce((a, b) => a + b, 0);
  const rules = weights.map((_, s) => halving(r, eta, s, maxR, mode));
  const dealt = weights.map(() => 0);
  const bracketOf = new Map<number, number>();
  return {
    start(index) {
      // deal in proportion to the weights: the bracket furthest behind its share of index + 1 trials
      let pick = 0;
      let gap = -Infinity;
      weights.forEach((w, s) => {
        const g = (w / total) * (bracketOf.size + 1) - dealt[s]!;
        if (g > gap + 1e-12) {
          gap = g;
          pick = s;
        }
      });
      dealt[pick]!++;
      bracketOf.set(index, pick);
      return pick;
    },
    prune: (index, reports) => rules[bracketOf.get(index)!]!(index, reports),
  };
}

function readOutcome(out: TrialOutcome): { value: number | null; steps: number | null; earlyStopped: boolean } {
  if (out === undefined || out === null) return { value: null, steps: null, earlyStopped: false };
  if (typeof out === 'number') return { value: out, steps: null, earlyStopped: false };
  if (typeof out === 'object' && 'value' in out && typeof out.value === 'number')
    return { value: out.value, steps: out.steps ?? null, earlyStopped: out.earlyStopped ?? false };
  if (typeof out === 'object' && 'bestValLoss' in out && 'reason' in out)
    return { value: out.bestValLoss, steps: out.step, earlyStopped: out.reason === 'early-stopped' };
  throw new Error(`search: run returned ${show(out)}; expected a number, { value }, or a train() result`);
}

/** @internal What {@link rankOrder} ranks: a trial, a PBT member. */
export interface Ranked {
  index: number;
  value: number | null;
}

/** @internal Compare two trials (or PBT members) for ranking in `mode` (finite values first, better first, then by index). */
export function rankOrder(mode: 'min' | 'max'): (a: Ranked, b: Ranked) => number {
  return (a, b) => {
    const fa = a.value !== null && Number.isFinite(a.value);
    const fb = b.value !== null && Number.isFinite(b.value);
    if (fa !== fb) return fa ? -1 : 1;
    if (fa && fb && a.value !== b.value) return mode === 'min' ? a.value! - b.value! : b.value! - a.value!;
    return a.index - b.index;
  };
}

/** @internal A number in at most 4 significant digits, in exponent form when very small or large. */
export function fmt(v: ParamValue | undefined): string {
  if (typeof v !== 'number') return v === undefined ? '' : String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e6)) return v.toExponential(3).replace(/\.?0+e/, 'e');
  return String(Number(v.toPrecision(4)));
}

/** The ranked trials as a Markdown table: rank, trial, each hyperparameter, the value, status, steps, seconds. */
export function searchTable(ranked: readonly Trial[], names: readonly string[], metricName = 'value'): string {
  const op = 'searchTable';
  if (!Array.isArray(ranked)) throw new Error(`${op}: ranked must be an array of trials, got ${show(ranked)}`);
  ranked.forEach((t, i) => {
    if (t === null || typeof t !== 'object' || typeof t.index !== 'number' || typeof t.seconds !== 'number' || t.config === null || typeof t.config !== 'object')
      throw new Error(`${op}: ranked[${i}] must be a trial (as search() returns), got ${show(t)}`);
  });
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string')) throw new Error(`${op}: names must be an array of strings, got ${show(names)}`);
  if (typeof metricName !== 'string') throw new Error(`${op}: metricName must be a string, got ${show(metricName)}`);
  const header = ['rank', 'trial', ...names, metricName, 'status', 'steps', 'seconds'];
  const rows = ranked.map((t, i) => [
    String(i + 1),
    String(t.index),
    ...names.map((n) => fmt(t.config[n])),
    t.value === null ? '—' : fmt(t.value),
    t.status + (t.prunedAt !== undefined ? ` at step ${fmt(t.prunedAt)}` : '') + (t.error ? ` (${t.error.replace(/\|/g, '\\|').replace(/\s+/g, ' ')})` : ''),
    t.steps === null ? '—' : String(t.steps),
    t.seconds.toFixed(1),
  ]);
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  const right = new Set([0, 1, 2 + names.length, header.length - 2, header.length - 1]); // numeric columns
  const sep = `|${header.map((_, i) => (right.has(i) ? ' ---: ' : ' --- ')).join('|')}|`;
  return [line(header), sep, ...rows.map(line)].join('\n');
}

/**
 * Run a hyperparameter search: build the configurations (grid or seeded random), run each
 * through `run` one after another, and rank them.
 *
 * @example
 * const { table, best } = await search({
 *   space: { lr: { type: 'logUniform', low: 1e-4, high: 1e-2 }, nLayer: [2, 4] },
 *   strategy: 'random', trials: 8, seed: 1, earlyStopping: { patience: 2 },
 *   run: (cfg, ctx) => train({ ...common(cfg), earlyStopping: ctx.earlyStopping!, signal: ctx.signal }),
 * });
 * console.log(table); // ranked by best validation loss
 */
export async function search(opts: SearchOptions): Promise<SearchResult> {
  if (!opts || typeof opts !== 'object') throw new Error(`search: expected { space, run(config, context) }, got ${show(opts)}`);
  checkKeys('search', opts, ['space', 'strategy', 'trials', 'seed', 'run', 'mode', 'earlyStopping', 'signal', 'onTrial', 'failFast', 'metricName', 'tpe', 'pruner']);
  if (typeof opts.run !== 'function') throw new Error(`search: run must be a function (config, context) => outcome, got ${show(opts.run)}`);
  const strategy = checkChoice('search', 'strategy', opts.strategy ?? 'grid', ['grid', 'random', 'tpe'] as const);
  const mode = checkChoice('search', 'mode', opts.mode ?? 'min', ['min', 'max'] as const);
  if (opts.trials !== undefined) checkNumber('search', 'trials', opts.trials, { integer: true, min: 1 });
  if (opts.seed !== undefined) checkNumber('search', 'seed', opts.seed, { integer: true, min: 0 });
  if (opts.failFast !== undefined) checkBoolean('search', 'failFast', opts.failFast);
  if (opts.metricName !== undefined && typeof opts.metricName !== 'string') throw new Error(`search: metricName must be a string, got ${show(opts.metricName)}`);
  if (opts.onTrial !== undefined && typeof opts.onTrial !== 'function') throw new Error(`search: onTrial must be a function, got ${show(opts.onTrial)}`);
  if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) throw new Error(`search: signal must be an AbortSignal, got ${show(opts.signal)}`);
  if (strategy !== 'grid' && opts.trials === undefined) throw new Error(`search: ${strategy} search needs trials (how many configurations to draw)`);
  if (opts.earlyStopping !== undefined) checkKeys('search: earlyStopping', opts.earlyStopping, ['patience', 'minDelta', 'stopOnNonFinite']);
  if (opts.earlyStopping !== undefined) asOp('search', () => new EarlyStopping({ ...opts.earlyStopping!, mode })); // validate before any trial runs
  const tpe = tpeOptions(opts.tpe, strategy);
  const pruner = prunerOptions(opts.pruner, mode);
  // grid and random configurations are known up front; TPE's come one at a time from the trials before
  const fixed = strategy === 'tpe' ? null : asOp('search', () => (strategy === 'grid' ? gridConfigs(opts.space).slice(0, opts.trials ?? Infinity) : randomConfigs(opts.space, opts.trials!, opts.seed ?? 0)));
  if (strategy === 'tpe') asOp('search', () => checkSpace('search', opts.space, 'random'));
  const total = fixed ? fixed.length : opts.trials!;
  const gen = new Generator(opts.seed ?? 0);
  const names = Object.keys(opts.space);
  const trials: Trial[] = [];
  let aborted = false;
  for (let index = 0; index < total; index++) {
    if (opts.signal?.aborted) {
      aborted = true;
      break;
    }
    const config = fixed ? fixed[index]! : tpeSuggest(opts.space, trials, gen, mode, tpe);
    const controller = new AbortController();
    const forward = (): void => controller.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', forward, { once: true });
    const earlyStopping = opts.earlyStopping ? new EarlyStopping({ ...opts.earlyStopping, mode }) : null;
    const reports: Trial['reports'] = [];
    let pruned = false;
    let prunedAt: number | undefined;
    const bracket = pruner?.start(index);
    const context: TrialContext = {
      index,
      signal: controller.signal,
      earlyStopping,
      report(value, step) {
        reports.push({ step: step ?? null, value });
        if (pruner && !pruned && pruner.prune(index, reports, trials)) {
          pruned = true;
          prunedAt = stepOf(reports, reports.length - 1);
        }
        return (earlyStopping ? earlyStopping.update(value, step ?? null) : false) || pruned;
      },
    };
    const t0 = performance.now();
    let trial: Trial;
    try {
      const out = readOutcome(await opts.run({ ...config }, context));
      let value = out.value;
      if (value === null && reports.length) {
        const finite = reports.map((r) => r.value).filter(Number.isFinite);
        value = finite.length ? (mode === 'min' ? Math.min(...finite) : Math.max(...finite)) : null;
      }
      const status: TrialStatus = controller.signal.aborted ? 'aborted' : pruned ? 'pruned' : out.earlyStopped || earlyStopping?.stopped ? 'early-stopped' : 'ok';
      trial = { index, config, value, status, steps: out.steps, reports, seconds: (performance.now() - t0) / 1000 };
      if (status === 'pruned') trial.prunedAt = prunedAt;
    } catch (e) {
      if (opts.failFast) throw e;
      trial = { index, config, value: null, status: 'failed', steps: null, reports, seconds: (performance.now() - t0) / 1000, error: (e as Error)?.message ?? String(e) };
    } finally {
      opts.signal?.removeEventListener('abort', forward);
    }
    if (bracket !== undefined) trial.bracket = bracket;
    trials.push(trial);
    await opts.onTrial?.(trial);
  }
  if (trials.length < total) aborted = true;
  const ranked = [...trials].sort(rankOrder(mode));
  const best = ranked[0] && ranked[0].value !== null && Number.isFinite(ranked[0].value) ? ranked[0] : null;
  return { trials, ranked, best, table: searchTable(ranked, names, opts.metricName), aborted };
}
