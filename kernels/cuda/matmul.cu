// Backend.matmul and Backend.matmulInt8 on CUDA: out[batch] = act(op(a[batch]) @ op(b[batch]) + bias).
//
// A ladder of kernels, as llm.c's dev/cuda keeps one: each version beside the next, the slow one
// the oracle of the fast one.
//   v1  one thread per output, a plain sum over k in the compute type. Any dtype; the oracle.
//   v2  shared-memory tiles with register blocking, FFMA/DFMA (no tensor cores): exact f32 and
//       f64. A block computes BM×BN of C with 256 threads, each a TM×TN register tile; the next
//       k slab is fetched into registers while the current one is multiplied (double buffering).
//   v3  tensor cores through `mma.sync`: bf16/f16 with m16n8k16 (f32 accumulate), f32 as TF32
//       with m16n8k8 (only when allow_tf32()). 128×128 block tiles, k slabs of 64 bytes per row
//       (32 halves / 16 floats), 8 warps of 64×32, a 4-stage cp.async pipeline into padded
//       shared memory (rows 16 bytes longer than the tile, so the 8 row addresses of an ldmatrix
//       or of a fragment's scalar loads fall in distinct banks). Halves load fragments with
//       `ldmatrix` (`.trans` for operands stored MN-contiguous); TF32 by scalar loads.
// Which runs:
//   f64                          v2 (64×64×8 tiles, 4×4 per thread)
//   f32                          v3 TF32 when allow_tf32(), else v2 (128×128×8 tiles, 8×8)
//   bf16, f16                    v3 (always; a misaligned operand uses its synchronous loader)
//   KILN_CUDA_MATMUL=1|2|3       forces a rung where it exists (v3 has no f64), to compare them
// transA / transB are absorbed by how tiles are loaded: a tile is copied as it lies in global
// memory (rows of its contiguous dimension), and the fragment loads read it either way.
// Ragged edges: every copy is predicated, with zero fill past m, n or k (cp.async's src-size).
// Misalignment: v3's cp.async needs 16-byte aligned chunks, so base pointers, leading dimensions
// and batch strides must be multiples of 16 bytes; otherwise the same kernel instance with plain
// element loads runs (kAligned = false).
// Batching: the blocks' y·z index walks (m tile, batch item) pairs; an item's operand offsets
// come from batchShape and the batch strides, passed by value (BatchIndex). A batch that shares
// one b (x @ W for x of rank 3) with a plain, adjacent a is folded into one product nb·m tall.
//
// Epilogue everywhere: acc (+ the old out with accumulate) + bias[j] in the compute type (f32
// for halves), the activation, one rounding into the output dtype (the operands' own, or f32 for
// halves summed into an f32 out).
//
// matmulInt8: a quantization pass (one block per row) writes int8 rows and their scales into
// scratch(); then exact int32 products with __dp4a (a 64×64-tiled kernel, or a column-per-thread
// one for m ≤ 16, the decode case), dequantized in f32 exactly as the spec rounds.
//
// Where wgmma/TMA would go (sm_90a, not done): a v4 beside v3 for bf16/f16 (and TF32) on
// compute capability 9.0 — TMA (cp.async.bulk.tensor with a CUtensorMap per operand, built on
// the host, 128B swizzle) filling a multi-stage ring guarded by mbarriers, one producer warp and
// two consumer warpgroups issuing `wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16`
// straight from shared memory (transposes through the descriptors' major-ness, no ldmatrix), a
// 128×256×64 block tile and a persistent, L2-swizzled tile scheduler. The fallback to v3 stays
// for misaligned operands (TMA needs 16-byte aligned strides) and for sm_80. See the marked
// spot in matmul() below.
#include <cstdlib>
#include <climits>
#include <type_traits>

#include "common.cuh"

namespace kiln {
namespace cuda {
namespace {

// ---- the problem as the kernels see it --------------------------------------------------------

// Batch item t (row-major over shape) → element offsets of its a and b.
struct BatchIndex {
  int rank;
  long long shape[kMaxRank];
  long long a_stride[kMaxRank];
  long long b_stride[kMaxRank];
};

__device__ inline void item_offsets(const BatchIndex& bi, long long t, long long& ao, long long& bo) {
  ao = 0;
  bo = 0;
  // unrolled with a guard so the parameter arrays are indexed statically (no local-memory copy)
#pragma unroll
  for (int d = kMaxRank - 1; d >= 0; d--) {
    if (d < bi.rank) {
      const long long idx = t % bi.shape[d];
      t /= bi.shape[d];
      ao += idx * bi.a_stride[d];
      bo += idx * bi.b_stride[d];
    }
  }
}

// One matmul call. Stored a is [m, k] (lda = k) or, transposed, [k, m] (lda = m); stored b is
// [k, n] (ldb = n) or [n, k] (ldb = k). out is contiguous [items, m, n].
struct Problem {
  const void* a;
  const void* b;
  void* out;
  const void* bias;  // n elements or null
  void* preact;      // null, or where the value before the activation also goes (out's dtype and layout)
  int m, n, k;
  long long lda, ldb;
  bool ta, tb;        // transA, transB (v2 and v3 take them as template arguments)
  int act;            // Activation
  bool accumulate;    // out += the product (the old value read in the compute type)
  bool pair_store;    // out rows may be written two elements at a time (n even, out aligned)
  long long items;    // batch items (1 when folded)
  long long tiles_m;  // m tiles of the launching kernel
  BatchIndex batch;
};

// The (m tile, item) pairs of a launch: y·z blocks walk them (y, z ≤ 65535 each).
inline dim3 grid_for_tiles(long long tiles_n, long long tiles_m, long long items) {
  const long long total = tiles_m * items;
  const long long y = total < 65535 ? total : 65535;
  long long z = (total + y - 1) / y;
  if (z > 65535) z = 65535;
  return dim3(unsigned(tiles_n), unsigned(y), unsigned(z));
}

#define KILN_FOR_EACH_TILE(p, w)                                                  \
  for (long long w = blockIdx.y + (long long)gridDim.y * blockIdx.z;             \
       w < (p).tiles_m * (p).items; w += (long long)gridDim.y * gridDim.z)

// ---- epilogue ---------------------------------------------------------------------------------
// As src/backend/ref/kernels.ts unaryFn (and kernels/cpu/isa/matmul.cc apply_act).

__device__ inline float activate(float x, int act) {
  switch (act) {
    case ACT_RELU: return x > 0.0f || x != x ? x : 0.0f;  // NaN stays
    case ACT_GELU: return 0.5f * x * erfcf(x * -0.70710678118654752440f);  // ½x(1 + erf(x/√2)), no cancellation for x < 0
    case ACT_GELU_TANH: return 0.5f * x * (1.0f + tanhf(0.79788456080286535588f * (x + 0.044715f * x * x * x)));  // √(2/π)
    case ACT_SILU: {
      if (x >= 0.0f) return x / (1.0f + expf(-x));
      const float e = expf(x);
      return x * e / (1.0f + e);
    }
    default: return x;
  }
}

__device__ inline double activate(double x, int act) {
  switch (act) {
    case ACT_RELU: return x > 0.0 || x != x ? x : 0.0;
    case ACT_GELU: return 0.5 * x * erfc(x * -0.70710678118654752440);
    case ACT_GELU_TANH: return 0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x)));
    case ACT_SILU: {
      if (x >= 0.0) return x / (1.0 + exp(-x));
      const double e = exp(x);
      return x * e / (1.0 + e);
    }
    default: return x;
  }
}

