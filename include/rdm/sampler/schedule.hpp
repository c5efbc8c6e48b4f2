// Port of ldm/modules/diffusionmodules/util.py (make_beta_schedule, make_ddim_timesteps,
// make_ddim_sampling_parameters), ldm/models/diffusion/ddpm.py (DDPM.register_schedule) and the
// schedule part of ldm/models/diffusion/ddim.py (DDIMSampler.make_schedule).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include "rdm/formats/tensor_file.hpp"

namespace rdm::sampler {

// The schedule options of DDPM/LatentDiffusion (defaults = the reference constructor's).
struct ScheduleConfig {
  std::string beta_schedule = "linear";  // linear | cosine | sqrt_linear | sqrt
  int64_t timesteps = 1000;
  double linear_start = 1e-4;
  double linear_end = 2e-2;
  double cosine_s = 8e-3;
  double v_posterior = 0.0;
  std::string parameterization = "eps";  // eps | x0 (only used for lvlb_weights)

  // Reads the schedule keys of a LatentDiffusion `model.params` object (beta_schedule,
  // timesteps, linear_start, linear_end, cosine_s, v_posterior, parameterization; given_betas
  // is rejected) and ignores every other key: the caller checks for unknown keys, using
  // json_keys() to know which ones this struct consumed.
  static ScheduleConfig from_model_params(const nlohmann::json& params);
  static const std::vector<std::string>& json_keys();
  // Validates the values (throws rdm::Error naming the option).
  void validate() const;
};

// make_beta_schedule(...) in float64, shape [T].
torch::Tensor make_beta_schedule(const std::string& schedule, int64_t n_timestep, double linear_start,
                                 double linear_end, double cosine_s);

// The DDPM buffers.
struct Schedule {
  ScheduleConfig config;
  int64_t num_timesteps = 0;

  // float64, as numpy holds them in register_schedule.
  torch::Tensor betas64, alphas64, alphas_cumprod64, alphas_cumprod_prev64;

  // The float32 buffers LatentDiffusion registers, by their state-dict names: betas,
  // alphas_cumprod, alphas_cumprod_prev, sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod,
  // log_one_minus_alphas_cumprod, sqrt_recip_alphas_cumprod, sqrt_recipm1_alphas_cumprod,
  // posterior_variance, posterior_log_variance_clipped, posterior_mean_coef1,
  // posterior_mean_coef2 (persistent) and lvlb_weights (non-persistent).
  std::map<std::string, torch::Tensor> buffers;
  // buffers["alphas_cumprod"]: what the DDIM/PLMS samplers use.
  torch::Tensor alphas_cumprod;

  static Schedule make(const ScheduleConfig& cfg);
  // Names of the persistent buffers (those a checkpoint holds), in registration order.
  static const std::vector<std::string>& persistent_buffer_names();

  // Compares the persistent buffers with state[prefix + name] where present (a CompVis
  // checkpoint holds all 12); |a-b| <= rtol*|b| + atol (defaults cover float16 checkpoints).
  // Throws rdm::Error naming the buffer and `file` on a mismatch (a checkpoint trained with
  // another schedule than its config states). Returns how many buffers were compared.
  int check_against(const formats::StateDict& state, const std::string& prefix, const std::string& file,
                    double rtol = 1e-3, double atol = 1e-7) const;
};

// ---------------------------------------------------------------------------------------------
// DDIM timesteps and coefficients

// make_ddim_timesteps exactly as the reference ('uniform': range(0, T, T // S) + 1, i.e.
// ceil(T / (T // S)) entries, may contain T itself; 'quad': (linspace(0, sqrt(0.8 T), S)^2)
// truncated, + 1). Throws rdm::Error for S < 1, S > T (the reference fails with a zero range
// step) or an unknown method.
std::vector<int64_t> make_ddim_timesteps_reference(const std::string& method, int64_t num_ddim_timesteps,
                                                   int64_t num_ddpm_timesteps);

// The timesteps rdm samples with: exactly S of them, all < T. 'uniform': floor(i T / S) + 1 for
// i < S (evenly spread over [1, T)), which equals the reference whenever S divides T — exactly
// the cases where the reference runs S steps and works. Where the reference runs another number
// of steps (S = 7 runs 8 for T = 1000) or fails with an IndexError (S = 3, 9, 27, 37, 111, ...:
// its list reaches T) this logs a warning (once per S and T) saying what the reference would do
// and what rdm does.
// 'quad' as the reference (checked < T). S must lie in [1, T-1] (S = T fails in the reference).
std::vector<int64_t> make_ddim_timesteps(const std::string& method, int64_t num_ddim_timesteps,
                                         int64_t num_ddpm_timesteps);

// DDIMSampler.make_schedule's arrays (held in the dtypes the reference holds them):
struct DdimParams {
  std::vector<int64_t> timesteps;       // ascending (ddim_timesteps)
  double eta = 0.0;
  torch::Tensor alphas;                 // float32 [S]: alphas_cumprod_f32[timesteps]
  torch::Tensor alphas_prev;            // float64 [S]: [ac[0]] + ac[timesteps[:-1]] (float32 values)
  torch::Tensor sigmas;                 // float64 [S]: eta sqrt((1-a_prev)/(1-a) (1-a/a_prev))
  torch::Tensor sqrt_one_minus_alphas;  // float32 [S]: sqrt(1 - alphas) in float32
  int64_t size() const { return static_cast<int64_t>(timesteps.size()); }
};

// make_ddim_sampling_parameters from the float32 alphas_cumprod buffer. Throws rdm::Error when a
// timestep is outside [0, T) (the reference's IndexError) or eta < 0.
DdimParams make_ddim_params(const torch::Tensor& alphas_cumprod_f32, const std::vector<int64_t>& timesteps,
                            double eta);

}  // namespace rdm::sampler
