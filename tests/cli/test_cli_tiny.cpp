// CLI tests of the shipped tiny trained model (models/tiny, made by scripts/train_tiny.sh):
// its files load strictly and pass `rdm inspect`; `rdm demo` with it is byte-deterministic; and
// retrieval does what the method promises, measured with the tiny CLIP over every pair of demo
// styles (including the two held out of all training): swapping the database moves the images
// toward its pictures more often than chance allows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cli/cli_demo_fixture.hpp"
#include "rdm/formats/npy.hpp"

namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace rdm_cli_test;

fs::path tiny_model() { return fs::path(env("RDM_SOURCE_DIR")) / "models" / "tiny"; }

// L2-normalised CLIP image embeddings of `images` (rows in order), by `rdm embed`.
torch::Tensor embed_images(const std::vector<fs::path>& images, const fs::path& npy) {
  std::string args = "embed --clip " + quote((tiny_model() / "clip.safetensors").string()) + " --out " +
                     quote(npy.string()) + " --image";
  for (const auto& p : images) args += " " + quote(p.string());
  const auto r = run_rdm(args);
  EXPECT_EQ(r.code, 0) << r.err;
  return rdm::formats::read_npy(npy).to(torch::kFloat32);
}

std::vector<fs::path> pngs_in(const fs::path& dir) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".png") v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST(TinyModel, ShippedFilesLoadStrictlyAndPassInspect) {
  const fs::path m = tiny_model();
  int64_t bytes = 0;
  for (const char* f : {"model.safetensors", "config.yaml", "clip.safetensors", "clip.vocab.txt.gz", "rdm.json"}) {
    ASSERT_TRUE(fs::is_regular_file(m / f)) << f;
    bytes += static_cast<int64_t>(fs::file_size(m / f));
  }
  EXPECT_LE(bytes, 25'000'000) << "models/tiny must stay within 25 MB";
  auto r = run_rdm("inspect --json " + quote((m / "model.safetensors").string()));
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("format"), "safetensors");
  EXPECT_GT(j.at("ema").at("unet_parameters").get<int64_t>(), 0);
  r = run_rdm("inspect " + quote((m / "clip.safetensors").string()));
  EXPECT_EQ(r.code, 0) << r.err;
  // The strict loaders: one sample through the whole pipeline, by the model's name.
  const fs::path out = scratch("tiny_sample");
  r = run_rdm("sample \"a red boat\" --model " + quote(m.string()) + " -n 1 --steps 5 --out " +
              quote(out.string()));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(pngs_in(out).size(), 1u);
}

TEST(TinyModel, DemoIsDeterministicAndEachDatabaseMovesImagesTowardItsStyle) {
  const fs::path demo = scratch("tiny_demo");
  auto r = run_rdm("demo --json --out " + quote(demo.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  const json rep = json::parse(r.out);
  const auto styles = rep.at("styles").get<std::vector<std::string>>();
  const auto prompts = rep.at("prompts").get<std::vector<std::string>>();
  const auto images = rep.at("images").get<std::vector<std::string>>();
  ASSERT_GE(styles.size(), 4u);
  ASSERT_EQ(images.size(), styles.size() * prompts.size());
  EXPECT_TRUE(fs::is_regular_file(rep.at("contact_sheet").get<std::string>()));
  EXPECT_EQ(rep.at("neighbor_sheets").size(), images.size());

  // Same options, same bytes (a subset of the jobs, sampled again into the same folder).
  std::map<std::string, std::string> before;
  for (const auto& p : images) before[p] = slurp(p);
  r = run_rdm("demo --json " + quote(prompts[0]) + " --styles " + styles[0] + "," + styles.back() + " --out " +
              quote(demo.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto again = json::parse(r.out).at("images").get<std::vector<std::string>>();
  ASSERT_EQ(again.size(), 2u);
  for (const auto& p : again) {
    ASSERT_TRUE(before.count(p)) << p;
    EXPECT_TRUE(slurp(p) == before[p]) << p << " differs between two identical runs";
  }

  // Swapping the database moves the image toward the database's style: for a pair of styles
  // (A, B), the images made with A are closer (mean CLIP image similarity, tiny CLIP) to A's
  // pictures than the images made with B are. Counted over every ordered pair of demo styles,
  // it must hold for more pairs than chance allows (one-sided binomial test at 5 %: a model
  // whose images ignore the database passes each pair with probability 1/2). The stricter
  // per-pair form (each pair, and A's images closer to A's pictures than to B's) is reported.
  const auto gen = embed_images(std::vector<fs::path>(images.begin(), images.end()), demo / "gen.npy");
  std::vector<torch::Tensor> db;
  for (const auto& s : styles) db.push_back(embed_images(pngs_in(demo / "images" / s), demo / (s + ".npy")));
  const int64_t S = static_cast<int64_t>(styles.size()), P = static_cast<int64_t>(prompts.size());
  std::vector<torch::Tensor> made;  // images made with each database (prompt-major order)
  for (int64_t a = 0; a < S; ++a) {
    std::vector<int64_t> rows;
    for (int64_t p = 0; p < P; ++p) rows.push_back(p * S + a);
    made.push_back(gen.index_select(0, torch::tensor(rows)));
  }
  auto sim = [&](int64_t made_with, int64_t pictures) {
    return made[made_with].matmul(db[pictures].t()).mean().item<double>();
  };
  int64_t toward = 0, strict = 0, pairs = 0;
  for (int64_t a = 0; a < S; ++a)
    for (int64_t b = 0; b < S; ++b) {
      if (a == b) continue;
      ++pairs;
      toward += sim(a, a) > sim(b, a);
      strict += sim(a, a) > sim(a, b);
    }
  // Smallest k with P(Binomial(pairs, 1/2) >= k) < 0.05.
  int64_t needed = pairs + 1;
  for (int64_t k = pairs; k >= 0; --k) {
    double tail = 0;
    for (int64_t i = k; i <= pairs; ++i) tail += std::exp(std::lgamma(pairs + 1.0) - std::lgamma(i + 1.0) -
                                                          std::lgamma(pairs - i + 1.0) - pairs * std::log(2.0));
    if (tail >= 0.05) break;
    needed = k;
  }
  std::printf("retrieval toward the database: %lld / %lld pairs (needed %lld); images closer to their own "
              "database than to the other: %lld / %lld\n",
              static_cast<long long>(toward), static_cast<long long>(pairs), static_cast<long long>(needed),
              static_cast<long long>(strict), static_cast<long long>(pairs));
  EXPECT_GE(toward, needed) << "swapping the database does not move the images toward its style";
}
