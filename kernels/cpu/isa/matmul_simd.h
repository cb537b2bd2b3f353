// Vector types for the matmul microkernels, one set per instruction set (private to matmul.cc).
//
// Each `Vec` struct wraps one SIMD register of T with the handful of operations a GEMM
// microkernel needs: load, broadcast, fused multiply-add, and loads/stores of the first n
// lanes only (for the right edge of C). The microkernel in matmul.cc is written once against
// this interface and instantiated per ISA and per element type:
//   avx512: 16 floats / 8 doubles (zmm), masked edges through k-registers
//   avx2:    8 floats / 4 doubles (ymm), masked edges through vmaskmov
//   base:    4 floats / 2 doubles as GCC vector extensions (SSE2 on x86-64, scalar elsewhere)
// and, for AVX-512 only, `PairsBF16`: bf16 pairs multiplied into f32 by vdpbf16ps, and
// `TilesBF16`: the same pairs through AMX tiles.
#pragma once
#include <cstdint>
#include <cstring>

#if KILN_ISA_avx512 || KILN_ISA_avx2
#include <immintrin.h>
#endif

#include "isa.h"

namespace kiln {
namespace KILN_ISA {
namespace mm {

#if KILN_ISA_avx512

struct VecF32 {
  using T = float;
  using V = __m512;
  static constexpr int L = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const T* p) { return _mm512_loadu_ps(p); }
  static V bcast(const T* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  static __mmask16 mask(int n) { return __mmask16((1u << n) - 1u); }  // 0 < n < 16
  static V loadn(const T* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void storen(T* p, V v, int n) { _mm512_mask_storeu_ps(p, mask(n), v); }
};

struct VecF64 {
  using T = double;
  using V = __m512d;
  static constexpr int L = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V load(const T* p) { return _mm512_loadu_pd(p); }
  static V bcast(const T* p) { return _mm512_set1_pd(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  static __mmask8 mask(int n) { return __mmask8((1u << n) - 1u); }
  static V loadn(const T* p, int n) { return _mm512_maskz_loadu_pd(mask(n), p); }
  static void storen(T* p, V v, int n) { _mm512_mask_storeu_pd(p, mask(n), v); }
};

// bf16 operands for vdpbf16ps (AVX512_BF16): each 32-bit lane of a packed panel holds two
// bf16 values at consecutive k (the even k in the low half), and one instruction adds both
// products of a lane to its f32 accumulator: c[j] += a[2j]·b[2j] + a[2j+1]·b[2j+1]. The
// products of two bf16 are exact in f32, so only the additions round (to nearest even; the
// instruction treats subnormal inputs and results as zero).
struct PairsBF16 {
  using Acc = VecF32;  // accumulators, loads and stores of C
  using P = uint32_t;  // a packed pair
  using BV = __m512bh;
  static constexpr int KU = 2;  // k values per packed step
  static BV loadb(const P* p) { return (__m512bh)_mm512_loadu_si512(p); }
  static BV bcasta(const P* p) { return (__m512bh)_mm512_set1_epi32(int(*p)); }
  static __m512 madd(BV a, BV b, __m512 c) { return _mm512_dpbf16_ps(c, a, b); }
  static constexpr int SG = 1;  // steps per packing granule (see TilesBF16)
};

// bf16 operands for AMX (AMX-TILE, AMX-BF16: Sapphire Rapids and later Xeons). tdpbf16ps
// multiplies a 16×32 bf16 tile of A by a 32×16 one of B (stored as 16 rows of 16 pairs, the
// pair layout above) into a 16×16 f32 tile of C: 8192 multiply-adds per instruction, the
// products exact and the additions rounded to nearest even with subnormals as zero, as
// vdpbf16ps. The microkernel (tile_kernel in matmul.cc) keeps a 32×32 block of C in four tile
// registers. B panels are packed as for PairsBF16 (step q is row q of a B tile); A panels are
// cut into granules of SG = 16 steps (32 k), each stored row-major, MR rows of 16 pairs, so
// that a tile of A is 16 consecutive 64-byte rows. A k block's steps are padded with zeros to
// whole granules.
struct TilesBF16 {
  using Acc = VecF32;
  using P = uint32_t;
  static constexpr int KU = 2;
  static constexpr int SG = 16;
};

#elif KILN_ISA_avx2

// lanes [0, n) of a vmaskmov mask: -1 where lane < n
inline __m256i lane_mask32(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i lane_mask64(int n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}

struct VecF32 {
  using T = float;
  using V = __m256;
  static constexpr int L = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const T* p) { return _mm256_loadu_ps(p); }
  static V bcast(const T* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static V loadn(const T* p, int n) { return _mm256_maskload_ps(p, lane_mask32(n)); }
  static void storen(T* p, V v, int n) { _mm256_maskstore_ps(p, lane_mask32(n), v); }
};

struct VecF64 {
  using T = double;
  using V = __m256d;
  static constexpr int L = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const T* p) { return _mm256_loadu_pd(p); }
  static V bcast(const T* p) { return _mm256_broadcast_sd(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  static V loadn(const T* p, int n) { return _mm256_maskload_pd(p, lane_mask64(n)); }
  static void storen(T* p, V v, int n) { _mm256_maskstore_pd(p, lane_mask64(n), v); }
};

#else

// Portable: GCC/Clang vector extensions, lowered to SSE2 on x86-64 and to scalars where there
// is no SIMD. a * b + c is written as such (no fused multiply-add is promised).
template <typename TT, int LL>
struct VecExt {
  using T = TT;
  typedef TT V __attribute__((vector_size(sizeof(TT) * LL)));
  static constexpr int L = LL;
  static V zero() { return V{}; }
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static V bcast(const T* p) { return V{} + *p; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static V add(V a, V b) { return a + b; }
  static void store(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }
  static V loadn(const T* p, int n) {
    V v{};
    for (int i = 0; i < n; i++) v[i] = p[i];
    return v;
  }
  static void storen(T* p, V v, int n) {
    for (int i = 0; i < n; i++) p[i] = v[i];
  }
};
using VecF32 = VecExt<float, 4>;
using VecF64 = VecExt<double, 2>;

#endif

}  // namespace mm
}  // namespace KILN_ISA
}  // namespace kiln
