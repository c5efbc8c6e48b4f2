// Autoencoder module trees vs the reference state-dict keys (golden weight files), config
// parsing, and a decode/encode against the goldens (skipped when the goldens are absent).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "rdm/ldm/autoencoder.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/formats/state_dict.hpp"
#include "rdm/formats/tensor_file.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path golden_ldm() {
  if (const char* g = std::getenv("RDM_GOLDEN_DIR")) return fs::path(g) / "ldm";
  if (const char* s = std::getenv("RDM_SOURCE_DIR")) return fs::path(s) / ".." / "shared" / "golden" / "ldm";
  return {};
}

json kl_params() {
  return json::parse(R"({
    "monitor": "val/rec_loss", "embed_dim": 4,
    "ddconfig": {"double_z": true, "z_channels": 4, "resolution": 32, "in_channels": 3, "out_ch": 3,
                 "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [16], "dropout": 0.0},
    "lossconfig": {"target": "torch.nn.Identity"}})");
}

std::map<std::string, std::vector<int64_t>> shapes(torch::nn::Module& m) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().sizes().vec();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value().sizes().vec();
  return out;
}

TEST(AutoencoderConfig, ParsesAndRejects) {
  auto c = rdm::ldm::AutoencoderConfig::from_json(kl_params(), rdm::ldm::AutoencoderKind::KL);
  EXPECT_EQ(c.embed_dim, 4);
  EXPECT_EQ(c.ddconfig.ch_mult, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(c.downsample_factor(), 2);
  auto bad = kl_params();
  bad["ddconfig"]["num_res_block"] = 2;
  try {
    rdm::ldm::AutoencoderConfig::from_json(bad, rdm::ldm::AutoencoderKind::KL);
    FAIL();
  } catch (const rdm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_res_block"), std::string::npos);
  }
  bad = kl_params();
  bad["embed_dims"] = 4;
  EXPECT_THROW(rdm::ldm::AutoencoderConfig::from_json(bad, rdm::ldm::AutoencoderKind::KL), rdm::Error);
  bad = kl_params();
  bad["ddconfig"]["double_z"] = false;  // AutoencoderKL asserts double_z
  EXPECT_THROW(rdm::ldm::AutoencoderConfig::from_json(bad, rdm::ldm::AutoencoderKind::KL), rdm::Error);
  bad = kl_params();
  bad["ddconfig"]["attn_type"] = "linear";
  EXPECT_THROW(rdm::ldm::AutoencoderConfig::from_json(bad, rdm::ldm::AutoencoderKind::KL), rdm::Error);
  // VQ needs n_embed and double_z false
  auto vq = kl_params();
  vq["ddconfig"]["double_z"] = false;
  EXPECT_THROW(rdm::ldm::AutoencoderConfig::from_json(vq, rdm::ldm::AutoencoderKind::VQ), rdm::Error);
  vq["n_embed"] = 16;
  EXPECT_EQ(rdm::ldm::AutoencoderConfig::from_json(vq, rdm::ldm::AutoencoderKind::VQ).n_embed, 16);
  vq["remap"] = "used.npy";
  EXPECT_THROW(rdm::ldm::AutoencoderConfig::from_json(vq, rdm::ldm::AutoencoderKind::VQ), rdm::Error);
  EXPECT_EQ(rdm::ldm::AutoencoderConfig::kind_from_class("ldm.models.autoencoder.VQModelInterface"),
            rdm::ldm::AutoencoderKind::VQ);
  EXPECT_THROW(rdm::ldm::AutoencoderConfig::kind_from_class("ldm.models.autoencoder.IdentityFirstStage"), rdm::Error);
  auto t = rdm::ldm::AutoencoderConfig::from_target_json(
      json{{"target", "ldm.models.autoencoder.AutoencoderKL"}, {"params", kl_params()}});
  EXPECT_EQ(t.kind, rdm::ldm::AutoencoderKind::KL);
}

TEST(AutoencoderKeys, ReferenceLayoutSynthetic) {
  auto c = rdm::ldm::AutoencoderConfig::from_json(kl_params(), rdm::ldm::AutoencoderKind::KL);
  rdm::ldm::AutoencoderKL ae(c);
  auto s = shapes(*ae);
  // Encoder: down.0 (res 32) no attn, downsample; down.1 (res 16) attn after each block
  EXPECT_EQ(s.at("encoder.down.0.downsample.conv.weight"), (std::vector<int64_t>{32, 32, 3, 3}));
  EXPECT_EQ(s.at("encoder.down.1.block.0.nin_shortcut.weight"), (std::vector<int64_t>{64, 32, 1, 1}));
  EXPECT_TRUE(s.count("encoder.down.1.attn.0.q.weight"));
  EXPECT_FALSE(s.count("encoder.down.1.downsample.conv.weight"));
  EXPECT_FALSE(s.count("encoder.down.0.attn.0.q.weight"));
  EXPECT_EQ(s.at("encoder.conv_out.weight"), (std::vector<int64_t>{8, 64, 3, 3}));  // 2 * z_channels
  EXPECT_EQ(s.at("quant_conv.weight"), (std::vector<int64_t>{8, 8, 1, 1}));
  // Decoder: up[i] belongs to level i; num_res_blocks + 1 blocks per level
  EXPECT_TRUE(s.count("decoder.up.1.upsample.conv.weight"));
  EXPECT_FALSE(s.count("decoder.up.0.upsample.conv.weight"));
  EXPECT_TRUE(s.count("decoder.up.1.block.1.conv2.weight"));
  EXPECT_TRUE(s.count("decoder.up.1.attn.1.proj_out.weight"));
  EXPECT_EQ(s.at("decoder.up.0.block.0.nin_shortcut.weight"), (std::vector<int64_t>{32, 64, 1, 1}));
  EXPECT_TRUE(s.count("decoder.mid.attn_1.k.bias"));
  EXPECT_EQ(s.at("post_quant_conv.weight"), (std::vector<int64_t>{4, 4, 1, 1}));
  // decode-only: no encoder, no quant_conv
  rdm::ldm::AutoencoderKL dec(c, /*with_encoder=*/false);
  for (const auto& [k, v] : shapes(*dec)) EXPECT_FALSE(rdm::ldm::is_encoder_key(k)) << k;
  // shape flow: f2, 4 latent channels
  torch::NoGradGuard ng;
  auto z = ae->encode(torch::randn({1, 3, 32, 32}));
  EXPECT_EQ(z.sizes(), (std::vector<int64_t>{1, 8, 16, 16}));
  EXPECT_EQ(ae->decode(z.slice(1, 0, 4)).sizes(), (std::vector<int64_t>{1, 3, 32, 32}));
}

class AutoencoderGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = golden_ldm();
    if (dir_.empty() || !fs::exists(dir_ / "cases.json")) GTEST_SKIP() << "latent-diffusion goldens not found";
    std::ifstream f(dir_ / "cases.json");
    cases_ = json::parse(f);
  }
  // The first case of `kind`: its model config and weights.
  const json& find(const std::string& kind) {
    for (const auto& c : cases_.at("cases"))
      if (c.at("kind") == kind) return c;
    throw std::runtime_error("no case of kind " + kind);
  }
  rdm::ldm::AutoencoderConfig config_of(const json& cs) {
    std::ifstream f(dir_ / cs.at("model").at("config").at("file").get<std::string>());
    const json doc = json::parse(f);
    return rdm::ldm::AutoencoderConfig::from_json(doc.at(json::json_pointer(cs.at("model").at("config").at("pointer"))),
                                             rdm::ldm::AutoencoderConfig::kind_from_class(cs.at("model").at("class")));
  }
  fs::path dir_;
  json cases_;
};

