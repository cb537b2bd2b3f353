// The elementwise family of the CPU kernel table: fill, random, cast, copy, unary, unary_grad,
// binary, where, reduce, gather and scatter_add. Semantics are those of the reference backend
// (src/backend/ref/ref.ts and kernels.ts), which computes in JS doubles and rounds once on the
// store; notes below say where a kernel computes differently and why the result is the same
// (or within the f32 tolerance).
//
// Speed: contiguous loops are written so that GCC vectorises them under each ISA's flags
// (SSE2 / AVX2+FMA / AVX-512); f32 transcendentals use vecmath.h's branch-free polynomials; the
// f16 casts use F16C where the ISA has it. Strided operands go through a "plan": size-1 axes
// dropped and mergeable axes merged, then an odometer over the outer axes with a tight loop
// over the last one, specialised for the common inner strides (contiguous, broadcast). Work
// above ~32K elements is split over the thread pool with parallel_for, always into pieces
// that do not depend on the thread count, so results never depend on it either.
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>

#include "isa.h"
#include "vecmath.h"

#if KILN_ISA_avx2 || KILN_ISA_avx512
#include <immintrin.h>
#endif

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

constexpr int64_t kGrain = 32768;      // elements per task for cheap (memory-bound) loops
constexpr int64_t kGrainHeavy = 8192;  // for loops with a transcendental per element

// The smaller / larger of two sizes. (Local rather than std::min/max, and Buffer rather than
// std::vector: a template of std instantiated here is a weak symbol shared by the three ISA
// builds of this file, and the linker may keep the AVX-512 copy for the base table.)
inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// Scratch memory, uninitialised.
template <class T> class Buffer {
 public:
  explicit Buffer(int64_t n) : p_(static_cast<T*>(::operator new(size_t(n > 0 ? n : 1) * sizeof(T)))) {}
  ~Buffer() { ::operator delete(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T& operator[](int64_t i) { return p_[i]; }
  T* data() { return p_; }

 private:
  T* p_;
};

// f32 bit casts: vm::bits / vm::from_bits (vecmath.h)
inline uint64_t d2u(double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
}
inline double u2d(uint64_t u) {
  double d;
  std::memcpy(&d, &u, 8);
  return d;
}

// c ? a : b, branch-free for floating point (see vm::select)
template <class T> inline T sel(bool c, T a, T b) {
  if constexpr (std::is_same_v<T, float>) {
    return vm::select(c, a, b);
  } else if constexpr (std::is_same_v<T, double>) {
    uint64_t m = 0 - uint64_t(c);
    return u2d((d2u(a) & m) | (d2u(b) & ~m));
  } else {
    return c ? a : b;
  }
}

// c ? a : b on bit patterns, as a mask blend: both operands are then used unconditionally,
// so the compiler cannot sink a floating-point computation into a branch (which would stop
// the loop from vectorising).
inline uint32_t usel(bool c, uint32_t a, uint32_t b) {
  uint32_t m = 0u - uint32_t(c);
  return (a & m) | (b & ~m);
}

// ---- values as JavaScript stores them ----------------------------------------------------------

// ECMAScript ToInt32 (what an Int32Array store does): truncate, wrap modulo 2^32, NaN/±∞ → 0.
inline int32_t to_int32(double v) {
  if (v > -2147483649.0 && v < 2147483648.0) return int32_t(v);  // the common case (false for NaN)
  if (!std::isfinite(v)) return 0;
  double t = std::trunc(v);
  double m = t - std::floor(t * (1.0 / 4294967296.0)) * 4294967296.0;  // in [0, 2^32), exact
  return int32_t(uint32_t(m));
}

// f32 → bf16 bits, round to nearest even; every NaN becomes 0x7fc0, as dtype.ts's bf16Bits.
inline uint16_t bf16_bits(float f) {
  uint32_t u = vm::bits(f);
  uint16_t r = uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  return (u & 0x7fffffffu) > 0x7f800000u ? uint16_t(0x7fc0) : r;
}
inline float bf16_value(uint16_t h) { return vm::from_bits(uint32_t(h) << 16); }

// f32 → f16 bits, round to nearest even (subnormals, overflow to ±∞); NaN → 0x7e00 as f16Bits.
// Every case is computed and one is selected, so that loops over it vectorise.
inline uint16_t f16_bits(float f) {
  uint32_t u = vm::bits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  // normal: drop 13 mantissa bits rounding to nearest even; rebias the exponent (127 → 15)
  uint32_t normal = (a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u) >> 13;
  // below 2^-14: subnormal, in units of 2^-24. Adding 0.5 (whose ulp is 2^-24) rounds to
  // nearest even at exactly that unit; a carry into 2^-14 gives the smallest normal's bits.
  uint32_t sub = vm::bits(vm::from_bits(a) + 0.5f) - 0x3f000000u;
  uint32_t r = usel(a < 0x38800000u, sub, normal);
  r = usel(a >= 0x477ff000u, 0x7c00u, r);  // ≥ 65520 rounds to ∞
  r |= sign;
  return uint16_t(usel(a > 0x7f800000u, 0x7e00u, r));
}
inline float f16_value(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  uint32_t sub = vm::bits(float(m) * 5.9604644775390625e-8f);  // m·2^-24, exact
  uint32_t special = 0x7f800000u | (m << 13);             // ±∞, NaN
  uint32_t normal = ((e + 112u) << 23) | (m << 13);
  return vm::from_bits(sign | usel(e == 0, sub, usel(e == 31, special, normal)));
}

// f64 → f32 rounded to odd: truncate, and set the last bit if anything was dropped. Rounding
// that to bf16/f16 (≥ 2 bits shorter) to nearest even gives exactly the direct rounding of the
// double, with no double-rounding error — as dtype.ts rounds a JS number straight to a half.
inline float round_to_odd_f32(double d) {
  float f = float(d);
  if (double(f) != d && f == f) {
    uint32_t u = vm::bits(f);
    if (std::fabs(double(f)) > std::fabs(d)) u -= 1;  // rounded away from zero: step back
    f = vm::from_bits(u | 1u);
  }
  return f;
}
inline uint16_t bf16_bits_d(double d) { return bf16_bits(round_to_odd_f32(d)); }
inline uint16_t f16_bits_d(double d) { return f16_bits(round_to_odd_f32(d)); }

// Storage type of each dtype (halves as raw bits).
template <DType D> struct Store;
template <> struct Store<F32> { using T = float; };
template <> struct Store<F64> { using T = double; };
template <> struct Store<I32> { using T = int32_t; };
template <> struct Store<BF16> { using T = uint16_t; };
template <> struct Store<F16> { using T = uint16_t; };
template <> struct Store<BOOL> { using T = uint8_t; };
template <DType D> using St = typename Store<D>::T;

// Dtypes whose every value is exact in f32 (so conversions may go through float).
template <DType D> constexpr bool kFloatExact = D == F32 || D == BF16 || D == F16 || D == BOOL;

// The number a stored element is (dtype.ts decode; a bool byte reads as its value).
template <DType D> inline float to_f(St<D> v) {
  if constexpr (D == F32) return v;
  else if constexpr (D == BF16) return bf16_value(v);
  else if constexpr (D == F16) return f16_value(v);
  else return float(v);  // BOOL
}
template <DType D> inline double to_d(St<D> v) {
  if constexpr (D == F64) return v;
  else if constexpr (D == I32) return double(v);
  else return double(to_f<D>(v));
}

// A number stored as dtype.ts encode / a typed-array store would: halves round to nearest even
// from the value itself, i32 is ToInt32, bool is v ≠ 0 (NaN is true).
template <DType D> inline St<D> from_d(double v) {
  if constexpr (D == F32) return float(v);
  else if constexpr (D == F64) return v;
  else if constexpr (D == I32) return to_int32(v);
  else if constexpr (D == BF16) return bf16_bits_d(v);
  else if constexpr (D == F16) return f16_bits_d(v);
  else return v != 0 ? 1 : 0;
}
// The same for a value that is a float (no double rounding possible).
template <DType D> inline St<D> from_f(float v) {
  if constexpr (D == F32) return v;
  else if constexpr (D == F64) return double(v);
  else if constexpr (D == I32) return to_int32(double(v));
  else if constexpr (D == BF16) return bf16_bits(v);
  else if constexpr (D == F16) return f16_bits(v);
  else return v != 0 ? 1 : 0;
}

// FN<D>(args...) for the runtime dtype dt.
#define KILN_DISPATCH(dt, FN, ...)               \
  switch (dt) {                                  \
    case F32: FN<F32>(__VA_ARGS__); break;       \
    case F64: FN<F64>(__VA_ARGS__); break;       \
    case I32: FN<I32>(__VA_ARGS__); break;       \
    case BF16: FN<BF16>(__VA_ARGS__); break;     \
    case F16: FN<F16>(__VA_ARGS__); break;       \
    case BOOL: FN<BOOL>(__VA_ARGS__); break;     \
  }

// ---- fill ---------------------------------------------------------------------------------------

template <DType D> void fill_typed(void* out, int64_t n, double value) {
  const St<D> v = from_d<D>(value);  // encoded once, as dtype.ts encode([value], dtype)
  St<D>* o = static_cast<St<D>*>(out);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) o[i] = v;
  });
}

