// Backend.attention and its backward, flash-style: tiles of queries and keys with an online
// softmax, never allocating a Tq×Tk matrix nor a copy of a whole operand (scratch: a few tiles per
// worker, and O(workers·Tq·D) for the backward's dQ).
//
// Semantics: the `attention` and `attentionBackward` entries of kernels/ops.mjs; the
// specification is src/backend/ref/ref.ts. In short, per batch entry b and head h:
//   s_ij = q_i·k_j·scale (+ float mask), −∞ where the bool mask is false or, with causal masking,
//   where j > i + causal_offset or (a window w > 0) j ≤ i + causal_offset − w; p_ij = exp(s_ij − lse_i); out_i = Σ_j p_ij·z_ij·v_j with the
//   dropout factor z_ij (1, or 1/(1 − p) where the Philox word of element
//   e = ((b·H + h)·Tq + i)·Tk + j is ≥ the threshold, else 0). A row with nothing to attend has
//   lse = −∞ and out = 0.
// Grouped-query attention: k and v have kv_heads heads, query head h reading kv head h / G with
// G = heads / kv_heads; the backward sums dk and dv over the G query heads of each kv head.
// Operands are strided views: row (b, h, t) of q at q_offset + b·qs[0] + h·qs[1] + t·qs[2], its
// elements contiguous (q, k, v may be views into one packed projection [B, T, 3·H·D]; out and
// the gradients likewise).
//
// kernels/cpu/dev/attention_check.cc checks this file against a double-precision reference on
// random cases and times it.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#if KILN_ISA_avx512 || KILN_ISA_avx2
#include <immintrin.h>
#endif

#include "../philox.h"
#include "isa.h"
#include "nn_common.h"
#include "nn_simd.h"