TEST_F(AutoencoderGolden, KeysEqualReferenceStateDicts) {
  for (const char* kind : {"autoencoder_kl_decode", "autoencoder_vq_decode"}) {
    const json& cs = find(kind);
    const auto cfg = config_of(cs);
    const auto wf = rdm::formats::read_tensor_file(dir_ / cs.at("model").at("weights").at("file").get<std::string>());
    auto fs = rdm::ldm::FirstStage::create(cfg);
    auto ours = shapes(fs.module());
    std::map<std::string, std::vector<int64_t>> ref;
    for (const auto& [k, v] : wf.tensors) ref[k] = v.sizes().vec();
    EXPECT_EQ(ours, ref) << kind;
  }
}

TEST_F(AutoencoderGolden, DecodeAndEncodeMatch) {
  torch::NoGradGuard ng;
  {
    const json& cs = find("autoencoder_kl_decode");
    auto fs = rdm::ldm::FirstStage::create(config_of(cs), /*with_encoder=*/false);
    auto w = rdm::formats::read_tensor_file(dir_ / cs.at("model").at("weights").at("file").get<std::string>()).tensors;
    rdm::formats::StateDict dec;
    for (auto& [k, v] : w)
      if (!rdm::ldm::is_encoder_key(k)) dec[k] = v;
    rdm::formats::load_into(fs.module(), dec, "");
    const auto io = rdm::formats::read_tensor_file(dir_ / cs.at("io").get<std::string>()).tensors;
    const auto& in = cs.at("inputs").begin().value();
    const auto& out = cs.at("outputs").begin().value();
    auto img = fs.decode(io.at(in.at("tensor").get<std::string>()));
    const auto& ref = io.at(out.at("tensor").get<std::string>());
    EXPECT_LE((img - ref).abs().max().item<double>(), out.at("atol").get<double>());
  }
  {
    const json& cs = find("autoencoder_vq_encode");
    rdm::ldm::VQModelInterface vq(config_of(cs));
    rdm::formats::load_into(*vq, rdm::formats::read_tensor_file(dir_ / cs.at("model").at("weights").at("file").get<std::string>()).tensors, "");
    const auto io = rdm::formats::read_tensor_file(dir_ / cs.at("io").get<std::string>()).tensors;
    auto r = vq->encode_quantized(io.at(cs.at("inputs").at("image").at("tensor").get<std::string>()));
    const auto& o = cs.at("outputs");
    EXPECT_TRUE(torch::equal(r.indices, io.at(o.at("indices").at("tensor").get<std::string>())));
    EXPECT_LE((r.quant - io.at(o.at("quant").at("tensor").get<std::string>())).abs().max().item<double>(),
              o.at("quant").at("atol").get<double>());
    EXPECT_LE((r.emb_loss - io.at(o.at("emb_loss").at("tensor").get<std::string>())).abs().item<double>(),
              o.at("emb_loss").at("atol").get<double>());
  }
}

}  // namespace
