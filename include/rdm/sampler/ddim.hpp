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

namespace rdm {

// eps = f(x, t): x the latent [B, C, h, w], t int64 [B] (the same timestep for every row).
using EpsFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t)>;
// Called after each step with (steps done, total steps).
using ProgressFn = std::function<void(int step, int total)>;

// What a sampler run did, step by step (filled only when SamplerOptions::trace is set).
struct SamplerTrace {
  std::vector<int64_t> ddim_timesteps;               // ascending, as selected
  std::vector<int64_t> sampling_timesteps_in_order;  // descending, as run
  std::vector<int64_t> step_index;                   // the reference's `index`: total-1 ... 0
  std::vector<torch::Tensor> x_prev;                 // latent after each step
  std::vector<torch::Tensor> pred_x0;                // predicted x0 of each step
  std::vector<torch::Tensor> e_t;                    // eps of each step (PLMS: the first call's,
                                                     // as it enters the history)
  int64_t model_calls = 0;                           // number of EpsFn calls
  std::vector<torch::Tensor> call_x;                 // per EpsFn call: the latent passed in
  std::vector<int64_t> call_t;                       // per EpsFn call: its timestep
};

struct SamplerOptions {
  int steps = 50;      // S, the number of sampling steps asked for
  double eta = 0.0;    // DDIM stochasticity (>= 0); PLMS requires 0
  // Standard-normal noise for step i (multiplied by sigma_t); for tests that replay the
  // reference's draws. When empty, noise is drawn from `generator` at every step, also when
  // sigma_t = 0, as the reference does (keeps the random stream aligned with it).
  std::function<torch::Tensor(int step)> noise;
  torch::Generator generator;  // undefined: the default generator of the latent's device
  std::string discretize = "uniform";  // uniform | quad
  // false (default): exactly `steps` timesteps (make_ddim_timesteps); true: the reference's
  // timesteps unchanged (S = 7 runs 8 steps; S = 3 fails as the reference does).
  bool reference_timesteps = false;
  double temperature = 1.0;  // scales the noise term, as the reference
  // Timestep spacing (solvers.hpp: uniform = the reference's, trailing, karras) and the order of
  // the multistep solvers that have one (UniPC: 2 or 3).
  std::string spacing = "uniform";
  int order = 2;
  SamplerTrace* trace = nullptr;
};

// The timesteps a sampler run with these options uses (ascending), for the uniform spacing
// (see spaced_timesteps in solvers.hpp for all spacings).
std::vector<int64_t> sampler_timesteps(const SamplerOptions& opts, int64_t num_timesteps);

// Throws rdm::Error "<what> is not finite at <sampler> step <step+1>/<total>" when t holds a
// NaN or inf (one isfinite().all() per call; the samplers check eps and the latent each step).
void check_finite(const torch::Tensor& t, const char* what, const char* sampler, int64_t step, int64_t total);

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

}  // namespace rdm
