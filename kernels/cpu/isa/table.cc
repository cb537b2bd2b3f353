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
    fill_elementwise(x);
    fill_matmul(x);
    fill_nn(x);
    fill_optim(x);
    return x;
  }();
  return &t;
}

}  // namespace KILN_ISA
}  // namespace kiln

