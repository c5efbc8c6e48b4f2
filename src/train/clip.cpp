// `rdm train clip` (see rdm/train/clip.hpp). Initialisation after CLIP.initialize_parameters
// (openai/CLIP clip/model.py), applied to the vision transformer's blocks as well.
#include "rdm/train/clip.hpp"

#include <cmath>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "rdm/clip/tokenizer.hpp"
#include "rdm/formats/safetensors.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/train/bpe.hpp"
#include "rdm/train/init.hpp"
#include "rdm/train/world_data.hpp"

namespace rdm::train {
namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// CLIP.initialize_parameters on top of init_default.
void init_clip(torch::nn::Module& net, const clip::ClipConfig& c, uint64_t seed) {
  init_default(net, seed);
  torch::NoGradGuard ng;
  const double tw = static_cast<double>(c.transformer_width), vw = static_cast<double>(c.vision_width);
  for (auto& p : net.named_parameters()) {
    const std::string& k = p.key();
    torch::Tensor& t = p.value();
    const bool visual = k.rfind("visual.", 0) == 0;
    const double w = visual ? vw : tw;
    const double layers = static_cast<double>(visual ? c.vision_layers : c.transformer_layers);
    const double attn_std = std::pow(w, -0.5), proj_std = attn_std * std::pow(2 * layers, -0.5);
    const double fc_std = std::pow(2 * w, -0.5);
    if (k == "token_embedding.weight") fill_normal(t, 0.02, seed, k);
    else if (k == "positional_embedding") fill_normal(t, 0.01, seed, k);
    else if (k == "text_projection") fill_normal(t, std::pow(tw, -0.5), seed, k);
    else if (k == "logit_scale") t.fill_(std::log(1 / 0.07));
    else if (k == "visual.class_embedding" || k == "visual.positional_embedding" || k == "visual.proj")
      fill_normal(t, std::pow(vw, -0.5), seed, k);
    else if (ends_with(k, ".attn.in_proj_weight")) fill_normal(t, attn_std, seed, k);
    else if (ends_with(k, ".attn.out_proj.weight")) fill_normal(t, proj_std, seed, k);
    else if (ends_with(k, ".mlp.c_fc.weight")) fill_normal(t, fc_std, seed, k);
    else if (ends_with(k, ".mlp.c_proj.weight")) fill_normal(t, proj_std, seed, k);
    else if (ends_with(k, "_bias") || (ends_with(k, ".bias") && k.find(".ln_") == std::string::npos)) t.zero_();
  }
}

// Captions of the whole training set (for the vocabulary).
std::vector<std::string> training_captions(const ClipTrainConfig& c) {
  std::vector<std::string> caps;
  caps.reserve(static_cast<size_t>(c.items));
  for (int64_t i = 0; i < c.items; ++i) {
    const world::Scene s = world::sample_scene(c.world, static_cast<uint64_t>(i));
    caps.push_back(world::caption(s, world::says_style(c.world, s)));
  }
  return caps;
}

class ClipTask : public Task {
 public:
  ClipTask(const ClipTrainConfig& c, const fs::path& out, uint64_t init_seed, torch::Device device)
      : cfg_(c), order_(init_seed, c.items), device_(device), init_seed_(init_seed) {
    const std::vector<std::string> merges = learn_bpe(training_captions(c), c.max_merges);
    fs::create_directories(out);
    write_bpe_vocab(clip_vocab_path(out), merges);
    tokenizer_ = clip::Tokenizer::load(clip_vocab_path(out));
    model_ = clip::ClipModel::create(c.model_config(tokenizer_.vocab_size()), device);
    init_clip(model_.module(), model_.config(), init_seed);
    spdlog::info("train clip: vocabulary of {} symbols ({} merges) in '{}'", tokenizer_.vocab_size(), merges.size(),
                 clip_vocab_path(out).string());
  }

  std::string name() const override { return "clip"; }
  std::string config_json() const override {
    json j = json::parse(cfg_.to_json());
    j["init_seed"] = init_seed_;
    j["vocab_size"] = tokenizer_.vocab_size();
    return j.dump();
  }
  torch::nn::Module& model() override { return model_.module(); }

