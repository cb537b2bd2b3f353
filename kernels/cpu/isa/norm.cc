// Backend.layerNorm (and RMS norm) and its backward. Semantics and the shared pieces of the nn
// kernels: nn_common.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "isa.h"
#include "nn_common.h"
#include "nn_rows.h"
#include "nn_simd.h"

namespace kiln {
namespace KILN_ISA {
namespace {

// ---- layer norm -----------------------------------------------------------------------------

// y = (x − μ)·rstd·w + b, rstd = 1/√(var + eps), var = mean((x − μ)²) (biased); with rms, μ = 0
// and `mean` is not written.
// With res (and sum): the row normalized is x + res, written to sum first and read back from cache.
template <typename T>
void layer_norm_t(const T* x, const T* w, const T* b, T* out, T* mean, T* rstd, int64_t rows, int64_t cols,
                  double eps, bool rms, const T* res, T* sum) {
  using V = Vec<T>;
  constexpr int W = V::W;
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = x + r * cols;
      if (res) {
        const T* rr = res + r * cols;
        T* sr = sum + r * cols;
        int64_t c = 0;
        for (; c + W <= cols; c += W) (V::load(xr + c) + V::load(rr + c)).store(sr + c);
        for (; c < cols; c++) sr[c] = xr[c] + rr[c];
        xr = sr;
      }
      T* yr = out + r * cols;
      T m = 0;
      if (!rms) {
        m = row_sum(xr, cols) / T(cols);
        mean[r] = m;
      }
      const V vm = V::set1(m);
      V acc = V::set1(0);
      int64_t c = 0;
      for (; c + W <= cols; c += W) {
        V d = V::load(xr + c) - vm;
        acc = V::fma(d, d, acc);
      }
      if (c < cols) {
        // the tail's missing lanes load as m, so they add 0
        V d = V::load_n(xr + c, int(cols - c), m) - vm;
        acc = V::fma(d, d, acc);
      }
      const double var = double(V::hsum(acc)) / double(cols);
      const T s = T(1.0 / std::sqrt(var + eps));
      rstd[r] = s;
      const V vs = V::set1(s);
      auto norm = [&](V xv, int64_t c0, int n) {
        V y = (xv - vm) * vs;
        if (w) y = y * (n == W ? V::load(w + c0) : V::load_n(w + c0, n, 0));
        if (b) y = y + (n == W ? V::load(b + c0) : V::load_n(b + c0, n, 0));
        return y;
      };
      for (c = 0; c + W <= cols; c += W) norm(V::load(xr + c), c, W).store(yr + c);
      if (c < cols) norm(V::load_n(xr + c, int(cols - c), 0), c, int(cols - c)).store_n(yr + c, int(cols - c));
    }
  });
}

template <typename T>
void layer_norm_as(const LayerNormArgs& a) {
  layer_norm_t(static_cast<const T*>(a.x.data), static_cast<const T*>(a.weight.data), static_cast<const T*>(a.bias.data),
               static_cast<T*>(a.out.data), static_cast<T*>(a.mean.data), static_cast<T*>(a.rstd.data), a.rows, a.cols,
               a.eps, a.rms, static_cast<const T*>(a.residual.data), static_cast<T*>(a.sum.data));
}
void layer_norm(const LayerNormArgs& a) { a.x.dtype == F64 ? layer_norm_as<double>(a) : layer_norm_as<float>(a); }

// dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = dy·w, x̂ = (x − μ)·rstd (no mean(ĝ) term for RMS);
// dw = Σ_rows dy·x̂, db = Σ_rows dy. Rows are handed out in chunks of at most 64 to a few
// workers; each sums its chunk's dw/db in T, adds that into its own f64 totals, and the totals
// of the workers are added at the end (no races, and no long f32 sums).
template <typename T>
void layer_norm_backward_t(const T* dy, const T* x, const T* w, const T* mean, const T* rstd, T* dx, T* dw, T* db,
                           int64_t rows, int64_t cols, bool rms) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const bool want_params = dw || db;

  // One row: dx, and (when given) dy·x̂ and dy added into pw / pb.
  auto row = [&](int64_t r, T* pw, T* pb) {
    const T* g = dy + r * cols;
    const T* xr = x + r * cols;
    T* d = dx + r * cols;
    const V vm = V::set1(rms ? T(0) : mean[r]);
    const V vs = V::set1(rstd[r]);
    V sg = V::set1(0), sgx = V::set1(0);
    int64_t c = 0;
    for (; c < cols; c += W) {
      const int n = int(std::min<int64_t>(W, cols - c));
      const bool full = n == W;
      V gv = full ? V::load(g + c) : V::load_n(g + c, n, 0);
      V xh = ((full ? V::load(xr + c) : V::load_n(xr + c, n, 0)) - vm) * vs;
      V gh = w ? gv * (full ? V::load(w + c) : V::load_n(w + c, n, 0)) : gv;
      sg = sg + gh;
      sgx = V::fma(gh, xh, sgx);  // zero-padded g keeps the tail lanes at 0
      if (pw) {
        V a = V::fma(gv, xh, full ? V::load(pw + c) : V::load_n(pw + c, n, 0));
        full ? a.store(pw + c) : a.store_n(pw + c, n);
      }
      if (pb) {
        V a = gv + (full ? V::load(pb + c) : V::load_n(pb + c, n, 0));
        full ? a.store(pb + c) : a.store_n(pb + c, n);
      }
    }
    const V mg = V::set1(rms ? T(0) : V::hsum(sg) / T(cols));
    const V mgx = V::set1(V::hsum(sgx) / T(cols));
    for (c = 0; c < cols; c += W) {
      const int n = int(std::min<int64_t>(W, cols - c));
      const bool full = n == W;
      V gv = full ? V::load(g + c) : V::load_n(g + c, n, 0);
      V xh = ((full ? V::load(xr + c) : V::load_n(xr + c, n, 0)) - vm) * vs;
      V gh = w ? gv * (full ? V::load(w + c) : V::load_n(w + c, n, 0)) : gv;
      V out = vs * ((gh - mg) - xh * mgx);
      full ? out.store(d + c) : out.store_n(d + c, n);
    }
  };

  if (!want_params) {
    parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) row(r, nullptr, nullptr);
    });
    return;
  }

  // ≤ 64 rows per chunk bounds the f32 sums; ≥ 4 chunks per thread balances the load
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(64, rows / (4 * int64_t(num_threads()))));
  const int64_t nchunks = (rows + chunk - 1) / chunk;
  const int64_t work_chunks = (rows * cols + kRowGrainElems - 1) / kRowGrainElems;
  const int64_t nslots = std::max<int64_t>(1, std::min<int64_t>({int64_t(num_threads()), nchunks, work_chunks}));
  std::vector<std::vector<double>> tw(nslots), tb(nslots);  // f64 totals per worker
  std::vector<Scratch<T>> pw, pb;                                 // one chunk's sums per worker
  for (int64_t s = 0; s < nslots; s++) {
    if (dw) tw[s].assign(size_t(cols), 0.0), pw.emplace_back(size_t(cols));
    if (db) tb[s].assign(size_t(cols), 0.0), pb.emplace_back(size_t(cols));
  }
  for_each_item(nslots, nchunks, [&](int64_t s, int64_t ch) {
    T* w1 = dw ? pw[s].data() : nullptr;
    T* b1 = db ? pb[s].data() : nullptr;
    if (dw) pw[s].zero();
    if (db) pb[s].zero();
    const int64_t r1 = std::min(rows, (ch + 1) * chunk);
    for (int64_t r = ch * chunk; r < r1; r++) row(r, w1, b1);
    if (dw)
      for (int64_t c = 0; c < cols; c++) tw[s][c] += w1[c];
    if (db)
      for (int64_t c = 0; c < cols; c++) tb[s][c] += b1[c];
  });
  for (int64_t c = 0; c < cols; c++) {
    double a = 0, bsum = 0;
    for (int64_t s = 0; s < nslots; s++) {
      if (dw) a += tw[s][c];
      if (db) bsum += tb[s][c];
    }
    if (dw) dw[c] = T(a);
    if (db) db[c] = T(bsum);
  }
}

template <typename T>
void layer_norm_backward_as(const LayerNormBackwardArgs& a) {
  layer_norm_backward_t(static_cast<const T*>(a.dy.data), static_cast<const T*>(a.x.data), static_cast<const T*>(a.weight.data),
                        static_cast<const T*>(a.mean.data), static_cast<const T*>(a.rstd.data), static_cast<T*>(a.dx.data),
                        static_cast<T*>(a.d_weight.data), static_cast<T*>(a.d_bias.data), a.rows, a.cols, a.rms);
}
void layer_norm_backward(const LayerNormBackwardArgs& a) {
  a.x.dtype == F64 ? layer_norm_backward_as<double>(a) : layer_norm_backward_as<float>(a);
}

}  // namespace

void add_norm(Table& t) {
  t.layer_norm = layer_norm;
  t.layer_norm_backward = layer_norm_backward;
}

}  // namespace KILN_ISA
}  // namespace kiln
