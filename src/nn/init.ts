/**
 * Parameter creation and in-place initialisers (as `torch.nn.init`), and the GPT-2 scheme:
 * weights N(0, 0.02), biases 0, norms 1/0, and residual projections N(0, 0.02/√(2·nLayer)) so
 * the residual stream's variance does not grow with depth. Every random draw comes from a
 * {@link Generator}, so one seed gives one model on every backend.
 * @module
 */
import type { DType } from '../backend/dtype.js';
import { noGrad } from '../autograd/tape.js';
import { full, normal, uniform } from '../tensor/ops/creation.js';
import { asOp, live } from '../tensor/ops/util.js';
import { defaultGenerator, Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkNumber, optionalNumber, show } from '../tensor/validate.js';
import { options, PARAM_KEYS, paramOptions } from './validate.js';

/** Where and how a layer creates its parameters. */
export interface ParamOptions {
  /** Parameter dtype (f32 by default; f64 for gradient checks). */
  dtype?: DType;
  /** Backend name (the default backend when omitted). */
  backend?: string;
  /** Stream of the random initialisation (the default generator when omitted). */
  generator?: Generator;
}

/** The standard deviation of GPT-2's weight initialisation. */
export const GPT2_INIT_STD = 0.02;

/** GPT-2's standard deviation for residual projections (`attn.c_proj`, `mlp.c_proj`): std/√(2·nLayer). */
export function residualStd(nLayer: number, std = GPT2_INIT_STD): number {
  checkNumber('residualStd', 'nLayer', nLayer, { integer: true, min: 1 });
  checkNumber('residualStd', 'std', std, { min: 0 });
  return std / Math.sqrt(2 * nLayer);
}

function placement(opts: ParamOptions): { dtype: DType; backend?: string } {
  return { dtype: opts.dtype ?? 'f32', ...(opts.backend !== undefined ? { backend: opts.backend } : {}) };
}

/** @internal {@link normalParam} for the public function or layer `op` (its errors start with `op: `); `opts` already checked. */
export function makeNormal(op: string, shape: readonly number[], std: number, opts: ParamOptions, mean = 0): Tensor {
  return asOp(op, () => normal(shape, mean, std, { ...placement(opts), generator: opts.generator ?? defaultGenerator }));
}

/** @internal {@link uniformParam} for `op`; `opts` already checked. */
export function makeUniform(op: string, shape: readonly number[], low: number, high: number, opts: ParamOptions): Tensor {
  return asOp(op, () => uniform(shape, low, high, { ...placement(opts), generator: opts.generator ?? defaultGenerator }));
}

/** @internal {@link constantParam} for `op`; `opts` already checked. */
export function makeConstant(op: string, shape: readonly number[], value: number, opts: ParamOptions): Tensor {
  return asOp(op, () => full(shape, value, placement(opts)));
}

/** A new tensor of N(mean, std) samples, for a parameter. */
export function normalParam(shape: readonly number[], std: number, opts: ParamOptions = {}, mean = 0): Tensor {
  const op = 'normalParam';
  const o = paramOptions(op, options(op, opts, PARAM_KEYS));
  checkNumber(op, 'std', std, { min: 0 });
  return makeNormal(op, shape, std, o, optionalNumber(op, 'mean', mean, 0));
}

/** A new tensor of U(low, high) samples, for a parameter. */
export function uniformParam(shape: readonly number[], low: number, high: number, opts: ParamOptions = {}): Tensor {
  const op = 'uniformParam';
  const o = paramOptions(op, options(op, opts, PARAM_KEYS));
  checkNumber(op, 'low', low);
  checkNumber(op, 'high', high, { min: low });
  return makeUniform(op, shape, low, high, o);
}

/** A new tensor filled with `value`, for a parameter. */
export function constantParam(shape: readonly number[], value: number, opts: ParamOptions = {}): Tensor {
  const op = 'constantParam';
  const o = paramOptions(op, options(op, opts, PARAM_KEYS));
  if (typeof value !== 'number') throw new Error(`${op}: value must be a number, got ${show(value)}`);
  return makeConstant(op, shape, value, o);
}

// check the tensor an in-place initialiser fills
function target(op: string, t: Tensor): void {
  live(op, t);
}

function checkGenerator(op: string, generator: unknown): Generator {
  if (!(generator instanceof Generator)) throw new Error(`${op}: generator must be a Generator, got ${show(generator)}`);
  return generator;
}

// write fresh values into t in place, outside the graph
function fillFrom(op: string, t: Tensor, make: () => Tensor): Tensor {
  asOp(op, () =>
    noGrad(() => {
      const src = make();
      t.copy_(src);
      src.dispose();
    }),
  );
  return t;
}

/** Fill `t` in place with N(mean, std) samples (as `torch.nn.init.normal_`). Returns `t`. */
export function normal_(t: Tensor, mean = 0, std = 1, generator: Generator = defaultGenerator): Tensor {
  const op = 'normal_';
  target(op, t);
  checkNumber(op, 'mean', mean);
  checkNumber(op, 'std', std, { min: 0 });
  const g = checkGenerator(op, generator);
  return fillFrom(op, t, () => normal(t.shape, mean, std, { dtype: t.dtype, backend: t.backend.name, generator: g }));
}

/** Fill `t` in place with U(low, high) samples (as `torch.nn.init.uniform_`). Returns `t`. */
export function uniform_(t: Tensor, low = 0, high = 1, generator: Generator = defaultGenerator): Tensor {
  const op = 'uniform_';
  target(op, t);
  checkNumber(op, 'low', low);
  checkNumber(op, 'high', high, { min: low });
  const g = checkGenerator(op, generator);
  return fillFrom(op, t, () => uniform(t.shape, low, high, { dtype: t.dtype, backend: t.backend.name, generator: g }));
}

function fill(op: string, t: Tensor, value: number): Tensor {
  target(op, t);
  if (typeof value !== 'number') throw new Error(`${op}: value must be a number, got ${show(value)}`);
  asOp(op, () => noGrad(() => t.copy_(value)));
  return t;
}

/** Fill `t` in place with `value`. Returns `t`. */
export function constant_(t: Tensor, value: number): Tensor {
  return fill('constant_', t, value);
}

/** Fill `t` with zeros in place. Returns `t`. */
export function zeros_(t: Tensor): Tensor {
  return fill('zeros_', t, 0);
}

/** Fill `t` with ones in place. Returns `t`. */
export function ones_(t: Tensor): Tensor {
  return fill('ones_', t, 1);
}
