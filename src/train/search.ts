/**
 * Hyperparameter search: grid search (every combination of the listed values) and random search
 * (seeded draws from lists and ranges), running one short training per configuration through a
 * caller's `run(config, context)` and ranking the results. Each trial gets a fresh
 * {@link EarlyStopping} and an `AbortSignal`; a trial that stops early is kept and ranked by the
 * value it reached. Random draws come from kiln's Philox {@link Generator}, so a seed gives the
 * same configurations on every machine.
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

/** How a trial ended ('pruned': stopped by the search's pruner as worse than the median). */
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
}

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
   * Stop bad trials early (as Vizier's and Optuna's median rule): at a `report` from step
   * `warmupSteps` on, once `startupTrials` trials have finished, a trial whose best value so far is
   * worse than the median of the finished trials' best values up to the same step stops
   * (`report` returns true) and is marked 'pruned'.
   */
  pruner?: { type: 'median'; startupTrials?: number; warmupSteps?: number };
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

function checkSpace(op: string, space: SearchSpace, strategy: 'grid' | 'random'): [string, ParamSpec][] {
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
      throw new Error(`${op}: '${name}' must be a list of values or { type: 'uniform' | 'logUniform' | 'int', low, high }, got ${show(s)}`);
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
    entries.forEach(([name, spec], j) => {
      const x = u[i * k + j]!;
      if (Array.isArray(spec)) c[name] = spec[Math.min(spec.length - 1, Math.floor(x * spec.length))]!;
      else {
        const s = spec as Exclude<ParamSpec, readonly ParamValue[]>;
        if (s.type === 'uniform') c[name] = s.low + x * (s.high - s.low);
        else if (s.type === 'logUniform') c[name] = Math.exp(Math.log(s.low) + x * (Math.log(s.high) - Math.log(s.low)));
        else c[name] = Math.min(s.high, s.low + Math.floor(x * (s.high - s.low + 1)));
      }
    });
    return c;
  });
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

interface Pruner {
  startupTrials: number;
  warmupSteps: number;
}

function prunerOptions(o: SearchOptions['pruner']): Pruner | null {
  if (o === undefined) return null;
  if (o === null || typeof o !== 'object') throw new Error(`search: pruner must be { type: 'median', startupTrials?, warmupSteps? }, got ${show(o)}`);
  checkKeys('search: pruner', o, ['type', 'startupTrials', 'warmupSteps']);
  if (o.type !== 'median') throw new Error(`search: pruner.type must be 'median', got ${show(o.type)}`);
  return {
    startupTrials: o.startupTrials === undefined ? 3 : checkNumber('search', 'pruner.startupTrials', o.startupTrials, { integer: true, min: 1 }),
    warmupSteps: o.warmupSteps === undefined ? 0 : checkNumber('search', 'pruner.warmupSteps', o.warmupSteps, { integer: true, min: 0 }),
  };
}

// the median rule at this trial's latest report: its best so far against the median of the
// finished trials' best values reported up to the same step (the report's index when no step is given)
function shouldPrune(p: Pruner, reports: Trial['reports'], done: readonly Trial[], mode: 'min' | 'max'): boolean {
  const at = reports.length - 1;
  const step = reports[at]!.step ?? at;
  if (step < p.warmupSteps) return false;
  const better = (a: number, b: number): boolean => (mode === 'min' ? a < b : a > b);
  const bestUpTo = (rs: Trial['reports']): number | null => {
    let best: number | null = null;
    rs.forEach((r, i) => {
      if ((r.step ?? i) <= step && Number.isFinite(r.value) && (best === null || better(r.value, best))) best = r.value;
    });
    return best;
  };
  const others = done.map((t) => bestUpTo(t.reports)).filter((v): v is number => v !== null);
  if (others.length < p.startupTrials) return false;
  const sorted = others.sort((a, b) => a - b);
  const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
  const mine = bestUpTo(reports);
  return mine === null || better(median, mine);
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

/** Compare two trials for ranking in `mode` (finite values first, better first, then by index). */
function rankOrder(mode: 'min' | 'max'): (a: Trial, b: Trial) => number {
  return (a, b) => {
    const fa = a.value !== null && Number.isFinite(a.value);
    const fb = b.value !== null && Number.isFinite(b.value);
    if (fa !== fb) return fa ? -1 : 1;
    if (fa && fb && a.value !== b.value) return mode === 'min' ? a.value! - b.value! : b.value! - a.value!;
    return a.index - b.index;
  };
}

/** A number in at most 4 significant digits, in exponent form when very small or large. */
function fmt(v: ParamValue | undefined): string {
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
    t.status + (t.error ? ` (${t.error.replace(/\|/g, '\\|').replace(/\s+/g, ' ')})` : ''),
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
  const pruner = prunerOptions(opts.pruner);
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
    const context: TrialContext = {
      index,
      signal: controller.signal,
      earlyStopping,
      report(value, step) {
        reports.push({ step: step ?? null, value });
        if (pruner && !pruned && shouldPrune(pruner, reports, trials, mode)) pruned = true;
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
    } catch (e) {
      if (opts.failFast) throw e;
      trial = { index, config, value: null, status: 'failed', steps: null, reports, seconds: (performance.now() - t0) / 1000, error: (e as Error)?.message ?? String(e) };
    } finally {
      opts.signal?.removeEventListener('abort', forward);
    }
    trials.push(trial);
    await opts.onTrial?.(trial);
  }
  if (trials.length < total) aborted = true;
  const ranked = [...trials].sort(rankOrder(mode));
  const best = ranked[0] && ranked[0].value !== null && Number.isFinite(ranked[0].value) ? ranked[0] : null;
  return { trials, ranked, best, table: searchTable(ranked, names, opts.metricName), aborted };
}
