// Issue rate of vdpbf16ps against vfmadd (zmm) on this core: 24 independent accumulators each,
// so both are throughput-bound. Why kernels/cpu/isa/matmul.cc picks its bf16 kernel by vendor.
//
//     g++ -O2 -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mfma bench/native/dpbf16_rate.cc -o /tmp/dpbf16_rate && /tmp/dpbf16_rate
//
// GFLOP/s counts 2 flops per f32 lane for an FMA and 4 (two products, two adds) for vdpbf16ps.
#include <immintrin.h>

#include <chrono>
#include <cstdio>

int main() {
  const long iters = 20000000;
  __m512 c[24];
  for (auto& x : c) x = _mm512_setzero_ps();
  __m512 a = _mm512_set1_ps(1e-3f), b = _mm512_set1_ps(1.0001f);
  __m512bh ab = (__m512bh)_mm512_set1_epi32(0x3f803f80), bb = (__m512bh)_mm512_set1_epi32(0x3a803a80);
  for (int rep = 0; rep < 2; rep++) {
    auto t0 = std::chrono::steady_clock::now();
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
      for (int i = 0; i < 24; i++) c[i] = _mm512_fmadd_ps(a, b, c[i]);
      __asm__ volatile("" : "+v"(a));  // keep the loop from being folded
    }
    auto t1 = std::chrono::steady_clock::now();
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
      for (int i = 0; i < 24; i++) c[i] = _mm512_dpbf16_ps(c[i], ab, bb);
      __asm__ volatile("" : "+v"(ab));
    }
    auto t2 = std::chrono::steady_clock::now();
    const double s1 = std::chrono::duration<double>(t1 - t0).count(), s2 = std::chrono::duration<double>(t2 - t1).count();
    const double n = double(iters) * 24;
    std::printf("vfmadd231ps zmm: %.2f G/s (%.0f GFLOP/s); vdpbf16ps zmm: %.2f G/s (%.0f GFLOP/s)\n", n / s1 / 1e9,
                n * 32 / s1 / 1e9, n / s2 / 1e9, n * 64 / s2 / 1e9);
  }
  float sum = 0;
  for (auto& x : c) sum += _mm512_reduce_add_ps(x);
  std::printf("(checksum %g)\n", sum);
}
