// Classifier-free guidance, the one place it lives (the reference repeats it inside
// p_sample_ddim and p_sample_plms of ldm/models/diffusion/{ddim,plms}.py).
#pragma once
#include <functional>

#include <torch/types.h>

#include "rdm/sampler/ddim.hpp"

namespace rdm::sampler {

// eps = model(x, t, context) (e.g. LatentDiffusion::apply_model).
using ModelFn =
    std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context)>;

// The sampler's eps for conditioning `c` [B, L, D] and unconditional conditioning `uc` (same
// shape; knn2img uses zeros_like(c)) at guidance `scale`:
//   one model call on x_in = cat([x, x]), t_in = cat([t, t]), c_in = cat([uc, c]) (uncond first),
//   e_u, e_c = out.chunk(2); eps = e_u + scale * (e_c - e_u).
// As the reference, when `uc` is undefined or scale == 1 the model runs once on (x, t, c).
EpsFn classifier_free_guidance(ModelFn model, torch::Tensor c, torch::Tensor uc, double scale);

}  // namespace rdm::sampler
