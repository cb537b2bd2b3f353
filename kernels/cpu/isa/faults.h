// Faults found by parallel kernels (index.cc, check.cc, cross_entropy.cc): the bad element at the
// lowest position wins, so a kernel reports the fault ref's sequential loop would, whatever the
// threads do.
#pragma once
#include <atomic>
#include <cstdint>
#include <limits>

#include "isa.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

constexpr Fault kNoFault{FAULT_NONE, 0.0, 0};

// The lowest position noted by any task. A task keeps its own minimum (kNone when it found
// nothing) and notes it once at its end.
class FirstBad {
 public:
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
  void note(int64_t pos) {
    int64_t cur = pos_.load(std::memory_order_relaxed);
    while (pos < cur && !pos_.compare_exchange_weak(cur, pos, std::memory_order_relaxed)) {
    }
  }
  bool any() const { return pos_.load() != kNone; }
  int64_t pos() const { return pos_.load(); }

 private:
  std::atomic<int64_t> pos_{kNone};
};

}  // namespace
}  // namespace KILN_ISA
}  // namespace kiln
