// Test helper: an OpenAI-named CLIP state dict in Hugging Face transformers' names (the
// naming of convert_clip_original_pytorch_to_hf.py), written independently of the library's
// inverse mapping (rdm::clip::hf_to_openai). Also its Hugging Face config.json.
#pragma once
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "rdm/clip/clip_model.hpp"
#include "rdm/formats/tensor_file.hpp"

namespace clip_test {
using rdm::clip::ClipConfig;
using rdm::formats::StateDict;

inline StateDict to_hf(const StateDict& sd, const ClipConfig& c) {
  StateDict hf;
  auto blocks = [&](const std::string& src, const std::string& dst, int64_t layers, int64_t w) {
    for (int64_t i = 0; i < layers; ++i) {
      const std::string s = src + std::to_string(i) + ".", d = dst + std::to_string(i) + ".";
      auto W = sd.at(s + "attn.in_proj_weight");
      auto B = sd.at(s + "attn.in_proj_bias");
      hf[d + "self_attn.q_proj.weight"] = W.slice(0, 0, w).clone();
      hf[d + "self_attn.k_proj.weight"] = W.slice(0, w, 2 * w).clone();
      hf[d + "self_attn.v_proj.weight"] = W.slice(0, 2 * w, 3 * w).clone();
      hf[d + "self_attn.q_proj.bias"] = B.slice(0, 0, w).clone();
      hf[d + "self_attn.k_proj.bias"] = B.slice(0, w, 2 * w).clone();
      hf[d + "self_attn.v_proj.bias"] = B.slice(0, 2 * w, 3 * w).clone();
      hf[d + "self_attn.out_proj.weight"] = sd.at(s + "attn.out_proj.weight");
      hf[d + "self_attn.out_proj.bias"] = sd.at(s + "attn.out_proj.bias");
      hf[d + "layer_norm1.weight"] = sd.at(s + "ln_1.weight");
      hf[d + "layer_norm1.bias"] = sd.at(s + "ln_1.bias");
      hf[d + "layer_norm2.weight"] = sd.at(s + "ln_2.weight");
      hf[d + "layer_norm2.bias"] = sd.at(s + "ln_2.bias");
      hf[d + "mlp.fc1.weight"] = sd.at(s + "mlp.c_fc.weight");
      hf[d + "mlp.fc1.bias"] = sd.at(s + "mlp.c_fc.bias");
      hf[d + "mlp.fc2.weight"] = sd.at(s + "mlp.c_proj.weight");
      hf[d + "mlp.fc2.bias"] = sd.at(s + "mlp.c_proj.bias");
    }
  };
  blocks("transformer.resblocks.", "text_model.encoder.layers.", c.transformer_layers, c.transformer_width);
  blocks("visual.transformer.resblocks.", "vision_model.encoder.layers.", c.vision_layers, c.vision_width);
  hf["text_model.embeddings.token_embedding.weight"] = sd.at("token_embedding.weight");
  hf["text_model.embeddings.position_embedding.weight"] = sd.at("positional_embedding");
  hf["text_model.embeddings.position_ids"] = torch::arange(c.context_length).unsqueeze(0);
  hf["text_model.final_layer_norm.weight"] = sd.at("ln_final.weight");
  hf["text_model.final_layer_norm.bias"] = sd.at("ln_final.bias");
  hf["text_projection.weight"] = sd.at("text_projection").t().contiguous();
  hf["vision_model.embeddings.patch_embedding.weight"] = sd.at("visual.conv1.weight");
  hf["vision_model.embeddings.class_embedding"] = sd.at("visual.class_embedding");
  hf["vision_model.embeddings.position_embedding.weight"] = sd.at("visual.positional_embedding");
  hf["vision_model.pre_layrnorm.weight"] = sd.at("visual.ln_pre.weight");
  hf["vision_model.pre_layrnorm.bias"] = sd.at("visual.ln_pre.bias");
  hf["vision_model.post_layernorm.weight"] = sd.at("visual.ln_post.weight");
  hf["vision_model.post_layernorm.bias"] = sd.at("visual.ln_post.bias");
  hf["visual_projection.weight"] = sd.at("visual.proj").t().contiguous();
  hf["logit_scale"] = sd.at("logit_scale");
  return hf;
}

// transformers' CLIPConfig for `c` (QuickGELU, LayerNorm eps 1e-5 as OpenAI's models).
inline nlohmann::json hf_config(const ClipConfig& c) {
  return {{"architectures", {"CLIPModel"}},
          {"projection_dim", c.embed_dim},
          {"text_config",
           {{"hidden_size", c.transformer_width},
            {"num_hidden_layers", c.transformer_layers},
            {"num_attention_heads", c.transformer_heads},
            {"max_position_embeddings", c.context_length},
            {"vocab_size", c.vocab_size},
            {"hidden_act", "quick_gelu"},
            {"layer_norm_eps", 1e-5}}},
          {"vision_config",
           {{"hidden_size", c.vision_width},
            {"num_hidden_layers", c.vision_layers},
            {"num_attention_heads", c.vision_heads},
            {"image_size", c.image_resolution},
            {"patch_size", c.vision_patch_size},
            {"hidden_act", "quick_gelu"},
            {"layer_norm_eps", 1e-5}}}};
}

}  // namespace clip_test
