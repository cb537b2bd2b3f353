/**
 * Checkpoint averaging (fairseq's `scripts/average_checkpoints.py`, the "last N checkpoints"
 * trick of Vaswani et al.): the element-wise (weighted) mean of the model weights of several
 * checkpoints written by `saveCheckpoint`, into a state dict, a model, or a new checkpoint file
 * written atomically. Each file is read with `loadCheckpoint`, so its format and checksum are
 * checked as for a resume. Node-only: it reads and writes files.
 * @module
 */
import { backendFor } from '../backend/registry.js';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkKeys, checkNumber, show } from '../tensor/validate.js';
import { WeightedSum, normalisedWeights } from './federated.js';

/** Options of {@link averageCheckpoints}. */
export interface AverageCheckpointsOptions {
  /** One weight ≥ 0 per checkpoint (normalised to sum to 1); equal by default. */
  weights?: readonly number[];
  /** Backend the tensors are read onto and averaged on (the default backend by default). */
  backend?: string;
}

/** Options of {@link saveAveragedCheckpoint}: those of {@link averageCheckpoints} and the new file's step and extra JSON. */
export interface SaveAveragedCheckpointOptions extends AverageCheckpointsOptions {
  /** The step recorded in the new checkpoint: the largest of the inputs' by default. */
  step?: number;
  /** JSON kept in the new checkpoint under `extra.user` (next to `extra.averagedFrom`, the inputs and their steps). */
  extra?: unknown;
}

/** What {@link averageCheckpoints} returns. */
export interface AveragedCheckpoint {
  /** The averaged model state, by name: new tensors (f32 sums cast back to each entry's dtype) the caller owns. */
  state: Record<string, Tensor>;
  /** Each input's step, in the order given. */
  steps: number[];
  /** The files read (resolved, as `loadCheckpoint` reports them). */
  paths: string[];
}

const AVERAGE_KEYS = ['weights', 'backend'] as const;

function checkPaths(op: string, paths: unknown): string[] {
  if (!Array.isArray(paths) || paths.length === 0) throw new Error(`${op}: paths must be a non-empty array of checkpoint paths, got ${show(paths)}`);
  paths.forEach((p, i) => {
    if (typeof p !== 'string' || p === '') throw new Error(`${op}: paths[${i}] must be a checkpoint's path, got ${show(p)}`);
  });
  return paths as string[];
}

function checkAverageOptions(op: string, opts: unknown, n: number, keys: readonly string[]): { weights: number[]; backend: string | undefined } {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: options must be an object, got ${show(opts)}`);
  checkKeys(op, opts, keys);
  const o = opts as AverageCheckpointsOptions;
  const weights = normalisedWeights(op, 'weights', o.weights, n, 'checkpoints');
  if (o.backend !== undefined) {
    if (typeof o.backend !== 'string') throw new Error(`${op}: backend must be a backend's name, got ${show(o.backend)}`);
    backendFor(op, o.backend);
  }
  return { weights, backend: o.backend };
}

/**
 * Read every checkpoint's model state and add `wᵢ · xᵢ` to one {@link WeightedSum} (f32, f64 for
 * f64 entries, on the device). Floating entries are averaged; others (integer buffers) are taken
 * from the first file. Every file must hold the same names and shapes.
 */
async function average(op: string, paths: string[], weights: number[], backend: string | undefined): Promise<AveragedCheckpoint> {
  const sum = new WeightedSum('the first checkpoint');
  const steps: number[] = [];
  const files: string[] = [];
  let index = 0;
  // a loadCheckpoint target that adds what it is given (loadCheckpoint frees the tensors after)
  const collector = {
    stateDict: (): Record<string, Tensor> => ({}),
    loadStateDict: (state: Record<string, Tensor>): void => sum.add(state, weights[index]!),
  };
  try {
    for (; index < paths.length; index++) {
      let loaded;
      try {
        loaded = await loadCheckpoint(paths[index]!, { model: collector, ...(backend ? { backend } : {}) });
      } catch (e) {
        const msg = String((e as Error)?.message ?? e).replace(/^loadCheckpoint: /, '');
        throw new Error(`${op}: paths[${index}]: ${msg}`);
      }
      steps.push(loaded.step);
      files.push(loaded.path);
    }
    return { state: sum.result(), steps, paths: files };
  } finally {
    sum.dispose();
  }
}

