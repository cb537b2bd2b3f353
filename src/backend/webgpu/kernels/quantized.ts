/**
 * @internal matmulInt8 on webgpu (kernels/wgsl/quantized.wgsl): the rows of a quantized into a
 * scratch storage by one pass, the products by a second. Plain loops: the int8 speed-up is the
 * cpu kernel's (VNNI); here the kernel keeps every backend able to run a quantized model.
 * @module
 */
import type { MatmulInt8Args } from '../../backend.js';
import { GpuStorage } from '../runtime.js';
import { flat, g, params, type Runtime } from './common.js';

export function matmulInt8(rt: Runtime, a: MatmulInt8Args): void {
  const { m, n, k } = a;
  if (m === 0 || n === 0) return;
  const kq = Math.ceil(k / 4);
  const xq = new GpuStorage('i32', Math.max(1, m * kq), rt.buffer(Math.max(1, m * kq) * 4));
  const factor = new GpuStorage('f32', m, rt.buffer(m * 4));
  const p = params(m).u32(n).u32(k).u32(kq);
  flat(rt, { module: 'quantized', entry: 'quant', defs: '', bindings: [g(a.a), xq, factor], params: p }, m);
  const bias = g(a.bias);
  flat(rt, { module: 'quantized', entry: 'main', defs: `const HAS_BIAS = ${bias !== null};\n`, bindings: [xq, g(a.w), g(a.scale), factor, g(a.out), bias], params: p }, m * n);
  rt.release(xq.buffer);
  rt.release(factor.buffer);
}
