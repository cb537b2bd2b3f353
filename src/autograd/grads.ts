/**
 * Every backward rule, one per differentiable op, keyed by the op name its forward records.
 * A rule maps the output gradient `g` to one gradient per input (null where the input needs
 * none). Rules run with grad mode off and use ordinary tensor ops; broadcasting is undone by
 * `sumTo`. Composite ops (mean, var, logsumexp, dropout, …) have no rule: they differentiate
 * through their parts.
 * @module
 */
import { UNARY_GRAD_OPS, type Activation } from '../backend/ops.gen.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ew from '../tensor/ops/elementwise.js';
import * as nn from '../tensor/ops/nn.js';
import { attentionBackward, type AttentionGeometry } from '../tensor/ops/attention.js';
import { sum } from '../tensor/ops/reduce.js';
import * as sh from '../tensor/ops/shape_ops.js';
import { defineGrad, type Node } from './tape.js';

const wants = (node: Node, i: number): boolean => node.inputs[i]!.requiresGrad;

// The third argument of defineGrad says what a rule reads of the forward besides the output
// gradient (every input by default); autograd refuses to run a rule on a tensor changed in place.

// ---- elementwise ---------------------------------------------------------------------------

defineGrad('add', (g, n) => [wants(n, 0) ? sh.sumTo(g, n.inputs[0]!.shape) : null, wants(n, 1) ? sh.sumTo(g, n.inputs[1]!.shape) : null], { inputs: 'none' });

defineGrad('sub', (g, n) => [
  wants(n, 0) ? sh.sumTo(g, n.inputs[0]!.shape) : null,
  wants(n, 1) ? sh.sumTo(ew.neg(g), n.inputs[1]!.shape) : null,
], { inputs: 'none' });

defineGrad('mul', (g, n) => {
  const [a, b] = n.inputs as [Tensor, Tensor];
  return [wants(n, 0) ? sh.sumTo(ew.mul(g, b), a.shape) : null, wants(n, 1) ? sh.sumTo(ew.mul(g, a), b.shape) : null];
});

defineGrad('div', (g, n) => {
  const [a, b] = n.inputs as [Tensor, Tensor];
  // d(a/b)/db = −(a/b)/b
  return [
    wants(n, 0) ? sh.sumTo(ew.div(g, b), a.shape) : null,
    wants(n, 1) ? sh.sumTo(ew.neg(ew.div(ew.mul(g, n.output!), b)), b.shape) : null,
  ];
}, { inputs: [1], output: true });

defineGrad('pow', (g, n) => {
  const [a, b] = n.inputs as [Tensor, Tensor];
  // d(aᵇ)/da = b·aᵇ⁻¹, d(aᵇ)/db = aᵇ·ln a
  return [
    wants(n, 0) ? sh.sumTo(ew.mul(g, ew.mul(b, ew.pow(a, ew.sub(b, 1)))), a.shape) : null,
    wants(n, 1) ? sh.sumTo(ew.mul(g, ew.mul(n.output!, ew.log(a))), b.shape) : null,
  ];
}, { inputs: 'all', output: true });

// maximum/minimum: the gradient goes to the winner, split evenly on ties (as PyTorch)
function extremeRule(g: Tensor, n: Node, greater: boolean): (Tensor | null)[] {
  const [a, b] = n.inputs as [Tensor, Tensor];
  const share = (x: Tensor, y: Tensor): Tensor => {
    const win = greater ? ew.gt(x, y) : ew.lt(x, y);
    const tie = ew.eq(x, y);
    const w = ew.add(ew.cast(win, g.dtype), ew.mul(ew.cast(tie, g.dtype), 0.5));
    return ew.mul(g, w);
  };
  return [wants(n, 0) ? sh.sumTo(share(a, b), a.shape) : null, wants(n, 1) ? sh.sumTo(share(b, a), b.shape) : null];
}
defineGrad('maximum', (g, n) => extremeRule(g, n, true));
defineGrad('minimum', (g, n) => extremeRule(g, n, false));

defineGrad('where', (g, n) => {
  const cond = n.attrs.cond as Tensor;
  const [a, b] = n.inputs as [Tensor, Tensor];
  return [
    wants(n, 0) ? sh.sumTo(ew.where(cond, g, 0), a.shape) : null,
    wants(n, 1) ? sh.sumTo(ew.where(cond, 0, g), b.shape) : null,
  ];
}, { inputs: 'none' });

