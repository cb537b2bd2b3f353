// Backend.cast (dtype conversion as ref's) and Backend.copy (strided copy of raw elements:
// every permute, expand, slice and concat). Semantics and the way the loop kernels are
// written: loops.h.
#include <cstdint>
#include <cstring>

#include "bits.h"
#include "dtype_values.h"
#include "isa.h"
#include "loops.h"
#include "strided.h"

#if KILN_ISA_avx2 || KILN_ISA_avx512
#include <immintrin.h>
#endif

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

// ---- cast ---------------------------------------------------------------------------------------

// Dtypes whose every value is exact in f32 (so conversions may go through float).
template <DType D> constexpr bool kFloatExact = D == F32 || D == BF16 || D == F16 || D == BOOL;

template <DType S, DType D> void cast_range(const St<S>* __restrict x, St<D>* __restrict o, int64_t b, int64_t e) {
#if KILN_ISA_avx2 || KILN_ISA_avx512
  int64_t b8 = b + (e - b) / 8 * 8;  // [b, b8) in vectors of 8, then the rest element-wise
  // F16C: vcvtph2ps is exact; vcvtps2ph rounds to nearest even like f16_bits, but keeps a NaN's
  // sign and payload, so NaN lanes are replaced by 0x7e00 afterwards.
  if constexpr (S == F16 && D == F32) {
    for (int64_t i = b; i < b8; i += 8)
      _mm256_storeu_ps(o + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
    b = b8;
  } else if constexpr (S == F32 && D == F16) {
    const __m128i qnan = _mm_set1_epi16(0x7e00);
    for (int64_t i = b; i < b8; i += 8) {
      __m256 v = _mm256_loadu_ps(x + i);
      __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      __m128i nan16 = _mm_packs_epi32(_mm256_castsi256_si128(nan), _mm256_extracti128_si256(nan, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + i), _mm_blendv_epi8(h, qnan, nan16));
    }
    b = b8;
  }
#endif
  if constexpr ((S == F32 || S == F64) && D == I32) {
    // truncation where it is in range (vectorised); the rest (|x| ≥ 2^31, ±∞, NaN) by ToInt32
    using T = St<S>;
    uint32_t any = 0;
    for (int64_t i = b; i < e; i++) {
      T v = x[i];
      bool ok = (v > T(-2147483649.0)) & (v < T(2147483648.0));
      any |= uint32_t(!ok);
      o[i] = int32_t(sel(ok, v, T(0)));
    }
    if (any)
      for (int64_t i = b; i < e; i++) o[i] = to_int32(double(x[i]));
  } else if constexpr (S == I32 && D == F32) {
    for (int64_t i = b; i < e; i++) o[i] = float(x[i]);  // int → f32 rounds once, as via f64
  } else if constexpr (S == F64 && D == F32) {
    for (int64_t i = b; i < e; i++) o[i] = float(x[i]);
  } else if constexpr (kFloatExact<S>) {
    for (int64_t i = b; i < e; i++) o[i] = from_f<D>(to_f<S>(x[i]));
  } else {
    for (int64_t i = b; i < e; i++) o[i] = from_d<D>(to_d<S>(x[i]));
  }
}

template <DType S, DType D> void cast_typed(const void* x, void* out, int64_t n) {
  const St<S>* xs = static_cast<const St<S>*>(x);
  St<D>* o = static_cast<St<D>*>(out);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) { cast_range<S, D>(xs, o, b, e); });
}
template <DType S> void cast_from(const void* x, DType od, void* out, int64_t n) {
  switch (od) {
    case F32: cast_typed<S, F32>(x, out, n); break;
    case F64: cast_typed<S, F64>(x, out, n); break;
    case I32: cast_typed<S, I32>(x, out, n); break;
    case BF16: cast_typed<S, BF16>(x, out, n); break;
    case F16: cast_typed<S, F16>(x, out, n); break;
    case BOOL: cast_typed<S, BOOL>(x, out, n); break;
  }
}

// out[i] = x[i] converted as ref's cast: halves round to nearest even straight from the value,
// floats truncate to i32 (ToInt32 wrap-around), bool is x ≠ 0 (NaN true).
void cast(const CastArgs& a) {
  const void* x = a.x.data;
  void* out = a.out.data;
  const DType xd = a.x.dtype, od = a.out.dtype;
  const int64_t n = a.out.size;
  if (n <= 0) return;
  if (xd == od && (xd == BF16 || xd == F16)) {
    // decode + encode (ref's path) is the identity on halves except that NaNs become canonical
    const uint16_t* s = static_cast<const uint16_t*>(x);
    uint16_t* d = static_cast<uint16_t*>(out);
    const uint16_t inf = xd == BF16 ? 0x7f80 : 0x7c00, qnan = xd == BF16 ? 0x7fc0 : 0x7e00;
    parallel_for(n, kGrain, [s, d, inf, qnan](int64_t b, int64_t e) {
      // locals and restrict: the loop vectorises (32 halves per AVX-512 compare and blend)
      const uint16_t* __restrict sp = s + b;
      uint16_t* __restrict dp = d + b;
      for (int64_t i = 0; i < e - b; i++) {
        const uint16_t v = sp[i];
        dp[i] = uint16_t(v & 0x7fff) > inf ? qnan : v;
      }
    });
    return;
  }
  if (xd == od) {
    size_t es = item_size(xd);
    const char* s = static_cast<const char*>(x);
    char* d = static_cast<char*>(out);
    parallel_for(n, kGrain * 2, [&](int64_t b, int64_t e) { std::memcpy(d + b * es, s + b * es, size_t(e - b) * es); });
    return;
  }
  KILN_DISPATCH(xd, cast_from, x, od, out, n)
}

