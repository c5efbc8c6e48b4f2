// `rdm train rdm` (see rdm/train/rdm.hpp). Port of the training step of ldm/models/diffusion/
// ddpm.py (DDPM.q_sample, p_losses with l_simple, loss_type l2, eps parameterisation) and of
// ldm/modules/ema.py (LitEma), with the retrieval conditioning of the RDM paper.
#include "rdm/train/rdm.hpp"

#include <cmath>
#include <initializer_list>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "rdm/clip/clip_model.hpp"
#include "rdm/clip/tokenizer.hpp"
#include "rdm/formats/safetensors.hpp"
#include "rdm/formats/state_dict.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/io/sha256.hpp"
#include "rdm/ldm/config.hpp"
#include "rdm/ldm/config_document.hpp"
#include "rdm/ldm/unet.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/runtime/runtime.hpp"
#include "rdm/sampler/schedule.hpp"
#include "rdm/train/autoencoder.hpp"
#include "rdm/train/clip.hpp"
#include "rdm/train/init.hpp"
#include "rdm/train/world_data.hpp"
#include "train/rdm_data.hpp"
#include "train/yaml.hpp"

namespace rdm::train {
namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

constexpr uint64_t kTimeSalt = 0x74696D65ull, kNoiseSalt = 0x6E6F697365ull, kCondSalt = 0x636F6E64ull,
                   kPoolSalt = 0x706F6F6Cull;

std::string file_hash(const fs::path& p) { return io::sha256_hex(io::read_file(p)); }

// The reference's YAML document of the LatentDiffusion (RDM) with this first stage and UNet.
ordered_json config_doc(const RdmTrainConfig& c, const ldm::AutoencoderConfig& ae, int64_t context_dim,
                        double scale_factor) {
  const int64_t latent = c.world.size / ae.downsample_factor();
  ordered_json unet = {{"image_size", latent},
                       {"in_channels", ae.embed_dim},
                       {"out_channels", ae.embed_dim},
                       {"model_channels", c.model_channels},
                       {"attention_resolutions", c.attention_resolutions},
                       {"num_res_blocks", c.num_res_blocks},
                       {"channel_mult", c.channel_mult},
                       {"use_scale_shift_norm", false},
                       {"resblock_updown", false},
                       {"num_head_channels", c.num_head_channels},
                       {"use_spatial_transformer", true},
                       {"transformer_depth", c.transformer_depth},
                       {"context_dim", context_dim},
                       {"use_checkpoint", false}};
  const json ae_doc = ldm::parse_config_document(autoencoder_yaml(ae), "autoencoder");
  ordered_json first = ordered_json::parse(ae_doc["model"].dump());
  first.erase("base_learning_rate");
  ordered_json params = {{"linear_start", c.linear_start},
                         {"linear_end", c.linear_end},
                         {"num_timesteps_cond", 1},
                         {"log_every_t", 200},
                         {"timesteps", c.timesteps},
                         {"first_stage_key", "jpg"},
                         {"cond_stage_key", "nix"},
                         {"image_size", latent},
                         {"channels", ae.embed_dim},
                         {"cond_stage_trainable", false},
                         {"conditioning_key", "crossattn"},
                         {"monitor", "val/loss_simple_ema"},
                         {"scale_by_std", false},
                         {"scale_factor", scale_factor},
                         {"unet_config", {{"target", "ldm.modules.diffusionmodules.openaimodel.UNetModel"}, {"params", unet}}},
                         {"first_stage_config", first},
                         {"cond_stage_config", {{"target", "torch.nn.Identity"}}}};
  return {{"model", {{"base_learning_rate", 1e-4}, {"target", "ldm.models.diffusion.ddpm.LatentDiffusion"}, {"params", params}}}};
}

bool key_contains_any(const std::string& key, std::initializer_list<const char*> parts) {
  for (const char* part : parts)
    if (key.find(part) != std::string::npos) return true;
  return false;
}

// openaimodel.py wraps the last layer of each residual branch in zero_module(): ResBlock
// out_layers[3], SpatialTransformer proj_out, AttentionBlock proj_out, and the UNet's out[2].
void zero_output_layers(torch::nn::Module& unet) {
  torch::NoGradGuard ng;
  for (auto& p : unet.named_parameters())
    if (key_contains_any(p.key(), {".out_layers.3.", ".proj_out."}) || p.key().rfind("out.2.", 0) == 0)
      p.value().zero_();
}

// Multiplies the initial cross-attention key and value projections (attn2.to_k, attn2.to_v) by
// `gain` (RdmTrainConfig::context_init_gain).
void scale_context_projections(torch::nn::Module& unet, double gain) {
  if (gain == 1.0) return;
  torch::NoGradGuard ng;
  for (auto& p : unet.named_parameters())
    if (key_contains_any(p.key(), {".attn2.to_k.", ".attn2.to_v."})) p.value().mul_(gain);
}

// Neighbours stored per training picture: the pool, or the k nearest.
int64_t pool_size(const RdmTrainConfig& c) { return c.knn_pool > 0 ? c.knn_pool : c.knn; }

class RdmTask : public Task {
 public:
  RdmTask(const RdmTrainConfig& c, const fs::path& out, uint64_t init_seed, torch::Device device)
      : cfg_(c), out_(out), order_(init_seed, c.items), device_(device), init_seed_(init_seed) {
    // 1. The trained first stage and CLIP, through the real loaders.
    ae_ = load_autoencoder(autoencoder_weights_path(c.autoencoder), autoencoder_config_path(c.autoencoder), device);
    clip_ = clip::ClipModel::load(clip_weights_path(c.clip), device);
    tokenizer_ = clip::Tokenizer::load(clip_vocab_path(c.clip));
    if (tokenizer_.vocab_size() != clip_.config().vocab_size)
      fail("'{}': the vocabulary has {} symbols, the CLIP {}", clip_vocab_path(c.clip).string(), tokenizer_.vocab_size(),
           clip_.config().vocab_size);
    if (clip_.config().image_resolution != c.world.size)
      fail("the CLIP in '{}' takes {}x{} pictures, the world has {}x{}", c.clip.string(),
           clip_.config().image_resolution, clip_.config().image_resolution, c.world.size, c.world.size);
    inputs_key_ = file_hash(autoencoder_weights_path(c.autoencoder)) + ":" + file_hash(clip_weights_path(c.clip));
    // 2. The training database (cached).
    fs::create_directories(out);
    detail::RdmDataSpec ds{c.world, c.items, pool_size(c), ""};
    ds.key = json{{"inputs", inputs_key_}, {"world", world_spec_json(c.world)}, {"items", c.items}, {"knn", ds.knn}}.dump();
    data_ = detail::load_or_build_rdm_data(out / "train_data.safetensors", ds, ae_.model, clip_, tokenizer_);
    scale_factor_ = c.scale_factor > 0 ? c.scale_factor : 1.0 / data_.latents.std().item<double>();
    // 3. The model, its EMA copy and the schedule (built from the config as a user's file is).
    const json doc = json::parse(config_doc(c, ae_.config, clip_.config().embed_dim, scale_factor_).dump());
    ldm_ = ldm::LdmConfig::from_json(doc["model"]["params"], "model.params");
    unet_ = ldm::UNetModel(ldm_.unet);
    init_default(*unet_, init_seed);
    zero_output_layers(*unet_);
    scale_context_projections(*unet_, c.context_init_gain);
    unet_->to(device);
    for (const auto& p : unet_->named_parameters()) ema_[p.key()] = p.value().detach().clone();
    schedule_ = sampler::Schedule::make(ldm_.schedule);
    sqrt_ac_ = schedule_.buffers.at("sqrt_alphas_cumprod").to(device);
    sqrt_1m_ac_ = schedule_.buffers.at("sqrt_one_minus_alphas_cumprod").to(device);
  }

