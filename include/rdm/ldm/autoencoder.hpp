// Port of ldm/modules/diffusionmodules/model.py (Encoder, Decoder, ResnetBlock, AttnBlock,
// Upsample, Downsample), ldm/models/autoencoder.py (AutoencoderKL, VQModel, VQModelInterface),
// ldm/modules/distributions/distributions.py (DiagonalGaussianDistribution) and
// taming/modules/vqvae/quantize.py (VectorQuantizer2, legacy loss, no remap).
//
// Registered names equal the reference state-dict keys (encoder.down.0.block.0.norm1.weight,
// decoder.up.1.upsample.conv.weight, decoder.mid.attn_1.q.bias, quantize.embedding.weight, ...).
// Every GroupNorm here uses eps 1e-6 (the UNet's ResBlocks use 1e-5: see unet.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>
#include <torch/types.h>

#include "rdm/ldm/conv.hpp"

namespace rdm::ldm {

// ---------------------------------------------------------------------------------------------
// Configuration

// `ddconfig` of the first-stage configs (arguments of Encoder/Decoder).
struct DDConfig {
  bool double_z = true;
  int64_t z_channels = 0;
  int64_t resolution = 0;
  int64_t in_channels = 3;
  int64_t out_ch = 3;
  int64_t ch = 0;
  std::vector<int64_t> ch_mult{1, 2, 4, 8};
  int64_t num_res_blocks = 0;
  std::vector<int64_t> attn_resolutions;
  double dropout = 0.0;         // inference only: dropout is the identity
  bool resamp_with_conv = true;
  bool give_pre_end = false;    // Decoder returns the features before norm_out/conv_out
  bool tanh_out = false;        // Decoder applies tanh at the end
  std::string attn_type = "vanilla";  // "vanilla" or "none" ("linear" is rejected)

  // Parses a ddconfig object; `where` is its key path (errors name keys by their full path).
  // Unknown keys -> rdm::Error naming the key.
  static DDConfig from_json(const nlohmann::json& j, const std::string& where = "ddconfig");
  // Downsampling factor 2^(len(ch_mult)-1).
  int64_t downsample_factor() const;
};

enum class AutoencoderKind { KL, VQ };

// `first_stage_config.params` of a LatentDiffusion config (or a standalone autoencoder config).
struct AutoencoderConfig {
  AutoencoderKind kind = AutoencoderKind::KL;
  DDConfig ddconfig;
  int64_t embed_dim = 0;
  // VQ only (VQModel / VQModelInterface): codebook size, VectorQuantizer2 beta (fixed 0.25 in
  // the reference VQModel), legacy loss form (the reference default).
  int64_t n_embed = 0;
  double beta = 0.25;
  bool legacy = true;

  // `params` of an autoencoder (the object at .../first_stage_config/params). Accepted and
  // ignored (training only): lossconfig, monitor, image_key, ckpt_path, ignore_keys,
  // scheduler_config, lr_g_factor, batch_resize_range, sane_index_shape. Rejected when set:
  // remap, colorize_nlabels, use_ema (they change the state dict or the outputs).
  // Unknown keys -> rdm::Error naming the key by its full path (`where` + "." + key, e.g.
  // 'model.params.first_stage_config.params.ddconfig.ch_mult').
  static AutoencoderConfig from_json(const nlohmann::json& params, AutoencoderKind kind,
                                     const std::string& where = "first_stage_config.params");
  // `{target, params}` object; the kind comes from the class name in `target`.
  static AutoencoderConfig from_target_json(const nlohmann::json& cfg,
                                            const std::string& where = "first_stage_config");
  // "ldm.models.autoencoder.AutoencoderKL" -> KL; "...VQModelInterface" / "...VQModel" -> VQ.
  // Other classes: rdm::Error naming the key path `where` when given.
  static AutoencoderKind kind_from_class(const std::string& target, const std::string& where = "");
  // Latent channels the diffusion model sees (embed_dim).
  int64_t latent_channels() const { return embed_dim; }
  int64_t downsample_factor() const { return ddconfig.downsample_factor(); }
};

// ---------------------------------------------------------------------------------------------
// Building blocks (model.py)

// ResnetBlock with temb_channels = 0 (no temb_proj), conv_shortcut = false.
struct ResnetBlockImpl : torch::nn::Module {
  ResnetBlockImpl(int64_t in_channels, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& x);

