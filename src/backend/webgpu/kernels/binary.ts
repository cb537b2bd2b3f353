/**
 * @internal binary and where on webgpu (kernels/wgsl/binary.wgsl). Both index operands by strides
 * over a shape; the shape is collapsed first (size-1 dims dropped, dims contiguous in every
 * operand merged), so the common cases (equal contiguous shapes, a scalar or a row broadcast) run
 * with rank 1 or 2 whatever the tensors' rank.
 * @module
 */
import type { BinaryArgs, WhereArgs } from '../../backend.js';
import { flat, g, ld, params, st, type ComputeType, type Runtime } from './common.js';
import { F32_MATH } from './unary.js';

/** Dims after dropping 1s and merging neighbours whose outer stride is inner stride × inner size in every operand. */
function collapse(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const dims: number[] = [];
  const out = strides.map((): number[] => []);
  shape.forEach((n, d) => {
    if (n === 1) return;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, j) => out[j]![last] === s[d]! * n)) {
      dims[last]! *= n;
      out.forEach((o, j) => (o[last] = strides[j]![d]!));
    } else {
      dims.push(n);
      out.forEach((o, j) => o.push(strides[j]![d]!));
    }
  });
  return { shape: dims, strides: out };
}

/** The params both kernels read: n, rank, shape and three blocks of strides (unused ones 0). */
function stridedParams(shape: readonly number[], strides: readonly (readonly number[])[]): { n: number; p: ReturnType<typeof params> } {
  const n = shape.reduce((a, d) => a * d, 1);
  const c = collapse(shape, strides);
  const p = params(n).u32(c.shape.length).ints(c.shape, 16, 1);
  for (let j = 0; j < 3; j++) p.ints(c.strides[j] ?? [], 16);
  return { n, p };
}

const isInt = (dtype: string): boolean => dtype === 'i32' || dtype === 'bool';

export function binary(rt: Runtime, a: BinaryArgs): void {
  const x = g(a.a);
  const y = g(a.b);
  const out = g(a.out);
  const ct: ComputeType = isInt(x.dtype) && isInt(y.dtype) ? 'i32' : 'f32';
  const pow = ct === 'f32' && a.op === 'pow';
  const fn = pow ? 'm_pow' : `${ct === 'i32' ? 'bi' : 'bf'}_${a.op}`;
  const defs = ld('a', x.dtype, ct) + ld('b', y.dtype, ct) + st('out', out.dtype, ct) + `fn apply(x: ${ct}, y: ${ct}) -> ${ct} { return ${fn}(x, y); }\n` + (pow ? F32_MATH : '');
  const { n, p } = stridedParams(a.shape, [a.aStrides, a.bStrides]);
  flat(rt, { module: 'binary', entry: 'binary', defs, bindings: [x, y, out], params: p }, n);
}

export function where(rt: Runtime, a: WhereArgs): void {
  const { n, p } = stridedParams(a.shape, [a.condStrides, a.aStrides, a.bStrides]);
  flat(rt, { module: 'binary', entry: 'where', defs: '', bindings: [g(a.cond), g(a.a), g(a.b), g(a.out)], params: p }, n);
}
