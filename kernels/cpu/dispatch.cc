// Pick the kernel table for this CPU at run time (cpuid), so one build runs on any x86-64.
#include <cstdlib>
#include <cstring>

#include "kernels.h"

namespace kiln {

static const Table* choose() {
  const char* want = std::getenv("KILN_CPU_ISA");  // force a slower table, for tests and benches
  __builtin_cpu_init();
  bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("fma");
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
              __builtin_cpu_supports("bmi2");
  if (want && std::strcmp(want, "base") == 0) return base::table();
  if (want && std::strcmp(want, "avx2") == 0 && avx2) return avx2::table();
  if (avx512) return avx512::table();
  if (avx2) return avx2::table();
  return base::table();
}

const Table& kernels() {
  static const Table* t = choose();
  return *t;
}

}  // namespace kiln
