// Port of ldm/modules/diffusionmodules/model.py (Encoder, Decoder, ResnetBlock, AttnBlock,
// Upsample, Downsample), ldm/models/autoencoder.py (AutoencoderKL, VQModelInterface),
// ldm/modules/distributions/distributions.py and taming's VectorQuantizer2.
#include "rdm/ldm/autoencoder.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include <nlohmann/json.hpp>
#include <torch/nn/functional/padding.h>
#include <torch/nn/functional/pooling.h>
#include <torch/nn/functional/upsampling.h>

#include "ldm/config_keys.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/runtime/runtime.hpp"

namespace rdm::ldm {
namespace F = torch::nn::functional;
using config_detail::Integers;
using config_detail::ObjectReader;
using nlohmann::json;

namespace {

// Normalize(in_channels): GroupNorm(32 groups, eps 1e-6, affine) — the autoencoder's eps.
torch::nn::GroupNorm make_norm(int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(32, channels).eps(1e-6).affine(true));
}

Conv2d make_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
}

// swish, x * sigmoid(x) as the reference computes it, in place on a temporary (same numbers,
// one full-resolution activation less at the peak of a 768x768 decode). Out of place when
// autograd records (training: the product's backward needs h).
torch::Tensor swish_(torch::Tensor h) {
  if (h.requires_grad()) return h * torch::sigmoid(h);
  return h.mul_(torch::sigmoid(h));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Configuration

DDConfig DDConfig::from_json(const json& j, const std::string& where) {
  ObjectReader r(j, where, Integers::Strict);
  DDConfig c;
  c.z_channels = r.required<int64_t>("z_channels");
  c.resolution = r.required<int64_t>("resolution");
  c.ch = r.required<int64_t>("ch");
  c.num_res_blocks = r.required<int64_t>("num_res_blocks");
  c.attn_resolutions = r.required<std::vector<int64_t>>("attn_resolutions");
  r.get("double_z", c.double_z);
  r.get("in_channels", c.in_channels);
  r.get("out_ch", c.out_ch);
  r.get("ch_mult", c.ch_mult);
  r.get("dropout", c.dropout);
  r.get("resamp_with_conv", c.resamp_with_conv);
  r.get("give_pre_end", c.give_pre_end);
  r.get("tanh_out", c.tanh_out);
  bool linear_attn = false;
  r.get("use_linear_attn", linear_attn);
  if (linear_attn) fail("config: '{}' = true (LinAttnBlock) is not supported", r.path("use_linear_attn"));
  r.get("attn_type", c.attn_type);
  if (c.attn_type != "vanilla" && c.attn_type != "none")
    fail("config: '{}' = '{}' is not supported (vanilla or none)", r.path("attn_type"), c.attn_type);
  r.finish();
  if (c.ch_mult.empty()) fail("config: '{}' is empty", r.path("ch_mult"));
  for (int64_t m : c.ch_mult)
    if (m <= 0) fail("config: '{}' entries must be positive", r.path("ch_mult"));
  for (const auto& [key, value] : {std::pair<const char*, int64_t>{"z_channels", c.z_channels},
                                   {"ch", c.ch}, {"resolution", c.resolution},
                                   {"in_channels", c.in_channels}, {"out_ch", c.out_ch}})
    if (value <= 0) fail("config: '{}' = {} must be positive", r.path(key), value);
  if (c.num_res_blocks < 0) fail("config: '{}' = {} must not be negative", r.path("num_res_blocks"), c.num_res_blocks);
  for (int64_t m : c.ch_mult)
    if ((c.ch * m) % 32 != 0)
      fail("config: '{}' times '{}' = {} is not a multiple of the 32 GroupNorm groups", r.path("ch"),
           r.path("ch_mult"), c.ch * m);
  return c;
}

int64_t DDConfig::downsample_factor() const { return int64_t{1} << (ch_mult.size() - 1); }

AutoencoderKind AutoencoderConfig::kind_from_class(const std::string& target, const std::string& where) {
  auto dot = target.rfind('.');
  std::string name = dot == std::string::npos ? target : target.substr(dot + 1);
  if (name == "AutoencoderKL") return AutoencoderKind::KL;
  if (name == "VQModelInterface" || name == "VQModel") return AutoencoderKind::VQ;
  if (!where.empty())
    fail("config: '{}' = '{}' is not supported (AutoencoderKL, VQModelInterface)", where, target);
  fail("first stage: unsupported class '{}' (AutoencoderKL, VQModelInterface)", target);
}

AutoencoderConfig AutoencoderConfig::from_json(const json& p, AutoencoderKind kind, const std::string& where) {
  ObjectReader r(p, where, Integers::Strict);
  AutoencoderConfig c;
  c.kind = kind;
  const json* dd = r.find("ddconfig");
  if (!dd) fail("config: '{}' is missing", r.path("ddconfig"));
  c.ddconfig = DDConfig::from_json(*dd, r.path("ddconfig"));
  c.embed_dim = r.required<int64_t>("embed_dim");
  if (kind == AutoencoderKind::VQ) {
    c.n_embed = r.required<int64_t>("n_embed");
    bool sane_index_shape = false;  // shape of the returned indices only
    r.get("sane_index_shape", sane_index_shape);
    if (const json* v = r.find("remap"); v && !v->is_null())
      fail("config: '{}' (index remapping) is not supported", r.path("remap"));
    bool use_ema = false;
    r.get("use_ema", use_ema);
    if (use_ema) fail("config: '{}' = true is not supported for the first stage", r.path("use_ema"));
  }
  if (const json* v = r.find("colorize_nlabels"); v && !v->is_null())
    fail("config: '{}' is not supported", r.path("colorize_nlabels"));
  r.ignore({"lossconfig", "monitor", "image_key", "ckpt_path", "ignore_keys", "scheduler_config", "lr_g_factor",
            "batch_resize_range"});  // training only
  r.finish();
  if (c.embed_dim <= 0) fail("config: '{}' = {} must be positive", r.path("embed_dim"), c.embed_dim);
  if (kind == AutoencoderKind::KL) {
    if (!c.ddconfig.double_z) fail("config: '{}' must be true for AutoencoderKL", r.path("ddconfig.double_z"));
  } else {
    if (c.n_embed <= 0) fail("config: '{}' = {} must be positive", r.path("n_embed"), c.n_embed);
    if (c.ddconfig.double_z)
      fail("config: '{}' = true does not fit VQModel's quant_conv (z_channels -> embed_dim)",
           r.path("ddconfig.double_z"));
  }
  return c;
}

AutoencoderConfig AutoencoderConfig::from_target_json(const json& cfg, const std::string& where) {
  ObjectReader r(cfg, where, Integers::Strict);
  const std::string target = r.required<std::string>("target");
  const json* params = r.find("params");
  if (!params) fail("config: '{}' is missing", r.path("params"));
  r.finish();
  return from_json(*params, kind_from_class(target, r.path("target")), r.path("params"));
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

namespace {
// Whether the blocks at resolution `res` carry an AttnBlock (attn_type "vanilla" and res listed
// in attn_resolutions; "none" has none), as Encoder/Decoder in model.py.
bool has_vanilla_attention(const DDConfig& cfg, int64_t res) {
  return cfg.attn_type == "vanilla" &&
         std::find(cfg.attn_resolutions.begin(), cfg.attn_resolutions.end(), res) != cfg.attn_resolutions.end();
}
}  // namespace

EncoderImpl::EncoderImpl(const DDConfig& c) : cfg(c) {
  const auto has_attn = [&](int64_t res) { return has_vanilla_attention(cfg, res); };
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
  mid = register_module("mid", AeMid(block_in, cfg.attn_type == "vanilla"));
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
  const auto has_attn = [&](int64_t res) { return has_vanilla_attention(cfg, res); };
  const int64_t n = static_cast<int64_t>(cfg.ch_mult.size());
  int64_t block_in = cfg.ch * cfg.ch_mult[n - 1];
  int64_t curr_res = cfg.resolution >> (n - 1);
  conv_in = register_module("conv_in", make_conv(cfg.z_channels, block_in, 3, 1, 1));
  mid = register_module("mid", AeMid(block_in, cfg.attn_type == "vanilla"));
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
