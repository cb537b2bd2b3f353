// unary and unaryGrad (the `elementwise` family), and kiln's f32 math library.
//
// The text before the first kernel is the math library: exp, expm1, log, pow, sin, cos, tanh, erf,
// erfc and the sigmoid family, written out in f32 with explicit range reduction rather than
// WGSL's builtins, whose accuracy the spec leaves loose (sin/cos to 2^-11 absolute on Vulkan,
// log to 2^-21 absolute near 1, tanh and sigmoid free to overflow to NaN) and whose results at
// NaN, ±∞ and ±0 are the implementation's. Each function here is within a few ulp of the
// reference's f64 result rounded to f32 (sin and cos for every finite x: large arguments are
// reduced with 224 bits of 2/π) and gives the reference's value at every special input. It has
// no bindings, so other kernels include it through their `defs` (F32_MATH in
// src/backend/webgpu/kernels/unary.ts).
//
// NaN and ∞ are tested through their bits, never with `x != x` or comparisons against ∞: WGSL
// lets an implementation assume finite math, and Dawn on lavapipe does compile f32 `!=` as an
// ordered comparison (NaN != 0 is false there).

// The canonical quiet NaN and +∞, as private variables: a constant NaN or ∞ is a WGSL error.
var<private> NAN_BITS: u32 = 0x7fc00000u;
var<private> INF_BITS: u32 = 0x7f800000u;

fn m_nan() -> f32 { return bitcast<f32>(NAN_BITS); }
fn m_inf() -> f32 { return bitcast<f32>(INF_BITS); }
fn m_is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn m_is_finite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }
fn m_abs(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) & 0x7fffffffu); }
// |m| with the sign of s.
fn m_copysign(m: f32, s: f32) -> f32 {
  return bitcast<f32>((bitcast<u32>(m) & 0x7fffffffu) | (bitcast<u32>(s) & 0x80000000u));
}
// x·0 as IEEE defines it (a signed zero, NaN for NaN and ±∞), without a literal 0 a compiler may fold.
fn m_times_zero(x: f32) -> f32 {
  if (!m_is_finite(x)) { return m_nan(); }
  return bitcast<f32>(bitcast<u32>(x) & 0x80000000u);
}

// 2^k for an integer k in [-126, 127], built from its bits.
fn m_pow2(k: i32) -> f32 { return bitcast<f32>(u32(k + 127) << 23u); }

// y·2^k for integral k in [−252, 254], in two exact steps so neither factor leaves the normal range.
fn m_scale(y: f32, k: f32) -> f32 {
  let ki = i32(k);
  let h = ki / 2;
  return y * m_pow2(h) * m_pow2(ki - h);
}

const M_LOG2E: f32 = 1.4426950216293335;
// ln 2 = LN2_HI + LN2_LO, LN2_HI with 16 significant bits so k·LN2_HI is exact for |k| < 256.
const M_LN2_HI: f32 = 0.693145751953125;
const M_LN2_LO: f32 = 1.428606765330187e-6;

// e^r − 1 for |r| ≤ ln2/2: Taylor to r^8 (the next term is below 2^-30 relative).
fn m_expm1_poly(r: f32) -> f32 {
  let p = 1.0 / 2.0 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0 + r * (1.0 / 40320.0))))));
  return r + r * r * p;
}

// e^x = 2^k·e^r with k = round(x/ln2), r = x − k·ln2 (Cody–Waite, exact to the last bit of r).
fn m_exp(x: f32) -> f32 {
  if (m_is_nan(x)) { return x; }
  if (x >= 88.72283935546875) { return m_inf(); } // the first f32 past ln(FLT_MAX)
  if (x < -104.0) { return 0.0; } // below half the smallest subnormal
  let k = round(x * M_LOG2E);
  let r = (x - k * M_LN2_HI) - k * M_LN2_LO;
  return m_scale(1.0 + m_expm1_poly(r), k);
}

