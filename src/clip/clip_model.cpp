// OpenAI CLIP (ViT variant) in LibTorch. Port of clip/model.py (LayerNorm computed in fp32,
// QuickGELU, ResidualAttentionBlock with nn.MultiheadAttention semantics, Transformer,
// VisionTransformer, CLIP.encode_text / encode_image / forward) and clip.model.build_model,
// github.com/openai/CLIP @ d05afc4. Module and parameter names equal the OpenAI state-dict
// keys, so loading is the project's one strict loader without renaming.
#include "rdm/clip/clip_model.hpp"

#include <cmath>
#include <fstream>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "rdm/runtime/error.hpp"
#include "rdm/formats/state_dict.hpp"

namespace rdm::clip {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// clip.model.LayerNorm: torch LayerNorm (eps 1e-5) evaluated in float32, result cast back.
struct LayerNormImpl : torch::nn::Module {
  torch::Tensor weight, bias;
  int64_t dim;
  explicit LayerNormImpl(int64_t d) : dim(d) {
    weight = register_parameter("weight", torch::ones({d}));
    bias = register_parameter("bias", torch::zeros({d}));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto t = x.scalar_type();
    return torch::layer_norm(x.to(torch::kFloat32), {dim}, weight.to(torch::kFloat32), bias.to(torch::kFloat32), 1e-5)
        .to(t);
  }
};
TORCH_MODULE(LayerNorm);

// nn.MultiheadAttention(d_model, n_head) as used by CLIP (self-attention, no dropout):
// packed in-projection (q, k, v stacked by rows), q scaled by head_dim^-0.5, additive mask.
struct MultiheadAttentionImpl : torch::nn::Module {
  torch::Tensor in_proj_weight, in_proj_bias;
  torch::nn::Linear out_proj{nullptr};
  int64_t width, heads;
  MultiheadAttentionImpl(int64_t w, int64_t h) : width(w), heads(h) {
    in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * w, w}));
    in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * w}));
    out_proj = register_module("out_proj", torch::nn::Linear(w, w));
  }
  // x: [N, L, W] (batch first; the reference's sequence-first layout is a transpose).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) {
    const int64_t n = x.size(0), l = x.size(1), hd = width / heads;
    auto qkv = torch::nn::functional::linear(x, in_proj_weight, in_proj_bias);  // [N, L, 3W]
    qkv = qkv.view({n, l, 3, heads, hd}).permute({2, 0, 3, 1, 4});             // [3, N, H, L, hd]
    auto q = qkv[0].reshape({n * heads, l, hd});
    auto k = qkv[1].reshape({n * heads, l, hd});
    auto v = qkv[2].reshape({n * heads, l, hd});
    q = q / std::sqrt(static_cast<double>(hd));
    torch::Tensor attn = mask.defined() ? torch::baddbmm(mask.to(q.scalar_type()), q, k.transpose(-2, -1))
                                        : torch::bmm(q, k.transpose(-2, -1));
    attn = torch::softmax(attn, -1);
    auto out = torch::bmm(attn, v).view({n, heads, l, hd}).permute({0, 2, 1, 3}).reshape({n, l, width});
    return out_proj(out);
  }
};
TORCH_MODULE(MultiheadAttention);

struct MlpImpl : torch::nn::Module {
  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};
  explicit MlpImpl(int64_t w) {
    c_fc = register_module("c_fc", torch::nn::Linear(w, 4 * w));
    c_proj = register_module("c_proj", torch::nn::Linear(4 * w, w));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = c_fc(x);
    h = h * torch::sigmoid(1.702 * h);  // QuickGELU
    return c_proj(h);
  }
};
TORCH_MODULE(Mlp);

struct ResidualAttentionBlockImpl : torch::nn::Module {
  MultiheadAttention attn{nullptr};
  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Mlp mlp{nullptr};
  ResidualAttentionBlockImpl(int64_t w, int64_t h) {
    attn = register_module("attn", MultiheadAttention(w, h));
    ln_1 = register_module("ln_1", LayerNorm(w));
    mlp = register_module("mlp", Mlp(w));
    ln_2 = register_module("ln_2", LayerNorm(w));
  }
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask) {
    x = x + attn(ln_1(x), mask);
    return x + mlp(ln_2(x));
  }
};
TORCH_MODULE(ResidualAttentionBlock);

