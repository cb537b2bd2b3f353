/**
 * Population-based training (Jaderberg et al. 2017, "Population Based Training of Neural
 * Networks"): a population of models trains in rounds of `interval` steps, each member with its
 * own hyperparameters. After every round but the last the members are ranked by the metric their
 * round ended with; each member of the bottom `fraction` (truncation selection) copies the weights
 * and optimizer state (exploit) and the hyperparameters of a member of the top `fraction` drawn
 * uniformly, then changes those hyperparameters (explore: each is multiplied by a factor drawn
 * from `perturb`, 0.8 or 1.2 by default, or, with probability `resample`, drawn afresh from the
 * space). The population thus follows a schedule of hyperparameters rather than one fixed value.
 *
 * Members train one after another through the caller's `train`; the initial hyperparameters are
 * {@link randomConfigs} of the seed, and every later draw continues the same Philox stream, so a
 * seed gives the same run everywhere.
 * @module
 */
import { Module } from '../nn/module.js';
import { Optimizer, type OptimizerOptions } from '../optim/optimizer.js';
import { Generator } from '../tensor/random.js';
import { checkChoice, checkKeys, checkNumber, show } from '../tensor/validate.js';
import { checkSpace, drawValue, fmt, rankOrder, type ParamSpec, type ParamValue, type SearchConfig, type SearchSpace } from './search.js';

/** What {@link PBTOptions.train} receives besides the member's state and hyperparameters. */
export interface PBTContext {
  /** The member's index in the population, from 0. */
  member: number;
  /** The round, from 0. */
  round: number;
  /** Steps the member's weights have trained before this round (round · interval). */
  step: number;
  /** Steps to train in this round: the `interval`. */
  steps: number;
  /** The search's signal (never fires when none was given): finish quickly. */
  signal: AbortSignal;
}

/** One round of one member. */
export interface PBTRecord {
  round: number;
  /** The hyperparameters the member trained with in this round. */
  hparams: SearchConfig;
  /**
   * The member whose weights and hyperparameters this member took before this round (the exploit
   * after the round before), or null when it went on with its own.
   */
  copiedFrom: number | null;
  /** The metric `train` returned at the end of the round (NaN and ±∞ rank last). */
  value: number;
}

/** A member of the population, as {@link pbt} returns it. */
export interface PBTMember<S> {
  index: number;
  /** The hyperparameters of its last round. */
  hparams: SearchConfig;
  /** The metric of its last round. */
  value: number | null;
  /** Every round it trained, in order. */
  history: PBTRecord[];
  /** Its state (model, optimizer, …) as `init` made it and training left it; the caller disposes it. */
  state: S;
}

/**
 * A member's state when `save` and `load` are not given: a kiln module and optionally its
 * optimizer. Exploit then copies the source's parameters, buffers and optimizer state (moments,
 * step counts) into the member's own tensors in memory.
 */
export interface PBTModelState {
  model: Module;
  optimizer?: Optimizer<OptimizerOptions>;
}

/** Options of {@link pbt}. */
export interface PBTOptions<S> {
  /** The hyperparameters: lists of values or ranges, as {@link SearchSpace}. */
  space: SearchSpace;
  /** Members in the population (at least 2). */
  population: number;
  /** Rounds of training; members exploit and explore after every round but the last. */
  rounds: number;
  /** Steps per round, passed to `train` as `context.steps`. */
  interval: number;
  /** Make member `member`'s state (its model, optimizer, data order) for its first hyperparameters. */
  init(hparams: SearchConfig, member: number): S | Promise<S>;
  /**
   * Train the member for `context.steps` steps with `hparams` (apply them first: set the
   * optimizer's `paramGroups[i].lr`, since exploit also copies the source's optimizer options),
   * and return the metric to rank by, such as a validation loss.
   */
  train(state: S, hparams: SearchConfig, context: PBTContext): number | Promise<number>;
  /**
   * A checkpoint of `state` to copy from: a state dict in memory, or a path of a file it wrote.
   * Without `save` and `load`, states must be {@link PBTModelState}s and are copied in memory.
   */
  save?(state: S): unknown;
  /** Load a checkpoint that `save` made from another member into `state`. */
  load?(state: S, checkpoint: unknown): void | Promise<void>;
  /** Whether lower (`'min'`, default) or higher values are better. */
  mode?: 'min' | 'max';
  /** Seed of every draw (initial hyperparameters, whom to copy, how to explore); 0 by default. */
  seed?: number;
  /**
   * The truncation fraction: the bottom ⌊fraction·N⌋ members (at least 1) copy from the top as
   * many; in [0, 0.5], 0.25 by default. 0 turns exploit and explore off (the members train
   * independently with their first hyperparameters: the baseline PBT is compared with).
   */
  fraction?: number;
  /** Factors a numeric hyperparameter is multiplied by, one drawn uniformly; [0.8, 1.2] by default. */
  perturb?: readonly number[];
  /** The probability that explore draws a hyperparameter afresh from the space; 0.25 by default. */
  resample?: number;
  /** Stops the run after the member training now; the result says `aborted`. */
  signal?: AbortSignal;
  /** Called after each round, with the members ranked best first (after exploit and explore). */
  onRound?(round: number, ranked: readonly PBTMember<S>[]): void | Promise<void>;
}