  StepOutput step(int64_t step, uint64_t) override {
    WorldBatch b = render_batch(cfg_.world, order_.batch(step, cfg_.batch));
    const torch::Tensor pixels = to_clip_input(b.pixels).to(device_);
    const torch::Tensor tokens = tokenizer_.tokenize(b.captions, cfg_.context_length, /*truncate=*/true).to(device_);
    torch::Tensor img = model_.encode_image_train(pixels), txt = model_.encode_text_train(tokens);
    img = img / img.norm(2, 1, true);
    txt = txt / txt.norm(2, 1, true);
    torch::Tensor logit_scale;
    for (auto& p : model_.module().named_parameters(false))
      if (p.key() == "logit_scale") logit_scale = p.value();
    const torch::Tensor scale = logit_scale.exp().clamp_max(100.0);
    const torch::Tensor logits = scale * img.matmul(txt.t());
    // Targets: every pair with the same caption is a positive.
    const auto n = static_cast<int64_t>(b.captions.size());
    torch::Tensor same = torch::zeros({n, n}, torch::kFloat32);
    auto acc = same.accessor<float, 2>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) acc[i][j] = b.captions[i] == b.captions[j] ? 1.f : 0.f;
    const torch::Tensor target = (same / same.sum(1, true)).to(device_);
    const torch::Tensor loss_i = -(target * torch::log_softmax(logits, 1)).sum(1).mean();
    const torch::Tensor loss_t = -(target * torch::log_softmax(logits, 0)).sum(0).mean();
    StepOutput out;
    out.loss = 0.5 * (loss_i + loss_t);
    const torch::Tensor hit = same.to(device_).gather(1, logits.argmax(1, true));
    out.scalars = {{"acc", hit.mean().item<double>()}, {"logit_scale", scale.item<double>()}};
    return out;
  }

  std::vector<fs::path> write_model(const fs::path& out) override {
    formats::StateDict sd;
    for (const auto& p : model_.module().named_parameters()) sd[p.key()] = p.value().detach().cpu();
    formats::write_safetensors(clip_weights_path(out), sd,
                               {{"format", "rdm-train clip"}, {"config", model_.config().to_json().dump()}});
    return {clip_weights_path(out), clip_vocab_path(out)};
  }

 private:
  ClipTrainConfig cfg_;
  DataOrder order_;
  torch::Device device_;
  uint64_t init_seed_;
  clip::Tokenizer tokenizer_;
  clip::ClipModel model_;
};

}  // namespace

clip::ClipConfig ClipTrainConfig::model_config(int64_t vocab_size) const {
  clip::ClipConfig c;
  c.embed_dim = embed_dim;
  c.image_resolution = world.size;
  c.vision_layers = layers;
  c.vision_width = width;
  c.vision_heads = heads;
  c.vision_patch_size = patch;
  c.context_length = context_length;
  c.vocab_size = vocab_size;
  c.transformer_width = width;
  c.transformer_heads = heads;
  c.transformer_layers = layers;
  c.validate();
  return c;
}

std::string ClipTrainConfig::to_json() const {
  ordered_json j = {{"width", width},
                    {"layers", layers},
                    {"heads", heads},
                    {"embed_dim", embed_dim},
                    {"patch", patch},
                    {"context_length", context_length},
                    {"max_merges", max_merges},
                    {"world", world_spec_json(world)},
                    {"items", items},
                    {"batch", batch}};
  return j.dump();
}

std::unique_ptr<Task> make_clip_task(const ClipTrainConfig& config, const fs::path& out, uint64_t init_seed,
                                     torch::Device device) {
  if (config.batch < 2) fail("clip: batch must be at least 2 (contrastive), got {}", config.batch);
  world::validate(config.world);
  return std::make_unique<ClipTask>(config, out, init_seed, device);
}

TrainReport train_clip(const ClipTrainConfig& config, const TrainOptions& options, const TrainProgressFn& progress) {
  auto task = make_clip_task(config, options.out, options.seed, options.device);
  return run(*task, options, progress);
}

fs::path clip_weights_path(const fs::path& out) { return out / "clip.safetensors"; }
fs::path clip_vocab_path(const fs::path& out) { return out / "clip.vocab.txt.gz"; }

}  // namespace rdm::train
