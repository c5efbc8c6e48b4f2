// `rdm train autoencoder` (see rdm/train/autoencoder.hpp). The reference trains its first stages
// with ldm/modules/losses/contperceptual.py (LPIPSWithDiscriminator); here only the pixel terms
// and the KL term of that loss are kept (rec = |x - x'| + (x - x')^2, kl_weight * KL).
#include "rdm/train/autoencoder.hpp"

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "rdm/formats/safetensors.hpp"
#include "rdm/formats/state_dict.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/ldm/config_document.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/train/init.hpp"
#include "rdm/train/world_data.hpp"
#include "train/yaml.hpp"

namespace rdm::train {
namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

constexpr uint64_t kNoiseSalt = 0x6E6F697365ull;  // "noise"

ordered_json ddconfig_json(const ldm::DDConfig& d) {
  return {{"double_z", d.double_z}, {"z_channels", d.z_channels},     {"resolution", d.resolution},
          {"in_channels", d.in_channels}, {"out_ch", d.out_ch},       {"ch", d.ch},
          {"ch_mult", d.ch_mult},   {"num_res_blocks", d.num_res_blocks}, {"attn_resolutions", d.attn_resolutions},
          {"dropout", d.dropout}};
}

class AutoencoderTask : public Task {
 public:
  AutoencoderTask(const AutoencoderTrainConfig& c, uint64_t init_seed, torch::Device device)
      : cfg_(c), model_(c.model_config()), order_(init_seed, c.items), device_(device), init_seed_(init_seed) {
    init_default(*model_, init_seed);
    model_->to(device);
  }

  std::string name() const override { return "autoencoder"; }
  std::string config_json() const override {
    json j = json::parse(cfg_.to_json());
    j["init_seed"] = init_seed_;
    return j.dump();
  }
  torch::nn::Module& model() override { return *model_; }

  StepOutput step(int64_t step, uint64_t seed) override {
    WorldBatch b = render_batch(cfg_.world, order_.batch(step, cfg_.batch));
    const torch::Tensor x = to_signed_unit(b.pixels).to(device_);
    const ldm::DiagonalGaussian post(model_->encode(x));
    auto gen = cpu_generator(step_seed(seed, step, kNoiseSalt));
    const torch::Tensor noise = torch::randn(post.mean.sizes(), gen, torch::kFloat32).to(device_);
    const torch::Tensor xr = model_->decode(post.mean + post.std * noise);
    const torch::Tensor diff = x - xr;
    const torch::Tensor l1 = diff.abs().mean(), l2 = diff.pow(2).mean();
    const torch::Tensor kl =
        0.5 * (post.mean.pow(2) + post.var - 1.0 - post.logvar).sum({1, 2, 3}).mean();
    StepOutput out;
    out.loss = cfg_.l1_weight * l1 + cfg_.l2_weight * l2 + cfg_.kl_weight * kl;
    const double mse = l2.item<double>();
    out.scalars = {{"l1", l1.item<double>()}, {"mse", mse}, {"kl", kl.item<double>()},
                   {"psnr", 10.0 * std::log10(4.0 / std::max(mse, 1e-12))}};
    return out;
  }

  std::vector<fs::path> write_model(const fs::path& out) override {
    formats::StateDict sd;
    for (const auto& p : model_->named_parameters()) sd[p.key()] = p.value().detach().cpu();
    const std::string yaml = autoencoder_yaml(model_->cfg);
    formats::write_safetensors(autoencoder_weights_path(out), sd,
                               {{"format", "rdm-train autoencoder"}, {"config", yaml}});
    io::write_file_atomic(autoencoder_config_path(out), yaml);
    return {autoencoder_weights_path(out), autoencoder_config_path(out)};
  }

 private:
  AutoencoderTrainConfig cfg_;
  ldm::AutoencoderKL model_;
  DataOrder order_;
  torch::Device device_;
  uint64_t init_seed_;
};

}  // namespace

