// The optimizer kernels (the `optim` family): multiNorm, multiScale, adamUpdate, lambUpdate, on f32
// storages (the tensor layer updates other dtypes through f32 copies). Each op takes a list of
// tensors and a GPU cannot bind a list, so src/backend/webgpu/kernels/optim.ts records one dispatch
// per tensor (three for a large tensor's norm-dependent LAMB step) into the same batch.
//
// Norms (multiNorm; LAMB's ‖p‖ and ‖r‖) accumulate an `Acc`: the bits of the largest magnitude,
// and Σ|x|^ord with every term scaled against the largest, so squares of tiny or huge values
// neither underflow nor overflow in f32 (the reference sums in f64) and the trust ratio of tiny
// parameters is right; subnormals are read from their bits, exact even where a device flushes them.
// A tensor of at most 4096 elements is reduced by one workgroup (norm_one, lamb_one); a larger
// one by up to 16384 workgroups writing one Acc each to a scratch buffer, then one workgroup
// combining them (norm_partial + norm_finish; lamb_partial + lamb_trust + lamb_apply).
//
// Defs: ORD, the norm the reductions take (0: ∞, 1, 2, 3: any other ord, read from params[1]; 2
// in the kernels that take none); DECOUPLED (adam: AdamW's decay). Params: see each kernel; adam
// and the lamb kernels share one layout, the constants below.

const N = 0u;
const LR = 1u;
const BETA1 = 2u;
const BETA2 = 3u;
const OMB1 = 4u; // 1 − β1, rounded once from double
const OMB2 = 5u; // 1 − β2
const EPS = 6u;
const WD = 7u;
const BC1 = 8u; // 1 − β1ᵗ (1 without bias correction)
const BC2 = 9u; // 1 − β2ᵗ
const BETA1_FX = 10u; // β1·2^64 (two words, high first), for tiny_moment
const OMB1_FX = 12u; // (1 − β1)·2^64
const LRWD = 14u; // adam: lr·wd
const SLOT = 14u; // lamb: the tensor's index in trust and φ
const HAS_TRUST = 15u;
const GROUPS = 16u; // lamb_trust: partials to combine

// ---- exact powers of two --------------------------------------------------------------------

// 2^k for k in [−126, 127].
fn pow2(k: i32) -> f32 { return bitcast<f32>(u32(k + 127) << 23u); }

// x·2^k, exact unless the result leaves the normal range: each step moves x toward the result,
// so only the last can round.
fn mul2(x: f32, k: i32) -> f32 {
  var y = x;
  var j = clamp(k, -378, 378);
  for (var s = 0; s < 3; s++) {
    let d = clamp(j, -126, 127);
    y *= pow2(d);
    j -= d;
  }
  return y;
}

// ---- norm accumulation ----------------------------------------------------------------------

// Σ|x|^ord of some elements, each term scaled against the largest finite element: `top` is its
// biased exponent (an integer, below 1 for subnormals) and `frac` (ORD 3 only, else 0) the log2 of
// its mantissa in [1, 2). ORD 1 and 2: q = Σ (|x|·2^(127−top))^ord, the largest term in [1, 2^ord);
// other ords: q = Σ (|x|/largest)^ord, whose largest term is exactly 1 (no power overflows, however
// large the ord), the exponents apart taken exactly. `mx` is the largest magnitude's bits (the
// ∞-norm; ∞ and NaN, NaN winning since its bits are larger; zero detection).
struct Acc {
  mx: u32,
  top: f32,
  frac: f32,
  q: f32,
}

var<private> ordp: f32; // ORD 3: the ord
var<workgroup> wacc: array<Acc, 256>;

fn acc_empty() -> Acc { return Acc(0u, -1e30, 0.0, 0.0); }

// q against a largest element 2^−d times the one it was summed against (d ≤ 0).
fn rescale(q: f32, d: f32) -> f32 {
  if (q == 0.0) { return 0.0; }
  if (ORD == 3u) { return q * exp2(ordp * d); }
  // q < 2^32, so a factor below 2^−126 leaves nothing beside the new largest term (≥ 1)
  let k = i32(max(d, -1000.0)) * i32(ORD);
  return select(0.0, q * pow2(max(k, -126)), k >= -126);
}

