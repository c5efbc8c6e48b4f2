// Port of ldm/models/diffusion/plms.py: PLMSSampler.plms_sampling and p_sample_plms
// (ddim_use_original_steps = False, no mask, no score corrector, no quantize_denoised).
#include "rdm/sampler/plms.hpp"

#include <deque>

#include <spdlog/spdlog.h>

#include "rdm/runtime/error.hpp"
#include "rdm/sampler/solvers.hpp"
#include "sampler/trace.hpp"

namespace rdm::sampler {

torch::Tensor plms_sample(const EpsFn& eps, torch::Tensor x, const Schedule& schedule, const SamplerOptions& opts,
                          const ProgressFn& progress) {
  if (!eps) fail("PLMS: no model function");
  if (opts.eta != 0) fail("PLMS: eta must be 0 (ddim_eta must be 0 for PLMS), got {}", opts.eta);
  if (!x.defined() || x.dim() < 2) fail("PLMS: x_T must be a batch of latents");
  if (x.scalar_type() != torch::kFloat64) x = x.to(torch::kFloat32);
  const auto timesteps = spaced_timesteps(opts.spacing, opts, schedule.alphas_cumprod);
  const DdimParams p = make_ddim_params(schedule.alphas_cumprod, timesteps, 0.0);
  const int64_t total = p.size();
  const int64_t b = x.size(0);
  spdlog::debug("PLMS: {} steps, latent {}", total, c10::str(x.sizes()));
  c10::optional<torch::Generator> gen;
  if (opts.generator.defined()) gen = opts.generator;
  const auto ts_opts = torch::TensorOptions().dtype(torch::kInt64).device(x.device());

  SamplerTrace* tr = opts.trace;
  if (tr) {
    *tr = SamplerTrace{};
    tr->ddim_timesteps = timesteps;
  }
  int64_t current = 0;  // the running step, for messages
  auto call = [&](const torch::Tensor& xx, const torch::Tensor& t) {
    if (tr) {
      tr->call_x.push_back(xx);
      tr->call_t.push_back(t[0].item<int64_t>());
    }
    auto e = eps(xx, t);
    TORCH_CHECK(e.sizes() == xx.sizes(), "PLMS: the model returned shape ", e.sizes(), " for a latent of shape ",
                xx.sizes());
    if (tr) tr->model_calls += 1;
    check_finite(e, "UNet output", "PLMS", current, total);
    return e.to(xx.scalar_type());
  };
  // noise_like is drawn inside every get_x_prev_and_pred_x0 (sigma = 0: only the stream moves).
  auto draw = [&](const torch::Tensor& xx) { return torch::randn(xx.sizes(), gen, xx.options()); };

  std::deque<torch::Tensor> old_eps;
  for (int64_t i = 0; i < total; ++i) {
    const int64_t index = total - i - 1;
    const int64_t step = timesteps[index];
    const int64_t step_next = timesteps[total - 1 - std::min(i + 1, total - 1)];
    const auto ts = torch::full({b}, step, ts_opts);
    current = i;

    const auto e_t = call(x, ts);
    torch::Tensor e_t_prime;
    const size_t n = old_eps.size();
    if (n == 0) {
      // Pseudo improved Euler (2nd order)
      auto provisional = ddim_step(x, e_t, p, index, draw(x), opts.temperature);
      const auto e_t_next = call(provisional.x_prev, torch::full({b}, step_next, ts_opts));
      e_t_prime = (e_t + e_t_next) / 2;
    } else if (n == 1) {
      // 2nd order pseudo linear multistep (Adams-Bashforth)
      e_t_prime = (3 * e_t - old_eps[n - 1]) / 2;
    } else if (n == 2) {
      e_t_prime = (23 * e_t - 16 * old_eps[n - 1] + 5 * old_eps[n - 2]) / 12;
    } else {
      e_t_prime = (55 * e_t - 59 * old_eps[n - 1] + 37 * old_eps[n - 2] - 9 * old_eps[n - 3]) / 24;
    }
    auto out = ddim_step(x, e_t_prime, p, index, draw(x), opts.temperature);
    x = out.x_prev;
    check_finite(x, "latent", "PLMS", i, total);
    old_eps.push_back(e_t);
    if (old_eps.size() >= 4) old_eps.pop_front();
    solver_detail::record_ddim_step(tr, step, index, out, e_t);
    if (progress) progress(static_cast<int>(i + 1), static_cast<int>(total));
  }
  return x;
}

}  // namespace rdm::sampler
