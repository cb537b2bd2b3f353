// The many-tensor optimizer kernels on the device: Backend.multiNorm, Backend.multiScale and the
// fused Backend.adamUpdate and Backend.lambUpdate, each over a list of f32 or f64 tensors (the
// tensor layer runs halves through f32 copies). Semantics: src/backend/ref/ref.ts; the CPU twin
// is kernels/cpu/isa/optim.cc.
//
// Launches. A list is cut into chunks of at most kPerLaunch(D) tensors whose descriptors
// ({pointers, size, per-tensor constants}) travel BY VALUE as one `__grid_constant__` kernel
// parameter of at most kParamBytes (under the 4 KB every architecture and driver accepts): the
// launch copies its parameters when it is queued, so nothing on the host has to outlive the call
// (no pinned staging, no reliance on how the driver stages pageable cudaMemcpyAsync sources).
// Tensor i of a chunk gets blocks(n_i) = clamp(⌈n_i/kBlockElems⌉, 1, kMaxTensorBlocks) blocks of
// kThreads threads, listed by the prefix sums `block0`; a block finds its tensor by binary search
// and grid-strides over that tensor alone (16-byte loads and stores when all its arrays are
// 16-byte aligned). A typical model's parameter list is one to a few launches.
//
// Reductions (multiNorm, LAMB's ‖p‖ and ‖r‖) are deterministic and atomic-free: each block
// writes its partial (f64) to scratch at its global block index and the first block of a tensor
// writes the tensor's range of partials; one more launch reduces every tensor's range in order,
// a warp per tensor. The partition depends only on the sizes, so results do not depend on the
// device or the run.
//
// Arithmetic is in f64 for f32 and f64 tensors alike: norms accumulate in f64 (as the CPU's), and
// Adam/LAMB follow ref's expression order with explicit round-to-nearest f64 intrinsics (no FMA
// contraction), reading the moments back after rounding them to their storage type, as ref does;
// with the bias corrections 1 − βᵗ taken on the host as the CPU's, every Adam element is the
// CPU's bit for bit. (These kernels are memory-bound; f64 arithmetic is free on an H100/H200.)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.cuh"

