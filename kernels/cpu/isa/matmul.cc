// Backend.matmul: out[batch] = op(a[batch]) @ op(b[batch]) (+ bias) (then activation).
//
// A BLIS-style GEMM (Goto & van de Geijn, "Anatomy of high-performance matrix multiplication";
// Van Zee & van de Geijn, "BLIS"). For each product C[m×n] = op(A)[m×k]·op(B)[k×n]:
//   1. k is cut into blocks of at most KC. A is packed into MR-tall row panels and B into
//      NR-wide column panels, per k block, zero-padded to whole panels:
//        Ap[kb][ip][p][0..MR) = op(A)[ip·MR + i, kb·KC + p]
//        Bp[kb][jp][p][0..NR) = op(B)[kb·KC + p, jp·NR + j]
//      Packing absorbs trans_a / trans_b, the batch offsets and the bf16/f16 → f32 conversion
//      (F16C for f16 in the avx2/avx512 tables), so the microkernel only ever reads unit-stride
//      panels (matmul_pack.h). bf16 with vdpbf16ps or AMX (avx512 table, see bf16_matmul) packs
//      bf16 pairs instead: step q of a panel holds k = 2q and 2q + 1 in one 32-bit word, zero
//      past an odd k, and a k block is twice as long (KC·2) for the same panel bytes. AMX A
//      panels are cut into granules of 16 steps stored row-major (TilesBF16).
//   2. C is cut into tasks of row panels × up to NC columns. A task takes, per k block, the
//      panels it needs (packing those no other task has claimed yet, waiting for the rest), then
//      multiplies each A panel with each B panel of its columns. Tasks are handed out one at a
//      time to the pool's threads; one product needs a single parallel_for.
//   3. The microkernel keeps the MR×NR tile of C in registers (MR rows × NV vectors of L lanes,
//      matmul_simd.h): per step p it loads NV vectors of B and, for each row, broadcasts one A
//      value into NV fused multiply-adds. The first k block overwrites C, later ones add to it;
//      the last one adds the bias. Edge tiles use instances with fewer rows / vectors and masked
//      loads and stores of the last vector, so nothing outside C is read or written.
//      With pairs, one vdpbf16ps per (row, vector) adds both products of a step. AMX keeps a
//      32×32 tile of C in four tile registers (tile_kernel).
//   4. Finished rows get the activation (vecmath.h for f32) and, for bf16/f16, are rounded to the
//      half (nearest even, as dtype.ts) from the f32 accumulator.
// Register tiles: AVX-512 14×32 f32 / 14×16 f64 (28 zmm accumulators), AVX2 6×16 / 6×8,
// portable 6×8 / 6×4 (GCC vector extensions). Products with m = 1 or n = 1 (f32/f64) skip
// packing: dot products or row sums straight from the operands. Many small products (batched
// attention) run whole on one thread each; small ones (< 128³ multiply-adds) on the caller.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "isa.h"
#include "matmul_pack.h"
#include "matmul_simd.h"
#include "vecmath.h"

