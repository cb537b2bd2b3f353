// Backend.softmax (and log-softmax) over the last axis, on the device: x, out [rows, cols], f32
// (computed in f32) or f64 (in f64). Semantics: src/backend/ref/ref.ts `softmax` and
// `rowLogSumExp`; the CPU twin is kernels/cpu/isa/softmax.cc.
//
// One warp per row when cols ≤ kWarpCols (8 rows per 256-thread block), else one 512-thread
// block per row; rows are grid-strided. A row is read twice: once for its running log-sum-exp
// state (m, s) = (max, Σ exp(x − m)), merged across lanes with warp shuffles (and shared memory
// across the warps of a block), then again to write out = exp(x − m)/s or (x − m) − log s
// (x − m is exact near the max, where it matters; x − lse with lse rounded would not be). The
// second read hits L1/L2. Loads and stores are 16 bytes wide when every row is 16-byte aligned.
//
// Special rows follow ref's rowLogSumExp: a NaN anywhere makes lse NaN; else a +∞ makes it +∞;
// an all −∞ row has lse −∞. In each case lse equals the state's m, and out = x − lse or
// exp(x − lse) literally (so an all −∞ row is NaN throughout, as torch).
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "rows.cuh"

namespace kiln {
namespace cuda {
namespace {

// ---- the kernel ---------------------------------------------------------------------------------

template <typename T, int LANES>
__global__ void __launch_bounds__(block_threads(LANES))
    softmax_rows(const T* x, T* out, int64_t rows, int64_t cols, bool log, bool vec) {
  constexpr int kRows = block_threads(LANES) / LANES;  // rows per block
  const int lane = int(threadIdx.x) % LANES;
  for (int64_t r = int64_t(blockIdx.x) * kRows + int(threadIdx.x) / LANES; r < rows; r += int64_t(gridDim.x) * kRows) {
    const T* xr = x + r * cols;
    T* yr = out + r * cols;
    Lse<T> st{kNegInf<T>, T(0)};
    row_read<LANES>(xr, cols, lane, vec, [&](int64_t, T v) { lse_push(st, v); });
    st = group_reduce<LANES>(st, LseMerge{});
    const T m = st.m;
    // finite max: exp(x − m)/s or (x − m) − log s; otherwise lse = m (NaN, +∞ or −∞) and the
    // outputs are x − lse or exp(x − lse) literally
    const bool finite = isfinite(m);
    const T ls = finite ? T(::log(double(st.s))) : T(0);
    const T inv = finite ? T(1) / st.s : T(1);
    if (log)
      row_map<LANES>(xr, yr, cols, lane, vec, [&](int64_t, T v) { return (v - m) - ls; });
    else
      row_map<LANES>(xr, yr, cols, lane, vec, [&](int64_t, T v) { return dexp(v - m) * inv; });
  }
}

template <typename T>
void softmax_as(const SoftmaxArgs& a) {
  const T* x = ptr<const T>(a.x);
  T* out = ptr<T>(a.out);
  const bool vec = aligned16(x) && aligned16(out) && a.cols % Pack<T>::N == 0;
  if (a.cols <= kWarpCols) {
    softmax_rows<T, kWarp><<<row_grid(a.rows, kWarpBlock / kWarp), kWarpBlock, 0, stream()>>>(x, out, a.rows, a.cols, a.log, vec);
  } else {
    softmax_rows<T, kRowBlock><<<row_grid(a.rows, 1), kRowBlock, 0, stream()>>>(x, out, a.rows, a.cols, a.log, vec);
  }
  check_launch("softmax");
}

void softmax(const SoftmaxArgs& a) {
  if (a.rows <= 0 || a.cols <= 0) return;
  switch (a.x.dtype) {
    case F32: softmax_as<float>(a); break;
    case F64: softmax_as<double>(a); break;
    default: throw std::runtime_error(std::string("cuda softmax: dtype ") + dtype_name(a.x.dtype) + " is not computed natively (the tensor layer casts it to f32)");
  }
}

}  // namespace

void add_softmax(Table& t) {
  t.softmax = softmax;
  t.computes[FAMILY_SOFTMAX] = dtype_bit(F32) | dtype_bit(F64);
}

}  // namespace cuda
}  // namespace kiln
