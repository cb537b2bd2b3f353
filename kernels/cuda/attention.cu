// Backend.attention and its backward on CUDA, flash-style, in the compute type T (float for f32,
// double for f64; bf16/f16 are not in computes[FAMILY_ATTENTION], so the TypeScript layer runs
// them through f32 casts). Never allocates a Tq×Tk matrix: scores live a 64×64 tile at a time in
// registers and shared memory.
//
// Semantics: the `attention` and `attentionBackward` entries of kernels/ops.mjs; the
// specification is src/backend/ref/ref.ts, the CPU twin kernels/cpu/isa/attention.cc. Per batch
// entry b and query head h (reading kv head hk = h / G, G = heads / kv_heads):
//   s_ij = q_i·k_j·scale (+ float mask), −∞ where the bool mask is false or, with causal masking,
//   where j > i + causal_offset or (window w > 0) j ≤ i + causal_offset − w;
//   lse_i = log Σ_j exp(s_ij), p_ij = exp(s_ij − lse_i), out_i = Σ_j p_ij·z_ij·v_j
// with the dropout factor z_ij (1, or dropout_scale where the Philox word of element
// e = ((b·H + h)·Tq + i)·Tk + j is ≥ the threshold, else 0). A row with nothing to attend has
// lse = −∞ and out = 0.
//
// Kernels (one block of 256 threads = a 16×16 grid; thread (ty, tx) owns the tile rows
// ty·4 … ty·4 + 3 and the tile columns tx, tx + 16, tx + 32, tx + 48, so a row's 64 entries sit
// in the 16 lanes of one half-warp and row reductions are four shuffles):
//   forward   block per (b, h, tile of 64 queries, column pass). Key tiles of 64 stream through
//             shared memory (S = Q·Kᵀ reduced over qk_dim in chunks of KC columns), online
//             softmax (running max m, sum l, acc rescaled by exp(m − m')), P∘Z staged in shared
//             memory for acc += (P∘Z)·V (V streamed 16 rows at a time). out = acc / l,
//             lse = m + log l. The accumulator holds C columns of v_dim (C ∈ {32, 64, 128, 256},
//             doubles up to 128); wider values run more passes (blockIdx.y), each recomputing
//             the scores. dq and dkdv likewise (dkdv: C up to 128, doubles 64).
//   delta     warp per query row: D_i = dO_i·O_i (= Σ_j P_ij·Z_ij·dP_ij, O holding the kept,
//             scaled terms), into scratch.
//   dkdv      block per (b, kv head, tile of 64 keys, column pass): for each of the G query heads
//             of the kv head and each query tile that can see the keys, Sᵀ = K·Qᵀ and
//             dPᵀ = V·dOᵀ, P = exp(S − lse), dS = P∘(dP∘Z − D)·scale; dV += (P∘Z)ᵀ·dO and
//             dK += dSᵀ·Q in registers, written once: deterministic, no atomics, and dk, dv
//             summed over the G query heads.
//   dq        block per (b, h, tile of 64 queries, column pass): the same P and dS per key
//             tile, dQ += dS·K; written once (a second pass over the scores rather than atomics,
//             so deterministic).
// With causal masking, key tiles past the last visible key (forward, dq) and query tiles before
// the first query that sees a key tile (dkdv) are never visited, and with a window neither are
// those wholly before it: O(Tq·window) work.
//
// NaN and infinities follow the CPU kernels: a NaN score makes its row's lse and out NaN, a +∞
// one makes lse +∞ and out NaN; rows with lse = −∞ contribute nothing to the gradients. Like the
// CPU's GEMMs (and unlike ref, which skips p = 0 terms), a NaN in v or dO at a key or query whose
// probability is 0 still reaches the sums as 0·NaN.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "common.cuh"

