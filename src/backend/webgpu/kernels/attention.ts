/**
 * @internal attention and attentionBackward on webgpu (kernels/wgsl/attention.wgsl): flash-style,
 * a workgroup per (row tile, batch·head) streaming the other side in tiles; the backward as
 * FlashAttention-2's two passes (dq per query tile, then dk and dv per key tile of each kv head,
 * looping over its query heads for grouped-query attention), so every gradient element is written
 * once and no atomics are needed. Sliding windows skip the key tiles outside them.
 * @module
 */
import type { AttentionArgs, AttentionBackwardArgs } from '../../backend.js';
import { g, Params, type Runtime } from './common.js';
import { GpuStorage } from '../runtime.js';

/** The widest row held in invocation-private arrays, and the columns of one pass. */
const REG = 256;

/** How this device runs attention: decided once per runtime from the adapter. */
interface Shape {
  /** Tile rows are shared through subgroupBroadcast (needs one subgroup of sg per workgroup). */
  lanes: boolean;
  /** The subgroup size with `lanes` (1 without). */
  sg: number;
  /** Invocations per workgroup. */
  wg: number;
  /** Rows of the other side per tile (a multiple of sg and of 4: dropout deals blocks of 4). */
  ts: number;
  /** The most rows per invocation. */
  rq: number;
}

/** Private words per invocation that RQ·(the row's arrays) may take. */
const PRIVATE = 1024;

// Three shapes of the same kernels. Measured on lavapipe (Mesa 25.0 llvmpipe, 2 cores shared
// with other work; B=1 H=4 T=256 D=32 causal, forward + backward, best of 8): one row per
// invocation with tiles staged in workgroup memory took 45 + 150 ms; reading tiles directly and
// RQ = 8 rows per invocation (each loaded element feeding 8 rows) 8 + 35 ms; sharing the tile
// rows through subgroups (`lanes`, RQ 4, TS 16) 4 + 10 ms. Pipeline compiles grow with the
// unrolled RQ·TS block and its load sites: RQ 8, TS 16 without lanes took 19 s (forward) and
// 50 s (backward) to compile; `lanes` at RQ 4, TS 16 about 1 s and 4 s.
//   lanes  CPU drivers with a fixed subgroup size of 8 or 16.
//   regs   CPU drivers without: RQ rows per invocation, every invocation loading the tiles.
//   gpu    GPUs: one row per invocation, 64 per workgroup; the tile loads are the same address
//          across the workgroup, served from cache.
// `KILN_WEBGPU_ATTENTION=lanes|regs|gpu` overrides the choice (for experiments and tests).
type Kind = 'lanes' | 'regs' | 'gpu';
const shapes = new WeakMap<Runtime, Shape>();

function adapterKind(rt: Runtime): { kind: Kind; sg: number } {
  const info = (rt.device as GPUDevice & { adapterInfo?: GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number } }).adapterInfo;
  const text = `${info?.description ?? ''} ${info?.device ?? ''} ${info?.architecture ?? ''}`.toLowerCase();
  const cpu = /llvmpipe|lavapipe|swiftshader|software/.test(text);
  const min = rt.device.features.has('subgroups') ? (info?.subgroupMinSize ?? 0) : 0;
  const sg = (min === 8 || min === 16) && info?.subgroupMaxSize === min ? min : 0;
  return { kind: cpu ? (sg ? 'lanes' : 'regs') : 'gpu', sg };
}

function makeShape(rt: Runtime, kind: Kind): Shape {
  const { sg } = adapterKind(rt);
  if (kind === 'lanes' && !sg) throw new Error('webgpu: attention: the lanes shape needs a fixed subgroup size of 8 or 16, which this adapter lacks');
  return kind === 'lanes' ? { lanes: true, sg, wg: sg, ts: 16, rq: 4 }
    : kind === 'regs' ? { lanes: false, sg: 1, wg: 8, ts: 8, rq: 4 }
    : { lanes: false, sg: 1, wg: 64, ts: 16, rq: 1 };
}

function shapeOf(rt: Runtime): Shape {
  let s = shapes.get(rt);
  if (!s) {
    const env = typeof process !== 'undefined' ? process.env.KILN_WEBGPU_ATTENTION : undefined;
    s = makeShape(rt, env === 'lanes' || env === 'regs' || env === 'gpu' ? env : adapterKind(rt).kind);
    shapes.set(rt, s);
  }
  return s;
}

/** @internal Run `kind`'s shape on this runtime from now on (null: the adapter's), for tests. */
export function useAttentionShape(rt: Runtime, kind: Kind | null): void {
  if (kind) shapes.set(rt, makeShape(rt, kind));
  else shapes.delete(rt);
}

