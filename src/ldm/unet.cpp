// Port of ldm/modules/diffusionmodules/openaimodel.py (CompVis latent-diffusion): UNetModel,
// TimestepEmbedSequential, ResBlock, Upsample, Downsample, AttentionBlock, QKVAttention[Legacy];
// timestep_embedding and GroupNorm32 from ldm/modules/diffusionmodules/util.py.
// The config parser (UNetConfig::from_json) lives in unet_config.cpp.
#include "rdm/ldm/unet.hpp"

#include <cmath>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include <torch/torch.h>

#include "rdm/runtime/error.hpp"
#include "rdm/runtime/runtime.hpp"

namespace rdm::ldm {

namespace F = torch::nn::functional;

namespace {
inline void put(Capture* capture, const std::string& path, const std::string& name, const torch::Tensor& t) {
  if (capture) (*capture)[path.empty() ? name : path + "." + name] = t;
}

// GroupNorm32 of the reference: GroupNorm(32, C) with the default eps 1e-5.
torch::nn::GroupNorm normalization(int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(32, channels).eps(1e-5));
}

Conv2d conv3x3(int64_t cin, int64_t cout, int64_t stride = 1) {
  return Conv2d(torch::nn::Conv2dOptions(cin, cout, 3).stride(stride).padding(1));
}

}  // namespace

// ---------------------------------------------------------------------------
HeadLayout head_layout(const UNetConfig& cfg, int64_t ch, bool output_block) {
  int64_t heads, dim_head;
  if (cfg.num_head_channels == -1) {
    heads = cfg.num_heads;
    if (heads <= 0) return {0, 0};
    dim_head = ch / heads;
  } else {
    if (cfg.num_head_channels <= 0) return {0, 0};
    heads = ch / cfg.num_head_channels;
    dim_head = cfg.num_head_channels;
  }
  if (heads <= 0) return {0, 0};
  if (cfg.legacy) dim_head = cfg.use_spatial_transformer ? ch / heads : cfg.num_head_channels;
  if (cfg.use_spatial_transformer) return {heads, dim_head};
  // AttentionBlock(ch, num_heads=heads (num_heads_upsample in output blocks), num_head_channels=dim_head)
  const int64_t nh = output_block ? (cfg.num_heads_upsample == -1 ? cfg.num_heads : cfg.num_heads_upsample) : heads;
  if (dim_head == -1) return nh > 0 ? HeadLayout{nh, ch / nh} : HeadLayout{0, 0};
  if (dim_head <= 0) return {0, 0};
  return {ch / dim_head, dim_head};
}

namespace {
// exp(-log(max_period) * arange(half) / half), computed on the CPU like the reference. On another
// device it is copied once and kept: a copy from host memory per UNet call would make the host
// wait for the device at every sampling step.
torch::Tensor timestep_frequencies(int64_t half, double max_period, const torch::Device& device) {
  auto make = [&] {
    return torch::exp(-std::log(max_period) * torch::arange(0, half, torch::TensorOptions().dtype(torch::kFloat32)) / half);
  };
  if (device.is_cpu()) return make();
  static std::mutex m;
  static std::map<std::tuple<int64_t, double, std::string>, torch::Tensor> cache;
  std::lock_guard<std::mutex> lock(m);
  auto& f = cache[{half, max_period, device.str()}];
  if (!f.defined()) {
    c10::InferenceMode off(false);  // a normal tensor, usable inside and outside inference mode
    f = make().to(device);
  }
  return f;
}
}  // namespace

torch::Tensor timestep_embedding(const torch::Tensor& timesteps, int64_t dim, double max_period) {
  const int64_t half = dim / 2;
  torch::Tensor freqs = timestep_frequencies(half, max_period, timesteps.device());
  torch::Tensor args = timesteps.unsqueeze(1).to(torch::kFloat32) * freqs.unsqueeze(0);
  torch::Tensor emb = torch::cat({torch::cos(args), torch::sin(args)}, -1);
  if (dim % 2) emb = torch::cat({emb, torch::zeros_like(emb.narrow(1, 0, 1))}, -1);
  return emb;
}

