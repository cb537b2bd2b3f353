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
import { defaultGenerator, type Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

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
  if (!Number.isInteger(nLayer) || nLayer < 1) throw new Error(`residualStd: nLayer must be a positive integer, got ${nLayer}`);
  return std / Math.sqrt(2 * nLayer);
}

function placement(opts: ParamOptions): { dtype: DType; backend?: string } {
  return { dtype: opts.dtype ?? 'f32', ...(opts.backend !== undefined ? { backend: opts.backend } : {}) };
}

/** A new tensor of N(mean, std) samples, for a parameter. */
export function normalParam(shape: readonly number[], std: number, opts: ParamOptions = {}, mean = 0): Tensor {
  return normal(shape, mean, std, { ...placement(opts), generator: opts.generator ?? defaultGenerator });
}

/** A new tensor of U(low, high) samples, for a parameter. */
export function uniformParam(shape: readonly number[], low: number, high: number, opts: ParamOptions = {}): Tensor {
  return uniform(shape, low, high, { ...placement(opts), generator: opts.generator ?? defaultGenerator });
}

/** A new tensor filled with `value`, for a parameter. */
export function constantParam(shape: readonly number[], value: number, opts: ParamOptions = {}): Tensor {
  return full(shape, value, placement(opts));
}

// write fresh values into t in place, outside the graph
function fillFrom(t: Tensor, make: () => Tensor): Tensor {
  noGrad(() => {
    const src = make();
    t.copy_(src);
    src.dispose();
  });
  return t;
}

/** Fill `t` in place with N(mean, std) samples (as `torch.nn.init.normal_`). Returns `t`. */
export function normal_(t: Tensor, mean = 0, std = 1, generator: Generator = defaultGenerator): Tensor {
  return fillFrom(t, () => normal(t.shape, mean, std, { dtype: t.dtype, backend: t.backend.name, generator }));
}

/** Fill `t` in place with U(low, high) samples (as `torch.nn.init.uniform_`). Returns `t`. */
export function uniform_(t: Tensor, low = 0, high = 1, generator: Generator = defaultGenerator): Tensor {
  return fillFrom(t, () => uniform(t.shape, low, high, { dtype: t.dtype, backend: t.backend.name, generator }));
}

/** Fill `t` in place with `value`. Returns `t`. */
export function constant_(t: Tensor, value: number): Tensor {
  noGrad(() => t.copy_(value));
  return t;
}

/** Fill `t` with zeros in place. Returns `t`. */
export const zeros_ = (t: Tensor): Tensor => constant_(t, 0);

/** Fill `t` with ones in place. Returns `t`. */
export const ones_ = (t: Tensor): Tensor => constant_(t, 1);