// e^x − 1, accurate near 0: 2^k·(1 + p) − 1 = (2^k − 1) + 2^k·p, where 2^k − 1 is exact for |k| ≤ 24.
fn m_expm1(x: f32) -> f32 {
  if (m_is_nan(x)) { return x; }
  if (m_abs(x) <= 0.34657359) { return m_expm1_poly(x); }
  if (x < -18.0) { return -1.0; } // e^x below 2^-25
  if (x > 16.0) { return m_exp(x) - 1.0; } // no cancellation left to avoid
  let k = round(x * M_LOG2E);
  let r = (x - k * M_LN2_HI) - k * M_LN2_LO;
  let s = m_pow2(i32(k));
  return (s - 1.0) + s * m_expm1_poly(r);
}

// x = m·2^e with m in [√½, √2), for finite x > 0 (subnormals included): (m, e).
fn m_split(x: f32) -> vec2f {
  var b = bitcast<u32>(x);
  var e = 0;
  if (b < 0x00800000u) { // subnormal: scale into the normal range first
    b = bitcast<u32>(x * 8388608.0);
    e = -23;
  }
  e += i32(b >> 23u) - 127;
  var m = bitcast<f32>((b & 0x007fffffu) | 0x3f800000u);
  if (m > 1.4142135381698608) {
    m = m * 0.5;
    e += 1;
  }
  return vec2f(m, f32(e));
}

// ln m for m in [√½, √2): 2·atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172, by its series
// 2s·(1 + z/3 + z²/5 + …), z = s² (the first term left out, z^5/11, is below 2^-28).
fn m_log_mant(m: f32) -> f32 {
  let f = m - 1.0; // exact
  let s = f / (2.0 + f);
  let z = s * s;
  let r = z * (1.0 / 3.0 + z * (1.0 / 5.0 + z * (1.0 / 7.0 + z * (1.0 / 9.0))));
  return 2.0 * s + 2.0 * s * r;
}

// ln x = e·ln2 + ln m.
fn m_log(x: f32) -> f32 {
  if (m_is_nan(x)) { return x; }
  if (x == 0.0) { return -m_inf(); }
  if (x < 0.0) { return m_nan(); }
  if (!m_is_finite(x)) { return x; }
  let me = m_split(x);
  return me.y * M_LN2_HI + (me.y * M_LN2_LO + m_log_mant(me.x));
}

// ax^n for an integer 1 ≤ n ≤ 64 by repeated squaring (x² is exactly rounded, x^n within a few ulp).
fn m_powi(ax: f32, n: u32) -> f32 {
  var r = 1.0;
  var base = ax;
  var k = n;
  loop {
    if ((k & 1u) == 1u) { r = r * base; }
    k = k >> 1u;
    if (k == 0u) { break; }
    base = base * base;
  }
  return r;
}

// ax^y for finite ax > 0 and finite |y| < 2^64: 2^(y·e)·e^(y·ln m), with y·e split into an integer and a
// fraction exactly (y to 16 bits times e, at most 8 bits, is exact in f32), so only y·ln m,
// |ln m| ≤ 0.35, carries the error of the logarithm, however far ax is from 1.
fn m_pow_pos(ax: f32, y: f32) -> f32 {
  let me = m_split(ax);
  let yh = bitcast<f32>(bitcast<u32>(y) & 0xffffff00u);
  let yl = y - yh;
  let p = yh * me.y;
  let n = round(p);
  let w = ((p - n) + yl * me.y) * 0.6931471824645996 + y * m_log_mant(me.x);
  // 2^n·e^w = 2^(n + k)·e^r, r = w − k·ln2
  let k = round(w * M_LOG2E);
  let total = n + k;
  if (total > 128.0) { return m_inf(); }
  if (total < -151.0) { return 0.0; }
  let r = (w - k * M_LN2_HI) - k * M_LN2_LO;
  return m_scale(1.0 + m_expm1_poly(r), total);
}

