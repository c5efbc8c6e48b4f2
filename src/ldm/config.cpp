// LdmConfig: the `model` section of a CompVis latent-diffusion config (e.g.
// configs/retrieval-augmented-diffusion/768x768.yaml), read from YAML (yaml-cpp) or JSON, with
// the constructor defaults of ldm.models.diffusion.ddpm.DDPM / LatentDiffusion (ddpm.py).
#include "rdm/ldm/config.hpp"

#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "ldm/config_keys.hpp"
#include "rdm/ldm/config_document.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::ldm {

using config_detail::ObjectReader;
using nlohmann::json;

namespace {

// YAML -> JSON with the scalar resolution of PyYAML's SafeLoader (YAML 1.1, as OmegaConf loads
// configs; OmegaConf also reads "1e-4" without a dot as a float, so do we). Quoted scalars stay
// strings.
json scalar_to_json(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted
  static const std::regex null_re("^(~|null|Null|NULL|)$");
  static const std::regex true_re("^(true|True|TRUE|yes|Yes|YES|on|On|ON)$");
  static const std::regex false_re("^(false|False|FALSE|no|No|NO|off|Off|OFF)$");
  static const std::regex int_re("^[-+]?(0|[1-9][0-9_]*)$");
  static const std::regex hex_re("^[-+]?0x[0-9a-fA-F_]+$");
  static const std::regex float_re("^[-+]?(\\.[0-9]+|[0-9][0-9_]*(\\.[0-9_]*)?)([eE][-+]?[0-9]+)?$");
  static const std::regex inf_re("^[-+]?\\.(inf|Inf|INF)$");
  static const std::regex nan_re("^\\.(nan|NaN|NAN)$");
  if (std::regex_match(s, null_re)) return nullptr;
  if (std::regex_match(s, true_re)) return true;
  if (std::regex_match(s, false_re)) return false;
  auto strip = [](std::string v) {
    v.erase(std::remove(v.begin(), v.end(), '_'), v.end());
    return v;
  };
  try {
    if (std::regex_match(s, int_re)) return static_cast<int64_t>(std::stoll(strip(s)));
    if (std::regex_match(s, hex_re)) return static_cast<int64_t>(std::stoll(strip(s), nullptr, 16));
    if (std::regex_match(s, float_re)) return std::stod(strip(s));
  } catch (const std::exception&) {
    return s;  // out of range: keep the text, the typed readers report it
  }
  if (std::regex_match(s, inf_re)) return s[0] == '-' ? -INFINITY : INFINITY;
  if (std::regex_match(s, nan_re)) return NAN;
  return s;
}

json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return scalar_to_json(n);
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& e : n) a.push_back(yaml_to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return o;
    }
  }
  return nullptr;
}

json parse_document(const std::string& text, const std::string& name) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {
    try {
      return json::parse(text);
    } catch (const json::exception& e) {
      fail("config '{}' is not valid JSON: {}", name, e.what());
    }
  }
  try {
    return yaml_to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    fail("config '{}' is not valid YAML: {}", name, e.what());
  }
}

// Rethrows an rdm::Error from a sub-parser with the location of the object it parsed.
template <typename F>
auto located(const std::string& where, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Unsupported& e) {
    throw Unsupported(fmt::format("{}: {}", where, e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", where, e.what()));
  }
}

std::string class_name(const std::string& target) {
  const auto dot = target.rfind('.');
  return dot == std::string::npos ? target : target.substr(dot + 1);
}

}  // namespace

