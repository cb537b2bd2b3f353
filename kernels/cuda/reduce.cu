// Backend.reduce on the GPU: sum, max, min, argmax and argmin over the middle axis of
// x [outer, r, inner] into out [outer, inner], with ref's semantics (kernels.ts reduceRef).
//
// Sums accumulate in f64 for floats (f32 and halves are summed exactly as ref does, in doubles,
// and rounded once on the store; the order is a fixed tree instead of ref's running sum, so f64
// results differ by a few ulp) and in i64 for i32 and bool; an i32 out wraps (ToInt32 of the
// exact sum) and the first output position whose sum leaves i32, in ref's (o, i) order, faults
// with FAULT_OVERFLOW and that sum as its value. max/min/argmax/argmin combine (value, index)
// pairs by a rule that is associative and commutative and picks what ref's scan picks: a NaN
// over a number (the first NaN among NaNs), else the extreme, ties to the first index.
//
// Launch shapes, all deterministic (no float atomics):
// - rows (inner = 1, r ≥ 64): a group of G threads (a warp, or a block of 256 for long rows)
//   per row, reading it coalesced, 16 bytes at a time when rows are 16-byte aligned, combined
//   with warp shuffles (and shared memory across warps);
// - columns (inner > 1, or short rows): a thread per output, walking j; consecutive threads
//   take consecutive i, so each step of a warp reads contiguous memory;
// and when the outputs are too few to fill the GPU, r is split into segments whose partial
// results go to scratch() and are combined in segment order by a second kernel.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "common.cuh"

namespace kiln {
namespace cuda {
namespace {

// The lowest output position whose i32 sum overflowed (~0: none); read and reset by
// overflow_fault_kernel, queued after the reduction on the same stream.
__device__ unsigned long long g_first_overflow = ~0ull;
constexpr unsigned long long kNone = ~0ull;

// ---- the reductions as (identity, lift, combine) ------------------------------------------------

template <class C>
struct Ext {
  C v;
  long long j;  // −1: empty
};

__device__ inline double shfl_down(double v, int d) { return __shfl_down_sync(0xffffffffu, v, d); }
__device__ inline long long shfl_down(long long v, int d) { return __shfl_down_sync(0xffffffffu, v, d); }
__device__ inline float shfl_down(float v, int d) { return __shfl_down_sync(0xffffffffu, v, d); }
__device__ inline int shfl_down(int v, int d) { return __shfl_down_sync(0xffffffffu, v, d); }
template <class C>
__device__ inline Ext<C> shfl_down(Ext<C> e, int d) {
  return Ext<C>{shfl_down(e.v, d), shfl_down(e.j, d)};
}

template <class S, int OP>
struct Red {
  using C = typename Storage<S>::T;
  static constexpr bool kSum = OP == R_SUM;
  // sums: f64 for floats, i64 for integers; the others: (value, index)
  using A = std::conditional_t<kSum, std::conditional_t<std::is_integral_v<C>, long long, double>, Ext<C>>;

