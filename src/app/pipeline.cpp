// Port of scripts/knn2img.py (CompVis latent-diffusion): model loading and the sampling loop
// (prompt -> CLIP text embedding -> k nearest database embeddings -> guided DDIM/PLMS ->
// first-stage decode -> uint8), plus the modes the reference lists as TODO (image prompt) and
// the postfix baseline. Each step is a function of pipeline_stages.hpp (tensor steps in
// pipeline_stages.cpp, records in pipeline_record.cpp); Pipeline::sample runs them in order.
#include "rdm/app/pipeline.hpp"

#include <c10/core/InferenceMode.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <atomic>
#include <mutex>

#include "app/pipeline_stages.hpp"
#include "rdm/app/request_checks.hpp"
#include "rdm/clip/query_encoder.hpp"
#include "rdm/io/sha256.hpp"
#include "rdm/ldm/config.hpp"
#include "rdm/ldm/latent_diffusion.hpp"
#include "rdm/retrieval/database.hpp"
#include "rdm/runtime/device.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/runtime/runtime.hpp"

namespace rdm {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

// A cheap fingerprint of a large file: SHA-256 over its size, first and last 4 MiB.
std::string file_fingerprint(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail("cannot read '{}'", p.string());
  const uint64_t size = fs::file_size(p);
  io::Sha256 h;
  h.update(&size, sizeof(size));
  const uint64_t chunk = 4u << 20;
  std::string buf(static_cast<size_t>(std::min(chunk, size)), '\0');
  f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
  h.update(buf.data(), static_cast<size_t>(f.gcount()));
  if (size > chunk) {
    f.clear();
    f.seekg(static_cast<std::streamoff>(size - std::min(chunk, size - chunk)));
    f.read(buf.data(), static_cast<std::streamsize>(std::min(chunk, size - chunk)));
    h.update(buf.data(), static_cast<size_t>(f.gcount()));
  }
  return h.hex().substr(0, 16);
}

struct Pipeline::Impl {
  PipelinePaths paths;
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;
  ldm::LdmConfig config;
  // Mutable only for one-shot pipelines, whose sample() releases the models it no longer needs.
  mutable std::optional<ldm::LatentDiffusion> ldm;
  mutable std::optional<clip::QueryEncoder> encoder;  // tokenizer + CLIP (float32)
  std::string clip_identity;  // of `encoder`, kept for the records once it is released
  int64_t clip_dim = 0;       // its embedding width
  bool one_shot = false;
  mutable std::atomic<bool> used{false};
  std::string model_hash;
  mutable double load_seconds = 0;
  // Databases stay open across requests (a sweep opens each once).
  mutable std::mutex db_mutex;
  mutable std::map<std::string, std::shared_ptr<retrieval::Database>> databases;

  std::shared_ptr<retrieval::Database> database(const fs::path& dir) const {
    std::lock_guard<std::mutex> lock(db_mutex);
    std::string key = fs::weakly_canonical(dir).string();
    auto it = databases.find(key);
    if (it != databases.end()) return it->second;
    auto db = std::make_shared<retrieval::Database>(retrieval::Database::open(dir));
    // A database made with another CLIP lives in another embedding space.
    db->check_query_encoder(clip_identity, clip_dim);
    databases[key] = db;
    return db;
  }
  // The model half of every record (describe()).
  ImageRecord model_record() const;
  // The RDM, loaded on first use (one-shot pipelines load it in sample(), after CLIP's release).
  const ldm::LatentDiffusion& model() const {
    if (!ldm) {
      const auto t0 = Clock::now();
      ldm::LoadSpec spec;
      spec.use_ema = config.use_ema;
      spec.device = device;
      spec.dtype = dtype;
      ldm = ldm::LatentDiffusion::load(paths.model, config, spec);
      load_seconds += since(t0);
    }
    return *ldm;
  }
};

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&&) noexcept = default;
Pipeline::~Pipeline() = default;

