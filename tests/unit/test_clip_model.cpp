// Unit tests: CLIP model (config parsing / inference, strict loading, HF mapping round trip,
// pooling and causal-mask properties, file loading with metadata config, precisions).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "rdm/clip/clip_model.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/formats/safetensors.hpp"
#include "unit/clip_hf_util.hpp"

namespace fs = std::filesystem;
using rdm::clip::ClipConfig;
using rdm::clip::ClipModel;
using rdm::formats::StateDict;
using clip_test::to_hf;

namespace {
ClipConfig tiny() {
  ClipConfig c;
  c.embed_dim = 16;
  c.image_resolution = 16;
  c.vision_layers = 2;
  c.vision_width = 64;
  c.vision_heads = 1;
  c.vision_patch_size = 4;
  c.context_length = 12;
  c.vocab_size = 50;
  c.transformer_width = 32;
  c.transformer_heads = 4;
  c.transformer_layers = 2;
  return c;
}

// A random OpenAI-named state dict for a config (shapes as in clip/model.py).
StateDict random_state(const ClipConfig& c, uint64_t seed) {
  torch::manual_seed(seed);
  StateDict sd;
  auto r = [](std::vector<int64_t> s, double scale = 0.1) { return torch::randn(s) * scale; };
  auto block = [&](const std::string& p, int64_t w) {
    sd[p + "attn.in_proj_weight"] = r({3 * w, w});
    sd[p + "attn.in_proj_bias"] = r({3 * w});
    sd[p + "attn.out_proj.weight"] = r({w, w});
    sd[p + "attn.out_proj.bias"] = r({w});
    sd[p + "ln_1.weight"] = 1 + r({w});
    sd[p + "ln_1.bias"] = r({w});
    sd[p + "mlp.c_fc.weight"] = r({4 * w, w});
    sd[p + "mlp.c_fc.bias"] = r({4 * w});
    sd[p + "mlp.c_proj.weight"] = r({w, 4 * w});
    sd[p + "mlp.c_proj.bias"] = r({w});
    sd[p + "ln_2.weight"] = 1 + r({w});
    sd[p + "ln_2.bias"] = r({w});
  };
  const int64_t tw = c.transformer_width, vw = c.vision_width, g = c.image_resolution / c.vision_patch_size;
  sd["token_embedding.weight"] = r({c.vocab_size, tw}, 1.0);
  sd["positional_embedding"] = r({c.context_length, tw});
  for (int64_t i = 0; i < c.transformer_layers; ++i) block("transformer.resblocks." + std::to_string(i) + ".", tw);
  sd["ln_final.weight"] = 1 + r({tw});
  sd["ln_final.bias"] = r({tw});
  sd["text_projection"] = r({tw, c.embed_dim}, 0.5);
  sd["logit_scale"] = torch::tensor(2.5f);
  sd["visual.conv1.weight"] = r({vw, 3, c.vision_patch_size, c.vision_patch_size});
  sd["visual.class_embedding"] = r({vw});
  sd["visual.positional_embedding"] = r({g * g + 1, vw});
  sd["visual.ln_pre.weight"] = 1 + r({vw});
  sd["visual.ln_pre.bias"] = r({vw});
  for (int64_t i = 0; i < c.vision_layers; ++i) block("visual.transformer.resblocks." + std::to_string(i) + ".", vw);
  sd["visual.ln_post.weight"] = 1 + r({vw});
  sd["visual.ln_post.bias"] = r({vw});
  sd["visual.proj"] = r({vw, c.embed_dim}, 0.5);
  return sd;
}

torch::Tensor tokens_for(const ClipConfig& c) {
  auto t = torch::zeros({3, c.context_length}, torch::kInt64);
  t[0].slice(0, 0, 4) = torch::tensor({48, 5, 7, 49});  // eot = largest id at position 3
  t[1].slice(0, 0, 3) = torch::tensor({48, 9, 49});
  t[2].slice(0, 0, 6) = torch::tensor({48, 1, 2, 3, 4, 49});
  return t;
}
}  // namespace

TEST(ClipModel, HfMappingRoundTrip) {
  auto c = tiny();
  auto sd = random_state(c, 1);
  auto hf = to_hf(sd, c);
  EXPECT_TRUE(rdm::clip::is_hf_layout(hf));
  EXPECT_FALSE(rdm::clip::is_hf_layout(sd));
  auto back = rdm::clip::hf_to_openai(hf);
  ASSERT_EQ(back.size(), sd.size());
  for (auto& [k, v] : sd) {
    ASSERT_TRUE(back.count(k)) << k;
    EXPECT_TRUE(torch::equal(back.at(k), v)) << k;
  }
  hf.erase("text_model.encoder.layers.1.self_attn.k_proj.bias");
  EXPECT_THROW(rdm::clip::hf_to_openai(hf), rdm::Error);
  hf["text_model.unknown"] = torch::zeros({1});
  EXPECT_THROW(rdm::clip::hf_to_openai(hf), rdm::Error);
}

