/**
 * Training callbacks: what the loop reports after each step, evaluation and checkpoint and at
 * the end, and {@link callAll}, which runs a list of callback objects in order. Any callback may
 * return a promise; the loop waits for it before going on.
 * @module
 */
import { checkChoice, show } from '../tensor/validate.js';

/** What `onStep` receives after each optimizer step. */
export interface StepInfo {
  /** Optimizer steps done, this one included (1 after the first step). */
  step: number;
  /** The step the run ends at. */
  totalSteps: number;
  /**
   * Mean training loss (nats per token) of the micro-batches of the steps since the previous
   * logged step, present at logged steps only (every `logEvery` steps, and the last): reading it
   * is a sync.
   */
  loss?: number;
  /** Learning rate this step used (parameter group 0). */
  lr: number;
  /** Mean total gradient norm before clipping over the same steps, when clipping is on (logged steps only). */
  gradNorm?: number;
  /** Tokens per second over the recent steps (a window of up to 20). */
  tokensPerSecond: number;
  /** Wall time of this step in milliseconds. */
  ms: number;
  /** Tokens this step trained on (batch × block × accumulation). */
  tokens: number;
  /** Seconds since the run (or the resumed run) started. */
  elapsed: number;
}

/** What `onEval` receives after each evaluation on the validation set. */
export interface EvalInfo {
  step: number;
  /** Token-weighted mean validation loss (nats per token). */
  valLoss: number;
  /** exp(valLoss). */
  perplexity: number;
  /** Tokens scored. */
  tokens: number;
  /** Whether this is the best validation loss so far. */
  improved: boolean;
  /** The best validation loss so far (this one included). */
  bestValLoss: number;
  /** Seconds the evaluation took. */
  seconds: number;
}

/** Why a checkpoint was written. */
export type CheckpointReason = 'interval' | 'end' | 'abort' | 'early-stop';

/** What `onCheckpoint` receives after a checkpoint is written. */
export interface CheckpointInfo {
  step: number;
  /** The file written. */
  path: string;
  reason: CheckpointReason;
  /** Seconds the save took. */
  seconds: number;
}

/** How a run ended. */
export type StopReason = 'completed' | 'aborted' | 'early-stopped';

/** What `onEnd` receives. */
export interface EndInfo {
  step: number;
  reason: StopReason;
  /** Seconds the run took (this process only, after a resume). */
  seconds: number;
}

/** Hooks into the training loop; every one is optional and may be async. */
export interface TrainCallbacks {
  /** Called once before the first step, with the step the run starts from (0, or the resumed step). */
  onStart?(info: { step: number; totalSteps: number; resumedFrom: string | null }): void | Promise<void>;
  onStep?(info: StepInfo): void | Promise<void>;
  onEval?(info: EvalInfo): void | Promise<void>;
  onCheckpoint?(info: CheckpointInfo): void | Promise<void>;
  onEnd?(info: EndInfo): void | Promise<void>;
}

/** The hooks of {@link TrainCallbacks}. */
const HOOKS: readonly (keyof TrainCallbacks)[] = ['onStart', 'onStep', 'onEval', 'onCheckpoint', 'onEnd'];

/** One callback object or several, as the loop and search take them. */
export type CallbackList = TrainCallbacks | readonly TrainCallbacks[] | undefined;

/** The list form of a {@link CallbackList}. */
export function callbackArray(cbs: CallbackList): TrainCallbacks[] {
  if (cbs === undefined) return [];
  const list = Array.isArray(cbs) ? [...(cbs as readonly TrainCallbacks[])] : [cbs as TrainCallbacks];
  list.forEach((c, i) => {
    if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new Error(`callbackArray: entry ${i} must be an object of hooks, got ${show(c)}`);
    // a callback may be a class instance with fields of its own: only the hooks are checked
    for (const k of HOOKS) {
      const v = (c as Record<string, unknown>)[k];
      if (v !== undefined && typeof v !== 'function') throw new Error(`callbackArray: hook ${k} of entry ${i} must be a function, got ${show(v)}`);
    }
  });
  return list;
}

/**
 * Call hook `name` of every callback object in order with `info`, awaiting each (so a hook
 * that writes a file finishes before the next step).
 *
 * @example
 * await callAll(callbackArray([logger, plotter]), 'onEval', info);
 */
export async function callAll<K extends keyof TrainCallbacks>(list: readonly TrainCallbacks[], name: K, info: Parameters<NonNullable<TrainCallbacks[K]>>[0]): Promise<void> {
  if (!Array.isArray(list)) throw new Error(`callAll: list must be an array of callback objects (see callbackArray), got ${show(list)}`);
  checkChoice('callAll', 'name', name, HOOKS);
  for (const cb of list) {
    const fn = cb[name] as ((i: typeof info) => void | Promise<void>) | undefined;
    if (fn) await fn.call(cb, info);
  }
}
