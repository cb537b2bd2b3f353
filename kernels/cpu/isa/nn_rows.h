// Row primitives of the nn kernels (softmax.cc, norm.cc, cross_entropy.cc), vectorised with
// nn::Vec: max, sum, Σ exp(x − m) and log Σ exp over a row.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "isa.h"
#include "nn_common.h"
#include "nn_simd.h"

namespace kiln {
namespace KILN_ISA {
namespace {

// max over x[0..n) (−∞ for n = 0). A NaN may or may not win: callers catch NaN rows through sums.
template <typename T>
T row_max(const T* x, int64_t n) {
  using V = Vec<T>;
  constexpr int W = V::W;
  V m = V::set1(-kInf<T>);
  int64_t c = 0;
  for (; c + W <= n; c += W) m = V::max(V::load(x + c), m);
  if (c < n) m = V::max(V::load_n(x + c, int(n - c), -kInf<T>), m);
  return V::hmax(m);
}

template <typename T>
T row_sum(const T* x, int64_t n) {
  using V = Vec<T>;
  constexpr int W = V::W;
  V s0 = V::set1(0), s1 = V::set1(0);
  int64_t c = 0;
  for (; c + 2 * W <= n; c += 2 * W) {
    s0 = s0 + V::load(x + c);
    s1 = s1 + V::load(x + c + W);
  }
  for (; c + W <= n; c += W) s0 = s0 + V::load(x + c);
  if (c < n) s0 = s0 + V::load_n(x + c, int(n - c), 0);
  return V::hsum(s0 + s1);
}

// Σ exp(x − m) over x[0..n)
template <typename T>
T row_sum_exp(const T* x, int64_t n, T m) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const V vm = V::set1(m);
  V s0 = V::set1(0), s1 = V::set1(0);
  int64_t c = 0;
  for (; c + 2 * W <= n; c += 2 * W) {
    s0 = s0 + vexp(V::load(x + c) - vm);
    s1 = s1 + vexp(V::load(x + c + W) - vm);
  }
  for (; c + W <= n; c += W) s0 = s0 + vexp(V::load(x + c) - vm);
  if (c < n) s0 = s0 + vexp(V::load_n(x + c, int(n - c), -kInf<T>) - vm);
  return V::hsum(s0 + s1);
}

// ref's rowLogSumExp, scalar in f64: −∞ for an empty or all −∞ row, NaN if any NaN (Math.max
// propagates it), +∞ if any +∞.
template <typename T>
double ref_log_sum_exp(const T* x, int64_t n) {
  double m = -kInf<double>;
  for (int64_t c = 0; c < n; c++) {
    double v = x[c];
    if (v != v) return std::numeric_limits<double>::quiet_NaN();
    if (v > m) m = v;
  }
  if (m == -kInf<double> || m == kInf<double>) return m;
  double s = 0;
  for (int64_t c = 0; c < n; c++) s += std::exp(double(x[c]) - m);
  return m + std::log(s);
}

// log Σ exp over a row: the vector path when the max is finite, else ref's scalar rules.
template <typename T>
double log_sum_exp(const T* x, int64_t n) {
  const T m = row_max(x, n);
  if (!(std::fabs(m) < kInf<T>)) return ref_log_sum_exp(x, n);
  return double(m) + std::log(double(row_sum_exp(x, n, m)));
}

}  // namespace
}  // namespace KILN_ISA
}  // namespace kiln