// Add |x|·2^k (k = 0 for ORD 0 and 3, whose norms take mx as a value).
fn acc_add(acc: Acc, x: f32, k: i32) -> Acc {
  let a = bitcast<u32>(x) & 0x7fffffffu;
  var r = acc;
  r.mx = max(r.mx, a);
  if (ORD == 0u || a == 0u || a >= 0x7f800000u) { return r; }
  // 1.mant · 2^(e − 127); a subnormal a·2^−149 is f32(a) (exact) · 2^−149
  var b = a;
  var e = k;
  if (a < 0x00800000u) {
    b = bitcast<u32>(f32(a));
    e -= 149;
  }
  e += i32(b >> 23u);
  let mant = b & 0x7fffffu;
  if (ORD == 3u) {
    let f = log2(bitcast<f32>(0x3f800000u | mant));
    if (f32(e) > r.top || (f32(e) == r.top && f > r.frac)) {
      r.q = rescale(r.q, (r.top - f32(e)) + (r.frac - f)) + 1.0;
      r.top = f32(e);
      r.frac = f;
    } else {
      r.q += exp2(ordp * ((f32(e) - r.top) + (f - r.frac)));
    }
    return r;
  }
  if (f32(e) > r.top) {
    r.q = rescale(r.q, r.top - f32(e));
    r.top = f32(e);
  }
  let se = e - i32(r.top) + 127; // the scaled element's biased exponent
  if (se >= 1) { // below: under 2^−126 of the largest, nothing at f32 precision
    let s = bitcast<f32>((u32(se) << 23u) | mant);
    r.q += select(s, s * s, ORD == 2u);
  }
  return r;
}

fn acc_merge(a: Acc, b: Acc) -> Acc {
  var r = b;
  if (a.top > b.top || (a.top == b.top && a.frac > b.frac)) { r = a; }
  r.mx = max(a.mx, b.mx);
  r.q = rescale(a.q, (a.top - r.top) + (a.frac - r.frac)) + rescale(b.q, (b.top - r.top) + (b.frac - r.frac));
  return r;
}

// ‖·‖_ORD of what `a` accumulated.
fn acc_norm(a: Acc) -> f32 {
  if (ORD == 0u || a.mx >= 0x7f800000u) { return bitcast<f32>(a.mx); } // the largest; or ∞ / NaN
  if (a.q == 0.0) { return 0.0; }
  if (ORD == 3u) { return bitcast<f32>(a.mx) * exp2(log2(a.q) / ordp); } // largest · q^(1/ord)
  return mul2(select(a.q, sqrt(a.q), ORD == 2u), i32(a.top) - 127);
}

// Combine every invocation's `a` (all 256 must call it); every invocation gets the result.
fn wg_reduce(a: Acc, lid: u32) -> Acc {
  wacc[lid] = a;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) { wacc[lid] = acc_merge(wacc[lid], wacc[lid + s]); }
    workgroupBarrier();
  }
  let r = wacc[0];
  workgroupBarrier(); // wacc is free again for the next call
  return r;
}

// ---- Adam and LAMB --------------------------------------------------------------------------

// (m, v) ← (β1·m + (1−β1)·g, β2·v + (1−β2)·g²)
fn moments(m: f32, v: f32, g: f32) -> vec2f {
  let am = bitcast<u32>(m) & 0x7fffffffu;
  let ag = bitcast<u32>(g) & 0x7fffffffu;
  var m1 = pf(BETA1) * m + pf(OMB1) * g;
  if ((am | ag) != 0u && max(am, ag) < 0x01000000u) { m1 = tiny_moment(m, g); }
  return vec2f(m1, pf(BETA2) * v + pf(OMB2) * g * g);
}

// ---- the first moment of tiny values, exactly -------------------------------------------------
// Below 2^−125 the f32 products β1·m and (1−β1)·g round to the subnormal grid, each by up to half
// a unit there (a large part of a moment of a few units), and φ = ‖p‖/‖r‖ of a parameter whose
// gradients are that tiny divides by such moments. There the bits of m and g are their values in
// units of 2^−149, β1 and 1−β1 come as 64-bit fractions, and the sum is exact in 96 bits, rounded
// once (to nearest, ties to even) as the reference rounds its double to f32 (the double's own
// roundings, 2^−53 of it, differ from this only where they land on a tie). v needs none: there
// it is below ε², so its rounding does not show in √v + ε.