/** What {@link pbt} returns. */
export interface PBTResult<S> {
  /** The members by index. */
  members: PBTMember<S>[];
  /** The members best first by their last value (finite first, then by index). */
  ranked: PBTMember<S>[];
  /** The best member, or null when no member has a finite value. */
  best: PBTMember<S> | null;
  /**
   * The hyperparameter schedule behind the best member's weights: for each round, the member
   * whose weights the lineage trained then and its hyperparameters (following `copiedFrom` back).
   */
  schedule: { round: number; member: number; hparams: SearchConfig }[];
  /** Rounds every member finished. */
  rounds: number;
  /** The ranked members as a Markdown table: rank, member, each hyperparameter, the value, copies. */
  table: string;
  aborted: boolean;
}

type Range = Exclude<ParamSpec, readonly ParamValue[]>;

// explore one hyperparameter from `v`: a range multiplies by a factor (clipped to the range, an int
// rounded), a list steps to a neighbouring entry (the factor below 1: the one before, else after)
function perturbValue(spec: ParamSpec, v: ParamValue, factor: number): ParamValue {
  if (Array.isArray(spec)) {
    const i = spec.indexOf(v);
    if (i < 0) return v;
    return spec[Math.min(spec.length - 1, Math.max(0, factor < 1 ? i - 1 : i + 1))]!;
  }
  const s = spec as Range;
  const x = Math.min(s.high, Math.max(s.low, (v as number) * factor));
  return s.type === 'int' ? Math.min(s.high, Math.max(s.low, Math.round(x))) : x;
}

function isModelState(s: unknown): s is PBTModelState {
  return s !== null && typeof s === 'object' && (s as PBTModelState).model instanceof Module && ((s as PBTModelState).optimizer === undefined || (s as PBTModelState).optimizer instanceof Optimizer);
}

// copy a kiln model and optimizer: into the target's own tensors (copy_), so its optimizer stays valid
function copyModelState(op: string, target: PBTModelState, source: PBTModelState): void {
  target.model.loadStateDict(source.model.stateDict());
  if (target.optimizer && source.optimizer) target.optimizer.loadStateDict(source.optimizer.stateDict());
  else if (target.optimizer || source.optimizer) throw new Error(`${op}: one member's state has an optimizer and another's none`);
}

/**
 * Run population-based training.
 *
 * @example
 * // each member: a model and its optimizer; train() runs `steps` steps and returns a validation loss
 * const { best, schedule } = await pbt({
 *   space: { lr: { type: 'logUniform', low: 1e-4, high: 1e-1 } },
 *   population: 8, rounds: 20, interval: 50, seed: 1,
 *   init: (hp, i) => { const model = makeModel(i); return { model, optimizer: new AdamW(model.parameters(), { lr: hp.lr as number }) }; },
 *   train: async ({ model, optimizer }, hp, ctx) => {
 *     optimizer!.paramGroups[0]!.lr = hp.lr as number;
 *     for (let s = 0; s < ctx.steps; s++) trainStep(model, optimizer!);
 *     return evalLoss(model);
 *   },
 * });
 */
