// Port of ldm/models/diffusion/plms.py (PLMSSampler: pseudo linear multistep) as a plain loop
// over a noise-prediction callback.
#pragma once
#include <torch/types.h>

#include "rdm/sampler/ddim.hpp"

namespace rdm::sampler {

// PLMSSampler.sample(S = opts.steps, x_T = x_T). opts.eta must be 0 (rdm::Error otherwise, as
// the reference's ValueError). First step: pseudo improved Euler (two EpsFn calls: at t and at
// t_next on the provisional latent, averaged); then Adams-Bashforth of order 2, 3, 4 over the
// history of the raw eps values (at most 3 kept). opts.noise is not used (sigma = 0); noise is
// still drawn from opts.generator at each update, as the reference draws it.
torch::Tensor plms_sample(const EpsFn& eps, torch::Tensor x_T, const Schedule& schedule, const SamplerOptions& opts,
                          const ProgressFn& progress = {});

}  // namespace rdm::sampler