struct TransformerImpl : torch::nn::Module {
  torch::nn::ModuleList resblocks;
  TransformerImpl(int64_t width, int64_t layers, int64_t heads) {
    resblocks = register_module("resblocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < layers; ++i) resblocks->push_back(ResidualAttentionBlock(width, heads));
  }
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask) {
    for (auto& m : *resblocks) x = m->as<ResidualAttentionBlockImpl>()->forward(x, mask);
    return x;
  }
};
TORCH_MODULE(Transformer);

struct VisionTransformerImpl : torch::nn::Module {
  torch::nn::Conv2d conv1{nullptr};
  torch::Tensor class_embedding, positional_embedding, proj;
  LayerNorm ln_pre{nullptr}, ln_post{nullptr};
  Transformer transformer{nullptr};
  VisionTransformerImpl(int64_t resolution, int64_t patch, int64_t width, int64_t layers, int64_t heads,
                        int64_t output_dim) {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, width, patch).stride(patch).bias(false)));
    class_embedding = register_parameter("class_embedding", torch::zeros({width}));
    const int64_t grid = resolution / patch;
    positional_embedding = register_parameter("positional_embedding", torch::zeros({grid * grid + 1, width}));
    ln_pre = register_module("ln_pre", LayerNorm(width));
    transformer = register_module("transformer", Transformer(width, layers, heads));
    ln_post = register_module("ln_post", LayerNorm(width));
    proj = register_parameter("proj", torch::zeros({width, output_dim}));
  }
  torch::Tensor forward(const torch::Tensor& image, torch::Tensor* ln_post_out) {
    auto x = conv1(image);                                 // [N, W, g, g]
    x = x.reshape({x.size(0), x.size(1), -1}).permute({0, 2, 1});  // [N, g*g, W]
    auto cls = class_embedding.to(x.scalar_type()) +
               torch::zeros({x.size(0), 1, x.size(-1)}, x.options());
    x = torch::cat({cls, x}, 1);
    x = x + positional_embedding.to(x.scalar_type());
    x = ln_pre(x);
    x = transformer(x, torch::Tensor());
    x = ln_post(x.select(1, 0));
    if (ln_post_out) *ln_post_out = x;
    return torch::matmul(x, proj);
  }
};
TORCH_MODULE(VisionTransformer);

struct ClipModule : torch::nn::Module {
  VisionTransformer visual{nullptr};
  Transformer transformer{nullptr};
  torch::nn::Embedding token_embedding{nullptr};
  torch::Tensor positional_embedding, text_projection, logit_scale;
  LayerNorm ln_final{nullptr};
  torch::Tensor attn_mask;  // not a parameter or buffer (as in the reference)

  explicit ClipModule(const ClipConfig& c, bool vision = true) {
    if (vision)
      visual = register_module("visual", VisionTransformer(c.image_resolution, c.vision_patch_size, c.vision_width,
                                                           c.vision_layers, c.vision_heads, c.embed_dim));
    transformer = register_module("transformer", Transformer(c.transformer_width, c.transformer_layers, c.transformer_heads));
    token_embedding = register_module("token_embedding", torch::nn::Embedding(c.vocab_size, c.transformer_width));
    positional_embedding = register_parameter("positional_embedding", torch::zeros({c.context_length, c.transformer_width}));
    ln_final = register_module("ln_final", LayerNorm(c.transformer_width));
    text_projection = register_parameter("text_projection", torch::zeros({c.transformer_width, c.embed_dim}));
    logit_scale = register_parameter("logit_scale", torch::tensor(std::log(1 / 0.07)).to(torch::kFloat32));
    // build_attention_mask: -inf strictly above the diagonal.
    attn_mask = torch::full({c.context_length, c.context_length}, -INFINITY).triu_(1);
  }
};

}  // namespace

// ---------------------------------------------------------------------------
// ClipConfig

