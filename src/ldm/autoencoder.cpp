// Port of ldm/modules/diffusionmodules/model.py (Encoder, Decoder, ResnetBlock, AttnBlock,
// Upsample, Downsample), ldm/models/autoencoder.py (AutoencoderKL, VQModelInterface),
// ldm/modules/distributions/distributions.py and taming's VectorQuantizer2.
#include "rdm/ldm/autoencoder.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>
#include <torch/nn/functional/padding.h>
#include <torch/nn/functional/pooling.h>
#include <torch/nn/functional/upsampling.h>

#include "rdm/runtime/error.hpp"
#include "rdm/runtime/runtime.hpp"

namespace rdm::ldm {
namespace F = torch::nn::functional;
using nlohmann::json;

namespace {

// Normalize(in_channels): GroupNorm(32 groups, eps 1e-6, affine) — the autoencoder's eps.
torch::nn::GroupNorm make_norm(int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(32, channels).eps(1e-6).affine(true));
}

torch::nn::Conv2d make_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
}

// swish, x * sigmoid(x) as the reference computes it, in place on a temporary (same numbers,
// one full-resolution activation less at the peak of a 768x768 decode). Out of place when
// autograd records (training: the product's backward needs h).
torch::Tensor swish_(torch::Tensor h) {
  if (h.requires_grad()) return h * torch::sigmoid(h);
  return h.mul_(torch::sigmoid(h));
}

int64_t get_int(const json& j, const char* key, const char* where) {
  if (!j.is_number_integer()) fail("{}: '{}' must be an integer, got {}", where, key, j.dump());
  return j.get<int64_t>();
}

std::vector<int64_t> get_int_list(const json& j, const char* key, const char* where) {
  if (!j.is_array()) fail("{}: '{}' must be a list of integers, got {}", where, key, j.dump());
  std::vector<int64_t> out;
  for (const auto& v : j) {
    if (!v.is_number_integer()) fail("{}: '{}' must be a list of integers, got {}", where, key, j.dump());
    out.push_back(v.get<int64_t>());
  }
  return out;
}

bool get_bool(const json& j, const char* key, const char* where) {
  if (!j.is_boolean()) fail("{}: '{}' must be true or false, got {}", where, key, j.dump());
  return j.get<bool>();
}