  std::string name() const override { return "rdm"; }
  std::string config_json() const override {
    json j = json::parse(cfg_.to_json());
    j["init_seed"] = init_seed_;
    j["inputs"] = inputs_key_;
    j["scale_factor_used"] = scale_factor_;
    return j.dump();
  }
  torch::nn::Module& model() override { return *unet_; }

  StepOutput step(int64_t step, uint64_t seed) override {
    const std::vector<int64_t> idx = order_.batch(step, cfg_.batch);
    const auto b = static_cast<int64_t>(idx.size());
    const torch::Tensor index = torch::tensor(idx, torch::kInt64);
    const torch::Tensor x0 = (data_.latents.index_select(0, index) * scale_factor_).to(device_);
    // Context [query, neighbours]; query text or image; dropped to zeros for guidance.
    auto cond = cpu_generator(step_seed(seed, step, kCondSalt));
    const torch::Tensor u = torch::rand({b, 2}, cond);
    const torch::Tensor use_text = u.select(1, 0).lt(cfg_.query_text_prob).unsqueeze(1);
    const torch::Tensor query = torch::where(use_text, data_.text_emb.index_select(0, index),
                                             data_.image_emb.index_select(0, index));
    const torch::Tensor nn = data_.image_emb.index_select(0, neighbours_of(index, step, seed).flatten())
                                 .view({b, cfg_.knn, -1});
    const torch::Tensor keep = u.select(1, 1).ge(cfg_.context_dropout).to(torch::kFloat32).view({b, 1, 1});
    const torch::Tensor context = (torch::cat({query.unsqueeze(1), nn}, 1) * keep).to(device_);
    // q_sample and the eps prediction.
    auto gt = cpu_generator(step_seed(seed, step, kTimeSalt));
    auto gn = cpu_generator(step_seed(seed, step, kNoiseSalt));
    const torch::Tensor t = torch::randint(0, cfg_.timesteps, {b}, gt, torch::kInt64).to(device_);
    const torch::Tensor noise = torch::randn(x0.sizes(), gn, torch::kFloat32).to(device_);
    const torch::Tensor x_t = sqrt_ac_.index_select(0, t).view({b, 1, 1, 1}) * x0 +
                              sqrt_1m_ac_.index_select(0, t).view({b, 1, 1, 1}) * noise;
    const torch::Tensor eps = unet_->forward(x_t, t, context);
    StepOutput out;
    out.loss = (noise - eps).pow(2).mean();
    out.scalars = {{"dropped", 1.0 - keep.mean().item<double>()}};
    return out;
  }

