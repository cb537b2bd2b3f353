// Packing of matmul operands into microkernel panels (private to matmul.cc).
//
// A panel is W lines wide (W = MR for A, NR for B) and kc steps long, stored step-major:
// dst[p·W + x] is line x at step p, and lines w ≤ x < W are zero. Two source layouts occur:
//   pack_contig:  src[p·sp + x]  (the W lines are adjacent in memory: A transposed, B plain)
//   pack_strided: src[x·sx + p]  (each line runs along k: A plain, B transposed) — a transpose,
//                 done in 8×8 register blocks where the ISA has 256-bit vectors.
// In is the stored element type (float, double, or uint16_t bf16); T the compute type.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if KILN_ISA_avx512 || KILN_ISA_avx2
#include <immintrin.h>
#endif

#include "isa.h"

namespace kiln {
namespace KILN_ISA {
namespace mm {

template <typename T, typename In>
inline T to_compute(In x) {
  if constexpr (std::is_same_v<In, uint16_t>)
    return bf16_to_f32(x);
  else
    return T(x);
}

#if KILN_ISA_avx512 || KILN_ISA_avx2
// 8 consecutive values as f32 (bf16 widened exactly: its bits are the top half of an f32)
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

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
      for (int x = 0; x < W; x++) d[x] = to_compute<T>(s[x]);
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

}  // namespace mm
}  // namespace KILN_ISA
}  // namespace kiln
