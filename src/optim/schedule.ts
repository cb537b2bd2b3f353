/**
 * Learning-rate schedules. A {@link Schedule} is a pure function from the step number t
 * (0 for the first optimizer step) and a group's base rate to that group's rate at step t;
 * {@link LRScheduler} applies one to any optimizer's parameter groups.
 *
 * Warm-up is linear and never starts at 0: during the first W steps the rate is
 * base·(t+1)/W, reaching base at t = W−1.
 * @module
 */

import { checkKeys, checkNumber, show } from '../tensor/validate.js';

/** The learning rate at step `t` (0-based) for a group whose base rate is `baseLr`. */
export type Schedule = (t: number, baseLr: number) => number;

function check(name: string, ok: boolean, message: string): void {
  if (!ok) throw new Error(`${name}: ${message}`);
}

const COUNT = { integer: true, min: 0 } as const;

/** The base rate at every step. */
export function constantLr(): Schedule {
  return (_t, base) => base;
}

/**
 * Linear warm-up over `warmupSteps`, then `after` (constant by default), which sees the step
 * count since the end of warm-up: t < W gives base·(t+1)/W, else after(t − W, base).
 */
export function linearWarmupLr(warmupSteps: number, after: Schedule = constantLr()): Schedule {
  checkNumber('linearWarmupLr', 'warmupSteps', warmupSteps, COUNT);
  check('linearWarmupLr', typeof after === 'function', `after must be a schedule function, got ${show(after)}`);
  return (t, base) => (t < warmupSteps ? (base * (t + 1)) / warmupSteps : after(t - warmupSteps, base));
}

/** Options of the decaying schedules. */
export interface DecayOptions {
  /** Steps of linear warm-up before the decay starts (default 0). */
  warmupSteps?: number;
  /** The step at which the decay ends (counted from 0, warm-up included). */
  totalSteps: number;
  /** The floor the rate decays to and then stays at (default 0). */
  minLr?: number;
}

function decayArgs(name: string, o: DecayOptions): [number, number, number] {
  check(name, o !== null && typeof o === 'object' && !Array.isArray(o), `options must be an object with totalSteps, got ${show(o)}`);
  checkKeys(name, o, ['warmupSteps', 'totalSteps', 'minLr']);
  const w = o.warmupSteps ?? 0;
  const minLr = o.minLr ?? 0;
  checkNumber(name, 'warmupSteps', w, COUNT);
  checkNumber(name, 'totalSteps', o.totalSteps, { integer: true, min: w });
  checkNumber(name, 'minLr', minLr, { min: 0 });
  return [w, o.totalSteps - w, minLr];
}

/**
 * Linear warm-up, then cosine decay to `minLr` at `totalSteps`, then `minLr`:
 * with s = t − W and D = totalSteps − W, lr = minLr + (base − minLr)·½(1 + cos(π·s/D)) for s < D.
 *
 * @example
 * const sched = new LRScheduler(opt, cosineLr({ warmupSteps: 100, totalSteps: 5000, minLr: 3e-5 }));
 */
export function cosineLr(o: DecayOptions): Schedule {
  const [w, d, minLr] = decayArgs('cosineLr', o);
  return linearWarmupLr(w, (s, base) => (s >= d ? minLr : minLr + (base - minLr) * 0.5 * (1 + Math.cos((Math.PI * s) / d))));
}

/**
 * Linear warm-up, then linear decay to `minLr` at `totalSteps`, then `minLr`:
 * lr = minLr + (base − minLr)·(1 − s/D) for s = t − W < D = totalSteps − W.
 */
export function linearDecayLr(o: DecayOptions): Schedule {
  const [w, d, minLr] = decayArgs('linearDecayLr', o);
  return linearWarmupLr(w, (s, base) => (s >= d ? minLr : minLr + (base - minLr) * (1 - s / d)));
}

/** Multiply by `gamma` every `stepSize` steps: lr = base·γ^⌊t/stepSize⌋ (PyTorch's StepLR). */
export function stepLr(stepSize: number, gamma = 0.1): Schedule {
  checkNumber('stepLr', 'stepSize', stepSize, { integer: true, min: 1 });
  checkNumber('stepLr', 'gamma', gamma, { min: 0 });
  return (t, base) => base * gamma ** Math.floor(t / stepSize);
}

/**
 * Linear warm-up, then decay with the inverse square root of the step (as in "Attention is all
 * you need" and fairseq): lr = base·(t+1)/W for t < W, then base·√(W/(t+1)); with W = 0,
 * base/√(t+1).
 */
export function inverseSqrtLr(warmupSteps = 0): Schedule {
  checkNumber('inverseSqrtLr', 'warmupSteps', warmupSteps, COUNT);
  const w = Math.max(warmupSteps, 1);
  return linearWarmupLr(warmupSteps, (s, base) => base * Math.sqrt(w / (s + warmupSteps + 1)));
}

/** What {@link LRScheduler} needs of an optimizer: groups with a writable `lr`. */
export interface HasParamGroups {
  paramGroups: { lr: number }[];
}