// out[row, col] = act(acc (+ out[row, col]) + bias[col]), rounded once to Out (the operands'
// storage type, or float for halves summed into f32); bias is in Out.
// With preact, the value before the activation is stored there too (same offset in the item).
template <typename Out, typename T>
__device__ inline void store_out(Out* out, long long row, int col, T acc, const Problem& p) {
  const long long o = row * p.n + col;
  if (p.accumulate) acc += T(Storage<Out>::load(out, o));
  if (p.bias) acc += T(Storage<Out>::load(static_cast<const Out*>(p.bias), col));
  if (p.preact) Storage<Out>::store(static_cast<Out*>(p.preact) + (out - static_cast<Out*>(p.out)), o, acc);
  Storage<Out>::store(out, o, activate(acc, p.act));
}

// =============================================================================================
// v1: one thread per output. The oracle: obviously the definition.
// =============================================================================================

constexpr int kV1Tile = 16;

template <typename S, typename Out>
__global__ void matmul_v1(Problem p) {
  using T = typename Storage<S>::T;
  const int col = blockIdx.x * kV1Tile + threadIdx.x;
  KILN_FOR_EACH_TILE(p, w) {
    const long long item = w / p.tiles_m;
    const int row = int(w % p.tiles_m) * kV1Tile + threadIdx.y;
    if (row >= p.m || col >= p.n) continue;
    long long ao, bo;
    item_offsets(p.batch, item, ao, bo);
    const S* a = static_cast<const S*>(p.a) + ao;
    const S* b = static_cast<const S*>(p.b) + bo;
    // op(a)[row, q] = a[row·lda + q] or, transposed, a[q·lda + row]; op(b)[q, col] likewise
    const long long as = p.ta ? p.lda : 1, bs = p.tb ? 1 : p.ldb;
    const S* ar = a + (p.ta ? (long long)row : (long long)row * p.lda);
    const S* bc = b + (p.tb ? (long long)col * p.ldb : (long long)col);
    T acc = T(0);
    for (int q = 0; q < p.k; q++) acc += Storage<S>::load(ar, q * as) * Storage<S>::load(bc, q * bs);
    store_out(static_cast<Out*>(p.out) + item * p.m * p.n, row, col, acc, p);
  }
}

// =============================================================================================
// v2: shared-memory tiles, register blocking, FFMA (exact f32) or DFMA (f64).
// =============================================================================================
//
// Block tile BM×BN, k slab BK; 256 threads as (BM/TM) × (BN/TN), each a TM×TN tile of C.
// Smem holds op(A) as As[BK][BM] and op(B) as Bs[BK][BN] (k-major, so a thread's TM / TN values
// of one k are contiguous), rows padded by 4 elements: a store pattern with k varying fastest
// (a stored k-contiguous) then spreads 8 consecutive k over 8 bank groups.

template <typename T> struct V2Tile;
template <> struct V2Tile<float> { static constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8; };
template <> struct V2Tile<double> { static constexpr int BM = 64, BN = 64, BK = 8, TM = 4, TN = 4; };
constexpr int kV2Threads = 256;
constexpr int kV2Pad = 4;

