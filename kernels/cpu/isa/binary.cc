// Backend.binary (broadcasting arithmetic, comparisons and logic) and Backend.where, over
// strided operands. Semantics and the way the loop kernels are written: loops.h.
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "bits.h"
#include "dtype_values.h"
#include "isa.h"
#include "loops.h"
#include "strided.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

// ---- binary -------------------------------------------------------------------------------------

// Math.pow: as C pow, except that a NaN exponent gives NaN even for base 1, and (±1)^±∞ is NaN.
inline double js_pow(double a, double b) {
  if (b != b) return b;
  if (std::fabs(a) == 1 && std::isinf(b)) return std::numeric_limits<double>::quiet_NaN();
  return std::pow(a, b);
}

// JS truthiness of a number: non-zero and not NaN.
template <class T> inline bool truthy(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != 0 && v == v;
  else return v != 0;
}

constexpr bool is_logical(int op) { return op >= B_EQ; }  // comparisons, and, or: bool out

// One binary op on values of type T (float, double, int32 or bool bytes), as kernels.ts's
// binaryFn: floats compute in their own precision (for +, −, ·, / that is the f64 result
// rounded once); i32 wraps like int32 arithmetic (Math.imul; pow by squaring, negative
// exponent → 0; division truncates and x/0 = 0).
template <int OP, class T> struct Bin {
  using Out = std::conditional_t<is_logical(OP), uint8_t, T>;
  static inline Out f(T a, T b) {
    if constexpr (OP == B_EQ) return a == b;
    else if constexpr (OP == B_NE) return a != b;
    else if constexpr (OP == B_LT) return a < b;
    else if constexpr (OP == B_LE) return a <= b;
    else if constexpr (OP == B_GT) return a > b;
    else if constexpr (OP == B_GE) return a >= b;
    else if constexpr (OP == B_AND) return truthy(a) && truthy(b);
    else if constexpr (OP == B_OR) return truthy(a) || truthy(b);
    else if constexpr (std::is_floating_point_v<T>) {
      if constexpr (OP == B_ADD) return a + b;
      else if constexpr (OP == B_SUB) return a - b;
      else if constexpr (OP == B_MUL) return a * b;
      else if constexpr (OP == B_DIV) return a / b;
      else if constexpr (OP == B_POW) return T(js_pow(double(a), double(b)));
      // NaN propagates; otherwise the first argument unless the second is strictly larger (smaller)
      // a > b ? a : b, and NaN if either is (a's when a is NaN, else b's)
      else if constexpr (OP == B_MAXIMUM) return sel(a > b || a != a, a, b);
      else return sel(a < b || a != a, a, b);  // B_MINIMUM
    } else {
      static_assert(std::is_same_v<T, int32_t>, "integer arithmetic is i32");
      uint32_t ua = uint32_t(a), ub = uint32_t(b);
      if constexpr (OP == B_ADD) return int32_t(ua + ub);
      else if constexpr (OP == B_SUB) return int32_t(ua - ub);
      else if constexpr (OP == B_MUL) return int32_t(ua * ub);
      else if constexpr (OP == B_DIV) return b == 0 ? 0 : int32_t(uint32_t(int64_t(a) / int64_t(b)));
      else if constexpr (OP == B_POW) {
        if (b < 0) return 0;
        uint32_t r = 1, base = ua, e = ub;
        while (e > 0) {
          if (e & 1) r *= base;
          base *= base;
          e >>= 1;
        }
        return int32_t(r);
      } else if constexpr (OP == B_MAXIMUM) return a > b ? a : b;
      else return a < b ? a : b;  // B_MINIMUM
    }
  }
};

// x·x for pow with a broadcast exponent of 2 (pow(x, 2) is exactly x·x in every dtype)
template <class T> struct Square {
  using Out = T;
  static inline T f(T a, T) {
    if constexpr (std::is_same_v<T, int32_t>) return int32_t(uint32_t(a) * uint32_t(a));
    else return a * a;
  }
};

// The operands of a binary op: shape and the strides of a and b (out is contiguous).
struct Operands {
  const Ints& shape;
  const Ints& a;
  const Ints& b;
};

// The plan of out (contiguous), a and b over the shape.
Plan plan_of(const Operands& st) {
  const int rank = int(st.shape.rank);
  int64_t ost[kMaxRank];
  contiguous_strides(rank, st.shape.v, ost);
  const int64_t* strides[3] = {ost, st.a.v, st.b.v};
  return make_plan(rank, st.shape.v, 3, strides);
}

