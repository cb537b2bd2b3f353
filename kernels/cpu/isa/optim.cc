// Fused optimizer updates (Backend.adamUpdate, Backend.lambUpdate): one pass over a
// parameter's storage per step (two for LAMB, whose trust ratio needs both norms first).
// Arithmetic is in double and the moments are read back after rounding to their storage type,
// exactly as the reference backend does, so results match it bit for bit.
#include <cmath>
#include <vector>

#include "isa.h"

namespace kiln {
namespace KILN_ISA {
namespace {

template <typename T>
void adam(const OptimizerParams& a) {
  T* p = static_cast<T*>(a.param);
  const T* g = static_cast<const T*>(a.grad);
  T* m = static_cast<T*>(a.m);
  T* v = static_cast<T*>(a.v);
  const double bc1 = 1 - std::pow(a.beta1, double(a.step));
  const double bc2 = 1 - std::pow(a.beta2, double(a.step));
  parallel_for(a.n, 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      double w = p[i];
      double gi = g[i];
      if (a.decoupled)
        w -= a.lr * a.weight_decay * w;  // AdamW: p ← p − lr·λ·p
      else
        gi += a.weight_decay * w;  // Adam: g ← g + λ·p
      m[i] = T(a.beta1 * double(m[i]) + (1 - a.beta1) * gi);       // m_t = β1·m + (1−β1)·g
      v[i] = T(a.beta2 * double(v[i]) + (1 - a.beta2) * gi * gi);  // v_t = β2·v + (1−β2)·g²
      // p ← p − lr·m̂/(√v̂ + ε)
      p[i] = T(w - (a.lr * (double(m[i]) / bc1)) / (std::sqrt(double(v[i]) / bc2) + a.eps));
    }
  });
}

template <typename T>
double lamb(const OptimizerParams& a) {
  T* p = static_cast<T*>(a.param);
  const T* g = static_cast<const T*>(a.grad);
  T* m = static_cast<T*>(a.m);
  T* v = static_cast<T*>(a.v);
  const double bc1 = a.bias_correction ? 1 - std::pow(a.beta1, double(a.step)) : 1;
  const double bc2 = a.bias_correction ? 1 - std::pow(a.beta2, double(a.step)) : 1;
  auto update = [&](int64_t i) {  // r = m̂/(√v̂ + ε) + λ·p, from the stored moments
    return double(m[i]) / bc1 / (std::sqrt(double(v[i]) / bc2) + a.eps) + a.weight_decay * double(p[i]);
  };
  // pass 1: moments and the two squared norms, in fixed blocks summed in order (deterministic)
  const int64_t block = 1 << 14;
  const int64_t blocks = (a.n + block - 1) / block;
  std::vector<double> w2(blocks), r2(blocks);
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bk = b0; bk < b1; bk++) {
      double sw = 0, sr = 0;
      for (int64_t i = bk * block, end = std::min(a.n, i + block); i < end; i++) {
        double gi = g[i];
        m[i] = T(a.beta1 * double(m[i]) + (1 - a.beta1) * gi);
        v[i] = T(a.beta2 * double(v[i]) + (1 - a.beta2) * gi * gi);
        double r = update(i);
        sw += double(p[i]) * double(p[i]);
        sr += r * r;
      }
      w2[bk] = sw;
      r2[bk] = sr;
    }
  });
  double wn = 0, rn = 0;
  for (int64_t bk = 0; bk < blocks; bk++) {
    wn += w2[bk];
    rn += r2[bk];
  }
  wn = std::sqrt(wn);
  rn = std::sqrt(rn);
  const double trust = wn > 0 && rn > 0 ? wn / rn : 1;  // φ = ‖p‖/‖r‖
  // pass 2: p ← p − lr·φ·r
  parallel_for(a.n, 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) p[i] = T(double(p[i]) - a.lr * trust * update(i));
  });
  return trust;
}

void adam_update(const OptimizerParams& a) {
  if (a.dtype == F64)
    adam<double>(a);
  else
    adam<float>(a);
}

double lamb_update(const OptimizerParams& a) { return a.dtype == F64 ? lamb<double>(a) : lamb<float>(a); }

}  // namespace

void add_optim(Table& t) {
  t.adam_update = adam_update;
  t.lamb_update = lamb_update;
}

}  // namespace KILN_ISA
}  // namespace kiln
