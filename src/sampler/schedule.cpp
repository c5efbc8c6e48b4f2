// Port of ldm/modules/diffusionmodules/util.py (make_beta_schedule, make_ddim_timesteps,
// make_ddim_sampling_parameters), DDPM.register_schedule (ldm/models/diffusion/ddpm.py) and the
// arrays of DDIMSampler.make_schedule (ldm/models/diffusion/ddim.py).
#include "rdm/sampler/schedule.hpp"

#include <cmath>
#include <mutex>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/types.h>

#include "rdm/runtime/error.hpp"

namespace rdm::sampler {
using nlohmann::json;

namespace {
constexpr double kPi = 3.14159265358979323846;  // np.pi

torch::Tensor f64(const std::vector<double>& v) {
  return torch::tensor(v, torch::TensorOptions().dtype(torch::kFloat64));
}

std::string join(const std::vector<int64_t>& v, size_t max_items = 12) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i == max_items && v.size() > max_items + 1) {
      s += ", ..., " + std::to_string(v.back());
      break;
    }
    s += (i ? ", " : "") + std::to_string(v[i]);
  }
  return "[" + s + "]";
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// ScheduleConfig

const std::vector<std::string>& ScheduleConfig::json_keys() {
  static const std::vector<std::string> keys = {"beta_schedule", "timesteps",   "linear_start",
                                                "linear_end",    "cosine_s",    "v_posterior",
                                                "parameterization", "given_betas"};
  return keys;
}

ScheduleConfig ScheduleConfig::from_model_params(const json& p) {
  ScheduleConfig c;
  if (!p.is_object()) fail("model params: expected an object");
  auto num = [&](const char* key, double& out) {
    if (!p.contains(key)) return;
    if (!p.at(key).is_number()) fail("model params: '{}' must be a number, got {}", key, p.at(key).dump());
    out = p.at(key).get<double>();
  };
  auto str = [&](const char* key, std::string& out) {
    if (!p.contains(key)) return;
    if (!p.at(key).is_string()) fail("model params: '{}' must be a string, got {}", key, p.at(key).dump());
    out = p.at(key).get<std::string>();
  };
  str("beta_schedule", c.beta_schedule);
  if (p.contains("timesteps")) {
    if (!p.at("timesteps").is_number_integer())
      fail("model params: 'timesteps' must be an integer, got {}", p.at("timesteps").dump());
    c.timesteps = p.at("timesteps").get<int64_t>();
  }
  num("linear_start", c.linear_start);
  num("linear_end", c.linear_end);
  num("cosine_s", c.cosine_s);
  num("v_posterior", c.v_posterior);
  str("parameterization", c.parameterization);
  if (p.contains("given_betas") && !p.at("given_betas").is_null())
    fail("model params: 'given_betas' is not supported (use beta_schedule)");
  c.validate();
  return c;
}

void ScheduleConfig::validate() const {
  if (beta_schedule != "linear" && beta_schedule != "cosine" && beta_schedule != "sqrt_linear" &&
      beta_schedule != "sqrt")
    fail("schedule: beta_schedule '{}' unknown (linear, cosine, sqrt_linear, sqrt)", beta_schedule);
  if (timesteps < 2) fail("schedule: timesteps must be at least 2, got {}", timesteps);
  if (parameterization != "eps" && parameterization != "x0")
    fail("schedule: parameterization '{}' is not supported (eps, x0)", parameterization);
  if (beta_schedule != "cosine" && !(linear_start > 0 && linear_end > 0 && linear_start < 1 && linear_end < 1))
    fail("schedule: linear_start/linear_end must lie in (0, 1), got {} / {}", linear_start, linear_end);
}

// ---------------------------------------------------------------------------------------------
// Betas and the DDPM buffers

torch::Tensor make_beta_schedule(const std::string& schedule, int64_t n, double linear_start, double linear_end,
                                 double cosine_s) {
  const auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  if (schedule == "linear")
    return torch::linspace(std::pow(linear_start, 0.5), std::pow(linear_end, 0.5), n, opt).pow(2);
  if (schedule == "cosine") {
    auto t = torch::arange(n + 1, opt) / static_cast<double>(n) + cosine_s;
    auto alphas = t / (1 + cosine_s) * kPi / 2;
    alphas = torch::cos(alphas).pow(2);
    alphas = alphas / alphas[0];
    auto betas = 1 - alphas.slice(0, 1) / alphas.slice(0, 0, n);
    return torch::clamp(betas, 0.0, 0.999);
  }
  if (schedule == "sqrt_linear") return torch::linspace(linear_start, linear_end, n, opt);
  if (schedule == "sqrt") return torch::linspace(linear_start, linear_end, n, opt).pow(0.5);
  fail("schedule '{}' unknown.", schedule);
}

