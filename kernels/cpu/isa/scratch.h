// Scratch memory for the kernels: 64-byte aligned (whole cache lines, aligned SIMD loads), freed
// when it goes out of scope; zeroed, or left uninitialised (kUninit) where every element is
// written before it is read, so pages a call never touches are never faulted in.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

#include "isa.h"

namespace kiln {
namespace KILN_ISA {
namespace {  // internal linkage: each ISA build keeps its own copies

enum ScratchInit { kZeroed, kUninit };

template <typename T>
class Scratch {
 public:
  explicit Scratch(size_t n = 0, ScratchInit init = kZeroed) { reset(n, init); }
  ~Scratch() { release(); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  Scratch(Scratch&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  // n elements, zeroed unless kUninit (the old contents are dropped)
  void reset(size_t n, ScratchInit init = kZeroed) {
    release();
    n_ = n;
    const size_t bytes = (n > 0 ? n : 1) * sizeof(T);
    p_ = static_cast<T*>(::operator new(bytes, std::align_val_t(64)));
    if (init == kZeroed) std::memset(static_cast<void*>(p_), 0, bytes);
  }
  T* data() const { return p_; }
  T& operator[](int64_t i) const { return p_[i]; }
  void zero() { std::memset(static_cast<void*>(p_), 0, n_ * sizeof(T)); }

 private:
  void release() {
    if (p_) ::operator delete(p_, std::align_val_t(64));
    p_ = nullptr;
  }
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace
}  // namespace KILN_ISA
}  // namespace kiln
