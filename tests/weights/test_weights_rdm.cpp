// weights: the real RDM 768x768 checkpoint (scripts/download_models.sh) loads, `rdm inspect`
// reads it, and `rdm sample` makes one 768x768 image in 2 DDIM steps. Skipped (with the reason)
// unless RDM_WEIGHTS_DIR points at the files.
#include <cmath>

#include <nlohmann/json.hpp>

#include "rdm/image/png.hpp"
#include "rdm/app/pipeline.hpp"
#include "weights/weights_layout.hpp"

using namespace rdm_weights_test;
using nlohmann::json;

TEST(WeightsRdm, InspectListsUnetEmaAndFirstStage) {
  const Layout l = layout();
  RDM_REQUIRE_WEIGHTS(l);
  auto r = run_rdm("inspect " + quote(l.checkpoint.string()) + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  if (l.checkpoint.extension() == ".ckpt") EXPECT_EQ(j.at("format"), "torch_zip");
  size_t unet = 0, ema = 0, first_stage = 0;
  for (const auto& t : j.at("tensors")) {
    const std::string name = t.at("name");
    unet += name.rfind("model.diffusion_model.", 0) == 0;
    ema += name.rfind("model_ema.", 0) == 0;
    first_stage += name.rfind("first_stage_model.decoder.", 0) == 0;
  }
  EXPECT_EQ(unet, 688u);  // the RDM 768 UNet (models/rdm-768.yaml)
  EXPECT_GT(first_stage, 0u);
  ASSERT_TRUE(j.contains("ema")) << "not recognised as a CompVis LatentDiffusion checkpoint";
  EXPECT_TRUE(j.at("ema").at("present").get<bool>());
  EXPECT_GE(ema, unet);  // one copy per UNet parameter (+ num_updates, decay)
}

TEST(WeightsRdm, PipelineLoadsAtTheNativeSize) {
  const Layout l = layout();
  RDM_REQUIRE_WEIGHTS(l);
  rdm::PipelinePaths paths;
  paths.model = l.checkpoint;
  paths.config = fs::exists(l.model_dir / "config.yaml") ? l.model_dir / "config.yaml" : l.model_dir / "config.json";
  paths.clip = l.clip;
  paths.vocab = l.vocab;
  rdm::PipelineOptions opts;
  opts.device = "cpu";
  const rdm::Pipeline p = rdm::Pipeline::load(paths, opts);
  EXPECT_EQ(p.native_width(), 768);
  EXPECT_EQ(p.native_height(), 768);
  EXPECT_EQ(p.size_multiple(), 128);
  EXPECT_EQ(p.device(), "cpu");
}

TEST(WeightsRdm, SampleOne768ImageInTwoSteps) {
  const Layout l = layout();
  RDM_REQUIRE_WEIGHTS(l);
  const fs::path out = scratch("sample");
  std::string args = "sample 'a lighthouse in a storm' --model " + quote(l.model_dir.string()) + " --clip " +
                     quote(l.clip.string()) + " --vocab " + quote(l.vocab.string()) +
                     " -n 1 --steps 2 --seed 1 --device cpu --json --out " + quote(out.string());
  if (!l.database.empty()) args += " --database " + quote(l.database.string());
  auto r = run_rdm(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const json rep = json::parse(r.out);
  ASSERT_EQ(rep.at("images").size(), 1u);
  const fs::path png = rep["images"][0].at("file").get<std::string>();
  const auto f = rdm::image::read_png(png);
  EXPECT_EQ(f.image.width, 768);
  EXPECT_EQ(f.image.height, 768);
  // A decoded image, not a constant or saturated one.
  double sum = 0, sum2 = 0;
  for (uint8_t v : f.image.pixels) {
    sum += v;
    sum2 += double(v) * v;
  }
  const double n = static_cast<double>(f.image.pixels.size());
  const double mean = sum / n, sd = std::sqrt(std::max(0.0, sum2 / n - mean * mean));
  EXPECT_GT(sd, 5.0);
  EXPECT_GT(mean, 5.0);
  EXPECT_LT(mean, 250.0);
  if (!l.database.empty()) EXPECT_EQ(rep["images"][0].at("neighbors").size(), 19u);
}