template <typename S, bool TA, bool TB, typename Out>
__global__ void __launch_bounds__(kV2Threads) matmul_v2(Problem p) {
  using T = typename Storage<S>::T;
  using C = V2Tile<T>;
  constexpr int BM = C::BM, BN = C::BN, BK = C::BK, TM = C::TM, TN = C::TN;
  constexpr int kALoads = BM * BK / kV2Threads, kBLoads = BN * BK / kV2Threads;
  static_assert((BM / TM) * (BN / TN) == kV2Threads, "one thread per register tile");
  static_assert(BM * BK % kV2Threads == 0 && BN * BK % kV2Threads == 0, "whole loads per thread");
  __shared__ __align__(16) T As[2][BK][BM + kV2Pad];
  __shared__ __align__(16) T Bs[2][BK][BN + kV2Pad];

  const int tid = threadIdx.x;
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  const int n0 = blockIdx.x * BN;
  const int ktiles = (p.k + BK - 1) / BK;

  KILN_FOR_EACH_TILE(p, w) {
    const long long item = w / p.tiles_m;
    const int m0 = int(w % p.tiles_m) * BM;
    long long ao, bo;
    item_offsets(p.batch, item, ao, bo);
    const S* a = static_cast<const S*>(p.a) + ao;
    const S* b = static_cast<const S*>(p.b) + bo;

    // Element e of a slab: consecutive threads walk the stored contiguous dimension (coalesced).
    T ra[kALoads], rb[kBLoads];
    auto fetch = [&](int k0) {
#pragma unroll
      for (int r = 0; r < kALoads; r++) {
        const int e = tid + r * kV2Threads;
        const int i = TA ? e % BM : e / BK, q = TA ? e / BM : e % BK;
        const int gi = m0 + i, gq = k0 + q;
        ra[r] = gi < p.m && gq < p.k ? Storage<S>::load(a, TA ? (long long)gq * p.lda + gi : (long long)gi * p.lda + gq) : T(0);
      }
#pragma unroll
      for (int r = 0; r < kBLoads; r++) {
        const int e = tid + r * kV2Threads;
        const int j = TB ? e / BK : e % BN, q = TB ? e % BK : e / BN;
        const int gj = n0 + j, gq = k0 + q;
        rb[r] = gj < p.n && gq < p.k ? Storage<S>::load(b, TB ? (long long)gj * p.ldb + gq : (long long)gq * p.ldb + gj) : T(0);
      }
    };
    auto stash = [&](int s) {
#pragma unroll
      for (int r = 0; r < kALoads; r++) {
        const int e = tid + r * kV2Threads;
        As[s][TA ? e / BM : e % BK][TA ? e % BM : e / BK] = ra[r];
      }
#pragma unroll
      for (int r = 0; r < kBLoads; r++) {
        const int e = tid + r * kV2Threads;
        Bs[s][TB ? e % BK : e / BN][TB ? e / BK : e % BN] = rb[r];
      }
    };

    T acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
      for (int j = 0; j < TN; j++) acc[i][j] = T(0);

    if (ktiles > 0) {
      fetch(0);
      stash(0);
    }
    __syncthreads();
    for (int kt = 0; kt < ktiles; kt++) {
      const int s = kt & 1;
      if (kt + 1 < ktiles) fetch((kt + 1) * BK);  // in flight while this slab is multiplied
#pragma unroll
      for (int q = 0; q < BK; q++) {
        T x[TM], y[TN];
#pragma unroll
        for (int i = 0; i < TM; i++) x[i] = As[s][q][ty * TM + i];
#pragma unroll
        for (int j = 0; j < TN; j++) y[j] = Bs[s][q][tx * TN + j];
#pragma unroll
        for (int i = 0; i < TM; i++)
#pragma unroll
          for (int j = 0; j < TN; j++) acc[i][j] = fma(x[i], y[j], acc[i][j]);
      }
      // the other buffer was last read in iteration kt − 1, before the barrier that ended it
      if (kt + 1 < ktiles) stash(s ^ 1);
      __syncthreads();
    }

    Out* out = static_cast<Out*>(p.out) + item * p.m * p.n;
#pragma unroll
    for (int i = 0; i < TM; i++) {
      const int row = m0 + ty * TM + i;
      if (row >= p.m) continue;
#pragma unroll
      for (int j = 0; j < TN; j++) {
        const int col = n0 + tx * TN + j;
        if (col < p.n) store_out(out, row, col, acc[i][j], p);
      }
    }
  }
}

// =============================================================================================
// v3: tensor cores through mma.sync, ldmatrix, a cp.async pipeline.
// =============================================================================================
//
// Block tile 128×128, k slab kBK (64 bytes of a row), 8 warps as 2 (m) × 4 (n), each warp 64×32
// of C: 4 m16 tiles × 4 n8 tiles, 64 f32 accumulators per thread. kStages slabs in flight.
// A slab is copied as it lies in global memory: op(A) as [BM][BK] (k-contiguous, a plain) or
// [BK][BM] (m-contiguous, transA); op(B) as [BK][BN] (n-contiguous, b plain) or [BN][BK] (transB).

constexpr int kMmaBM = 128, kMmaBN = 128, kMmaThreads = 256, kStages = 4;
constexpr int kWarpM = 64, kWarpN = 32;

// Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16 / m16n8k8"), g = lane/4, c = lane%4:
//   A (16×K, row):  a0 (g, kc) a1 (g+8, kc) a2 (g, kc + K/2) a3 (g+8, kc + K/2)
//   B (K×8, col):   b0 (kc, g) b1 (kc + K/2, g)
//   C (16×8):       c0,c1 (g, 2c..2c+1) c2,c3 (g+8, 2c..2c+1)
// where kc is 2c..2c+1 (halves, two per register) or c (tf32).
template <typename S> struct MmaOp;
template <> struct MmaOp<Bf16Bits> {
  using Elem = uint16_t;
  static constexpr int kBK = 32, kKStep = 16, kPadK = 8, kPadMN = 8;
  __device__ static void mma(float* d, const uint32_t* a, const uint32_t* b) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};
template <> struct MmaOp<F16Bits> {
  using Elem = uint16_t;
  static constexpr int kBK = 32, kKStep = 16, kPadK = 8, kPadMN = 8;
  __device__ static void mma(float* d, const uint32_t* a, const uint32_t* b) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};
