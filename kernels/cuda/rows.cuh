// Row kernels' shared helpers (softmax.cu, norm.cu, cross_entropy.cu): one warp per row when
// cols ≤ kWarpCols (8 rows per 256-thread block), else one 512-thread block per row, rows
// grid-strided; deterministic all-reduces across a row's lanes (a fixed xor butterfly, then the
// warps in order); 16-byte loads and stores (Pack, common.cuh) when every row is 16-byte aligned;
// and the running log-sum-exp state (m, s) of softmax and cross-entropy.
#pragma once
#include <cmath>
#include <cstdint>

#include "common.cuh"

namespace kiln {
namespace cuda {

// ---- row shapes ---------------------------------------------------------------------------------

constexpr int kWarp = 32;
constexpr int kWarpCols = 1024;   // rows up to this wide get one warp each
constexpr int kWarpBlock = 256;   // threads of a block of warp-rows (8 rows)
constexpr int kRowBlock = 512;    // threads of a block that owns one row

// Threads per block for LANES lanes per row.
__host__ __device__ constexpr int block_threads(int lanes) { return lanes == kWarp ? kWarpBlock : lanes; }

// Blocks for `rows` rows at `per_block` rows a block (rows are grid-strided beyond the cap).
inline unsigned row_grid(int64_t rows, int per_block) {
  const int64_t want = (rows + per_block - 1) / per_block;
  const int64_t cap = int64_t(props().multiProcessorCount) * 32;
  return unsigned(want < 1 ? 1 : want < cap ? want : cap);
}

// −∞ (INFINITY is a constant expression in device code, std::numeric_limits is host-only there)
template <typename T>
constexpr T kNegInf = -T(INFINITY);

__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }

// ---- reductions across a row's lanes -------------------------------------------------------------

// A lane's value from lane ^ o of its warp (scalars; a struct state such as Lse has its own
// overload, found where group_reduce is instantiated).
template <typename V>
__device__ __forceinline__ V shfl_xor(V v, int o) {
  return __shfl_xor_sync(0xffffffffu, v, o);
}

// All-reduce of v over the LANES lanes of a row with the commutative op: a xor butterfly within
// the warp (every lane ends with the same bits), then, for block rows, the warps' results in
// warp order from shared memory (every thread folds them in the same order: identical results,
// deterministic). Block rows call it uniformly (it has barriers).
template <int LANES, typename V, typename Op>
__device__ __forceinline__ V group_reduce(V v, Op op) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v = op(v, shfl_xor(v, o));
  if constexpr (LANES > kWarp) {
    __shared__ V part[LANES / kWarp];
    __syncthreads();  // the previous reduction's readers are done
    if (threadIdx.x % kWarp == 0) part[threadIdx.x / kWarp] = v;
    __syncthreads();
    v = part[0];
#pragma unroll
    for (int w = 1; w < LANES / kWarp; w++) v = op(v, part[w]);
  }
  return v;
}

// ---- walks over the columns a lane owns ----------------------------------------------------------
//
// With `vec`, whole 16-byte packs j = lane, lane + LANES, … (columns j·N … j·N + N − 1), then the
// tail columns one by one; without, columns c = lane, lane + LANES, ….

// f(c, x[c]) for the columns c of one row that `lane` owns.
template <int LANES, typename T, typename F>
__device__ __forceinline__ void row_read(const T* row, int64_t cols, int lane, bool vec, F&& f) {
  constexpr int N = Pack<T>::N;
  int64_t c0 = 0;
  if (vec) {
    const int64_t np = cols / N;
    const Pack<T>* p = reinterpret_cast<const Pack<T>*>(row);
    for (int64_t j = lane; j < np; j += LANES) {
      const Pack<T> a = p[j];
#pragma unroll
      for (int k = 0; k < N; k++) f(j * N + k, a.v[k]);
    }
    c0 = np * N;
  }
  for (int64_t c = c0 + lane; c < cols; c += LANES) f(c, row[c]);
}

// f(c, a[c], b[c]) over the columns `lane` owns (two rows read in step).
template <int LANES, typename T, typename F>
__device__ __forceinline__ void row_read2(const T* a, const T* b, int64_t cols, int lane, bool vec, F&& f) {
  constexpr int N = Pack<T>::N;
  int64_t c0 = 0;
  if (vec) {
    const int64_t np = cols / N;
    const Pack<T>* pa = reinterpret_cast<const Pack<T>*>(a);
    const Pack<T>* pb = reinterpret_cast<const Pack<T>*>(b);
    for (int64_t j = lane; j < np; j += LANES) {
      const Pack<T> u = pa[j], v = pb[j];
#pragma unroll
      for (int k = 0; k < N; k++) f(j * N + k, u.v[k], v.v[k]);
    }
    c0 = np * N;
  }
  for (int64_t c = c0 + lane; c < cols; c += LANES) f(c, a[c], b[c]);
}

