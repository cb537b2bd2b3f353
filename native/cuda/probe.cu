// Built when nvcc is found: ask the CUDA runtime (linked statically) for devices.
#include <cuda_runtime.h>

#include <string>

#include "cuda.h"

namespace kiln {

bool cuda_compiled() { return true; }

int cuda_device_count(std::string* error) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    *error = std::string("cudaGetDeviceCount failed with error ") + std::to_string(int(e)) + " (" +
             cudaGetErrorName(e) + ": " + cudaGetErrorString(e) + ")";
    cudaGetLastError();  // clear the sticky error
    return 0;
  }
  if (n == 0) *error = "no CUDA device";
  return n;
}

}  // namespace kiln
