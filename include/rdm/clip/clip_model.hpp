// OpenAI CLIP (ViT variant) in LibTorch: a port of clip/model.py (CLIP, VisionTransformer,
// Transformer, ResidualAttentionBlock, LayerNorm, QuickGELU) and clip.model.build_model from
// github.com/openai/CLIP. Registered parameter names equal the OpenAI state-dict keys.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include "rdm/formats/tensor_file.hpp"

namespace torch::nn {
class Module;
}

namespace rdm::clip {

// Constructor arguments of clip.model.CLIP plus the head counts (the reference derives
// vision heads = vision_width / 64 and build_model assumes transformer_width / 64).
struct ClipConfig {
  int64_t embed_dim = 768;
  int64_t image_resolution = 224;
  int64_t vision_layers = 24;
  int64_t vision_width = 1024;
  int64_t vision_heads = 16;
  int64_t vision_patch_size = 14;
  int64_t context_length = 77;
  int64_t vocab_size = 49408;
  int64_t transformer_width = 768;
  int64_t transformer_heads = 12;
  int64_t transformer_layers = 12;

  // The arguments of clip.model.CLIP as JSON (plus optional `vision_heads`); missing head
  // counts default to width / 64 like the reference. Derived keys (vision_grid, architecture,
  // layernorm_eps, activation) are checked; other unknown keys are logged and ignored.
  // A Hugging Face config (text_config / vision_config) is accepted too.
  static ClipConfig from_json(const nlohmann::json& j);
  // Hugging Face CLIPConfig (config.json with text_config / vision_config).
  static ClipConfig from_hf_json(const nlohmann::json& j);
  // build_model: every value from the shapes of an OpenAI-named state dict, heads = width/64.
  static ClipConfig infer(const formats::StateDict& state);
  nlohmann::json to_json() const;
  void validate() const;  // positive sizes, widths divisible by heads, resolution % patch == 0
};

// Hugging Face CLIPModel names -> OpenAI names: q/k/v merged into in_proj, text/visual
// projections transposed, position_ids dropped. Throws rdm::Error for a missing piece.
formats::StateDict hf_to_openai(const formats::StateDict& hf);
// True when the state dict uses Hugging Face names (text_model.* / vision_model.*).
bool is_hf_layout(const formats::StateDict& state);

// Which towers a loaded CLIP keeps: both, or only the text side (prompts only: the vision
// tower, about 1.2 GB of ViT-L/14's 1.7 GB in fp32, is never read into memory).
enum class ClipParts { All, TextOnly };

class ClipModel {
 public:
  // Reads weights (.safetensors, state-dict .pt, OpenAI TorchScript .pt, or a Hugging Face
  // directory / model.safetensors with config.json). The config comes from a config.json
  // beside the weights, the safetensors __metadata__ "config", or the shapes (build_model).
  // Floating weights are cast to `dtype` and moved to `device`.
  // With ClipParts::TextOnly the visual.* tensors are not loaded (nor checked beyond the
  // config); identity() is the same as with both towers; encode_image throws rdm::Error.
  static ClipModel load(const std::filesystem::path& weights, torch::Device device = torch::kCPU,
                        torch::Dtype dtype = torch::kFloat32, ClipParts parts = ClipParts::All);
  // Builds from an OpenAI-named state dict (strict: every key used, every key present).
  // The TorchScript scalar buffers input_resolution/context_length/vocab_size are ignored.
  static ClipModel from_state_dict(const formats::StateDict& state, const ClipConfig& config,
                                   torch::Device device = torch::kCPU,
                                   torch::Dtype dtype = torch::kFloat32,
                                   const std::string& source = "state dict", ClipParts parts = ClipParts::All);

  // tokens int32/int64 [N, context_length] -> [N, embed_dim], NOT normalised. Optionally
  // returns the ln_final hidden states [N, context_length, width].
  torch::Tensor encode_text(const torch::Tensor& tokens, torch::Tensor* ln_final = nullptr) const;
  // normalised pixels [N, 3, R, R] -> [N, embed_dim], NOT normalised. Optionally returns the
  // ln_post output of the class token [N, vision_width].
  torch::Tensor encode_image(const torch::Tensor& pixels, torch::Tensor* ln_post = nullptr) const;
  // CLIP.forward: logits_per_image [N_img, N_text] = exp(logit_scale) * cosine similarities.
  torch::Tensor logits_per_image(const torch::Tensor& pixels, const torch::Tensor& tokens) const;

  // A new model (LibTorch's default initialisation; trainers draw their own) in train mode,
  // for training from scratch. Identity: the architecture name + ":untrained".
  static ClipModel create(const ClipConfig& config, torch::Device device = torch::kCPU);
  // encode_text / encode_image with autograd recording (training); same computations.
  torch::Tensor encode_text_train(const torch::Tensor& tokens) const;
  torch::Tensor encode_image_train(const torch::Tensor& pixels) const;

  const ClipConfig& config() const;
  // "ViT-L/14" for OpenAI's architecture, else "ViT-<W>x<L>/<P>@<R>-text<W>x<L>-d<D>";
  // followed by ":" and 12 hex digits of an FNV-1a hash of a few weight tensors (as float32),
  // so the same weights give the same identity in any file format.
  std::string identity() const;
  torch::Device device() const;
  torch::Dtype dtype() const;
  // The module tree (parameters named like the OpenAI state dict).
  torch::nn::Module& module() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace rdm::clip
