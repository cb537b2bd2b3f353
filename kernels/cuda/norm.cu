// Backend.layerNorm (and RMS norm) and its backward, on the device: x, dy, out, dx [rows, cols],
// weight, bias, dWeight, dBias [cols], mean, rstd [rows]; f32 (computed in f32) or f64 (in f64).
// Semantics: src/backend/ref/ref.ts `layerNorm`, `layerNormBackward`; the CPU twin is
// kernels/cpu/isa/norm.cc.
//
// Row kernels as softmax.cu: one warp per row when cols ≤ kWarpCols, else one 512-thread block
// per row, warp-shuffle reductions (deterministic: a fixed butterfly, then the warps in order),
// 16-byte loads and stores when every row is 16-byte aligned.
//
// Forward, two passes as the reference (the variance never comes from Σx² − (Σx)²/n):
// μ = p + Σ(x − p)/cols about a pivot p (the row's first element when finite, else 0), so the f32
// sum's error scales with the row's spread, not its magnitude; then var = Σ(x − μ)²/cols (biased),
// rstd = 1/√(var + eps) in f64 from the f32 sum; y = (x − μ)·rstd·w + b. With `rms`, μ = 0 and
// `mean` is not written. cols = 0 gives mean and rstd NaN (0/0), as ref.
//
// Backward: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = dy·w, x̂ = (x − μ)·rstd (no mean(ĝ) term
// for RMS), per row. dWeight = Σ_rows dy·x̂ and dBias = Σ_rows dy are column sums done in two
// deterministic passes, no atomics: blocks of 32 columns × a chunk of rows write per-chunk
// partials (f32 for f32) to scratch, then one thread per column adds its chunks in order in f64.
// The column pass runs before the dx pass, so dx may alias dy. rows = 0 writes dWeight = dBias = 0.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "rows.cuh"

