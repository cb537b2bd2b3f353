// Ports of the fdlibm log/sin/cos that V8 (Node 20) runs for Math.log/sin/cos: glibc's differ
// from them in the last bit for ~3-7% of the 2^24 arguments Box–Muller can see (these ports
// match Node's on all of them, checked exhaustively), which would show in f64 outputs and
// occasionally in f32 ones. random (fill_random.cc) and the unary sin/cos/log kernels
// (unary.cc) use them. Compiled without floating-point contraction: the JS side rounds every
// operation separately.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "bits.h"
#include "isa.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace fdlibm {

inline int32_t hi_word(double x) { return int32_t(d2u(x) >> 32); }
inline uint32_t lo_word(double x) { return uint32_t(d2u(x)); }
inline double with_hi_word(double x, uint32_t hi) { return u2d((d2u(x) & 0xffffffffull) | (uint64_t(hi) << 32)); }
inline double from_words(uint32_t hi, uint32_t lo) { return u2d((uint64_t(hi) << 32) | lo); }

// ln x (fdlibm e_log.c): x = 2^k·(1 + f) with √2/2 < 1 + f < √2, log(1 + f) from s = f/(2 + f).
double log(double x) {
  const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10,
               two54 = 1.80143985094819840000e+16, Lg1 = 6.666666666666735130e-01,
               Lg2 = 3.999999999940941908e-01, Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
               Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01, Lg7 = 1.479819860511658591e-01;
  int32_t hx = hi_word(x);
  uint32_t lx = lo_word(x);
  int32_t k = 0;
  if (hx < 0x00100000) {  // x < 2^-1022, or negative
    if (((hx & 0x7fffffff) | int32_t(lx)) == 0) return -std::numeric_limits<double>::infinity();
    if (hx < 0) return std::numeric_limits<double>::quiet_NaN();
    k -= 54;
    x *= two54;  // subnormal: scale up
    hx = hi_word(x);
  }
  if (hx >= 0x7ff00000) return x + x;
  k += (hx >> 20) - 1023;
  hx &= 0x000fffff;
  int32_t i = (hx + 0x95f64) & 0x100000;
  x = with_hi_word(x, uint32_t(hx | (i ^ 0x3ff00000)));  // normalise x or x/2
  k += i >> 20;
  double f = x - 1.0;
  if ((0x000fffff & (2 + hx)) < 3) {  // −2^-20 ≤ f < 2^-20
    if (f == 0.0) {
      if (k == 0) return 0.0;
      double dk = k;
      return dk * ln2_hi + dk * ln2_lo;
    }
    double R = f * f * (0.5 - 0.33333333333333333 * f);
    if (k == 0) return f - R;
    double dk = k;
    return dk * ln2_hi - ((R - dk * ln2_lo) - f);
  }
  double s = f / (2.0 + f);
  double dk = k;
  double z = s * s;
  i = hx - 0x6147a;
  double w = z * z;
  int32_t j = 0x6b851 - hx;
  double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
  double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
  i |= j;
  double R = t2 + t1;
  if (i > 0) {
    double hfsq = 0.5 * f * f;
    if (k == 0) return f - (hfsq - s * (hfsq + R));
    return dk * ln2_hi - ((hfsq - (s * (hfsq + R) + dk * ln2_lo)) - f);
  }
  if (k == 0) return f - s * (f - R);
  return dk * ln2_hi - ((s * (f - R) - dk * ln2_lo) - f);
}

// sin on [−π/4, π/4] of x + y (y the tail of x; iy = 0 when y is zero), fdlibm k_sin.c
double kernel_sin(double x, double y, int iy) {
  const double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03,
               S3 = -1.98412698298579493134e-04, S4 = 2.75573137070700676789e-06,
               S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
  int32_t ix = hi_word(x) & 0x7fffffff;
  if (ix < 0x3e400000 && int(x) == 0) return x;  // |x| < 2^-27
  double z = x * x;
  double v = z * x;
  double r = S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)));
  if (iy == 0) return x + v * (S1 + z * r);
  return x - ((z * (0.5 * y - v * r) - y) - v * S1);
}

// cos on [−π/4, π/4] of x + y, fdlibm k_cos.c
double kernel_cos(double x, double y) {
  const double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03,
               C3 = 2.48015872894767294178e-05, C4 = -2.75573143513906633035e-07,
               C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
  int32_t ix = hi_word(x) & 0x7fffffff;
  if (ix < 0x3e400000 && int(x) == 0) return 1.0;  // |x| < 2^-27
  double z = x * x;
  double r = z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6)))));
  if (ix < 0x3fd33333) return 1.0 - (0.5 * z - (z * r - x * y));  // |x| < 0.3
  // 1 − x²/2 as (1 − qx) − (x²/2 − qx) with qx ≈ x²/4 exact, for accuracy
  double qx = ix > 0x3fe90000 ? 0.28125 : from_words(uint32_t(ix - 0x00200000), 0);
  double hz = 0.5 * z - qx;
  double a = 1.0 - qx;
  return a - (hz - (z * r - x * y));
}

