// Confidence intervals and embedding summaries of `rdm eval` (see rdm/app/eval_stats.hpp).
// No reference file: the paper reports accuracies without intervals; the formulas are Wilson's
// (1927) and Newcombe's (1998, Statistics in Medicine 17:873, method 10).
#include "rdm/app/eval_stats.hpp"

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace rdm::eval {

Interval wilson_interval(int64_t k, int64_t n, double z) {
  if (n <= 0) return {0.0, 1.0};
  const double nn = static_cast<double>(n), p = static_cast<double>(k) / nn, z2 = z * z;
  const double denom = 1 + z2 / nn;
  const double centre = (p + z2 / (2 * nn)) / denom;
  const double half = z * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / denom;
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

Interval newcombe_difference(int64_t k1, int64_t n1, int64_t k2, int64_t n2, double z) {
  if (n1 <= 0 || n2 <= 0) return {-1.0, 1.0};
  const double p1 = static_cast<double>(k1) / static_cast<double>(n1);
  const double p2 = static_cast<double>(k2) / static_cast<double>(n2);
  const Interval a = wilson_interval(k1, n1, z), b = wilson_interval(k2, n2, z);
  const double d = p1 - p2;
  const double lo = d - std::sqrt((p1 - a.lo) * (p1 - a.lo) + (b.hi - p2) * (b.hi - p2));
  const double hi = d + std::sqrt((a.hi - p1) * (a.hi - p1) + (p2 - b.lo) * (p2 - b.lo));
  return {lo, hi};
}

Interval wald_difference(double m1, double s1, int64_t n1, double m2, double s2, int64_t n2, double z) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (n1 <= 0 || n2 <= 0) return {nan, nan};
  const double se = std::sqrt(s1 * s1 / static_cast<double>(n1) + s2 * s2 / static_cast<double>(n2));
  return {m1 - m2 - z * se, m1 - m2 + z * se};
}

double mean_pairwise_cosine_distance(const torch::Tensor& rows) {
  const int64_t n = rows.dim() == 2 ? rows.size(0) : 0;
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  torch::Tensor x = rows.to(torch::kCPU, torch::kFloat64);
  torch::Tensor norms = x.norm(2, 1, /*keepdim=*/true);
  x = torch::where(norms > 0, x / norms.clamp_min(1e-300), torch::zeros_like(x));
  torch::Tensor cos = x.matmul(x.t());
  // Sum over the strict upper triangle.
  const double off = (cos.sum().item<double>() - cos.diagonal().sum().item<double>()) / 2;
  const double pairs = static_cast<double>(n) * static_cast<double>(n - 1) / 2;
  return 1.0 - off / pairs;
}

}  // namespace rdm::eval
