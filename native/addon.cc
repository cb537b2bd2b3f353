// The kiln addon: storage (64-byte-aligned native memory exposed as external ArrayBuffers),
// threads, the capability report, and every binding registered with KILN_BIND.
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "binding.h"
#include "cuda/cuda.h"

namespace kiln::bind {

static std::vector<std::pair<const char*, Fn>>& registry() {
  static std::vector<std::pair<const char*, Fn>> r;
  return r;
}

Registrar::Registrar(const char* name, Fn fn) { registry().emplace_back(name, fn); }

}  // namespace kiln::bind

namespace {

using namespace kiln;

// Native blocks by data pointer, so `free` can release memory at once (the ArrayBuffer's own
// finalizer may run much later, or never before the process exits).
struct Block {
  void* ptr;
  size_t bytes;  // of the mapping, where the block is one (else 0: from the heap)
  bool freed;
};
std::mutex blocks_mu;
std::unordered_map<void*, Block*> blocks;

// Storages are large and come and go with shapes that vary (batches of varying length). From
// glibc's heap, with its dynamic mmap threshold, the first free of a large block raises the
// threshold to its size, later ones come from the heap, and its fragments are never returned
// (measured: RSS 1.7 → 3.7 GB over 200 DPO steps with 21 MB of live tensors). So blocks of 256 KiB
// or more get their own mapping, returned to the system when freed. This is kiln's policy for its
// own blocks only: setting the process-wide threshold instead (mallopt) made every library in the
// process map and fault in its large temporaries afresh on each call (Open MPI's allreduce buffer:
// 1.7× slower).
constexpr size_t kMapAt = 256 * 1024;

void release(Block* block) {
  if (block->bytes) munmap(block->ptr, block->bytes);
  else std::free(block->ptr);
}

void finalize_block(Napi::Env, void* data, Block* block) {
  std::lock_guard<std::mutex> lock(blocks_mu);
  if (!block->freed) {
    blocks.erase(data);
    release(block);
  }
  delete block;
}

// alloc(bytes) → ArrayBuffer over native memory (contents unspecified, as Backend.alloc)
KILN_BIND(alloc) {
  double bytes = bind::num(info, 0);
  if (!(bytes >= 0) || bytes > 1e15) throw bind::error(info, "bad size " + bind::show(bytes));
  size_t n = size_t(bytes);
  size_t padded = ((n + 63) / 64) * 64;
  if (padded == 0) padded = 64;
  size_t mapped = 0;
  void* p = nullptr;
  if (padded >= kMapAt) {
    mapped = (padded + 4095) / 4096 * 4096;
    p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) p = nullptr;
  } else {
    p = std::aligned_alloc(64, padded);
  }
  if (!p) throw bind::error(info, "out of memory allocating " + std::to_string(n) + " bytes");
  Block* block = new Block{p, mapped, false};
  {
    std::lock_guard<std::mutex> lock(blocks_mu);
    blocks[p] = block;
  }
  return Napi::ArrayBuffer::New(info.Env(), p, n, finalize_block, block);
}

// free(buffer): release the memory now and detach the buffer so JS can never touch it again
KILN_BIND(free) {
  if (!info[0].IsArrayBuffer()) throw bind::error(info, "argument 0 must be a storage (an ArrayBuffer)");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) return info.Env().Undefined();
  void* p = ab.Data();
  {
    std::lock_guard<std::mutex> lock(blocks_mu);
    auto it = blocks.find(p);
    if (it != blocks.end()) {
      it->second->freed = true;
      release(it->second);
      blocks.erase(it);
    }
  }
  ab.Detach();
  return info.Env().Undefined();
}

KILN_BIND(numThreads) { return Napi::Number::New(info.Env(), num_threads()); }

KILN_BIND(setNumThreads) {
  set_num_threads(int(bind::i64(info, 0)));
  return info.Env().Undefined();
}

// capabilities() → { isa, bf16Matmul, computes: { family: dtype names }, threads, cuda: { compiled, devices, error } }
KILN_BIND(capabilities) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", kernels().isa);
  const bool avx512 = std::strcmp(kernels().isa, "avx512") == 0;
  o.Set("bf16Matmul", avx512 ? bf16_matmul_name(bf16_matmul()) : "f32");
  Napi::Object computes = Napi::Object::New(env);
  for (int f = 0; f < kNumFamilies; f++) {
    Napi::Array names = Napi::Array::New(env);
    uint32_t at = 0;
    for (int d = 0; d < kNumDTypes; d++)
      if (kernels().computes[f] & dtype_bit(DType(d))) names.Set(at++, dtype_name(DType(d)));
    computes.Set(family_name(KernelFamily(f)), names);
  }
  o.Set("computes", computes);
  o.Set("threads", num_threads());
  Napi::Object cuda = Napi::Object::New(env);
  std::string err;
  int devices = cuda_device_count(&err);
  cuda.Set("compiled", Napi::Boolean::New(env, cuda_compiled()));
  cuda.Set("devices", devices);
  cuda.Set("error", err);
  o.Set("cuda", cuda);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (auto& [name, fn] : bind::registry()) {
    bind::Fn f = fn;
    const char* n = name;
    exports.Set(name, Napi::Function::New(
                          env,
                          [f, n](const Napi::CallbackInfo& info) -> Napi::Value {
                            bind::current = n;  // errors name the binding
                            try {
                              return f(info);
                            } catch (const Napi::Error&) {
                              throw;
                            } catch (const std::bad_alloc&) {
                              throw bind::error(info, "out of memory");
                            } catch (const std::exception& e) {
                              throw bind::error(info, e.what());
                            }
                          },
                          name));
  }
  return exports;
}

}  // namespace

NODE_API_MODULE(kiln, Init)