// out[idx] = Op::f(a[Σ idx·st.a], b[Σ idx·st.b]) over st.shape, out contiguous.
template <class Op, class T> void binary_run(const T* a, const T* b, typename Op::Out* out, const Operands& st, int64_t grain) {
  using O = typename Op::Out;
  Plan p = plan_of(st);
  if (p.total <= 0) return;
  const int64_t sa = p.st[1][p.rank - 1], sb = p.st[2][p.rank - 1];
  parallel_for(p.total, grain, [&](int64_t b0, int64_t e0) {
    for_runs(p, b0, e0, [&](const int64_t* off, int64_t len) {
      O* __restrict o = out + off[0];
      const T* __restrict pa = a + off[1];
      const T* __restrict pb = b + off[2];
      if (sa == 1 && sb == 1) {
        for (int64_t j = 0; j < len; j++) o[j] = Op::f(pa[j], pb[j]);
      } else if (sa == 1 && sb == 0) {
        const T bv = *pb;
        for (int64_t j = 0; j < len; j++) o[j] = Op::f(pa[j], bv);
      } else if (sa == 0 && sb == 1) {
        const T av = *pa;
        for (int64_t j = 0; j < len; j++) o[j] = Op::f(av, pb[j]);
      } else {
        for (int64_t j = 0; j < len; j++) o[j] = Op::f(pa[j * sa], pb[j * sb]);
      }
    });
  });
}

// True when every stride is 0: the operand is one element.
bool all_zero(const int64_t* s, int rank) {
  for (int d = 0; d < rank; d++)
    if (s[d] != 0) return false;
  return true;
}

template <int OP, class T> void binary_typed(const void* a, const void* b, void* out, const Operands& st) {
  const T* pa = static_cast<const T*>(a);
  const T* pb = static_cast<const T*>(b);
  auto* o = static_cast<typename Bin<OP, T>::Out*>(out);
  if constexpr (OP == B_POW) {
    int64_t total = 1;
    for (int d = 0; d < st.shape.rank; d++) total *= st.shape[d];
    if (total > 0 && all_zero(st.b.v, int(st.shape.rank)) && double(*pb) == 2.0) {
      binary_run<Square<T>>(pa, pb, o, st, kGrain);
      return;
    }
    binary_run<Bin<OP, T>>(pa, pb, o, st, std::is_floating_point_v<T> ? kGrainHeavy : kGrain);
  } else {
    binary_run<Bin<OP, T>>(pa, pb, o, st, kGrain);
  }
}

// Ref's semantics for a dtype with no typed path (arithmetic on bool bytes, halves): operands
// read as numbers, the JS float op, the result stored as the typed array would (ToUint8 for
// bool storage, nearest-even for halves).
template <DType D> void binary_any(BinaryOp op, const void* a, const void* b, void* out, const Operands& st) {
  using T = St<D>;
  const T* pa = static_cast<const T*>(a);
  const T* pb = static_cast<const T*>(b);
  Plan p = plan_of(st);
  if (p.total <= 0) return;
  const int64_t sa = p.st[1][p.rank - 1], sb = p.st[2][p.rank - 1];
  parallel_for(p.total, kGrainHeavy, [&](int64_t b0, int64_t e0) {
    for_runs(p, b0, e0, [&](const int64_t* off, int64_t len) {
      for (int64_t j = 0; j < len; j++) {
        double x = to_d<D>(pa[off[1] + j * sa]), y = to_d<D>(pb[off[2] + j * sb]);
        double v = 0;
        switch (op) {
          case B_ADD: v = x + y; break;
          case B_SUB: v = x - y; break;
          case B_MUL: v = x * y; break;
          case B_DIV: v = x / y; break;
          case B_POW: v = js_pow(x, y); break;
          case B_MAXIMUM: v = x != x || y != y ? std::numeric_limits<double>::quiet_NaN() : x > y ? x : y; break;
          case B_MINIMUM: v = x != x || y != y ? std::numeric_limits<double>::quiet_NaN() : x < y ? x : y; break;
          case B_EQ: v = x == y; break;
          case B_NE: v = x != y; break;
          case B_LT: v = x < y; break;
          case B_LE: v = x <= y; break;
          case B_GT: v = x > y; break;
          case B_GE: v = x >= y; break;
          case B_AND: v = truthy(x) && truthy(y); break;
          case B_OR: v = truthy(x) || truthy(y); break;
        }
        if (is_logical(op)) static_cast<uint8_t*>(out)[off[0] + j] = v != 0;
        else if constexpr (D == BOOL) static_cast<uint8_t*>(out)[off[0] + j] = uint8_t(uint32_t(to_int32(v)));
        else static_cast<T*>(out)[off[0] + j] = from_d<D>(v);
      }
    });
  });
}

