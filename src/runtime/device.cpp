// --device and --precision (see device.hpp).
#include "rdm/runtime/device.hpp"

#include <spdlog/spdlog.h>
#include <torch/cuda.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "rdm/runtime/error.hpp"

namespace rdm {

const std::vector<std::string>& precision_names() {
  static const std::vector<std::string> names = {"fp32", "fp16", "bf16", "auto"};
  return names;
}

torch::Device parse_device(const std::string& spec) {
  if (spec == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (spec == "cpu") return torch::kCPU;
  if (spec.rfind("cuda", 0) == 0) {
    int index = 0;
    if (spec.size() > 4) {
      if (spec[4] != ':' || spec.size() == 5 || spec.size() > 9 ||
          spec.find_first_not_of("0123456789", 5) != std::string::npos)
        fail("device '{}' is not one of {}", spec, kDeviceChoices);
      index = std::stoi(spec.substr(5));
    }
    if (!torch::cuda::is_available())
      fail("device '{}' asked for but CUDA is not available (this LibTorch build or machine has no GPU); use "
           "--device cpu",
           spec);
    if (index >= static_cast<int>(torch::cuda::device_count()))
      fail("device '{}' does not exist: {} CUDA device(s)", spec, torch::cuda::device_count());
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  fail("device '{}' is not one of {}", spec, kDeviceChoices);
}

bool cpu_has_native_bf16() {
  static const bool has = [] {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream words(line);
      for (std::string w; words >> w;)
        if (w == "avx512_bf16" || w == "amx_bf16") return true;
      return false;  // the first CPU's flags decide
    }
    return false;
  }();
  return has;
}

torch::Dtype parse_precision(const std::string& p, const torch::Device& device) {
  if (p == "fp32" || p == "float32") return torch::kFloat32;
  if (p == "fp16" || p == "float16") return torch::kFloat16;
  if (p == "bf16" || p == "bfloat16") {
    static std::atomic<bool> warned{false};
    if (device.is_cpu() && !cpu_has_native_bf16() && !warned.exchange(true))
      spdlog::warn("precision bf16: this CPU has no native bf16 (AVX512-BF16 or AMX), so bf16 is emulated and "
                   "runs many times slower than fp32; use --precision fp32 (or auto, which picks fp32 here)");
    return torch::kBFloat16;
  }
  if (p == "auto") {
    if (device.is_cuda()) return torch::kFloat16;
    return cpu_has_native_bf16() ? torch::kBFloat16 : torch::kFloat32;
  }
  fail("precision '{}' is not one of fp32, fp16, bf16, auto", p);
}

std::string precision_name(torch::Dtype d) {
  return d == torch::kFloat16 ? "fp16" : d == torch::kBFloat16 ? "bf16" : "fp32";
}

bool is_cpu_device(const std::string& spec) {
  return spec == "cpu" || (spec == "auto" && !torch::cuda::is_available());
}

}  // namespace rdm
