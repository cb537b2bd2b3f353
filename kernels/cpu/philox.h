// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), bit for
// bit as src/backend/philox.ts: the counter-based generator every backend draws from, so that a
// seed gives the same numbers everywhere.
//
// The stream at (seed, offset): element e is word e mod 4 of the block at the 128-bit counter
// (offset + ⌊e/4⌋ as low and next word, 0, 0) under the key (seed's low 32 bits, its high 32).
//
// philox_words draws a run of consecutive words (attention dropout: one key row at a time),
// evaluating many blocks at once in SIMD lanes. Header only, inline functions.
//
// philox_key and philox4x32_10 are also device functions under nvcc (kernels/cuda/common.cuh
// uses them); the SIMD parts are host code only, never seen by nvcc's device pass.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define KILN_HD __host__ __device__
#else
#define KILN_HD
#endif

// The SIMD paths: on the host, where the build's -m flags allow them (not in a device pass).
#if !defined(__CUDA_ARCH__) && defined(__AVX512F__)
#define KILN_PHILOX_AVX512 1
#elif !defined(__CUDA_ARCH__) && defined(__AVX2__)
#define KILN_PHILOX_AVX2 1
#endif

#if defined(KILN_PHILOX_AVX512) || defined(KILN_PHILOX_AVX2)
#include <immintrin.h>
#endif

