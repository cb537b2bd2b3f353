/**
 * The define-by-run tape: grad mode, the graph node every differentiable op records, and the
 * table of backward rules (filled by `grads.ts`). This file knows tensors only as a type, so the
 * tensor layer can record onto the tape without depending on the rules above it.
 * @module
 */
import type { RecordedOp } from '../backend/ops.gen.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * One recorded op: `output = op(inputs, attrs)`. `saved` are extra tensors the rule needs
 * (such as layer norm's mean and rstd); the node owns them and frees them after the backward.
 */
export interface Node {
  readonly op: RecordedOp;
  readonly inputs: readonly Tensor[];
  readonly attrs: Record<string, unknown>;
  saved: Tensor[];
  /** The op's output (set by record); rules that reuse the forward result read it here. */
  output: Tensor | null;
  /** Set once a backward without `retainGraph` has run this node and freed `saved`. */
  freed?: boolean;
}

/**
 * A backward rule: the gradients of an op's inputs (null where an input needs none) from the
 * gradient of its output. Rules are written with ordinary tensor ops, run with grad off.
 */
export type GradRule = (dy: Tensor, node: Node) => (Tensor | null)[];

const rules = new Map<RecordedOp, GradRule>();

/** Register the backward rule of `op` (every op in the table's RECORDED_OPS has one). */
export function defineGrad(op: RecordedOp, rule: GradRule): void {
  rules.set(op, rule);
}

/** Whether `op` has a backward rule. */
export function hasGradRule(op: RecordedOp): boolean {
  return rules.has(op);
}

export function gradRule(op: RecordedOp): GradRule {
  const r = rules.get(op);
  if (!r) throw new Error(`backward: no gradient rule is registered for op '${op}'`);
  return r;
}

let gradEnabled = true;

/** Whether ops record onto the tape now. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

function withGradMode<T>(mode: boolean, fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = mode;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Run `fn` without recording gradients (like `torch.no_grad()`). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Run `fn` with gradient recording on, even inside {@link noGrad}. */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

/** Whether an op over `inputs` must be recorded. */
export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  return gradEnabled && inputs.some((t) => t?.requiresGrad);
}

/**
 * Attach a node for `op` to `output` if any input requires grad (and grad mode is on); otherwise
 * dispose `saved`. Returns `output`.
 */
export function record(
  op: RecordedOp,
  inputs: readonly Tensor[],
  output: Tensor,
  attrs: Record<string, unknown> = {},
  saved: Tensor[] = [],
): Tensor {
  if (!needsGrad(inputs)) {
    for (const s of saved) s.dispose();
    return output;
  }
  const node: Node = { op, inputs, attrs, saved, output: null };
  output._setGradFn(node);
  return output;
}

/** The backward engine, installed by `backward.ts` (so the tensor layer need not import it). */
export let runBackward: (root: Tensor, grad: Tensor | undefined, retainGraph: boolean) => void = () => {
  throw new Error('backward: the autograd engine is not loaded (import kiln from its entry point)');
};

export function installBackward(fn: typeof runBackward): void {
  runBackward = fn;
}
