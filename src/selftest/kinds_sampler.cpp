// Selftest kinds of the schedule and the samplers: schedule, ddim_timesteps, ddim_schedule,
// sampler_ddim, sampler_plms. Everything (schedule constants, step counts, eta, guidance scale,
// tensor names, shapes) comes from the case; nothing about a golden set is hard-coded.
#include <cmath>
#include <regex>

#include <ATen/CPUGeneratorImpl.h>

#include <torch/torch.h>

#include "rdm/runtime/error.hpp"
#include "rdm/formats/state_dict.hpp"
#include "rdm/ldm/latent_diffusion.hpp"
#include "rdm/sampler/ddim.hpp"
#include "rdm/sampler/guidance.hpp"
#include "rdm/sampler/plms.hpp"
#include "rdm/sampler/schedule.hpp"
#include "selftest/kinds.hpp"

namespace rdm::selftest {

namespace {

template <typename T>
T param(const Case& c, const char* key) {
  const json& p = c.params();
  if (!p.contains(key)) case_fail("case '{}': missing param '{}'", c.id(), key);
  try {
    return p.at(key).get<T>();
  } catch (const json::exception&) {
    case_fail("case '{}': param '{}' has the wrong type: {}", c.id(), key, p.at(key).dump());
  }
}

// The schedule params of a case (schedule and ddim_schedule kinds).
sampler::ScheduleConfig schedule_config(const Case& c) {
  sampler::ScheduleConfig s;
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
  const sampler::Schedule s = sampler::Schedule::make(schedule_config(c));
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
  const auto ts = sampler::make_ddim_timesteps_reference(param<std::string>(c, "discretize"), param<int64_t>(c, "ddim_steps"),
                                                param<int64_t>(c, "num_timesteps"));
  r.check("timesteps", i64(ts));
}

// DDIMSampler.make_schedule: the reference's timesteps (also where they include T, which the
// reference rejects with an IndexError: make_ddim_params rejects them too).
void run_ddim_schedule(const Case& c, Report& r) {
  const sampler::Schedule s = sampler::Schedule::make(schedule_config(c));
  const auto ts = sampler::make_ddim_timesteps_reference(param<std::string>(c, "discretize"), param<int64_t>(c, "ddim_steps"),
                                                s.num_timesteps);
  const sampler::DdimParams p = sampler::make_ddim_params(s.alphas_cumprod, ts, param<double>(c, "eta"));
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

namespace {

// What the model function saw and returned, per call (optional outputs call<j>/*).
struct CallLog {
  std::vector<torch::Tensor> x_in, t_in, model_out, e_t_guided;
};

// DDIMSampler.sample / PLMSSampler.sample as knn2img runs them (EMA weights, classifier-free
// guidance with one doubled batch), then the first-stage decode and the uint8 conversion.
void run_sampler_case(const Case& c, Report& r, bool plms) {
  const json& p = c.params();
  const json& model = c.j().at("model");
  const std::string dtype = model.value("compute_dtype", std::string("float32"));
  if (dtype != "float32") throw Unsupported("sampler case with compute_dtype '" + dtype + "'");
  const bool on_cpu = c.target().device.is_cpu();
  if (p.value("noise_dropout", 0.0) != 0.0) throw Unsupported("sampler case with noise_dropout > 0");
  const std::string order = p.value("guidance_batch_order", std::string("uncond_first"));
  if (order != "uncond_first") throw Unsupported("guidance_batch_order '" + order + "'");

  // 1. The model: LatentDiffusion from the case's config and weights.
  const ldm::LdmConfig cfg = ldm::LdmConfig::from_json(c.model_config(), "model.config");
  const json& wspec = model.at("weights");
  const std::string wfile = wspec.at("file").get<std::string>();
  if (!wspec.value("prefix", std::string()).empty()) throw Unsupported("sampler case with a weights prefix");
  ldm::LoadSpec ls;
  ls.use_ema = model.value("use_ema", false);
  ls.strict_schedule = true;
  ls.device = c.target().device;
  ls.dtype = c.compute_dtype();  // the UNet's and the decoder's; the latents stay float32
  formats::TensorFile tf = c.read(wfile);
  if (ls.use_ema && !formats::has_ema(tf.tensors)) case_fail("case '{}': use_ema but '{}' has no model_ema.* entries", c.id(), wfile);
  const ldm::LatentDiffusion ld = ldm::LatentDiffusion::from_state_dict(std::move(tf.tensors), cfg, ls, wfile);
  const sampler::Schedule& schedule = ld.schedule();
  if (schedule.num_timesteps != param<int64_t>(c, "num_timesteps"))
    r.mismatch("num_timesteps", fmt::format("model has {} timesteps, case says {}", schedule.num_timesteps,
                                            param<int64_t>(c, "num_timesteps")));
  if (p.contains("scale_factor") && std::abs(ld.scale_factor() - param<double>(c, "scale_factor")) > 0)
    r.mismatch("scale_factor", fmt::format("model scale_factor {}, case says {}", ld.scale_factor(),
                                           param<double>(c, "scale_factor")));

  // 2. Conditioning and guidance.
  const auto x_T = c.on_device(c.input("x_T"));
  const auto cond = c.on_device(c.input("c"));
  const auto uc = c.j().at("inputs").contains("uc") ? c.on_device(c.input("uc")) : torch::Tensor();
  CallLog log;
  sampler::ModelFn model_fn = [&](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& ctx) {
    auto out = ld.apply_model(x, t, ctx);
    log.x_in.push_back(x);
    log.t_in.push_back(t);
    log.model_out.push_back(out);
    return out;
  };
  const sampler::EpsFn guided = sampler::classifier_free_guidance(model_fn, cond, uc, param<double>(c, "guidance_scale"));
  const sampler::EpsFn eps = [&](const torch::Tensor& x, const torch::Tensor& t) {
    auto e = guided(x, t);
    log.e_t_guided.push_back(e);
    return e;
  };

  // 3. Sampling with the reference's timesteps (the case states how many steps that runs).
  sampler::SamplerTrace trace;
  sampler::SamplerOptions opt;
  opt.steps = param<int>(c, "ddim_steps");
  opt.eta = param<double>(c, "eta");
  opt.discretize = param<std::string>(c, "discretize");
  opt.temperature = p.value("temperature", 1.0);
  opt.reference_timesteps = true;
  opt.trace = &trace;
  if (opt.eta > 0) opt.noise = [&](int i) { return c.on_device(c.input("step" + std::to_string(i) + "/noise")); };
  // Only moves when no noise is injected (eta = 0: multiplied by sigma = 0). Elsewhere than on
  // the CPU the device's default generator serves.
  if (on_cpu) opt.generator = at::detail::createCPUGenerator(0);
  const auto samples = plms ? sampler::plms_sample(eps, x_T, schedule, opt) : sampler::ddim_sample(eps, x_T, schedule, opt);

  const int64_t steps = static_cast<int64_t>(trace.x_prev.size());
  if (p.contains("num_steps") && steps != param<int64_t>(c, "num_steps"))
    r.mismatch("num_steps", fmt::format("ran {} steps, the reference {}", steps, param<int64_t>(c, "num_steps")));
  if (p.contains("num_model_calls") && trace.model_calls != param<int64_t>(c, "num_model_calls"))
    r.mismatch("num_model_calls",
               fmt::format("{} model calls, the reference {}", trace.model_calls, param<int64_t>(c, "num_model_calls")));

  // 4. Decode as knn2img.
  torch::Tensor z_over, image, image01, u8;
  if (p.value("decode", true)) {
    z_over = (1.0 / ld.scale_factor()) * samples;
    image = ld.decode_first_stage(samples);
    image01 = torch::clamp((image + 1.0) / 2.0, 0.0, 1.0);
    u8 = (255. * image01.permute({0, 2, 3, 1})).to(torch::kUInt8);  // astype(uint8): truncation
  }

  // 5. Outputs, by role.
  static const std::regex step_re(R"(step(\d+)/(x_prev|pred_x0|e_t))");
  static const std::regex call_re(R"(call(\d+)/(x_in|t_in|model_out|e_t_guided))");
  for (const auto& [role, spec] : c.j().at("outputs").items()) {
    std::smatch m;
    if (role == "ddim_timesteps") r.check(role, i64(trace.ddim_timesteps));
    else if (role == "sampling_timesteps_in_order") r.check(role, i64(trace.sampling_timesteps_in_order));
    else if (role == "step_index") r.check(role, i64(trace.step_index));
    else if (role == "samples") r.check(role, samples);
    else if (std::regex_match(role, m, step_re)) {
      const size_t i = std::stoul(m[1].str());
      const auto& v = m[2] == "x_prev" ? trace.x_prev : m[2] == "pred_x0" ? trace.pred_x0 : trace.e_t;
      if (i >= v.size()) r.mismatch(role, fmt::format("only {} steps ran", v.size()));
      else r.check(role, v[i]);
    } else if (role.rfind("decode/", 0) == 0) {
      if (!image.defined()) r.mismatch(role, "params.decode is false");
      else if (role == "decode/z_over_scale_factor") r.check(role, z_over);
      else if (role == "decode/image") r.check(role, image);
      else if (role == "decode/image01") r.check(role, image01);
      else if (role == "decode/uint8_hwc") r.check(role, u8);
      else r.mismatch(role, "unknown output role");
    } else {
      r.mismatch(role, "unknown output role");
    }
  }
  if (c.j().contains("optional_outputs"))
    for (const auto& [role, spec] : c.j().at("optional_outputs").items()) {
      std::smatch m;
      if (!std::regex_match(role, m, call_re)) continue;
      const size_t j = std::stoul(m[1].str());
      const auto& v = m[2] == "x_in" ? log.x_in : m[2] == "t_in" ? log.t_in
                      : m[2] == "model_out" ? log.model_out : log.e_t_guided;
      if (j >= v.size()) r.mismatch(role, fmt::format("only {} model calls", v.size()));
      else r.check_optional(role, v[j]);
    }
}

}  // namespace

void run_sampler_ddim(const Case& c, Report& r) { run_sampler_case(c, r, /*plms=*/false); }
void run_sampler_plms(const Case& c, Report& r) { run_sampler_case(c, r, /*plms=*/true); }

}  // namespace rdm::selftest