double get_double(const json& j, const char* key, const char* where) {
  if (!j.is_number()) fail("{}: '{}' must be a number, got {}", where, key, j.dump());
  return j.get<double>();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Configuration

DDConfig DDConfig::from_json(const json& j) {
  constexpr const char* where = "first stage ddconfig";
  if (!j.is_object()) fail("{}: expected an object, got {}", where, j.dump());
  DDConfig c;
  bool have_z = false, have_res = false, have_ch = false, have_nrb = false, have_attn = false;
  for (const auto& [key, v] : j.items()) {
    if (key == "double_z") c.double_z = get_bool(v, "double_z", where);
    else if (key == "z_channels") { c.z_channels = get_int(v, "z_channels", where); have_z = true; }
    else if (key == "resolution") { c.resolution = get_int(v, "resolution", where); have_res = true; }
    else if (key == "in_channels") c.in_channels = get_int(v, "in_channels", where);
    else if (key == "out_ch") c.out_ch = get_int(v, "out_ch", where);
    else if (key == "ch") { c.ch = get_int(v, "ch", where); have_ch = true; }
    else if (key == "ch_mult") c.ch_mult = get_int_list(v, "ch_mult", where);
    else if (key == "num_res_blocks") { c.num_res_blocks = get_int(v, "num_res_blocks", where); have_nrb = true; }
    else if (key == "attn_resolutions") { c.attn_resolutions = get_int_list(v, "attn_resolutions", where); have_attn = true; }
    else if (key == "dropout") c.dropout = get_double(v, "dropout", where);
    else if (key == "resamp_with_conv") c.resamp_with_conv = get_bool(v, "resamp_with_conv", where);
    else if (key == "give_pre_end") c.give_pre_end = get_bool(v, "give_pre_end", where);
    else if (key == "tanh_out") c.tanh_out = get_bool(v, "tanh_out", where);
    else if (key == "use_linear_attn") {
      if (get_bool(v, "use_linear_attn", where)) fail("{}: 'use_linear_attn: true' (LinAttnBlock) is not supported", where);
    } else if (key == "attn_type") {
      if (!v.is_string()) fail("{}: 'attn_type' must be a string", where);
      c.attn_type = v.get<std::string>();
      if (c.attn_type != "vanilla" && c.attn_type != "none")
        fail("{}: attn_type '{}' is not supported (vanilla or none)", where, c.attn_type);
    } else {
      fail("{}: unknown key '{}'", where, key);
    }
  }
  if (!have_z) fail("{}: missing 'z_channels'", where);
  if (!have_res) fail("{}: missing 'resolution'", where);
  if (!have_ch) fail("{}: missing 'ch'", where);
  if (!have_nrb) fail("{}: missing 'num_res_blocks'", where);
  if (!have_attn) fail("{}: missing 'attn_resolutions'", where);
  if (c.ch_mult.empty()) fail("{}: 'ch_mult' is empty", where);
  for (int64_t m : c.ch_mult)
    if (m <= 0) fail("{}: 'ch_mult' entries must be positive", where);
  if (c.z_channels <= 0 || c.ch <= 0 || c.resolution <= 0 || c.in_channels <= 0 || c.out_ch <= 0 ||
      c.num_res_blocks < 0)
    fail("{}: channel counts, resolution and num_res_blocks must be positive", where);
  for (int64_t m : c.ch_mult)
    if ((c.ch * m) % 32 != 0) fail("{}: ch*ch_mult = {} is not a multiple of the 32 GroupNorm groups", where, c.ch * m);
  return c;
}

int64_t DDConfig::downsample_factor() const { return int64_t{1} << (ch_mult.size() - 1); }

AutoencoderKind AutoencoderConfig::kind_from_class(const std::string& target) {
  auto dot = target.rfind('.');
  std::string name = dot == std::string::npos ? target : target.substr(dot + 1);
  if (name == "AutoencoderKL") return AutoencoderKind::KL;
  if (name == "VQModelInterface" || name == "VQModel") return AutoencoderKind::VQ;
  fail("first stage: unsupported class '{}' (AutoencoderKL, VQModelInterface)", target);
}

AutoencoderConfig AutoencoderConfig::from_json(const json& p, AutoencoderKind kind) {
  const char* where = kind == AutoencoderKind::KL ? "first stage (AutoencoderKL) params"
                                                   : "first stage (VQModelInterface) params";
  if (!p.is_object()) fail("{}: expected an object", where);
  static const std::set<std::string> ignored = {"lossconfig",  "monitor",         "image_key",
                                                "ckpt_path",   "ignore_keys",     "scheduler_config",
                                                "lr_g_factor", "batch_resize_range"};
  AutoencoderConfig c;
  c.kind = kind;
  bool have_dd = false, have_embed = false, have_n = false;
  for (const auto& [key, v] : p.items()) {
    if (key == "ddconfig") { c.ddconfig = DDConfig::from_json(v); have_dd = true; }
    else if (key == "embed_dim") { c.embed_dim = get_int(v, "embed_dim", where); have_embed = true; }
    else if (key == "n_embed" && kind == AutoencoderKind::VQ) { c.n_embed = get_int(v, "n_embed", where); have_n = true; }
    else if (key == "sane_index_shape" && kind == AutoencoderKind::VQ) get_bool(v, "sane_index_shape", where);
    else if (key == "remap" && kind == AutoencoderKind::VQ) {
      if (!v.is_null()) fail("{}: 'remap' (index remapping) is not supported", where);
    } else if (key == "use_ema" && kind == AutoencoderKind::VQ) {
      if (get_bool(v, "use_ema", where)) fail("{}: 'use_ema: true' is not supported for the first stage", where);
    } else if (key == "colorize_nlabels") {
      if (!v.is_null()) fail("{}: 'colorize_nlabels' is not supported", where);
    } else if (ignored.count(key)) {
      // training-only option
    } else {
      fail("{}: unknown key '{}'", where, key);
    }
  }
  if (!have_dd) fail("{}: missing 'ddconfig'", where);
  if (!have_embed) fail("{}: missing 'embed_dim'", where);
  if (c.embed_dim <= 0) fail("{}: 'embed_dim' must be positive", where);
  if (kind == AutoencoderKind::KL) {
    if (!c.ddconfig.double_z) fail("{}: AutoencoderKL needs ddconfig.double_z = true", where);
  } else {
    if (!have_n) fail("{}: missing 'n_embed'", where);
    if (c.n_embed <= 0) fail("{}: 'n_embed' must be positive", where);
    if (c.ddconfig.double_z)
      fail("{}: VQModel with ddconfig.double_z = true does not fit its quant_conv (z_channels -> embed_dim)", where);
  }
  return c;
}

AutoencoderConfig AutoencoderConfig::from_target_json(const json& cfg) {
  if (!cfg.is_object() || !cfg.contains("target") || !cfg.at("target").is_string())
    fail("first_stage_config: expected an object with a string 'target'");
  for (const auto& [key, v] : cfg.items())
    if (key != "target" && key != "params") fail("first_stage_config: unknown key '{}'", key);
  if (!cfg.contains("params")) fail("first_stage_config: missing 'params'");
  return from_json(cfg.at("params"), kind_from_class(cfg.at("target").get<std::string>()));
}

// ---------------------------------------------------------------------------------------------
// Building blocks

ResnetBlockImpl::ResnetBlockImpl(int64_t in, int64_t out) : in_channels(in), out_channels(out) {
  norm1 = register_module("norm1", make_norm(in));
  conv1 = register_module("conv1", make_conv(in, out, 3, 1, 1));
  norm2 = register_module("norm2", make_norm(out));
  conv2 = register_module("conv2", make_conv(out, out, 3, 1, 1));
  if (in != out) nin_shortcut = register_module("nin_shortcut", make_conv(in, out, 1, 1, 0));
}

torch::Tensor ResnetBlockImpl::forward(const torch::Tensor& x) {
  auto h = conv1(swish_(norm1(x)));
  h = conv2(swish_(norm2(h)));  // dropout: identity at inference
  // x + h (addition commutes exactly), accumulated into the temporary h
  if (nin_shortcut) return h.add_(nin_shortcut(x));
  return h.add_(x);
}

AttnBlockImpl::AttnBlockImpl(int64_t c) : in_channels(c) {
  norm = register_module("norm", make_norm(c));
  q = register_module("q", make_conv(c, c, 1, 1, 0));
  k = register_module("k", make_conv(c, c, 1, 1, 0));
  v = register_module("v", make_conv(c, c, 1, 1, 0));
  proj_out = register_module("proj_out", make_conv(c, c, 1, 1, 0));
}

torch::Tensor AttnBlockImpl::forward(const torch::Tensor& x) {
  auto h_ = norm(x);
  auto qq = q(h_), kk = k(h_), vv = v(h_);
  const int64_t b = qq.size(0), c = qq.size(1), h = qq.size(2), w = qq.size(3);
  qq = qq.reshape({b, c, h * w}).permute({0, 2, 1});  // b,hw,c
  kk = kk.reshape({b, c, h * w});                     // b,c,hw
  auto w_ = torch::bmm(qq, kk);                       // b,hw,hw
  w_.mul_(std::pow(static_cast<double>(c), -0.5));
  w_ = torch::softmax(w_, 2);
  vv = vv.reshape({b, c, h * w});
  w_ = w_.permute({0, 2, 1});
  h_ = torch::bmm(vv, w_).reshape({b, c, h, w});
  return proj_out(h_).add_(x);  // x + proj_out(h_)
}

UpsampleImpl::UpsampleImpl(int64_t c, bool with_conv) {
  if (with_conv) conv = register_module("conv", make_conv(c, c, 3, 1, 1));
}

torch::Tensor UpsampleImpl::forward(const torch::Tensor& x) {
  auto h = F::interpolate(x, F::InterpolateFuncOptions()
                                 .scale_factor(std::vector<double>{2.0, 2.0})
                                 .mode(torch::kNearest));
  return conv ? conv(h) : h;
}

DownsampleImpl::DownsampleImpl(int64_t c, bool with_conv) {
  if (with_conv) conv = register_module("conv", make_conv(c, c, 3, 2, 0));
}

torch::Tensor DownsampleImpl::forward(const torch::Tensor& x) {
  if (conv) return conv(F::pad(x, F::PadFuncOptions({0, 1, 0, 1}).mode(torch::kConstant).value(0)));
  return F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2));
}

