// Model-selection options shared by `rdm sample` and `rdm sweep` (--model, --config, --clip,
// --vocab, --device, --precision), validators for the sampling values, and the neighbours'
// contact sheet both can write.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/fmt/fmt.h>

#include "rdm/app/model_paths.hpp"
#include "rdm/image/contact_sheet.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/app/pipeline.hpp"
#include "rdm/app/request_checks.hpp"
#include "rdm/retrieval/build.hpp"

namespace rdm::cli {

struct ModelOptions {
  std::string model;   // name under $RDM_MODELS/rdm, folder or file
  std::string config;  // default: beside the checkpoint
  std::string clip;    // default: rdm.json of the model folder, else ViT-L-14
  std::string vocab;   // default: beside the CLIP file
  std::string device = "auto";
  std::string precision = "fp32";

  void add_to(CLI::App* cmd) {
    cmd->add_option("--model", model, "RDM model: name under $RDM_MODELS/rdm (default rdm768x768), folder or file");
    cmd->add_option("--config", config, "latent-diffusion config (default: config.yaml/.json beside the model)");
    cmd->add_option("--clip", clip, "CLIP weights: name under $RDM_MODELS/clip (default ViT-L-14) or file");
    cmd->add_option("--vocab", vocab, "CLIP BPE vocabulary (default: beside the CLIP weights)");
    cmd->add_option("--device", device, "auto | cpu | cuda | cuda:N")->capture_default_str();
    cmd->add_option("--precision", precision, "UNet/autoencoder precision")
        ->check(CLI::IsMember({"fp32", "fp16", "bf16"}))
        ->capture_default_str();
  }
  PipelinePaths paths() const { return resolve_model_paths(model, config, clip, vocab); }
  PipelineOptions options() const { return {device, precision}; }
};

// CLI11 validators applying the rules of request_checks.hpp to option values (usage errors).
// CLI11 puts the option's name before the message already: a leading "<what>: " is dropped.
inline CLI::Validator rule_validator(std::function<void(const std::string&)> rule, const std::string& type,
                                     const std::string& what) {
  return CLI::Validator(
      [rule, what](std::string& value) {
        try {
          rule(value);
        } catch (const Error& e) {
          std::string msg = e.what();
          if (msg.rfind(what + ": ", 0) == 0) msg.erase(0, what.size() + 2);
          return msg;
        }
        return std::string();
      },
      type);
}
inline double parse_number(const std::string& text, const std::string& what) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || !end || *end != 0) fail("{} '{}' is not a number", what, text);
  return v;
}
inline CLI::Validator seed_validator(const std::string& what) {
  return rule_validator([what](const std::string& s) { parse_seed(s, what); }, "UINT64", what);
}
inline CLI::Validator scale_validator(const std::string& what) {
  return rule_validator([what](const std::string& s) { check_scale(parse_number(s, what), what); }, "FLOAT", what);
}
inline CLI::Validator eta_validator(const std::string& what) {
  return rule_validator([what](const std::string& s) { check_eta(parse_number(s, what), "ddim", what); }, "FLOAT", what);
}

// "<db>:<weight>" specs -> resolved folders.
inline std::vector<DatabaseChoice> resolve_databases(const std::vector<std::string>& specs) {
  std::vector<DatabaseChoice> out;
  for (const auto& s : specs) {
    auto [name, weight] = parse_weighted(s);
    out.push_back({resolve_database(name), weight});
  }
  return out;
}

// A contact sheet of an image's neighbours (source images where the database knows them).
inline void write_neighbor_sheet(const std::filesystem::path& out, const std::vector<NeighborRecord>& nbs) {
  std::vector<std::string> images, captions;
  int rank = 1;
  for (const auto& nb : nbs) {
    images.push_back(nb.path);
    captions.push_back(fmt::format("#{} {:.3f}\n{} {}", rank++, nb.score, nb.database, nb.label));
  }
  image::write_contact_sheet(out, images, captions, 128, 0);
}

}  // namespace rdm::cli
