// The elementwise family on the GPU: fill, random, cast, copy, unary, unaryGrad, binary, where,
// gather, scatterAdd and check, with ref's semantics (src/backend/ref/ref.ts, kernels.ts).
//
// Numbers are what JavaScript stores: ref computes in doubles and rounds once on the store, so
// every kernel here either computes in the storage's own precision where that gives the same
// rounded result (f32 +, −, ·, /, comparisons; exact integer arithmetic), or in doubles and
// rounds once (casts, fills, random draws, pow, every unaryGrad, halves' binary ops), or — f32
// and half unary ops — in f32 with CUDA's accurate (not fast-math) functions, within a few f32
// ulp of ref. Stores round as dtype.ts: f64 → bf16/f16 goes through an f32 rounded to odd (so
// there is no double rounding), i32 is ECMAScript ToInt32 (truncate, wrap, NaN/±∞ → 0), bool
// is v ≠ 0 (NaN true), NaNs of halves are the canonical 0x7fc0 / 0x7e00.
//
// Faults (gather, scatterAdd, check): ref reports the first bad element in its loop order, so
// the kernels keep the lowest bad position (atomicMin on a per-device slot, g_first_bad) and a
// one-thread kernel queued after them turns it into the fault (record_fault) and resets the
// slot. The stream orders every kernel, so the slot is never shared by two calls at once.
//
// Flat operands are read and written 16 bytes at a time (Pack) when their base addresses are
// 16-byte aligned (always, for whole allocations); strided operands are first simplified on the
// host (size-1 axes dropped, mergeable axes merged), then each thread turns its linear output
// index into offsets, with 32-bit division when the element count allows.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "common.cuh"

