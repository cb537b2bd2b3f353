// Single-precision elementary functions written to be auto-vectorised: straight-line code
// (selects, no branches or calls), so a loop `o[i] = vm::exp(x[i])` compiles to SIMD under
// each ISA's flags (SSE2 for base, AVX2+FMA, AVX-512). Accuracy is a few ulp of f32 over the
// whole range, specials (±0, ±∞, NaN, subnormal results) included — well inside the f32 test
// tolerance (rtol 2e-5) against `ref`, which computes in f64 and rounds once.
//
// Self-contained: include after defining KILN_ISA (every file in kernels/cpu/isa/ is). The
// functions live in kiln::<ISA>::vm with internal linkage, so the three ISA builds never share
// (and the linker never mixes) a copy compiled with other instruction-set flags.
//
// Methods (coefficients fitted as minimax polynomials by Lawson-weighted least squares against
// 30-digit references, except exp and log, which are Cephes' expf/logf polynomials):
// - exp(x) = 2^n·e^r, n = round(x/ln2), r = x − n·ln2 (Cody–Waite, ln2 in two parts),
//   e^r = 1 + r + r²·P(r); 2^n applied in two factors so subnormal results round once.
// - log(x) = e·ln2 + log1p(m − 1) with m in [√½, √2); log1p by Cephes' degree-9 polynomial.
// - tanh: |x| < 0.625: x + x³·P(x²); else (1 − e)/(1 + e) with e = e^(−2|x|) (no cancellation).
// - sigmoid: with e = e^(−|x|): 1/(1 + e) for x ≥ 0, e/(1 + e) for x < 0 (both accurate tails).
// - erf: |x| ≤ 0.9: x·P(x²); else 1 − erfc(|x|), erfc(t) = e^(−t²)·Q(1/(1 + t/2)) for t ≥ 0.9,
//   accurate relative to erfc itself (so Φ(x) = ½·erfc(−x/√2) keeps its relative accuracy
//   deep in the left tail, where 1 + erf(x) would cancel).
//
// Measured max error against f64 libm over every 8th f32 in the ranges below (AVX-512 build;
// the other builds are within 10% of these, except gelu's deep left tail without FMA, 4e-6):
// exp 1.0 ulp [−110, 90] · log 0.9 ulp (0, 3e38] · tanh 1.5 ulp · sigmoid 2.8 ulp · silu 3.6 ulp
// [−80, 80] · erf 2.5 ulp · erfc 1.4 ulp · gelu 7 ulp [−12, 16] · gelu_tanh 2.4e-6 relative
// (left tail, where the f64 formula of ref itself cancels; 1e-7 elsewhere).
//
// When adding to this file or using it in a loop: choose between values with select(), not
// ?: — GCC turns ?: between float expressions into a branch it will not if-convert (the arms
// could trap) on ISAs without masked instructions, and the loop stays scalar.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#ifndef KILN_ISA
#error "vecmath.h is compiled per instruction set: KILN_ISA must be defined"
#endif

#define KILN_VM_INLINE static inline __attribute__((always_inline))