// out[i] = value
void fill(void* out, DType dt, int64_t n, double value) { KILN_DISPATCH(dt, fill_typed, out, n, value) }

// ---- random -------------------------------------------------------------------------------------
//
// The numbers must equal src/backend/philox.ts's bit for bit. The JS side evaluates every
// expression in doubles with separate roundings, so this section is compiled without
// floating-point contraction (a·b + c must not become one fused multiply-add), and uses ports
// of the fdlibm log/sin/cos that V8 (Node 20) runs for Math.log/sin/cos: glibc's differ from
// them in the last bit for ~3-7% of the 2^24 arguments Box–Muller can see (these ports match
// Node's on all of them, checked exhaustively), which would show in f64 outputs and
// occasionally in f32 ones. The unary sin/cos/log kernels use them too.

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

struct RandomArgs {
  void* out;
  int64_t n;
  RandomDist dist;
  double p0, p1;
  uint32_t k0, k1;
  uint64_t offset;
};

// Elements [4·g0, min(4·g1, n)): group g uses counter offset + g.
template <DType D>
__attribute__((noinline)) void random_groups(const RandomArgs& a, int64_t g0, int64_t g1) {
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
        double r = std::sqrt(-2 * fdlibm::log(1 - u0));
        double t = two_pi * u1;
        double sr = a.p1 * r;  // JS: mean + std * r * cos(t) = mean + ((std·r)·cos t)
        v[p] = a.p0 + sr * fdlibm::cos(t);
        if (p + 1 < end) v[p + 1] = a.p0 + sr * fdlibm::sin(t);
      }
    }
    for (int j = 0; j < end; j++) o[base + j] = from_d<D>(v[j]);
  }
}

#pragma GCC pop_options

template <DType D> void random_typed(const RandomArgs& a) {
  int64_t groups = (a.n + 3) / 4;
  parallel_for(groups, a.dist == DIST_NORMAL ? 1024 : 4096, [&](int64_t g0, int64_t g1) { random_groups<D>(a, g0, g1); });
}

// Element i: word i mod 4 of philox(key = seed, counter = offset + ⌊i/4⌋), mapped per philox.ts;
// values computed in double and stored as ref's store() does (halves rounded from the double).
void random(void* out, DType dt, int64_t n, RandomDist dist, double p0, double p1, uint64_t seed, uint64_t offset) {
  if (n <= 0) return;
  RandomArgs a{out, n, dist, p0, p1, uint32_t(seed), uint32_t(seed >> 32), offset};
  KILN_DISPATCH(dt, random_typed, a)
}

// ---- cast ---------------------------------------------------------------------------------------

template <DType S, DType D> void cast_range(const St<S>* __restrict x, St<D>* __restrict o, int64_t b, int64_t e) {
#if KILN_ISA_avx2 || KILN_ISA_avx512
  int64_t b8 = b + (e - b) / 8 * 8;  // [b, b8) in vectors of 8, then the rest element-wise
  // F16C: vcvtph2ps is exact; vcvtps2ph rounds to nearest even like f16_bits, but keeps a NaN's
  // sign and payload, so NaN lanes are replaced by 0x7e00 afterwards.
  if constexpr (S == F16 && D == F32) {
    for (int64_t i = b; i < b8; i += 8)
      _mm256_storeu_ps(o + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
    b = b8;
  } else if constexpr (S == F32 && D == F16) {
    const __m128i qnan = _mm_set1_epi16(0x7e00);
    for (int64_t i = b; i < b8; i += 8) {
      __m256 v = _mm256_loadu_ps(x + i);
      __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      __m128i nan16 = _mm_packs_epi32(_mm256_castsi256_si128(nan), _mm256_extracti128_si256(nan, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + i), _mm_blendv_epi8(h, qnan, nan16));
    }
    b = b8;
  }
#endif
  if constexpr ((S == F32 || S == F64) && D == I32) {
    // truncation where it is in range (vectorised); the rest (|x| ≥ 2^31, ±∞, NaN) by ToInt32
    using T = St<S>;
    uint32_t any = 0;
    for (int64_t i = b; i < e; i++) {
      T v = x[i];
      bool ok = (v > T(-2147483649.0)) & (v < T(2147483648.0));
      any |= uint32_t(!ok);
      o[i] = int32_t(sel(ok, v, T(0)));
    }
    if (any)
      for (int64_t i = b; i < e; i++) o[i] = to_int32(double(x[i]));
  } else if constexpr (S == I32 && D == F32) {
    for (int64_t i = b; i < e; i++) o[i] = float(x[i]);  // int → f32 rounds once, as via f64
  } else if constexpr (S == F64 && D == F32) {
    for (int64_t i = b; i < e; i++) o[i] = float(x[i]);
  } else if constexpr (kFloatExact<S>) {
    for (int64_t i = b; i < e; i++) o[i] = from_f<D>(to_f<S>(x[i]));
  } else {
    for (int64_t i = b; i < e; i++) o[i] = from_d<D>(to_d<S>(x[i]));
  }
}

template <DType S, DType D> void cast_typed(const void* x, void* out, int64_t n) {
  const St<S>* xs = static_cast<const St<S>*>(x);
  St<D>* o = static_cast<St<D>*>(out);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) { cast_range<S, D>(xs, o, b, e); });
}
template <DType S> void cast_from(const void* x, DType od, void* out, int64_t n) {
  switch (od) {
    case F32: cast_typed<S, F32>(x, out, n); break;
    case F64: cast_typed<S, F64>(x, out, n); break;
    case I32: cast_typed<S, I32>(x, out, n); break;
    case BF16: cast_typed<S, BF16>(x, out, n); break;
    case F16: cast_typed<S, F16>(x, out, n); break;
    case BOOL: cast_typed<S, BOOL>(x, out, n); break;
  }
}

// out[i] = x[i] converted as ref's cast: halves round to nearest even straight from the value,
// floats truncate to i32 (ToInt32 wrap-around), bool is x ≠ 0 (NaN true).
void cast(const void* x, DType xd, void* out, DType od, int64_t n) {
  if (n <= 0) return;
  if (xd == od && (xd == BF16 || xd == F16)) {
    // decode + encode (ref's path) is the identity on halves except that NaNs become canonical
    const uint16_t* s = static_cast<const uint16_t*>(x);
    uint16_t* d = static_cast<uint16_t*>(out);
    const uint16_t inf = xd == BF16 ? 0x7f80 : 0x7c00, qnan = xd == BF16 ? 0x7fc0 : 0x7e00;
    parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; i++) d[i] = (s[i] & 0x7fff) > inf ? qnan : s[i];
    });
    return;
  }
  if (xd == od) {
    size_t es = item_size(xd);
    const char* s = static_cast<const char*>(x);
    char* d = static_cast<char*>(out);
    parallel_for(n, kGrain * 2, [&](int64_t b, int64_t e) { std::memcpy(d + b * es, s + b * es, size_t(e - b) * es); });
    return;
  }
  KILN_DISPATCH(xd, cast_from, x, od, out, n)
}

// ---- strided iteration --------------------------------------------------------------------------

// Up to four operands over one shape, strides in elements. Built by plan(): size-1 axes
// dropped and adjacent axes merged where every operand allows, so the last axis is as long as
// possible (rank 1 for contiguous or scalar-broadcast operands).
struct Plan {
  int rank;
  int nops;
  int64_t total;
  int64_t shape[kMaxRank];
  int64_t st[4][kMaxRank];
};

Plan make_plan(int rank, const int64_t* shape, int nops, const int64_t* const* strides) {
  Plan p{};
  p.nops = nops;
  p.total = 1;
  for (int d = 0; d < rank; d++) p.total *= shape[d];
  int r = 0;
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 1) continue;
    // merge into the previous kept axis when, for every operand, stepping it once equals
    // stepping this axis through its whole length
    bool merge = r > 0;
    for (int k = 0; k < nops && merge; k++) merge = p.st[k][r - 1] == strides[k][d] * shape[d];
    if (merge) {
      p.shape[r - 1] *= shape[d];
      for (int k = 0; k < nops; k++) p.st[k][r - 1] = strides[k][d];
    } else {
      p.shape[r] = shape[d];
      for (int k = 0; k < nops; k++) p.st[k][r] = strides[k][d];
      r++;
    }
  }
  if (r == 0) {  // a single element
    p.shape[0] = 1;
    for (int k = 0; k < nops; k++) p.st[k][0] = 0;
    r = 1;
  }
  p.rank = r;
  return p;
}

// Row-major strides of a contiguous output over `shape`.
void contiguous_strides(int rank, const int64_t* shape, int64_t* out) {
  int64_t acc = 1;
  for (int d = rank - 1; d >= 0; d--) {
    out[d] = acc;
    acc *= shape[d];
  }
}

