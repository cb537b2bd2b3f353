// Backend.softmax (and log-softmax) over the last axis. Semantics and the shared pieces of the
// nn kernels: nn_common.h.
#include <cmath>
#include <cstdint>

#include "isa.h"
#include "nn_common.h"
#include "nn_rows.h"
#include "nn_simd.h"

namespace kiln {
namespace KILN_ISA {
namespace {

// ---- softmax --------------------------------------------------------------------------------

// out = exp(x − lse) or x − lse, lse = log Σ exp x. With a finite max m: exp(x − m)/Σ and
// (x − m) − log Σ (x − m is exact where it matters: near the max). A row whose max is ±∞ or
// NaN follows ref literally (an all −∞ row gives NaN).
template <typename T>
void softmax_row(const T* x, T* o, int64_t n, bool log) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const T m = row_max(x, n);
  if (!(std::fabs(m) < kInf<T>)) {
    const double lse = ref_log_sum_exp(x, n);
    for (int64_t c = 0; c < n; c++) {
      const double z = double(x[c]) - lse;
      o[c] = T(log ? z : std::exp(z));
    }
    return;
  }
  const V vm = V::set1(m);
  int64_t c = 0;
  if (log) {
    const V ls = V::set1(T(std::log(double(row_sum_exp(x, n, m)))));
    for (; c + W <= n; c += W) ((V::load(x + c) - vm) - ls).store(o + c);
    if (c < n) ((V::load_n(x + c, int(n - c), 0) - vm) - ls).store_n(o + c, int(n - c));
    return;
  }
  V s = V::set1(0);
  for (; c + W <= n; c += W) {
    V e = vexp(V::load(x + c) - vm);
    e.store(o + c);
    s = s + e;
  }
  if (c < n) {
    V e = vexp(V::load_n(x + c, int(n - c), -kInf<T>) - vm);
    e.store_n(o + c, int(n - c));
    s = s + e;
  }
  const V inv = V::set1(T(1) / V::hsum(s));
  for (c = 0; c + W <= n; c += W) (V::load(o + c) * inv).store(o + c);
  if (c < n) (V::load_n(o + c, int(n - c), 0) * inv).store_n(o + c, int(n - c));
}

template <typename T>
void softmax_t(const T* x, T* out, int64_t rows, int64_t cols, bool log) {
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) softmax_row(x + r * cols, out + r * cols, cols, log);
  });
}

void softmax(const SoftmaxArgs& a) {
  if (a.x.dtype == F64)
    softmax_t(static_cast<const double*>(a.x.data), static_cast<double*>(a.out.data), a.rows, a.cols, a.log);
  else
    softmax_t(static_cast<const float*>(a.x.data), static_cast<float*>(a.out.data), a.rows, a.cols, a.log);
}

}  // namespace

void add_softmax(Table& t) { t.softmax = softmax; }

}  // namespace KILN_ISA
}  // namespace kiln