namespace kiln {
namespace cuda {
namespace {

// ---- chunks of tensors --------------------------------------------------------------------------

constexpr int64_t kBlockElems = 8192;        // elements per block, at least (fewer blocks for tiny tensors)
constexpr int64_t kMaxTensorBlocks = 16384;  // beyond, a tensor's blocks grid-stride
constexpr int64_t kMaxGridBlocks = 1 << 30;
constexpr size_t kParamBytes = 3840;         // one chunk's parameter (the rest of the 4 KB: scalars)

inline int64_t blocks_for(int64_t n) {
  const int64_t b = (n + kBlockElems - 1) / kBlockElems;
  return b < 1 ? 1 : b > kMaxTensorBlocks ? kMaxTensorBlocks : b;
}

// How many descriptors D fit one launch's parameter.
template <class D>
constexpr int per_launch() {
  return int((kParamBytes - 16) / (sizeof(D) + sizeof(int)));
}

// Up to K tensors and the first block of each (block0[count] = the chunk's blocks); partial0 is
// the global index of the chunk's first block (its partials' offset in scratch).
template <class D>
struct Chunk {
  static constexpr int K = per_launch<D>();
  D t[K];
  int block0[K + 1];
  int count;
  long long partial0;
};

// Cut `ds` into chunks and call launch(chunk, blocks) for each; partial0 numbers the blocks
// from `first_block` on. Returns the number of the block after the last.
template <class D, class L>
int64_t launch_chunks(const std::vector<D>& ds, int64_t first_block, L&& launch) {
  static_assert(sizeof(Chunk<D>) <= kParamBytes, "a chunk must fit one launch's parameters");
  int64_t partial = first_block;
  size_t i = 0;
  while (i < ds.size()) {
    Chunk<D> c{};
    int64_t blocks = 0;
    int count = 0;
    while (i < ds.size() && count < Chunk<D>::K) {
      const int64_t nb = blocks_for(ds[i].n);
      if (count > 0 && blocks + nb > kMaxGridBlocks) break;
      c.t[count] = ds[i];
      c.block0[count] = int(blocks);
      blocks += nb;
      count++;
      i++;
    }
    c.block0[count] = int(blocks);
    c.count = count;
    c.partial0 = partial;
    launch(c, unsigned(blocks));
    partial += blocks;
  }
  return partial;
}

// The tensor of block b: the last i with block0[i] ≤ b.
template <class C>
__host__ __device__ __forceinline__ int tensor_of(const C& c, int b) {
  int lo = 0, hi = c.count;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (c.block0[mid] <= b) lo = mid;
    else hi = mid;
  }
  return lo;
}

// What block blockIdx.x of a chunk's launch works on: tensor ti, as the lb-th of that tensor's nb
// blocks, and its elements' grid-stride start and step.
struct Share {
  int b, ti, lb, nb;
  __device__ int64_t first() const { return int64_t(lb) * kThreads + threadIdx.x; }
  __device__ int64_t step() const { return int64_t(nb) * kThreads; }
};

template <class C>
__device__ __forceinline__ Share share_of(const C& c) {
  const int b = int(blockIdx.x);
  const int ti = tensor_of(c, b);
  return Share{b, ti, b - c.block0[ti], c.block0[ti + 1] - c.block0[ti]};
}

template <int A>
__device__ __forceinline__ bool all_aligned16(void* const (&ps)[A]) {
  uintptr_t bits = 0;
#pragma unroll
  for (int a = 0; a < A; a++) bits |= reinterpret_cast<uintptr_t>(ps[a]);
  return (bits & 15u) == 0;
}

// f(e) for the elements i = first, first + stride, … < n of A arrays in step, e[a] holding
// element i of array a (in registers); arrays whose bit is set in WRITE are stored back. With
// `vec`, whole 16-byte packs are moved (element i of pack j is j·N + k), then the tail.
template <int WRITE, typename T, int A, typename F>
__device__ __forceinline__ void for_elements(void* const (&ps)[A], int64_t n, int64_t first, int64_t stride, bool vec, F&& f) {
  constexpr int N = Pack<T>::N;
  int64_t i0 = 0;
  if (vec) {
    const int64_t np = n / N;
    for (int64_t j = first; j < np; j += stride) {
      Pack<T> v[A];
#pragma unroll
      for (int a = 0; a < A; a++) v[a] = static_cast<const Pack<T>*>(ps[a])[j];
#pragma unroll
      for (int k = 0; k < N; k++) {
        T e[A];
#pragma unroll
        for (int a = 0; a < A; a++) e[a] = v[a].v[k];
        f(e);
#pragma unroll
        for (int a = 0; a < A; a++) v[a].v[k] = e[a];
      }
#pragma unroll
      for (int a = 0; a < A; a++)
        if ((WRITE >> a) & 1) static_cast<Pack<T>*>(ps[a])[j] = v[a];
    }
    i0 = np * N;
  }
  for (int64_t i = i0 + first; i < n; i += stride) {
    T e[A];
#pragma unroll
    for (int a = 0; a < A; a++) e[a] = static_cast<const T*>(ps[a])[i];
    f(e);
#pragma unroll
    for (int a = 0; a < A; a++)
      if ((WRITE >> a) & 1) static_cast<T*>(ps[a])[i] = e[a];
  }
}

// ---- reductions ---------------------------------------------------------------------------------

// NaN wins and sticks, as ref's `m > acc || m !== m ? m : acc`.
__device__ __forceinline__ double nan_max(double a, double b) { return (b > a || b != b) ? b : a; }

struct Sum {
  __device__ __forceinline__ double operator()(double a, double b) const { return a + b; }
};
struct NanMax {
  __device__ __forceinline__ double operator()(double a, double b) const { return (a != a) ? a : nan_max(a, b); }
};

// Warp all-reduce (xor butterfly; every lane gets the same bits: the ops are commutative).
template <class Op>
__device__ __forceinline__ double warp_reduce(double v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Reduce over the kThreads threads of the block; the result is thread 0's. Warps in order.
template <class Op>
__device__ __forceinline__ double block_reduce(double v, Op op) {
  __shared__ double part[kThreads / 32];
  v = warp_reduce(v, op);
  __syncthreads();  // a previous call's reads are done
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    v = part[0];
#pragma unroll
    for (int w = 1; w < kThreads / 32; w++) v = op(v, part[w]);
  }
  return v;
}

// Partials [first, first + count) of a tensor (written by its first block).
struct Range {
  long long first, count;
};

// ---- multiNorm ----------------------------------------------------------------------------------

enum NormKind : int { NORM_INF = 0, NORM_1 = 1, NORM_2 = 2, NORM_P = 3 };

struct NormTensor {
  const void* x;
  long long n;
  long long index;  // position in the list (out, ranges)
};

template <typename T>
__global__ void __launch_bounds__(kThreads)
    norm_partials(const __grid_constant__ Chunk<NormTensor> c, int kind, double ord, double* partials, Range* ranges) {
  const Share sh = share_of(c);
  const NormTensor& d = c.t[sh.ti];
  void* const ps[1] = {const_cast<void*>(d.x)};
  double acc = 0;
  for_elements<0, T>(ps, d.n, sh.first(), sh.step(), all_aligned16(ps), [&](T (&e)[1]) {
    const double x = double(e[0]);
    const double m = fabs(x);
    switch (kind) {
      case NORM_INF: acc = nan_max(acc, m); break;
      case NORM_1: acc += m; break;
      case NORM_2: acc += x * x; break;
      default: acc += pow(m, ord); break;
    }
  });
  acc = kind == NORM_INF ? block_reduce(acc, NanMax{}) : block_reduce(acc, Sum{});
  if (threadIdx.x == 0) {
    partials[c.partial0 + sh.b] = acc;
    if (sh.lb == 0) ranges[d.index] = Range{c.partial0 + c.block0[sh.ti], sh.nb};
  }
}

// out[t] = the norm from tensor t's partials, a warp per tensor, partials in order.
__global__ void norm_finish(const double* partials, const Range* ranges, int64_t count, int kind, double ord, void* out, bool out64) {
  const int lane = int(threadIdx.x) % 32;
  for (int64_t t = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; t < count; t += int64_t(gridDim.x) * blockDim.x / 32) {
    const Range r = ranges[t];
    double acc = 0;
    for (long long i = lane; i < r.count; i += 32) {
      const double p = partials[r.first + i];
      acc = kind == NORM_INF ? NanMax{}(acc, p) : acc + p;
    }
    acc = kind == NORM_INF ? warp_reduce(acc, NanMax{}) : warp_reduce(acc, Sum{});
    if (lane != 0) continue;
    const double norm = kind == NORM_INF || kind == NORM_1 ? acc : kind == NORM_2 ? sqrt(acc) : pow(acc, 1 / ord);
    if (out64) static_cast<double*>(out)[t] = norm;
    else static_cast<float*>(out)[t] = float(norm);
  }
}

template <typename T>
struct Tag {
  using type = T;
};

// per_dtype(Tag<T>{}, indices) for the f32 and then the f64 tensors of a list (the tensor layer
// gives one dtype; a mixed list still works), in list order within each.
template <class F>
void by_dtype(const Bufs& xs, const char* op, F&& per_dtype) {
  std::vector<int64_t> f32, f64;
  for (int64_t i = 0; i < xs.count; i++) {
    const DType dt = xs.items[i].dtype;
    if (dt == F32) f32.push_back(i);
    else if (dt == F64) f64.push_back(i);
    else not_native(op, dt);
  }
  if (!f32.empty()) per_dtype(Tag<float>{}, f32);
  if (!f64.empty()) per_dtype(Tag<double>{}, f64);
}

unsigned warps_grid(int64_t count) {
  const int64_t want = (count * 32 + kThreads - 1) / kThreads;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(want, int64_t(props().multiProcessorCount) * 32)));
}