namespace kiln {
namespace KILN_ISA {
namespace {

using mm::Half;
using mm::VecF32;
using mm::VecF64;
using mm::pack_contig;
using mm::pack_strided;
using mm::store_out;
using mm::to_compute;

// ---- blocking -----------------------------------------------------------------------------------
// MR×NR is the register tile: MR·NV accumulators + NV B vectors + 1 broadcast must fit the
// register file (32 zmm, 16 ymm, 16 xmm). KC bounds the k block and NC a task's width.
// Measured on Zen 4 (1 MiB L2): long k blocks win — the MR×KC A panel and KC×NR B panel stream
// from L2/L3 at well under their bandwidth, while every extra k block re-reads and re-writes C —
// so KC is large (a k of up to 1024 is one block) and C is updated once per product.
template <class S>
struct Blocking;

#if KILN_ISA_avx512
template <>
struct Blocking<VecF32> {
  static constexpr int MR = 14, NV = 2, KC = 1024, NC = 512;
};
template <>
struct Blocking<VecF64> {
  static constexpr int MR = 14, NV = 2, KC = 1024, NC = 256;
};
#elif KILN_ISA_avx2
template <>
struct Blocking<VecF32> {
  static constexpr int MR = 6, NV = 2, KC = 1024, NC = 512;
};
template <>
struct Blocking<VecF64> {
  static constexpr int MR = 6, NV = 2, KC = 1024, NC = 256;
};
#else
template <>
struct Blocking<VecF32> {
  static constexpr int MR = 6, NV = 2, KC = 256, NC = 256;
};
template <>
struct Blocking<VecF64> {
  static constexpr int MR = 6, NV = 2, KC = 256, NC = 256;
};
#endif

// ---- microkernel --------------------------------------------------------------------------------
// What the microkernel multiplies, per packed step: U::P elements (U::KU values of k each), B
// loaded as vectors, A broadcast, multiplied into U::Acc accumulators. Direct<S>: one k per
// step in the compute type (an FMA); PairsBF16 (AVX-512): two k per step in bf16 (vdpbf16ps).
template <class S>
struct Direct {
  using Acc = S;
  using P = typename S::T;
  using BV = typename S::V;
  static constexpr int KU = 1;
  static constexpr int SG = 1;
  static BV loadb(const P* p) { return S::load(p); }
  static BV bcasta(const P* p) { return S::bcast(p); }
  static typename S::V madd(BV a, BV b, typename S::V c) { return S::fma(a, b, c); }
};
#if KILN_ISA_avx512
using mm::PairsBF16;
using mm::TilesBF16;
#endif

// The blocking of a multiplication U: its accumulator type's, except for AMX tiles (a 32×32
// block of C in four tile registers; a k block of 256 steps keeps the A panel, 32 KiB, in L1
// while B panels stream from L2).
template <class U>
struct BlockingOf : Blocking<typename U::Acc> {};
#if KILN_ISA_avx512
template <>
struct BlockingOf<TilesBF16> {
  static constexpr int MR = 32, NV = 2, KC = 256, NC = 512;
};
#endif

// C[R×ncols] (+)= A·B over `steps` packed steps, where A is a packed panel (row i of step p at
// A[p·MR + i]) and B a packed panel (column j of step p at B[p·NR + j]). R ≤ MR rows and
// NVC ≤ NV vectors are computed; ncols ∈ ((NVC−1)·L, NVC·L] columns are stored. `accumulate`
// adds C's old values; `bias` (null, or the ncols bias values of these columns) is added last.
template <class U, int MR, int NV, int R, int NVC>
void ukernel(int64_t steps, const typename U::P* __restrict A, const typename U::P* __restrict B,
             typename U::Acc::T* __restrict C, int64_t ldc, int ncols, bool accumulate, const typename U::Acc::T* bias) {
  using S = typename U::Acc;
  using V = typename S::V;
  using BV = typename U::BV;
  constexpr int L = S::L;
  constexpr int NR = NV * L;
  // C is needed only at the end: start fetching its rows (both ends of each row segment) now
  for (int i = 0; i < R; i++) {
    __builtin_prefetch(C + i * ldc, 1, 3);
    __builtin_prefetch(C + i * ldc + NVC * L - 1, 1, 3);
  }
  V c[R][NVC];
#pragma GCC unroll 16
  for (int i = 0; i < R; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NVC; v++) c[i][v] = S::zero();
  for (int64_t p = 0; p < steps; p++) {
    BV b[NVC];
#pragma GCC unroll 4
    for (int v = 0; v < NVC; v++) b[v] = U::loadb(B + v * L);
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) {
      BV a = U::bcasta(A + i);
#pragma GCC unroll 4
      for (int v = 0; v < NVC; v++) c[i][v] = U::madd(a, b[v], c[i][v]);
    }
    A += MR;
    B += NR;
  }
  const int tail = ncols - (NVC - 1) * L;  // columns in the last vector: 1..L
#pragma GCC unroll 16
  for (int i = 0; i < R; i++) {
    typename S::T* ci = C + i * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NVC; v++) {
      V x = c[i][v];
      if (v < NVC - 1 || tail == L) {
        if (accumulate) x = S::add(x, S::load(ci + v * L));
        if (bias) x = S::add(x, S::load(bias + v * L));
        S::store(ci + v * L, x);
      } else {
        if (accumulate) x = S::add(x, S::loadn(ci + v * L, tail));
        if (bias) x = S::add(x, S::loadn(bias + v * L, tail));
        S::storen(ci + v * L, x, tail);
      }
    }
  }
}

template <class U>
using UkernelFn = void (*)(int64_t, const typename U::P*, const typename U::P*, typename U::Acc::T*, int64_t, int,
                           bool, const typename U::Acc::T*);

// kernels[r − 1][nv − 1]: the instance for r rows and nv vectors
template <class U>
struct Kernels {
  static constexpr int MR = BlockingOf<U>::MR, NV = BlockingOf<U>::NV;
  UkernelFn<U> fn[MR][NV];

