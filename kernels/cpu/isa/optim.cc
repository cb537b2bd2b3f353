// The many-tensor optimizer kernels: Backend.multiNorm, Backend.multiScale and the fused updates
// Backend.adamUpdate and Backend.lambUpdate, each over a list of tensors in one call.
//
// Work is cut into blocks of at most kBlock elements of one tensor, and the blocks of the whole
// list are shared by the pool, so a list of many tiny tensors and a list with one huge tensor
// both keep every thread busy. Per-tensor results (a norm, LAMB's two norms) are combined from
// their blocks' partials in block order, so nothing depends on the thread count.
//
// Adam and LAMB compute in double and read the moments back after rounding them to their storage
// type, as the reference backend does; with -ffp-contract=off (CMakeLists.txt) every element is
// ref's bit for bit. LAMB's norms are summed per block, then the blocks in order: for a parameter
// of at most kBlock elements that is ref's running sum exactly; beyond, within f64 rounding.
#include <cmath>
#include <cstdint>
#include <vector>

#include "bits.h"
#include "isa.h"
#include "loops.h"

namespace kiln {
namespace KILN_ISA {
namespace {

constexpr int64_t kBlock = 1 << 14;

// Elements [begin, end) of tensor t of a list.
struct Block {
  int64_t t, begin, end;
};

// The blocks of every tensor of a list, in order (an empty tensor has none); first[t] is tensor
// t's first block and first[count] the total.
struct Blocks {
  std::vector<Block> items;
  std::vector<int64_t> first;
  int64_t elements = 0;

  explicit Blocks(const Bufs& xs) : first(size_t(xs.count) + 1) {
    for (int64_t t = 0; t < xs.count; t++) {
      first[size_t(t)] = int64_t(items.size());
      const int64_t n = xs.items[t].size;
      for (int64_t b = 0; b < n; b += kBlock) items.push_back(Block{t, b, imin(n, b + kBlock)});
      elements += n;
    }
    first[size_t(xs.count)] = int64_t(items.size());
  }

