// crossEntropy of logits [rows, classes] against i32 targets [rows], and its backward (the
// `crossEntropy` family), in f32. A target outside [0, classes) that is not ignoreIndex reports a
// `target` fault (code 2, the target as i32) and its row's loss is NaN (forward) or 0 (backward).

@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> targets: array<i32>;

// −∞ and NaN as runtime values (a constant expression may not be infinite or NaN in WGSL).
fn neg_inf() -> f32 { var b = 0xff800000u; return bitcast<f32>(b); }
fn nan() -> f32 { var b = 0x7fc00000u; return bitcast<f32>(b); }
fn is_nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
fn is_finite(v: f32) -> bool { return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u; }

// Whether the target t is neither a class nor ignoreIndex.
fn bad_target(t: i32, classes: u32, ignore: i32) -> bool {
  return t != ignore && (t < 0 || u32(t) >= classes);
}

// @kernel forward
// Params: [0] rows, [1] classes, [2] ignoreIndex (i32), [3] smoothing ε (f32). Defs: WGS, LANES
// as softmax.wgsl (LANES invocations share a row).
//
// Per row, as softmax.wgsl: the running (m, s) = (max, Σ exp(x − m)), lse = m + log s, with the
// reference's special rows (NaN → NaN, a +∞ → +∞, all −∞ → −∞). With ε > 0 also Σx and
// Σ(x − p) about a pivot p (the row's first logit when finite, else 0). For a finite max the loss
//   lse − (1−ε)·x[t] − ε/C·Σx = log s + (1−ε)·(m − x[t]) + ε·(m − p) − ε/C·Σ(x − p)
// is taken in the second form, whose terms do not cancel when every logit is near 1000; for
// the special rows the first form gives the reference's ±∞ and NaN.
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

struct Row { m: f32, s: f32, sx: f32, sd: f32 }

fn row_push(a: Row, v: f32, p: f32) -> Row {
  var r = Row(a.m, a.s, a.sx + v, a.sd + (v - p));
  if (is_nan(a.m) || is_nan(v)) { r.m = a.m + v; r.s = 0.0; }
  else if (v == neg_inf()) { }
  else if (v <= a.m) { r.s = a.s + exp(v - a.m); }
  else { r.m = v; r.s = a.s * exp(a.m - v) + 1.0; }
  return r;
}

fn row_merge(a: Row, b: Row) -> Row {
  var r = Row(a.m, a.s, a.sx + b.sx, a.sd + b.sd);
  if (is_nan(a.m) || is_nan(b.m)) { r.m = a.m + b.m; r.s = 0.0; }
  else if (b.m == neg_inf()) { }
  else if (a.m == neg_inf()) { r.m = b.m; r.s = b.s; }
  else {
    r.m = max(a.m, b.m);
    r.s = a.s * exp(a.m - r.m) + b.s * exp(b.m - r.m);
  }
  return r;
}

var<workgroup> tm: array<f32, WGS>;
var<workgroup> ts: array<f32, WGS>;
var<workgroup> tsx: array<f32, WGS>;
var<workgroup> tsd: array<f32, WGS>;

@compute @workgroup_size(WGS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = (wid.y * nwg.x + wid.x) * (WGS / LANES) + lid / LANES;
  let lane = lid % LANES;
  let classes = pu(1u);
  let live = row < pu(0u);
  let base = row * classes;
  let eps = pf(3u);
  var r = Row(neg_inf(), 0.0, 0.0, 0.0);
  var p = 0.0;
  if (live && classes > 0u && is_finite(logits[base])) { p = logits[base]; }
  if (live) {
    for (var c = lane; c < classes; c += LANES) { r = row_push(r, logits[base + c], p); }
  }
  if (LANES > 1u) {
    tm[lid] = r.m;
    ts[lid] = r.s;
    tsx[lid] = r.sx;
    tsd[lid] = r.sd;
    for (var half = LANES / 2u; half > 0u; half >>= 1u) {
      workgroupBarrier();
      if (lane < half) {
        let q = row_merge(Row(tm[lid], ts[lid], tsx[lid], tsd[lid]), Row(tm[lid + half], ts[lid + half], tsx[lid + half], tsd[lid + half]));
        tm[lid] = q.m;
        ts[lid] = q.s;
        tsx[lid] = q.sx;
        tsd[lid] = q.sd;
      }
    }
    workgroupBarrier();
    let first = lid - lane;
    r = Row(tm[first], ts[first], tsx[first], tsd[first]);
  }
  if (!live || lane != 0u) { return; }
  let finite = is_finite(r.m);
  let z = select(r.m, r.m + log(r.s), finite);
  lse[row] = z;
  let t = targets[row];
  let ignore = pi(2u);
  if (bad_target(t, classes, ignore)) {
    report(2u, bitcast<u32>(t), 0u);
    loss[row] = nan();
    return;
  }
  if (t == ignore) {
    loss[row] = 0.0;
    return;
  }
  let xt = logits[base + u32(t)];
  var l: f32;
  if (finite) {
    l = log(r.s) + (1.0 - eps) * (r.m - xt);
    if (eps > 0.0) { l += eps * (r.m - p) - eps / f32(classes) * r.sd; }
  } else {
    l = z - (1.0 - eps) * xt;
    if (eps > 0.0) { l -= eps / f32(classes) * r.sx; }
  }
  loss[row] = l;
}

// @kernel backward
// dlogits = dloss[r]·(exp(x − lse[r]) − (1−ε)·[c = t] − ε/C), one invocation per element; 0 on
// ignored and bad rows (a bad row's first element reports it). Params: [0] n = rows·stride,
// [1] classes, [2] stride = max(classes, 1) (so that a row of no classes still checks its
// target), [3] ignoreIndex (i32), [4] ε (f32).
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> dloss: array<f32>;
@group(0) @binding(6) var<storage, read_write> dlogits: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg);
  if (i >= pu(0u)) { return; }
  let classes = pu(1u);
  let row = i / pu(2u);
  let c = i % pu(2u);
  let t = targets[row];
  let ignore = pi(3u);
  var d = 0.0;
  if (bad_target(t, classes, ignore)) {
    if (c == 0u) { report(2u, bitcast<u32>(t), 0u); }
  } else if (t != ignore) {
    let eps = pf(4u);
    let want = select(0.0, 1.0 - eps, u32(t) == c) + eps / f32(classes);
    d = dloss[row] * (exp(logits[row * classes + c] - lse[row]) - want);
  }
  if (c < classes) { dlogits[row * classes + c] = d; }
}
