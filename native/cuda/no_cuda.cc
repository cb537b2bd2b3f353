// Built when no CUDA compiler was found: the addon reports CUDA as not compiled in.
#include "cuda.h"

namespace kiln {

bool cuda_compiled() { return false; }

int cuda_device_count(std::string* error) {
  *error = "CUDA support was not compiled in (no nvcc on PATH or in /usr/local/cuda/bin at build time)";
  return 0;
}

}  // namespace kiln
