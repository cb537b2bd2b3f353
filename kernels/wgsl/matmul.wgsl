// Batched matmul (kernels/ops.mjs `matmul`), f32 only: out[z] = act((out[z] +) op(a[z]) @ op(b[z]) + bias)
// for each batch index z, op(a) [m, k] (stored [k, m] when TRANS_A), op(b) [k, n] (stored [n, k]
// when TRANS_B), out contiguous [batch, m, n]. Every output is one f32 sum over p = 0..k−1.
//
// Three kernels with one result; src/backend/webgpu/kernels/matmul.ts picks one by adapter:
//   lanes   CPU drivers with subgroups of at least 8 (lavapipe): a workgroup shares its rows,
//           one lane loads each row of op(a) and subgroupBroadcast hands it to the others.
//   regs    CPU drivers without: each invocation keeps RM×RN blocks of 4×4 outputs in
//           registers and reads both operands itself, four k at a time as 4×4 matrices.
//   shared  GPUs: a 16×16 workgroup stages KT-deep slices of its 64×64 output tile in workgroup
//           memory between barriers, each invocation accumulating 4×4 outputs.
// On lavapipe a barrier costs far more than the loads it saves, and each storage load costs a
// scalar load, a bounds test and a branch per lane and component (the SIMD lanes are looped
// over), so the CPU kernels have no barriers and count elements loaded per lane per product.
//
// Specialisation (defs): TRANS_A, TRANS_B; A_VEC, B_VEC (the operand's stored rows are whole,
// aligned vec4s: one load per four elements, else four scalar loads); ACCUMULATE (the old out
// is added); HAS_BIAS; HAS_PREACT (the value before the activation is stored in preact too); ACT (0 none, 1 relu, 2 gelu, 3 gelu_tanh, 4 silu); lanes: WG, R; regs:
// WG_X, WG_Y, RM, RN.
// Grid: x counts row tiles, y column tiles, z batches. Row tiles vary fastest so that workgroups
// run one after another share op(b)'s columns, which stay in cache (1024³ on lavapipe: 6.7
// GFLOP/s against 4.4 with columns fastest).
// Params: [0] m, [1] n, [2] k, [3] batch rank, [4] first batch, [5] first row tile, [6] first
// column tile of this dispatch (the grid is cut at maxComputeWorkgroupsPerDimension), [7] rows
// of outputs per invocation (the epilogue's trip count), [8..23] batch shape, [24..39] a's batch
// strides, [40..55] b's batch strides (in elements).
//
// a and b are bound as array<vec4f> (pool buffers are whole 256-byte blocks), so element i is
// x[i >> 2][i & 3] and an aligned run of four elements is a single load.

@group(0) @binding(2) var<storage, read> a: array<vec4f>;
@group(0) @binding(3) var<storage, read> b: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> preact: array<f32>;

fn ae(i: u32) -> f32 { return a[i >> 2u][i & 3u]; }
fn be(i: u32) -> f32 { return b[i >> 2u][i & 3u]; }

// Where batch z's a and b start: z row-major over the batch shape, times each side's strides.
fn batch_offsets(z: u32) -> vec2u {
  var rest = z;
  var off = vec2u(0u, 0u);
  for (var d = i32(pu(3u)) - 1; d >= 0; d--) {
    let dim = pu(8u + u32(d));
    let c = rest % dim;
    rest = rest / dim;
    off += c * vec2u(pu(24u + u32(d)), pu(40u + u32(d)));
  }
  return off;
}

// ---- epilogue: bias, activation, store ----------------------------------------------------------

