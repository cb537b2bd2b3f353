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
    add_fill_random(x);
    add_cast_copy(x);
    add_unary(x);
    add_binary(x);
    add_reduce(x);
    add_index(x);
    add_check(x);
    add_matmul(x);
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

