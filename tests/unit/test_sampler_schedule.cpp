// Schedule numbers (reference.md §1.3, §5.1-5.2), DDIM timesteps for many step counts in the
// user path and the reference path, DDIM coefficients.
#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <torch/types.h>

#include "rdm/runtime/error.hpp"
#include "rdm/formats/tensor_file.hpp"
#include "rdm/sampler/schedule.hpp"

namespace sampler = rdm::sampler;

namespace {
using rdm::sampler::ScheduleConfig;
using rdm::sampler::Schedule;

sampler::ScheduleConfig rdm_config() {
  sampler::ScheduleConfig c;
  c.beta_schedule = "linear";
  c.timesteps = 1000;
  c.linear_start = 0.0015;
  c.linear_end = 0.015;
  return c;
}

double at(const torch::Tensor& t, int64_t i) { return t[i].item<double>(); }

TEST(SamplerSchedule, LinearBetasAndAlphasCumprod) {
  const sampler::Schedule s = sampler::Schedule::make(rdm_config());
  ASSERT_EQ(s.betas64.scalar_type(), torch::kFloat64);
  ASSERT_EQ(s.betas64.size(0), 1000);
  EXPECT_NEAR(at(s.betas64, 0), 0.0015, 1e-15);
  EXPECT_NEAR(at(s.betas64, 1), 0.001506500354, 1e-12);
  EXPECT_NEAR(at(s.betas64, 500), 0.006503466759, 1e-12);
  EXPECT_NEAR(at(s.betas64, 999), 0.015, 1e-15);
  EXPECT_EQ(at(s.alphas_cumprod64, 0), 1.0 - 0.0015);
  // reference.md quotes the float32 buffer
  EXPECT_NEAR(at(s.alphas_cumprod, 0), 0.99849999, 1e-7);
  EXPECT_NEAR(at(s.alphas_cumprod, 1), 0.996995747, 1e-7);
  EXPECT_NEAR(at(s.alphas_cumprod, 500), 0.155290559, 1e-8);
  EXPECT_NEAR(at(s.alphas_cumprod, 999), 0.000812518469, 1e-10);
  EXPECT_EQ(at(s.alphas_cumprod_prev64, 0), 1.0);
  EXPECT_EQ(at(s.alphas_cumprod_prev64, 1), at(s.alphas_cumprod64, 0));
  // float32 buffers are the float64 values rounded
  EXPECT_EQ(s.alphas_cumprod.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(s.alphas_cumprod, s.alphas_cumprod64.to(torch::kFloat32)));
  EXPECT_EQ(sampler::Schedule::persistent_buffer_names().size(), 12u);
  for (const auto& n : sampler::Schedule::persistent_buffer_names()) {
    ASSERT_TRUE(s.buffers.count(n)) << n;
    EXPECT_EQ(s.buffers.at(n).size(0), 1000) << n;
    EXPECT_TRUE(torch::isfinite(s.buffers.at(n)).all().item<bool>()) << n;
  }
  // posterior variance is 0 at t = 0, its log clipped at log(1e-20)
  EXPECT_EQ(at(s.buffers.at("posterior_variance"), 0), 0.0);
  EXPECT_NEAR(at(s.buffers.at("posterior_log_variance_clipped"), 0), std::log(1e-20), 1e-4);
  // lvlb_weights[0] = lvlb_weights[1]
  EXPECT_EQ(at(s.buffers.at("lvlb_weights"), 0), at(s.buffers.at("lvlb_weights"), 1));
}

TEST(SamplerSchedule, CosineSchedule) {
  sampler::ScheduleConfig c;
  c.beta_schedule = "cosine";
  c.timesteps = 1000;
  c.cosine_s = 8e-3;
  const sampler::Schedule s = sampler::Schedule::make(c);
  EXPECT_GE(s.betas64.min().item<double>(), 0.0);
  EXPECT_LE(s.betas64.max().item<double>(), 0.999);
  EXPECT_EQ(s.betas64.max().item<double>(), 0.999);  // clipped at the end
  // alphas_cumprod follows cos^2((t/T + s)/(1 + s) pi/2) / cos^2(s/(1+s) pi/2)
  const double pi = 3.14159265358979323846;
  auto f = [&](double t) { return std::pow(std::cos((t / 1000.0 + 8e-3) / (1 + 8e-3) * pi / 2), 2); };
  for (int64_t t : {0, 10, 500, 900}) EXPECT_NEAR(at(s.alphas_cumprod64, t), f(t + 1) / f(0), 1e-12) << t;
}

TEST(SamplerSchedule, RejectsBadConfigs) {
  sampler::ScheduleConfig c = rdm_config();
  c.beta_schedule = "quadratic";
  EXPECT_THROW(sampler::Schedule::make(c), rdm::Error);
  c = rdm_config();
  c.timesteps = 1;
  EXPECT_THROW(sampler::Schedule::make(c), rdm::Error);
  c = rdm_config();
  c.parameterization = "v";
  EXPECT_THROW(sampler::Schedule::make(c), rdm::Error);
}

TEST(SamplerSchedule, CheckAgainstCheckpointBuffers) {
  const sampler::Schedule s = sampler::Schedule::make(rdm_config());
  rdm::formats::StateDict sd;
  for (const auto& n : sampler::Schedule::persistent_buffer_names()) sd["model." + n] = s.buffers.at(n).clone();
  EXPECT_EQ(s.check_against(sd, "model.", "x.ckpt"), 12);
  // float16 checkpoints round the buffers: still accepted
  rdm::formats::StateDict half;
  for (const auto& [k, v] : sd) half[k] = v.to(torch::kFloat16);
  EXPECT_EQ(s.check_against(half, "model.", "x.safetensors"), 12);
  // another schedule is rejected, naming the buffer
  sampler::ScheduleConfig other = rdm_config();
  other.linear_end = 0.012;
  const sampler::Schedule s2 = sampler::Schedule::make(other);
  try {
    s2.check_against(sd, "model.", "x.ckpt");
    FAIL() << "expected an error";
  } catch (const rdm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.ckpt"), std::string::npos);
  }
}

TEST(SamplerTimesteps, ReferenceTimesteps) {
  using rdm::sampler::make_ddim_timesteps_reference;
  EXPECT_EQ(sampler::make_ddim_timesteps_reference("uniform", 5, 1000), (std::vector<int64_t>{1, 201, 401, 601, 801}));
  EXPECT_EQ(sampler::make_ddim_timesteps_reference("uniform", 1, 1000), (std::vector<int64_t>{1}));
  // S = 7 runs 8 steps, S = 30 runs 31: ceil(T / (T // S))
  auto s7 = sampler::make_ddim_timesteps_reference("uniform", 7, 1000);
  EXPECT_EQ(s7.size(), 8u);
  EXPECT_EQ(s7.front(), 1);
  EXPECT_EQ(s7[1], 143);
  EXPECT_EQ(s7.back(), 995);
  EXPECT_EQ(sampler::make_ddim_timesteps_reference("uniform", 30, 1000).size(), 31u);
  auto s50 = sampler::make_ddim_timesteps_reference("uniform", 50, 1000);
  EXPECT_EQ(s50.size(), 50u);
  EXPECT_EQ(s50.back(), 981);
  EXPECT_EQ(sampler::make_ddim_timesteps_reference("uniform", 200, 1000).back(), 996);
  EXPECT_EQ(sampler::make_ddim_timesteps_reference("uniform", 250, 1000).back(), 997);
  // S = 3: [1, 334, 667, 1000] (the reference then fails on index 1000)
  EXPECT_EQ(sampler::make_ddim_timesteps_reference("uniform", 3, 1000), (std::vector<int64_t>{1, 334, 667, 1000}));
  for (int64_t S : {3, 9, 27, 37, 111, 333, 999})
    EXPECT_EQ(sampler::make_ddim_timesteps_reference("uniform", S, 1000).back(), 1000) << S;
  EXPECT_THROW(sampler::make_ddim_timesteps_reference("uniform", 0, 1000), rdm::Error);
  EXPECT_THROW(sampler::make_ddim_timesteps_reference("uniform", 1001, 1000), rdm::Error);
  EXPECT_THROW(sampler::make_ddim_timesteps_reference("spiral", 10, 1000), rdm::Error);
  // quad: (linspace(0, sqrt(800), S)^2).astype(int) + 1
  auto q = sampler::make_ddim_timesteps_reference("quad", 5, 1000);
  EXPECT_EQ(q, (std::vector<int64_t>{1, 51, 201, 451, 801}));
  EXPECT_EQ(sampler::make_ddim_timesteps_reference("quad", 10, 1000),
            (std::vector<int64_t>{1, 10, 40, 89, 159, 247, 356, 484, 633, 801}));
}

TEST(SamplerTimesteps, UserPathRunsExactlySSteps) {
  const int64_t T = 1000;
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::err);  // one warning per non-divisor S
  for (int64_t S = 1; S < T; S += (S < 120 ? 1 : 37)) {
    const auto ts = rdm::sampler::make_ddim_timesteps("uniform", S, T);
    ASSERT_EQ(static_cast<int64_t>(ts.size()), S) << S;
    EXPECT_TRUE(std::is_sorted(ts.begin(), ts.end())) << S;
    EXPECT_EQ(ts.front(), 1) << S;
    EXPECT_LT(ts.back(), T) << S;
    // equal to the reference whenever the reference runs S steps within range
    const auto ref = rdm::sampler::make_ddim_timesteps_reference("uniform", S, T);
    if (static_cast<int64_t>(ref.size()) == S && ref.back() < T) EXPECT_EQ(ts, ref) << S;
    // evenly spread over [1, T): gaps of floor(T/S) or ceil(T/S), the last gap to T as well
    for (size_t i = 1; i < ts.size(); ++i) {
      const int64_t gap = ts[i] - ts[i - 1];
      EXPECT_TRUE(gap == T / S || gap == (T + S - 1) / S) << S << " gap " << gap;
    }
    EXPECT_GE(ts.back() - 1 + (T + S - 1) / S, T) << S;
  }
  EXPECT_EQ(rdm::sampler::make_ddim_timesteps("uniform", 3, T), (std::vector<int64_t>{1, 334, 667}));
  EXPECT_EQ(rdm::sampler::make_ddim_timesteps("uniform", 7, T), (std::vector<int64_t>{1, 143, 286, 429, 572, 715, 858}));
  EXPECT_EQ(rdm::sampler::make_ddim_timesteps("uniform", 50, T), rdm::sampler::make_ddim_timesteps_reference("uniform", 50, T));
  for (int64_t S : {9, 27, 37, 111, 333, 999}) {
    const auto ts = rdm::sampler::make_ddim_timesteps("uniform", S, T);
    EXPECT_EQ(static_cast<int64_t>(ts.size()), S);
    EXPECT_LT(ts.back(), T);
  }
  EXPECT_THROW(rdm::sampler::make_ddim_timesteps("uniform", 0, T), rdm::Error);
  EXPECT_THROW(rdm::sampler::make_ddim_timesteps("uniform", T, T), rdm::Error);
  spdlog::set_level(level);
}

