// UniPC (Zhao et al. 2023, arXiv 2302.04867): the UniP-p predictor and UniC-p corrector with
// B(h) = e^h - 1 ("bh2"), data prediction, on the discrete linear schedule. The step order,
// warm-up and lower-order final steps follow the authors' multistep implementation.
#include <cmath>
#include <deque>

#include <torch/torch.h>

#include "rdm/runtime/error.hpp"
#include "rdm/sampler/solvers.hpp"
#include "sampler/solver_loop.hpp"

namespace rdm::sampler {

namespace {
struct History {
  torch::Tensor m;  // data prediction
  size_t level;     // grid level it was made at
};

// The coefficients of one UniP/UniC update of order p from level s0 to level t, with earlier
// data predictions at levels s_1 .. s_{p-1}: r_k = (lambda_{s_k} - lambda_{s0}) / h and
// R[i][k] = r_k^i, b[i] = i! phi_{i+1}(hh) / B(h) (hh = -h), phi via the recurrence
// h_phi_{k+1} = h_phi_k / hh - 1/(k+1)!.
struct UniCoefficients {
  double h = 0, h_phi_1 = 0, b_h = 0;
  std::vector<double> rks;  // p entries, the last is 1
  std::vector<double> b;    // p entries
};

UniCoefficients coefficients(const SolverGrid& g, size_t s0, size_t t, const std::vector<size_t>& earlier, int p) {
  UniCoefficients c;
  c.h = g.lambda[t] - g.lambda[s0];
  for (size_t si : earlier) c.rks.push_back((g.lambda[si] - g.lambda[s0]) / c.h);
  c.rks.push_back(1.0);
  const double hh = -c.h;
  c.h_phi_1 = std::expm1(hh);
  c.b_h = std::expm1(hh);
  double h_phi_k = c.h_phi_1 / hh - 1.0;
  double factorial = 1.0;
  for (int i = 1; i <= p; ++i) {
    c.b.push_back(h_phi_k * factorial / c.b_h);
    factorial *= i + 1;
    h_phi_k = h_phi_k / hh - 1.0 / factorial;
  }
  return c;
}

// Solves R[:n, :n] rho = b[:n] with R[i][k] = rks[k]^i, in float64.
std::vector<double> solve_rhos(const UniCoefficients& c, int n) {
  auto R = torch::empty({n, n}, torch::kFloat64);
  auto b = torch::empty({n}, torch::kFloat64);
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < n; ++k) R[i][k] = std::pow(c.rks[static_cast<size_t>(k)], i);
    b[i] = c.b[static_cast<size_t>(i)];
  }
  auto rho = at::linalg_solve(R, b).contiguous();
  return std::vector<double>(rho.data_ptr<double>(), rho.data_ptr<double>() + n);
}

// sum_k rho[k] (m_k - m0) / r_k over the earlier predictions (hist[size-2], hist[size-3], ...).
torch::Tensor weighted_differences(const std::deque<History>& hist, const torch::Tensor& m0,
                                   const UniCoefficients& c, const std::vector<double>& rho, int count) {
  torch::Tensor acc;
  for (int k = 0; k < count; ++k) {
    const auto& mk = hist[hist.size() - 2 - static_cast<size_t>(k)].m;
    torch::Tensor term = (rho[static_cast<size_t>(k)] / c.rks[static_cast<size_t>(k)]) * (mk - m0);
    acc = acc.defined() ? acc + term : term;
  }
  return acc;
}

std::vector<size_t> earlier_levels(const std::deque<History>& hist, int count) {
  std::vector<size_t> out;
  for (int k = 0; k < count; ++k) out.push_back(hist[hist.size() - 2 - static_cast<size_t>(k)].level);
  return out;
}

// UniP-p from the last history entry (level s0) to level t.
torch::Tensor predictor(const SolverGrid& g, const torch::Tensor& x, const std::deque<History>& hist, size_t t, int p) {
  const auto& m0 = hist.back().m;
  const size_t s0 = hist.back().level;
  const auto c = coefficients(g, s0, t, earlier_levels(hist, p - 1), p);
  torch::Tensor out = (g.sigma[t] / g.sigma[s0]) * x - (g.alpha[t] * c.h_phi_1) * m0;
  if (p >= 2) {
    const std::vector<double> rho = p == 2 ? std::vector<double>{0.5} : solve_rhos(c, p - 1);
    out = out - (g.alpha[t] * c.b_h) * weighted_differences(hist, m0, c, rho, p - 1);
  }
  return out;
}

// UniC-p: corrects x_t (level t) made from x_s (the last history entry's level) with the model's
// data prediction m_t at x_t.
torch::Tensor corrector(const SolverGrid& g, const torch::Tensor& x_s, const std::deque<History>& hist,
                        const torch::Tensor& m_t, size_t t, int p) {
  const auto& m0 = hist.back().m;
  const size_t s0 = hist.back().level;
  const auto c = coefficients(g, s0, t, earlier_levels(hist, p - 1), p);
  const std::vector<double> rho = p == 1 ? std::vector<double>{0.5} : solve_rhos(c, p);
  torch::Tensor res = rho.back() * (m_t - m0);
  if (p >= 2) res = res + weighted_differences(hist, m0, c, rho, p - 1);
  return (g.sigma[t] / g.sigma[s0]) * x_s - (g.alpha[t] * c.h_phi_1) * m0 - (g.alpha[t] * c.b_h) * res;
}
}  // namespace

torch::Tensor unipc_sample(const EpsFn& eps, torch::Tensor x_T, const Schedule& schedule, const SamplerOptions& opts,
                           const ProgressFn& progress) {
  if (opts.eta != 0) fail("unipc: the solver is deterministic; eta must be 0, got {}", opts.eta);
  if (opts.order < 1 || opts.order > 3) fail("unipc: order must be 1, 2 or 3, got {}", opts.order);
  solver_detail::LoopState s("unipc", eps, std::move(x_T), schedule, opts);
  const auto& g = s.grid;
  const int64_t n = g.size();
  std::deque<History> hist;
  torch::Tensor last_sample;
  int last_order = 0;
  for (int64_t i = 0; i < n; ++i) {
    const size_t k = static_cast<size_t>(i);
    // The model is called at the predictor's output; its prediction also drives the corrector.
    const torch::Tensor m = s.data_prediction(i);
    if (i > 0) s.x = corrector(g, last_sample, hist, m, k, last_order);
    hist.push_back({m, k});
    if (hist.size() > static_cast<size_t>(opts.order)) hist.pop_front();
    // Order: warm up from 1 and lower towards the end (the last step is first order).
    int order = std::min<int64_t>(opts.order, n - i);
    order = std::min<int>(order, static_cast<int>(i) + 1);
    last_sample = s.x;
    s.x = predictor(g, s.x, hist, k + 1, order);
    last_order = order;
    s.finish_step(i, m, progress);
  }
  return s.x;
}

}  // namespace rdm::sampler
