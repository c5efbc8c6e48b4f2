// Unit tests: UNetModel module tree (state-dict key names equal the reference's), forward with
// the less common options, timestep embedding values, sliced attention, and LatentDiffusion
// loading (EMA vs raw weights, encoder dropped, strict errors). Tiny seeded models only.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "unit/golden_dir.hpp"
#include "rdm/ldm/attention.hpp"
#include "rdm/ldm/config.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/formats/safetensors.hpp"
#include "rdm/formats/state_dict.hpp"
#include "rdm/ldm/latent_diffusion.hpp"
#include "rdm/ldm/unet.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace rdm;

namespace {
ldm::UNetConfig small_config() {
  ldm::UNetConfig c;
  c.image_size = 8;
  c.in_channels = c.out_channels = 4;
  c.model_channels = 32;
  c.num_res_blocks = 1;
  c.channel_mult = {1, 2};
  c.attention_resolutions = {1, 2};
  c.num_head_channels = 8;
  c.use_spatial_transformer = true;
  c.context_dim = 16;
  return c;
}

std::map<std::string, std::vector<int64_t>> key_shapes(torch::nn::Module& m) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().sizes().vec();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value().sizes().vec();
  return out;
}

fs::path golden_ldm() { return rdm_test::golden_dir("ldm"); }
}  // namespace

TEST(UnetModel, KeysEqualGoldenStateDict) {
  const fs::path dir = golden_ldm();
  if (!fs::exists(dir / "unet_weights.safetensors") || !fs::exists(dir / "config_tiny.json"))
    GTEST_SKIP() << "golden folder not found: " << dir;
  std::ifstream f(dir / "config_tiny.json");
  const json doc = json::parse(f);
  ldm::UNetModel unet(ldm::UNetConfig::from_json(doc.at(json::json_pointer("/model/params/unet_config/params"))));
  const auto tf = formats::read_safetensors(dir / "unet_weights.safetensors");
  std::map<std::string, std::vector<int64_t>> want;
  for (const auto& [k, v] : tf.tensors) want[k] = v.sizes().vec();
  EXPECT_EQ(key_shapes(*unet), want);
}

TEST(UnetModel, RdmLayoutHas688Keys) {
  // The RDM 768x768 block structure at reduced widths: same 688 state-dict keys.
  ldm::UNetConfig c;
  c.image_size = 48;
  c.in_channels = c.out_channels = 16;
  c.model_channels = 32;
  c.num_res_blocks = 2;
  c.channel_mult = {1, 2, 3, 4};
  c.attention_resolutions = {4, 2, 1};
  c.num_head_channels = 32;
  c.use_spatial_transformer = true;
  c.context_dim = 24;
  c.use_checkpoint = true;
  ldm::UNetModel unet(c);
  const auto keys = key_shapes(*unet);
  EXPECT_EQ(keys.size(), 688u);
  for (const char* k : {"time_embed.0.weight", "time_embed.2.bias", "input_blocks.0.0.weight",
                        "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", "input_blocks.3.0.op.weight",
                        "input_blocks.4.0.skip_connection.weight", "input_blocks.11.0.out_layers.3.weight",
                        "middle_block.1.proj_in.weight", "middle_block.2.emb_layers.1.weight",
                        "output_blocks.2.1.conv.weight", "output_blocks.5.2.conv.weight",
                        "output_blocks.11.1.transformer_blocks.0.ff.net.0.proj.weight",
                        "output_blocks.11.1.transformer_blocks.0.ff.net.2.bias", "out.0.weight", "out.2.bias"})
    EXPECT_TRUE(keys.count(k)) << k;
  for (const char* k : {"input_blocks.1.0.skip_connection.weight", "input_blocks.10.1.norm.weight",
                        "output_blocks.0.1.norm.weight", "input_blocks.1.1.transformer_blocks.0.attn1.to_q.bias"})
    EXPECT_FALSE(keys.count(k)) << k;
  EXPECT_EQ(keys.at("input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"), (std::vector<int64_t>{32, 24}));
  EXPECT_EQ(keys.at("input_blocks.1.1.transformer_blocks.0.ff.net.0.proj.weight"), (std::vector<int64_t>{256, 32}));
  EXPECT_EQ(keys.at("output_blocks.0.0.in_layers.0.weight"), (std::vector<int64_t>{256}));  // 128 + 128 skip
}