/** @internal The shape this runtime would pick for its adapter. */
export function attentionShapeFor(rt: Runtime): Kind {
  return adapterKind(rt).kind;
}

const pow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(n, 4)));
/** Private words for a per-row operand of width n: 1 (read from memory instead) past REG. */
const reg = (n: number): number => (n <= REG ? pow2(n) : 1);
/** Accumulator words for the columns of one pass. */
const accWords = (n: number): number => pow2(Math.min(n, REG));
/** The accumulator columns [c0, c0 + cn) of pass p over n columns. */
const cols = (n: number, p: number): [number, number] => [p * REG, Math.max(0, Math.min(REG, n - p * REG))];
const passes = (...ns: number[]): number => Math.max(1, ...ns.map((n) => Math.ceil(n / REG)));

type Common = AttentionArgs | AttentionBackwardArgs;

/** A kernel's specialisation: private sizes (R1, R2 per-row operands, A1, A2 accumulators). */
interface Plan {
  defs: string;
  /** Rows per workgroup. */
  rows: number;
  /** Score pairs per invocation and tile, RQ·TS (params [23]). */
  pairs: number;
}

/** A kernel's specialisation, given its private sizes (R1, R2 per-row operands, A1, A2 accumulators). */
function plan(rt: Runtime, a: Common, r1: number, r2: number, a1: number, a2: number): Plan {
  const sh = shapeOf(rt);
  let rq = sh.rq;
  while (rq > 1 && rq * (r1 + r2 + a1 + a2) > PRIVATE) rq /= 2;
  const drop = a.dropoutThreshold > 0;
  const mask = a.mask === null ? 0 : g(a.mask).dtype === 'bool' ? 1 : 2;
  const share = sh.lanes
    ? `enable subgroups;\nconst LANES = true;\nconst SG = ${sh.sg}u;\n` +
      `fn share(x: f32) -> array<f32, SG> { return array<f32, SG>(${Array.from({ length: sh.sg }, (_, i) => `subgroupBroadcast(x, ${i}u)`).join(', ')}); }\n`
    : 'const LANES = false;\nconst SG = 1u;\nfn share(x: f32) -> array<f32, SG> { return array<f32, SG>(x); }\n';
  const defs =
    share +
    `const WG = ${sh.wg}u;\nconst TS = ${sh.ts}u;\nconst RQ = ${rq}u;\n` +
    `const R1 = ${r1}u;\nconst R2 = ${Math.max(1, r2)}u;\nconst A1 = ${a1}u;\nconst A2 = ${Math.max(1, a2)}u;\n` +
    `const CAUSAL = ${a.causal};\nconst MASK = ${mask}u;\nconst DROPOUT = ${drop};\nconst ZS = ${drop ? sh.wg * rq * sh.ts : 1}u;\n`;
  return { defs, rows: sh.wg * rq, pairs: rq * sh.ts };
}

interface View {
  offset: number;
  strides: readonly number[];
}

/**
 * The params of one pass (layout in the .wgsl header): columns [c0, c0 + cn) and [e0, e0 + en);
 * `bh` workgroup rows of batch·heads (batch·kvHeads for dkdv).
 */
function params(a: Common, c0: number, cn: number, e0: number, en: number, pl: Plan, views: readonly View[], bh: number): Params {
  const drop = a.dropoutThreshold > 0;
  // p = 1 has threshold 2³², past every word: keep all at scale 0 instead (the same zeros)
  const all = a.dropoutThreshold > 0xffffffff;
  const p = new Params()
    .u32(a.heads)
    .u32(a.tq)
    .u32(a.tk)
    .u32(a.qkDim)
    .u32(a.vDim)
    .f32(a.scale)
    .i32(a.causalOffset)
    .f32(-Infinity)
    .u64(drop ? a.seed : 0)
    .u64(drop ? a.dropoutOffset : 0)
    .u32(all ? 0xffffffff : a.dropoutThreshold)
    .f32(all ? 0 : a.dropoutScale)
    .ints(a.mask ? a.maskStrides.slice(0, 4) : [], 4)
    .u32(c0)
    .u32(cn)
    .u32(e0)
    .u32(en)
    .u32(bh)
    .u32(pl.pairs);
  for (let i = 0; i < 8; i++) p.u32(views[i]?.offset ?? 0).ints(views[i]?.strides.slice(0, 3) ?? [], 3);
  return p.u32(a.heads / a.kvHeads).i32(a.causal ? a.window : 0);
}

