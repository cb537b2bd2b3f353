/**
 * @internal gather, scatterAdd and check on webgpu (kernels/wgsl/index.wgsl).
 *
 * gather copies words, so it takes every dtype. scatterAdd accumulates with atomics on the
 * destination words: f32 sums may differ from the reference by their order only. check finds the
 * lowest failing element in one pass (an atomic minimum into a scratch word) and reports it in a
 * second, so the fault names the element the reference names.
 * @module
 */
import type { CheckArgs, GatherArgs, ScatterAddArgs } from '../../backend.js';
import type { DType } from '../../dtype.js';
import { GpuStorage } from '../runtime.js';
import { flat, g, Params, type Runtime } from './common.js';

// [0] elements, [1] n, [2] inner, [3] srcDim, [4..6] index strides
function indexParams(a: GatherArgs | ScatterAddArgs, elements: number): Params {
  const p = new Params().u32(elements).u32(a.n).u32(a.inner).u32(a.srcDim);
  for (const s of a.indexStrides) p.u32(s);
  return p;
}

export function gather(rt: Runtime, a: GatherArgs): void {
  const n = a.outer * a.n * a.inner;
  const fault = { op: a.op, limit: a.srcDim };
  flat(rt, { module: 'index', entry: 'gather', defs: '', bindings: [g(a.x), g(a.out), g(a.index)], params: indexParams(a, n), fault }, n);
}

const SCATTER_MODE: Partial<Record<DType, number>> = { f32: 0, i32: 1, bool: 2 };

export function scatterAdd(rt: Runtime, a: ScatterAddArgs): void {
  const dst = g(a.dst);
  const mode = SCATTER_MODE[dst.dtype];
  if (mode === undefined) throw new Error(`${a.op}: webgpu scatterAdd computes in f32, i32 and bool, not ${dst.dtype}`);
  const n = a.outer * a.n * a.inner;
  const fault = { op: a.op, limit: a.srcDim };
  const defs = `const MODE: u32 = ${mode}u;\n`;
  flat(rt, { module: 'index', entry: 'scatter_add', defs, bindings: [dst, g(a.src), g(a.index)], params: indexParams(a, n), fault }, n);
}

// values[i] as the fault's value: the bits and their kind (0 i32, 1 f32), halves widened to f32
function valueBits(dtype: DType): string {
  const [bits, kind] =
    dtype === 'f32' ? ['values[i]', 1]
    : dtype === 'f16' ? ['bitcast<u32>(f16_to_f32(values[i]))', 1]
    : dtype === 'bf16' ? ['bitcast<u32>(bf16_to_f32(values[i]))', 1]
    : ['values[i]', 0]; // i32, and bool as 0 or 1
  return `const KIND: u32 = ${kind}u;\nfn value_bits(i: u32) -> u32 { return ${bits}; }\n`;
}

export function check(rt: Runtime, a: CheckArgs): void {
  const cond = g(a.cond);
  const values = g(a.values);
  if (cond.size === 0) return;
  const first = new GpuStorage('i32', 1, rt.buffer(4));
  rt.run({ module: 'index', entry: 'check_init', defs: '', bindings: [first], params: new Params().u32(0xffffffff), groups: [1, 1, 1] });
  flat(rt, { module: 'index', entry: 'check_scan', defs: '', bindings: [first, cond], params: new Params().u32(cond.size) }, cond.size);
  const defs = `const HAS_VALUES: bool = ${values !== null};\n` + valueBits(values?.dtype ?? 'i32');
  const fault = { op: a.op, message: a.message };
  rt.run({ module: 'index', entry: 'check_report', defs, bindings: [first, values], params: new Params(), groups: [1, 1, 1], fault });
  // later users of the scratch word are later on the queue
  rt.release(first.buffer);
}