TEST(SamplerTimesteps, DdimParamsS50) {
  const sampler::Schedule s = sampler::Schedule::make(rdm_config());
  const auto ts = rdm::sampler::make_ddim_timesteps("uniform", 50, 1000);
  auto p0 = rdm::sampler::make_ddim_params(s.alphas_cumprod, ts, 0.0);
  auto p1 = rdm::sampler::make_ddim_params(s.alphas_cumprod, ts, 1.0);
  EXPECT_EQ(p1.alphas.scalar_type(), torch::kFloat32);
  EXPECT_EQ(p1.alphas_prev.scalar_type(), torch::kFloat64);
  EXPECT_EQ(p1.sigmas.scalar_type(), torch::kFloat64);
  EXPECT_EQ(p1.sqrt_one_minus_alphas.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(at(p1.alphas, 0), 0.996995747, 1e-8);
  EXPECT_NEAR(at(p1.alphas, 49), 0.00106316735, 1e-10);
  EXPECT_NEAR(at(p1.alphas_prev, 0), 0.99849999, 1e-8);  // alphas_cumprod[0], not 1
  EXPECT_NEAR(at(p1.alphas_prev, 49), 0.00142215844, 1e-10);
  EXPECT_NEAR(at(p1.sigmas, 0), 0.0274260828, 1e-9);
  EXPECT_NEAR(at(p1.sigmas, 49), 0.502330784, 1e-8);
  EXPECT_EQ(p0.sigmas.abs().max().item<double>(), 0.0);
  // sqrt(1 - a) in float32
  EXPECT_TRUE(torch::equal(p1.sqrt_one_minus_alphas, torch::sqrt(1 - p1.alphas)));
  // the reference's failing timesteps are rejected here
  const auto bad = rdm::sampler::make_ddim_timesteps_reference("uniform", 3, 1000);
  EXPECT_THROW(rdm::sampler::make_ddim_params(s.alphas_cumprod, bad, 0.0), rdm::Error);
  EXPECT_THROW(rdm::sampler::make_ddim_params(s.alphas_cumprod, ts, -0.5), rdm::Error);
}

}  // namespace
