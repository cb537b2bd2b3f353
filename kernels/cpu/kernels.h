// kiln CPU kernels: the contract between the N-API bindings (native/) and the kernels.
//
// Every kernel mirrors one method of the TypeScript `Backend` interface
// (src/backend/backend.ts) and has the same semantics; the pure-TypeScript reference backend
// (src/backend/ref/) is the specification they are tested against. Arguments arrive validated:
// kernels never check shapes or index ranges and never throw for user errors.
//
// The files in kernels/cpu/isa/ are compiled once per instruction set, into the namespaces
// kiln::avx512, kiln::avx2 and kiln::base (KILN_ISA names the current one), each exporting a
// `const Table* table()`. kernels/cpu/dispatch.cc picks the best table the CPU supports.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kiln {

// Element types, with the codes the TypeScript side passes.
enum DType : int { F32 = 0, F64 = 1, I32 = 2, BF16 = 3, F16 = 4, BOOL = 5 };

inline size_t item_size(DType d) {
  switch (d) {
    case F64: return 8;
    case F32: case I32: return 4;
    case BF16: case F16: return 2;
    case BOOL: return 1;
  }
  return 1;
}

// Codes of src/backend/backend.ts UnaryOp, BinaryOp, ReduceOp, in this order.
enum UnaryOp : int {
  U_NEG, U_ABS, U_SIGN, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_SIN, U_COS, U_TANH, U_SIGMOID, U_RELU,
  U_GELU, U_GELU_TANH, U_SILU, U_ERF, U_FLOOR, U_CEIL, U_ROUND, U_ISFINITE
};
enum BinaryOp : int {
  B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAXIMUM, B_MINIMUM, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE, B_AND, B_OR
};
enum ReduceOp : int { R_SUM, R_MAX, R_MIN, R_ARGMAX, R_ARGMIN };
enum RandomDist : int { DIST_UNIFORM = 0, DIST_NORMAL = 1, DIST_RANDINT = 2 };
enum Activation : int { ACT_NONE = 0, ACT_RELU = 1, ACT_GELU = 2, ACT_GELU_TANH = 3, ACT_SILU = 4 };

constexpr int kMaxRank = 16;

// Strided view of an operand: rank ≤ kMaxRank, strides in elements.
struct Strides {
  int rank;
  int64_t shape[kMaxRank];
  int64_t a[kMaxRank];  // first operand (or src)
  int64_t b[kMaxRank];  // second operand (or dst)
  int64_t c[kMaxRank];  // third operand (where: the false branch)
};

// Backend.matmul: out[batch] = op(a[batch]) @ op(b[batch]) (+ bias) (then activation).
// a, b, out, bias share `dtype` (F32, F64 or BF16; BF16 accumulates in f32). out is contiguous
// [...batch, m, n]; a[batch] starts at Σ idx_d·a_batch_strides[d] (elements), same for b.
struct MatmulParams {
  const void* a;
  const void* b;
  void* out;
  const void* bias;  // n elements, or null
  DType dtype;
  int batch_rank;
  int64_t batch_shape[kMaxRank];
  int64_t a_batch_strides[kMaxRank];
  int64_t b_batch_strides[kMaxRank];
  int64_t m, n, k;
  bool trans_a, trans_b;
  Activation act;
};

// Backend.gather / scatterAdd: tensors viewed as [outer, dim, inner]; index(o, j, i) =
// index[o*s0 + j*s1 + i*s2] (i32, validated to [0, src_dim)).
struct IndexParams {
  const int32_t* index;
  int64_t s0, s1, s2;
  int64_t outer, src_dim, n, inner;
  DType dtype;
};

// Backend.attention: q [B, Tq, D], k [B, Tk, D], v [B, Tk, Dv], out [B, Tq, Dv], lse [B, Tq].
struct AttentionParams {
  const void* q;
  const void* k;
  const void* v;
  const void* mask;       // null, or [Bm, Tq, Tk] bool (mask_bool) or additive `dtype`
  bool mask_bool;
  int64_t mask_batch_stride;  // 0 (shared) or Tq*Tk
  int64_t batch, tq, tk, d, dv;
  double scale;
  bool causal;  // query i attends keys j <= i
  DType dtype;  // F32 or F64
};

// Backend.adamUpdate / lambUpdate: in place over n elements. param/grad of dtype (F32 or F64),
// m/v f32 for F32 params and f64 for F64 params.
struct OptimizerParams {
  void* param;
  const void* grad;
  void* m;
  void* v;
  int64_t n;
  DType dtype;
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;
  bool decoupled;        // Adam: AdamW decay (true) or L2 into the gradient
  bool bias_correction;  // LAMB: divide the moments by 1 − βᵗ
};