  template <int R, int NVC>
  void set() {
    fn[R - 1][NVC - 1] = &ukernel<U, MR, NV, R, NVC>;
  }
  template <int R, int... NVs>
  void set_row(std::integer_sequence<int, NVs...>) {
    (set<R, NVs + 1>(), ...);
  }
  template <int... Rs>
  void set_all(std::integer_sequence<int, Rs...>) {
    (set_row<Rs + 1>(std::make_integer_sequence<int, NV>{}), ...);
  }
  Kernels() { set_all(std::make_integer_sequence<int, MR>{}); }
};

template <class U>
const Kernels<U>& kernels_for() {
  static const Kernels<U> k;
  return k;
}

#if KILN_ISA_avx512
// ---- AMX microkernel ------------------------------------------------------------------------------
// C[r×ncols] (+)= A·B for a 32×32 block (r, ncols ≤ 32) over `steps` packed steps (a multiple
// of 16; TilesBF16 layouts), as ukernel. Tiles 0–3 hold C (rows 0–15 / 16–31 × columns 0–15 /
// 16–31), 4–5 the two A tiles and 6–7 the two B tiles of a granule; every tile is 16 rows of 64
// bytes, so one configuration serves all, loaded once per thread. A whole block is loaded from
// and stored to C directly; an edge block goes through a local 32×32 buffer.
struct alignas(64) TileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

__attribute__((target("amx-tile,amx-bf16"))) void tile_kernel(int64_t steps, const uint32_t* __restrict A,
                                                               const uint32_t* __restrict B, float* __restrict C,
                                                               int64_t ldc, int r, int ncols, bool accumulate,
                                                               const float* bias) {
  thread_local bool configured = false;
  if (!configured) {
    TileConfig cfg{};
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
      cfg.rows[t] = 16;
      cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    configured = true;
  }
  const bool whole = r == 32 && ncols == 32;
  const int64_t ldb = ldc * int64_t(sizeof(float));
  if (whole && accumulate) {
    _tile_loadd(0, C, ldb);
    _tile_loadd(1, C + 16, ldb);
    _tile_loadd(2, C + 16 * ldc, ldb);
    _tile_loadd(3, C + 16 * ldc + 16, ldb);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t q = 0; q < steps; q += 16) {
    const uint32_t* a = A + q * 32;  // granule q/16: 32 rows of 16 pairs
    const uint32_t* b = B + q * 32;  // steps q..q+15, 32 columns each
    _tile_loadd(4, a, 64);
    _tile_loadd(5, a + 16 * 16, 64);
    _tile_loadd(6, b, 128);
    _tile_loadd(7, b + 16, 128);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  float* out = C;
  int64_t ld = ldc;
  alignas(64) float buf[32 * 32];
  if (!whole) {
    out = buf;
    ld = 32;
  }
  const int64_t ldo = ld * int64_t(sizeof(float));
  _tile_stored(0, out, ldo);
  _tile_stored(1, out + 16, ldo);
  _tile_stored(2, out + 16 * ld, ldo);
  _tile_stored(3, out + 16 * ld + 16, ldo);
  if (whole) {
    if (bias)
      for (int i = 0; i < 32; i++)
        for (int v = 0; v < 2; v++)
          VecF32::store(C + i * ldc + 16 * v, VecF32::add(VecF32::load(C + i * ldc + 16 * v), VecF32::load(bias + 16 * v)));
    return;
  }
  for (int i = 0; i < r; i++)
    for (int v = 0; v < 2; v++) {
      const int w = std::max(0, std::min(16, ncols - 16 * v));
      if (w == 0) break;
      float* ci = C + i * ldc + 16 * v;
      __m512 x = VecF32::load(buf + i * 32 + 16 * v);
      if (accumulate) x = VecF32::add(x, VecF32::loadn(ci, w));
      if (bias) x = VecF32::add(x, VecF32::loadn(bias + 16 * v, w));
      VecF32::storen(ci, x, w);
    }
}
#endif

// ---- activation epilogue ------------------------------------------------------------------------
// As src/backend/ref/kernels.ts unaryFn. f32 through vecmath.h's branch-free functions (the
// loops vectorise, and match the elementwise kernels), f64 through <cmath>.
inline void apply_act(float* x, int n, Activation act) {
  switch (act) {
    case ACT_NONE: break;
    case ACT_RELU:
      for (int j = 0; j < n; j++) x[j] = x[j] > 0.0f || x[j] != x[j] ? x[j] : 0.0f;  // NaN stays
      break;
    case ACT_GELU:
      for (int j = 0; j < n; j++) x[j] = vm::gelu(x[j]);
      break;
    case ACT_GELU_TANH:
      for (int j = 0; j < n; j++) x[j] = vm::gelu_tanh(x[j]);
      break;
    case ACT_SILU:
      for (int j = 0; j < n; j++) x[j] = vm::silu(x[j]);
      break;
  }
}

inline void apply_act(double* x, int n, Activation act) {
  switch (act) {
    case ACT_NONE: break;
    case ACT_RELU:
      for (int j = 0; j < n; j++) x[j] = x[j] > 0.0 || std::isnan(x[j]) ? x[j] : 0.0;
      break;
    case ACT_GELU:
      // ½x(1 + erf(x/√2)) = ½x·erfc(−x/√2): no cancellation for negative x
      for (int j = 0; j < n; j++) x[j] = 0.5 * x[j] * std::erfc(x[j] * -0.70710678118654752440);
      break;
    case ACT_GELU_TANH:
      for (int j = 0; j < n; j++) {
        const double v = x[j];
        x[j] = 0.5 * v * (1.0 + std::tanh(0.79788456080286535588 * (v + 0.044715 * v * v * v)));  // √(2/π)
      }
      break;
    case ACT_SILU:
      for (int j = 0; j < n; j++) {
        const double v = x[j];
        if (v >= 0) {
          x[j] = v / (1.0 + std::exp(-v));
        } else {
          const double e = std::exp(v);
          x[j] = v * e / (1.0 + e);
        }
      }
      break;
  }
}

// ---- matrix-vector products (m = 1 or n = 1) ----------------------------------------------------
// Packing a whole operand to use 1/MR or 1/NR of the register tile would dominate: these walk
// the matrix once, in place. y has `len` outputs; x has k elements, contiguous.

// y[i] = Σ_p M[i·ld + p]·x[p] for i < len: dot products of contiguous rows, 4 rows at a time
// (each x vector loaded once for the 4).
template <class S>
void gemv_dot(const typename S::T* M, int64_t ld, const typename S::T* x, int64_t k, typename S::T* y, int64_t len) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int L = S::L;
  const int64_t kv = k / L * L;
  alignas(64) T lanes[L];
  auto hsum = [&](V v) {
    S::store(lanes, v);
    T t = 0;
    for (int l = 0; l < L; l++) t += lanes[l];
    return t;
  };
  int64_t i = 0;
  for (; i + 4 <= len; i += 4) {
    const T* r0 = M + i * ld;
    const T *r1 = r0 + ld, *r2 = r1 + ld, *r3 = r2 + ld;
    V c0 = S::zero(), c1 = S::zero(), c2 = S::zero(), c3 = S::zero();
    for (int64_t p = 0; p < kv; p += L) {
      const V xv = S::load(x + p);
      c0 = S::fma(S::load(r0 + p), xv, c0);
      c1 = S::fma(S::load(r1 + p), xv, c1);
      c2 = S::fma(S::load(r2 + p), xv, c2);
      c3 = S::fma(S::load(r3 + p), xv, c3);
    }
    T t0 = hsum(c0), t1 = hsum(c1), t2 = hsum(c2), t3 = hsum(c3);
    for (int64_t p = kv; p < k; p++) {
      t0 += r0[p] * x[p];
      t1 += r1[p] * x[p];
      t2 += r2[p] * x[p];
      t3 += r3[p] * x[p];
    }
    y[i] = t0;
    y[i + 1] = t1;
    y[i + 2] = t2;
    y[i + 3] = t3;
  }
  for (; i < len; i++) {
    const T* r = M + i * ld;
    V c = S::zero();
    for (int64_t p = 0; p < kv; p += L) c = S::fma(S::load(r + p), S::load(x + p), c);
    T t = hsum(c);
    for (int64_t p = kv; p < k; p++) t += r[p] * x[p];
    y[i] = t;
  }
}

// y[j] = Σ_p x[p]·M[p·ld + j] for j < len: rows of M scaled and summed, a strip of up to 8
// vectors of y kept in registers across all of k.
template <class S>
void gemv_axpy(const typename S::T* M, int64_t ld, const typename S::T* x, int64_t k, typename S::T* y, int64_t len) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int L = S::L, W = 8;
  int64_t j = 0;
  for (; j + W * L <= len; j += W * L) {
    V c[W];
    for (int v = 0; v < W; v++) c[v] = S::zero();
    for (int64_t p = 0; p < k; p++) {
      const V xv = S::bcast(x + p);
      const T* row = M + p * ld + j;
      for (int v = 0; v < W; v++) c[v] = S::fma(xv, S::load(row + v * L), c[v]);
    }
    for (int v = 0; v < W; v++) S::store(y + j + v * L, c[v]);
  }
  for (; j < len; j += L) {  // the last strip, a vector at a time (masked at the very end)
    const int w = int(std::min<int64_t>(L, len - j));
    V c = S::zero();
    for (int64_t p = 0; p < k; p++) {
      const T* row = M + p * ld + j;
      c = S::fma(S::bcast(x + p), w == L ? S::load(row) : S::loadn(row, w), c);
    }
    if (w == L)
      S::store(y + j, c);
    else
      S::storen(y + j, c, w);
  }
}

