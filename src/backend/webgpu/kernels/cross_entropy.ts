/** @internal crossEntropy and its backward on webgpu (kernels/wgsl/cross_entropy.wgsl). @module */
import type { CrossEntropyArgs, CrossEntropyBackwardArgs } from '../../backend.js';
import { flat, g, params, type Runtime } from './common.js';
import { rowLaunch } from './softmax.js';

export function crossEntropy(rt: Runtime, a: CrossEntropyArgs): void {
  if (a.rows === 0) return;
  const { defs, groups } = rowLaunch(rt, a.rows, a.classes);
  rt.run({
    module: 'cross_entropy',
    entry: 'forward',
    defs,
    bindings: [g(a.logits), g(a.targets), g(a.loss), g(a.lse)],
    params: params(a.rows).u32(a.classes).i32(a.ignoreIndex).f32(a.smoothing),
    groups,
    fault: { op: a.op, limit: a.classes },
  });
}

export function crossEntropyBackward(rt: Runtime, a: CrossEntropyBackwardArgs): void {
  const stride = Math.max(a.classes, 1);
  const n = a.rows * stride;
  flat(
    rt,
    {
      module: 'cross_entropy',
      entry: 'backward',
      defs: '',
      bindings: [g(a.logits), g(a.targets), g(a.lse), g(a.dloss), g(a.dlogits)],
      params: params(n).u32(a.classes).u32(stride).i32(a.ignoreIndex).f32(a.smoothing),
      fault: { op: a.op, limit: a.classes },
    },
    n,
  );
}
