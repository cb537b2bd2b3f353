/**
 * @internal matmul on webgpu (kernels/wgsl/matmul.wgsl): f32 only (the tensor layer casts halves).
 *
 * Three kernels, one result: `lanes` (rows shared through subgroupBroadcast, no barriers) on CPU
 * drivers with subgroups of 8 or more, `regs` (4×4 outputs per invocation, no barriers) on CPU
 * drivers without, `shared` (64×64 tiles staged in workgroup memory) on GPUs. On lavapipe a
 * barrier costs more than the loads it saves, and `lanes` loads 20 elements per lane for 128
 * products where `regs` loads 32 for 64: 1024³ f32 runs at 5.9 (lanes), 2.7 (regs) and 1.4
 * (shared) GFLOP/s (Mesa 25.0 llvmpipe, 2 cores shared with other work, mean of 5 synced runs).
 * `KILN_WEBGPU_MATMUL=lanes|regs|shared` overrides the choice (for experiments and tests).
 * @module
 */
import type { MatmulArgs } from '../../backend.js';
import { g, Params, type Runtime } from './common.js';

type Variant = 'lanes' | 'regs' | 'shared';

/** `regs`: 8×8 invocations of one 4×4 block each, a 32×32 output tile. */
const REGS = { wgX: 8, wgY: 8, rm: 1, rn: 1 };
/** `lanes`: 8 rows (R = 1) per workgroup; R = 2 measured no faster on lavapipe and compiles slower. */
const LANES_R = 1;
/** The output tile edge of `shared` (16×16 invocations of 4×4). */
const SHARED_TILE = 64;

const ACT = { none: 0, relu: 1, gelu: 2, gelu_tanh: 3, silu: 4 } as const;

interface Choice {
  variant: Variant;
  /** The subgroup width `lanes` runs at (its workgroup size), when subgroups are usable. */
  lanes: number;
}

const choices = new WeakMap<Runtime, Choice>();

/** What this device runs: decided once per runtime from the adapter, unless the environment says. */
function choose(rt: Runtime): Choice {
  let c = choices.get(rt);
  if (!c) {
    const info = (rt.device as GPUDevice & { adapterInfo?: GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number } }).adapterInfo;
    const text = `${info?.description ?? ''} ${info?.device ?? ''} ${info?.architecture ?? ''}`.toLowerCase();
    const cpu = /llvmpipe|lavapipe|swiftshader|software/.test(text);
    // `lanes` broadcasts from lanes 0..7, so every subgroup must have at least 8
    const min = rt.device.features.has('subgroups') ? (info?.subgroupMinSize ?? 0) : 0;
    const lanes = min >= 8 ? Math.min(64, Math.max(min, info?.subgroupMaxSize ?? min)) : 0;
    c = { variant: cpu ? (lanes ? 'lanes' : 'regs') : 'shared', lanes };
    const env = typeof process !== 'undefined' ? process.env.KILN_WEBGPU_MATMUL : undefined;
    if (env === 'lanes' || env === 'regs' || env === 'shared') {
      if (env === 'lanes' && !lanes) throw new Error('webgpu: KILN_WEBGPU_MATMUL=lanes needs subgroups of at least 8 invocations, which this adapter lacks');
      c.variant = env;
    }
    choices.set(rt, c);
  }
  return c;
}

/**
 * The batch dimensions with size-1 dimensions dropped and neighbours merged where both operands
 * step through them as one (a contiguous batch of any rank becomes one dimension).
 */
function collapse(shape: readonly number[], sa: readonly number[], sb: readonly number[]): { shape: number[]; sa: number[]; sb: number[] } {
  const r = { shape: [] as number[], sa: [] as number[], sb: [] as number[] };
  for (let d = 0; d < shape.length; d++) {
    const size = shape[d]!;
    if (size === 1) continue;
    const last = r.shape.length - 1;
    if (last >= 0 && r.sa[last] === sa[d]! * size && r.sb[last] === sb[d]! * size) {
      r.shape[last]! *= size;
      r.sa[last] = sa[d]!;
      r.sb[last] = sb[d]!;
    } else {
      r.shape.push(size);
      r.sa.push(sa[d]!);
      r.sb.push(sb[d]!);
    }
  }
  return r;
}

