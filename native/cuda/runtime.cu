// The CUDA runtime behind the `cuda` backend (see runtime.h): one device, one non-blocking compute
// stream, a caching allocator for device memory and another for pinned host memory, and the
// device fault word. Everything here runs on Node's main thread except `wait`, which blocks on an
// event on a worker thread (so only the pinned pool, which `wait` returns buffers to, is locked).
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../../kernels/cuda/common.cuh"
#include "runtime.h"

namespace kiln::cuda {

namespace {

struct DeviceMemory {
  void* allocate(size_t bytes) {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it: out of memory is not sticky
      return nullptr;
    }
    KILN_CUDA(e, "cudaMalloc");
    return p;
  }
  void release(void* p, size_t) { KILN_CUDA(cudaFree(p), "cudaFree"); }
};

struct PinnedMemory {
  void* allocate(size_t bytes) {
    void* p = nullptr;
    const cudaError_t e = cudaMallocHost(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      return nullptr;
    }
    KILN_CUDA(e, "cudaMallocHost");
    return p;
  }
  void release(void* p, size_t) { KILN_CUDA(cudaFreeHost(p), "cudaFreeHost"); }
};

struct State {
  int device = -1;
  cudaStream_t stream = nullptr;
  cudaDeviceProp props{};
  FaultWord* fault = nullptr;  // device
  int tag = 0;
  bool tf32 = false;
  std::unique_ptr<CachingAllocator<DeviceMemory>> memory;
  std::mutex pinned_lock;
  std::unique_ptr<CachingAllocator<PinnedMemory>> pinned;
  std::vector<void*> call_scratch;  // blocks scratch() handed out during the current kernel call
};

State& state() {
  static State s;
  return s;
}

State& ready() {
  State& s = state();
  if (s.device < 0) throw std::runtime_error("cuda: the backend is not initialised (init(device) first)");
  return s;
}

std::string mib(uint64_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MiB", double(bytes) / 1048576.0);
  return b;
}

}  // namespace

// ---- what the kernels use (common.cuh) ----------------------------------------------------------

cudaStream_t stream() { return ready().stream; }
const cudaDeviceProp& props() { return ready().props; }
bool allow_tf32() { return state().tf32; }
FaultWord* fault_word() { return ready().fault; }
int fault_tag() { return state().tag; }

void* scratch(size_t bytes) {
  State& s = ready();
  void* p = s.memory->allocate(bytes);
  if (!p) throw std::runtime_error("cuda: out of memory: " + std::to_string(bytes) + " bytes of kernel scratch (" + mib(s.memory->stats().allocated) + " in use)");
  s.call_scratch.push_back(p);
  return p;
}

// ---- runtime.h ----------------------------------------------------------------------------------

DeviceInfo init(int device) {
  State& s = state();
  if (s.device >= 0) {
    if (device != s.device) throw std::runtime_error("cuda: already initialised on device " + std::to_string(s.device) + "; one device per process");
  } else {
    int count = 0;
    KILN_CUDA(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
    if (device < 0 || device >= count) throw std::runtime_error("cuda: device " + std::to_string(device) + " does not exist (" + std::to_string(count) + " found)");
    KILN_CUDA(cudaSetDevice(device), "cudaSetDevice");
    KILN_CUDA(cudaGetDeviceProperties(&s.props, device), "cudaGetDeviceProperties");
    KILN_CUDA(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    KILN_CUDA(cudaMalloc(&s.fault, sizeof(FaultWord)), "cudaMalloc (fault word)");
    KILN_CUDA(cudaMemsetAsync(s.fault, 0, sizeof(FaultWord), s.stream), "cudaMemsetAsync (fault word)");
    s.memory = std::make_unique<CachingAllocator<DeviceMemory>>(DeviceMemory{});
    s.pinned = std::make_unique<CachingAllocator<PinnedMemory>>(PinnedMemory{});
    s.device = device;
  }
  return DeviceInfo{s.device, s.props.name, s.props.major, s.props.minor, s.props.multiProcessorCount, uint64_t(s.props.totalGlobalMem)};
}

bool initialized() { return state().device >= 0; }

void* alloc(size_t bytes, const char* op) {
  State& s = ready();
  void* p = s.memory->allocate(bytes);
  if (!p) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    cudaGetLastError();
    const AllocatorStats& st = s.memory->stats();
    throw std::runtime_error(std::string(op) + ": cuda out of memory: cannot allocate " + mib(CachingAllocator<DeviceMemory>::round(bytes)) + " (" + mib(st.allocated) +
                             " in use by kiln in " + std::to_string(st.blocks) + " blocks, " + mib(s.memory->cached()) + " cached and released, " + mib(free_b) + " free of " +
                             mib(total_b) + " on " + s.props.name + ")");
  }
  return p;
}

bool release(void* p) { return ready().memory->free(p); }
size_t block_size(const void* p) { return ready().memory->block_size(p); }
AllocatorStats memory_stats() { return ready().memory->stats(); }
uint64_t memory_cached() { return ready().memory->cached(); }

void empty_cache() {
  State& s = ready();
  // cudaFree synchronises the device, so blocks still read by queued kernels are safe to release
  s.memory->empty_cache();
  std::lock_guard<std::mutex> g(s.pinned_lock);
  s.pinned->empty_cache();
}

void memset(void* dst, int byte, size_t bytes) {
  if (bytes > 0) KILN_CUDA(cudaMemsetAsync(dst, byte, bytes, ready().stream), "cudaMemsetAsync");
}

void write(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  // from pageable memory the driver stages `src` before returning, so the caller may reuse it
  KILN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ready().stream), "write (cudaMemcpyAsync host to device)");
}