// Visit the linear element range [begin, end) of the plan as runs along its last axis:
// f(off, len) where off[k] is operand k's offset of the run's first element, and element j of
// the run is at off[k] + j·st[k][last].
template <class F> void for_runs(const Plan& p, int64_t begin, int64_t end, F&& f) {
  const int R = p.rank;
  const int64_t L = p.shape[R - 1];
  int64_t idx[kMaxRank];
  int64_t off[4] = {0, 0, 0, 0};
  int64_t rem = begin;
  for (int d = R - 1; d >= 0; d--) {
    idx[d] = rem % p.shape[d];
    rem /= p.shape[d];
    for (int k = 0; k < p.nops; k++) off[k] += idx[d] * p.st[k][d];
  }
  int64_t pos = begin;
  while (pos < end) {
    int64_t len = L - idx[R - 1];
    if (len > end - pos) len = end - pos;
    f(static_cast<const int64_t*>(off), len);
    pos += len;
    if (pos >= end) break;
    // the run ended at the end of the last axis: carry into the outer axes
    for (int k = 0; k < p.nops; k++) off[k] += (len - L) * p.st[k][R - 1];
    idx[R - 1] = 0;
    for (int d = R - 2; d >= 0; d--) {
      for (int k = 0; k < p.nops; k++) off[k] += p.st[k][d];
      if (++idx[d] < p.shape[d]) break;
      for (int k = 0; k < p.nops; k++) off[k] -= p.shape[d] * p.st[k][d];
      idx[d] = 0;
    }
  }
}

// ---- copy ---------------------------------------------------------------------------------------

// Transposing copies — the destination contiguous along one axis jd, the source along another
// axis k — go tile by tile: TI elements (512 bytes) of axis k by TJ = 8 of axis jd.
// Each source cache line is then used whole, and the 8 source columns of a tile stay within
// the L1 associativity even at power-of-two strides (measured on a 1024² f32 transpose: 4×
// faster than element-wise, and 32×32 tiles are no better than element-wise there).
// Returns false when the layout is not of that kind.
template <class T> bool copy_tiled(const T* src, T* dst, const Plan& p) {
  constexpr int64_t TI = 512 / sizeof(T), TJ = 8;
  const int R = p.rank;
  int jd = -1, k = -1;
  for (int d = R - 1; d >= 0; d--) {
    if (jd < 0 && p.st[0][d] == 1) jd = d;
    if (k < 0 && p.st[1][d] == 1) k = d;
  }
  if (jd < 0 || k < 0 || jd == k || p.shape[k] < 8 || p.shape[jd] < 8) return false;
  // the other axes, enumerated by a linear index
  int orank = 0;
  int64_t oshape[kMaxRank], ost_d[kMaxRank], ost_s[kMaxRank];
  for (int d = 0; d < R; d++)
    if (d != k && d != jd) {
      oshape[orank] = p.shape[d];
      ost_d[orank] = p.st[0][d];
      ost_s[orank] = p.st[1][d];
      orank++;
    }
  const int64_t A = p.shape[k], B = p.shape[jd];
  const int64_t dk = p.st[0][k], ss = p.st[1][jd];
  const int64_t na = (A + TI - 1) / TI, nb = (B + TJ - 1) / TJ;
  const int64_t units = p.total / (A * B) * na * nb;
  parallel_for(units, imax(1, kGrain / (TI * TJ)), [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; u++) {
      const int64_t tj = u % nb, ti = (u / nb) % na;
      int64_t rest = u / (na * nb), od = 0, os = 0;
      for (int d = orank - 1; d >= 0; d--) {
        const int64_t i = rest % oshape[d];
        rest /= oshape[d];
        od += i * ost_d[d];
        os += i * ost_s[d];
      }
      const int64_t i1 = imin(A, (ti + 1) * TI), j0 = tj * TJ, j1 = imin(B, j0 + TJ);
      for (int64_t i = ti * TI; i < i1; i++) {
        T* __restrict drow = dst + od + i * dk;
        const T* __restrict scol = src + os + i;
        for (int64_t j = j0; j < j1; j++) drow[j] = scol[j * ss];
      }
    }
  });
  return true;
}

template <class T> void copy_typed(const T* src, T* dst, const Strides& st) {
  const int64_t* strides[2] = {st.b, st.a};  // operand 0 = dst, 1 = src
  Plan p = make_plan(st.rank, st.shape, 2, strides);
  if (p.total <= 0) return;
  if (copy_tiled(src, dst, p)) return;
  const int64_t sd = p.st[0][p.rank - 1], ss = p.st[1][p.rank - 1];
  parallel_for(p.total, kGrain, [&](int64_t b, int64_t e) {
    for_runs(p, b, e, [&](const int64_t* off, int64_t len) {
      T* d = dst + off[0];
      const T* s = src + off[1];
      if (sd == 1 && ss == 1) std::memcpy(d, s, size_t(len) * sizeof(T));
      else if (sd == 1) for (int64_t j = 0; j < len; j++) d[j] = s[j * ss];
      else for (int64_t j = 0; j < len; j++) d[j * sd] = s[j * ss];
    });
  });
}

// dst[dst_off + Σ i·st.b] = src[src_off + Σ i·st.a]: raw elements, any dtype.
void copy(const void* src, int64_t src_off, void* dst, int64_t dst_off, const Strides& st, DType dt) {
  switch (item_size(dt)) {
    case 1: copy_typed(static_cast<const uint8_t*>(src) + src_off, static_cast<uint8_t*>(dst) + dst_off, st); break;
    case 2: copy_typed(static_cast<const uint16_t*>(src) + src_off, static_cast<uint16_t*>(dst) + dst_off, st); break;
    case 4: copy_typed(static_cast<const uint32_t*>(src) + src_off, static_cast<uint32_t*>(dst) + dst_off, st); break;
    default: copy_typed(static_cast<const uint64_t*>(src) + src_off, static_cast<uint64_t*>(dst) + dst_off, st); break;
  }
}

// ---- unary --------------------------------------------------------------------------------------

const double kSqrt2OverPi = 0.7978845608028654;   // Math.sqrt(2 / Math.PI)
const double kInvSqrt2 = 0.7071067811865476;      // Math.SQRT1_2
const double kInvSqrt2Pi = 0.3989422804014327;    // 1 / Math.sqrt(2π)
const double kTwoOverSqrtPi = 1.1283791670955126;  // 2 / Math.sqrt(Math.PI)

// The ops in doubles, as kernels.ts's unaryFn (F64 kernels and any dtype without a fast path).
template <int OP> inline double unary_d(double x) {
  if constexpr (OP == U_NEG) return -x;
  else if constexpr (OP == U_ABS) return std::fabs(x);
  else if constexpr (OP == U_SIGN) return x != x ? x : x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0;
  else if constexpr (OP == U_EXP) return std::exp(x);
  else if constexpr (OP == U_LOG) return fdlibm::log(x);  // Math.log, Math.sin, Math.cos exactly
  else if constexpr (OP == U_SQRT) return std::sqrt(x);
  else if constexpr (OP == U_RSQRT) return 1 / std::sqrt(x);
  else if constexpr (OP == U_SIN) return fdlibm::sin(x);
  else if constexpr (OP == U_COS) return fdlibm::cos(x);
  else if constexpr (OP == U_TANH) return std::tanh(x);
  else if constexpr (OP == U_SIGMOID) return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x));
  else if constexpr (OP == U_RELU) return x > 0 ? x : x != x ? x : 0.0;
  // x·Φ(x); for x < 0 through erfc, which keeps the left tail's relative accuracy
  else if constexpr (OP == U_GELU) return x >= 0 ? 0.5 * x * (1 + std::erf(x * kInvSqrt2)) : 0.5 * x * std::erfc(-x * kInvSqrt2);
  else if constexpr (OP == U_GELU_TANH) return 0.5 * x * (1 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
  else if constexpr (OP == U_SILU) return x >= 0 ? x / (1 + std::exp(-x)) : (x * std::exp(x)) / (1 + std::exp(x));
  else if constexpr (OP == U_ERF) return std::erf(x);
  else if constexpr (OP == U_FLOOR) return std::floor(x);
  else if constexpr (OP == U_CEIL) return std::ceil(x);
  // half to even (the default rounding mode); like ref, −0 only for −0 itself (x + 0 turns a
  // −0 from rounding up a negative x into +0)
  else if constexpr (OP == U_ROUND) return x == 0 ? x : std::nearbyint(x) + 0.0;
  else return std::isfinite(x) ? 1.0 : 0.0;                    // U_ISFINITE
}

