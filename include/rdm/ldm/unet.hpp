// Port of ldm/modules/diffusionmodules/openaimodel.py (CompVis latent-diffusion): UNetModel,
// TimestepEmbedSequential, ResBlock, Upsample, Downsample, AttentionBlock (+ QKVAttention[Legacy]),
// and timestep_embedding from ldm/modules/diffusionmodules/util.py.
//
// The module tree mirrors the reference: registered names == Python attribute names and the
// children of Sequential/ModuleList are "0", "1", ..., so `named_parameters()` equals the
// reference UNetModel.state_dict() keys (688 for the RDM 768x768 config) with no renaming.
// GroupNorm32 (ResBlocks, AttentionBlock, `out`) uses 32 groups, eps 1e-5, computed in float32.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "rdm/ldm/attention.hpp"

namespace rdm::ldm {

// Constructor arguments of UNetModel (the `unet_config.params` object of a latent-diffusion
// config), with the reference defaults. from_json rejects unknown keys and unsupported values
// with an rdm::Error naming the key.
struct UNetConfig {
  int64_t image_size = 0;  // informational (not used for shapes)
  int64_t in_channels = 0;
  int64_t model_channels = 0;
  int64_t out_channels = 0;
  int64_t num_res_blocks = 0;
  std::vector<int64_t> attention_resolutions;  // downsample rates with attention
  double dropout = 0.0;                        // inference: no effect
  std::vector<int64_t> channel_mult{1, 2, 4, 8};
  bool conv_resample = true;
  int64_t dims = 2;              // only 2 is supported
  bool use_checkpoint = false;   // gradient checkpointing: no effect at inference
  int64_t num_heads = -1;
  int64_t num_head_channels = -1;
  int64_t num_heads_upsample = -1;
  bool use_scale_shift_norm = false;
  bool resblock_updown = false;
  bool use_new_attention_order = false;
  bool use_spatial_transformer = false;
  int64_t transformer_depth = 1;
  std::optional<int64_t> context_dim;
  bool legacy = true;

  int64_t time_embed_dim() const { return model_channels * 4; }
  // Number of 2x downsamplings (len(channel_mult) - 1): latent sides must be multiples of 2^this.
  int64_t num_downsamples() const { return static_cast<int64_t>(channel_mult.size()) - 1; }

  // `params` = the constructor-argument object. `where` names it in errors (e.g. a file and
  // pointer, "model.params.unet_config.params").
  static UNetConfig from_json(const nlohmann::json& params, const std::string& where = "unet_config.params");
  // Checks the combination of values (heads rule, context_dim vs spatial transformer, ...).
  void validate(const std::string& where = "unet_config.params") const;
};

// Heads of the attention layer at channel count `ch` (the reference's legacy rule):
// num_head_channels != -1 -> heads = ch / num_head_channels; else heads = num_heads (or
// num_heads_upsample for AttentionBlocks of the output blocks); head width = ch / heads for
// spatial transformers (legacy=True), else num_head_channels.
struct HeadLayout {
  int64_t heads;
  int64_t dim_head;
};
HeadLayout head_layout(const UNetConfig& cfg, int64_t ch, bool output_block);

// timestep_embedding(t, dim): [cos(t*f), sin(t*f)] (cos first), f_j = exp(-ln(max_period) j / half),
// float32; a zero column is appended for odd dims.
torch::Tensor timestep_embedding(const torch::Tensor& timesteps, int64_t dim, double max_period = 10000.0);

// Building blocks of openaimodel.py. In their own namespace: the autoencoder (model.py) has
// classes of the same reference names (Upsample, Downsample).
namespace unet {

// GroupNorm32 forward: group_norm in float32, cast back to x's dtype.
torch::Tensor group_norm32(const torch::Tensor& x, const torch::nn::GroupNorm& norm);

struct UpsampleImpl : torch::nn::Module {
  UpsampleImpl(int64_t channels, bool use_conv, int64_t out_channels = -1);
  torch::Tensor forward(const torch::Tensor& x);
  Conv2d conv{nullptr};  // registered only when use_conv

