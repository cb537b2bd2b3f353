// Helpers for the N-API bindings: argument readers (used by the generated native/bindings.gen.cc
// and by addon.cc) and a registry that addon.cc exports.
//
// Every reader checks its argument before any native code runs: a storage must be a live
// ArrayBuffer (or null, claiming no elements) holding at least its claimed elements, enum codes
// must be in range, integers must be integers. A bad argument is a JS Error naming the binding
// and the argument's position; nothing here aborts the process.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "caching_allocator.h"
#include "kernels.h"

namespace kiln::bind {

using Fn = Napi::Value (*)(const Napi::CallbackInfo&);

// Adds a binding to the addon's exports (registered at static-initialisation time), or to the
// exports' object `group` (the CUDA bindings are `addon.cuda.<name>`).
struct Registrar {
  Registrar(const char* name, Fn fn, const char* group = nullptr);
};

// The binding being called (addon.cc sets it around each call), for error messages.
inline thread_local const char* current = nullptr;

inline Napi::Error error(const Napi::CallbackInfo& info, const std::string& msg) {
  return Napi::Error::New(info.Env(), std::string("kiln native: ") + (current ? std::string(current) + ": " : "") + msg);
}

inline std::string arg_name(size_t i) { return "argument " + std::to_string(i); }

inline std::string show(double v) {
  char s[32];
  std::snprintf(s, sizeof s, "%.17g", v);
  return s;
}

// ---- one value -----------------------------------------------------------------------------------

inline double as_number(const Napi::CallbackInfo& info, const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) throw error(info, what + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

// An integer: a number with no fraction, |v| < 2^63.
inline int64_t as_int(const Napi::CallbackInfo& info, const Napi::Value& v, const std::string& what) {
  double d = as_number(info, v, what);
  if (!(std::trunc(d) == d && std::fabs(d) < 9223372036854775808.0))
    throw error(info, what + " must be an integer, got " + show(d));
  return int64_t(d);
}

// An enum code in [0, count).
inline int as_code(const Napi::CallbackInfo& info, const Napi::Value& v, int count, const std::string& what) {
  int64_t c = as_int(info, v, what);
  if (c < 0 || c >= count) throw error(info, what + ": code " + std::to_string(c) + " is not in [0, " + std::to_string(count) + ")");
  return int(c);
}

// A storage's element count and dtype code, checked; data null (the caller reads the handle,
// unless it is null, which must claim no elements).
inline Buf buf_shape(const Napi::CallbackInfo& info, const Napi::Value& h, const Napi::Value& size, const Napi::Value& code, const std::string& what) {
  const int64_t n = as_int(info, size, what + "'s size");
  const DType dt = DType(as_code(info, code, kNumDTypes, what + "'s dtype"));
  if (n < 0) throw error(info, what + ": a storage cannot have " + std::to_string(n) + " elements");
  if ((h.IsNull() || h.IsUndefined()) && n != 0) throw error(info, what + " is null but claims " + std::to_string(n) + " elements");
  return Buf{nullptr, n, dt};
}

// A storage from its handle (ArrayBuffer or null), element count and dtype code.
inline Buf as_buf(const Napi::CallbackInfo& info, const Napi::Value& h, const Napi::Value& size, const Napi::Value& code,
                  const std::string& what) {
  const Buf b = buf_shape(info, h, size, code, what);
  const int64_t n = b.size;
  const DType dt = b.dtype;
  if (h.IsNull() || h.IsUndefined()) return b;
  if (!h.IsArrayBuffer()) throw error(info, what + " must be a storage (an ArrayBuffer) or null");
  Napi::ArrayBuffer ab = h.As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) throw error(info, what + " is a freed storage (its buffer is detached)");
  const size_t bytes = ab.ByteLength();
  if (uint64_t(n) > bytes / item_size(dt))
    throw error(info, what + ": " + std::to_string(n) + " " + dtype_name(dt) + " elements do not fit its buffer of " +
                          std::to_string(bytes) + " bytes");
  return Buf{ab.Data(), n, dt};
}

inline Napi::Array as_array(const Napi::CallbackInfo& info, const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw error(info, what + " must be an array");
  return v.As<Napi::Array>();
}

// ---- arguments by position -----------------------------------------------------------------------

// The call has exactly n arguments (the generated bindings and marshal.gen.ts agree on n).
inline void arity(const Napi::CallbackInfo& info, size_t n) {
  if (info.Length() != n)
    throw error(info, "expected " + std::to_string(n) + " arguments, got " + std::to_string(info.Length()));
}

inline double num(const Napi::CallbackInfo& info, size_t i) { return as_number(info, info[i], arg_name(i)); }

inline int64_t i64(const Napi::CallbackInfo& info, size_t i) { return as_int(info, info[i], arg_name(i)); }

inline bool flag(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBoolean()) throw error(info, arg_name(i) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

// An enum code at i, in [0, count).
inline int code(const Napi::CallbackInfo& info, size_t i, int count) { return as_code(info, info[i], count, arg_name(i)); }

// A storage at i, i + 1, i + 2: handle (ArrayBuffer or null), element count, dtype code.
inline Buf buf(const Napi::CallbackInfo& info, size_t i) { return as_buf(info, info[i], info[i + 1], info[i + 2], arg_name(i)); }

using BufReader = Buf (*)(const Napi::CallbackInfo&, const Napi::Value&, const Napi::Value&, const Napi::Value&, const std::string&);

// A list of storages at i, i + 1, i + 2: arrays of handles, element counts and dtype codes, each
// read by `read` (host storages; the CUDA bindings pass their device reader).
inline std::vector<Buf> bufs(const Napi::CallbackInfo& info, size_t i, BufReader read = as_buf) {
  Napi::Array hs = as_array(info, info[i], arg_name(i));
  Napi::Array ns = as_array(info, info[i + 1], arg_name(i + 1));
  Napi::Array cs = as_array(info, info[i + 2], arg_name(i + 2));
  const uint32_t n = hs.Length();
  if (ns.Length() != n || cs.Length() != n)
    throw error(info, arg_name(i) + ": " + std::to_string(n) + " storages but " + std::to_string(ns.Length()) + " sizes and " +
                          std::to_string(cs.Length()) + " dtypes");
  std::vector<Buf> out;
  out.reserve(n);
  for (uint32_t k = 0; k < n; k++)
    out.push_back(read(info, hs.Get(k), ns.Get(k), cs.Get(k), arg_name(i) + "[" + std::to_string(k) + "]"));
  return out;
}

// Up to kMaxRank integers (a shape or strides) at i; the unused entries are 0.
inline Ints ints(const Napi::CallbackInfo& info, size_t i) {
  Napi::Array a = as_array(info, info[i], arg_name(i));
  const uint32_t n = a.Length();
  if (n > uint32_t(kMaxRank)) throw error(info, arg_name(i) + ": rank " + std::to_string(n) + " exceeds " + std::to_string(kMaxRank));
  Ints r{};
  r.rank = n;
  for (uint32_t k = 0; k < n; k++) r.v[k] = as_int(info, a.Get(k), arg_name(i) + "[" + std::to_string(k) + "]");
  return r;
}

// Any number of integers at i.
inline std::vector<int64_t> intlist(const Napi::CallbackInfo& info, size_t i) {
  Napi::Array a = as_array(info, info[i], arg_name(i));
  std::vector<int64_t> r(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) r[k] = as_int(info, a.Get(k), arg_name(i) + "[" + std::to_string(k) + "]");
  return r;
}

// The current table's kernel, or a JS error when this build has none.
template <typename F>
F kernel(const Napi::CallbackInfo& info, F f, const char* name) {
  if (!f) throw error(info, std::string("kernel '") + name + "' is not in this build (ISA " + kernels().isa + ")");
  return f;
}

// A table's `computes` masks as { family: dtype names } (Backend.computes answers from it).
inline Napi::Object computes(Napi::Env env, const Table& t) {
  Napi::Object o = Napi::Object::New(env);
  for (int f = 0; f < kNumFamilies; f++) {
    Napi::Array names = Napi::Array::New(env);
    uint32_t at = 0;
    for (int d = 0; d < kNumDTypes; d++)
      if (t.computes[f] & dtype_bit(DType(d))) names.Set(at++, dtype_name(DType(d)));
    o.Set(family_name(KernelFamily(f)), names);
  }
  return o;
}

// A caching allocator's statistics as a JS object (the CUDA backend's memoryStats, and the CPU
// addon's test of the allocator).
inline Napi::Object allocator_stats(Napi::Env env, const AllocatorStats& st, uint64_t cached) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("allocated", double(st.allocated));
  o.Set("reserved", double(st.reserved));
  o.Set("cached", double(cached));
  o.Set("peakAllocated", double(st.peakAllocated));
  o.Set("deviceAllocs", double(st.deviceAllocs));
  o.Set("deviceFrees", double(st.deviceFrees));
  o.Set("cacheHits", double(st.cacheHits));
  o.Set("oomRetries", double(st.oomRetries));
  o.Set("blocks", double(st.blocks));
  return o;
}

// A faulting kernel's result for marshal.gen.ts: null, or [code, value, limit].
inline Napi::Value fault(const Napi::CallbackInfo& info, const Fault& f) {
  if (f.code == FAULT_NONE) return info.Env().Null();
  Napi::Array r = Napi::Array::New(info.Env(), 3);
  r.Set(uint32_t(0), Napi::Number::New(info.Env(), double(f.code)));
  r.Set(uint32_t(1), Napi::Number::New(info.Env(), f.value));
  r.Set(uint32_t(2), Napi::Number::New(info.Env(), double(f.limit)));
  return r;
}

}  // namespace kiln::bind

// Define and register a binding: KILN_BIND(name) { ... return info.Env().Undefined(); }
#define KILN_BIND(name)                                                \
  static Napi::Value bind_##name(const Napi::CallbackInfo& info);      \
  static ::kiln::bind::Registrar reg_##name(#name, &bind_##name);      \
  static Napi::Value bind_##name(const Napi::CallbackInfo& info)

// The same, into the exports' object `group`.
#define KILN_BIND_IN(group, name)                                               \
  static Napi::Value bind_##group##_##name(const Napi::CallbackInfo& info);      \
  static ::kiln::bind::Registrar reg_##group##_##name(#name, &bind_##group##_##name, #group); \
  static Napi::Value bind_##group##_##name(const Napi::CallbackInfo& info)
