// Backend.attention and its backward, flash-style: tiles over queries and keys with an online
// softmax, never allocating a Tq×Tk matrix. Semantics and the shared pieces of the nn kernels:
// nn_common.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "isa.h"
#include "nn_common.h"
#include "nn_simd.h"

namespace kiln {
namespace KILN_ISA {
namespace {

// ---- attention: a small GEMM ----------------------------------------------------------------
//
// C[m × ncv·W] (+)= A[m × kp] · B[kp × ncv·W]: C is overwritten, or added to when `add`. A is
// read as A[r·ars + p·aps] (so Aᵀ is A with the strides swapped), B rows ldb apart, C rows ldc
// apart. The micro-kernel keeps an R × NC block
// of vectors of C in registers and streams p: per step NC vector loads of B, R broadcasts of A
// and R·NC fused multiply-adds. Callers keep B and C rows padded to whole vectors.
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

// ---- attention: shared pieces ---------------------------------------------------------------

// Tile sizes (multiples of every W). The forward's longer key tiles halve the per-row softmax
// bookkeeping per score; the backward's key blocks stay short so causal diagonals waste less.
constexpr int64_t kFwdBq = 64, kFwdBk = 128;  // forward: queries per block, keys per tile
constexpr int64_t kBwdBq = 64, kBwdBk = 64;   // backward: queries per tile, keys per block

// The attention arguments as typed pointers, and the score computation shared by the forward
// and the backward.
//
// Operand layouts, prepared once per call (O(B·T·D) memory): kt [B][D][tkp] is K transposed
// (keys along rows, zero-padded to whole vectors) so that q·kᵀ streams whole vectors of keys
// (the backward's vt is V likewise); the GEMMs' row-major B-sides (Rows<T>) are the tensors
// themselves, or copies padded to whole vectors when D (or Dv) is not a multiple of W.
template <typename T>
struct Attn {
  static constexpr int W = Vec<T>::W;
  const T* q;
  const T* k;
  const T* v;
  const T* fmask = nullptr;
  const uint8_t* bmask = nullptr;
  int64_t mbs;
  int64_t B, Tq, Tk, D, Dv;
  T scale;
  bool causal;
  int64_t tkp, dp, dvp;

  explicit Attn(const AttentionParams& p)
      : q(static_cast<const T*>(p.q)),
        k(static_cast<const T*>(p.k)),
        v(static_cast<const T*>(p.v)),
        mbs(p.mask_batch_stride),
        B(p.batch),
        Tq(p.tq),
        Tk(p.tk),
        D(p.d),
        Dv(p.dv),
        scale(T(p.scale)),
        causal(p.causal),
        tkp(round_up(p.tk, W)),
        dp(round_up(p.d, W)),
        dvp(round_up(p.dv, W)) {
    if (p.mask) {
      if (p.mask_bool)
        bmask = static_cast<const uint8_t*>(p.mask);
      else
        fmask = static_cast<const T*>(p.mask);
    }
  }