// ---- scratch memory -----------------------------------------------------------------------------
// Per-thread, 64-byte aligned, grown on demand and reused across calls (freed when huge).
struct Scratch {
  void* ptr = nullptr;
  size_t cap = 0;
  ~Scratch() { std::free(ptr); }
  void* get(size_t bytes) {
    if (bytes > cap) {
      std::free(ptr);
      // big buffers on 2 MiB boundaries, as transparent huge pages where the OS offers them
      // (packed panels are walked with large strides: fewer TLB misses)
      const size_t align = bytes >= (size_t(4) << 20) ? (size_t(2) << 20) : 64;
      cap = (bytes + align - 1) & ~(align - 1);
      ptr = std::aligned_alloc(align, cap);
      if (!ptr) {
        cap = 0;
      } else if (align > 64) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        madvise(ptr, cap, MADV_HUGEPAGE);
#endif
      }
    }
    return ptr;
  }
  void trim() {
    if (cap > (size_t(64) << 20)) {
      std::free(ptr);
      ptr = nullptr;
      cap = 0;
    }
  }
};
thread_local Scratch tl_scratch;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline size_t round64(size_t bytes) { return (bytes + 63) & ~size_t(63); }

// f(t) for t in [0, ntasks) on up to `threads` threads of the pool, handed out one at a time
// through a shared counter. (parallel_for's chunks are fixed up front: on a machine whose cores
// are shared, a thread that loses its core would hold a whole chunk, here only its current task.)
template <class F>
void for_each_dynamic(int threads, int64_t ntasks, const F& f) {
  if (threads <= 1 || ntasks <= 1) {
    for (int64_t t = 0; t < ntasks; t++) f(t);
    return;
  }
  std::atomic<int64_t> next{0};
  parallel_for(std::min<int64_t>(threads, ntasks), 1, [&](int64_t, int64_t) {
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < ntasks;) f(t);
  });
}

// ---- one product ----------------------------------------------------------------------------------
// x (the compute type) stored as Out: itself, or rounded once to a half.
template <typename Out, typename T>
inline void store_as(Out& o, T x) {
  if constexpr (std::is_same_v<Out, T>)
    o = x;
  else
    store_out(o, x);
}

// C = op(A)·op(B) (+ C's old values with accum) (+ bias, activation) for one batch item,
// multiplied as U says (Direct<S> or PairsBF16). Out is T (f32/f64, or f32 for halves In), or a
// half (uint16_t bf16, Half f16) with T = float accumulated in scratch.
template <class U, typename In, typename Out>
struct Gemm {
  using S = typename U::Acc;
  using T = typename S::T;
  using P = typename U::P;  // packed element
  static constexpr int MR = BlockingOf<U>::MR, NV = BlockingOf<U>::NV, L = S::L, NR = NV * L, KU = U::KU;
  static constexpr int SG = U::SG;  // a k block's steps are padded to whole granules of SG
  // k per block: a bf16 pair step is as many bytes as an f32 step, so pairs take twice the k
  static constexpr int KCMAX = BlockingOf<U>::KC * KU, NC = BlockingOf<U>::NC;
#if KILN_ISA_avx512
  static constexpr bool kTiles = std::is_same_v<U, TilesBF16>;
#else
  static constexpr bool kTiles = false;
#endif
  static constexpr bool kDirect = std::is_same_v<Out, T>;  // accumulate straight into out
  static_assert(NC % NR == 0, "NC must be whole panels");
  static_assert(KU == 1 || !std::is_same_v<In, T>, "pairs are for halves");

