/**
 * Training checkpoints: model weights, optimizer state (moments and step counts), scheduler,
 * random-generator state, the step and any extra JSON, in one safetensors file written
 * atomically, so a crash mid-save leaves the previous checkpoint as it was.
 *
 * Layout of the file (a valid safetensors file any reader can open):
 * - tensors `model.<name>` for every entry of `model.stateDict()`;
 * - tensors `optimizer.<i>.<key>` for the state tensors of the optimizer's parameter i;
 * - `__metadata__["kiln.checkpoint"]`: a JSON string `{ version, step, extra, generator,
 *   scheduler, optimizer: { optimizer, paramGroups, state: { i: { step, tensors: [keys] } } } }`;
 * - `__metadata__["kiln.crc32"]`: the CRC-32 (8 hex digits) of the `kiln.checkpoint` JSON followed by
 *   the whole data buffer, so a flipped bit, a truncated file or an edited step or learning rate is
 *   caught (version 1 files, whose checksum covers the data only, still load).
 *
 * Loading validates the file first, then restores; if restoring any part fails (a model whose
 * parameters differ, an optimizer of another kind), what was already restored is put back, so a
 * failed load leaves the model, optimizer, scheduler and generator exactly as they were.
 * @module
 */
import { stat, readFile, mkdir } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { noGrad } from '../autograd/tape.js';
import { clone } from '../tensor/ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import type { OptimizerStateDict, HyperParam, ParamState } from '../optim/optimizer.js';
import { writeFileAtomic, type AsyncWriter } from './atomic.js';
import { relabel } from '../tensor/ops/util.js';
import { checkKeys, show } from '../tensor/validate.js';
import { describeJSON } from './describe.js';
import { parseHeader, readSafetensors } from './safetensors.js';
import { checksum, crc32, encodeCheckpoint, hex } from './checkpoint_bytes.js';

/** Anything with a state dict of tensors: a Module, or a small wrapper. */
export interface StateDictModel {
  stateDict(): Record<string, Tensor>;
  /** Must copy the values (as PyTorch's `load_state_dict` does): the tensors passed are freed afterwards. */
  loadStateDict(state: Record<string, Tensor>): void;
}

/** What a checkpoint needs of an optimizer (every kiln optimizer fits). */
export interface StateDictOptimizer {
  stateDict(): OptimizerStateDict;
  /** Must copy the state tensors: they are freed afterwards. */
  loadStateDict(state: OptimizerStateDict): void;
}

/** What a checkpoint needs of a scheduler: JSON state (`LRScheduler` fits). */
export interface StateDictScheduler {
  stateDict(): unknown;
  loadStateDict(state: never): void;
}

/** What a checkpoint needs of a random generator: JSON state (`Generator` fits). */
export interface StatefulGenerator {
  getState(): unknown;
  setState(state: never): void;
}

/** What {@link saveCheckpoint} saves. */
export interface CheckpointContents {
  model: StateDictModel;
  optimizer?: StateDictOptimizer;
  scheduler?: StateDictScheduler;
  generator?: StatefulGenerator;
  /** The training step the checkpoint was taken at. */
  step: number;
  /** Anything else to keep, as JSON (data-loader position, config, metrics). */
  extra?: unknown;
}

/** Options of {@link saveCheckpoint}. */
export interface SaveCheckpointOptions {
  /** @internal Replace the file writer (tests use it to fail mid-write). */
  write?: AsyncWriter;
}

/** What {@link loadCheckpoint} restores into. */
export interface CheckpointTargets {
  model: StateDictModel;
  /** Restored when given; an error if the checkpoint has no optimizer state. */
  optimizer?: StateDictOptimizer;
  scheduler?: StateDictScheduler;
  generator?: StatefulGenerator;
  /** Backend the loaded tensors are made on before being copied in (default backend when omitted). */
  backend?: string;
}

