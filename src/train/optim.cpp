// AdamW with named moments (see rdm/train/optim.hpp).
#include "rdm/train/optim.hpp"

#include <cmath>

#include <torch/torch.h>

#include "rdm/runtime/error.hpp"

namespace rdm::train {

AdamW::AdamW(torch::nn::Module& module, const AdamWOptions& options) : o_(options) {
  for (auto& p : module.named_parameters()) {
    if (!p.value().requires_grad()) continue;
    Slot s;
    s.name = p.key();
    s.param = p.value();
    s.m = torch::zeros_like(s.param);
    s.v = torch::zeros_like(s.param);
    s.decay = s.param.dim() >= 2;
    slots_.push_back(std::move(s));
  }
}

void AdamW::zero_grad() {
  for (auto& s : slots_) {
    auto& g = s.param.mutable_grad();
    if (g.defined()) g = torch::Tensor();
  }
}

void AdamW::step(double lr) {
  torch::NoGradGuard ng;
  ++t_;
  const double bc1 = 1.0 - std::pow(o_.beta1, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(o_.beta2, static_cast<double>(t_));
  const double step_size = lr / bc1, bc2_sqrt = std::sqrt(bc2);
  for (auto& s : slots_) {
    const torch::Tensor& g = s.param.grad();
    if (!g.defined()) continue;
    if (s.decay && o_.weight_decay > 0) s.param.mul_(1.0 - lr * o_.weight_decay);
    s.m.mul_(o_.beta1).add_(g, 1.0 - o_.beta1);
    s.v.mul_(o_.beta2).addcmul_(g, g, 1.0 - o_.beta2);
    auto denom = (s.v.sqrt() / bc2_sqrt).add_(o_.eps);
    s.param.addcdiv_(s.m, denom, -step_size);
  }
}

formats::StateDict AdamW::state() const {
  formats::StateDict sd;
  for (const auto& s : slots_) {
    sd["m." + s.name] = s.m.detach();
    sd["v." + s.name] = s.v.detach();
  }
  sd["t"] = torch::tensor(t_, torch::kInt64);
  return sd;
}

void AdamW::load_state(const formats::StateDict& sd, const std::string& source) {
  torch::NoGradGuard ng;
  auto get = [&](const std::string& key, const torch::Tensor& like) -> const torch::Tensor& {
    auto it = sd.find(key);
    if (it == sd.end()) fail("'{}': optimiser state 'adam.{}' is missing", source, key);
    if (it->second.sizes() != like.sizes())
      fail("'{}': optimiser state 'adam.{}' has shape {}, expected {}", source, key, fmt::join(it->second.sizes(), "x"),
           fmt::join(like.sizes(), "x"));
    return it->second;
  };
  for (auto& s : slots_) {
    s.m.copy_(get("m." + s.name, s.m));
    s.v.copy_(get("v." + s.name, s.v));
  }
  auto it = sd.find("t");
  if (it == sd.end()) fail("'{}': optimiser state 'adam.t' is missing", source);
  t_ = it->second.to(torch::kInt64).item<int64_t>();
  if (sd.size() != 2 * slots_.size() + 1)
    fail("'{}': {} optimiser tensors, expected {}", source, sd.size(), 2 * slots_.size() + 1);
}

}  // namespace rdm::train