TEST(UnetModel, TimestepEmbeddingCosFirst) {
  // Values from the reference notes (t = 981, dim 448).
  const auto e = ldm::timestep_embedding(torch::tensor({981}, torch::kInt64), 448);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{1, 448}));
  EXPECT_NEAR(e[0][0].item<double>(), 0.67995721, 1e-6);
  EXPECT_NEAR(e[0][1].item<double>(), 0.54352313, 1e-6);
  EXPECT_NEAR(e[0][2].item<double>(), 0.34040624, 1e-6);
  EXPECT_NEAR(e[0][224].item<double>(), 0.73325181, 1e-6);
  EXPECT_NEAR(e[0][447].item<double>(), 0.10203980, 1e-6);
  EXPECT_EQ(ldm::timestep_embedding(torch::tensor({3, 5}, torch::kInt64), 7).size(1), 7);  // odd: zero column
}

TEST(UnetModel, SlicedAttentionMatchesDirect) {
  torch::manual_seed(1);
  const auto q = torch::randn({7, 64, 8}), k = torch::randn({7, 48, 8}), v = torch::randn({7, 48, 8});
  const double scale = std::pow(8.0, -0.5);
  const auto want = torch::bmm(torch::softmax(torch::bmm(q, k.transpose(1, 2)) * scale, -1), v);
  // one slice, slices of 3 (uneven tail), slices of 1
  for (int64_t bytes : {int64_t(0), int64_t(3 * 64 * 48 * 4), int64_t(1)})
    EXPECT_LT((ldm::scaled_attention(q, k, v, scale, bytes) - want).abs().max().item<double>(), 1e-6) << bytes;
}

TEST(UnetModel, ForwardWithOtherOptions) {
  torch::NoGradGuard ng;
  torch::manual_seed(0);
  ldm::UNetConfig c = small_config();
  c.num_head_channels = -1;
  c.num_heads = 3;  // 32 / 3: legacy width 10, inner 30 != 32 channels
  c.transformer_depth = 2;
  c.use_scale_shift_norm = true;
  c.resblock_updown = true;
  ldm::UNetModel unet(c);
  const auto x = torch::randn({2, 4, 8, 12});  // non-square
  const auto ctx = torch::randn({2, 3, 16});
  ldm::Capture cap;
  const auto out = unet->forward(x, torch::tensor({10, 900}), ctx, &cap);
  EXPECT_EQ(out.sizes(), x.sizes());
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  EXPECT_TRUE(cap.count("input_blocks.1.1.transformer_blocks.1.attn2"));
  EXPECT_TRUE(cap.count("timestep_embedding"));
  EXPECT_TRUE(torch::equal(cap.at("out"), out));
  // Batch elements are independent: running one alone gives the same result.
  const auto one = unet->forward(x.narrow(0, 1, 1), torch::tensor({900}), ctx.narrow(0, 1, 1));
  EXPECT_LT((one - out.narrow(0, 1, 1)).abs().max().item<double>(), 1e-5);
  // Latent sides must be multiples of 2^(levels-1).
  EXPECT_THROW(unet->forward(torch::randn({1, 4, 7, 8}), torch::tensor({1}), ctx.narrow(0, 0, 1)), rdm::Error);

  // AttentionBlock UNet (no spatial transformer), new attention order.
  ldm::UNetConfig a = small_config();
  a.use_spatial_transformer = false;
  a.context_dim.reset();
  a.use_new_attention_order = true;
  ldm::UNetModel ua(a);
  const auto keys = key_shapes(*ua);
  EXPECT_TRUE(keys.count("input_blocks.1.1.qkv.weight"));
  EXPECT_EQ(keys.at("input_blocks.1.1.qkv.weight"), (std::vector<int64_t>{96, 32, 1}));
  EXPECT_EQ(ua->forward(x, torch::tensor({1, 2})).sizes(), x.sizes());
}

