// rdm eval, library side: intervals against published values, the style classifier (near
// chance on random data, high on separable data, through real databases too), the plan and its
// jobs, the figures.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <set>

#include "rdm/app/eval.hpp"
#include "rdm/app/eval_classifier.hpp"
#include "rdm/app/eval_stats.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/image/plot.hpp"
#include "rdm/retrieval/build.hpp"
#include "rdm/runtime/error.hpp"
#include "unit/temp_data.hpp"

namespace fs = std::filesystem;
using namespace rdm::eval;

namespace {
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const rdm::Error& e) {
    return e.what();
  }
  return "";
}

// Rows of `n` x `d` with random labels in [0, classes), or rows shifted by 4 along axis `label`
// (well separated) when `separable`.
struct Data {
  torch::Tensor x;
  std::vector<int64_t> y;
};
Data make_data(int64_t n, int64_t d, int64_t classes, bool separable, uint64_t seed) {
  Data out{rdm_test::random_rows(n, d, seed), {}};
  auto gen = at::detail::createCPUGenerator(seed + 1);
  const torch::Tensor labels = torch::randint(classes, {n}, gen, torch::kInt64);
  for (int64_t i = 0; i < n; ++i) {
    out.y.push_back(labels[i].item<int64_t>());
    if (separable) out.x[i][out.y.back()] += 4.0;
  }
  return out;
}

std::vector<std::string> names(int64_t c) {
  std::vector<std::string> v;
  for (int64_t i = 0; i < c; ++i) v.push_back("style" + std::to_string(i));
  return v;
}

// A style database of `rows` (imported embeddings: the "pictures" are the vectors).
fs::path make_db(const fs::path& root, const std::string& name, const torch::Tensor& rows) {
  fs::create_directories(root);
  const fs::path npy = root / (name + ".npy");
  rdm::formats::write_npy(npy, rows);
  rdm::retrieval::ImportOptions o;
  o.inputs = {npy};
  o.out = root / name;
  o.clip_identity = "ViT-T/8";
  o.name = name;
  rdm::retrieval::import_database(o);
  return o.out;
}
}  // namespace

TEST(EvalStats, WilsonIntervalMatchesHandComputedValues) {
  // 8/10: centre (0.8 + z^2/20) / (1 + z^2/10), half-width z sqrt(0.016 + z^2/400) / (1 + z^2/10).
  Interval a = wilson_interval(8, 10);
  EXPECT_NEAR(a.lo, 0.49016, 1e-5);
  EXPECT_NEAR(a.hi, 0.94332, 1e-5);
  // 0/10 and 10/10: z^2 / (n + z^2) = 0.27753 from the bound.
  Interval zero = wilson_interval(0, 10), all = wilson_interval(10, 10);
  EXPECT_DOUBLE_EQ(zero.lo, 0.0);
  EXPECT_NEAR(zero.hi, 0.27753, 1e-5);
  EXPECT_NEAR(all.lo, 0.72247, 1e-5);
  EXPECT_NEAR(all.hi, 1.0, 1e-12);
  Interval none = wilson_interval(0, 0);
  EXPECT_EQ(none.lo, 0.0);
  EXPECT_EQ(none.hi, 1.0);
}

TEST(EvalStats, NewcombeDifferenceMatchesThePublishedExamples) {
  // Newcombe (1998), Table II, method 10.
  Interval a = newcombe_difference(56, 70, 48, 80);
  EXPECT_NEAR(a.lo, 0.0524, 5e-5);
  EXPECT_NEAR(a.hi, 0.3339, 5e-5);
  Interval b = newcombe_difference(9, 10, 3, 10);
  EXPECT_NEAR(b.lo, 0.1705, 5e-5);
  EXPECT_NEAR(b.hi, 0.8090, 5e-5);
  Interval c = newcombe_difference(5, 56, 0, 29);
  EXPECT_NEAR(c.lo, -0.0381, 5e-5);
  EXPECT_NEAR(c.hi, 0.1926, 5e-5);
}