AeMidImpl::AeMidImpl(int64_t c, bool with_attn) {
  block_1 = register_module("block_1", ResnetBlock(c, c));
  if (with_attn) attn_1 = register_module("attn_1", AttnBlock(c));
  block_2 = register_module("block_2", ResnetBlock(c, c));
}

torch::Tensor AeMidImpl::forward(torch::Tensor h) {
  h = block_1(h);
  if (attn_1) h = attn_1(h);
  return block_2(h);
}

// ---------------------------------------------------------------------------------------------
// Encoder / Decoder

EncoderImpl::EncoderImpl(const DDConfig& c) : cfg(c) {
  const bool vanilla = cfg.attn_type == "vanilla";
  const auto has_attn = [&](int64_t res) {
    return vanilla && std::find(cfg.attn_resolutions.begin(), cfg.attn_resolutions.end(), res) !=
                          cfg.attn_resolutions.end();
  };
  const int64_t n = static_cast<int64_t>(cfg.ch_mult.size());
  conv_in = register_module("conv_in", make_conv(cfg.in_channels, cfg.ch, 3, 1, 1));
  down = register_module("down", torch::nn::ModuleList());
  int64_t curr_res = cfg.resolution;
  int64_t block_in = cfg.ch;
  for (int64_t i = 0; i < n; ++i) {
    auto level = AeLevel();
    block_in = cfg.ch * (i == 0 ? 1 : cfg.ch_mult[i - 1]);
    const int64_t block_out = cfg.ch * cfg.ch_mult[i];
    level->block = level->register_module("block", torch::nn::ModuleList());
    level->attn = level->register_module("attn", torch::nn::ModuleList());
    for (int64_t b = 0; b < cfg.num_res_blocks; ++b) {
      level->blocks.push_back(ResnetBlock(block_in, block_out));
      level->block->push_back(level->blocks.back());
      block_in = block_out;
      if (has_attn(curr_res)) {
        level->attns.push_back(AttnBlock(block_in));
        level->attn->push_back(level->attns.back());
      }
    }
    if (i != n - 1) {
      level->downsample = level->register_module("downsample", Downsample(block_in, cfg.resamp_with_conv));
      curr_res /= 2;
    }
    down->push_back(level);
    levels.push_back(level);
  }
  mid = register_module("mid", AeMid(block_in, vanilla));
  norm_out = register_module("norm_out", make_norm(block_in));
  conv_out = register_module(
      "conv_out", make_conv(block_in, cfg.double_z ? 2 * cfg.z_channels : cfg.z_channels, 3, 1, 1));
}