const std::vector<std::string>& Schedule::persistent_buffer_names() {
  static const std::vector<std::string> names = {
      "betas",
      "alphas_cumprod",
      "alphas_cumprod_prev",
      "sqrt_alphas_cumprod",
      "sqrt_one_minus_alphas_cumprod",
      "log_one_minus_alphas_cumprod",
      "sqrt_recip_alphas_cumprod",
      "sqrt_recipm1_alphas_cumprod",
      "posterior_variance",
      "posterior_log_variance_clipped",
      "posterior_mean_coef1",
      "posterior_mean_coef2"};
  return names;
}

Schedule Schedule::make(const ScheduleConfig& cfg) {
  cfg.validate();
  Schedule s;
  s.config = cfg;
  s.num_timesteps = cfg.timesteps;
  // numpy float64 part of register_schedule
  auto betas = make_beta_schedule(cfg.beta_schedule, cfg.timesteps, cfg.linear_start, cfg.linear_end, cfg.cosine_s);
  auto alphas = 1.0 - betas;
  auto ac = torch::cumprod(alphas, 0);
  auto acp = torch::cat({f64({1.0}), ac.slice(0, 0, cfg.timesteps - 1)});
  s.betas64 = betas;
  s.alphas64 = alphas;
  s.alphas_cumprod64 = ac;
  s.alphas_cumprod_prev64 = acp;

  const double v = cfg.v_posterior;
  auto to32 = [](const torch::Tensor& t) { return t.to(torch::kFloat32); };
  auto& b = s.buffers;
  b["betas"] = to32(betas);
  b["alphas_cumprod"] = to32(ac);
  b["alphas_cumprod_prev"] = to32(acp);
  b["sqrt_alphas_cumprod"] = to32(torch::sqrt(ac));
  b["sqrt_one_minus_alphas_cumprod"] = to32(torch::sqrt(1.0 - ac));
  b["log_one_minus_alphas_cumprod"] = to32(torch::log(1.0 - ac));
  b["sqrt_recip_alphas_cumprod"] = to32(torch::sqrt(1.0 / ac));
  b["sqrt_recipm1_alphas_cumprod"] = to32(torch::sqrt(1.0 / ac - 1));
  auto posterior_variance = (1 - v) * betas * (1.0 - acp) / (1.0 - ac) + v * betas;
  b["posterior_variance"] = to32(posterior_variance);
  b["posterior_log_variance_clipped"] = to32(torch::log(torch::clamp_min(posterior_variance, 1e-20)));
  b["posterior_mean_coef1"] = to32(betas * torch::sqrt(acp) / (1.0 - ac));
  b["posterior_mean_coef2"] = to32((1.0 - acp) * torch::sqrt(alphas) / (1.0 - ac));

  // lvlb_weights (non-persistent), computed from the float32 buffers as the reference.
  torch::Tensor lvlb;
  if (cfg.parameterization == "eps") {
    lvlb = b["betas"].pow(2) / (2 * b["posterior_variance"] * to32(alphas) * (1 - b["alphas_cumprod"]));
  } else {  // x0: 0.5 * np.sqrt(Tensor(ac)) / (2. * 1 - Tensor(ac))
    auto ac32 = to32(ac);
    lvlb = 0.5 * torch::sqrt(ac32) / (2.0 * 1 - ac32);
  }
  lvlb[0] = lvlb[1];
  b["lvlb_weights"] = lvlb;
  s.alphas_cumprod = b["alphas_cumprod"];
  return s;
}