namespace unet {

torch::Tensor group_norm32(const torch::Tensor& x, const torch::nn::GroupNorm& norm) {
  const auto& o = norm->options;
  if (x.scalar_type() == torch::kFloat32 && norm->weight.scalar_type() == torch::kFloat32)
    return at::group_norm(x, o.num_groups(), norm->weight, norm->bias, o.eps());
  return at::group_norm(x.to(torch::kFloat32), o.num_groups(), norm->weight.to(torch::kFloat32),
                        norm->bias.to(torch::kFloat32), o.eps())
      .to(x.scalar_type());
}

// ---------------------------------------------------------------------------
UpsampleImpl::UpsampleImpl(int64_t channels, bool use_conv, int64_t out_channels) : channels_(channels) {
  if (out_channels <= 0) out_channels = channels;
  if (use_conv) conv = register_module("conv", conv3x3(channels, out_channels));
}

torch::Tensor UpsampleImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.size(1) == channels_, "Upsample: expected ", channels_, " channels, got ", x.size(1));
  torch::Tensor h = F::interpolate(
      x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
  return conv ? conv->forward(h) : h;
}

DownsampleImpl::DownsampleImpl(int64_t channels, bool use_conv, int64_t out_channels) : channels_(channels) {
  if (out_channels <= 0) out_channels = channels;
  if (use_conv) {
    op = register_module("op", conv3x3(channels, out_channels, 2));
  } else if (out_channels != channels) {
    fail("Downsample without conv cannot change the channel count ({} -> {})", channels, out_channels);
  }
}

torch::Tensor DownsampleImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.size(1) == channels_, "Downsample: expected ", channels_, " channels, got ", x.size(1));
  return op ? op->forward(x) : at::avg_pool2d(x, {2, 2}, {2, 2});
}

// ---------------------------------------------------------------------------
ResBlockImpl::ResBlockImpl(int64_t channels, int64_t emb_channels, int64_t out_channels, bool use_scale_shift_norm,
                           bool up, bool down, std::string path)
    : path_(std::move(path)), use_scale_shift_norm_(use_scale_shift_norm), up_(up), down_(down) {
  if (out_channels <= 0) out_channels = channels;
  in_norm_ = normalization(channels);
  in_conv_ = conv3x3(channels, out_channels);
  in_layers = register_module("in_layers", torch::nn::Sequential(in_norm_, torch::nn::SiLU(), in_conv_));
  emb_linear_ = torch::nn::Linear(emb_channels, use_scale_shift_norm ? 2 * out_channels : out_channels);
  emb_layers = register_module("emb_layers", torch::nn::Sequential(torch::nn::SiLU(), emb_linear_));
  out_norm_ = normalization(out_channels);
  out_conv_ = conv3x3(out_channels, out_channels);
  out_layers = register_module(
      "out_layers", torch::nn::Sequential(out_norm_, torch::nn::SiLU(), torch::nn::Dropout(0.0), out_conv_));
  if (out_channels != channels)
    skip_connection = register_module(
        "skip_connection", Conv2d(torch::nn::Conv2dOptions(channels, out_channels, 1)));
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x0, const torch::Tensor& emb, Capture* capture) {
  torch::Tensor x = x0, h;
  if (up_ || down_) {
    // in_rest -> h_upd, x_upd -> in_conv (Upsample/Downsample without conv)
    h = at::silu(group_norm32(x, in_norm_));
    auto resample = [&](const torch::Tensor& t) {
      return up_ ? F::interpolate(t, F::InterpolateFuncOptions()
                                         .scale_factor(std::vector<double>{2.0, 2.0})
                                         .mode(torch::kNearest))
                 : at::avg_pool2d(t, {2, 2}, {2, 2});
    };
    h = resample(h);
    x = resample(x);
    h = in_conv_->forward(h);
  } else {
    h = in_conv_->forward(at::silu(group_norm32(x, in_norm_)));
    put(capture, path_, "in_layers", h);
  }
  torch::Tensor emb_out = emb_linear_->forward(at::silu(emb)).to(h.scalar_type());
  put(capture, path_, "emb_layers", emb_out);
  while (emb_out.dim() < h.dim()) emb_out = emb_out.unsqueeze(-1);
  if (use_scale_shift_norm_) {
    auto ss = emb_out.chunk(2, 1);
    h = group_norm32(h, out_norm_) * (1 + ss[0]) + ss[1];
    h = out_conv_->forward(at::silu(h));
  } else {
    h = h + emb_out;
    h = out_conv_->forward(at::silu(group_norm32(h, out_norm_)));  // Dropout: identity
  }
  put(capture, path_, "out_layers", h);
  return (skip_connection ? skip_connection->forward(x) : x) + h;
}