torch::Tensor EncoderImpl::forward(const torch::Tensor& x) {
  auto h = conv_in(channels_last() ? x.contiguous(at::MemoryFormat::ChannelsLast) : x);  // rdm/runtime.hpp
  const int64_t n = static_cast<int64_t>(levels.size());
  for (int64_t i = 0; i < n; ++i) {
    auto& level = levels[i];
    for (size_t b = 0; b < level->blocks.size(); ++b) {
      h = level->blocks[b](h);
      if (!level->attns.empty()) h = level->attns[b](h);
    }
    if (i != n - 1) h = level->downsample(h);
  }
  h = mid(h);
  return conv_out(swish_(norm_out(h))).contiguous();
}

DecoderImpl::DecoderImpl(const DDConfig& c) : cfg(c) {
  const bool vanilla = cfg.attn_type == "vanilla";
  const auto has_attn = [&](int64_t res) {
    return vanilla && std::find(cfg.attn_resolutions.begin(), cfg.attn_resolutions.end(), res) !=
                          cfg.attn_resolutions.end();
  };
  const int64_t n = static_cast<int64_t>(cfg.ch_mult.size());
  int64_t block_in = cfg.ch * cfg.ch_mult[n - 1];
  int64_t curr_res = cfg.resolution >> (n - 1);
  conv_in = register_module("conv_in", make_conv(cfg.z_channels, block_in, 3, 1, 1));
  mid = register_module("mid", AeMid(block_in, vanilla));
  // Built from the last level down to 0 (as the reference), registered in index order.
  levels.resize(n, AeLevel(nullptr));
  for (int64_t i = n - 1; i >= 0; --i) {
    auto level = AeLevel();
    const int64_t block_out = cfg.ch * cfg.ch_mult[i];
    level->block = level->register_module("block", torch::nn::ModuleList());
    level->attn = level->register_module("attn", torch::nn::ModuleList());
    for (int64_t b = 0; b < cfg.num_res_blocks + 1; ++b) {
      level->blocks.push_back(ResnetBlock(block_in, block_out));
      level->block->push_back(level->blocks.back());
      block_in = block_out;
      if (has_attn(curr_res)) {
        level->attns.push_back(AttnBlock(block_in));
        level->attn->push_back(level->attns.back());
      }
    }
    if (i != 0) {
      level->upsample = level->register_module("upsample", Upsample(block_in, cfg.resamp_with_conv));
      curr_res *= 2;
    }
    levels[i] = level;
  }
  up = register_module("up", torch::nn::ModuleList());
  for (auto& level : levels) up->push_back(level);
  norm_out = register_module("norm_out", make_norm(block_in));
  conv_out = register_module("conv_out", make_conv(block_in, cfg.out_ch, 3, 1, 1));
}

