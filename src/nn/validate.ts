/**
 * Argument checks the layers share, on top of `src/tensor/validate.ts`: option bags (unknown keys
 * are errors), where parameters are created (a floating dtype, a registered backend, a
 * Generator), layer sizes, and {@link asOp}, which reports an error of an inner layer or op
 * under the public name the caller used (`MLP.forward: …`, not `linear: …`).
 * @module
 */
import { DTYPES, isDType, isFloat } from '../backend/dtype.js';
import { backendFor } from '../backend/registry.js';
import { live } from '../tensor/ops/util.js';
import { Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { checkKeys, checkNumber, show } from '../tensor/validate.js';
import type { ParamOptions } from './init.js';

/**
 * The keys of {@link ParamOptions}. Layers that draw nothing (norms, rotary tables) take them all
 * too, ignoring the generator, so that one `{ dtype, backend, generator }` serves every layer.
 */
export const PARAM_KEYS = ['dtype', 'backend', 'generator'] as const;

/**
 * `opts` as an object (`{}` for undefined or null) after checking that it is one and has only
 * `keys` (a misspelt option is an error, as in PyTorch).
 */
export function options<T extends object>(op: string, opts: T | null | undefined, keys: readonly string[]): Partial<T> {
  checkKeys(op, opts, keys);
  return (opts ?? {}) as Partial<T>;
}

/** A required configuration object, with only `keys`. */
export function checkConfig<T extends object>(op: string, c: T, keys: readonly string[]): T {
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new Error(`${op}: config must be an object, got ${show(c)}`);
  checkKeys(op, c, keys);
  return c;
}

/** Check the {@link ParamOptions} in `o` (those present) and return just them. */
export function paramOptions(op: string, o: ParamOptions, prefix = ''): ParamOptions {
  const out: ParamOptions = {};
  if (o.dtype !== undefined) {
    if (!isDType(o.dtype) || !isFloat(o.dtype))
      throw new Error(`${op}: ${prefix}dtype must be a floating dtype (${DTYPES.filter(isFloat).join(', ')}), got ${show(o.dtype)}`);
    out.dtype = o.dtype;
  }
  if (o.backend !== undefined) {
    if (typeof o.backend !== 'string') throw new Error(`${op}: ${prefix}backend must be a backend's name, got ${show(o.backend)}`);
    backendFor(op, o.backend);
    out.backend = o.backend;
  }
  if (o.generator !== undefined) {
    if (!(o.generator instanceof Generator)) throw new Error(`${op}: ${prefix}generator must be a Generator, got ${show(o.generator)}`);
    out.generator = o.generator;
  }
  return out;
}

/** `value` when it is a live Tensor; else throws `op: name must be a Tensor, got …` (or that it was disposed). */
export function tensorArg(op: string, name: string, value: unknown): Tensor {
  if (!(value instanceof Tensor)) throw new Error(`${op}: ${name} must be a Tensor, got ${show(value)}`);
  live(op, value);
  return value;
}

/** A layer size: an integer ≥ `min` (1 unless given). */
export function size(op: string, name: string, value: unknown, min = 1): number {
  return checkNumber(op, name, value, { integer: true, min });
}

/**
 * Run `fn` as the public method `op`: an error it throws that starts with another name (an op
 * such as `linear: `, or an inner layer such as `Linear.forward: `) is re-labelled `op: …`.
 */
export function asOp<T>(op: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw relabel(op, e);
  }
}

/** `e`, its message re-labelled `op: …` when it is an Error that starts with another name (for {@link asOp} where a closure cannot be used: a constructor's fields). */
export function relabel(op: string, e: unknown): unknown {
  if (e instanceof Error && !e.message.startsWith(`${op}: `)) e.message = `${op}: ${e.message.replace(/^[A-Za-z_][A-Za-z0-9_.]*: /, '')}`;
  return e;
}