// ---------------------------------------------------------------------------
AttentionBlockImpl::AttentionBlockImpl(int64_t channels, int64_t num_heads, int64_t num_head_channels,
                                       bool use_new_attention_order)
    : new_order_(use_new_attention_order) {
  if (num_head_channels == -1) {
    num_heads_ = num_heads;
  } else {
    if (channels % num_head_channels != 0)
      fail("AttentionBlock: {} channels are not divisible by num_head_channels {}", channels, num_head_channels);
    num_heads_ = channels / num_head_channels;
  }
  norm = register_module("norm", normalization(channels));
  qkv = register_module("qkv", torch::nn::Conv1d(torch::nn::Conv1dOptions(channels, channels * 3, 1)));
  proj_out = register_module("proj_out", torch::nn::Conv1d(torch::nn::Conv1dOptions(channels, channels, 1)));
}

torch::Tensor AttentionBlockImpl::forward(const torch::Tensor& x0) {
  const auto shape = x0.sizes().vec();
  const int64_t b = shape[0], c = shape[1];
  torch::Tensor x = x0.reshape({b, c, -1});
  torch::Tensor qkv_t = qkv->forward(group_norm32(x, norm));
  const int64_t width = qkv_t.size(1), length = qkv_t.size(2), nh = num_heads_;
  TORCH_CHECK(width % (3 * nh) == 0, "AttentionBlock: qkv width not divisible by 3*heads");
  const int64_t ch = width / (3 * nh);
  const double scale = 1.0 / std::sqrt(std::sqrt(static_cast<double>(ch)));
  torch::Tensor q, k, v;
  if (new_order_) {  // QKVAttention: split qkv, then heads
    auto parts = qkv_t.chunk(3, 1);
    q = (parts[0] * scale).view({b * nh, ch, length});
    k = (parts[1] * scale).view({b * nh, ch, length});
    v = parts[2].reshape({b * nh, ch, length});
  } else {  // QKVAttentionLegacy: split heads, then qkv
    auto parts = qkv_t.reshape({b * nh, ch * 3, length}).split(ch, 1);
    q = parts[0] * scale;
    k = parts[1] * scale;
    v = parts[2];
  }
  torch::Tensor weight = at::einsum("bct,bcs->bts", {q, k});
  weight = at::softmax(weight.to(torch::kFloat32), -1).to(weight.scalar_type());
  torch::Tensor a = at::einsum("bts,bcs->bct", {weight, v}).reshape({b, -1, length});
  torch::Tensor h = proj_out->forward(a);
  return (x + h).reshape(shape);
}

// ---------------------------------------------------------------------------
void TimestepEmbedSequentialImpl::push_back(std::shared_ptr<torch::nn::Module> m) {
  register_module(std::to_string(layers_.size()), m);
  layers_.push_back(std::move(m));
}