  // Scores of query gi against keys j0..j0+nk in `row` (which holds q·kᵀ on entry and has room
  // for whole vectors, round_up(nk, W)): s·scale (+ float mask), −∞ where the bool mask is
  // false, where causal masking hides the key (j > gi), and in the padding lanes past nk.
  // Forward (kExp = false) returns the row's max; backward (kExp = true) stores
  // P = exp(s − lse) instead of s.
  template <bool kExp>
  T scores(T* row, int64_t b, int64_t gi, int64_t j0, int64_t nk, T lse = 0) const {
    using V = Vec<T>;
    const V vs = V::set1(scale), ninf = V::set1(-kInf<T>), vl = V::set1(lse);
    const T* fm = fmask ? fmask + b * mbs + gi * Tk + j0 : nullptr;
    const uint8_t* bm = bmask ? bmask + b * mbs + gi * Tk + j0 : nullptr;
    // columns ≥ visible are hidden (causal or padding)
    const int64_t visible = causal ? std::min(nk, std::max<int64_t>(0, gi - j0 + 1)) : nk;
    const int64_t end = round_up(nk, W);
    V vmax = ninf;
    for (int64_t c = 0; c < end; c += W) {
      const int64_t lim = visible - c;
      if (lim <= 0) {
        (kExp ? V::set1(0) : ninf).store(row + c);
        continue;
      }
      const int n = int(std::min<int64_t>(W, nk - c));  // in-bounds mask columns
      V s = V::load(row + c) * vs;
      if (fm) s = s + (n == W ? V::load(fm + c) : V::load_n(fm + c, n, 0));
      if (bm) {
        uint8_t tail[W] = {};
        const uint8_t* src = bm + c;
        if (n < W) {
          std::memcpy(tail, src, size_t(n));
          src = tail;
        }
        s = V::select(V::nonzero_bytes(src), s, ninf);
      }
      if (lim < W) s = V::select(V::first_n(int(lim)), s, ninf);
      if constexpr (kExp) {
        vexp(s - vl).store(row + c);
      } else {
        s.store(row + c);
        vmax = V::max(s, vmax);
      }
    }
    return V::hmax(vmax);
  }
};

// whether x[0..n) holds a NaN
template <typename T>
bool has_nan(const T* x, int64_t n) {
  for (int64_t c = 0; c < n; c++)
    if (x[c] != x[c]) return true;
  return false;
}

// row[0..n) = exp(row − m) (n a multiple of W); returns the sum
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

// dst[b][c][j] = src[b][j][c] for j < rows, 0 for rows ≤ j < ld
template <typename T>
void transpose_pad(const T* src, T* dst, int64_t batch, int64_t rows, int64_t cols, int64_t ld) {
  const int64_t blocks = (ld + 63) / 64;
  parallel_for(batch * blocks, std::max<int64_t>(1, kRowGrainElems / std::max<int64_t>(64 * cols, 1)),
               [&](int64_t i0, int64_t i1) {
                 for (int64_t i = i0; i < i1; i++) {
                   const int64_t b = i / blocks, j0 = (i % blocks) * 64, j1 = std::min(ld, j0 + 64);
                   // a 64-key block: contiguous writes along each output row, reads from 64 rows
                   for (int64_t c = 0; c < cols; c++)
                     for (int64_t j = j0; j < j1; j++)
                       dst[(b * cols + c) * ld + j] = j < rows ? src[(b * rows + j) * cols + c] : T(0);
                 }
               });
}

// rows of `cols` copied to rows of `ld` ≥ cols, zero-padded
template <typename T>
void pad_rows(const T* src, T* dst, int64_t rows, int64_t cols, int64_t ld) {
  parallel_for(rows, row_grain(ld), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      copy_n(dst + r * ld, src + r * cols, cols);
      zero_n(dst + r * ld + cols, ld - cols);
    }
  });
}

// A row-major operand [rows][cols] with rows a whole number of vectors apart: the tensor itself
// when cols is a multiple of W, else a padded copy.
template <typename T>
struct Rows {
  Buf<T> copy;
  const T* p;
  int64_t ld;
  Rows(const T* src, int64_t rows, int64_t cols) {
    const int64_t W = Vec<T>::W;
    if (cols % W == 0) {
      p = src;
      ld = cols;
    } else {
      ld = round_up(cols, W);
      copy.reset(size_t(rows * ld));
      pad_rows(src, copy.data(), rows, cols, ld);
      p = copy.data();
    }
  }
};

// Workers for an attention call of about `work` multiply-adds: one below a few hundred
// thousand (where waking the pool costs more than it saves), else every thread.
inline int64_t attention_workers(int64_t work) { return work < 4 * 65536 ? 1 : std::max(1, num_threads()); }

// ---- attention forward ----------------------------------------------------------------------
//
// Per (batch, block of kFwdBq queries): running max m, running sum l and the accumulator
// acc = Σ_j exp(s_j − m)·v_j. Each tile of kFwdBk keys: S = q·kᵀ (GEMM), scale and mask, new max
// m' = max(m, max S), rescale l and acc by exp(m − m'), P = exp(S − m'), l += Σ P, acc += P·V
// (GEMM). Finally out = acc / l and lse = m + log l; a row with nothing to attend (m = −∞)
// gets out = 0 and lse = −∞, as ref. With causal masking, key tiles past the block's last
// query are never visited.
template <typename T>
void attention_t(const AttentionParams& prm, T* out, T* lse) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const Attn<T> a(prm);
  const int64_t B = a.B, Tq = a.Tq, Tk = a.Tk, D = a.D, Dv = a.Dv, dvp = a.dvp, tkp = a.tkp;
  if (B == 0 || Tq == 0) return;

