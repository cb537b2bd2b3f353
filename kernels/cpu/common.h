// Helpers shared by the CPU kernels: half-precision conversion (round to nearest even, as
// src/backend/dtype.ts), the Philox4x32-10 stream (as src/backend/philox.ts), and typed loads.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace kiln {

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // every NaN → the canonical quiet NaN, as dtype.ts
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  float f;
  if (e == 0) {
    f = std::ldexp(float(m), -24);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u |= sign;
    std::memcpy(&f, &u, 4);
    return f;
  }
  uint32_t u = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e + 112) << 23) | (m << 13));
  std::memcpy(&f, &u, 4);
  return f;
}

// f32 → f16 bits, round to nearest even (subnormals and overflow to ±inf included).
inline uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7e00;  // canonical NaN, as dtype.ts
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // ≥ 65520 rounds to inf
  if (a < 0x38800000u) {                                    // below 2^-14: subnormal
    // value / 2^-24, rounded half to even
    float v;
    std::memcpy(&v, &a, 4);
    float scaled = v * 16777216.0f;  // exact: power-of-two scale
    float r = std::nearbyint(scaled);  // default rounding mode is to nearest even
    return uint16_t(sign | uint32_t(r));
  }
  uint32_t mant_round = a + 0xfffu + ((a >> 13) & 1u);
  return uint16_t(sign | ((mant_round - 0x38000000u) >> 13));
}

inline double load_as_double(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case F32: return static_cast<const float*>(p)[i];
    case F64: return static_cast<const double*>(p)[i];
    case I32: return static_cast<const int32_t*>(p)[i];
    case BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case BOOL: return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}

// Store `v` as dt: halves round to nearest even from f32 (as the JS side from f64: v is exact
// in f32 whenever the caller computed in f32), i32 truncates and wraps, bool is v != 0.
inline void store_from_double(void* p, DType dt, int64_t i, double v) {
  switch (dt) {
    case F32: static_cast<float*>(p)[i] = float(v); break;
    case F64: static_cast<double*>(p)[i] = v; break;
    case I32: {
      double t = std::trunc(v);
      if (!std::isfinite(t)) { static_cast<int32_t*>(p)[i] = 0; break; }
      double m = std::fmod(t, 4294967296.0);
      if (m < 0) m += 4294967296.0;
      static_cast<int32_t*>(p)[i] = int32_t(uint32_t(m));
      break;
    }
    case BF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(float(v)); break;
    case F16: static_cast<uint16_t*>(p)[i] = f32_to_f16(float(v)); break;
    case BOOL: static_cast<uint8_t*>(p)[i] = v != 0 ? 1 : 0; break;
  }
}

// ---- Philox4x32-10 (Salmon et al. 2011), exactly as src/backend/philox.ts ----------------------
struct Philox4 {
  uint32_t v[4];
};

inline Philox4 philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = uint64_t(0xd2511f53u) * c0;
    uint64_t p1 = uint64_t(0xcd9e8d57u) * c2;
    uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9e3779b9u;
    k1 += 0xbb67ae85u;
  }
  return {{c0, c1, c2, c3}};
}

// uniform in [0, 1) from a 32-bit word: 24 bits, exact in f32
inline double philox_unit(uint32_t w) { return double(w >> 8) * (1.0 / 16777216.0); }

}  // namespace kiln
