/**
 * @internal unary and unaryGrad on webgpu (kernels/wgsl/unary.wgsl), one pipeline per op and
 * dtype, whose `apply` calls the op's function in the WGSL file by name (so a pipeline compiles
 * only the math its op uses). Floats compute in f32; the integral ops (neg, abs, sign, relu,
 * floor, ceil, round) keep i32 and bool inputs in i32 as the reference does; any other op on an
 * integer input computes in f32 and stores as a cast would.
 * @module
 */
import type { UnaryArgs, UnaryGradArgs } from '../../backend.js';
import { UNARY_INTEGRAL_OPS } from '../../ops.gen.js';
import { WGSL } from '../wgsl.gen.js';
import { flat, g, ld, params, st, type ComputeType, type Runtime } from './common.js';

/**
 * kiln's f32 math library (`m_exp`, `m_expm1`, `m_log`, `m_pow`, `m_sin`, `m_cos`, `m_tanh`,
 * `m_erf`, `m_erfc`, `m_sigmoid`, `m_gelu`, `m_gelu_tanh`, `m_silu`, …): the shared text of
 * unary.wgsl, for any kernel's `defs`.
 */
export const F32_MATH: string = WGSL.unary.shared;

const INTEGRAL = new Set<string>(UNARY_INTEGRAL_OPS);
const isInt = (dtype: string): boolean => dtype === 'i32' || dtype === 'bool';

export function unary(rt: Runtime, a: UnaryArgs): void {
  const x = g(a.x);
  const out = g(a.out);
  const ct: ComputeType = isInt(x.dtype) && INTEGRAL.has(a.op) ? 'i32' : 'f32';
  const fn = `${ct === 'i32' ? 'ui' : 'uf'}_${a.op}`;
  const defs = ld('x', x.dtype, ct) + st('out', out.dtype, ct) + `fn apply(v: ${ct}) -> ${ct} { return ${fn}(v); }\n`;
  flat(rt, { module: 'unary', entry: 'unary', defs, bindings: [x, out], params: params(out.size) }, out.size);
}

export function unaryGrad(rt: Runtime, a: UnaryGradArgs): void {
  const x = g(a.x);
  const dy = g(a.dy);
  const out = g(a.out);
  const defs = ld('x', x.dtype, 'f32') + ld('dy', dy.dtype, 'f32') + st('out', out.dtype, 'f32') + `fn apply(v: f32, g: f32) -> f32 { return ug_${a.op}(v, g); }\n`;
  flat(rt, { module: 'unary', entry: 'grad', defs, bindings: [x, dy, out], params: params(out.size) }, out.size);
}