// x − n·π/2 as y[0] + y[1] and n, for |x| ≤ 2^19·π/2 (fdlibm e_rem_pio2.c without the
// large-argument path, which callers here never need). Returns false when |x| is larger.
bool rem_pio2(double x, double* y, int32_t* n_out) {
  static const int32_t npio2_hw[] = {
      0x3ff921fb, 0x400921fb, 0x4012d97c, 0x401921fb, 0x401f6a7a, 0x4022d97c, 0x4025fdbb, 0x402921fb,
      0x402c463a, 0x402f6a7a, 0x4031475c, 0x4032d97c, 0x40346b9c, 0x4035fdbb, 0x40378fdb, 0x403921fb,
      0x403ab41b, 0x403c463a, 0x403dd85a, 0x403f6a7a, 0x40407e4c, 0x4041475c, 0x4042106c, 0x4042d97c,
      0x4043a28c, 0x40446b9c, 0x404534ac, 0x4045fdbb, 0x4046c6cb, 0x40478fdb, 0x404858eb, 0x404921fb,
  };
  // π/2 in 33-bit pieces and their tails
  const double invpio2 = 6.36619772367581382433e-01, pio2_1 = 1.57079632673412561417e+00,
               pio2_1t = 6.07710050650619224932e-11, pio2_2 = 6.07710050630396597660e-11,
               pio2_2t = 2.02226624879595063154e-21, pio2_3 = 2.02226624871116645580e-21,
               pio2_3t = 8.47842766036889956997e-32;
  int32_t hx = hi_word(x);
  int32_t ix = hx & 0x7fffffff;
  if (ix <= 0x3fe921fb) {  // |x| ≤ π/4
    y[0] = x;
    y[1] = 0;
    *n_out = 0;
    return true;
  }
  if (ix < 0x4002d97c) {  // |x| < 3π/4: n = ±1
    if (hx > 0) {
      double z = x - pio2_1;
      if (ix != 0x3ff921fb) {
        y[0] = z - pio2_1t;
        y[1] = (z - y[0]) - pio2_1t;
      } else {  // near π/2: 33 + 33 + 53 bits of π
        z -= pio2_2;
        y[0] = z - pio2_2t;
        y[1] = (z - y[0]) - pio2_2t;
      }
      *n_out = 1;
    } else {
      double z = x + pio2_1;
      if (ix != 0x3ff921fb) {
        y[0] = z + pio2_1t;
        y[1] = (z - y[0]) + pio2_1t;
      } else {
        z += pio2_2;
        y[0] = z + pio2_2t;
        y[1] = (z - y[0]) + pio2_2t;
      }
      *n_out = -1;
    }
    return true;
  }
  if (ix > 0x413921fb) return false;  // |x| > 2^19·π/2
  double t = std::fabs(x);
  int32_t n = int32_t(t * invpio2 + 0.5);
  double fn = double(n);
  double r = t - fn * pio2_1;
  double w = fn * pio2_1t;  // first round: good to 85 bits
  if (n < 32 && ix != npio2_hw[n - 1]) {
    y[0] = r - w;
  } else {
    int32_t j = ix >> 20;
    y[0] = r - w;
    int32_t i = j - ((hi_word(y[0]) >> 20) & 0x7ff);
    if (i > 16) {  // second round: good to 118 bits
      t = r;
      w = fn * pio2_2;
      r = t - w;
      w = fn * pio2_2t - ((t - r) - w);
      y[0] = r - w;
      i = j - ((hi_word(y[0]) >> 20) & 0x7ff);
      if (i > 49) {  // third round: 151 bits
        t = r;
        w = fn * pio2_3;
        r = t - w;
        w = fn * pio2_3t - ((t - r) - w);
        y[0] = r - w;
      }
    }
  }
  y[1] = (r - y[0]) - w;
  if (hx < 0) {
    y[0] = -y[0];
    y[1] = -y[1];
    n = -n;
  }
  *n_out = n;
  return true;
}

double sin(double x) {
  int32_t ix = hi_word(x) & 0x7fffffff;
  if (ix <= 0x3fe921fb) return kernel_sin(x, 0.0, 0);
  if (ix >= 0x7ff00000) return x - x;  // NaN for ±∞ and NaN
  double y[2];
  int32_t n;
  if (!rem_pio2(x, y, &n)) return std::sin(x);  // huge argument: not reached by random()
  switch (n & 3) {
    case 0: return kernel_sin(y[0], y[1], 1);
    case 1: return kernel_cos(y[0], y[1]);
    case 2: return -kernel_sin(y[0], y[1], 1);
    default: return -kernel_cos(y[0], y[1]);
  }
}

double cos(double x) {
  int32_t ix = hi_word(x) & 0x7fffffff;
  if (ix <= 0x3fe921fb) return kernel_cos(x, 0.0);
  if (ix >= 0x7ff00000) return x - x;
  double y[2];
  int32_t n;
  if (!rem_pio2(x, y, &n)) return std::cos(x);
  switch (n & 3) {
    case 0: return kernel_cos(y[0], y[1]);
    case 1: return -kernel_sin(y[0], y[1], 1);
    case 2: return -kernel_cos(y[0], y[1]);
    default: return kernel_sin(y[0], y[1], 1);
  }
}

}  // namespace fdlibm

#pragma GCC pop_options

}  // namespace
}  // namespace KILN_ISA
}  // namespace kiln
