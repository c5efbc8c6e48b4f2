// Unit tests: the query encoder (tokenizer + CLIP + preprocessing + L2 normalisation) on the
// demo's tiny CLIP and vocabulary: knn2img's formula bit for bit, unit rows, batching, images,
// raw image features for `db build`, and the missing-vocabulary error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include <torch/torch.h>

#include "rdm/app/demo.hpp"
#include "rdm/clip/query_encoder.hpp"
#include "rdm/image/png.hpp"
#include "rdm/runtime/error.hpp"

namespace fs = std::filesystem;
using rdm::clip::Preprocess;
using rdm::clip::QueryEncoder;

namespace {
struct TinyClip {
  fs::path root = fs::temp_directory_path() / ("rdm_query_encoder_" + std::to_string(::getpid()));
  rdm::demo::DemoPaths paths = rdm::demo::DemoPaths::under(root);
  std::vector<fs::path> images;
  TinyClip() {
    rdm::demo::write_demo_models(paths, 7);
    for (int i = 0; i < 3; ++i) {
      images.push_back(root / ("image" + std::to_string(i) + ".png"));
      rdm::image::write_png(images.back(), rdm::demo::style_image(i == 1 ? "dots" : "stripes", i, 40 + 8 * i));
    }
  }
  ~TinyClip() { fs::remove_all(root); }
};

const TinyClip& tiny() {
  static TinyClip t;
  return t;
}

// knn2img.py: c = clip.encode_text(clip.tokenize(prompt)); c = c / c.norm(dim=-1, keepdim=True).
torch::Tensor reference_text(const QueryEncoder& e, const std::vector<std::string>& texts) {
  auto c = e.model().encode_text(e.tokenizer().tokenize(texts, e.config().context_length, true));
  c = c.to(torch::kFloat32);
  return c / c.norm(2, -1, true);
}
}  // namespace

TEST(QueryEncoder, TextsFollowKnn2imgBitForBit) {
  auto e = QueryEncoder::load(tiny().paths.clip, tiny().paths.vocab);
  const std::vector<std::string> texts = {"a lighthouse in a storm", "red stripes", ""};
  auto q = e.encode_texts(texts);
  ASSERT_EQ(q.sizes(), (std::vector<int64_t>{3, e.config().embed_dim}));
  EXPECT_EQ(q.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(q, reference_text(e, texts)));
  EXPECT_TRUE(torch::allclose(q.norm(2, -1), torch::ones({3}), 1e-5, 1e-6));
  // One prompt alone is the row of the batch; batches of 1 and 2 give the same rows.
  EXPECT_TRUE(torch::allclose(e.encode_texts({texts[1]})[0], q[1], 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(e.encode_texts(texts, true, 2), q, 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(e.tokenize({texts[0]}), e.tokenizer().tokenize({texts[0]}, e.config().context_length)));
}

TEST(QueryEncoder, ImagesArePreprocessedEncodedAndNormalised) {
  auto e = QueryEncoder::load(tiny().paths.clip);
  const int64_t r = e.config().image_resolution;
  for (auto mode : {Preprocess::Clip, Preprocess::Rdm}) {
    auto q = e.encode_image_files(tiny().images, mode);
    std::vector<torch::Tensor> px;
    for (const auto& f : tiny().images) px.push_back(rdm::clip::preprocess_file(f, r, mode));
    auto raw = e.image_features(torch::stack(px));
    EXPECT_EQ(raw.scalar_type(), torch::kFloat32);
    EXPECT_FALSE(torch::allclose(raw.norm(2, -1), torch::ones({3})));  // db build stores them raw
    EXPECT_TRUE(torch::equal(q, raw / raw.norm(2, -1, true)));
    EXPECT_TRUE(torch::equal(q, QueryEncoder::normalize(raw)));
    EXPECT_TRUE(torch::allclose(e.encode_image_files(tiny().images, mode, 1), q, 1e-5, 1e-6));
  }
  EXPECT_FALSE(torch::allclose(e.encode_image_files({tiny().images[0]}, Preprocess::Clip),
                               e.encode_image_files({tiny().images[1]}, Preprocess::Clip)));
}

TEST(QueryEncoder, PromptsNeedAVocabulary) {
  auto e = QueryEncoder::load(tiny().paths.clip);
  EXPECT_FALSE(e.has_tokenizer());
  EXPECT_THROW(e.encode_texts({"a fox"}), rdm::Error);
  auto with = QueryEncoder::load(tiny().paths.clip, tiny().paths.vocab);
  EXPECT_TRUE(with.has_tokenizer());
  EXPECT_THROW(with.encode_texts({}), rdm::Error);
  EXPECT_THROW(with.encode_image_files({}, Preprocess::Clip), rdm::Error);
  EXPECT_THROW(with.encode_image_files({tiny().root / "missing.png"}, Preprocess::Clip), rdm::Error);
}
