// Backend.crossEntropy (label smoothing, an ignored index) and its backward, on the device:
// logits, dlogits [rows, classes], i32 targets [rows], loss, lse, dloss [rows]; f32 (computed in
// f32, the per-row scalars in f64) or f64. Semantics: src/backend/ref/ref.ts `crossEntropy`,
// `crossEntropyBackward`, `badTarget`; the CPU twin is kernels/cpu/isa/cross_entropy.cc.
//
// Row kernels as softmax.cu (one warp per row up to kWarpCols classes, else a 512-thread block;
// deterministic shuffle reductions; 16-byte loads when rows are aligned).
//
// Forward: one read of the row gives its log-sum-exp state (m, s) = (max, Σ exp(x − m)) and, with
// ε > 0, Σ(x − p) about a pivot p (the first logit when finite, else 0). lse = m + log s in f64
// (ref's special rows: NaN anywhere → NaN, else a +∞ → +∞, all −∞ or no classes → −∞), written
// for every row. loss = lse − (1−ε)·x[t] − ε·p − ε/C·Σ(x − p) in f64 (= ref's
// lse − (1−ε)·x[t] − ε/C·Σx, without the f32 cancellation of a plain Σx when logits are large);
// 0 where t == ignoreIndex.
//
// Backward: dlogits = dloss[r]·(exp(x − lse[r]) − (1−ε)·[c = t] − ε/C), a zero row where ignored.
//
// A target neither ignoreIndex nor in [0, classes) is never used as an index: its loss is NaN
// (forward) or its row 0 (backward). The lowest such row is found with an integer atomicMin in
// scratch (deterministic), and one more one-thread kernel records its fault (FAULT_TARGET, the
// target, classes), as ref's sequential loop would report it; the host returns FAULT_NONE.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "rows.cuh"

