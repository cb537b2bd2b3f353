// f64 bit casts and branch-free selects for the loop kernels (the f32 ones are vecmath.h's
// vm::bits, vm::from_bits and vm::select).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "isa.h"
#include "vecmath.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

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

}  // namespace
}  // namespace KILN_ISA
}  // namespace kiln
