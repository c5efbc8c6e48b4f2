// The types every sampler shares: the noise-prediction callback each one loops over (EpsFn),
// the progress callback, the options and the optional step-by-step trace. Samplers are plain
// loops over an EpsFn (ddim.hpp, plms.hpp, solvers.hpp); guidance lives in the EpsFn
// (guidance.hpp) and the pipeline.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace rdm::sampler {

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

}  // namespace rdm::sampler
