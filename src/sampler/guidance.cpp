// Classifier-free guidance as in p_sample_ddim / p_sample_plms (ldm/models/diffusion/ddim.py,
// plms.py): one model call on the doubled batch, unconditional half first.
#include "rdm/sampler/guidance.hpp"

#include "rdm/runtime/error.hpp"

namespace rdm::sampler {

EpsFn classifier_free_guidance(ModelFn model, torch::Tensor c, torch::Tensor uc, double scale) {
  if (!model) fail("guidance: no model function");
  if (!uc.defined() || scale == 1.0) {
    return [model = std::move(model), c = std::move(c)](const torch::Tensor& x, const torch::Tensor& t) {
      return model(x, t, c);
    };
  }
  if (c.defined() && uc.sizes() != c.sizes())
    fail("guidance: unconditional context has shape {}, the context {}", c10::str(uc.sizes()), c10::str(c.sizes()));
  auto c_in = torch::cat({uc, c});
  return [model = std::move(model), c_in = std::move(c_in), scale](const torch::Tensor& x, const torch::Tensor& t) {
    const auto x_in = torch::cat({x, x});
    const auto t_in = torch::cat({t, t});
    auto halves = model(x_in, t_in, c_in).chunk(2);
    const auto& e_u = halves[0];
    const auto& e_c = halves[1];
    return e_u + scale * (e_c - e_u);
  };
}

}  // namespace rdm::sampler
