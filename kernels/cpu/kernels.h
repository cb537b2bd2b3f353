// kiln CPU kernels: the contract between the N-API bindings (native/) and the kernels.
//
// The kernels, their argument structs and the Table of function pointers are generated from the
// one op table (kernels/ops.mjs → kernels/ops.gen.h): every kernel takes one `XxxArgs` struct
// whose fields are the Backend kernel's arguments (src/backend/backend.ts), and has the same
// semantics; the pure-TypeScript reference backend (src/backend/ref/) is the specification they
// are tested against.
//
// Arguments: a storage is a `Buf` (data, element count, dtype); the bindings have checked that
// each buffer holds its claimed elements, that enum codes are in range and that optional
// storages are null or real. Shapes, strides and sizes arrive validated by the TypeScript layer,
// and kernels trust them.
//
// Faults: bad *data* (an index or a target out of range, a failed `check`) is never read or
// written through: the kernel skips the element (writing 0 or NaN where the table says), goes
// on, and returns a `Fault` (code, the first bad value, the limit), which the TypeScript side
// turns into an Error at the next read or sync. Kernels never throw for user errors.
//
// The files in kernels/cpu/isa/ are compiled once per instruction set, into the namespaces
// kiln::avx512, kiln::avx2 and kiln::base (KILN_ISA names the current one), each exporting a
// `const Table* table()`. kernels/cpu/dispatch.cc picks the best table the CPU supports; a
// kernel an ISA's table leaves null makes its binding throw "kernel 'x' is not in this build".
#pragma once
#include <cstddef>
#include <cstdint>

#include "../ops.gen.h"

namespace kiln {

// The one symbol each ISA's objects export (everything else in them is made local at link time).
#define KILN_EXPORT __attribute__((visibility("default")))
namespace avx512 { KILN_EXPORT const Table* table(); }
namespace avx2 { KILN_EXPORT const Table* table(); }
namespace base { KILN_EXPORT const Table* table(); }

// The table for this CPU (AVX-512 > AVX2 > base), or the one named by KILN_CPU_ISA.
const Table& kernels();

// How the avx512 table multiplies bf16 matrices (the others convert to f32 while packing):
// AMX tiles (tdpbf16ps) where the CPU has them and the OS grants their state, else vdpbf16ps
// pairs on AMD, else f32 (see the reasons in kernels/cpu/isa/matmul.cc). KILN_CPU_BF16_MATMUL=
// amx|dpbf16|f32 asks for one (tests, benches; read per call); amx where it is unusable gives the
// default, which capabilities() shows.
enum Bf16Matmul { BF16_MATMUL_F32, BF16_MATMUL_DPBF16, BF16_MATMUL_AMX };
Bf16Matmul bf16_matmul();
const char* bf16_matmul_name(Bf16Matmul k);

// The shared thread pool (native/threadpool.cc). parallel_for splits [0, n) into chunks of at
// least `grain` items and runs fn(begin, end) on the pool; it returns when all are done. Work
// too small for two chunks runs on the calling thread.
int num_threads();
void set_num_threads(int n);
void parallel_for(int64_t n, int64_t grain, void (*fn)(void* ctx, int64_t begin, int64_t end), void* ctx);

// parallel_for with a lambda.
template <typename F>
inline void parallel_for(int64_t n, int64_t grain, const F& f) {
  parallel_for(n, grain, [](void* ctx, int64_t b, int64_t e) { (*static_cast<const F*>(ctx))(b, e); },
               const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace kiln