  int64_t m, n, k;
  bool ta, tb;
  const T* bias;  // n values in T, or null
  Activation act;
  bool accum;  // out += the product (the old values read in T)

  // derived
  int64_t kc, nkb, mp, np;  // k block size, k blocks, A panels, B panels

  Gemm(int64_t m_, int64_t n_, int64_t k_, bool ta_, bool tb_, const T* bias_, Activation act_, bool accum_)
      : m(m_), n(n_), k(k_), ta(ta_), tb(tb_), bias(bias_), act(act_), accum(accum_) {
    nkb = ceil_div(k, KCMAX);
    kc = ceil_div(ceil_div(k, nkb), KU * SG) * KU * SG;  // equal blocks (the last is never tiny), whole granules
    nkb = ceil_div(k, kc);
    mp = ceil_div(m, MR);
    np = ceil_div(n, NR);
  }

  // packed steps: every block but the last holds kc / KU; the last is zero-padded to whole granules
  size_t steps_total() const { return size_t((nkb - 1) * (kc / KU) + ksteps(nkb - 1)); }
  size_t a_pack_elems() const { return size_t(mp) * MR * steps_total(); }
  size_t b_pack_elems() const { return size_t(np) * NR * steps_total(); }
  size_t acc_elems() const { return kDirect ? 0 : size_t(m) * size_t(n); }

  int64_t kblock(int64_t kb) const { return std::min(kc, k - kb * kc); }
  int64_t ksteps(int64_t kb) const { return ceil_div(ceil_div(kblock(kb), KU), SG) * SG; }
  // panel offsets inside the packed buffers (in P elements)
  size_t a_off(int64_t kb, int64_t ip) const { return size_t(kb * kc / KU) * size_t(mp * MR) + size_t(ip * MR * ksteps(kb)); }
  size_t b_off(int64_t kb, int64_t jp) const { return size_t(kb * kc / KU) * size_t(np * NR) + size_t(jp * NR * ksteps(kb)); }

  // W-wide panels from adjacent lines / from lines along k, as U packs them
  template <int W>
  static void contig(const In* src, int64_t sp, int64_t w, int64_t panels, int64_t kcb, P* dst) {
#if KILN_ISA_avx512
    if constexpr (KU == 2) {
      mm::pack_pairs_contig<W>(src, sp, w, panels, kcb, dst);
      return;
    }
#endif
    if constexpr (KU == 1) pack_contig<W>(src, sp, w, panels, kcb, dst);
  }
  template <int W>
  static void strided(const In* src, int64_t sx, int w, int64_t kcb, P* dst) {
#if KILN_ISA_avx512
    if constexpr (KU == 2) {
      mm::pack_pairs_strided<W>(src, sx, w, kcb, dst);
      return;
    }
#endif
    if constexpr (KU == 1) pack_strided<W>(src, sx, w, kcb, dst);
  }

  // A panels [ip0, ip1) of k block kb
  void pack_a(const In* a, int64_t kb, int64_t ip0, int64_t ip1, P* ap) const {
    const int64_t p0 = kb * kc, kcb = kblock(kb);
#if KILN_ISA_avx512
    if constexpr (kTiles) {
      for (int64_t ip = ip0; ip < ip1; ip++) {
        const int64_t i0 = ip * MR;
        const int w = int(std::min<int64_t>(MR, m - i0));
        if (ta)
          mm::pack_tiles_contig<MR>(a + p0 * m + i0, m, w, kcb, ksteps(kb), ap + a_off(kb, ip));
        else
          mm::pack_tiles_strided<MR>(a + i0 * k + p0, k, w, kcb, ksteps(kb), ap + a_off(kb, ip));
      }
      return;
    }
#endif
    if (ta) {  // op(A)[i, p] = a[p·m + i]: the panel's rows are adjacent
      contig<MR>(a + p0 * m + ip0 * MR, m, m - ip0 * MR, ip1 - ip0, kcb, ap + a_off(kb, ip0));
    } else {  // op(A)[i, p] = a[i·k + p]
      for (int64_t ip = ip0; ip < ip1; ip++) {
        const int64_t i0 = ip * MR;
        strided<MR>(a + i0 * k + p0, k, int(std::min<int64_t>(MR, m - i0)), kcb, ap + a_off(kb, ip));
      }
    }
  }

  // B panels [jp0, jp1) of k block kb
  void pack_b(const In* b, int64_t kb, int64_t jp0, int64_t jp1, P* bp) const {
    const int64_t p0 = kb * kc, kcb = kblock(kb);
    if (tb) {  // op(B)[p, j] = b[j·k + p]
      for (int64_t jp = jp0; jp < jp1; jp++) {
        const int64_t j0 = jp * NR;
        strided<NR>(b + j0 * k + p0, k, int(std::min<int64_t>(NR, n - j0)), kcb, bp + b_off(kb, jp));
      }
    } else if constexpr (SG == 1) {  // op(B)[p, j] = b[p·n + j]: the panel's columns are adjacent
      contig<NR>(b + p0 * n + jp0 * NR, n, n - jp0 * NR, jp1 - jp0, kcb, bp + b_off(kb, jp0));
    } else {  // one panel at a time: padded panels are longer than contig's
      for (int64_t jp = jp0; jp < jp1; jp++) contig<NR>(b + p0 * n + jp * NR, n, n - jp * NR, 1, kcb, bp + b_off(kb, jp));
    }
    if constexpr (SG > 1) {  // zero steps past the k block, to the end of its last granule
      const int64_t filled = ceil_div(kcb, KU);
      for (int64_t jp = jp0; jp < jp1; jp++)
        std::memset(bp + b_off(kb, jp) + filled * NR, 0, size_t(ksteps(kb) - filled) * NR * sizeof(P));
    }
  }

