// Selftest kinds of the latent-diffusion networks: unet, ldm_apply_model and the first-stage
// autoencoders (KL encode/decode, VQ encode/decode). Everything (configs, weights, tensor names,
// parameters) comes from the case; nothing about a golden set is hard-coded.
#include <torch/torch.h>

#include "rdm/error.hpp"
#include "rdm/io/state_dict.hpp"
#include "rdm/unet.hpp"
#include "selftest/kinds.hpp"

namespace rdm::selftest {

namespace {

torch::Dtype compute_dtype(const Case& c) {
  const json& m = c.j().at("model");
  const std::string s = m.value("compute_dtype", std::string("float32"));
  if (s == "float32") return torch::kFloat32;
  if (s == "float64") return torch::kFloat64;
  throw Unsupported(fmt::format("case '{}': compute_dtype '{}' is not supported", c.id(), s));
}

bool use_ema(const Case& c) { return c.j().at("model").value("use_ema", false); }

std::string weights_file(const Case& c) {
  return c.j().at("model").at("weights").at("file").get<std::string>();
}

// The model's state dict with its prefix stripped; with use_ema, the UNet entries of a full
// LatentDiffusion state dict are replaced by their model_ema.* copies first.
io::StateDict model_state(const Case& c) {
  const json& spec = c.j().at("model").at("weights");
  if (!use_ema(c)) return c.model_weights();
  io::TensorFile tf = io::read_tensor_file(c.path(spec.at("file").get<std::string>()));
  if (!io::has_ema(tf.tensors)) fail("case '{}': use_ema but '{}' has no model_ema.* entries", c.id(), weights_file(c));
  io::apply_ema(tf.tensors);
  const std::string prefix = spec.value("prefix", std::string());
  io::StateDict out;
  for (auto& [k, v] : tf.tensors)
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = v;
  return out;
}

// Optional outputs: "timestep_embedding" and "module:<path>" from a capture map.
void check_captured(const Case& c, Report& rep, const Capture& cap) {
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
  const UNetConfig cfg = UNetConfig::from_json(c.model_config(), "model.config");
  UNetModel unet(cfg);
  io::StateDict state = model_state(c);
  io::load_into(*unet, state, "", io::LoadOptions{weights_file(c), std::nullopt, dt});
  unet->eval();
  const torch::Tensor x = c.input("x").to(dt);
  const torch::Tensor t = c.input("timesteps");
  const torch::Tensor ctx = c.j().at("inputs").contains("context") ? c.input("context").to(dt) : torch::Tensor();
  Capture cap;
  const bool want_hooks = c.j().contains("optional_outputs");
  torch::Tensor out = unet->forward(x, t, ctx, want_hooks ? &cap : nullptr);
  rep.check("out", out);
  if (want_hooks) check_captured(c, rep, cap);
}

void run_autoencoder_kl_decode(const Case&, Report&) { throw Unsupported("kind 'autoencoder_kl_decode' is not implemented yet"); }
void run_autoencoder_kl_encode(const Case&, Report&) { throw Unsupported("kind 'autoencoder_kl_encode' is not implemented yet"); }
void run_autoencoder_vq_encode(const Case&, Report&) { throw Unsupported("kind 'autoencoder_vq_encode' is not implemented yet"); }
void run_autoencoder_vq_decode(const Case&, Report&) { throw Unsupported("kind 'autoencoder_vq_decode' is not implemented yet"); }
void run_ldm_apply_model(const Case&, Report&) { throw Unsupported("kind 'ldm_apply_model' is not implemented yet"); }
}  // namespace rdm::selftest
