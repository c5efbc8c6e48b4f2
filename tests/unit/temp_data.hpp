// Test scaffolding shared by unit tests: a fresh folder per test process, seeded random rows.
#pragma once
#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace rdm_test {

// <tmp>/<prefix>_<name>_<pid>, emptied and created.
inline std::filesystem::path fresh_temp_dir(const std::string& prefix, const std::string& name) {
  namespace fs = std::filesystem;
  fs::path p = fs::temp_directory_path() / (prefix + "_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// n x d standard-normal float32 rows from a CPU generator seeded with `seed`.
inline torch::Tensor random_rows(int64_t n, int64_t d, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::randn({n, d}, gen, torch::kFloat32);
}

}  // namespace rdm_test
