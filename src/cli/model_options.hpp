// The option group of every subcommand that loads a model (sample, sweep, embed, db build,
// db search, demo): --clip, --vocab, --device, --precision and --threads mean the same and
// default the same everywhere (--model and --config where an RDM is loaded); validators for
// the sampling values; database specs to folders.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/fmt/fmt.h>

#include "cli/commands.hpp"
#include "rdm/app/model_paths.hpp"
#include "rdm/runtime/device.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/app/pipeline.hpp"
#include "rdm/app/request_checks.hpp"
#include "rdm/retrieval/build.hpp"

namespace rdm::cli {

struct ModelOptions {
  std::string model;   // name under $RDM_MODELS/rdm, folder or file
  std::string config;  // default: beside the checkpoint
  std::string clip;    // name under $RDM_MODELS/clip, file or folder; default per subcommand (Use)
  std::string vocab;   // default: resolve_vocab (beside the CLIP, $RDM_CLIP_VOCAB, $RDM_MODELS)
  std::string device = "auto";
  std::string precision = "fp32";

  // What a subcommand takes: --model/--config (an RDM), --clip/--vocab (with what --clip
  // defaults to there), --precision (and what it applies to there). --device and --threads
  // always.
  struct Use {
    bool rdm = false;
    bool clip = true;
    bool vocab = true;
    bool precision = true;
    std::string clip_default = "ViT-L-14";
    std::string precision_of = "CLIP";
    std::string threads_note;  // appended to the --threads help
  };
  // sample and sweep: an RDM whose folder may name its CLIP; CLIP itself stays fp32.
  static Use rdm_use() {
    Use u;
    u.rdm = true;
    u.clip_default = "the one named in the model folder's rdm.json, else ViT-L-14";
    u.precision_of = "the UNet and autoencoder (CLIP stays fp32)";
    return u;
  }

  void add_to(CLI::App* cmd, const Use& use) {
    if (use.rdm) {
      cmd->add_option("--model", model, "RDM model: name under $RDM_MODELS/rdm (default rdm768x768), folder or file");
      cmd->add_option("--config", config, "latent-diffusion config (default: config.yaml/.json beside the model)");
    }
    if (use.clip)
      cmd->add_option("--clip", clip, "CLIP weights: name under $RDM_MODELS/clip, file or folder (default: " +
                                          use.clip_default + ")");
    if (use.vocab)
      cmd->add_option("--vocab", vocab,
                      "CLIP BPE vocabulary: bpe_simple_vocab_16e6.txt.gz or a Hugging Face vocab.json (default: "
                      "beside the CLIP weights, else $RDM_CLIP_VOCAB, else in $RDM_MODELS/clip)");
    cmd->add_option("--device", device,
                    "auto | cpu | cuda | cuda:N (auto: the first CUDA device if there is one, else the CPU)")
        ->capture_default_str();
    if (use.precision)
      cmd->add_option("--precision", precision, "Precision of " + use.precision_of)
          ->check(CLI::IsMember(precision_names()))
          ->capture_default_str();
    add_threads_option(cmd, use.threads_note);
  }
  // The files of an RDM (--model, --config, --clip, --vocab).
  PipelinePaths paths() const { return resolve_model_paths(model, config, clip, vocab); }
  PipelineOptions options() const { return {device, precision}; }
  // The CLIP weights of --clip, or `fallback` when it is not given.
  std::filesystem::path clip_path(const std::string& fallback = "ViT-L-14") const {
    return resolve_clip(clip.empty() ? fallback : clip);
  }
  std::filesystem::path vocab_path(const std::filesystem::path& clip_weights) const {
    return resolve_vocab(vocab, clip_weights);
  }
  torch::Device torch_device() const { return parse_device(device); }
  torch::Dtype dtype() const { return parse_precision(precision, parse_device(device)); }
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
  SampleRequest r;
  for (const auto& s : specs) r.databases.push_back(DatabaseChoice::parse(s));
  r.resolve_databases();
  return r.databases;
}

}  // namespace rdm::cli
