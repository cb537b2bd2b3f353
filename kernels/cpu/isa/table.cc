// Assemble this ISA's kernel table from its families.
#include "isa.h"

#define KILN_STR2(x) #x
#define KILN_STR(x) KILN_STR2(x)

namespace kiln {
namespace KILN_ISA {

const Table* table() {
  static const Table t = [] {
    Table x{};
    x.isa = KILN_STR(KILN_ISA);
    // what every family computes in unless its add_* says more (Backend.computes; the tensor
    // layer runs other dtypes through f32)
    for (uint32_t& c : x.computes) c = dtype_bit(F32) | dtype_bit(F64);
    x.computes[FAMILY_ELEMENTWISE] |= dtype_bit(I32) | dtype_bit(BOOL);
    x.computes[FAMILY_REDUCE] |= dtype_bit(I32) | dtype_bit(BOOL);
    add_fill_random(x);
    add_cast_copy(x);
    add_unary(x);
    add_binary(x);
    add_reduce(x);
    add_index(x);
    add_check(x);
    add_matmul(x);
    add_quantized(x);
    add_softmax(x);
    add_norm(x);
    add_cross_entropy(x);
    add_attention(x);
    add_optim(x);
    return x;
  }();
  return &t;
}

}  // namespace KILN_ISA
}  // namespace kiln

