// What the nn kernels share (softmax.cc, norm.cc, cross_entropy.cc, attention.cc): the row
// grain, scratch (scratch.h), and dynamic scheduling of work items over the pool.
//
// Semantics of those kernels are those of src/backend/ref/ref.ts (the specification); dtypes
// are F32 and F64 (cpu.ts casts halves to f32 first). Row kernels are vectorised with nn::Vec
// (nn_simd.h) and parallelised over rows.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>

#include "isa.h"
#include "scratch.h"

namespace kiln {
namespace KILN_ISA {
namespace {

template <typename T>
constexpr T kInf = std::numeric_limits<T>::infinity();

// Work (in elements touched) below which a row kernel stays on one thread.
constexpr int64_t kRowGrainElems = 32768;

inline int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kRowGrainElems / std::max<int64_t>(cols, 1)); }

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// memset / memcpy of n elements; a no-op for n = 0 (where the pointers may be null)
template <typename T>
void zero_n(T* p, int64_t n) {
  if (n > 0) std::memset(static_cast<void*>(p), 0, size_t(n) * sizeof(T));
}
template <typename T>
void copy_n(T* dst, const T* src, int64_t n) {
  if (n > 0) std::memcpy(static_cast<void*>(dst), src, size_t(n) * sizeof(T));
}

// Run f(slot, item) for every item in [0, nitems) on `nslots` workers that pull items from a
// shared counter (dynamic scheduling). Each slot index is used by one worker at a time, so
// per-slot scratch, allocated by the caller before this (allocation never happens on a pool
// thread, where a failure could not be reported), needs no locking.
template <typename F>
void for_each_item(int64_t nslots, int64_t nitems, const F& f) {
  std::atomic<int64_t> next{0};
  parallel_for(nslots, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; s++)
      for (int64_t it = next.fetch_add(1); it < nitems; it = next.fetch_add(1)) f(s, it);
  });
}

}  // namespace
}  // namespace KILN_ISA
}  // namespace kiln