namespace kiln {
namespace cuda {
namespace {

// ---- launch helpers ---------------------------------------------------------------------------

__device__ inline int64_t thread_index() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline int64_t thread_count() { return int64_t(gridDim.x) * blockDim.x; }

// The lowest bad position of the current faulting kernel (~0: none); see the file comment.
__device__ unsigned long long g_first_bad = ~0ull;
constexpr unsigned long long kNoBad = ~0ull;

// Strided operands after simplification: K operands' strides over `rank` axes (row-major).
template <int K>
struct Layout {
  int rank;
  int64_t shape[kMaxRank];
  int64_t st[K][kMaxRank];
};

// Drop size-1 axes and merge axis d into d+1 where every operand is contiguous across them
// (outputs that are contiguous merge always). Returns the element count (0: nothing to do).
template <int K>
int64_t simplify(const Ints& shape, const Ints* const strides[K], Layout<K>& L) {
  int64_t total = 1;
  for (int d = 0; d < int(shape.rank); d++) total *= shape.v[d];
  L.rank = 0;
  if (total <= 0) return 0;
  for (int d = 0; d < int(shape.rank); d++) {
    if (shape.v[d] == 1) continue;
    if (L.rank > 0) {
      const int p = L.rank - 1;
      bool merge = true;
      // previous (outer) axis p and this axis d: p's stride must be d's stride · d's size
      for (int k = 0; k < K; k++)
        if (L.st[k][p] != strides[k]->v[d] * shape.v[d]) merge = false;
      if (merge) {
        L.shape[p] *= shape.v[d];
        for (int k = 0; k < K; k++) L.st[k][p] = strides[k]->v[d];
        continue;
      }
    }
    L.shape[L.rank] = shape.v[d];
    for (int k = 0; k < K; k++) L.st[k][L.rank] = strides[k]->v[d];
    L.rank++;
  }
  if (L.rank == 0) {  // one element
    L.rank = 1;
    L.shape[0] = 1;
    for (int k = 0; k < K; k++) L.st[k][0] = 0;
  }
  return total;
}

// Offsets of the operands at row-major linear index `lin` (I: the index type, 32-bit when the
// count fits). The outermost axis needs no division.
template <int K, class I>
__device__ inline void offsets_of(const Layout<K>& L, I lin, int64_t off[K]) {
#pragma unroll
  for (int k = 0; k < K; k++) off[k] = 0;
  for (int d = L.rank - 1; d > 0; d--) {
    const I n = I(L.shape[d]);
    const I q = lin / n;
    const int64_t idx = int64_t(lin - q * n);
#pragma unroll
    for (int k = 0; k < K; k++) off[k] += idx * L.st[k][d];
    lin = q;
  }
#pragma unroll
  for (int k = 0; k < K; k++) off[k] += int64_t(lin) * L.st[k][0];
}

// Raw element types of each size (kernels that only move elements).
template <int B> struct RawOf;
template <> struct RawOf<1> { using T = uint8_t; };
template <> struct RawOf<2> { using T = uint16_t; };
template <> struct RawOf<4> { using T = uint32_t; };
template <> struct RawOf<8> { using T = uint64_t; };

template <class F>
void dispatch_raw(DType dt, F&& f) {
  switch (item_size(dt)) {
    case 1: f.template operator()<uint8_t>(); break;
    case 2: f.template operator()<uint16_t>(); break;
    case 4: f.template operator()<uint32_t>(); break;
    default: f.template operator()<uint64_t>(); break;
  }
}

// ---- fill ---------------------------------------------------------------------------------------

template <class R>
__global__ void fill_kernel(R* __restrict__ o, int64_t n, R v, bool vec) {
  constexpr int V = kVec<R>;
  const int64_t t = thread_index(), stride = thread_count();
  const int64_t chunks = vec ? n / V : 0;
  Pack<R, V> p;
#pragma unroll
  for (int k = 0; k < V; k++) p.v[k] = v;
  for (int64_t c = t; c < chunks; c += stride) reinterpret_cast<Pack<R, V>*>(o)[c] = p;
  for (int64_t i = chunks * V + t; i < n; i += stride) o[i] = v;
}

template <class S, class R>
R pattern_of(double value) {
  static_assert(sizeof(S) == sizeof(R), "raw type of the storage");
  const S s = encode_d<S>(value);
  R r;
  std::memcpy(&r, &s, sizeof(R));
  return r;
}

struct FillAs {
  void* out;
  int64_t n;
  double value;
  template <class S>
  void operator()() const {
    using R = typename RawOf<sizeof(S)>::T;
    const R v = pattern_of<S, R>(value);
    R* o = static_cast<R*>(out);
    fill_kernel<R><<<grid_for((n + kVec<R> - 1) / kVec<R>), kThreads, 0, stream()>>>(o, n, v, aligned16(o));
    check_launch("fill");
  }
};

// out[i] = value encoded once, as dtype.ts encode([value], dtype).
void fill(const FillArgs& a) {
  const int64_t n = a.out.size;
  if (n <= 0) return;
  if (a.value == 0 && !std::signbit(a.value)) {  // +0 is all-zero bytes in every dtype
    KILN_CUDA(cudaMemsetAsync(a.out.data, 0, size_t(n) * item_size(a.out.dtype), stream()), "fill");
    return;
  }
  dispatch_dtype(a.out.dtype, FillAs{a.out.data, n, a.value});
}

// ---- random ------------------------------------------------------------------------------------
//
// Element i: word i mod 4 of philox(key = seed, counter = offset + ⌊i/4⌋), mapped as
// src/backend/philox.ts in doubles with every product and sum rounded on its own (__dmul_rn /
// __dadd_rn: no fused multiply-add), so uniform and randint values are philox.ts's bit for
// bit; normal values use CUDA's double log/sqrt/sincos (within an ulp or so of the JS engine's).
// One thread per counter: one Philox evaluation, four elements stored together.

template <class S>
__global__ void random_kernel(S* __restrict__ o, int64_t n, RandomDist dist, double p0, double p1, uint32_t k0, uint32_t k1,
                              uint64_t offset, bool vec) {
  const int64_t groups = (n + 3) / 4;
  const double two_pi = 2 * 3.141592653589793;  // 2·Math.PI, exact doubling
  const double two_m24 = 1.0 / 16777216.0;
  for (int64_t g = thread_index(); g < groups; g += thread_count()) {
    const uint64_t ctr = offset + uint64_t(g);
    uint32_t w[4];
    philox4x32_10(uint32_t(ctr), uint32_t(ctr >> 32), 0, 0, PhiloxKey{k0, k1}, w);
    const int64_t base = 4 * g;
    const int end = n - base < 4 ? int(n - base) : 4;
    double v[4] = {0, 0, 0, 0};
    if (dist == DIST_UNIFORM) {
      const double span = p1 - p0;
#pragma unroll
      for (int j = 0; j < 4; j++) v[j] = __dadd_rn(p0, __dmul_rn(span, double(w[j] >> 8) * two_m24));
    } else if (dist == DIST_RANDINT) {
      // low + ⌊w·span / 2^32⌋, span read as a uint32 (ToUint32) like philox.ts's mulhi
      const uint32_t span = uint32_t(to_int32(p1 - p0));
#pragma unroll
      for (int j = 0; j < 4; j++) v[j] = __dadd_rn(p0, double(uint32_t((uint64_t(w[j]) * span) >> 32)));
    } else {
#pragma unroll
      for (int p = 0; p < 4; p += 2) {
        const double u0 = double(w[p] >> 8) * two_m24;
        const double u1 = double(w[p + 1] >> 8) * two_m24;
        const double r = sqrt(__dmul_rn(-2.0, log(1.0 - u0)));
        double s, c;
        sincos(__dmul_rn(two_pi, u1), &s, &c);
        const double sr = __dmul_rn(p1, r);  // JS: mean + std * r * cos(t) = mean + ((std·r)·cos t)
        v[p] = __dadd_rn(p0, __dmul_rn(sr, c));
        v[p + 1] = __dadd_rn(p0, __dmul_rn(sr, s));
      }
    }
    if (end == 4 && vec) {
      Pack<S, 4> pk;
#pragma unroll
      for (int j = 0; j < 4; j++) pk.v[j] = encode_d<S>(v[j]);
      reinterpret_cast<Pack<S, 4>*>(o)[g] = pk;
    } else {
      for (int j = 0; j < end; j++) o[base + j] = encode_d<S>(v[j]);
    }
  }
}

struct RandomAs {
  const RandomArgs& a;
  int64_t n;
  uint64_t seed;
  template <class S>
  void operator()() const {
    S* o = ptr<S>(a.out);
    random_kernel<S><<<grid_for((n + 3) / 4), kThreads, 0, stream()>>>(o, n, a.dist, a.p0, a.p1, uint32_t(seed), uint32_t(seed >> 32),
                                                                        uint64_t(a.offset), aligned16(o));
    check_launch("random");
  }
};

void random(const RandomArgs& a) {
  const int64_t n = a.out.size;
  if (n <= 0) return;
  const uint64_t seed = uint64_t(a.seed);
  dispatch_dtype(a.out.dtype, RandomAs{a, n, seed});
}

// ---- flat maps (cast, unary, unaryGrad) ---------------------------------------------------------

// o[i] = f(x[i]) over n elements; V at a time when vec (both bases 16-byte aligned).
template <int V, class In, class Out, class F>
__global__ void map1_kernel(const In* __restrict__ x, Out* __restrict__ o, int64_t n, bool vec, F f) {
  const int64_t t = thread_index(), stride = thread_count();
  const int64_t chunks = vec ? n / V : 0;
  for (int64_t c = t; c < chunks; c += stride) {
    const Pack<In, V> a = reinterpret_cast<const Pack<In, V>*>(x)[c];
    Pack<Out, V> r;
#pragma unroll
    for (int k = 0; k < V; k++) r.v[k] = f(a.v[k]);
    reinterpret_cast<Pack<Out, V>*>(o)[c] = r;
  }
  for (int64_t i = chunks * V + t; i < n; i += stride) o[i] = f(x[i]);
}

// o[i] = f(x[i], y[i]).
template <int V, class In, class Out, class F>
__global__ void map2_kernel(const In* __restrict__ x, const In* __restrict__ y, Out* __restrict__ o, int64_t n, bool vec, F f) {
  const int64_t t = thread_index(), stride = thread_count();
  const int64_t chunks = vec ? n / V : 0;
  for (int64_t c = t; c < chunks; c += stride) {
    const Pack<In, V> a = reinterpret_cast<const Pack<In, V>*>(x)[c];
    const Pack<In, V> b = reinterpret_cast<const Pack<In, V>*>(y)[c];
    Pack<Out, V> r;
#pragma unroll
    for (int k = 0; k < V; k++) r.v[k] = f(a.v[k], b.v[k]);
    reinterpret_cast<Pack<Out, V>*>(o)[c] = r;
  }
  for (int64_t i = chunks * V + t; i < n; i += stride) o[i] = f(x[i], y[i]);
}

template <class In, class Out> constexpr int kMapVec = kVec<In> > kVec<Out> ? kVec<In> : kVec<Out>;

template <class In, class Out, class F>
void map1(const char* what, const void* x, void* o, int64_t n, F f) {
  constexpr int V = kMapVec<In, Out>;
  const In* xi = static_cast<const In*>(x);
  Out* oo = static_cast<Out*>(o);
  map1_kernel<V><<<grid_for((n + V - 1) / V), kThreads, 0, stream()>>>(xi, oo, n, aligned16(xi) && aligned16(oo), f);
  check_launch(what);
}

template <class In, class Out, class F>
void map2(const char* what, const void* x, const void* y, void* o, int64_t n, F f) {
  constexpr int V = kMapVec<In, Out>;
  const In* xi = static_cast<const In*>(x);
  const In* yi = static_cast<const In*>(y);
  Out* oo = static_cast<Out*>(o);
  map2_kernel<V><<<grid_for((n + V - 1) / V), kThreads, 0, stream()>>>(xi, yi, oo, n, aligned16(xi) && aligned16(yi) && aligned16(oo), f);
  check_launch(what);
}

// ---- cast ---------------------------------------------------------------------------------------

// The number x[i] is, stored in D (floats from f32/halves/bool without going through double).
template <class S, class D>
struct CastF {
  __device__ D operator()(S s) const {
    const auto v = value_of(s);
    if constexpr (std::is_same_v<decltype(v), const float>) return encode_f<D>(v);
    else return encode_d<D>(double(v));
  }
};

template <class S>
struct CastTo {
  const void* x;
  void* out;
  int64_t n;
  template <class D>
  void operator()() const {
    map1<S, D>("cast", x, out, n, CastF<S, D>{});
  }
};
struct CastFrom {
  const void* x;
  void* out;
  DType od;
  int64_t n;
  template <class S>
  void operator()() const {
    dispatch_dtype(od, CastTo<S>{x, out, n});
  }
};

// out[i] = x[i] converted as ref's cast: halves round to nearest even straight from the value,
// floats truncate toward zero to i32 with ToInt32's wrap (NaN, ±∞ → 0), bool is x ≠ 0 (NaN
// true). Same dtype: a copy, except that halves' NaNs become canonical as decode + encode does.
void cast(const CastArgs& a) {
  const int64_t n = a.out.size;
  if (n <= 0) return;
  const DType xd = a.x.dtype, od = a.out.dtype;
  if (xd == od && xd != BF16 && xd != F16) {
    KILN_CUDA(cudaMemcpyAsync(a.out.data, a.x.data, size_t(n) * item_size(xd), cudaMemcpyDeviceToDevice, stream()), "cast");
    return;
  }
  dispatch_dtype(xd, CastFrom{a.x.data, a.out.data, od, n});
}

// ---- copy ---------------------------------------------------------------------------------------

// dst[off_dst(idx)] = src[off_src(idx)] over the simplified layout (operand 0 = src, 1 = dst).
template <class R, class I>
__global__ void copy_kernel(const R* __restrict__ src, R* __restrict__ dst, Layout<2> L, I total) {
  for (I lin = I(thread_index()); lin < total; lin += I(thread_count())) {
    int64_t off[2];
    offsets_of<2>(L, lin, off);
    dst[off[1]] = src[off[0]];
  }
}

// Rows of a copy whose two innermost axes are transposed between src and dst (src contiguous
// along axis k, dst along axis jd): 32×32 tiles through shared memory, so that both the reads
// and the writes are coalesced. The outer axes are enumerated by blockIdx.z.
template <class R>
__global__ void transpose_kernel(const R* __restrict__ src, R* __restrict__ dst, Layout<2> outer, int64_t n_outer, int64_t A,
                                 int64_t B, int64_t src_sb, int64_t dst_sa) {
  // src[a + b·src_sb] (a contiguous) → dst[a·dst_sa + b] (b contiguous), per outer index
  __shared__ R tile[32][33];
  const int64_t a0 = int64_t(blockIdx.x) * 32, b0 = int64_t(blockIdx.y) * 32;
  for (int64_t z = blockIdx.z; z < n_outer; z += gridDim.z) {
    int64_t off[2];
    offsets_of<2>(outer, z, off);
    const R* s = src + off[0];
    R* d = dst + off[1];
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
      const int64_t a = a0 + threadIdx.x, b = b0 + r;
      if (a < A && b < B) tile[r][threadIdx.x] = s[a + b * src_sb];
    }
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
      const int64_t a = a0 + r, b = b0 + threadIdx.x;
      if (a < A && b < B) d[a * dst_sa + b] = tile[threadIdx.x][r];
    }
    __syncthreads();
  }
}

// Whether the layout is a batch of transposes (axes i ≠ j: src stride 1 on i, dst stride 1 on
// j, both ≥ 32 long); launches it if so.
template <class R>
bool copy_transposed(const R* src, R* dst, const Layout<2>& L) {
  int i = -1, j = -1;
  for (int d = 0; d < L.rank; d++) {
    if (L.st[0][d] == 1) i = d;
    if (L.st[1][d] == 1) j = d;
  }
  if (i < 0 || j < 0 || i == j || L.shape[i] < 32 || L.shape[j] < 32) return false;
  Layout<2> outer{};
  int64_t n_outer = 1;
  for (int d = 0; d < L.rank; d++)
    if (d != i && d != j) {
      outer.shape[outer.rank] = L.shape[d];
      outer.st[0][outer.rank] = L.st[0][d];
      outer.st[1][outer.rank] = L.st[1][d];
      outer.rank++;
      n_outer *= L.shape[d];
    }
  if (outer.rank == 0) {
    outer.rank = 1;
    outer.shape[0] = 1;
    outer.st[0][0] = outer.st[1][0] = 0;
  }
  const int64_t A = L.shape[i], B = L.shape[j];
  const int64_t gx = (A + 31) / 32, gy = (B + 31) / 32;
  if (gx > 2147483647 || gy > 65535) return false;
  const dim3 grid(unsigned(gx), unsigned(gy), unsigned(n_outer < 65535 ? n_outer : 65535));
  transpose_kernel<R><<<grid, dim3(32, 8), 0, stream()>>>(src, dst, outer, n_outer, A, B, L.st[0][j], L.st[1][i]);
  check_launch("copy");
  return true;
}

// Count small enough for 32-bit linear indices (with room for the grid-stride overshoot).
inline bool fits32(int64_t total) { return total <= int64_t(UINT32_MAX) - int64_t(kThreads) * 65536; }

struct CopyAs {
  const CopyArgs& a;
  const Layout<2>& L;
  int64_t total;
  template <class R>
  void operator()() const {
    const R* src = static_cast<const R*>(a.src.data) + a.src_offset;
    R* dst = static_cast<R*>(a.dst.data) + a.dst_offset;
    if (L.rank == 1 && L.st[0][0] == 1 && L.st[1][0] == 1) {
      KILN_CUDA(cudaMemcpyAsync(dst, src, size_t(total) * sizeof(R), cudaMemcpyDeviceToDevice, stream()), "copy");
      return;
    }
    if (copy_transposed(src, dst, L)) return;
    if (fits32(total))
      copy_kernel<R, uint32_t><<<grid_for(total), kThreads, 0, stream()>>>(src, dst, L, uint32_t(total));
    else
      copy_kernel<R, uint64_t><<<grid_for(total), kThreads, 0, stream()>>>(src, dst, L, uint64_t(total));
    check_launch("copy");
  }
};

// dst[dstOffset + Σ i·dstStrides] = src[srcOffset + Σ i·srcStrides]: raw elements, any dtype.
void copy(const CopyArgs& a) {
  Layout<2> L{};
  const Ints* strides[2] = {&a.src_strides, &a.dst_strides};
  const int64_t total = simplify<2>(a.shape, strides, L);
  if (total <= 0) return;
  dispatch_raw(a.dst.dtype, CopyAs{a, L, total});
}

// ---- unary --------------------------------------------------------------------------------------

__device__ inline float m_exp(float x) { return expf(x); }
__device__ inline double m_exp(double x) { return exp(x); }
__device__ inline float m_log(float x) { return logf(x); }
__device__ inline double m_log(double x) { return log(x); }
__device__ inline float m_sqrt(float x) { return sqrtf(x); }
__device__ inline double m_sqrt(double x) { return sqrt(x); }
__device__ inline float m_sin(float x) { return sinf(x); }
__device__ inline double m_sin(double x) { return sin(x); }
__device__ inline float m_cos(float x) { return cosf(x); }
__device__ inline double m_cos(double x) { return cos(x); }
__device__ inline float m_tanh(float x) { return tanhf(x); }
__device__ inline double m_tanh(double x) { return tanh(x); }
__device__ inline float m_erf(float x) { return erff(x); }
__device__ inline double m_erf(double x) { return erf(x); }
__device__ inline float m_erfc(float x) { return erfcf(x); }
__device__ inline double m_erfc(double x) { return erfc(x); }
__device__ inline float m_floor(float x) { return floorf(x); }
__device__ inline double m_floor(double x) { return floor(x); }
__device__ inline float m_ceil(float x) { return ceilf(x); }
__device__ inline double m_ceil(double x) { return ceil(x); }
__device__ inline float m_rint(float x) { return rintf(x); }
__device__ inline double m_rint(double x) { return rint(x); }
__device__ inline float m_abs(float x) { return fabsf(x); }
__device__ inline double m_abs(double x) { return fabs(x); }

// σ(x) as kernels.ts: 1/(1 + e^−x) for x ≥ 0, e^x/(1 + e^x) below (no overflow, no cancellation).
template <class C>
__device__ inline C sigmoid_of(C x) {
  if (x >= C(0)) return C(1) / (C(1) + m_exp(-x));
  const C e = m_exp(x);
  return e / (C(1) + e);
}

// op(x) in C (float for f32 and halves, double for f64), as kernels.ts's unaryFn. Rewritten
// where the naive form cancels: gelu for x < 0 is ½x·erfc(−x/√2); gelu_tanh is x·σ(2u)
// (½(1 + tanh u) = σ(2u)). ±∞ and NaN give ref's values (gelu(−∞) and silu(−∞) are NaN there
// too: −∞·0).
template <class C>
__device__ inline C unary_c(UnaryOp op, C x) {
  constexpr C kInvSqrt2 = C(0.7071067811865476);    // Math.SQRT1_2
  constexpr C kSqrt2OverPi = C(0.7978845608028654);  // Math.sqrt(2 / Math.PI)
  switch (op) {
    case U_NEG: return -x;
    case U_ABS: return m_abs(x);
    case U_SIGN: return x != x ? x : x > C(0) ? C(1) : x < C(0) ? C(-1) : C(0);
    case U_EXP: return m_exp(x);
    case U_LOG: return m_log(x);
    case U_SQRT: return m_sqrt(x);
    case U_RSQRT: return C(1) / m_sqrt(x);
    case U_SIN: return m_sin(x);
    case U_COS: return m_cos(x);
    case U_TANH: return m_tanh(x);
    case U_SIGMOID: return sigmoid_of(x);
    case U_RELU: return x > C(0) ? x : x != x ? x : C(0);
    case U_GELU: return x >= C(0) ? C(0.5) * x * (C(1) + m_erf(x * kInvSqrt2)) : C(0.5) * x * m_erfc(-x * kInvSqrt2);
    case U_GELU_TANH: {
      const C u = kSqrt2OverPi * (x + C(0.044715) * x * x * x);
      return x * sigmoid_of(C(2) * u);
    }
    case U_SILU: {
      if (x >= C(0)) return x / (C(1) + m_exp(-x));
      const C e = m_exp(x);
      return (x * e) / (C(1) + e);
    }
    case U_ERF: return m_erf(x);
    case U_FLOOR: return m_floor(x);
    case U_CEIL: return m_ceil(x);
    // half to even; −0 only for −0 itself, as ref (x + 0 turns rint's −0 of a small negative x into +0)
    case U_ROUND: return x == C(0) ? x : m_rint(x) + C(0);
    case U_ISFINITE: break;  // its own functor (bool out)
  }
  return x;
}

// i32: the integral ops exactly (−(−2^31) wraps to −2^31 as ToInt32(2^31) does), the others in
// doubles stored by ToInt32, as ref's Int32Array store.
__device__ inline int32_t unary_i32(UnaryOp op, int32_t v) {
  const int32_t neg = int32_t(0u - uint32_t(v));
  switch (op) {
    case U_NEG: return neg;
    case U_ABS: return v < 0 ? neg : v;
    case U_SIGN: return (v > 0) - (v < 0);
    case U_RELU: return v > 0 ? v : 0;
    case U_FLOOR:
    case U_CEIL:
    case U_ROUND: return v;
    default: return to_int32(unary_c<double>(op, double(v)));
  }
}

template <class S>
struct UnaryF {
  UnaryOp op;
  __device__ S operator()(S s) const {
    if constexpr (std::is_same_v<S, int32_t>) return unary_i32(op, s);
    else if constexpr (std::is_same_v<S, uint8_t>) return encode_d<S>(unary_c<double>(op, double(s)));  // bool: v ≠ 0
    else if constexpr (std::is_same_v<S, double>) return unary_c<double>(op, s);
    else return encode_f<S>(unary_c<float>(op, value_of(s)));  // f32, halves: in f32
  }
};

template <class S>
struct IsFiniteF {
  __device__ uint8_t operator()(S s) const {
    if constexpr (std::is_same_v<S, double>) return finite_d(s);
    else if constexpr (std::is_same_v<S, int32_t> || std::is_same_v<S, uint8_t>) return 1;
    else return finite_f(value_of(s));
  }
};

struct UnaryAs {
  const UnaryArgs& a;
  int64_t n;
  template <class S>
  void operator()() const {
    if (a.op == U_ISFINITE) map1<S, uint8_t>("unary", a.x.data, a.out.data, n, IsFiniteF<S>{});
    else map1<S, S>("unary", a.x.data, a.out.data, n, UnaryF<S>{a.op});
  }
};

// out[i] = op(x[i]); x and out share a dtype (out is bool for isfinite).
void unary(const UnaryArgs& a) {
  const int64_t n = a.out.size;
  if (n <= 0) return;
  dispatch_dtype(a.x.dtype, UnaryAs{a, n});
}

// ---- unaryGrad ------------------------------------------------------------------------------------

// d op(x)/dx in doubles, as kernels.ts's unaryDerivative (gelu's Φ through erfc for x < 0).
__device__ inline double deriv_d(UnaryOp op, double x) {
  constexpr double kSqrt2OverPi = 0.7978845608028654;
  constexpr double kInvSqrt2 = 0.7071067811865476;
  constexpr double kInvSqrt2Pi = 0.3989422804014327;    // 1 / Math.sqrt(2π)
  constexpr double kTwoOverSqrtPi = 1.1283791670955126;  // 2 / Math.sqrt(Math.PI)
  switch (op) {
    case U_NEG: return -1.0;
    case U_ABS: return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0;
    case U_EXP: return exp(x);
    case U_LOG: return 1 / x;
    case U_SQRT: return 0.5 / sqrt(x);
    case U_RSQRT: return -0.5 * pow(x, -1.5);
    case U_SIN: return cos(x);
    case U_COS: return -sin(x);
    case U_TANH: {
      const double t = tanh(x);
      return 1 - t * t;
    }
    case U_SIGMOID: {
      const double s = sigmoid_of(x);
      return s * (1 - s);
    }
    case U_RELU: return x > 0 ? 1.0 : 0.0;
    case U_GELU: {
      const double cdf = x >= 0 ? 0.5 * (1 + erf(x * kInvSqrt2)) : 0.5 * erfc(-x * kInvSqrt2);
      return cdf + x * kInvSqrt2Pi * exp(-0.5 * x * x);
    }
    case U_GELU_TANH: {
      const double u = kSqrt2OverPi * (x + 0.044715 * x * x * x);
      const double t = tanh(u);
      const double du = kSqrt2OverPi * (1 + 3 * 0.044715 * x * x);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
    }
    case U_SILU: {
      const double s = sigmoid_of(x);
      return s * (1 + x * (1 - s));
    }
    case U_ERF: return kTwoOverSqrtPi * exp(-x * x);
    default: return 0.0;  // sign, floor, ceil, round, isfinite (dy·0: NaN where dy is ±∞/NaN, as ref)
  }
}

// out = dy·op′(x) in doubles, rounded once on the store — every dtype, as ref.
template <class S>
struct UnaryGradF {
  UnaryOp op;
  __device__ S operator()(S x, S dy) const { return encode_d<S>(double(value_of(dy)) * deriv_d(op, double(value_of(x)))); }
};

struct UnaryGradAs {
  const UnaryGradArgs& a;
  int64_t n;
  template <class S>
  void operator()() const {
    map2<S, S>("unaryGrad", a.x.data, a.dy.data, a.out.data, n, UnaryGradF<S>{a.op});
  }
};

void unary_grad(const UnaryGradArgs& a) {
  const int64_t n = a.out.size;
  if (n <= 0) return;
  dispatch_dtype(a.x.dtype, UnaryGradAs{a, n});
}

// ---- binary -------------------------------------------------------------------------------------

// Math.pow: C pow, except that a NaN exponent gives NaN even for base 1, and (±1)^±∞ is NaN.
__device__ inline double js_pow(double a, double b) {
  if (b != b) return b;
  if (fabs(a) == 1 && !finite_d(b)) return __longlong_as_double(0x7ff8000000000000ll);
  return pow(a, b);
}

// JS truthiness: non-zero and not NaN.
template <class C>
__device__ inline bool truthy(C v) {
  return v != C(0) && v == v;
}

// Comparisons and and/or (bool out), in the compute type (exact for every dtype).
template <class C>
__device__ inline uint8_t logic_c(BinaryOp op, C a, C b) {
  switch (op) {
    case B_EQ: return a == b;
    case B_NE: return a != b;
    case B_LT: return a < b;
    case B_LE: return a <= b;
    case B_GT: return a > b;
    case B_GE: return a >= b;
    case B_AND: return truthy(a) && truthy(b);
    case B_OR: return truthy(a) || truthy(b);
    default: return 0;
  }
}

// Arithmetic on floats in C (float: +, −, ·, / rounded once equal ref's f64 result rounded;
// pow in doubles). maximum/minimum: NaN propagates, else a > b ? a : b as ref.
template <class C>
__device__ inline C arith_c(BinaryOp op, C a, C b) {
  switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_POW: return C(js_pow(double(a), double(b)));
    case B_MAXIMUM: return a != a ? a : b != b ? b : a > b ? a : b;
    case B_MINIMUM: return a != a ? a : b != b ? b : a < b ? a : b;
    default: return C(0);
  }
}