struct Ticket {
  cudaEvent_t done;
  void* pinned;  // [FaultWord][bytes of data]
  size_t bytes;
};

Ticket* read_begin(const void* src, size_t bytes) {
  State& s = ready();
  void* pinned;
  {
    std::lock_guard<std::mutex> g(s.pinned_lock);
    pinned = s.pinned->allocate(sizeof(FaultWord) + bytes);
  }
  if (!pinned) throw std::runtime_error("read: cuda out of pinned host memory for " + mib(bytes));
  auto t = std::make_unique<Ticket>(Ticket{nullptr, pinned, bytes});
  if (bytes > 0) KILN_CUDA(cudaMemcpyAsync(static_cast<char*>(pinned) + sizeof(FaultWord), src, bytes, cudaMemcpyDeviceToHost, s.stream), "read (cudaMemcpyAsync device to host)");
  KILN_CUDA(cudaMemcpyAsync(pinned, s.fault, sizeof(FaultWord), cudaMemcpyDeviceToHost, s.stream), "read (fault word)");
  KILN_CUDA(cudaMemsetAsync(s.fault, 0, sizeof(FaultWord), s.stream), "read (clearing the fault word)");
  KILN_CUDA(cudaEventCreateWithFlags(&t->done, cudaEventDisableTiming), "cudaEventCreate");
  KILN_CUDA(cudaEventRecord(t->done, s.stream), "cudaEventRecord");
  return t.release();
}

FaultRecord wait(Ticket* t, void* dst) {
  std::unique_ptr<Ticket> owned(t);
  State& s = state();
  const cudaError_t e = cudaEventSynchronize(t->done);
  cudaEventDestroy(t->done);
  FaultRecord f{FAULT_NONE, 0, 0, 0};
  if (e == cudaSuccess) {
    FaultWord w;
    std::memcpy(&w, t->pinned, sizeof w);
    if (w.taken) f = FaultRecord{w.code, w.value, int64_t(w.limit), w.tag};
    if (t->bytes > 0) std::memcpy(dst, static_cast<char*>(t->pinned) + sizeof(FaultWord), t->bytes);
  }
  {
    std::lock_guard<std::mutex> g(s.pinned_lock);
    s.pinned->free(t->pinned);
  }
  // a kernel that failed on the device (an illegal address) surfaces here, as a JS Error
  if (e != cudaSuccess) fail(e, "a queued kernel or copy failed (reported at this read or sync)");
  return f;
}

void abandon(Ticket* t) {
  // the copy completes on the stream; the pinned block goes back once it has
  State& s = state();
  cudaEventSynchronize(t->done);
  cudaEventDestroy(t->done);
  std::lock_guard<std::mutex> g(s.pinned_lock);
  s.pinned->free(t->pinned);
  delete t;
}

void begin_call() {
  State& s = ready();
  for (void* p : s.call_scratch) s.memory->free(p);
  s.call_scratch.clear();
}

void set_fault_tag(int tag) { state().tag = tag; }

void set_allow_tf32(bool on) { state().tf32 = on; }

const Table& kernel_table() { return table(); }

}  // namespace kiln::cuda