namespace kiln {
namespace cuda {
namespace {

struct Add {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

// Two sums reduced together.
template <typename T>
struct Two {
  T a, b;
};
template <typename T>
__device__ __forceinline__ Two<T> shfl_xor(Two<T> v, int o) {
  return Two<T>{__shfl_xor_sync(0xffffffffu, v.a, o), __shfl_xor_sync(0xffffffffu, v.b, o)};
}
struct AddTwo {
  template <typename T>
  __device__ __forceinline__ Two<T> operator()(Two<T> x, Two<T> y) const { return Two<T>{x.a + y.a, x.b + y.b}; }
};

// ---- forward ------------------------------------------------------------------------------------

template <typename T, int LANES>
__global__ void __launch_bounds__(block_threads(LANES))
    layer_norm_rows(const T* x, const T* w, const T* b, T* out, T* mean, T* rstd, int64_t rows, int64_t cols, double eps, bool rms, bool vec,
                    const T* res, T* sum, bool vec_res) {
  constexpr int kRows = block_threads(LANES) / LANES;
  const int lane = int(threadIdx.x) % LANES;
  for (int64_t r = int64_t(blockIdx.x) * kRows + int(threadIdx.x) / LANES; r < rows; r += int64_t(gridDim.x) * kRows) {
    const T* xr = x + r * cols;
    if (res) {
      // the row is x + res: written to sum, made visible to the row's other lanes (a warp's row:
      // its warp; a block's row: every thread of the block runs the same rows), then read back
      T* sr = sum + r * cols;
      row_map2<LANES>(xr, res + r * cols, sr, cols, lane, vec_res, [](int64_t, T a, T c) { return a + c; });
      if constexpr (LANES == kWarp)
        __syncwarp();
      else
        __syncthreads();
      xr = sr;
    }
    T* yr = out + r * cols;
    T m = T(0);
    if (!rms) {
      const T first = cols > 0 ? xr[0] : T(0);
      const T p = isfinite(first) ? first : T(0);  // the pivot
      T s = T(0);
      row_read<LANES>(xr, cols, lane, vec, [&](int64_t, T v) { s += v - p; });
      s = group_reduce<LANES>(s, Add{});
      m = T(double(p) + double(s) / double(cols));
      if (lane == 0) mean[r] = m;
    }
    T q = T(0);
    row_read<LANES>(xr, cols, lane, vec, [&](int64_t, T v) {
      const T d = v - m;
      q += d * d;
    });
    q = group_reduce<LANES>(q, Add{});
    const T s = T(1.0 / ::sqrt(double(q) / double(cols) + eps));
    if (lane == 0) rstd[r] = s;
    row_map<LANES>(xr, yr, cols, lane, vec, [&](int64_t c, T v) {
      T y = (v - m) * s;
      if (w) y *= w[c];
      if (b) y += b[c];
      return y;
    });
  }
}

template <typename T>
void layer_norm_as(const LayerNormArgs& a) {
  const T* x = ptr<const T>(a.x);
  T* out = ptr<T>(a.out);
  const T* w = ptr<const T>(a.weight);
  const T* b = ptr<const T>(a.bias);
  T* mean = ptr<T>(a.mean);
  T* rstd = ptr<T>(a.rstd);
  const T* res = a.sum.data ? ptr<const T>(a.residual) : nullptr;
  T* sum = res ? ptr<T>(a.sum) : nullptr;
  const bool vec = aligned16(res ? sum : x) && aligned16(out) && a.cols % Pack<T>::N == 0;
  const bool vec_res = res && aligned16(x) && aligned16(res) && aligned16(sum) && a.cols % Pack<T>::N == 0;
  if (a.cols <= kWarpCols)
    layer_norm_rows<T, kWarp><<<row_grid(a.rows, kWarpBlock / kWarp), kWarpBlock, 0, stream()>>>(x, w, b, out, mean, rstd, a.rows, a.cols, a.eps, a.rms, vec, res, sum, vec_res);
  else
    layer_norm_rows<T, kRowBlock><<<row_grid(a.rows, 1), kRowBlock, 0, stream()>>>(x, w, b, out, mean, rstd, a.rows, a.cols, a.eps, a.rms, vec, res, sum, vec_res);
  check_launch("layerNorm");
}

void layer_norm(const LayerNormArgs& a) {
  // rows with cols = 0 still get mean and rstd (NaN)
  if (a.rows <= 0) return;
  switch (a.x.dtype) {
    case F32: layer_norm_as<float>(a); break;
    case F64: layer_norm_as<double>(a); break;
    default: not_native("layerNorm", a.x.dtype);
  }
}

// ---- backward: dx -------------------------------------------------------------------------------

template <typename T, int LANES>
__global__ void __launch_bounds__(block_threads(LANES))
    layer_norm_dx_rows(const T* dy, const T* x, const T* w, const T* mean, const T* rstd, T* dx, int64_t rows, int64_t cols, bool rms, bool vec) {
  constexpr int kRows = block_threads(LANES) / LANES;
  const int lane = int(threadIdx.x) % LANES;
  for (int64_t r = int64_t(blockIdx.x) * kRows + int(threadIdx.x) / LANES; r < rows; r += int64_t(gridDim.x) * kRows) {
    const T* gr = dy + r * cols;
    const T* xr = x + r * cols;
    T* dr = dx + r * cols;
    const T m = rms ? T(0) : mean[r];
    const T s = rstd[r];
    Two<T> acc{T(0), T(0)};  // Σĝ, Σĝ·x̂
    row_read2<LANES>(gr, xr, cols, lane, vec, [&](int64_t c, T g, T xv) {
      const T xh = (xv - m) * s;
      const T gh = w ? g * w[c] : g;
      acc.a += gh;
      acc.b += gh * xh;
    });
    acc = group_reduce<LANES>(acc, AddTwo{});
    const T mg = rms ? T(0) : acc.a / T(cols);
    const T mgx = acc.b / T(cols);
    row_map2<LANES>(gr, xr, dr, cols, lane, vec, [&](int64_t c, T g, T xv) {
      const T xh = (xv - m) * s;
      const T gh = w ? g * w[c] : g;
      return s * ((gh - mg) - xh * mgx);
    });
  }
}

// ---- backward: dWeight, dBias -------------------------------------------------------------------

constexpr int kColTile = 32;    // columns per block (one per lane: coalesced rows)
constexpr int kColRows = 8;     // rows in flight per block (blockDim.y)
constexpr int64_t kColTargetBlocks = 4096;
constexpr int64_t kMaxChunks = 65535;  // gridDim.y

// Partials of chunk blockIdx.y (rows [y·chunk_rows, …)) for 32 columns: pw[y, c] = Σ dy·x̂,
// pb[y, c] = Σ dy (either may be null). Each thread sums its rows in order, then the 8 rows of
// threads are added in order by the first: a fixed order, so the result is deterministic.
template <typename T>
__global__ void __launch_bounds__(kColTile * kColRows)
    layer_norm_col_partials(const T* dy, const T* x, const T* mean, const T* rstd, int64_t rows, int64_t cols, int64_t chunk_rows, bool rms, T* pw, T* pb) {
  __shared__ T sw[kColRows][kColTile + 1];
  __shared__ T sb[kColRows][kColTile + 1];
  const int tx = int(threadIdx.x), ty = int(threadIdx.y);
  const int64_t c = int64_t(blockIdx.x) * kColTile + tx;
  const int64_t r0 = int64_t(blockIdx.y) * chunk_rows;
  const int64_t r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
  T aw = T(0), ab = T(0);
  if (c < cols) {
    for (int64_t r = r0 + ty; r < r1; r += kColRows) {
      const T g = dy[r * cols + c];
      if (pw) aw += g * ((x[r * cols + c] - (rms ? T(0) : mean[r])) * rstd[r]);
      ab += g;
    }
  }
  sw[ty][tx] = aw;
  sb[ty][tx] = ab;
  __syncthreads();
  if (ty == 0 && c < cols) {
    T tw = sw[0][tx], tb = sb[0][tx];
#pragma unroll
    for (int k = 1; k < kColRows; k++) {
      tw += sw[k][tx];
      tb += sb[k][tx];
    }
    if (pw) pw[int64_t(blockIdx.y) * cols + c] = tw;
    if (pb) pb[int64_t(blockIdx.y) * cols + c] = tb;
  }
}

// dw[c] = Σ_k pw[k, c] and db[c] = Σ_k pb[k, c], in chunk order, in f64.
template <typename T>
__global__ void layer_norm_col_final(const T* pw, const T* pb, int64_t chunks, int64_t cols, T* dw, T* db) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    double sw = 0, sb = 0;
    for (int64_t k = 0; k < chunks; k++) {
      if (dw) sw += double(pw[k * cols + c]);
      if (db) sb += double(pb[k * cols + c]);
    }
    if (dw) dw[c] = T(sw);
    if (db) db[c] = T(sb);
  }
}

template <typename T>
void layer_norm_params(const LayerNormBackwardArgs& a) {
  T* dw = ptr<T>(a.d_weight);
  T* db = ptr<T>(a.d_bias);
  const int64_t rows = a.rows, cols = a.cols;
  if (rows == 0) {  // sums over no rows
    if (dw) KILN_CUDA(cudaMemsetAsync(dw, 0, size_t(cols) * sizeof(T), stream()), "layerNormBackward (zero dWeight)");
    if (db) KILN_CUDA(cudaMemsetAsync(db, 0, size_t(cols) * sizeof(T), stream()), "layerNormBackward (zero dBias)");
    return;
  }
  // chunks of rows: about kColTargetBlocks blocks in all, at least 8 rows a chunk; a function of
  // the shape only, so the sums are the same on every device
  const int64_t tiles = (cols + kColTile - 1) / kColTile;
  int64_t chunks = (kColTargetBlocks + tiles - 1) / tiles;
  const int64_t max_chunks = (rows + kColRows - 1) / kColRows;
  if (chunks > max_chunks) chunks = max_chunks;
  if (chunks > kMaxChunks) chunks = kMaxChunks;
  if (chunks < 1) chunks = 1;
  const int64_t chunk_rows = (rows + chunks - 1) / chunks;
  chunks = (rows + chunk_rows - 1) / chunk_rows;
  const size_t part = size_t(chunks) * size_t(cols);
  T* scratch_p = static_cast<T*>(scratch(part * sizeof(T) * ((dw ? 1 : 0) + (db ? 1 : 0))));
  T* pw = dw ? scratch_p : nullptr;
  T* pb = db ? scratch_p + (dw ? part : 0) : nullptr;
  const dim3 grid{unsigned(tiles), unsigned(chunks), 1u};
  layer_norm_col_partials<T><<<grid, dim3(kColTile, kColRows), 0, stream()>>>(ptr<const T>(a.dy), ptr<const T>(a.x), ptr<const T>(a.mean),
                                                                                ptr<const T>(a.rstd), rows, cols, chunk_rows, a.rms, pw, pb);
  check_launch("layerNormBackward (column partials)");
  layer_norm_col_final<T><<<grid_for(cols), kThreads, 0, stream()>>>(pw, pb, chunks, cols, dw, db);
  check_launch("layerNormBackward (column sums)");
}

template <typename T>
void layer_norm_backward_as(const LayerNormBackwardArgs& a) {
  if (a.cols <= 0) return;  // dx, dWeight and dBias are empty
  // the column sums first: they read dy, which dx may alias
  if (a.d_weight.data || a.d_bias.data) layer_norm_params<T>(a);
  if (a.rows == 0) return;
  const T* dy = ptr<const T>(a.dy);
  const T* x = ptr<const T>(a.x);
  T* dx = ptr<T>(a.dx);
  const bool vec = aligned16(dy) && aligned16(x) && aligned16(dx) && a.cols % Pack<T>::N == 0;
  const T* w = ptr<const T>(a.weight);
  const T* mean = ptr<const T>(a.mean);
  const T* rstd = ptr<const T>(a.rstd);
  if (a.cols <= kWarpCols)
    layer_norm_dx_rows<T, kWarp><<<row_grid(a.rows, kWarpBlock / kWarp), kWarpBlock, 0, stream()>>>(dy, x, w, mean, rstd, dx, a.rows, a.cols, a.rms, vec);
  else
    layer_norm_dx_rows<T, kRowBlock><<<row_grid(a.rows, 1), kRowBlock, 0, stream()>>>(dy, x, w, mean, rstd, dx, a.rows, a.cols, a.rms, vec);
  check_launch("layerNormBackward");
}

void layer_norm_backward(const LayerNormBackwardArgs& a) {
  switch (a.x.dtype) {
    case F32: layer_norm_backward_as<float>(a); break;
    case F64: layer_norm_backward_as<double>(a); break;
    default: not_native("layerNormBackward", a.x.dtype);
  }
}

}  // namespace

void add_norm(Table& t) {
  t.layer_norm = layer_norm;
  t.layer_norm_backward = layer_norm_backward;
  t.computes[FAMILY_NORM] = dtype_bit(F32) | dtype_bit(F64);
}

}  // namespace cuda
}  // namespace kiln
