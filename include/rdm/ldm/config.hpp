// The latent-diffusion model configuration (the `model:` section of a CompVis config such as
// configs/retrieval-augmented-diffusion/768x768.yaml), read from the original YAML (yaml-cpp)
// or the equivalent JSON. Mirrors the constructor arguments of ldm.models.diffusion.ddpm
// .LatentDiffusion / DDPM (ddpm.py), with their defaults.
//
// Strict: an unknown key, or a supported key with an unsupported value, is an rdm::Error naming
// the key by its full path ("model.params.unet_config.params.num_head_chanels"). Keys that only
// matter for training (monitor, scheduler_config, lossconfig, data, lightning, ...) are accepted
// and ignored explicitly (listed in config.cpp).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "rdm/ldm/autoencoder.hpp"
#include "rdm/sampler/schedule.hpp"
#include "rdm/ldm/unet.hpp"

namespace rdm::ldm {

struct LdmConfig {
  UNetConfig unet;                 // model.params.unet_config.params
  AutoencoderConfig first_stage;   // model.params.first_stage_config (KL or VQ)
  sampler::ScheduleConfig schedule;         // beta_schedule, timesteps, linear_start/end, cosine_s, v_posterior
  double scale_factor = 1.0;
  bool scale_by_std = false;       // true: the checkpoint's `scale_factor` buffer is used
  std::string conditioning_key;    // "crossattn" or "" (unconditional)
  std::string parameterization = "eps";
  bool use_ema = true;             // the checkpoint carries model_ema.* when true
  int64_t channels = 0;            // latent channels
  int64_t image_size = 0;          // latent side used in training (informational)
  std::string cond_stage_target;   // e.g. "torch.nn.Identity" (RDM: the context is fed as is)
  std::string source;              // file the config came from (for messages), may be empty

  // A whole config document (YAML or JSON, sniffed from the content): its `model` section
  // (target LatentDiffusion); top-level `data` and `lightning` are ignored.
  static LdmConfig from_file(const std::filesystem::path& path);
  // Same, from the text of a document; `name` is used in error messages.
  static LdmConfig from_string(const std::string& text, const std::string& name = "config");
  // The object at /model/params of such a document (LatentDiffusion constructor arguments).
  // `where` is the path of that object used in error messages.
  static LdmConfig from_json(const nlohmann::json& model_params, const std::string& where = "model.params");

  // Downsampling factor of the first stage (2^(len(ch_mult)-1)).
  int64_t downsample_factor() const;
  // Context width of the cross-attention (unet.context_dim, 0 when absent).
  int64_t context_dim() const { return unet.context_dim.value_or(0); }
};

}  // namespace rdm::ldm