LdmConfig LdmConfig::from_json(const json& p, const std::string& where) {
  ObjectReader r(p, where);
  LdmConfig c;

  // Schedule (DDPM.__init__ / register_schedule), parsed by the schedule's owner.
  c.schedule = located(where, [&] { return sampler::ScheduleConfig::from_model_params(p); });
  for (const auto& k : sampler::ScheduleConfig::json_keys()) r.find(k);
  c.parameterization = c.schedule.parameterization;
  if (c.parameterization != "eps")
    throw Unsupported(fmt::format("config: '{}' = '{}' is not supported (the DDIM/PLMS samplers predict eps)",
                                  r.path("parameterization"), c.parameterization));

  // UNet (DiffusionWrapper.diffusion_model).
  {
    const json* u = r.find("unet_config");
    if (!u) fail("config: '{}' is missing", r.path("unet_config"));
    ObjectReader ur(*u, r.path("unet_config"));
    const std::string target = ur.required<std::string>("target");
    if (class_name(target) != "UNetModel")
      throw Unsupported(fmt::format("config: '{}' = '{}' is not supported (UNetModel)", ur.path("target"), target));
    const json* up = ur.find("params");
    if (!up) fail("config: '{}' is missing", ur.path("params"));
    ur.finish();
    c.unet = UNetConfig::from_json(*up, ur.path("params"));
  }

  // First stage.
  {
    const json* f = r.find("first_stage_config");
    if (!f) fail("config: '{}' is missing", r.path("first_stage_config"));
    ObjectReader fr(*f, r.path("first_stage_config"));
    const std::string target = fr.required<std::string>("target");
    const json* fp = fr.find("params");
    if (!fp) fail("config: '{}' is missing", fr.path("params"));
    fr.finish();
    const AutoencoderKind kind = AutoencoderConfig::kind_from_class(target, fr.path("target"));
    c.first_stage = AutoencoderConfig::from_json(*fp, kind, fr.path("params"));
  }

  // Conditioning stage: RDM feeds the (CLIP) context to the UNet as is (torch.nn.Identity).
  bool unconditional = false;
  {
    const json* cs = r.find("cond_stage_config");
    if (!cs) fail("config: '{}' is missing", r.path("cond_stage_config"));
    if (cs->is_string()) {
      const std::string s = cs->get<std::string>();
      if (s == "__is_unconditional__") {
        unconditional = true;
        c.cond_stage_target = s;
      } else {
        throw Unsupported(fmt::format("config: '{}' = '{}' is not supported (torch.nn.Identity or __is_unconditional__)",
                                      r.path("cond_stage_config"), s));
      }
    } else {
      ObjectReader cr(*cs, r.path("cond_stage_config"));
      c.cond_stage_target = cr.required<std::string>("target");
      if (const json* cp = cr.find("params"); cp && !(cp->is_null() || (cp->is_object() && cp->empty())))
        fail("config: '{}' must be empty for torch.nn.Identity", cr.path("params"));
      cr.finish();
      if (c.cond_stage_target != "torch.nn.Identity")
        throw Unsupported(fmt::format("config: '{}' = '{}' is not supported (only torch.nn.Identity: the context "
                                      "is computed outside the model)",
                                      cr.path("target"), c.cond_stage_target));
    }
  }

  // Conditioning key (LatentDiffusion.__init__: None -> 'concat' if concat_mode else 'crossattn';
  // '__is_unconditional__' -> None).
  bool concat_mode = true;
  r.get("concat_mode", concat_mode);
  std::string key;
  if (const json* k = r.find("conditioning_key"); k && !k->is_null()) {
    if (!k->is_string()) fail("config: '{}' must be a string or null", r.path("conditioning_key"));
    key = k->get<std::string>();
  } else {
    key = concat_mode ? "concat" : "crossattn";
  }
  if (unconditional) key.clear();
  if (!key.empty() && key != "crossattn")
    throw Unsupported(fmt::format("config: '{}' = '{}' is not supported (crossattn, or an unconditional model)",
                                  r.has("conditioning_key") ? r.path("conditioning_key") : r.path("concat_mode"), key));
  c.conditioning_key = key;

  r.get("scale_factor", c.scale_factor);
  r.get("scale_by_std", c.scale_by_std);
  r.get("use_ema", c.use_ema);
  c.channels = 3;  // DDPM defaults
  c.image_size = 256;
  r.get("channels", c.channels);
  r.get("image_size", c.image_size);
  int64_t num_timesteps_cond = 1;
  if (const json* v = r.find("num_timesteps_cond"); v && !v->is_null())
    num_timesteps_cond = ObjectReader::as_int(*v, r.path("num_timesteps_cond"));
  if (num_timesteps_cond < 1 || num_timesteps_cond > c.schedule.timesteps)
    fail("config: '{}' = {} must lie in [1, timesteps]", r.path("num_timesteps_cond"), num_timesteps_cond);
  // Training-only settings (data keys, losses, logging, optimiser, initialisation from another
  // checkpoint): accepted and ignored.
  r.ignore({"first_stage_key", "cond_stage_key", "cond_stage_trainable", "cond_stage_forward", "log_every_t",
            "monitor", "loss_type", "ckpt_path", "ignore_keys", "load_only_unet", "clip_denoised",
            "original_elbo_weight", "l_simple_weight", "scheduler_config", "use_positional_encodings",
            "learn_logvar", "logvar_init"});
  r.finish();

  // Consistency of the parts.
  if (!(c.scale_factor > 0)) fail("config: '{}' must be positive", r.path("scale_factor"));
  if (c.unet.in_channels != c.first_stage.embed_dim || c.unet.out_channels != c.first_stage.embed_dim)
    fail("config: '{}' in/out channels {}/{} do not match the first stage's embed_dim {} ('{}')",
         r.path("unet_config.params"), c.unet.in_channels, c.unet.out_channels, c.first_stage.embed_dim,
         r.path("first_stage_config.params.embed_dim"));
  if (c.channels != c.unet.in_channels)
    fail("config: '{}' = {} does not match '{}' = {}", r.path("channels"), c.channels,
         r.path("unet_config.params.in_channels"), c.unet.in_channels);
  if (c.conditioning_key == "crossattn" && !c.unet.context_dim)
    fail("config: conditioning_key crossattn needs '{}'", r.path("unet_config.params.context_dim"));
  return c;
}

LdmConfig LdmConfig::from_string(const std::string& text, const std::string& name) {
  const json doc = parse_document(text, name);
  ObjectReader top(doc, "");
  const json* model = top.find("model");
  if (!model) fail("config '{}': no 'model' section", name);
  top.ignore({"data", "lightning"});  // training data and trainer settings
  try {
    top.finish();
    ObjectReader m(*model, "model");
    const std::string target = m.required<std::string>("target");
    if (class_name(target) != "LatentDiffusion")
      throw Unsupported(fmt::format("config: 'model.target' = '{}' is not supported (LatentDiffusion)", target));
    m.ignore({"base_learning_rate"});
    const json* params = m.find("params");
    if (!params) fail("config: 'model.params' is missing");
    m.finish();
    LdmConfig c = from_json(*params, "model.params");
    c.source = name;
    return c;
  } catch (const Unsupported& e) {
    throw Unsupported(fmt::format("'{}': {}", name, e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("'{}': {}", name, e.what()));
  }
}

LdmConfig LdmConfig::from_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open config '{}'", path.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return from_string(ss.str(), path.string());
}

int64_t LdmConfig::downsample_factor() const { return first_stage.downsample_factor(); }

json parse_config_document(const std::string& text, const std::string& name) { return parse_document(text, name); }

}  // namespace rdm::ldm