ldm::AutoencoderConfig AutoencoderTrainConfig::model_config() const {
  json dd = {{"double_z", true},          {"z_channels", embed_dim},    {"resolution", world.size},
             {"in_channels", 3},          {"out_ch", 3},                {"ch", ch},
             {"ch_mult", ch_mult},        {"num_res_blocks", num_res_blocks},
             {"attn_resolutions", attn_resolutions}, {"dropout", 0.0}};
  if (world.size % (int64_t{1} << (ch_mult.size() - 1)) != 0)
    fail("autoencoder: picture size {} is not divisible by the downsampling factor {}", world.size,
         int64_t{1} << (ch_mult.size() - 1));
  return ldm::AutoencoderConfig::from_json(json{{"embed_dim", embed_dim}, {"ddconfig", dd}}, ldm::AutoencoderKind::KL);
}

std::string AutoencoderTrainConfig::to_json() const {
  ordered_json j = {{"ch", ch},
                    {"ch_mult", ch_mult},
                    {"num_res_blocks", num_res_blocks},
                    {"embed_dim", embed_dim},
                    {"attn_resolutions", attn_resolutions},
                    {"world", world_spec_json(world)},
                    {"items", items},
                    {"batch", batch},
                    {"l1_weight", l1_weight},
                    {"l2_weight", l2_weight},
                    {"kl_weight", kl_weight}};
  return j.dump();
}

std::unique_ptr<Task> make_autoencoder_task(const AutoencoderTrainConfig& config, uint64_t init_seed,
                                            torch::Device device) {
  if (config.batch <= 0) fail("autoencoder: batch must be positive, got {}", config.batch);
  world::validate(config.world);
  return std::make_unique<AutoencoderTask>(config, init_seed, device);
}

TrainReport train_autoencoder(const AutoencoderTrainConfig& config, const TrainOptions& options,
                              const TrainProgressFn& progress) {
  auto task = make_autoencoder_task(config, options.seed, options.device);
  return run(*task, options, progress);
}

std::string autoencoder_yaml(const ldm::AutoencoderConfig& c) {
  ordered_json params = {{"embed_dim", c.embed_dim},
                         {"monitor", "val/rec_loss"},
                         {"ddconfig", ddconfig_json(c.ddconfig)},
                         {"lossconfig", {{"target", "torch.nn.Identity"}}}};
  ordered_json doc = {{"model", {{"base_learning_rate", 4.5e-6},
                                 {"target", "ldm.models.autoencoder.AutoencoderKL"},
                                 {"params", params}}}};
  return "# rdm train autoencoder: a CompVis first-stage config (ldm.models.autoencoder.AutoencoderKL)\n" +
         detail::to_yaml(doc);
}

fs::path autoencoder_weights_path(const fs::path& out) { return out / "autoencoder.safetensors"; }
fs::path autoencoder_config_path(const fs::path& out) { return out / "autoencoder.yaml"; }

LoadedAutoencoder load_autoencoder(const fs::path& weights, const fs::path& config, torch::Device device) {
  const json doc = ldm::parse_config_document(io::read_file(config), config.string());
  if (!doc.is_object() || !doc.contains("model") || !doc["model"].is_object())
    fail("'{}': expected a 'model' section with the first stage's target and params", config.string());
  json model = doc["model"];
  model.erase("base_learning_rate");  // training only
  LoadedAutoencoder out;
  try {
    out.config = ldm::AutoencoderConfig::from_target_json(model);
  } catch (const Error& e) {
    fail("'{}': {}", config.string(), e.what());
  }
  if (out.config.kind != ldm::AutoencoderKind::KL) fail("'{}': not an AutoencoderKL", config.string());
  out.model = ldm::AutoencoderKL(out.config);
  formats::TensorFile tf = formats::read_tensor_file(weights);
  formats::LoadOptions lo;
  lo.file = weights.string();
  lo.device = device;
  formats::load_into(*out.model, tf.tensors, "", lo);
  out.model->eval();
  return out;
}

}  // namespace rdm::train