void multi_norm(const MultiNormArgs& a) {
  const int64_t count = a.xs.count;
  if (count == 0) return;
  if (a.out.dtype != F32 && a.out.dtype != F64) not_native("multiNorm", a.out.dtype);
  const int kind = std::isinf(a.ord) ? NORM_INF : a.ord == 1 ? NORM_1 : a.ord == 2 ? NORM_2 : NORM_P;
  int64_t total = 0;
  for (int64_t i = 0; i < count; i++) total += blocks_for(a.xs.items[i].size);
  char* s = static_cast<char*>(scratch(size_t(total) * sizeof(double) + size_t(count) * sizeof(Range)));
  double* partials = reinterpret_cast<double*>(s);
  Range* ranges = reinterpret_cast<Range*>(s + size_t(total) * sizeof(double));
  int64_t next = 0;
  by_dtype(a.xs, "multiNorm", [&](auto tag, const std::vector<int64_t>& idx) {
    using T = typename decltype(tag)::type;
    std::vector<NormTensor> ds;
    for (int64_t i : idx) ds.push_back(NormTensor{a.xs.items[i].data, a.xs.items[i].size, i});
    next = launch_chunks(ds, next, [&](const Chunk<NormTensor>& c, unsigned blocks) {
      norm_partials<T><<<blocks, kThreads, 0, stream()>>>(c, kind, a.ord, partials, ranges);
      check_launch("multiNorm (partials)");
    });
  });
  norm_finish<<<warps_grid(count), kThreads, 0, stream()>>>(partials, ranges, count, kind, a.ord, a.out.data, a.out.dtype == F64);
  check_launch("multiNorm");
}