  // Packing state of one panel: 0 untouched, 1 being packed (by the thread that claimed it), 2 ready.
  using Flag = std::atomic<uint8_t>;

  // Panels [lo, hi) of one k block ready to use: pack those no thread has claimed yet, then wait
  // for the ones other threads are packing (they never wait while holding a claim).
  template <class PackOne>
  static void ensure(Flag* flags, int64_t lo, int64_t hi, const PackOne& pack_one) {
    bool pending = false;
    for (int64_t i = lo; i < hi; i++) {
      uint8_t st = flags[i].load(std::memory_order_acquire);
      if (st == 0 && flags[i].compare_exchange_strong(st, 1, std::memory_order_acq_rel)) {
        pack_one(i);
        flags[i].store(2, std::memory_order_release);
      } else if (st != 2) {
        pending = true;
      }
    }
    if (!pending) return;
    for (int64_t i = lo; i < hi; i++)
      for (int spins = 0; flags[i].load(std::memory_order_acquire) != 2; spins++) {
        if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();
#endif
        } else {
          std::this_thread::yield();  // the packer may have lost its core
        }
      }
  }

  // Everything one product's tasks share.
  struct Work {
    const In* a;
    const In* b;
    Out* out;
    Out* pre;        // the pre-activation's copy of out, or null
    P* ap;           // packed A: [nkb][mp] panels
    P* bp;           // packed B: [nkb][np] panels
    T* acc;          // C as accumulated: out itself, or f32 scratch for halves
    Flag* a_flags;   // [nkb][mp]
    Flag* b_flags;   // [nkb][np]
  };

  // The C block of A panels [ip0, ip1) × B panels [jp0, jp1): for each k block, the panels it
  // needs are packed (by whichever task gets there first), then every MR×NR tile is updated;
  // the last k block also applies the epilogue.
  void task(const Work& w, int64_t ip0, int64_t ip1, int64_t jp0, int64_t jp1) const {
    for (int64_t kb = 0; kb < nkb; kb++) {
      ensure(w.b_flags + kb * np, jp0, jp1, [&](int64_t jp) { pack_b(w.b, kb, jp, jp + 1, w.bp); });
      ensure(w.a_flags + kb * mp, ip0, ip1, [&](int64_t ip) { pack_a(w.a, kb, ip, ip + 1, w.ap); });
      const int64_t steps = ksteps(kb);
      const bool last = kb == nkb - 1;
      for (int64_t ip = ip0; ip < ip1; ip++) {
        const int64_t i0 = ip * MR;
        const int r = int(std::min<int64_t>(MR, m - i0));
        const P* a_panel = w.ap + a_off(kb, ip);
        for (int64_t jp = jp0; jp < jp1; jp++) {
          const int64_t j0 = jp * NR;
          const int c = int(std::min<int64_t>(NR, n - j0));
          T* ct = w.acc + i0 * n + j0;
          const T* bias_j = last && bias ? bias + j0 : nullptr;
          // the first k block starts from C's old values when accumulating straight into out
          const bool add_c = kb > 0 || (kDirect && accum);
#if KILN_ISA_avx512
          if constexpr (kTiles)
            tile_kernel(steps, a_panel, w.bp + b_off(kb, jp), ct, n, r, c, add_c, bias_j);
          else
#endif
            kernels_for<U>().fn[r - 1][(c + L - 1) / L - 1](steps, a_panel, w.bp + b_off(kb, jp), ct, n, c, add_c, bias_j);
        }
        if (last) finish_rows(w, i0, r, jp0 * NR, std::min(n, jp1 * NR));
      }
    }
  }

  // The epilogue of finished rows [i0, i0 + r) × columns [j0, j1), while they are in cache:
  // (halves, accumulating) out's old values, the activation, then (halves) rounding into out.
  // The bias was added by the microkernel.
  void finish_rows(const Work& w, int64_t i0, int r, int64_t j0, int64_t j1) const {
    if (act == ACT_NONE && kDirect) return;
    for (int i = 0; i < r; i++) {
      T* row = w.acc + (i0 + i) * n + j0;
      if constexpr (!kDirect) {
        if (accum) {
          const Out* o = w.out + (i0 + i) * n + j0;
          for (int64_t j = 0; j < j1 - j0; j++) row[j] += to_compute<T>(o[j]);
        }
      }
      if (w.pre) {
        Out* q = w.pre + (i0 + i) * n + j0;
        for (int64_t j = 0; j < j1 - j0; j++) store_as(q[j], row[j]);
      }
      if (act != ACT_NONE) apply_act(row, int(j1 - j0), act);
      if constexpr (!kDirect) {
        Out* o = w.out + (i0 + i) * n + j0;
        for (int64_t j = 0; j < j1 - j0; j++) store_out(o[j], row[j]);
      }
    }
  }

  // m = 1 or n = 1 (f32/f64): matrix-vector product in place, then bias and activation.
  void run_gemv(const In* a, const In* b, Out* out, Out* pre, int threads) const {
    // out[i] (n = 1) = Σ_p op(A)[i, p]·b[p], or out[j] (m = 1) = Σ_p a[p]·op(B)[p, j]
    const bool col = n == 1;
    const int64_t len = col ? m : n;
    const T* M = col ? a : b;
    const T* x = col ? b : a;
    const bool rows_contig = col ? !ta : tb;  // M's outputs are rows along k (dot form)
    const int64_t ld = col ? (ta ? m : k) : (tb ? k : n);
    auto part = [&](int64_t lo, int64_t hi) {
      if (rows_contig)
        gemv_dot<S>(M + lo * ld, ld, x, k, out + lo, hi - lo);
      else
        gemv_axpy<S>(M + lo, ld, x, k, out + lo, hi - lo);
      for (int64_t i = lo; i < hi; i++) out[i] += bias ? bias[col ? 0 : i] : T(0);
      if (pre) std::memcpy(pre + lo, out + lo, size_t(hi - lo) * sizeof(T));
      if (act != ACT_NONE) apply_act(out + lo, int(hi - lo), act);
    };
    // tasks of whole 8-vector strips, each some 2^18 multiply-adds
    const int64_t strip = 8 * L;
    const int64_t chunk = ceil_div(std::max<int64_t>(1, (int64_t(1) << 18) / k), strip) * strip;
    for_each_dynamic(threads, ceil_div(len, chunk), [&](int64_t t) { part(t * chunk, std::min(len, (t + 1) * chunk)); });
  }

  // out = op(A)·op(B) (+ bias, activation) by plain loops, needing no scratch memory.
  void run_unpacked(const In* a, const In* b, Out* out, Out* pre) const {
    for (int64_t i = 0; i < m; i++) {
      for (int64_t j = 0; j < n; j++) {
        T sum = T(0);
        for (int64_t p = 0; p < k; p++)
          sum += to_compute<T>(a[ta ? p * m + i : i * k + p]) * to_compute<T>(b[tb ? j * k + p : p * n + j]);
        if (accum) sum += to_compute<T>(out[i * n + j]);
        T v = sum + (bias ? bias[j] : T(0));
        if (pre) store_as(pre[i * n + j], v);
        apply_act(&v, 1, act);
        if constexpr (kDirect)
          out[i * n + j] = v;
        else
          store_out(out[i * n + j], v);
      }
    }
  }

  // The product, on this thread (threads = 1) or split into C blocks over the pool. Scratch is
  // the calling thread's; packing happens inside the tasks, so there is one parallel_for.
  void run(const In* a, const In* b, Out* out, Out* pre, int threads) const {
    if constexpr (kDirect && std::is_same_v<In, T>) {
      if ((m == 1 || n == 1) && !accum) {
        run_gemv(a, b, out, pre, threads);
        return;
      }
    }
    const size_t a_bytes = round64(a_pack_elems() * sizeof(P)), b_bytes = round64(b_pack_elems() * sizeof(P));
    const size_t acc_bytes = round64(acc_elems() * sizeof(T));
    const size_t nflags = size_t(nkb * (mp + np));
    char* s = static_cast<char*>(tl_scratch.get(a_bytes + b_bytes + acc_bytes + nflags));
    if (!s) {  // no memory for the packed operands: the plain loops still give the result
      run_unpacked(a, b, out, pre);
      return;
    }
    Flag* flags = reinterpret_cast<Flag*>(s + a_bytes + b_bytes + acc_bytes);
    for (size_t i = 0; i < nflags; i++) new (flags + i) Flag(0);
    Work w;
    w.a = a;
    w.b = b;
    w.out = out;
    w.pre = pre;
    w.ap = reinterpret_cast<P*>(s);
    w.bp = reinterpret_cast<P*>(s + a_bytes);
    w.acc = kDirect ? reinterpret_cast<T*>(out) : reinterpret_cast<T*>(s + a_bytes + b_bytes);
    w.a_flags = flags;
    w.b_flags = flags + nkb * mp;

    // C blocks: NC-wide column blocks (a task's B slice is reused across its row panels) ×
    // row blocks, several per thread so that one slow thread holds little up. Column-block
    // major, so the threads work on the same B slice at the same time.
    const int64_t npc = NC / NR;
    const int64_t njc = ceil_div(np, npc);
    const int64_t nic_want = threads > 1 ? ceil_div(8 * threads, njc) : 1;
    const int64_t mpc = ceil_div(mp, std::min(mp, nic_want));  // A panels per row block
    const int64_t nic = ceil_div(mp, mpc);
    for_each_dynamic(threads, nic * njc, [&](int64_t t) {
      const int64_t jc = t / nic, ic = t % nic;
      task(w, ic * mpc, std::min(mp, (ic + 1) * mpc), jc * npc, std::min(np, (jc + 1) * npc));
    });
  }
};