  // int64 [B, k]: the k nearest, or k of the pool drawn for this step (its own generator: without
  // a pool the other draws are as before).
  torch::Tensor neighbours_of(const torch::Tensor& index, int64_t step, uint64_t seed) const {
    const torch::Tensor pools = data_.neighbours.index_select(0, index);
    if (pools.size(1) == cfg_.knn) return pools;
    auto g = cpu_generator(step_seed(seed, step, kPoolSalt));
    return detail::draw_from_pools(pools, cfg_.knn, g);
  }

  // LitEma.forward: decay = min(decay, (1 + n) / (10 + n)); shadow -= (1 - decay) (shadow - p).
  void after_step(int64_t step) override {
    torch::NoGradGuard ng;
    ++ema_updates_;
    const double n = static_cast<double>(ema_updates_);
    const double decay = std::min(cfg_.ema_decay, (1 + n) / (10 + n));
    for (const auto& p : unet_->named_parameters()) {
      torch::Tensor& s = ema_.at(p.key());
      s.sub_((1.0 - decay) * (s - p.value()));
    }
  }

  formats::StateDict extra_state() const override {
    formats::StateDict sd = ema_;
    sd["num_updates"] = torch::tensor(ema_updates_, torch::kInt64);
    return sd;
  }
  void load_extra_state(const formats::StateDict& sd) override {
    torch::NoGradGuard ng;
    for (auto& [k, v] : ema_) {
      auto it = sd.find(k);
      if (it == sd.end() || it->second.sizes() != v.sizes()) fail("checkpoint: EMA tensor '{}' is missing or mismatched", k);
      v.copy_(it->second);
    }
    ema_updates_ = sd.at("num_updates").to(torch::kInt64).item<int64_t>();
  }