// a·b for a < 2^24 and a 64-bit b (high word first): 96 bits, high word first.
fn mul_24_64(a: u32, b: vec2u) -> vec3u {
  let l = mulhilo(a, b.y); // (high, low)
  let h = mulhilo(a, b.x);
  let w1 = l.x + h.y;
  return vec3u(h.x + select(0u, 1u, w1 < l.x), w1, l.y);
}

fn add96(a: vec3u, b: vec3u) -> vec3u {
  let w0 = a.z + b.z;
  let s1 = a.y + b.y;
  let w1 = s1 + select(0u, 1u, w0 < a.z);
  return vec3u(a.x + b.x + select(0u, 1u, s1 < a.y) + select(0u, 1u, w1 < s1), w1, w0);
}

// a − b for a ≥ b.
fn sub96(a: vec3u, b: vec3u) -> vec3u {
  let borrow0 = select(0u, 1u, a.z < b.z);
  let s1 = a.y - b.y;
  return vec3u(a.x - b.x - select(0u, 1u, a.y < b.y) - select(0u, 1u, s1 < borrow0), s1 - borrow0, a.z - b.z);
}

fn lt96(a: vec3u, b: vec3u) -> bool {
  return a.x < b.x || (a.x == b.x && (a.y < b.y || (a.y == b.y && a.z < b.z)));
}

// RN(β1·m + (1−β1)·g) for |m|, |g| < 2^−125 (a convex combination: it stays below 2^−125, where
// a float's bits are its value in units of 2^−149).
fn tiny_moment(m: f32, g: f32) -> f32 {
  let pm = mul_24_64(bitcast<u32>(m) & 0x7fffffffu, vec2u(pu(BETA1_FX), pu(BETA1_FX + 1u)));
  let pg = mul_24_64(bitcast<u32>(g) & 0x7fffffffu, vec2u(pu(OMB1_FX), pu(OMB1_FX + 1u)));
  let nm = (bitcast<u32>(m) >> 31u) == 1u;
  let ng = (bitcast<u32>(g) >> 31u) == 1u;
  var s: vec3u; // |sum|·2^64
  var neg = nm;
  if (nm == ng) {
    s = add96(pm, pg);
  } else if (lt96(pm, pg)) {
    s = sub96(pg, pm);
    neg = ng;
  } else {
    s = sub96(pm, pg);
  }
  var units = s.x;
  if (s.y > 0x80000000u || (s.y == 0x80000000u && (s.z != 0u || (units & 1u) == 1u))) { units += 1u; }
  return bitcast<f32>(select(units, units | 0x80000000u, neg));
}

// (1−β1ᵗ)·(√(v/(1−β2ᵗ)) + ε): m over it is m̂/(√v̂ + ε) with one rounding (m/(1−β1ᵗ) alone may
// round to a subnormal and lose the digits the trust ratio needs).
fn den(v: f32) -> f32 { return pf(BC1) * (sqrt(v / pf(BC2)) + pf(EPS)); }

// x·2^100 exactly, for |x| < 2^28 (a subnormal from its bits).
fn up100(x: f32) -> f32 {
  let a = bitcast<u32>(x) & 0x7fffffffu;
  let y = select(bitcast<f32>(a) * pow2(100), f32(a) * pow2(-49), a < 0x00800000u);
  return select(y, -y, (bitcast<u32>(x) >> 31u) == 1u);
}

// A value v·2^k.
struct R {
  v: f32,
  k: i32,
}

// x as v·2^k with |v| in [1, 2) (0 and non-finite x as themselves), subnormals from their bits.
fn split(x: f32) -> R {
  let a = bitcast<u32>(x) & 0x7fffffffu;
  if (a == 0u || a >= 0x7f800000u) { return R(x, 0); }
  var b = a;
  var k = -127;
  if (a < 0x00800000u) {
    b = bitcast<u32>(f32(a));
    k -= 149;
  }
  k += i32(b >> 23u);
  return R(bitcast<f32>((bitcast<u32>(x) & 0x80000000u) | 0x3f800000u | (b & 0x7fffffu)), k);
}