namespace kiln {
namespace KILN_ISA {
namespace {

// Workers for a call of about `work` multiply-adds: one below a few hundred thousand (where
// waking the pool costs more than it saves), else every thread.
inline int64_t workers(int64_t work) { return work < 4 * 65536 ? 1 : std::max(1, num_threads()); }


// ---- a small GEMM ---------------------------------------------------------------------------
//
// C[m × ncv·W] (+)= A[m × kp] · B[kp × ncv·W]: C is overwritten, or added to when `add`. A is
// read as A[r·ars + p·aps] (so Aᵀ is A with the strides swapped, and A's rows may be any
// distance apart), B rows ldb apart, C rows ldc apart. The micro-kernel keeps an R × NC block of
// vectors of C in registers and streams p: per step NC vector loads of B, R broadcasts of A and
// R·NC fused multiply-adds. B and C rows are read and written as whole vectors.
#if KILN_ISA_avx512
constexpr int kMR = 4, kNR = 4;  // 16 accumulators + 4 B vectors + 1 broadcast of 32 zmm registers
#elif KILN_ISA_avx2
constexpr int kMR = 6, kNR = 2;  // 12 accumulators + 2 B vectors + 1 broadcast of 16 ymm registers
#else
constexpr int kMR = 4, kNR = 2;  // scalars
#endif

template <typename T, int R, int NC>
inline void micro(bool add, T* C, int64_t ldc, const T* A, int64_t ars, int64_t aps, const T* B, int64_t ldb,
                  int64_t kp) {
  using V = Vec<T>;
  constexpr int W = V::W;
  V acc[R][NC];
  for (int r = 0; r < R; r++)
    for (int c = 0; c < NC; c++) acc[r][c] = add ? V::load(C + r * ldc + c * W) : V::set1(0);
  for (int64_t p = 0; p < kp; p++) {
    V bv[NC];
    for (int c = 0; c < NC; c++) bv[c] = V::load(B + p * ldb + c * W);
    for (int r = 0; r < R; r++) {
      const V a = V::set1(A[r * ars + p * aps]);
      for (int c = 0; c < NC; c++) acc[r][c] = V::fma(a, bv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int c = 0; c < NC; c++) acc[r][c].store(C + r * ldc + c * W);
}

template <typename T, int R, int NC = kNR>
inline void micro_nc(int nc, bool add, T* C, int64_t ldc, const T* A, int64_t ars, int64_t aps, const T* B,
                     int64_t ldb, int64_t kp) {
  if constexpr (NC >= 1) {
    if (nc == NC) return micro<T, R, NC>(add, C, ldc, A, ars, aps, B, ldb, kp);
    micro_nc<T, R, NC - 1>(nc, add, C, ldc, A, ars, aps, B, ldb, kp);
  }
}

template <typename T, int R = kMR>
inline void micro_rc(int nr, int nc, bool add, T* C, int64_t ldc, const T* A, int64_t ars, int64_t aps, const T* B,
                     int64_t ldb, int64_t kp) {
  if constexpr (R >= 1) {
    if (nr == R) return micro_nc<T, R>(nc, add, C, ldc, A, ars, aps, B, ldb, kp);
    micro_rc<T, R - 1>(nr, nc, add, C, ldc, A, ars, aps, B, ldb, kp);
  }
}

template <typename T>
void gemm(bool add, T* C, int64_t ldc, const T* A, int64_t ars, int64_t aps, const T* B, int64_t ldb, int64_t m,
          int64_t ncv, int64_t kp) {
  constexpr int W = Vec<T>::W;
  for (int64_t i = 0; i < m; i += kMR) {
    const int nr = int(std::min<int64_t>(kMR, m - i));
    for (int64_t c = 0; c < ncv; c += kNR) {
      const int nc = int(std::min<int64_t>(kNR, ncv - c));
      micro_rc<T>(nr, nc, add, C + i * ldc + c * W, ldc, A + i * ars, ars, aps, B + c * W, ldb, kp);
    }
  }
}

// ---- operands -------------------------------------------------------------------------------

// A strided [B, H, T, cols] operand: row (b, h, t) at p + b·s0 + h·s1 + t·ld, its elements
// contiguous.
template <typename T>
struct View {
  T* p;
  int64_t s0, s1, ld;
  T* rows(int64_t b, int64_t h) const { return p + b * s0 + h * s1; }
  T* row(int64_t b, int64_t h, int64_t t) const { return rows(b, h) + t * ld; }
};

template <typename T>
View<T> view_of(const kiln::Buf& buf, int64_t offset, const kiln::Ints& st) {
  return {static_cast<T*>(buf.data) + offset, st[0], st[1], st[2]};
}

// Tiles are packed into small per-worker buffers as the GEMMs need them, never whole tensors:
// no O(B·H·T·D) scratch (whose pages every call would fault in afresh), and rows that in the
// view lie a large power-of-two multiple apart (views into a packed [B, T, 3·H·D] projection)
// become contiguous, out of each other's cache sets.

// n rows of `cols` elements (src rows lds apart) as a B side of the GEMMs, rows of ld =
// round_up(cols, W) read as whole vectors: the rows themselves when they are already laid out
// so, else packed into dst (zero-padded). Returns the rows to use.
template <typename T>
const T* gemm_rows(const T* src, int64_t lds, int64_t n, int64_t cols, int64_t ld, T* dst) {
  if (lds == ld && cols == ld) return src;
  for (int64_t r = 0; r < n; r++) {
    copy_n(dst + r * ld, src + r * lds, cols);
    zero_n(dst + r * ld + cols, ld - cols);
  }
  return dst;
}

// dst[c·ld + j] = element c of src row j (rows lds apart) for j < n, 0 for n ≤ j < npad: keys
// along rows, so that q·kᵀ (and dO·vᵀ) stream whole vectors of keys. With AVX2 (and in the
// AVX-512 build), 8×8 (f32) and 4×4 (f64) blocks are transposed in ymm registers; the edges one
// element at a time.
#if KILN_ISA_avx2 || KILN_ISA_avx512
inline void transpose_block(const float* s, int64_t lds, float* d, int64_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(s + i * lds);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; i++) {
    _mm256_storeu_ps(d + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(d + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
inline void transpose_block(const double* s, int64_t lds, double* d, int64_t ldd) {
  const __m256d r0 = _mm256_loadu_pd(s), r1 = _mm256_loadu_pd(s + lds);
  const __m256d r2 = _mm256_loadu_pd(s + 2 * lds), r3 = _mm256_loadu_pd(s + 3 * lds);
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  _mm256_storeu_pd(d, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(d + ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(d + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(d + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
}
template <typename T>
constexpr int64_t kTransposeBlock = 32 / sizeof(T);  // one ymm register of elements
#else
template <typename T>
constexpr int64_t kTransposeBlock = 0;
#endif

template <typename T>
void transpose_rows(const T* src, int64_t lds, int64_t n, int64_t cols, T* dst, int64_t ld, int64_t npad) {
  int64_t j0 = 0, c0 = 0;
  if constexpr (kTransposeBlock<T> > 0) {
    constexpr int64_t E = kTransposeBlock<T>;
    for (; j0 + E <= n; j0 += E)
      for (int64_t c = 0; c + E <= cols; c += E) transpose_block(src + j0 * lds + c, lds, dst + c * ld + j0, ld);
    c0 = cols / E * E;
  }
  // rows past the whole blocks, then the columns past them
  for (int64_t j = j0; j < n; j++)
    for (int64_t c = 0; c < cols; c++) dst[c * ld + j] = src[j * lds + c];
  for (int64_t j = 0; j < j0; j++)
    for (int64_t c = c0; c < cols; c++) dst[c * ld + j] = src[j * lds + c];
  for (int64_t c = 0; c < cols; c++) zero_n(dst + c * ld + n, npad - n);
}

// Tile sizes (multiples of every W). The forward's longer key tiles halve the per-row softmax
// bookkeeping per score; the backward's key blocks stay short so causal diagonals waste less.
constexpr int64_t kFwdBq = 64, kFwdBk = 128;  // forward: queries per block, keys per tile
constexpr int64_t kBwdBq = 64, kBwdBk = 64;   // backward: queries per tile, keys per block
constexpr int64_t kMaxBk = kFwdBk > kBwdBk ? kFwdBk : kBwdBk;

// The arguments shared by the forward and the backward (AttentionArgs and
// AttentionBackwardArgs name them alike), as typed views, and the score and dropout rows.
template <typename T>
struct Problem {
  static constexpr int W = Vec<T>::W;
  View<const T> q, k, v;
  int64_t B, H, Hk, G, Tq, Tk, D, Dv;  // G = H / Hk query heads per kv head
  T scale;
  bool causal;
  int64_t causal_offset;
  int64_t window;  // > 0: keys i + causal_offset − window < j only (with causal)
  const T* fmask = nullptr;
  const uint8_t* bmask = nullptr;
  int64_t ms0 = 0, ms1 = 0, ms2 = 0, ms3 = 0;
  uint64_t threshold;  // dropout: keep where the word is ≥ threshold (0: no dropout)
  T dropout_scale;
  PhiloxKey key;
  uint64_t dropout_offset;
  int64_t dp, dvp;  // D, Dv rounded up to whole vectors

  template <typename Args>
  explicit Problem(const Args& a)
      : q(view_of<const T>(a.q, a.q_offset, a.q_strides)),
        k(view_of<const T>(a.k, a.k_offset, a.k_strides)),
        v(view_of<const T>(a.v, a.v_offset, a.v_strides)),
        B(a.batch),
        H(a.heads),
        Hk(a.kv_heads),
        G(a.heads / std::max<int64_t>(a.kv_heads, 1)),
        Tq(a.tq),
        Tk(a.tk),
        D(a.qk_dim),
        Dv(a.v_dim),
        scale(T(a.scale)),
        causal(a.causal),
        causal_offset(a.causal_offset),
        window(a.causal ? a.window : 0),
        threshold(uint64_t(a.dropout_threshold)),
        dropout_scale(T(a.dropout_scale)),
        key(philox_key(uint64_t(a.seed))),
        dropout_offset(uint64_t(a.dropout_offset)),
        dp(round_up(a.qk_dim, W)),
        dvp(round_up(a.v_dim, W)) {
    if (a.mask.data) {
      if (a.mask.dtype == BOOL)
        bmask = static_cast<const uint8_t*>(a.mask.data);
      else
        fmask = static_cast<const T*>(a.mask.data);
      ms0 = a.mask_strides[0], ms1 = a.mask_strides[1], ms2 = a.mask_strides[2], ms3 = a.mask_strides[3];
    }
  }

  // Keys j0 … j0 + nk − 1 of query i that causal masking leaves visible: the first `visible`,
  // of which the window hides the first `hidden`.
  int64_t visible(int64_t i, int64_t j0, int64_t nk) const {
    return causal ? std::clamp<int64_t>(i + causal_offset - j0 + 1, 0, nk) : nk;
  }
  int64_t hidden(int64_t i, int64_t j0, int64_t nk) const {
    return window > 0 ? std::clamp<int64_t>(i + causal_offset - window + 1 - j0, 0, nk) : 0;
  }
  // The first key any of queries i0 … i0 + n − 1 sees (0 without a window), and the end of the
  // queries that see any of keys j0 … j0 + nk − 1 (Tq without a window).
  int64_t key_start(int64_t i0) const {
    return window > 0 ? std::clamp<int64_t>(i0 + causal_offset - window + 1, 0, Tk) : 0;
  }
  int64_t query_end(int64_t j0, int64_t nk) const {
    return window > 0 ? std::clamp<int64_t>(j0 + nk - 1 - causal_offset + window, 0, Tq) : Tq;
  }

  // Scores of query i of (b, h) against keys j0 … j0 + nk − 1 in `row` (which holds q·kᵀ on
  // entry and has room for whole vectors, round_up(nk, W)): s·scale (+ float mask), −∞ where
  // the bool mask is false, where causal masking hides the key, and in the padding lanes past
  // nk. Forward (kExp = false) returns the row's max; backward (kExp = true) stores
  // P = exp(s − lse) instead of s.
  template <bool kExp>
  T scores(T* row, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t nk, T lse = 0) const {
    using V = Vec<T>;
    const V vs = V::set1(scale), ninf = V::set1(-kInf<T>), vl = V::set1(lse);
    const int64_t vis = visible(i, j0, nk), hid = hidden(i, j0, nk), end = round_up(nk, W);
    // the mask's row segment, gathered (zero-padded to whole vectors) from its strides
    alignas(64) T fm[kMaxBk];
    alignas(64) uint8_t bm[kMaxBk + 64];
    if ((fmask || bmask) && vis > 0) {
      const int64_t base = b * ms0 + h * ms1 + i * ms2 + j0 * ms3, vend = round_up(vis, W);
      if (fmask) {
        if (ms3 == 1)
          copy_n(fm, fmask + base, vis);
        else
          for (int64_t j = 0; j < vis; j++) fm[j] = fmask[base + j * ms3];
        zero_n(fm + vis, vend - vis);
      } else {
        if (ms3 == 1)
          copy_n(bm, bmask + base, vis);
        else
          for (int64_t j = 0; j < vis; j++) bm[j] = bmask[base + j * ms3];
        zero_n(bm + vis, vend + 16 - vis);  // nonzero_bytes reads up to 16 bytes
      }
    }
    V vmax = ninf;
    for (int64_t c = 0; c < end; c += W) {
      const int64_t lim = vis - c;
      if (lim <= 0) {
        (kExp ? V::set1(0) : ninf).store(row + c);
        continue;
      }
      V s = V::load(row + c) * vs;
      if (fmask) s = s + V::load(fm + c);
      if (bmask) s = V::select(V::nonzero_bytes(bm + c), s, ninf);
      if (lim < W) s = V::select(V::first_n(int(lim)), s, ninf);
      if (hid > c) s = hid - c >= W ? ninf : V::select(V::first_n(int(hid - c)), ninf, s);
      if constexpr (kExp) {
        vexp(s - vl).store(row + c);
      } else {
        s.store(row + c);
        vmax = V::max(s, vmax);
      }
    }
    return V::hmax(vmax);
  }

  // z[0 … round_up(n, W)): the dropout factors of elements e0 … e0 + n − 1 (dropout_scale where
  // the element's Philox word is ≥ the threshold, else 0), 0 in the padding. `words` has room
  // for n.
  void dropout_factors(T* z, uint32_t* words, uint64_t e0, int64_t n) const {
    zero_n(z + n, round_up(n, W) - n);
    if (threshold > 0xffffffffu) {  // p = 1: every word is below 2³²
      zero_n(z, n);
      return;
    }
    philox_words(key, dropout_offset, e0, n, words);
    const uint32_t t = uint32_t(threshold);
    const T ds = dropout_scale;
    for (int64_t j = 0; j < n; j++) z[j] = words[j] >= t ? ds : T(0);
  }
};

// whether x[0 … n) holds a NaN
template <typename T>
bool has_nan(const T* x, int64_t n) {
  for (int64_t c = 0; c < n; c++)
    if (x[c] != x[c]) return true;
  return false;
}

// row[0 … n) = exp(row − m) (n a multiple of W); returns the sum
template <typename T>
T exp_row(T* row, int64_t n, T m) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const V vm = V::set1(m);
  V s = V::set1(0);
  for (int64_t c = 0; c < n; c += W) {
    V e = vexp(V::load(row + c) - vm);
    e.store(row + c);
    s = s + e;
  }
  return V::hsum(s);
}

// ---- forward --------------------------------------------------------------------------------
//
// Work items are (b, h, block of kFwdBq queries), the last blocks (the most work when causal)
// first. Per block: running max m, running sum l and the accumulator acc = Σ_j exp(s_j − m)·z_j·v_j.
// Each tile of kFwdBk keys: Kᵀ and V packed, S = q·kᵀ (GEMM), scale and mask, new max
// m' = max(m, max S), rescale l and acc by exp(m − m'), P = exp(S − m'), l += Σ P (before
// dropout: lse is that of the scores), P ∘= z, acc += P·V (GEMM). Finally out = acc / l and
// lse = m + log l; a row with nothing to attend (m = −∞) gets out = 0 and lse = −∞. With causal
// masking, key tiles past the block's last visible key are never visited, and with a window
// neither are those before the block's first visible key: O(Tq·window) work.
template <typename T>
void forward(const AttentionArgs& args) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const Problem<T> a(args);
  const int64_t H = a.H, Tq = a.Tq, Tk = a.Tk, D = a.D, Dv = a.Dv, dvp = a.dvp;
  const int64_t BH = a.B * H;
  if (BH == 0 || Tq == 0) return;
  const View<T> out = view_of<T>(args.out, args.out_offset, args.out_strides);
  T* lse = static_cast<T*>(args.lse.data);

  const int64_t nqb = (Tq + kFwdBq - 1) / kFwdBq;
  const int64_t nitems = BH * nqb;
  const int64_t nslots = std::min(workers(BH * Tq * Tk * (D + Dv + 1)), nitems);
  // per worker: the score tile, the accumulator, the packed Q, Kᵀ and V tiles, dropout rows
  std::vector<Scratch<T>> Ss, accs, qts, kts, vts, zs;
  std::vector<Scratch<uint32_t>> words;
  for (int64_t s = 0; s < nslots; s++) {
    Ss.emplace_back(kFwdBq * kFwdBk, kUninit);
    accs.emplace_back(kFwdBq * dvp, kUninit);
    qts.emplace_back(kFwdBq * a.dp, kUninit);
    kts.emplace_back(D * kFwdBk, kUninit);
    vts.emplace_back(kFwdBk * dvp, kUninit);
    if (a.threshold) zs.emplace_back(kFwdBk, kUninit), words.emplace_back(kFwdBk, kUninit);
  }
  for_each_item(nslots, nitems, [&](int64_t s, int64_t it) {
    T* S = Ss[s].data();
    T* acc = accs[s].data();
    T* kt = kts[s].data();
    T m[kFwdBq], l[kFwdBq];
    const int64_t bh = it / nqb, b = bh / H, h = bh % H;
    const int64_t qb = nqb - 1 - it % nqb;
    const int64_t i0 = qb * kFwdBq, nq = std::min(kFwdBq, Tq - i0);
    const int64_t hk = h / a.G;
    const T* qt = gemm_rows(a.q.row(b, h, i0), a.q.ld, nq, D, a.dp, qts[s].data());
    zero_n(acc, nq * dvp);
    for (int64_t i = 0; i < nq; i++) m[i] = -kInf<T>, l[i] = 0;
    // keys up to the last query's last visible one
    const int64_t kend = a.causal ? std::clamp<int64_t>(i0 + nq + a.causal_offset, 0, Tk) : Tk;
    for (int64_t j0 = a.key_start(i0); j0 < kend; j0 += kFwdBk) {
      const int64_t nk = std::min(kFwdBk, kend - j0), ncv = (nk + W - 1) / W;
      transpose_rows(a.k.row(b, hk, j0), a.k.ld, nk, D, kt, kFwdBk, ncv * W);
      gemm(false, S, kFwdBk, qt, a.dp, 1, kt, kFwdBk, nq, ncv, D);
      for (int64_t i = 0; i < nq; i++) {
        T* row = S + i * kFwdBk;
        const T mt = a.template scores<false>(row, b, h, i0 + i, j0, nk);
        T mnew = mt > m[i] || mt != mt ? mt : m[i];
        if (mnew == -kInf<T>) {
          // nothing to attend so far: P = 0, unless the scores hold a NaN (the max may skip
          // it), which must make the row NaN as in ref
          if (!has_nan(row, ncv * W)) {
            zero_n(row, ncv * W);
            continue;
          }
          mnew = std::numeric_limits<T>::quiet_NaN();
        }
        const T alpha = m[i] == mnew ? T(1) : T(std::exp(m[i] - mnew));
        const T rs = exp_row(row, ncv * W, mnew);
        l[i] = l[i] * alpha + rs;
        if (alpha != T(1)) {
          T* ar = acc + i * dvp;
          const V va = V::set1(alpha);
          for (int64_t c = 0; c < dvp; c += W) (V::load(ar + c) * va).store(ar + c);
        }
        m[i] = mnew;
        if (a.threshold) {
          T* z = zs[s].data();
          a.dropout_factors(z, words[s].data(), uint64_t((bh * Tq + i0 + i) * Tk + j0), nk);
          for (int64_t c = 0; c < ncv * W; c += W) (V::load(row + c) * V::load(z + c)).store(row + c);
        }
      }
      const T* vt = gemm_rows(a.v.row(b, hk, j0), a.v.ld, nk, Dv, dvp, vts[s].data());
      gemm(true, acc, dvp, S, kFwdBk, 1, vt, dvp, nq, dvp / W, nk);
    }
    for (int64_t i = 0; i < nq; i++) {
      const int64_t gi = i0 + i;
      T* o = out.row(b, h, gi);
      if (m[i] == -kInf<T>) {
        zero_n(o, Dv);
        lse[bh * Tq + gi] = -kInf<T>;
        continue;
      }
      const V inv = V::set1(T(1) / l[i]);
      const T* ar = acc + i * dvp;
      int64_t c = 0;
      for (; c + W <= Dv; c += W) (V::load(ar + c) * inv).store(o + c);
      if (c < Dv) (V::load(ar + c) * inv).store_n(o + c, int(Dv - c));
      lse[bh * Tq + gi] = m[i] == kInf<T> ? kInf<T> : T(double(m[i]) + std::log(double(l[i])));
    }
  });
}

// ---- backward -------------------------------------------------------------------------------
//
// FlashAttention-2 with dropout: with Dᵢ = dOᵢ·Oᵢ, Pᵢⱼ = exp(sᵢⱼ − lseᵢ) recomputed tile by tile
// and the dropout factors Z regenerated from the same Philox words,
//   dV += (P∘Z)ᵀ·dO,  dP = dO·Vᵀ,  dS = P∘(dP∘Z − D)·scale,  dK += dSᵀ·Q,  dQ += dS·K.
// Work items are (b, kv head hk, chunk of blocks of kBwdBk keys), the blocks dealt to the chunks
// back and forth (so that causal chunks carry alike). An item owns its blocks' rows of dK and dV
// outright and, per block, walks the G query heads of hk and every query tile that can see its
// keys (with causal masking, queries from j0 − causal_offset on; with a window, up to the last
// query whose window reaches the block), so dK and dV sum over the group with no race. dQ gets
// contributions from every key block of its (b, h): with one chunk per (b, hk) (enough items for
// the workers) the item owns them too, in a buffer of the worker's ([G, Tq, D]); else each chunk
// adds into a dQ buffer of its own, [G, Tq, D] per (b, hk, chunk), summed in chunk order at the
// end (so results do not depend on which worker ran what). Memory stays O(workers·G·T·D) and
// tile-sized, never O(T²).
template <typename T>
void backward(const AttentionBackwardArgs& args) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const Problem<T> a(args);
  const int64_t H = a.H, Tq = a.Tq, Tk = a.Tk, D = a.D, Dv = a.Dv, dp = a.dp, dvp = a.dvp;
  const int64_t BH = a.B * H, BHk = a.B * a.Hk, G = a.G;
  if (BH == 0) return;
  const View<const T> out = view_of<const T>(args.out, args.out_offset, args.out_strides);
  const View<const T> dout = view_of<const T>(args.dout, args.dout_offset, args.dout_strides);
  const View<T> dq = view_of<T>(args.dq, args.dq_offset, args.dq_strides);
  const View<T> dk = view_of<T>(args.dk, args.dk_offset, args.dk_strides);
  const View<T> dv = view_of<T>(args.dv, args.dv_offset, args.dv_strides);
  const T* lse = static_cast<const T*>(args.lse.data);

  // Dᵢ = dOᵢ·Oᵢ (= Σⱼ Pᵢⱼ·Zᵢⱼ·dPᵢⱼ: O holds the kept, scaled terms)
  Scratch<T> delta(size_t(BH * Tq), kUninit);
  parallel_for(BH * Tq, row_grain(Dv), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t bh = r / Tq, t = r % Tq;
      const T* g = dout.row(bh / H, bh % H, t);
      const T* o = out.row(bh / H, bh % H, t);
      V s = V::set1(0);
      int64_t c = 0;
      for (; c + W <= Dv; c += W) s = V::fma(V::load(g + c), V::load(o + c), s);
      if (c < Dv) s = V::fma(V::load_n(g + c, int(Dv - c), 0), V::load_n(o + c, int(Dv - c), 0), s);
      delta[r] = V::hsum(s);
    }
  });

  const int64_t nkb = (Tk + kBwdBk - 1) / kBwdBk;
  const int64_t nw = workers(BH * Tq * Tk * (D + Dv + 1));
  // chunks per (b, hk): enough items to keep every worker busy (two each), at most one per block
  const int64_t nchunks = nw == 1 ? 1 : std::clamp<int64_t>((2 * nw + BHk - 1) / BHk, 1, std::max<int64_t>(nkb, 1));
  const int64_t nitems = BHk * nchunks;
  const int64_t nslots = std::max<int64_t>(1, std::min(nw, nitems));
  const int64_t per_bh = Tq * dp;           // rows of one (b, h)'s dQ buffer
  const int64_t per_item = G * per_bh;      // an item's: its G query heads
  Scratch<T> partial(size_t(nchunks > 1 ? nitems * per_item : 0), kUninit);
  // per worker: the tiles of one key block and one query tile
  std::vector<Scratch<T>> dQs, Ps, dSs, Zs, dKs, dVs, kts, vts, krs, qrs, dos;
  std::vector<Scratch<uint32_t>> words;
  for (int64_t s = 0; s < nslots; s++) {
    if (nchunks == 1) dQs.emplace_back(per_item, kUninit);
    Ps.emplace_back(kBwdBq * kBwdBk, kUninit);
    dSs.emplace_back(kBwdBq * kBwdBk, kUninit);
    dKs.emplace_back(kBwdBk * dp, kUninit);
    dVs.emplace_back(kBwdBk * dvp, kUninit);
    kts.emplace_back(D * kBwdBk, kUninit);   // Kᵀ of the block
    vts.emplace_back(Dv * kBwdBk, kUninit);  // Vᵀ of the block
    krs.emplace_back(kBwdBk * dp, kUninit);  // K rows of the block
    qrs.emplace_back(kBwdBq * dp, kUninit);  // Q rows of the query tile
    dos.emplace_back(kBwdBq * dvp, kUninit);  // dO rows of the query tile
    if (a.threshold) Zs.emplace_back(kBwdBq * kBwdBk, kUninit), words.emplace_back(kBwdBk, kUninit);
  }

  for_each_item(nslots, nitems, [&](int64_t s, int64_t it) {
    T* P = Ps[s].data();
    T* dS = dSs[s].data();
    T* dK = dKs[s].data();
    T* dV = dVs[s].data();
    bool dead[kBwdBq];
    const int64_t bhk = it / nchunks, chunk = it % nchunks, b = bhk / a.Hk, hk = bhk % a.Hk;
    T* dQg = nchunks == 1 ? dQs[s].data() : partial.data() + it * per_item;
    zero_n(dQg, per_item);
    for (int64_t kb = 0; kb < nkb; kb++) {
      // blocks are dealt to the chunks back and forth (0 … n−1, n−1 … 0, …), so that with
      // causal masking, where early blocks see more queries, the chunks carry alike
      const int64_t round = kb / nchunks, pos = kb % nchunks;
      if ((round % 2 == 0 ? pos : nchunks - 1 - pos) != chunk) continue;
      const int64_t j0 = kb * kBwdBk, nk = std::min(kBwdBk, Tk - j0), ncv = (nk + W - 1) / W;
      zero_n(dK, nk * dp);
      zero_n(dV, nk * dvp);
      const int64_t istart = a.causal ? std::clamp<int64_t>(j0 - a.causal_offset, 0, Tq) : 0;
      const int64_t iend = a.query_end(j0, nk);
      if (istart < iend) {
        transpose_rows(a.k.row(b, hk, j0), a.k.ld, nk, D, kts[s].data(), kBwdBk, ncv * W);
        transpose_rows(a.v.row(b, hk, j0), a.v.ld, nk, Dv, vts[s].data(), kBwdBk, ncv * W);
      }
      const T* kt = kts[s].data();
      const T* vt = vts[s].data();
      const T* kr = istart < iend ? gemm_rows(a.k.row(b, hk, j0), a.k.ld, nk, D, dp, krs[s].data()) : nullptr;
      for (int64_t g = 0; g < G; g++)
      for (int64_t i0 = istart; i0 < iend; i0 += kBwdBq) {
        const int64_t h = hk * G + g, bh = b * H + h;
        T* dQ = dQg + g * per_bh;
        const int64_t nq = std::min(kBwdBq, iend - i0);
        const T* qr = gemm_rows(a.q.row(b, h, i0), a.q.ld, nq, D, dp, qrs[s].data());
        const T* dor = gemm_rows(dout.row(b, h, i0), dout.ld, nq, Dv, dvp, dos[s].data());
        // P = exp(scores − lse), 0 for rows with nothing to attend
        gemm(false, P, kBwdBk, qr, dp, 1, kt, kBwdBk, nq, ncv, D);
        for (int64_t i = 0; i < nq; i++) {
          T* row = P + i * kBwdBk;
          const T L = lse[bh * Tq + i0 + i];
          dead[i] = L == -kInf<T>;
          if (dead[i]) {
            zero_n(row, ncv * W);
            continue;
          }
          a.template scores<true>(row, b, h, i0 + i, j0, nk, L);
        }
        // dP = dO·Vᵀ
        gemm(false, dS, kBwdBk, dor, dvp, 1, vt, kBwdBk, nq, ncv, Dv);
        // dS = P∘(dP∘Z − D)·scale, then P ∘= Z
        const V vs = V::set1(a.scale);
        for (int64_t i = 0; i < nq; i++) {
          T* ds = dS + i * kBwdBk;
          T* pr = P + i * kBwdBk;
          if (dead[i]) {
            zero_n(ds, ncv * W);
            continue;
          }
          const V di = V::set1(delta[bh * Tq + i0 + i]);
          if (a.threshold) {
            T* z = Zs[s].data() + i * kBwdBk;
            a.dropout_factors(z, words[s].data(), uint64_t((bh * Tq + i0 + i) * Tk + j0), nk);
            for (int64_t c = 0; c < ncv * W; c += W) {
              const V p = V::load(pr + c), zc = V::load(z + c);
              (p * (V::load(ds + c) * zc - di) * vs).store(ds + c);
              (p * zc).store(pr + c);
            }
          } else {
            for (int64_t c = 0; c < ncv * W; c += W) (V::load(pr + c) * (V::load(ds + c) - di) * vs).store(ds + c);
          }
        }
        // dV += (P∘Z)ᵀ·dO, dK += dSᵀ·Q, dQ += dS·K
        gemm(true, dV, dvp, P, 1, kBwdBk, dor, dvp, nk, dvp / W, nq);
        gemm(true, dK, dp, dS, 1, kBwdBk, qr, dp, nk, dp / W, nq);
        gemm(true, dQ + i0 * dp, dp, dS, kBwdBk, 1, kr, dp, nq, dp / W, nk);
      }
      for (int64_t r = 0; r < nk; r++) {
        copy_n(dk.row(b, hk, j0 + r), dK + r * dp, D);
        copy_n(dv.row(b, hk, j0 + r), dV + r * dvp, Dv);
      }
    }
    if (nchunks == 1)
      for (int64_t g = 0; g < G; g++)
        for (int64_t t = 0; t < Tq; t++) copy_n(dq.row(b, hk * G + g, t), dQg + g * per_bh + t * dp, D);
  });
  if (nchunks == 1) return;
  // dq = Σ over the chunks' buffers, in chunk order
  parallel_for(BH * Tq, row_grain(D * nchunks), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t bh = r / Tq, t = r % Tq, b = bh / H, h = bh % H;
      T* o = dq.row(b, h, t);
      // item (b·Hk + h / G)·nchunks + chunk, head h % G of its G
      const T* src = partial.data() + (b * a.Hk + h / G) * nchunks * per_item + (h % G) * per_bh + t * dp;
      int64_t c = 0;
      for (; c < D; c += W) {
        V acc = V::load(src + c);
        for (int64_t k = 1; k < nchunks; k++) acc = acc + V::load(src + k * per_item + c);
        if (c + W <= D)
          acc.store(o + c);
        else
          acc.store_n(o + c, int(D - c));
      }
    }
  });
}

void attention(const AttentionArgs& a) {
  if (a.q.dtype == F64)
    forward<double>(a);
  else
    forward<float>(a);
}

void attention_backward(const AttentionBackwardArgs& a) {
  if (a.q.dtype == F64)
    backward<double>(a);
  else
    backward<float>(a);
}

}  // namespace

void add_attention(Table& t) {
  t.attention = attention;
  t.attention_backward = attention_backward;
}

}  // namespace KILN_ISA
}  // namespace kiln