// d op(x)/dx, as kernels.ts's unaryDerivative.
template <int OP> inline double deriv_d(double x) {
  if constexpr (OP == U_NEG) return -1.0;
  else if constexpr (OP == U_ABS) return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0;
  else if constexpr (OP == U_EXP) return std::exp(x);
  else if constexpr (OP == U_LOG) return 1 / x;
  else if constexpr (OP == U_SQRT) return 0.5 / std::sqrt(x);
  else if constexpr (OP == U_RSQRT) return -0.5 * std::pow(x, -1.5);
  else if constexpr (OP == U_SIN) return fdlibm::cos(x);
  else if constexpr (OP == U_COS) return -fdlibm::sin(x);
  else if constexpr (OP == U_TANH) {
    double t = std::tanh(x);
    return 1 - t * t;
  } else if constexpr (OP == U_SIGMOID) {
    double s = unary_d<U_SIGMOID>(x);
    return s * (1 - s);
  } else if constexpr (OP == U_RELU) return x > 0 ? 1.0 : 0.0;
  else if constexpr (OP == U_GELU) {
    double cdf = x >= 0 ? 0.5 * (1 + std::erf(x * kInvSqrt2)) : 0.5 * std::erfc(-x * kInvSqrt2);
    return cdf + x * kInvSqrt2Pi * std::exp(-0.5 * x * x);
  } else if constexpr (OP == U_GELU_TANH) {
    double u = kSqrt2OverPi * (x + 0.044715 * x * x * x);
    double t = std::tanh(u);
    double du = kSqrt2OverPi * (1 + 3 * 0.044715 * x * x);
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
  } else if constexpr (OP == U_SILU) {
    double s = unary_d<U_SIGMOID>(x);
    return s * (1 + x * (1 - s));
  } else if constexpr (OP == U_ERF) return kTwoOverSqrtPi * std::exp(-x * x);
  else return 0.0;  // sign, floor, ceil, round, isfinite
}

// f32 versions: vectorised where it matters, and equal to rounding the f64 result (or within
// a few ulp for the transcendentals).
template <int OP> inline float unary_f(float x) {
  if constexpr (OP == U_NEG) return -x;
  else if constexpr (OP == U_ABS) return vm::abs(x);
  else if constexpr (OP == U_SIGN) return vm::select(x > 0, 1.0f, vm::select(x < 0, -1.0f, vm::select(x == x, 0.0f, x)));
  else if constexpr (OP == U_EXP) return vm::exp(x);
  else if constexpr (OP == U_LOG) return vm::log(x);
  else if constexpr (OP == U_SQRT) return std::sqrt(x);  // correctly rounded, = f32(√x in f64)
  else if constexpr (OP == U_RSQRT) return float(1.0 / std::sqrt(double(x)));  // exact as ref
  else if constexpr (OP == U_SIN) return float(fdlibm::sin(double(x)));  // exactly Math.sin
  else if constexpr (OP == U_COS) return float(fdlibm::cos(double(x)));
  else if constexpr (OP == U_TANH) return vm::tanh(x);
  else if constexpr (OP == U_SIGMOID) return vm::sigmoid(x);
  else if constexpr (OP == U_RELU) return vm::select(x > 0 || x != x, x, 0.0f);
  else if constexpr (OP == U_GELU) return vm::gelu(x);
  else if constexpr (OP == U_GELU_TANH) return vm::gelu_tanh(x);
  else if constexpr (OP == U_SILU) return vm::silu(x);
  else if constexpr (OP == U_ERF) return vm::erf(x);
  else if constexpr (OP == U_FLOOR) return std::floor(x);
  else if constexpr (OP == U_CEIL) return std::ceil(x);
  else if constexpr (OP == U_ROUND) return vm::select(x == 0, x, std::nearbyint(x) + 0.0f);
  else return 0.0f;  // U_ISFINITE has its own loop
}

// dy·op′(x) in f32. Derivatives that cancel in the naive form are rewritten: 1 − tanh² as
// 4e/(1 + e)² with e = e^(−2|x|), σ(1 − σ) as e/(1 + e)² with e = e^(−|x|).
template <int OP> inline float grad_f(float x, float g) {
  if constexpr (OP == U_EXP) return g * vm::exp(x);  // (|x| > 87: recomputed, see unary_grad_op)
  else if constexpr (OP == U_LOG) return float(double(g) * (1.0 / double(x)));
  else if constexpr (OP == U_SQRT) return float(double(g) * (0.5 / std::sqrt(double(x))));
  else if constexpr (OP == U_RSQRT) {
    double xd = x;
    double p = sel(xd == -INFINITY, double(INFINITY), xd * std::sqrt(xd));  // x^1.5; (−∞)^1.5 = +∞ as pow
    return float(double(g) * (-0.5 / p));
  } else if constexpr (OP == U_SIN) return float(double(g) * fdlibm::cos(double(x)));
  else if constexpr (OP == U_COS) return float(double(g) * -fdlibm::sin(double(x)));
  else if constexpr (OP == U_TANH) {
    float e = vm::exp(-2.0f * vm::abs(x));
    float d = 1.0f + e;
    return g * (4.0f * e / (d * d));
  } else if constexpr (OP == U_SIGMOID) {
    float e = vm::exp(-vm::abs(x));
    float d = 1.0f + e;
    return g * (e / (d * d));
  } else if constexpr (OP == U_GELU) {
    // Φ(x) + x·φ(x)
    return g * vm::fma(x * 0.398942280401432678f, vm::exp(-0.5f * x * x), vm::phi(x));
  } else if constexpr (OP == U_GELU_TANH) {
    // ½(1 + tanh u) + ½x(1 − tanh² u)·u′ = σ(2u) + ½x·sech²(u)·u′
    float x2 = x * x;
    float u = 0.797884560802865355f * vm::fma(0.044715f * x, x2, x);
    float du = 0.797884560802865355f * vm::fma(0.134145f, x2, 1.0f);
    float e = vm::exp(-2.0f * vm::abs(u));
    float r = 1.0f / (1.0f + e);
    float s = vm::select(u >= 0.0f, r, e * r);  // σ(2u)
    float sech2 = 4.0f * e * r * r;
    return g * vm::fma(0.5f * x * sech2, du, s);
  } else if constexpr (OP == U_SILU) {
    // σ(1 + x(1 − σ)), with σ and 1 − σ each from e = e^(−|x|)
    float e = vm::exp(-vm::abs(x));
    float r = 1.0f / (1.0f + e);
    float er = e * r;
    float s = vm::select(x >= 0.0f, r, er);
    float oms = vm::select(x >= 0.0f, er, r);
    return g * (s * vm::fma(x, oms, 1.0f));
  } else if constexpr (OP == U_ERF) return g * (1.12837916709551257f * vm::exp(-x * x));
  else if constexpr (OP == U_NEG) return -g;
  else if constexpr (OP == U_ABS) return g * vm::select(x > 0, 1.0f, vm::select(x < 0, -1.0f, 0.0f));
  else if constexpr (OP == U_RELU) return g * vm::select(x > 0, 1.0f, 0.0f);
  else return g * 0.0f;  // sign, floor, ceil, round, isfinite: zero (NaN where dy is ±∞/NaN, as ref)
}

// Ops built from libm calls (no SIMD versions): smaller grain, they cost ~10 ns an element.
constexpr bool heavy_op(int op) {
  return op != U_NEG && op != U_ABS && op != U_SIGN && op != U_SQRT && op != U_RELU && op != U_FLOOR &&
         op != U_CEIL && op != U_ROUND && op != U_ISFINITE;
}

template <int OP> void unary_f32(const float* __restrict x, float* __restrict o, int64_t n) {
  parallel_for(n, heavy_op(OP) ? kGrainHeavy : kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) o[i] = unary_f<OP>(x[i]);
  });
}

template <int OP> void unary_f64(const double* __restrict x, double* __restrict o, int64_t n) {
  parallel_for(n, heavy_op(OP) ? kGrainHeavy : kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) o[i] = unary_d<OP>(x[i]);
  });
}

// Any dtype: read as a number, apply the f64 op, store as a typed array would (I32: ToInt32).
template <int OP, DType D> void unary_any_typed(const void* x, void* out, int64_t n) {
  const St<D>* xs = static_cast<const St<D>*>(x);
  parallel_for(n, kGrainHeavy, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      double v = unary_d<OP>(to_d<D>(xs[i]));
      if constexpr (OP == U_ISFINITE) static_cast<uint8_t*>(out)[i] = v != 0;
      else static_cast<St<D>*>(out)[i] = from_d<D>(v);
    }
  });
}
template <int OP> void unary_any(const void* x, void* out, DType dt, int64_t n) {
  switch (dt) {
    case F32: unary_any_typed<OP, F32>(x, out, n); break;
    case F64: unary_any_typed<OP, F64>(x, out, n); break;
    case I32: unary_any_typed<OP, I32>(x, out, n); break;
    case BF16: unary_any_typed<OP, BF16>(x, out, n); break;
    case F16: unary_any_typed<OP, F16>(x, out, n); break;
    case BOOL: unary_any_typed<OP, BOOL>(x, out, n); break;
  }
}