void ClipConfig::validate() const {
  auto pos = [](int64_t v, const char* k) {
    if (v <= 0) fail("CLIP config: {} must be positive, got {}", k, v);
  };
  pos(embed_dim, "embed_dim"), pos(image_resolution, "image_resolution"), pos(vision_layers, "vision_layers");
  pos(vision_width, "vision_width"), pos(vision_heads, "vision_heads"), pos(vision_patch_size, "vision_patch_size");
  pos(context_length, "context_length"), pos(vocab_size, "vocab_size"), pos(transformer_width, "transformer_width");
  pos(transformer_heads, "transformer_heads"), pos(transformer_layers, "transformer_layers");
  if (vision_width % vision_heads) fail("CLIP config: vision_width {} is not divisible by vision_heads {}", vision_width, vision_heads);
  if (transformer_width % transformer_heads)
    fail("CLIP config: transformer_width {} is not divisible by transformer_heads {}", transformer_width, transformer_heads);
  if (image_resolution % vision_patch_size)
    fail("CLIP config: image_resolution {} is not a multiple of vision_patch_size {}", image_resolution, vision_patch_size);
}

ClipConfig ClipConfig::from_json(const json& j) {
  if (!j.is_object()) fail("CLIP config: expected a JSON object");
  if (j.contains("text_config") || j.contains("vision_config")) return from_hf_json(j);
  ClipConfig c;
  static const std::set<std::string> required = {"embed_dim", "image_resolution", "vision_layers", "vision_width",
                                                 "vision_patch_size", "context_length", "vocab_size",
                                                 "transformer_width", "transformer_heads", "transformer_layers"};
  static const std::set<std::string> derived = {"vision_heads", "vision_grid", "architecture", "layernorm_eps", "activation"};
  for (const auto& k : required)
    if (!j.contains(k)) fail("CLIP config: '{}' is missing", k);
  for (auto& [k, v] : j.items())
    if (!required.count(k) && !derived.count(k)) spdlog::warn("CLIP config: ignoring unknown key '{}'", k);
  auto get = [&](const char* k) {
    const json& v = j.at(k);
    if (k == std::string("vision_layers") && v.is_array())
      throw Unsupported("CLIP config: ModifiedResNet vision towers (vision_layers is a list) are not supported");
    if (!v.is_number_integer()) fail("CLIP config: '{}' must be an integer", k);
    return v.get<int64_t>();
  };
  c.embed_dim = get("embed_dim");
  c.image_resolution = get("image_resolution");
  c.vision_layers = get("vision_layers");
  c.vision_width = get("vision_width");
  c.vision_patch_size = get("vision_patch_size");
  c.context_length = get("context_length");
  c.vocab_size = get("vocab_size");
  c.transformer_width = get("transformer_width");
  c.transformer_heads = get("transformer_heads");
  c.transformer_layers = get("transformer_layers");
  c.vision_heads = j.contains("vision_heads") ? get("vision_heads") : c.vision_width / 64;
  if (j.contains("architecture") && j.at("architecture") != "ViT")
    throw Unsupported("CLIP config: architecture " + j.at("architecture").dump() + " is not supported (ViT only)");
  if (j.contains("layernorm_eps") && std::abs(j.at("layernorm_eps").get<double>() - 1e-5) > 1e-12)
    fail("CLIP config: layernorm_eps {} is not supported (the reference uses 1e-5)", j.at("layernorm_eps").get<double>());
  c.validate();
  return c;
}

ClipConfig ClipConfig::from_hf_json(const json& j) {
  if (!j.contains("text_config") || !j.contains("vision_config"))
    fail("Hugging Face CLIP config: text_config and vision_config are required");
  const json& t = j.at("text_config");
  const json& v = j.at("vision_config");
  ClipConfig c;
  c.embed_dim = j.value("projection_dim", int64_t{512});
  c.transformer_width = t.value("hidden_size", int64_t{512});
  c.transformer_layers = t.value("num_hidden_layers", int64_t{12});
  c.transformer_heads = t.value("num_attention_heads", int64_t{8});
  c.context_length = t.value("max_position_embeddings", int64_t{77});
  c.vocab_size = t.value("vocab_size", int64_t{49408});
  c.vision_width = v.value("hidden_size", int64_t{768});
  c.vision_layers = v.value("num_hidden_layers", int64_t{12});
  c.vision_heads = v.value("num_attention_heads", int64_t{12});
  c.image_resolution = v.value("image_size", int64_t{224});
  c.vision_patch_size = v.value("patch_size", int64_t{32});
  for (const json* sub : {&t, &v}) {
    if (sub->contains("hidden_act") && sub->at("hidden_act") != "quick_gelu")
      fail("Hugging Face CLIP config: hidden_act {} is not supported (quick_gelu only)", sub->at("hidden_act").dump());
    if (sub->contains("layer_norm_eps") && std::abs(sub->at("layer_norm_eps").get<double>() - 1e-5) > 1e-12)
      fail("Hugging Face CLIP config: layer_norm_eps {} is not supported (1e-5 only)", sub->at("layer_norm_eps").get<double>());
  }
  c.validate();
  return c;
}

