// The one reading of --device and --precision for every command that loads a model.
//
//   device     auto (CUDA device 0 when this LibTorch build and machine have CUDA, else the
//              CPU) | cpu | cuda | cuda:N
//   precision  fp32 | fp16 | bf16 (float32, float16, bfloat16 are accepted as aliases)
#pragma once
#include <string>
#include <vector>

#include <torch/types.h>

namespace rdm {

inline constexpr const char* kDeviceChoices = "auto | cpu | cuda | cuda:N";
const std::vector<std::string>& precision_names();  // fp32, fp16, bf16

// Throws rdm::Error for another spelling, for CUDA without CUDA, and for a CUDA index that does
// not exist.
torch::Device parse_device(const std::string& spec);
// Throws rdm::Error for a name that is not a precision.
torch::Dtype parse_precision(const std::string& name);
// kFloat32 -> "fp32", kFloat16 -> "fp16", kBFloat16 -> "bf16".
std::string precision_name(torch::Dtype dtype);

// Whether a device spec means the CPU ("cpu", or "auto" where CUDA is not available); other
// spellings, valid or not, are not the CPU. Never throws.
bool is_cpu_device(const std::string& spec);

}  // namespace rdm