template <int OP> void unary_op(const void* x, void* out, DType dt, int64_t n) {
  if constexpr (OP == U_ISFINITE) {
    // exponent not all ones
    if (dt == F32) {
      const float* xs = static_cast<const float*>(x);
      uint8_t* o = static_cast<uint8_t*>(out);
      parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) o[i] = (vm::bits(xs[i]) & 0x7f800000u) != 0x7f800000u;
      });
      return;
    }
    unary_any<OP>(x, out, dt, n);
    return;
  } else {
    if (dt == F32) {
      unary_f32<OP>(static_cast<const float*>(x), static_cast<float*>(out), n);
    } else if (dt == F64) {
      unary_f64<OP>(static_cast<const double*>(x), static_cast<double*>(out), n);
    } else if (dt == I32 && (OP == U_NEG || OP == U_ABS || OP == U_SIGN || OP == U_RELU)) {
      // integers stay integers; −(−2^31) wraps to −2^31 as ToInt32(2^31) does
      const int32_t* xs = static_cast<const int32_t*>(x);
      int32_t* o = static_cast<int32_t*>(out);
      parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) {
          int32_t v = xs[i];
          int32_t neg = int32_t(0u - uint32_t(v));
          if constexpr (OP == U_NEG) o[i] = neg;
          else if constexpr (OP == U_ABS) o[i] = v < 0 ? neg : v;
          else if constexpr (OP == U_SIGN) o[i] = (v > 0) - (v < 0);
          else o[i] = v > 0 ? v : 0;
        }
      });
    } else {
      unary_any<OP>(x, out, dt, n);
    }
  }
}

template <int OP, DType D> void unary_grad_any(const void* x, const void* dy, void* out, int64_t n) {
  const St<D>* xs = static_cast<const St<D>*>(x);
  const St<D>* g = static_cast<const St<D>*>(dy);
  St<D>* o = static_cast<St<D>*>(out);
  parallel_for(n, kGrainHeavy, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) o[i] = from_d<D>(to_d<D>(g[i]) * deriv_d<OP>(to_d<D>(xs[i])));
  });
}

template <int OP> void unary_grad_op(const void* x, const void* dy, void* out, DType dt, int64_t n) {
  if (dt == F32) {
    const float* __restrict xs = static_cast<const float*>(x);
    const float* __restrict g = static_cast<const float*>(dy);
    float* __restrict o = static_cast<float*>(out);
    parallel_for(n, heavy_op(OP) ? kGrainHeavy : kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; i++) o[i] = grad_f<OP>(xs[i], g[i]);
      if constexpr (OP == U_EXP) {
        // where e^x over- or underflows f32, dy·e^x may still be a normal f32: compute those
        // few in f64, as ref does (a vectorised scan first, as there are usually none)
        uint32_t any = 0;
        for (int64_t i = b; i < e; i++) any |= uint32_t(!(xs[i] >= -87.0f) | !(xs[i] <= 88.0f));
        if (any)
          for (int64_t i = b; i < e; i++)
            if (!(xs[i] >= -87.0f && xs[i] <= 88.0f)) o[i] = float(double(g[i]) * std::exp(double(xs[i])));
      }
    });
    return;
  }
  // f64 (and any other dtype): dy·op′(x) in doubles, as ref
  switch (dt) {
    case F32: break;
    case F64: unary_grad_any<OP, F64>(x, dy, out, n); break;
    case I32: unary_grad_any<OP, I32>(x, dy, out, n); break;
    case BF16: unary_grad_any<OP, BF16>(x, dy, out, n); break;
    case F16: unary_grad_any<OP, F16>(x, dy, out, n); break;
    case BOOL: unary_grad_any<OP, BOOL>(x, dy, out, n); break;
  }
}

// Runtime op → template instantiation.
template <template <int> class K, class... A> void dispatch_unary(UnaryOp op, A... args) {
  switch (op) {
#define KILN_U(OP) \
  case OP: K<OP>::run(args...); break;
    KILN_U(U_NEG) KILN_U(U_ABS) KILN_U(U_SIGN) KILN_U(U_EXP) KILN_U(U_LOG) KILN_U(U_SQRT) KILN_U(U_RSQRT)
    KILN_U(U_SIN) KILN_U(U_COS) KILN_U(U_TANH) KILN_U(U_SIGMOID) KILN_U(U_RELU) KILN_U(U_GELU)
    KILN_U(U_GELU_TANH) KILN_U(U_SILU) KILN_U(U_ERF) KILN_U(U_FLOOR) KILN_U(U_CEIL) KILN_U(U_ROUND)
    KILN_U(U_ISFINITE)
#undef KILN_U
  }
}
template <int OP> struct UnaryK {
  static void run(const void* x, void* out, DType dt, int64_t n) { unary_op<OP>(x, out, dt, n); }
};
template <int OP> struct UnaryGradK {
  static void run(const void* x, const void* dy, void* out, DType dt, int64_t n) { unary_grad_op<OP>(x, dy, out, dt, n); }
};

void unary(UnaryOp op, const void* x, void* out, DType dt, int64_t n) {
  if (n > 0) dispatch_unary<UnaryK>(op, x, out, dt, n);
}
void unary_grad(UnaryOp op, const void* x, const void* dy, void* out, DType dt, int64_t n) {
  if (n > 0) dispatch_unary<UnaryGradK>(op, x, dy, out, dt, n);
}

// ---- binary -------------------------------------------------------------------------------------

// Math.pow: as C pow, except that a NaN exponent gives NaN even for base 1, and (±1)^±∞ is NaN.
inline double js_pow(double a, double b) {
  if (b != b) return b;
  if (std::fabs(a) == 1 && std::isinf(b)) return std::numeric_limits<double>::quiet_NaN();
  return std::pow(a, b);
}

// JS truthiness of a number: non-zero and not NaN.
template <class T> inline bool truthy(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != 0 && v == v;
  else return v != 0;
}

constexpr bool is_logical(int op) { return op >= B_EQ; }  // comparisons, and, or: bool out

// One binary op on values of type T (float, double, int32 or bool bytes), as kernels.ts's
// binaryFn: floats compute in their own precision (for +, −, ·, / that is the f64 result
// rounded once); i32 wraps like int32 arithmetic (Math.imul; pow by squaring, negative
// exponent → 0; division truncates and x/0 = 0).
template <int OP, class T> struct Bin {
  using Out = std::conditional_t<is_logical(OP), uint8_t, T>;
  static inline Out f(T a, T b) {
    if constexpr (OP == B_EQ) return a == b;
    else if constexpr (OP == B_NE) return a != b;
    else if constexpr (OP == B_LT) return a < b;
    else if constexpr (OP == B_LE) return a <= b;
    else if constexpr (OP == B_GT) return a > b;
    else if constexpr (OP == B_GE) return a >= b;
    else if constexpr (OP == B_AND) return truthy(a) && truthy(b);
    else if constexpr (OP == B_OR) return truthy(a) || truthy(b);
    else if constexpr (std::is_floating_point_v<T>) {
      if constexpr (OP == B_ADD) return a + b;
      else if constexpr (OP == B_SUB) return a - b;
      else if constexpr (OP == B_MUL) return a * b;
      else if constexpr (OP == B_DIV) return a / b;
      else if constexpr (OP == B_POW) return T(js_pow(double(a), double(b)));
      // NaN propagates; otherwise the first argument unless the second is strictly larger (smaller)
      // a > b ? a : b, and NaN if either is (a's when a is NaN, else b's)
      else if constexpr (OP == B_MAXIMUM) return sel(a > b || a != a, a, b);
      else return sel(a < b || a != a, a, b);  // B_MINIMUM
    } else {
      static_assert(std::is_same_v<T, int32_t>, "integer arithmetic is i32");
      uint32_t ua = uint32_t(a), ub = uint32_t(b);
      if constexpr (OP == B_ADD) return int32_t(ua + ub);
      else if constexpr (OP == B_SUB) return int32_t(ua - ub);
      else if constexpr (OP == B_MUL) return int32_t(ua * ub);
      else if constexpr (OP == B_DIV) return b == 0 ? 0 : int32_t(uint32_t(int64_t(a) / int64_t(b)));
      else if constexpr (OP == B_POW) {
        if (b < 0) return 0;
        uint32_t r = 1, base = ua, e = ub;
        while (e > 0) {
          if (e & 1) r *= base;
          base *= base;
          e >>= 1;
        }
        return int32_t(r);
      } else if constexpr (OP == B_MAXIMUM) return a > b ? a : b;
      else return a < b ? a : b;  // B_MINIMUM
    }
  }
};

// x·x for pow with a broadcast exponent of 2 (pow(x, 2) is exactly x·x in every dtype)
template <class T> struct Square {
  using Out = T;
  static inline T f(T a, T) {
    if constexpr (std::is_same_v<T, int32_t>) return int32_t(uint32_t(a) * uint32_t(a));
    else return a * a;
  }
};

// out[idx] = Op::f(a[Σ idx·st.a], b[Σ idx·st.b]) over st.shape, out contiguous.
template <class Op, class T> void binary_run(const T* a, const T* b, typename Op::Out* out, const Strides& st, int64_t grain) {
  using O = typename Op::Out;
  int64_t ost[kMaxRank];
  contiguous_strides(st.rank, st.shape, ost);
  const int64_t* strides[3] = {ost, st.a, st.b};
  Plan p = make_plan(st.rank, st.shape, 3, strides);
  if (p.total <= 0) return;
  const int64_t sa = p.st[1][p.rank - 1], sb = p.st[2][p.rank - 1];
  parallel_for(p.total, grain, [&](int64_t b0, int64_t e0) {
    for_runs(p, b0, e0, [&](const int64_t* off, int64_t len) {
      O* __restrict o = out + off[0];
      const T* __restrict pa = a + off[1];
      const T* __restrict pb = b + off[2];
      if (sa == 1 && sb == 1) {
        for (int64_t j = 0; j < len; j++) o[j] = Op::f(pa[j], pb[j]);
      } else if (sa == 1 && sb == 0) {
        const T bv = *pb;
        for (int64_t j = 0; j < len; j++) o[j] = Op::f(pa[j], bv);
      } else if (sa == 0 && sb == 1) {
        const T av = *pa;
        for (int64_t j = 0; j < len; j++) o[j] = Op::f(av, pb[j]);
      } else {
        for (int64_t j = 0; j < len; j++) o[j] = Op::f(pa[j * sa], pb[j * sb]);
      }
    });
  });
}

