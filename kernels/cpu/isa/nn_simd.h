// A small SIMD vector type for the nn kernels (softmax, norms, cross-entropy, attention), and a
// vectorised exp built on it. Shared by softmax.cc, norm.cc, cross_entropy.cc and attention.cc.
//
// Vec<T> (T = float or double) holds W lanes: a __m512/__m512d in the AVX-512 build, a
// __m256/__m256d in the AVX2 build, one scalar in the base build (which then gets plain scalar
// code). Every kernel is written once against this interface. Loads and stores are unaligned;
// the _n variants touch only the first n lanes (n < W), so row tails never read or write past
// the end of a row.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if KILN_ISA_avx512 || KILN_ISA_avx2
#include <immintrin.h>
#endif

namespace kiln {
namespace KILN_ISA {
namespace nn {

template <typename T>
struct Vec;

#if KILN_ISA_avx512

template <>
struct Vec<float> {
  static constexpr int W = 16;
  using M = __mmask16;
  __m512 v;
  static Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
  // lanes ≥ n take `fill`
  static Vec load_n(const float* p, int n, float fill) {
    return {_mm512_mask_loadu_ps(_mm512_set1_ps(fill), __mmask16((1u << n) - 1), p)};
  }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void store_n(float* p, int n) const { _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1), v); }
  static Vec set1(float x) { return {_mm512_set1_ps(x)}; }
  friend Vec operator+(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }  // a·b + c
  static Vec max(Vec a, Vec b) { return {_mm512_max_ps(a.v, b.v)}; }
  static Vec min(Vec a, Vec b) { return {_mm512_min_ps(a.v, b.v)}; }
  static float hsum(Vec a) { return _mm512_reduce_add_ps(a.v); }
  static float hmax(Vec a) { return _mm512_reduce_max_ps(a.v); }
  static Vec select(M m, Vec a, Vec b) { return {_mm512_mask_blend_ps(m, b.v, a.v)}; }  // m ? a : b
  static M first_n(int n) { return __mmask16((1u << n) - 1); }  // lanes < n, 0 ≤ n ≤ W
  // lanes whose byte p[i] is nonzero (W bytes are read)
  static M nonzero_bytes(const uint8_t* p) {
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm_test_epi8_mask(b, b);
  }
  static constexpr bool kScalef = true;
  static Vec round(Vec a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  static Vec scalef(Vec p, Vec n) { return {_mm512_scalef_ps(p.v, n.v)}; }  // p·2^⌊n⌋, exact scaling
};

template <>
struct Vec<double> {
  static constexpr int W = 8;
  using M = __mmask8;
  __m512d v;
  static Vec load(const double* p) { return {_mm512_loadu_pd(p)}; }
  static Vec load_n(const double* p, int n, double fill) {
    return {_mm512_mask_loadu_pd(_mm512_set1_pd(fill), __mmask8((1u << n) - 1), p)};
  }
  void store(double* p) const { _mm512_storeu_pd(p, v); }
  void store_n(double* p, int n) const { _mm512_mask_storeu_pd(p, __mmask8((1u << n) - 1), v); }
  static Vec set1(double x) { return {_mm512_set1_pd(x)}; }
  friend Vec operator+(Vec a, Vec b) { return {_mm512_add_pd(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm512_sub_pd(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm512_mul_pd(a.v, b.v)}; }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
  static Vec max(Vec a, Vec b) { return {_mm512_max_pd(a.v, b.v)}; }
  static Vec min(Vec a, Vec b) { return {_mm512_min_pd(a.v, b.v)}; }
  static double hsum(Vec a) { return _mm512_reduce_add_pd(a.v); }
  static double hmax(Vec a) { return _mm512_reduce_max_pd(a.v); }
  static Vec select(M m, Vec a, Vec b) { return {_mm512_mask_blend_pd(m, b.v, a.v)}; }
  static M first_n(int n) { return __mmask8((1u << n) - 1); }
  static M nonzero_bytes(const uint8_t* p) {
    __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return __mmask8(_mm_test_epi8_mask(b, b));
  }
  static constexpr bool kScalef = true;
  static Vec round(Vec a) { return {_mm512_roundscale_pd(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  static Vec scalef(Vec p, Vec n) { return {_mm512_scalef_pd(p.v, n.v)}; }
};

#elif KILN_ISA_avx2

namespace detail {
// Lane mask for the first n of 8 (f32) lanes: 0 − (i < n).
inline __m256i first_n_32(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i first_n_64(int n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
inline float hsum128(__m128 x) {
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}
}  // namespace detail

template <>
struct Vec<float> {
  static constexpr int W = 8;
  using M = __m256;  // all-ones lanes where true
  __m256 v;
  static Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static Vec load_n(const float* p, int n, float fill) {
    __m256i m = detail::first_n_32(n);
    return {_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m))};
  }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void store_n(float* p, int n) const { _mm256_maskstore_ps(p, detail::first_n_32(n), v); }
  static Vec set1(float x) { return {_mm256_set1_ps(x)}; }
  friend Vec operator+(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  static Vec max(Vec a, Vec b) { return {_mm256_max_ps(a.v, b.v)}; }
  static Vec min(Vec a, Vec b) { return {_mm256_min_ps(a.v, b.v)}; }
  static float hsum(Vec a) { return detail::hsum128(_mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1))); }
  static float hmax(Vec a) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
  }
  static Vec select(M m, Vec a, Vec b) { return {_mm256_blendv_ps(b.v, a.v, m)}; }
  static constexpr bool kScalef = false;
  static M first_n(int n) { return _mm256_castsi256_ps(detail::first_n_32(n)); }
  static M nonzero_bytes(const uint8_t* p) {
    __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    __m256i z = _mm256_cmpeq_epi32(w, _mm256_setzero_si256());
    return _mm256_castsi256_ps(_mm256_xor_si256(z, _mm256_set1_epi32(-1)));
  }
  // p·2ⁿ, where t = x + 1.5·2²³ holds the integer n in its low mantissa bits (see vexp).
  // Two steps (2^⌊n/2⌋ then 2^(n−⌊n/2⌋)) keep both factors normal for n in [−150, 128], so
  // subnormal results are rounded once.
  static Vec scale_pow2(Vec p, Vec t) {
    __m256i n = _mm256_sub_epi32(_mm256_castps_si256(t.v), _mm256_set1_epi32(0x4B400000));
    __m256i n1 = _mm256_srai_epi32(n, 1);
    __m256i n2 = _mm256_sub_epi32(n, n1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
    return {_mm256_mul_ps(_mm256_mul_ps(p.v, s1), s2)};
  }
};

template <>
struct Vec<double> {
  static constexpr int W = 4;
  using M = __m256d;
  __m256d v;
  static Vec load(const double* p) { return {_mm256_loadu_pd(p)}; }
  static Vec load_n(const double* p, int n, double fill) {
    __m256i m = detail::first_n_64(n);
    return {_mm256_blendv_pd(_mm256_set1_pd(fill), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m))};
  }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
  void store_n(double* p, int n) const { _mm256_maskstore_pd(p, detail::first_n_64(n), v); }
  static Vec set1(double x) { return {_mm256_set1_pd(x)}; }
  friend Vec operator+(Vec a, Vec b) { return {_mm256_add_pd(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_pd(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_pd(a.v, b.v)}; }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
  static Vec max(Vec a, Vec b) { return {_mm256_max_pd(a.v, b.v)}; }
  static Vec min(Vec a, Vec b) { return {_mm256_min_pd(a.v, b.v)}; }
  static double hsum(Vec a) {
    __m128d x = _mm_add_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(x, _mm_unpackhi_pd(x, x)));
  }
  static double hmax(Vec a) {
    __m128d x = _mm_max_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
    return _mm_cvtsd_f64(_mm_max_sd(x, _mm_unpackhi_pd(x, x)));
  }
  static Vec select(M m, Vec a, Vec b) { return {_mm256_blendv_pd(b.v, a.v, m)}; }
  static constexpr bool kScalef = false;
  static M first_n(int n) { return _mm256_castsi256_pd(detail::first_n_64(n)); }
  static M nonzero_bytes(const uint8_t* p) {
    int32_t w;
    std::memcpy(&w, p, 4);
    __m256i x = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(w));
    __m256i z = _mm256_cmpeq_epi64(x, _mm256_setzero_si256());
    return _mm256_castsi256_pd(_mm256_xor_si256(z, _mm256_set1_epi64x(-1)));
  }
  static Vec scale_pow2(Vec p, Vec t) {
    __m256i n = _mm256_sub_epi64(_mm256_castpd_si256(t.v), _mm256_set1_epi64x(0x4338000000000000LL));
    // AVX2 has no 64-bit arithmetic shift; n fits in 32 bits, so shift the low dword of each
    // lane, gather the four dwords and sign-extend them back to 64 bits.
    __m256i lo = _mm256_srai_epi32(n, 1);                   // low dword of each lane: ⌊n/2⌋
    __m256i n1 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(_mm256_permutevar8x32_epi32(lo, _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0))));
    __m256i n2 = _mm256_sub_epi64(n, n1);
    __m256d s1 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(n1, _mm256_set1_epi64x(1023)), 52));
    __m256d s2 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(n2, _mm256_set1_epi64x(1023)), 52));
    return {_mm256_mul_pd(_mm256_mul_pd(p.v, s1), s2)};
  }
};