// LAMB's r = m̂/(√v̂ + ε) + wd·p.
fn lamb_r(m: f32, v: f32, p: f32) -> R {
  let d = den(v);
  // m below 2^−60 (zero included): m/d, and wd·p for a tiny p, may round to subnormals, losing
  // digits the reference keeps in ‖r‖ and r/‖r‖; take r·2^100 (finite for p below 2^20)
  if ((bitcast<u32>(m) & 0x7fffffffu) < 0x21800000u && (bitcast<u32>(p) & 0x7fffffffu) < 0x49800000u) {
    return R(up100(m) / d + pf(WD) * up100(p), -100);
  }
  return R(m / d + pf(WD) * p, 0);
}

// The trust ratio φ = f·2^e: kept apart so that lr·φ·r neither overflows where φ would (a
// normal ‖p‖ over the ‖r‖ of tiny gradients) nor rounds twice.
struct Trust {
  f: f32,
  e: i32,
}

// φ = ‖p‖/‖r‖, 1 when either is 0 or NaN (the reference's `w > 0 && r > 0 ? w / r : 1`).
fn trust_ratio(p: Acc, r: Acc) -> Trust {
  if (p.mx == 0u || r.mx == 0u || p.mx > 0x7f800000u || r.mx > 0x7f800000u) { return Trust(1.0, 0); }
  if (p.mx == 0x7f800000u || r.mx == 0x7f800000u) { return Trust(acc_norm(p) / acc_norm(r), 0); }
  return Trust(sqrt(p.q / r.q), i32(p.top) - i32(r.top));
}

// p − lr·φ·r, rounded once: where p is below 2^−60 (its bits exact through up100) and lr·φ·r·2^100
// is finite, the difference is taken at 2^100 times and scaled back, so a subnormal result is not
// rounded twice (to units of 2^−149, that is a large part of a tiny parameter).
fn lamb_step(w: f32, r: R, t: Trust) -> f32 {
  let rs = split(r.v); // a subnormal r.v would round lr·φ·r.v to the subnormal grid
  let c = pf(LR) * t.f * rs.v;
  let k = t.e + r.k + rs.k; // lr·φ·r = c·2^k
  let scaled = mul2(c, k + 100);
  if ((bitcast<u32>(w) & 0x7fffffffu) < 0x21800000u && (bitcast<u32>(scaled) & 0x7fffffffu) < 0x7f800000u) {
    return (up100(w) - scaled) * pow2(-100);
  }
  return w - mul2(c, k);
}

// @kernel norm_one
// out[params[2]] = ‖x‖ (params [0] n, [1] ord), one workgroup.
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  ordp = pf(1u);
  var a = acc_empty();
  for (var i = lid; i < pu(0u); i += 256u) { a = acc_add(a, x[i], 0); }
  a = wg_reduce(a, lid);
  if (lid == 0u) { out[pu(2u)] = acc_norm(a); }
}

// @kernel norm_partial
// One Acc per workgroup of x (params [0] n, [1] ord) into part.
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<Acc>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  ordp = pf(1u);
  var a = acc_empty();
  for (var i = wid.x * 256u + lid; i < pu(0u); i += nwg.x * 256u) { a = acc_add(a, x[i], 0); }
  a = wg_reduce(a, lid);
  if (lid == 0u) { part[wid.x] = a; }
}

// @kernel norm_finish
// out[params[2]] = the norm of params[3] partials (params [1] ord), one workgroup.
@group(0) @binding(2) var<storage, read> part: array<Acc>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  ordp = pf(1u);
  var a = acc_empty();
  for (var j = lid; j < pu(3u); j += 256u) { a = acc_merge(a, part[j]); }
  a = wg_reduce(a, lid);
  if (lid == 0u) { out[pu(2u)] = acc_norm(a); }
}

// @kernel scale
// x[i] *= factor[0] (params [0] n).
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read> factor: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg);
  if (i >= pu(0u)) { return; }
  x[i] *= factor[0];
}

// @kernel adam
// One Adam/AdamW step of a parameter (the shared params layout, LRWD).
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> avg: array<f32>;
@group(0) @binding(5) var<storage, read_write> avg_sq: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg);
  if (i >= pu(N)) { return; }
  var w = param[i];
  var g = grad[i];
  if (DECOUPLED) {
    w -= pf(LRWD) * w;
  } else {
    g += pf(WD) * w;
  }
  let mv = moments(avg[i], avg_sq[i], g);
  avg[i] = mv.x;
  avg_sq[i] = mv.y;
  param[i] = w - pf(LR) * (mv.x / den(mv.y));
}