torch::Tensor TimestepEmbedSequentialImpl::forward(const torch::Tensor& x0, const torch::Tensor& emb,
                                                   const torch::Tensor& context, Capture* capture) {
  torch::Tensor x = x0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    torch::nn::Module* m = layers_[i].get();
    if (auto* r = dynamic_cast<ResBlockImpl*>(m)) {
      x = r->forward(x, emb, capture);
    } else if (auto* s = dynamic_cast<SpatialTransformerImpl*>(m)) {
      x = s->forward(x, context, capture);
    } else if (auto* c = dynamic_cast<Conv2dImpl*>(m)) {
      x = c->forward(x);
    } else if (auto* u = dynamic_cast<UpsampleImpl*>(m)) {
      x = u->forward(x);
    } else if (auto* d = dynamic_cast<DownsampleImpl*>(m)) {
      x = d->forward(x);
    } else if (auto* a = dynamic_cast<AttentionBlockImpl*>(m)) {
      x = a->forward(x);
    } else {
      TORCH_CHECK(false, "TimestepEmbedSequential: unexpected layer ", m->name());
    }
    put(capture, path_, std::to_string(i), x);
  }
  if (capture && !path_.empty()) (*capture)[path_] = x;
  return x;
}

}  // namespace unet

// ---------------------------------------------------------------------------
UNetModelImpl::UNetModelImpl(const UNetConfig& cfg) : cfg_(cfg) {
  using namespace unet;
  cfg_.validate();
  const int64_t mc = cfg.model_channels, ted = cfg.time_embed_dim();
  te0_ = torch::nn::Linear(mc, ted);
  te2_ = torch::nn::Linear(ted, ted);
  time_embed = register_module("time_embed", torch::nn::Sequential(te0_, torch::nn::SiLU(), te2_));

  auto has_attn = [&](int64_t ds) {
    for (int64_t r : cfg.attention_resolutions)
      if (r == ds) return true;
    return false;
  };
  const int64_t ctx = cfg.context_dim.value_or(-1);
  auto attention = [&](int64_t ch, bool output_block, const std::string& path) -> std::shared_ptr<torch::nn::Module> {
    const HeadLayout hl = head_layout(cfg, ch, output_block);
    if (cfg.use_spatial_transformer)
      return SpatialTransformer(ch, hl.heads, hl.dim_head, cfg.transformer_depth, ctx, path).ptr();
    return AttentionBlock(ch, hl.heads, hl.dim_head, cfg.use_new_attention_order).ptr();
  };
  auto resblock = [&](int64_t cin, int64_t cout, const std::string& path, bool up = false, bool down = false) {
    return ResBlock(cin, ted, cout, cfg.use_scale_shift_norm, up, down, path).ptr();
  };

  input_blocks = register_module("input_blocks", torch::nn::ModuleList());
  auto add_input = [&](TimestepEmbedSequential b) {
    inputs_.push_back(b);
    input_blocks->push_back(b);
  };
  {
    TimestepEmbedSequential b0("input_blocks.0");
    b0->push_back(Conv2d(torch::nn::Conv2dOptions(cfg.in_channels, mc, 3).padding(1)).ptr());
    add_input(b0);
  }
  std::vector<int64_t> input_block_chans{mc};
  int64_t ch = mc, ds = 1;
  const int64_t levels = static_cast<int64_t>(cfg.channel_mult.size());
  for (int64_t level = 0; level < levels; ++level) {
    const int64_t mult = cfg.channel_mult[level];
    for (int64_t r = 0; r < cfg.num_res_blocks; ++r) {
      const std::string p = "input_blocks." + std::to_string(inputs_.size());
      TimestepEmbedSequential blk(p);
      blk->push_back(resblock(ch, mult * mc, p + ".0"));
      ch = mult * mc;
      if (has_attn(ds)) blk->push_back(attention(ch, false, p + ".1"));
      add_input(blk);
      input_block_chans.push_back(ch);
    }
    if (level != levels - 1) {
      const std::string p = "input_blocks." + std::to_string(inputs_.size());
      TimestepEmbedSequential blk(p);
      if (cfg.resblock_updown)
        blk->push_back(resblock(ch, ch, p + ".0", false, true));
      else
        blk->push_back(Downsample(ch, cfg.conv_resample, ch).ptr());
      add_input(blk);
      input_block_chans.push_back(ch);
      ds *= 2;
    }
  }

  middle_block = register_module("middle_block", TimestepEmbedSequential("middle_block"));
  middle_block->push_back(resblock(ch, ch, "middle_block.0"));
  middle_block->push_back(attention(ch, false, "middle_block.1"));
  middle_block->push_back(resblock(ch, ch, "middle_block.2"));

  output_blocks = register_module("output_blocks", torch::nn::ModuleList());
  for (int64_t level = levels - 1; level >= 0; --level) {
    const int64_t mult = cfg.channel_mult[level];
    for (int64_t i = 0; i <= cfg.num_res_blocks; ++i) {
      const int64_t ich = input_block_chans.back();
      input_block_chans.pop_back();
      const std::string p = "output_blocks." + std::to_string(outputs_.size());
      TimestepEmbedSequential blk(p);
      blk->push_back(resblock(ch + ich, mc * mult, p + ".0"));
      ch = mc * mult;
      if (has_attn(ds)) blk->push_back(attention(ch, true, p + "." + std::to_string(blk->size())));
      if (level && i == cfg.num_res_blocks) {
        const std::string q = p + "." + std::to_string(blk->size());
        if (cfg.resblock_updown)
          blk->push_back(resblock(ch, ch, q, true, false));
        else
          blk->push_back(Upsample(ch, cfg.conv_resample, ch).ptr());
        ds /= 2;
      }
      outputs_.push_back(blk);
      output_blocks->push_back(blk);
    }
  }

  out_norm_ = normalization(ch);
  out_conv_ = Conv2d(torch::nn::Conv2dOptions(mc, cfg.out_channels, 3).padding(1));
  out = register_module("out", torch::nn::Sequential(out_norm_, torch::nn::SiLU(), out_conv_));
}

