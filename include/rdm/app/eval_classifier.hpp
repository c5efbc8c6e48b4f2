// The style classifier of `rdm eval`: a linear probe (multinomial logistic regression) on CLIP
// image embeddings, the stand-in for the paper's ArtBench-trained style classifier. It is
// trained on the embeddings the style databases store (one class per database), with a seeded
// stratified held-out split whose accuracy says how far the classifier itself can be trusted.
//
// Training: features standardised with the training rows' mean and standard deviation, then
// softmax regression minimising mean cross-entropy + l2 / 2 * |W|^2 (bias not penalised), full
// batch L-BFGS with a strong Wolfe line search from W = 0, float32 on the CPU. Deterministic
// for a given seed, data and thread count.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

namespace rdm::eval {

struct ProbeOptions {
  double holdout = 0.2;  // share of each class held out for testing, in [0, 0.9]
  double l2 = 1e-3;      // L2 penalty on the weights (of the standardised features)
  uint64_t seed = 0;     // the split
  int max_iterations = 500;
};

// Per class: a seeded shuffle, then round(holdout * n) items (at least 1 when n >= 2 and
// holdout > 0, never all of them) to `test`, the rest to `train`. Both lists ascending.
struct Split {
  std::vector<int64_t> train, test;
};
Split stratified_split(const std::vector<int64_t>& labels, int64_t classes, double holdout, uint64_t seed);

struct StyleProbe {
  std::vector<std::string> classes;
  torch::Tensor mean, scale;   // [D] standardisation of the inputs
  torch::Tensor weight, bias;  // [D, C], [C]
  ProbeOptions options;
  int64_t train_size = 0, test_size = 0;
  double train_accuracy = 0;
  double holdout_accuracy = 0;  // NaN when nothing is held out
  std::vector<int64_t> test_per_class, correct_per_class;
  int iterations = 0;  // L-BFGS iterations run
  double final_loss = 0;

  // features [N, D] (any float dtype or device) -> class probabilities [N, C] float32 (CPU).
  torch::Tensor probabilities(const torch::Tensor& features) const;
  std::vector<int64_t> predict(const torch::Tensor& features) const;
  // Everything but the weights: classes, sizes, accuracies, options.
  nlohmann::json to_json() const;
};

// Trains on rows of `features` [N, D] with labels in [0, classes.size()); rdm::Error for
// mismatched sizes, labels out of range, non-finite features, bad options or fewer than 2
// classes with training rows.
StyleProbe train_probe(const torch::Tensor& features, const std::vector<int64_t>& labels,
                       const std::vector<std::string>& classes, const ProbeOptions& options);

}  // namespace rdm::eval
