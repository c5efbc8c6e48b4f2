// The one reading of --device and --precision for every command that loads a model.
//
//   device     auto (CUDA device 0 when this LibTorch build and machine have CUDA, else the
//              CPU) | cpu | cuda | cuda:N
//   precision  fp32 | fp16 | bf16 (float32, float16, bfloat16 are accepted as aliases) | auto:
//              bf16 on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX-BF16), fp16 on CUDA
//              (the reference's autocast precision), fp32 on any other CPU
#pragma once
#include <string>
#include <vector>

#include <torch/types.h>

namespace rdm {

inline constexpr const char* kDeviceChoices = "auto | cpu | cuda | cuda:N";
const std::vector<std::string>& precision_names();  // fp32, fp16, bf16, auto

// Throws rdm::Error for another spelling, for CUDA without CUDA, and for a CUDA index that does
// not exist.
torch::Device parse_device(const std::string& spec);
// The precision to run in on `device` ("auto" resolved as above). An explicit bf16 on a CPU
// without native bf16 (emulated: many times slower than fp32) logs one warning per process
// that says what to use instead. Throws rdm::Error for a name that is not a precision.
torch::Dtype parse_precision(const std::string& name, const torch::Device& device = torch::kCPU);
// Whether this CPU has native bf16 arithmetic (Linux /proc/cpuinfo flags avx512_bf16 or
// amx_bf16); false where that cannot be read.
bool cpu_has_native_bf16();
// kFloat32 -> "fp32", kFloat16 -> "fp16", kBFloat16 -> "bf16".
std::string precision_name(torch::Dtype dtype);

// Whether a device spec means the CPU ("cpu", or "auto" where CUDA is not available); other
// spellings, valid or not, are not the CPU. Never throws.
bool is_cpu_device(const std::string& spec);

}  // namespace rdm
