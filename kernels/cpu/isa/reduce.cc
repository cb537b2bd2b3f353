// Backend.reduce: sum, max, min, argmax and argmin over the middle axis of [outer, r, inner].
// Semantics and the way the loop kernels are written: loops.h.
#include <cstdint>
#include <type_traits>

#include "dtype_values.h"
#include "faults.h"
#include "isa.h"
#include "loops.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

// ---- reduce -------------------------------------------------------------------------------------
//
// x is [outer, r, inner] → out [outer, inner]. Sums accumulate in f64 for floats (as ref) and
// in i64 for integers (i32 out wraps, as ToInt32 of ref's exact sum). Over the last axis
// (inner = 1) a row is summed with 16 interleaved accumulators combined pairwise, in fixed
// 32K-element blocks: the rounding differs from ref's one running sum by a few f64 ulp (a
// f32 result is the same almost always). Over other axes each output is one running sum in
// row order, exactly ref's, unless r is long enough to be split into blocks. max/min/arg*:
// NaN wins (its first index), ties keep the first index, exactly as reduceRef.

constexpr int64_t kRowBlock = 32768;

template <class Acc, class T> inline Acc sum_row(const T* __restrict x, int64_t n) {
  return fold_lanes(x, n, Acc(0), [](T v) { return Acc(v); }, [](Acc a, Acc b) { return a + b; });
}

// The stored result of the sum at output position `pos`: f32/f64 round; an integer sum outside
// i32 wraps and is noted in `bad` (the kernel then faults, as ref does).
template <class O, class Acc> inline O sum_out(Acc s, int64_t pos, FirstBad* bad) {
  if constexpr (std::is_same_v<O, int32_t>) {
    if (s > Acc(INT32_MAX) || s < Acc(INT32_MIN)) bad->note(pos);
    return int32_t(uint32_t(uint64_t(s)));
  } else {
    (void)pos, (void)bad;
    return O(s);
  }
}

template <class T, class Acc, class O> void reduce_sum(const T* x, O* out, int64_t outer, int64_t r, int64_t inner, FirstBad* bad) {
  if (inner == 1) {
    if (r <= kRowBlock) {
      parallel_for(outer, imax(1, kGrain / r), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; o++) out[o] = sum_out<O>(sum_row<Acc>(x + o * r, r), o, bad);
      });
      return;
    }
    // long rows: block partial sums in parallel, then each row's blocks in order
    const int64_t nb = (r + kRowBlock - 1) / kRowBlock;
    Scratch<Acc> part(outer * nb);
    parallel_for(outer * nb, 1, [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; u++) {
        int64_t o = u / nb, k = u % nb;
        int64_t j0 = k * kRowBlock, len = imin(kRowBlock, r - j0);
        part[u] = sum_row<Acc>(x + o * r + j0, len);
      }
    });
    for (int64_t o = 0; o < outer; o++) {
      Acc s = 0;
      for (int64_t k = 0; k < nb; k++) s += part[o * nb + k];
      out[o] = sum_out<O>(s, o, bad);
    }
    return;
  }
  // Sum over a middle axis: vectorise across inner, blocks of IB columns, rows in order.
  constexpr int64_t IB = 256;
  const int64_t nib = (inner + IB - 1) / IB;
  const int64_t width = imin(inner, IB);
  const int64_t units = outer * nib;
  // Split r only when there are too few (outer, column block) units to share among threads.
  int64_t rb = r;
  if (units < 4 && r * width > 8 * kGrain) rb = imax(1, 2 * kGrain / width);
  const int64_t nrb = (r + rb - 1) / rb;
  auto column_block = [&](int64_t o, int64_t i0, int64_t w, int64_t j0, int64_t j1, Acc* acc) {
    for (int64_t i = 0; i < w; i++) acc[i] = 0;
    for (int64_t j = j0; j < j1; j++) {
      const T* __restrict row = x + (o * r + j) * inner + i0;
      for (int64_t i = 0; i < w; i++) acc[i] += Acc(row[i]);
    }
  };
  if (nrb == 1) {
    parallel_for(units, imax(1, kGrain / (r * width)), [&](int64_t b, int64_t e) {
      Acc acc[IB];
      for (int64_t u = b; u < e; u++) {
        int64_t o = u / nib, i0 = (u % nib) * IB, w = imin(IB, inner - i0);
        column_block(o, i0, w, 0, r, acc);
        for (int64_t i = 0; i < w; i++) out[o * inner + i0 + i] = sum_out<O>(acc[i], o * inner + i0 + i, bad);
      }
    });
    return;
  }
  Scratch<Acc> part(units * nrb * width);
  parallel_for(units * nrb, 1, [&](int64_t b, int64_t e) {
    for (int64_t v = b; v < e; v++) {
      int64_t u = v / nrb, k = v % nrb;
      int64_t o = u / nib, i0 = (u % nib) * IB, w = imin(IB, inner - i0);
      column_block(o, i0, w, k * rb, imin(r, (k + 1) * rb), &part[v * width]);
    }
  });
  for (int64_t u = 0; u < units; u++) {
    int64_t o = u / nib, i0 = (u % nib) * IB, w = imin(IB, inner - i0);
    for (int64_t i = 0; i < w; i++) {
      Acc s = 0;
      for (int64_t k = 0; k < nrb; k++) s += part[(u * nrb + k) * width + i];
      out[o * inner + i0 + i] = sum_out<O>(s, o * inner + i0 + i, bad);
    }
  }
}