/** Workgroups: x the tiles of `per` rows, y and z the batch·head. */
function groups(rt: Runtime, rows: number, per: number, bh: number, op: string): [number, number, number] {
  const x = Math.ceil(rows / per);
  if (x > rt.maxGroups) throw new Error(`${op}: webgpu: ${rows} rows need more than ${rt.maxGroups} workgroups`);
  const y = Math.min(bh, rt.maxGroups);
  return [x, y, Math.ceil(bh / y)];
}

export function attention(rt: Runtime, a: AttentionArgs): void {
  const bh = a.batch * a.heads;
  if (bh === 0 || a.tq === 0) return;
  const p = plan(rt, a, reg(a.qkDim), 0, accWords(a.vDim), 0);
  const bindings = [g(a.q), g(a.k), g(a.v), g(a.out), g(a.lse), g(a.mask)];
  const views = [
    { offset: a.qOffset, strides: a.qStrides },
    { offset: a.kOffset, strides: a.kStrides },
    { offset: a.vOffset, strides: a.vStrides },
    { offset: a.outOffset, strides: a.outStrides },
  ];
  // each pass recomputes the softmax for its columns of out; the first writes lse
  for (let pass = 0; pass < passes(a.vDim); pass++) {
    const [c0, cn] = cols(a.vDim, pass);
    rt.run({ module: 'attention', entry: 'forward', defs: p.defs, bindings, params: params(a, c0, cn, 0, 0, p, views, bh), groups: groups(rt, a.tq, p.rows, bh, 'attention') });
  }
}

export function attentionBackward(rt: Runtime, a: AttentionBackwardArgs): void {
  const bh = a.batch * a.heads;
  if (bh === 0 || a.tq === 0 || a.tk === 0) return;
  const views = [
    { offset: a.qOffset, strides: a.qStrides },
    { offset: a.kOffset, strides: a.kStrides },
    { offset: a.vOffset, strides: a.vStrides },
    { offset: a.outOffset, strides: a.outStrides },
    { offset: a.doutOffset, strides: a.doutStrides },
    { offset: a.dqOffset, strides: a.dqStrides },
    { offset: a.dkOffset, strides: a.dkStrides },
    { offset: a.dvOffset, strides: a.dvStrides },
  ];
  const [q, k, v, out, lse, dout, mask] = [g(a.q), g(a.k), g(a.v), g(a.out), g(a.lse), g(a.dout), g(a.mask)];
  // Dᵢ per query row, written by dq (pass 0) and read by dkdv; released once recorded: later
  // users of the buffer are later on the queue
  const n = bh * a.tq;
  const delta = new GpuStorage('f32', n, rt.buffer(n * 4));

  // dq: a workgroup per query tile
  const pq = plan(rt, a, reg(a.qkDim), reg(a.vDim), accWords(a.qkDim), 0);
  const qBindings = [q, k, v, out, lse, dout, mask, g(a.dq), delta];
  for (let pass = 0; pass < passes(a.qkDim); pass++) {
    const [c0, cn] = cols(a.qkDim, pass);
    rt.run({ module: 'attention', entry: 'dq', defs: pq.defs, bindings: qBindings, params: params(a, c0, cn, 0, 0, pq, views, bh), groups: groups(rt, a.tq, pq.rows, bh, 'attentionBackward') });
  }

  // dk, dv: a workgroup per key tile
  const dk = g(a.dk);
  const dv = g(a.dv);
  const one = dk === dv;
  const dvDecl = one
    ? 'fn st_dv(i: u32, x: f32) { dk[i] = x; }\n'
    : '@group(0) @binding(10) var<storage, read_write> dv: array<f32>;\nfn st_dv(i: u32, x: f32) { dv[i] = x; }\n';
  const pkv = plan(rt, a, reg(a.qkDim), reg(a.vDim), accWords(a.qkDim), accWords(a.vDim));
  const kvBindings = [q, k, v, lse, dout, delta, mask, dk, ...(one ? [] : [dv])];
  // a workgroup per kv head's key tile, looping over the kv head's query heads
  const bhk = a.batch * a.kvHeads;
  for (let pass = 0; pass < passes(a.qkDim, a.vDim); pass++) {
    const [c0, cn] = cols(a.qkDim, pass);
    const [e0, en] = cols(a.vDim, pass);
    rt.run({ module: 'attention', entry: 'dkdv', defs: pkv.defs + dvDecl, bindings: kvBindings, params: params(a, c0, cn, e0, en, pkv, views, bhk), groups: groups(rt, a.tk, pkv.rows, bhk, 'attentionBackward') });
  }
  rt.release(delta.buffer);
}