/**
 * The element-wise mean (or weighted mean) of the model weights of the checkpoints at `paths`
 * (files written by `saveCheckpoint`, read with `loadCheckpoint`), with their steps. The sums
 * run in f32 on the device, each input scaled by its weight; the result is cast back to each
 * entry's dtype. The caller owns (and disposes) the tensors of `state`.
 *
 * @example
 * const last = (await listCheckpoints('runs/a')).slice(-5).map((c) => c.path);
 * const { state } = await averageCheckpoints(last);
 * model.loadStateDict(state);
 */
export async function averageCheckpoints(paths: readonly string[], opts: AverageCheckpointsOptions = {}): Promise<AveragedCheckpoint> {
  const op = 'averageCheckpoints';
  const list = checkPaths(op, paths);
  const { weights, backend } = checkAverageOptions(op, opts ?? {}, list.length, AVERAGE_KEYS);
  return average(op, list, weights, backend);
}

/**
 * Load the average of the checkpoints at `paths` into `model` (as `loadStateDict`: every name
 * must match); returns the inputs' steps and files.
 *
 * @example
 * await averageCheckpointsInto(model, ['runs/a/ckpt-00000800.safetensors', 'runs/a/ckpt-00000900.safetensors']);
 */
export async function averageCheckpointsInto(model: Module, paths: readonly string[], opts: AverageCheckpointsOptions = {}): Promise<{ steps: number[]; paths: string[] }> {
  const op = 'averageCheckpointsInto';
  if (model === null || typeof model !== 'object' || typeof (model as Partial<Module>).loadStateDict !== 'function')
    throw new Error(`${op}: model must be a Module (with loadStateDict), got ${show(model)}`);
  const list = checkPaths(op, paths);
  const { weights, backend } = checkAverageOptions(op, opts ?? {}, list.length, AVERAGE_KEYS);
  const avg = await average(op, list, weights, backend);
  try {
    model.loadStateDict(avg.state);
  } catch (e) {
    throw new Error(`${op}: the averaged weights do not fit the model: ${String((e as Error)?.message ?? e)}`);
  } finally {
    for (const t of Object.values(avg.state)) t.dispose();
  }
  return { steps: avg.steps, paths: avg.paths };
}

/**
 * Average the checkpoints at `paths` into a new checkpoint at `out` (model weights only, written
 * atomically by `saveCheckpoint`; `loadCheckpoint(out, { model })` reads it), recording the
 * inputs and their steps in `extra.averagedFrom`. Returns the file written.
 *
 * @example
 * await saveAveragedCheckpoint('runs/a/averaged.safetensors', last5);
 */
export async function saveAveragedCheckpoint(out: string, paths: readonly string[], opts: SaveAveragedCheckpointOptions = {}): Promise<string> {
  const op = 'saveAveragedCheckpoint';
  if (typeof out !== 'string' || out === '') throw new Error(`${op}: out must be a file or folder path (a non-empty string), got ${show(out)}`);
  const list = checkPaths(op, paths);
  const { weights, backend } = checkAverageOptions(op, opts ?? {}, list.length, [...AVERAGE_KEYS, 'step', 'extra']);
  const o = opts ?? {};
  if (o.step !== undefined) checkNumber(op, 'step', o.step, { integer: true, min: 0 });
  const avg = await average(op, list, weights, backend);
  try {
    const model = { stateDict: () => avg.state, loadStateDict: () => {} };
    const extra = { averagedFrom: avg.paths.map((path, i) => ({ path, step: avg.steps[i]!, weight: weights[i]! })), user: o.extra ?? null };
    try {
      return await saveCheckpoint(out, { model, step: o.step ?? Math.max(...avg.steps), extra });
    } catch (e) {
      throw new Error(`${op}: ${String((e as Error)?.message ?? e).replace(/^saveCheckpoint: /, '')}`);
    }
  } finally {
    for (const t of Object.values(avg.state)) t.dispose();
  }
}