  __device__ static A identity() {
    if constexpr (kSum) return A(0);
    else return A{C(0), -1};
  }
  __device__ static A lift(C x, int64_t j) {
    if constexpr (kSum) return A(x);
    else return A{x, (long long)j};
  }
  __device__ static A combine(A a, A b) {
    if constexpr (kSum) {
      return a + b;
    } else {
      constexpr bool kMax = OP == R_MAX || OP == R_ARGMAX;
      if (a.j < 0) return b;
      if (b.j < 0) return a;
      const bool an = a.v != a.v, bn = b.v != b.v;  // (never for integers)
      if (an || bn) {
        if (an && bn) return a.j < b.j ? a : b;
        return an ? a : b;
      }
      if (kMax ? a.v > b.v : a.v < b.v) return a;
      if (kMax ? b.v > a.v : b.v < a.v) return b;
      return a.j < b.j ? a : b;  // equal (including −0 and +0): the first index
    }
  }
  // out[pos] from the final value. An i32 sum wraps and notes an overflow.
  template <class SO>
  __device__ static void finish(SO* out, int64_t pos, A acc) {
    if constexpr (kSum) {
      if constexpr (std::is_integral_v<C> && std::is_same_v<SO, int32_t>) {
        if (acc > 2147483647ll || acc < -2147483648ll) atomicMin(&g_first_overflow, (unsigned long long)pos);
        out[pos] = int32_t(uint32_t(uint64_t(acc)));
      } else {
        out[pos] = encode_d<SO>(double(acc));
      }
    } else if constexpr (OP == R_ARGMAX || OP == R_ARGMIN) {
      out[pos] = SO(acc.j);
    } else {
      out[pos] = encode_d<SO>(double(acc.v));
    }
  }
};

// ---- kernels ------------------------------------------------------------------------------------

// Columns: thread t takes output col = t mod m of segment t / m (rows [seg·len, (seg+1)·len) of
// r). One segment: the result goes to out; else to part[seg·m + col].
template <class S, int OP, class SO>
__global__ void reduce_cols_kernel(const S* __restrict__ x, SO* __restrict__ out, typename Red<S, OP>::A* __restrict__ part, int64_t m,
                                   int64_t r, int64_t inner, int64_t segs, int64_t len) {
  using R = Red<S, OP>;
  const int64_t units = m * segs;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < units; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t seg = t / m, col = t - seg * m;
    const int64_t o = col / inner, i = col - o * inner;
    const int64_t j0 = seg * len, j1 = j0 + len < r ? j0 + len : r;
    const S* p = x + (o * r + j0) * inner + i;
    typename R::A acc = R::identity();
    for (int64_t j = j0; j < j1; j++, p += inner) acc = R::combine(acc, R::lift(value_of(*p), j));
    if (segs == 1) R::template finish<SO>(out, col, acc);
    else part[t] = acc;
  }
}

// Rows (inner = 1): a group of G threads (G = 32: a warp; G = 256: the block) per (row, segment)
// unit; lanes stride the segment (V elements at a time when vec), then combine.
template <class S, int OP, class SO, int G>
__global__ void __launch_bounds__(256) reduce_rows_kernel(const S* __restrict__ x, SO* __restrict__ out, typename Red<S, OP>::A* __restrict__ part,
                                                          int64_t outer, int64_t r, int64_t segs, int64_t len, bool vec) {
  using R = Red<S, OP>;
  using A = typename R::A;
  constexpr int V = kVec<S>;
  constexpr int kGroups = 256 / G;
  __shared__ A warp_acc[8];
  const int lane = int(threadIdx.x) % G;
  const int64_t units = outer * segs;
  // every thread of a group runs the same iterations (G = 256: the whole block, for __syncthreads)
  for (int64_t u = int64_t(blockIdx.x) * kGroups + threadIdx.x / G; u - (threadIdx.x / G) < units;
       u += int64_t(gridDim.x) * kGroups) {
    const bool active = u < units;
    A acc = R::identity();
    int64_t row = 0, seg = 0;
    if (active) {
      row = u / segs;
      seg = u - row * segs;
      const int64_t j0 = seg * len, j1 = j0 + len < r ? j0 + len : r;
      const S* p = x + row * r;
      if (vec) {
        // j0 and r are multiples of V here: whole packs
        for (int64_t c = j0 / V + lane; c < j1 / V; c += G) {
          const Pack<S, V> pk = reinterpret_cast<const Pack<S, V>*>(p)[c];
#pragma unroll
          for (int k = 0; k < V; k++) acc = R::combine(acc, R::lift(value_of(pk.v[k]), c * V + k));
        }
      } else {
        for (int64_t j = j0 + lane; j < j1; j += G) acc = R::combine(acc, R::lift(value_of(p[j]), j));
      }
    }
    // within the warp
#pragma unroll
    for (int d = 16; d >= 1; d /= 2) acc = R::combine(acc, shfl_down(acc, d));
    if constexpr (G == 256) {
      const int warp = int(threadIdx.x) / 32;
      if (threadIdx.x % 32 == 0) warp_acc[warp] = acc;
      __syncthreads();
      if (warp == 0) {
        acc = threadIdx.x < 8 ? warp_acc[threadIdx.x] : R::identity();
#pragma unroll
        for (int d = 4; d >= 1; d /= 2) acc = R::combine(acc, shfl_down(acc, d));
      }
      __syncthreads();  // warp_acc is reused by the next unit
    }
    if (active && lane == 0) {
      if (segs == 1) R::template finish<SO>(out, row, acc);
      else part[seg * outer + row] = acc;
    }
  }
}

// The segments' partial results of each output: a warp per output, lanes striding the
// segments, then a shuffle tree (a fixed order: the result does not depend on the timing).
template <class S, int OP, class SO>
__global__ void reduce_final_kernel(const typename Red<S, OP>::A* __restrict__ part, SO* __restrict__ out, int64_t m, int64_t segs) {
  using R = Red<S, OP>;
  const int lane = int(threadIdx.x) % 32;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t col = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; col < m; col += warps) {
    typename R::A acc = R::identity();
    for (int64_t s = lane; s < segs; s += 32) acc = R::combine(acc, part[s * m + col]);
#pragma unroll
    for (int d = 16; d >= 1; d /= 2) acc = R::combine(acc, shfl_down(acc, d));
    if (lane == 0) R::template finish<SO>(out, col, acc);
  }
}

// The fault of the first overflowing i32 sum: that column's exact sum, recomputed by one block.
template <class S>
__global__ void overflow_fault_kernel(const S* __restrict__ x, int64_t r, int64_t inner, FaultWord* f, int tag) {
  const unsigned long long p = g_first_overflow;
  if (p == kNone) return;  // the same for every thread
  const int64_t pos = int64_t(p), o = pos / inner, i = pos - o * inner;
  long long s = 0;
  for (int64_t j = threadIdx.x; j < r; j += blockDim.x) s += (long long)x[(o * r + j) * inner + i];
#pragma unroll
  for (int d = 16; d >= 1; d /= 2) s += __shfl_down_sync(0xffffffffu, s, d);
  __shared__ long long warp_sum[32];
  if (threadIdx.x % 32 == 0) warp_sum[threadIdx.x / 32] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    long long total = 0;
    for (unsigned w = 0; w < (blockDim.x + 31) / 32; w++) total += warp_sum[w];
    g_first_overflow = kNone;
    record_fault(f, tag, FAULT_OVERFLOW, double(total), 0);
  }
}