// ---- multiScale ---------------------------------------------------------------------------------

struct ScaleTensor {
  void* x;
  long long n;
};

// x ← x·s, the product in f64 rounded once to T (for f32 x and s: the f32 product).
template <typename T>
__global__ void __launch_bounds__(kThreads) scale_tensors(const __grid_constant__ Chunk<ScaleTensor> c, const void* scale, bool scale64) {
  const double s = scale64 ? *static_cast<const double*>(scale) : double(*static_cast<const float*>(scale));
  const Share sh = share_of(c);
  const ScaleTensor& d = c.t[sh.ti];
  void* const ps[1] = {d.x};
  for_elements<1, T>(ps, d.n, sh.first(), sh.step(), all_aligned16(ps),
                     [&](T (&e)[1]) { e[0] = T(double(e[0]) * s); });
}

void multi_scale(const MultiScaleArgs& a) {
  int64_t elements = 0;
  for (int64_t i = 0; i < a.xs.count; i++) elements += a.xs.items[i].size;
  if (elements == 0) return;
  if (a.scale.dtype != F32 && a.scale.dtype != F64) not_native("multiScale", a.scale.dtype);
  // The scale may be an element of the list (read on the device, ref reads it once before
  // writing): a stream-ordered snapshot in scratch is what every launch reads.
  const size_t bytes = item_size(a.scale.dtype);
  void* s = scratch(sizeof(double));
  KILN_CUDA(cudaMemcpyAsync(s, a.scale.data, bytes, cudaMemcpyDeviceToDevice, stream()), "multiScale (scale snapshot)");
  by_dtype(a.xs, "multiScale", [&](auto tag, const std::vector<int64_t>& idx) {
    using T = typename decltype(tag)::type;
    std::vector<ScaleTensor> ds;
    for (int64_t i : idx)
      if (a.xs.items[i].size > 0) ds.push_back(ScaleTensor{a.xs.items[i].data, a.xs.items[i].size});
    launch_chunks(ds, 0, [&](const Chunk<ScaleTensor>& c, unsigned blocks) {
      scale_tensors<T><<<blocks, kThreads, 0, stream()>>>(c, s, a.scale.dtype == F64);
      check_launch("multiScale");
    });
  });
}