namespace kiln {

constexpr uint32_t kPhiloxM0 = 0xd2511f53u, kPhiloxM1 = 0xcd9e8d57u;  // round multipliers
constexpr uint32_t kPhiloxW0 = 0x9e3779b9u, kPhiloxW1 = 0xbb67ae85u;  // Weyl key increments

struct PhiloxKey {
  uint32_t k0, k1;
};

// The key of a seed (a non-negative integer below 2⁵³, as philox.ts seedKey).
KILN_HD inline PhiloxKey philox_key(uint64_t seed) { return {uint32_t(seed), uint32_t(seed >> 32)}; }

// Ten rounds on the counter (c0, c1, c2, c3) under `key`; the four words into out.
KILN_HD inline void philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, PhiloxKey key, uint32_t out[4]) {
  uint32_t k0 = key.k0, k1 = key.k1;
  for (int r = 0; r < 10; r++) {
    const uint64_t p0 = uint64_t(kPhiloxM0) * c0;
    const uint64_t p1 = uint64_t(kPhiloxM1) * c2;
    const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    c1 = uint32_t(p1);
    c3 = uint32_t(p0);
    c0 = n0;
    c2 = n2;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// The block at counter `ctr` (a 64-bit counter: low word, next word, 0, 0).
inline void philox_block(uint64_t ctr, PhiloxKey key, uint32_t out[4]) {
  philox4x32_10(uint32_t(ctr), uint32_t(ctr >> 32), 0, 0, key, out);
}

// ---- many blocks at once --------------------------------------------------------------------
//
// philox_blocks evaluates consecutive counters side by side, one block per 32-bit SIMD lane
// (kPhiloxVecLanes per vector): per round, the 32×32→64 products of the even lanes and (shifted
// down) of the odd lanes (pmuludq), their high and low halves blended back into place, then the
// words transposed into element order. Compilers do not find this themselves (they vectorise the
// products badly or not at all), hence the intrinsics; the build's -m flags pick the path (each
// ISA's objects keep their own copy), plain scalar code without AVX2. Two vectors per state word
// (kPhiloxLanes blocks) keep enough multiplies in flight to hide their latency. Measured on an
// AMD EPYC core with AVX-512: about 1.2 ns per word with AVX2, 0.6–0.9 with AVX-512, 3.6 scalar.
#if defined(KILN_PHILOX_AVX512)
constexpr int kPhiloxVecLanes = 16;
#elif defined(KILN_PHILOX_AVX2)
constexpr int kPhiloxVecLanes = 8;
#else
constexpr int kPhiloxVecLanes = 2;  // plain scalar code
#endif
constexpr int kPhiloxLanes = 2 * kPhiloxVecLanes;

namespace philox_detail {

#if defined(KILN_PHILOX_AVX512)
using VI = __m512i;
inline VI splat(uint32_t x) { return _mm512_set1_epi32(int(x)); }
inline VI xor3(VI a, VI b, VI c) { return _mm512_ternarylogic_epi32(a, b, c, 0x96); }
// (hi, lo) of m·c in every 32-bit lane
inline void mul_hilo(VI m, VI c, VI& hi, VI& lo) {
  const VI even = _mm512_mul_epu32(c, m), odd = _mm512_mul_epu32(_mm512_srli_epi64(c, 32), m);
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}
// 4×4 transposes: blocks' words from lanes of c0..c3 into element order (64 words)
inline void store_blocks(VI c0, VI c1, VI c2, VI c3, uint32_t* out) {
  const VI a = _mm512_unpacklo_epi32(c0, c1), b = _mm512_unpackhi_epi32(c0, c1);
  const VI c = _mm512_unpacklo_epi32(c2, c3), d = _mm512_unpackhi_epi32(c2, c3);
  // e: blocks 0|4|8|12 (one per 128-bit lane), f: 1|5|9|13, g: 2|6|10|14, h: 3|7|11|15
  const VI e = _mm512_unpacklo_epi64(a, c), f = _mm512_unpackhi_epi64(a, c);
  const VI g = _mm512_unpacklo_epi64(b, d), h = _mm512_unpackhi_epi64(b, d);
  const VI t0 = _mm512_shuffle_i32x4(e, f, 0x44), t1 = _mm512_shuffle_i32x4(g, h, 0x44);
  const VI t2 = _mm512_shuffle_i32x4(e, f, 0xEE), t3 = _mm512_shuffle_i32x4(g, h, 0xEE);
  _mm512_storeu_si512(out, _mm512_shuffle_i32x4(t0, t1, 0x88));
  _mm512_storeu_si512(out + 16, _mm512_shuffle_i32x4(t0, t1, 0xDD));
  _mm512_storeu_si512(out + 32, _mm512_shuffle_i32x4(t2, t3, 0x88));
  _mm512_storeu_si512(out + 48, _mm512_shuffle_i32x4(t2, t3, 0xDD));
}
inline VI counters_lo(uint64_t ctr0) {  // low words of ctr0 + 0 … 15 (wrapping as uint32)
  return _mm512_add_epi32(splat(uint32_t(ctr0)), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}
inline VI counters_hi(uint64_t ctr0) {  // their high words (carry where the low word wrapped)
  const VI lo = counters_lo(ctr0);
  const __mmask16 carry = _mm512_cmplt_epu32_mask(lo, splat(uint32_t(ctr0)));
  return _mm512_mask_add_epi32(splat(uint32_t(ctr0 >> 32)), carry, splat(uint32_t(ctr0 >> 32)), splat(1));
}
#elif defined(KILN_PHILOX_AVX2)
using VI = __m256i;
inline VI splat(uint32_t x) { return _mm256_set1_epi32(int(x)); }
inline VI xor3(VI a, VI b, VI c) { return _mm256_xor_si256(_mm256_xor_si256(a, b), c); }
inline void mul_hilo(VI m, VI c, VI& hi, VI& lo) {
  const VI even = _mm256_mul_epu32(c, m), odd = _mm256_mul_epu32(_mm256_srli_epi64(c, 32), m);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}
inline void store_blocks(VI c0, VI c1, VI c2, VI c3, uint32_t* out) {
  const VI a = _mm256_unpacklo_epi32(c0, c1), b = _mm256_unpackhi_epi32(c0, c1);
  const VI c = _mm256_unpacklo_epi32(c2, c3), d = _mm256_unpackhi_epi32(c2, c3);
  // e: blocks 0|4 (one per 128-bit lane), f: 1|5, g: 2|6, h: 3|7
  const VI e = _mm256_unpacklo_epi64(a, c), f = _mm256_unpackhi_epi64(a, c);
  const VI g = _mm256_unpacklo_epi64(b, d), h = _mm256_unpackhi_epi64(b, d);
  _mm256_storeu_si256(reinterpret_cast<VI*>(out), _mm256_permute2x128_si256(e, f, 0x20));
  _mm256_storeu_si256(reinterpret_cast<VI*>(out + 8), _mm256_permute2x128_si256(g, h, 0x20));
  _mm256_storeu_si256(reinterpret_cast<VI*>(out + 16), _mm256_permute2x128_si256(e, f, 0x31));
  _mm256_storeu_si256(reinterpret_cast<VI*>(out + 24), _mm256_permute2x128_si256(g, h, 0x31));
}
inline VI counters_lo(uint64_t ctr0) {
  return _mm256_add_epi32(splat(uint32_t(ctr0)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline VI counters_hi(uint64_t ctr0) {
  // unsigned lo < ctr0's low word ⇔ the add wrapped; compare with the sign bits flipped
  const VI flip = splat(0x80000000u);
  const VI wrapped = _mm256_cmpgt_epi32(_mm256_xor_si256(splat(uint32_t(ctr0)), flip),
                                        _mm256_xor_si256(counters_lo(ctr0), flip));
  return _mm256_sub_epi32(splat(uint32_t(ctr0 >> 32)), wrapped);  // wrapped lanes are −1
}
#endif

}  // namespace philox_detail

// The blocks at counters ctr0 … ctr0 + NV·kPhiloxVecLanes − 1 (NV = 1 or 2), their words in
// element order into out[0 … 4·NV·kPhiloxVecLanes).
template <int NV>
inline void philox_blocks(uint64_t ctr0, PhiloxKey key, uint32_t* out) {
  constexpr int kVecLanes = kPhiloxVecLanes;
#if defined(KILN_PHILOX_AVX512) || defined(KILN_PHILOX_AVX2)
  using namespace philox_detail;
  VI c0[NV], c1[NV], c2[NV], c3[NV];
  for (int v = 0; v < NV; v++) {
    c0[v] = counters_lo(ctr0 + uint64_t(v * kVecLanes));
    c1[v] = counters_hi(ctr0 + uint64_t(v * kVecLanes));
    c2[v] = splat(0);
    c3[v] = splat(0);
  }
  const VI m0 = splat(kPhiloxM0), m1 = splat(kPhiloxM1);
  uint32_t k0 = key.k0, k1 = key.k1;
  for (int r = 0; r < 10; r++) {
    const VI vk0 = splat(k0), vk1 = splat(k1);
    for (int v = 0; v < NV; v++) {
      VI hi0, lo0, hi1, lo1;
      mul_hilo(m0, c0[v], hi0, lo0);
      mul_hilo(m1, c2[v], hi1, lo1);
      c0[v] = xor3(hi1, c1[v], vk0);
      c2[v] = xor3(hi0, c3[v], vk1);
      c1[v] = lo1;
      c3[v] = lo0;
    }
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  for (int v = 0; v < NV; v++) store_blocks(c0[v], c1[v], c2[v], c3[v], out + 4 * v * kVecLanes);
#else
  for (int l = 0; l < NV * kVecLanes; l++) philox_block(ctr0 + uint64_t(l), key, out + 4 * l);
#endif
}

// out[0 … n) = words e0 … e0 + n − 1 of the stream at `offset` (see the top of this file):
// the ⌈n/4⌉ or ⌈n/4⌉ + 1 blocks they need, kPhiloxLanes at a time (kPhiloxVecLanes for the last
// few).
inline void philox_words(PhiloxKey key, uint64_t offset, uint64_t e0, int64_t n, uint32_t* out) {
  constexpr int L = kPhiloxLanes, VL = kPhiloxVecLanes;
  uint32_t w[4 * L];
  uint64_t block = e0 / 4;
  int64_t skip = int64_t(e0 % 4);  // words of the first block before e0
  while (n > 0) {
    const int lanes = skip + n > 4 * VL ? L : VL;
    if (lanes == L)
      philox_blocks<2>(offset + block, key, w);
    else
      philox_blocks<1>(offset + block, key, w);
    const int64_t take = 4 * lanes - skip < n ? 4 * lanes - skip : n;
    std::memcpy(out, w + skip, size_t(take) * sizeof(uint32_t));
    out += take;
    n -= take;
    block += uint64_t(lanes);
    skip = 0;
  }
}

}  // namespace kiln
