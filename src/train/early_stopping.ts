/**
 * Early stopping on a validation metric: stop once the metric has not improved by more than
 * `minDelta` for `patience` evaluations in a row (the rule of Keras' `EarlyStopping` and
 * PyTorch Lightning's callback of the same name). A NaN or infinite value stops at once: a
 * diverged run does not recover by waiting.
 * @module
 */
import { describeJSON } from '../io/describe.js';
import { checkBoolean, checkChoice, checkKeys, checkNumber, show } from '../tensor/validate.js';

/** Options of {@link EarlyStopping}. */
export interface EarlyStoppingOptions {
  /** Evaluations without improvement before stopping (≥ 1). */
  patience: number;
  /** How much better than the best so far a value must be to count as an improvement (≥ 0; default 0). */
  minDelta?: number;
  /** `'min'` (default) when lower is better (a loss), `'max'` when higher is better (an accuracy). */
  mode?: 'min' | 'max';
  /** Stop at once on a NaN or infinite value (default true). */
  stopOnNonFinite?: boolean;
}

/** The state of an {@link EarlyStopping}, as plain JSON (checkpoints keep it). */
export interface EarlyStoppingState {
  best: number | null;
  bestStep: number | null;
  /** Evaluations since the last improvement. */
  wait: number;
  stopped: boolean;
  /** Why it stopped: `'patience'` or `'non-finite'`; null while running. */
  reason: 'patience' | 'non-finite' | null;
}

/**
 * Tracks the best value of a metric and says when to stop.
 *
 * @example
 * const stopper = new EarlyStopping({ patience: 3, minDelta: 1e-3 });
 * for (const step of evalSteps) {
 *   if (stopper.update(await validationLoss(), step)) break; // no improvement for 3 evaluations
 * }
 * stopper.best; // the lowest loss seen, at stopper.bestStep
 */
export class EarlyStopping {
  /** Evaluations without improvement that end the run. */
  readonly patience: number;
  /** The margin an improvement must beat. */
  readonly minDelta: number;
  /** Whether lower or higher is better. */
  readonly mode: 'min' | 'max';
  /** Whether a non-finite value stops at once. */
  readonly stopOnNonFinite: boolean;
  private state: EarlyStoppingState = { best: null, bestStep: null, wait: 0, stopped: false, reason: null };

  constructor(opts: EarlyStoppingOptions) {
    const op = 'EarlyStopping';
    if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { patience, minDelta?, mode?, stopOnNonFinite? }, got ${show(opts)}`);
    checkKeys(op, opts, ['patience', 'minDelta', 'mode', 'stopOnNonFinite']);
    const { patience, minDelta = 0, mode = 'min', stopOnNonFinite = true } = opts;
    checkNumber(op, 'patience', patience, { integer: true, min: 1 });
    checkNumber(op, 'minDelta', minDelta, { min: 0 });
    checkChoice(op, 'mode', mode, ['min', 'max'] as const);
    checkBoolean(op, 'stopOnNonFinite', stopOnNonFinite);
    this.patience = patience;
    this.minDelta = minDelta;
    this.mode = mode;
    this.stopOnNonFinite = stopOnNonFinite;
  }

  /** The best value seen so far (null before the first update). */
  get best(): number | null {
    return this.state.best;
  }

  /** The step of the best value (what was passed to {@link update} with it). */
  get bestStep(): number | null {
    return this.state.bestStep;
  }

  /** Evaluations since the last improvement. */
  get wait(): number {
    return this.state.wait;
  }

  /** Whether the rule has fired. */
  get stopped(): boolean {
    return this.state.stopped;
  }

  /** Why it stopped, or null. */
  get reason(): EarlyStoppingState['reason'] {
    return this.state.reason;
  }

  /**
   * Whether `value` improves on the best so far: `value < best − minDelta` in `'min'` mode,
   * `value > best + minDelta` in `'max'` mode; any finite value improves on nothing.
   */
  isImprovement(value: number): boolean {
    if (typeof value !== 'number') throw new Error(`EarlyStopping.isImprovement: value must be a number, got ${show(value)}`);
    if (!Number.isFinite(value)) return false;
    const best = this.state.best;
    if (best === null) return true;
    return this.mode === 'min' ? value < best - this.minDelta : value > best + this.minDelta;
  }

  /**
   * Record one evaluation and return whether to stop. Once stopped it stays stopped (and keeps
   * returning true) until {@link reset}.
   */
  update(value: number, step: number | null = null): boolean {
    if (typeof value !== 'number') throw new Error(`EarlyStopping.update: value must be a number, got ${show(value)}`);
    if (step !== null) checkNumber('EarlyStopping.update', 'step', step);
    const s = this.state;
    if (s.stopped) return true;
    if (this.isImprovement(value)) {
      s.best = value;
      s.bestStep = step;
      s.wait = 0;
      return false;
    }
    if (!Number.isFinite(value) && this.stopOnNonFinite) {
      s.stopped = true;
      s.reason = 'non-finite';
      return true;
    }
    s.wait++;
    if (s.wait >= this.patience) {
      s.stopped = true;
      s.reason = 'patience';
    }
    return s.stopped;
  }

  /** Forget everything seen. */
  reset(): void {
    this.state = { best: null, bestStep: null, wait: 0, stopped: false, reason: null };
  }

  /** The state as JSON. */
  stateDict(): EarlyStoppingState {
    return { ...this.state };
  }

  /** Restore a state saved by {@link stateDict}. */
  loadStateDict(s: EarlyStoppingState): void {
    const ok =
      !!s &&
      typeof s === 'object' &&
      (s.best === null || typeof s.best === 'number') &&
      (s.bestStep === null || typeof s.bestStep === 'number') &&
      Number.isInteger(s.wait) &&
      s.wait >= 0 &&
      typeof s.stopped === 'boolean' &&
      (s.reason === undefined || s.reason === null || s.reason === 'patience' || s.reason === 'non-finite');
    if (!ok) throw new Error(`EarlyStopping.loadStateDict: malformed state ${describeJSON(s)} (expected { best, bestStep, wait, stopped, reason })`);
    this.state = { best: s.best, bestStep: s.bestStep, wait: s.wait, stopped: s.stopped, reason: s.reason ?? null };
  }
}