ClipConfig ClipConfig::infer(const formats::StateDict& sd) {
  auto need = [&](const std::string& k) -> const torch::Tensor& {
    auto it = sd.find(k);
    if (it == sd.end()) fail("CLIP weights: '{}' is missing, cannot infer the configuration", k);
    return it->second;
  };
  if (!sd.count("visual.proj")) throw Unsupported("CLIP weights: only ViT vision towers are supported (no visual.proj)");
  ClipConfig c;
  const auto& conv = need("visual.conv1.weight");
  c.vision_width = conv.size(0);
  c.vision_patch_size = conv.size(-1);
  std::set<int64_t> vl, tl;
  static const std::regex vre(R"(^visual\.transformer\.resblocks\.(\d+)\.attn\.in_proj_weight$)");
  static const std::regex tre(R"(^transformer\.resblocks\.(\d+)\.)");
  std::smatch m;
  for (auto& [k, v] : sd) {
    if (std::regex_search(k, m, vre)) vl.insert(std::stoll(m[1]));
    else if (std::regex_search(k, m, tre)) tl.insert(std::stoll(m[1]));
  }
  c.vision_layers = static_cast<int64_t>(vl.size());
  const int64_t tokens = need("visual.positional_embedding").size(0);
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(tokens - 1))));
  if (grid * grid + 1 != tokens) fail("CLIP weights: visual.positional_embedding has {} rows, not a square grid + 1", tokens);
  c.image_resolution = c.vision_patch_size * grid;
  c.embed_dim = need("text_projection").size(1);
  c.context_length = need("positional_embedding").size(0);
  c.vocab_size = need("token_embedding.weight").size(0);
  c.transformer_width = need("ln_final.weight").size(0);
  c.transformer_heads = c.transformer_width / 64;
  c.transformer_layers = static_cast<int64_t>(tl.size());
  c.vision_heads = c.vision_width / 64;
  if (c.transformer_heads == 0 || c.vision_heads == 0)
    fail("CLIP weights: width below 64 ({} text, {} vision): head counts cannot be inferred, give a config.json",
         c.transformer_width, c.vision_width);
  c.validate();
  return c;
}

json ClipConfig::to_json() const {
  return json{{"embed_dim", embed_dim},
              {"image_resolution", image_resolution},
              {"vision_layers", vision_layers},
              {"vision_width", vision_width},
              {"vision_heads", vision_heads},
              {"vision_patch_size", vision_patch_size},
              {"context_length", context_length},
              {"vocab_size", vocab_size},
              {"transformer_width", transformer_width},
              {"transformer_heads", transformer_heads},
              {"transformer_layers", transformer_layers}};
}

// ---------------------------------------------------------------------------
// ClipModel

struct ClipModel::Impl {
  ClipConfig config;
  std::shared_ptr<ClipModule> net;
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;
  std::string identity;
  torch::Tensor mask;  // on device, in dtype
};

namespace {
// FNV-1a over float32 values of a few tensors: a cheap fingerprint that is the same for the
// same weights in any file format or precision they were stored in losslessly.
std::string fingerprint(const formats::StateDict& sd) {
  uint64_t h = 1469598103934665603ULL;
  for (const char* k : {"text_projection", "logit_scale", "visual.proj", "ln_final.weight", "visual.class_embedding"}) {
    auto it = sd.find(k);
    if (it == sd.end()) continue;
    auto t = it->second.detach().to(torch::kCPU, torch::kFloat32).contiguous().flatten();
    t = t.slice(0, 0, std::min<int64_t>(t.numel(), 4096));
    const auto* p = reinterpret_cast<const unsigned char*>(t.data_ptr<float>());
    for (int64_t i = 0; i < t.numel() * 4; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  }
  return fmt::format("{:012x}", h & 0xFFFFFFFFFFFFULL);
}

std::string arch_name(const ClipConfig& c) {
  if (c.embed_dim == 768 && c.image_resolution == 224 && c.vision_layers == 24 && c.vision_width == 1024 &&
      c.vision_patch_size == 14 && c.transformer_width == 768 && c.transformer_layers == 12 && c.transformer_heads == 12 &&
      c.vision_heads == 16 && c.context_length == 77 && c.vocab_size == 49408)
    return "ViT-L/14";
  return fmt::format("ViT-{}x{}/{}@{}-text{}x{}-d{}", c.vision_width, c.vision_layers, c.vision_patch_size,
                     c.image_resolution, c.transformer_width, c.transformer_layers, c.embed_dim);
}

json read_json_file(const fs::path& p) {
  std::ifstream f(p);
  if (!f) fail("cannot open '{}'", p.string());
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    fail("'{}' is not valid JSON: {}", p.string(), e.what());
  }
}
}  // namespace

