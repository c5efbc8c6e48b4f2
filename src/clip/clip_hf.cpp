// Hugging Face transformers CLIPModel state dict -> OpenAI clip/model.py names: the inverse
// of transformers' convert_clip_original_pytorch_to_hf.py (q/k/v projections stacked into
// in_proj, projection matrices transposed, position_ids buffers dropped).
#include <regex>

#include <torch/types.h>

#include "rdm/clip/clip_model.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::clip {

bool is_hf_layout(const formats::StateDict& sd) {
  for (auto& [k, v] : sd)
    if (k.rfind("text_model.", 0) == 0 || k.rfind("vision_model.", 0) == 0) return true;
  return false;
}

formats::StateDict hf_to_openai(const formats::StateDict& hf) {
  formats::StateDict out;
  std::map<std::string, torch::Tensor> pending;  // q/k/v pieces by OpenAI block prefix
  auto take = [&](const std::string& k) -> torch::Tensor {
    auto it = hf.find(k);
    if (it == hf.end()) fail("Hugging Face CLIP weights: '{}' is missing", k);
    return it->second;
  };
  static const std::regex layer_re(R"(^(text|vision)_model\.encoder\.layers\.(\d+)\.(.+)$)");
  static const std::map<std::string, std::string> block_names = {
      {"layer_norm1.weight", "ln_1.weight"},         {"layer_norm1.bias", "ln_1.bias"},
      {"layer_norm2.weight", "ln_2.weight"},         {"layer_norm2.bias", "ln_2.bias"},
      {"mlp.fc1.weight", "mlp.c_fc.weight"},         {"mlp.fc1.bias", "mlp.c_fc.bias"},
      {"mlp.fc2.weight", "mlp.c_proj.weight"},       {"mlp.fc2.bias", "mlp.c_proj.bias"},
      {"self_attn.out_proj.weight", "attn.out_proj.weight"}, {"self_attn.out_proj.bias", "attn.out_proj.bias"}};
  static const std::map<std::string, std::string> top_names = {
      {"text_model.embeddings.token_embedding.weight", "token_embedding.weight"},
      {"text_model.embeddings.position_embedding.weight", "positional_embedding"},
      {"text_model.final_layer_norm.weight", "ln_final.weight"},
      {"text_model.final_layer_norm.bias", "ln_final.bias"},
      {"vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"},
      {"vision_model.embeddings.class_embedding", "visual.class_embedding"},
      {"vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"},
      {"vision_model.pre_layrnorm.weight", "visual.ln_pre.weight"},
      {"vision_model.pre_layrnorm.bias", "visual.ln_pre.bias"},
      {"vision_model.post_layernorm.weight", "visual.ln_post.weight"},
      {"vision_model.post_layernorm.bias", "visual.ln_post.bias"},
      {"logit_scale", "logit_scale"}};
  std::smatch m;
  std::map<std::string, int> qkv_seen;
  for (auto& [k, v] : hf) {
    if (k == "text_model.embeddings.position_ids" || k == "vision_model.embeddings.position_ids") continue;
    if (k == "text_projection.weight") {
      out["text_projection"] = v.t().contiguous();
      continue;
    }
    if (k == "visual_projection.weight") {
      out["visual.proj"] = v.t().contiguous();
      continue;
    }
    if (auto it = top_names.find(k); it != top_names.end()) {
      out[it->second] = v;
      continue;
    }
    if (std::regex_match(k, m, layer_re)) {
      const std::string prefix = (m[1] == "text" ? std::string("transformer.resblocks.")
                                                 : std::string("visual.transformer.resblocks.")) +
                                 m[2].str() + ".";
      const std::string rest = m[3];
      if (auto it = block_names.find(rest); it != block_names.end()) {
        out[prefix + it->second] = v;
        continue;
      }
      static const std::regex qkv_re(R"(^self_attn\.(q|k|v)_proj\.(weight|bias)$)");
      std::smatch q;
      if (std::regex_match(rest, q, qkv_re)) {
        qkv_seen[prefix + q[2].str()]++;
        continue;
      }
    }
    fail("Hugging Face CLIP weights: unexpected key '{}'", k);
  }
  for (auto& [pk, n] : qkv_seen) {
    // pk = "<block prefix>weight|bias"
    const auto dot = pk.rfind('.');
    const std::string prefix = pk.substr(0, dot + 1), kind = pk.substr(dot + 1);
    std::string hf_prefix;
    std::smatch b;
    static const std::regex blk_re(R"(^(visual\.)?transformer\.resblocks\.(\d+)\.$)");
    std::regex_match(prefix, b, blk_re);
    hf_prefix = (b[1].matched ? "vision_model" : "text_model") + std::string(".encoder.layers.") + b[2].str() + ".self_attn.";
    out[prefix + "attn.in_proj_" + kind] = torch::cat({take(hf_prefix + "q_proj." + kind), take(hf_prefix + "k_proj." + kind),
                                                       take(hf_prefix + "v_proj." + kind)},
                                                      0);
  }
  return out;
}

}  // namespace rdm::clip