// Below this many multiply-adds (128³; about 40 µs on one core) a product stays on one thread:
// waking the pool costs more than it saves.
constexpr int64_t kParallelMacs = int64_t(1) << 21;

template <class U, typename In, typename Out>
void matmul_typed(const MatmulArgs& p) {
  using T = typename U::Acc::T;
  if (p.m <= 0 || p.n <= 0 || p.k <= 0) return;
  int64_t nb = 1;
  for (int d = 0; d < p.batch_shape.rank; d++) nb *= p.batch_shape[d];
  if (nb <= 0) return;

  // bias (out's dtype) in the compute type (halves → f32 once)
  std::vector<T> bias_conv;
  const T* bias = nullptr;
  if (p.bias.data) {
    if constexpr (std::is_same_v<Out, T>) {
      bias = static_cast<const T*>(p.bias.data);
    } else {
      bias_conv.resize(size_t(p.n));
      const Out* bsrc = static_cast<const Out*>(p.bias.data);
      for (int64_t j = 0; j < p.n; j++) bias_conv[size_t(j)] = to_compute<T>(bsrc[j]);
      bias = bias_conv.data();
    }
  }
  // A batch that shares one B (b's batch strides all 0, as x @ W for x of rank 3) with A plain
  // and its items adjacent is one product nb·m tall: B is packed once, not once per item.
  bool fold = nb > 1 && !p.trans_a;
  for (int64_t d = int64_t(p.batch_shape.rank) - 1, adjacent = p.m * p.k; d >= 0 && fold; adjacent *= p.batch_shape[d], d--)
    fold = p.b_batch_strides[d] == 0 && (p.batch_shape[d] == 1 || p.a_batch_strides[d] == adjacent);
  const int64_t m = fold ? nb * p.m : p.m;
  if (fold) nb = 1;
  const Gemm<U, In, Out> g(m, p.n, p.k, p.trans_a, p.trans_b, bias, p.activation, p.accumulate);
  const In* a = static_cast<const In*>(p.a.data);
  const In* b = static_cast<const In*>(p.b.data);
  Out* out = static_cast<Out*>(p.out.data);
  Out* pre = static_cast<Out*>(p.preact.data);  // null unless asked (with an activation)
  const int64_t mn = m * p.n;

  // batch item t → element offsets of its a and b (row-major over batch_shape)
  auto item = [&](int64_t t, const In*& ai, const In*& bi) {
    int64_t ao = 0, bo = 0;
    for (int d = int(p.batch_shape.rank) - 1; d >= 0; d--) {
      const int64_t idx = t % p.batch_shape[d];
      t /= p.batch_shape[d];
      ao += idx * p.a_batch_strides[d];
      bo += idx * p.b_batch_strides[d];
    }
    ai = a + ao;
    bi = b + bo;
  };

  const int threads = num_threads();
  const double macs = double(m) * double(p.n) * double(p.k);  // per item (double: no overflow)
  auto run_item = [&](int64_t t, int th) {
    const In *ai, *bi;
    item(t, ai, bi);
    g.run(ai, bi, out + t * mn, pre ? pre + t * mn : nullptr, th);
  };
  if (threads <= 1 || macs * double(nb) < double(kParallelMacs)) {
    for (int64_t t = 0; t < nb; t++) run_item(t, 1);
  } else if (nb == 1 || (nb < 2 * threads && macs >= double(int64_t(1) << 22))) {
    // one or a few big products: each split over the threads
    for (int64_t t = 0; t < nb; t++) run_item(t, threads);
  } else {
    // many products: groups of whole ones per task, no synchronisation inside a product
    const int64_t per = macs >= double(int64_t(1) << 18) ? 1 : int64_t(double(int64_t(1) << 18) / macs);
    for_each_dynamic(threads, ceil_div(nb, per), [&](int64_t q) {
      for (int64_t t = q * per; t < std::min(nb, (q + 1) * per); t++) run_item(t, 1);
      tl_scratch.trim();
    });
  }
  tl_scratch.trim();
}

