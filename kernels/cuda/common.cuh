// What every CUDA kernel file shares: the compute stream, launch checking, device-side faults,
// dtype loads and stores (bf16/f16 rounded to nearest even as src/backend/dtype.ts), Philox, and
// the launch shape of flat kernels.
//
// The CUDA backend's kernels fill the same `Table` as the CPU ones (kernels/ops.gen.h): each
// entry is a host function taking the kernel's Args struct, whose Bufs hold DEVICE pointers (one
// allocation per storage, element count and dtype as on the CPU). It validates nothing the
// TypeScript layer and the binding already checked, launches on `stream()` and returns at once.
// A kernel that finds bad data records a device-side fault (`record_fault`) and returns a Fault
// of FAULT_NONE on the host; the backend reads the fault word at its next read or sync, as the
// Backend contract says. One file per kernel family (mirroring kernels/cpu/isa), each with
// `void add_<family>(Table& t)`, called by table.cu.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../cpu/philox.h"
#include "../ops.gen.h"

namespace kiln {
namespace cuda {

// ---- errors ----------------------------------------------------------------------------------

// A CUDA runtime error as a C++ exception; the binding turns it into a JS Error naming the op.
struct Error : std::runtime_error {
  cudaError_t code;
  Error(cudaError_t c, const std::string& what) : std::runtime_error(what), code(c) {}
};

[[noreturn]] inline void fail(cudaError_t e, const char* what) {
  throw Error(e, std::string("cuda: ") + what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

// Check a runtime call: KILN_CUDA(cudaMemsetAsync(...), "fill").
#define KILN_CUDA(call, what)                         \
  do {                                                \
    cudaError_t kiln_e_ = (call);                     \
    if (kiln_e_ != cudaSuccess) ::kiln::cuda::fail(kiln_e_, what); \
  } while (0)

// Check the launch just made (configuration errors surface here, not at the next sync).
inline void check_launch(const char* kernel) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) fail(e, kernel);
}

// ---- the runtime the kernels use (native/cuda/runtime.cu) -------------------------------------

// The compute stream of the current device: every kernel and copy goes on it, in call order.
cudaStream_t stream();
// Device properties of the current device (compute capability, SM count, shared memory).
const cudaDeviceProp& props();
// Device scratch of at least `bytes`, valid for the kernels of the current Table call (stream
// ordered: the runtime reuses it only after work queued later; never free it).
void* scratch(size_t bytes);
// Whether f32 matmuls may use TF32 tensor cores (as torch.backends.cuda.matmul.allow_tf32).
bool allow_tf32();

// ---- device-side faults ----------------------------------------------------------------------

// The fault word in device memory: [taken, code, value (as double bits: 2 words), limit (2 words),
// tag]. The first fault wins (atomicCAS on `taken`); the runtime reads and clears it at a read
// or sync and maps the tag back to the public op (the binding sets the tag per call).
struct FaultWord {
  unsigned int taken;
  int code;
  double value;
  long long limit;
  int tag;
};
// The device address of the fault word, and the tag of the current call (set by the binding
// before a faulting kernel runs; passed to kernels by value).
FaultWord* fault_word();
int fault_tag();

__device__ inline void record_fault(FaultWord* f, int tag, FaultCode code, double value, long long limit) {
  if (atomicCAS(&f->taken, 0u, 1u) == 0u) {
    f->code = int(code);
    f->value = value;
    f->limit = limit;
    f->tag = tag;
    __threadfence();
  }
}

// ---- dtypes ----------------------------------------------------------------------------------

// Numbers as JavaScript stores them (dtype.ts encode / a typed-array store), host and device.
// bf16 and f16 are stored as their 16-bit patterns (uint16_t); bool as one byte (0 or 1).

__host__ __device__ inline uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
__host__ __device__ inline float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
__host__ __device__ inline uint64_t f64_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}
__host__ __device__ inline bool finite_f(float x) { return (f32_bits(x) & 0x7f800000u) != 0x7f800000u; }
__host__ __device__ inline bool finite_d(double x) { return ((f64_bits(x) >> 52) & 0x7ffu) != 0x7ffu; }

// ECMAScript ToInt32 (an Int32Array store): truncate, wrap modulo 2^32, NaN/±∞ → 0.
__host__ __device__ inline int32_t to_int32(double v) {
  if (v > -2147483649.0 && v < 2147483648.0) return int32_t(v);  // false for NaN
  if (!finite_d(v)) return 0;
  const double t = trunc(v);
  const double m = t - floor(t * (1.0 / 4294967296.0)) * 4294967296.0;  // in [0, 2^32), exact
  return int32_t(uint32_t(m));
}

// bf16 / f16 bits → f32 (exact).
__device__ inline float bf16_to_f32(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }
__device__ inline float f16_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }

