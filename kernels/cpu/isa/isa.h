// Declarations of one instruction set's kernels. This header is included by every file in
// kernels/cpu/isa/, which CMake compiles once per ISA with KILN_ISA defined as avx512, avx2 or
// base (and KILN_ISA_avx512 etc. set to 1), so each copy lands in its own namespace.
#pragma once
#include "../common.h"
#include "../kernels.h"

#ifndef KILN_ISA
#error "KILN_ISA must name the instruction set (avx512, avx2, base)"
#endif

namespace kiln {
namespace KILN_ISA {

// Each family fills its entries of the table (elementwise.cc, matmul.cc, nn.cc).
void fill_elementwise(Table& t);
void fill_matmul(Table& t);
void fill_nn(Table& t);
void fill_optim(Table& t);

}  // namespace KILN_ISA
}  // namespace kiln