for (const op of UNARY_GRAD_OPS) defineGrad(op, (g, n) => [ew.unaryBackward(op, n.inputs[0]!, g)]);

defineGrad('cast', (g, n) => [ew.cast(g, n.inputs[0]!.dtype)], { inputs: 'none' });
defineGrad('clone', (g) => [g], { inputs: 'none' });
defineGrad('to', (g, n) => [g.to(n.attrs.from as string)], { inputs: 'none' });

// ---- reductions ----------------------------------------------------------------------------

// g reshaped to the keepdim shape, so it broadcasts against the input
function keepShape(g: Tensor, n: Node): Tensor {
  const x = n.inputs[0]!;
  const axes = n.attrs.axes as number[];
  return sh.reshape(g, x.shape.map((d, i) => (axes.includes(i) ? 1 : d)));
}

defineGrad('sum', (g, n) => [sh.expand(keepShape(g, n), n.inputs[0]!.shape)], { inputs: 'none' });

function extremeReduceRule(g: Tensor, n: Node): Tensor[] {
  const x = n.inputs[0]!;
  const axes = n.attrs.axes as number[];
  const hit = ew.eq(x, keepShape(n.output!, n));
  const count = sum(hit, axes, true);
  return [ew.where(hit, ew.div(keepShape(g, n), count), 0)];
}
defineGrad('max', extremeReduceRule, { inputs: 'all', output: true });
defineGrad('min', extremeReduceRule, { inputs: 'all', output: true });

defineGrad('norm', (g, n) => {
  const x = n.inputs[0]!;
  const p = n.attrs.p as number;
  const nrm = keepShape(n.output!, n);
  const gk = keepShape(g, n);
  const zero = ew.eq(nrm, 0);
  const safe = ew.where(zero, 1, nrm);
  let dx: Tensor;
  if (p === Infinity) {
    // like max: shared among the entries of largest magnitude
    const hit = ew.eq(ew.abs(x), nrm);
    const count = sum(hit, n.attrs.axes as number[], true);
    dx = ew.where(hit, ew.mul(ew.sign(x), ew.div(gk, count)), 0);
  } else {
    // d‖x‖_p/dx = sign(x)·|x|^(p−1) / ‖x‖^(p−1)
    const num = p === 2 ? x : ew.mul(ew.sign(x), ew.pow(ew.abs(x), p - 1));
    const den = p === 2 ? safe : ew.pow(safe, p - 1);
    dx = ew.mul(ew.div(num, den), gk);
  }
  return [ew.where(zero, 0, dx)];
}, { inputs: 'all', output: true });

// ---- shape and indexing --------------------------------------------------------------------

defineGrad('reshape', (g, n) => [sh.reshape(g, n.attrs.shape as number[])], { inputs: 'none' });

defineGrad('permute', (g, n) => {
  const dims = n.attrs.dims as number[];
  const inverse = dims.map((_, i) => dims.indexOf(i));
  return [sh.permute(g, inverse)];
}, { inputs: 'none' });

defineGrad('expand', (g, n) => [sh.sumTo(g, n.attrs.shape as number[])], { inputs: 'none' });

defineGrad('slice', (g, n) => [
  sh.sliceBackward(g, n.attrs.shape as number[], n.attrs.axis as number, n.attrs.start as number, n.attrs.step as number),
], { inputs: 'none' });

defineGrad('concat', (g, n) => {
  const axis = n.attrs.axis as number;
  return sh.split(g, n.attrs.sizes as number[], axis).map((p, i) => (wants(n, i) ? p : null));
}, { inputs: 'none' });

defineGrad('indexSelect', (g, n) => [
  sh.scatterAddInto(n.attrs.shape as number[], n.attrs.axis as number, n.attrs.index as Tensor, g, true, `${n.attrs.op as string} (backward)`),
], { inputs: 'none' });

defineGrad('gather', (g, n) => [
  sh.scatterAddInto(n.attrs.shape as number[], n.attrs.axis as number, n.attrs.index as Tensor, g, false, 'gather (backward)'),
], { inputs: 'none' });

defineGrad('scatterAdd', (g, n) => [
  wants(n, 0) ? g : null,
  wants(n, 1) ? sh.gather(g, n.attrs.axis as number, n.attrs.index as Tensor) : null,
], { inputs: 'none' });

// ---- nn ------------------------------------------------------------------------------------

