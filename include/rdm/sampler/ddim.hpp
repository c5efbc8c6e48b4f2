// Port of ldm/models/diffusion/ddim.py (DDIMSampler.sample / ddim_sampling / p_sample_ddim) as a
// plain loop over a noise-prediction callback. The sampler knows nothing of the UNet, the
// conditioning or guidance: those live in the EpsFn (see guidance.hpp).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "rdm/sampler/schedule.hpp"
#include "rdm/sampler/types.hpp"

namespace rdm::sampler {

struct DdimStep {
  torch::Tensor x_prev, pred_x0;
};
// One DDIM update with the coefficients of entry `index` of `p`, in float32 as the reference:
// pred_x0 = (x - sqrt(1-a_t) e) / sqrt(a_t); x_prev = sqrt(a_prev) pred_x0 +
// sqrt(1 - a_prev - sigma^2) e + sigma * noise * temperature. `noise` may be undefined when
// sigma = 0 (then no noise term is added; the result is the same).
DdimStep ddim_step(const torch::Tensor& x, const torch::Tensor& e_t, const DdimParams& p, int64_t index,
                   const torch::Tensor& noise, double temperature = 1.0);

// DDIMSampler.sample(S = opts.steps, eta = opts.eta, x_T = x_T) with the conditioning inside
// `eps`. Returns the final latent. The sampler arithmetic runs in float32 as the reference's
// (a float16/bfloat16 x_T is converted; float64 stays float64); eps values are cast to it.
// With noise drawn from `generator`, the generator must live on x_T's device.
torch::Tensor ddim_sample(const EpsFn& eps, torch::Tensor x_T, const Schedule& schedule, const SamplerOptions& opts,
                          const ProgressFn& progress = {});

}  // namespace rdm::sampler
