// UNetConfig: the constructor arguments of UNetModel (ldm/modules/diffusionmodules/openaimodel.py),
// read strictly from a config's `unet_config.params`, with the reference defaults and asserts.
#include <algorithm>

#include "ldm/config_keys.hpp"
#include "rdm/ldm/unet.hpp"

namespace rdm::ldm {

UNetConfig UNetConfig::from_json(const nlohmann::json& params, const std::string& where) {
  config_detail::ObjectReader r(params, where);
  UNetConfig c;
  // Required positional arguments of UNetModel.__init__ (image_size is unused for shapes).
  c.image_size = r.required<int64_t>("image_size");
  c.in_channels = r.required<int64_t>("in_channels");
  c.model_channels = r.required<int64_t>("model_channels");
  c.out_channels = r.required<int64_t>("out_channels");
  c.num_res_blocks = r.required<int64_t>("num_res_blocks");
  c.attention_resolutions = r.required<std::vector<int64_t>>("attention_resolutions");
  r.get("dropout", c.dropout);
  r.get("channel_mult", c.channel_mult);
  r.get("conv_resample", c.conv_resample);
  r.get("dims", c.dims);
  r.get("use_checkpoint", c.use_checkpoint);  // gradient checkpointing: no effect at inference
  r.get("num_heads", c.num_heads);
  r.get("num_head_channels", c.num_head_channels);
  r.get("num_heads_upsample", c.num_heads_upsample);
  r.get("use_scale_shift_norm", c.use_scale_shift_norm);
  r.get("resblock_updown", c.resblock_updown);
  r.get("use_new_attention_order", c.use_new_attention_order);
  r.get("use_spatial_transformer", c.use_spatial_transformer);
  r.get("transformer_depth", c.transformer_depth);
  if (const auto* v = r.find("context_dim")) {
    if (v->is_array()) fail("config: '{}' as a list is not supported (one context width per model)", r.path("context_dim"));
    if (!v->is_null()) c.context_dim = config_detail::ObjectReader::as_int(*v, r.path("context_dim"));
  }
  r.get("legacy", c.legacy);
  // Options that change the model's inputs or precision in ways this port does not implement.
  if (const auto* v = r.find("num_classes"); v && !v->is_null())
    throw Unsupported(fmt::format("config: '{}' (class-conditional UNet) is not supported", r.path("num_classes")));
  if (const auto* v = r.find("n_embed"); v && !v->is_null())
    throw Unsupported(fmt::format("config: '{}' (codebook-id prediction) is not supported", r.path("n_embed")));
  if (const auto* v = r.find("use_fp16"); v && !(v->is_boolean() && !v->get<bool>()))
    throw Unsupported(fmt::format("config: '{}' must be false (use the --precision option instead)", r.path("use_fp16")));
  r.finish();
  c.validate(where);
  return c;
}

void UNetConfig::validate(const std::string& where) const {
  auto key = [&](const char* k) { return where.empty() ? std::string(k) : where + "." + k; };
  if (dims != 2) throw Unsupported(fmt::format("config: '{}' = {} is not supported (only 2-d UNets)", key("dims"), dims));
  if (in_channels <= 0) fail("config: '{}' must be positive", key("in_channels"));
  if (out_channels <= 0) fail("config: '{}' must be positive", key("out_channels"));
  if (model_channels <= 0) fail("config: '{}' must be positive", key("model_channels"));
  if (num_res_blocks <= 0) fail("config: '{}' must be positive", key("num_res_blocks"));
  if (channel_mult.empty()) fail("config: '{}' must not be empty", key("channel_mult"));
  for (int64_t m : channel_mult)
    if (m <= 0) fail("config: '{}' entries must be positive", key("channel_mult"));
  if (transformer_depth <= 0) fail("config: '{}' must be positive", key("transformer_depth"));
  // Every GroupNorm32 has 32 groups.
  for (int64_t m : channel_mult)
    if ((m * model_channels) % 32 != 0)
      fail("config: '{}' = {} times channel_mult {} is not divisible by 32 (GroupNorm groups)", key("model_channels"),
           model_channels, m);
  if (model_channels % 32 != 0) fail("config: '{}' = {} is not divisible by 32 (GroupNorm groups)", key("model_channels"), model_channels);
  if (use_spatial_transformer && !context_dim)
    fail("config: '{}' is true but '{}' is not set", key("use_spatial_transformer"), key("context_dim"));
  if (context_dim && !use_spatial_transformer)
    fail("config: '{}' is set but '{}' is false", key("context_dim"), key("use_spatial_transformer"));
  if (context_dim && *context_dim <= 0) fail("config: '{}' must be positive", key("context_dim"));
  if (num_heads == -1 && num_head_channels == -1)
    fail("config: either '{}' or '{}' has to be set", key("num_heads"), key("num_head_channels"));
  if (num_heads != -1 && num_heads <= 0) fail("config: '{}' must be positive or -1", key("num_heads"));
  if (num_head_channels != -1 && num_head_channels <= 0) fail("config: '{}' must be positive or -1", key("num_head_channels"));
  if (num_heads_upsample != -1 && num_heads_upsample <= 0)
    fail("config: '{}' must be positive or -1", key("num_heads_upsample"));
  // Head layouts at every level with attention (and the middle block) must be realisable.
  int64_t ds = 1;
  std::vector<int64_t> chans;
  for (size_t level = 0; level < channel_mult.size(); ++level) {
    if (std::count(attention_resolutions.begin(), attention_resolutions.end(), ds)) chans.push_back(channel_mult[level] * model_channels);
    ds *= 2;
  }
  chans.push_back(channel_mult.back() * model_channels);
  for (int64_t ch : chans)
    for (bool out : {false, true}) {
      const HeadLayout hl = head_layout(*this, ch, out);
      if (hl.heads <= 0 || hl.dim_head <= 0)
        fail("config: {} channels cannot be split into heads (num_heads {}, num_head_channels {}) in '{}'", ch,
             num_heads, num_head_channels, where);
      if (!use_spatial_transformer && hl.heads * hl.dim_head != ch)
        fail("config: {} channels are not divisible into {} heads in '{}'", ch, hl.heads, where);
    }
}

}  // namespace rdm::ldm
