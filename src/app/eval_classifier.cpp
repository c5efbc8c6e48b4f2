// The linear-probe style classifier of `rdm eval` (see rdm/app/eval_classifier.hpp). No
// reference file: the paper scores styles with a classifier trained on ArtBench; this is the
// CLIP linear probe of Radford et al. 2021 (logistic regression, L-BFGS) in LibTorch.
#include "rdm/app/eval_classifier.hpp"

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "rdm/runtime/error.hpp"

namespace rdm::eval {
using json = nlohmann::json;

namespace {
// SplitMix64: a small portable generator (std::shuffle's use of an engine is not portable).
struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }
};

double accuracy_of(const torch::Tensor& logits, const torch::Tensor& y) {
  if (y.numel() == 0) return std::numeric_limits<double>::quiet_NaN();
  return logits.argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
}

void check_inputs(const torch::Tensor& features, const std::vector<int64_t>& labels,
                  const std::vector<std::string>& classes, const ProbeOptions& o) {
  if (features.dim() != 2)
    fail("style classifier: features must be a matrix [N, D], got {} dimension(s)", features.dim());
  if (features.size(0) != static_cast<int64_t>(labels.size()))
    fail("style classifier: {} feature rows but {} labels", features.size(0), labels.size());
  if (classes.size() < 2) fail("style classifier: needs at least 2 styles, got {}", classes.size());
  for (int64_t l : labels)
    if (l < 0 || l >= static_cast<int64_t>(classes.size()))
      fail("style classifier: label {} is outside 0..{}", l, classes.size() - 1);
  if (!(o.holdout >= 0 && o.holdout <= 0.9))
    fail("style classifier: the held-out share {} is outside [0, 0.9]", o.holdout);
  if (!(o.l2 >= 0 && std::isfinite(o.l2)))
    fail("style classifier: the L2 penalty {} must be a finite number >= 0", o.l2);
  if (o.max_iterations < 1) fail("style classifier: max_iterations must be at least 1");
  if (features.numel() > 0 && !torch::isfinite(features).all().item<bool>())
    fail("style classifier: the embeddings hold non-finite values");
}
}  // namespace

Split stratified_split(const std::vector<int64_t>& labels, int64_t classes, double holdout, uint64_t seed) {
  Split s;
  for (int64_t c = 0; c < classes; ++c) {
    std::vector<int64_t> idx;
    for (size_t i = 0; i < labels.size(); ++i)
      if (labels[i] == c) idx.push_back(static_cast<int64_t>(i));
    SplitMix rng{seed * 0x100000001B3ull + static_cast<uint64_t>(c)};
    for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[rng.below(i)]);
    const int64_t n = static_cast<int64_t>(idx.size());
    int64_t n_test = static_cast<int64_t>(std::llround(holdout * static_cast<double>(n)));
    if (holdout > 0 && n >= 2) n_test = std::max<int64_t>(n_test, 1);
    n_test = std::min(n_test, n - 1);
    if (n_test < 0) n_test = 0;
    s.test.insert(s.test.end(), idx.begin(), idx.begin() + n_test);
    s.train.insert(s.train.end(), idx.begin() + n_test, idx.end());
  }
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.test.begin(), s.test.end());
  return s;
}

