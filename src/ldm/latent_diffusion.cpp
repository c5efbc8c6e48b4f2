// Port of the inference path of ldm.models.diffusion.ddpm.LatentDiffusion (CompVis
// latent-diffusion): checkpoint loading (EMA via LitEma naming, ldm/modules/ema.py),
// apply_model (DiffusionWrapper, crossattn) and decode_first_stage / encode_first_stage.
#include "rdm/ldm/latent_diffusion.hpp"

#include <chrono>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "rdm/runtime/error.hpp"
#include "rdm/formats/state_dict.hpp"

namespace rdm::ldm {

struct LatentDiffusion::State {
  LdmConfig cfg;
  sampler::Schedule schedule;
  UNetModel unet{nullptr};
  FirstStage first;
  double scale_factor = 1.0;
  LoadSpec spec;
  bool ema = false;
};

namespace {
constexpr const char* kUnetPrefix = "model.diffusion_model.";
constexpr const char* kFirstPrefix = "first_stage_model.";

size_t erase_prefix(formats::StateDict& state, const std::string& prefix) {
  size_t n = 0;
  for (auto it = state.lower_bound(prefix); it != state.end() && it->first.rfind(prefix, 0) == 0;) {
    it = state.erase(it);
    ++n;
  }
  return n;
}
}  // namespace

LatentDiffusion::LatentDiffusion(std::unique_ptr<State> s) : s_(std::move(s)) {}
LatentDiffusion::LatentDiffusion(LatentDiffusion&&) noexcept = default;
LatentDiffusion& LatentDiffusion::operator=(LatentDiffusion&&) noexcept = default;
LatentDiffusion::~LatentDiffusion() = default;

LatentDiffusion LatentDiffusion::load(const std::filesystem::path& ckpt, const LdmConfig& config,
                                      const LoadSpec& spec) {
  const auto t0 = std::chrono::steady_clock::now();
  formats::TensorFile tf = formats::read_tensor_file(ckpt);
  if (auto it = tf.metadata.find("global_step"); it != tf.metadata.end())
    spdlog::info("checkpoint '{}': global_step {}", ckpt.string(), it->second);
  LatentDiffusion ld = from_state_dict(std::move(tf.tensors), config, spec, ckpt.string());
  spdlog::info("loaded latent diffusion model from '{}' ({} UNet weights, {}, {}) in {:.1f} s", ckpt.string(),
               ld.uses_ema() ? "EMA" : "raw", c10::toString(spec.dtype), spec.device.str(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return ld;
}

LatentDiffusion LatentDiffusion::from_state_dict(formats::StateDict&& state_in, const LdmConfig& config,
                                                 const LoadSpec& spec, const std::string& name) {
  torch::NoGradGuard no_grad;
  formats::StateDict state = std::move(state_in);
  auto s = std::make_unique<State>();
  s->cfg = config;
  s->spec = spec;

  // 1. Schedule: recomputed from the config, checked against the checkpoint's buffers.
  s->schedule = sampler::Schedule::make(config.schedule);
  try {
    const int n = s->schedule.check_against(state, "", name);
    spdlog::debug("'{}': {} schedule buffers agree with the config", name, n);
  } catch (const Error& e) {
    if (spec.strict_schedule) throw;
    spdlog::warn("{} (sampling uses the schedule of the config)", e.what());
  }

  // 2. Scale factor: a plain float of the config, or the checkpoint's buffer with scale_by_std.
  s->scale_factor = config.scale_factor;
  if (config.scale_by_std) {
    auto it = state.find("scale_factor");
    if (it == state.end() || it->second.numel() != 1)
      fail("'{}' has no scalar 'scale_factor' entry, which a scale_by_std config needs", name);
    s->scale_factor = it->second.to(torch::kFloat64).item<double>();
    spdlog::info("'{}': scale_factor {} (from the checkpoint, scale_by_std)", name, s->scale_factor);
  }

  // 3. UNet weights: the EMA copies replace the raw ones (knn2img samples inside ema_scope()).
  if (spec.use_ema) {
    if (!formats::has_ema(state)) {
      spdlog::warn("'{}' has no model_ema.* weights: using the raw model.diffusion_model.* weights", name);
    } else {
      size_t unet_keys = 0;
      for (auto it = state.lower_bound(kUnetPrefix); it != state.end() && it->first.rfind(kUnetPrefix, 0) == 0; ++it)
        ++unet_keys;
      const size_t n = formats::apply_ema(state);
      s->ema = true;
      if (n < unet_keys)
        spdlog::warn("'{}': {} of {} UNet tensors have no EMA copy; their raw weights are used", name,
                     unet_keys - n, unet_keys);
      spdlog::debug("'{}': {} UNet tensors taken from model_ema.*", name, n);
    }
  } else {
    erase_prefix(state, "model_ema.");  // release the EMA copy now
  }
  s->unet = UNetModel(config.unet);
  formats::load_into_consuming(*s->unet, state, kUnetPrefix, formats::LoadOptions{name, spec.device, spec.dtype});
  s->unet->eval();

  // 4. First stage: without the encoder unless asked (knn2img only decodes).
  if (!spec.load_encoder) {
    for (auto it = state.lower_bound(kFirstPrefix); it != state.end() && it->first.rfind(kFirstPrefix, 0) == 0;) {
      if (is_encoder_key(it->first.substr(std::char_traits<char>::length(kFirstPrefix)))) it = state.erase(it);
      else ++it;
    }
  }
  s->first = FirstStage::create(config.first_stage, spec.load_encoder);
  formats::load_into_consuming(s->first.module(), state, kFirstPrefix, formats::LoadOptions{name, spec.device, spec.dtype});
  s->first.module().eval();
  if (spec.pack_convolutions) {
    const int64_t n = pack_convolutions_for_inference(*s->unet) + pack_convolutions_for_inference(s->first.module());
    spdlog::debug("'{}': {} convolution weights packed for oneDNN", name, n);
  }

  // What is left: schedule buffers, cond_stage_model.* (Identity: none), logvar, ...
  if (!state.empty()) {
    std::string some;
    int shown = 0;
    for (const auto& kv : state) {
      if (shown++ == 5) break;
      some += (some.empty() ? "" : ", ") + kv.first;
    }
    spdlog::debug("'{}': {} entries not used for sampling ({}{})", name, state.size(), some, state.size() > 5 ? ", ..." : "");
  }
  return LatentDiffusion(std::move(s));
}

torch::Tensor LatentDiffusion::apply_model(const torch::Tensor& x, const torch::Tensor& t,
                                           const torch::Tensor& context) const {
  c10::InferenceMode guard;
  const auto dev = s_->spec.device;
  const auto dt = s_->spec.dtype;
  torch::Tensor ctx;
  if (s_->cfg.conditioning_key == "crossattn") {
    if (!context.defined()) fail("apply_model: this model needs a cross-attention context");
    ctx = context.to(dev, dt);
  }
  if (!s_->unet) fail("apply_model: the UNet was released (one-shot sampling is over)");
  torch::Tensor out = s_->unet->forward(x.to(dev, dt), t.to(dev), ctx);
  return out.to(x.scalar_type());
}

torch::Tensor LatentDiffusion::decode_first_stage(const torch::Tensor& z) const {
  c10::InferenceMode guard;
  // `1. / self.scale_factor * z`: the double factor applied to the float32 latent.
  torch::Tensor zs = (1.0 / s_->scale_factor) * z;
  torch::Tensor img = s_->first.decode(zs.to(s_->spec.device, s_->spec.dtype));
  return img.to(z.scalar_type());
}

torch::Tensor LatentDiffusion::encode_first_stage(const torch::Tensor& x) const {
  c10::InferenceMode guard;
  if (!s_->first.has_encoder()) fail("encode_first_stage: the model was loaded without the encoder (load_encoder)");
  torch::Tensor z = s_->first.encode_mode(x.to(s_->spec.device, s_->spec.dtype));
  return (s_->scale_factor * z).to(x.scalar_type());
}

const LdmConfig& LatentDiffusion::config() const { return s_->cfg; }
const sampler::Schedule& LatentDiffusion::schedule() const { return s_->schedule; }
double LatentDiffusion::scale_factor() const { return s_->scale_factor; }
int64_t LatentDiffusion::latent_channels() const { return s_->cfg.first_stage.latent_channels(); }
int64_t LatentDiffusion::downsample_factor() const { return s_->cfg.downsample_factor(); }
int64_t LatentDiffusion::context_dim() const { return s_->cfg.context_dim(); }
torch::Device LatentDiffusion::device() const { return s_->spec.device; }
torch::Dtype LatentDiffusion::dtype() const { return s_->spec.dtype; }
bool LatentDiffusion::uses_ema() const { return s_->ema; }
UNetModel LatentDiffusion::unet() const { return s_->unet; }
void LatentDiffusion::release_unet() { s_->unet = nullptr; }

}  // namespace rdm::ldm
