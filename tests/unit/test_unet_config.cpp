// Unit tests: LdmConfig / UNetConfig parsing (YAML and JSON), strictness (unknown keys are
// named), unsupported options, the heads rule of openaimodel.py, and the shipped models/rdm-768.yaml.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "rdm/ldm/config.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/ldm/unet.hpp"

namespace fs = std::filesystem;
namespace ldm = rdm::ldm;
using nlohmann::json;
using rdm::ldm::LdmConfig;
using rdm::ldm::UNetConfig;

namespace {
fs::path source_dir() {
  if (const char* d = std::getenv("RDM_SOURCE_DIR")) return d;
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A small config of our own (not the goldens'), in the layout of the latent-diffusion configs.
json tiny_params() {
  return json::parse(R"({
    "linear_start": 0.0015, "linear_end": 0.015, "timesteps": 1000, "num_timesteps_cond": 1,
    "log_every_t": 200, "first_stage_key": "jpg", "cond_stage_key": "nix", "image_size": 8,
    "channels": 4, "cond_stage_trainable": false, "conditioning_key": "crossattn",
    "monitor": "val/loss_simple_ema", "scale_by_std": false, "scale_factor": 0.5,
    "unet_config": {"target": "ldm.modules.diffusionmodules.openaimodel.UNetModel", "params": {
      "image_size": 8, "in_channels": 4, "out_channels": 4, "model_channels": 32,
      "attention_resolutions": [2], "num_res_blocks": 1, "channel_mult": [1, 2],
      "num_heads": 4, "use_spatial_transformer": true, "transformer_depth": 2, "context_dim": 16,
      "use_checkpoint": true}},
    "first_stage_config": {"target": "ldm.models.autoencoder.AutoencoderKL", "params": {
      "monitor": "val/rec_loss", "embed_dim": 4,
      "ddconfig": {"double_z": true, "z_channels": 4, "resolution": 32, "in_channels": 3, "out_ch": 3,
                   "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0},
      "lossconfig": {"target": "torch.nn.Identity"}}},
    "cond_stage_config": {"target": "torch.nn.Identity"}})");
}

// Expects an rdm::Error whose message contains `needle`.
template <typename F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error, expected one mentioning '" << needle << "'";
  } catch (const rdm::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(UnetConfig, ShippedRdm768YamlParses) {
  const ldm::LdmConfig c = ldm::LdmConfig::from_file(source_dir() / "models" / "rdm-768.yaml");
  EXPECT_EQ(c.unet.model_channels, 448);
  EXPECT_EQ(c.unet.channel_mult, (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(c.unet.attention_resolutions, (std::vector<int64_t>{4, 2, 1}));
  EXPECT_EQ(c.unet.num_head_channels, 32);
  EXPECT_EQ(c.unet.num_heads, -1);
  EXPECT_EQ(c.unet.context_dim.value_or(0), 768);
  EXPECT_TRUE(c.unet.use_spatial_transformer);
  EXPECT_TRUE(c.unet.legacy);
  EXPECT_EQ(c.conditioning_key, "crossattn");
  EXPECT_DOUBLE_EQ(c.scale_factor, 0.22765929);
  EXPECT_DOUBLE_EQ(c.schedule.linear_start, 0.0015);
  EXPECT_DOUBLE_EQ(c.schedule.linear_end, 0.015);
  EXPECT_EQ(c.schedule.timesteps, 1000);
  EXPECT_EQ(c.schedule.beta_schedule, "linear");
  EXPECT_TRUE(c.use_ema);
  EXPECT_EQ(c.first_stage.kind, rdm::ldm::AutoencoderKind::KL);
  EXPECT_EQ(c.first_stage.ddconfig.ch, 128);
  EXPECT_EQ(c.downsample_factor(), 16);
  EXPECT_EQ(c.channels, 16);
  EXPECT_EQ(c.context_dim(), 768);
  EXPECT_EQ(c.cond_stage_target, "torch.nn.Identity");
}

TEST(UnetConfig, YamlAndJsonAgree) {
  json doc = {{"model", {{"target", "ldm.models.diffusion.ddpm.LatentDiffusion"}, {"params", tiny_params()}}}};
  const ldm::LdmConfig a = ldm::LdmConfig::from_string(doc.dump(), "tiny.json");
  const ldm::LdmConfig b = ldm::LdmConfig::from_json(tiny_params());
  // The same document as YAML (JSON is valid YAML flow syntax; parsed by yaml-cpp here).
  const ldm::LdmConfig y = ldm::LdmConfig::from_string("# yaml\n" + doc.dump(2), "tiny.yaml");
  for (const ldm::LdmConfig* c : {&a, &b, &y}) {
    EXPECT_EQ(c->unet.model_channels, 32);
    EXPECT_EQ(c->unet.num_heads, 4);
    EXPECT_EQ(c->unet.transformer_depth, 2);
    EXPECT_DOUBLE_EQ(c->scale_factor, 0.5);
    EXPECT_EQ(c->first_stage.embed_dim, 4);
    EXPECT_EQ(c->downsample_factor(), 2);
  }
}

TEST(UnetConfig, YamlScalarsTyped) {
  // Block YAML with comments, quoted strings and a float without a dot (as OmegaConf reads it).
  std::string yaml = read_text(source_dir() / "models" / "rdm-768.yaml");
  const std::string from = "    scale_factor: 0.22765929";
  ASSERT_NE(yaml.find(from), std::string::npos);
  yaml.replace(yaml.find(from), from.size(), "    scale_factor: 5e-1");
  EXPECT_DOUBLE_EQ(ldm::LdmConfig::from_string(yaml, "x.yaml").scale_factor, 0.5);
  // A quoted number is a string: rejected with the key named.
  std::string q = yaml;
  q.replace(q.find("    scale_factor: 5e-1"), 22, "    scale_factor: '5'");
  expect_error([&] { ldm::LdmConfig::from_string(q, "q.yaml"); }, "model.params.scale_factor");
}

TEST(UnetConfig, UnknownKeysAreNamed) {
  {
    json p = tiny_params();
    p["unet_config"]["params"]["num_head_chanels"] = 8;
    expect_error([&] { ldm::LdmConfig::from_json(p); }, "model.params.unet_config.params.num_head_chanels");
  }
  {
    json p = tiny_params();
    p["sampler_magic"] = true;
    expect_error([&] { ldm::LdmConfig::from_json(p); }, "model.params.sampler_magic");
  }
  {
    json p = tiny_params();
    p["unet_config"]["extra"] = 1;
    expect_error([&] { ldm::LdmConfig::from_json(p); }, "model.params.unet_config.extra");
  }
  {
    json p = tiny_params();
    p["first_stage_config"]["params"]["ddconfig"]["z_chanels"] = 4;
    expect_error([&] { ldm::LdmConfig::from_json(p); }, "z_chanels");
  }
  {
    json doc = {{"model", {{"target", "ldm.models.diffusion.ddpm.LatentDiffusion"}, {"params", tiny_params()}}},
                {"trainer", json::object()}};
    expect_error([&] { ldm::LdmConfig::from_string(doc.dump(), "doc.json"); }, "unknown key 'trainer'");
  }
  // Training-only sections and keys are accepted.
  json doc = {{"model", {{"target", "ldm.models.diffusion.ddpm.LatentDiffusion"}, {"base_learning_rate", 1e-4},
                         {"params", tiny_params()}}},
              {"data", {{"target", "main.DataModuleFromConfig"}}},
              {"lightning", {{"trainer", {{"benchmark", true}}}}}};
  doc["model"]["params"]["scheduler_config"] = {{"target", "ldm.lr_scheduler.LambdaLinearScheduler"}};
  EXPECT_NO_THROW(ldm::LdmConfig::from_string(doc.dump(), "doc.json"));
}

TEST(UnetConfig, UnsupportedAndInvalidValues) {
  auto with = [](const std::string& key, json v) {
    json p = tiny_params();
    p["unet_config"]["params"][key] = v;
    return p;
  };
  expect_error([&] { ldm::LdmConfig::from_json(with("dims", 3)); }, "unet_config.params.dims");
  expect_error([&] { ldm::LdmConfig::from_json(with("num_classes", 1000)); }, "num_classes");
  expect_error([&] { ldm::LdmConfig::from_json(with("use_fp16", true)); }, "use_fp16");
  expect_error([&] { ldm::LdmConfig::from_json(with("model_channels", "32")); }, "unet_config.params.model_channels");
  expect_error([&] { ldm::LdmConfig::from_json(with("use_spatial_transformer", false)); }, "context_dim");
  {
    json p = tiny_params();
    p["unet_config"]["params"].erase("num_heads");
    expect_error([&] { ldm::LdmConfig::from_json(p); }, "num_head_channels");
  }
  {
    json p = tiny_params();
    p["unet_config"]["params"].erase("in_channels");
    expect_error([&] { ldm::LdmConfig::from_json(p); }, "unet_config.params.in_channels' is missing");
  }
  {
    json p = tiny_params();
    p["conditioning_key"] = "concat";
    expect_error([&] { ldm::LdmConfig::from_json(p); }, "model.params.conditioning_key");
  }
  {
    json p = tiny_params();
    p.erase("conditioning_key");  // concat_mode defaults to true -> 'concat' as in the reference
    expect_error([&] { ldm::LdmConfig::from_json(p); }, "concat");
    p["concat_mode"] = false;
    EXPECT_EQ(ldm::LdmConfig::from_json(p).conditioning_key, "crossattn");
  }
  {
    json p = tiny_params();
    p["parameterization"] = "x0";
    expect_error([&] { ldm::LdmConfig::from_json(p); }, "parameterization");
  }
  {
    json p = tiny_params();
    p["cond_stage_config"] = {{"target", "ldm.modules.encoders.modules.BERTEmbedder"}};
    expect_error([&] { ldm::LdmConfig::from_json(p); }, "cond_stage_config.target");
  }
  {
    json p = tiny_params();
    p["channels"] = 3;
    expect_error([&] { ldm::LdmConfig::from_json(p); }, "model.params.channels");
  }
  expect_error([] { ldm::LdmConfig::from_file("/nonexistent/x.yaml"); }, "/nonexistent/x.yaml");
  expect_error([] { ldm::LdmConfig::from_string("model: [1, 2", "broken.yaml"); }, "broken.yaml");
}

TEST(UnetConfig, HeadsRule) {
  ldm::UNetConfig c;
  c.in_channels = c.out_channels = 4;
  c.model_channels = 448;
  c.num_res_blocks = 2;
  c.use_spatial_transformer = true;
  c.context_dim = 768;
  // num_head_channels: heads = ch / 32, width 32 (RDM: 14, 28, 42, 56 heads)
  c.num_head_channels = 32;
  for (int64_t ch : {448, 896, 1344, 1792}) {
    const auto h = rdm::ldm::head_layout(c, ch, false);
    EXPECT_EQ(h.heads, ch / 32);
    EXPECT_EQ(h.dim_head, 32);
  }
  // num_heads only: fixed head count, width ch / heads (legacy truncation: 96 / 5 = 19)
  c.num_head_channels = -1;
  c.num_heads = 8;
  EXPECT_EQ(rdm::ldm::head_layout(c, 448, false).heads, 8);
  EXPECT_EQ(rdm::ldm::head_layout(c, 448, false).dim_head, 56);
  c.num_heads = 5;
  EXPECT_EQ(rdm::ldm::head_layout(c, 96, true).heads, 5);
  EXPECT_EQ(rdm::ldm::head_layout(c, 96, true).dim_head, 19);
  // AttentionBlock UNets: output blocks use num_heads_upsample
  c.use_spatial_transformer = false;
  c.context_dim.reset();
  c.num_heads = 4;
  c.num_heads_upsample = 2;
  EXPECT_EQ(rdm::ldm::head_layout(c, 256, false).heads, 4);
  EXPECT_EQ(rdm::ldm::head_layout(c, 256, true).heads, 2);
  EXPECT_EQ(rdm::ldm::head_layout(c, 256, true).dim_head, 128);
  c.num_head_channels = 64;
  EXPECT_EQ(rdm::ldm::head_layout(c, 256, true).heads, 4);
  EXPECT_EQ(rdm::ldm::head_layout(c, 256, true).dim_head, 64);
}
