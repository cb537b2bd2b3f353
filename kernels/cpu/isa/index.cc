// Backend.gather and Backend.scatterAdd with index strides (one pair covers gather,
// index_select, embedding and their backwards). Semantics and the way the loop kernels are
// written: loops.h.
#include <cstdint>
#include <cstring>

#include "dtype_values.h"
#include "faults.h"
#include "isa.h"
#include "loops.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

// ---- gather / scatter_add -----------------------------------------------------------------------
//
// An index outside [0, src_dim) is never followed: gather writes 0 for it, scatter_add skips it,
// and both return the fault of the first one in (o, j, i) order — ref's loop order.

// The index of element (o, j, i) and its linear position, as GatherArgs / ScatterAddArgs define it.
struct Indexing {
  const int32_t* index;
  int64_t s0, s1, s2;
  int64_t outer, src_dim, n, inner;
  template <class A>
  explicit Indexing(const A& a)
      : index(static_cast<const int32_t*>(a.index.data)),
        s0(a.index_strides[0]),
        s1(a.index_strides[1]),
        s2(a.index_strides[2]),
        outer(a.outer),
        src_dim(a.src_dim),
        n(a.n),
        inner(a.inner) {}
  bool empty() const { return outer <= 0 || n <= 0 || inner <= 0; }
  bool ok(int64_t t) const { return uint64_t(t) < uint64_t(src_dim); }
  // the fault of the element at linear position pos = (o·n + j)·inner + i
  Fault fault(const FirstBad& first) const {
    if (!first.any()) return kNoFault;
    const int64_t pos = first.pos(), i = pos % inner, j = (pos / inner) % n, o = pos / (inner * n);
    return Fault{FAULT_INDEX, double(index[o * s0 + j * s1 + i * s2]), src_dim};
  }
};

// out[o, j, i] = x[o, index(o, j, i), i]: raw elements, any dtype.
template <class T> void gather_typed(const T* x, T* out, const Indexing& p, FirstBad& first) {
  const int64_t rows = p.outer * p.n;
  parallel_for(rows, imax(1, kGrain / p.inner), [&](int64_t b, int64_t e) {
    int64_t bad = FirstBad::kNone;
    for (int64_t row = b; row < e; row++) {
      const int64_t o = row / p.n, j = row % p.n;
      const int32_t* ip = p.index + o * p.s0 + j * p.s1;
      T* __restrict d = out + row * p.inner;
      if (p.s2 == 0) {  // one index for the row (index_select, embedding): copy a row
        const int64_t t = *ip;
        if (!p.ok(t)) {
          std::memset(static_cast<void*>(d), 0, size_t(p.inner) * sizeof(T));
          bad = imin(bad, row * p.inner);
          continue;
        }
        const T* __restrict s = x + (o * p.src_dim + t) * p.inner;
        if (p.inner == 1) d[0] = s[0];
        else std::memcpy(d, s, size_t(p.inner) * sizeof(T));
      } else {
        const T* s = x + o * p.src_dim * p.inner;
        for (int64_t i = 0; i < p.inner; i++) {
          const int64_t t = ip[i * p.s2];
          if (p.ok(t)) {
            d[i] = s[t * p.inner + i];
          } else {
            d[i] = T(0);
            bad = imin(bad, row * p.inner + i);
          }
        }
      }
    }
    if (bad != FirstBad::kNone) first.note(bad);
  });
}

template <class T> void gather_as(const GatherArgs& a, const Indexing& p, FirstBad& first) {
  gather_typed(static_cast<const T*>(a.x.data), static_cast<T*>(a.out.data), p, first);
}
Fault gather(const GatherArgs& a) {
  const Indexing p(a);
  if (p.empty()) return kNoFault;
  FirstBad first;
  KILN_DISPATCH_RAW(a.x.dtype, gather_as, a, p, first)
  return p.fault(first);
}

