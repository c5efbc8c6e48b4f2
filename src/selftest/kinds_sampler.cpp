// Selftest kinds of the schedule and the samplers: schedule, ddim_timesteps, ddim_schedule,
// sampler_ddim, sampler_plms. Everything (schedule constants, step counts, eta, guidance scale,
// tensor names, shapes) comes from the case; nothing about a golden set is hard-coded.
#include <regex>

#include <torch/torch.h>

#include "rdm/error.hpp"
#include "rdm/sampler/schedule.hpp"
#include "selftest/kinds.hpp"

namespace rdm::selftest {

namespace {

template <typename T>
T param(const Case& c, const char* key) {
  const json& p = c.params();
  if (!p.contains(key)) fail("case '{}': missing param '{}'", c.id(), key);
  try {
    return p.at(key).get<T>();
  } catch (const json::exception&) {
    fail("case '{}': param '{}' has the wrong type: {}", c.id(), key, p.at(key).dump());
  }
}

// The schedule params of a case (schedule and ddim_schedule kinds).
ScheduleConfig schedule_config(const Case& c) {
  ScheduleConfig s;
  s.beta_schedule = param<std::string>(c, "beta_schedule");
  s.timesteps = param<int64_t>(c, "num_timesteps");
  s.linear_start = param<double>(c, "linear_start");
  s.linear_end = param<double>(c, "linear_end");
  s.cosine_s = param<double>(c, "cosine_s");
  s.v_posterior = param<double>(c, "v_posterior");
  s.parameterization = c.params().value("parameterization", std::string("eps"));
  return s;
}

torch::Tensor i64(const std::vector<int64_t>& v) { return torch::tensor(v, torch::kInt64); }

}  // namespace

void run_schedule(const Case& c, Report& r) {
  const Schedule s = Schedule::make(schedule_config(c));
  for (const auto& [role, spec] : c.j().at("outputs").items()) {
    if (role == "betas_f64") r.check(role, s.betas64);
    else if (role == "alphas_cumprod_f64") r.check(role, s.alphas_cumprod64);
    else if (role == "alphas_cumprod_prev_f64") r.check(role, s.alphas_cumprod_prev64);
    else if (role.rfind("buffer.", 0) == 0) {
      const std::string name = role.substr(7);
      auto it = s.buffers.find(name);
      if (it == s.buffers.end()) r.mismatch(role, "no schedule buffer named '" + name + "'");
      else r.check(role, it->second);
    } else {
      r.mismatch(role, "unknown output role");
    }
  }
}

void run_ddim_timesteps(const Case& c, Report& r) {
  const auto ts = make_ddim_timesteps_reference(param<std::string>(c, "discretize"), param<int64_t>(c, "ddim_steps"),
                                                param<int64_t>(c, "num_timesteps"));
  r.check("timesteps", i64(ts));
}

// DDIMSampler.make_schedule: the reference's timesteps (also where they include T, which the
// reference rejects with an IndexError: make_ddim_params rejects them too).
void run_ddim_schedule(const Case& c, Report& r) {
  const Schedule s = Schedule::make(schedule_config(c));
  const auto ts = make_ddim_timesteps_reference(param<std::string>(c, "discretize"), param<int64_t>(c, "ddim_steps"),
                                                s.num_timesteps);
  const DdimParams p = make_ddim_params(s.alphas_cumprod, ts, param<double>(c, "eta"));
  if (!c.j().contains("outputs")) return;
  for (const auto& [role, spec] : c.j().at("outputs").items()) {
    if (role == "ddim_alphas") r.check(role, p.alphas);
    else if (role == "ddim_alphas_prev") r.check(role, p.alphas_prev);
    else if (role == "ddim_sigmas") r.check(role, p.sigmas);
    else if (role == "ddim_sqrt_one_minus_alphas") r.check(role, p.sqrt_one_minus_alphas);
    else if (role == "timesteps") r.check(role, i64(p.timesteps));
    else r.mismatch(role, "unknown output role");
  }
}

void run_sampler_ddim(const Case&, Report&) { throw Unsupported("kind 'sampler_ddim' needs LatentDiffusion (not merged yet)"); }
void run_sampler_plms(const Case&, Report&) { throw Unsupported("kind 'sampler_plms' needs LatentDiffusion (not merged yet)"); }

}  // namespace rdm::selftest
