// Model-selection options shared by `rdm sample` and `rdm sweep` (--model, --config, --clip,
// --vocab, --device, --precision), and the neighbours' contact sheet both can write.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/fmt/fmt.h>

#include "rdm/model_paths.hpp"
#include "rdm/pipeline.hpp"
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
  retrieval::write_contact_sheet(out, images, captions, 128, 0);
}

}  // namespace rdm::cli