  Buf<T> kt(size_t(B * D * tkp));
  transpose_pad(a.k, kt.data(), B, Tk, D, tkp);
  const Rows<T> vr(a.v, B * Tk, Dv);

  const int64_t nqb = (Tq + kFwdBq - 1) / kFwdBq;
  const int64_t nitems = B * nqb;
  const int64_t nslots = std::min(attention_workers(B * Tq * Tk * (D + Dv + 1)), nitems);
  std::vector<Buf<T>> Ss, accs;
  for (int64_t s = 0; s < nslots; s++) Ss.emplace_back(size_t(kFwdBq * kFwdBk)), accs.emplace_back(size_t(kFwdBq * dvp));
  for_each_item(nslots, nitems, [&](int64_t s, int64_t it) {
    Buf<T>& S = Ss[s];
    Buf<T>& acc = accs[s];
    T m[kFwdBq], l[kFwdBq];
    const int64_t b = it / nqb;
    const int64_t qb = nqb - 1 - it % nqb;  // the last blocks (most work when causal) first
    const int64_t i0 = qb * kFwdBq, nq = std::min(kFwdBq, Tq - i0);
    acc.zero();
    for (int64_t i = 0; i < nq; i++) m[i] = -kInf<T>, l[i] = 0;
    const int64_t kend = a.causal ? std::min(Tk, i0 + nq) : Tk;
    for (int64_t j0 = 0; j0 < kend; j0 += kFwdBk) {
      const int64_t nk = std::min(kFwdBk, kend - j0), ncv = (nk + W - 1) / W;
      gemm(false, S.data(), kFwdBk, a.q + (b * Tq + i0) * D, D, 1, kt.data() + b * D * tkp + j0, tkp, nq, ncv, D);
      for (int64_t i = 0; i < nq; i++) {
        T* row = S.data() + i * kFwdBk;
        const T mt = a.template scores<false>(row, b, i0 + i, j0, nk);
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
          T* ar = acc.data() + i * dvp;
          const V va = V::set1(alpha);
          for (int64_t c = 0; c < dvp; c += W) (V::load(ar + c) * va).store(ar + c);
        }
        m[i] = mnew;
      }
      gemm(true, acc.data(), dvp, S.data(), kFwdBk, 1, vr.p + (b * Tk + j0) * vr.ld, vr.ld, nq, dvp / W, nk);
    }
    for (int64_t i = 0; i < nq; i++) {
      const int64_t gi = b * Tq + i0 + i;
      T* o = out + gi * Dv;
      if (m[i] == -kInf<T>) {
        zero_n(o, Dv);
        lse[gi] = -kInf<T>;
        continue;
      }
      const V inv = V::set1(T(1) / l[i]);
      const T* ar = acc.data() + i * dvp;
      int64_t c = 0;
      for (; c + W <= Dv; c += W) (V::load(ar + c) * inv).store(o + c);
      if (c < Dv) (V::load(ar + c) * inv).store_n(o + c, int(Dv - c));
      lse[gi] = m[i] == kInf<T> ? kInf<T> : T(double(m[i]) + std::log(double(l[i])));
    }
  });
}

void attention(const AttentionParams& p, void* out, void* lse) {
  if (p.dtype == F64)
    attention_t<double>(p, static_cast<double*>(out), static_cast<double*>(lse));
  else
    attention_t<float>(p, static_cast<float*>(out), static_cast<float*>(lse));
}