Pipeline Pipeline::load(const PipelinePaths& paths, const PipelineOptions& options) {
  auto t0 = Clock::now();
  auto impl = std::make_unique<Impl>();
  impl->paths = paths;
  impl->device = parse_device(options.device);
  impl->dtype = parse_precision(options.precision, impl->device);
  if (impl->device.is_cpu() && impl->dtype == torch::kFloat16)
    fail("precision fp16 needs a CUDA device (CPU kernels lack half-precision convolutions); use bf16 or fp32");

  impl->config = ldm::LdmConfig::from_file(paths.config);
  if (impl->config.conditioning_key != "crossattn" || impl->config.context_dim() <= 0)
    fail("'{}' is not a retrieval-augmented model: conditioning_key must be crossattn with a context_dim",
         paths.config.string());
  impl->encoder = clip::QueryEncoder::load(paths.clip, paths.vocab, impl->device, torch::kFloat32,
                                           options.clip_vision ? clip::ClipParts::All : clip::ClipParts::TextOnly);
  const auto& cc = impl->encoder->config();
  if (cc.embed_dim != impl->config.context_dim())
    fail("CLIP '{}' makes {}-d embeddings but the RDM config '{}' expects context_dim {}: pass the CLIP the model "
         "was trained with (--clip)",
         paths.clip.string(), cc.embed_dim, paths.config.string(), impl->config.context_dim());
  if (impl->encoder->tokenizer().vocab_size() != cc.vocab_size)
    fail("vocabulary '{}' has {} tokens but CLIP '{}' expects {}: pass the matching --vocab", paths.vocab.string(),
         impl->encoder->tokenizer().vocab_size(), paths.clip.string(), cc.vocab_size);

  impl->one_shot = options.one_shot;
  if (!impl->one_shot) impl->model();
  impl->model_hash = file_fingerprint(paths.model);
  impl->clip_identity = impl->encoder->model().identity();
  impl->clip_dim = impl->encoder->config().embed_dim;
  impl->load_seconds = since(t0);
  if (impl->one_shot)
    spdlog::info("pipeline: loaded CLIP {} on {} in {:.2f} s (the RDM '{}' follows once the query is embedded)",
                 impl->clip_identity, impl->device.str(), impl->load_seconds, paths.model.string());
  else
    spdlog::info("pipeline: loaded RDM '{}' and CLIP {} on {} ({}) in {:.2f} s", paths.model.string(),
                 impl->clip_identity, impl->device.str(), precision_name(impl->dtype), impl->load_seconds);
  return Pipeline(std::move(impl));
}

int64_t Pipeline::size_multiple() const {
  return impl_->config.downsample_factor() * (int64_t(1) << impl_->config.unet.num_downsamples());
}
int64_t Pipeline::native_width() const { return impl_->config.unet.image_size * impl_->config.downsample_factor(); }
int64_t Pipeline::native_height() const { return native_width(); }
std::string Pipeline::device() const { return impl_->device.str(); }
std::string Pipeline::precision() const { return precision_name(impl_->dtype); }

ImageRecord Pipeline::Impl::model_record() const {
  ImageRecord r;
  r.model = ImageRecord::Model{fs::absolute(paths.model).string(), model_hash, fs::absolute(paths.config).string(),
                               model().uses_ema()};
  r.clip = ImageRecord::Clip{fs::absolute(paths.clip).string(), clip_identity};
  r.vocab = fs::absolute(paths.vocab).string();
  r.device = device.str();
  r.precision = precision_name(dtype);
  return r;
}

json Pipeline::describe() const { return impl_->model_record().model_json(); }
std::string Pipeline::clip_identity() const { return impl_->clip_identity; }

const clip::QueryEncoder& Pipeline::query_encoder() const {
  if (!impl_->encoder) fail("pipeline: CLIP was released after this one-shot pipeline's sample()");
  return *impl_->encoder;
}

namespace {
// Step 0: the request against the model (the CLI checks the same rules before loading).
void validate_in_pipeline(const SampleRequest& req, int64_t width, int64_t height, int64_t mult,
                          const ldm::LdmConfig& config) {
  const int64_t downsamples = config.unet.num_downsamples(), max_steps = config.schedule.timesteps - 1;
  if (width % mult != 0 || height % mult != 0 || width <= 0 || height <= 0)
    fail("size {}x{} is not allowed: width and height must be positive multiples of {} for this model "
         "(first-stage factor {} x {} UNet downsamplings), e.g. {}x{}",
         width, height, mult, config.downsample_factor(), downsamples, std::max<int64_t>(mult, width / mult * mult),
         std::max<int64_t>(mult, height / mult * mult));
  check_sampler(req.sampler, req.spacing, "sample");
  check_scale(req.scale, "sample");
  check_eta(req.eta, req.sampler, "sample");
  check_steps(req.steps, max_steps, "sample");
  check_k(req.k, "sample");
  check_count(req.n, "sample: the number of images");
  check_count(req.batch_size, "sample: the batch size");
  if (req.first_index < 0) fail("sample: the first image index must not be negative");
  check_seed_span(req.seed, req.first_index + req.n, "sample");
  if (req.image_prompt && !req.prompt.empty())
    fail("sample: an image prompt and a text prompt cannot be combined (the image's CLIP embedding replaces the "
         "text query): give one of them");
}

// Steps 5-7 for every batch: sample, decode each image, hand it over with its record.
// Returns false when interrupted (the finished images are in `result`).
bool sample_images(const Pipeline::Impl& m, const SampleRequest& req, const torch::Tensor& c, const ImageRecord& base,
                   int64_t width, int64_t height, const SampleCallbacks& callbacks, SampleResult& result) {
  const auto& ldm = m.model();
  double sample_s = 0, decode_s = 0;
  try {
    for (int64_t b0 = 0; b0 < req.n; b0 += req.batch_size) {
      const int64_t B = std::min(req.batch_size, req.n - b0);
      auto ts = Clock::now();
      // 5. Guided sampling from per-image seeded noise.
      torch::Tensor z = stage::sample_batch(ldm, req, c, b0, B, height, width, callbacks);
      sample_s += since(ts);
      if (m.one_shot && b0 + B >= req.n) {
        m.ldm->release_unet();  // the last batch is sampled: the decode needs only the first stage
        spdlog::debug("sample: one-shot: UNet released before the decode");
      }
      auto td = Clock::now();
      release_free_memory();  // the UNet's freed activations: the decode needs larger blocks
      for (int64_t i = 0; i < B; ++i) {
        SampledImage img;
        img.index = req.first_index + b0 + i;
        img.seed = req.seed + static_cast<uint64_t>(img.index);
        // 6. Decode.
        img.image = stage::decode_image(ldm, z.slice(0, i, i + 1), img.index, img.seed);
        decode_s += since(td);
        td = Clock::now();
        // 7. The record: the request's part, the image's seed and index, the timings so far.
        std::map<std::string, double> timings = result.seconds;
        timings["sample"] = sample_s;
        timings["decode"] = decode_s;
        timings["load"] = m.load_seconds;
        timings["sample_per_image"] = sample_s / static_cast<double>(result.images.size() + 1);
        img.record = stage::image_record(base, std::move(timings), img.seed, img.index);
        if (callbacks.on_image) callbacks.on_image(img);
        result.images.push_back(std::move(img));
      }
    }
  } catch (const stage::Interrupted&) {
    result.interrupted = true;
    spdlog::warn("sample: interrupted after {} of {} image(s)", result.images.size(), req.n);
  }
  result.seconds["sample"] = sample_s;
  result.seconds["decode"] = decode_s;
  result.seconds["load"] = m.load_seconds;
  return !result.interrupted;
}
}  // namespace

