// Backend.crossEntropy (with label smoothing and an ignored index) and its backward. Semantics
// and the shared pieces of the nn kernels: nn_common.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "faults.h"
#include "isa.h"
#include "nn_common.h"
#include "nn_rows.h"
#include "nn_simd.h"

namespace kiln {
namespace KILN_ISA {
namespace {

// ---- cross-entropy --------------------------------------------------------------------------
//
// A target that is neither ignore_index nor in [0, classes) is never used as an index: its row's
// loss is NaN (forward) or its dlogits are 0 (backward), and the kernel returns the fault of the
// first such row.

// What a row's target says: ignore the row, a bad target (a fault), or a class.
enum class Target { kIgnore, kBad, kClass };
inline Target target_kind(int64_t t, int64_t classes, int64_t ignore_index) {
  if (t == ignore_index) return Target::kIgnore;
  return uint64_t(t) < uint64_t(classes) ? Target::kClass : Target::kBad;
}

Fault target_fault(const FirstBad& first, const int32_t* targets, int64_t classes) {
  if (!first.any()) return kNoFault;
  return Fault{FAULT_TARGET, double(targets[first.pos()]), classes};
}

// loss = lse − (1−ε)·x[t] − ε/C·Σ_c x[c] (0 where t == ignore_index); lse is written for every
// row. The per-row scalars are combined in f64, as ref.
template <typename T>
Fault cross_entropy_t(const T* logits, const int32_t* targets, T* loss, T* lse, int64_t rows, int64_t classes,
                      int64_t ignore_index, double smoothing) {
  FirstBad first;
  parallel_for(rows, row_grain(classes), [&](int64_t r0, int64_t r1) {
    int64_t bad = FirstBad::kNone;
    for (int64_t r = r0; r < r1; r++) {
      const T* x = logits + r * classes;
      const double z = log_sum_exp(x, classes);
      lse[r] = T(z);
      const int64_t t = targets[r];
      switch (target_kind(t, classes, ignore_index)) {
        case Target::kIgnore: loss[r] = 0; continue;
        case Target::kBad:
          loss[r] = std::numeric_limits<T>::quiet_NaN();
          bad = std::min(bad, r);
          continue;
        case Target::kClass: break;
      }
      const double sum = smoothing > 0 ? double(row_sum(x, classes)) : 0.0;
      loss[r] = T(z - (1 - smoothing) * double(x[t]) - (smoothing / double(classes)) * sum);
    }
    if (bad != FirstBad::kNone) first.note(bad);
  });
  return target_fault(first, targets, classes);
}

Fault cross_entropy(const CrossEntropyArgs& a) {
  const int32_t* targets = static_cast<const int32_t*>(a.targets.data);
  if (a.logits.dtype == F64)
    return cross_entropy_t(static_cast<const double*>(a.logits.data), targets, static_cast<double*>(a.loss.data),
                           static_cast<double*>(a.lse.data), a.rows, a.classes, a.ignore_index, a.smoothing);
  return cross_entropy_t(static_cast<const float*>(a.logits.data), targets, static_cast<float*>(a.loss.data),
                         static_cast<float*>(a.lse.data), a.rows, a.classes, a.ignore_index, a.smoothing);
}

// dlogits = dloss[r]·(exp(x − lse) − (1−ε)·[c = t] − ε/C), zero rows where ignored.
template <typename T>
Fault cross_entropy_backward_t(const T* logits, const int32_t* targets, const T* lse, const T* dloss, T* dlogits,
                               int64_t rows, int64_t classes, int64_t ignore_index, double smoothing) {
  using V = Vec<T>;
  constexpr int W = V::W;
  FirstBad first;
  parallel_for(rows, row_grain(classes), [&](int64_t r0, int64_t r1) {
    int64_t bad = FirstBad::kNone;
    for (int64_t r = r0; r < r1; r++) {
      const T* x = logits + r * classes;
      T* d = dlogits + r * classes;
      const int64_t t = targets[r];
      const Target kind = target_kind(t, classes, ignore_index);
      if (kind != Target::kClass) {
        if (kind == Target::kBad) bad = std::min(bad, r);
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
    if (bad != FirstBad::kNone) first.note(bad);
  });
  return target_fault(first, targets, classes);
}

Fault cross_entropy_backward(const CrossEntropyBackwardArgs& a) {
  const int32_t* targets = static_cast<const int32_t*>(a.targets.data);
  if (a.logits.dtype == F64)
    return cross_entropy_backward_t(static_cast<const double*>(a.logits.data), targets, static_cast<const double*>(a.lse.data),
                                    static_cast<const double*>(a.dloss.data), static_cast<double*>(a.dlogits.data), a.rows,
                                    a.classes, a.ignore_index, a.smoothing);
  return cross_entropy_backward_t(static_cast<const float*>(a.logits.data), targets, static_cast<const float*>(a.lse.data),
                                  static_cast<const float*>(a.dloss.data), static_cast<float*>(a.dlogits.data), a.rows,
                                  a.classes, a.ignore_index, a.smoothing);
}

}  // namespace

void add_cross_entropy(Table& t) {
  t.cross_entropy = cross_entropy;
  t.cross_entropy_backward = cross_entropy_backward;
}

}  // namespace KILN_ISA
}  // namespace kiln
