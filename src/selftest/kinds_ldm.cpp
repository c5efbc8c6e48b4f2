// Selftest kinds of the latent-diffusion networks: unet, ldm_apply_model and the first-stage
// autoencoders (KL encode/decode, VQ encode/decode). Everything (configs, weights, tensor names,
// parameters) comes from the case; nothing about a golden set is hard-coded.
#include <torch/torch.h>

#include "rdm/runtime/error.hpp"
#include "rdm/formats/state_dict.hpp"
#include "rdm/ldm/autoencoder.hpp"
#include "rdm/ldm/latent_diffusion.hpp"
#include "rdm/ldm/unet.hpp"
#include "selftest/kinds.hpp"

namespace rdm::selftest {

namespace {

// The networks of these kinds compute in float32 or float64 (float16/bfloat16 cases are skipped
// as unsupported); float32 cases run in the target's precision (--precision).
torch::Dtype compute_dtype(const Case& c) {
  const std::string s = c.j().at("model").value("compute_dtype", std::string("float32"));
  if (s != "float32" && s != "float64")
    throw Unsupported(fmt::format("case '{}': compute_dtype '{}' is not supported", c.id(), s));
  return c.compute_dtype();
}

formats::LoadOptions load_options(const Case& c, const std::string& file) {
  return formats::LoadOptions{file, c.target().device, compute_dtype(c)};
}

bool use_ema(const Case& c) { return c.j().at("model").value("use_ema", false); }

std::string weights_file(const Case& c) {
  return c.j().at("model").at("weights").at("file").get<std::string>();
}

// The model's state dict with its prefix stripped; with use_ema, the UNet entries of a full
// LatentDiffusion state dict are replaced by their model_ema.* copies first.
formats::StateDict model_state(const Case& c) {
  const json& spec = c.j().at("model").at("weights");
  if (!use_ema(c)) return c.model_weights();
  formats::TensorFile tf = c.read(spec.at("file").get<std::string>());
  if (!formats::has_ema(tf.tensors)) case_fail("case '{}': use_ema but '{}' has no model_ema.* entries", c.id(), weights_file(c));
  formats::apply_ema(tf.tensors);
  const std::string prefix = spec.value("prefix", std::string());
  formats::StateDict out;
  for (auto& [k, v] : tf.tensors)
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = v;
  return out;
}

// Optional outputs: "timestep_embedding" and "module:<path>" from a capture map.
void check_captured(const Case& c, Report& rep, const ldm::Capture& cap) {
  auto it = c.j().find("optional_outputs");
  if (it == c.j().end()) return;
  for (auto o = it->begin(); o != it->end(); ++o) {
    const std::string& role = o.key();
    std::string key = role;
    if (role.rfind("module:", 0) == 0) key = role.substr(7);
    auto t = cap.find(key);
    if (t != cap.end()) rep.check_optional(role, t->second);
  }
}

}  // namespace

void run_unet(const Case& c, Report& rep) {
  torch::InferenceMode guard;
  const torch::Dtype dt = compute_dtype(c);
  const ldm::UNetConfig cfg = ldm::UNetConfig::from_json(c.model_config(), "model.config");
  ldm::UNetModel unet(cfg);
  formats::StateDict state = model_state(c);
  formats::load_into(*unet, state, "", load_options(c, weights_file(c)));
  unet->eval();
  const torch::Tensor x = c.on_device(c.input("x")).to(dt);
  const torch::Tensor t = c.on_device(c.input("timesteps"));
  const torch::Tensor ctx =
      c.j().at("inputs").contains("context") ? c.on_device(c.input("context")).to(dt) : torch::Tensor();
  ldm::Capture cap;
  const bool want_hooks = c.j().contains("optional_outputs");
  torch::Tensor out = unet->forward(x, t, ctx, want_hooks ? &cap : nullptr);
  rep.check("out", out);
  if (want_hooks) check_captured(c, rep, cap);
}

namespace {
// The autoencoder of the case (KL or VQ from model.class), loaded strictly.
ldm::FirstStage load_first_stage(const Case& c, bool with_encoder) {
  const std::string cls = c.j().at("model").at("class").get<std::string>();
  const ldm::AutoencoderConfig cfg = ldm::AutoencoderConfig::from_json(c.model_config(), ldm::AutoencoderConfig::kind_from_class(cls));
  ldm::FirstStage fs = ldm::FirstStage::create(cfg, with_encoder);
  formats::StateDict state = c.model_weights();
  if (!with_encoder)
    for (auto it = state.begin(); it != state.end();) it = ldm::is_encoder_key(it->first) ? state.erase(it) : std::next(it);
  formats::load_into(fs.module(), state, "", load_options(c, weights_file(c)));
  fs.module().eval();
  return fs;
}

ldm::AutoencoderConfig vq_settings(const Case& c, ldm::AutoencoderConfig cfg) {
  const json& p = c.params();
  if (p.contains("quantizer_beta")) cfg.beta = p.at("quantizer_beta").get<double>();
  if (p.contains("quantizer_legacy")) cfg.legacy = p.at("quantizer_legacy").get<bool>();
  if (p.contains("quantizer_remap") && !p.at("quantizer_remap").is_null())
    throw Unsupported("VQ quantizer remap is not supported");
  return cfg;
}
}  // namespace

void run_autoencoder_kl_decode(const Case& c, Report& rep) {
  torch::InferenceMode guard;
  ldm::FirstStage fs = load_first_stage(c, /*with_encoder=*/false);
  rep.check("image", fs.decode(c.on_device(c.input("z")).to(compute_dtype(c))));
}

void run_autoencoder_kl_encode(const Case& c, Report& rep) {
  torch::InferenceMode guard;
  const json& p = c.params();
  if (p.contains("logvar_clamp") && p.at("logvar_clamp").get<std::vector<double>>() != std::vector<double>{-30.0, 20.0})
    throw Unsupported("only the reference's logvar clamp [-30, 20] is implemented");
  ldm::FirstStage fs = load_first_stage(c, /*with_encoder=*/true);
  const torch::Tensor moments = fs.kl->encode(c.on_device(c.input("image")).to(compute_dtype(c)));
  const ldm::DiagonalGaussian post(moments);
  rep.check("moments", moments);
  rep.check("mean", post.mean);
  rep.check("logvar", post.logvar);
  rep.check("std", post.std);
}

void run_autoencoder_vq_encode(const Case& c, Report& rep) {
  torch::InferenceMode guard;
  const torch::Dtype dt = compute_dtype(c);
  const std::string cls = c.j().at("model").at("class").get<std::string>();
  ldm::AutoencoderConfig cfg = ldm::AutoencoderConfig::from_json(c.model_config(), ldm::AutoencoderConfig::kind_from_class(cls));
  cfg = vq_settings(c, cfg);
  ldm::VQModelInterface vq(cfg, /*with_encoder=*/true);
  formats::StateDict state = c.model_weights();
  formats::load_into(*vq, state, "", load_options(c, weights_file(c)));
  vq->eval();
  const torch::Tensor image = c.on_device(c.input("image")).to(dt);
  rep.check("prequant", vq->encode(image));
  const ldm::QuantizeResult q = vq->encode_quantized(image);
  rep.check("indices", q.indices);
  rep.check("quant", q.quant);
  rep.check("emb_loss", q.emb_loss);
}

void run_autoencoder_vq_decode(const Case& c, Report& rep) {
  torch::InferenceMode guard;
  const torch::Dtype dt = compute_dtype(c);
  const std::string cls = c.j().at("model").at("class").get<std::string>();
  ldm::AutoencoderConfig cfg = ldm::AutoencoderConfig::from_json(c.model_config(), ldm::AutoencoderConfig::kind_from_class(cls));
  cfg = vq_settings(c, cfg);
  ldm::VQModelInterface vq(cfg, /*with_encoder=*/false);
  formats::StateDict state = c.model_weights();
  for (auto it = state.begin(); it != state.end();) it = ldm::is_encoder_key(it->first) ? state.erase(it) : std::next(it);
  formats::load_into(*vq, state, "", load_options(c, weights_file(c)));
  vq->eval();
  const bool quantize = c.params().value("quantize", true);
  rep.check("image", vq->decode(c.on_device(c.input("h")).to(dt), /*force_not_quantize=*/!quantize));
}

void run_ldm_apply_model(const Case& c, Report& rep) {
  torch::InferenceMode guard;
  const ldm::LdmConfig cfg = ldm::LdmConfig::from_json(c.model_config(), "model.config");
  const json& spec = c.j().at("model").at("weights");
  const std::string prefix = spec.value("prefix", std::string());
  if (!prefix.empty()) throw Unsupported(fmt::format("ldm_apply_model with weights prefix '{}'", prefix));
  ldm::LoadSpec ls;
  ls.use_ema = use_ema(c);
  ls.dtype = compute_dtype(c);
  ls.device = c.target().device;
  ls.strict_schedule = true;
  formats::TensorFile tf = c.read(weights_file(c));
  if (ls.use_ema && !formats::has_ema(tf.tensors))
    case_fail("case '{}': use_ema but '{}' has no model_ema.* entries", c.id(), weights_file(c));
  const ldm::LatentDiffusion ld = ldm::LatentDiffusion::from_state_dict(std::move(tf.tensors), cfg, ls, weights_file(c));
  rep.check("out", ld.apply_model(c.on_device(c.input("x")), c.on_device(c.input("t")), c.on_device(c.input("c"))));
}
}  // namespace rdm::selftest
