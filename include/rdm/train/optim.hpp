// AdamW (Loshchilov & Hutter; torch.optim.AdamW's update) over a module's named parameters,
// with its moments kept as named tensors so that a checkpoint stores them beside the weights
// (adam.m.<name>, adam.v.<name>, adam.t) and a resumed run continues bit for bit.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "rdm/formats/tensor_file.hpp"

namespace rdm::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

class AdamW {
 public:
  // Trains every parameter of `module` that requires grad. Weight decay applies to tensors of
  // two or more dimensions only (not to biases, norms, embeddings' scalars).
  AdamW(torch::nn::Module& module, const AdamWOptions& options);

  void zero_grad();
  // One update with learning rate `lr`: p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p).
  void step(double lr);

  // "m.<name>", "v.<name>" and "t" (the update count, int64 0-d).
  formats::StateDict state() const;
  // Restores what state() returned; rdm::Error naming `source` for a missing or mismatched tensor.
  void load_state(const formats::StateDict& state, const std::string& source);
  int64_t updates() const { return t_; }

 private:
  struct Slot {
    std::string name;
    torch::Tensor param, m, v;
    bool decay;
  };
  std::vector<Slot> slots_;
  AdamWOptions o_;
  int64_t t_ = 0;
};

}  // namespace rdm::train
