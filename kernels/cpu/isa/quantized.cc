// Backend.matmulInt8: out = quant(a)·Wᵀ·scales + bias, with int8 weights packed four to a word.
//
// Two passes:
//   1. Each row of a is quantized on its own (symmetric, 127/amax) into int8 packed four to a
//      word, xq[i][q] holding x[i, 4q … 4q + 3], with its dequantization factor amax/127 and the
//      sum of its integers.
//   2. Tiles of up to 6 rows × 64 columns keep their 32-bit sums in registers and walk the k
//      quads: per quad, four vectors of 16 weight words (one 64-byte load each: word (q, j) holds
//      W[j, 4q … 4q + 3]) and, per row, one broadcast word of x.
// With AVX-512 VNNI, vpdpbusd adds four u8×s8 products per lane into a 32-bit sum in one
// instruction (64 multiply-adds per instruction, against 16 for an f32 FMA). Its first operand is
// unsigned, so the weights are flipped to offset binary (w ^ 0x80 = w + 128) on load and the sum
// is corrected once per output: Σ (w + 128)·x = Σ w·x + 128·Σ x. The sums wrap in 32 bits; the
// result is exact whenever the true Σ w·x fits, which k ≤ 131072 guarantees (127·127·k < 2³¹),
// because wrap-around cancels in two's complement. The AVX2 and baseline builds unpack the bytes
// with shifts in a loop the compiler vectorises.
//
// A decode step (one row) reads each weight byte once, a quarter of the f32 weight's bytes, so
// memory-bound products gain up to 4× on top of the instruction count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "isa.h"
#include "scratch.h"

#if KILN_ISA_avx512
#include <immintrin.h>
#endif

namespace kiln {
namespace KILN_ISA {
namespace {

constexpr int64_t kCols = 64;   // output columns per tile: four 16-lane vectors
constexpr int kRows = 6;        // rows per tile (6 × 4 accumulators, 4 weight vectors, 1 broadcast)
constexpr int64_t kChunk = 48;  // rows per task: its tiles reuse one column panel of W from cache
// Below this many multiply-adds a product stays on the calling thread.
constexpr int64_t kParallelMacs = int64_t(1) << 21;

// Row i of a → xq (kq words), its factor amax/127 (NaN when the row has a non-finite element)
// and the sum of its integers. x = round-half-even(a·inv): cvtps rounds by MXCSR (nearest even)
// and nearbyint by the current mode (the same), so both builds give the same integers.
void quantize_row(const float* a, int64_t k, int64_t kq, int32_t* xq, float& factor, int32_t& sum) {
  float amax = 0.0f;
  bool finite = true;
  int64_t p = 0;
#if KILN_ISA_avx512
  {
    __m512 m = _mm512_setzero_ps();
    for (; p + 16 <= k; p += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(a + p)));  // NaN lanes: m keeps its value
    amax = _mm512_reduce_max_ps(m);
  }
#endif
  for (; p < k; p++) amax = std::max(amax, std::fabs(a[p]));
  for (p = 0; p < k; p++) finite &= std::fabs(a[p]) <= 3.402823466e38f;  // false for ∞ and NaN
  std::memset(xq, 0, size_t(kq) * sizeof(int32_t));
  sum = 0;
  if (!finite) {
    factor = NAN;
    return;
  }
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  int8_t* bytes = reinterpret_cast<int8_t*>(xq);  // little-endian: byte b of word q is element 4q + b
  int32_t s = 0;
  p = 0;
#if KILN_ISA_avx512
  {
    const __m512 vinv = _mm512_set1_ps(inv);
    __m512i vs = _mm512_setzero_si512();
    for (; p + 16 <= k; p += 16) {
      const __m512i x = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(a + p), vinv));
      vs = _mm512_add_epi32(vs, x);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes + p), _mm512_cvtepi32_epi8(x));
    }
    s = _mm512_reduce_add_epi32(vs);
  }
#endif
  for (; p < k; p++) {
    const int32_t x = int32_t(std::nearbyint(a[p] * inv));
    s += x;
    bytes[p] = int8_t(x);
  }
  sum = s;
  factor = amax / 127.0f;
}

struct Product {
  const int32_t* xq;      // [m][kq]
  const float* factor;    // [m]
  const int32_t* xsum;    // [m]
  const int32_t* w;       // [kq][n]
  const float* scale;     // [n]
  const float* bias;      // [n] or null
  float* out;             // [m][n]
  int64_t m, n, kq;
};