// True when every stride is 0: the operand is one element.
bool all_zero(const int64_t* s, int rank) {
  for (int d = 0; d < rank; d++)
    if (s[d] != 0) return false;
  return true;
}

template <int OP, class T> void binary_typed(const void* a, const void* b, void* out, const Strides& st) {
  const T* pa = static_cast<const T*>(a);
  const T* pb = static_cast<const T*>(b);
  auto* o = static_cast<typename Bin<OP, T>::Out*>(out);
  if constexpr (OP == B_POW) {
    int64_t total = 1;
    for (int d = 0; d < st.rank; d++) total *= st.shape[d];
    if (total > 0 && all_zero(st.b, st.rank) && double(*pb) == 2.0) {
      binary_run<Square<T>>(pa, pb, o, st, kGrain);
      return;
    }
    binary_run<Bin<OP, T>>(pa, pb, o, st, std::is_floating_point_v<T> ? kGrainHeavy : kGrain);
  } else {
    binary_run<Bin<OP, T>>(pa, pb, o, st, kGrain);
  }
}

// Ref's semantics for a dtype with no typed path (arithmetic on bool bytes, halves): operands
// read as numbers, the JS float op, the result stored as the typed array would (ToUint8 for
// bool storage, nearest-even for halves).
template <DType D> void binary_any(BinaryOp op, const void* a, const void* b, void* out, const Strides& st) {
  using T = St<D>;
  const T* pa = static_cast<const T*>(a);
  const T* pb = static_cast<const T*>(b);
  int64_t ost[kMaxRank];
  contiguous_strides(st.rank, st.shape, ost);
  const int64_t* strides[3] = {ost, st.a, st.b};
  Plan p = make_plan(st.rank, st.shape, 3, strides);
  if (p.total <= 0) return;
  const int64_t sa = p.st[1][p.rank - 1], sb = p.st[2][p.rank - 1];
  parallel_for(p.total, kGrainHeavy, [&](int64_t b0, int64_t e0) {
    for_runs(p, b0, e0, [&](const int64_t* off, int64_t len) {
      for (int64_t j = 0; j < len; j++) {
        double x = to_d<D>(pa[off[1] + j * sa]), y = to_d<D>(pb[off[2] + j * sb]);
        double v = 0;
        switch (op) {
          case B_ADD: v = x + y; break;
          case B_SUB: v = x - y; break;
          case B_MUL: v = x * y; break;
          case B_DIV: v = x / y; break;
          case B_POW: v = js_pow(x, y); break;
          case B_MAXIMUM: v = x != x || y != y ? std::numeric_limits<double>::quiet_NaN() : x > y ? x : y; break;
          case B_MINIMUM: v = x != x || y != y ? std::numeric_limits<double>::quiet_NaN() : x < y ? x : y; break;
          case B_EQ: v = x == y; break;
          case B_NE: v = x != y; break;
          case B_LT: v = x < y; break;
          case B_LE: v = x <= y; break;
          case B_GT: v = x > y; break;
          case B_GE: v = x >= y; break;
          case B_AND: v = truthy(x) && truthy(y); break;
          case B_OR: v = truthy(x) || truthy(y); break;
        }
        if (is_logical(op)) static_cast<uint8_t*>(out)[off[0] + j] = v != 0;
        else if constexpr (D == BOOL) static_cast<uint8_t*>(out)[off[0] + j] = uint8_t(uint32_t(to_int32(v)));
        else static_cast<T*>(out)[off[0] + j] = from_d<D>(v);
      }
    });
  });
}

template <class T> void binary_dispatch(BinaryOp op, const void* a, const void* b, void* out, const Strides& st) {
  switch (op) {
#define KILN_B(OP) \
  case OP: binary_typed<OP, T>(a, b, out, st); break;
    KILN_B(B_ADD) KILN_B(B_SUB) KILN_B(B_MUL) KILN_B(B_DIV) KILN_B(B_POW) KILN_B(B_MAXIMUM) KILN_B(B_MINIMUM)
    KILN_B(B_EQ) KILN_B(B_NE) KILN_B(B_LT) KILN_B(B_LE) KILN_B(B_GT) KILN_B(B_GE) KILN_B(B_AND) KILN_B(B_OR)
#undef KILN_B
  }
}

void binary(BinaryOp op, const void* a, const void* b, void* out, const Strides& st, DType dt) {
  switch (dt) {
    case F32: binary_dispatch<float>(op, a, b, out, st); break;
    case F64: binary_dispatch<double>(op, a, b, out, st); break;
    case I32: binary_dispatch<int32_t>(op, a, b, out, st); break;
    case BOOL:
      // comparisons and logic on the bytes; arithmetic on bools (the TS layer sends it as i32)
      // falls back to ref's number semantics
      switch (op) {
#define KILN_B(OP) \
  case OP: binary_run<Bin<OP, uint8_t>>(static_cast<const uint8_t*>(a), static_cast<const uint8_t*>(b), static_cast<uint8_t*>(out), st, kGrain); break;
        KILN_B(B_EQ) KILN_B(B_NE) KILN_B(B_LT) KILN_B(B_LE) KILN_B(B_GT) KILN_B(B_GE) KILN_B(B_AND) KILN_B(B_OR)
#undef KILN_B
        default: binary_any<BOOL>(op, a, b, out, st); break;
      }
      break;
    case BF16: binary_any<BF16>(op, a, b, out, st); break;
    case F16: binary_any<F16>(op, a, b, out, st); break;
  }
}

// ---- where --------------------------------------------------------------------------------------

template <class T> void where_typed(const uint8_t* cond, const T* x, const T* y, T* out, const Strides& st) {
  int64_t ost[kMaxRank];
  contiguous_strides(st.rank, st.shape, ost);
  const int64_t* strides[4] = {ost, st.a, st.b, st.c};
  Plan p = make_plan(st.rank, st.shape, 4, strides);
  if (p.total <= 0) return;
  const int R = p.rank - 1;
  const int64_t sc = p.st[1][R], sx = p.st[2][R], sy = p.st[3][R];
  parallel_for(p.total, kGrain, [&](int64_t b0, int64_t e0) {
    for_runs(p, b0, e0, [&](const int64_t* off, int64_t len) {
      T* __restrict o = out + off[0];
      const uint8_t* __restrict c = cond + off[1];
      const T* __restrict px = x + off[2];
      const T* __restrict py = y + off[3];
      if (sc == 1 && sx == 1 && sy == 1) {
        for (int64_t j = 0; j < len; j++) o[j] = c[j] ? px[j] : py[j];
      } else if (sc == 1 && sx == 1 && sy == 0) {
        const T yv = *py;
        for (int64_t j = 0; j < len; j++) o[j] = c[j] ? px[j] : yv;
      } else if (sc == 1 && sx == 0 && sy == 1) {
        const T xv = *px;
        for (int64_t j = 0; j < len; j++) o[j] = c[j] ? xv : py[j];
      } else if (sc == 1 && sx == 0 && sy == 0) {
        const T xv = *px, yv = *py;
        for (int64_t j = 0; j < len; j++) o[j] = c[j] ? xv : yv;
      } else if (sc == 0) {
        // one condition for the whole run: a copy of one side
        const T* src = *c ? px : py;
        const int64_t s = *c ? sx : sy;
        for (int64_t j = 0; j < len; j++) o[j] = src[j * s];
      } else {
        for (int64_t j = 0; j < len; j++) o[j] = c[j * sc] ? px[j * sx] : py[j * sy];
      }
    });
  });
}

// out[idx] = cond ? x : y over broadcast strides: raw elements, any dtype.
void where(const uint8_t* cond, const void* x, const void* y, void* out, const Strides& st, DType dt) {
  switch (item_size(dt)) {
    case 1: where_typed(cond, static_cast<const uint8_t*>(x), static_cast<const uint8_t*>(y), static_cast<uint8_t*>(out), st); break;
    case 2: where_typed(cond, static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(y), static_cast<uint16_t*>(out), st); break;
    case 4: where_typed(cond, static_cast<const uint32_t*>(x), static_cast<const uint32_t*>(y), static_cast<uint32_t*>(out), st); break;
    default: where_typed(cond, static_cast<const uint64_t*>(x), static_cast<const uint64_t*>(y), static_cast<uint64_t*>(out), st); break;
  }
}

