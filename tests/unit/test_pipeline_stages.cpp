// Unit tests: the steps of Pipeline::sample that need no model (app/pipeline_stages.hpp): the
// query text of each mode, the context tensor, and the records every image gets.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "app/pipeline_stages.hpp"
#include "rdm/runtime/error.hpp"
#include "unit/error_of.hpp"

using rdm::ImageRecord;
using rdm::SampleRequest;
using rdm_test::error_of;
namespace stage = rdm::stage;

TEST(PipelineStages, QueryTextOfEachMode) {
  SampleRequest r;
  r.prompt = "a fox";
  EXPECT_EQ(stage::query_text(r, {}), "a fox");
  EXPECT_EQ(stage::query_text(r, {"artbench-ukiyo_e"}), "a fox");  // retrieval: the prompt as is
  r.no_retrieval = true;
  EXPECT_EQ(stage::query_text(r, {"artbench-ukiyo_e", "stripes"}), "a fox in the style of ukiyo e");
  r.style = "baroque";
  EXPECT_EQ(stage::query_text(r, {"artbench-ukiyo_e"}), "a fox in the style of baroque");
  r.style.clear();
  EXPECT_NE(error_of([&] { stage::query_text(r, {}); }).find("--style"), std::string::npos);
  SampleRequest image;
  image.prompt.clear();
  image.image_prompt = "photo.png";
  EXPECT_EQ(stage::query_text(image, {}), "");  // the image is the query
  image.image_prompt.reset();
  EXPECT_NE(error_of([&] { stage::query_text(image, {}); }).find("prompt is empty"), std::string::npos);
}

TEST(PipelineStages, ContextIsTheQueryThenTheNormalisedNeighbours) {
  torch::manual_seed(3);
  auto q = torch::randn({1, 8});
  q = q / q.norm(2, -1, true);
  std::vector<torch::Tensor> nbs = {torch::randn({8}) * 3, torch::randn({8}) * 0.2};
  auto c = stage::build_context(q, nbs, torch::kCPU, torch::kFloat32);
  ASSERT_EQ(c.sizes(), (std::vector<int64_t>{1, 3, 8}));
  EXPECT_TRUE(torch::equal(c[0][0], q[0]));  // knn2img: c = cat([query, neighbours], 1)
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(torch::allclose(c[0][1 + i], nbs[i] / nbs[i].norm(), 1e-6, 1e-7)) << i;
    EXPECT_NEAR(c[0][1 + i].norm().item<double>(), 1.0, 1e-6);
  }
  auto alone = stage::build_context(q, {}, torch::kCPU, torch::kBFloat16);
  EXPECT_EQ(alone.sizes(), (std::vector<int64_t>{1, 1, 8}));
  EXPECT_EQ(alone.scalar_type(), torch::kBFloat16);
}

TEST(PipelineStages, RecordsOfARequestAndOfEachImage) {
  ImageRecord model;
  model.model = ImageRecord::Model{"/m/rdm/tiny/model.safetensors", "0123456789abcdef", "/m/config.json", true};
  model.clip = ImageRecord::Clip{"/m/clip.safetensors", "ViT-L/14:abc"};
  model.vocab = "/m/vocab.txt.gz";
  model.device = "cpu";
  model.precision = "fp32";
  SampleRequest r;
  r.prompt = "a fox";
  r.databases = {rdm::DatabaseChoice::parse("/db/a:0.5")};
  r.k = 4;
  r.seed = 7;
  r.batch_size = 2;
  std::vector<ImageRecord::Database> dbs = {{"a", "/db/a", 0.5, 4, "sha256:x", 10, "ViT-L/14:abc"}};
  std::vector<rdm::NeighborRecord> nbs = {{"a", 3, 0.75f, "/img/3.png", "cubism"}};
  auto base = stage::request_record(model, r, "a fox", dbs, nbs, /*retrieve=*/true, 256, 128);
  EXPECT_EQ(base.mode, "text+neighbors");
  EXPECT_EQ(base.base_seed, 7u);
  EXPECT_EQ(base.width, 256);
  EXPECT_FALSE(base.style.has_value());
  EXPECT_EQ(base.to_json()["model"]["hash"], "0123456789abcdef");
  auto img = stage::image_record(base, {{"sample", 2.0}}, 8, 1);
  EXPECT_EQ(img.seed, 8u);
  EXPECT_EQ(img.index, 1);
  const auto j = img.to_json();
  EXPECT_EQ(j["neighbors"][0]["score"], 0.75);
  EXPECT_EQ(j["seconds"]["sample"], 2.0);
  EXPECT_EQ(j["databases"][0]["k"], 4);
  EXPECT_FALSE(j.contains("schema"));  // schema 1 keeps its bytes
  // Read back, it asks for the same image.
  auto again = ImageRecord::from_json(j).request();
  EXPECT_EQ(again.seed, 8u);
  EXPECT_EQ(again.k, 4);
  EXPECT_EQ(again.databases[0].dir, "/db/a");
  EXPECT_EQ(img.parameters_text().rfind("a fox\nSteps: 50, Sampler: DDIM, CFG scale: 5, Seed: 8, Size: 256x128, "
                                        "Model hash: 0123456789abcdef, Model: tiny",
                                        0),
            0u)
      << img.parameters_text();
  // The other modes.
  r.no_retrieval = true;
  r.style = "ukiyo e";
  auto postfix = stage::request_record(model, r, "a fox in the style of ukiyo e", {}, {}, false, 256, 128);
  EXPECT_EQ(postfix.mode, "postfix");
  EXPECT_EQ(postfix.style.value_or(""), "ukiyo e");
  r.no_retrieval = false;
  EXPECT_EQ(stage::request_record(model, r, "a fox", {}, {}, false, 256, 128).mode, "text");
  r.prompt.clear();
  r.image_prompt = "/img/q.png";
  auto image = stage::request_record(model, r, "", {}, {}, true, 256, 128);
  EXPECT_EQ(image.mode, "image");
  EXPECT_EQ(image.image_prompt.value_or(""), "/img/q.png");
}