/** What {@link loadCheckpoint} returns besides restoring the targets. */
export interface LoadedCheckpoint {
  step: number;
  extra: unknown;
  /** The file read. */
  path: string;
}

interface CheckpointInfo {
  version: 1 | 2;
  step: number;
  extra: unknown;
  generator: unknown;
  scheduler: unknown;
  optimizer: {
    optimizer: string;
    paramGroups: { params: number[]; options: Record<string, HyperParam> }[];
    state: Record<string, { step: number; tensors: string[] }>;
  } | null;
}

const META_KEY = 'kiln.checkpoint';
const CRC_KEY = 'kiln.crc32';
/** How much of a target's error a load error quotes. */
const MAX_QUOTE = 1000;
/** The file name used when a checkpoint path names a directory. */
export const CHECKPOINT_FILE = 'checkpoint.safetensors';

// A directory (existing, or written with a trailing separator) holds checkpoint.safetensors.
async function resolveFile(path: string): Promise<string> {
  if (path.endsWith('/') || path.endsWith(sep)) return join(path, CHECKPOINT_FILE);
  try {
    if ((await stat(path)).isDirectory()) return join(path, CHECKPOINT_FILE);
  } catch {
    // does not exist yet: a file path
  }
  return resolve(path);
}

/**
 * Save a checkpoint to `path` atomically (temporary file, fsync, rename, directory fsync). A
 * path that is a directory (or ends with a separator) gets `checkpoint.safetensors` inside it;
 * missing parent directories are created. Returns the file written.
 *
 * @example
 * await saveCheckpoint('runs/gpt/step-1000.safetensors', { model, optimizer, scheduler, generator, step: 1000 });
 */
export async function saveCheckpoint(path: string, c: CheckpointContents, opts: SaveCheckpointOptions = {}): Promise<string> {
  const op = 'saveCheckpoint';
  checkPath(op, path);
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new Error(`${op}: expected { model, step, ... }, got ${show(c)}`);
  checkKeys(op, c, ['model', 'optimizer', 'scheduler', 'generator', 'step', 'extra']);
  if (typeof c.model?.stateDict !== 'function') throw new Error(`${op}: expected { model, step, ... } with a model that has stateDict(), got model ${show(c.model)}`);
  checkParts(op, c, { optimizer: 'stateDict', scheduler: 'stateDict', generator: 'getState' });
  if (typeof c.step !== 'number' || !Number.isSafeInteger(c.step) || c.step < 0) throw new Error(`${op}: step must be a non-negative integer, got ${show(c.step)}`);
  checkKeys(op, opts, ['write']);
  const write = (opts as SaveCheckpointOptions | null)?.write;
  if (write !== undefined && typeof write !== 'function') throw new Error(`${op}: write must be a function, got ${show(write)}`);
  const bytes = await encodeCheckpoint(op, c);
  const file = await resolveFile(path);
  try {
    await mkdir(dirname(file), { recursive: true });
  } catch (e) {
    throw new Error(`${op}: cannot write '${file}': ${(e as Error)?.message ?? String(e)}`);
  }
  try {
    await writeFileAtomic(file, bytes, { write });
  } catch (e) {
    throw relabel(op, e);
  }
  return file;
}

// A path argument of `op`: a non-empty string.
function checkPath(op: string, path: unknown): void {
  if (typeof path !== 'string' || path === '') throw new Error(`${op}: path must be a file or folder path (a non-empty string), got ${show(path)}`);
  if (path.includes('\0')) throw new Error(`${op}: path ${show(path.replace(/\0/g, '\\0'))} contains a NUL character`);
}

// The optional parts of a checkpoint (optimizer, scheduler, generator): absent, or with the method that reads their state.
function checkParts(op: string, c: object, parts: Record<string, string>): void {
  for (const [name, method] of Object.entries(parts)) {
    const v = (c as Record<string, unknown>)[name];
    if (v !== undefined && v !== null && (typeof v !== 'object' || typeof (v as Record<string, unknown>)[method] !== 'function'))
      throw new Error(`${op}: ${name} must be an object with ${method}(), got ${show(v)}`);
  }
}

