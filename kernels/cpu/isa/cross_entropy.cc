// Backend.crossEntropy (with label smoothing and an ignored index) and its backward. Semantics
// and the shared pieces of the nn kernels: nn_common.h.
#include <cmath>
#include <cstdint>

#include "isa.h"
#include "nn_common.h"
#include "nn_rows.h"
#include "nn_simd.h"

namespace kiln {
namespace KILN_ISA {
namespace {

// ---- cross-entropy --------------------------------------------------------------------------

// loss = lse − (1−ε)·x[t] − ε/C·Σ_c x[c] (0 where t == ignore_index); lse is written for every
// row. The per-row scalars are combined in f64, as ref.
template <typename T>
void cross_entropy_t(const T* logits, const int32_t* targets, T* loss, T* lse, int64_t rows, int64_t classes,
                     int64_t ignore_index, double smoothing) {
  parallel_for(rows, row_grain(classes), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* x = logits + r * classes;
      const double z = log_sum_exp(x, classes);
      lse[r] = T(z);
      const int64_t t = targets[r];
      if (t == ignore_index) {
        loss[r] = 0;
        continue;
      }
      const double sum = smoothing > 0 ? double(row_sum(x, classes)) : 0.0;
      loss[r] = T(z - (1 - smoothing) * double(x[t]) - (smoothing / double(classes)) * sum);
    }
  });
}

void cross_entropy(const void* logits, const int32_t* targets, void* loss, void* lse, DType dt, int64_t rows,
                   int64_t classes, int64_t ignore_index, double smoothing) {
  if (dt == F64)
    cross_entropy_t(static_cast<const double*>(logits), targets, static_cast<double*>(loss), static_cast<double*>(lse),
                    rows, classes, ignore_index, smoothing);
  else
    cross_entropy_t(static_cast<const float*>(logits), targets, static_cast<float*>(loss), static_cast<float*>(lse),
                    rows, classes, ignore_index, smoothing);
}

// dlogits = dloss[r]·(exp(x − lse) − (1−ε)·[c = t] − ε/C), zero rows where ignored.
template <typename T>
void cross_entropy_backward_t(const T* logits, const int32_t* targets, const T* lse, const T* dloss, T* dlogits,
                              int64_t rows, int64_t classes, int64_t ignore_index, double smoothing) {
  using V = Vec<T>;
  constexpr int W = V::W;
  parallel_for(rows, row_grain(classes), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* x = logits + r * classes;
      T* d = dlogits + r * classes;
      const int64_t t = targets[r];
      if (t == ignore_index) {
        zero_n(d, classes);
        continue;
      }
      const T off = T(smoothing / double(classes));
      const V g = V::set1(dloss[r]), l = V::set1(lse[r]), vo = V::set1(off);
      int64_t c = 0;
      for (; c + W <= classes; c += W) (g * (vexp(V::load(x + c) - l) - vo)).store(d + c);
      if (c < classes) (g * (vexp(V::load_n(x + c, int(classes - c), 0) - l) - vo)).store_n(d + c, int(classes - c));
      // the target's column also subtracts 1 − ε
      const T p = T(std::exp(double(x[t]) - double(lse[r])));
      d[t] = dloss[r] * (p - T((1 - smoothing) + smoothing / double(classes)));
    }
  });
}

void cross_entropy_backward(const void* logits, const int32_t* targets, const void* lse, const void* dloss,
                            void* dlogits, DType dt, int64_t rows, int64_t classes, int64_t ignore_index,
                            double smoothing) {
  if (dt == F64)
    cross_entropy_backward_t(static_cast<const double*>(logits), targets, static_cast<const double*>(lse),
                             static_cast<const double*>(dloss), static_cast<double*>(dlogits), rows, classes,
                             ignore_index, smoothing);
  else
    cross_entropy_backward_t(static_cast<const float*>(logits), targets, static_cast<const float*>(lse),
                             static_cast<const float*>(dloss), static_cast<float*>(dlogits), rows, classes, ignore_index,
                             smoothing);
}

}  // namespace

void add_cross_entropy(Table& t) {
  t.cross_entropy = cross_entropy;
  t.cross_entropy_backward = cross_entropy_backward;
}

}  // namespace KILN_ISA
}  // namespace kiln