// ---- copy ---------------------------------------------------------------------------------------

// Transposing copies — the destination contiguous along one axis jd, the source along another
// axis k — go tile by tile: TI elements (512 bytes) of axis k by TJ = 8 of axis jd.
// Each source cache line is then used whole, and the 8 source columns of a tile stay within
// the L1 associativity even at power-of-two strides (measured on a 1024² f32 transpose: 4×
// faster than element-wise, and 32×32 tiles are no better than element-wise there).
// Returns false when the layout is not of that kind.
template <class T> bool copy_tiled(const T* src, T* dst, const Plan& p) {
  constexpr int64_t TI = 512 / sizeof(T), TJ = 8;
  const int R = p.rank;
  int jd = -1, k = -1;
  for (int d = R - 1; d >= 0; d--) {
    if (jd < 0 && p.st[0][d] == 1) jd = d;
    if (k < 0 && p.st[1][d] == 1) k = d;
  }
  if (jd < 0 || k < 0 || jd == k || p.shape[k] < 8 || p.shape[jd] < 8) return false;
  // the other axes, enumerated by a linear index
  int orank = 0;
  int64_t oshape[kMaxRank], ost_d[kMaxRank], ost_s[kMaxRank];
  for (int d = 0; d < R; d++)
    if (d != k && d != jd) {
      oshape[orank] = p.shape[d];
      ost_d[orank] = p.st[0][d];
      ost_s[orank] = p.st[1][d];
      orank++;
    }
  const int64_t A = p.shape[k], B = p.shape[jd];
  const int64_t dk = p.st[0][k], ss = p.st[1][jd];
  const int64_t na = (A + TI - 1) / TI, nb = (B + TJ - 1) / TJ;
  const int64_t units = p.total / (A * B) * na * nb;
  parallel_for(units, imax(1, kGrain / (TI * TJ)), [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; u++) {
      const int64_t tj = u % nb, ti = (u / nb) % na;
      int64_t rest = u / (na * nb), od = 0, os = 0;
      for (int d = orank - 1; d >= 0; d--) {
        const int64_t i = rest % oshape[d];
        rest /= oshape[d];
        od += i * ost_d[d];
        os += i * ost_s[d];
      }
      const int64_t i1 = imin(A, (ti + 1) * TI), j0 = tj * TJ, j1 = imin(B, j0 + TJ);
      for (int64_t i = ti * TI; i < i1; i++) {
        T* __restrict drow = dst + od + i * dk;
        const T* __restrict scol = src + os + i;
        for (int64_t j = j0; j < j1; j++) drow[j] = scol[j * ss];
      }
    }
  });
  return true;
}

template <class T> void copy_typed(const T* src, T* dst, const CopyArgs& a) {
  const int64_t* strides[2] = {a.dst_strides.v, a.src_strides.v};  // operand 0 = dst, 1 = src
  Plan p = make_plan(int(a.shape.rank), a.shape.v, 2, strides);
  if (p.total <= 0) return;
  if (copy_tiled(src, dst, p)) return;
  const int64_t sd = p.st[0][p.rank - 1], ss = p.st[1][p.rank - 1];
  parallel_for(p.total, kGrain, [&](int64_t b, int64_t e) {
    for_runs(p, b, e, [&](const int64_t* off, int64_t len) {
      T* d = dst + off[0];
      const T* s = src + off[1];
      if (sd == 1 && ss == 1) std::memcpy(d, s, size_t(len) * sizeof(T));
      else if (sd == 1) for (int64_t j = 0; j < len; j++) d[j] = s[j * ss];
      else for (int64_t j = 0; j < len; j++) d[j * sd] = s[j * ss];
    });
  });
}

// dst[dst_offset + Σ i·dst_strides] = src[src_offset + Σ i·src_strides]: raw elements, any dtype.
template <class T> void copy_as(const CopyArgs& a) {
  copy_typed(static_cast<const T*>(a.src.data) + a.src_offset, static_cast<T*>(a.dst.data) + a.dst_offset, a);
}
void copy(const CopyArgs& a) { KILN_DISPATCH_RAW(a.dst.dtype, copy_as, a) }

}  // namespace

void add_cast_copy(Table& t) {
  t.cast = cast;
  t.copy = copy;
}

}  // namespace KILN_ISA
}  // namespace kiln