TEST(EvalStats, WaldDifferenceAndPairwiseDistance) {
  Interval w = wald_difference(0.5, 0.1, 25, 0.4, 0.2, 16);  // se = sqrt(0.0004 + 0.0025)
  EXPECT_NEAR(w.lo, 0.1 - kZ95 * std::sqrt(0.0029), 1e-12);
  EXPECT_NEAR(w.hi, 0.1 + kZ95 * std::sqrt(0.0029), 1e-12);
  EXPECT_TRUE(std::isnan(wald_difference(0, 0, 0, 0, 0, 3).lo));
  // Pairs: cos 0, 1/sqrt 2, 1/sqrt 2 -> distance 1 - sqrt(2) / 3.
  torch::Tensor rows = torch::tensor({1.0, 0.0, 0.0, 2.0, 3.0, 3.0}).reshape({3, 2});
  EXPECT_NEAR(mean_pairwise_cosine_distance(rows), 1 - std::sqrt(2.0) / 3, 1e-9);
  EXPECT_NEAR(mean_pairwise_cosine_distance(torch::ones({4, 5})), 0.0, 1e-9);
  EXPECT_TRUE(std::isnan(mean_pairwise_cosine_distance(torch::ones({1, 5}))));
}

TEST(EvalClassifier, StratifiedSplitIsSeededDisjointAndPerClass) {
  std::vector<int64_t> labels;
  for (int i = 0; i < 50; ++i) labels.push_back(i % 3 == 0 ? 0 : i % 3 == 1 ? 1 : 2);
  labels.push_back(3);  // a class of one item stays in training
  Split s = stratified_split(labels, 4, 0.2, 7);
  std::set<int64_t> all(s.train.begin(), s.train.end());
  for (int64_t i : s.test) EXPECT_TRUE(all.insert(i).second) << "item " << i << " in both parts";
  EXPECT_EQ(all.size(), labels.size());
  std::vector<int64_t> per_class(4, 0);
  for (int64_t i : s.test) ++per_class[static_cast<size_t>(labels[static_cast<size_t>(i)])];
  EXPECT_EQ(per_class, (std::vector<int64_t>{3, 3, 3, 0}));  // round(0.2 * 17 or 16)
  EXPECT_EQ(stratified_split(labels, 4, 0.2, 7).test, s.test);
  EXPECT_NE(stratified_split(labels, 4, 0.2, 8).test, s.test);
  EXPECT_TRUE(stratified_split(labels, 4, 0.0, 7).test.empty());
}

TEST(EvalClassifier, RandomLabelsGiveChanceHeldOutAccuracy) {
  Data d = make_data(400, 32, 4, /*separable=*/false, 11);
  StyleProbe p = train_probe(d.x, d.y, names(4), ProbeOptions{});
  EXPECT_EQ(p.test_size + p.train_size, 400);
  EXPECT_GT(p.test_size, 70);
  // Chance is 0.25; 80 test items give a standard deviation of about 0.05.
  EXPECT_GT(p.holdout_accuracy, 0.08);
  EXPECT_LT(p.holdout_accuracy, 0.42);
  EXPECT_GT(p.train_accuracy, p.holdout_accuracy);  // it fits the noise it was trained on
}

TEST(EvalClassifier, SeparableDataGiveHighHeldOutAccuracy) {
  Data d = make_data(400, 32, 4, /*separable=*/true, 12);
  StyleProbe p = train_probe(d.x, d.y, names(4), ProbeOptions{});
  EXPECT_GT(p.holdout_accuracy, 0.95);
  // New points of class 2 are predicted as class 2.
  torch::Tensor q = rdm_test::random_rows(20, 32, 99);
  q.select(1, 2) += 4.0;
  for (int64_t c : p.predict(q)) EXPECT_EQ(c, 2);
  const torch::Tensor probs = p.probabilities(q);
  EXPECT_TRUE(torch::allclose(probs.sum(1), torch::ones({20}), 1e-5, 1e-5));
  const auto j = p.to_json();
  EXPECT_EQ(j["classes"].size(), 4u);
  EXPECT_EQ(j["per_class"].size(), 4u);
  EXPECT_DOUBLE_EQ(j["holdout_accuracy"].get<double>(), p.holdout_accuracy);
}

