/**
 * Gradient (activation) checkpointing: trade compute for memory by running a function without
 * keeping its intermediates, and running it again in the backward (as `torch.utils.checkpoint`).
 * @module
 */
import { isFloat } from '../backend/dtype.js';
import { tidy } from '../tensor/memory.js';
import { watchGenerators, type Generator, type GeneratorState } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { show } from '../tensor/validate.js';
import { gradientsAt } from './backward.js';
import { defineGrad, enableGrad, noGrad, record, watchGradInputs } from './tape.js';
import { autocastState, withAutocastState } from '../amp/autocast.js';

// What a checkpoint node keeps between the forward and the backward: no activations.
interface CheckpointAttrs {
  fn: (...inputs: Tensor[]) => Tensor | Tensor[];
  /** node.inputs holds the explicit inputs, then the tensors `fn` read from its closure. */
  nInputs: number;
  /** Which output of `fn` this node is (null when `fn` returned one tensor). */
  index: number | null;
  /** The generators `fn` drew from, each as it was before `fn`'s first draw. */
  generators: Map<Generator, GeneratorState>;
  /** The autocast regions open at the forward: the recomputation runs in the same dtypes. */
  autocast: ReturnType<typeof autocastState>;
}

/**
 * Run `fn(...inputs)` without keeping its intermediate tensors, and run it again during the
 * backward to compute its gradients: activation memory of `fn` is spent only while its backward
 * runs, at the cost of a second forward (as PyTorch's `torch.utils.checkpoint` with
 * `use_reentrant=False`).
 *
 * The forward runs with grad off inside a {@link tidy}; the result is one node on the tape that
 * holds only `inputs`, `fn` and the state of every {@link Generator} `fn` drew from. Its backward
 * runs `fn` again with grad on, on detached copies of `inputs` (requiring grad as the originals)
 * and from the same generator states, so dropout draws the same masks; then backpropagates the
 * output gradient through that graph. Tensors `fn` reads from its closure (a module's
 * parameters) are inputs of the node too: they get their gradients, and the output requires grad
 * when they do, even if no input does.
 *
 * `fn` must compute the same thing when run again: it must not depend on state that changes
 * between the forward and the backward (other than the generators), nor keep tensors it creates
 * (the forward's are disposed). Changing an input or a parameter in place before the backward is
 * an Error, as for any op. When `fn` returns an array, each output's gradient is computed by its
 * own recomputation.
 *
 * @example
 * // a transformer layer whose activations are recomputed in the backward
 * const y = checkpoint((x) => block.forward(x), x);
 * y.sum().backward(); // block's parameters get their .grad
 */
export function checkpoint(fn: (...inputs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor;
export function checkpoint(fn: (...inputs: Tensor[]) => Tensor[], ...inputs: Tensor[]): Tensor[];
export function checkpoint(fn: (...inputs: Tensor[]) => Tensor | Tensor[], ...inputs: Tensor[]): Tensor | Tensor[] {
  const op = 'checkpoint';
  if (typeof fn !== 'function') throw new Error(`${op}: fn must be a function, got ${show(fn)}`);
  inputs.forEach((x, i) => {
    if (!(x instanceof Tensor)) throw new Error(`${op}: input ${i} must be a Tensor, got ${show(x)} (pass other values through fn's closure)`);
    if (x.disposed) throw new Error(`${op}: input ${i} was disposed (${x.toString()})`);
  });

  const copies = detachAll(inputs);
  const regions = autocastState();
  const mark = Math.max(0, ...copies.map((c) => c.id));
  let out: Tensor | Tensor[];
  let read: Set<Tensor>;
  let generators: Map<Generator, GeneratorState>;
  try {
    ({ result: { result: out, read }, states: generators } = watchGenerators(() =>
      watchGradInputs(() => noGrad(() => tidy(() => synchronous(op, fn(...copies))))),
    ));
  } catch (e) {
    for (const c of copies) c.dispose();
    throw e;
  }
  const outputs = checkOutputs(op, out, () => disposeAll(out, copies));
  const copySet = new Set(copies);
  for (const c of copies) if (!outputs.includes(c)) c.dispose();

  // the node's inputs: the explicit ones, then what fn read from its closure
  const captured = [...read].filter((t) => !copySet.has(t));
  const nodeInputs = [...inputs, ...captured];
  const seen = new Set<Tensor>();
  const recorded = outputs.map((y, i) => {
    // a tensor fn did not create (an input, a captured one) or returned twice gets a view of its own
    if (y.id <= mark && !copySet.has(y)) y = y._view(y.shape);
    else if (seen.has(y)) y = y._view(y.shape);
    seen.add(y);
    if (!isFloat(y.dtype)) return y;
    const attrs: CheckpointAttrs = { fn, nInputs: inputs.length, index: Array.isArray(out) ? i : null, generators, autocast: regions };
    return record('checkpoint', nodeInputs, y, attrs as unknown as Record<string, unknown>);
  });
  return Array.isArray(out) ? recorded : recorded[0]!;
}

// tidy scopes, grad mode and the generator watch are synchronous: an async fn would escape them all
function synchronous<T>(op: string, out: T): T {
  if (out instanceof Promise) {
    out.catch(() => undefined);
    throw new Error(`${op}: fn returned a Promise; it must be synchronous (await outside checkpoint)`);
  }
  return out;
}

function detachAll(inputs: readonly Tensor[]): Tensor[] {
  return inputs.map((x) => {
    const c = x.detach();
    if (x.requiresGrad) c.requiresGrad = true;
    return c;
  });
}

function disposeAll(out: unknown, copies: readonly Tensor[]): void {
  if (out instanceof Tensor) out.dispose();
  else if (Array.isArray(out)) for (const t of out) if (t instanceof Tensor) t.dispose();
  for (const c of copies) c.dispose();
}

function checkOutputs(op: string, out: unknown, cleanup: () => void): Tensor[] {
  const list = Array.isArray(out) ? out : [out];
  const i = list.findIndex((t) => !(t instanceof Tensor));
  if (i >= 0 || list.length === 0) {
    cleanup();
    const got = !Array.isArray(out) || i < 0 ? show(out) : `${show(list[i])} at index ${i} of the array`;
    throw new Error(`${op}: fn must return a Tensor or a non-empty array of Tensors, got ${got}`);
  }
  return list as Tensor[];
}

// Run fn again with grad on, from the forward's generator states, and backpropagate g through it
// to the node's inputs (the detached copies of the explicit ones, and the captured ones).
defineGrad('checkpoint', (g, node) => {
  const { fn, nInputs, index, generators, autocast } = node.attrs as unknown as CheckpointAttrs;
  const copies = detachAll(node.inputs.slice(0, nInputs));
  const captured = node.inputs.slice(nInputs);
  const now = [...generators.keys()].map((gen) => gen.getState());
  for (const [gen, state] of generators) gen.setState(state);
  let out: Tensor | Tensor[];
  try {
    out = withAutocastState(autocast, () => enableGrad(() => fn(...copies)));
  } finally {
    // the backward leaves the streams where the rest of the program has them
    [...generators.keys()].forEach((gen, i) => gen.setState(now[i]!));
  }
  const outputs = checkOutputs('checkpoint', out, () => undefined);
  const y = outputs[index ?? 0];
  if (!y || y.shape.length !== g.shape.length || y.shape.some((d, i) => d !== g.shape[i]))
    throw new Error(`checkpoint: the recomputed function returned ${show(out)}, unlike the forward (fn must compute the same thing when run again)`);
  if (!y.requiresGrad) return node.inputs.map(() => null);
  return gradientsAt(y, g, [...copies, ...captured]);
});