torch::Tensor DecoderImpl::forward(const torch::Tensor& z) {
  auto h = conv_in(channels_last() ? z.contiguous(at::MemoryFormat::ChannelsLast) : z);  // rdm/runtime.hpp
  h = mid(h);
  for (int64_t i = static_cast<int64_t>(levels.size()) - 1; i >= 0; --i) {
    auto& level = levels[i];
    for (size_t b = 0; b < level->blocks.size(); ++b) {
      h = level->blocks[b](h);
      if (!level->attns.empty()) h = level->attns[b](h);
    }
    if (i != 0) h = level->upsample(h);
  }
  if (cfg.give_pre_end) return h.contiguous();
  h = conv_out(swish_(norm_out(h)));
  if (cfg.tanh_out) h = torch::tanh(h);
  return h.contiguous();
}

// ---------------------------------------------------------------------------------------------
// VectorQuantizer2

VectorQuantizer2Impl::VectorQuantizer2Impl(int64_t n, int64_t d, double b, bool leg)
    : n_e(n), e_dim(d), beta(b), legacy(leg) {
  embedding = register_module("embedding", torch::nn::Embedding(n_e, e_dim));
}

QuantizeResult VectorQuantizer2Impl::forward(const torch::Tensor& z_in) {
  TORCH_CHECK(z_in.dim() == 4 && z_in.size(1) == e_dim, "VectorQuantizer2: expected [B, ", e_dim,
              ", H, W], got ", z_in.sizes());
  auto z = z_in.permute({0, 2, 3, 1}).contiguous();  // b h w c
  auto zf = z.view({-1, e_dim});
  const auto& w = embedding->weight;
  // (z - e)^2 = z^2 + e^2 - 2 z.e, in the reference's order of operations.
  auto d = torch::sum(zf.pow(2), 1, /*keepdim=*/true) + torch::sum(w.pow(2), 1) -
           2 * torch::matmul(zf, w.t());
  auto idx = torch::argmin(d, 1);
  auto z_q = embedding(idx).view(z.sizes());
  torch::Tensor loss;
  auto diff = torch::mean((z_q - z).pow(2));
  // legacy: mean((z_q.detach()-z)^2) + beta*mean((z_q - z.detach())^2); otherwise beta first.
  // Both means are the same number in the forward pass.
  loss = legacy ? diff + beta * diff : beta * diff + diff;
  z_q = z + (z_q - z);
  z_q = z_q.permute({0, 3, 1, 2}).contiguous();
  return {z_q, loss, idx.view({z.size(0), z.size(1), z.size(2)})};
}

torch::Tensor VectorQuantizer2Impl::get_codebook_entry(const torch::Tensor& indices) {
  TORCH_CHECK(indices.dim() == 3, "get_codebook_entry: expected int64 [B, H, W] indices");
  return embedding(indices).permute({0, 3, 1, 2}).contiguous();
}

// ---------------------------------------------------------------------------------------------
// Autoencoders

DiagonalGaussian::DiagonalGaussian(const torch::Tensor& moments) {
  auto parts = torch::chunk(moments, 2, 1);
  mean = parts[0];
  logvar = torch::clamp(parts[1], -30.0, 20.0);
  std = torch::exp(0.5 * logvar);
  var = torch::exp(logvar);
}