namespace kiln {
namespace cuda {
namespace {

constexpr int kBlock = 256;  // threads per block: 16 × 16
constexpr int kTile = 64;    // queries per query tile, keys per key tile
constexpr int kRows = 4;     // tile rows per thread (ty·4 + r)
constexpr int kCols = 4;     // score columns per thread (tx + 16·c)
constexpr int kSub = 16;     // rows of the right-hand operand staged per step of a tile update
constexpr int kMLd = kTile + 1;  // leading dimension of a staged 64×64 tile (padded: no bank conflicts)

// Reduction chunk of tile_dot (columns of q·k or dO·v staged per step): 32 floats or 16 doubles,
// so the staged rows are 128 bytes either way.
template <typename T>
constexpr int kKC = 128 / int(sizeof(T));
template <typename T>
constexpr int kKLd = kKC<T> + 1;

// constexpr min/max usable on both sides (std::min/max are host functions to nvcc)
template <typename T>
__host__ __device__ constexpr T min_of(T a, T b) { return b < a ? b : a; }
template <typename T>
__host__ __device__ constexpr T max_of(T a, T b) { return a < b ? b : a; }

template <typename T>
__device__ inline T neg_inf();
template <>
__device__ inline float neg_inf<float>() { return __int_as_float(0xff800000); }
template <>
__device__ inline double neg_inf<double>() { return __longlong_as_double(0xfff0000000000000ll); }
template <typename T>
__device__ inline T pos_inf() { return -neg_inf<T>(); }

__device__ inline float exp_t(float x) { return expf(x); }
__device__ inline double exp_t(double x) { return exp(x); }

// max that keeps a NaN from either side (fmax would drop it: a NaN score must make its row NaN)
template <typename T>
__device__ inline T nan_max(T a, T b) { return b > a || b != b ? b : a; }

// Reductions over the 16 lanes that share a tile row (one half-warp: xor offsets below 16).
template <typename T>
__device__ inline T row_max16(T x) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) x = nan_max(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
template <typename T>
__device__ inline T row_sum16(T x) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// A strided [B, H, T, cols] operand: row (b, h, t) at p + b·s0 + h·s1 + t·ld, elements contiguous.
template <typename T>
struct View {
  T* p;
  int64_t s0, s1, ld;
  __device__ T* row(int64_t b, int64_t h, int64_t t) const { return p + b * s0 + h * s1 + t * ld; }
};

template <typename T>
View<T> view_of(const Buf& buf, int64_t offset, const Ints& st) {
  return {static_cast<T*>(buf.data) + offset, st[0], st[1], st[2]};
}

// How the mask is stored (a float mask normally has the compute dtype; the others are read too).
enum MaskKind : int { MASK_NONE, MASK_BOOL, MASK_F32, MASK_F64, MASK_BF16, MASK_F16 };

// The arguments shared by the forward and the backward (AttentionArgs and AttentionBackwardArgs
// name them alike), by value in every kernel's parameters.
template <typename T>
struct Problem {
  View<const T> q, k, v;
  int64_t B, H, Hk, G, Tq, Tk, D, Dv;  // G = H / Hk query heads per kv head
  T scale;
  bool causal;
  int64_t causal_offset;
  int64_t window;  // > 0 (with causal only): keys i + causal_offset − window < j only
  const void* mask;
  int mask_kind;
  int64_t ms0, ms1, ms2, ms3;
  uint64_t threshold;  // dropout: keep where the word is ≥ threshold (0: no dropout)
  T dropout_scale;
  uint64_t seed, dropout_offset;

  // s = dot·scale (+ float mask), or −∞ where causal masking, the window or the bool mask hides
  // key j from query i (whatever the dot product is, as in ref)
  __device__ T score(int64_t b, int64_t h, int64_t i, int64_t j, T dot) const {
    if (causal && (j > i + causal_offset || (window > 0 && j <= i + causal_offset - window))) return neg_inf<T>();
    T s = dot * scale;
    if (mask_kind != MASK_NONE) {
      const int64_t e = b * ms0 + h * ms1 + i * ms2 + j * ms3;
      switch (mask_kind) {
        case MASK_BOOL:
          if (!static_cast<const uint8_t*>(mask)[e]) return neg_inf<T>();
          break;
        case MASK_F32: s += T(static_cast<const float*>(mask)[e]); break;
        case MASK_F64: s += T(static_cast<const double*>(mask)[e]); break;
        case MASK_BF16: s += T(bf16_to_f32(static_cast<const uint16_t*>(mask)[e])); break;
        case MASK_F16: s += T(f16_to_f32(static_cast<const uint16_t*>(mask)[e])); break;
        default: break;
      }
    }
    return s;
  }

  // The dropout factor of query i, key j of query head bh = b·H + h: 1 without dropout, else
  // dropout_scale where the Philox word is ≥ the threshold, else 0 (threshold 2³² drops all).
  __device__ T keep(int64_t bh, int64_t i, int64_t j) const {
    if (threshold == 0) return T(1);
    const uint64_t e = (uint64_t(bh) * uint64_t(Tq) + uint64_t(i)) * uint64_t(Tk) + uint64_t(j);
    return uint64_t(philox_word(seed, dropout_offset, e)) >= threshold ? dropout_scale : T(0);
  }

  // The keys any of queries i0 … i0 + n − 1 sees lie in [key_start, key_end); the queries that
  // see any of keys j0 … j0 + n − 1 in [query_start, query_end).
  __device__ int64_t key_start(int64_t i0) const {
    return window > 0 ? clamp64(i0 + causal_offset - window + 1, 0, Tk) : 0;
  }
  __device__ int64_t key_end(int64_t i0, int64_t n) const {
    return causal ? clamp64(i0 + n + causal_offset, 0, Tk) : Tk;
  }
  __device__ int64_t query_start(int64_t j0) const {
    return causal ? clamp64(j0 - causal_offset, 0, Tq) : 0;
  }
  __device__ int64_t query_end(int64_t j0, int64_t n) const {
    return window > 0 ? clamp64(j0 + n - 1 - causal_offset + window, 0, Tq) : Tq;
  }
  __device__ static int64_t clamp64(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : x > hi ? hi : x; }
};

template <typename T, typename Args>
Problem<T> problem_of(const Args& a) {
  Problem<T> p{};
  p.q = view_of<const T>(a.q, a.q_offset, a.q_strides);
  p.k = view_of<const T>(a.k, a.k_offset, a.k_strides);
  p.v = view_of<const T>(a.v, a.v_offset, a.v_strides);
  p.B = a.batch;
  p.H = a.heads;
  p.Hk = a.kv_heads;
  p.G = a.heads / std::max<int64_t>(a.kv_heads, 1);
  p.Tq = a.tq;
  p.Tk = a.tk;
  p.D = a.qk_dim;
  p.Dv = a.v_dim;
  p.scale = T(a.scale);
  p.causal = a.causal;
  p.causal_offset = a.causal_offset;
  p.window = a.causal ? a.window : 0;
  p.mask = a.mask.data;
  p.mask_kind = MASK_NONE;
  if (a.mask.data) {
    switch (a.mask.dtype) {
      case BOOL: p.mask_kind = MASK_BOOL; break;
      case F32: p.mask_kind = MASK_F32; break;
      case F64: p.mask_kind = MASK_F64; break;
      case BF16: p.mask_kind = MASK_BF16; break;
      case F16: p.mask_kind = MASK_F16; break;
      default: throw std::runtime_error(std::string("cuda: attention: mask dtype ") + dtype_name(a.mask.dtype) + " is neither bool nor floating");
    }
    p.ms0 = a.mask_strides[0];
    p.ms1 = a.mask_strides[1];
    p.ms2 = a.mask_strides[2];
    p.ms3 = a.mask_strides[3];
  }
  p.threshold = uint64_t(a.dropout_threshold);
  p.dropout_scale = T(a.dropout_scale);
  p.seed = uint64_t(a.seed);
  p.dropout_offset = uint64_t(a.dropout_offset);
  return p;
}

// ---- tile building blocks ----------------------------------------------------------------------

// s[r][c] += Σ_d A[ty·4 + r][d]·Bm[tx + 16·c][d] over d < K: a 64×64 tile of A·Bmᵀ, with rows of
// A (Bm) lda (ldb) apart, rows past na (nb) read as 0. Chunks of KC columns are staged in sA and
// sB ([64][KC + 1] each). Starts and ends with the block in step (the staging may overwrite
// what the block read before the call, and may be overwritten after it).
template <typename T>
__device__ inline void tile_dot(T (&s)[kRows][kCols], const T* A, int64_t lda, int na, const T* Bm, int64_t ldb,
                                int nb, int64_t K, T* sA, T* sB) {
  constexpr int KC = kKC<T>, LD = kKLd<T>;
  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  for (int64_t k0 = 0; k0 < K; k0 += KC) {
    __syncthreads();
    for (int e = tid; e < kTile * KC; e += kBlock) {
      const int r = e / KC, c = e % KC;
      const int64_t kc = k0 + c;
      sA[r * LD + c] = r < na && kc < K ? A[r * lda + kc] : T(0);
      sB[r * LD + c] = r < nb && kc < K ? Bm[r * ldb + kc] : T(0);
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < KC; kk++) {
      T a[kRows], bv[kCols];
#pragma unroll
      for (int r = 0; r < kRows; r++) a[r] = sA[(ty * kRows + r) * LD + kk];
#pragma unroll
      for (int c = 0; c < kCols; c++) bv[c] = sB[(tx + 16 * c) * LD + kk];
#pragma unroll
      for (int r = 0; r < kRows; r++)
#pragma unroll
        for (int c = 0; c < kCols; c++) s[r][c] += a[r] * bv[c];
    }
  }
  __syncthreads();
}

// acc[r][c] += Σ_k sM[ty·4 + r][k]·X[k][c0 + tx + 16·c] over k < n: a staged 64×64 tile (ld
// kMLd, columns past n must hold finite values) times rows of X (ldx apart, columns past `width`
// read as 0), staged kSub rows at a time in sX ([kSub][C]). The caller has written sM; the
// first barrier here publishes it. Ends with the block in step.
template <typename T, int C>
__device__ inline void tile_update(T (&acc)[kRows][C / 16], const T* sM, const T* X, int64_t ldx, int n, int64_t c0,
                                   int64_t width, T* sX) {
  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  for (int k0 = 0; k0 < n; k0 += kSub) {
    __syncthreads();
    for (int e = tid; e < kSub * C; e += kBlock) {
      const int r = e / C, c = e % C;
      const int64_t col = c0 + c;
      sX[e] = k0 + r < n && col < width ? X[int64_t(k0 + r) * ldx + col] : T(0);
    }
    __syncthreads();
#pragma unroll 4
    for (int kk = 0; kk < kSub; kk++) {
      T a[kRows];
#pragma unroll
      for (int r = 0; r < kRows; r++) a[r] = sM[(ty * kRows + r) * kMLd + k0 + kk];
#pragma unroll
      for (int c = 0; c < C / 16; c++) {
        const T xv = sX[kk * C + tx + 16 * c];
#pragma unroll
        for (int r = 0; r < kRows; r++) acc[r][c] += a[r] * xv;
      }
    }
  }
  __syncthreads();
}

// Shared memory of the kernels, in elements of T: the tile_dot staging, unioned with the
// tile_update staging (never live at once), then the staged 64×64 tiles.
template <typename T>
constexpr int kDotElems = 2 * kTile * kKLd<T>;
template <typename T, int C>
constexpr int kStage = max_of(kDotElems<T>, kSub * C);  // then V, K, Q or dO rows
template <typename T, int C>
constexpr size_t fwd_smem() { return size_t(kStage<T, C> + kTile * kMLd) * sizeof(T); }
template <typename T, int C>
constexpr size_t dq_smem() { return fwd_smem<T, C>(); }
template <typename T, int C>
constexpr size_t dkdv_smem() { return size_t(kStage<T, C> + 2 * kTile * kMLd) * sizeof(T); }

// ---- forward -----------------------------------------------------------------------------------

// Block (query tile qt of query head bh, columns [c0, c0 + C) of v): grid.x = B·H·nqt (the last
// query tiles, the most work when causal, first), grid.y = the column passes.
template <typename T, int C>
__global__ void __launch_bounds__(kBlock) attention_forward_kernel(const Problem<T> p, const View<T> out, T* lse,
                                                                    const int64_t nqt) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* sA = reinterpret_cast<T*>(smem);
  T* sB = sA + kTile * kKLd<T>;
  T* sX = sA;  // the tile_update staging reuses tile_dot's
  T* sP = sA + kStage<T, C>;
  constexpr int NC = C / 16;
  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  const int64_t item = blockIdx.x, bh = item / nqt, qt = nqt - 1 - item % nqt;
  const int64_t b = bh / p.H, h = bh % p.H, hk = h / p.G;
  const int64_t i0 = qt * kTile;
  const int nq = int(min_of<int64_t>(kTile, p.Tq - i0));
  const int64_t c0 = int64_t(blockIdx.y) * C;
  const T* qrows = p.q.row(b, h, i0);
  const T* krows = p.k.row(b, hk, 0);
  const T* vrows = p.v.row(b, hk, 0);

  T m[kRows], l[kRows], acc[kRows][NC];
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    m[r] = neg_inf<T>();
    l[r] = T(0);
#pragma unroll
    for (int c = 0; c < NC; c++) acc[r][c] = T(0);
  }
  const int64_t kend = p.key_end(i0, nq);
  for (int64_t j0 = p.key_start(i0); j0 < kend; j0 += kTile) {
    const int nk = int(min_of<int64_t>(kTile, kend - j0));
    T s[kRows][kCols] = {};
    tile_dot<T>(s, qrows, p.q.ld, nq, krows + j0 * p.k.ld, p.k.ld, nk, p.D, sA, sB);
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const int ir = ty * kRows + r;
      const int64_t i = i0 + ir;
      T mt = neg_inf<T>();
#pragma unroll
      for (int c = 0; c < kCols; c++) {
        const int jc = tx + 16 * c;
        s[r][c] = ir < nq && jc < nk ? p.score(b, h, i, j0 + jc, s[r][c]) : neg_inf<T>();
        mt = nan_max(mt, s[r][c]);
      }
      const T mnew = nan_max(m[r], row_max16(mt));
      // nothing to attend so far (every score −∞; a NaN would have made the max NaN): P = 0
      const bool none = mnew == neg_inf<T>();
      const T alpha = none || m[r] == mnew ? T(1) : exp_t(m[r] - mnew);
      T rs = T(0);
#pragma unroll
      for (int c = 0; c < kCols; c++) {
        const int jc = tx + 16 * c;
        const T e = none || jc >= nk ? T(0) : exp_t(s[r][c] - mnew);
        rs += e;
        s[r][c] = e;
      }
      // l sums P before dropout: lse is that of the scores
      l[r] = l[r] * alpha + row_sum16(rs);
      if (alpha != T(1)) {
#pragma unroll
        for (int c = 0; c < NC; c++) acc[r][c] *= alpha;
      }
      if (!none) m[r] = mnew;
      if (p.threshold != 0 && ir < nq) {
#pragma unroll
        for (int c = 0; c < kCols; c++) {
          const int jc = tx + 16 * c;
          if (jc < nk) s[r][c] *= p.keep(bh, i, j0 + jc);
        }
      }
#pragma unroll
      for (int c = 0; c < kCols; c++) sP[ir * kMLd + tx + 16 * c] = s[r][c];
    }
    tile_update<T, C>(acc, sP, vrows + j0 * p.v.ld, p.v.ld, nk, c0, p.Dv, sX);
  }

#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const int ir = ty * kRows + r;
    if (ir >= nq) continue;
    const int64_t i = i0 + ir;
    T* o = out.row(b, h, i);
    const bool none = m[r] == neg_inf<T>();
    const T inv = none ? T(0) : T(1) / l[r];
#pragma unroll
    for (int c = 0; c < NC; c++) {
      const int64_t col = c0 + tx + 16 * c;
      if (col < p.Dv) o[col] = none ? T(0) : acc[r][c] * inv;
    }
    if (blockIdx.y == 0 && tx == 0)
      lse[bh * p.Tq + i] = none ? neg_inf<T>() : m[r] == pos_inf<T>() ? pos_inf<T>() : T(double(m[r]) + log(double(l[r])));
  }
}

