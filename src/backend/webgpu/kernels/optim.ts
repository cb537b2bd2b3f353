/**
 * @internal The optimizer kernels on webgpu (kernels/wgsl/optim.wgsl), f32 only (the tensor
 * layer updates other dtypes through f32 copies). Every op takes a list of tensors: each tensor
 * gets its own dispatches, all recorded into the open batch, and nothing is read back (norms and
 * trust ratios stay in storages).
 * @module
 */
import type { AdamUpdateArgs, LambUpdateArgs, MultiNormArgs, MultiScaleArgs } from '../../backend.js';
import { GpuStorage } from '../runtime.js';
import { flat, g, params, type Params, type Runtime } from './common.js';

/** Elements a reduction workgroup takes (16 per invocation); at most this many: one workgroup does it all. */
const PER_GROUP = 4096;
/** Workgroups of a reduction pass at most (each then loops over its share). */
const MAX_GROUPS = 16384;
/** Bytes of one partial (the WGSL `Acc`: u32 and three f32). */
const ACC_BYTES = 16;

/** Workgroups of the partial pass over n elements: 1 when one workgroup does the whole reduction. */
function reductionGroups(rt: Runtime, n: number): number {
  return Math.max(1, Math.min(Math.ceil(n / PER_GROUP), MAX_GROUPS, rt.maxGroups));
}

/** A scratch storage of `bytes`; the caller releases its buffer once its dispatches are recorded. */
function scratch(rt: Runtime, bytes: number): GpuStorage {
  return new GpuStorage('f32', Math.ceil(bytes / 4), rt.buffer(bytes));
}

/** The `ORD` def: 0 for ∞, 1, 2, and 3 for any other ord (passed as a parameter). */
function ordDef(ord: number): string {
  const kind = ord === Infinity ? 0 : ord === 1 ? 1 : ord === 2 ? 2 : 3;
  return `const ORD: u32 = ${kind}u;\n`;
}

/** Kernels that take no norm still compile the shared accumulation code. */
const NO_NORM = ordDef(2);

export function multiNorm(rt: Runtime, a: MultiNormArgs): void {
  const out = g(a.out);
  const defs = ordDef(a.ord);
  const xs = a.xs.map((s) => g(s));
  const groups = xs.map((x) => reductionGroups(rt, x.size));
  const most = groups.reduce((m, k) => Math.max(m, k), 1);
  const part = most > 1 ? scratch(rt, most * ACC_BYTES) : null;
  xs.forEach((x, i) => {
    // [0] n, [1] ord, [2] slot in out, [3] partials
    const p = params(x.size).f32(a.ord).u32(i).u32(groups[i]!);
    if (groups[i] === 1) {
      rt.run({ module: 'optim', entry: 'norm_one', defs, bindings: [x, out], params: p, groups: [1, 1, 1] });
      return;
    }
    rt.run({ module: 'optim', entry: 'norm_partial', defs, bindings: [x, part], params: p, groups: [groups[i]!, 1, 1] });
    rt.run({ module: 'optim', entry: 'norm_finish', defs, bindings: [part, out], params: p, groups: [1, 1, 1] });
  });
  if (part) rt.release(part.buffer);
}

export function multiScale(rt: Runtime, a: MultiScaleArgs): void {
  const xs = a.xs.map((s) => g(s));
  let scale = g(a.scale);
  // a scale that is also in the list: every tensor is scaled by its value before the call (as
  // the reference reads it once), and a dispatch cannot bind one buffer writable and read-only
  const aliased = xs.some((x) => x.buffer === scale.buffer);
  if (aliased) {
    const copy = scratch(rt, 4);
    rt.copy(scale.buffer, 0, copy.buffer, 0, 4);
    scale = copy;
  }
  for (const x of xs) flat(rt, { module: 'optim', entry: 'scale', defs: NO_NORM, bindings: [x, scale], params: params(x.size) }, x.size);
  if (aliased) rt.release(scale.buffer);
}

