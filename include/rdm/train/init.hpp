// Seeded parameter initialisation for training from scratch, independent of LibTorch's global
// generator: every tensor drawn from its own generator seeded from (seed, parameter name), so
// the same seed gives the same model on every device and in every construction order.
#pragma once
#include <cstdint>
#include <string>

#include <torch/nn/module.h>

namespace rdm::train {

// PyTorch's defaults, re-drawn: for each module holding a `weight` of 2+ dimensions (Linear,
// Conv, Embedding excepted: see below), weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
// (kaiming_uniform with a = sqrt(5), as nn.Linear / nn.Conv reset_parameters); 1-d `weight`
// (norms) = 1 and their `bias` = 0; Embedding-like modules (a "weight" whose module is named
// *embedding*) ~ N(0, 1). Other parameters are left as they are.
void init_default(torch::nn::Module& module, uint64_t seed);

// The generator of one named tensor.
uint64_t name_seed(uint64_t seed, const std::string& name);

// Fills `t` in place from the named generator: N(0, std^2) / U(-bound, bound) / constant.
void fill_normal(torch::Tensor& t, double std, uint64_t seed, const std::string& name);
void fill_uniform(torch::Tensor& t, double bound, uint64_t seed, const std::string& name);

}  // namespace rdm::train