// ---- backward ----------------------------------------------------------------------------------

// D_i = dO_i·O_i per query row (bh, t), a warp per row.
template <typename T>
__global__ void __launch_bounds__(kBlock) attention_delta_kernel(const View<const T> out, const View<const T> dout,
                                                                  T* delta, const int64_t H, const int64_t Tq,
                                                                  const int64_t Dv, const int64_t rows) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (kBlock / 32);
  for (int64_t row = int64_t(blockIdx.x) * (kBlock / 32) + (threadIdx.x >> 5); row < rows; row += warps) {
    const int64_t bh = row / Tq, t = row % Tq, b = bh / H, h = bh % H;
    const T* o = out.row(b, h, t);
    const T* g = dout.row(b, h, t);
    T s = T(0);
    for (int64_t c = lane; c < Dv; c += 32) s += g[c] * o[c];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) delta[row] = s;
  }
}

// P and dS of one element from its score dot product, dP and the row's lse and D:
// p = exp(s − lse) (0 for a row with nothing to attend, lse = −∞), pz = p·z,
// ds = p·(dP·z − D)·scale (0 where p is 0, as ref skips those terms).
template <typename T>
struct Grad {
  T pz, ds;
};
template <typename T>
__device__ inline Grad<T> grad_of(const Problem<T>& p, int64_t b, int64_t h, int64_t bh, int64_t i, int64_t j, T dot,
                                  T dp, T L, T Di) {
  if (L == neg_inf<T>()) return {T(0), T(0)};
  const T pr = exp_t(p.score(b, h, i, j, dot) - L);
  if (pr == T(0)) return {T(0), T(0)};
  const T z = p.keep(bh, i, j);
  return {pr * z, pr * (dp * z - Di) * p.scale};
}