TEST(UnetModel, LatentDiffusionLoadsEmaAndDropsEncoder) {
  torch::NoGradGuard ng;
  torch::manual_seed(3);
  const json params = json::parse(R"({
    "linear_start": 0.0015, "linear_end": 0.015, "timesteps": 100, "image_size": 8, "channels": 4,
    "conditioning_key": "crossattn", "scale_factor": 0.25,
    "unet_config": {"target": "ldm.modules.diffusionmodules.openaimodel.UNetModel", "params": {
      "image_size": 8, "in_channels": 4, "out_channels": 4, "model_channels": 32,
      "attention_resolutions": [1], "num_res_blocks": 1, "channel_mult": [1, 2],
      "num_head_channels": 16, "use_spatial_transformer": true, "context_dim": 16}},
    "first_stage_config": {"target": "ldm.models.autoencoder.AutoencoderKL", "params": {
      "embed_dim": 4, "ddconfig": {"double_z": true, "z_channels": 4, "resolution": 16, "in_channels": 3,
      "out_ch": 3, "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0},
      "lossconfig": {"target": "torch.nn.Identity"}}},
    "cond_stage_config": {"target": "torch.nn.Identity"}})");
  const ldm::LdmConfig cfg = ldm::LdmConfig::from_json(params);
  ldm::UNetModel raw(cfg.unet), ema(cfg.unet);
  ldm::FirstStage fs = ldm::FirstStage::create(cfg.first_stage, true);
  formats::StateDict sd;
  for (const auto& p : raw->named_parameters()) sd["model.diffusion_model." + p.key()] = p.value().clone();
  for (const auto& p : ema->named_parameters())
    sd[formats::ema_key("model.diffusion_model." + p.key())] = p.value().clone();
  sd["model_ema.decay"] = torch::tensor(0.9999f);
  sd["model_ema.num_updates"] = torch::tensor(7, torch::kInt32);
  for (const auto& p : fs.module().named_parameters()) sd["first_stage_model." + p.key()] = p.value().clone();
  const sampler::Schedule sched = sampler::Schedule::make(cfg.schedule);
  for (const auto& n : sampler::Schedule::persistent_buffer_names()) sd[n] = sched.buffers.at(n).clone();

  const auto x = torch::randn({2, 4, 8, 8}), ctx = torch::randn({2, 5, 16});
  const auto t = torch::tensor({3, 77});
  // A load of (a copy of) sd; `pack` = false keeps dense convolution weights.
  const auto load = [&](ldm::LoadSpec spec, bool pack) {
    spec.pack_convolutions = pack;
    formats::StateDict copy = sd;
    return ldm::LatentDiffusion::from_state_dict(std::move(copy), cfg, spec);
  };
  // The weights loaded are `want`'s module's, not `other`'s: the dense load equals it, the packed
  // one differs by oneDNN's summation order only (1.4e-6 measured on AVX-512; beyond 1e-6 with 2
  // or 3 OpenMP threads).
  const auto expect_weights_of = [&](ldm::LatentDiffusion& ld, ldm::LatentDiffusion& ld_dense,
                                     const torch::Tensor& want, const torch::Tensor& other) {
    EXPECT_TRUE(torch::allclose(ld_dense.apply_model(x, t, ctx), want, 1e-5, 1e-6));
    EXPECT_LT((ld.apply_model(x, t, ctx) - want).abs().max().item<double>(), 1e-5);
    EXPECT_GT((other - want).abs().max().item<double>(), 1e-2);  // else this proves nothing
  };
  {
    ldm::LatentDiffusion ld = load(ldm::LoadSpec{}, true);
    EXPECT_TRUE(ld.uses_ema());
    // The same model with dense convolution weights gives the same bits (rdm/ldm/conv.hpp).
    ldm::LatentDiffusion ld_dense = load(ldm::LoadSpec{}, false);
    if (at::hasMKLDNN()) {
      EXPECT_EQ(ld.unet()->named_parameters()["input_blocks.0.0.weight"].numel(), 0);  // packed
      EXPECT_GT(ld_dense.unet()->named_parameters()["input_blocks.0.0.weight"].numel(), 0);
    }
    for (int n : {1, 2}) {
      const auto xn = x.narrow(0, 0, n), tn = t.narrow(0, 0, n), cn = ctx.narrow(0, 0, n);
      EXPECT_LT((ld.apply_model(xn, tn, cn) - ld_dense.apply_model(xn, tn, cn)).abs().max().item<double>(), 1e-5);
    }
    expect_weights_of(ld, ld_dense, ema->forward(x, t, ctx), raw->forward(x, t, ctx));  // the EMA ones
    EXPECT_EQ(ld.unet()->named_parameters().size(), ema->named_parameters().size());
    const auto z = torch::randn({1, 4, 4, 4});
    EXPECT_TRUE(torch::allclose(ld.decode_first_stage(z), fs.decode(z * (1.0 / 0.25)), 1e-5, 1e-6));
    EXPECT_THROW(ld.encode_first_stage(torch::randn({1, 3, 8, 8})), rdm::Error);  // no encoder loaded
    EXPECT_EQ(ld.downsample_factor(), 2);
    EXPECT_EQ(ld.context_dim(), 16);
  }
  {
    ldm::LoadSpec spec;
    spec.use_ema = false;
    spec.load_encoder = true;
    ldm::LatentDiffusion ld = load(spec, true);
    EXPECT_FALSE(ld.uses_ema());
    ldm::LatentDiffusion ld_dense = load(spec, false);
    expect_weights_of(ld, ld_dense, raw->forward(x, t, ctx), ema->forward(x, t, ctx));  // the raw ones
    const auto img = torch::randn({1, 3, 8, 8});
    EXPECT_TRUE(torch::allclose(ld.encode_first_stage(img), 0.25 * fs.encode_mode(img), 1e-5, 1e-6));
  }
  {
    // fp16 checkpoint, bf16 compute: loads and runs.
    formats::StateDict half;
    for (const auto& [k, v] : sd) half[k] = v.is_floating_point() ? v.to(torch::kFloat16) : v;
    ldm::LoadSpec spec;
    spec.dtype = torch::kBFloat16;
    ldm::LatentDiffusion ld = ldm::LatentDiffusion::from_state_dict(std::move(half), cfg, spec);
    const auto out = ld.apply_model(x, t, ctx);
    EXPECT_EQ(out.scalar_type(), torch::kFloat32);
    EXPECT_LT((out - ema->forward(x, t, ctx)).abs().max().item<double>(), 0.1);
  }
  {
    formats::StateDict bad = sd;
    bad["model.diffusion_model.extra.weight"] = torch::zeros({1});
    try {
      ldm::LatentDiffusion::from_state_dict(std::move(bad), cfg, ldm::LoadSpec{}, "bad.ckpt");
      ADD_FAILURE() << "no error";
    } catch (const rdm::Error& e) {
      EXPECT_NE(std::string(e.what()).find("model.diffusion_model.extra.weight"), std::string::npos) << e.what();
    }
  }
  {
    formats::StateDict bad = sd;
    bad["betas"] = bad["betas"] * 2;
    ldm::LoadSpec spec;
    spec.strict_schedule = true;
    EXPECT_THROW(ldm::LatentDiffusion::from_state_dict(std::move(bad), cfg, spec, "sched.ckpt"), rdm::Error);
  }
}

