// Port of ldm/models/diffusion/ddim.py: DDIMSampler.ddim_sampling and p_sample_ddim
// (ddim_use_original_steps = False, no mask, no score corrector, no quantize_denoised).
#include "rdm/sampler/ddim.hpp"

#include <spdlog/spdlog.h>

#include "rdm/runtime/error.hpp"
#include "rdm/sampler/solvers.hpp"
#include "sampler/trace.hpp"

namespace rdm::sampler {

std::vector<int64_t> sampler_timesteps(const SamplerOptions& opts, int64_t num_timesteps) {
  if (opts.reference_timesteps) return make_ddim_timesteps_reference(opts.discretize, opts.steps, num_timesteps);
  return make_ddim_timesteps(opts.discretize, opts.steps, num_timesteps);
}

namespace {
// torch.full((b, 1, 1, 1), value) on x's device, float32.
torch::Tensor coef(const torch::Tensor& x, double value) {
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);
  return torch::full(shape, value, torch::TensorOptions().dtype(torch::kFloat32).device(x.device()));
}
}  // namespace

void check_finite(const torch::Tensor& t, const char* what, const char* sampler, int64_t step, int64_t total) {
  if (!torch::isfinite(t).all().item<bool>())
    fail("{} is not finite at {} step {}/{} (NaN or inf; the model weights or the inputs are broken, or the "
         "precision overflowed: try --precision fp32)",
         what, sampler, step + 1, total);
}

DdimStep ddim_step(const torch::Tensor& x, const torch::Tensor& e_t_in, const DdimParams& p, int64_t index,
                   const torch::Tensor& noise, double temperature) {
  TORCH_CHECK(index >= 0 && index < p.size(), "ddim_step: index ", index, " out of range");
  const auto e_t = e_t_in.to(x.scalar_type());
  const auto a_t = coef(x, p.alphas[index].item<double>());
  const auto a_prev = coef(x, p.alphas_prev[index].item<double>());
  const auto sigma_t = coef(x, p.sigmas[index].item<double>());
  const auto sqrt_one_minus_at = coef(x, p.sqrt_one_minus_alphas[index].item<double>());

  auto pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt();
  auto dir_xt = (1. - a_prev - sigma_t.pow(2)).sqrt() * e_t;
  auto x_prev = a_prev.sqrt() * pred_x0 + dir_xt;
  if (noise.defined()) {
    TORCH_CHECK(noise.sizes() == x.sizes(), "ddim_step: noise has shape ", noise.sizes(), ", expected ", x.sizes());
    x_prev = x_prev + sigma_t * noise.to(x.device(), x.scalar_type()) * temperature;
  } else if (p.sigmas[index].item<double>() != 0.0) {
    fail("DDIM: step {} has sigma {} > 0 but no noise", index, p.sigmas[index].item<double>());
  }
  return {x_prev, pred_x0};
}

torch::Tensor ddim_sample(const EpsFn& eps, torch::Tensor x, const Schedule& schedule, const SamplerOptions& opts,
                          const ProgressFn& progress) {
  if (!eps) fail("DDIM: no model function");
  if (!x.defined() || x.dim() < 2) fail("DDIM: x_T must be a batch of latents");
  if (!(opts.eta >= 0)) fail("DDIM: eta must be >= 0, got {}", opts.eta);
  if (x.scalar_type() != torch::kFloat64) x = x.to(torch::kFloat32);
  const auto timesteps = spaced_timesteps(opts.spacing, opts, schedule.alphas_cumprod);
  const DdimParams p = make_ddim_params(schedule.alphas_cumprod, timesteps, opts.eta);
  const int64_t total = p.size();
  const int64_t b = x.size(0);
  spdlog::debug("DDIM: {} steps, eta {}, latent {}", total, opts.eta, c10::str(x.sizes()));
  c10::optional<torch::Generator> gen;
  if (opts.generator.defined()) gen = opts.generator;

  SamplerTrace* tr = opts.trace;
  if (tr) {
    *tr = SamplerTrace{};
    tr->ddim_timesteps = timesteps;
  }
  for (int64_t i = 0; i < total; ++i) {
    const int64_t index = total - i - 1;
    const int64_t step = timesteps[index];
    const auto ts = torch::full({b}, step, torch::TensorOptions().dtype(torch::kInt64).device(x.device()));
    if (tr) {
      tr->call_x.push_back(x);
      tr->call_t.push_back(step);
    }
    const auto e_t = eps(x, ts).to(x.scalar_type());
    TORCH_CHECK(e_t.sizes() == x.sizes(), "DDIM: the model returned shape ", e_t.sizes(), " for a latent of shape ",
                x.sizes());
    check_finite(e_t, "UNet output", "DDIM", i, total);
    // noise_like(x.shape) is drawn at every step (also when sigma = 0), as the reference.
    torch::Tensor noise = opts.noise ? opts.noise(static_cast<int>(i))
                                     : torch::randn(x.sizes(), gen, x.options());
    auto out = ddim_step(x, e_t, p, index, noise, opts.temperature);
    x = out.x_prev;
    check_finite(x, "latent", "DDIM", i, total);
    solver_detail::record_ddim_step(tr, step, index, out, e_t);
    if (tr) tr->model_calls += 1;
    if (progress) progress(static_cast<int>(i + 1), static_cast<int>(total));
  }
  return x;
}

}  // namespace rdm::sampler
