// The samplers stop with an rdm::Error naming the step and the tensor when the model's output or
// the latent stops being finite, instead of carrying NaN into a black PNG.
#include <limits>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "rdm/runtime/error.hpp"
#include "rdm/sampler/ddim.hpp"
#include "rdm/sampler/plms.hpp"
#include "rdm/sampler/schedule.hpp"

namespace {

rdm::sampler::Schedule schedule() {
  rdm::sampler::ScheduleConfig c;
  c.timesteps = 1000;
  c.linear_start = 0.0015;
  c.linear_end = 0.015;
  return rdm::sampler::Schedule::make(c);
}

// eps = 0.1 x until call `bad` (1-based), which returns `value` in one element.
rdm::sampler::EpsFn eps_breaking_at(int bad, float value, int* calls) {
  return [=](const torch::Tensor& x, const torch::Tensor&) {
    ++*calls;
    auto e = x * 0.1;
    if (*calls == bad) {
      e = e.clone();
      e.view({-1})[5] = value;
    }
    return e;
  };
}

std::string run_ddim(const rdm::sampler::EpsFn& eps, int steps) {
  rdm::sampler::SamplerOptions o;
  o.steps = steps;
  auto x = torch::randn({2, 4, 8, 8}, torch::TensorOptions().dtype(torch::kFloat32));
  try {
    rdm::sampler::ddim_sample(eps, x, schedule(), o, {});
  } catch (const rdm::Error& e) {
    return e.what();
  }
  return "";
}

TEST(SamplerGuard, DdimStopsAtNonFiniteUNetOutput) {
  for (float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                    -std::numeric_limits<float>::infinity()}) {
    int calls = 0;
    std::string msg = run_ddim(eps_breaking_at(3, bad, &calls), 5);
    EXPECT_NE(msg.find("UNet output is not finite at DDIM step 3/5"), std::string::npos) << msg;
    EXPECT_EQ(calls, 3);  // stopped at once
  }
}

TEST(SamplerGuard, DdimFiniteRunPasses) {
  int calls = 0;
  EXPECT_EQ(run_ddim(eps_breaking_at(-1, 0, &calls), 5), "");
  EXPECT_EQ(calls, 5);
}

TEST(SamplerGuard, DdimStopsAtNonFiniteLatent) {
  // A finite but huge eps overflows the float32 update.
  int calls = 0;
  std::string msg = run_ddim(eps_breaking_at(2, 3e38f, &calls), 4);
  EXPECT_NE(msg.find("latent is not finite at DDIM step 2/4"), std::string::npos) << msg;
}

TEST(SamplerGuard, PlmsStopsAtNonFiniteUNetOutput) {
  rdm::sampler::SamplerOptions o;
  o.steps = 5;
  int calls = 0;
  // PLMS calls the model twice in its first step: call 4 belongs to step 3.
  auto eps = eps_breaking_at(4, std::numeric_limits<float>::quiet_NaN(), &calls);
  std::string msg;
  try {
    rdm::sampler::plms_sample(eps, torch::randn({1, 4, 8, 8}), schedule(), o, {});
  } catch (const rdm::Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("UNet output is not finite at PLMS step 3/5"), std::string::npos) << msg;
}

}  // namespace