/** x in [0, 1) as a 64-bit binary fraction, high word first (exact for x ≥ 2⁻¹¹). */
function fraction64(x: number): [number, number] {
  const hi = Math.floor(x * 2 ** 32);
  return [hi, Math.floor((x * 2 ** 32 - hi) * 2 ** 32)];
}

/**
 * The parameter layout adam and the lamb kernels share (optim.wgsl's constants): [0] n, [1] lr,
 * [2] β1, [3] β2, [4] 1−β1, [5] 1−β2, [6] ε, [7] wd, [8] 1−β1ᵗ, [9] 1−β2ᵗ, [10..11] β1 and
 * [12..13] 1−β1 as 64-bit fractions; the differences and bias corrections are computed here in
 * double and rounded once.
 */
function stepParams(n: number, a: AdamUpdateArgs | LambUpdateArgs, step: number, biasCorrection: boolean): Params {
  const bc1 = biasCorrection ? 1 - a.beta1 ** step : 1;
  const bc2 = biasCorrection ? 1 - a.beta2 ** step : 1;
  const [b1Hi, b1Lo] = fraction64(a.beta1);
  const [c1Hi, c1Lo] = fraction64(1 - a.beta1);
  return params(n)
    .f32(a.lr).f32(a.beta1).f32(a.beta2).f32(1 - a.beta1).f32(1 - a.beta2).f32(a.eps).f32(a.weightDecay).f32(bc1).f32(bc2)
    .u32(b1Hi).u32(b1Lo).u32(c1Hi).u32(c1Lo);
}

export function adamUpdate(rt: Runtime, a: AdamUpdateArgs): void {
  const defs = NO_NORM + `const DECOUPLED: bool = ${a.decoupled};\n`;
  a.params.forEach((s, t) => {
    const p = g(s);
    const prm = stepParams(p.size, a, a.steps[t]!, true).f32(a.lr * a.weightDecay); // [14] lr·wd
    flat(rt, { module: 'optim', entry: 'adam', defs, bindings: [p, g(a.grads[t]!), g(a.m[t]!), g(a.v[t]!)], params: prm }, p.size);
  });
}

export function lambUpdate(rt: Runtime, a: LambUpdateArgs): void {
  const trust = g(a.trust);
  const ps = a.params.map((s) => g(s));
  const groups = ps.map((p) => reductionGroups(rt, p.size));
  const most = groups.reduce((m, k) => Math.max(m, k), 1);
  // large parameters: partial Accs (p's and r's per workgroup), and φ of each parameter
  const part = most > 1 ? scratch(rt, 2 * most * ACC_BYTES) : null;
  const phi = most > 1 ? scratch(rt, ps.length * 8) : null; // the WGSL `Trust`: f32, i32
  ps.forEach((p, t) => {
    const [grad, m, v] = [g(a.grads[t]!), g(a.m[t]!), g(a.v[t]!)];
    // [14] slot, [15] trust given, [16] partials
    const prm = stepParams(p.size, a, a.steps[t]!, a.biasCorrection).u32(t).bool(trust !== null).u32(groups[t]!);
    const d = { module: 'optim', defs: NO_NORM, params: prm } as const;
    if (groups[t] === 1) {
      rt.run({ ...d, entry: 'lamb_one', bindings: [p, grad, m, v, trust], groups: [1, 1, 1] });
      return;
    }
    rt.run({ ...d, entry: 'lamb_partial', bindings: [p, grad, m, v, part], groups: [groups[t]!, 1, 1] });
    rt.run({ ...d, entry: 'lamb_trust', bindings: [part, phi, trust], groups: [1, 1, 1] });
    flat(rt, { ...d, entry: 'lamb_apply', bindings: [p, m, v, phi] }, p.size);
  });
  if (part) rt.release(part.buffer);
  if (phi) rt.release(phi.buffer);
}
