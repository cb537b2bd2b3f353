/**
 * Functions with a backward of their own (as `torch.autograd.Function`): the forward runs with
 * grad off on the inputs, and the output's gradient reaches the inputs only through the given
 * backward. For ops whose gradient is not the gradient of their forward's tensor ops: a
 * collective (tensor parallelism's "identity forward, allreduce backward"), a straight-through
 * estimator, a gradient reversal.
 * @module
 */
import { Tensor } from '../tensor/tensor.js';
import { show } from '../tensor/validate.js';
import { defineGrad, noGrad, record } from './tape.js';

interface FunctionAttrs {
  name: string;
  backward: (dy: Tensor) => (Tensor | null)[];
}

/**
 * `forward(...inputs)`, recorded on the tape with `backward` as its rule: `backward(dy)` returns
 * one gradient per input (null for none), of that input's shape, written with ordinary tensor
 * ops (it runs with grad off). `name` names the function in errors.
 */
export function customFunction(name: string, inputs: readonly Tensor[], forward: (...xs: Tensor[]) => Tensor, backward: (dy: Tensor) => (Tensor | null)[]): Tensor {
  const op = 'customFunction';
  if (typeof name !== 'string' || name === '') throw new Error(`${op}: name must be a non-empty string, got ${show(name)}`);
  if (!Array.isArray(inputs)) throw new Error(`${name}: inputs must be an array of Tensors, got ${show(inputs)}`);
  inputs.forEach((x, i) => {
    if (!(x instanceof Tensor)) throw new Error(`${name}: input ${i} must be a Tensor, got ${show(x)}`);
    if (x.disposed) throw new Error(`${name}: input ${i} was disposed (${x.toString()})`);
  });
  if (typeof forward !== 'function') throw new Error(`${name}: forward must be a function, got ${show(forward)}`);
  if (typeof backward !== 'function') throw new Error(`${name}: backward must be a function, got ${show(backward)}`);
  let out = noGrad(() => forward(...inputs));
  if (!(out instanceof Tensor)) throw new Error(`${name}: forward must return a Tensor, got ${show(out)}`);
  // an input returned as it is gets a view of its own, so the input's own grad_fn is not replaced
  if (inputs.includes(out)) out = out._view(out.shape);
  const attrs: FunctionAttrs = { name, backward };
  return record('function', inputs, out, attrs as unknown as Record<string, unknown>);
}

defineGrad(
  'function',
  (dy, node) => {
    const { name, backward } = node.attrs as unknown as FunctionAttrs;
    const grads = backward(dy);
    if (!Array.isArray(grads) || grads.length !== node.inputs.length || grads.some((g) => g !== null && !(g instanceof Tensor)))
      throw new Error(`${name}: backward must return an array of ${node.inputs.length} Tensors or nulls (one per input), got ${show(grads)}`);
    return grads;
  },
  { inputs: 'none' },
);