TEST(EvalClassifier, BadInputsAreErrors) {
  Data d = make_data(20, 4, 2, false, 1);
  EXPECT_NE(error_of([&] { train_probe(d.x, d.y, names(1), {}); }).find("at least 2 styles"), std::string::npos);
  EXPECT_NE(error_of([&] { train_probe(d.x.slice(0, 0, 10), d.y, names(2), {}); }).find("labels"), std::string::npos);
  ProbeOptions bad;
  bad.holdout = 0.95;
  EXPECT_NE(error_of([&] { train_probe(d.x, d.y, names(2), bad); }).find("held-out"), std::string::npos);
  torch::Tensor x = d.x.clone();
  x[3][1] = std::nan("");
  EXPECT_NE(error_of([&] { train_probe(x, d.y, names(2), {}); }).find("non-finite"), std::string::npos);
}

TEST(EvalClassifier, DatabasesOfRandomPicturesGiveChanceSeparableOnesHigh) {
  const fs::path root = rdm_test::fresh_temp_dir("rdm_eval", "probe_dbs");
  std::vector<Style> noise, distinct;
  for (int s = 0; s < 3; ++s) {
    const std::string n = "noise" + std::to_string(s);
    make_db(root, n, rdm_test::random_rows(60, 16, 100 + s));
    torch::Tensor rows = rdm_test::random_rows(60, 16, 200 + s);
    rows.select(1, s) += 5.0;
    make_db(root, "style" + std::to_string(s), rows);
  }
  noise = resolve_styles({(root / "noise0").string(), (root / "noise1").string(), (root / "noise2").string()});
  distinct = resolve_styles({(root / "style0").string(), (root / "style1").string(), (root / "style2").string()});
  StyleProbe pn = train_style_probe(noise, ProbeOptions{});
  EXPECT_EQ(pn.test_size, 36);
  EXPECT_LT(pn.holdout_accuracy, 0.6);  // chance 1/3; 36 test images
  StyleProbe pd = train_style_probe(distinct, ProbeOptions{});
  EXPECT_GT(pd.holdout_accuracy, 0.9);
  EXPECT_EQ(pd.classes, (std::vector<std::string>{"style0", "style1", "style2"}));
}