// ---- host ---------------------------------------------------------------------------------------

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

template <class S, int OP, class SO>
void reduce_run(const ReduceArgs& a) {
  using R = Red<S, OP>;
  using A = typename R::A;
  const int64_t outer = a.outer, r = a.r, inner = a.inner, m = outer * inner;
  const S* x = ptr<S>(a.x);
  SO* out = static_cast<SO*>(a.out.data);
  const int64_t sms = props().multiProcessorCount;
  const int64_t want = sms * 2048;  // threads that fill the GPU
  constexpr int V = kVec<S>;
  int64_t segs = 1, len = r;
  A* part = nullptr;
  if (inner == 1 && r >= 64) {
    const bool long_rows = r >= 4096;
    const int64_t G = long_rows ? 256 : 32;
    const bool vec = aligned16(x) && (r % V) == 0;
    // segments of at least 16 elements per lane, as many as fill the GPU
    segs = clamp64(ceil_div(want, outer * G), 1, r / (G * 16) > 1 ? r / (G * 16) : 1);
    len = ceil_div(r, segs);
    if (vec) len = ceil_div(len, V) * V;
    segs = ceil_div(r, len);
    if (segs > 1) part = static_cast<A*>(scratch(size_t(segs * outer) * sizeof(A)));
    const int64_t units = outer * segs, groups_per_block = 256 / G;
    const int64_t blocks = clamp64(ceil_div(units, groups_per_block), 1, sms * 32);
    if (long_rows)
      reduce_rows_kernel<S, OP, SO, 256><<<unsigned(blocks), 256, 0, stream()>>>(x, out, part, outer, r, segs, len, vec);
    else
      reduce_rows_kernel<S, OP, SO, 32><<<unsigned(blocks), 256, 0, stream()>>>(x, out, part, outer, r, segs, len, vec);
    check_launch("reduce");
  } else {
    segs = clamp64(ceil_div(want, m), 1, r / 32 > 1 ? r / 32 : 1);
    len = ceil_div(r, segs);
    segs = ceil_div(r, len);
    if (segs > 1) part = static_cast<A*>(scratch(size_t(segs * m) * sizeof(A)));
    reduce_cols_kernel<S, OP, SO><<<grid_for(m * segs), kThreads, 0, stream()>>>(x, out, part, m, r, inner, segs, len);
    check_launch("reduce");
  }
  if (segs > 1) {
    reduce_final_kernel<S, OP, SO><<<unsigned(clamp64(ceil_div(m, kThreads / 32), 1, sms * 32)), kThreads, 0, stream()>>>(part, out, m, segs);
    check_launch("reduce");
  }
  if constexpr (OP == R_SUM && std::is_integral_v<typename Storage<S>::T> && std::is_same_v<SO, int32_t>) {
    overflow_fault_kernel<S><<<1, 256, 0, stream()>>>(x, r, inner, fault_word(), fault_tag());
    check_launch("reduce");
  }
}