  int64_t in_channels, out_channels;
  torch::nn::GroupNorm norm1{nullptr};
  Conv2d conv1{nullptr};
  torch::nn::GroupNorm norm2{nullptr};
  Conv2d conv2{nullptr};
  Conv2d nin_shortcut{nullptr};  // only when in_channels != out_channels
};
TORCH_MODULE(ResnetBlock);

// Single-head spatial self-attention over all H*W positions, scale C^-0.5.
struct AttnBlockImpl : torch::nn::Module {
  explicit AttnBlockImpl(int64_t in_channels);
  torch::Tensor forward(const torch::Tensor& x);

  int64_t in_channels;
  torch::nn::GroupNorm norm{nullptr};
  Conv2d q{nullptr}, k{nullptr}, v{nullptr}, proj_out{nullptr};
};
TORCH_MODULE(AttnBlock);

// Nearest x2, then (with_conv) a 3x3 conv.
struct UpsampleImpl : torch::nn::Module {
  UpsampleImpl(int64_t in_channels, bool with_conv);
  torch::Tensor forward(const torch::Tensor& x);
  Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample);

// with_conv: zero pad (0,1,0,1) then 3x3 conv stride 2 padding 0; else 2x2 average pooling.
struct DownsampleImpl : torch::nn::Module {
  DownsampleImpl(int64_t in_channels, bool with_conv);
  torch::Tensor forward(const torch::Tensor& x);
  Conv2d conv{nullptr};
};
TORCH_MODULE(Downsample);

// One level of Encoder.down / Decoder.up: `block`, `attn` and `downsample` / `upsample`.
struct AeLevelImpl : torch::nn::Module {
  torch::nn::ModuleList block, attn;
  std::vector<ResnetBlock> blocks;  // typed views of `block` / `attn`
  std::vector<AttnBlock> attns;     // empty when the level has no attention (or attn_type none)
  Downsample downsample{nullptr};
  Upsample upsample{nullptr};
};
TORCH_MODULE(AeLevel);

// `mid`: block_1, attn_1, block_2.
struct AeMidImpl : torch::nn::Module {
  AeMidImpl(int64_t channels, bool with_attn);
  torch::Tensor forward(torch::Tensor h);
  ResnetBlock block_1{nullptr};
  AttnBlock attn_1{nullptr};  // null when attn_type == "none" (nn.Identity has no weights)
  ResnetBlock block_2{nullptr};
};
TORCH_MODULE(AeMid);

struct EncoderImpl : torch::nn::Module {
  explicit EncoderImpl(const DDConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x);

  DDConfig cfg;
  Conv2d conv_in{nullptr};
  torch::nn::ModuleList down;
  std::vector<AeLevel> levels;
  AeMid mid{nullptr};
  torch::nn::GroupNorm norm_out{nullptr};
  Conv2d conv_out{nullptr};
};
TORCH_MODULE(Encoder);

struct DecoderImpl : torch::nn::Module {
  explicit DecoderImpl(const DDConfig& cfg);
  torch::Tensor forward(const torch::Tensor& z);

  DDConfig cfg;
  Conv2d conv_in{nullptr};
  AeMid mid{nullptr};
  torch::nn::ModuleList up;     // up[i] belongs to level i (executed from the last to 0)
  std::vector<AeLevel> levels;  // typed view, index = level
  torch::nn::GroupNorm norm_out{nullptr};
  Conv2d conv_out{nullptr};
};
TORCH_MODULE(Decoder);

// ---------------------------------------------------------------------------------------------
// Quantiser (taming VectorQuantizer2, remap = None)

struct QuantizeResult {
  torch::Tensor quant;     // [B, e_dim, H, W], straight-through form z + (z_q - z)
  torch::Tensor emb_loss;  // 0-d
  torch::Tensor indices;   // int64 [B, H, W] (the reference returns them flattened unless
                           // sane_index_shape; the values are identical)
};

struct VectorQuantizer2Impl : torch::nn::Module {
  VectorQuantizer2Impl(int64_t n_e, int64_t e_dim, double beta, bool legacy);
  QuantizeResult forward(const torch::Tensor& z);
  // Codebook rows for int64 indices of shape [B, H, W] -> [B, e_dim, H, W].
  torch::Tensor get_codebook_entry(const torch::Tensor& indices);