/** What {@link LRScheduler.stateDict} returns: plain JSON. */
export interface SchedulerStateDict {
  /** The step number whose rate is applied now. */
  step: number;
  /** Each group's base rate. */
  baseLrs: number[];
}

/**
 * Sets every parameter group's learning rate from its base rate and a {@link Schedule}.
 * The rate of step 0 is applied on construction; call `step()` after each `optimizer.step()`.
 *
 * @example
 * const sched = new LRScheduler(opt, cosineLr({ warmupSteps: 100, totalSteps: 5000 }));
 * for (...) { loss.backward(); opt.step(); opt.zeroGrad(); sched.step(); }
 */
export class LRScheduler {
  /** Each group's base rate (its `lr` when the scheduler was made, unless given). */
  readonly baseLrs: number[];
  private _step = 0;

  /**
   * @param optimizer any optimizer (anything with `paramGroups[i].lr`)
   * @param schedule the rate as a function of the step and base rate
   * @param opts `baseLrs`: base rates instead of the groups' current rates
   */
  constructor(
    readonly optimizer: HasParamGroups,
    readonly schedule: Schedule,
    opts: { baseLrs?: number[] } = {},
  ) {
    const op = 'LRScheduler';
    const groups = optimizer !== null && typeof optimizer === 'object' ? optimizer.paramGroups : undefined;
    check(op, Array.isArray(groups), `expected an optimizer with paramGroups, got ${show(optimizer)}`);
    check(op, typeof schedule === 'function', `expected a schedule function, got ${show(schedule)}`);
    checkKeys(op, opts, ['baseLrs']);
    const given = opts?.baseLrs;
    if (given !== undefined) {
      check(op, Array.isArray(given), `baseLrs must be an array of rates, got ${show(given)}`);
      given.forEach((lr, i) => checkNumber(op, `baseLrs[${i}]`, lr, { min: 0 }));
    }
    this.baseLrs = [...(given ?? groups!.map((g) => g.lr))];
    check(op, this.baseLrs.length === groups!.length, `got ${this.baseLrs.length} base rates for ${groups!.length} parameter groups`);
    this.apply();
  }

  /** The step number whose rate is applied now (0 before the first `step()`). */
  get stepCount(): number {
    return this._step;
  }

  /** The rate of group `group` at step `t`. */
  lr(t: number, group = 0): number {
    return this.rate('LRScheduler.lr', t, group);
  }

  /** The rates of every group at step `t`. */
  lrs(t = this._step): number[] {
    return this.baseLrs.map((_, i) => this.rate('LRScheduler.lrs', t, i));
  }

  // the rate of `group` at step `t`, for the public method `op`; what the schedule gives is checked
  private rate(op: string, t: number, group: number): number {
    checkNumber(op, 'step', t, COUNT);
    checkNumber(op, 'group', group, { integer: true });
    const base = this.baseLrs[group];
    check(op, base !== undefined, `no parameter group ${group} (${this.baseLrs.length} groups)`);
    const lr = this.schedule(t, base!);
    if (typeof lr !== 'number' || !(lr >= 0) || lr === Infinity)
      throw new Error(`${op}: the schedule gave ${show(lr)} at step ${t} (base rate ${base}); a rate must be a finite number ≥ 0`);
    return lr;
  }

  /** Advance one step and set the groups' rates for it. */
  step(): void {
    this._step++;
    try {
      this.apply('LRScheduler.step');
    } catch (e) {
      this._step--;
      throw e;
    }
  }

  /** The step count and base rates (plain JSON). */
  stateDict(): SchedulerStateDict {
    return { step: this._step, baseLrs: [...this.baseLrs] };
  }

  /** Restore a saved step count and base rates, and set the groups' rates for that step. */
  loadStateDict(s: SchedulerStateDict): void {
    const op = 'LRScheduler.loadStateDict';
    check(op, s !== null && typeof s === 'object' && !Array.isArray(s), `expected { step, baseLrs }, got ${show(s)}`);
    check(op, Number.isSafeInteger(s.step) && s.step >= 0, `bad step ${show(s.step)}`);
    check(
      op,
      Array.isArray(s.baseLrs) && s.baseLrs.length === this.baseLrs.length && s.baseLrs.every((x) => typeof x === 'number' && x >= 0 && x !== Infinity),
      `expected ${this.baseLrs.length} base rates (numbers ≥ 0), got ${show(s.baseLrs)}`,
    );
    const [oldLrs, oldStep] = [[...this.baseLrs], this._step];
    this.baseLrs.splice(0, this.baseLrs.length, ...s.baseLrs);
    this._step = s.step;
    try {
      this.apply(op);
    } catch (e) {
      this.baseLrs.splice(0, this.baseLrs.length, ...oldLrs);
      this._step = oldStep;
      throw e;
    }
  }

  private apply(op = 'LRScheduler'): void {
    const groups = this.optimizer.paramGroups;
    check(op, groups.length === this.baseLrs.length, `the optimizer has ${groups.length} groups, the scheduler ${this.baseLrs.length}`);
    const rates = this.baseLrs.map((_, i) => this.rate(op, this._step, i));
    groups.forEach((g, i) => (g.lr = rates[i]!));
  }
}
