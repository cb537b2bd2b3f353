/**
 * @internal reduce on webgpu (kernels/wgsl/reduce.wgsl): x `[outer, r, inner]` over r, in levels.
 *
 * Each level cuts r into chunks and writes one partial per chunk; while there is more than one
 * chunk the partials (`[outer, chunks, inner]`, two words each) are reduced again. Rows
 * (inner == 1) longer than {@link TREE_CHUNK} go to `tree`, a 64-wide workgroup per chunk;
 * everything else to `cols`, an invocation per chunk of at most {@link COL_CHUNK} elements
 * (taken with a stride, so reads are coalesced) once r passes {@link SERIAL}. A full sum of 10⁶
 * f32 is two levels of short runs and trees, never a long serial loop.
 *
 * Why not a workgroup per row everywhere: on lavapipe (CI's driver) a workgroup with barriers
 * costs tens of µs whatever it does: 65 600 rows of 65 took 2.5 s in 64-wide trees (12.8 s in
 * 256-wide ones) against 0.14 s with one invocation per row. Long rows keep the tree, which gives
 * a GPU four times the invocations of `cols` on a quarter of the serial run; there lavapipe pays
 * about 2× (a full sum of 10⁶: ~20 ms against ~10 ms, on a loaded 2-core machine).
 *
 * i32 sums carry 64 bits through the levels; the last level notes the lowest output that
 * overflowed and `ovf_report` faults with its sum, as the reference does.
 * @module
 */
import type { ReduceArgs } from '../../backend.js';
import { REDUCE_OP_CODE } from '../../ops.gen.js';
import { GpuStorage } from '../runtime.js';
import { computeType, flat, g, ld, Params, st, type Runtime } from './common.js';

/** Elements per `tree` workgroup: 16 per invocation before the workgroup's tree (TREE_WG = 64). */
const TREE_CHUNK = 16 * 64;
/** Runs along r up to this long are one invocation's serial loop. */
const SERIAL = 256;
/** The most elements one `cols` invocation combines when r is longer. */
const COL_CHUNK = 64;
/** No output (no element): the start of an atomic minimum. */
const NONE = 0xffffffff;

export function reduce(rt: Runtime, a: ReduceArgs): void {
  const x = g(a.x);
  const out = g(a.out);
  const { outer, inner } = a;
  if (outer * inner === 0) return;
  const ct = computeType(x.dtype);
  const intSum = a.reduceOp === 'sum' && ct === 'i32';
  const base =
    `alias T = ${ct};\nconst OP: u32 = ${REDUCE_OP_CODE[a.reduceOp]}u;\nconst FLOAT: bool = ${ct === 'f32'};\n` +
    ld('x', x.dtype, ct) +
    st('out', out.dtype, ct);
  const level = (fromPairs: boolean, toPairs: boolean): string => base + `const FROM_PAIRS: bool = ${fromPairs};\nconst TO_PAIRS: bool = ${toPairs};\n`;

  // i32 sums: [lowest overflowing output, the high word of each output]
  const ovf = intSum ? new GpuStorage('i32', 1 + outer * inner, rt.buffer(4 * (1 + outer * inner))) : null;
  if (ovf) rt.run({ module: 'reduce', entry: 'ovf_init', defs: level(false, false), bindings: [ovf], params: new Params().u32(NONE), groups: [1, 1, 1] });

  let src = x;
  let fromPairs = false;
  let r = a.r;
  for (;;) {
    const tree = inner === 1 && r > TREE_CHUNK;
    const chunks = tree ? Math.ceil(r / TREE_CHUNK) : r <= SERIAL ? 1 : Math.ceil(r / COL_CHUNK);
    const toPairs = chunks > 1;
    const dst = toPairs ? new GpuStorage('i32', 2 * outer * chunks * inner, rt.buffer(8 * outer * chunks * inner)) : out;
    const defs = level(fromPairs, toPairs);
    const bindings = [ovf, dst, src];
    if (tree) {
      const groups = outer * chunks;
      const y = Math.ceil(groups / rt.maxGroups);
      const p = new Params().u32(outer).u32(r).u32(TREE_CHUNK).u32(chunks);
      rt.run({ module: 'reduce', entry: 'tree', defs, bindings, params: p, groups: [Math.ceil(groups / y), y, 1] });
    } else {
      const n = outer * chunks * inner;
      flat(rt, { module: 'reduce', entry: 'cols', defs, bindings, params: new Params().u32(n).u32(r).u32(inner).u32(chunks) }, n);
    }
    // later users of a released buffer are later on the queue
    if (fromPairs) rt.release(src.buffer);
    if (!toPairs) break;
    src = dst;
    fromPairs = true;
    r = chunks;
  }

  if (ovf) {
    rt.run({ module: 'reduce', entry: 'ovf_report', defs: level(false, false), bindings: [ovf, out], params: new Params(), groups: [1, 1, 1], fault: { op: a.op } });
    rt.release(ovf.buffer);
  }
}