// Block (key tile kt of kv head bhk, columns [c0, c0 + C) of dk and of dv): grid.x = B·Hk·nkt,
// grid.y = the column passes. Walks the G query heads of the kv head and every query tile that
// can see the keys; dK and dV stay in registers and are written once.
template <typename T, int C>
__global__ void __launch_bounds__(kBlock) attention_dkdv_kernel(const Problem<T> p, const View<const T> dout,
                                                                 const T* lse, const T* delta, const View<T> dk,
                                                                 const View<T> dv, const int64_t nkt) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* sA = reinterpret_cast<T*>(smem);
  T* sB = sA + kTile * kKLd<T>;
  T* sX = sA;  // Q rows, then dO rows (tile_update staging, reusing tile_dot's)
  T* sP = sA + kStage<T, C>;  // (P∘Z)ᵀ: [key][query]
  T* sS = sP + kTile * kMLd;                                     // dSᵀ: [key][query]
  constexpr int NC = C / 16;
  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  const int64_t item = blockIdx.x, bhk = item / nkt, kt = item % nkt;
  const int64_t b = bhk / p.Hk, hk = bhk % p.Hk;
  const int64_t j0 = kt * kTile;
  const int nk = int(min_of<int64_t>(kTile, p.Tk - j0));
  const int64_t c0 = int64_t(blockIdx.y) * C;
  const bool do_k = c0 < p.D, do_v = c0 < p.Dv;
  const T* krows = p.k.row(b, hk, j0);
  const T* vrows = p.v.row(b, hk, j0);

  T ak[kRows][NC], av[kRows][NC];
