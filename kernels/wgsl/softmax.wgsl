// softmax and log-softmax of each row of x [rows, cols] (the `softmax` family), in f32.
// Params: [0] rows, [1] cols. Defs: LOG (log-softmax), WGS (workgroup width) and LANES (the
// invocations that share a row; powers of two, LANES ≤ WGS; src/backend/webgpu/kernels/softmax.ts
// rowLaunch).
//
// A row's log-sum-exp is kept as a running (m, s) = (max, Σ exp(x − m)), so one read of the row
// finds both, and a second writes it out. The outputs use z = x − m (exact for the large
// elements) and log s, not x − lse: with |x| ≈ 1000, lse rounded to f32 is off by ~6e-5, which
// would be the relative error of every probability. Special rows follow the reference
// (src/backend/ref/ref.ts rowLogSumExp): a NaN anywhere makes lse NaN; a +∞ makes it +∞; a row
// of −∞ has lse −∞; the outputs are then x − lse (or its exp), NaN for the all −∞ row as torch.

@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// −∞ as a runtime value (a constant expression may not be infinite in WGSL).
fn neg_inf() -> f32 { var b = 0xff800000u; return bitcast<f32>(b); }
fn is_nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
fn is_finite(v: f32) -> bool { return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u; }

// Running log-sum-exp: m is −∞ (s = 0) until a larger element, NaN once a NaN is seen; s is
// meaningless once m is +∞.
struct Lse { m: f32, s: f32 }

fn lse_push(a: Lse, v: f32) -> Lse {
  if (is_nan(a.m) || is_nan(v)) { return Lse(a.m + v, 0.0); }
  if (v == neg_inf()) { return a; }
  if (v <= a.m) { return Lse(a.m, a.s + exp(v - a.m)); }
  return Lse(v, a.s * exp(a.m - v) + 1.0);
}

fn lse_merge(a: Lse, b: Lse) -> Lse {
  if (is_nan(a.m) || is_nan(b.m)) { return Lse(a.m + b.m, 0.0); }
  if (b.m == neg_inf()) { return a; }
  if (a.m == neg_inf()) { return b; }
  let m = max(a.m, b.m);
  return Lse(m, a.s * exp(a.m - m) + b.s * exp(b.m - m));
}

// The state of the elements start, start + stride, … of the row at base.
fn lse_of(base: u32, cols: u32, start: u32, stride: u32) -> Lse {
  var r = Lse(neg_inf(), 0.0);
  for (var c = start; c < cols; c += stride) { r = lse_push(r, x[base + c]); }
  return r;
}

fn write_row(base: u32, cols: u32, start: u32, stride: u32, r: Lse) {
  let ok = is_finite(r.m);
  let ls = log(r.s);
  for (var c = start; c < cols; c += stride) {
    let z = x[base + c] - r.m;
    var y: f32;
    if (ok) { y = select(exp(z) / r.s, z - ls, LOG); } else { y = select(exp(z), z, LOG); }
    out[base + c] = y;
  }
}

// @kernel main
// LANES invocations per row, WGS / LANES rows per workgroup, workgroups on a 2-D grid; the
// lanes of a row merge their states in a tree (no barrier at all when LANES is 1).
var<workgroup> tm: array<f32, WGS>;
var<workgroup> ts: array<f32, WGS>;

@compute @workgroup_size(WGS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = (wid.y * nwg.x + wid.x) * (WGS / LANES) + lid / LANES;
  let lane = lid % LANES;
  let cols = pu(1u);
  let live = row < pu(0u);
  let base = row * cols;
  var r = Lse(neg_inf(), 0.0);
  if (live) { r = lse_of(base, cols, lane, LANES); }
  if (LANES > 1u) {
    tm[lid] = r.m;
    ts[lid] = r.s;
    for (var half = LANES / 2u; half > 0u; half >>= 1u) {
      workgroupBarrier();
      if (lane < half) {
        let q = lse_merge(Lse(tm[lid], ts[lid]), Lse(tm[lid + half], ts[lid + half]));
        tm[lid] = q.m;
        ts[lid] = q.s;
      }
    }
    workgroupBarrier();
    r = Lse(tm[lid - lane], ts[lid - lane]);
  }
  if (live) { write_row(base, cols, lane, LANES, r); }
}
