// The statistics of `rdm eval` (eval.hpp): confidence intervals of proportions and of their
// differences, and CLIP-embedding summaries. Plain functions of counts and tensors.
#pragma once
#include <cstdint>

#include <torch/types.h>

namespace rdm::eval {

// The normal quantile of a two-sided 95 % interval.
inline constexpr double kZ95 = 1.959963984540054;

struct Interval {
  double lo = 0, hi = 0;
};

// Wilson score interval of a proportion k / n (Wilson 1927); {0, 1} when n == 0. Unlike the
// Wald interval it stays inside [0, 1] and is not empty at k = 0 or k = n.
Interval wilson_interval(int64_t k, int64_t n, double z = kZ95);

// Newcombe's hybrid score interval (1998, method 10) of p1 - p2 = k1 / n1 - k2 / n2 for two
// independent proportions, from their Wilson intervals; {-1, 1} when n1 or n2 is 0.
Interval newcombe_difference(int64_t k1, int64_t n1, int64_t k2, int64_t n2, double z = kZ95);

// Wald interval of the difference of two independent means m1 - m2 with sample standard
// deviations s1, s2 over n1, n2 values: (m1 - m2) +- z sqrt(s1^2 / n1 + s2^2 / n2). NaN bounds
// when n1 or n2 is 0.
Interval wald_difference(double m1, double s1, int64_t n1, double m2, double s2, int64_t n2, double z = kZ95);

// Mean of 1 - cos(a, b) over all unordered pairs of rows of `rows` [N, D] (rows need not be
// normalised; zero rows count as distance 1). NaN when N < 2.
double mean_pairwise_cosine_distance(const torch::Tensor& rows);

}  // namespace rdm::eval
