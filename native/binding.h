// Helpers for the N-API bindings: argument readers and a registry that addon.cc exports.
// Bindings convert errors into JS exceptions; nothing here aborts the process.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

#include "kernels.h"

namespace kiln::bind {

using Fn = Napi::Value (*)(const Napi::CallbackInfo&);

// Adds a binding to the addon's exports (registered at static-initialisation time).
struct Registrar {
  Registrar(const char* name, Fn fn);
};

inline Napi::Error error(const Napi::CallbackInfo& info, const std::string& msg) {
  return Napi::Error::New(info.Env(), "kiln native: " + msg);
}

// Pointer to the bytes of an ArrayBuffer (a storage), or null for null/undefined.
inline void* data(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  if (!v.IsArrayBuffer()) throw error(info, "argument " + std::to_string(i) + " must be a storage ArrayBuffer");
  Napi::ArrayBuffer ab = v.As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) throw error(info, "argument " + std::to_string(i) + " is a freed storage");
  return ab.Data();
}

inline double num(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw error(info, "argument " + std::to_string(i) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline int64_t i64(const Napi::CallbackInfo& info, size_t i) { return int64_t(num(info, i)); }

inline bool flag(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }

inline DType dtype(const Napi::CallbackInfo& info, size_t i) {
  int64_t d = i64(info, i);
  if (d < 0 || d > 5) throw error(info, "bad dtype code " + std::to_string(d));
  return DType(d);
}

// A JS array of integers into out[0..n); returns n (≤ kMaxRank).
inline int ints(const Napi::CallbackInfo& info, size_t i, int64_t* out) {
  Napi::Value v = info[i];
  if (!v.IsArray()) throw error(info, "argument " + std::to_string(i) + " must be an array");
  Napi::Array a = v.As<Napi::Array>();
  uint32_t n = a.Length();
  if (n > uint32_t(kMaxRank)) throw error(info, "rank " + std::to_string(n) + " exceeds " + std::to_string(kMaxRank));
  for (uint32_t k = 0; k < n; k++) out[k] = int64_t(a.Get(k).As<Napi::Number>().DoubleValue());
  return int(n);
}

// shape and up to three stride arrays at consecutive arguments.
inline Strides strides(const Napi::CallbackInfo& info, size_t shape_i, int count) {
  Strides st{};
  st.rank = ints(info, shape_i, st.shape);
  int64_t* dst[3] = {st.a, st.b, st.c};
  for (int k = 0; k < count; k++)
    if (ints(info, shape_i + 1 + k, dst[k]) != st.rank) throw error(info, "stride arrays must match the shape's rank");
  return st;
}

}  // namespace kiln::bind

// Define and register a binding: KILN_BIND(name) { ... return info.Env().Undefined(); }
#define KILN_BIND(name)                                                \
  static Napi::Value bind_##name(const Napi::CallbackInfo& info);      \
  static ::kiln::bind::Registrar reg_##name(#name, &bind_##name);      \
  static Napi::Value bind_##name(const Napi::CallbackInfo& info)