// ---- reduce -------------------------------------------------------------------------------------
//
// x is [outer, r, inner] → out [outer, inner]. Sums accumulate in f64 for floats (as ref) and
// in i64 for integers (i32 out wraps, as ToInt32 of ref's exact sum). Over the last axis
// (inner = 1) a row is summed with 16 interleaved accumulators combined pairwise, in fixed
// 32K-element blocks: the rounding differs from ref's one running sum by a few f64 ulp (a
// f32 result is the same almost always). Over other axes each output is one running sum in
// row order, exactly ref's, unless r is long enough to be split into blocks. max/min/arg*:
// NaN wins (its first index), ties keep the first index, exactly as reduceRef.

constexpr int64_t kRowBlock = 32768;

template <class Acc, class T> inline Acc sum_row(const T* __restrict x, int64_t n) {
  constexpr int W = 16;
  Acc s[W] = {};
  int64_t j = 0;
  for (; j + W <= n; j += W)
    for (int k = 0; k < W; k++) s[k] += Acc(x[j + k]);
  for (int k = 0; j < n; j++, k++) s[k] += Acc(x[j]);
  for (int w = W / 2; w >= 1; w /= 2)
    for (int k = 0; k < w; k++) s[k] += s[k + w];
  return s[0];
}

// The stored result of a sum: f32/f64 round, integers wrap to i32.
template <class O, class Acc> inline O sum_out(Acc s) {
  if constexpr (std::is_same_v<O, int32_t>) return int32_t(uint32_t(uint64_t(s)));
  else return O(s);
}

template <class T, class Acc, class O> void reduce_sum(const T* x, O* out, int64_t outer, int64_t r, int64_t inner) {
  if (inner == 1) {
    if (r <= kRowBlock) {
      parallel_for(outer, imax(1, kGrain / r), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; o++) out[o] = sum_out<O>(sum_row<Acc>(x + o * r, r));
      });
      return;
    }
    // long rows: block partial sums in parallel, then each row's blocks in order
    const int64_t nb = (r + kRowBlock - 1) / kRowBlock;
    Buffer<Acc> part(outer * nb);
    parallel_for(outer * nb, 1, [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; u++) {
        int64_t o = u / nb, k = u % nb;
        int64_t j0 = k * kRowBlock, len = imin(kRowBlock, r - j0);
        part[u] = sum_row<Acc>(x + o * r + j0, len);
      }
    });
    for (int64_t o = 0; o < outer; o++) {
      Acc s = 0;
      for (int64_t k = 0; k < nb; k++) s += part[o * nb + k];
      out[o] = sum_out<O>(s);
    }
    return;
  }
  // Sum over a middle axis: vectorise across inner, blocks of IB columns, rows in order.
  constexpr int64_t IB = 256;
  const int64_t nib = (inner + IB - 1) / IB;
  const int64_t width = imin(inner, IB);
  const int64_t units = outer * nib;
  // Split r only when there are too few (outer, column block) units to share among threads.
  int64_t rb = r;
  if (units < 4 && r * width > 8 * kGrain) rb = imax(1, 2 * kGrain / width);
  const int64_t nrb = (r + rb - 1) / rb;
  auto column_block = [&](int64_t o, int64_t i0, int64_t w, int64_t j0, int64_t j1, Acc* acc) {
    for (int64_t i = 0; i < w; i++) acc[i] = 0;
    for (int64_t j = j0; j < j1; j++) {
      const T* __restrict row = x + (o * r + j) * inner + i0;
      for (int64_t i = 0; i < w; i++) acc[i] += Acc(row[i]);
    }
  };
  if (nrb == 1) {
    parallel_for(units, imax(1, kGrain / (r * width)), [&](int64_t b, int64_t e) {
      Acc acc[IB];
      for (int64_t u = b; u < e; u++) {
        int64_t o = u / nib, i0 = (u % nib) * IB, w = imin(IB, inner - i0);
        column_block(o, i0, w, 0, r, acc);
        for (int64_t i = 0; i < w; i++) out[o * inner + i0 + i] = sum_out<O>(acc[i]);
      }
    });
    return;
  }
  Buffer<Acc> part(units * nrb * width);
  parallel_for(units * nrb, 1, [&](int64_t b, int64_t e) {
    for (int64_t v = b; v < e; v++) {
      int64_t u = v / nrb, k = v % nrb;
      int64_t o = u / nib, i0 = (u % nib) * IB, w = imin(IB, inner - i0);
      column_block(o, i0, w, k * rb, imin(r, (k + 1) * rb), &part[v * width]);
    }
  });
  for (int64_t u = 0; u < units; u++) {
    int64_t o = u / nib, i0 = (u % nib) * IB, w = imin(IB, inner - i0);
    for (int64_t i = 0; i < w; i++) {
      Acc s = 0;
      for (int64_t k = 0; k < nrb; k++) s += part[(u * nrb + k) * width + i];
      out[o * inner + i0 + i] = sum_out<O>(s);
    }
  }
}

// Whether v replaces the current best in reduceRef's scan (max: NaN or strictly larger, while
// best is not NaN; min likewise).
template <bool MAX, class T> inline bool better(T v, T best) {
  if constexpr (std::is_floating_point_v<T>) return best == best && (MAX ? !(v <= best) : !(v >= best));
  else return MAX ? v > best : v < best;
}

// Index of the winner of x[0..n) (n ≥ 1): the first NaN if any, else the first extreme.
template <bool MAX, class T> int64_t arg_row(const T* __restrict x, int64_t n) {
  constexpr int W = 16;
  if (n < 2 * W || n > int64_t(INT32_MAX)) {
    T best = x[0];
    int64_t arg = 0;
    for (int64_t j = 1; j < n && best == best; j++)
      if (better<MAX>(x[j], best)) {
        best = x[j];
        arg = j;
      }
    return arg;
  }
  // W interleaved scans (lane k sees k, k+W, …), each with reduceRef's rule; a lane's result is
  // its first NaN or its first extreme, and the lanes are combined by the same rule on indices.
  T best[W];
  int32_t idx[W];
  for (int k = 0; k < W; k++) {
    best[k] = x[k];
    idx[k] = k;
  }
  int64_t j = W;
  for (; j + W <= n; j += W)
    for (int k = 0; k < W; k++) {
      T v = x[j + k];
      bool take = better<MAX>(v, best[k]);
      best[k] = take ? v : best[k];
      idx[k] = take ? int32_t(j + k) : idx[k];
    }
  for (int k = 0; j + k < n; k++) {
    T v = x[j + k];
    if (better<MAX>(v, best[k])) {
      best[k] = v;
      idx[k] = int32_t(j + k);
    }
  }
  T b = best[0];
  int64_t a = idx[0];
  for (int k = 1; k < W; k++) {
    T v = best[k];
    bool take;
    if constexpr (std::is_floating_point_v<T>) {
      if (b != b) take = v != v && idx[k] < a;
      else take = v != v || (MAX ? v > b : v < b) || (v == b && idx[k] < a);
    } else {
      take = (MAX ? v > b : v < b) || (v == b && idx[k] < a);
    }
    if (take) {
      b = v;
      a = idx[k];
    }
  }
  return a;
}

// max/min (ARG = false: out is the winning element, as O) and argmax/argmin (out i32).
template <bool MAX, bool ARG, class T, class O> void reduce_ext(const T* x, O* out, int64_t outer, int64_t r, int64_t inner) {
  if (inner == 1) {
    auto emit = [&](int64_t o, int64_t a) {
      if constexpr (ARG) out[o] = O(a);
      else out[o] = O(x[o * r + a]);
    };
    if (r <= kRowBlock) {
      parallel_for(outer, imax(1, kGrain / r), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; o++) emit(o, arg_row<MAX>(x + o * r, r));
      });
      return;
    }
    // long rows: each block's winner, then the blocks in order by the same rule
    const int64_t nb = (r + kRowBlock - 1) / kRowBlock;
    Buffer<int64_t> part(outer * nb);
    parallel_for(outer * nb, 1, [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; u++) {
        int64_t o = u / nb, j0 = (u % nb) * kRowBlock;
        part[u] = j0 + arg_row<MAX>(x + o * r + j0, imin(kRowBlock, r - j0));
      }
    });
    for (int64_t o = 0; o < outer; o++) {
      const T* row = x + o * r;
      int64_t a = part[o * nb];
      for (int64_t k = 1; k < nb && row[a] == row[a]; k++) {
        int64_t c = part[o * nb + k];
        if (better<MAX>(row[c], row[a])) a = c;
      }
      emit(o, a);
    }
    return;
  }
  // over a middle axis: per column, vectorised across the columns of a block
  constexpr int64_t IB = 256;
  const int64_t nib = (inner + IB - 1) / IB;
  const int64_t width = imin(inner, IB);
  parallel_for(outer * nib, imax(1, kGrain / (r * width)), [&](int64_t b, int64_t e) {
    T best[IB];
    int32_t idx[IB];
    for (int64_t u = b; u < e; u++) {
      int64_t o = u / nib, i0 = (u % nib) * IB, w = imin(IB, inner - i0);
      const T* base = x + o * r * inner + i0;
      for (int64_t i = 0; i < w; i++) {
        best[i] = base[i];
        idx[i] = 0;
      }
      for (int64_t j = 1; j < r; j++) {
        const T* __restrict row = base + j * inner;
        for (int64_t i = 0; i < w; i++) {
          T v = row[i];
          bool take = better<MAX>(v, best[i]);
          best[i] = take ? v : best[i];
          idx[i] = take ? int32_t(j) : idx[i];
        }
      }
      for (int64_t i = 0; i < w; i++) {
        if constexpr (ARG) out[o * inner + i0 + i] = O(idx[i]);
        else out[o * inner + i0 + i] = O(best[i]);
      }
    }
  });
}