#if KILN_ISA_avx512
// The bf16 kernel is picked per call by bf16_matmul() (dispatch.cc): AMX tiles where usable (a
// tdpbf16ps is 8192 multiply-adds; measured 3.3 TFLOP/s of it on one Sapphire-Rapids-class
// core), else vdpbf16ps pairs where they issue as often as an FMA (AMD Zen 4/5: one 512-bit
// instruction of either kind per cycle, so pairs double the rate), else bf16 → f32 in packing and
// the f32 FMA kernel: Intel cores with two 512-bit FMA units issue vdpbf16ps at a quarter of
// their FMA rate (measured: 1.8 G vdpbf16ps/s against 7.3 G FMA/s, i.e. 116 against 232
// GFLOP/s), so there the f32 kernel is twice as fast as pairs.
#endif

// One instantiation per (In, Out): halves into f32 out (no rounding) or into their own dtype.
template <typename In, typename Out>
void matmul_half(const MatmulArgs& p) {
#if KILN_ISA_avx512
  if constexpr (std::is_same_v<In, uint16_t>) {
    switch (bf16_matmul()) {
      case BF16_MATMUL_AMX: matmul_typed<TilesBF16, In, Out>(p); return;
      case BF16_MATMUL_DPBF16: matmul_typed<PairsBF16, In, Out>(p); return;
      default: break;
    }
  }
#endif
  matmul_typed<Direct<VecF32>, In, Out>(p);
}

// a and b share a dtype: F32, F64, or BF16 / F16 (summed in f32, rounded once); out and bias
// have it too, or are F32 for halves
void matmul(const MatmulArgs& p) {
  const bool f32_out = p.out.dtype == F32;
  switch (p.a.dtype) {
    case F32: matmul_typed<Direct<VecF32>, float, float>(p); break;
    case F64: matmul_typed<Direct<VecF64>, double, double>(p); break;
    case BF16: f32_out ? matmul_half<uint16_t, float>(p) : matmul_half<uint16_t, uint16_t>(p); break;
    case F16: f32_out ? matmul_half<Half, float>(p) : matmul_half<Half, Half>(p); break;
    default: break;
  }
}

}  // namespace

void add_matmul(Table& t) {
  t.matmul = &matmul;
  t.computes[FAMILY_MATMUL] = dtype_bit(F32) | dtype_bit(F64) | dtype_bit(BF16) | dtype_bit(F16);
}

}  // namespace KILN_ISA
}  // namespace kiln
