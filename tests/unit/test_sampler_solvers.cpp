// The fast solvers (solvers.hpp) against independent float64 re-implementations of the published
// updates on a toy model, against DDIM where they coincide, against the exact probability-flow
// ODE solution of Gaussian data (convergence), and bit-for-bit across batch sizes.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "rdm/runtime/error.hpp"
#include "rdm/sampler/ddim.hpp"
#include "rdm/sampler/solvers.hpp"

namespace sampler = rdm::sampler;

namespace {
using rdm::sampler::SamplerOptions;
using rdm::sampler::Schedule;

sampler::Schedule rdm_schedule() {
  rdm::sampler::ScheduleConfig c;
  c.linear_start = 0.0015;
  c.linear_end = 0.015;
  return sampler::Schedule::make(c);
}

// Data x0 ~ N(mu, s^2) per element: the exact eps prediction is
// E[eps | x_t] = sigma (x - alpha mu) / (alpha^2 s^2 + sigma^2), and the probability-flow ODE keeps
// z = (x - alpha mu) / sqrt(alpha^2 s^2 + sigma^2) constant along a trajectory.
constexpr double kMu = 0.3, kS = 0.5;

double abar_at(const sampler::Schedule& s, int64_t t) { return s.alphas_cumprod[t].item<double>(); }

double toy_eps_scalar(double x, double abar) {
  const double a = std::sqrt(abar), sg = std::sqrt(1 - abar);
  return sg * (x - a * kMu) / (a * a * kS * kS + sg * sg);
}

rdm::sampler::EpsFn toy_eps(const sampler::Schedule& s) {
  return [&s](const torch::Tensor& x, const torch::Tensor& t) {
    auto abar = s.alphas_cumprod.to(torch::kFloat64).index_select(0, t.to(torch::kCPU)).to(x.device());
    std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
    shape[0] = x.size(0);
    abar = abar.view(shape);
    auto a = abar.sqrt(), sg = (1 - abar).sqrt();
    return (sg * (x.to(torch::kFloat64) - a * kMu) / (a * a * kS * kS + sg * sg)).to(x.scalar_type());
  };
}

torch::Tensor x_T(int64_t b, torch::Dtype dt = torch::kFloat64) {
  torch::manual_seed(7);
  return torch::randn({b, 2, 3, 3}, torch::TensorOptions().dtype(dt));
}

sampler::SamplerOptions opts(int steps, const std::string& spacing = "uniform") {
  sampler::SamplerOptions o;
  o.steps = steps;
  o.spacing = spacing;
  return o;
}

// Levels of a run (descending timesteps, then abar[0]), in double, computed here independently.
struct Levels {
  std::vector<double> alpha, sigma, lambda;
};
Levels levels(const sampler::Schedule& s, const std::vector<int64_t>& ascending) {
  Levels l;
  std::vector<double> abars;
  for (auto it = ascending.rbegin(); it != ascending.rend(); ++it) abars.push_back(abar_at(s, *it));
  abars.push_back(abar_at(s, 0));
  for (double ab : abars) {
    l.alpha.push_back(std::sqrt(ab));
    l.sigma.push_back(std::sqrt(1 - ab));
    l.lambda.push_back(0.5 * std::log(ab / (1 - ab)));
  }
  return l;
}

// DPM-Solver++(2M), Algorithm 2 of arXiv 2211.01095, one scalar at a time; first and last step first order.
double dpmpp2m_scalar(double x, const sampler::Schedule& s, const Levels& l) {
  const size_t n = l.alpha.size() - 1;
  double x0_prev = 0, h_prev = 0;
  for (size_t i = 0; i < n; ++i) {
    const double abar = l.alpha[i] * l.alpha[i];
    const double x0 = (x - l.sigma[i] * toy_eps_scalar(x, abar)) / l.alpha[i];
    const double h = l.lambda[i + 1] - l.lambda[i];
    double d = x0;
    if (i > 0 && i + 1 < n) {
      const double r = h_prev / h;
      d = (1 + 1 / (2 * r)) * x0 - x0_prev / (2 * r);
    }
    x = l.sigma[i + 1] / l.sigma[i] * x - l.alpha[i + 1] * (std::exp(-h) - 1) * d;
    x0_prev = x0;
    h_prev = h;
  }
  return x;
}

// UniPC-2 with B(h) = e^h - 1 (bh2), data prediction, written out in closed form (arXiv 2302.04867,
// Algorithms 1-3 with p = 2; rho = 1/2 for UniP-2 and UniC-1; UniC-2 by Cramer's rule).
double unipc2_scalar(double x, const Levels& l) {
  const size_t n = l.alpha.size() - 1;
  auto phis = [](double h, double& hphi1, double& b1, double& b2) {
    const double hh = -h;
    hphi1 = std::expm1(hh);
    const double bh = std::expm1(hh);
    const double p2 = hphi1 / hh - 1;     // h phi_2 style term
    const double p3 = p2 / hh - 0.5;      // next term
    b1 = p2 / bh;
    b2 = p3 * 2 / bh;
  };
  std::vector<double> m(n), lev(n);
  double last = 0;
  int last_order = 0;
  for (size_t i = 0; i < n; ++i) {
    const double abar = l.alpha[i] * l.alpha[i];
    m[i] = (x - l.sigma[i] * toy_eps_scalar(x, abar)) / l.alpha[i];
    if (i > 0) {  // UniC, from level i-1 to i
      const double h = l.lambda[i] - l.lambda[i - 1];
      double hphi1, b1, b2;
      phis(h, hphi1, b1, b2);
      const double bh = std::expm1(-h);
      double corr;
      if (last_order == 1) {
        corr = 0.5 * (m[i] - m[i - 1]);
      } else {
        const double r1 = (l.lambda[i - 2] - l.lambda[i - 1]) / h;
        // [1 1; r1 1] [rho0 rho1]^T = [b1 b2]^T
        const double det = 1 - r1;
        const double rho0 = (b1 - b2) / det, rho1 = (b2 - r1 * b1) / det;
        corr = rho0 * (m[i - 2] - m[i - 1]) / r1 + rho1 * (m[i] - m[i - 1]);
      }
      x = l.sigma[i] / l.sigma[i - 1] * last - l.alpha[i] * hphi1 * m[i - 1] - l.alpha[i] * bh * corr;
    }
    const int order = (i == 0 || i + 1 == n) ? 1 : 2;
    last = x;
    const double h = l.lambda[i + 1] - l.lambda[i];
    double hphi1, b1, b2;
    phis(h, hphi1, b1, b2);
    double xn = l.sigma[i + 1] / l.sigma[i] * x - l.alpha[i + 1] * hphi1 * m[i];
    if (order == 2) {
      const double r1 = (l.lambda[i - 1] - l.lambda[i]) / h;
      xn -= l.alpha[i + 1] * std::expm1(-h) * 0.5 * (m[i - 1] - m[i]) / r1;
    }
    x = xn;
    last_order = order;
  }
  return x;
}

double exact_flow(double x, double abar_from, double abar_to) {
  const double af = std::sqrt(abar_from), sf = std::sqrt(1 - abar_from);
  const double at = std::sqrt(abar_to), st = std::sqrt(1 - abar_to);
  const double z = (x - af * kMu) / std::sqrt(af * af * kS * kS + sf * sf);
  return at * kMu + std::sqrt(at * at * kS * kS + st * st) * z;
}

double max_abs_diff_scalar(const torch::Tensor& got, const torch::Tensor& x0,
                           const std::function<double(double)>& f) {
  auto g = got.to(torch::kFloat64).contiguous().flatten();
  auto x = x0.to(torch::kFloat64).contiguous().flatten();
  double m = 0;
  for (int64_t i = 0; i < g.numel(); ++i)
    m = std::max(m, std::abs(g[i].item<double>() - f(x[i].item<double>())));
  return m;
}

TEST(SamplerSolvers, DpmSolverPlusPlus2MMatchesFloat64Reimplementation) {
  const sampler::Schedule s = rdm_schedule();
  for (const std::string spacing : {"uniform", "trailing", "karras"}) {
    for (int steps : {1, 2, 3, 10, 20}) {
      const auto o = opts(steps, spacing);
      const auto l = levels(s, rdm::sampler::spaced_timesteps(spacing, o, s.alphas_cumprod));
      const auto x = x_T(2);
      const auto got = rdm::sampler::dpmpp_2m_sample(toy_eps(s), x, s, o);
      EXPECT_LT(max_abs_diff_scalar(got, x, [&](double v) { return dpmpp2m_scalar(v, s, l); }), 1e-6)
          << spacing << " " << steps;
    }
  }
}

TEST(SamplerSolvers, UniPC2MatchesFloat64Reimplementation) {
  const sampler::Schedule s = rdm_schedule();
  for (const std::string spacing : {"uniform", "trailing", "karras"}) {
    for (int steps : {1, 2, 3, 5, 10, 20}) {
      const auto o = opts(steps, spacing);
      const auto l = levels(s, rdm::sampler::spaced_timesteps(spacing, o, s.alphas_cumprod));
      const auto x = x_T(2);
      const auto got = rdm::sampler::unipc_sample(toy_eps(s), x, s, o);
      EXPECT_LT(max_abs_diff_scalar(got, x, [&](double v) { return unipc2_scalar(v, l); }), 1e-6)
          << spacing << " " << steps;
    }
  }
}

TEST(SamplerSolvers, FirstOrderStepsEqualDdim) {
  // Two steps: both DPM-Solver++ steps are first order, i.e. DDIM (eta 0). Euler with eta 0 is
  // DDIM too (DDIM is Euler's method in x / alpha for an eps-model).
  const sampler::Schedule s = rdm_schedule();
  for (int steps : {1, 2}) {
    const auto x = x_T(3);
    const auto ddim = rdm::sampler::ddim_sample(toy_eps(s), x, s, opts(steps));
    EXPECT_LT((rdm::sampler::dpmpp_2m_sample(toy_eps(s), x, s, opts(steps)) - ddim).abs().max().item<double>(), 1e-6);
    EXPECT_LT((rdm::sampler::unipc_sample(toy_eps(s), x, s, opts(1)) - rdm::sampler::ddim_sample(toy_eps(s), x, s, opts(1)))
                  .abs().max().item<double>(), 1e-6);
  }
  for (int steps : {1, 5, 20}) {
    const auto x = x_T(3);
    auto o = opts(steps);
    EXPECT_LT((rdm::sampler::euler_ancestral_sample(toy_eps(s), x, s, o) - rdm::sampler::ddim_sample(toy_eps(s), x, s, o))
                  .abs().max().item<double>(), 1e-6) << steps;
  }
}

TEST(SamplerSolvers, EulerAncestralMatchesScalarUpdate) {
  const sampler::Schedule s = rdm_schedule();
  auto o = opts(6, "trailing");
  o.eta = 1.0;
  std::vector<torch::Tensor> noises;
  for (int i = 0; i < 6; ++i) noises.push_back(torch::randn({2, 2, 3, 3}, torch::kFloat64));
  o.noise = [&](int i) { return noises[static_cast<size_t>(i)]; };
  const auto x = x_T(2);
  const auto got = rdm::sampler::euler_ancestral_sample(toy_eps(s), x, s, o).flatten();
  const auto l = levels(s, rdm::sampler::spaced_timesteps("trailing", o, s.alphas_cumprod));
  auto xf = x.flatten();
  for (int64_t e = 0; e < xf.numel(); ++e) {
    double v = xf[e].item<double>();
    for (size_t i = 0; i + 1 < l.alpha.size(); ++i) {
      const double eps = toy_eps_scalar(v, l.alpha[i] * l.alpha[i]);
      const double sc = l.sigma[i] / l.alpha[i], sn = l.sigma[i + 1] / l.alpha[i + 1];
      const double up = std::min(sn, std::sqrt(sn * sn * (sc * sc - sn * sn) / (sc * sc)));
      const double down = std::sqrt(sn * sn - up * up);
      const double x0 = v / l.alpha[i] - sc * eps;
      double ve = x0 + down * (v / l.alpha[i] - x0) / sc + up * noises[i].flatten()[e].item<double>();
      v = l.alpha[i + 1] * ve;
    }
    EXPECT_NEAR(got[e].item<double>(), v, 1e-6) << e;
  }
}

TEST(SamplerSolvers, ConvergeToTheExactFlowFasterThanDdim) {
  // Gaussian data: the probability-flow ODE has a closed-form solution. At equal model calls the
  // higher-order solvers land closer to it than DDIM, and they converge at second order (halving
  // the step divides the error by about 4; DDIM's by about 2).
  const sampler::Schedule s = rdm_schedule();
  auto err = [&](const std::string& name, int steps, int order = 2) {
    auto o = opts(steps);
    o.order = order;
    const auto asc = rdm::sampler::spaced_timesteps("uniform", o, s.alphas_cumprod);
    const auto x = x_T(4);
    const auto got = rdm::sampler::run_sampler(name, toy_eps(s), x, s, o);
    const double from = abar_at(s, asc.back()), to = abar_at(s, 0);
    return max_abs_diff_scalar(got, x, [&](double v) { return exact_flow(v, from, to); });
  };
  for (int steps : {10, 20, 50}) {
    const double ddim = err("ddim", steps);
    for (int order : {2, 3}) {
      EXPECT_LT(err("unipc", steps, order), ddim) << steps << " order " << order;
    }
    EXPECT_LT(err("dpmpp2m", steps), ddim) << steps;
    std::printf("steps %d: ddim %.4g dpmpp2m %.4g unipc2 %.4g unipc3 %.4g\n", steps, ddim, err("dpmpp2m", steps),
                err("unipc", steps, 2), err("unipc", steps, 3));
  }
  EXPECT_GT(err("ddim", 200) / err("ddim", 400), 1.7);
  EXPECT_LT(err("ddim", 200) / err("ddim", 400), 2.5);
  EXPECT_GT(err("dpmpp2m", 200) / err("dpmpp2m", 400), 3.0);
  EXPECT_GT(err("unipc", 200) / err("unipc", 400), 3.0);
}

TEST(SamplerSolvers, BitIdenticalAcrossBatchSizes) {
  const sampler::Schedule s = rdm_schedule();
  for (const std::string name : {"dpmpp2m", "unipc", "euler_a"}) {
    auto o = opts(7, "karras");
    if (name == "euler_a") o.eta = 1.0;
    const auto x = x_T(4, torch::kFloat32);
    // Noise per image: the same draws whatever the batch.
    std::vector<torch::Tensor> per_image;
    for (int i = 0; i < 7; ++i) per_image.push_back(torch::randn({4, 2, 3, 3}));
    auto batch_opts = o;
    batch_opts.noise = [&](int i) { return per_image[static_cast<size_t>(i)]; };
    const auto all = rdm::sampler::run_sampler(name, toy_eps(s), x, s, batch_opts);
    EXPECT_EQ(all.scalar_type(), torch::kFloat32);
    for (int64_t b = 0; b < 4; ++b) {
      auto one_opts = o;
      one_opts.noise = [&, b](int i) { return per_image[static_cast<size_t>(i)].narrow(0, b, 1); };
      const auto one = rdm::sampler::run_sampler(name, toy_eps(s), x.narrow(0, b, 1), s, one_opts);
      EXPECT_TRUE(torch::equal(one, all.narrow(0, b, 1))) << name << " image " << b;
    }
  }
}

TEST(SamplerSolvers, OneModelCallPerStep) {
  const sampler::Schedule s = rdm_schedule();
  for (const std::string& name : rdm::sampler::sampler_names())
    for (int steps : {1, 9, 20}) {
      rdm::sampler::SamplerTrace tr;
      auto o = opts(steps, "trailing");
      if (name == "euler_a") o.eta = 1.0;
      o.trace = &tr;
      rdm::sampler::run_sampler(name, toy_eps(s), x_T(1), s, o);
      // PLMS's first step calls the model twice; model_calls states what every run costs.
      EXPECT_EQ(tr.model_calls, name == "plms" ? steps + 1 : steps) << name << " " << steps;
      EXPECT_EQ(tr.model_calls, rdm::sampler::model_calls(name, steps)) << name << " " << steps;
      EXPECT_EQ(tr.sampling_timesteps_in_order.size(), static_cast<size_t>(steps)) << name;
    }
  EXPECT_THROW(rdm::sampler::model_calls("heun", 10), rdm::Error);
}

TEST(SamplerSolvers, Spacings) {
  const sampler::Schedule s = rdm_schedule();
  auto o = opts(50);
  const auto trailing = rdm::sampler::spaced_timesteps("trailing", o, s.alphas_cumprod);
  ASSERT_EQ(trailing.size(), 50u);
  for (size_t i = 0; i < 50; ++i) EXPECT_EQ(trailing[i], static_cast<int64_t>(19 + 20 * i));
  EXPECT_EQ(rdm::sampler::spaced_timesteps("uniform", o, s.alphas_cumprod), rdm::sampler::sampler_timesteps(o, 1000));
  for (int steps : {1, 2, 5, 25, 50, 200}) {
    const auto k = rdm::sampler::spaced_timesteps("karras", opts(steps), s.alphas_cumprod);
    ASSERT_EQ(k.size(), static_cast<size_t>(steps));
    EXPECT_EQ(k.back(), 999);
    if (steps > 1) EXPECT_EQ(k.front(), 1);
    for (size_t i = 1; i < k.size(); ++i) EXPECT_LT(k[i - 1], k[i]);
  }
  // Karras spends more steps at low noise than uniform.
  const auto k = rdm::sampler::spaced_timesteps("karras", opts(20), s.alphas_cumprod);
  const auto u = rdm::sampler::spaced_timesteps("uniform", opts(20), s.alphas_cumprod);
  auto low = [](const std::vector<int64_t>& v) { return std::count_if(v.begin(), v.end(), [](int64_t t) { return t < 100; }); };
  EXPECT_GT(low(k), low(u));

  EXPECT_THROW(rdm::sampler::spaced_timesteps("cosine", o, s.alphas_cumprod), rdm::Error);
  EXPECT_THROW(rdm::sampler::run_sampler("heun", toy_eps(s), x_T(1), s, o), rdm::Error);
  auto bad = opts(5);
  bad.eta = 0.5;
  EXPECT_THROW(rdm::sampler::dpmpp_2m_sample(toy_eps(s), x_T(1), s, bad), rdm::Error);
  EXPECT_THROW(rdm::sampler::unipc_sample(toy_eps(s), x_T(1), s, bad), rdm::Error);
}

}  // namespace