#pragma unroll
  for (int r = 0; r < kRows; r++)
#pragma unroll
    for (int c = 0; c < NC; c++) ak[r][c] = av[r][c] = T(0);

  const int64_t istart = p.query_start(j0), iend = p.query_end(j0, nk);
  for (int64_t g = 0; g < p.G; g++) {
    const int64_t h = hk * p.G + g, bh = b * p.H + h;
    const T* qrows = p.q.row(b, h, 0);
    const T* grows = dout.row(b, h, 0);
    for (int64_t i0 = istart; i0 < iend; i0 += kTile) {
      const int nq = int(min_of<int64_t>(kTile, iend - i0));
      // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ: rows are keys, columns queries
      T s[kRows][kCols] = {}, dp[kRows][kCols] = {};
      tile_dot<T>(s, krows, p.k.ld, nk, qrows + i0 * p.q.ld, p.q.ld, nq, p.D, sA, sB);
      tile_dot<T>(dp, vrows, p.v.ld, nk, grows + i0 * dout.ld, dout.ld, nq, p.Dv, sA, sB);
      T L[kCols], Di[kCols];
#pragma unroll
      for (int c = 0; c < kCols; c++) {
        const int ic = tx + 16 * c;
        L[c] = ic < nq ? lse[bh * p.Tq + i0 + ic] : neg_inf<T>();
        Di[c] = ic < nq ? delta[bh * p.Tq + i0 + ic] : T(0);
      }
#pragma unroll
      for (int r = 0; r < kRows; r++) {
        const int jr = ty * kRows + r;
#pragma unroll
        for (int c = 0; c < kCols; c++) {
          const int ic = tx + 16 * c;
          Grad<T> gr{T(0), T(0)};
          if (jr < nk) gr = grad_of(p, b, h, bh, i0 + ic, j0 + jr, s[r][c], dp[r][c], L[c], Di[c]);
          sP[jr * kMLd + ic] = gr.pz;
          sS[jr * kMLd + ic] = gr.ds;
        }
      }
      // dV += (P∘Z)ᵀ·dO, dK += dSᵀ·Q (columns [c0, c0 + C))
      if (do_v) tile_update<T, C>(av, sP, grows + i0 * dout.ld, dout.ld, nq, c0, p.Dv, sX);
      if (do_k) tile_update<T, C>(ak, sS, qrows + i0 * p.q.ld, p.q.ld, nq, c0, p.D, sX);
    }
  }