  int64_t n_e, e_dim;
  double beta;
  bool legacy;
  torch::nn::Embedding embedding{nullptr};
};
TORCH_MODULE(VectorQuantizer2);

// ---------------------------------------------------------------------------------------------
// Autoencoders (autoencoder.py)

// DiagonalGaussianDistribution(moments): mean/logvar split along channels, logvar clamped to
// [-30, 20], std = exp(0.5 logvar), var = exp(logvar).
struct DiagonalGaussian {
  torch::Tensor mean, logvar, std, var;
  explicit DiagonalGaussian(const torch::Tensor& moments);
  const torch::Tensor& mode() const { return mean; }
  // mean + std * N(0,1) drawn from `gen` (default generator when undefined).
  torch::Tensor sample(c10::optional<torch::Generator> gen = c10::nullopt) const;
};

struct AutoencoderKLImpl : torch::nn::Module {
  explicit AutoencoderKLImpl(const AutoencoderConfig& cfg, bool with_encoder = true);
  // quant_conv(encoder(x)): the posterior moments [B, 2*embed_dim, h, w].
  torch::Tensor encode(const torch::Tensor& x);
  DiagonalGaussian encode_posterior(const torch::Tensor& x) { return DiagonalGaussian(encode(x)); }
  // decoder(post_quant_conv(z)).
  torch::Tensor decode(const torch::Tensor& z);

  AutoencoderConfig cfg;
  Encoder encoder{nullptr};  // null when built without encoder (decode-only)
  Decoder decoder{nullptr};
  Conv2d quant_conv{nullptr};  // null without encoder
  Conv2d post_quant_conv{nullptr};
};
TORCH_MODULE(AutoencoderKL);

// VQModelInterface (and VQModel's encode with quantisation).
struct VQModelInterfaceImpl : torch::nn::Module {
  explicit VQModelInterfaceImpl(const AutoencoderConfig& cfg, bool with_encoder = true);
  // VQModelInterface.encode: quant_conv(encoder(x)) (pre-quantisation latent).
  torch::Tensor encode(const torch::Tensor& x);
  // VQModel.encode: quantize(quant_conv(encoder(x))).
  QuantizeResult encode_quantized(const torch::Tensor& x);
  // VQModelInterface.decode: quantise (unless force_not_quantize), post_quant_conv, decoder.
  torch::Tensor decode(const torch::Tensor& h, bool force_not_quantize = false);

  AutoencoderConfig cfg;
  Encoder encoder{nullptr};
  Decoder decoder{nullptr};
  VectorQuantizer2 quantize{nullptr};
  Conv2d quant_conv{nullptr};
  Conv2d post_quant_conv{nullptr};
};
TORCH_MODULE(VQModelInterface);

// Either autoencoder behind one interface, as LatentDiffusion uses its first stage.
// `module()` is what the strict loader fills (prefix "first_stage_model.").
class FirstStage {
 public:
  FirstStage() = default;
  // with_encoder = false builds only what decoding needs (no encoder, no quant_conv); load
  // with a loader that drops the encoder keys then.
  static FirstStage create(const AutoencoderConfig& cfg, bool with_encoder = true);

  const AutoencoderConfig& config() const { return cfg_; }
  bool has_encoder() const { return with_encoder_; }
  torch::nn::Module& module();
  std::shared_ptr<torch::nn::Module> module_ptr() const;

  // LatentDiffusion.decode_first_stage without the 1/scale_factor (caller's job): KL decode, or
  // VQModelInterface.decode(z, force_not_quantize) (quantises by default as the reference).
  torch::Tensor decode(const torch::Tensor& z, bool force_not_quantize = false);
  // Deterministic encoding: KL posterior mean, or the VQ pre-quantisation latent.
  torch::Tensor encode_mode(const torch::Tensor& x);

  AutoencoderKL kl{nullptr};
  VQModelInterface vq{nullptr};

 private:
  AutoencoderConfig cfg_;
  bool with_encoder_ = true;
};

// True for state-dict keys (after the first-stage prefix) that only the encoder uses
// ("encoder.*", "quant_conv.*"): a decode-only FirstStage skips them.
bool is_encoder_key(const std::string& key);

}  // namespace rdm::ldm
