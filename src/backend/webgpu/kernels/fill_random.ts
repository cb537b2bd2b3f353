/** @internal fill and random on webgpu (kernels/wgsl/fill_random.wgsl). @module */
import type { FillArgs, RandomArgs } from '../../backend.js';
import { encode } from '../../dtype.js';
import { flat, g, params, st, type Runtime } from './common.js';
import { F32_MATH } from './unary.js';

export function fill(rt: Runtime, a: FillArgs): void {
  const out = g(a.out);
  const word = new Uint32Array(1);
  const v = encode([a.value], out.dtype);
  word[0] = out.dtype === 'f32' ? new Uint32Array(new Float32Array([v[0]!]).buffer)[0]! : (v[0]! >>> 0);
  flat(rt, { module: 'fill_random', entry: 'fill', defs: '', bindings: [out], params: params(out.size).u32(word[0]!) }, out.size);
}

export function random(rt: Runtime, a: RandomArgs): void {
  const out = g(a.out);
  const dist = a.dist === 'uniform' ? 0 : a.dist === 'normal' ? 1 : 2;
  const p = params(out.size).u32(dist);
  if (dist === 2) p.i32(a.p0).u32(a.p1 - a.p0);
  else p.f32(a.p0).f32(a.p1);
  p.u64(a.seed).u64(a.offset);
  // randint stores integers exactly; the other draws round from f32
  const intStore = out.dtype === 'i32' ? 'fn st_out_int(i: u32, v: i32) { out[i] = bitcast<u32>(v); }\n' : 'fn st_out_int(i: u32, v: i32) { st_out(i, f32(v)); }\n';
  flat(rt, { module: 'fill_random', entry: 'random', defs: st('out', out.dtype, 'f32') + intStore + F32_MATH, bindings: [out], params: p }, Math.ceil(out.size / 4));
}