// f32 → bf16 bits, nearest even; every NaN → 0x7fc0 (dtype.ts bf16Bits).
__host__ __device__ inline uint16_t bf16_bits(float f) {
  const uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
// f32 → f16 bits, nearest even, subnormals, overflow to ±∞; every NaN → 0x7e00 (dtype.ts
// f16Bits; kernels/cpu/isa/dtype_values.h's f16_bits, written with branches). Not
// __float2half_rn: it gives NaN as 0x7fff.
__host__ __device__ inline uint16_t f16_bits(float f) {
  const uint32_t u = f32_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7e00;
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // ≥ 65520 rounds to ∞
  if (a < 0x38800000u) {
    // below 2^-14: units of 2^-24; adding 0.5 (ulp 2^-24) rounds to nearest even at that unit
    return uint16_t(sign | (f32_bits(bits_f32(a) + 0.5f) - 0x3f000000u));
  }
  return uint16_t(sign | ((a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u) >> 13));
}

// f64 → f32 rounded to odd: rounding that to a half (≥ 2 bits shorter) to nearest even equals
// rounding the double directly, as dtype.ts does (no double rounding).
__host__ __device__ inline float round_to_odd_f32(double d) {
  float f = float(d);
  if (double(f) != d && f == f) {
    uint32_t u = f32_bits(f);
    if (fabs(double(f)) > fabs(d)) u -= 1;  // rounded away from zero: step back
    f = bits_f32(u | 1u);
  }
  return f;
}

// Element i of a Buf as the compute type T (float for f32/bf16/f16, double for f64, int for i32
// and bool), and a store rounding back. Kernels switch on Buf.dtype once, on the host, and launch
// a template instance per storage type.
template <typename S>
struct Storage;
template <> struct Storage<float> { using T = float; __device__ static T load(const float* p, int64_t i) { return p[i]; } __device__ static void store(float* p, int64_t i, T v) { p[i] = v; } };
template <> struct Storage<double> { using T = double; __device__ static T load(const double* p, int64_t i) { return p[i]; } __device__ static void store(double* p, int64_t i, T v) { p[i] = v; } };
template <> struct Storage<int32_t> { using T = int; __device__ static T load(const int32_t* p, int64_t i) { return p[i]; } __device__ static void store(int32_t* p, int64_t i, T v) { p[i] = v; } };
template <> struct Storage<uint8_t> { using T = int; __device__ static T load(const uint8_t* p, int64_t i) { return p[i]; } __device__ static void store(uint8_t* p, int64_t i, T v) { p[i] = v != 0; } };
// halves: the two 16-bit types need distinct C++ types for overloads
struct Bf16Bits { uint16_t bits; };
struct F16Bits { uint16_t bits; };
template <> struct Storage<Bf16Bits> { using T = float; __device__ static T load(const Bf16Bits* p, int64_t i) { return bf16_to_f32(p[i].bits); } __device__ static void store(Bf16Bits* p, int64_t i, T v) { p[i].bits = bf16_bits(v); } };
template <> struct Storage<F16Bits> { using T = float; __device__ static T load(const F16Bits* p, int64_t i) { return f16_to_f32(p[i].bits); } __device__ static void store(F16Bits* p, int64_t i, T v) { p[i].bits = f16_bits(v); } };

// A number stored in storage type S (dtype.ts encode / a typed-array store), from a double:
// halves through an f32 rounded to odd.
template <class S>
__host__ __device__ inline S encode_d(double v) {
  if constexpr (std::is_same_v<S, float>) return float(v);
  else if constexpr (std::is_same_v<S, double>) return v;
  else if constexpr (std::is_same_v<S, int32_t>) return to_int32(v);
  else if constexpr (std::is_same_v<S, uint8_t>) return uint8_t(v != 0 ? 1 : 0);
  else if constexpr (std::is_same_v<S, Bf16Bits>) return Bf16Bits{bf16_bits(round_to_odd_f32(v))};
  else return F16Bits{f16_bits(round_to_odd_f32(v))};
}
// The same from a float (no double rounding possible).
template <class S>
__host__ __device__ inline S encode_f(float v) {
  if constexpr (std::is_same_v<S, float>) return v;
  else if constexpr (std::is_same_v<S, Bf16Bits>) return Bf16Bits{bf16_bits(v)};
  else if constexpr (std::is_same_v<S, F16Bits>) return F16Bits{f16_bits(v)};
  else return encode_d<S>(double(v));
}
// The number a stored element is, in its compute type (float for f32 and halves, double, int).
template <class S>
__device__ inline typename Storage<S>::T value_of(S s) {
  return Storage<S>::load(&s, 0);
}

// Call f.template operator()<S>() with S the storage type of `dt` (host side).
template <typename F>
void dispatch_dtype(DType dt, F&& f) {
  switch (dt) {
    case F32: f.template operator()<float>(); break;
    case F64: f.template operator()<double>(); break;
    case I32: f.template operator()<int32_t>(); break;
    case BF16: f.template operator()<Bf16Bits>(); break;
    case F16: f.template operator()<F16Bits>(); break;
    case BOOL: f.template operator()<uint8_t>(); break;
    default: throw std::runtime_error("cuda: unknown dtype code " + std::to_string(int(dt)));
  }
}

template <typename S>
S* ptr(const Buf& b) { return static_cast<S*>(b.data); }

// What a kernel returns when it found nothing on the host (device faults are read later).
constexpr Fault kNoFault{FAULT_NONE, 0.0, 0};

// Kernels that compute only f32 and f64 natively (the tensor layer casts the others to f32).
[[noreturn]] inline void not_native(const char* op, DType dt) {
  throw std::runtime_error(std::string("cuda ") + op + ": dtype " + dtype_name(dt) + " is not computed natively (the tensor layer casts it to f32)");
}

// ---- vector loads and stores -------------------------------------------------------------------

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Elements of S per 16 bytes, and V elements of S moved as one aligned access (LDG/STG.128 when
// V·sizeof(S) ≥ 16): Pack<S> is 16 bytes of S, Pack<S, V> narrower where V·sizeof(S) < 16.
template <class S> constexpr int kVec = sizeof(S) >= 16 ? 1 : int(16 / sizeof(S));
template <class S, int V = kVec<S>>
struct alignas(sizeof(S) * V >= 16 ? 16 : sizeof(S) * V) Pack {
  static constexpr int N = V;
  S v[V];
};

// ---- Philox4x32-10: kernels/cpu/philox.h's philox4x32_10 (host and device), bit for bit as -----
// src/backend/philox.ts

// Word e of the stream (seed, offset): word e mod 4 of the block at counter offset + ⌊e/4⌋.
// The word is picked by selects, not by a dynamic index into the four (which would put them in
// local memory: a stack frame per thread).
__device__ inline uint32_t philox_word(uint64_t seed, uint64_t offset, uint64_t e) {
  const uint64_t c = offset + (e >> 2);
  uint32_t w[4];
  philox4x32_10(uint32_t(c), uint32_t(c >> 32), 0, 0, philox_key(seed), w);
  const unsigned k = unsigned(e & 3);
  return k == 0 ? w[0] : k == 1 ? w[1] : k == 2 ? w[2] : w[3];
}

// ---- launch shapes ---------------------------------------------------------------------------

constexpr int kThreads = 256;
// Blocks for a grid-stride loop over n items: enough to fill the GPU, at most n / kThreads.
inline unsigned int grid_for(int64_t n) {
  const int64_t want = (n + kThreads - 1) / kThreads;
  const int64_t cap = int64_t(props().multiProcessorCount) * 32;
  return unsigned(want < 1 ? 1 : want < cap ? want : cap);
}

// Strides and shape in kernel arguments (by value: up to kMaxRank).
struct DevInts {
  int rank;
  long long v[kMaxRank];
};
inline DevInts dev(const Ints& x) {
  DevInts d{};
  d.rank = int(x.rank);
  for (int i = 0; i < int(x.rank); i++) d.v[i] = x.v[i];
  return d;
}

// The table's assembly (table.cu) and each family's part of it.
void add_elementwise(Table& t);  // fill, random, cast, copy, unary, unaryGrad, binary, where, gather, scatterAdd, check
void add_reduce(Table& t);
void add_matmul(Table& t);       // matmul, matmulInt8
void add_softmax(Table& t);
void add_norm(Table& t);
void add_cross_entropy(Table& t);
void add_attention(Table& t);
void add_optim(Table& t);
const Table& table();

}  // namespace cuda
}  // namespace kiln