// exp(x) for x ≤ 0 given exactly, to about 1 ulp (the builtin may lose |x|·2⁻²⁴ relative, which
// at x = −80 is 5e-6): x = n·ln2 + r with ln2 in two parts (n·LN2_HI is exact, LN2_HI having 16
// significant bits), |r| ≤ ln2/2, exp(r) by its Taylor series to r⁷ (error below 2⁻²⁷).
const LN2_HI = 0.693145751953125;
const LN2_LO = 1.4286067653301870e-6;
fn exp_exact_arg(x: vec4f) -> vec4f {
  let n = round(x * 1.4426950408889634);
  let r = (x - n * LN2_HI) - n * LN2_LO;
  var p = vec4f(1.0 / 5040.0);
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  return ldexp(p, vec4i(n));
}

// gelu(x) = x·Φ(x) = ½x·(1 + erf(x/√2)), to a few ulp wherever the result is a normal f32.
// |x/√2| < 1: erf(t) = t·P(t²), P a degree-5 least-squares fit of erf(t)/t in t² (relative
// error 1.6e-7 evaluated in f32). Else erfc(t) = e^(−t²)·Q(1/t)/t, Q a degree-10 fit of
// t·e^(t²)·erfc(t) in 1/t on t ∈ [1, 10] (2.4e-7), so the tail x < 0 keeps its relative accuracy
// instead of cancelling in 1 + erf; t² = x²/2 is formed exactly (x split into 12 + 12 bits)
// because rounding t = x/√2 first would cost 2t²·2⁻²⁴ relative (1e-5 at x = −12).
fn erf_over_t(u: vec4f) -> vec4f {
  var p = vec4f(-0.0005625396152026951);
  p = p * u + 0.004916023463010788;
  p = p * u - 0.02670994959771633;
  p = p * u + 0.11280130594968796;
  p = p * u - 0.37612318992614746;
  return p * u + 1.1283791065216064;
}

fn erfc_tail_q(s: vec4f) -> vec4f {
  var q = vec4f(-0.04480389505624771);
  q = q * s + 0.21680748462677002;
  q = q * s - 0.35930460691452026;
  q = q * s + 0.04057278111577034;
  q = q * s + 0.7280293107032776;
  q = q * s - 1.193063735961914;
  q = q * s + 0.8313813209533691;
  q = q * s - 0.08376718312501907;
  q = q * s - 0.27177926898002625;
  q = q * s - 0.0006980277830734849;
  return q * s + 0.5642094016075134;
}

// Four at a time, both sides computed and selected (SIMD lanes would run both branches anyway).
fn gelu(x: vec4f) -> vec4f {
  let t = x * 0.7071067811865476;
  let near = 0.5 * x * (1.0 + t * erf_over_t(t * t));
  // |x| past 10√2: erfc(|t|) is below the smallest f32; clamped so the exp stays finite
  let ax = min(abs(x), vec4f(14.142135623730951));
  let xh = bitcast<vec4f>(bitcast<vec4u>(ax) & vec4u(0xfffff000u));
  let xl = ax - xh;
  let e = exp_exact_arg(-0.5 * (xh * xh)) * exp(-0.5 * (2.0 * xh * xl + xl * xl));
  let s = 1.4142135623730951 / ax;
  let erfc_t = select(e * (erfc_tail_q(s) * s), vec4f(0.0), ax >= vec4f(14.142135623730951));
  let far = 0.5 * x * select(2.0 - erfc_t, erfc_t, x < vec4f(0.0));
  // NaN fails both tests and stays NaN through `far`
  return select(far, near, abs(t) < vec4f(1.0));
}

fn activate(x: vec4f) -> vec4f {
  if (ACT == 1u) { return select(vec4f(0.0), x, (x > vec4f(0.0)) | (x != x)); }
  if (ACT == 2u) { return gelu(x); }
  if (ACT == 3u) {
    // ½x·(1 + tanh u) = x·σ(2u), u = √(2/π)·(x + 0.044715x³): no cancellation for x < 0
    let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    return x / (1.0 + exp(-2.0 * u));
  }
  if (ACT == 4u) { return x / (1.0 + exp(-x)); }
  return x;
}