template <class T> void binary_dispatch(BinaryOp op, const void* a, const void* b, void* out, const Operands& st) {
  switch (op) {
#define KILN_B(OP) \
  case OP: binary_typed<OP, T>(a, b, out, st); break;
    KILN_B(B_ADD) KILN_B(B_SUB) KILN_B(B_MUL) KILN_B(B_DIV) KILN_B(B_POW) KILN_B(B_MAXIMUM) KILN_B(B_MINIMUM)
    KILN_B(B_EQ) KILN_B(B_NE) KILN_B(B_LT) KILN_B(B_LE) KILN_B(B_GT) KILN_B(B_GE) KILN_B(B_AND) KILN_B(B_OR)
#undef KILN_B
  }
}

// a and b share a dtype; out has it too, or bool for comparisons and and/or
void binary(const BinaryArgs& args) {
  const BinaryOp op = args.op;
  const void* a = args.a.data;
  const void* b = args.b.data;
  void* out = args.out.data;
  const Operands st{args.shape, args.a_strides, args.b_strides};
  switch (args.a.dtype) {
    case F32: binary_dispatch<float>(op, a, b, out, st); break;
    case F64: binary_dispatch<double>(op, a, b, out, st); break;
    case I32: binary_dispatch<int32_t>(op, a, b, out, st); break;
    case BOOL:
      // comparisons and logic on the bytes; arithmetic on bools (the TS layer sends it as i32)
      // falls back to ref's number semantics
      switch (op) {
#define KILN_B(OP) \
  case OP: binary_run<Bin<OP, uint8_t>>(static_cast<const uint8_t*>(a), static_cast<const uint8_t*>(b), static_cast<uint8_t*>(out), st, kGrain); break;
        KILN_B(B_EQ) KILN_B(B_NE) KILN_B(B_LT) KILN_B(B_LE) KILN_B(B_GT) KILN_B(B_GE) KILN_B(B_AND) KILN_B(B_OR)
#undef KILN_B
        default: binary_any<BOOL>(op, a, b, out, st); break;
      }
      break;
    case BF16: binary_any<BF16>(op, a, b, out, st); break;
    case F16: binary_any<F16>(op, a, b, out, st); break;
  }
}

// ---- where --------------------------------------------------------------------------------------

template <class T> void where_typed(const uint8_t* cond, const T* x, const T* y, T* out, const WhereArgs& a) {
  const int rank = int(a.shape.rank);
  int64_t ost[kMaxRank];
  contiguous_strides(rank, a.shape.v, ost);
  const int64_t* strides[4] = {ost, a.cond_strides.v, a.a_strides.v, a.b_strides.v};
  Plan p = make_plan(rank, a.shape.v, 4, strides);
  if (p.total <= 0) return;
  const int R = p.rank - 1;
  const int64_t sc = p.st[1][R], sx = p.st[2][R], sy = p.st[3][R];
  parallel_for(p.total, kGrain, [&](int64_t b0, int64_t e0) {
    for_runs(p, b0, e0, [&](const int64_t* off, int64_t len) {
      T* __restrict o = out + off[0];
      const uint8_t* __restrict c = cond + off[1];
      const T* __restrict px = x + off[2];
      const T* __restrict py = y + off[3];
      if (sc == 1 && sx == 1 && sy == 1) {
        for (int64_t j = 0; j < len; j++) o[j] = c[j] ? px[j] : py[j];
      } else if (sc == 1 && sx == 1 && sy == 0) {
        const T yv = *py;
        for (int64_t j = 0; j < len; j++) o[j] = c[j] ? px[j] : yv;
      } else if (sc == 1 && sx == 0 && sy == 1) {
        const T xv = *px;
        for (int64_t j = 0; j < len; j++) o[j] = c[j] ? xv : py[j];
      } else if (sc == 1 && sx == 0 && sy == 0) {
        const T xv = *px, yv = *py;
        for (int64_t j = 0; j < len; j++) o[j] = c[j] ? xv : yv;
      } else if (sc == 0) {
        // one condition for the whole run: a copy of one side
        const T* src = *c ? px : py;
        const int64_t s = *c ? sx : sy;
        for (int64_t j = 0; j < len; j++) o[j] = src[j * s];
      } else {
        for (int64_t j = 0; j < len; j++) o[j] = c[j * sc] ? px[j * sx] : py[j * sy];
      }
    });
  });
}

// out[idx] = cond ? a : b over broadcast strides: raw elements, any dtype.
template <class T> void where_as(const WhereArgs& a) {
  where_typed(static_cast<const uint8_t*>(a.cond.data), static_cast<const T*>(a.a.data), static_cast<const T*>(a.b.data),
              static_cast<T*>(a.out.data), a);
}
void where(const WhereArgs& a) { KILN_DISPATCH_RAW(a.out.dtype, where_as, a) }

}  // namespace

void add_binary(Table& t) {
  t.binary = binary;
  t.where = where;
}

}  // namespace KILN_ISA
}  // namespace kiln