#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const int jr = ty * kRows + r;
    if (jr >= nk) continue;
    T* okr = dk.row(b, hk, j0 + jr);
    T* ovr = dv.row(b, hk, j0 + jr);
#pragma unroll
    for (int c = 0; c < NC; c++) {
      const int64_t col = c0 + tx + 16 * c;
      if (col < p.D) okr[col] = ak[r][c];
      if (col < p.Dv) ovr[col] = av[r][c];
    }
  }
}

// Block (query tile qt of query head bh, columns [c0, c0 + C) of dq): grid.x = B·H·nqt,
// grid.y = the column passes. dQ = Σ over visible key tiles of dS·K, written once.
template <typename T, int C>
__global__ void __launch_bounds__(kBlock) attention_dq_kernel(const Problem<T> p, const View<const T> dout,
                                                               const T* lse, const T* delta, const View<T> dq,
                                                               const int64_t nqt) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* sA = reinterpret_cast<T*>(smem);
  T* sB = sA + kTile * kKLd<T>;
  T* sX = sA;
  T* sS = sA + kStage<T, C>;  // dS: [query][key]
  constexpr int NC = C / 16;
  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  const int64_t item = blockIdx.x, bh = item / nqt, qt = nqt - 1 - item % nqt;
  const int64_t b = bh / p.H, h = bh % p.H, hk = h / p.G;
  const int64_t i0 = qt * kTile;
  const int nq = int(min_of<int64_t>(kTile, p.Tq - i0));
  const int64_t c0 = int64_t(blockIdx.y) * C;
  const T* qrows = p.q.row(b, h, i0);
  const T* grows = dout.row(b, h, i0);
  const T* krows = p.k.row(b, hk, 0);
  const T* vrows = p.v.row(b, hk, 0);

  T acc[kRows][NC], L[kRows], Di[kRows];
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const int ir = ty * kRows + r;
    L[r] = ir < nq ? lse[bh * p.Tq + i0 + ir] : neg_inf<T>();
    Di[r] = ir < nq ? delta[bh * p.Tq + i0 + ir] : T(0);
#pragma unroll
    for (int c = 0; c < NC; c++) acc[r][c] = T(0);
  }
  const int64_t kend = p.key_end(i0, nq);
  for (int64_t j0 = p.key_start(i0); j0 < kend; j0 += kTile) {
    const int nk = int(min_of<int64_t>(kTile, kend - j0));
    T s[kRows][kCols] = {}, dp[kRows][kCols] = {};
    tile_dot<T>(s, qrows, p.q.ld, nq, krows + j0 * p.k.ld, p.k.ld, nk, p.D, sA, sB);
    tile_dot<T>(dp, grows, dout.ld, nq, vrows + j0 * p.v.ld, p.v.ld, nk, p.Dv, sA, sB);
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const int ir = ty * kRows + r;
#pragma unroll
      for (int c = 0; c < kCols; c++) {
        const int jc = tx + 16 * c;
        T ds = T(0);
        if (jc < nk) ds = grad_of(p, b, h, bh, i0 + ir, j0 + jc, s[r][c], dp[r][c], L[r], Di[r]).ds;
        sS[ir * kMLd + jc] = ds;
      }
    }
    tile_update<T, C>(acc, sS, krows + j0 * p.k.ld, p.k.ld, nk, c0, p.D, sX);
  }