// out[z, i, j..j+3] = act(v (+ the old out[z, i, j..j+3]) + bias[j..j+3]), the parts inside the
// matrix; with HAS_PREACT the value before act also goes to preact.
fn store4(zbase: u32, i: u32, j: u32, v: vec4f) {
  let m = pu(0u);
  let n = pu(1u);
  if (i >= m) { return; }
  var y = v;
  let o = zbase + i * n + j;
  if (ACCUMULATE) { y += vec4f(out[o], select(0.0, out[o + 1u], j + 1u < n), select(0.0, out[o + 2u], j + 2u < n), select(0.0, out[o + 3u], j + 3u < n)); }
  if (HAS_BIAS) { y += vec4f(bias[min(j, n - 1u)], bias[min(j + 1u, n - 1u)], bias[min(j + 2u, n - 1u)], bias[min(j + 3u, n - 1u)]); }
  if (HAS_PREACT) {
    if (j < n) { preact[o] = y.x; }
    if (j + 1u < n) { preact[o + 1u] = y.y; }
    if (j + 2u < n) { preact[o + 2u] = y.z; }
    if (j + 3u < n) { preact[o + 3u] = y.w; }
  }
  y = activate(y);
  if (j < n) { out[o] = y.x; }
  if (j + 1u < n) { out[o + 1u] = y.y; }
  if (j + 2u < n) { out[o + 2u] = y.z; }
  if (j + 3u < n) { out[o + 3u] = y.w; }
}

