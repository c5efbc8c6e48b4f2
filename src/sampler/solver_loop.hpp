// The loop state the solvers in solvers.cpp and unipc.cpp share: the time grid, the model call
// (with trace and shape check) turned into a data prediction, noise draws, per-step bookkeeping.
#pragma once
#include <optional>

#include <torch/torch.h>

#include "rdm/sampler/solvers.hpp"

namespace rdm::sampler::solver_detail {

class LoopState {
 public:
  LoopState(const char* name, const EpsFn& eps, torch::Tensor x_T, const Schedule& schedule,
            const SamplerOptions& opts);
  // Calls the model at grid level i on `x` and returns x0 = (x - sigma_i eps) / alpha_i.
  torch::Tensor data_prediction(int64_t i);
  // Standard-normal noise for step i (opts.noise, else the generator).
  torch::Tensor noise(int64_t i);
  // Trace and progress after step i (x already updated to level i + 1).
  void finish_step(int64_t i, const torch::Tensor& x0, const ProgressFn& progress);

  torch::Tensor x;         // the current latent
  torch::Tensor last_eps;  // the model's output of the last call
  SolverGrid grid;

 private:
  const char* name_;
  const EpsFn& eps_;
  const SamplerOptions& opts_;
  c10::optional<torch::Generator> gen_;
};

}  // namespace rdm::sampler::solver_detail
