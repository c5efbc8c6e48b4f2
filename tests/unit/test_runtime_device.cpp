// runtime/device.hpp: the one reading of --device and --precision, including --precision auto.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "rdm/runtime/device.hpp"
#include "rdm/runtime/error.hpp"

using namespace rdm;

TEST(Precision, NamesAndAliases) {
  EXPECT_EQ(parse_precision("fp32"), torch::kFloat32);
  EXPECT_EQ(parse_precision("float16"), torch::kFloat16);
  EXPECT_EQ(parse_precision("bfloat16"), torch::kBFloat16);
  EXPECT_THROW(parse_precision("fp8"), Error);
  EXPECT_THROW(parse_precision("AUTO"), Error);
  for (const auto& n : precision_names()) EXPECT_NO_THROW(parse_precision(n)) << n;
}

TEST(Precision, AutoIsFp16OnCudaAndFollowsTheCpuFlagsOnTheCpu) {
  EXPECT_EQ(parse_precision("auto", torch::Device(torch::kCUDA, 0)), torch::kFloat16);
  // The CPU's own flags, read independently of the implementation.
  bool native = false;
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("flags", 0) == 0) {
      native = line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos;
      break;
    }
  EXPECT_EQ(cpu_has_native_bf16(), native);
  EXPECT_EQ(parse_precision("auto", torch::kCPU), native ? torch::kBFloat16 : torch::kFloat32);
}