#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const int ir = ty * kRows + r;
    if (ir >= nq) continue;
    T* o = dq.row(b, h, i0 + ir);
#pragma unroll
    for (int c = 0; c < NC; c++) {
      const int64_t col = c0 + tx + 16 * c;
      if (col < p.D) o[col] = acc[r][c];
    }
  }
}

// ---- host ---------------------------------------------------------------------------------------

// The widest accumulator (columns per pass) each kernel is built for: the forward and dq hold one
// [64 × C] accumulator per block (C/4 registers a thread), dkdv two. Doubles take twice the
// registers, so half the width.
template <typename T>
constexpr int kMaxFwdC = sizeof(T) == 4 ? 256 : 128;
template <typename T>
constexpr int kMaxDkdvC = sizeof(T) == 4 ? 128 : 64;

// The accumulator width for `width` columns: the smallest of 32, 64, … that holds them, at most
// max_c (wider runs ceil(width / C) passes).
inline int width_bucket(int64_t width, int max_c) {
  int c = 32;
  while (c < max_c && c < width) c *= 2;
  return c;
}

inline unsigned passes(int64_t width, int c) { return unsigned(std::max<int64_t>(1, (width + c - 1) / c)); }

// Allow `bytes` of dynamic shared memory for `kernel` (above the default 48 KiB: an opt-in, per
// device, so set on every launch).
template <typename K>
void allow_smem(K kernel, size_t bytes, const char* what) {
  if (bytes <= 48 * 1024) return;
  if (bytes > props().sharedMemPerBlockOptin)
    throw std::runtime_error(std::string("cuda: ") + what + ": needs " + std::to_string(bytes) + " bytes of shared memory per block, the device has " +
                             std::to_string(props().sharedMemPerBlockOptin));
  KILN_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)), what);
}

inline unsigned grid_x(int64_t n, const char* what) {
  if (n > 0x7fffffff) throw std::runtime_error(std::string("cuda: ") + what + ": too many tiles (" + std::to_string(n) + ")");
  return unsigned(n);
}

// The launches for one accumulator width C.
template <typename T, int C>
void launch_forward(const Problem<T>& p, const View<T>& out, T* lse, int64_t nqt) {
  const size_t smem = fwd_smem<T, C>();
  allow_smem(attention_forward_kernel<T, C>, smem, "attention");
  const dim3 grid(grid_x(p.B * p.H * nqt, "attention"), passes(p.Dv, C));
  attention_forward_kernel<T, C><<<grid, kBlock, smem, stream()>>>(p, out, lse, nqt);
  check_launch("attention");
}

template <typename T, int C>
void launch_dkdv(const Problem<T>& p, const View<const T>& dout, const T* lse, const T* delta, const View<T>& dk,
                 const View<T>& dv, int64_t nkt) {
  const size_t smem = dkdv_smem<T, C>();
  allow_smem(attention_dkdv_kernel<T, C>, smem, "attentionBackward (dk, dv)");
  const dim3 grid(grid_x(p.B * p.Hk * nkt, "attentionBackward"), passes(max_of(p.D, p.Dv), C));
  attention_dkdv_kernel<T, C><<<grid, kBlock, smem, stream()>>>(p, dout, lse, delta, dk, dv, nkt);
  check_launch("attentionBackward (dk, dv)");
}

template <typename T, int C>
void launch_dq(const Problem<T>& p, const View<const T>& dout, const T* lse, const T* delta, const View<T>& dq,
               int64_t nqt) {
  const size_t smem = dq_smem<T, C>();
  allow_smem(attention_dq_kernel<T, C>, smem, "attentionBackward (dq)");
  const dim3 grid(grid_x(p.B * p.H * nqt, "attentionBackward"), passes(p.D, C));
  attention_dq_kernel<T, C><<<grid, kBlock, smem, stream()>>>(p, dout, lse, delta, dq, nqt);
  check_launch("attentionBackward (dq)");
}

[[noreturn]] inline void bad_width(int c) { throw std::runtime_error("cuda: attention: bad accumulator width " + std::to_string(c)); }