// i32: int32 arithmetic as kernels.ts (wrap-around; Math.imul; division truncates and x/0 = 0;
// pow by squaring with wrap-around, negative exponents → 0).
__device__ inline int32_t arith_i32(BinaryOp op, int32_t a, int32_t b) {
  const uint32_t ua = uint32_t(a), ub = uint32_t(b);
  switch (op) {
    case B_ADD: return int32_t(ua + ub);
    case B_SUB: return int32_t(ua - ub);
    case B_MUL: return int32_t(ua * ub);
    case B_DIV: return b == 0 ? 0 : int32_t(uint32_t(int64_t(a) / int64_t(b)));
    case B_POW: {
      if (b < 0) return 0;
      uint32_t r = 1, base = ua, e = ub;
      while (e > 0) {
        if (e & 1u) r *= base;
        base *= base;
        e >>= 1;
      }
      return int32_t(r);
    }
    case B_MAXIMUM: return a > b ? a : b;
    case B_MINIMUM: return a < b ? a : b;
    default: return 0;
  }
}

// One arithmetic op on stored values, stored back: f32/f64 in their precision, i32 exactly,
// halves in doubles rounded once, bool as ref's Uint8Array (the float op, then ToUint8).
template <class S>
__device__ inline S arith_s(BinaryOp op, S a, S b) {
  if constexpr (std::is_same_v<S, float> || std::is_same_v<S, double>) return arith_c<S>(op, a, b);
  else if constexpr (std::is_same_v<S, int32_t>) return arith_i32(op, a, b);
  else if constexpr (std::is_same_v<S, uint8_t>) return uint8_t(uint32_t(to_int32(arith_c<double>(op, double(a), double(b)))));
  else return encode_d<S>(arith_c<double>(op, double(value_of(a)), double(value_of(b))));
}