#else  // base: one scalar lane

template <typename T>
struct Vec {
  static constexpr int W = 1;
  using M = bool;
  T v;
  static Vec load(const T* p) { return {*p}; }
  static Vec load_n(const T* p, int n, T fill) { return {n > 0 ? *p : fill}; }
  void store(T* p) const { *p = v; }
  void store_n(T* p, int n) const {
    if (n > 0) *p = v;
  }
  static Vec set1(T x) { return {x}; }
  friend Vec operator+(Vec a, Vec b) { return {a.v + b.v}; }
  friend Vec operator-(Vec a, Vec b) { return {a.v - b.v}; }
  friend Vec operator*(Vec a, Vec b) { return {a.v * b.v}; }
  static Vec fma(Vec a, Vec b, Vec c) { return {a.v * b.v + c.v}; }
  // as x86 max/min: the second operand when either is NaN
  static Vec max(Vec a, Vec b) { return {a.v > b.v ? a.v : b.v}; }
  static Vec min(Vec a, Vec b) { return {a.v < b.v ? a.v : b.v}; }
  static T hsum(Vec a) { return a.v; }
  static T hmax(Vec a) { return a.v; }
  static Vec select(M m, Vec a, Vec b) { return m ? a : b; }
  static constexpr bool kScalef = false;
  static M first_n(int n) { return n > 0; }
  static M nonzero_bytes(const uint8_t* p) { return *p != 0; }
  static Vec scale_pow2(Vec p, Vec t) {
    if constexpr (sizeof(T) == 4) {
      int32_t bits;
      std::memcpy(&bits, &t.v, 4);
      int32_t n = bits - 0x4B400000;
      int32_t n1 = n >> 1, n2 = n - n1;
      uint32_t b1 = uint32_t(n1 + 127) << 23, b2 = uint32_t(n2 + 127) << 23;
      float s1, s2;
      std::memcpy(&s1, &b1, 4);
      std::memcpy(&s2, &b2, 4);
      return {p.v * s1 * s2};
    } else {
      int64_t bits;
      std::memcpy(&bits, &t.v, 8);
      int64_t n = bits - 0x4338000000000000LL;
      int64_t n1 = n >> 1, n2 = n - n1;
      uint64_t b1 = uint64_t(n1 + 1023) << 52, b2 = uint64_t(n2 + 1023) << 52;
      double s1, s2;
      std::memcpy(&s1, &b1, 8);
      std::memcpy(&s2, &b2, 8);
      return {p.v * s1 * s2};
    }
  }
};