SampleResult Pipeline::sample(const SampleRequest& req, const SampleProgressFn& progress) const {
  SampleCallbacks cb;
  cb.progress = progress;
  return sample(req, cb);
}

SampleResult Pipeline::sample(const SampleRequest& req, const SampleCallbacks& callbacks) const {
  c10::InferenceMode inference;
  const Impl& m = *impl_;
  if (m.one_shot && m.used.exchange(true))
    fail("pipeline: a one-shot pipeline serves one sample() call (its models were released after the first)");
  SampleResult result;

  // 0. Validate the request against the model; open the databases (their names give the
  //    postfix style).
  const int64_t width = req.width > 0 ? req.width : native_width();
  const int64_t height = req.height > 0 ? req.height : native_height();
  validate_in_pipeline(req, width, height, size_multiple(), m.config);
  const bool retrieve = !req.no_retrieval && !req.databases.empty() && req.k > 0;
  stage::DbList dbs;
  std::vector<std::string> names;
  for (const auto& choice : req.databases) {
    dbs.push_back(m.database(choice.dir));
    names.push_back(dbs.back()->name());
  }

  // 1. The text to encode (the postfix baseline appends the style).
  auto t0 = Clock::now();
  result.prompt = stage::query_text(req, names);
  // 2. Encode: CLIP text embedding, or the CLIP image embedding of --image-prompt; L2-normalised.
  const torch::Tensor query = stage::encode_query(*m.encoder, req, result.prompt, dbs, m.paths.clip.string());
  result.seconds["encode"] = since(t0);

  // 3. Retrieve k neighbours, split across the databases by weight; best first overall.
  t0 = Clock::now();
  std::vector<torch::Tensor> neighbor_embeddings;
  if (retrieve) neighbor_embeddings = stage::retrieve_neighbors(req, dbs, query, result.neighbors);
  result.seconds["retrieve"] = since(t0);

  if (m.one_shot) {
    m.encoder.reset();  // the query is embedded and the neighbours retrieved: CLIP is done
    release_free_memory();
    spdlog::debug("sample: one-shot: CLIP released before the RDM is loaded");
  }
  const auto& ldm = m.model();

  // 4. Context c = [query, neighbours] (1, 1+k, D); uc = zeros_like(c).
  const torch::Tensor c = stage::build_context(query, neighbor_embeddings, ldm.device(), ldm.dtype());

  // 5.-7. Sample batch by batch, decode each image, record what reproduces it.
  const ImageRecord base = stage::request_record(m.model_record(), req, result.prompt,
                                                 stage::database_records(req, dbs, retrieve), result.neighbors,
                                                 retrieve, width, height);
  const bool finished = sample_images(m, req, c, base, width, height, callbacks, result);
  const int64_t done = static_cast<int64_t>(result.images.size());
  const double sample_s = result.seconds["sample"], decode_s = result.seconds["decode"];
  if (finished)
    spdlog::info("sample: {} image(s) {}x{} in {:.2f} s ({:.2f} s/image sampling, {:.2f} s decode)", done, width,
                 height, sample_s + decode_s, sample_s / static_cast<double>(std::max<int64_t>(1, done)), decode_s);
  return result;
}

}  // namespace rdm