template <typename T>
void forward(const AttentionArgs& a) {
  const Problem<T> p = problem_of<T>(a);
  const int64_t BH = p.B * p.H;
  if (BH == 0 || p.Tq == 0) return;
  const View<T> out = view_of<T>(a.out, a.out_offset, a.out_strides);
  T* lse = static_cast<T*>(a.lse.data);
  const int64_t nqt = (p.Tq + kTile - 1) / kTile;
  switch (const int c = width_bucket(p.Dv, kMaxFwdC<T>)) {
    case 32: launch_forward<T, 32>(p, out, lse, nqt); break;
    case 64: launch_forward<T, 64>(p, out, lse, nqt); break;
    case 128: launch_forward<T, 128>(p, out, lse, nqt); break;
    case 256:
      if constexpr (kMaxFwdC<T> >= 256) {
        launch_forward<T, 256>(p, out, lse, nqt);
        break;
      }
      [[fallthrough]];
    default: bad_width(c);
  }
}

template <typename T>
void backward(const AttentionBackwardArgs& a) {
  const Problem<T> p = problem_of<T>(a);
  const int64_t BH = p.B * p.H, BHk = p.B * p.Hk;
  if (BH == 0 || p.Tq == 0 || p.Tk == 0) return;  // (the TypeScript layer fills empty cases with 0)
  const View<const T> out = view_of<const T>(a.out, a.out_offset, a.out_strides);
  const View<const T> dout = view_of<const T>(a.dout, a.dout_offset, a.dout_strides);
  const View<T> dq = view_of<T>(a.dq, a.dq_offset, a.dq_strides);
  const View<T> dk = view_of<T>(a.dk, a.dk_offset, a.dk_strides);
  const View<T> dv = view_of<T>(a.dv, a.dv_offset, a.dv_strides);
  const T* lse = static_cast<const T*>(a.lse.data);

  // D_i = dO_i·O_i, [B·H·Tq] in scratch
  const int64_t rows = BH * p.Tq;
  T* delta = static_cast<T*>(scratch(size_t(rows) * sizeof(T)));
  {
    const int64_t want = (rows + kBlock / 32 - 1) / (kBlock / 32);
    const int64_t cap = int64_t(props().multiProcessorCount) * 32;
    const unsigned blocks = unsigned(std::max<int64_t>(1, std::min(want, cap)));
    attention_delta_kernel<T><<<blocks, kBlock, 0, stream()>>>(out, dout, delta, p.H, p.Tq, p.Dv, rows);
    check_launch("attentionBackward (delta)");
  }

  // dk, dv: block per (b, kv head, key tile)
  const int64_t nkt = (p.Tk + kTile - 1) / kTile;
  const int64_t wkv = std::max(p.D, p.Dv);
  if (BHk > 0 && wkv > 0) {
    switch (const int c = width_bucket(wkv, kMaxDkdvC<T>)) {
      case 32: launch_dkdv<T, 32>(p, dout, lse, delta, dk, dv, nkt); break;
      case 64: launch_dkdv<T, 64>(p, dout, lse, delta, dk, dv, nkt); break;
      case 128:
        if constexpr (kMaxDkdvC<T> >= 128) {
          launch_dkdv<T, 128>(p, dout, lse, delta, dk, dv, nkt);
          break;
        }
        [[fallthrough]];
      default: bad_width(c);
    }
  }

  // dq: block per (b, h, query tile), a second walk over the scores (deterministic, no atomics)
  const int64_t nqt = (p.Tq + kTile - 1) / kTile;
  if (p.D > 0) {
    switch (const int c = width_bucket(p.D, kMaxFwdC<T>)) {
      case 32: launch_dq<T, 32>(p, dout, lse, delta, dq, nqt); break;
      case 64: launch_dq<T, 64>(p, dout, lse, delta, dq, nqt); break;
      case 128: launch_dq<T, 128>(p, dout, lse, delta, dq, nqt); break;
      case 256:
        if constexpr (kMaxFwdC<T> >= 256) {
          launch_dq<T, 256>(p, dout, lse, delta, dq, nqt);
          break;
        }
        [[fallthrough]];
      default: bad_width(c);
    }
  }
}

[[noreturn]] void unsupported(const char* op, DType dt) {
  throw std::runtime_error(std::string("cuda: ") + op + ": dtype " + dtype_name(dt) +
                           " is not computed natively (computes[attention] is f32 and f64; the TypeScript layer casts halves to f32)");
}

void attention(const AttentionArgs& a) {
  switch (a.q.dtype) {
    case F32: forward<float>(a); break;
    case F64: forward<double>(a); break;
    default: unsupported("attention", a.q.dtype);
  }
}

void attention_backward(const AttentionBackwardArgs& a) {
  switch (a.q.dtype) {
    case F32: backward<float>(a); break;
    case F64: backward<double>(a); break;
    default: unsupported("attentionBackward", a.q.dtype);
  }
}

}  // namespace

void add_attention(Table& t) {
  t.attention = attention;
  t.attention_backward = attention_backward;
  t.computes[FAMILY_ATTENTION] = dtype_bit(F32) | dtype_bit(F64);
}

}  // namespace cuda
}  // namespace kiln