#endif

// ---- exp ----------------------------------------------------------------------------------
// exp(x) = 2ⁿ·exp(r), n = round(x/ln2), r = x − n·ln2 (ln2 split in two so n·ln2_hi is exact:
// Cody & Waite), |r| ≤ ln2/2. exp(r) is Cephes' expf polynomial for f32 (≈1 ulp) and the
// degree-13 Taylor polynomial for f64 (truncation < 2⁻⁵⁶ on |r| ≤ 0.347). x is first clamped to
// where the result is 0 or ∞ anyway. AVX-512 rounds with roundscale and scales with scalef (which
// handles subnormal results); elsewhere n comes from adding 1.5·2^(mantissa bits), which rounds
// x/ln2 to an integer held in the low mantissa bits, and 2ⁿ is built from exponent bits.
// NaN propagates: x86 max/min return their second operand when either is NaN.
template <typename T>
struct ExpConst;
template <>
struct ExpConst<float> {
  static constexpr float lo = -104.0f, hi = 88.8f;  // exp(−104) rounds to 0; exp(88.8) = ∞ in f32
  static constexpr float magic = 12582912.0f;       // 1.5·2²³
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float c1 = 0.693359375f, c2 = -2.12194440e-4f;
};
template <>
struct ExpConst<double> {
  static constexpr double lo = -746.0, hi = 710.0;
  static constexpr double magic = 6755399441055744.0;  // 1.5·2⁵²
  static constexpr double log2e = 1.4426950408889634074;
  static constexpr double c1 = 6.93145751953125E-1, c2 = 1.42860682030941723212E-6;
};