// f32 as TF32: pad the k-contiguous rows by 4 floats (row pitch 20 words: rows g = 0..7 start in
// bank groups 0, 20, 8, 28, … — distinct) and the mn-contiguous ones by 8 (pitch 136: row c
// lands 8c banks on, so 4 rows × 8 columns cover 32 banks).
template <> struct MmaOp<float> {
  using Elem = float;
  static constexpr int kBK = 16, kKStep = 8, kPadK = 4, kPadMN = 8;
  __device__ static void mma(float* d, const uint32_t* a, const uint32_t* b) {
    asm(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};

// Shared-memory geometry of one stage (element counts and row pitches).
template <typename S, bool TA, bool TB>
struct MmaSmem {
  using O = MmaOp<S>;
  static constexpr int kBK = O::kBK;
  static constexpr int kALd = TA ? kMmaBM + O::kPadMN : kBK + O::kPadK;
  static constexpr int kAElems = TA ? kBK * kALd : kMmaBM * kALd;
  static constexpr int kBLd = TB ? kBK + O::kPadK : kMmaBN + O::kPadMN;
  static constexpr int kBElems = TB ? kMmaBN * kBLd : kBK * kBLd;
  static constexpr int kStageElems = kAElems + kBElems;
  static constexpr size_t kBytes = size_t(kStages) * kStageElems * sizeof(typename O::Elem);
  static_assert(kAElems * sizeof(typename O::Elem) % 16 == 0 && kStageElems * sizeof(typename O::Elem) % 16 == 0, "16-byte aligned regions");
  static_assert(kALd * sizeof(typename O::Elem) % 16 == 0 && kBLd * sizeof(typename O::Elem) % 16 == 0, "16-byte aligned rows");
};

__device__ inline uint32_t smem_addr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

// 16 bytes global → shared, the last 16 − bytes of them zero (bytes = 0: nothing is read).
__device__ inline void cp_async16(void* dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ inline void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ inline void ldmatrix_x4(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ inline void ldmatrix_x4_trans(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

__device__ inline uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

// Copy ROWS × COLS elements (COLS contiguous in global, rows `ld` apart) from global (r0, c0) into
// shared rows of pitch LD, in 16-byte chunks; zero outside [0, rlim) × [0, clim). kAligned: every
// chunk start is 16-byte aligned (cp.async, zero fill by src-size); otherwise plain loads.
template <int ROWS, int COLS, int LD, bool kAligned, typename Elem>
__device__ inline void load_tile(Elem* smem, const Elem* g, long long ld, int r0, int c0, int rlim, int clim, int tid) {
  constexpr int kChunk = 16 / int(sizeof(Elem));
  constexpr int kPerRow = COLS / kChunk;
  constexpr int kChunks = ROWS * kPerRow;
  static_assert(kChunks % kMmaThreads == 0, "whole chunks per thread");
#pragma unroll
  for (int i = 0; i < kChunks / kMmaThreads; i++) {
    const int ch = tid + i * kMmaThreads;
    const int r = ch / kPerRow, cc = (ch % kPerRow) * kChunk;
    const int gr = r0 + r, gc = c0 + cc;
    const int left = clim - gc;
    const int valid = gr < rlim && left > 0 ? (left < kChunk ? left : kChunk) : 0;
    Elem* dst = smem + r * LD + cc;
    const Elem* src = g + (long long)gr * ld + gc;
    if constexpr (kAligned) {
      cp_async16(dst, valid ? src : g, valid * int(sizeof(Elem)));
    } else {
      union {
        Elem e[kChunk];
        uint4 v;
      } u;
#pragma unroll
      for (int e = 0; e < kChunk; e++) u.e[e] = e < valid ? src[e] : Elem(0);
      *reinterpret_cast<uint4*>(dst) = u.v;
    }
  }
}

template <typename S, bool TA, bool TB, bool kAligned, typename Out>
__global__ void __launch_bounds__(kMmaThreads, 2) matmul_v3(Problem p) {
  using O = MmaOp<S>;
  using Elem = typename O::Elem;
  using G = MmaSmem<S, TA, TB>;
  constexpr int kBK = O::kBK, kKStep = O::kKStep;
  constexpr int kMi = kWarpM / 16, kNi = kWarpN / 8;  // 4 × 4 mma tiles per warp
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Elem* smem = reinterpret_cast<Elem*>(smem_raw);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 2, wn = warp & 3;
  const int g = lane >> 2, c = lane & 3;  // fragment row group and column pair
  const int q8 = lane >> 3, r8 = lane & 7;  // ldmatrix: which 8×8 matrix this lane addresses, which row
  const int n0 = blockIdx.x * kMmaBN;
  const int ktiles = (p.k + kBK - 1) / kBK;

  KILN_FOR_EACH_TILE(p, w) {
    const long long item = w / p.tiles_m;
    const int m0 = int(w % p.tiles_m) * kMmaBM;
    long long ao, bo;
    item_offsets(p.batch, item, ao, bo);
    const Elem* a = static_cast<const Elem*>(p.a) + ao;
    const Elem* b = static_cast<const Elem*>(p.b) + bo;

    auto load_stage = [&](int kt, int s) {
      Elem* sa = smem + s * G::kStageElems;
      Elem* sb = sa + G::kAElems;
      const int k0 = kt * kBK;
      if constexpr (TA) load_tile<kBK, kMmaBM, G::kALd, kAligned>(sa, a, p.lda, k0, m0, p.k, p.m, tid);
      else load_tile<kMmaBM, kBK, G::kALd, kAligned>(sa, a, p.lda, m0, k0, p.m, p.k, tid);
      if constexpr (TB) load_tile<kMmaBN, kBK, G::kBLd, kAligned>(sb, b, p.ldb, n0, k0, p.n, p.k, tid);
      else load_tile<kBK, kMmaBN, G::kBLd, kAligned>(sb, b, p.ldb, k0, n0, p.k, p.n, tid);
    };

    float acc[kMi][kNi][4];
#pragma unroll
    for (int i = 0; i < kMi; i++)
#pragma unroll
      for (int j = 0; j < kNi; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    // prologue: kStages − 1 slabs in flight (a group per slab, empty past the end, so that
    // wait_group<kStages − 2> below always means "slab kt has landed")
#pragma unroll
    for (int s = 0; s < kStages - 1; s++) {
      if (s < ktiles) load_stage(s, s);
      cp_async_commit();
    }

    for (int kt = 0; kt < ktiles; kt++) {
      cp_async_wait<kStages - 2>();
      __syncthreads();  // slab kt visible to all; slab kt − 1's stage no longer read by anyone
      {
        const int next = kt + kStages - 1;
        if (next < ktiles) load_stage(next, next % kStages);
        cp_async_commit();
      }
      const Elem* sa = smem + (kt % kStages) * G::kStageElems;
      const Elem* sb = sa + G::kAElems;
#pragma unroll
      for (int ks = 0; ks < kBK; ks += kKStep) {
        uint32_t af[kMi][4];
        if constexpr (sizeof(Elem) == 2) {
          uint32_t bf[kNi][2];
#pragma unroll
          for (int i = 0; i < kMi; i++) {
            const int mb = wm * kWarpM + i * 16;
            // matrices: 0 (m 0–7, k 0–7), 1 (m 8–15, k 0–7), 2 (m 0–7, k 8–15), 3 (m 8–15, k 8–15)
            if constexpr (TA) ldmatrix_x4_trans(af[i], sa + (ks + (q8 >> 1) * 8 + r8) * G::kALd + mb + (q8 & 1) * 8);
            else ldmatrix_x4(af[i], sa + (mb + (q8 & 1) * 8 + r8) * G::kALd + ks + (q8 >> 1) * 8);
          }
#pragma unroll
          for (int j = 0; j < kNi; j += 2) {
            const int nb = wn * kWarpN + j * 8;
            // matrices: 0 (n 0–7, k 0–7), 1 (n 0–7, k 8–15), 2 (n 8–15, k 0–7), 3 (n 8–15, k 8–15)
            uint32_t r[4];
            if constexpr (TB) ldmatrix_x4(r, sb + (nb + (q8 >> 1) * 8 + r8) * G::kBLd + ks + (q8 & 1) * 8);
            else ldmatrix_x4_trans(r, sb + (ks + (q8 & 1) * 8 + r8) * G::kBLd + nb + (q8 >> 1) * 8);
            bf[j][0] = r[0];
            bf[j][1] = r[1];
            bf[j + 1][0] = r[2];
            bf[j + 1][1] = r[3];
          }
#pragma unroll
          for (int i = 0; i < kMi; i++)
#pragma unroll
            for (int j = 0; j < kNi; j++) O::mma(acc[i][j], af[i], bf[j]);
        } else {
          // tf32: ldmatrix moves 16-bit granules (its .trans would split a float), so scalar
          // loads, converted on the way (cvt.rna); B one n8 tile at a time to stay spill-free
          auto at = [&](int m, int k) { return TA ? sa[k * G::kALd + m] : sa[m * G::kALd + k]; };
          auto bt = [&](int k, int n) { return TB ? sb[n * G::kBLd + k] : sb[k * G::kBLd + n]; };
#pragma unroll
          for (int i = 0; i < kMi; i++) {
            const int m = wm * kWarpM + i * 16 + g;
            af[i][0] = to_tf32(at(m, ks + c));
            af[i][1] = to_tf32(at(m + 8, ks + c));
            af[i][2] = to_tf32(at(m, ks + c + 4));
            af[i][3] = to_tf32(at(m + 8, ks + c + 4));
          }
#pragma unroll
          for (int j = 0; j < kNi; j++) {
            const int n = wn * kWarpN + j * 8 + g;
            const uint32_t bf[2] = {to_tf32(bt(ks + c, n)), to_tf32(bt(ks + c + 4, n))};
#pragma unroll
            for (int i = 0; i < kMi; i++) O::mma(acc[i][j], af[i], bf);
          }
        }
      }
    }
    cp_async_wait<0>();
    __syncthreads();  // the next tile's prologue overwrites stages this one may still be reading

    // epilogue straight from the accumulators: row pairs of adjacent columns
    Out* out = static_cast<Out*>(p.out) + item * p.m * p.n;
#pragma unroll
    for (int i = 0; i < kMi; i++) {
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int row = m0 + wm * kWarpM + i * 16 + g + h * 8;
        if (row >= p.m) continue;
#pragma unroll
        for (int j = 0; j < kNi; j++) {
          const int col = n0 + wn * kWarpN + j * 8 + 2 * c;
          float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
          if (p.pair_store && col + 1 < p.n) {
            const long long o = (long long)row * p.n + col;
            if (p.accumulate) {
              v0 += Storage<Out>::load(out, o);
              v1 += Storage<Out>::load(out, o + 1);
            }
            if (p.bias) {
              v0 += Storage<Out>::load(static_cast<const Out*>(p.bias), col);
              v1 += Storage<Out>::load(static_cast<const Out*>(p.bias), col + 1);
            }
            if (p.preact) {
              Out* q = static_cast<Out*>(p.preact) + (out - static_cast<Out*>(p.out));
              Storage<Out>::store(q, o, v0);
              Storage<Out>::store(q, o + 1, v1);
            }
            v0 = activate(v0, p.act);
            v1 = activate(v1, p.act);
            if constexpr (std::is_same_v<Out, float>) {
              *reinterpret_cast<float2*>(out + o) = make_float2(v0, v1);
            } else {
              Out pair[2];
              Storage<Out>::store(pair, 0, v0);
              Storage<Out>::store(pair, 1, v1);
              *reinterpret_cast<uint32_t*>(out + o) = uint32_t(pair[0].bits) | uint32_t(pair[1].bits) << 16;
            }
          } else {
            if (col < p.n) store_out(out, row, col, v0, p);
            if (col + 1 < p.n) store_out(out, row, col + 1, v1, p);
          }
        }
      }
    }
  }
}

// ---- host side --------------------------------------------------------------------------------

// KILN_CUDA_MATMUL=1|2|3 forces a rung of the ladder (0: the default choice).
int forced_version() {
  static const int v = [] {
    const char* s = std::getenv("KILN_CUDA_MATMUL");
    return s ? std::atoi(s) : 0;
  }();
  return v;
}

template <typename S, typename Out>
void launch_v1(Problem p) {
  p.tiles_m = (p.m + kV1Tile - 1) / kV1Tile;
  const dim3 grid = grid_for_tiles((p.n + kV1Tile - 1) / kV1Tile, p.tiles_m, p.items);
  matmul_v1<S, Out><<<grid, dim3(kV1Tile, kV1Tile), 0, stream()>>>(p);
  check_launch("matmul_v1");
}

template <typename S, bool TA, bool TB, typename Out>
void launch_v2_t(Problem p) {
  using C = V2Tile<typename Storage<S>::T>;
  p.tiles_m = (p.m + C::BM - 1) / C::BM;
  const dim3 grid = grid_for_tiles((p.n + C::BN - 1) / C::BN, p.tiles_m, p.items);
  matmul_v2<S, TA, TB, Out><<<grid, kV2Threads, 0, stream()>>>(p);
  check_launch("matmul_v2");
}

template <typename S, typename Out>
void launch_v2(const Problem& p, bool ta, bool tb) {
  if (ta) tb ? launch_v2_t<S, true, true, Out>(p) : launch_v2_t<S, true, false, Out>(p);
  else tb ? launch_v2_t<S, false, true, Out>(p) : launch_v2_t<S, false, false, Out>(p);
}

template <typename S, bool TA, bool TB, bool kAligned, typename Out>
void launch_v3_t(Problem p) {
  using G = MmaSmem<S, TA, TB>;
  p.tiles_m = (p.m + kMmaBM - 1) / kMmaBM;
  const dim3 grid = grid_for_tiles((p.n + kMmaBN - 1) / kMmaBN, p.tiles_m, p.items);
  auto kernel = matmul_v3<S, TA, TB, kAligned, Out>;
  KILN_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(G::kBytes)), "matmul_v3 shared memory");
  kernel<<<grid, kMmaThreads, G::kBytes, stream()>>>(p);
  check_launch("matmul_v3");
}

template <typename S, bool kAligned, typename Out>
void launch_v3_a(const Problem& p, bool ta, bool tb) {
  if (ta) tb ? launch_v3_t<S, true, true, kAligned, Out>(p) : launch_v3_t<S, true, false, kAligned, Out>(p);
  else tb ? launch_v3_t<S, false, true, kAligned, Out>(p) : launch_v3_t<S, false, false, kAligned, Out>(p);
}

// v3 needs every 16-byte chunk of a tile row to start 16-byte aligned: the bases, the leading
// dimensions and every batch stride (of a dimension longer than 1) in whole chunks.
template <typename S, typename Out>
void launch_v3(const Problem& p, bool ta, bool tb) {
  constexpr long long kChunk = 16 / sizeof(typename MmaOp<S>::Elem);
  bool ok = aligned16(p.a) && aligned16(p.b) && p.lda % kChunk == 0 && p.ldb % kChunk == 0;
  for (int d = 0; d < p.batch.rank && ok; d++)
    if (p.batch.shape[d] > 1) ok = p.batch.a_stride[d] % kChunk == 0 && p.batch.b_stride[d] % kChunk == 0;
  if (ok) launch_v3_a<S, true, Out>(p, ta, tb);
  else launch_v3_a<S, false, Out>(p, ta, tb);
}

// halves S into Out (S itself, or float: f32 sums stored unrounded)
template <typename S, typename Out>
void launch_half(const Problem& p, bool ta, bool tb) {
  // v4 (wgmma + TMA, sm_90a) would be chosen here: props().major == 9, aligned operands,
  // and a product large enough to fill 128×256 tiles; v3 otherwise.
  const int force = forced_version();
  if (force == 1) launch_v1<S, Out>(p);
  else if (force == 2) launch_v2<S, Out>(p, ta, tb);
  else launch_v3<S, Out>(p, ta, tb);
}

void matmul(const MatmulArgs& args) {
  if (args.m <= 0 || args.n <= 0) return;
  long long nb = 1;
  for (int d = 0; d < int(args.batch_shape.rank); d++) nb *= args.batch_shape[d];
  if (nb <= 0) return;

  // One b for the whole batch and a plain a whose items lie back to back: one product nb·m tall
  // (as kernels/cpu/isa/matmul.cc). out is contiguous, so its items are back to back already.
  bool fold = nb > 1 && !args.trans_a;
  for (long long d = args.batch_shape.rank - 1, adjacent = args.m * args.k; d >= 0 && fold; adjacent *= args.batch_shape[d], d--)
    fold = args.b_batch_strides[d] == 0 && (args.batch_shape[d] == 1 || args.a_batch_strides[d] == adjacent);
  const long long m = fold ? nb * args.m : args.m;
  if (m > INT_MAX || args.n > INT_MAX || args.k > INT_MAX)
    throw std::runtime_error("matmul: dimensions beyond 2^31 − 1 are not supported by the cuda backend (m=" + std::to_string(m) +
                             ", n=" + std::to_string(args.n) + ", k=" + std::to_string(args.k) + ")");

  Problem p{};
  p.a = args.a.data;
  p.b = args.b.data;
  p.out = args.out.data;
  p.bias = args.bias.data;
  p.preact = args.preact.data;
  p.m = int(m);
  p.n = int(args.n);
  p.k = int(args.k);
  p.lda = args.trans_a ? m : args.k;
  p.ldb = args.trans_b ? args.k : args.n;
  p.ta = args.trans_a;
  p.tb = args.trans_b;
  p.act = int(args.activation);
  p.accumulate = args.accumulate;
  p.items = fold ? 1 : nb;
  p.batch.rank = fold ? 0 : int(args.batch_shape.rank);
  for (int d = 0; d < p.batch.rank; d++) {
    p.batch.shape[d] = args.batch_shape[d];
    p.batch.a_stride[d] = args.a_batch_strides[d];
    p.batch.b_stride[d] = args.b_batch_strides[d];
  }
  const size_t esize = args.out.dtype == F64 ? 8 : args.out.dtype == F32 ? 4 : 2;
  p.pair_store = p.n % 2 == 0 && (reinterpret_cast<uintptr_t>(p.out) % (2 * esize)) == 0;

  const bool ta = args.trans_a, tb = args.trans_b;
  const int force = forced_version();
  const bool f32_out = args.out.dtype == F32;
  switch (args.a.dtype) {
    case F64:
      if (force == 1) launch_v1<double, double>(p);
      else launch_v2<double, double>(p, ta, tb);  // no tensor-core rung for f64 (DMMA would be a v3 of its own)
      break;
    case F32:
      if (force == 1) launch_v1<float, float>(p);
      else if (force == 2 || (force != 3 && !allow_tf32())) launch_v2<float, float>(p, ta, tb);
      else launch_v3<float, float>(p, ta, tb);
      break;
    case BF16: f32_out ? launch_half<Bf16Bits, float>(p, ta, tb) : launch_half<Bf16Bits, Bf16Bits>(p, ta, tb); break;
    case F16: f32_out ? launch_half<F16Bits, float>(p, ta, tb) : launch_half<F16Bits, F16Bits>(p, ta, tb); break;
    default: throw std::runtime_error("matmul: the cuda backend has no matmul for dtype code " + std::to_string(int(args.a.dtype)));
  }
}

// =============================================================================================
// matmulInt8: per-row dynamic quantization, exact int32 dp4a products, f32 dequantization.
// =============================================================================================

constexpr int kQuantThreads = 256;

// One block per row i of a [m, k]: x[i] (kpad bytes, zero past k) and row_scale[i] = amax/127
// (NaN for a row with a non-finite element, which makes every output of the row NaN).
__global__ void __launch_bounds__(kQuantThreads) quantize_rows(const float* __restrict__ a, int8_t* __restrict__ x, float* __restrict__ row_scale, int k, int kpad) {
  const long long row = blockIdx.x;
  const float* ar = a + row * k;
  float amax = 0.0f;
  int bad = 0;
  for (int q = threadIdx.x; q < k; q += kQuantThreads) {
    const float v = fabsf(ar[q]);
    bad |= !isfinite(v);
    amax = fmaxf(amax, v);
  }
  bad = __syncthreads_or(bad);
  __shared__ float warp_max[kQuantThreads / 32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = amax;
  __syncthreads();
  amax = warp_max[0];
#pragma unroll
  for (int w = 1; w < kQuantThreads / 32; w++) amax = fmaxf(amax, warp_max[w]);

  // inv = 127/amax and x = round-half-even(a·inv), each one f32 operation. A subnormal amax
  // overflows inv to ∞; then a·inv is ±∞ or NaN, which ref stores into an Int32Array as 0.
  const float inv = amax == 0.0f ? 0.0f : __fdiv_rn(127.0f, amax);
  int8_t* xr = x + row * kpad;
  for (int q = threadIdx.x; q < kpad; q += kQuantThreads) {
    const float y = q < k && !bad ? __fmul_rn(ar[q], inv) : 0.0f;
    xr[q] = int8_t(isfinite(y) ? __float2int_rn(y) : 0);
  }
  if (threadIdx.x == 0) row_scale[row] = bad ? __int_as_float(0x7fc00000) : __fdiv_rn(amax, 127.0f);
}

// out[i, j] = f32(acc)·(sa_i·scale[j]) + bias[j], each operation rounded on its own (no FMA).
__device__ inline float dequant(int acc, float sa, float scale, float bias) {
  return __fadd_rn(__fmul_rn(__int2float_rn(acc), __fmul_rn(sa, scale)), bias);
}

// xw: [m, kq] words (four int8 of a row each), w: [kq, n] words. 64×64 tiles, 16 words (64 k)
// a slab, 256 threads of 4×4 outputs.
constexpr int kI8BM = 64, kI8BN = 64, kI8BQ = 16, kI8Threads = 256;

__global__ void __launch_bounds__(kI8Threads) matmul_int8_tiled(const int* __restrict__ xw, const int* __restrict__ w, const float* __restrict__ row_scale,
                                                               const float* __restrict__ scale, const float* __restrict__ bias, float* __restrict__ out,
                                                               int m, int n, int kq) {
  __shared__ int Xs[kI8BQ][kI8BM + 4];
  __shared__ int Ws[kI8BQ][kI8BN];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int n0 = blockIdx.x * kI8BN, m0 = blockIdx.y * kI8BM;
  int acc[4][4] = {};
  for (int q0 = 0; q0 < kq; q0 += kI8BQ) {
#pragma unroll
    for (int r = 0; r < kI8BM * kI8BQ / kI8Threads; r++) {
      const int e = tid + r * kI8Threads;
      const int q = e % kI8BQ, i = e / kI8BQ;  // x rows are q-contiguous
      Xs[q][i] = m0 + i < m && q0 + q < kq ? xw[(long long)(m0 + i) * kq + q0 + q] : 0;
    }
#pragma unroll
    for (int r = 0; r < kI8BN * kI8BQ / kI8Threads; r++) {
      const int e = tid + r * kI8Threads;
      const int j = e % kI8BN, q = e / kI8BN;  // w rows are j-contiguous
      Ws[q][j] = n0 + j < n && q0 + q < kq ? w[(long long)(q0 + q) * n + n0 + j] : 0;
    }
    __syncthreads();
#pragma unroll
    for (int q = 0; q < kI8BQ; q++) {
      int xa[4], wb[4];
#pragma unroll
      for (int i = 0; i < 4; i++) xa[i] = Xs[q][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; j++) wb[j] = Ws[q][tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = __dp4a(xa[i], wb[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int row = m0 + ty * 4 + i;
    if (row >= m) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int col = n0 + tx * 4 + j;
      if (col < n) out[(long long)row * n + col] = dequant(acc[i][j], row_scale[row], scale[col], bias ? bias[col] : 0.0f);
    }
  }
}

// Few rows (decode): a thread per column j, up to 8 rows a block; each word of w is read once per
// 8 rows, coalesced across the warp, while the row words are the same for all threads (broadcast).
constexpr int kI8SkinnyRows = 8, kI8SkinnyMaxM = 16;

__global__ void __launch_bounds__(kThreads) matmul_int8_skinny(const int* __restrict__ xw, const int* __restrict__ w, const float* __restrict__ row_scale,
                                                              const float* __restrict__ scale, const float* __restrict__ bias, float* __restrict__ out,
                                                              int m, int n, int kq) {
  const int j = blockIdx.x * kThreads + threadIdx.x;
  const int i0 = blockIdx.y * kI8SkinnyRows;
  const int rows = m - i0 < kI8SkinnyRows ? m - i0 : kI8SkinnyRows;
  if (j >= n) return;
  int acc[kI8SkinnyRows] = {};
  for (int q = 0; q < kq; q++) {
    const int wv = w[(long long)q * n + j];
#pragma unroll
    for (int r = 0; r < kI8SkinnyRows; r++)
      if (r < rows) acc[r] = __dp4a(xw[(long long)(i0 + r) * kq + q], wv, acc[r]);
  }
#pragma unroll
  for (int r = 0; r < kI8SkinnyRows; r++)
    if (r < rows) out[(long long)(i0 + r) * n + j] = dequant(acc[r], row_scale[i0 + r], scale[j], bias ? bias[j] : 0.0f);
}

void matmul_int8(const MatmulInt8Args& args) {
  if (args.m <= 0 || args.n <= 0) return;
  if (args.m > INT_MAX || args.n > INT_MAX || args.k > INT_MAX)
    throw std::runtime_error("matmulInt8: dimensions beyond 2^31 − 1 are not supported by the cuda backend");
  const int m = int(args.m), n = int(args.n), k = int(args.k);
  const int kq = (k + 3) / 4, kpad = kq * 4;
  // scratch: x [m, kpad] int8 (word-aligned rows), then row_scale [m] f32
  const size_t xbytes = size_t(m) * size_t(kpad);
  const size_t offset = (xbytes + 255) / 256 * 256;
  char* s = static_cast<char*>(scratch(offset + size_t(m) * sizeof(float)));
  int8_t* x = reinterpret_cast<int8_t*>(s);
  float* row_scale = reinterpret_cast<float*>(s + offset);

  quantize_rows<<<unsigned(m), kQuantThreads, 0, stream()>>>(static_cast<const float*>(args.a.data), x, row_scale, k, kpad);
  check_launch("matmulInt8 quantize");

  const int* xw = reinterpret_cast<const int*>(x);
  const int* w = static_cast<const int*>(args.w.data);
  const float* scale = static_cast<const float*>(args.scale.data);
  const float* bias = static_cast<const float*>(args.bias.data);
  float* out = static_cast<float*>(args.out.data);
  if (m <= kI8SkinnyMaxM) {
    const dim3 grid(unsigned((n + kThreads - 1) / kThreads), unsigned((m + kI8SkinnyRows - 1) / kI8SkinnyRows));
    matmul_int8_skinny<<<grid, kThreads, 0, stream()>>>(xw, w, row_scale, scale, bias, out, m, n, kq);
  } else {
    const long long tiles_m = (m + kI8BM - 1) / kI8BM;
    if (tiles_m > 65535) throw std::runtime_error("matmulInt8: m = " + std::to_string(m) + " exceeds the cuda kernel's grid (at most 4194240 rows)");
    const dim3 grid(unsigned((n + kI8BN - 1) / kI8BN), unsigned(tiles_m));
    matmul_int8_tiled<<<grid, kI8Threads, 0, stream()>>>(xw, w, row_scale, scale, bias, out, m, n, kq);
  }
  check_launch("matmulInt8");
}

}  // namespace

void add_matmul(Table& t) {
  t.matmul = &matmul;
  t.matmul_int8 = &matmul_int8;
  t.computes[FAMILY_MATMUL] = dtype_bit(F32) | dtype_bit(F64) | dtype_bit(BF16) | dtype_bit(F16);
}

}  // namespace cuda
}  // namespace kiln
