// The embedded default (`rdm demo`): a tiny RDM, a tiny CLIP, a BPE vocabulary of its own and
// style databases of procedurally generated images, all created deterministically from seeds in
// seconds with no download; then a sample per style with its neighbours' contact sheet and a
// gallery. The tiny model has random weights: it checks that the installation works end to
// end (tokenizer -> CLIP -> FAISS -> UNet -> DDIM -> decoder -> PNG); real images need the real
// weights (scripts/download_models.sh).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rdm/image/png.hpp"
#include "rdm/formats/tensor_file.hpp"
#include "rdm/app/pipeline.hpp"

namespace rdm::demo {

struct DemoOptions {
  std::filesystem::path out = "demo";
  std::string prompt = "a lighthouse in a storm";
  uint64_t seed = 42;
  int steps = 50;
  int64_t k = 19;
  int64_t images_per_style = 24;
  std::string device = "auto";      // rdm/runtime/device.hpp
  std::string precision = "fp32";   // UNet and autoencoder
  bool sample = true;  // false: only create the models and databases
};

struct DemoPaths {
  std::filesystem::path root, models, model_dir, clip, vocab, images, databases, outputs;
  std::vector<std::filesystem::path> style_databases;  // one per style
  static DemoPaths under(const std::filesystem::path& root);
};

struct DemoReport {
  DemoPaths paths;
  std::vector<std::filesystem::path> images;  // sampled PNGs
  std::filesystem::path gallery, contact_sheet;
  std::vector<std::filesystem::path> neighbor_sheets;
  std::map<std::string, double> seconds;
  nlohmann::json to_json() const;
};

// The styles of the demo database and their procedural generators.
const std::vector<std::string>& style_names();
// Image `index` of `style` (deterministic), size x size pixels.
image::RgbImage style_image(const std::string& style, int64_t index, int64_t size = 64);

// The built-in word list the demo vocabulary is learned from.
const std::vector<std::string>& demo_words();
// Byte-pair merges learned from words (each word ends with "</w>"), most frequent pair first,
// ties broken by the pair's text; at most max_merges. Lines "a b" as in the OpenAI file.
std::vector<std::string> learn_bpe_merges(const std::vector<std::string>& words, size_t max_merges);
// Writes a bpe_simple_vocab_16e6.txt.gz-format file ("#version: 0.2" line, then merges), gzip
// with a fixed header (deterministic bytes), atomically.
void write_vocab_gz(const std::filesystem::path& path, const std::vector<std::string>& merges);

// Writes the models: tiny CLIP (OpenAI key names, safetensors with its config in the metadata),
// vocabulary, tiny RDM (CompVis LatentDiffusion state dict with model_ema.* and
// first_stage_model.*, safetensors) and its config.json + rdm.json. Returns the vocab size.
void write_demo_models(const DemoPaths& paths, uint64_t seed);

// Everything: models, images, databases, samples, gallery.
DemoReport run_demo(const DemoOptions& options, const SampleProgressFn& progress = {});

}  // namespace rdm::demo