TEST(EvalPlan, StylesJobsAndPlanFile) {
  const fs::path root = rdm_test::fresh_temp_dir("rdm_eval", "plan");
  make_db(root / "dbs", "alpha", rdm_test::random_rows(8, 16, 1));
  make_db(root / "dbs", "beta_style", rdm_test::random_rows(8, 16, 2));
  make_db(root, "narrow", rdm_test::random_rows(8, 12, 3));
  // A folder of databases stands for all of them, sorted.
  Plan plan;
  plan.styles = resolve_styles({(root / "dbs").string()});
  ASSERT_EQ(plan.styles.size(), 2u);
  EXPECT_EQ(plan.styles[0].name, "alpha");
  EXPECT_EQ(plan.styles[1].postfix, "beta style");
  EXPECT_EQ(plan.styles[0].dim, 16);
  EXPECT_NE(error_of([&] { resolve_styles({(root / "dbs" / "alpha").string()}); }).find("at least 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              resolve_styles({(root / "dbs").string(), (root / "narrow").string()});
            }).find("12-d"),
            std::string::npos);
  EXPECT_NE(error_of([&] { resolve_styles({(root / "nope").string(), "x"}); }).find("not found"), std::string::npos);
  EXPECT_NE(error_of([&] {
              resolve_styles({(root / "dbs").string(), (root / "dbs/alpha").string()});
            }).find("two databases are named 'alpha'"),
            std::string::npos);

  plan.prompts = {"a red boat", "an old castle"};
  plan.seeds = {5, 6};
  plan.sampling.k = 4;
  plan.model = {root / "m.safetensors", root / "c.json", root / "clip.safetensors", root / "vocab.txt.gz"};
  plan.validate();
  const auto jobs = plan_jobs(plan);
  ASSERT_EQ(jobs.size(), 2u * 2u * (1u + 2u * 2u));
  std::set<std::string> ids;
  for (const auto& j : jobs) {
    EXPECT_TRUE(ids.insert(j.sweep.id()).second);
    const auto& r = j.sweep.request;
    EXPECT_EQ(r.seed, j.seed);
    EXPECT_EQ(r.prompt, plan.prompts[j.prompt]);
    if (j.mode == "text") {
      EXPECT_TRUE(r.databases.empty() && !r.no_retrieval && j.style == -1);
    }
    if (j.mode == "retrieval") {
      ASSERT_EQ(r.databases.size(), 1u);
      EXPECT_EQ(r.databases[0].dir, plan.styles[static_cast<size_t>(j.style)].dir);
      EXPECT_FALSE(r.no_retrieval);
    }
    if (j.mode == "postfix") {
      EXPECT_TRUE(r.no_retrieval && r.databases.empty());
      EXPECT_EQ(r.style, plan.styles[static_cast<size_t>(j.style)].postfix);
    }
  }
  // The plan file round-trips and guards its folder against another eval.
  const fs::path out = root / "out";
  fs::create_directories(out);
  EXPECT_FALSE(read_plan(out).has_value());
  write_plan(plan, out);
  auto back = read_plan(out);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->to_json(), plan.to_json());
  EXPECT_EQ(plan_jobs(*back).back().sweep.id(), jobs.back().sweep.id());
  write_plan(plan, out);  // the same plan: fine
  Plan other = plan;
  other.seeds = {5};
  EXPECT_NE(error_of([&] { write_plan(other, out); }).find("seeds differ"), std::string::npos);
  other = plan;
  other.sampling.k = 9;
  EXPECT_NE(error_of([&] { other.validate(); }).find("-k 9 is more than the 8 image(s)"), std::string::npos);
  other = plan;
  other.prompts = {"a", "a"};
  EXPECT_NE(error_of([&] { other.validate(); }).find("given twice"), std::string::npos);
  other.prompts = {};
  EXPECT_NE(error_of([&] { other.validate(); }).find("at least one prompt"), std::string::npos);
}

TEST(EvalFigures, HeatMapAndGroupedBars) {
  rdm::image::HeatMap hm;
  hm.title = "confusion";
  hm.rows = hm.columns = {"a", "b", "c"};
  hm.values = {{2, 0, 0}, {1, 1, 0}, {0, 0, 2}};
  auto im = rdm::image::heat_map(hm);
  EXPECT_GE(im.width, 3 * hm.cell);
  EXPECT_GE(im.height, 3 * hm.cell);
  // The cell of the largest value is dark, an empty one white.
  const int left = im.width - 16 - 3 * hm.cell, top = 64;
  const uint8_t* dark = im.at(top + 4, left + 4);
  const uint8_t* white = im.at(top + 4, left + hm.cell + 4);
  EXPECT_LT(dark[0], 40);
  EXPECT_EQ(white[0], 255);
  hm.values[1].pop_back();
  EXPECT_NE(error_of([&] { rdm::image::heat_map(hm); }).find("a row has 2 values"), std::string::npos);

  rdm::image::BarSeries s1{"retrieval", {0.9, 0.5}, {0.7, 0.3}, {1.0, 0.7}, {}};
  rdm::image::BarSeries s2{"postfix", {0.4, 0.2}, {}, {}, {}};
  rdm::image::PlotOptions po;
  auto bars = rdm::image::grouped_bar_chart({"x", "y"}, {s1, s2}, po);
  EXPECT_EQ(bars.width, po.width);
  std::set<uint32_t> colours;
  for (size_t i = 0; i + 2 < bars.pixels.size(); i += 3)
    colours.insert(bars.pixels[i] << 16 | bars.pixels[i + 1] << 8 | bars.pixels[i + 2]);
  EXPECT_GT(colours.size(), 3u);
  s2.values.pop_back();
  EXPECT_NE(error_of([&] {
              rdm::image::grouped_bar_chart({"x", "y"}, {s1, s2}, po);
            }).find("1 values for 2 groups"),
            std::string::npos);
}