template <class S>
struct ArithOp {
  using Out = S;
  BinaryOp op;
  __device__ Out operator()(S a, S b) const { return arith_s(op, a, b); }
};
template <class S>
struct LogicOp {
  using Out = uint8_t;
  BinaryOp op;
  __device__ Out operator()(S a, S b) const { return logic_c(op, value_of(a), value_of(b)); }
};

// Contiguous (stride 1) or broadcast (one element) operands over a flat output.
template <int V, class S, class F>
__global__ void binary_flat_kernel(const S* __restrict__ a, bool a_one, const S* __restrict__ b, bool b_one, typename F::Out* __restrict__ o,
                                   int64_t n, bool vec, F f) {
  using O = typename F::Out;
  const int64_t t = thread_index(), stride = thread_count();
  const int64_t chunks = vec ? n / V : 0;
  const S a0 = a[0], b0 = b[0];
  for (int64_t c = t; c < chunks; c += stride) {
    Pack<S, V> pa, pb;
    if (a_one) {
#pragma unroll
      for (int k = 0; k < V; k++) pa.v[k] = a0;
    } else {
      pa = reinterpret_cast<const Pack<S, V>*>(a)[c];
    }
    if (b_one) {
#pragma unroll
      for (int k = 0; k < V; k++) pb.v[k] = b0;
    } else {
      pb = reinterpret_cast<const Pack<S, V>*>(b)[c];
    }
    Pack<O, V> r;
#pragma unroll
    for (int k = 0; k < V; k++) r.v[k] = f(pa.v[k], pb.v[k]);
    reinterpret_cast<Pack<O, V>*>(o)[c] = r;
  }
  for (int64_t i = chunks * V + t; i < n; i += stride) o[i] = f(a_one ? a0 : a[i], b_one ? b0 : b[i]);
}

