// reduce (the `reduce` family): x viewed as [outer, r, inner] reduced over r into out [outer, inner].
//
// A reduction runs in levels (src/backend/webgpu/kernels/reduce.ts). Each level splits r into
// chunks and reduces every chunk to one partial; when there is more than one chunk the partials
// ([outer, chunks, inner], two words each) are the next level's input. So a long row is summed as
// a tree of short serial runs and workgroup trees: f32 sums stay accurate and every level has
// parallel work however the shape falls.
//
// A partial is a vec2u:
//   sum of f32:        (f32 bits of the sum, 0)
//   sum of i32/bool:   (low, high) words of the exact 64-bit sum, so overflow is found at the end
//   max/min/argmax/argmin: (bits of the value, its index j along r), 0xffffffff as index: empty.
//
// Specialisation (defs): `alias T` (f32 or i32, the compute type), `const OP` (ReduceOp code:
// 0 sum, 1 max, 2 min, 3 argmax, 4 argmin), `const FLOAT`, `const FROM_PAIRS` (the input is a
// level's partials, not x), `const TO_PAIRS` (write partials, not out), and `ld_x` / `st_out`
// for the dtypes of x and out.
//
// Bindings: 2 ovf, for i32 sums [lowest overflowing output, then the high word of each output's
// sum] (a placeholder otherwise); 3 out (or partials); 4 x (or partials). In this order the
// overflow kernels bind a prefix of them.

@group(0) @binding(2) var<storage, read_write> ovf: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<storage, read> x: array<u32>;

const EMPTY: u32 = 0xffffffffu;
const NONE: u32 = 0xffffffffu;

fn is_nan_bits(b: u32) -> bool { return FLOAT && (b & 0x7fffffffu) > 0x7f800000u; }

fn identity() -> vec2u {
  if (OP == 0u) { return vec2u(0u, 0u); } // 0.0 and 0 have the same bits
  return vec2u(0u, EMPTY);
}

// The partial of the single element v at index j.
fn leaf(v: T, j: u32) -> vec2u {
  if (OP == 0u) {
    if (FLOAT) { return vec2u(bitcast<u32>(v), 0u); }
    return vec2u(bitcast<u32>(v), select(0u, 0xffffffffu, v < T(0))); // sign-extended to 64 bits
  }
  return vec2u(bitcast<u32>(v), j);
}

// Combine two partials. The extremes compare indices explicitly (a and b may come from
// interleaved runs), so the result is the reference's serial scan: the first NaN if any, else the
// first index of the extreme (−0 and +0 tie).
fn combine(a: vec2u, b: vec2u) -> vec2u {
  if (OP == 0u) {
    if (FLOAT) { return vec2u(bitcast<u32>(bitcast<f32>(a.x) + bitcast<f32>(b.x)), 0u); }
    let lo = a.x + b.x;
    return vec2u(lo, a.y + b.y + select(0u, 1u, lo < a.x));
  }
  if (b.y == EMPTY) { return a; }
  if (a.y == EMPTY) { return b; }
  let an = is_nan_bits(a.x);
  let bn = is_nan_bits(b.x);
  let va = bitcast<T>(a.x);
  let vb = bitcast<T>(b.x);
  var take: bool;
  if (an || bn) {
    take = bn && (!an || b.y < a.y);
  } else if (va == vb) {
    take = b.y < a.y;
  } else if (OP == 1u || OP == 3u) {
    take = vb > va;
  } else {
    take = vb < va;
  }
  return select(a, b, take);
}

// The partial of input element k (flat index in the level's [outer, r, inner]) at index j.
fn load(k: u32, j: u32) -> vec2u {
  if (FROM_PAIRS) { return vec2u(x[2u * k], x[2u * k + 1u]); }
  return leaf(ld_x(k), j);
}

// Store the reduction of output k: a partial, or the value (wrapped for i32 sums, whose overflow
// is noted for `ovf_report`), or the index.
fn finish(k: u32, a: vec2u) {
  if (TO_PAIRS) {
    out[2u * k] = a.x;
    out[2u * k + 1u] = a.y;
    return;
  }
  if (OP >= 3u) {
    out[k] = a.y;
    return;
  }
  if (OP == 0u && !FLOAT) {
    out[k] = a.x;
    if (a.y != select(0u, 0xffffffffu, (a.x >> 31u) == 1u)) {
      atomicStore(&ovf[1u + k], a.y);
      atomicMin(&ovf[0], k);
    }
    return;
  }
  st_out(k, bitcast<T>(a.x));
}

// @kernel tree
// tree: inner == 1, one 64-wide workgroup per (row, chunk of pu(2) elements): each invocation
// combines a strided run (neighbours read neighbouring words), then a tree in workgroup memory.
// Params: [0] outer, [1] r, [2] chunk, [3] chunks per row.
const TREE_WG: u32 = 64u;
var<workgroup> sh: array<vec2u, TREE_WG>;

@compute @workgroup_size(TREE_WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) t: u32) {
  let chunks = pu(3u);
  let w = wid.y * nwg.x + wid.x;
  if (w >= pu(0u) * chunks) { return; } // the whole workgroup: uniform
  let row = w / chunks;
  let c = w % chunks;
  let r = pu(1u);
  let end = min(r, (c + 1u) * pu(2u));
  var acc = identity();
  for (var j = c * pu(2u) + t; j < end; j += TREE_WG) {
    acc = combine(acc, load(row * r + j, j));
  }
  sh[t] = acc;
  workgroupBarrier();
  for (var s = TREE_WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) { sh[t] = combine(sh[t], sh[t + s]); }
    workgroupBarrier();
  }
  if (t == 0u) { finish(w, sh[0]); }
}

// @kernel cols
// cols: one invocation per (outer, chunk, inner). Chunk c of `chunks` takes j = c, c + chunks,
// c + 2·chunks, … along r, so neighbouring invocations read neighbouring words whether they
// differ in i or (inner == 1) in c. Params: [0] n invocations, [1] r, [2] inner, [3] chunks.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_id(gid, nwg);
  if (e >= pu(0u)) { return; }
  let r = pu(1u);
  let inner = pu(2u);
  let chunks = pu(3u);
  let i = e % inner;
  let q = e / inner;
  let c = q % chunks;
  let o = q / chunks;
  var acc = identity();
  for (var j = c; j < r; j += chunks) {
    acc = combine(acc, load((o * r + j) * inner + i, j));
  }
  finish(e, acc);
}

// @kernel ovf_init
// ovf_init: no output has overflowed yet. Params: [0] NONE.
@compute @workgroup_size(1)
fn main() {
  atomicStore(&ovf[0], pu(0u));
}

// @kernel ovf_report
// ovf_report: fault `overflow` with the exact 64-bit sum of the lowest overflowing output (the
// one the reference names).
@compute @workgroup_size(1)
fn main() {
  let k = atomicLoad(&ovf[0]);
  if (k == NONE) { return; }
  report_wide(4u, out[k], 3u, atomicLoad(&ovf[1u + k]));
}
