// Fast ODE/SDE solvers for the discrete-time linear ("DDPM") schedule, as plain loops over the
// same noise-prediction callback as DDIM and PLMS. The reference (CompVis latent-diffusion) has
// only DDIM and PLMS; these follow the published updates:
//   DPM-Solver++(2M)  Lu et al. 2022, arXiv 2211.01095, Algorithm 2 (data prediction, multistep)
//   UniPC (bh2)       Zhao et al. 2023, arXiv 2302.04867, UniP-p predictor + UniC corrector
//   Euler ancestral   Karras et al. 2022 / k-diffusion's sample_euler_ancestral, eta = 1
// with alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t), lambda_t = log(alpha_t / sigma_t) and
// the data prediction x0 = (x - sigma_t eps) / alpha_t.
//
// Time grid: the run's timesteps t_0 > t_1 > ... > t_{N-1} (one model call each) and, after the
// last, the level abar[0] exactly as DDIM's final step (alphas_prev[0] = alphas_cumprod[0]). So a
// first-order DPM-Solver++ step equals a DDIM (eta = 0) step, and every solver returns a latent
// at the same noise level as DDIM does.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "rdm/sampler/ddim.hpp"
#include "rdm/sampler/schedule.hpp"

namespace rdm::sampler {

// The names accepted by --sampler / --spacing.
const std::vector<std::string>& sampler_names();  // ddim, plms, dpmpp2m, unipc, euler_a
const std::vector<std::string>& spacing_names();  // uniform, trailing, karras

// The ascending timesteps of a run with `steps` model evaluations:
//   uniform   the reference's DDIM spacing (make_ddim_timesteps, opts.discretize), the default
//   trailing  round(T - i T / S) - 1 for i < S (ends at T - 1; "Common Diffusion Noise
//             Schedules and Sample Steps are Flawed", Lin et al. 2023)
//   karras    sigma_k = (sigma_max^(1/7) + k/(S-1) (sigma_min^(1/7) - sigma_max^(1/7)))^7 with
//             sigma = sqrt((1 - abar) / abar), sigma_max at T - 1 and sigma_min at t = 1, each
//             mapped to the nearest timestep by log-sigma and kept strictly increasing
// S distinct values in [1, T - 1] for uniform/karras, in [0, T - 1] for trailing.
std::vector<int64_t> spaced_timesteps(const std::string& spacing, const SamplerOptions& opts,
                                      const torch::Tensor& alphas_cumprod);

// The noise levels of a run, in the order it visits them: entries 0..N-1 are the timesteps
// (descending), entry N the final level abar[0]. From the float32 alphas_cumprod buffer (the
// values DDIM uses), computed in float64.
struct SolverGrid {
  std::vector<int64_t> timesteps;  // descending, N entries
  std::vector<double> alpha, sigma, lambda;  // N + 1 entries
  int64_t size() const { return static_cast<int64_t>(timesteps.size()); }
};
SolverGrid make_solver_grid(const torch::Tensor& alphas_cumprod, const std::vector<int64_t>& ascending);

// DPM-Solver++(2M): first step and last step first-order, second-order multistep in between.
// Deterministic (opts.eta must be 0). One model call per step.
torch::Tensor dpmpp_2m_sample(const EpsFn& eps, torch::Tensor x_T, const Schedule& schedule,
                              const SamplerOptions& opts, const ProgressFn& progress = {});

// UniPC with B(h) = e^h - 1 (bh2), data prediction, predictor order `opts.order` (2 or 3,
// warming up from 1 and lowering to 1 on the last step, as the published code's
// lower_order_final), UniC corrector after every step but the last (it reuses the model call of
// the next step: one model call per step). Deterministic (opts.eta must be 0).
torch::Tensor unipc_sample(const EpsFn& eps, torch::Tensor x_T, const Schedule& schedule, const SamplerOptions& opts,
                           const ProgressFn& progress = {});

// Euler ancestral (eta = opts.eta, default 1 for this sampler when the pipeline asks for it) in
// the variance-exploding form x / alpha: d = (x_ve - x0) / s; s_up = min(s_next, eta sqrt(s_next^2
// (s^2 - s_next^2) / s^2)); s_down = sqrt(s_next^2 - s_up^2); x_ve += d (s_down - s) + s_up z.
// z from opts.noise(i) or opts.generator, as DDIM draws its noise.
torch::Tensor euler_ancestral_sample(const EpsFn& eps, torch::Tensor x_T, const Schedule& schedule,
                                     const SamplerOptions& opts, const ProgressFn& progress = {});

// Model (UNet) calls of a run of `steps` steps: steps + 1 for PLMS (its first step calls the
// model twice, as the reference's), steps for the others. With classifier-free guidance each
// call evaluates the UNet on a doubled batch. rdm::Error for an unknown name.
int64_t model_calls(const std::string& sampler, int64_t steps);

// Dispatch by name (ddim, plms, dpmpp2m, unipc, euler_a); rdm::Error for an unknown name.
torch::Tensor run_sampler(const std::string& name, const EpsFn& eps, torch::Tensor x_T, const Schedule& schedule,
                          const SamplerOptions& opts, const ProgressFn& progress = {});

}  // namespace rdm::sampler