// @kernel regs
// Invocation (x, y) of workgroup (X, Y) owns RM×RN blocks of 4×4 outputs: block (r, c) has rows
// from 4·((X·RM + r)·WG_Y + y) and columns from 4·((Y·RN + c)·WG_X + x), so neighbouring
// invocations read neighbouring vec4s. Rows and columns past the matrix are clamped to its last
// one (computed, never stored) so the inner loop has no bounds tests.
//
// Per four k: aT[r] is a 4×4 matrix whose column ρ is op(a)[row ρ of block r, p..p+3] and bT[c]
// one whose column κ is op(b)[p + κ, the 4 columns of block c]; acc[r][c] (column ρ: row ρ of the
// block's outputs) += bT[c]·aT[r]. Loads along the stored rows become columns or, transposed, rows.
const TM = 4u * RM;
const TN = 4u * RN;

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let m = pu(0u);
  let n = pu(1u);
  let k = pu(2u);
  let z = pu(4u) + wid.z;
  let row0 = ((pu(5u) + wid.x) * RM * WG_Y + lid.y) * 4u;
  let col0 = ((pu(6u) + wid.y) * RN * WG_X + lid.x) * 4u;
  if (row0 >= m || col0 >= n) { return; }
  let off = batch_offsets(z);

  // ia[x]: where op(a)[row x, 0] is; op(a)[row x, p] is at ia[x] + p·sa. Likewise ib[y] for
  // op(b)[0, column y], op(b)[p, column y] at ib[y] + p·sb.
  let sa = select(1u, m, TRANS_A);
  let sb = select(n, 1u, TRANS_B);
  var ia: array<u32, TM>;
  var ib: array<u32, TN>;
  for (var r = 0u; r < RM; r++) {
    let i = row0 + 4u * WG_Y * r;
    for (var q = 0u; q < 4u; q++) {
      // a vec4 along m must stay whole: clamp the block (m is a multiple of 4 then)
      let row = select(min(i + q, m - 1u), min(i, m - 4u) + q, TRANS_A && A_VEC);
      ia[4u * r + q] = off.x + row * select(k, 1u, TRANS_A);
    }
  }
  for (var c = 0u; c < RN; c++) {
    let j = col0 + 4u * WG_X * c;
    for (var q = 0u; q < 4u; q++) {
      let col = select(min(j + q, n - 1u), min(j, n - 4u) + q, !TRANS_B && B_VEC);
      ib[4u * c + q] = off.y + col * select(1u, k, TRANS_B);
    }
  }

  var acc: array<array<mat4x4f, RN>, RM>;
  let k4 = k & ~3u;
  for (var p = 0u; p < k4; p += 4u) {
    var aT: array<mat4x4f, RM>;
    for (var r = 0u; r < RM; r++) {
      let x = 4u * r;
      if (!TRANS_A) {
        if (A_VEC) {
          aT[r] = mat4x4f(a[(ia[x] + p) >> 2u], a[(ia[x + 1u] + p) >> 2u], a[(ia[x + 2u] + p) >> 2u], a[(ia[x + 3u] + p) >> 2u]);
        } else {
          var t: mat4x4f;
          for (var q = 0u; q < 4u; q++) {
            let s = ia[x + q] + p;
            t[q] = vec4f(ae(s), ae(s + 1u), ae(s + 2u), ae(s + 3u));
          }
          aT[r] = t;
        }
      } else {
        var t: mat4x4f; // column κ: op(a)[the block's 4 rows, p + κ]
        for (var q = 0u; q < 4u; q++) {
          let s = (p + q) * sa;
          if (A_VEC) {
            t[q] = a[(ia[x] + s) >> 2u];
          } else {
            t[q] = vec4f(ae(ia[x] + s), ae(ia[x + 1u] + s), ae(ia[x + 2u] + s), ae(ia[x + 3u] + s));
          }
        }
        aT[r] = transpose(t);
      }
    }
    for (var c = 0u; c < RN; c++) {
      let y = 4u * c;
      var bT: mat4x4f;
      if (!TRANS_B) {
        for (var q = 0u; q < 4u; q++) {
          let s = (p + q) * sb;
          if (B_VEC) {
            bT[q] = b[(ib[y] + s) >> 2u];
          } else {
            bT[q] = vec4f(be(ib[y] + s), be(ib[y + 1u] + s), be(ib[y + 2u] + s), be(ib[y + 3u] + s));
          }
        }
      } else {
        var t: mat4x4f; // column κ: op(b)[p..p+3, column κ of the block]
        if (B_VEC) {
          t = mat4x4f(b[(ib[y] + p) >> 2u], b[(ib[y + 1u] + p) >> 2u], b[(ib[y + 2u] + p) >> 2u], b[(ib[y + 3u] + p) >> 2u]);
        } else {
          for (var q = 0u; q < 4u; q++) {
            let s = ib[y + q] + p;
            t[q] = vec4f(be(s), be(s + 1u), be(s + 2u), be(s + 3u));
          }
        }
        bT = transpose(t);
      }
      for (var r = 0u; r < RM; r++) { acc[r][c] += bT * aT[r]; }
    }
  }
  // the last k mod 4 products, one k at a time
  for (var p = k4; p < k; p++) {
    for (var r = 0u; r < RM; r++) {
      let x = 4u * r;
      let s = p * sa;
      let av = vec4f(ae(ia[x] + s), ae(ia[x + 1u] + s), ae(ia[x + 2u] + s), ae(ia[x + 3u] + s));
      for (var c = 0u; c < RN; c++) {
        let y = 4u * c;
        let t = p * sb;
        let bv = vec4f(be(ib[y] + t), be(ib[y + 1u] + t), be(ib[y + 2u] + t), be(ib[y + 3u] + t));
        acc[r][c] += mat4x4f(av.x * bv, av.y * bv, av.z * bv, av.w * bv);
      }
    }
  }

  // The epilogue loops pu(7) = 4·RM·RN times over a copy of the sums: a loop the compiler
  // cannot unroll, so the activation is compiled once rather than per row (seconds on lavapipe)
  // while acc stays in registers through the k loop.
  var res: array<mat4x4f, RM * RN>;
  for (var r = 0u; r < RM; r++) {
    for (var c = 0u; c < RN; c++) { res[r * RN + c] = acc[r][c]; }
  }
  let zbase = z * m * n;
  for (var e = 0u; e < pu(7u); e++) {
    let rc = e / 4u;
    let q = e % 4u;
    let i = row0 + 4u * WG_Y * (rc / RN) + q;
    let j = col0 + 4u * WG_X * (rc % RN);
    store4(zbase, i, j, res[rc][q]);
  }
}