int Schedule::check_against(const formats::StateDict& state, const std::string& prefix, const std::string& file,
                            double rtol, double atol) const {
  int n = 0;
  for (const auto& name : persistent_buffer_names()) {
    auto it = state.find(prefix + name);
    if (it == state.end()) continue;
    const auto& ours = buffers.at(name);
    auto theirs = it->second.to(torch::kCPU).to(torch::kFloat64);
    if (theirs.sizes() != ours.sizes())
      fail("schedule buffer '{}{}' in '{}' has shape {}, the config's schedule has {} timesteps", prefix, name,
           file, c10::str(theirs.sizes()), num_timesteps);
    auto o = ours.to(torch::kFloat64);
    auto bad = ((theirs - o).abs() > rtol * o.abs() + atol);
    if (bad.any().item<bool>()) {
      const int64_t i = bad.to(torch::kInt64).argmax().item<int64_t>();
      fail("schedule buffer '{}{}' in '{}' differs from the config's schedule ({} {} -> {}) at t={}: {} vs {}", prefix,
           name, file, config.beta_schedule, config.linear_start, config.linear_end, i, theirs[i].item<double>(),
           o[i].item<double>());
    }
    ++n;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// DDIM timesteps

std::vector<int64_t> make_ddim_timesteps_reference(const std::string& method, int64_t S, int64_t T) {
  if (S < 1) fail("DDIM: number of steps must be at least 1, got {}", S);
  std::vector<int64_t> out;
  if (method == "uniform") {
    const int64_t c = T / S;
    if (c == 0) fail("DDIM: {} steps exceed the {} diffusion timesteps (range() arg 3 must not be zero)", S, T);
    for (int64_t t = 0; t < T; t += c) out.push_back(t + 1);
  } else if (method == "quad") {
    // np.linspace(0, sqrt(T * .8), S) ** 2, astype(int), + 1
    const double stop = std::sqrt(static_cast<double>(T) * .8);
    const double step = S > 1 ? stop / static_cast<double>(S - 1) : 0.0;
    for (int64_t i = 0; i < S; ++i) {
      double y = (S > 1 && i == S - 1) ? stop : static_cast<double>(i) * step;
      out.push_back(static_cast<int64_t>(y * y) + 1);
    }
  } else {
    fail("DDIM: there is no discretization method called '{}' (uniform, quad)", method);
  }
  return out;
}

std::vector<int64_t> make_ddim_timesteps(const std::string& method, int64_t S, int64_t T) {
  if (S < 1 || S > T - 1) fail("DDIM: number of steps must lie in [1, {}], got {}", T - 1, S);
  if (method == "quad") {
    auto ts = make_ddim_timesteps_reference(method, S, T);
    for (auto t : ts)
      if (t >= T) fail("DDIM: 'quad' discretization with {} steps selects timestep {} >= {}", S, t, T);
    return ts;
  }
  if (method != "uniform") fail("DDIM: there is no discretization method called '{}' (uniform, quad)", method);
  // floor(i T / S) + 1: evenly spread over [1, T), equal to the reference when S divides T
  // (exactly the cases where the reference runs S steps without failing).
  std::vector<int64_t> out;
  for (int64_t i = 0; i < S; ++i) out.push_back(i * T / S + 1);
  // Say where the reference would do something else (once per step count and schedule length).
  const auto ref = make_ddim_timesteps_reference(method, S, T);
  if (ref == out) return out;
  {
    static std::mutex mu;
    static std::set<std::pair<int64_t, int64_t>> warned;
    std::lock_guard<std::mutex> lock(mu);
    if (!warned.insert({S, T}).second) return out;
  }
  if (ref.back() >= T) {
    spdlog::warn(
        "DDIM: with {} steps the reference sampler selects timesteps {} and fails (IndexError: index {} is "
        "out of bounds); rdm runs exactly {} steps {}",
        S, join(ref), ref.back(), S, join(out));
  } else if (ref != out) {
    spdlog::warn("DDIM: with {} steps the reference sampler silently runs {} steps {}; rdm runs exactly {} steps {}",
                 S, ref.size(), join(ref), S, join(out));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// DDIM coefficients

DdimParams make_ddim_params(const torch::Tensor& alphas_cumprod_f32, const std::vector<int64_t>& timesteps, double eta) {
  if (timesteps.empty()) fail("DDIM: no timesteps");
  if (!(eta >= 0)) fail("DDIM: eta must be >= 0, got {}", eta);
  auto ac = alphas_cumprod_f32.to(torch::kCPU).to(torch::kFloat32).contiguous();
  const int64_t T = ac.size(0);
  for (auto t : timesteps)
    if (t < 0 || t >= T)
      fail("DDIM: timestep {} is out of range for {} diffusion timesteps (the reference fails here with "
           "'IndexError: index {} is out of bounds for dimension 0 with size {}')",
           t, T, t, T);
  DdimParams p;
  p.timesteps = timesteps;
  p.eta = eta;
  const int64_t S = static_cast<int64_t>(timesteps.size());
  auto idx = torch::tensor(timesteps, torch::TensorOptions().dtype(torch::kInt64));
  auto a = ac.index_select(0, idx);  // float32
  p.alphas = a;
  // np.asarray([alphacums[0]] + alphacums[ts[:-1]].tolist()): float64 holding float32 values,
  // except for one step, where the list holds only the 0-d float32 tensor (float32 array).
  auto ap32 = torch::cat({ac.slice(0, 0, 1), a.slice(0, 0, S - 1)});
  p.sqrt_one_minus_alphas = torch::sqrt(1 - a);  // float32
  // sigmas = eta * sqrt((1 - ap) / (1 - a) * (1 - a / ap)), where `ndarray / tensor` runs as
  // tensor.__rtruediv__ = (1 - a).reciprocal() * (1 - ap): the reciprocal in float32.
  auto recip = (1 - a).reciprocal();  // float32
  if (S == 1) {
    p.alphas_prev = ap32;
    p.sigmas = eta * torch::sqrt(recip * (1 - ap32) * (1 - a / ap32));
  } else {
    auto ap = ap32.to(torch::kFloat64);
    p.alphas_prev = ap;
    p.sigmas = eta * torch::sqrt(recip.to(torch::kFloat64) * (1 - ap) * (1 - a.to(torch::kFloat64) / ap));
  }
  return p;
}

}  // namespace rdm::sampler
