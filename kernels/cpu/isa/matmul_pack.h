// Packing of matmul operands into microkernel panels (private to matmul.cc).
//
// A panel is W lines wide (W = MR for A, NR for B) and kc steps long, stored step-major:
// dst[p·W + x] is line x at step p, and lines w ≤ x < W are zero. Two source layouts occur:
//   pack_contig:  src[p·sp + x]  (the W lines are adjacent in memory: A transposed, B plain)
//   pack_strided: src[x·sx + p]  (each line runs along k: A plain, B transposed) — a transpose,
//                 done in 8×8 register blocks where the ISA has 256-bit vectors.
// In is the stored element type (float, double, uint16_t for bf16, Half for f16); T the compute
// type. The pack_pairs_* variants (AVX-512 bf16) keep bf16 and store two consecutive k per
// 32-bit word (see PairsBF16 in matmul_simd.h): dst[q·W + x] = line x at k 2q (low half) and
// 2q + 1 (high half), the high half zero past an odd kc.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if KILN_ISA_avx512 || KILN_ISA_avx2
#include <immintrin.h>
#endif

#include "dtype_values.h"
#include "isa.h"

namespace kiln {
namespace KILN_ISA {
namespace mm {

// An f16 element as stored (its bits): a type of its own, so that conversions pick the f16
// decoding where a bare uint16_t means bf16.
struct Half {
  uint16_t bits;
};
static_assert(sizeof(Half) == 2, "Half is the 16-bit pattern");

template <typename T, typename In>
inline T to_compute(In x) {
  if constexpr (std::is_same_v<In, uint16_t>)
    return bf16_to_f32(x);
  else if constexpr (std::is_same_v<In, Half>)
    return f16_value(x.bits);
  else
    return T(x);
}

// An f32 result stored as a half, rounded to nearest even as dtype.ts rounds.
inline void store_out(uint16_t& o, float v) { o = f32_to_bf16(v); }
inline void store_out(Half& o, float v) { o.bits = f16_bits(v); }

#if KILN_ISA_avx512 || KILN_ISA_avx2
// 8 consecutive values as f32 (bf16 widened exactly: its bits are the top half of an f32)
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
// f16 widened by F16C (exact, subnormals included)
inline __m256 load8(const Half* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// r[q] ← column q of the 8×8 matrix whose rows are r[0..7]
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; h++) {
    const int o = 4 * h;
    u[o + 0] = _mm256_shuffle_ps(t[o + 0], t[o + 2], 0x44);
    u[o + 1] = _mm256_shuffle_ps(t[o + 0], t[o + 2], 0xEE);
    u[o + 2] = _mm256_shuffle_ps(t[o + 1], t[o + 3], 0x44);
    u[o + 3] = _mm256_shuffle_ps(t[o + 1], t[o + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// store the first n (1..8) lanes
inline void store8n(float* p, __m256 v, int n) {
#if KILN_ISA_avx512
  _mm256_mask_storeu_ps(p, __mmask8((1u << n) - 1u), v);
#else
  _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), v);
#endif
}
#endif

// dst[p·W + x] = src[p·sp + x] for x < w, 0 for w ≤ x < W.
template <int W, typename T, typename In>
inline void pack_contig_step(const In* s, int w, T* __restrict d) {
  if (w == W) {
    if constexpr (std::is_same_v<In, T>) {
      std::memcpy(d, s, sizeof(T) * W);
    } else {
      int x = 0;
#if KILN_ISA_avx512 || KILN_ISA_avx2
      if constexpr (std::is_same_v<T, float>)
        for (; x + 8 <= W; x += 8) _mm256_storeu_ps(d + x, load8(s + x));
#endif
      for (; x < W; x++) d[x] = to_compute<T>(s[x]);
    }
  } else {
    for (int x = 0; x < w; x++) d[x] = to_compute<T>(s[x]);
    for (int x = w; x < W; x++) d[x] = T(0);
  }
}

// Panels g = 0, 1, … of lines [g·W, g·W + W) ∩ [0, w), stored one after another (kc·W each),
// from adjacent lines: panel g at step p is src[p·sp + g·W + x]. Walks the source a whole row
// of steps at a time, so reads are sequential even when sp is large.
template <int W, typename T, typename In>
void pack_contig(const In* src, int64_t sp, int64_t w, int64_t panels, int64_t kc, T* __restrict dst) {
  for (int64_t p = 0; p < kc; p++) {
    const In* s = src + p * sp;
    for (int64_t g = 0; g < panels; g++) {
      const int wg = int(std::min<int64_t>(W, w - g * W));
      pack_contig_step<W>(s + g * W, wg, dst + (g * kc + p) * W);
    }
  }
}

// dst[p·W + x] = src[x·sx + p] for x < w, 0 for w ≤ x < W.
template <int W, typename T, typename In>
void pack_strided(const In* src, int64_t sx, int w, int64_t kc, T* __restrict dst) {
  int64_t p0 = 0;
#if KILN_ISA_avx512 || KILN_ISA_avx2
  if constexpr (std::is_same_v<T, float>) {
    // 8 lines × 8 steps at a time: load 8 runs along k, transpose, store 8 steps of 8 lines
    for (; p0 + 8 <= kc; p0 += 8) {
      for (int x0 = 0; x0 < W; x0 += 8) {
        const int rows = std::max(0, std::min(8, w - x0));
        __m256 r[8];
        for (int t = 0; t < 8; t++) r[t] = t < rows ? load8(src + (x0 + t) * sx + p0) : _mm256_setzero_ps();
        transpose8(r);
        float* d = dst + p0 * W + x0;
        if (x0 + 8 <= W) {
          for (int q = 0; q < 8; q++) _mm256_storeu_ps(d + q * W, r[q]);
        } else {
          for (int q = 0; q < 8; q++) store8n(d + q * W, r[q], W - x0);
        }
      }
    }
  }
#endif
  // the rest (and every type without a vector path), in chunks of k so the panel stays in L1
  constexpr int64_t CHUNK = 128;
  for (; p0 < kc; p0 += CHUNK) {
    const int64_t pe = std::min(kc, p0 + CHUNK);
    for (int x = 0; x < w; x++) {
      const In* s = src + x * sx;
      for (int64_t p = p0; p < pe; p++) dst[p * W + x] = to_compute<T>(s[p]);
    }
    for (int x = w; x < W; x++)
      for (int64_t p = p0; p < pe; p++) dst[p * W + x] = T(0);
  }
}

#if KILN_ISA_avx512
// ---- bf16 pairs along k (vdpbf16ps) ---------------------------------------------------------------

inline __mmask16 mask16(int n) { return __mmask16((1u << n) - 1u); }  // 0 ≤ n ≤ 16

// dst[q·W + x] = (src[2q·sp + x], src[(2q+1)·sp + x]) for x < w, 0 for w ≤ x < W; panels g as
// pack_contig (panel g at step q is dst[(g·steps + q)·W + x]). Two rows of k are widened to 32
// bits and the odd one shifted into the high halves, 16 lines at a time.
template <int W>
void pack_pairs_contig(const uint16_t* src, int64_t sp, int64_t w, int64_t panels, int64_t kc, uint32_t* __restrict dst) {
  const int64_t steps = (kc + 1) / 2;
  for (int64_t q = 0; q < steps; q++) {
    const uint16_t* s0 = src + 2 * q * sp;
    const bool odd = 2 * q + 1 < kc;  // the high half exists
    for (int64_t g = 0; g < panels; g++) {
      const int wg = int(std::min<int64_t>(W, w - g * W));
      const uint16_t* r0 = s0 + g * W;
      uint32_t* d = dst + (g * steps + q) * W;
      for (int x = 0; x < W; x += 16) {
        const __mmask16 ml = mask16(std::max(0, std::min(16, wg - x)));
        const __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(ml, r0 + x));
        const __m512i hi = odd ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(ml, r0 + sp + x)) : _mm512_setzero_si512();
        const __m512i v = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
        if (x + 16 <= W)
          _mm512_storeu_si512(d + x, v);
        else
          _mm512_mask_storeu_epi32(d + x, mask16(W - x), v);
      }
    }
  }
}

// dst[q·W + x] = (src[x·sx + 2q], src[x·sx + 2q + 1]) for x < w, 0 for w ≤ x < W. A pair is
// one unaligned 32-bit word of the line, so this is pack_strided's 8×8 transpose on words.
template <int W>
void pack_pairs_strided(const uint16_t* src, int64_t sx, int w, int64_t kc, uint32_t* __restrict dst) {
  const int64_t whole = kc / 2, steps = (kc + 1) / 2;
  int64_t q0 = 0;
  for (; q0 + 8 <= whole; q0 += 8) {
    for (int x0 = 0; x0 < W; x0 += 8) {
      const int rows = std::max(0, std::min(8, w - x0));
      __m256 r[8];
      for (int t = 0; t < 8; t++)
        r[t] = t < rows ? _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + (x0 + t) * sx + 2 * q0)))
                        : _mm256_setzero_ps();
      transpose8(r);  // shuffles only: the bit patterns pass unchanged
      float* d = reinterpret_cast<float*>(dst + q0 * W + x0);
      if (x0 + 8 <= W) {
        for (int q = 0; q < 8; q++) _mm256_storeu_ps(d + q * W, r[q]);
      } else {
        for (int q = 0; q < 8; q++) store8n(d + q * W, r[q], W - x0);
      }
    }
  }
  for (; q0 < steps; q0++) {
    const int64_t p = 2 * q0;
    uint32_t* d = dst + q0 * W;
    for (int x = 0; x < w; x++) {
      const uint16_t* s = src + x * sx + p;
      d[x] = uint32_t(s[0]) | (p + 1 < kc ? uint32_t(s[1]) << 16 : 0u);
    }
    for (int x = w; x < W; x++) d[x] = 0;
  }
}

