/**
 * Checkpoint averaging (fairseq's `scripts/average_checkpoints.py`, the "last N checkpoints"
 * trick of Vaswani et al.): the element-wise (weighted) mean of the model weights of several
 * checkpoints written by `saveCheckpoint`, into a state dict, a model, or a new checkpoint file
 * written atomically. Each file is read with `loadCheckpoint`, so its format and checksum are
 * checked as for a resume. Node-only: it reads and writes files.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { isFloat } from '../backend/dtype.js';
import { backendFor } from '../backend/registry.js';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint.js';
import type { Module } from '../nn/module.js';
import { keep, tidy } from '../tensor/memory.js';
import { add, cast, clone, mul } from '../tensor/ops/elementwise.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { checkKeys, checkNumber, show } from '../tensor/validate.js';

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
  let weights = Array.from({ length: n }, () => 1 / n);
  if (o.weights !== undefined) {
    if (!Array.isArray(o.weights)) throw new Error(`${op}: weights must be an array of ${n} numbers ≥ 0, got ${show(o.weights)}`);
    if (o.weights.length !== n) throw new Error(`${op}: weights has ${o.weights.length} entries for ${n} checkpoints`);
    o.weights.forEach((w, i) => checkNumber(op, `weights[${i}]`, w, { min: 0 }));
    const total = o.weights.reduce((a, b) => a + b, 0);
    if (!(total > 0)) throw new Error(`${op}: weights must not all be 0, got ${show(o.weights)}`);
    weights = o.weights.map((w) => w / total);
  }
  if (o.backend !== undefined) {
    if (typeof o.backend !== 'string') throw new Error(`${op}: backend must be a backend's name, got ${show(o.backend)}`);
    backendFor(op, o.backend);
  }
  return { weights, backend: o.backend };
}

/**
 * Read every checkpoint's model state and sum `wᵢ · xᵢ` in f32 (f64 for f64 entries) on the
 * device. Floating entries are averaged; others (integer buffers) are taken from the first file. Every file must hold the same names and shapes.
 */
async function average(op: string, paths: string[], weights: number[], backend: string | undefined): Promise<AveragedCheckpoint> {
  const sums = new Map<string, { t: Tensor; dtype: Tensor['dtype']; shape: number[] }>();
  const steps: number[] = [];
  const files: string[] = [];
  let index = 0;
  // a loadCheckpoint target that adds what it is given (loadCheckpoint frees the tensors after)
  const collector = {
    stateDict: (): Record<string, Tensor> => ({}),
    loadStateDict: (state: Record<string, Tensor>): void => {
      const names = Object.keys(state);
      const w = weights[index]!;
      if (index === 0) {
        if (names.length === 0) throw new Error('it holds no model tensors');
        for (const name of names) {
          const t = state[name]!;
          const sum = keep(noGrad(() => tidy(() => (isFloat(t.dtype) ? mul(cast(t, t.dtype === 'f64' ? 'f64' : 'f32'), w) : clone(t)))));
          sums.set(name, { t: sum, dtype: t.dtype, shape: [...t.shape] });
        }
        return;
      }
      const missing = [...sums.keys()].filter((n) => !(n in state));
      const extra = names.filter((n) => !sums.has(n));
      if (missing.length || extra.length)
        throw new Error(`its model tensors differ from the first checkpoint's (${[missing.length ? `missing ${missing.join(', ')}` : '', extra.length ? `extra ${extra.join(', ')}` : ''].filter(Boolean).join('; ')})`);
      for (const name of names) {
        const t = state[name]!;
        const s = sums.get(name)!;
        if (t.rank !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i]) || t.dtype !== s.dtype)
          throw new Error(`'${name}' is ${fmt(t.shape)} ${t.dtype}, in the first checkpoint ${fmt(s.shape)} ${s.dtype}`);
      }
      for (const name of names) {
        const t = state[name]!;
        const s = sums.get(name)!;
        if (!isFloat(t.dtype)) continue;
        const next = keep(noGrad(() => tidy(() => add(s.t, mul(cast(t, s.t.dtype), w)))));
        s.t.dispose();
        s.t = next;
      }
    },
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
    const state: Record<string, Tensor> = {};
    for (const [name, s] of sums) {
      state[name] = s.t.dtype === s.dtype ? s.t : keep(noGrad(() => cast(s.t, s.dtype)));
      if (state[name] !== s.t) s.t.dispose();
    }
    sums.clear();
    return { state, steps, paths: files };
  } finally {
    for (const s of sums.values()) s.t.dispose();
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