// ---- attention backward ---------------------------------------------------------------------
//
// FlashAttention-2: with Dᵢ = dOᵢ·Oᵢ and Pᵢⱼ = exp(sᵢⱼ − lseᵢ) recomputed tile by tile,
//   dV += Pᵀ·dO,  dP = dO·Vᵀ,  dS = P∘(dP − D)·scale,  dK += dSᵀ·Q,  dQ += dS·K.
// Work items are (batch, block of kBwdBk keys): each owns its rows of dK and dV outright and walks
// every query tile that can see its keys (with causal masking, queries from the block's first
// key on). dQ gets contributions from every key block, so each worker adds into its own dQ
// buffer and the buffers are summed at the end; batches are processed in groups so that those
// buffers stay near 2²⁰ elements (O(T·D) per worker, never O(T²)).
template <typename T>
void attention_backward_t(const AttentionParams& prm, const T* out, const T* lse, const T* dout, T* dq, T* dk, T* dv) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const Attn<T> a(prm);
  const int64_t B = a.B, Tq = a.Tq, Tk = a.Tk, D = a.D, Dv = a.Dv, dp = a.dp, dvp = a.dvp, tkp = a.tkp;
  if (B == 0) return;
  if (Tk == 0) {
    zero_n(dq, B * Tq * D);
    return;
  }

  // Dᵢ = dOᵢ·Oᵢ
  Buf<T> delta(size_t(B * Tq));
  parallel_for(B * Tq, row_grain(Dv), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* g = dout + r * Dv;
      const T* o = out + r * Dv;
      V s = V::set1(0);
      int64_t c = 0;
      for (; c + W <= Dv; c += W) s = V::fma(V::load(g + c), V::load(o + c), s);
      if (c < Dv) s = V::fma(V::load_n(g + c, int(Dv - c), 0), V::load_n(o + c, int(Dv - c), 0), s);
      delta[r] = V::hsum(s);
    }
  });
  Buf<T> kt(size_t(B * D * tkp)), vt(size_t(B * Dv * tkp));
  transpose_pad(a.k, kt.data(), B, Tk, D, tkp);
  transpose_pad(a.v, vt.data(), B, Tk, Dv, tkp);
  const Rows<T> qr(a.q, B * Tq, D), kr(a.k, B * Tk, D), dor(dout, B * Tq, Dv);

  const int64_t nkb = (Tk + kBwdBk - 1) / kBwdBk;
  const int64_t per_batch = Tq * dp;
  const int64_t group = std::max<int64_t>(1, std::min<int64_t>(B, (int64_t(1) << 20) / std::max<int64_t>(per_batch, 1)));
  const int64_t nslots = std::min(attention_workers(B * std::max<int64_t>(Tq, 1) * Tk * (D + Dv + 1)), group * nkb);
  // per worker: its dQ buffer and the tiles of one work item
  std::vector<Buf<T>> dqs, Ps, dSs, dKs, dVs;
  for (int64_t s = 0; s < nslots; s++) {
    dqs.emplace_back(size_t(group * per_batch));
    Ps.emplace_back(size_t(kBwdBq * kBwdBk));
    dSs.emplace_back(size_t(kBwdBq * kBwdBk));
    dKs.emplace_back(size_t(kBwdBk * dp));
    dVs.emplace_back(size_t(kBwdBk * dvp));
  }

  for (int64_t g0 = 0; g0 < B; g0 += group) {
    const int64_t gn = std::min(group, B - g0);
    const int64_t nitems = gn * nkb;
    std::vector<char> used(size_t(nslots), 0);
    for_each_item(nslots, nitems, [&](int64_t s, int64_t it) {
      Buf<T>& P = Ps[s];
      Buf<T>& dS = dSs[s];
      Buf<T>& dK = dKs[s];
      Buf<T>& dV = dVs[s];
      bool dead[kBwdBq];
      if (!used[s]) {
        dqs[s].zero();
        used[s] = 1;
      }
      const int64_t b = g0 + it / nkb, j0 = (it % nkb) * kBwdBk;
      const int64_t nk = std::min(kBwdBk, Tk - j0), ncv = (nk + W - 1) / W;
      T* dqb = dqs[s].data() + (b - g0) * per_batch;
      dK.zero();
      dV.zero();
      for (int64_t i0 = a.causal ? j0 : 0; i0 < Tq; i0 += kBwdBq) {
        const int64_t nq = std::min(kBwdBq, Tq - i0);
        // P = exp(scores − lse), 0 for rows with nothing to attend
        gemm(false, P.data(), kBwdBk, a.q + (b * Tq + i0) * D, D, 1, kt.data() + b * D * tkp + j0, tkp, nq, ncv, D);
        for (int64_t i = 0; i < nq; i++) {
          T* row = P.data() + i * kBwdBk;
          const T L = lse[b * Tq + i0 + i];
          dead[i] = L == -kInf<T>;
          if (dead[i]) {
            zero_n(row, ncv * W);
            continue;
          }
          a.template scores<true>(row, b, i0 + i, j0, nk, L);
        }
        // dP = dO·Vᵀ
        gemm(false, dS.data(), kBwdBk, dout + (b * Tq + i0) * Dv, Dv, 1, vt.data() + b * Dv * tkp + j0, tkp, nq, ncv, Dv);
        // dV += Pᵀ·dO
        gemm(true, dV.data(), dvp, P.data(), 1, kBwdBk, dor.p + (b * Tq + i0) * dor.ld, dor.ld, nk, dvp / W, nq);
        // dS = P∘(dP − D)·scale
        for (int64_t i = 0; i < nq; i++) {
          T* ds = dS.data() + i * kBwdBk;
          if (dead[i]) {
            zero_n(ds, ncv * W);
            continue;
          }
          const T* pr = P.data() + i * kBwdBk;
          const V di = V::set1(delta[b * Tq + i0 + i]), vs = V::set1(a.scale);
          for (int64_t c = 0; c < ncv * W; c += W) (V::load(pr + c) * (V::load(ds + c) - di) * vs).store(ds + c);
        }
        // dK += dSᵀ·Q, dQ += dS·K
        gemm(true, dK.data(), dp, dS.data(), 1, kBwdBk, qr.p + (b * Tq + i0) * qr.ld, qr.ld, nk, dp / W, nq);
        gemm(true, dqb + i0 * dp, dp, dS.data(), kBwdBk, 1, kr.p + (b * Tk + j0) * kr.ld, kr.ld, nq, dp / W, nk);
      }
      for (int64_t r = 0; r < nk; r++) {
        copy_n(dk + (b * Tk + j0 + r) * D, dK.data() + r * dp, D);
        copy_n(dv + (b * Tk + j0 + r) * Dv, dV.data() + r * dvp, Dv);
      }
    });
    // dq = Σ over the workers' buffers
    parallel_for(gn * Tq, row_grain(D * nslots), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) {
        T* o = dq + (g0 * Tq + r) * D;
        zero_n(o, D);
        for (int64_t s = 0; s < nslots; s++) {
          if (!used[s]) continue;
          const T* src = dqs[s].data() + r * dp;
          int64_t c = 0;
          for (; c + W <= D; c += W) (V::load(o + c) + V::load(src + c)).store(o + c);
          if (c < D) (V::load_n(o + c, int(D - c), 0) + V::load(src + c)).store_n(o + c, int(D - c));
        }
      }
    });
  }
}

void attention_backward(const AttentionParams& p, const void* out, const void* lse, const void* dout, void* dq,
                        void* dk, void* dv) {
  if (p.dtype == F64)
    attention_backward_t<double>(p, static_cast<const double*>(out), static_cast<const double*>(lse),
                                 static_cast<const double*>(dout), static_cast<double*>(dq), static_cast<double*>(dk),
                                 static_cast<double*>(dv));
  else
    attention_backward_t<float>(p, static_cast<const float*>(out), static_cast<const float*>(lse),
                                static_cast<const float*>(dout), static_cast<float*>(dq), static_cast<float*>(dk),
                                static_cast<float*>(dv));
}

}  // namespace

void add_attention(Table& t) {
  t.attention = attention;
  t.attention_backward = attention_backward;
}

}  // namespace KILN_ISA
}  // namespace kiln