// @kernel shared
// Workgroup (X, Y) computes the 64×64 output tile at rows 64·X, columns 64·Y; invocation (x, y)
// its rows 64·X + 4y.. and columns 64·Y + 4x... Each round stages op(a)[tile rows, p0..p0+KT)
// and op(b)[p0..p0+KT), tile columns) as vec4s along m and n (zeros past the matrix), the 256
// invocations reading four elements each, consecutive invocations along the stored rows.
const KT = 16u;
var<workgroup> As: array<vec4f, KT * 16u>; // As[p·16 + g] = op(a)[rows 4g..4g+3 of the tile, p0 + p]
var<workgroup> Bs: array<vec4f, KT * 16u>; // Bs[p·16 + g] = op(b)[p0 + p, columns 4g..4g+3 of the tile]

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3u) {
  let m = pu(0u);
  let n = pu(1u);
  let k = pu(2u);
  let z = pu(4u) + wid.z;
  let tile_row = (pu(5u) + wid.x) * 64u;
  let tile_col = (pu(6u) + wid.y) * 64u;
  let off = batch_offsets(z);
  var acc: mat4x4f; // column ρ: outputs of row ρ
  for (var p0 = 0u; p0 < k; p0 += KT) {
    for (var q = 0u; q < 4u; q++) {
      let e = t + 256u * q;
      // (i, p) of op(a) and (p, j) of op(b) this invocation stages
      let pa = select(e % KT, e / 64u, TRANS_A);
      let i = select(e / KT, e % 64u, TRANS_A);
      let pb = select(e / 64u, e % KT, TRANS_B);
      let j = select(e % 64u, e / KT, TRANS_B);
      let gi = tile_row + i;
      let gpa = p0 + pa;
      var va = 0.0;
      if (gi < m && gpa < k) { va = ae(off.x + select(gi * k + gpa, gpa * m + gi, TRANS_A)); }
      As[pa * 16u + i / 4u][i % 4u] = va;
      let gj = tile_col + j;
      let gpb = p0 + pb;
      var vb = 0.0;
      if (gj < n && gpb < k) { vb = be(off.y + select(gpb * n + gj, gj * k + gpb, TRANS_B)); }
      Bs[pb * 16u + j / 4u][j % 4u] = vb;
    }
    workgroupBarrier();
    for (var p = 0u; p < KT; p++) {
      let av = As[p * 16u + lid.y];
      let bv = Bs[p * 16u + lid.x];
      acc += mat4x4f(av.x * bv, av.y * bv, av.z * bv, av.w * bv);
    }
    workgroupBarrier();
  }
  let zbase = z * m * n;
  let i = tile_row + 4u * lid.y;
  let j = tile_col + 4u * lid.x;
  for (var q = 0u; q < 4u; q++) {
    store4(zbase, i + q, j, acc[q]);
  }
}

// @kernel lanes
// Workgroup (X, Y) computes rows TM·X .. +TM−1 (TM = 8R), the same for all its invocations, and
// invocation x the 4 columns 4·(Y·WG + x) .. +3. Per four k, each lane loads one vec4 of op(a)
// per 8 rows (lane ℓ: row ℓ, or for TRANS_A rows 4·(ℓ/4) .. +3 at k ℓ%4) and subgroupBroadcast,
// a vector shuffle on lavapipe, hands every lane each row; op(b) is loaded per lane. At R = 1
// that is 20 elements loaded per lane for 128 products, against 32 for 64 in `regs`. Lanes past
// the 8th (wider subgroups) load rows the tile never uses. Needs `enable subgroups;` in defs.
const TM = 8u * R;