// dst[o, index(o, j, i), i] += src[o, j, i]. Every destination element receives its additions
// in increasing j, as ref's loop; tasks own disjoint destinations — (o, column block) pairs,
// and when those are too few to share, also ranges of destination indices (each task reads
// all indices and adds only those in its range, so a bad index is in no task's range) — so
// there are no races and the result does not depend on the thread count.
template <class T, class Add> void scatter_typed(T* dst, const T* src, const Indexing& p, FirstBad& first, Add add) {
  constexpr int64_t IB = 1024;
  const int64_t nib = (p.inner + IB - 1) / IB;
  const int64_t width = imin(p.inner, IB);
  const int64_t base_units = p.outer * nib;
  const int64_t threads = num_threads();
  int64_t parts = 1;
  if (base_units < 2 * threads && p.n * width >= kGrain) parts = imax(1, imin(p.src_dim, 4 * threads));
  const int64_t units = base_units * parts;
  parallel_for(units, imax(1, kGrain / (p.n * width)), [&](int64_t b, int64_t e) {
    int64_t bad = FirstBad::kNone;
    for (int64_t u = b; u < e; u++) {
      const int64_t part = u % parts, rest = u / parts;
      const int64_t o = rest / nib, i0 = (rest % nib) * IB, w = imin(IB, p.inner - i0);
      const int64_t t0 = p.src_dim * part / parts, t1 = p.src_dim * (part + 1) / parts;
      T* dbase = dst + o * p.src_dim * p.inner + i0;
      for (int64_t j = 0; j < p.n; j++) {
        const int32_t* ip = p.index + o * p.s0 + j * p.s1;
        const T* __restrict s = src + (o * p.n + j) * p.inner + i0;
        const int64_t pos = (o * p.n + j) * p.inner + i0;  // of element i = i0
        if (p.s2 == 0) {
          const int64_t t = *ip;
          if (t < t0 || t >= t1) {
            if (!p.ok(t)) bad = imin(bad, pos - i0);  // the row's first element (i = 0) is as bad
            continue;
          }
          T* __restrict d = dbase + t * p.inner;
          for (int64_t i = 0; i < w; i++) d[i] = add(d[i], s[i]);
        } else {
          for (int64_t i = 0; i < w; i++) {
            const int64_t t = ip[(i0 + i) * p.s2];
            if (t < t0 || t >= t1) {
              if (!p.ok(t)) bad = imin(bad, pos + i);
              continue;
            }
            T& d = dbase[t * p.inner + i];
            d = add(d, s[i]);
          }
        }
      }
    }
    if (bad != FirstBad::kNone) first.note(bad);
  });
}

Fault scatter_add(const ScatterAddArgs& a) {
  const Indexing p(a);
  if (p.empty()) return kNoFault;
  FirstBad first;
  void* dst = a.dst.data;
  const void* src = a.src.data;
  switch (a.dst.dtype) {
    case F32:
      scatter_typed(static_cast<float*>(dst), static_cast<const float*>(src), p, first, [](float x, float y) { return x + y; });
      break;
    case F64:
      scatter_typed(static_cast<double*>(dst), static_cast<const double*>(src), p, first, [](double x, double y) { return x + y; });
      break;
    case I32:  // Int32Array +=: wraps
      scatter_typed(static_cast<int32_t*>(dst), static_cast<const int32_t*>(src), p, first,
                    [](int32_t x, int32_t y) { return int32_t(uint32_t(x) + uint32_t(y)); });
      break;
    case BOOL:  // Uint8Array +=: wraps modulo 256
      scatter_typed(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), p, first,
                    [](uint8_t x, uint8_t y) { return uint8_t(x + y); });
      break;
    case BF16:  // (the TS layer sends halves as f32) add the values, round back
      scatter_typed(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), p, first,
                    [](uint16_t x, uint16_t y) { return bf16_bits(bf16_value(x) + bf16_value(y)); });
      break;
    case F16:
      scatter_typed(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), p, first,
                    [](uint16_t x, uint16_t y) { return f16_bits(f16_value(x) + f16_value(y)); });
      break;
  }
  return p.fault(first);
}

}  // namespace

void add_index(Table& t) {
  t.gather = gather;
  t.scatter_add = scatter_add;
}

}  // namespace KILN_ISA
}  // namespace kiln