#if KILN_ISA_avx512
// Rows i0 … i0 + MB − 1, columns j0 … j0 + cols − 1 (cols ≤ 64).
template <int MB>
void tile(const Product& P, int64_t i0, int64_t j0, int64_t cols) {
  __m512i acc[MB][4];
#pragma GCC unroll 8
  for (int r = 0; r < MB; r++)
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_si512();
  __mmask16 mask[4];
  for (int v = 0; v < 4; v++) {
    const int64_t rem = cols - 16 * v;
    mask[v] = rem >= 16 ? __mmask16(0xffff) : rem > 0 ? __mmask16((1u << rem) - 1) : __mmask16(0);
  }
  const __m512i flip = _mm512_set1_epi32(int32_t(0x80808080u));
  const int32_t* x = P.xq + i0 * P.kq;
  const int32_t* wq = P.w + j0;
  for (int64_t q = 0; q < P.kq; q++, wq += P.n) {
    __m512i wv[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) wv[v] = _mm512_xor_si512(_mm512_maskz_loadu_epi32(mask[v], wq + 16 * v), flip);
#pragma GCC unroll 8
    for (int r = 0; r < MB; r++) {
      const __m512i xb = _mm512_set1_epi32(x[r * P.kq + q]);
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], wv[v], xb);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MB; r++) {
    const int64_t i = i0 + r;
    const __m512i corr = _mm512_set1_epi32(int32_t(uint32_t(P.xsum[i]) << 7));  // 128·Σx, wrapping
    const __m512 f = _mm512_set1_ps(P.factor[i]);
    float* o = P.out + i * P.n + j0;
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
      if (!mask[v]) continue;
      const __m512 s = _mm512_mul_ps(f, _mm512_maskz_loadu_ps(mask[v], P.scale + j0 + 16 * v));
      __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][v], corr)), s);
      if (P.bias) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask[v], P.bias + j0 + 16 * v));
      _mm512_mask_storeu_ps(o + 16 * v, mask[v], y);
    }
  }
}
#else
// Portable: the bytes are unpacked by shifts (sign-extending), in a column loop that vectorises.
template <int MB>
void tile(const Product& P, int64_t i0, int64_t j0, int64_t cols) {
  for (int r = 0; r < MB; r++) {
    const int64_t i = i0 + r;
    int32_t acc[kCols] = {};
    const int32_t* x = P.xq + i * P.kq;
    const int32_t* wq = P.w + j0;
    for (int64_t q = 0; q < P.kq; q++, wq += P.n) {
      const uint32_t xw = uint32_t(x[q]);
      const int32_t x0 = int8_t(xw), x1 = int8_t(xw >> 8), x2 = int8_t(xw >> 16), x3 = int8_t(xw >> 24);
      for (int64_t j = 0; j < cols; j++) {
        const int32_t ww = wq[j];
        acc[j] += x0 * (int32_t(uint32_t(ww) << 24) >> 24) + x1 * (int32_t(uint32_t(ww) << 16) >> 24) +
                  x2 * (int32_t(uint32_t(ww) << 8) >> 24) + x3 * (ww >> 24);
      }
    }
    const float f = P.factor[i];
    float* o = P.out + i * P.n + j0;
    for (int64_t j = 0; j < cols; j++) {
      const float y = float(acc[j]) * (f * P.scale[j0 + j]);
      o[j] = P.bias ? y + P.bias[j0 + j] : y;
    }
  }
}
#endif

void run_tile(const Product& P, int64_t i0, int64_t j0) {
  const int64_t cols = std::min(kCols, P.n - j0);
  switch (std::min<int64_t>(kRows, P.m - i0)) {
    case 1: tile<1>(P, i0, j0, cols); break;
    case 2: tile<2>(P, i0, j0, cols); break;
    case 3: tile<3>(P, i0, j0, cols); break;
    case 4: tile<4>(P, i0, j0, cols); break;
    case 5: tile<5>(P, i0, j0, cols); break;
    default: tile<6>(P, i0, j0, cols); break;
  }
}

void matmul_int8(const MatmulInt8Args& p) {
  // the tensor layer passes f32 activations, scales and bias and i32 words; anything else is a
  // caller bug, and nothing is read then
  if (p.a.dtype != F32 || p.w.dtype != I32 || p.scale.dtype != F32 || p.out.dtype != F32 || (p.bias.data && p.bias.dtype != F32)) return;
  const int64_t m = p.m, n = p.n, k = p.k, kq = (k + 3) / 4;
  if (m <= 0 || n <= 0) return;
  const float* a = static_cast<const float*>(p.a.data);
  Scratch<int32_t> xq(size_t(m * kq), kUninit);
  Scratch<float> factor(size_t(m), kUninit);
  Scratch<int32_t> xsum(size_t(m), kUninit);
  const bool parallel = double(m) * double(n) * double(k) >= double(kParallelMacs) && num_threads() > 1;
  auto quantize = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) quantize_row(a + i * k, k, kq, xq.data() + i * kq, factor[i], xsum[i]);
  };
  if (parallel && m > 1)
    parallel_for(m, 1, quantize);
  else
    quantize(0, m);
  const Product P{xq.data(), factor.data(), xsum.data(), static_cast<const int32_t*>(p.w.data), static_cast<const float*>(p.scale.data),
                  p.bias.data ? static_cast<const float*>(p.bias.data) : nullptr, static_cast<float*>(p.out.data), m, n, kq};
  // a task is one column panel (64 columns of W, ⌈k/4⌉·256 bytes) × up to kChunk rows, its row
  // tiles one after another over the panel while it is in cache; row chunks vary fastest, so
  // consecutive tasks share the panel too. One decode row: one task per panel.
  const int64_t chunks = (m + kChunk - 1) / kChunk, panels = (n + kCols - 1) / kCols;
  auto run = [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; t++) {
      const int64_t i0 = (t % chunks) * kChunk, i1 = std::min(m, i0 + kChunk), j0 = (t / chunks) * kCols;
      for (int64_t i = i0; i < i1; i += kRows) run_tile(P, i, j0);
    }
  };
  if (parallel)
    parallel_for(chunks * panels, 1, run);
  else
    run(0, chunks * panels);
}

}  // namespace

void add_quantized(Table& t) { t.matmul_int8 = &matmul_int8; }

}  // namespace KILN_ISA
}  // namespace kiln