torch::Tensor UNetModelImpl::forward(const torch::Tensor& x, const torch::Tensor& timesteps,
                                     const torch::Tensor& context, Capture* capture) {
  using unet::group_norm32;
  TORCH_CHECK(x.dim() == 4 && x.size(1) == cfg_.in_channels, "UNetModel: expected x [N, ", cfg_.in_channels,
              ", H, W], got ", x.sizes());
  TORCH_CHECK(timesteps.dim() == 1 && timesteps.size(0) == x.size(0), "UNetModel: expected timesteps [",
              x.size(0), "], got ", timesteps.sizes());
  const int64_t mult = int64_t(1) << cfg_.num_downsamples();
  if (x.size(2) % mult != 0 || x.size(3) % mult != 0)
    fail("UNet input of {}x{} latent pixels: height and width must be multiples of {}", x.size(2), x.size(3), mult);
  if (cfg_.use_spatial_transformer && context.defined())
    TORCH_CHECK(context.dim() == 3 && context.size(0) == x.size(0) && context.size(2) == cfg_.context_dim.value_or(-1),
                "UNetModel: expected context [", x.size(0), ", L, ", cfg_.context_dim.value_or(-1), "], got ",
                context.sizes());

  const torch::Dtype dt = te0_->weight.scalar_type();
  torch::Tensor t_emb = timestep_embedding(timesteps, cfg_.model_channels);
  if (capture) (*capture)["timestep_embedding"] = t_emb;
  torch::Tensor emb = te2_->forward(at::silu(te0_->forward(t_emb.to(dt))));
  if (capture) (*capture)["time_embed"] = emb;
  const torch::Tensor ctx = context.defined() ? context.to(dt) : context;

  std::vector<torch::Tensor> hs;
  hs.reserve(inputs_.size());
  torch::Tensor h = x.to(dt);
  if (channels_last()) h = h.contiguous(at::MemoryFormat::ChannelsLast);  // see rdm/runtime.hpp
  for (auto& blk : inputs_) {
    h = blk->forward(h, emb, ctx, capture);
    hs.push_back(h);
  }
  h = middle_block->forward(h, emb, ctx, capture);
  for (auto& blk : outputs_) {
    h = torch::cat({h, hs.back()}, 1);
    hs.pop_back();
    h = blk->forward(h, emb, ctx, capture);
  }
  h = out_conv_->forward(at::silu(group_norm32(h, out_norm_))).to(x.scalar_type()).contiguous();
  if (capture) (*capture)["out"] = h;
  return h;
}

}  // namespace rdm::ldm