// Whether v replaces the current best in reduceRef's scan (max: NaN or strictly larger, while
// best is not NaN; min likewise).
template <bool MAX, class T> inline bool better(T v, T best) {
  if constexpr (std::is_floating_point_v<T>) return best == best && (MAX ? !(v <= best) : !(v >= best));
  else return MAX ? v > best : v < best;
}

// Index of the winner of x[0..n) (n ≥ 1): the first NaN if any, else the first extreme.
template <bool MAX, class T> int64_t arg_row(const T* __restrict x, int64_t n) {
  constexpr int W = 16;
  if (n < 2 * W || n > int64_t(INT32_MAX)) {
    T best = x[0];
    int64_t arg = 0;
    for (int64_t j = 1; j < n && best == best; j++)
      if (better<MAX>(x[j], best)) {
        best = x[j];
        arg = j;
      }
    return arg;
  }
  // W interleaved scans (lane k sees k, k+W, …), each with reduceRef's rule; a lane's result is
  // its first NaN or its first extreme, and the lanes are combined by the same rule on indices.
  T best[W];
  int32_t idx[W];
  for (int k = 0; k < W; k++) {
    best[k] = x[k];
    idx[k] = k;
  }
  int64_t j = W;
  for (; j + W <= n; j += W)
    for (int k = 0; k < W; k++) {
      T v = x[j + k];
      bool take = better<MAX>(v, best[k]);
      best[k] = take ? v : best[k];
      idx[k] = take ? int32_t(j + k) : idx[k];
    }
  for (int k = 0; j + k < n; k++) {
    T v = x[j + k];
    if (better<MAX>(v, best[k])) {
      best[k] = v;
      idx[k] = int32_t(j + k);
    }
  }
  T b = best[0];
  int64_t a = idx[0];
  for (int k = 1; k < W; k++) {
    T v = best[k];
    bool take;
    if constexpr (std::is_floating_point_v<T>) {
      if (b != b) take = v != v && idx[k] < a;
      else take = v != v || (MAX ? v > b : v < b) || (v == b && idx[k] < a);
    } else {
      take = (MAX ? v > b : v < b) || (v == b && idx[k] < a);
    }
    if (take) {
      b = v;
      a = idx[k];
    }
  }
  return a;
}

// max/min (ARG = false: out is the winning element, as O) and argmax/argmin (out i32).
template <bool MAX, bool ARG, class T, class O> void reduce_ext(const T* x, O* out, int64_t outer, int64_t r, int64_t inner) {
  if (inner == 1) {
    auto emit = [&](int64_t o, int64_t a) {
      if constexpr (ARG) out[o] = O(a);
      else out[o] = O(x[o * r + a]);
    };
    if (r <= kRowBlock) {
      parallel_for(outer, imax(1, kGrain / r), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; o++) emit(o, arg_row<MAX>(x + o * r, r));
      });
      return;
    }
    // long rows: each block's winner, then the blocks in order by the same rule
    const int64_t nb = (r + kRowBlock - 1) / kRowBlock;
    Scratch<int64_t> part(outer * nb);
    parallel_for(outer * nb, 1, [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; u++) {
        int64_t o = u / nb, j0 = (u % nb) * kRowBlock;
        part[u] = j0 + arg_row<MAX>(x + o * r + j0, imin(kRowBlock, r - j0));
      }
    });
    for (int64_t o = 0; o < outer; o++) {
      const T* row = x + o * r;
      int64_t a = part[o * nb];
      for (int64_t k = 1; k < nb && row[a] == row[a]; k++) {
        int64_t c = part[o * nb + k];
        if (better<MAX>(row[c], row[a])) a = c;
      }
      emit(o, a);
    }
    return;
  }
  // over a middle axis: per column, vectorised across the columns of a block
  constexpr int64_t IB = 256;
  const int64_t nib = (inner + IB - 1) / IB;
  const int64_t width = imin(inner, IB);
  parallel_for(outer * nib, imax(1, kGrain / (r * width)), [&](int64_t b, int64_t e) {
    T best[IB];
    int32_t idx[IB];
    for (int64_t u = b; u < e; u++) {
      int64_t o = u / nib, i0 = (u % nib) * IB, w = imin(IB, inner - i0);
      const T* base = x + o * r * inner + i0;
      for (int64_t i = 0; i < w; i++) {
        best[i] = base[i];
        idx[i] = 0;
      }
      for (int64_t j = 1; j < r; j++) {
        const T* __restrict row = base + j * inner;
        for (int64_t i = 0; i < w; i++) {
          T v = row[i];
          bool take = better<MAX>(v, best[i]);
          best[i] = take ? v : best[i];
          idx[i] = take ? int32_t(j) : idx[i];
        }
      }
      for (int64_t i = 0; i < w; i++) {
        if constexpr (ARG) out[o * inner + i0 + i] = O(idx[i]);
        else out[o * inner + i0 + i] = O(best[i]);
      }
    }
  });
}