// The out dtype: i32 for arg* and for sums of integers (i32, bool); bool's max/min give i32 as
// the tensor layer allocates it (or bool, if that is what out is); else x's dtype.
template <class S, int OP>
void reduce_op(const ReduceArgs& a) {
  using C = typename Storage<S>::T;
  if constexpr (OP == R_ARGMAX || OP == R_ARGMIN || (OP == R_SUM && std::is_integral_v<C>)) {
    if (a.out.dtype != I32) throw std::runtime_error(std::string("cuda: reduce: out must be i32, got ") + dtype_name(a.out.dtype));
    reduce_run<S, OP, int32_t>(a);
  } else if constexpr (std::is_same_v<S, uint8_t>) {
    if (a.out.dtype == I32) reduce_run<S, OP, int32_t>(a);
    else reduce_run<S, OP, S>(a);
  } else {
    if (a.out.dtype != a.x.dtype) throw std::runtime_error(std::string("cuda: reduce: out must be ") + dtype_name(a.x.dtype) + ", got " + dtype_name(a.out.dtype));
    reduce_run<S, OP, S>(a);
  }
}

struct ReduceAs {
  const ReduceArgs& a;
  template <class S>
  void operator()() const {
    switch (a.reduce_op) {
      case R_SUM: reduce_op<S, R_SUM>(a); break;
      case R_MAX: reduce_op<S, R_MAX>(a); break;
      case R_MIN: reduce_op<S, R_MIN>(a); break;
      case R_ARGMAX: reduce_op<S, R_ARGMAX>(a); break;
      case R_ARGMIN: reduce_op<S, R_ARGMIN>(a); break;
    }
  }
};

// x [outer, r, inner] → out [outer, inner].
Fault reduce(const ReduceArgs& a) {
  if (a.outer <= 0 || a.inner <= 0) return kNoFault;
  if (a.r <= 0) {  // an empty sum is 0 (+0: zero bytes in every dtype); r ≥ 1 for the others
    if (a.reduce_op == R_SUM)
      KILN_CUDA(cudaMemsetAsync(a.out.data, 0, size_t(a.outer * a.inner) * item_size(a.out.dtype), stream()), "reduce");
    return kNoFault;
  }
  dispatch_dtype(a.x.dtype, ReduceAs{a});
  return kNoFault;
}

}  // namespace

void add_reduce(Table& t) {
  // natively: f32, f64, i32, bool (halves are reduced in f32 by the tensor layer, though the
  // kernels take them too, summing in f64)
  t.computes[FAMILY_REDUCE] = dtype_bit(F32) | dtype_bit(F64) | dtype_bit(I32) | dtype_bit(BOOL);
  t.reduce = reduce;
}

}  // namespace cuda
}  // namespace kiln
