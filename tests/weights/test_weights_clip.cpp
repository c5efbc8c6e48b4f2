// weights: OpenAI CLIP ViT-L/14 (the TorchScript release, scripts/download_models.sh) embeds
// text and images into 768 dimensions, with the meaning the real model has. Skipped (with the
// reason) unless RDM_WEIGHTS_DIR points at the files.
#include <nlohmann/json.hpp>

#include "weights/weights_layout.hpp"

using namespace rdm_weights_test;
using nlohmann::json;

namespace {
double dot(const json& a, const json& b) {
  const auto x = a.get<std::vector<double>>(), y = b.get<std::vector<double>>();
  double s = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) s += x[i] * y[i];
  return s;
}
}  // namespace

TEST(WeightsClip, EmbedsTextAndImagesByMeaning) {
  const Layout l = layout();
  RDM_REQUIRE_WEIGHTS(l);
  std::string args = "embed --clip " + quote(l.clip.string()) + " --vocab " + quote(l.vocab.string()) +
                     " --text 'a photo of a cat' --text 'a photo of a kitten' --text 'a diagram of a car engine'";
  const fs::path cat = fs::path(env("RDM_GOLDEN_DIR")) / "clip" / "images" / "chelsea.png";  // a cat photo
  const bool with_image = fs::exists(cat);
  if (with_image) args += " --image " + quote(cat.string());
  auto r = run_rdm(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("dim"), 768);
  const auto& t = j.at("texts");
  ASSERT_EQ(t.size(), 3u);
  for (const auto& e : t) EXPECT_NEAR(dot(e["embedding"], e["embedding"]), 1.0, 1e-4);
  EXPECT_GT(dot(t[0]["embedding"], t[1]["embedding"]), dot(t[0]["embedding"], t[2]["embedding"]) + 0.05);
  if (with_image) {
    const auto& img = j.at("images").at(0).at("embedding");
    EXPECT_GT(dot(img, t[0]["embedding"]), dot(img, t[2]["embedding"]) + 0.02);
  }
}