// out[c] = f(c, in[c]) over the columns `lane` owns. Each element is read before it is written
// by the same thread, so out may be in.
template <int LANES, typename T, typename F>
__device__ __forceinline__ void row_map(const T* in, T* out, int64_t cols, int lane, bool vec, F&& f) {
  constexpr int N = Pack<T>::N;
  int64_t c0 = 0;
  if (vec) {
    const int64_t np = cols / N;
    const Pack<T>* p = reinterpret_cast<const Pack<T>*>(in);
    Pack<T>* q = reinterpret_cast<Pack<T>*>(out);
    for (int64_t j = lane; j < np; j += LANES) {
      const Pack<T> a = p[j];
      Pack<T> b;
#pragma unroll
      for (int k = 0; k < N; k++) b.v[k] = f(j * N + k, a.v[k]);
      q[j] = b;
    }
    c0 = np * N;
  }
  for (int64_t c = c0 + lane; c < cols; c += LANES) out[c] = f(c, in[c]);
}

// out[c] = f(c, a[c], b[c]); each element is read before the same thread writes it (out may be a).
template <int LANES, typename T, typename F>
__device__ __forceinline__ void row_map2(const T* a, const T* b, T* out, int64_t cols, int lane, bool vec, F&& f) {
  constexpr int N = Pack<T>::N;
  int64_t c0 = 0;
  if (vec) {
    const int64_t np = cols / N;
    const Pack<T>* pa = reinterpret_cast<const Pack<T>*>(a);
    const Pack<T>* pb = reinterpret_cast<const Pack<T>*>(b);
    Pack<T>* q = reinterpret_cast<Pack<T>*>(out);
    for (int64_t j = lane; j < np; j += LANES) {
      const Pack<T> u = pa[j], v = pb[j];
      Pack<T> y;
#pragma unroll
      for (int k = 0; k < N; k++) y.v[k] = f(j * N + k, u.v[k], v.v[k]);
      q[j] = y;
    }
    c0 = np * N;
  }
  for (int64_t c = c0 + lane; c < cols; c += LANES) out[c] = f(c, a[c], b[c]);
}

// out[c] = 0 over the columns `lane` owns.
template <int LANES, typename T>
__device__ __forceinline__ void row_zero(T* out, int64_t cols, int lane, bool vec) {
  constexpr int N = Pack<T>::N;
  int64_t c0 = 0;
  if (vec) {
    const int64_t np = cols / N;
    Pack<T> z;
#pragma unroll
    for (int k = 0; k < N; k++) z.v[k] = T(0);
    Pack<T>* q = reinterpret_cast<Pack<T>*>(out);
    for (int64_t j = lane; j < np; j += LANES) q[j] = z;
    c0 = np * N;
  }
  for (int64_t c = c0 + lane; c < cols; c += LANES) out[c] = T(0);
}

// ---- log-sum-exp state --------------------------------------------------------------------------

// (m, s): the max so far and Σ exp(x − m). m is −∞ (s = 0) until a larger element, NaN for good
// once a NaN is seen; s is meaningless once m is +∞ (only m is used then).
template <typename T>
struct Lse {
  T m, s;
};

template <typename T>
__device__ __forceinline__ Lse<T> shfl_xor(Lse<T> a, int o) {
  return Lse<T>{__shfl_xor_sync(0xffffffffu, a.m, o), __shfl_xor_sync(0xffffffffu, a.s, o)};
}

template <typename T>
__device__ __forceinline__ void lse_push(Lse<T>& a, T v) {
  if (a.m != a.m) return;
  if (v != v) {
    a.m = v;
    a.s = T(0);
  } else if (v <= a.m) {
    if (v != kNegInf<T>) a.s += dexp(v - a.m);
  } else {  // v > m: rescale (exp(−∞) = 0 the first time)
    a.s = a.s * dexp(a.m - v) + T(1);
    a.m = v;
  }
}

// Symmetric in a and b, bit for bit (so every lane of a butterfly agrees).
struct LseMerge {
  template <typename T>
  __device__ __forceinline__ Lse<T> operator()(Lse<T> a, Lse<T> b) const {
    if (a.m != a.m || b.m != b.m) return Lse<T>{a.m != a.m ? a.m : b.m, T(0)};
    if (b.m == kNegInf<T>) return a;
    if (a.m == kNegInf<T>) return b;
    const T m = a.m > b.m ? a.m : b.m;
    return Lse<T>{m, a.s * dexp(a.m - m) + b.s * dexp(b.m - m)};
  }
};

}  // namespace cuda
}  // namespace kiln