export async function pbt<S>(opts: PBTOptions<S>): Promise<PBTResult<S>> {
  const op = 'pbt';
  if (!opts || typeof opts !== 'object') throw new Error(`${op}: expected { space, population, rounds, interval, init, train }, got ${show(opts)}`);
  checkKeys(op, opts, ['space', 'population', 'rounds', 'interval', 'init', 'train', 'save', 'load', 'mode', 'seed', 'fraction', 'perturb', 'resample', 'signal', 'onRound']);
  const entries = checkSpace(op, opts.space, 'random');
  const population = checkNumber(op, 'population', opts.population, { integer: true, min: 2 });
  const rounds = checkNumber(op, 'rounds', opts.rounds, { integer: true, min: 1 });
  const interval = checkNumber(op, 'interval', opts.interval, { integer: true, min: 1 });
  for (const key of ['init', 'train'] as const)
    if (typeof opts[key] !== 'function') throw new Error(`${op}: ${key} must be a function, got ${show(opts[key])}`);
  for (const key of ['save', 'load', 'onRound'] as const)
    if (opts[key] !== undefined && typeof opts[key] !== 'function') throw new Error(`${op}: ${key} must be a function, got ${show(opts[key])}`);
  if ((opts.save === undefined) !== (opts.load === undefined)) throw new Error(`${op}: save and load go together, got ${opts.save ? 'save' : 'load'} alone`);
  const mode = checkChoice(op, 'mode', opts.mode ?? 'min', ['min', 'max'] as const);
  const seed = opts.seed === undefined ? 0 : checkNumber(op, 'seed', opts.seed, { integer: true, min: 0 });
  const fraction = opts.fraction === undefined ? 0.25 : checkNumber(op, 'fraction', opts.fraction, { min: 0, max: 0.5 });
  const resample = opts.resample === undefined ? 0.25 : checkNumber(op, 'resample', opts.resample, { min: 0, max: 1 });
  const perturb = opts.perturb ?? [0.8, 1.2];
  if (!Array.isArray(perturb) || perturb.length === 0) throw new Error(`${op}: perturb must be a non-empty array of factors > 0, got ${show(perturb)}`);
  perturb.forEach((f, i) => checkNumber(op, `perturb[${i}]`, f, { min: 0, minExclusive: true }));
  if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) throw new Error(`${op}: signal must be an AbortSignal, got ${show(opts.signal)}`);
  const signal = opts.signal ?? new AbortController().signal;

  // the first hyperparameters are randomConfigs(space, population, seed); later draws continue the stream
  const gen = new Generator(seed);
  const k = entries.length;
  const first = gen.draw(population * k, { kind: 'uniform', low: 0, high: 1 });
  const buffer: number[] = [];
  const u = (): number => {
    if (buffer.length === 0) buffer.push(...Array.from(gen.draw(64, { kind: 'uniform', low: 0, high: 1 })).reverse());
    return buffer.pop()!;
  };

  const members: PBTMember<S>[] = [];
  for (let i = 0; i < population; i++) {
    const hparams: SearchConfig = {};
    entries.forEach(([name, spec], j) => (hparams[name] = drawValue(spec, first[i * k + j]!)));
    const state = await opts.init({ ...hparams }, i);
    if (!opts.save && !isModelState(state))
      throw new Error(`${op}: without save and load, init must return { model: Module, optimizer?: Optimizer }, got ${show(state)} for member ${i}`);
    members.push({ index: i, hparams, value: null, history: [], state });
  }
  const save = opts.save ? (s: S) => opts.save!(s) : (s: S) => s;
  const load = opts.load
    ? (s: S, c: unknown) => opts.load!(s, c)
    : (s: S, c: unknown) => copyModelState(op, s as PBTModelState, c as PBTModelState);

  let nextCopied: (number | null)[] = members.map(() => null);
  let done = 0;
  let aborted = false;
  for (let round = 0; round < rounds && !aborted; round++) {
    for (const m of members) {
      if (signal.aborted) {
        aborted = true;
        break;
      }
      const hparams = { ...m.hparams };
      const value = await opts.train(m.state, { ...hparams }, { member: m.index, round, step: round * interval, steps: interval, signal });
      if (typeof value !== 'number') throw new Error(`${op}: train must return the member's metric as a number, got ${show(value)} from member ${m.index} in round ${round}`);
      m.value = value;
      m.history.push({ round, hparams, copiedFrom: nextCopied[m.index]!, value });
    }
    if (aborted) break;
    done = round + 1;
    nextCopied = members.map(() => null);
    const ranked = [...members].sort(rankOrder(mode));
    if (fraction > 0 && round < rounds - 1) {
      const n = Math.max(1, Math.floor(fraction * population + 1e-9));
      const top = ranked.slice(0, n);
      for (const m of ranked.slice(population - n)) {
        // exploit: truncation selection, a uniformly drawn member of the top
        const src = top[Math.min(n - 1, Math.floor(u() * n))]!;
        await load(m.state, await save(src.state));
        // explore: perturb each hyperparameter, or with probability `resample` draw it afresh
        const hparams: SearchConfig = {};
        for (const [name, spec] of entries) {
          const coin = u();
          const x = u();
          hparams[name] = coin < resample ? drawValue(spec, x) : perturbValue(spec, src.hparams[name]!, perturb[Math.min(perturb.length - 1, Math.floor(x * perturb.length))]!);
        }
        m.hparams = hparams;
        nextCopied[m.index] = src.index;
      }
    }
    await opts.onRound?.(round, ranked);
  }

  const ranked = [...members].sort(rankOrder(mode));
  const best = ranked[0] && ranked[0].value !== null && Number.isFinite(ranked[0].value) ? ranked[0] : null;
  const schedule: PBTResult<S>['schedule'] = [];
  if (best) {
    let who = best.index;
    for (let r = best.history.length - 1; r >= 0; r--) {
      const rec = members[who]!.history[r]!;
      schedule.unshift({ round: r, member: who, hparams: rec.hparams });
      if (rec.copiedFrom !== null) who = rec.copiedFrom;
    }
  }
  return { members, ranked, best, schedule, rounds: done, table: pbtTable(ranked, entries.map(([n]) => n)), aborted };
}

function pbtTable<S>(ranked: readonly PBTMember<S>[], names: readonly string[]): string {
  const header = ['rank', 'member', ...names, 'value', 'copies'];
  const rows = ranked.map((m, i) => [
    String(i + 1),
    String(m.index),
    ...names.map((n) => fmt(m.hparams[n])),
    m.value === null ? '—' : fmt(m.value),
    String(m.history.filter((h) => h.copiedFrom !== null).length),
  ]);
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  const sep = `|${header.map((_, i) => (i < 2 || i >= 2 + names.length ? ' ---: ' : ' --- ')).join('|')}|`;
  return [line(header), sep, ...rows.map(line)].join('\n');
}
