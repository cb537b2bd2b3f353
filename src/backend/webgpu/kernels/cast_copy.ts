/** @internal cast and copy on webgpu (kernels/wgsl/cast_copy.wgsl). @module */
import type { CastArgs, CopyArgs } from '../../backend.js';
import { flat, g, ld, params, st, type Runtime } from './common.js';

export function cast(rt: Runtime, a: CastArgs): void {
  const x = g(a.x);
  const out = g(a.out);
  const ints = (d: string): boolean => d === 'i32' || d === 'bool';
  const ct = ints(x.dtype) && ints(out.dtype) ? 'i32' : 'f32';
  flat(rt, { module: 'cast_copy', entry: 'cast', defs: ld('x', x.dtype, ct) + st('out', out.dtype, ct), bindings: [x, out], params: params(out.size) }, out.size);
}

export function copy(rt: Runtime, a: CopyArgs): void {
  const n = a.shape.reduce((p, d) => p * d, 1);
  const p = params(n).u32(a.shape.length).i32(a.srcOffset).i32(a.dstOffset).ints(a.shape, 16, 1).ints(a.srcStrides, 16).ints(a.dstStrides, 16);
  flat(rt, { module: 'cast_copy', entry: 'copy', defs: '', bindings: [g(a.src), g(a.dst)], params: p }, n);
}
