// Argument readers of the CUDA bindings: a storage is (device address as a BigInt, element
// count, dtype code), checked against the caching allocator's live blocks before any kernel runs,
// so a freed, foreign or too-small storage is a JS Error, never a device fault.
#pragma once
#include "../binding.h"
#include "runtime.h"

namespace kiln::bind {

// A live block of the caching allocator from its address (a BigInt); `what` names the argument,
// `alternative` what else it may be (" or null").
inline void* device_address(const Napi::CallbackInfo& info, const Napi::Value& h, const std::string& what, const char* alternative = "") {
  if (!h.IsBigInt()) throw error(info, what + " must be a cuda storage (a device address as a BigInt)" + alternative);
  bool lossless = false;
  void* p = reinterpret_cast<void*>(uintptr_t(h.As<Napi::BigInt>().Uint64Value(&lossless)));
  if (!lossless || cuda::block_size(p) == 0) throw error(info, what + " is not a live cuda storage (freed, or not allocated by this backend)");
  return p;
}

inline Buf as_dbuf(const Napi::CallbackInfo& info, const Napi::Value& h, const Napi::Value& size, const Napi::Value& code, const std::string& what) {
  const Buf b = buf_shape(info, h, size, code, what);
  const int64_t n = b.size;
  const DType dt = b.dtype;
  if (h.IsNull() || h.IsUndefined()) return b;
  void* p = device_address(info, h, what, " or null");
  const size_t bytes = cuda::block_size(p);
  if (uint64_t(n) > bytes / item_size(dt))
    throw error(info, what + ": " + std::to_string(n) + " " + dtype_name(dt) + " elements do not fit its block of " + std::to_string(bytes) + " bytes");
  return Buf{p, n, dt};
}

inline Buf dbuf(const Napi::CallbackInfo& info, size_t i) { return as_dbuf(info, info[i], info[i + 1], info[i + 2], arg_name(i)); }

inline std::vector<Buf> dbufs(const Napi::CallbackInfo& info, size_t i) { return bufs(info, i, as_dbuf); }

// The CUDA table's kernel, or a JS error when it has none; frees the previous call's scratch.
template <typename F>
F dkernel(const Napi::CallbackInfo& info, F f, const char* name) {
  if (!f) throw error(info, std::string("kernel '") + name + "' is not in the cuda backend yet");
  cuda::begin_call();
  return f;
}

}  // namespace kiln::bind