template <class T, class SumAcc, class SumOut, class ExtOut>
void reduce_typed(ReduceOp op, const void* xv, void* outv, int64_t outer, int64_t r, int64_t inner) {
  const T* x = static_cast<const T*>(xv);
  switch (op) {
    case R_SUM: reduce_sum<T, SumAcc>(x, static_cast<SumOut*>(outv), outer, r, inner); break;
    case R_MAX: reduce_ext<true, false>(x, static_cast<ExtOut*>(outv), outer, r, inner); break;
    case R_MIN: reduce_ext<false, false>(x, static_cast<ExtOut*>(outv), outer, r, inner); break;
    case R_ARGMAX: reduce_ext<true, true>(x, static_cast<int32_t*>(outv), outer, r, inner); break;
    case R_ARGMIN: reduce_ext<false, true>(x, static_cast<int32_t*>(outv), outer, r, inner); break;
  }
}

// Halves (never sent: the TS layer reduces them in f32): through an f32 copy, out rounded back.
template <DType D> void reduce_half(ReduceOp op, const void* xv, void* outv, int64_t outer, int64_t r, int64_t inner) {
  const St<D>* x = static_cast<const St<D>*>(xv);
  const int64_t n = outer * r * inner, m = outer * inner;
  Buffer<float> xf(n);
  for (int64_t i = 0; i < n; i++) xf[i] = to_f<D>(x[i]);
  if (op == R_ARGMAX || op == R_ARGMIN) {
    reduce_typed<float, double, float, float>(op, xf.data(), outv, outer, r, inner);
    return;
  }
  Buffer<float> of(m);
  reduce_typed<float, double, float, float>(op, xf.data(), of.data(), outer, r, inner);
  St<D>* out = static_cast<St<D>*>(outv);
  for (int64_t i = 0; i < m; i++) out[i] = from_f<D>(of[i]);
}

void reduce(ReduceOp op, const void* x, DType dt, int64_t outer, int64_t r, int64_t inner, void* out) {
  if (outer <= 0 || inner <= 0) return;
  if (r <= 0) {  // an empty sum (the TS layer fills these itself)
    if (op == R_SUM) fill(out, dt == I32 || dt == BOOL ? I32 : dt, outer * inner, 0);
    return;
  }
  switch (dt) {
    case F32: reduce_typed<float, double, float, float>(op, x, out, outer, r, inner); break;
    case F64: reduce_typed<double, double, double, double>(op, x, out, outer, r, inner); break;
    case I32: reduce_typed<int32_t, int64_t, int32_t, int32_t>(op, x, out, outer, r, inner); break;
    // bool: every output is i32 (sums count; max/min give 0 or 1), as the TS layer allocates
    case BOOL: reduce_typed<uint8_t, int64_t, int32_t, int32_t>(op, x, out, outer, r, inner); break;
    case BF16: reduce_half<BF16>(op, x, out, outer, r, inner); break;
    case F16: reduce_half<F16>(op, x, out, outer, r, inner); break;
  }
}

// ---- gather / scatter_add -----------------------------------------------------------------------

// out[o, j, i] = x[o, index(o, j, i), i]: raw elements, any dtype.
template <class T> void gather_typed(const T* x, T* out, const IndexParams& p) {
  const int64_t rows = p.outer * p.n;
  parallel_for(rows, imax(1, kGrain / p.inner), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; row++) {
      const int64_t o = row / p.n, j = row % p.n;
      const int32_t* ip = p.index + o * p.s0 + j * p.s1;
      T* __restrict d = out + row * p.inner;
      if (p.s2 == 0) {  // one index for the row (index_select, embedding): copy a row
        const T* __restrict s = x + (o * p.src_dim + *ip) * p.inner;
        if (p.inner == 1) d[0] = s[0];
        else std::memcpy(d, s, size_t(p.inner) * sizeof(T));
      } else {
        const T* s = x + o * p.src_dim * p.inner;
        for (int64_t i = 0; i < p.inner; i++) d[i] = s[int64_t(ip[i * p.s2]) * p.inner + i];
      }
    }
  });
}

void gather(const void* x, void* out, const IndexParams& p) {
  if (p.outer <= 0 || p.n <= 0 || p.inner <= 0) return;
  switch (item_size(p.dtype)) {
    case 1: gather_typed(static_cast<const uint8_t*>(x), static_cast<uint8_t*>(out), p); break;
    case 2: gather_typed(static_cast<const uint16_t*>(x), static_cast<uint16_t*>(out), p); break;
    case 4: gather_typed(static_cast<const uint32_t*>(x), static_cast<uint32_t*>(out), p); break;
    default: gather_typed(static_cast<const uint64_t*>(x), static_cast<uint64_t*>(out), p); break;
  }
}

// dst[o, index(o, j, i), i] += src[o, j, i]. Every destination element receives its additions
// in increasing j, as ref's loop; tasks own disjoint destinations — (o, column block) pairs,
// and when those are too few to share, also ranges of destination indices (each task reads
// all indices and adds only those in its range) — so there are no races and the result does
// not depend on the thread count.
template <class T, class Add> void scatter_typed(T* dst, const T* src, const IndexParams& p, Add add) {
  constexpr int64_t IB = 1024;
  const int64_t nib = (p.inner + IB - 1) / IB;
  const int64_t width = imin(p.inner, IB);
  const int64_t base_units = p.outer * nib;
  const int64_t threads = num_threads();
  int64_t parts = 1;
  if (base_units < 2 * threads && p.n * width >= kGrain) parts = imin(p.src_dim, 4 * threads);
  const int64_t units = base_units * parts;
  parallel_for(units, imax(1, kGrain / (p.n * width)), [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; u++) {
      const int64_t part = u % parts, rest = u / parts;
      const int64_t o = rest / nib, i0 = (rest % nib) * IB, w = imin(IB, p.inner - i0);
      const int64_t t0 = p.src_dim * part / parts, t1 = p.src_dim * (part + 1) / parts;
      T* dbase = dst + o * p.src_dim * p.inner + i0;
      for (int64_t j = 0; j < p.n; j++) {
        const int32_t* ip = p.index + o * p.s0 + j * p.s1;
        const T* __restrict s = src + (o * p.n + j) * p.inner + i0;
        if (p.s2 == 0) {
          const int64_t t = *ip;
          if (t < t0 || t >= t1) continue;
          T* __restrict d = dbase + t * p.inner;
          for (int64_t i = 0; i < w; i++) d[i] = add(d[i], s[i]);
        } else {
          for (int64_t i = 0; i < w; i++) {
            const int64_t t = ip[(i0 + i) * p.s2];
            if (t < t0 || t >= t1) continue;
            T& d = dbase[t * p.inner + i];
            d = add(d, s[i]);
          }
        }
      }
    }
  });
}

void scatter_add(void* dst, const void* src, const IndexParams& p) {
  if (p.outer <= 0 || p.n <= 0 || p.inner <= 0) return;
  switch (p.dtype) {
    case F32:
      scatter_typed(static_cast<float*>(dst), static_cast<const float*>(src), p, [](float a, float b) { return a + b; });
      break;
    case F64:
      scatter_typed(static_cast<double*>(dst), static_cast<const double*>(src), p, [](double a, double b) { return a + b; });
      break;
    case I32:  // Int32Array +=: wraps
      scatter_typed(static_cast<int32_t*>(dst), static_cast<const int32_t*>(src), p,
                    [](int32_t a, int32_t b) { return int32_t(uint32_t(a) + uint32_t(b)); });
      break;
    case BOOL:  // Uint8Array +=: wraps modulo 256
      scatter_typed(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), p,
                    [](uint8_t a, uint8_t b) { return uint8_t(a + b); });
      break;
    case BF16:  // (the TS layer sends halves as f32) add the values, round back
      scatter_typed(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), p,
                    [](uint16_t a, uint16_t b) { return bf16_bits(bf16_value(a) + bf16_value(b)); });
      break;
    case F16:
      scatter_typed(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), p,
                    [](uint16_t a, uint16_t b) { return f16_bits(f16_value(a) + f16_value(b)); });
      break;
  }
}

}  // namespace

void fill_elementwise(Table& t) {
  t.fill = fill;
  t.random = random;
  t.cast = cast;
  t.copy = copy;
  t.unary = unary;
  t.unary_grad = unary_grad;
  t.binary = binary;
  t.where = where;
  t.reduce = reduce;
  t.gather = gather;
  t.scatter_add = scatter_add;
}

}  // namespace KILN_ISA
}  // namespace kiln