  // f(block) for every block, on the pool: about kGrain elements per task, however they are
  // spread over the tensors
  template <class F>
  void each(const F& f) const {
    const int64_t n = int64_t(items.size());
    if (n == 0) return;
    const int64_t grain = imax(1, int64_t(double(kGrain) * double(n) / double(imax(1, elements))));
    parallel_for(n, grain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; i++) f(i, items[size_t(i)]);
    });
  }
};

inline double number(const Buf& b, int64_t i) {
  return b.dtype == F64 ? static_cast<const double*>(b.data)[i] : double(static_cast<const float*>(b.data)[i]);
}
inline void store_number(const Buf& b, int64_t i, double v) {
  if (b.dtype == F64) static_cast<double*>(b.data)[i] = v;
  else static_cast<float*>(b.data)[i] = float(v);
}

// ---- multi_norm ------------------------------------------------------------------------------
//
// ‖x‖_ord accumulated in double: Σ|x| (ord 1), Σx² (2), Σ|x|^p (other p), max |x| (∞); NaN
// propagates (a NaN element makes the norm NaN, as ref).

// max for norms: NaN wins, as ref's `m > acc || m !== m ? m : acc`
template <class T> inline T nan_max(T a, T b) { return sel((b > a) | (b != b), b, a); }

template <class T>
double norm_partial(const T* x, int64_t n, double ord) {
  auto fold = [](double a, double b) { return a + b; };
  if (ord == 1) return fold_lanes(x, n, 0.0, [](T v) { return std::fabs(double(v)); }, fold);
  if (ord == 2) return fold_lanes(x, n, 0.0, [](T v) { return double(v) * double(v); }, fold);
  // the largest magnitude is one of the elements: exact in T
  if (std::isinf(ord)) return fold_lanes(x, n, T(0), [](T v) { return std::fabs(v); }, nan_max<T>);
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += std::pow(std::fabs(double(x[i])), ord);
  return s;
}

void multi_norm(const MultiNormArgs& a) {
  const Blocks blocks(a.xs);
  std::vector<double> part(blocks.items.size());
  blocks.each([&](int64_t i, const Block& b) {
    const Buf& x = a.xs.items[b.t];
    part[size_t(i)] = x.dtype == F64 ? norm_partial(static_cast<const double*>(x.data) + b.begin, b.end - b.begin, a.ord)
                                     : norm_partial(static_cast<const float*>(x.data) + b.begin, b.end - b.begin, a.ord);
  });
  const bool inf = std::isinf(a.ord);
  for (int64_t t = 0; t < a.xs.count; t++) {
    double acc = 0;
    for (int64_t i = blocks.first[size_t(t)]; i < blocks.first[size_t(t) + 1]; i++)
      acc = inf ? nan_max(acc, part[size_t(i)]) : acc + part[size_t(i)];
    const double norm = inf || a.ord == 1 ? acc : a.ord == 2 ? std::sqrt(acc) : std::pow(acc, 1 / a.ord);
    store_number(a.out, t, norm);
  }
}

// ---- multi_scale -----------------------------------------------------------------------------

// x ← x·s, the product in double rounded once to x's type (for f32 x and an f32 s that is the
// f32 product; for f32 x and an f64 s, ref's double product rounded)
template <class T>
void scale_range(T* x, int64_t n, double s) {
  for (int64_t i = 0; i < n; i++) x[i] = T(double(x[i]) * s);
}

void multi_scale(const MultiScaleArgs& a) {
  const double s = number(a.scale, 0);
  const Blocks blocks(a.xs);
  blocks.each([&](int64_t, const Block& b) {
    const Buf& x = a.xs.items[b.t];
    if (x.dtype == F64) scale_range(static_cast<double*>(x.data) + b.begin, b.end - b.begin, s);
    else scale_range(static_cast<float*>(x.data) + b.begin, b.end - b.begin, s);
  });
}

// ---- adam_update -----------------------------------------------------------------------------

// Elements [b, e) of one parameter; bc1, bc2 = 1 − βᵗ for its step.
template <typename T>
void adam_range(const AdamUpdateArgs& a, int64_t t, int64_t b, int64_t e, double bc1, double bc2) {
  T* p = static_cast<T*>(a.params.items[t].data);
  const T* g = static_cast<const T*>(a.grads.items[t].data);
  T* m = static_cast<T*>(a.m.items[t].data);
  T* v = static_cast<T*>(a.v.items[t].data);
  for (int64_t i = b; i < e; i++) {
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
}

// 1 − βᵗ for each parameter's step (or 1 without bias correction)
std::vector<double> corrections(double beta, const IntList& steps, int64_t count, bool on) {
  std::vector<double> c(size_t(count), 1.0);
  if (on)
    for (int64_t t = 0; t < count; t++) c[size_t(t)] = 1 - std::pow(beta, double(steps.v[t]));
  return c;
}

void adam_update(const AdamUpdateArgs& a) {
  const std::vector<double> bc1 = corrections(a.beta1, a.steps, a.params.count, true);
  const std::vector<double> bc2 = corrections(a.beta2, a.steps, a.params.count, true);
  const Blocks blocks(a.params);
  blocks.each([&](int64_t, const Block& b) {
    const double c1 = bc1[size_t(b.t)], c2 = bc2[size_t(b.t)];
    if (a.params.items[b.t].dtype == F64) adam_range<double>(a, b.t, b.begin, b.end, c1, c2);
    else adam_range<float>(a, b.t, b.begin, b.end, c1, c2);
  });
}

// ---- lamb_update -----------------------------------------------------------------------------
//
// Pass 1 (every block of every parameter): the moments, and the block's Σp² and Σr², where
// r = m̂/(√v̂ + ε) + λ·p from the stored moments. Then per parameter φ = ‖p‖/‖r‖ (1 when either
// is 0). Pass 2: p ← p − lr·φ·r, r recomputed (it depends only on the stored m, v and the old p).

template <typename T>
struct Lamb {
  T* p;
  const T* g;
  T* m;
  T* v;
  const LambUpdateArgs& a;
  double bc1, bc2;

  Lamb(const LambUpdateArgs& args, int64_t t, double c1, double c2)
      : p(static_cast<T*>(args.params.items[t].data)),
        g(static_cast<const T*>(args.grads.items[t].data)),
        m(static_cast<T*>(args.m.items[t].data)),
        v(static_cast<T*>(args.v.items[t].data)),
        a(args),
        bc1(c1),
        bc2(c2) {}

  double update(int64_t i) const {  // r = m̂/(√v̂ + ε) + λ·p
    return double(m[i]) / bc1 / (std::sqrt(double(v[i]) / bc2) + a.eps) + a.weight_decay * double(p[i]);
  }

  void moments(int64_t b, int64_t e, double& w2, double& r2) const {
    double sw = 0, sr = 0;
    for (int64_t i = b; i < e; i++) {
      double gi = g[i];
      m[i] = T(a.beta1 * double(m[i]) + (1 - a.beta1) * gi);
      v[i] = T(a.beta2 * double(v[i]) + (1 - a.beta2) * gi * gi);
      double r = update(i);
      sw += double(p[i]) * double(p[i]);
      sr += r * r;
    }
    w2 = sw;
    r2 = sr;
  }

  void step(int64_t b, int64_t e, double trust) const {
    for (int64_t i = b; i < e; i++) p[i] = T(double(p[i]) - a.lr * trust * update(i));
  }
};

void lamb_update(const LambUpdateArgs& a) {
  const int64_t count = a.params.count;
  const std::vector<double> bc1 = corrections(a.beta1, a.steps, count, a.bias_correction);
  const std::vector<double> bc2 = corrections(a.beta2, a.steps, count, a.bias_correction);
  const Blocks blocks(a.params);
  std::vector<double> w2(blocks.items.size()), r2(blocks.items.size());
  blocks.each([&](int64_t i, const Block& b) {
    const double c1 = bc1[size_t(b.t)], c2 = bc2[size_t(b.t)];
    if (a.params.items[b.t].dtype == F64) Lamb<double>(a, b.t, c1, c2).moments(b.begin, b.end, w2[size_t(i)], r2[size_t(i)]);
    else Lamb<float>(a, b.t, c1, c2).moments(b.begin, b.end, w2[size_t(i)], r2[size_t(i)]);
  });
  std::vector<double> trust(static_cast<size_t>(count));
  for (int64_t t = 0; t < count; t++) {
    double wn = 0, rn = 0;
    for (int64_t i = blocks.first[size_t(t)]; i < blocks.first[size_t(t) + 1]; i++) {
      wn += w2[size_t(i)];
      rn += r2[size_t(i)];
    }
    wn = std::sqrt(wn);
    rn = std::sqrt(rn);
    trust[size_t(t)] = wn > 0 && rn > 0 ? wn / rn : 1;  // φ = ‖p‖/‖r‖
    if (a.trust.data) store_number(a.trust, t, trust[size_t(t)]);
  }
  blocks.each([&](int64_t, const Block& b) {
    const double c1 = bc1[size_t(b.t)], c2 = bc2[size_t(b.t)], phi = trust[size_t(b.t)];
    if (a.params.items[b.t].dtype == F64) Lamb<double>(a, b.t, c1, c2).step(b.begin, b.end, phi);
    else Lamb<float>(a, b.t, c1, c2).step(b.begin, b.end, phi);
  });
}

}  // namespace

void add_optim(Table& t) {
  t.multi_norm = multi_norm;
  t.multi_scale = multi_scale;
  t.adam_update = adam_update;
  t.lamb_update = lamb_update;
}

}  // namespace KILN_ISA
}  // namespace kiln