// One instruction set's kernels. Function pointers rather than virtuals: the table is plain data.
struct Table {
  const char* isa;
  void (*fill)(void* out, DType dt, int64_t n, double value);
  void (*random)(void* out, DType dt, int64_t n, RandomDist dist, double p0, double p1, uint64_t seed, uint64_t offset);
  void (*cast)(const void* x, DType xd, void* out, DType od, int64_t n);
  // dst[dst_off + Σ i·st.b] = src[src_off + Σ i·st.a] over st.shape (element size of dt)
  void (*copy)(const void* src, int64_t src_off, void* dst, int64_t dst_off, const Strides& st, DType dt);
  // x and out have dtype dt (out is BOOL for U_ISFINITE); dt is F32, F64 or I32
  void (*unary)(UnaryOp op, const void* x, void* out, DType dt, int64_t n);
  void (*unary_grad)(UnaryOp op, const void* x, const void* dy, void* out, DType dt, int64_t n);
  // out[idx] = op(a[Σ idx·st.a], b[Σ idx·st.b]) over st.shape, row-major; out is BOOL for
  // comparisons and and/or, else dt. dt is F32, F64, I32 or BOOL (and/or, comparisons).
  void (*binary)(BinaryOp op, const void* a, const void* b, void* out, const Strides& st, DType dt);
  // out[idx] = cond[Σ idx·st.a] ? x[Σ idx·st.b] : y[Σ idx·st.c]; cond BOOL; x, y, out of dt
  void (*where)(const uint8_t* cond, const void* x, const void* y, void* out, const Strides& st, DType dt);
  // x [outer, r, inner] → out [outer, inner]; out is I32 for arg* and for every op on BOOL input, else dt
  void (*reduce)(ReduceOp op, const void* x, DType dt, int64_t outer, int64_t r, int64_t inner, void* out);
  void (*matmul)(const MatmulParams& p);
  void (*gather)(const void* x, void* out, const IndexParams& p);
  void (*scatter_add)(void* dst, const void* src, const IndexParams& p);
  void (*softmax)(const void* x, void* out, DType dt, int64_t rows, int64_t cols, bool log);
  void (*layer_norm)(const void* x, const void* w, const void* b, void* out, void* mean, void* rstd,
                     DType dt, int64_t rows, int64_t cols, double eps, bool rms);
  void (*layer_norm_backward)(const void* dy, const void* x, const void* w, const void* mean, const void* rstd,
                              void* dx, void* dw, void* db, DType dt, int64_t rows, int64_t cols, bool rms);
  void (*cross_entropy)(const void* logits, const int32_t* targets, void* loss, void* lse, DType dt,
                        int64_t rows, int64_t classes, int64_t ignore_index, double smoothing);
  void (*cross_entropy_backward)(const void* logits, const int32_t* targets, const void* lse, const void* dloss,
                                 void* dlogits, DType dt, int64_t rows, int64_t classes, int64_t ignore_index,
                                 double smoothing);
  void (*attention)(const AttentionParams& p, void* out, void* lse);
  void (*attention_backward)(const AttentionParams& p, const void* out, const void* lse, const void* dout,
                             void* dq, void* dk, void* dv);
  void (*adam_update)(const OptimizerParams& p);
  double (*lamb_update)(const OptimizerParams& p);  // returns the trust ratio
};

// The one symbol each ISA's objects export (everything else in them is made local at link time).
#define KILN_EXPORT __attribute__((visibility("default")))
namespace avx512 { KILN_EXPORT const Table* table(); }
namespace avx2 { KILN_EXPORT const Table* table(); }
namespace base { KILN_EXPORT const Table* table(); }

// The table for this CPU (AVX-512 > AVX2 > base), or the one named by KILN_CPU_ISA.
const Table& kernels();

// The shared thread pool (native/threadpool.cc). parallel_for splits [0, n) into chunks of at
// least `grain` items and runs fn(begin, end) on the pool; it returns when all are done. Work
// too small for two chunks runs on the calling thread.
int num_threads();
void set_num_threads(int n);
void parallel_for(int64_t n, int64_t grain, void (*fn)(void* ctx, int64_t begin, int64_t end), void* ctx);

// parallel_for with a lambda.
template <typename F>
inline void parallel_for(int64_t n, int64_t grain, const F& f) {
  parallel_for(n, grain, [](void* ctx, int64_t b, int64_t e) { (*static_cast<const F*>(ctx))(b, e); },
               const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace kiln