template <class S, class F, class I>
__global__ void binary_strided_kernel(const S* __restrict__ a, const S* __restrict__ b, typename F::Out* __restrict__ o, Layout<2> L,
                                      I total, F f) {
  for (I lin = I(thread_index()); lin < total; lin += I(thread_count())) {
    int64_t off[2];
    offsets_of<2>(L, lin, off);
    o[lin] = f(a[off[0]], b[off[1]]);
  }
}

template <class S, class F>
void binary_launch(const BinaryArgs& a, const Layout<2>& L, int64_t total, F f) {
  using O = typename F::Out;
  const S* pa = ptr<S>(a.a);
  const S* pb = ptr<S>(a.b);
  O* po = static_cast<O*>(a.out.data);
  const bool flat = L.rank == 1 && (L.st[0][0] == 0 || L.st[0][0] == 1) && (L.st[1][0] == 0 || L.st[1][0] == 1);
  if (flat) {
    constexpr int V = kMapVec<S, O>;
    const bool a_one = L.st[0][0] == 0, b_one = L.st[1][0] == 0;
    const bool vec = (a_one || aligned16(pa)) && (b_one || aligned16(pb)) && aligned16(po);
    binary_flat_kernel<V, S, F><<<grid_for((total + V - 1) / V), kThreads, 0, stream()>>>(pa, a_one, pb, b_one, po, total, vec, f);
  } else if (fits32(total)) {
    binary_strided_kernel<S, F, uint32_t><<<grid_for(total), kThreads, 0, stream()>>>(pa, pb, po, L, uint32_t(total), f);
  } else {
    binary_strided_kernel<S, F, uint64_t><<<grid_for(total), kThreads, 0, stream()>>>(pa, pb, po, L, uint64_t(total), f);
  }
  check_launch("binary");
}

