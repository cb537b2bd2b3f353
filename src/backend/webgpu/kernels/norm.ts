/** @internal layerNorm, RMSNorm and their backward on webgpu (kernels/wgsl/norm.wgsl). @module */
import type { LayerNormArgs, LayerNormBackwardArgs } from '../../backend.js';
import { GpuStorage } from '../runtime.js';
import { flat, g, params, type Runtime } from './common.js';
import { rowLaunch } from './softmax.js';

/** Rows summed by one invocation of `colsum` at least, and the invocations it aims for. */
const MIN_BLOCK = 16;
const COLSUM_TARGET = 8192;

export function layerNorm(rt: Runtime, a: LayerNormArgs): void {
  if (a.rows === 0) return;
  const { defs, groups } = rowLaunch(rt, a.rows, a.cols);
  rt.run({
    module: 'norm',
    entry: 'forward',
    defs: `${defs}const RMS = ${a.rms};\nconst HAS_W = ${!!a.weight};\nconst HAS_B = ${!!a.bias};\nconst HAS_RES = ${!!(a.residual && a.sum)};\n`,
    bindings: [g(a.x), g(a.weight), g(a.bias), g(a.out), g(a.mean), g(a.rstd), a.sum ? g(a.residual) : null, a.residual ? g(a.sum) : null],
    params: params(a.rows).u32(a.cols).f32(a.eps),
    groups,
  });
}

export function layerNormBackward(rt: Runtime, a: LayerNormBackwardArgs): void {
  const { rows, cols } = a;
  const flags = `const RMS = ${a.rms};\nconst HAS_W = ${!!a.weight};\nconst HAS_DW = ${!!a.dWeight};\nconst HAS_DB = ${!!a.dBias};\n`;
  const [dy, x, mean, rstd] = [g(a.dy), g(a.x), g(a.mean), g(a.rstd)];
  if (rows > 0 && cols > 0) {
    const { defs, groups } = rowLaunch(rt, rows, cols);
    rt.run({ module: 'norm', entry: 'backward', defs: defs + flags, bindings: [dy, x, g(a.weight), mean, rstd, g(a.dx)], params: params(rows).u32(cols), groups });
  }
  if ((!a.dWeight && !a.dBias) || cols === 0) return;
  // Column sums without atomics: blocks of rows give partials [blocks, cols], then one pass
  // over blocks per column (skipped when one block covers every row).
  let blocks = Math.max(1, Math.min(Math.ceil(rows / MIN_BLOCK), Math.floor(COLSUM_TARGET / cols)));
  const perBlock = Math.max(1, Math.ceil(rows / blocks));
  blocks = Math.max(1, Math.ceil(rows / perBlock));
  const dw = g(a.dWeight);
  const db = g(a.dBias);
  const partial = (out: GpuStorage | null): GpuStorage | null => (out && blocks > 1 ? new GpuStorage('f32', blocks * cols, rt.buffer(blocks * cols * 4)) : out);
  const [pw, pb] = [partial(dw), partial(db)];
  flat(rt, { module: 'norm', entry: 'colsum', defs: flags, bindings: [dy, x, mean, rstd, pw, pb], params: params(rows).u32(cols).u32(perBlock).u32(blocks * cols) }, blocks * cols);
  if (blocks === 1) return;
  for (const [p, total] of [[pw, dw], [pb, db]] as const) {
    if (!p || !total) continue;
    flat(rt, { module: 'norm', entry: 'colsum_final', defs: '', bindings: [p, total], params: params(cols).u32(blocks) }, cols);
    // back to the pool at once: whatever takes it next runs after this dispatch on the queue
    rt.release(p.buffer);
  }
}
