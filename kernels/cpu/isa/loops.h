// What the loop kernels share (fill_random.cc, cast_copy.cc, unary.cc, binary.cc, reduce.cc,
// index.cc): task grains for parallel_for, size min/max, and scratch memory.
//
// Semantics of those kernels are those of the reference backend (src/backend/ref/ref.ts and
// kernels.ts), which computes in JS doubles and rounds once on the store; notes in each file
// say where a kernel computes differently and why the result is the same (or within the f32
// tolerance).
//
// Speed: contiguous loops are written so that GCC vectorises them under each ISA's flags
// (SSE2 / AVX2+FMA / AVX-512); f32 transcendentals use vecmath.h's branch-free polynomials; the
// f16 casts use F16C where the ISA has it. Strided operands go through a "plan" (strided.h):
// size-1 axes dropped and mergeable axes merged, then an odometer over the outer axes with a
// tight loop over the last one, specialised for the common inner strides (contiguous,
// broadcast). Work above ~32K elements is split over the thread pool with parallel_for, always
// into pieces that do not depend on the thread count, so results never depend on it either.
#pragma once
#include <cstdint>
#include <new>

#include "isa.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

constexpr int64_t kGrain = 32768;      // elements per task for cheap (memory-bound) loops
constexpr int64_t kGrainHeavy = 8192;  // for loops with a transcendental per element

// The smaller / larger of two sizes. (Local rather than std::min/max, and Buffer rather than
// std::vector: a template of std instantiated here is a weak symbol shared by the three ISA
// builds of these files, and the linker may keep the AVX-512 copy for the base table.)
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

}  // namespace
}  // namespace KILN_ISA
}  // namespace kiln