namespace kiln {
namespace KILN_ISA {
namespace vm {

KILN_VM_INLINE uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
KILN_VM_INLINE float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// c ? a : b as a bit blend of two values that are both computed. Written this way (not with
// ?:) so that the compiler keeps the code straight-line: a ?: between floating-point
// expressions becomes a branch that GCC will not if-convert for vectorisation (the arms could
// trap) unless the ISA has masked instructions.
KILN_VM_INLINE float select(bool c, float a, float b) {
  uint32_t m = 0u - uint32_t(c);
  return from_bits((bits(a) & m) | (bits(b) & ~m));
}
KILN_VM_INLINE int32_t select(bool c, int32_t a, int32_t b) {
  uint32_t m = 0u - uint32_t(c);
  return int32_t((uint32_t(a) & m) | (uint32_t(b) & ~m));
}

// a·b + c, fused where the ISA has FMA (one rounding), else two roundings.
KILN_VM_INLINE float fma(float a, float b, float c) {
#if defined(__FMA__)
  return __builtin_fmaf(a, b, c);
#else
  return a * b + c;
#endif
}

// |x| and copysign by bit operations (vectorise as and/or).
KILN_VM_INLINE float abs(float x) { return from_bits(bits(x) & 0x7fffffffu); }
KILN_VM_INLINE float copysign(float mag, float sgn) {
  return from_bits((bits(mag) & 0x7fffffffu) | (bits(sgn) & 0x80000000u));
}

// e^x. Max error ≈ 1 ulp; overflow to +∞ above ln(FLT_MAX), gradual underflow, 0 below −104.
KILN_VM_INLINE float exp(float x) {
  // Clamp so n stays in [−150, 128]; comparisons are false for NaN, which passes through.
  float xc = select(x < -104.0f, -104.0f, x);
  xc = select(xc > 89.0f, 89.0f, xc);
  // n = round(x·log2 e): adding 1.5·2^23 leaves the rounded integer in the low mantissa bits.
  const float shifter = 12582912.0f;
  float t = fma(xc, 1.44269504088896341f, shifter);
  float n = t - shifter;
  int32_t ni = int32_t(bits(t) - bits(shifter));
  // r = x − n·ln2 with ln2 = C1 + C2 (C1 has 9 significant bits, so n·C1 is exact)
  float r = fma(n, -0.693359375f, xc);
  r = fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = fma(p, r, 1.3981999507e-3f);
  p = fma(p, r, 8.3334519073e-3f);
  p = fma(p, r, 4.1665795894e-2f);
  p = fma(p, r, 1.6666665459e-1f);
  p = fma(p, r, 5.0000001201e-1f);
  p = fma(p, r * r, r) + 1.0f;
  // 2^n = 2^n1 · 2^n2 with both halves normal, so p·2^n1 is exact and only the last product rounds
  int32_t n1 = ni >> 1;
  int32_t n2 = ni - n1;
  float s1 = from_bits(uint32_t(n1 + 127) << 23);
  float s2 = from_bits(uint32_t(n2 + 127) << 23);
  return p * s1 * s2;
}

// ln x. Max error ≈ 1 ulp; log(±0) = −∞, log(x < 0) = NaN, log(+∞) = +∞, subnormals handled.
KILN_VM_INLINE float log(float x) {
  // scale subnormals up by 2^23 so the exponent field is meaningful
  bool sub = x < 1.17549435e-38f;
  float xs = select(sub, x * 8388608.0f, x);
  uint32_t u = bits(xs);
  int32_t e = int32_t(u >> 23) - 126 - select(sub, 23, 0);  // x = m·2^e, m in [0.5, 1)
  float m = from_bits((u & 0x007fffffu) | 0x3f000000u);
  // move m into [√½, √2): if m < √½, use 2m and e − 1
  bool lo = m < 0.707106781186547524f;
  e = select(lo, e - 1, e);
  float f = select(lo, m + m, m) - 1.0f;
  float z = f * f;
  float y = 7.0376836292e-2f;
  y = fma(y, f, -1.1514610310e-1f);
  y = fma(y, f, 1.1676998740e-1f);
  y = fma(y, f, -1.2420140846e-1f);
  y = fma(y, f, 1.4249322787e-1f);
  y = fma(y, f, -1.6668057665e-1f);
  y = fma(y, f, 2.0000714765e-1f);
  y = fma(y, f, -2.4999993993e-1f);
  y = fma(y, f, 3.3333331174e-1f);
  y = y * f * z;
  float fe = float(e);
  y = fma(fe, -2.12194440e-4f, y);
  y = fma(z, -0.5f, y);
  float r = f + y;
  r = fma(fe, 0.693359375f, r);
  // specials: NaN and +∞ pass through, 0 → −∞, negative → NaN
  r = select(x == INFINITY, x, r);
  r = select(x == 0.0f, -INFINITY, r);
  r = select(x < 0.0f, NAN, r);
  r = select(x != x, x, r);
  return r;
}

// tanh x, max error ≈ 2 ulp.
KILN_VM_INLINE float tanh(float x) {
  float t = abs(x);
  // small |x|: tanh x = x + x·z·P(z), z = x²
  float z = x * x;
  float p = -6.0969431076e-3f;
  p = fma(p, z, 2.0997359425e-2f);
  p = fma(p, z, -5.3850954182e-2f);
  p = fma(p, z, 1.3332770093e-1f);
  p = fma(p, z, -3.3333328949e-1f);
  float small = fma(x * z, p, x);
  // large |x|: (1 − e)/(1 + e), e = e^(−2|x|) in (0, 0.29]
  float e = exp(-2.0f * t);
  float big = copysign((1.0f - e) / (1.0f + e), x);
  return select(t < 0.625f, small, big);  // NaN takes `big`, which is NaN
}

// σ(x) = 1/(1 + e^−x), accurate in both tails.
KILN_VM_INLINE float sigmoid(float x) {
  float e = exp(-abs(x));
  float r = 1.0f / (1.0f + e);
  return select(x >= 0.0f, r, e * r);  // NaN: e is NaN, so is either branch
}

// x·σ(x)
KILN_VM_INLINE float silu(float x) { return x * sigmoid(x); }

// erf on |x| ≤ 0.9: x·P(x²)
KILN_VM_INLINE float erf_small(float x) {
  float z = x * x;
  float p = -6.0903796352e-4f;
  p = fma(p, z, 5.0119673078e-3f);
  p = fma(p, z, -2.6778912649e-2f);
  p = fma(p, z, 1.1282140948e-1f);
  p = fma(p, z, -3.7612523297e-1f);
  p = fma(p, z, 1.1283791538e+0f);
  return x * p;
}

// erfc(t) for t ≥ 0.9 (or NaN): e^(−t²)·Q(k), k = 1/(1 + t/2); relative error ≈ 1e-7.
// The caller passes t² as hi + lo (lo = 0 when unknown): e^(−t²) amplifies an error δ in t²
// into a relative error δ of the result, so t² must not be rounded from an already rounded t.
KILN_VM_INLINE float erfc_tail(float t, float t2, float t2lo) {
  // erfc(10.5) underflows f32; clamping keeps t² and its error term finite (NaN passes)
  bool huge = t > 10.5f;
  t = select(huge, 10.5f, t);
  t2 = select(huge, 110.25f, t2);
  t2lo = select(huge, 0.0f, t2lo);
  float k = 1.0f / fma(0.5f, t, 1.0f);
  float q = -6.5183537361e-2f;
  q = fma(q, k, 3.1724902716e-1f);
  q = fma(q, k, -5.5677597873e-1f);
  q = fma(q, k, 3.5739384773e-1f);
  q = fma(q, k, -8.0506922665e-2f);
  q = fma(q, k, 2.2537342828e-1f);
  q = fma(q, k, 2.3718096178e-1f);
  q = fma(q, k, 2.8329866184e-1f);
  q = fma(q, k, 2.8200857428e-1f);
  q = fma(q, k, 2.6967131435e-6f);
  float g = exp(-t2) * (1.0f - t2lo);  // e^(−hi−lo) ≈ e^(−hi)·(1 − lo), |lo| ≤ ulp(hi)/2
  return g * q;
}

// x² as hi + lo (exact with FMA; lo = 0 without it)
KILN_VM_INLINE float square_lo(float x, float hi) {
#if defined(__FMA__)
  return __builtin_fmaf(x, x, -hi);
#else
  (void)x;
  (void)hi;
  return 0.0f;
#endif
}

// erf x, max error ≈ 1e-7 absolute and a few ulp relative.
KILN_VM_INLINE float erf(float x) {
  float t = abs(x);
  float t2 = x * x;
  float big = copysign(1.0f - erfc_tail(t, t2, square_lo(x, t2)), x);
  return select(t <= 0.9f, erf_small(x), big);
}

// erfc x = 1 − erf x, accurate relative to itself for large x.
KILN_VM_INLINE float erfc(float x) {
  float t = abs(x);
  float t2 = x * x;
  float tail = erfc_tail(t, t2, square_lo(x, t2));
  float big = select(x > 0.0f, tail, 2.0f - tail);
  return select(t <= 0.9f, 1.0f - erf_small(x), big);
}

// Φ(x), the standard normal CDF: ½·erfc(−x/√2), with t² = x²/2 taken from x itself.
KILN_VM_INLINE float phi(float x) {
  float y = x * -0.707106781186547524f;  // erfc argument
  float t = abs(y);
  float x2 = x * x;
  float tail = erfc_tail(t, 0.5f * x2, 0.5f * square_lo(x, x2));
  float big = select(y > 0.0f, tail, 2.0f - tail);
  return 0.5f * select(t <= 0.9f, 1.0f - erf_small(y), big);
}

// GELU with the exact erf: x·Φ(x)
KILN_VM_INLINE float gelu(float x) { return x * phi(x); }

// GELU, tanh approximation: ½x(1 + tanh u) = x·σ(2u), u = √(2/π)(x + 0.044715x³); the σ form
// does not cancel for negative x.
KILN_VM_INLINE float gelu_tanh(float x) {
  float u = 0.797884560802865355f * fma(0.044715f * x, x * x, x);
  return x * sigmoid(2.0f * u);
}

}  // namespace vm
}  // namespace KILN_ISA
}  // namespace kiln
