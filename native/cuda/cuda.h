// What the addon knows about CUDA: whether it was compiled in, and how many devices answer.
#pragma once
#include <string>

namespace kiln {

bool cuda_compiled();
// Number of CUDA devices, or 0 with the reason in *error. Any runtime error (no driver: error
// 35, cudaErrorInsufficientDriver; no device: 100) means "no device", never a crash.
int cuda_device_count(std::string* error);

}  // namespace kiln
