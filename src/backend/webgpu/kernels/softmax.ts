/**
 * @internal softmax and log-softmax on webgpu (kernels/wgsl/softmax.wgsl), and what the row
 * kernels of softmax, norm and cross_entropy share: how rows are spread over invocations.
 * @module
 */
import type { SoftmaxArgs } from '../../backend.js';
import { g, params, type Runtime } from './common.js';

/** Workgroup width of the row kernels (their `WGS`). */
const ROW_WG = 256;
/** Invocations a launch of few long rows aims for on a GPU (lanes are added up to it). */
const TARGET = 8192;

const software = new WeakMap<Runtime, boolean>();
let forced: number | null = null;

/**
 * For tests: every row kernel uses `lanes` (a power of two ≤ 256) lanes per row, or the policy
 * again with null, so the GPU's path runs on a CPU driver too.
 */
export function forceRowLanes(lanes: number | null): void {
  if (lanes !== null && !(lanes >= 1 && lanes <= ROW_WG && (lanes & (lanes - 1)) === 0)) throw new Error(`forceRowLanes: ${lanes} is not a power of two in [1, ${ROW_WG}]`);
  forced = lanes;
}

/** Whether the device is a CPU driver (lavapipe, SwiftShader, WARP). */
function onCpu(rt: Runtime): boolean {
  let s = software.get(rt);
  if (s === undefined) {
    const i = (rt.device as Partial<GPUDevice>).adapterInfo;
    const names = i ? `${i.vendor} ${i.architecture} ${i.device} ${i.description}` : '';
    s = (i as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader|\bwarp\b/i.test(names);
    software.set(rt, s);
  }
  return s;
}

/**
 * How many invocations (LANES, a power of two ≤ ROW_WG) share a row of `cols` among `rows`.
 * On a CPU driver always one: lavapipe runs a workgroup's barriers so slowly that one lane per
 * row won at every shape measured, even 8 rows of 65536 in a single workgroup (softmax, 2 busy
 * cores: [4096,64] 4 ms against 11–90 ms with 8 to 256 lanes per row, [1024,256] 3 against
 * 7–38, [32,16384] 13 against 21–47). On a GPU (not measured here): a warp per row once rows
 * are long, so that adjacent lanes read adjacent words, and more lanes while the launch has
 * fewer than TARGET invocations; never more lanes than an eighth of the row.
 */
export function rowLanes(rt: Runtime, rows: number, cols: number): number {
  if (forced !== null) return forced;
  if (onCpu(rt)) return 1;
  let lanes = 1;
  while (lanes < ROW_WG && lanes * 8 <= cols && (lanes < 32 || rows * lanes < TARGET)) lanes *= 2;
  return lanes;
}

/**
 * The defs (WGS, LANES) and workgroups of a row kernel over `rows` rows of `cols`: ROW_WG / LANES
 * rows per workgroup, the workgroups as a 2-D grid within the per-dimension limit (the kernels
 * number them y·nx + x).
 */
export function rowLaunch(rt: Runtime, rows: number, cols: number): { defs: string; groups: [number, number, number] } {
  const lanes = rowLanes(rt, rows, cols);
  const groups = Math.ceil(rows / (ROW_WG / lanes));
  const y = Math.ceil(groups / rt.maxGroups);
  return { defs: `const WGS = ${ROW_WG}u;\nconst LANES = ${lanes}u;\n`, groups: [Math.ceil(groups / y), y, 1] };
}

export function softmax(rt: Runtime, a: SoftmaxArgs): void {
  if (a.rows === 0 || a.cols === 0) return;
  const { defs, groups } = rowLaunch(rt, a.rows, a.cols);
  rt.run({ module: 'softmax', entry: 'main', defs: `${defs}const LOG = ${a.log};\n`, bindings: [g(a.x), g(a.out)], params: params(a.rows).u32(a.cols), groups });
}