// ---- Adam and LAMB ------------------------------------------------------------------------------

// The step's scalars, as ref has them (JS doubles): 1 − β and lr·wd rounded once, as ref's
// `(1 - a.beta1)` and `a.lr * a.weightDecay`.
struct Hyper {
  double lr, wd, lrwd, beta1, omb1, beta2, omb2, eps;
  bool decoupled;
};

Hyper hyper(double lr, double beta1, double beta2, double eps, double wd, bool decoupled) {
  return Hyper{lr, wd, lr * wd, beta1, 1 - beta1, beta2, 1 - beta2, eps, decoupled};
}

// m_t = β1·m + (1−β1)·g and v_t = β2·v + (1−β2)·g·g, in ref's order, no contraction
__device__ __forceinline__ double moment1(const Hyper& h, double m, double g) { return __dadd_rn(__dmul_rn(h.beta1, m), __dmul_rn(h.omb1, g)); }
__device__ __forceinline__ double moment2(const Hyper& h, double v, double g) {
  return __dadd_rn(__dmul_rn(h.beta2, v), __dmul_rn(__dmul_rn(h.omb2, g), g));
}

struct OptTensor {
  void* p;
  const void* g;
  void* m;
  void* v;
  long long n;
  double bc1, bc2;  // 1 − βᵗ for the tensor's step (1 without bias correction)
  long long index;  // position in the list (LAMB's ranges and trust)
};

// 1 − β^step for each parameter, as the CPU's (std::pow on the host)
std::vector<OptTensor> opt_tensors(const Bufs& params, const Bufs& grads, const Bufs& m, const Bufs& v, const IntList& steps, const std::vector<int64_t>& idx,
                                   double beta1, double beta2, bool correct, bool skip_empty) {
  std::vector<OptTensor> ds;
  for (int64_t i : idx) {
    const int64_t n = params.items[i].size;
    if (skip_empty && n == 0) continue;
    const double t = double(steps.v[i]);
    ds.push_back(OptTensor{params.items[i].data, grads.items[i].data, m.items[i].data, v.items[i].data, n, correct ? 1 - std::pow(beta1, t) : 1.0,
                           correct ? 1 - std::pow(beta2, t) : 1.0, i});
  }
  return ds;
}

// e = {p, g, m, v}: g ← g + wd·p (Adam) or p ← p − lr·wd·p (AdamW); the moments; then
// p ← p − lr·(m̂)/(√v̂ + ε) from the moments as stored.
template <typename T>
__global__ void __launch_bounds__(kThreads) adam_tensors(const __grid_constant__ Chunk<OptTensor> c, const Hyper h) {
  const Share sh = share_of(c);
  const OptTensor& d = c.t[sh.ti];
  const double bc1 = d.bc1, bc2 = d.bc2;
  void* const ps[4] = {d.p, const_cast<void*>(d.g), d.m, d.v};
  for_elements<0b1101, T>(ps, d.n, sh.first(), sh.step(), all_aligned16(ps), [&](T (&e)[4]) {
    double w = double(e[0]);
    double g = double(e[1]);
    if (h.decoupled) w = __dsub_rn(w, __dmul_rn(h.lrwd, w));
    else g = __dadd_rn(g, __dmul_rn(h.wd, w));
    e[2] = T(moment1(h, double(e[2]), g));
    e[3] = T(moment2(h, double(e[3]), g));
    const double step = __ddiv_rn(__dmul_rn(h.lr, __ddiv_rn(double(e[2]), bc1)), __dadd_rn(__dsqrt_rn(__ddiv_rn(double(e[3]), bc2)), h.eps));
    e[0] = T(__dsub_rn(w, step));
  });
}