/**
 * Load a checkpoint written by {@link saveCheckpoint} and restore the model, and the optimizer,
 * scheduler and generator when given. Everything is validated (format, checksum, presence of
 * what was asked for) before anything is restored. Returns the step and the extra JSON.
 *
 * @example
 * const { step } = await loadCheckpoint('runs/gpt/step-1000.safetensors', { model, optimizer, scheduler, generator });
 */
export async function loadCheckpoint(path: string, targets: CheckpointTargets): Promise<LoadedCheckpoint> {
  const op = 'loadCheckpoint';
  checkPath(op, path);
  if (targets === null || typeof targets !== 'object' || Array.isArray(targets)) throw new Error(`${op}: expected targets { model, ... }, got ${show(targets)}`);
  checkKeys(op, targets, ['model', 'optimizer', 'scheduler', 'generator', 'backend']);
  if (typeof targets.model?.loadStateDict !== 'function') throw new Error(`${op}: expected { model, ... } with a model that has loadStateDict(), got model ${show(targets.model)}`);
  checkParts(op, targets, { optimizer: 'loadStateDict', scheduler: 'loadStateDict', generator: 'setState' });
  if (targets.backend !== undefined && typeof targets.backend !== 'string') throw new Error(`${op}: backend must be a backend's name, got ${show(targets.backend)}`);
  const file = await resolveFile(path);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new Error(`${op}: cannot read '${file}': ${(e as Error).message}`);
  }
  const where = `'${file}'`;
  let info: CheckpointInfo;
  try {
    const header = parseHeader(bytes);
    const json = header.metadata[META_KEY];
    if (json === undefined) throw new Error(`not a kiln checkpoint (no '${META_KEY}' metadata)`);
    info = parseInfo(json);
    const recorded = header.metadata[CRC_KEY];
    const data = bytes.subarray(header.dataStart);
    const crc = hex(info.version === 1 ? crc32(data) : checksum(json, data));
    if (crc !== recorded)
      throw new Error(`checksum mismatch (${info.version === 1 ? 'data' : 'header and data'} crc32 ${crc}, recorded ${String(recorded)}): the file is corrupt or was edited`);
  } catch (e) {
    throw new Error(`${op}: ${where} is corrupt or not a checkpoint: ${(e as Error).message}`);
  }
  if (targets.optimizer && !info.optimizer) throw new Error(`${op}: ${where} has no optimizer state`);
  if (targets.scheduler && info.scheduler === null) throw new Error(`${op}: ${where} has no scheduler state`);
  if (targets.generator && info.generator === null) throw new Error(`${op}: ${where} has no generator state`);

  let tensors: Record<string, Tensor>;
  try {
    // a valid file can still hold what kiln cannot (an I64 past i32, an F8 dtype), or name no backend
    ({ tensors } = readSafetensors(bytes, { backend: targets.backend }));
  } catch (e) {
    throw new Error(`${op}: ${where} cannot be loaded: ${(e as Error).message}`);
  }
  try {
    // no prototype: a tensor may be named 'model.__proto__'
    const model: Record<string, Tensor> = Object.create(null) as Record<string, Tensor>;
    for (const [name, t] of Object.entries(tensors)) if (name.startsWith('model.')) model[name.slice(6)] = t;
    let optimizerState: OptimizerStateDict | null = null;
    if (targets.optimizer && info.optimizer) {
      const state: Record<number, ParamState> = {};
      for (const [id, st] of Object.entries(info.optimizer.state)) {
        const ts: Record<string, Tensor> = Object.create(null) as Record<string, Tensor>;
        for (const key of st.tensors) {
          const t = tensors[`optimizer.${id}.${key}`];
          if (!t) throw new Error(`${op}: ${where} lacks the tensor 'optimizer.${id}.${key}' its metadata lists`);
          ts[key] = t;
        }
        state[Number(id)] = { step: st.step, tensors: ts };
      }
      optimizerState = { optimizer: info.optimizer.optimizer, paramGroups: info.optimizer.paramGroups, state };
    }
    restoreAll(op, where, targets, model, optimizerState, info);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
  return { step: info.step, extra: info.extra, path: file };
}

