// Strided iteration for the loop kernels over strided operands (copy, binary, where): a plan
// of up to four operands over one shape, with size-1 axes dropped and mergeable axes merged,
// visited as runs along its last axis.
#pragma once
#include <cstdint>

#include "isa.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

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
inline void contiguous_strides(int rank, const int64_t* shape, int64_t* out) {
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

}  // namespace
}  // namespace KILN_ISA
}  // namespace kiln
