// Backend.unary and Backend.unaryGrad (the backward of every unary op): ops in doubles as
// kernels.ts's unaryFn / unaryDerivative, f32 versions vectorised with vecmath.h. Semantics
// and the way the loop kernels are written: loops.h.
#include <cmath>
#include <cstdint>

#include "bits.h"
#include "dtype_values.h"
#include "isa.h"
#include "loops.h"
#include "vecmath.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

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
  else if constexpr (OP == U_LOG) return std::log(x);
  else if constexpr (OP == U_SQRT) return std::sqrt(x);
  else if constexpr (OP == U_RSQRT) return 1 / std::sqrt(x);
  else if constexpr (OP == U_SIN) return std::sin(x);
  else if constexpr (OP == U_COS) return std::cos(x);
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
  else if constexpr (OP == U_SIN) return std::cos(x);
  else if constexpr (OP == U_COS) return -std::sin(x);
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
  else if constexpr (OP == U_SIN) return float(std::sin(double(x)));  // f64 libm, rounded once
  else if constexpr (OP == U_COS) return float(std::cos(double(x)));
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
  } else if constexpr (OP == U_SIN) return float(double(g) * std::cos(double(x)));
  else if constexpr (OP == U_COS) return float(double(g) * -std::sin(double(x)));
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

// x and out have one dtype (out is bool for isfinite)
void unary(const UnaryArgs& a) {
  if (a.out.size > 0) dispatch_unary<UnaryK>(a.op, a.x.data, a.out.data, a.x.dtype, a.out.size);
}
void unary_grad(const UnaryGradArgs& a) {
  if (a.out.size > 0) dispatch_unary<UnaryGradK>(a.op, a.x.data, a.dy.data, a.out.data, a.x.dtype, a.out.size);
}

}  // namespace

void add_unary(Table& t) {
  t.unary = unary;
  t.unary_grad = unary_grad;
}

}  // namespace KILN_ISA
}  // namespace kiln