/**
 * Restore every target, in order; when one refuses its state, put back what was already
 * restored (from snapshots taken first) and throw, naming the file: all or nothing.
 */
function restoreAll(
  op: string,
  where: string,
  targets: CheckpointTargets,
  model: Record<string, Tensor>,
  optimizerState: OptimizerStateDict | null,
  info: CheckpointInfo,
): void {
  const undo: (() => void)[] = [];
  const snapshot = (sd: Record<string, Tensor>): Record<string, Tensor> =>
    Object.fromEntries(Object.entries(sd).map(([k, t]) => [k, noGrad(() => clone(t))]));
  const held: Tensor[] = [];
  try {
    const m = snapshot(targets.model.stateDict());
    held.push(...Object.values(m));
    targets.model.loadStateDict(model);
    undo.push(() => targets.model.loadStateDict(m));
    if (targets.optimizer && optimizerState) {
      const mine = targets.optimizer.stateDict();
      const copy: OptimizerStateDict = {
        ...mine,
        state: Object.fromEntries(Object.entries(mine.state).map(([id, st]) => [id, { step: st.step, tensors: snapshot(st.tensors) }])),
      };
      for (const st of Object.values(copy.state)) held.push(...Object.values(st.tensors));
      targets.optimizer.loadStateDict(optimizerState);
      undo.push(() => targets.optimizer!.loadStateDict(copy));
    }
    if (targets.scheduler) {
      const mine = targets.scheduler.stateDict();
      targets.scheduler.loadStateDict(info.scheduler as never);
      undo.push(() => targets.scheduler!.loadStateDict(mine as never));
    }
    if (targets.generator) targets.generator.setState(info.generator as never);
  } catch (e) {
    for (const u of undo.reverse()) u();
    // a target may quote the file's value whole (a scheduler's 10,000 base rates): keep the start
    const msg = String((e as Error)?.message ?? e);
    const quoted = msg.length > MAX_QUOTE ? `${msg.slice(0, MAX_QUOTE)}… (${msg.length} characters)` : msg;
    throw new Error(`${op}: ${where} does not fit the targets, which are unchanged: ${quoted}`);
  } finally {
    for (const t of held) t.dispose();
  }
}

function parseInfo(json: string): CheckpointInfo {
  let info: unknown;
  try {
    info = JSON.parse(json);
  } catch (e) {
    throw new Error(`the '${META_KEY}' metadata is not valid JSON (${(e as Error).message})`);
  }
  const i = info as CheckpointInfo;
  if (!i || typeof i !== 'object' || (i.version !== 1 && i.version !== 2))
    throw new Error(`unsupported checkpoint version ${describeJSON((i as { version?: unknown })?.version)}`);
  if (!Number.isSafeInteger(i.step) || i.step < 0) throw new Error(`bad step ${describeJSON(i.step)}`);
  const o = i.optimizer;
  if (o !== null && (typeof o !== 'object' || typeof o.optimizer !== 'string' || !Array.isArray(o.paramGroups) || typeof o.state !== 'object' || o.state === null))
    throw new Error('malformed optimizer state');
  // the tensor keys name file entries (`optimizer.<id>.<key>`): strings only
  if (o)
    for (const [id, st] of Object.entries(o.state))
      if (!st || !Array.isArray(st.tensors) || !st.tensors.every((k) => typeof k === 'string'))
        throw new Error(`malformed optimizer state: parameter ${describeJSON(id)} must list its tensors as an array of names, got ${describeJSON(st?.tensors)}`);
  return i;
}

