// The CUDA backend's non-kernel bindings, on `addon.cuda` (the kernels are in bindings.gen.cc):
// init, alloc/free, write, asynchronous read and sync (Promises resolved from a worker thread
// that waits on an event), memory statistics, emptyCache, the fault tag and the TF32 switch.
// Compiled only when nvcc is found; runtime.h keeps CUDA's headers out of this file.
#include <cstring>

#include "cuda_binding.h"

namespace {

using namespace kiln;

int64_t bytes_arg(const Napi::CallbackInfo& info, size_t i) {
  const int64_t n = bind::i64(info, i);
  if (n < 0) throw bind::error(info, "a size cannot be negative, got " + std::to_string(n));
  return n;
}

void* address(const Napi::CallbackInfo& info, size_t i) { return bind::device_address(info, info[i], bind::arg_name(i)); }

Napi::Value fault_value(Napi::Env env, const cuda::FaultRecord& f) {
  if (f.code == FAULT_NONE) return env.Null();
  Napi::Array r = Napi::Array::New(env, 4);
  r.Set(uint32_t(0), Napi::Number::New(env, f.code));
  r.Set(uint32_t(1), Napi::Number::New(env, f.value));
  r.Set(uint32_t(2), Napi::Number::New(env, double(f.limit)));
  r.Set(uint32_t(3), Napi::Number::New(env, f.tag));
  return r;
}

// init(device) → { device, name, major, minor, multiprocessors, totalMemory }
KILN_BIND_IN(cuda, init) {
  bind::arity(info, 1);
  const cuda::DeviceInfo d = cuda::init(int(bind::i64(info, 0)));
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("device", d.device);
  o.Set("name", d.name);
  o.Set("major", d.major);
  o.Set("minor", d.minor);
  o.Set("multiprocessors", d.multiprocessors);
  o.Set("totalMemory", double(d.totalMemory));
  return o;
}

// alloc(bytes, op) → device address (BigInt)
KILN_BIND_IN(cuda, alloc) {
  bind::arity(info, 2);
  const int64_t n = bytes_arg(info, 0);
  const std::string op = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : std::string("alloc");
  void* p = cuda::alloc(size_t(n), op.c_str());
  return Napi::BigInt::New(info.Env(), uint64_t(uintptr_t(p)));
}

// free(address): back to the cache (stream-ordered)
KILN_BIND_IN(cuda, free) {
  bind::arity(info, 1);
  cuda::release(address(info, 0));
  return info.Env().Undefined();
}

// memset(address, byte): every byte of the block
KILN_BIND_IN(cuda, memset) {
  bind::arity(info, 2);
  void* p = address(info, 0);
  cuda::memset(p, int(bind::i64(info, 1)) & 0xff, cuda::block_size(p));
  return info.Env().Undefined();
}

// write(address, bytes: ArrayBuffer | TypedArray)
KILN_BIND_IN(cuda, write) {
  bind::arity(info, 2);
  void* dst = address(info, 0);
  const void* src;
  size_t n;
  if (info[1].IsTypedArray()) {
    Napi::TypedArray t = info[1].As<Napi::TypedArray>();
    Napi::ArrayBuffer ab = t.ArrayBuffer();
    src = static_cast<const char*>(ab.Data()) + t.ByteOffset();
    n = t.ByteLength();
  } else if (info[1].IsArrayBuffer()) {
    Napi::ArrayBuffer ab = info[1].As<Napi::ArrayBuffer>();
    src = ab.Data();
    n = ab.ByteLength();
  } else {
    throw bind::error(info, "argument 1 must be an ArrayBuffer or a typed array");
  }
  if (n > cuda::block_size(dst)) throw bind::error(info, std::to_string(n) + " bytes do not fit the storage's block of " + std::to_string(cuda::block_size(dst)));
  cuda::write(dst, src, n);
  return info.Env().Undefined();
}

// A read or a sync waited for on a worker thread; resolves [ArrayBuffer | null, fault | null].
class Wait : public Napi::AsyncWorker {
 public:
  Wait(Napi::Env env, cuda::Ticket* t, size_t bytes) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), ticket_(t), data_(bytes) {}
  ~Wait() override {
    if (ticket_) cuda::abandon(ticket_);
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    cuda::Ticket* t = ticket_;
    ticket_ = nullptr;  // wait() frees it, even when it throws
    try {
      fault_ = cuda::wait(t, data_.data());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array r = Napi::Array::New(env, 2);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, data_.size());
    if (!data_.empty()) std::memcpy(ab.Data(), data_.data(), data_.size());
    r.Set(uint32_t(0), ab);
    r.Set(uint32_t(1), fault_value(env, fault_));
    deferred_.Resolve(r);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(Napi::Error::New(Env(), std::string("kiln native: cuda: ") + e.Message()).Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  cuda::Ticket* ticket_;
  std::vector<char> data_;
  cuda::FaultRecord fault_{FAULT_NONE, 0, 0, 0};
};

// read(address, bytes) → Promise<[ArrayBuffer, fault | null]>
KILN_BIND_IN(cuda, read) {
  bind::arity(info, 2);
  void* src = address(info, 0);
  const int64_t n = bytes_arg(info, 1);
  if (uint64_t(n) > cuda::block_size(src)) throw bind::error(info, std::to_string(n) + " bytes are more than the storage's block of " + std::to_string(cuda::block_size(src)));
  auto* w = new Wait(info.Env(), cuda::read_begin(src, size_t(n)), size_t(n));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// sync() → Promise<[ArrayBuffer(0), fault | null]>: every queued kernel done
KILN_BIND_IN(cuda, sync) {
  bind::arity(info, 0);
  auto* w = new Wait(info.Env(), cuda::read_begin(nullptr, 0), 0);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// memoryStats() → { allocated, reserved, cached, peakAllocated, deviceAllocs, deviceFrees, cacheHits, oomRetries, blocks }
KILN_BIND_IN(cuda, memoryStats) {
  bind::arity(info, 0);
  return bind::allocator_stats(info.Env(), cuda::memory_stats(), cuda::memory_cached());
}

// computes() → { family: dtype names } of the CUDA table
KILN_BIND_IN(cuda, computes) {
  bind::arity(info, 0);
  return bind::computes(info.Env(), cuda::kernel_table());
}

KILN_BIND_IN(cuda, emptyCache) {
  bind::arity(info, 0);
  cuda::empty_cache();
  return info.Env().Undefined();
}

KILN_BIND_IN(cuda, setFaultTag) {
  bind::arity(info, 1);
  cuda::set_fault_tag(int(bind::i64(info, 0)));
  return info.Env().Undefined();
}

KILN_BIND_IN(cuda, setAllowTf32) {
  bind::arity(info, 1);
  cuda::set_allow_tf32(bind::flag(info, 0));
  return info.Env().Undefined();
}

}  // namespace
