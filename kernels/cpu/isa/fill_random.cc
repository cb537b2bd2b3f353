// Backend.fill and Backend.random (Philox4x32-10, as src/backend/philox.ts). Semantics and the
// way the loop kernels are written: loops.h.
#include <cmath>
#include <cstdint>

#include "dtype_values.h"
#include "isa.h"
#include "loops.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

// ---- fill ---------------------------------------------------------------------------------------

template <DType D> void fill_typed(void* out, int64_t n, double value) {
  const St<D> v = from_d<D>(value);  // encoded once, as dtype.ts encode([value], dtype)
  St<D>* o = static_cast<St<D>*>(out);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) o[i] = v;
  });
}

}  // namespace

// out[i] = value (reduce.cc fills empty sums with it too)
void fill(const FillArgs& a) { KILN_DISPATCH(a.out.dtype, fill_typed, a.out.data, a.out.size, a.value) }

namespace {

// ---- random -------------------------------------------------------------------------------------
//
// The Philox words are src/backend/philox.ts's bit for bit, and so are uniform and randint
// values: they use only the words and exact (or once-rounded, as in JS) double arithmetic, so
// this section is compiled without floating-point contraction (a·b + c must not become one
// fused multiply-add). Normal values go through Box–Muller with the C library's log, sin and
// cos, which agree with the JS engine's to within an ulp or so: the same numbers within the
// dtype's tolerance, not bit for bit (backends share Philox words, not a libm).

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

// Philox4x32-10 (as src/backend/philox.ts).
inline void philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1, uint32_t out[4]) {
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = uint64_t(0xd2511f53u) * c0;
    uint64_t p1 = uint64_t(0xcd9e8d57u) * c2;
    uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    c1 = uint32_t(p1);
    c3 = uint32_t(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9e3779b9u;
    k1 += 0xbb67ae85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

struct Draw {
  void* out;
  int64_t n;
  RandomDist dist;
  double p0, p1;
  uint32_t k0, k1;
  uint64_t offset;
};

// Elements [4·g0, min(4·g1, n)): group g uses counter offset + g.
template <DType D>
__attribute__((noinline)) void random_groups(const Draw& a, int64_t g0, int64_t g1) {
  St<D>* o = static_cast<St<D>*>(a.out);
  const double two_pi = 2 * 3.141592653589793;  // 2·Math.PI, exact doubling
  for (int64_t g = g0; g < g1; g++) {
    uint64_t ctr = a.offset + uint64_t(g);
    uint32_t w[4];
    philox(uint32_t(ctr), uint32_t(ctr >> 32), 0, 0, a.k0, a.k1, w);
    int64_t base = 4 * g;
    int end = int(a.n - base < 4 ? a.n - base : 4);
    double v[4];
    if (a.dist == DIST_UNIFORM) {
      double span = a.p1 - a.p0;
      for (int j = 0; j < end; j++) v[j] = a.p0 + span * (double(w[j] >> 8) * (1.0 / 16777216.0));
    } else if (a.dist == DIST_RANDINT) {
      // low + ⌊w·span / 2^32⌋, span read as a uint32 (ToUint32) like philox.ts's mulhi
      uint32_t span = uint32_t(to_int32(a.p1 - a.p0));
      for (int j = 0; j < end; j++) v[j] = a.p0 + double(uint32_t((uint64_t(w[j]) * span) >> 32));
    } else {
      for (int p = 0; p < end; p += 2) {
        double u0 = double(w[p] >> 8) * (1.0 / 16777216.0);
        double u1 = double(w[p + 1] >> 8) * (1.0 / 16777216.0);
        double r = std::sqrt(-2 * std::log(1 - u0));
        double t = two_pi * u1;
        double sr = a.p1 * r;  // JS: mean + std * r * cos(t) = mean + ((std·r)·cos t)
        v[p] = a.p0 + sr * std::cos(t);
        if (p + 1 < end) v[p + 1] = a.p0 + sr * std::sin(t);
      }
    }
    for (int j = 0; j < end; j++) o[base + j] = from_d<D>(v[j]);
  }
}

#pragma GCC pop_options

template <DType D> void random_typed(const Draw& a) {
  int64_t groups = (a.n + 3) / 4;
  parallel_for(groups, a.dist == DIST_NORMAL ? 1024 : 4096, [&](int64_t g0, int64_t g1) { random_groups<D>(a, g0, g1); });
}

// Element i: word i mod 4 of philox(key = seed, counter = offset + ⌊i/4⌋), mapped per philox.ts;
// values computed in double and stored as ref's store() does (halves rounded from the double).
void random(const RandomArgs& a) {
  if (a.out.size <= 0) return;
  const uint64_t seed = uint64_t(a.seed);
  Draw d{a.out.data, a.out.size, a.dist, a.p0, a.p1, uint32_t(seed), uint32_t(seed >> 32), uint64_t(a.offset)};
  KILN_DISPATCH(a.out.dtype, random_typed, d)
}

}  // namespace

void add_fill_random(Table& t) {
  t.fill = fill;
  t.random = random;
}

}  // namespace KILN_ISA
}  // namespace kiln
