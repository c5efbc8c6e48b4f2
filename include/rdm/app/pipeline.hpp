// The whole text-to-image job of scripts/knn2img.py (CompVis latent-diffusion) as one object:
// Pipeline::load(paths) once, then Pipeline::sample(request) any number of times.
//
//   prompt ──tokenize──▶ CLIP text encoder ──L2──▶ query ─┬─▶ database(s): k neighbours (L2)
//                                                          ▼
//            context c = [query, neighbour_1 .. neighbour_k]  (B, 1+k, D);  uc = zeros_like(c)
//                                                          ▼
//   seeded noise x_T ──▶ DDIM/PLMS over classifier-free guided UNet ──▶ decode(z / scale_factor)
//                                                          ▼
//                                  uint8 = floor(255 * clamp((x + 1) / 2, 0, 1))
//
// Modes: text + neighbours (with databases), text only (no database), image prompt (the CLIP
// image embedding of a file is the query and the first token), postfix baseline (no retrieval,
// the prompt gets "in the style of <style>").
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rdm/image/png.hpp"

namespace rdm {

// Where the model files are (see model_paths.hpp for resolving names).
struct PipelinePaths {
  std::filesystem::path model;   // RDM checkpoint (.ckpt / .safetensors)
  std::filesystem::path config;  // its latent-diffusion config (.yaml / .json)
  std::filesystem::path clip;    // CLIP weights
  std::filesystem::path vocab;   // CLIP BPE vocabulary
};

struct PipelineOptions {
  std::string device = "auto";     // auto | cpu | cuda | cuda:N
  std::string precision = "fp32";  // fp32 | fp16 | bf16 (UNet and autoencoder; CLIP stays fp32)
};

// One style database and its share of the k neighbours.
struct DatabaseChoice {
  std::filesystem::path dir;
  double weight = 1.0;
};

struct SampleRequest {
  std::string prompt;
  std::optional<std::filesystem::path> image_prompt;  // query + first token from this image
  std::vector<DatabaseChoice> databases;              // empty: text only
  bool no_retrieval = false;  // postfix baseline: text only, prompt + " in the style of " + style
  std::string style;          // postfix style ("" -> from the first database's name)
  int64_t k = 19;             // neighbours in total (split across databases by weight)
  std::string sampler = "ddim";     // ddim | plms | dpmpp2m | unipc | euler_a
  std::string spacing = "uniform";  // timestep spacing: uniform (the reference's) | trailing | karras
  int steps = 50;
  double eta = 0.0;
  double scale = 5.0;
  uint64_t seed = 0;
  int64_t n = 1;             // images
  int64_t batch_size = 1;    // images per model batch (does not change the images)
  int64_t first_index = 0;   // index of the first image (image i uses seed + i)
  int64_t width = 0, height = 0;  // pixels; 0 = the model's native size
};

struct NeighborRecord {
  std::string database;  // database name
  int64_t id = -1;
  float score = 0;
  std::string path;  // absolute path of the source image ("" when unknown)
  std::string label;
};

struct SampledImage {
  int64_t index = 0;
  uint64_t seed = 0;  // the image's own seed (request seed + index)
  image::RgbImage image;
  nlohmann::json record;  // everything needed to reproduce it (the PNG's `rdm` chunk)
};

struct SampleProgress {
  int64_t image = 0, images = 0;  // first image of the running batch, images in the request
  int64_t batch = 1;              // images in the running batch
  int step = 0, steps = 0;        // sampler steps done in the running batch
};
using SampleProgressFn = std::function<void(const SampleProgress&)>;

// Optional hooks of one sample() call: step progress; each image handed over as soon as it is
// decoded (its record complete, timings so far), before the next batch starts; a stop flag
// (SIGINT) checked at every sampler step: when set, the running batch is abandoned and
// sample() returns the images finished so far with `interrupted` set.
struct SampleCallbacks {
  SampleProgressFn progress;
  std::function<void(SampledImage&)> on_image;
  const std::atomic<bool>* stop = nullptr;
};

struct SampleResult {
  bool interrupted = false;  // stopped by SampleCallbacks::stop; `images` holds the finished ones
  std::vector<SampledImage> images;
  std::string prompt;                     // the text that was encoded (postfix applied)
  std::vector<NeighborRecord> neighbors;  // best first (the same for every image)
  std::map<std::string, double> seconds;  // per stage
};

class Pipeline {
 public:
  static Pipeline load(const PipelinePaths& paths, const PipelineOptions& options = {});
  Pipeline(Pipeline&&) noexcept;
  Pipeline& operator=(Pipeline&&) noexcept;
  ~Pipeline();

  SampleResult sample(const SampleRequest& request, const SampleProgressFn& progress = {}) const;
  SampleResult sample(const SampleRequest& request, const SampleCallbacks& callbacks) const;

  // Model facts for callers (defaults, validation, metadata).
  int64_t native_width() const;
  int64_t native_height() const;
  // Width and height must be multiples of this (first-stage factor * 2^UNet downsamplings).
  int64_t size_multiple() const;
  std::string device() const;     // "cpu", "cuda:0"
  std::string precision() const;  // "fp32", ...
  nlohmann::json describe() const;  // model, clip, vocab paths, hashes, identities

  struct Impl;

 private:
  explicit Pipeline(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

// The split of k neighbours over databases by weight (largest remainder, ties to the first).
std::vector<int64_t> split_k(int64_t k, const std::vector<double>& weights);
// "artbench-ukiyo_e" -> "ukiyo e" (the postfix style of a database name).
std::string style_from_database_name(const std::string& name);
// "name:0.7" -> {name, 0.7}; "name" -> {name, 1}. A colon followed by a non-number is part of
// the name. Throws rdm::Error for a weight <= 0.
std::pair<std::string, double> parse_weighted(const std::string& spec);

// The request a record (an image's `rdm` chunk) was made with, for n = 1 image at its index
// (used by `rdm sample --from-png`). Values follow the rules of request_checks.hpp (integers
// must be JSON integers, seeds unsigned 64-bit); `where` names the record in errors.
SampleRequest request_from_record(const nlohmann::json& record, const std::string& where = "metadata record");
// The fingerprint recorded as a model's "hash": SHA-256 over the file size and its first and
// last 4 MiB, 16 hex digits.
std::string file_fingerprint(const std::filesystem::path& file);
// The human-readable `parameters` chunk of a record ("prompt\nSteps: 50, Sampler: DDIM, ...").
std::string parameters_text(const nlohmann::json& record);

}  // namespace rdm