struct BinaryAs {
  const BinaryArgs& a;
  const Layout<2>& L;
  int64_t total;
  template <class S>
  void operator()() const {
    if (a.op >= B_EQ) binary_launch<S>(a, L, total, LogicOp<S>{a.op});
    else binary_launch<S>(a, L, total, ArithOp<S>{a.op});
  }
};

// out[idx] = op(a[Σ idx·aStrides], b[Σ idx·bStrides]) over shape; out contiguous, of a's dtype
// or bool for comparisons and and/or.
void binary(const BinaryArgs& a) {
  Layout<2> L{};
  const Ints* strides[2] = {&a.a_strides, &a.b_strides};
  const int64_t total = simplify<2>(a.shape, strides, L);
  if (total <= 0) return;
  dispatch_dtype(a.a.dtype, BinaryAs{a, L, total});
}

// ---- where --------------------------------------------------------------------------------------

template <class R, class I>
__global__ void where_strided_kernel(const uint8_t* __restrict__ c, const R* __restrict__ x, const R* __restrict__ y, R* __restrict__ o,
                                     Layout<3> L, I total) {
  for (I lin = I(thread_index()); lin < total; lin += I(thread_count())) {
    int64_t off[3];
    offsets_of<3>(L, lin, off);
    o[lin] = c[off[0]] ? x[off[1]] : y[off[2]];
  }
}

// All operands contiguous: V elements at a time.
template <class R>
__global__ void where_flat_kernel(const uint8_t* __restrict__ c, const R* __restrict__ x, const R* __restrict__ y, R* __restrict__ o,
                                  int64_t n, bool vec) {
  constexpr int V = kVec<R> > 4 ? kVec<R> : 4;  // at least 4 condition bytes (one word)
  const int64_t t = thread_index(), stride = thread_count();
  const int64_t chunks = vec ? n / V : 0;
  for (int64_t ch = t; ch < chunks; ch += stride) {
    const Pack<uint8_t, V> pc = reinterpret_cast<const Pack<uint8_t, V>*>(c)[ch];
    const Pack<R, V> px = reinterpret_cast<const Pack<R, V>*>(x)[ch];
    const Pack<R, V> py = reinterpret_cast<const Pack<R, V>*>(y)[ch];
    Pack<R, V> r;
#pragma unroll
    for (int k = 0; k < V; k++) r.v[k] = pc.v[k] ? px.v[k] : py.v[k];
    reinterpret_cast<Pack<R, V>*>(o)[ch] = r;
  }
  for (int64_t i = chunks * V + t; i < n; i += stride) o[i] = c[i] ? x[i] : y[i];
}

