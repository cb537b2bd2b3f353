// Backend.gather and Backend.scatterAdd with index strides (one pair covers gather,
// index_select, embedding and their backwards). Semantics and the way the loop kernels are
// written: loops.h.
#include <cstdint>
#include <cstring>

#include "dtype_values.h"
#include "isa.h"
#include "loops.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

// ---- gather / scatter_add -----------------------------------------------------------------------

// out[o, j, i] = x[o, index(o, j, i), i]: raw elements, any dtype.
template <class T> void gather_typed(const T* x, T* out, const IndexParams& p) {
  const int64_t rows = p.outer * p.n;
  parallel_for(rows, imax(1, kGrain / p.inner), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; row++) {
      const int64_t o = row / p.n, j = row % p.n;
      const int32_t* ip = p.index + o * p.s0 + j * p.s1;
      T* __restrict d = out + row * p.inner;
      if (p.s2 == 0) {  // one index for the row (index_select, embedding): copy a row
        const T* __restrict s = x + (o * p.src_dim + *ip) * p.inner;
        if (p.inner == 1) d[0] = s[0];
        else std::memcpy(d, s, size_t(p.inner) * sizeof(T));
      } else {
        const T* s = x + o * p.src_dim * p.inner;
        for (int64_t i = 0; i < p.inner; i++) d[i] = s[int64_t(ip[i * p.s2]) * p.inner + i];
      }
    }
  });
}

void gather(const void* x, void* out, const IndexParams& p) {
  if (p.outer <= 0 || p.n <= 0 || p.inner <= 0) return;
  switch (item_size(p.dtype)) {
    case 1: gather_typed(static_cast<const uint8_t*>(x), static_cast<uint8_t*>(out), p); break;
    case 2: gather_typed(static_cast<const uint16_t*>(x), static_cast<uint16_t*>(out), p); break;
    case 4: gather_typed(static_cast<const uint32_t*>(x), static_cast<uint32_t*>(out), p); break;
    default: gather_typed(static_cast<const uint64_t*>(x), static_cast<uint64_t*>(out), p); break;
  }
}

// dst[o, index(o, j, i), i] += src[o, j, i]. Every destination element receives its additions
// in increasing j, as ref's loop; tasks own disjoint destinations — (o, column block) pairs,
// and when those are too few to share, also ranges of destination indices (each task reads
// all indices and adds only those in its range) — so there are no races and the result does
// not depend on the thread count.
template <class T, class Add> void scatter_typed(T* dst, const T* src, const IndexParams& p, Add add) {
  constexpr int64_t IB = 1024;
  const int64_t nib = (p.inner + IB - 1) / IB;
  const int64_t width = imin(p.inner, IB);
  const int64_t base_units = p.outer * nib;
  const int64_t threads = num_threads();
  int64_t parts = 1;
  if (base_units < 2 * threads && p.n * width >= kGrain) parts = imin(p.src_dim, 4 * threads);
  const int64_t units = base_units * parts;
  parallel_for(units, imax(1, kGrain / (p.n * width)), [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; u++) {
      const int64_t part = u % parts, rest = u / parts;
      const int64_t o = rest / nib, i0 = (rest % nib) * IB, w = imin(IB, p.inner - i0);
      const int64_t t0 = p.src_dim * part / parts, t1 = p.src_dim * (part + 1) / parts;
      T* dbase = dst + o * p.src_dim * p.inner + i0;
      for (int64_t j = 0; j < p.n; j++) {
        const int32_t* ip = p.index + o * p.s0 + j * p.s1;
        const T* __restrict s = src + (o * p.n + j) * p.inner + i0;
        if (p.s2 == 0) {
          const int64_t t = *ip;
          if (t < t0 || t >= t1) continue;
          T* __restrict d = dbase + t * p.inner;
          for (int64_t i = 0; i < w; i++) d[i] = add(d[i], s[i]);
        } else {
          for (int64_t i = 0; i < w; i++) {
            const int64_t t = ip[(i0 + i) * p.s2];
            if (t < t0 || t >= t1) continue;
            T& d = dbase[t * p.inner + i];
            d = add(d, s[i]);
          }
        }
      }
    }
  });
}

void scatter_add(void* dst, const void* src, const IndexParams& p) {
  if (p.outer <= 0 || p.n <= 0 || p.inner <= 0) return;
  switch (p.dtype) {
    case F32:
      scatter_typed(static_cast<float*>(dst), static_cast<const float*>(src), p, [](float a, float b) { return a + b; });
      break;
    case F64:
      scatter_typed(static_cast<double*>(dst), static_cast<const double*>(src), p, [](double a, double b) { return a + b; });
      break;
    case I32:  // Int32Array +=: wraps
      scatter_typed(static_cast<int32_t*>(dst), static_cast<const int32_t*>(src), p,
                    [](int32_t a, int32_t b) { return int32_t(uint32_t(a) + uint32_t(b)); });
      break;
    case BOOL:  // Uint8Array +=: wraps modulo 256
      scatter_typed(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), p,
                    [](uint8_t a, uint8_t b) { return uint8_t(a + b); });
      break;
    case BF16:  // (the TS layer sends halves as f32) add the values, round back
      scatter_typed(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), p,
                    [](uint16_t a, uint16_t b) { return bf16_bits(bf16_value(a) + bf16_value(b)); });
      break;
    case F16:
      scatter_typed(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), p,
                    [](uint16_t a, uint16_t b) { return f16_bits(f16_value(a) + f16_value(b)); });
      break;
  }
}

}  // namespace

void add_index(Table& t) {
  t.gather = gather;
  t.scatter_add = scatter_add;
}

}  // namespace KILN_ISA
}  // namespace kiln