// x^y with JavaScript's Math.pow at every special value (the reference's): x^±0 = 1 even for
// NaN, NaN otherwise propagates, (±1)^±∞ = NaN, a negative base needs an integral exponent and
// keeps its sign for odd ones, ±0 and ±∞ as IEEE pow.
fn m_pow(x: f32, y: f32) -> f32 {
  if (y == 0.0) { return 1.0; }
  if (m_is_nan(x) || m_is_nan(y)) { return m_nan(); }
  let ax = m_abs(x);
  if (!m_is_finite(y)) {
    if (ax == 1.0) { return m_nan(); }
    return select(0.0, m_inf(), (ax > 1.0) == (y > 0.0));
  }
  let ay = m_abs(y);
  let integral = floor(y) == y;
  // every f32 of magnitude 2^24 or more is even
  let odd = integral && ay < 16777216.0 && (i32(ay) & 1) == 1;
  let neg = (bitcast<u32>(x) & 0x80000000u) != 0u; // −0 and −∞ too: (−0)^3 = −0, (−∞)^3 = −∞
  if (neg && !integral && m_is_finite(x) && ax != 0.0) { return m_nan(); }
  var r: f32;
  if (ax == 0.0) {
    r = select(m_inf(), 0.0, y > 0.0);
  } else if (!m_is_finite(ax)) {
    r = select(0.0, m_inf(), y > 0.0);
  } else if (ay >= 18446744073709551616.0) {
    // |y| ≥ 2^64 and ax ≠ 1: |y·ln ax| ≥ 2^40, far past the range
    r = select(select(0.0, m_inf(), (ax > 1.0) == (y > 0.0)), 1.0, ax == 1.0);
  } else if (integral && ay <= 64.0) {
    r = m_powi(ax, u32(ay));
    if (y < 0.0) {
      // 1/r, unless r left the normal range (its reciprocal would be off, infinite or 0)
      r = select(m_pow_pos(ax, y), 1.0 / r, r >= 1.17549435e-38 && m_is_finite(r));
    }
  } else {
    r = m_pow_pos(ax, y);
  }
  return select(r, -r, neg && odd);
}

// π/2 = PIO2_1 + PIO2_2 + PIO2_3 + PIO2_4 (to 1e-19), the first three with 12 significant bits so
// their multiples by k are exact for |k| < 4096: Cody–Waite reduction for |x| < 4096, exact
// enough that sin x keeps its relative accuracy next to the multiples of π.
const M_2_PI: f32 = 0.6366197466850281;
const M_PIO2: f32 = 1.5707963705062866;
const M_PIO2_1: f32 = 1.5703125;
const M_PIO2_2: f32 = 4.837512969970703e-4;
const M_PIO2_3: f32 = 7.549533620476723e-8;
const M_PIO2_4: f32 = 2.5633440682570896e-12;

// The first 224 bits of 2/π (computed with BigInt from Machin's formula), for the reduction of
// large arguments.
var<private> M_TWO_OVER_PI: array<u32, 7> = array<u32, 7>(0xa2f9836eu, 0x4e441529u, 0xfc2757d1u, 0xf534ddc0u, 0xdb629599u, 0x3c439041u, 0xfe5163abu);

// 32 bits of the 192-bit little-endian integer p starting at bit `at`.
fn m_bits32(p: ptr<function, array<u32, 6>>, at: u32) -> u32 {
  let w = at / 32u;
  let sh = at % 32u;
  let lo = (*p)[w] >> sh;
  // a shift by 32 is a shift by 0 in WGSL: the next word only enters when sh > 0
  return select(lo | ((*p)[w + 1u] << (32u - sh)), lo, sh == 0u);
}