 private:
  int64_t channels_;
};
TORCH_MODULE(Upsample);

struct DownsampleImpl : torch::nn::Module {
  DownsampleImpl(int64_t channels, bool use_conv, int64_t out_channels = -1);
  torch::Tensor forward(const torch::Tensor& x);
  Conv2d op{nullptr};  // conv when use_conv, else avg-pool (no parameters)

 private:
  int64_t channels_;
};
TORCH_MODULE(Downsample);

struct ResBlockImpl : torch::nn::Module {
  // up/down: resblock_updown variants (nearest x2 / avg-pool inside the block).
  ResBlockImpl(int64_t channels, int64_t emb_channels, int64_t out_channels, bool use_scale_shift_norm,
               bool up = false, bool down = false, std::string path = "");
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb, Capture* capture = nullptr);
  torch::nn::Sequential in_layers{nullptr};   // [GroupNorm32, SiLU, Conv3x3]
  torch::nn::Sequential emb_layers{nullptr};  // [SiLU, Linear]
  torch::nn::Sequential out_layers{nullptr};  // [GroupNorm32, SiLU, Dropout, Conv3x3]
  Conv2d skip_connection{nullptr}; // registered only when the channel count changes

 private:
  std::string path_;
  bool use_scale_shift_norm_, up_, down_;
  torch::nn::GroupNorm in_norm_{nullptr}, out_norm_{nullptr};
  Conv2d in_conv_{nullptr}, out_conv_{nullptr};
  torch::nn::Linear emb_linear_{nullptr};
};
TORCH_MODULE(ResBlock);

// Spatial self-attention of non-transformer UNets (use_spatial_transformer=false).
struct AttentionBlockImpl : torch::nn::Module {
  AttentionBlockImpl(int64_t channels, int64_t num_heads, int64_t num_head_channels,
                     bool use_new_attention_order);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv1d qkv{nullptr};
  torch::nn::Conv1d proj_out{nullptr};

 private:
  int64_t num_heads_;
  bool new_order_;
};
TORCH_MODULE(AttentionBlock);

// A Sequential whose forward passes `emb` to ResBlocks and `context` to SpatialTransformers.
struct TimestepEmbedSequentialImpl : torch::nn::Module {
  explicit TimestepEmbedSequentialImpl(std::string path = "") : path_(std::move(path)) {}
  // Children are registered as "0", "1", ... in order.
  void push_back(std::shared_ptr<torch::nn::Module> m);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb, const torch::Tensor& context,
                        Capture* capture = nullptr);
  size_t size() const { return layers_.size(); }

 private:
  std::string path_;
  std::vector<std::shared_ptr<torch::nn::Module>> layers_;
};
TORCH_MODULE(TimestepEmbedSequential);

}  // namespace unet

struct UNetModelImpl : torch::nn::Module {
  explicit UNetModelImpl(const UNetConfig& cfg);
  // x [N, in_channels, H, W], timesteps [N] (int or float), context [N, L, context_dim]
  // (undefined for models without cross-attention). Returns [N, out_channels, H, W].
  // With `capture`, fills "timestep_embedding" and one entry per module path
  // ("time_embed", "input_blocks.1", "input_blocks.1.1.transformer_blocks.0.attn1", ...).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& timesteps,
                        const torch::Tensor& context = {}, Capture* capture = nullptr);
  const UNetConfig& config() const { return cfg_; }

  torch::nn::Sequential time_embed{nullptr};  // [Linear, SiLU, Linear]
  torch::nn::ModuleList input_blocks{nullptr};
  unet::TimestepEmbedSequential middle_block{nullptr};
  torch::nn::ModuleList output_blocks{nullptr};
  torch::nn::Sequential out{nullptr};         // [GroupNorm32, SiLU, Conv3x3]

 private:
  UNetConfig cfg_;
  std::vector<unet::TimestepEmbedSequential> inputs_, outputs_;
  torch::nn::Linear te0_{nullptr}, te2_{nullptr};
  torch::nn::GroupNorm out_norm_{nullptr};
  Conv2d out_conv_{nullptr};
};
TORCH_MODULE(UNetModel);

}  // namespace rdm::ldm