// AMX A panels (TilesBF16): granule g of a panel is dst[(g·W + x)·16 + s] = line x at step
// 16g + s (a pair, as above), zero for x ≥ w and for steps past the k block. `steps` is the
// padded step count (a multiple of 16).
// Lines along k (A plain: line x at src + x·sx): each line's 32 values of a granule are one
// masked 64-byte copy.
template <int W>
void pack_tiles_strided(const uint16_t* src, int64_t sx, int w, int64_t kc, int64_t steps, uint32_t* __restrict dst) {
  for (int64_t g = 0; g < steps / 16; g++) {
    const int64_t k0 = 32 * g;
    const int left = int(std::max<int64_t>(0, std::min<int64_t>(32, kc - k0)));
    const __mmask32 m = left == 32 ? ~__mmask32(0) : __mmask32((1u << left) - 1u);
    uint32_t* d = dst + g * W * 16;
    for (int x = 0; x < W; x++) {
      const __m512i v = x < w ? _mm512_maskz_loadu_epi16(m, src + x * sx + k0) : _mm512_setzero_si512();
      _mm512_storeu_si512(d + x * 16, v);
    }
  }
}

// Adjacent lines (A transposed: line x at src + x, step rows sp apart): packed as pairs
// (pack_pairs_contig) into a step-major scratch panel, then each granule's 16×W block of words
// transposed into place.
template <int W>
void pack_tiles_contig(const uint16_t* src, int64_t sp, int w, int64_t kc, int64_t steps, uint32_t* __restrict dst) {
  constexpr int64_t kChunk = 16 * 16;  // steps per scratch round: 16 granules (16 KiB at W = 32)
  alignas(64) uint32_t tmp[kChunk * W];
  for (int64_t q0 = 0; q0 < steps; q0 += kChunk) {
    const int64_t nq = std::min(kChunk, steps - q0);
    const int64_t kq = std::max<int64_t>(0, std::min<int64_t>(2 * nq, kc - 2 * q0));  // k values present
    const int64_t filled = (kq + 1) / 2;
    if (kq > 0) pack_pairs_contig<W>(src + 2 * q0 * sp, sp, w, 1, kq, tmp);
    std::memset(tmp + filled * W, 0, size_t(nq - filled) * W * sizeof(uint32_t));
    for (int64_t g = 0; g < nq / 16; g++) {
      uint32_t* d = dst + ((q0 / 16) + g) * W * 16;
      const uint32_t* t = tmp + g * 16 * W;
      for (int x = 0; x < W; x++)
        for (int s = 0; s < 16; s++) d[x * 16 + s] = t[s * W + x];
    }
  }
}
#endif

}  // namespace mm
}  // namespace KILN_ISA
}  // namespace kiln