void adam_update(const AdamUpdateArgs& a) {
  const Hyper h = hyper(a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, a.decoupled);
  by_dtype(a.params, "adamUpdate", [&](auto tag, const std::vector<int64_t>& idx) {
    using T = typename decltype(tag)::type;
    const std::vector<OptTensor> ds = opt_tensors(a.params, a.grads, a.m, a.v, a.steps, idx, a.beta1, a.beta2, true, true);
    launch_chunks(ds, 0, [&](const Chunk<OptTensor>& c, unsigned blocks) {
      adam_tensors<T><<<blocks, kThreads, 0, stream()>>>(c, h);
      check_launch("adamUpdate");
    });
  });
}

// LAMB's update direction r = m̂/(√v̂ + ε) + wd·p, from the stored moments (ref's order).
__device__ __forceinline__ double lamb_r(const Hyper& h, double p, double m, double v, double bc1, double bc2) {
  return __dadd_rn(__ddiv_rn(__ddiv_rn(m, bc1), __dadd_rn(__dsqrt_rn(__ddiv_rn(v, bc2)), h.eps)), __dmul_rn(h.wd, p));
}

// Pass 1, e = {p, g, m, v}: the moments, and the block's Σp², Σr² to partials[2·block], [2·block + 1].
template <typename T>
__global__ void __launch_bounds__(kThreads) lamb_moments(const __grid_constant__ Chunk<OptTensor> c, const Hyper h, double* partials, Range* ranges) {
  const Share sh = share_of(c);
  const OptTensor& d = c.t[sh.ti];
  const double bc1 = d.bc1, bc2 = d.bc2;
  void* const ps[4] = {d.p, const_cast<void*>(d.g), d.m, d.v};
  double w2 = 0, r2 = 0;
  for_elements<0b1100, T>(ps, d.n, sh.first(), sh.step(), all_aligned16(ps), [&](T (&e)[4]) {
    const double g = double(e[1]);
    e[2] = T(moment1(h, double(e[2]), g));
    e[3] = T(moment2(h, double(e[3]), g));
    const double p = double(e[0]);
    const double r = lamb_r(h, p, double(e[2]), double(e[3]), bc1, bc2);
    w2 += p * p;
    r2 += r * r;
  });
  w2 = block_reduce(w2, Sum{});
  r2 = block_reduce(r2, Sum{});
  if (threadIdx.x == 0) {
    partials[2 * (c.partial0 + sh.b)] = w2;
    partials[2 * (c.partial0 + sh.b) + 1] = r2;
    if (sh.lb == 0) ranges[d.index] = Range{c.partial0 + c.block0[sh.ti], sh.nb};
  }
}

// φ_t = ‖p‖/‖r‖ (1 when either is 0 or NaN), a warp per tensor: lr·φ to lr_trust, φ to trust.
__global__ void lamb_trust(const double* partials, const Range* ranges, int64_t count, double lr, double* lr_trust, void* trust, bool trust64) {
  const int lane = int(threadIdx.x) % 32;
  for (int64_t t = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; t < count; t += int64_t(gridDim.x) * blockDim.x / 32) {
    const Range r = ranges[t];
    double w2 = 0, r2 = 0;
    for (long long i = lane; i < r.count; i += 32) {
      w2 += partials[2 * (r.first + i)];
      r2 += partials[2 * (r.first + i) + 1];
    }
    w2 = warp_reduce(w2, Sum{});
    r2 = warp_reduce(r2, Sum{});
    if (lane != 0) continue;
    const double wn = sqrt(w2), rn = sqrt(r2);
    const double phi = wn > 0 && rn > 0 ? wn / rn : 1.0;
    lr_trust[t] = __dmul_rn(lr, phi);
    if (trust) {
      if (trust64) static_cast<double*>(trust)[t] = phi;
      else static_cast<float*>(trust)[t] = float(phi);
    }
  }
}

