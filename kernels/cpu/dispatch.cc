// Pick the kernel table for this CPU at run time (cpuid), so one build runs on any x86-64.
#include <cpuid.h>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "kernels.h"

namespace kiln {

static const Table* choose() {
  const char* want = std::getenv("KILN_CPU_ISA");  // force a slower table, for tests and benches
  __builtin_cpu_init();
  bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni") &&
                __builtin_cpu_supports("fma");
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

// AMX-TILE and AMX-BF16 (cpuid leaf 7: edx bits 24 and 22), and Linux's permission to use the
// tile data state (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, once per process;
// without it the first tile instruction is a SIGILL).
static bool amx_usable() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  if (!(d & (1u << 24)) || !(d & (1u << 22))) return false;
#if defined(__linux__) && defined(SYS_arch_prctl)
  const long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

Bf16Matmul bf16_matmul() {
  static const bool amx = amx_usable();
  static const bool amd = [] {
    __builtin_cpu_init();
    return __builtin_cpu_is("amd");
  }();
  const char* want = std::getenv("KILN_CPU_BF16_MATMUL");
  if (want && std::strcmp(want, "amx") == 0 && amx) return BF16_MATMUL_AMX;
  if (want && std::strcmp(want, "dpbf16") == 0) return BF16_MATMUL_DPBF16;
  if (want && std::strcmp(want, "f32") == 0) return BF16_MATMUL_F32;
  return amx ? BF16_MATMUL_AMX : amd ? BF16_MATMUL_DPBF16 : BF16_MATMUL_F32;
}

const char* bf16_matmul_name(Bf16Matmul k) {
  switch (k) {
    case BF16_MATMUL_AMX: return "amx";
    case BF16_MATMUL_DPBF16: return "dpbf16";
    default: return "f32";
  }
}

}  // namespace kiln
