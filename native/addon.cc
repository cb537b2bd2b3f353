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

struct Entry {
  const char* name;
  Fn fn;
  const char* group;  // null: on the exports themselves
};

static std::vector<Entry>& registry() {
  static std::vector<Entry> r;
  return r;
}

Registrar::Registrar(const char* name, Fn fn, const char* group) { registry().push_back({name, fn, group}); }

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

// _testCachingAllocator(capacity, ops) → { results, stats }: the CUDA backend's caching allocator
// (caching_allocator.h) over a fake device of `capacity` bytes, for the CPU tests. ops: ['alloc',
// bytes] (result: the block's index, or null when out of memory), ['free', index] (result: true
// when it was live), ['size', index] (its usable bytes), ['empty'].
struct FakeDevice {
  uint64_t capacity, used = 0;
  void* allocate(size_t bytes) {
    if (used + bytes > capacity) return nullptr;
    used += bytes;
    return std::malloc(bytes);
  }
  void release(void* p, size_t bytes) {
    used -= bytes;
    std::free(p);
  }
};

KILN_BIND(_testCachingAllocator) {
  bind::arity(info, 2);
  Napi::Env env = info.Env();
  CachingAllocator<FakeDevice> a(FakeDevice{uint64_t(bind::i64(info, 0))});
  Napi::Array ops = bind::as_array(info, info[1], "ops");
  Napi::Array results = Napi::Array::New(env, ops.Length());
  std::vector<void*> blocks;
  for (uint32_t i = 0; i < ops.Length(); i++) {
    Napi::Array op = ops.Get(i).As<Napi::Array>();
    const std::string kind = op.Get(uint32_t(0)).As<Napi::String>().Utf8Value();
    const int64_t arg = op.Length() > 1 ? bind::as_int(info, op.Get(uint32_t(1)), "op argument") : 0;
    if (kind == "alloc") {
      void* p = a.allocate(size_t(arg));
      if (p) blocks.push_back(p);
      results.Set(i, p ? Napi::Value(Napi::Number::New(env, double(blocks.size() - 1))) : env.Null());
    } else if (kind == "free" || kind == "size") {
      if (arg < 0 || uint64_t(arg) >= blocks.size()) throw bind::error(info, "no block " + std::to_string(arg));
      if (kind == "free") results.Set(i, Napi::Boolean::New(env, a.free(blocks[size_t(arg)])));
      else results.Set(i, Napi::Number::New(env, double(a.block_size(blocks[size_t(arg)]))));
    } else if (kind == "empty") {
      a.empty_cache();
      results.Set(i, env.Null());
    } else {
      throw bind::error(info, "unknown op '" + kind + "'");
    }
  }
  Napi::Object stats = bind::allocator_stats(env, a.stats(), a.cached());
  stats.Set("deviceUsed", double(a.device().used));
  for (void* p : blocks) a.free(p);  // the destructor releases the cache
  Napi::Object r = Napi::Object::New(env);
  r.Set("results", results);
  r.Set("stats", stats);
  return r;
}

// capabilities() → { isa, bf16Matmul, computes: { family: dtype names }, threads, cuda: { compiled, devices, error } }
KILN_BIND(capabilities) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", kernels().isa);
  const bool avx512 = std::strcmp(kernels().isa, "avx512") == 0;
  o.Set("bf16Matmul", avx512 ? bf16_matmul_name(bf16_matmul()) : "f32");
  o.Set("computes", bind::computes(env, kernels()));
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
  for (const bind::Entry& e : bind::registry()) {
    bind::Fn f = e.fn;
    const char* n = e.name;
    Napi::Object target = exports;
    if (e.group) {
      if (!exports.Has(e.group)) exports.Set(e.group, Napi::Object::New(env));
      target = exports.Get(e.group).As<Napi::Object>();
    }
    target.Set(n, Napi::Function::New(
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
                          n));
  }
  return exports;
}

}  // namespace

NODE_API_MODULE(kiln, Init)