template <typename T>
inline Vec<T> exp_poly(Vec<T> r) {
  using V = Vec<T>;
  V p;
  if constexpr (sizeof(T) == 4) {
    p = V::set1(1.9875691500E-4f);
    p = V::fma(p, r, V::set1(1.3981999507E-3f));
    p = V::fma(p, r, V::set1(8.3334519073E-3f));
    p = V::fma(p, r, V::set1(4.1665795894E-2f));
    p = V::fma(p, r, V::set1(1.6666665459E-1f));
    p = V::fma(p, r, V::set1(5.0000001201E-1f));
    p = V::fma(p, r * r, r + V::set1(1.0f));
  } else {
    // Σ_{k≤13} rᵏ/k!, Horner
    static constexpr double inv_fact[14] = {1.0,
                                            1.0,
                                            1.0 / 2,
                                            1.0 / 6,
                                            1.0 / 24,
                                            1.0 / 120,
                                            1.0 / 720,
                                            1.0 / 5040,
                                            1.0 / 40320,
                                            1.0 / 362880,
                                            1.0 / 3628800,
                                            1.0 / 39916800,
                                            1.0 / 479001600,
                                            1.0 / 6227020800.0};
    p = V::set1(inv_fact[13]);
    for (int k = 12; k >= 0; k--) p = V::fma(p, r, V::set1(inv_fact[k]));
  }
  return p;
}

template <typename T>
inline Vec<T> vexp(Vec<T> x) {
  using V = Vec<T>;
  using C = ExpConst<T>;
  const V xc = V::min(V::set1(C::hi), V::max(V::set1(C::lo), x));
  if constexpr (V::kScalef) {
    const V n = V::round(xc * V::set1(C::log2e));
    V r = V::fma(n, V::set1(-C::c1), xc);
    r = V::fma(n, V::set1(-C::c2), r);
    return V::scalef(exp_poly<T>(r), n);
  } else {
    const V t = V::fma(xc, V::set1(C::log2e), V::set1(C::magic));
    const V n = t - V::set1(C::magic);
    V r = V::fma(n, V::set1(-C::c1), xc);
    r = V::fma(n, V::set1(-C::c2), r);
    return V::scale_pow2(exp_poly<T>(r), t);
  }
}

}  // namespace nn

// The nn kernels name these unqualified.
using nn::Vec;
using nn::vexp;

}  // namespace KILN_ISA
}  // namespace kiln
