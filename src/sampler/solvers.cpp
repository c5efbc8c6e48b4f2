// Timestep spacings, the solver time grid, DPM-Solver++(2M), Euler ancestral and the sampler
// dispatch. See include/rdm/sampler/solvers.hpp for the published updates these follow.
#include "rdm/sampler/solvers.hpp"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

#include "rdm/runtime/error.hpp"
#include "rdm/sampler/plms.hpp"
#include "sampler/solver_loop.hpp"

namespace rdm::sampler {

const std::vector<std::string>& sampler_names() {
  static const std::vector<std::string> v{"ddim", "plms", "dpmpp2m", "unipc", "euler_a"};
  return v;
}
const std::vector<std::string>& spacing_names() {
  static const std::vector<std::string> v{"uniform", "trailing", "karras"};
  return v;
}

namespace {
std::vector<double> abar_values(const torch::Tensor& alphas_cumprod) {
  auto a = alphas_cumprod.to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(a.data_ptr<double>(), a.data_ptr<double>() + a.numel());
}

std::vector<int64_t> karras_timesteps(int64_t S, const std::vector<double>& abar) {
  const int64_t T = static_cast<int64_t>(abar.size());
  std::vector<double> log_sigma(abar.size());
  for (size_t t = 0; t < abar.size(); ++t) log_sigma[t] = 0.5 * std::log((1.0 - abar[t]) / abar[t]);
  const double rho = 7.0;
  const double smax = std::exp(log_sigma[T - 1]), smin = std::exp(log_sigma[1]);
  const double a = std::pow(smax, 1.0 / rho), b = std::pow(smin, 1.0 / rho);
  std::vector<int64_t> desc;
  for (int64_t k = 0; k < S; ++k) {
    const double ramp = S == 1 ? 0.0 : static_cast<double>(k) / static_cast<double>(S - 1);
    const double ls = rho * std::log(a + ramp * (b - a));
    // log sigma increases with t: the nearest timestep in log sigma, among 1 .. T-1.
    auto it = std::lower_bound(log_sigma.begin() + 1, log_sigma.end(), ls);
    int64_t t = std::clamp<int64_t>(it - log_sigma.begin(), 1, T - 1);
    if (t > 1 && std::abs(log_sigma[t - 1] - ls) <= std::abs(log_sigma[t] - ls)) t -= 1;
    desc.push_back(t);
  }
  std::vector<int64_t> asc(desc.rbegin(), desc.rend());
  // Rounding can merge neighbours at the low-noise end: keep the timesteps strictly increasing.
  for (size_t i = 1; i < asc.size(); ++i) asc[i] = std::max(asc[i], asc[i - 1] + 1);
  if (asc.back() > T - 1) fail("karras spacing: {} steps do not fit into {} timesteps", S, T);
  return asc;
}
}  // namespace

std::vector<int64_t> spaced_timesteps(const std::string& spacing, const SamplerOptions& opts,
                                      const torch::Tensor& alphas_cumprod) {
  const int64_t T = alphas_cumprod.numel();
  if (spacing == "uniform") return sampler_timesteps(opts, T);
  const int64_t S = opts.steps;
  if (S < 1 || S > T - 1) fail("sampler: number of steps must lie in [1, {}], got {}", T - 1, S);
  if (spacing == "trailing") {
    std::vector<int64_t> asc;
    for (int64_t i = S - 1; i >= 0; --i) {
      const double v = std::round(static_cast<double>(T) - static_cast<double>(i) * T / S) - 1.0;
      asc.push_back(static_cast<int64_t>(v));
    }
    return asc;
  }
  if (spacing == "karras") return karras_timesteps(S, abar_values(alphas_cumprod));
  fail("there is no timestep spacing called '{}' (uniform, trailing, karras)", spacing);
}

SolverGrid make_solver_grid(const torch::Tensor& alphas_cumprod, const std::vector<int64_t>& ascending) {
  const auto abar = abar_values(alphas_cumprod);
  SolverGrid g;
  g.timesteps.assign(ascending.rbegin(), ascending.rend());
  auto push = [&](double a) {
    g.alpha.push_back(std::sqrt(a));
    g.sigma.push_back(std::sqrt(1.0 - a));
    g.lambda.push_back(std::log(g.alpha.back()) - std::log(g.sigma.back()));
  };
  for (int64_t t : g.timesteps) {
    if (t < 0 || t >= static_cast<int64_t>(abar.size())) fail("sampler: timestep {} outside [0, {})", t, abar.size());
    push(abar[static_cast<size_t>(t)]);
  }
  push(abar[0]);  // the final level, as DDIM's alphas_prev[0]
  return g;
}

namespace solver_detail {
LoopState::LoopState(const char* name, const EpsFn& eps, torch::Tensor x_T, const Schedule& schedule,
                     const SamplerOptions& opts)
    : name_(name), eps_(eps), opts_(opts) {
  if (!eps) fail("{}: no model function", name);
  if (!x_T.defined() || x_T.dim() < 2) fail("{}: x_T must be a batch of latents", name);
  x = x_T.scalar_type() == torch::kFloat64 ? x_T : x_T.to(torch::kFloat32);
  const auto asc = spaced_timesteps(opts.spacing, opts, schedule.alphas_cumprod);
  grid = make_solver_grid(schedule.alphas_cumprod, asc);
  if (opts.generator.defined()) gen_ = opts.generator;
  if (opts.trace) {
    *opts.trace = SamplerTrace{};
    opts.trace->ddim_timesteps = asc;
  }
  spdlog::debug("{}: {} steps ({} spacing), latent {}", name, grid.size(), opts.spacing, c10::str(x.sizes()));
}

torch::Tensor LoopState::data_prediction(int64_t i) {
  const int64_t step = grid.timesteps[static_cast<size_t>(i)];
  const auto ts = torch::full({x.size(0)}, step, torch::TensorOptions().dtype(torch::kInt64).device(x.device()));
  SamplerTrace* tr = opts_.trace;
  if (tr) {
    tr->call_x.push_back(x);
    tr->call_t.push_back(step);
  }
  const auto e = eps_(x, ts).to(x.scalar_type());
  TORCH_CHECK(e.sizes() == x.sizes(), name_, ": the model returned shape ", e.sizes(), " for a latent of shape ",
              x.sizes());
  if (tr) {
    tr->model_calls += 1;
    tr->e_t.push_back(e);
  }
  last_eps = e;
  const size_t k = static_cast<size_t>(i);
  return (x - grid.sigma[k] * e) / grid.alpha[k];
}

torch::Tensor LoopState::noise(int64_t i) {
  return opts_.noise ? opts_.noise(static_cast<int>(i)).to(x.device(), x.scalar_type())
                     : torch::randn(x.sizes(), gen_, x.options());
}

void LoopState::finish_step(int64_t i, const torch::Tensor& x0, const ProgressFn& progress) {
  if (SamplerTrace* tr = opts_.trace) {
    const int64_t step = grid.timesteps[static_cast<size_t>(i)];
    tr->sampling_timesteps_in_order.push_back(step);
    tr->step_index.push_back(grid.size() - 1 - i);
    tr->x_prev.push_back(x);
    tr->pred_x0.push_back(x0);
  }
  if (progress) progress(static_cast<int>(i + 1), static_cast<int>(grid.size()));
}
}  // namespace solver_detail

torch::Tensor dpmpp_2m_sample(const EpsFn& eps, torch::Tensor x_T, const Schedule& schedule,
                              const SamplerOptions& opts, const ProgressFn& progress) {
  if (opts.eta != 0) fail("dpmpp2m: the solver is deterministic; eta must be 0, got {}", opts.eta);
  solver_detail::LoopState s("dpmpp2m", eps, std::move(x_T), schedule, opts);
  const auto& g = s.grid;
  const int64_t n = g.size();
  torch::Tensor x0_prev;
  for (int64_t i = 0; i < n; ++i) {
    const size_t k = static_cast<size_t>(i);
    const torch::Tensor x0 = s.data_prediction(i);
    const double h = g.lambda[k + 1] - g.lambda[k];
    torch::Tensor d = x0;
    if (i > 0 && i < n - 1) {  // second order: the first and the last step are first order
      const double r = (g.lambda[k] - g.lambda[k - 1]) / h;
      d = (1.0 + 1.0 / (2.0 * r)) * x0 - (1.0 / (2.0 * r)) * x0_prev;
    }
    // x_{i+1} = (sigma_{i+1} / sigma_i) x_i - alpha_{i+1} (e^{-h} - 1) D_i
    s.x = (g.sigma[k + 1] / g.sigma[k]) * s.x - (g.alpha[k + 1] * std::expm1(-h)) * d;
    x0_prev = x0;
    s.finish_step(i, x0, progress);
  }
  return s.x;
}

torch::Tensor euler_ancestral_sample(const EpsFn& eps, torch::Tensor x_T, const Schedule& schedule,
                                     const SamplerOptions& opts, const ProgressFn& progress) {
  if (!(opts.eta >= 0 && opts.eta <= 1)) fail("euler_a: eta must lie in [0, 1], got {}", opts.eta);
  solver_detail::LoopState s("euler_a", eps, std::move(x_T), schedule, opts);
  const auto& g = s.grid;
  const int64_t n = g.size();
  for (int64_t i = 0; i < n; ++i) {
    const size_t k = static_cast<size_t>(i);
    const torch::Tensor x0 = s.data_prediction(i);
    const torch::Tensor z = s.noise(i);  // drawn at every step, as DDIM draws it
    // Variance-exploding form: x_ve = x / alpha = x0 + s eps, s = sigma / alpha.
    const double sc = g.sigma[k] / g.alpha[k], sn = g.sigma[k + 1] / g.alpha[k + 1];
    const double up = std::min(sn, opts.eta * std::sqrt(sn * sn * (sc * sc - sn * sn) / (sc * sc)));
    const double down = std::sqrt(sn * sn - up * up);
    // x_ve' = x_ve + eps (down - sc) + up z; d = (x_ve - x0) / sc = eps.
    torch::Tensor x_ve = s.x / g.alpha[k] + (down - sc) * s.last_eps;
    if (up > 0) x_ve = x_ve + (up * opts.temperature) * z;
    s.x = g.alpha[k + 1] * x_ve;
    s.finish_step(i, x0, progress);
  }
  return s.x;
}

int64_t model_calls(const std::string& sampler, int64_t steps) {
  const auto& names = sampler_names();
  if (std::find(names.begin(), names.end(), sampler) == names.end())
    fail("there is no sampler called '{}' (ddim, plms, dpmpp2m, unipc, euler_a)", sampler);
  return sampler == "plms" ? steps + 1 : steps;
}

torch::Tensor run_sampler(const std::string& name, const EpsFn& eps, torch::Tensor x_T, const Schedule& schedule,
                          const SamplerOptions& opts, const ProgressFn& progress) {
  if (name == "ddim") return ddim_sample(eps, std::move(x_T), schedule, opts, progress);
  if (name == "plms") return plms_sample(eps, std::move(x_T), schedule, opts, progress);
  if (name == "dpmpp2m") return dpmpp_2m_sample(eps, std::move(x_T), schedule, opts, progress);
  if (name == "unipc") return unipc_sample(eps, std::move(x_T), schedule, opts, progress);
  if (name == "euler_a") return euler_ancestral_sample(eps, std::move(x_T), schedule, opts, progress);
  fail("there is no sampler called '{}' (ddim, plms, dpmpp2m, unipc, euler_a)", name);
}

}  // namespace rdm::sampler