struct WhereAs {
  const WhereArgs& a;
  const Layout<3>& L;
  int64_t total;
  template <class R>
  void operator()() const {
    const uint8_t* c = static_cast<const uint8_t*>(a.cond.data);
    const R* x = static_cast<const R*>(a.a.data);
    const R* y = static_cast<const R*>(a.b.data);
    R* o = static_cast<R*>(a.out.data);
    if (L.rank == 1 && L.st[0][0] == 1 && L.st[1][0] == 1 && L.st[2][0] == 1) {
      const bool vec = aligned16(c) && aligned16(x) && aligned16(y) && aligned16(o);
      where_flat_kernel<R><<<grid_for((total + 3) / 4), kThreads, 0, stream()>>>(c, x, y, o, total, vec);
    } else if (fits32(total)) {
      where_strided_kernel<R, uint32_t><<<grid_for(total), kThreads, 0, stream()>>>(c, x, y, o, L, uint32_t(total));
    } else {
      where_strided_kernel<R, uint64_t><<<grid_for(total), kThreads, 0, stream()>>>(c, x, y, o, L, uint64_t(total));
    }
    check_launch("where");
  }
};

// out[idx] = cond[idx] ? a[idx] : b[idx] with broadcasting strides: raw elements, any dtype.
void where(const WhereArgs& a) {
  Layout<3> L{};
  const Ints* strides[3] = {&a.cond_strides, &a.a_strides, &a.b_strides};
  const int64_t total = simplify<3>(a.shape, strides, L);
  if (total <= 0) return;
  dispatch_raw(a.out.dtype, WhereAs{a, L, total});
}

// ---- gather / scatterAdd ------------------------------------------------------------------------
//
// Element (o, j, i) at linear position (o·n + j)·inner + i reads index[o·s0 + j·s1 + i·s2]. An
// index outside [0, srcDim) is never followed: gather writes 0, scatterAdd skips the element;
// the lowest such position is the fault (ref's loop order).

struct IndexGeom {
  const int32_t* index;
  int64_t s0, s1, s2;
  int64_t src_dim, n, inner;
};

// The fault of the lowest bad position, if any; resets the slot for the next faulting kernel.
__global__ void index_fault_kernel(FaultWord* f, int tag, IndexGeom g) {
  const unsigned long long p = g_first_bad;
  if (p == kNoBad) return;
  g_first_bad = kNoBad;
  const int64_t pos = int64_t(p);
  const int64_t i = pos % g.inner, row = pos / g.inner, j = row % g.n, o = row / g.n;
  record_fault(f, tag, FAULT_INDEX, double(g.index[o * g.s0 + j * g.s1 + i * g.s2]), g.src_dim);
}

void index_fault(const char* what, const IndexGeom& g) {
  index_fault_kernel<<<1, 1, 0, stream()>>>(fault_word(), fault_tag(), g);
  check_launch(what);
}

// out[o, j, i] = x[o, index(o, j, i), i]. R may be wider than the element (16 bytes when a row
// shares one index: s2 = 0), with inner counted in R units.
template <class R, class I>
__global__ void gather_kernel(const R* __restrict__ x, R* __restrict__ out, IndexGeom g, I total) {
  const I inner = I(g.inner), n = I(g.n);
  for (I pos = I(thread_index()); pos < total; pos += I(thread_count())) {
    const I row = pos / inner, i = pos - row * inner;
    const I o = row / n, j = row - o * n;
    const int64_t t = g.index[int64_t(o) * g.s0 + int64_t(j) * g.s1 + int64_t(i) * g.s2];
    if (uint64_t(t) < uint64_t(g.src_dim)) {
      out[pos] = x[(int64_t(o) * g.src_dim + t) * int64_t(inner) + int64_t(i)];
    } else {
      out[pos] = R{};
      atomicMin(&g_first_bad, (unsigned long long)pos);
    }
  }
}

template <class R>
void gather_launch(const void* x, void* out, IndexGeom g, int64_t outer) {
  const int64_t total = outer * g.n * g.inner;
  if (fits32(total))
    gather_kernel<R, uint32_t><<<grid_for(total), kThreads, 0, stream()>>>(static_cast<const R*>(x), static_cast<R*>(out), g, uint32_t(total));
  else
    gather_kernel<R, uint64_t><<<grid_for(total), kThreads, 0, stream()>>>(static_cast<const R*>(x), static_cast<R*>(out), g, uint64_t(total));
  check_launch("gather");
}

struct GatherAs {
  const void* x;
  void* out;
  IndexGeom g;
  int64_t outer;
  template <class R>
  void operator()() const {
    gather_launch<R>(x, out, g, outer);
  }
};

Fault gather(const GatherArgs& a) {
  if (a.outer <= 0 || a.n <= 0 || a.inner <= 0) return kNoFault;
  const IndexGeom g{static_cast<const int32_t*>(a.index.data), a.index_strides[0], a.index_strides[1], a.index_strides[2],
                    a.src_dim, a.n, a.inner};
  const size_t row_bytes = size_t(a.inner) * item_size(a.x.dtype);
  if (g.s2 == 0 && aligned16(a.x.data) && aligned16(a.out.data) && row_bytes % 16 == 0) {
    // one index per row (index_select, embedding): rows move as 16-byte words, and positions
    // count those words (the fault's index depends only on (o, j), the same in both)
    IndexGeom w = g;
    w.inner = int64_t(row_bytes / 16);
    gather_launch<uint4>(a.x.data, a.out.data, w, a.outer);
    index_fault("gather", w);
  } else {
    dispatch_raw(a.x.dtype, GatherAs{a.x.data, a.out.data, g, a.outer});
    index_fault("gather", g);
  }
  return kNoFault;
}

