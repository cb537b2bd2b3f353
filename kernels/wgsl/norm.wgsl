// layerNorm (and RMSNorm) of each row of x [rows, cols] and its backward (the `norm` family),
// in f32. Defs: RMS (μ = 0), HAS_W, HAS_B, HAS_RES (the rows are x + residual, stored in sum) /
// HAS_DW, HAS_DB (optional bindings: a false one is bound to a dummy and never touched;
// colsum_final has none); the row kernels also WGS and LANES as softmax.wgsl (LANES invocations share a row, WGS / LANES rows per workgroup, a 2-D
// grid of workgroups).

fn is_finite(v: f32) -> bool { return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u; }

// @kernel forward
// y = (x − μ)·rstd·w + b, rstd = 1/√(Σ(x − μ)²/cols + eps). Params: [0] rows, [1] cols, [2] eps
// (f32). Writes mean (unless RMS) and rstd [rows] once per row, from the row's first lane.
//
// Two passes, as the reference: μ, then Σ(x − μ)², so the variance never comes from
// Σx² − (Σx)²/n, which is mostly rounding when |μ| ≫ std. The first pass sums x − p about a
// pivot p (the row's first element when finite): a plain f32 sum of 4096 elements near 5 would
// be off by ~1e-5 in μ, already 1e-5 of every output; about p its error scales with the spread.
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> mean: array<f32>;
@group(0) @binding(7) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(8) var<storage, read> residual: array<f32>;
@group(0) @binding(9) var<storage, read_write> sum: array<f32>;

var<workgroup> tsum: array<f32, WGS>;

// Element i of the row being normalized: x, or with HAS_RES x + residual. The first pass writes
// the sums, each lane its own columns; later passes read them back (the same invocation's writes:
// no barrier), so the sum is read from memory the add just wrote rather than by a second kernel.
fn xs(i: u32) -> f32 {
  if (HAS_RES) { return sum[i]; }
  return x[i];
}

// The sum over the row's lanes of each lane's v (every lane gets it; no barrier for one lane).
fn row_sum(lid: u32, lane: u32, v: f32) -> f32 {
  if (LANES == 1u) { return v; }
  workgroupBarrier(); // the previous sum's reads are done
  tsum[lid] = v;
  for (var half = LANES / 2u; half > 0u; half >>= 1u) {
    workgroupBarrier();
    if (lane < half) { tsum[lid] += tsum[lid + half]; }
  }
  workgroupBarrier();
  return tsum[lid - lane];
}

@compute @workgroup_size(WGS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = (wid.y * nwg.x + wid.x) * (WGS / LANES) + lid / LANES;
  let lane = lid % LANES;
  let cols = pu(1u);
  let live = row < pu(0u);
  let base = row * cols;
  let fc = f32(cols);
  // an empty row: μ and the variance come out 0/0 = NaN, as the reference's
  var mu = 0.0;
  if (!RMS) {
    var p = 0.0;
    var sd = 0.0;
    if (live && cols > 0u) {
      // the pivot from column 0, which another lane sums: formed here the same way
      var x0 = x[base];
      if (HAS_RES) { x0 += residual[base]; }
      p = select(0.0, x0, is_finite(x0));
      for (var c = lane; c < cols; c += LANES) {
        if (HAS_RES) { sum[base + c] = x[base + c] + residual[base + c]; }
        sd += xs(base + c) - p;
      }
    }
    mu = p + row_sum(lid, lane, sd) / fc;
  }
  var sq = 0.0;
  if (live) {
    // RMS skips the first pass: the sums are written here
    if (RMS && HAS_RES) { for (var c = lane; c < cols; c += LANES) { sum[base + c] = x[base + c] + residual[base + c]; } }
    for (var c = lane; c < cols; c += LANES) {
      let d = xs(base + c) - mu;
      sq += d * d;
    }
  }
  let r = 1.0 / sqrt(row_sum(lid, lane, sq) / fc + pf(2u));
  if (!live) { return; }
  if (lane == 0u) {
    if (!RMS) { mean[row] = mu; }
    rstd[row] = r;
  }
  for (var c = lane; c < cols; c += LANES) {
    var y = (xs(base + c) - mu) * r;
    if (HAS_W) { y *= weight[c]; }
    if (HAS_B) { y += bias[c]; }
    out[base + c] = y;
  }
}

