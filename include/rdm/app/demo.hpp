// The embedded default (`rdm demo`): the shipped tiny trained model (models/tiny: RDM, CLIP and
// vocabulary made by scripts/train_tiny.sh) and style databases of procedural-world pictures
// built at run time, several of them in styles the model never saw in training; then every
// prompt x style through the real pipeline (tokenizer -> CLIP -> FAISS -> UNet -> DDIM ->
// decoder -> PNG) with a contact sheet (rows = prompts, columns = style databases), the
// neighbours' sheets and a gallery. Byte-deterministic for the same options.
//
// `random_model` instead writes a tiny RDM + CLIP with random weights and databases of simple
// generated patterns (no files needed at all): the fixture of the CLI tests, which checks the
// arithmetic end to end but not the images.
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
  std::vector<std::string> prompts;  // empty: default_prompts(random_model)
  std::vector<std::string> styles;   // world styles of the databases; empty: default_styles()
  std::filesystem::path model;       // trained model folder; empty: tiny_model_dir()
  bool random_model = false;         // the random-weight fixture instead (see above)
  uint64_t seed = 42;
  int steps = 50;
  int64_t k = 0;                     // neighbours; 0: 4 (trained, as it was trained) or 19 (random)
  double scale = 5.0;
  int64_t images_per_style = 0;      // 0: 48 (trained) or 24 (random)
  std::string device = "auto";      // rdm/runtime/device.hpp
  std::string precision = "fp32";   // UNet and autoencoder
  bool sample = true;  // false: only create the models and databases
};

struct DemoPaths {
  std::filesystem::path root, models, model_dir, clip, vocab, images, databases, outputs;
  std::vector<std::string> styles;
  std::vector<std::filesystem::path> style_databases;  // one per style
  // The random-weight fixture's layout: models under root/models, the pattern styles.
  static DemoPaths under(const std::filesystem::path& root);
  // A trained model (its files as resolve_model_paths finds them) and world styles; images,
  // databases and outputs under root.
  static DemoPaths trained(const std::filesystem::path& root, const PipelinePaths& model,
                           const std::vector<std::string>& styles);
};

// The demo's prompts and styles: stripes, dots, checks and gradient were in the tiny model's
// training; mosaic and hatching were held out of every stage (zero-shot styles).
const std::vector<std::string>& default_prompts(bool random_model);
const std::vector<std::string>& default_styles();
// World seed of the demo databases' pictures (not the training world's seed 0).
constexpr uint64_t kDemoWorldSeed = 2026;

struct DemoReport {
  DemoPaths paths;
  bool random_model = false;
  std::vector<std::string> prompts;
  std::vector<std::filesystem::path> images;  // sampled PNGs
  std::filesystem::path gallery, contact_sheet;
  std::vector<std::filesystem::path> neighbor_sheets;
  std::map<std::string, double> seconds;
  nlohmann::json to_json() const;
};

// The styles of the random fixture's databases and their procedural generators.
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