namespace kiln {
namespace cuda {
namespace {

// ---- a row's state ------------------------------------------------------------------------------

// The log-sum-exp state (rows.cuh's Lse) and sum = Σ(x − p) when smoothing.
template <typename T>
struct State {
  Lse<T> lse;
  T sum;
};

template <typename T>
__device__ __forceinline__ State<T> shfl_xor(State<T> a, int o) {
  return State<T>{shfl_xor(a.lse, o), __shfl_xor_sync(0xffffffffu, a.sum, o)};
}

// Symmetric in a and b, bit for bit (so every lane of a butterfly agrees).
struct StateMerge {
  template <typename T>
  __device__ __forceinline__ State<T> operator()(State<T> a, State<T> b) const {
    return State<T>{LseMerge{}(a.lse, b.lse), a.sum + b.sum};
  }
};

constexpr unsigned long long kNoRow = ~0ull;

// Whether target t is neither ignoreIndex nor a class.
__device__ __forceinline__ bool bad_target(int64_t t, int64_t classes, int64_t ignore_index) {
  return t != ignore_index && (t < 0 || t >= classes);
}

// ---- forward ------------------------------------------------------------------------------------

template <typename T, int LANES>
__global__ void __launch_bounds__(block_threads(LANES))
    cross_entropy_rows(const T* logits, const int32_t* targets, T* loss, T* lse, int64_t rows, int64_t classes, int64_t ignore_index,
                       double smoothing, bool vec, unsigned long long* first_bad) {
  constexpr int kRows = block_threads(LANES) / LANES;
  const int lane = int(threadIdx.x) % LANES;
  const bool smooth = smoothing > 0;
  for (int64_t r = int64_t(blockIdx.x) * kRows + int(threadIdx.x) / LANES; r < rows; r += int64_t(gridDim.x) * kRows) {
    const T* xr = logits + r * classes;
    const T first = classes > 0 ? xr[0] : T(0);
    const T p = isfinite(first) ? first : T(0);  // the pivot of Σ(x − p)
    State<T> st{{kNegInf<T>, T(0)}, T(0)};
    row_read<LANES>(xr, classes, lane, vec, [&](int64_t, T v) {
      lse_push(st.lse, v);
      if (smooth) st.sum += v - p;
    });
    st = group_reduce<LANES>(st, StateMerge{});
    if (lane != 0) continue;
    // lse = m + log s for a finite max; otherwise it is m itself (NaN, +∞, or −∞)
    const double z = isfinite(st.lse.m) ? double(st.lse.m) + ::log(double(st.lse.s)) : double(st.lse.m);
    lse[r] = T(z);
    const int64_t t = targets[r];
    if (t == ignore_index) {
      loss[r] = T(0);
    } else if (bad_target(t, classes, ignore_index)) {
      loss[r] = T(NAN);
      atomicMin(first_bad, static_cast<unsigned long long>(r));
    } else {
      double l = z - (1 - smoothing) * double(xr[t]);
      if (smooth) l = l - smoothing * double(p) - (smoothing / double(classes)) * double(st.sum);
      loss[r] = T(l);
    }
  }
}

// ---- backward -----------------------------------------------------------------------------------

// on = (1−ε) + ε/C for the target's column, off = ε/C for the others.
template <typename T, int LANES>
__global__ void __launch_bounds__(block_threads(LANES))
    cross_entropy_backward_rows(const T* logits, const int32_t* targets, const T* lse, const T* dloss, T* dlogits, int64_t rows, int64_t classes,
                                int64_t ignore_index, T on, T off, bool vec, unsigned long long* first_bad) {
  constexpr int kRows = block_threads(LANES) / LANES;
  const int lane = int(threadIdx.x) % LANES;
  for (int64_t r = int64_t(blockIdx.x) * kRows + int(threadIdx.x) / LANES; r < rows; r += int64_t(gridDim.x) * kRows) {
    const T* xr = logits + r * classes;
    T* dr = dlogits + r * classes;
    const int64_t t = targets[r];
    if (t == ignore_index || bad_target(t, classes, ignore_index)) {
      if (lane == 0 && t != ignore_index) atomicMin(first_bad, static_cast<unsigned long long>(r));
      row_zero<LANES>(dr, classes, lane, vec);
      continue;
    }
    const T l = lse[r];
    const T g = dloss[r];
    // each element is read before it is written, by the same thread: dlogits may alias logits
    row_map<LANES>(xr, dr, classes, lane, vec, [&](int64_t c, T v) { return g * (dexp(v - l) - (c == t ? on : off)); });
  }
}

// ---- faults -------------------------------------------------------------------------------------

__global__ void report_target_fault(const unsigned long long* first_bad, const int32_t* targets, int64_t classes, FaultWord* fault, int tag) {
  const unsigned long long r = *first_bad;
  if (r != kNoRow) record_fault(fault, tag, FAULT_TARGET, double(targets[r]), static_cast<long long>(classes));
}

// Scratch for the lowest bad row, set to "none".
unsigned long long* first_bad_slot(const char* op) {
  auto* slot = static_cast<unsigned long long*>(scratch(sizeof(unsigned long long)));
  KILN_CUDA(cudaMemsetAsync(slot, 0xff, sizeof(unsigned long long), stream()), op);
  return slot;
}

void report(const unsigned long long* slot, const Buf& targets, int64_t classes, const char* op) {
  report_target_fault<<<1, 1, 0, stream()>>>(slot, ptr<const int32_t>(targets), classes, fault_word(), fault_tag());
  check_launch(op);
}

template <typename T>
void cross_entropy_as(const CrossEntropyArgs& a) {
  const T* x = ptr<const T>(a.logits);
  const bool vec = aligned16(x) && a.classes % Pack<T>::N == 0;
  unsigned long long* slot = first_bad_slot("crossEntropy (fault slot)");
  const int32_t* t = ptr<const int32_t>(a.targets);
  if (a.classes <= kWarpCols)
    cross_entropy_rows<T, kWarp><<<row_grid(a.rows, kWarpBlock / kWarp), kWarpBlock, 0, stream()>>>(x, t, ptr<T>(a.loss), ptr<T>(a.lse), a.rows, a.classes,
                                                                                                     a.ignore_index, a.smoothing, vec, slot);
  else
    cross_entropy_rows<T, kRowBlock><<<row_grid(a.rows, 1), kRowBlock, 0, stream()>>>(x, t, ptr<T>(a.loss), ptr<T>(a.lse), a.rows, a.classes,
                                                                                     a.ignore_index, a.smoothing, vec, slot);
  check_launch("crossEntropy");
  report(slot, a.targets, a.classes, "crossEntropy (fault report)");
}

Fault cross_entropy(const CrossEntropyArgs& a) {
  // classes = 0 still has rows: lse −∞, and a loss or a fault per target
  if (a.rows <= 0) return kNoFault;
  switch (a.logits.dtype) {
    case F32: cross_entropy_as<float>(a); break;
    case F64: cross_entropy_as<double>(a); break;
    default: not_native("crossEntropy", a.logits.dtype);
  }
  return kNoFault;
}

template <typename T>
void cross_entropy_backward_as(const CrossEntropyBackwardArgs& a) {
  const T* x = ptr<const T>(a.logits);
  T* d = ptr<T>(a.dlogits);
  const bool vec = aligned16(x) && aligned16(d) && a.classes % Pack<T>::N == 0;
  const T off = T(a.smoothing / double(a.classes));
  const T on = T((1 - a.smoothing) + a.smoothing / double(a.classes));
  unsigned long long* slot = first_bad_slot("crossEntropyBackward (fault slot)");
  const int32_t* t = ptr<const int32_t>(a.targets);
  const T* lse = ptr<const T>(a.lse);
  const T* g = ptr<const T>(a.dloss);
  if (a.classes <= kWarpCols)
    cross_entropy_backward_rows<T, kWarp><<<row_grid(a.rows, kWarpBlock / kWarp), kWarpBlock, 0, stream()>>>(x, t, lse, g, d, a.rows, a.classes,
                                                                                                              a.ignore_index, on, off, vec, slot);
  else
    cross_entropy_backward_rows<T, kRowBlock><<<row_grid(a.rows, 1), kRowBlock, 0, stream()>>>(x, t, lse, g, d, a.rows, a.classes, a.ignore_index,
                                                                                              on, off, vec, slot);
  check_launch("crossEntropyBackward");
  report(slot, a.targets, a.classes, "crossEntropyBackward (fault report)");
}

Fault cross_entropy_backward(const CrossEntropyBackwardArgs& a) {
  // classes = 0: no dlogits, but bad targets still fault
  if (a.rows <= 0) return kNoFault;
  switch (a.logits.dtype) {
    case F32: cross_entropy_backward_as<float>(a); break;
    case F64: cross_entropy_backward_as<double>(a); break;
    default: not_native("crossEntropyBackward", a.logits.dtype);
  }
  return kNoFault;
}

}  // namespace

void add_cross_entropy(Table& t) {
  t.cross_entropy = cross_entropy;
  t.cross_entropy_backward = cross_entropy_backward;
  t.computes[FAMILY_CROSS_ENTROPY] = dtype_bit(F32) | dtype_bit(F64);
}

}  // namespace cuda
}  // namespace kiln