ClipModel ClipModel::from_state_dict(const formats::StateDict& state, const ClipConfig& config, torch::Device device,
                                     torch::Dtype dtype, const std::string& source, ClipParts parts) {
  config.validate();
  if (device.is_cpu() && dtype == torch::kFloat16)
    fail("CLIP: float16 needs a CUDA device (LibTorch has no CPU half matmul); use bf16 or fp32 on the CPU");
  formats::StateDict sd;
  for (auto& [k, v] : state)
    if (k != "input_resolution" && k != "context_length" && k != "vocab_size") sd.emplace(k, v);
  auto impl = std::make_shared<Impl>();
  impl->config = config;
  impl->device = device;
  impl->dtype = dtype;
  const bool vision = parts == ClipParts::All;
  impl->net = std::make_shared<ClipModule>(config, vision);
  formats::LoadOptions opts;
  opts.file = source;
  opts.device = device;
  opts.dtype = dtype;
  impl->identity = arch_name(config) + ":" + fingerprint(sd);  // from the whole file, vision tower included
  if (!vision) {
    int64_t dropped = 0;
    for (auto it = sd.begin(); it != sd.end();)
      if (it->first.rfind("visual.", 0) == 0) {
        dropped += it->second.numel();
        it = sd.erase(it);
      } else {
        ++it;
      }
    spdlog::debug("CLIP '{}': text tower only ({} vision parameters not loaded)", source, dropped);
  }
  formats::load_into_consuming(*impl->net, sd, "", opts);  // releases each source (and its mapped pages)
  impl->net->eval();
  impl->mask = impl->net->attn_mask.to(device, dtype);
  ClipModel m;
  m.impl_ = std::move(impl);
  return m;
}

ClipModel ClipModel::load(const fs::path& weights0, torch::Device device, torch::Dtype dtype, ClipParts parts) {
  fs::path weights = weights0;
  if (fs::is_directory(weights)) {
    for (const char* name : {"model.safetensors", "pytorch_model.bin"})
      if (fs::is_regular_file(weights / name)) {
        weights /= name;
        break;
      }
    if (fs::is_directory(weights)) fail("CLIP: no model.safetensors or pytorch_model.bin in '{}'", weights0.string());
  }
  if (!fs::is_regular_file(weights)) fail("CLIP weights '{}' do not exist", weights.string());
  formats::TensorFile tf = formats::read_tensor_file(weights);
  formats::StateDict sd = std::move(tf.tensors);
  const bool hf = is_hf_layout(sd);
  if (hf) sd = hf_to_openai(sd);

  // Configuration: a JSON file beside the weights, the safetensors metadata, or the shapes.
  std::optional<ClipConfig> cfg;
  const fs::path dir = weights.parent_path();
  for (const fs::path& p : {dir / (weights.stem().string() + "_config.json"), dir / (weights.stem().string() + ".json"),
                            dir / "config.json"}) {
    if (!fs::is_regular_file(p)) continue;
    json j = read_json_file(p);
    if (j.is_object() && (j.contains("text_config") || j.contains("embed_dim"))) {
      try {
        cfg = ClipConfig::from_json(j);
      } catch (const Unsupported&) {
        throw;
      } catch (const Error& e) {
        fail("'{}': {}", p.string(), e.what());
      }
      spdlog::debug("CLIP config from '{}'", p.string());
      break;
    }
  }
  if (!cfg) {
    auto it = tf.metadata.find("config");
    if (it != tf.metadata.end()) {
      try {
        cfg = ClipConfig::from_json(json::parse(it->second));
      } catch (const json::exception& e) {
        fail("'{}': __metadata__ config is not valid JSON: {}", weights.string(), e.what());
      }
      spdlog::debug("CLIP config from the metadata of '{}'", weights.string());
    }
  }
  if (!cfg) {
    cfg = ClipConfig::infer(sd);
    spdlog::debug("CLIP config inferred from the weights of '{}'", weights.string());
  }
  return from_state_dict(sd, *cfg, device, dtype, weights.string(), parts);
}