TEST(ClipModel, PoolingAtArgmaxAndCausalMask) {
  auto c = tiny();
  auto model = ClipModel::from_state_dict(random_state(c, 2), c);
  auto tok = tokens_for(c);
  torch::Tensor ln;
  auto e = model.encode_text(tok, &ln);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{3, c.embed_dim}));
  ASSERT_EQ(ln.sizes(), (std::vector<int64_t>{3, c.context_length, c.transformer_width}));
  // pooled row = ln_final at argmax @ text_projection
  auto sd = random_state(c, 2);
  auto expect0 = torch::matmul(ln[0][3], sd.at("text_projection"));
  EXPECT_TRUE(torch::allclose(e[0], expect0, 1e-5, 1e-6));
  // causal mask: tokens after the end token do not change the embedding
  auto tok2 = tok.clone();
  tok2[0][7] = 11;
  tok2[0][10] = 3;
  auto e2 = model.encode_text(tok2);
  EXPECT_TRUE(torch::allclose(e[0], e2[0], 1e-6, 1e-6));
  // ... but tokens before it do
  tok2[0][1] = 6;
  EXPECT_FALSE(torch::allclose(e[0], model.encode_text(tok2)[0], 1e-4, 1e-4));
  // batch independence
  EXPECT_TRUE(torch::allclose(model.encode_text(tok.slice(0, 1, 2))[0], e[1], 1e-5, 1e-6));
  EXPECT_THROW(model.encode_text(torch::zeros({1, 5}, torch::kInt64)), rdm::Error);
  EXPECT_THROW(model.encode_text(torch::full({1, c.context_length}, 50, torch::kInt64)), rdm::Error);
}

TEST(ClipModel, ImageEncoderAndLogits) {
  auto c = tiny();
  auto model = ClipModel::from_state_dict(random_state(c, 3), c);
  torch::manual_seed(5);
  auto px = torch::randn({2, 3, c.image_resolution, c.image_resolution});
  torch::Tensor ln_post;
  auto e = model.encode_image(px, &ln_post);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{2, c.embed_dim}));
  ASSERT_EQ(ln_post.sizes(), (std::vector<int64_t>{2, c.vision_width}));
  auto logits = model.logits_per_image(px, tokens_for(c));
  ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{2, 3}));
  auto t = model.encode_text(tokens_for(c));
  auto cos = torch::matmul(e / e.norm(2, 1, true), (t / t.norm(2, 1, true)).t());
  EXPECT_TRUE(torch::allclose(logits, std::exp(2.5) * cos, 1e-4, 1e-5));
  EXPECT_THROW(model.encode_image(torch::zeros({1, 3, 8, 8})), rdm::Error);
}

TEST(ClipModel, StrictLoadingAndConfig) {
  auto c = tiny();
  auto sd = random_state(c, 4);
  sd.erase("visual.ln_post.bias");
  EXPECT_THROW(ClipModel::from_state_dict(sd, c), rdm::Error);
  sd = random_state(c, 4);
  sd["extra.weight"] = torch::zeros({1});
  EXPECT_THROW(ClipModel::from_state_dict(sd, c), rdm::Error);
  sd = random_state(c, 4);
  // the TorchScript scalar buffers are ignored like the reference deletes them
  sd["input_resolution"] = torch::tensor(int64_t{16});
  sd["context_length"] = torch::tensor(int64_t{12});
  sd["vocab_size"] = torch::tensor(int64_t{50});
  EXPECT_NO_THROW(ClipModel::from_state_dict(sd, c));
  // build_model inference: everything but the head counts (width / 64, so text width 32 fails)
  EXPECT_THROW(ClipConfig::infer(random_state(c, 4)), rdm::Error);
  auto c64 = c;
  c64.transformer_width = 64;
  c64.transformer_heads = 1;
  auto inf = ClipConfig::infer(random_state(c64, 4));
  EXPECT_EQ(inf.to_json(), c64.to_json());
  EXPECT_EQ(inf.vision_layers, 2);
  EXPECT_EQ(inf.vision_patch_size, 4);
  EXPECT_EQ(inf.image_resolution, 16);
  EXPECT_EQ(inf.embed_dim, 16);
  EXPECT_EQ(inf.vocab_size, 50);
  EXPECT_EQ(inf.context_length, 12);
  EXPECT_EQ(inf.vision_heads, 1);
  // json round trip, errors
  EXPECT_EQ(ClipConfig::from_json(c.to_json()).to_json(), c.to_json());
  auto j = c.to_json();
  j.erase("embed_dim");
  EXPECT_THROW(ClipConfig::from_json(j), rdm::Error);
  j = c.to_json();
  j["transformer_heads"] = 5;
  EXPECT_THROW(ClipConfig::from_json(j), rdm::Error);
  EXPECT_THROW(ClipModel::from_state_dict(random_state(c, 4), c, torch::kCPU, torch::kFloat16), rdm::Error);
}