// Σ_κ x[κ]·bv[κ]: one row's four k against the four rows of op(b) (bv[κ] = op(b)[p+κ, j..j+3])
fn row_times_b(acc: vec4f, x: vec4f, bv: mat4x4f) -> vec4f { return fma(vec4f(x.w), bv[3], fma(vec4f(x.z), bv[2], fma(vec4f(x.y), bv[1], fma(vec4f(x.x), bv[0], acc)))); }

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32, @builtin(workgroup_id) wid: vec3u) {
  let m = pu(0u);
  let n = pu(1u);
  let k = pu(2u);
  let z = pu(4u) + wid.z;
  let row0 = (pu(5u) + wid.x) * TM;
  let j = ((pu(6u) + wid.y) * WG + li) * 4u;
  let off = batch_offsets(z);

  // op(b)[p, column j+c] is b[jb[c] + p·sb]; columns past n are clamped (a vec4 as a whole)
  let sb = select(n, 1u, TRANS_B);
  var jb: array<u32, 4>;
  for (var c = 0u; c < 4u; c++) {
    let col = select(min(j + c, n - 1u), min(j, n - 4u) + c, B_VEC && !TRANS_B);
    jb[c] = off.y + col * select(1u, k, TRANS_B);
  }
  // this lane's share of op(a): row r_q = row0 + 8q + lane at a[ia[q] + p·sa] (rows clamped)
  let sa = select(1u, m, TRANS_A);
  var ia: array<u32, R>;
  // TRANS_A: rows rb_q .. rb_q+3 (rb_q = row0 + 8q + 4·(lane/4)) at k p + lane%4
  var rb: array<u32, R>;
  for (var q = 0u; q < R; q++) {
    ia[q] = off.x + min(row0 + 8u * q + lane, m - 1u) * select(k, 1u, TRANS_A);
    rb[q] = row0 + 8u * q + 4u * (lane / 4u);
  }

  var acc: array<vec4f, TM>; // acc[r]: outputs (row0 + r, j..j+3)
  let k4 = k & ~3u;
  for (var p = 0u; p < k4; p += 4u) {
    var bv: mat4x4f;
    if (!TRANS_B) {
      for (var kk = 0u; kk < 4u; kk++) {
        let s = (p + kk) * n;
        if (B_VEC) {
          bv[kk] = b[(jb[0] + s) >> 2u];
        } else {
          bv[kk] = vec4f(be(jb[0] + s), be(jb[1] + s), be(jb[2] + s), be(jb[3] + s));
        }
      }
    } else {
      var t: mat4x4f; // column c: op(b)[p..p+3, j+c]
      for (var c = 0u; c < 4u; c++) {
        let s = jb[c] + p;
        if (B_VEC) { t[c] = b[s >> 2u]; } else { t[c] = vec4f(be(s), be(s + 1u), be(s + 2u), be(s + 3u)); }
      }
      bv = transpose(t);
    }
    for (var q = 0u; q < R; q++) {
      let base = 8u * q;
      if (!TRANS_A) {
        let s = ia[q] + p;
        var av: vec4f;
        if (A_VEC) { av = a[s >> 2u]; } else { av = vec4f(ae(s), ae(s + 1u), ae(s + 2u), ae(s + 3u)); }
        acc[base] = row_times_b(acc[base], subgroupBroadcast(av, 0u), bv);
        acc[base + 1u] = row_times_b(acc[base + 1u], subgroupBroadcast(av, 1u), bv);
        acc[base + 2u] = row_times_b(acc[base + 2u], subgroupBroadcast(av, 2u), bv);
        acc[base + 3u] = row_times_b(acc[base + 3u], subgroupBroadcast(av, 3u), bv);
        acc[base + 4u] = row_times_b(acc[base + 4u], subgroupBroadcast(av, 4u), bv);
        acc[base + 5u] = row_times_b(acc[base + 5u], subgroupBroadcast(av, 5u), bv);
        acc[base + 6u] = row_times_b(acc[base + 6u], subgroupBroadcast(av, 6u), bv);
        acc[base + 7u] = row_times_b(acc[base + 7u], subgroupBroadcast(av, 7u), bv);
      } else {
        // lane kk + 4h holds op(a)[rows 4h..4h+3 of the block, p + kk]
        let s = (p + lane % 4u) * m + off.x;
        var av: vec4f;
        if (A_VEC) {
          av = a[(s + min(rb[q], m - 4u)) >> 2u];
        } else {
          av = vec4f(ae(s + min(rb[q], m - 1u)), ae(s + min(rb[q] + 1u, m - 1u)), ae(s + min(rb[q] + 2u, m - 1u)), ae(s + min(rb[q] + 3u, m - 1u)));
        }
        let x0 = subgroupBroadcast(av, 0u);
        let x1 = subgroupBroadcast(av, 1u);
        let x2 = subgroupBroadcast(av, 2u);
        let x3 = subgroupBroadcast(av, 3u);
        let y0 = subgroupBroadcast(av, 4u);
        let y1 = subgroupBroadcast(av, 5u);
        let y2 = subgroupBroadcast(av, 6u);
        let y3 = subgroupBroadcast(av, 7u);
        acc[base] = row_times_b(acc[base], vec4f(x0.x, x1.x, x2.x, x3.x), bv);
        acc[base + 1u] = row_times_b(acc[base + 1u], vec4f(x0.y, x1.y, x2.y, x3.y), bv);
        acc[base + 2u] = row_times_b(acc[base + 2u], vec4f(x0.z, x1.z, x2.z, x3.z), bv);
        acc[base + 3u] = row_times_b(acc[base + 3u], vec4f(x0.w, x1.w, x2.w, x3.w), bv);
        acc[base + 4u] = row_times_b(acc[base + 4u], vec4f(y0.x, y1.x, y2.x, y3.x), bv);
        acc[base + 5u] = row_times_b(acc[base + 5u], vec4f(y0.y, y1.y, y2.y, y3.y), bv);
        acc[base + 6u] = row_times_b(acc[base + 6u], vec4f(y0.z, y1.z, y2.z, y3.z), bv);
        acc[base + 7u] = row_times_b(acc[base + 7u], vec4f(y0.w, y1.w, y2.w, y3.w), bv);
      }
    }
  }
  // the last k mod 4 products, one k at a time
  for (var p = k4; p < k; p++) {
    let bk = vec4f(be(jb[0] + p * sb), be(jb[1] + p * sb), be(jb[2] + p * sb), be(jb[3] + p * sb));
    for (var q = 0u; q < R; q++) {
      let base = 8u * q;
      let x = ae(ia[q] + p * sa);
      acc[base] = fma(vec4f(subgroupBroadcast(x, 0u)), bk, acc[base]);
      acc[base + 1u] = fma(vec4f(subgroupBroadcast(x, 1u)), bk, acc[base + 1u]);
      acc[base + 2u] = fma(vec4f(subgroupBroadcast(x, 2u)), bk, acc[base + 2u]);
      acc[base + 3u] = fma(vec4f(subgroupBroadcast(x, 3u)), bk, acc[base + 3u]);
      acc[base + 4u] = fma(vec4f(subgroupBroadcast(x, 4u)), bk, acc[base + 4u]);
      acc[base + 5u] = fma(vec4f(subgroupBroadcast(x, 5u)), bk, acc[base + 5u]);
      acc[base + 6u] = fma(vec4f(subgroupBroadcast(x, 6u)), bk, acc[base + 6u]);
      acc[base + 7u] = fma(vec4f(subgroupBroadcast(x, 7u)), bk, acc[base + 7u]);
    }
  }

  // the epilogue loops pu(7) = TM times over a copy of the sums (see regs)
  var res: array<vec4f, TM>;
  for (var r = 0u; r < TM; r++) { res[r] = acc[r]; }
  let zbase = z * m * n;
  for (var r = 0u; r < pu(7u); r++) { store4(zbase, row0 + r, j, res[r]); }
}