// dst += v atomically, rounding as ref's typed-array += on the dtype: f32/f64 native atomics
// (each addition rounded once, in whatever order the threads arrive); i32 wraps; bool bytes
// wrap modulo 256 (CAS on the aligned 32-bit word holding the byte: allocations are 256-byte
// aligned and padded, so the word is inside the allocation); halves add in f32 and round to
// nearest even (CAS on the 16 bits), as the CPU backend does.
__device__ inline void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ inline void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ inline void atomic_add(int32_t* p, int32_t v) { atomicAdd(reinterpret_cast<int*>(p), v); }
__device__ inline void atomic_add(uint8_t* p, uint8_t v) {
  unsigned int* w = reinterpret_cast<unsigned int*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t(3));
  const unsigned int shift = unsigned((reinterpret_cast<uintptr_t>(p) & 3u) * 8u);
  unsigned int old = *w, assumed;
  do {
    assumed = old;
    const unsigned int byte = ((assumed >> shift) + v) & 0xffu;
    old = atomicCAS(w, assumed, (assumed & ~(0xffu << shift)) | (byte << shift));
  } while (old != assumed);
}
template <class H>
__device__ inline void atomic_add_half(H* p, H v) {
  unsigned short* q = reinterpret_cast<unsigned short*>(p);
  const float add = value_of(v);
  unsigned short old = *q, assumed;
  do {
    assumed = old;
    const float sum = value_of(H{assumed}) + add;
    old = atomicCAS(q, assumed, encode_f<H>(sum).bits);
  } while (old != assumed);
}
__device__ inline void atomic_add(Bf16Bits* p, Bf16Bits v) { atomic_add_half(p, v); }
__device__ inline void atomic_add(F16Bits* p, F16Bits v) { atomic_add_half(p, v); }

// dst[o, index(o, j, i), i] += src[o, j, i]: one thread per source element.
template <class S, class I>
__global__ void scatter_add_kernel(S* __restrict__ dst, const S* __restrict__ src, IndexGeom g, I total) {
  const I inner = I(g.inner), n = I(g.n);
  for (I pos = I(thread_index()); pos < total; pos += I(thread_count())) {
    const I row = pos / inner, i = pos - row * inner;
    const I o = row / n, j = row - o * n;
    const int64_t t = g.index[int64_t(o) * g.s0 + int64_t(j) * g.s1 + int64_t(i) * g.s2];
    if (uint64_t(t) < uint64_t(g.src_dim))
      atomic_add(dst + (int64_t(o) * g.src_dim + t) * int64_t(inner) + int64_t(i), src[pos]);
    else
      atomicMin(&g_first_bad, (unsigned long long)pos);
  }
}

struct ScatterAs {
  const ScatterAddArgs& a;
  IndexGeom g;
  int64_t total;
  template <class S>
  void operator()() const {
    S* d = ptr<S>(a.dst);
    const S* s = ptr<S>(a.src);
    if (fits32(total))
      scatter_add_kernel<S, uint32_t><<<grid_for(total), kThreads, 0, stream()>>>(d, s, g, uint32_t(total));
    else
      scatter_add_kernel<S, uint64_t><<<grid_for(total), kThreads, 0, stream()>>>(d, s, g, uint64_t(total));
    check_launch("scatterAdd");
  }
};

Fault scatter_add(const ScatterAddArgs& a) {
  if (a.outer <= 0 || a.n <= 0 || a.inner <= 0) return kNoFault;
  const IndexGeom g{static_cast<const int32_t*>(a.index.data), a.index_strides[0], a.index_strides[1], a.index_strides[2],
                    a.src_dim, a.n, a.inner};
  const int64_t total = a.outer * a.n * a.inner;
  dispatch_dtype(a.dst.dtype, ScatterAs{a, g, total});
  index_fault("scatterAdd", g);
  return kNoFault;
}

// ---- check --------------------------------------------------------------------------------------

// The lowest i with cond[i] == 0, 16 bytes at a time (a word has a zero byte where
// (w − 0x01010101) & ~w & 0x80808080 is non-zero).
__global__ void check_kernel(const uint8_t* __restrict__ c, int64_t n, bool vec) {
  const int64_t t = thread_index(), stride = thread_count();
  const int64_t chunks = vec ? n / 16 : 0;
  for (int64_t ch = t; ch < chunks; ch += stride) {
    const uint4 q = reinterpret_cast<const uint4*>(c)[ch];
    const unsigned int w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
      if ((w[k] - 0x01010101u) & ~w[k] & 0x80808080u) {
        int b = 0;
        while ((w[k] >> (8 * b)) & 0xffu) b++;
        atomicMin(&g_first_bad, (unsigned long long)(ch * 16 + k * 4 + b));
        break;
      }
    }
  }
  for (int64_t i = chunks * 16 + t; i < n; i += stride)
    if (!c[i]) atomicMin(&g_first_bad, (unsigned long long)i);
}

// values[i] as the number ref's decode gives.
__device__ inline double number_at(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case F32: return static_cast<const float*>(p)[i];
    case F64: return static_cast<const double*>(p)[i];
    case I32: return static_cast<const int32_t*>(p)[i];
    case BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case BOOL: return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}

__global__ void check_fault_kernel(FaultWord* f, int tag, const void* values, DType dt, int64_t values_size) {
  const unsigned long long p = g_first_bad;
  if (p == kNoBad) return;
  g_first_bad = kNoBad;
  const int64_t i = int64_t(p);
  const double value = values != nullptr && i < values_size ? number_at(values, dt, i) : double(i);
  record_fault(f, tag, FAULT_CHECK, value, 0);
}

// Fault when an element of the bool cond is false; the value is values[i] of the first failing i
// (or i without values).
Fault check(const CheckArgs& a) {
  const int64_t n = a.cond.size;
  if (n <= 0) return kNoFault;
  const uint8_t* c = static_cast<const uint8_t*>(a.cond.data);
  check_kernel<<<grid_for((n + 15) / 16), kThreads, 0, stream()>>>(c, n, aligned16(c));
  check_launch("check");
  check_fault_kernel<<<1, 1, 0, stream()>>>(fault_word(), fault_tag(), a.values.data, a.values.dtype, a.values.size);
  check_launch("check");
  return kNoFault;
}

}  // namespace

void add_elementwise(Table& t) {
  // natively: f32, f64, i32, bool (as the CPU backend and ref); halves are sent through f32 by
  // the tensor layer, though every kernel here also takes them (computing in f32 or f64)
  t.computes[FAMILY_ELEMENTWISE] = dtype_bit(F32) | dtype_bit(F64) | dtype_bit(I32) | dtype_bit(BOOL);
  t.fill = fill;
  t.random = random;
  t.cast = cast;
  t.copy = copy;
  t.unary = unary;
  t.unary_grad = unary_grad;
  t.binary = binary;
  t.where = where;
  t.gather = gather;
  t.scatter_add = scatter_add;
  t.check = check;
}

}  // namespace cuda
}  // namespace kiln