// Convolution weights packed once for oneDNN (rdm/ldm/conv.hpp) give the results of the dense
// weights to float rounding (oneDNN may pick another kernel for the packed layout, and LibTorch's
// dense path takes its own kernel for small batch-1 inputs); unpacking restores the weight.
TEST(UnetModel, PackedConvolutionWeightsGiveTheDenseResults) {
  if (!at::hasMKLDNN()) GTEST_SKIP() << "this LibTorch has no oneDNN";
  torch::NoGradGuard ng;
  torch::manual_seed(11);
  struct Case { int64_t cin, cout, k, stride, pad; bool bias; };
  for (const Case c : {Case{16, 32, 3, 1, 1, true}, Case{32, 32, 3, 2, 0, true}, Case{32, 16, 1, 1, 0, false}}) {
    ldm::Conv2d conv(torch::nn::Conv2dOptions(c.cin, c.cout, c.k).stride(c.stride).padding(c.pad).bias(c.bias));
    const auto w = conv->weight.clone();
    const auto x2 = torch::randn({2, c.cin, 24, 24}), x1 = torch::randn({1, c.cin, 6, 6});
    const auto y2 = conv(x2), y1 = conv(x1);
    ASSERT_TRUE(conv->pack_for_inference());
    EXPECT_TRUE(conv->packed());
    EXPECT_EQ(conv->weight.numel(), 0);  // the dense copy is released
    EXPECT_LT((conv(x2) - y2).abs().max().item<double>(), 1e-5) << c.cin << "->" << c.cout << " k" << c.k;
    EXPECT_LT((conv(x1) - y1).abs().max().item<double>(), 1e-5);
    EXPECT_TRUE(torch::equal(conv(x2.narrow(0, 1, 1)), conv(x2).narrow(0, 1, 1)));  // no batch dependence
    conv->unpack();
    EXPECT_FALSE(conv->packed());
    EXPECT_TRUE(torch::equal(conv->weight, w));
    EXPECT_TRUE(torch::equal(conv(x2), y2));
  }
  // A whole UNet: packed, then unpacked, then packed again.
  ldm::UNetModel unet(small_config());
  const auto x = torch::randn({2, 4, 8, 8}), ctx = torch::randn({2, 3, 16});
  const auto t = torch::tensor({5, 500});
  const auto ref = unet->forward(x, t, ctx);
  EXPECT_GT(ldm::pack_convolutions_for_inference(*unet), 4);
  EXPECT_LT((unet->forward(x, t, ctx) - ref).abs().max().item<double>(), 1e-5);
  ldm::unpack_convolutions(*unet);
  EXPECT_TRUE(torch::equal(unet->forward(x, t, ctx), ref));
}