defineGrad('matmul', (g, n) => {
  const [a, b] = n.inputs as [Tensor, Tensor];
  const tA = n.attrs.transA as boolean;
  const tB = n.attrs.transB as boolean;
  // stored operands: A = tA ? aᵀ : a, B = tB ? bᵀ : b, out = A·B
  const da = !wants(n, 0)
    ? null
    : tA
      ? nn.matmul(b, g, { transA: tB, transB: true }) // (g·Bᵀ)ᵀ = B·gᵀ
      : nn.matmul(g, b, { transB: !tB }); // g·Bᵀ
  const db = !wants(n, 1)
    ? null
    : tB
      ? nn.matmul(g, a, { transA: true, transB: tA }) // (Aᵀ·g)ᵀ = gᵀ·A
      : nn.matmul(a, g, { transA: !tA }); // Aᵀ·g
  return [da && sh.sumTo(da, a.shape), db && sh.sumTo(db, b.shape)];
});

defineGrad('linear', (g, n) => {
  const [x, w] = n.inputs as [Tensor, Tensor];
  // a fused activation: back through it first, at the pre-activation its forward kept
  const act = n.attrs.activation as Exclude<Activation, 'none'> | undefined;
  if (act) g = ew.unaryBackward(act, n.saved[0]!, g);
  const rows = x.shape.slice(0, -1).reduce((p, d) => p * d, 1);
  const g2 = sh.reshape(g, [rows, w.shape[0]!]);
  const x2 = sh.reshape(x, [rows, w.shape[1]!]);
  return [
    wants(n, 0) ? nn.matmul(g, w) : null,
    wants(n, 1) ? nn.matmul(g2, x2, { transA: true }) : null,
    n.inputs.length > 2 && wants(n, 2) ? sum(g2, 0) : null,
  ];
}, { inputs: [0, 1] });

defineGrad('softmax', (g, n) => {
  const y = n.output!;
  // dx = y·(g − Σ g·y)
  return [ew.mul(y, ew.sub(g, sum(ew.mul(g, y), -1, true)))];
}, { inputs: 'none', output: true });

defineGrad('logSoftmax', (g, n) => {
  const y = n.output!;
  // dx = g − softmax·Σ g
  return [ew.sub(g, ew.mul(ew.exp(y), sum(g, -1, true)))];
}, { inputs: 'none', output: true });

defineGrad('crossEntropy', (g, n) => [
  nn.crossEntropyBackward(n.inputs[0]!, n.attrs.targets as Tensor, n.saved[0]!, g, n.attrs.ignoreIndex as number, n.attrs.smoothing as number),
]);

// The gradients were computed in the forward, chunk by chunk (the logits are gone): scale them by
// the loss's gradient (a scalar). `want` says which inputs got one, in order.
defineGrad('linearCrossEntropy', (g, n) => {
  const saved = [...n.saved];
  return (n.attrs.want as boolean[]).slice(0, n.inputs.length).map((w) => (w ? ew.mul(saved.shift()!, g) : null));
}, { inputs: 'none' });

function normRule(g: Tensor, n: Node, rms: boolean): (Tensor | null)[] {
  const hasW = n.attrs.hasWeight as boolean;
  const hasB = n.attrs.hasBias as boolean;
  const x = n.inputs[0]!;
  const w = hasW ? n.inputs[1]! : null;
  const [dx, ...rest] = nn.normBackward(g, x, w, n.saved[0]!, n.saved[1]!, hasB, n.attrs.rows as number, n.attrs.cols as number, rms);
  const out: (Tensor | null)[] = [dx!];
  if (hasW) out.push(rest.shift()!);
  if (hasB) out.push(sh.reshape(rest.shift()!, n.inputs[n.inputs.length - 1]!.shape));
  return out;
}
defineGrad('layerNorm', (g, n) => normRule(g, n, false));
defineGrad('rmsNorm', (g, n) => normRule(g, n, true));

// both attention ops save [lse, mask?]; the geometry says where q, k, v live in their inputs
const attentionRule = (g: Tensor, n: Node): Tensor[] =>
  attentionBackward(n.inputs, n.output!, n.saved[0]!, g, n.saved[1] ?? null, n.attrs.geometry as AttentionGeometry);
defineGrad('attention', attentionRule, { inputs: 'all', output: true });
defineGrad('packedAttention', attentionRule, { inputs: 'all', output: true });
