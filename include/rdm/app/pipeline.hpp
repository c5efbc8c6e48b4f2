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

#include "rdm/app/image_record.hpp"
#include "rdm/app/request.hpp"
#include "rdm/image/png.hpp"

namespace rdm::clip {
class QueryEncoder;
}

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
  // Load CLIP's vision tower too. Needed for image prompts and for embedding images (rdm eval);
  // text prompts need only the text tower (ViT-L/14: 1.2 GB less in fp32). A request with an
  // image prompt on a pipeline without it fails with rdm::Error.
  bool clip_vision = true;
  // The pipeline serves one sample() call (`rdm sample` with one prompt): CLIP is released as
  // soon as the query is embedded and the neighbours retrieved, the UNet as soon as the last
  // batch is sampled, so that the decode does not hold the UNet's weights. The images are the
  // same bytes. A second sample() call, or query_encoder() after the first, is an rdm::Error.
  // The RDM itself is loaded only in sample(), once CLIP is gone, so that the two are never
  // resident together (a bad checkpoint is then reported by sample()).
  bool one_shot = false;
};

struct SampledImage {
  int64_t index = 0;
  uint64_t seed = 0;  // the image's own seed (request seed + index)
  image::RgbImage image;
  ImageRecord record;  // everything needed to reproduce it (the PNG's `rdm` chunk)
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
  nlohmann::json describe() const;  // model, clip, vocab paths, hashes, identities (ImageRecord::model_json)
  std::string clip_identity() const;  // the CLIP's identity (also after a one-shot release)
  // The CLIP (with its tokenizer) the pipeline embeds queries with (`rdm eval` embeds its
  // images and prompts with it too).
  const clip::QueryEncoder& query_encoder() const;

  struct Impl;

 private:
  explicit Pipeline(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

// The split of k neighbours over databases by weight (largest remainder, ties to the first).
std::vector<int64_t> split_k(int64_t k, const std::vector<double>& weights);
// "artbench-ukiyo_e" -> "ukiyo e" (the postfix style of a database name).
std::string style_from_database_name(const std::string& name);
// The fingerprint recorded as a model's "hash": SHA-256 over the file size and its first and
// last 4 MiB, 16 hex digits.
std::string file_fingerprint(const std::filesystem::path& file);
}  // namespace rdm
