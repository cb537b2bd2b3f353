/**
 * The backward engine: walks the tape from a root in reverse topological order, runs each
 * node's rule, sums gradients that meet at a tensor, and accumulates into `.grad` of leaves
 * (and of non-leaves that asked with `retainGrad()`). Intermediate gradients are freed as soon
 * as they are consumed, and each node's saved tensors after its rule ran (unless `retainGraph`).
 * @module
 */
import { fmt } from '../tensor/shape.js';
import { keep, tidy } from '../tensor/memory.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ew from '../tensor/ops/elementwise.js';
import { onesLike } from '../tensor/ops/creation.js';
import { gradRule, installBackward, noGrad } from './tape.js';
import { withAutocastState } from '../amp/autocast.js';

// Tensors reachable from root through gradFn, parents before children (reverse topological);
// the walk goes no further than a tensor in `stops`.
function topoOrder(root: Tensor, stops: ReadonlySet<Tensor>): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>([root]);
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = (!stops.has(t) && t.gradFn?.inputs) || [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i]!;
      if (child.requiresGrad && !seen.has(child)) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

function backward(root: Tensor, grad: Tensor | undefined, retainGraph: boolean): void {
  root._storage('backward');
  if (!root.requiresGrad)
    throw new Error(`backward: tensor ${fmt(root.shape)} does not require grad and has no grad_fn`);
  if (grad) {
    grad._storage('backward');
    if (grad.rank !== root.rank || grad.shape.some((d, i) => d !== root.shape[i]))
      throw new Error(`backward: grad ${fmt(grad.shape)} does not match tensor ${fmt(root.shape)}`);
  } else if (root.size !== 1)
    throw new Error(`backward: grad can be implied only for a one-element tensor, got shape ${fmt(root.shape)}; pass grad`);

  run(root, grad, retainGraph, []);
}

/**
 * @internal The gradients of `root` (given its gradient `grad`, of its shape) with respect to
 * each of `stops`, returned instead of accumulated (null where none flows): the graph is walked
 * from root as far as the stops and no further, as `torch.autograd.grad`. `.grad` of a leaf
 * reached that is not a stop is accumulated as by `backward()`. Checkpointing backpropagates
 * through a recomputed function this way, stopping at the tensors it read from outside.
 */
export function gradientsAt(root: Tensor, grad: Tensor, stops: readonly Tensor[], retainGraph = false): (Tensor | null)[] {
  return run(root, grad, retainGraph, stops);
}

function run(root: Tensor, grad: Tensor | undefined, retainGraph: boolean, stops: readonly Tensor[]): (Tensor | null)[] {
  const stopSet = new Set(stops);
  const reached = new Map<Tensor, Tensor>();
  return noGrad(() => {
    const grads = new Map<Tensor, Tensor>();
    const put = (t: Tensor, g: Tensor): void => {
      if (g.dtype !== t.dtype) {
        const c = ew.cast(g, t.dtype);
        g.dispose();
        g = c;
      }
      if (g.rank !== t.rank || g.shape.some((d, i) => d !== t.shape[i]))
        throw new Error(`backward: rule of '${t.gradFn?.op ?? 'leaf'}' input produced grad ${fmt(g.shape)} for tensor ${fmt(t.shape)}`);
      const prev = grads.get(t);
      if (prev) {
        grads.set(t, keep(ew.add(prev, g)));
        prev.dispose();
        g.dispose();
      } else grads.set(t, keep(g));
    };
    // every stored gradient is a distinct tensor we own (views share storage, never mutated)
    put(root, grad ? grad._view(grad.shape) : onesLike(root));

    try {
      for (const t of topoOrder(root, stopSet)) step(t);
    } catch (e) {
      for (const g of reached.values()) g.dispose();
      throw e;
    } finally {
      // on success this is what reached no leaf; on an error, everything still pending
      for (const g of grads.values()) g.dispose();
    }
    return stops.map((t) => reached.get(t) ?? null);

    function step(t: Tensor): void {
      const g = grads.get(t);
      if (!g) return;
      if (stopSet.has(t)) {
        reached.set(t, g);
        grads.delete(t);
        return;
      }
      const node = t.gradFn;
      if (!node || t.retainsGrad) accumulate(t, g);
      if (node) {
        if (node.freed || node.saved.some((s) => s.disposed) || node.inputs.some((s) => s.disposed))
          throw new Error(
            `backward: a tensor saved by '${node.op}' was freed (by dispose, or by a previous backward; pass retainGraph to backward twice)`,
          );
        for (const { what, tensor, version } of node.versions)
          if (!tensor.disposed && tensor._version !== version)
            throw new Error(
              `backward: '${node.op}' needs its ${what} ${fmt(tensor.shape)} ${tensor.dtype} as it was in the forward, but it was modified in place since (version ${version} → ${tensor._version}); clone it before changing it, or run the forward again`,
            );
        const inputGrads = tidy(() => distinct(gradRule(node.op)(g, node), g));
        inputGrads.forEach((ig, i) => {
          const input = node.inputs[i]!;
          if (ig && input.requiresGrad) put(input, ig);
          else ig?.dispose();
        });
        if (!retainGraph) {
          for (const s of node.saved) s.dispose();
          node.freed = true;
        }
      }
      grads.delete(t);
      if (t.grad !== g) g.dispose();
    }
  });
}

// A rule may return g itself, or one tensor for two inputs (add of equal shapes); each stored
// gradient must be a tensor of its own, so repeats become views (views share storage and grads
// are never written in place).
function distinct(grads: (Tensor | null)[], g: Tensor): (Tensor | null)[] {
  const seen = new Set<Tensor>([g]);
  return grads.map((ig) => {
    if (!ig) return ig;
    if (seen.has(ig)) return ig._view(ig.shape);
    seen.add(ig);
    return ig;
  });
}

// .grad += g for a leaf (or a retaining non-leaf); g becomes (or is added into) the owned grad.
function accumulate(t: Tensor, g: Tensor): void {
  if (t.grad) {
    const sum = keep(ew.add(t.grad, g));
    t.grad.dispose();
    t.grad = sum;
  } else t.grad = keep(g._isShared() ? ew.clone(g) : g._view(g.shape));
  for (const hook of t._postAccumulateGradHooks) hook(t);
}

// the backward runs in the dtypes the forward chose: an autocast region open around backward() does not apply to it
installBackward((root, grad, retainGraph) => withAutocastState([], () => backward(root, grad, retainGraph)));
