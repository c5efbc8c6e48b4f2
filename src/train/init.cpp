// Seeded initialisation (see rdm/train/init.hpp).
#include "rdm/train/init.hpp"

#include <cmath>

#include <torch/torch.h>

#include "rdm/train/loop.hpp"

namespace rdm::train {

uint64_t name_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a of the name
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
  return step_seed(seed, static_cast<int64_t>(h >> 1), 0x696E6974ull);  // "init"
}

void fill_normal(torch::Tensor& t, double std, uint64_t seed, const std::string& name) {
  torch::NoGradGuard ng;
  auto g = cpu_generator(name_seed(seed, name));
  t.copy_(torch::randn(t.sizes(), g, torch::kFloat32).mul_(std));
}

void fill_uniform(torch::Tensor& t, double bound, uint64_t seed, const std::string& name) {
  torch::NoGradGuard ng;
  auto g = cpu_generator(name_seed(seed, name));
  t.copy_(torch::rand(t.sizes(), g, torch::kFloat32).mul_(2 * bound).sub_(bound));
}

void init_default(torch::nn::Module& module, uint64_t seed) {
  torch::NoGradGuard ng;
  for (const auto& item : module.named_modules()) {
    const std::string& path = item.key();
    torch::nn::Module& m = *item.value();
    auto params = m.named_parameters(/*recurse=*/false);
    auto* w = params.find("weight");
    auto* b = params.find("bias");
    const std::string prefix = path.empty() ? "" : path + ".";
    const bool embedding = m.name().find("Embedding") != std::string::npos;
    if (w && embedding) {
      fill_normal(*w, 1.0, seed, prefix + "weight");
    } else if (w && w->dim() >= 2) {
      const int64_t fan_in = w->numel() / w->size(0);
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      fill_uniform(*w, bound, seed, prefix + "weight");
      if (b) fill_uniform(*b, bound, seed, prefix + "bias");
    } else if (w && w->dim() == 1) {
      w->fill_(1.0);
      if (b) b->fill_(0.0);
    }
  }
}

}  // namespace rdm::train
