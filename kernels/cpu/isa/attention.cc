// Backend.attention and its backward: not in this build yet. The flash-style kernels are being
// rewritten for the strided, masked, dropout-capable AttentionArgs (kernels/ops.mjs); until they
// land, the table leaves both entries null and their bindings throw "kernel 'attention' is not
// in this build".
#include "isa.h"

namespace kiln {
namespace KILN_ISA {

void add_attention(Table& t) {
  t.attention = nullptr;
  t.attention_backward = nullptr;
}

}  // namespace KILN_ISA
}  // namespace kiln