export function matmul(rt: Runtime, a: MatmulArgs): void {
  const A = g(a.a);
  const B = g(a.b);
  const out = g(a.out);
  const bias = g(a.bias);
  const preact = g(a.preact);
  for (const s of [A, B, out, ...(bias ? [bias] : []), ...(preact ? [preact] : [])])
    if (s.dtype !== 'f32') throw new Error(`webgpu: matmul computes in f32 only, got ${s.dtype} (the tensor layer casts to f32 first)`);
  const { m, n, k, transA, transB } = a;
  const batch = collapse(a.batchShape, a.aBatchStrides, a.bBatchStrides);
  const batches = batch.shape.reduce((p, d) => p * d, 1);
  if (m === 0 || n === 0 || batches === 0) return;
  // a vec4 load needs the stored rows (so every row start) and every batch offset on 4 elements
  const aligned = (rowLen: number, strides: number[]): boolean => rowLen % 4 === 0 && strides.every((s) => s % 4 === 0);
  const { variant, lanes } = choose(rt);
  let defs =
    `const TRANS_A = ${transA};\nconst TRANS_B = ${transB};\n` +
    `const A_VEC = ${aligned(transA ? m : k, batch.sa)};\nconst B_VEC = ${aligned(transB ? k : n, batch.sb)};\n` +
    `const ACCUMULATE = ${a.accumulate};\nconst HAS_PREACT = ${preact !== null};\nconst HAS_BIAS = ${bias !== null};\nconst ACT = ${ACT[a.activation]}u;\n`;
  // output rows × columns per workgroup, and rows per invocation (the epilogue's trip count)
  let tileRows: number, tileCols: number, rowsEach: number;
  if (variant === 'lanes') {
    defs = `enable subgroups;\n${defs}const WG = ${lanes}u;\nconst R = ${LANES_R}u;\n`;
    tileRows = rowsEach = 8 * LANES_R;
    tileCols = 4 * lanes;
  } else if (variant === 'regs') {
    defs += `const WG_X = ${REGS.wgX}u;\nconst WG_Y = ${REGS.wgY}u;\nconst RM = ${REGS.rm}u;\nconst RN = ${REGS.rn}u;\n`;
    tileRows = 4 * REGS.rm * REGS.wgY;
    tileCols = 4 * REGS.rn * REGS.wgX;
    rowsEach = 4 * REGS.rm * REGS.rn;
  } else {
    tileRows = tileCols = SHARED_TILE;
    rowsEach = 4;
  }
  const rowTiles = Math.ceil(m / tileRows);
  const colTiles = Math.ceil(n / tileCols);
  const max = rt.maxGroups;
  // grid x: row tiles, y: column tiles, z: batches (matmul.wgsl says why rows go fastest); one
  // dispatch unless a dimension passes the per-dimension limit, then slices told where they start
  for (let z0 = 0; z0 < batches; z0 += max)
    for (let r0 = 0; r0 < rowTiles; r0 += max)
      for (let c0 = 0; c0 < colTiles; c0 += max) {
        const params = new Params()
          .u32(m).u32(n).u32(k).u32(batch.shape.length).u32(z0).u32(r0).u32(c0).u32(rowsEach)
          .ints(batch.shape, 16, 1).ints(batch.sa, 16).ints(batch.sb, 16);
        rt.run({
          module: 'matmul',
          entry: variant,
          defs,
          bindings: [A, B, out, bias, preact],
          params,
          groups: [Math.min(max, rowTiles - r0), Math.min(max, colTiles - c0), Math.min(max, batches - z0)],
        });
      }
}