  std::vector<fs::path> write_model(const fs::path& out) override {
    formats::StateDict sd;
    for (const auto& p : unet_->named_parameters()) {
      const std::string key = "model.diffusion_model." + p.key();
      sd[key] = p.value().detach().cpu();
      sd[formats::ema_key(key)] = ema_.at(p.key()).cpu();
    }
    sd["model_ema.decay"] = torch::tensor(static_cast<float>(cfg_.ema_decay));
    sd["model_ema.num_updates"] = torch::tensor(static_cast<int32_t>(ema_updates_), torch::kInt32);
    for (const auto& p : ae_.model->named_parameters()) sd["first_stage_model." + p.key()] = p.value().detach().cpu();
    for (const auto& name : sampler::Schedule::persistent_buffer_names())
      sd[name] = schedule_.buffers.at(name).to(torch::kFloat32).cpu();
    const std::string yaml =
        "# rdm train rdm: a CompVis retrieval-augmented LatentDiffusion config\n" +
        detail::to_yaml(config_doc(cfg_, ae_.config, clip_.config().embed_dim, scale_factor_));
    formats::write_safetensors(rdm_weights_path(out), sd,
                               {{"format", "rdm-train rdm"}, {"global_step", std::to_string(ema_updates_)}});
    io::write_file_atomic(rdm_config_path(out), yaml);
    auto rel = [&](const fs::path& p) { return fs::relative(fs::absolute(p), fs::absolute(out)).generic_string(); };
    const json hint = {{"clip", rel(clip_weights_path(cfg_.clip))}, {"vocab", rel(clip_vocab_path(cfg_.clip))}};
    io::write_file_atomic(out / "rdm.json", hint.dump(2) + "\n");
    return {rdm_weights_path(out), rdm_config_path(out), out / "rdm.json"};
  }

 private:
  RdmTrainConfig cfg_;
  fs::path out_;
  DataOrder order_;
  torch::Device device_;
  uint64_t init_seed_;
  LoadedAutoencoder ae_;
  clip::ClipModel clip_;
  clip::Tokenizer tokenizer_;
  std::string inputs_key_;
  detail::RdmData data_;
  double scale_factor_ = 1.0;
  ldm::LdmConfig ldm_;
  ldm::UNetModel unet_{nullptr};
  formats::StateDict ema_;
  int64_t ema_updates_ = 0;
  sampler::Schedule schedule_;
  torch::Tensor sqrt_ac_, sqrt_1m_ac_;
};

}  // namespace

std::string RdmTrainConfig::to_json() const {
  ordered_json j = {{"autoencoder", fs::absolute(autoencoder).lexically_normal().string()},
                    {"clip", fs::absolute(clip).lexically_normal().string()},
                    {"model_channels", model_channels},
                    {"channel_mult", channel_mult},
                    {"num_res_blocks", num_res_blocks},
                    {"attention_resolutions", attention_resolutions},
                    {"num_head_channels", num_head_channels},
                    {"transformer_depth", transformer_depth},
                    {"timesteps", timesteps},
                    {"linear_start", linear_start},
                    {"linear_end", linear_end},
                    {"scale_factor", scale_factor},
                    {"knn", knn},
                    {"knn_pool", knn_pool},
                    {"query_text_prob", query_text_prob},
                    {"context_dropout", context_dropout},
                    {"ema_decay", ema_decay},
                    {"context_init_gain", context_init_gain},
                    {"world", world_spec_json(world)},
                    {"items", items},
                    {"batch", batch}};
  return j.dump();
}

std::unique_ptr<Task> make_rdm_task(const RdmTrainConfig& config, const fs::path& out, uint64_t init_seed,
                                    torch::Device device) {
  if (config.batch <= 0) fail("rdm: batch must be positive, got {}", config.batch);
  if (config.knn <= 0) fail("rdm: knn must be positive, got {}", config.knn);
  if (config.knn_pool != 0 && config.knn_pool < config.knn)
    fail("rdm: the neighbour pool ({}) must be 0 or at least knn ({})", config.knn_pool, config.knn);
  if (!(config.context_init_gain > 0) || !std::isfinite(config.context_init_gain))
    fail("rdm: context init gain must be positive, got {}", config.context_init_gain);
  world::validate(config.world);
  return std::make_unique<RdmTask>(config, out, init_seed, device);
}

TrainReport train_rdm(const RdmTrainConfig& config, const TrainOptions& options, const TrainProgressFn& progress) {
  const SingleThreadBlas one_pool;  // also while the training database is built (runtime.hpp)
  auto task = make_rdm_task(config, options.out, options.seed, options.device);
  return run(*task, options, progress);
}

fs::path rdm_weights_path(const fs::path& out) { return out / "model.safetensors"; }
fs::path rdm_config_path(const fs::path& out) { return out / "config.yaml"; }

}  // namespace rdm::train