// (q, r) with |x| = (4n + q)·π/2 + r, |r| ≤ π/4, for finite |x| ≥ 4096 (Payne–Hanek): x = M·2^E
// with M a 24-bit integer; M·2^E·(2/π) mod 4 needs only the bits of 2/π from about E − 2 on
// (the earlier ones give multiples of 4), so a window of 128 of them, multiplied exactly by M,
// gives the quadrant and 96 bits of fraction.
fn m_reduce_large(a: f32) -> vec2f {
  let b = bitcast<u32>(a);
  let m = (b & 0x007fffffu) | 0x00800000u;
  let e = i32(b >> 23u) - 150;
  let i0 = u32(max(0, (e - 2) / 32)); // the first word needed (for e < 2, every bit of 2/π counts)
  var p: array<u32, 6>;
  var carry = 0u;
  for (var j = 0u; j < 4u; j++) {
    let hl = mulhilo(m, M_TWO_OVER_PI[i0 + 3u - j]);
    let t = hl.y + carry;
    p[j] = t;
    carry = hl.x + select(0u, 1u, t < hl.y);
  }
  p[4] = carry;
  p[5] = 0u;
  // the binary point of the product sits at bit s (97 ≤ s ≤ 139)
  let s = u32(32 * (i32(i0) + 4) - e);
  var q = m_bits32(&p, s) & 3u;
  var f2 = m_bits32(&p, s - 32u);
  var f1 = m_bits32(&p, s - 64u);
  var f0 = m_bits32(&p, s - 96u);
  var sign = 1.0;
  if (f2 >= 0x80000000u) {
    // a fraction of ½ or more: take the next quadrant and the fraction minus 1 (negate the 96 bits)
    q = (q + 1u) & 3u;
    sign = -1.0;
    f0 = ~f0 + 1u;
    let c0 = select(0u, 1u, f0 == 0u);
    f1 = ~f1 + c0;
    let c1 = select(0u, 1u, f1 == 0u && c0 == 1u);
    f2 = ~f2 + c1;
  }
  let frac = f32(f2) * 2.3283064365386963e-10 + f32(f1) * 5.421010862427522e-20 + f32(f0) * 1.2621774483536189e-29;
  return vec2f(f32(q), sign * frac * M_PIO2);
}

// sin and cos of |r| ≤ π/4 by Taylor series (next terms below 2^-28).
fn m_sin_poly(r: f32) -> f32 {
  let z = r * r;
  return r + r * z * (-1.0 / 6.0 + z * (1.0 / 120.0 + z * (-1.0 / 5040.0 + z * (1.0 / 362880.0))));
}
fn m_cos_poly(r: f32) -> f32 {
  let z = r * r;
  return 1.0 - 0.5 * z + z * z * (1.0 / 24.0 + z * (-1.0 / 720.0 + z * (1.0 / 40320.0 + z * (-1.0 / 3628800.0))));
}

// sin(x + c·π/2) with c = 1 for the cosine; by quadrant q of the reduced argument r.
fn m_sincos(x: f32, cosine: bool) -> f32 {
  if (!m_is_finite(x)) { return m_nan(); }
  var k: f32;
  var r: f32;
  if (m_abs(x) < 4096.0) {
    k = round(x * M_2_PI);
    r = (((x - k * M_PIO2_1) - k * M_PIO2_2) - k * M_PIO2_3) - k * M_PIO2_4;
  } else {
    let qr = m_reduce_large(m_abs(x));
    k = select(qr.x, -qr.x, x < 0.0);
    r = select(qr.y, -qr.y, x < 0.0);
  }
  let q = (u32(i32(k) & 3) + select(0u, 1u, cosine)) & 3u; // cos x = sin(x + π/2)
  let v = select(m_sin_poly(r), m_cos_poly(r), (q & 1u) == 1u);
  return select(v, -v, q >= 2u);
}
fn m_sin(x: f32) -> f32 { return m_sincos(x, false); }
fn m_cos(x: f32) -> f32 { return m_sincos(x, true); }

// tanh |x| = e/(e + 2) with e = expm1(2|x|): no overflow, no cancellation near 0.
fn m_tanh(x: f32) -> f32 {
  if (m_is_nan(x)) { return x; }
  let a = m_abs(x);
  var t = 1.0;
  if (a < 10.0) { // tanh 10 is 1 in f32
    let e = m_expm1(2.0 * a);
    t = e / (e + 2.0);
  }
  return m_copysign(t, x);
}

