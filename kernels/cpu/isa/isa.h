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

// Each file adds its kernels to the table (one file per Backend kernel family; table.cc calls
// these in turn).
void add_fill_random(Table& t);
void add_cast_copy(Table& t);
void add_unary(Table& t);
void add_binary(Table& t);
void add_reduce(Table& t);
void add_index(Table& t);
void add_check(Table& t);
void add_matmul(Table& t);
void add_quantized(Table& t);
void add_softmax(Table& t);
void add_norm(Table& t);
void add_cross_entropy(Table& t);
void add_attention(Table& t);
void add_optim(Table& t);

// The fill kernel (fill_random.cc), which reduce.cc also calls for empty sums.
void fill(const FillArgs& a);

}  // namespace KILN_ISA
}  // namespace kiln
