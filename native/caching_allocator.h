// A caching allocator for device memory, as PyTorch's CUDA allocator does in spirit: freed blocks
// are kept in free lists by size class and handed out again, so the steady state of a training
// step calls the device allocator never. Header only, and independent of CUDA: the device is a
// policy (`Device::allocate(bytes) → void*`, null when out of memory; `Device::release(p, bytes)`),
// so the same code runs over cudaMalloc in the CUDA runtime and over a fake device in the CPU
// addon's tests.
//
// Size classes: requests round up to 512 bytes below 1 MiB and to 2 MiB above it (fewer, larger
// device allocations; at most 2 MiB of slack per large block). A free block is reused for a
// request of exactly its class. Out of memory: every cached block is released and the request
// retried once; if it still fails, the caller gets null and the statistics say what is in use.
//
// All work runs on one stream in call order, so a block freed by the host may be handed to the
// next allocation at once: any kernel still reading it was queued before the kernels that will
// write it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <unordered_map>
#include <vector>

namespace kiln {

struct AllocatorStats {
  uint64_t allocated = 0;      // bytes in blocks handed out (rounded sizes)
  uint64_t reserved = 0;       // bytes held from the device (allocated + cached)
  uint64_t peakAllocated = 0;  // the most `allocated` has been since the last reset
  uint64_t deviceAllocs = 0;   // calls to the device allocator
  uint64_t deviceFrees = 0;
  uint64_t cacheHits = 0;      // allocations served from the cache
  uint64_t oomRetries = 0;     // out-of-memory retries after emptying the cache
  uint64_t blocks = 0;         // blocks handed out now
};

template <class Device>
class CachingAllocator {
 public:
  static constexpr size_t kSmall = size_t(1) << 20;  // below: 512-byte classes
  static constexpr size_t kSmallRound = 512;
  static constexpr size_t kLargeRound = size_t(2) << 20;

  explicit CachingAllocator(Device device) : device_(device) {}
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;
  ~CachingAllocator() { empty_cache(); }

  // The size class of a request (0 bytes: one small block, so every storage has an address).
  static size_t round(size_t bytes) {
    if (bytes == 0) bytes = 1;
    const size_t r = bytes < kSmall ? kSmallRound : kLargeRound;
    return (bytes + r - 1) / r * r;
  }

  // A block of at least `bytes`, or null when the device is out of memory even with the cache
  // emptied (the caller throws, naming the op and these statistics).
  void* allocate(size_t bytes) {
    const size_t size = round(bytes);
    void* p = nullptr;
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      cached_ -= size;
      stats_.cacheHits++;
    } else {
      p = device_.allocate(size);
      if (!p && cached_ > 0) {
        stats_.oomRetries++;
        empty_cache();
        p = device_.allocate(size);
      }
      if (!p) return nullptr;
      stats_.deviceAllocs++;
      stats_.reserved += size;
    }
    live_[p] = size;
    stats_.allocated += size;
    stats_.blocks++;
    if (stats_.allocated > stats_.peakAllocated) stats_.peakAllocated = stats_.allocated;
    return p;
  }

  // Return a block to the cache. False when `p` is not a live block of this allocator.
  bool free(void* p) {
    auto it = live_.find(p);
    if (it == live_.end()) return false;
    const size_t size = it->second;
    live_.erase(it);
    free_[size].push_back(p);
    cached_ += size;
    stats_.allocated -= size;
    stats_.blocks--;
    return true;
  }

  // The usable bytes of live block `p`, or 0 when `p` is not one (the bindings check every
  // device pointer against this before a kernel runs).
  size_t block_size(const void* p) const {
    auto it = live_.find(const_cast<void*>(p));
    return it == live_.end() ? 0 : it->second;
  }

  // Release every cached block to the device (torch.cuda.empty_cache).
  void empty_cache() {
    for (auto& [size, ptrs] : free_) {
      for (void* p : ptrs) {
        device_.release(p, size);
        stats_.deviceFrees++;
        stats_.reserved -= size;
      }
      ptrs.clear();
    }
    free_.clear();
    cached_ = 0;
  }

  uint64_t cached() const { return cached_; }
  const AllocatorStats& stats() const { return stats_; }
  void reset_peak() { stats_.peakAllocated = stats_.allocated; }
  Device& device() { return device_; }

 private:
  Device device_;
  std::map<size_t, std::vector<void*>> free_;
  std::unordered_map<void*, size_t> live_;
  uint64_t cached_ = 0;
  AllocatorStats stats_;
};

}  // namespace kiln