// 1/(1 + e^−x), computed from e^−|x| so neither branch overflows.
fn m_sigmoid(x: f32) -> f32 {
  if (m_is_nan(x)) { return x; }
  let e = m_exp(-m_abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

// σ(x)·(1 − σ(x)) = e^−|x|/(1 + e^−|x|)², exact in the tails where 1 − σ cancels.
fn m_sigmoid_slope(x: f32) -> f32 {
  if (m_is_nan(x)) { return x; }
  let e = m_exp(-m_abs(x));
  let d = 1.0 + e;
  return e / (d * d);
}

const M_2_SQRTPI: f32 = 1.128379225730896;

// e^(−c·x²) for c a power of two. x² is split as hi² + (x − hi)(x + hi), hi being x to 12
// significant bits so c·hi² is exact: the rounding of a plain x², multiplied by x² itself in the
// exponent, would cost up to 2^-17 relative where the result is small.
fn m_gauss(x: f32, c: f32) -> f32 {
  if (!m_is_finite(x)) { return m_exp(-c * x * x); } // 0 for ±∞, NaN for NaN
  let hi = bitcast<f32>(bitcast<u32>(x) & 0xfffff000u);
  return m_exp(-c * hi * hi) * m_exp(c * (hi - x) * (hi + x));
}

// erfc x for x ≥ 0.5: t·exp(−x² + P(t)), t = 2/(2 + x), where P is a degree-10 polynomial in
// u = (2t − (ta + tb))/(tb − ta) ∈ [−1, 1] fitted (Chebyshev interpolation against an f64 erfc)
// to ln(erfc(x)/t) + x² on x in [0.5, 10]; the fit is within 1e-9, the f32 evaluation within
// 2^-22.
fn m_erfc_tail(x: f32) -> f32 {
  if (x >= 10.0) { return 0.0; } // erfc 10 ≈ 2e-45
  let t = 2.0 / (2.0 + x);
  let u = (2.0 * t - 0.96666664) * 1.5789474;
  var p = 1.73937053e-7;
  p = p * u + 0.00000830087993;
  p = p * u - 0.00000948718935;
  p = p * u - 0.0000902634347;
  p = p * u + 0.000148560226;
  p = p * u + 0.000856615487;
  p = p * u - 0.00181988254;
  p = p * u - 0.0115540465;
  p = p * u + 0.0208432656;
  p = p * u + 0.423910379;
  p = p * u - 0.694161177;
  return t * m_gauss(x, 1.0) * m_exp(p);
}

// erf x for |x| < 0.5 by its Maclaurin series 2/√π·Σ (−1)ⁿ x^(2n+1)/(n!(2n+1)), to n = 7.
fn m_erf_series(x: f32) -> f32 {
  let z = x * x;
  let s = 1.0 + z * (-1.0 / 3.0 + z * (1.0 / 10.0 + z * (-1.0 / 42.0 + z * (1.0 / 216.0 + z * (-1.0 / 1320.0 + z * (1.0 / 9360.0 + z * (-1.0 / 75600.0)))))));
  return M_2_SQRTPI * x * s;
}

fn m_erf(x: f32) -> f32 {
  if (m_is_nan(x)) { return x; }
  let a = m_abs(x);
  if (a < 0.5) { return m_erf_series(x); }
  return m_copysign(1.0 - m_erfc_tail(a), x);
}

fn m_erfc(x: f32) -> f32 {
  if (m_is_nan(x)) { return x; }
  if (m_abs(x) < 0.5) { return 1.0 - m_erf_series(x); }
  let c = m_erfc_tail(m_abs(x));
  return select(2.0 - c, c, x > 0.0);
}

const M_SQRT1_2: f32 = 0.7071067690849304;

// Φ(x) = ½·erfc(−x/√2): accurate in the lower tail, where 1 + erf(x/√2) would cancel.
fn m_norm_cdf(x: f32) -> f32 { return 0.5 * m_erfc(-x * M_SQRT1_2); }

// gelu(x) = x·Φ(x); gelu_tanh(x) = ½x(1 + tanh u) = x·σ(2u), u = √(2/π)(x + 0.044715x³).
fn m_gelu(x: f32) -> f32 { return x * m_norm_cdf(x); }
const M_SQRT_2_PI: f32 = 0.7978845834732056;
fn m_gelu_tanh_u(x: f32) -> f32 { return M_SQRT_2_PI * (x + 0.044715 * x * x * x); }
fn m_gelu_tanh(x: f32) -> f32 { return x * m_sigmoid(2.0 * m_gelu_tanh_u(x)); }

// silu(x) = x·σ(x); x·e^x/(1 + e^x) for x < 0, as the reference (so silu(−∞) is NaN there too).
fn m_silu(x: f32) -> f32 {
  if (x >= 0.0) { return x / (1.0 + m_exp(-x)); }
  let e = m_exp(x);
  return x * e / (1.0 + e);
}

// √x with the reference's values at the edges: √±0 = ±0, √(x < 0) = NaN.
fn m_sqrt(x: f32) -> f32 {
  if (m_is_nan(x) || x == 0.0) { return x; }
  if (x < 0.0) { return m_nan(); }
  return sqrt(x);
}

// round half to even, from floor as the reference computes it; |x| ≥ 2^23 is already integral.
fn m_round(x: f32) -> f32 {
  if (!(m_abs(x) < 8388608.0)) { return x; }
  let f = floor(x);
  let d = x - f;
  if (d > 0.5) { return f + 1.0; }
  if (d < 0.5) { return f; }
  return select(f + 1.0, f, f - 2.0 * floor(0.5 * f) == 0.0);
}

// @kernel unary
// out[i] = op(x[i]). Params: [0] n. Defs: ld_x, st_out and `apply`, which calls the op's function
// here for the compute type: uf_<op> in f32, ui_<op> in i32 (the integral ops only). A pipeline
// compiles only the function of its op.
@group(0) @binding(2) var<storage, read> x: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

fn uf_neg(v: f32) -> f32 { return -v; }
fn uf_abs(v: f32) -> f32 { return m_abs(v); }
fn uf_sign(v: f32) -> f32 {
  if (m_is_nan(v)) { return v; }
  return select(select(0.0, -1.0, v < 0.0), 1.0, v > 0.0);
}
fn uf_exp(v: f32) -> f32 { return m_exp(v); }
fn uf_log(v: f32) -> f32 { return m_log(v); }
fn uf_sqrt(v: f32) -> f32 { return m_sqrt(v); }
fn uf_rsqrt(v: f32) -> f32 { return 1.0 / m_sqrt(v); } // ±0 → ±∞
fn uf_sin(v: f32) -> f32 { return m_sin(v); }
fn uf_cos(v: f32) -> f32 { return m_cos(v); }
fn uf_tanh(v: f32) -> f32 { return m_tanh(v); }
fn uf_sigmoid(v: f32) -> f32 { return m_sigmoid(v); }
fn uf_relu(v: f32) -> f32 {
  if (m_is_nan(v)) { return v; }
  return select(0.0, v, v > 0.0);
}
fn uf_gelu(v: f32) -> f32 { return m_gelu(v); }
fn uf_gelu_tanh(v: f32) -> f32 { return m_gelu_tanh(v); }
fn uf_silu(v: f32) -> f32 { return m_silu(v); }
fn uf_erf(v: f32) -> f32 { return m_erf(v); }
// |x| ≥ 2^23 is integral already (and NaN, ±∞ pass through)
fn uf_floor(v: f32) -> f32 { return select(v, floor(v), m_abs(v) < 8388608.0); }
fn uf_ceil(v: f32) -> f32 { return select(v, ceil(v), m_abs(v) < 8388608.0); }
fn uf_round(v: f32) -> f32 { return m_round(v); }
fn uf_isfinite(v: f32) -> f32 { return select(0.0, 1.0, m_is_finite(v)); }

// The integral ops in i32, wrapping: −(−2³¹) and |−2³¹| are −2³¹, as the reference stores them.
fn ui_neg(v: i32) -> i32 { return 0 - v; }
fn ui_abs(v: i32) -> i32 { return select(v, 0 - v, v < 0); }
fn ui_sign(v: i32) -> i32 { return select(select(0, -1, v < 0), 1, v > 0); }
fn ui_relu(v: i32) -> i32 { return select(0, v, v > 0); }
fn ui_floor(v: i32) -> i32 { return v; }
fn ui_ceil(v: i32) -> i32 { return v; }
fn ui_round(v: i32) -> i32 { return v; }

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg);
  if (i >= pu(0u)) { return; }
  st_out(i, apply(ld_x(i)));
}