// @kernel lamb_one
// One LAMB step of a parameter of at most 4096 elements, in one workgroup: moments, both norms,
// φ (to trust[SLOT] when HAS_TRUST is 1), then p −= lr·φ·r.
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> avg: array<f32>;
@group(0) @binding(5) var<storage, read_write> avg_sq: array<f32>;
@group(0) @binding(6) var<storage, read_write> trust: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  let n = pu(N);
  var ap = acc_empty();
  var ar = acc_empty();
  for (var i = lid; i < n; i += 256u) {
    let w = param[i];
    let mv = moments(avg[i], avg_sq[i], grad[i]);
    avg[i] = mv.x;
    avg_sq[i] = mv.y;
    let r = lamb_r(mv.x, mv.y, w);
    ap = acc_add(ap, w, 0);
    ar = acc_add(ar, r.v, r.k);
  }
  ap = wg_reduce(ap, lid);
  ar = wg_reduce(ar, lid);
  let phi = trust_ratio(ap, ar);
  if (lid == 0u && pu(HAS_TRUST) == 1u) { trust[pu(SLOT)] = mul2(phi.f, phi.e); }
  // each invocation reads back the moments it wrote, so r is the one the norm took
  for (var i = lid; i < n; i += 256u) {
    let w = param[i];
    let r = lamb_r(avg[i], avg_sq[i], w);
    param[i] = lamb_step(w, r, phi);
  }
}

// @kernel lamb_partial
// A large parameter's LAMB moments, and per workgroup the Accs of p and r into part[2w], part[2w+1].
@group(0) @binding(2) var<storage, read> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> avg: array<f32>;
@group(0) @binding(5) var<storage, read_write> avg_sq: array<f32>;
@group(0) @binding(6) var<storage, read_write> part: array<Acc>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  var ap = acc_empty();
  var ar = acc_empty();
  for (var i = wid.x * 256u + lid; i < pu(N); i += nwg.x * 256u) {
    let w = param[i];
    let mv = moments(avg[i], avg_sq[i], grad[i]);
    avg[i] = mv.x;
    avg_sq[i] = mv.y;
    let r = lamb_r(mv.x, mv.y, w);
    ap = acc_add(ap, w, 0);
    ar = acc_add(ar, r.v, r.k);
  }
  ap = wg_reduce(ap, lid);
  ar = wg_reduce(ar, lid);
  if (lid == 0u) {
    part[2u * wid.x] = ap;
    part[2u * wid.x + 1u] = ar;
  }
}

// @kernel lamb_trust
// φ of GROUPS partial pairs into phi[SLOT] (and trust[SLOT] when HAS_TRUST is 1).
@group(0) @binding(2) var<storage, read> part: array<Acc>;
@group(0) @binding(3) var<storage, read_write> phi: array<Trust>;
@group(0) @binding(4) var<storage, read_write> trust: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var ap = acc_empty();
  var ar = acc_empty();
  for (var j = lid; j < pu(GROUPS); j += 256u) {
    ap = acc_merge(ap, part[2u * j]);
    ar = acc_merge(ar, part[2u * j + 1u]);
  }
  ap = wg_reduce(ap, lid);
  ar = wg_reduce(ar, lid);
  if (lid == 0u) {
    let t = trust_ratio(ap, ar);
    phi[pu(SLOT)] = t;
    if (pu(HAS_TRUST) == 1u) { trust[pu(SLOT)] = mul2(t.f, t.e); }
  }
}

// @kernel lamb_apply
// p −= lr·φ·r of a large parameter, r from the moments lamb_partial wrote.
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> avg: array<f32>;
@group(0) @binding(4) var<storage, read> avg_sq: array<f32>;
@group(0) @binding(5) var<storage, read> phi: array<Trust>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg);
  if (i >= pu(N)) { return; }
  let w = param[i];
  let r = lamb_r(avg[i], avg_sq[i], w);
  param[i] = lamb_step(w, r, phi[pu(SLOT)]);
}