// Pass 2, e = {p, m, v}: p ← p − (lr·φ)·r, r recomputed from the stored moments and the old p.
template <typename T>
__global__ void __launch_bounds__(kThreads) lamb_step(const __grid_constant__ Chunk<OptTensor> c, const Hyper h, const double* lr_trust) {
  const Share sh = share_of(c);
  const OptTensor& d = c.t[sh.ti];
  const double bc1 = d.bc1, bc2 = d.bc2;
  const double lt = lr_trust[d.index];
  void* const ps[3] = {d.p, d.m, d.v};
  for_elements<0b001, T>(ps, d.n, sh.first(), sh.step(), all_aligned16(ps), [&](T (&e)[3]) {
    const double p = double(e[0]);
    e[0] = T(__dsub_rn(p, __dmul_rn(lt, lamb_r(h, p, double(e[1]), double(e[2]), bc1, bc2))));
  });
}

void lamb_update(const LambUpdateArgs& a) {
  const int64_t count = a.params.count;
  if (count == 0) return;
  if (a.trust.data && a.trust.dtype != F32 && a.trust.dtype != F64) not_native("lambUpdate", a.trust.dtype);
  const Hyper h = hyper(a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, false);
  int64_t total = 0;
  for (int64_t i = 0; i < count; i++) total += blocks_for(a.params.items[i].size);
  char* s = static_cast<char*>(scratch(size_t(total) * 2 * sizeof(double) + size_t(count) * (sizeof(Range) + sizeof(double))));
  double* partials = reinterpret_cast<double*>(s);
  Range* ranges = reinterpret_cast<Range*>(s + size_t(total) * 2 * sizeof(double));
  double* lr_trust = reinterpret_cast<double*>(s + size_t(total) * 2 * sizeof(double) + size_t(count) * sizeof(Range));
  // every tensor, even an empty one (φ = 1), has a block and a range
  int64_t next = 0;
  by_dtype(a.params, "lambUpdate", [&](auto tag, const std::vector<int64_t>& idx) {
    using T = typename decltype(tag)::type;
    const std::vector<OptTensor> ds = opt_tensors(a.params, a.grads, a.m, a.v, a.steps, idx, a.beta1, a.beta2, a.bias_correction, false);
    next = launch_chunks(ds, next, [&](const Chunk<OptTensor>& c, unsigned blocks) {
      lamb_moments<T><<<blocks, kThreads, 0, stream()>>>(c, h, partials, ranges);
      check_launch("lambUpdate (moments)");
    });
  });
  lamb_trust<<<warps_grid(count), kThreads, 0, stream()>>>(partials, ranges, count, a.lr, lr_trust, a.trust.data, a.trust.dtype == F64);
  check_launch("lambUpdate (trust ratios)");
  by_dtype(a.params, "lambUpdate", [&](auto tag, const std::vector<int64_t>& idx) {
    using T = typename decltype(tag)::type;
    const std::vector<OptTensor> ds = opt_tensors(a.params, a.grads, a.m, a.v, a.steps, idx, a.beta1, a.beta2, a.bias_correction, true);
    launch_chunks(ds, 0, [&](const Chunk<OptTensor>& c, unsigned blocks) {
      lamb_step<T><<<blocks, kThreads, 0, stream()>>>(c, h, lr_trust);
      check_launch("lambUpdate (step)");
    });
  });
}

}  // namespace

void add_optim(Table& t) {
  t.multi_norm = multi_norm;
  t.multi_scale = multi_scale;
  t.adam_update = adam_update;
  t.lamb_update = lamb_update;
  t.computes[FAMILY_OPTIM] = dtype_bit(F32) | dtype_bit(F64);
}

}  // namespace cuda
}  // namespace kiln