TEST(ClipModel, LoadFileWithMetadataConfigAndHfFolder) {
  auto c = tiny();
  auto sd = random_state(c, 6);
  const fs::path d = fs::temp_directory_path() / ("rdm_unit_clip_model_" + std::to_string(::getpid()));
  fs::create_directories(d / "hf");
  rdm::formats::write_safetensors(d / "m.safetensors", sd, {{"config", c.to_json().dump()}});
  auto ref = ClipModel::from_state_dict(sd, c);
  auto m = ClipModel::load(d / "m.safetensors");
  EXPECT_EQ(m.config().to_json(), c.to_json());
  auto tok = tokens_for(c);
  EXPECT_TRUE(torch::equal(m.encode_text(tok), ref.encode_text(tok)));
  EXPECT_EQ(m.identity(), ref.identity());
  // Hugging Face folder: model.safetensors + config.json
  rdm::formats::write_safetensors(d / "hf" / "model.safetensors", to_hf(sd, c));
  nlohmann::json hfcfg = {{"projection_dim", c.embed_dim},
                          {"text_config", {{"hidden_size", c.transformer_width}, {"num_hidden_layers", c.transformer_layers},
                                           {"num_attention_heads", c.transformer_heads}, {"max_position_embeddings", c.context_length},
                                           {"vocab_size", c.vocab_size}, {"hidden_act", "quick_gelu"}}},
                          {"vision_config", {{"hidden_size", c.vision_width}, {"num_hidden_layers", c.vision_layers},
                                             {"num_attention_heads", c.vision_heads}, {"image_size", c.image_resolution},
                                             {"patch_size", c.vision_patch_size}, {"hidden_act", "quick_gelu"}}}};
  std::ofstream(d / "hf" / "config.json") << hfcfg.dump();
  auto h = ClipModel::load(d / "hf");
  EXPECT_EQ(h.config().to_json(), c.to_json());
  EXPECT_TRUE(torch::allclose(h.encode_text(tok), ref.encode_text(tok), 1e-6, 1e-6));
  auto px = torch::randn({1, 3, 16, 16});
  EXPECT_TRUE(torch::allclose(h.encode_image(px), ref.encode_image(px), 1e-6, 1e-6));
  // bf16 on the CPU runs and stays close
  auto b = ClipModel::load(d / "m.safetensors", torch::kCPU, torch::kBFloat16);
  EXPECT_EQ(b.dtype(), torch::kBFloat16);
  auto eb = b.encode_text(tok).to(torch::kFloat32), ef = ref.encode_text(tok);
  EXPECT_LT((eb - ef).abs().max().item<float>(), 0.1f * ef.abs().max().item<float>());
  EXPECT_THROW(ClipModel::load(d / "missing.safetensors"), rdm::Error);
  fs::remove_all(d);
}

// ClipParts::TextOnly: the same identity and text embeddings bit for bit, no vision parameters
// in memory, and a clear error for images.
TEST(ClipModel, TextOnlyLoadsNoVisionTower) {
  auto c = tiny();
  auto sd = random_state(c, 11);
  const fs::path d = fs::temp_directory_path() / ("rdm_unit_clip_text_only_" + std::to_string(::getpid()));
  fs::create_directories(d);
  rdm::formats::write_safetensors(d / "m.safetensors", sd, {{"config", c.to_json().dump()}});
  auto full = ClipModel::load(d / "m.safetensors");
  auto text = ClipModel::load(d / "m.safetensors", torch::kCPU, torch::kFloat32, rdm::clip::ClipParts::TextOnly);
  EXPECT_EQ(text.identity(), full.identity());
  auto tok = tokens_for(c);
  EXPECT_TRUE(torch::equal(text.encode_text(tok), full.encode_text(tok)));
  int64_t full_params = 0, text_params = 0, vision_in_file = 0;
  for (const auto& p : full.module().named_parameters()) full_params += p.value().numel();
  for (const auto& p : text.module().named_parameters()) {
    text_params += p.value().numel();
    EXPECT_NE(p.key().rfind("visual.", 0), 0u) << p.key();
  }
  for (const auto& [k, v] : sd)
    if (k.rfind("visual.", 0) == 0) vision_in_file += v.numel();
  EXPECT_EQ(full_params - text_params, vision_in_file);
  try {
    text.encode_image(torch::randn({1, 3, 16, 16}));
    ADD_FAILURE() << "encode_image worked without a vision tower";
  } catch (const rdm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("without its vision tower"), std::string::npos) << e.what();
  }
  fs::remove_all(d);
}
