// What the loop kernels share (fill_random.cc, cast_copy.cc, unary.cc, binary.cc, reduce.cc,
// index.cc, check.cc, optim.cc): task grains for parallel_for, size min/max, a vectorisable fold
// (scratch memory: scratch.h).
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

#include "isa.h"
#include "scratch.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

constexpr int64_t kGrain = 32768;      // elements per task for cheap (memory-bound) loops
constexpr int64_t kGrainHeavy = 8192;  // for loops with a transcendental per element

// The smaller / larger of two sizes.
inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// fold(… fold(init, map(x[0])) …, map(x[n−1])) for an associative fold, as 16 interleaved
// accumulators combined pairwise at the end: straight-line code that GCC vectorises under each
// ISA's flags (a single running accumulator would not be, without reassociating). For a sum the
// rounding differs from one running sum's by a few ulp of Acc; the order is fixed, so the result
// never depends on the ISA's vector width or the thread count.
template <class Acc, class T, class Map, class Fold>
inline Acc fold_lanes(const T* __restrict x, int64_t n, Acc init, Map map, Fold fold) {
  constexpr int W = 16;
  Acc s[W];
  for (int k = 0; k < W; k++) s[k] = init;
  int64_t j = 0;
  for (; j + W <= n; j += W)
    for (int k = 0; k < W; k++) s[k] = fold(s[k], map(x[j + k]));
  for (int k = 0; j < n; j++, k++) s[k] = fold(s[k], map(x[j]));
  for (int w = W / 2; w >= 1; w /= 2)
    for (int k = 0; k < w; k++) s[k] = fold(s[k], s[k + w]);
  return s[0];
}

}  // namespace
}  // namespace KILN_ISA
}  // namespace kiln
