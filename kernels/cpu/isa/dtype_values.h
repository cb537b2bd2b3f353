// Stored elements and the numbers they are, as JavaScript has them (src/backend/dtype.ts and
// the typed arrays): the storage type of each dtype, decoding to a number, and encoding a
// number (halves rounded to nearest even, i32 by ToInt32, bool as v ≠ 0). Shared by the loop
// kernels; KILN_DISPATCH turns a runtime dtype into a template argument.
#pragma once
#include <cmath>
#include <cstdint>

#include "bits.h"
#include "isa.h"
#include "vecmath.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

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

// FN<U>(args...) with U the unsigned integer of dt's size: for kernels that move raw elements.
#define KILN_DISPATCH_RAW(dt, FN, ...)            \
  switch (item_size(dt)) {                        \
    case 1: FN<uint8_t>(__VA_ARGS__); break;      \
    case 2: FN<uint16_t>(__VA_ARGS__); break;     \
    case 4: FN<uint32_t>(__VA_ARGS__); break;     \
    default: FN<uint64_t>(__VA_ARGS__); break;    \
  }

}  // namespace
}  // namespace KILN_ISA
}  // namespace kiln