StyleProbe train_probe(const torch::Tensor& features, const std::vector<int64_t>& labels,
                       const std::vector<std::string>& classes, const ProbeOptions& o) {
  check_inputs(features, labels, classes, o);
  // Training needs autograd: leave any inference mode of the caller, and copy the rows so
  // that inference tensors are never saved for backward.
  c10::InferenceMode no_inference(false);
  torch::AutoGradMode grad(true);
  const int64_t C = static_cast<int64_t>(classes.size());
  const torch::Tensor x_all = features.detach().to(torch::kCPU, torch::kFloat32).clone();
  const torch::Tensor y_all = torch::tensor(labels, torch::kInt64);
  const Split split = stratified_split(labels, C, o.holdout, o.seed);
  std::vector<bool> present(static_cast<size_t>(C), false);
  for (int64_t i : split.train) present[static_cast<size_t>(labels[static_cast<size_t>(i)])] = true;
  if (std::count(present.begin(), present.end(), true) < 2)
    fail("style classifier: fewer than 2 styles have training images");
  const torch::Tensor tr = torch::tensor(split.train, torch::kInt64), te = torch::tensor(split.test, torch::kInt64);
  const torch::Tensor x_tr = x_all.index_select(0, tr), y_tr = y_all.index_select(0, tr);

  StyleProbe p;
  p.classes = classes;
  p.options = o;
  p.mean = x_tr.mean(0);
  p.scale = x_tr.size(0) > 1 ? x_tr.std(0, /*unbiased=*/false).clamp_min(1e-6) : torch::ones_like(p.mean);
  const torch::Tensor z_tr = (x_tr - p.mean) / p.scale;
  torch::Tensor w = torch::zeros({x_all.size(1), C}, torch::kFloat32).set_requires_grad(true);
  torch::Tensor b = torch::zeros({C}, torch::kFloat32).set_requires_grad(true);
  torch::optim::LBFGS opt({w, b}, torch::optim::LBFGSOptions(1.0)
                                      .max_iter(o.max_iterations)
                                      .history_size(20)
                                      .tolerance_grad(1e-6)
                                      .tolerance_change(1e-9)
                                      .line_search_fn("strong_wolfe"));
  int evaluations = 0;
  auto closure = [&] {
    opt.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(z_tr.matmul(w) + b, y_tr) + 0.5 * o.l2 * w.pow(2).sum();
    loss.backward();
    ++evaluations;
    return loss;
  };
  opt.step(closure);
  torch::NoGradGuard no_grad;
  p.weight = w.detach().clone();
  p.bias = b.detach().clone();
  p.iterations = evaluations;
  p.final_loss =
      (torch::nn::functional::cross_entropy(z_tr.matmul(p.weight) + p.bias, y_tr) + 0.5 * o.l2 * p.weight.pow(2).sum())
          .item<double>();
  p.train_size = static_cast<int64_t>(split.train.size());
  p.test_size = static_cast<int64_t>(split.test.size());
  p.train_accuracy = accuracy_of(z_tr.matmul(p.weight) + p.bias, y_tr);
  const torch::Tensor y_te = y_all.index_select(0, te);
  const torch::Tensor pred_te = p.probabilities(x_all.index_select(0, te)).argmax(1);
  p.holdout_accuracy = p.test_size ? pred_te.eq(y_te).to(torch::kFloat64).mean().item<double>()
                                   : std::numeric_limits<double>::quiet_NaN();
  p.test_per_class.assign(static_cast<size_t>(C), 0);
  p.correct_per_class.assign(static_cast<size_t>(C), 0);
  for (int64_t i = 0; i < p.test_size; ++i) {
    const int64_t c = y_te[i].item<int64_t>();
    ++p.test_per_class[static_cast<size_t>(c)];
    if (pred_te[i].item<int64_t>() == c) ++p.correct_per_class[static_cast<size_t>(c)];
  }
  return p;
}

torch::Tensor StyleProbe::probabilities(const torch::Tensor& features) const {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(features.dim() == 2 && features.size(1) == weight.size(0), "style classifier: features must be [N, ",
              weight.size(0), "]");
  const torch::Tensor z = (features.detach().to(torch::kCPU, torch::kFloat32) - mean) / scale;
  return torch::softmax(z.matmul(weight) + bias, 1);
}

std::vector<int64_t> StyleProbe::predict(const torch::Tensor& features) const {
  const torch::Tensor a = probabilities(features).argmax(1).contiguous();
  return std::vector<int64_t>(a.data_ptr<int64_t>(), a.data_ptr<int64_t>() + a.numel());
}

json StyleProbe::to_json() const {
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json per_class = json::array();
  for (size_t c = 0; c < classes.size(); ++c) {
    const int64_t n = c < test_per_class.size() ? test_per_class[c] : 0;
    const int64_t k = c < correct_per_class.size() ? correct_per_class[c] : 0;
    per_class.push_back({{"style", classes[c]},
                         {"test", n},
                         {"correct", k},
                         {"accuracy", n ? json(static_cast<double>(k) / static_cast<double>(n)) : json(nullptr)}});
  }
  return {{"kind", "linear probe (multinomial logistic regression on standardised CLIP image embeddings)"},
          {"classes", classes},
          {"train_size", train_size},
          {"test_size", test_size},
          {"train_accuracy", num(train_accuracy)},
          {"holdout_accuracy", num(holdout_accuracy)},
          {"chance", classes.empty() ? json(nullptr) : json(1.0 / static_cast<double>(classes.size()))},
          {"per_class", per_class},
          {"holdout", options.holdout},
          {"l2", options.l2},
          {"seed", options.seed},
          {"evaluations", iterations},
          {"final_loss", num(final_loss)}};
}

}  // namespace rdm::eval
