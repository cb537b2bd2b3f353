// Backend.check: a deferred assertion. It faults when any element of the bool `cond` is 0; the
// fault's value is values[i] of the first failing i (read as a number, whatever its dtype: an
// index, or a float such as a non-finite norm), or i itself without `values`.
#include <cstdint>

#include "dtype_values.h"
#include "faults.h"
#include "isa.h"
#include "loops.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

// Element i of a storage as the number ref's decode gives.
double number_at(const Buf& b, int64_t i) {
  switch (b.dtype) {
    case F32: return to_d<F32>(static_cast<const St<F32>*>(b.data)[i]);
    case F64: return to_d<F64>(static_cast<const St<F64>*>(b.data)[i]);
    case I32: return to_d<I32>(static_cast<const St<I32>*>(b.data)[i]);
    case BF16: return to_d<BF16>(static_cast<const St<BF16>*>(b.data)[i]);
    case F16: return to_d<F16>(static_cast<const St<F16>*>(b.data)[i]);
    case BOOL: return to_d<BOOL>(static_cast<const St<BOOL>*>(b.data)[i]);
  }
  return 0;
}

Fault check(const CheckArgs& a) {
  const uint8_t* c = static_cast<const uint8_t*>(a.cond.data);
  FirstBad first;
  parallel_for(a.cond.size, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++)
      if (!c[i]) {
        first.note(i);
        return;
      }
  });
  if (!first.any()) return kNoFault;
  const int64_t i = first.pos();
  const double value = a.values.data && i < a.values.size ? number_at(a.values, i) : double(i);
  return Fault{FAULT_CHECK, value, 0};
}

}  // namespace

void add_check(Table& t) { t.check = check; }

}  // namespace KILN_ISA
}  // namespace kiln