torch::Tensor DiagonalGaussian::sample(c10::optional<torch::Generator> gen) const {
  return mean + std * torch::randn(mean.sizes(), gen, mean.options());
}

AutoencoderKLImpl::AutoencoderKLImpl(const AutoencoderConfig& c, bool with_encoder) : cfg(c) {
  if (cfg.kind != AutoencoderKind::KL) fail("AutoencoderKL: config is not a KL autoencoder");
  const auto& dd = cfg.ddconfig;
  if (with_encoder) encoder = register_module("encoder", Encoder(dd));
  decoder = register_module("decoder", Decoder(dd));
  if (with_encoder)
    quant_conv = register_module("quant_conv", make_conv(2 * dd.z_channels, 2 * cfg.embed_dim, 1, 1, 0));
  post_quant_conv = register_module("post_quant_conv", make_conv(cfg.embed_dim, dd.z_channels, 1, 1, 0));
}

torch::Tensor AutoencoderKLImpl::encode(const torch::Tensor& x) {
  if (!encoder) fail("AutoencoderKL: built without encoder (decode-only)");
  return quant_conv(encoder(x));
}

torch::Tensor AutoencoderKLImpl::decode(const torch::Tensor& z) { return decoder(post_quant_conv(z)); }

VQModelInterfaceImpl::VQModelInterfaceImpl(const AutoencoderConfig& c, bool with_encoder) : cfg(c) {
  if (cfg.kind != AutoencoderKind::VQ) fail("VQModelInterface: config is not a VQ autoencoder");
  const auto& dd = cfg.ddconfig;
  if (with_encoder) encoder = register_module("encoder", Encoder(dd));
  decoder = register_module("decoder", Decoder(dd));
  quantize = register_module("quantize", VectorQuantizer2(cfg.n_embed, cfg.embed_dim, cfg.beta, cfg.legacy));
  if (with_encoder) quant_conv = register_module("quant_conv", make_conv(dd.z_channels, cfg.embed_dim, 1, 1, 0));
  post_quant_conv = register_module("post_quant_conv", make_conv(cfg.embed_dim, dd.z_channels, 1, 1, 0));
}

torch::Tensor VQModelInterfaceImpl::encode(const torch::Tensor& x) {
  if (!encoder) fail("VQModelInterface: built without encoder (decode-only)");
  return quant_conv(encoder(x));
}

QuantizeResult VQModelInterfaceImpl::encode_quantized(const torch::Tensor& x) { return quantize(encode(x)); }

torch::Tensor VQModelInterfaceImpl::decode(const torch::Tensor& h, bool force_not_quantize) {
  auto quant = force_not_quantize ? h : quantize(h).quant;
  return decoder(post_quant_conv(quant));
}

FirstStage FirstStage::create(const AutoencoderConfig& cfg, bool with_encoder) {
  FirstStage fs;
  fs.cfg_ = cfg;
  fs.with_encoder_ = with_encoder;
  if (cfg.kind == AutoencoderKind::KL) fs.kl = AutoencoderKL(cfg, with_encoder);
  else fs.vq = VQModelInterface(cfg, with_encoder);
  return fs;
}

torch::nn::Module& FirstStage::module() {
  if (kl) return *kl;
  if (vq) return *vq;
  fail("first stage: not created");
}

std::shared_ptr<torch::nn::Module> FirstStage::module_ptr() const {
  if (kl) return kl.ptr();
  if (vq) return vq.ptr();
  return nullptr;
}

torch::Tensor FirstStage::decode(const torch::Tensor& z, bool force_not_quantize) {
  if (kl) return kl->decode(z);
  if (vq) return vq->decode(z, force_not_quantize);
  fail("first stage: not created");
}

torch::Tensor FirstStage::encode_mode(const torch::Tensor& x) {
  if (kl) return DiagonalGaussian(kl->encode(x)).mode();
  if (vq) return vq->encode(x);
  fail("first stage: not created");
}

bool is_encoder_key(const std::string& key) {
  return key.rfind("encoder.", 0) == 0 || key.rfind("quant_conv.", 0) == 0;
}

}  // namespace rdm::ldm
