// `rdm train autoencoder`: a small AutoencoderKL (CompVis layout, rdm/ldm/autoencoder.hpp)
// trained on world pictures with L1 + L2 reconstruction and a small KL term (no discriminator,
// no LPIPS). Writes autoencoder.safetensors (the module's parameter names: encoder.*, decoder.*,
// quant_conv.*, post_quant_conv.*) and autoencoder.yaml (a CompVis first-stage config:
// model.target ldm.models.autoencoder.AutoencoderKL, model.params.{embed_dim, ddconfig, ...}).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "rdm/app/world.hpp"
#include "rdm/ldm/autoencoder.hpp"
#include "rdm/train/loop.hpp"

namespace rdm::train {

struct AutoencoderTrainConfig {
  // Model (ddconfig): z_channels = embed_dim, resolution = world.size, no attention outside mid.
  int64_t ch = 32;
  std::vector<int64_t> ch_mult{1, 1, 2};  // f = 2^(len-1) = 4: 64x64x3 -> 16x16x4
  int64_t num_res_blocks = 1;
  int64_t embed_dim = 4;
  std::vector<int64_t> attn_resolutions;
  // Data: world pictures (spec.styles = the training styles; spec.size = picture side).
  world::WorldSpec world;
  int64_t items = 100000;  // training set: world indices 0..items-1
  int64_t batch = 16;
  // Loss: l1 * |x - x'| + l2 * (x - x')^2 (means) + kl * KL(posterior || N(0, I)) (sum over the
  // latent, mean over the batch; CompVis's kl_weight 1e-6 is for that form).
  double l1_weight = 1.0, l2_weight = 1.0, kl_weight = 1e-6;

  ldm::AutoencoderConfig model_config() const;
  std::string to_json() const;  // everything above (what a resume must match)
};

// The task for run(); `init_seed` seeds the initial weights.
std::unique_ptr<Task> make_autoencoder_task(const AutoencoderTrainConfig& config, uint64_t init_seed,
                                            torch::Device device = torch::kCPU);

// make_autoencoder_task + run.
TrainReport train_autoencoder(const AutoencoderTrainConfig& config, const TrainOptions& options,
                              const TrainProgressFn& progress = {});

// The CompVis first-stage YAML of a config.
std::string autoencoder_yaml(const ldm::AutoencoderConfig& config);

// File names in the output folder.
std::filesystem::path autoencoder_weights_path(const std::filesystem::path& out);  // autoencoder.safetensors
std::filesystem::path autoencoder_config_path(const std::filesystem::path& out);   // autoencoder.yaml

// Reads a first-stage config (YAML or JSON, model.{target, params}) and its weights, strictly
// (formats::load_into: every key used, every parameter present, shapes checked).
struct LoadedAutoencoder {
  ldm::AutoencoderConfig config;
  ldm::AutoencoderKL model{nullptr};
};
LoadedAutoencoder load_autoencoder(const std::filesystem::path& weights, const std::filesystem::path& config,
                                   torch::Device device = torch::kCPU);

}  // namespace rdm::train