// @kernel grad
// out[i] = dy[i]·op′(x[i]) in f32, each derivative as the reference's `unaryDerivative` defines
// it, in forms that stay accurate in the tails. Params: [0] n. Defs: ld_x, ld_dy, st_out and
// `apply`, which calls ug_<op>(x, dy).
@group(0) @binding(2) var<storage, read> x: array<u32>;
@group(0) @binding(3) var<storage, read> dy: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

fn ug_neg(v: f32, g: f32) -> f32 { return -g; }
fn ug_abs(v: f32, g: f32) -> f32 {
  if (v > 0.0) { return g; }
  if (v < 0.0) { return -g; }
  return m_times_zero(g);
}
fn ug_exp(v: f32, g: f32) -> f32 { return g * m_exp(v); }
fn ug_log(v: f32, g: f32) -> f32 { return g * (1.0 / v); }
fn ug_sqrt(v: f32, g: f32) -> f32 { return g * (0.5 / m_sqrt(v)); }
// −½·x^−1.5: ±0 gives −∞ (0^−1.5 = +∞), −∞ gives 0, other negatives NaN; g enters first so a
// large x^−1.5 scaled by a small g does not overflow on the way
fn ug_rsqrt(v: f32, g: f32) -> f32 {
  if (bitcast<u32>(v) == 0xff800000u) { return m_times_zero(-g); }
  if (m_is_nan(v) || v < 0.0) { return m_nan(); }
  if (v == 0.0) { return g * -m_inf(); }
  let r = 1.0 / sqrt(v);
  return (-0.5 * g) * r * r * r;
}
fn ug_sin(v: f32, g: f32) -> f32 { return g * m_cos(v); }
fn ug_cos(v: f32, g: f32) -> f32 { return g * -m_sin(v); }
// 1 − tanh² = 4e/(1 + e)², e = e^−2|x|
fn ug_tanh(v: f32, g: f32) -> f32 {
  if (m_is_nan(v)) { return v; }
  let e = m_exp(-2.0 * m_abs(v));
  let d = 1.0 + e;
  return g * (4.0 * e / (d * d));
}
fn ug_sigmoid(v: f32, g: f32) -> f32 { return g * m_sigmoid_slope(v); }
fn ug_relu(v: f32, g: f32) -> f32 { return select(m_times_zero(g), g, v > 0.0); }
// Φ(x) + x·φ(x)
fn ug_gelu(v: f32, g: f32) -> f32 { return g * (m_norm_cdf(v) + v * 0.3989422917366028 * m_gauss(v, 0.5)); }
// With s = σ(2u): ½(1 + tanh u) = s and ½(1 − tanh² u) = 2s(1 − s), so the derivative is
// s + 2x·s(1 − s)·u′, u′ = √(2/π)(1 + 3·0.044715x²). In f32, u and u′ overflow for |x| past
// 10^12, where the second term is already 0.
fn ug_gelu_tanh(v: f32, g: f32) -> f32 {
  if (!m_is_finite(v)) { return m_nan(); }
  let u = m_gelu_tanh_u(v);
  let du = M_SQRT_2_PI * (1.0 + 3.0 * 0.044715 * v * v);
  let slope = m_sigmoid_slope(2.0 * u);
  return g * (m_sigmoid(2.0 * u) + select(0.0, 2.0 * v * slope * du, slope > 0.0));
}
// σ(x)·(1 + x·(1 − σ(x))), with 1 − σ(x) = σ(−x) computed directly
fn ug_silu(v: f32, g: f32) -> f32 { return g * (m_sigmoid(v) * (1.0 + v * m_sigmoid(-v))); }
fn ug_erf(v: f32, g: f32) -> f32 { return g * (M_2_SQRTPI * m_gauss(v, 1.0)); }
// op′ = 0
fn ug_sign(v: f32, g: f32) -> f32 { return m_times_zero(g); }
fn ug_floor(v: f32, g: f32) -> f32 { return m_times_zero(g); }
fn ug_ceil(v: f32, g: f32) -> f32 { return m_times_zero(g); }
fn ug_round(v: f32, g: f32) -> f32 { return m_times_zero(g); }
fn ug_isfinite(v: f32, g: f32) -> f32 { return m_times_zero(g); }

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg);
  if (i >= pu(0u)) { return; }
  st_out(i, apply(ld_x(i), ld_dy(i)));
}