template <class T, class SumAcc, class SumOut, class ExtOut>
void reduce_typed(ReduceOp op, const void* xv, void* outv, int64_t outer, int64_t r, int64_t inner, FirstBad* bad = nullptr) {
  const T* x = static_cast<const T*>(xv);
  switch (op) {
    case R_SUM: reduce_sum<T, SumAcc>(x, static_cast<SumOut*>(outv), outer, r, inner, bad); break;
    case R_MAX: reduce_ext<true, false>(x, static_cast<ExtOut*>(outv), outer, r, inner); break;
    case R_MIN: reduce_ext<false, false>(x, static_cast<ExtOut*>(outv), outer, r, inner); break;
    case R_ARGMAX: reduce_ext<true, true>(x, static_cast<int32_t*>(outv), outer, r, inner); break;
    case R_ARGMIN: reduce_ext<false, true>(x, static_cast<int32_t*>(outv), outer, r, inner); break;
  }
}

// Halves (never sent: the TS layer reduces them in f32): through an f32 copy, out rounded back.
template <DType D> void reduce_half(ReduceOp op, const void* xv, void* outv, int64_t outer, int64_t r, int64_t inner) {
  const St<D>* x = static_cast<const St<D>*>(xv);
  const int64_t n = outer * r * inner, m = outer * inner;
  Scratch<float> xf(n);
  for (int64_t i = 0; i < n; i++) xf[i] = to_f<D>(x[i]);
  if (op == R_ARGMAX || op == R_ARGMIN) {
    reduce_typed<float, double, float, float>(op, xf.data(), outv, outer, r, inner);
    return;
  }
  Scratch<float> of(m);
  reduce_typed<float, double, float, float>(op, xf.data(), of.data(), outer, r, inner);
  St<D>* out = static_cast<St<D>*>(outv);
  for (int64_t i = 0; i < m; i++) out[i] = from_f<D>(of[i]);
}

// The exact (64-bit) integer sum at output position pos, for the fault's value.
template <class T> double column_sum(const T* x, int64_t pos, int64_t r, int64_t inner) {
  const int64_t o = pos / inner, i = pos % inner;
  int64_t s = 0;
  for (int64_t j = 0; j < r; j++) s += int64_t(x[(o * r + j) * inner + i]);
  return double(s);
}

// x [outer, r, inner] → out [outer, inner]; out is i32 for arg* and for every op on bool input
Fault reduce(const ReduceArgs& a) {
  const ReduceOp op = a.reduce_op;
  const void* x = a.x.data;
  void* out = a.out.data;
  const int64_t outer = a.outer, r = a.r, inner = a.inner;
  if (outer <= 0 || inner <= 0) return kNoFault;
  if (r <= 0) {  // an empty sum (the TS layer fills these itself)
    if (op == R_SUM) fill(FillArgs{Buf{out, outer * inner, a.out.dtype}, 0.0});
    return kNoFault;
  }
  FirstBad bad;
  switch (a.x.dtype) {
    case F32: reduce_typed<float, double, float, float>(op, x, out, outer, r, inner); break;
    case F64: reduce_typed<double, double, double, double>(op, x, out, outer, r, inner); break;
    case I32: reduce_typed<int32_t, int64_t, int32_t, int32_t>(op, x, out, outer, r, inner, &bad); break;
    // bool: every output is i32 (sums count; max/min give 0 or 1), as the TS layer allocates
    case BOOL: reduce_typed<uint8_t, int64_t, int32_t, int32_t>(op, x, out, outer, r, inner, &bad); break;
    case BF16: reduce_half<BF16>(op, x, out, outer, r, inner); break;
    case F16: reduce_half<F16>(op, x, out, outer, r, inner); break;
  }
  if (!bad.any()) return kNoFault;
  const double value = a.x.dtype == I32 ? column_sum(static_cast<const int32_t*>(x), bad.pos(), r, inner)
                                        : column_sum(static_cast<const uint8_t*>(x), bad.pos(), r, inner);
  return Fault{FAULT_OVERFLOW, value, 0};
}

}  // namespace

void add_reduce(Table& t) { t.reduce = reduce; }

}  // namespace KILN_ISA
}  // namespace kiln
