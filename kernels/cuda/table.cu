// Assemble the CUDA kernel table from its families (one file per Backend kernel family).
#include "common.cuh"

namespace kiln {
namespace cuda {

const Table& table() {
  static const Table t = [] {
    Table x{};
    x.isa = "cuda";
    // what every family computes in unless its add_* says more (Backend.computes; the tensor
    // layer runs other dtypes through f32)
    for (uint32_t& c : x.computes) c = dtype_bit(F32) | dtype_bit(F64);
    add_elementwise(x);
    add_reduce(x);
    add_matmul(x);
    add_softmax(x);
    add_norm(x);
    add_cross_entropy(x);
    add_attention(x);
    add_optim(x);
    return x;
  }();
  return t;
}

}  // namespace cuda
}  // namespace kiln
