/**
 * The define-by-run tape: grad mode, the graph node every differentiable op records, and the
 * table of backward rules (filled by `grads.ts`). This file knows tensors only as a type, so the
 * tensor layer can record onto the tape without depending on the rules above it.
 * @module
 */
import type { RecordedOp } from '../backend/ops.gen.js';
import type { Tensor } from '../tensor/tensor.js';
import { show } from '../tensor/validate.js';

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
  /**
   * The tensors the rule will read (as its {@link GradReads} says), each with its version at the
   * forward: the backward refuses to run the rule on a tensor changed in place since.
   */
  versions: { what: string; tensor: Tensor; version: number }[];
}

/**
 * Which values a backward rule reads, besides the output gradient: the inputs it reads ('all',
 * 'none' or their positions) and whether it reads the forward's output. Tensors in the node's
 * `attrs` (an index, targets, a condition) are always read. Autograd checks these tensors were not
 * changed in place between the forward and the backward.
 */
export interface GradReads {
  inputs: 'all' | 'none' | readonly number[];
  output?: boolean;
}

/**
 * A backward rule: the gradients of an op's inputs (null where an input needs none) from the
 * gradient of its output. Rules are written with ordinary tensor ops, run with grad off.
 */
export type GradRule = (dy: Tensor, node: Node) => (Tensor | null)[];

const rules = new Map<RecordedOp, GradRule>();
const reads = new Map<RecordedOp, GradReads>();

/**
 * Register the backward rule of `op` (every op in the table's RECORDED_OPS has one), and what it
 * reads of the forward (every input, by default).
 */
export function defineGrad(op: RecordedOp, rule: GradRule, readsOfRule: GradReads = { inputs: 'all' }): void {
  rules.set(op, rule);
  reads.set(op, readsOfRule);
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

function withGradMode<T>(op: string, mode: boolean, fn: () => T): T {
  if (typeof fn !== 'function') throw new Error(`${op}: expected a function, got ${show(fn)}`);
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
  return withGradMode('noGrad', false, fn);
}

/** Run `fn` with gradient recording on, even inside {@link noGrad}. */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode('enableGrad', true, fn);
}

/** Whether an op over `inputs` must be recorded. */
export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  return gradEnabled && inputs.some((t) => t?.requiresGrad);
}

// One set per checkpoint whose function is running without grad (checkpoint.ts): the tensors
// requiring grad that its ops read, which the function's gradient must reach.
const gradInputWatchers: Set<Tensor>[] = [];

/**
 * Run `fn` (with grad off) and return, with its result, every tensor requiring grad that an op
 * recorded in `fn` read: what `fn`'s gradient depends on, closure captures (parameters) included.
 */
export function watchGradInputs<T>(fn: () => T): { result: T; read: Set<Tensor> } {
  const read = new Set<Tensor>();
  gradInputWatchers.push(read);
  try {
    return { result: fn(), read };
  } finally {
    gradInputWatchers.splice(gradInputWatchers.lastIndexOf(read), 1);
  }
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
    if (!gradEnabled) for (const w of gradInputWatchers) for (const t of inputs) if (t?.requiresGrad) w.add(t);
    for (const s of saved) s.dispose();
    return output;
  }
  const r = reads.get(op) ?? { inputs: 'all', output: true };
  const versions: Node['versions'] = [];
  const at = (what: string, t: Tensor): void => void versions.push({ what, tensor: t, version: t._version });
  const which = r.inputs === 'all' ? inputs.map((_, i) => i) : r.inputs === 'none' ? [] : r.inputs;
  for (const i of which) if (inputs[i]) at(`input ${i}`, inputs[i]!);
  if (r.output) at('output', output);
  for (const [name, v] of Object.entries(attrs)) if (isTensor(v)) at(name, v);
  const node: Node = { op, inputs, attrs, saved, output: null, versions };
  output._setGradFn(node);
  return output;
}

// A Tensor, known here only by its shape (this file cannot import the class).
function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && '_version' in v && 'shape' in v && 'dispose' in v;
}

/** The backward engine, installed by `backward.ts` (so the tensor layer need not import it). */
export let runBackward: (root: Tensor, grad: Tensor | undefined, retainGraph: boolean) => void = () => {
  throw new Error('backward: the autograd engine is not loaded (import kiln from its entry point)');
};

export function installBackward(fn: typeof runBackward): void {
  runBackward = fn;
}
