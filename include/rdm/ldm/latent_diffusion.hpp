// Port of the inference path of ldm.models.diffusion.ddpm.LatentDiffusion (CompVis
// latent-diffusion): a full CompVis checkpoint (.ckpt via the torch zip reader, or
// .safetensors; fp32 or fp16) loaded into the UNet (EMA weights by default, as knn2img samples
// inside ema_scope()) and the first stage, `apply_model` and `decode_first_stage`.
//
// Only what sampling needs stays in memory: the EMA copy replaces the raw UNet weights (never
// both), the encoder of the first stage is dropped unless asked for, and each checkpoint
// tensor is released as soon as it is copied (load_into_consuming).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include <torch/types.h>

#include "rdm/ldm/config.hpp"
#include "rdm/formats/tensor_file.hpp"

namespace rdm::ldm {

struct LoadSpec {
  bool use_ema = true;           // model_ema.* weights for the UNet (knn2img); false: raw weights
  bool load_encoder = false;     // keep the first stage's encoder (+ quant_conv) for encode
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;  // weights are cast (fp16 files upcast) to this dtype
  // What to do when the schedule buffers stored in the checkpoint differ from the recomputed
  // ones (relative 1e-6): warn (default) or throw.
  bool strict_schedule = false;
  // CPU inference: convolution weights reordered once into oneDNN's layout (rdm/ldm/conv.hpp;
  // the same results to float rounding, the dense `weight` parameters then empty). false keeps
  // them dense.
  bool pack_convolutions = true;
};

class LatentDiffusion {
 public:
  // Reads the checkpoint and builds the modules from `config`. Throws rdm::Error naming the file
  // for missing/unexpected/mismatched keys, a missing EMA copy when use_ema is asked, ...
  static LatentDiffusion load(const std::filesystem::path& ckpt, const LdmConfig& config,
                              const LoadSpec& spec = {});
  // Same from an already read state dict (consumed: entries are released while loading).
  static LatentDiffusion from_state_dict(formats::StateDict&& state, const LdmConfig& config,
                                         const LoadSpec& spec = {}, const std::string& name = "state dict");

  // eps = UNet(x, t, context) (DiffusionWrapper with conditioning_key crossattn; context is
  // ignored for unconditional models). x [N, C, h, w], t int64 [N], context [N, L, D].
  torch::Tensor apply_model(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context) const;
  // first_stage.decode((1 / scale_factor) * z), the factor computed in double.
  torch::Tensor decode_first_stage(const torch::Tensor& z) const;
  // scale_factor * posterior mean (KL) or the pre-quantisation latent (VQ); needs load_encoder.
  torch::Tensor encode_first_stage(const torch::Tensor& x) const;

  const LdmConfig& config() const;
  const sampler::Schedule& schedule() const;
  double scale_factor() const;
  int64_t latent_channels() const;
  int64_t downsample_factor() const;
  int64_t context_dim() const;
  torch::Device device() const;
  torch::Dtype dtype() const;
  bool uses_ema() const;
  // The modules (shared handles), e.g. for benchmarks and hooks.
  UNetModel unet() const;
  // Drops this object's UNet (its weights go once no other handle holds them); apply_model
  // then throws rdm::Error. For one-shot sampling: the decode does not need the UNet.
  void release_unet();

  LatentDiffusion(LatentDiffusion&&) noexcept;
  LatentDiffusion& operator=(LatentDiffusion&&) noexcept;
  ~LatentDiffusion();

 private:
  struct State;
  explicit LatentDiffusion(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace rdm::ldm