namespace {
torch::Tensor text_forward(const ClipModel::Impl& impl, const torch::Tensor& tokens0, torch::Tensor* ln_final) {
  const auto& c = impl.config;
  if (tokens0.dim() != 2 || tokens0.size(1) != c.context_length)
    fail("CLIP encode_text: tokens must be [N, {}], got [{}]", c.context_length, fmt::join(tokens0.sizes(), ","));
  auto tokens = tokens0.to(impl.device, torch::kInt64);
  if (tokens.numel() && (tokens.min().item<int64_t>() < 0 || tokens.max().item<int64_t>() >= c.vocab_size))
    fail("CLIP encode_text: token ids must be in [0, {})", c.vocab_size);
  auto& net = *impl.net;
  auto x = net.token_embedding(tokens).to(impl.dtype) + net.positional_embedding.to(impl.dtype);
  x = net.transformer(x, impl.mask);
  x = net.ln_final(x).to(impl.dtype);
  if (ln_final) *ln_final = x;
  auto idx = tokens.argmax(-1);
  auto pooled = x.index({torch::arange(x.size(0), idx.options()), idx});
  return torch::matmul(pooled, net.text_projection);
}

torch::Tensor image_forward(const ClipModel::Impl& impl, const torch::Tensor& pixels, torch::Tensor* ln_post) {
  const auto& c = impl.config;
  if (pixels.dim() != 4 || pixels.size(1) != 3 || pixels.size(2) != c.image_resolution || pixels.size(3) != c.image_resolution)
    fail("CLIP encode_image: pixels must be [N, 3, {}, {}], got [{}]", c.image_resolution, c.image_resolution,
         fmt::join(pixels.sizes(), ","));
  if (!impl.net->visual)
    fail("CLIP {}: loaded without its vision tower (text prompts only), so it cannot embed images", impl.identity);
  return impl.net->visual->forward(pixels.to(impl.device, impl.dtype), ln_post);
}
}  // namespace

torch::Tensor ClipModel::encode_text(const torch::Tensor& tokens, torch::Tensor* ln_final) const {
  torch::NoGradGuard ng;
  return text_forward(*impl_, tokens, ln_final);
}

torch::Tensor ClipModel::encode_image(const torch::Tensor& pixels, torch::Tensor* ln_post) const {
  torch::NoGradGuard ng;
  return image_forward(*impl_, pixels, ln_post);
}

torch::Tensor ClipModel::encode_text_train(const torch::Tensor& tokens) const {
  return text_forward(*impl_, tokens, nullptr);
}

torch::Tensor ClipModel::encode_image_train(const torch::Tensor& pixels) const {
  return image_forward(*impl_, pixels, nullptr);
}

ClipModel ClipModel::create(const ClipConfig& config, torch::Device device) {
  config.validate();
  auto impl = std::make_shared<Impl>();
  impl->config = config;
  impl->device = device;
  impl->net = std::make_shared<ClipModule>(config);
  impl->net->to(device);
  impl->net->train();
  impl->mask = impl->net->attn_mask.to(device);
  impl->identity = arch_name(config) + ":untrained";
  ClipModel m;
  m.impl_ = std::move(impl);
  return m;
}

torch::Tensor ClipModel::logits_per_image(const torch::Tensor& pixels, const torch::Tensor& tokens) const {
  torch::NoGradGuard ng;
  auto img = encode_image(pixels);
  auto txt = encode_text(tokens);
  img = img / img.norm(2, 1, true);
  txt = txt / txt.norm(2, 1, true);
  // (logit_scale.exp() * image_features) @ text_features.t(), in the reference's order.
  return torch::matmul(impl_->net->logit_scale.exp() * img, txt.t());
}

const ClipConfig& ClipModel::config() const { return impl_->config; }
std::string ClipModel::identity() const { return impl_->identity; }
torch::Device ClipModel::device() const { return impl_->device; }
torch::Dtype ClipModel::dtype() const { return impl_->dtype; }
torch::nn::Module& ClipModel::module() const { return *impl_->net; }

}  // namespace rdm::clip