// @kernel backward
// dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = dy·w, x̂ = (x − μ)·rstd (no mean(ĝ) term for
// RMS, whose μ is 0). Params: [0] rows, [1] cols.
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> mean: array<f32>;
@group(0) @binding(6) var<storage, read> rstd: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;

var<workgroup> tg: array<f32, WGS>;
var<workgroup> tgx: array<f32, WGS>;

@compute @workgroup_size(WGS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = (wid.y * nwg.x + wid.x) * (WGS / LANES) + lid / LANES;
  let lane = lid % LANES;
  let cols = pu(1u);
  let live = row < pu(0u);
  let base = row * cols;
  var mu = 0.0;
  var r = 0.0;
  var sg = 0.0;
  var sgx = 0.0;
  if (live) {
    if (!RMS) { mu = mean[row]; }
    r = rstd[row];
    for (var c = lane; c < cols; c += LANES) {
      var gh = dy[base + c];
      if (HAS_W) { gh *= weight[c]; }
      sg += gh;
      sgx += gh * ((x[base + c] - mu) * r);
    }
  }
  if (LANES > 1u) {
    tg[lid] = sg;
    tgx[lid] = sgx;
    for (var half = LANES / 2u; half > 0u; half >>= 1u) {
      workgroupBarrier();
      if (lane < half) {
        tg[lid] += tg[lid + half];
        tgx[lid] += tgx[lid + half];
      }
    }
    workgroupBarrier();
    sg = tg[lid - lane];
    sgx = tgx[lid - lane];
  }
  if (!live) { return; }
  let fc = f32(cols);
  let mg = select(sg / fc, 0.0, RMS);
  let mgx = sgx / fc;
  for (var c = lane; c < cols; c += LANES) {
    var gh = dy[base + c];
    if (HAS_W) { gh *= weight[c]; }
    dx[base + c] = r * (gh - mg - (x[base + c] - mu) * r * mgx);
  }
}

// @kernel colsum
// dWeight = Σ_rows dy·x̂ and dBias = Σ_rows dy, first as partial sums over blocks of rows: one
// invocation per (column, block), reading along a row of columns (adjacent invocations, adjacent
// words). Params: [0] rows, [1] cols, [2] rows per block, [3] n = cols·blocks. Partials are
// [blocks, cols] (the outputs themselves when there is one block).
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> pw: array<f32>;
@group(0) @binding(7) var<storage, read_write> pb: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg);
  if (i >= pu(3u)) { return; }
  let cols = pu(1u);
  let c = i % cols;
  let b = i / cols;
  let r0 = b * pu(2u);
  let r1 = min(r0 + pu(2u), pu(0u));
  var sw = 0.0;
  var sb = 0.0;
  for (var r = r0; r < r1; r++) {
    let g = dy[r * cols + c];
    if (HAS_DW) {
      var mu = 0.0;
      if (!RMS) { mu = mean[r]; }
      sw += g * ((x[r * cols + c] - mu) * rstd[r]);
    }
    sb += g;
  }
  if (HAS_DW) { pw[i] = sw; }
  if (HAS_DB) { pb[i] = sb; }
}

// @kernel colsum_final
// One output's partials summed over blocks. Params: [0] cols, [1] blocks.
@group(0) @binding(2) var<storage, read> partial: array<f32>;
@group(0) @binding(3) var<storage, read_write> total: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = flat_id(gid, nwg);
  let cols = pu(0u);
  if (c >= cols) { return; }
  var s = 0.0;
  for (var b = 0u; b < pu(1u); b++) { s += partial[b * cols + c]; }
  total[c] = s;
}
