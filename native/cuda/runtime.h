// The CUDA runtime as the addon's bindings see it: plain C++ (no CUDA headers), implemented in
// runtime.cu, compiled only when nvcc is found. One device per process (chosen by init), one
// compute stream, a caching allocator, pinned staging for copies, the device fault word.
// Every function throws kiln::cuda::Error (a std::runtime_error naming the CUDA error and the
// op) on failure; the bindings turn it into a JS Error, so the process never aborts.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "../../kernels/ops.gen.h"
#include "../caching_allocator.h"

namespace kiln::cuda {

struct DeviceInfo {
  int device;
  std::string name;
  int major, minor;
  int multiprocessors;
  uint64_t totalMemory;
};

// Select `device`, create the stream, the fault word and the staging buffers (once; a second
// call with another device throws).
DeviceInfo init(int device);
bool initialized();

// Device memory from the caching allocator; throws "out of memory" naming `op`, the request and
// what is in use (after emptying the cache and retrying once).
void* alloc(size_t bytes, const char* op);
// Return a block (stream-ordered: kernels queued before still read it first). False when `p` is
// not a live block.
bool release(void* p);
// The usable bytes of live block `p`, 0 when it is not one.
size_t block_size(const void* p);
AllocatorStats memory_stats();
uint64_t memory_cached();
void empty_cache();

// Set `bytes` bytes at `dst` to `byte` (stream-ordered).
void memset(void* dst, int byte, size_t bytes);

// Host → device, ordered after the work queued before it; `src` may be reused when it returns.
void write(void* dst, const void* src, size_t bytes);
// What a read or a sync found: the first device-side fault since the last one (code FAULT_NONE
// when none), with the tag of the call that recorded it (the TypeScript side maps tags to ops).
struct FaultRecord {
  int code;
  double value;
  int64_t limit;
  int tag;
};
// Device → host: queue the copy into pinned memory (and a snapshot of the fault word, which is
// then cleared) and return a ticket; wait(ticket, dst) blocks until it is done (on a worker
// thread), copies the bytes into `dst` and frees the ticket. A sync is a read of no bytes.
struct Ticket;
Ticket* read_begin(const void* src, size_t bytes);
FaultRecord wait(Ticket* t, void* dst);
// Free a ticket that will not be waited for (its copy still completes on the stream).
void abandon(Ticket* t);

// Called by every kernel binding before its kernel: frees the previous call's scratch blocks
// (stream-ordered: the kernels that will write them run after the ones that read them).
void begin_call();
// The tag the next faulting kernels record (the backend sets one per faulting call and maps it
// back to the public op's name when a read reports the fault).
void set_fault_tag(int tag);

void set_allow_tf32(bool on);

// The kernel table (kernels/cuda/table.cu): the same Table as the CPU's, with device pointers.
const Table& kernel_table();

}  // namespace kiln::cuda
