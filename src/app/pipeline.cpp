// Port of scripts/knn2img.py (CompVis latent-diffusion): model loading and the sampling loop
// (prompt -> CLIP text embedding -> k nearest database embeddings -> guided DDIM/PLMS ->
// first-stage decode -> uint8), plus the modes the reference lists as TODO (image prompt) and
// the postfix baseline. Records and requests (JSON) are in pipeline_record.cpp.
#include "rdm/app/pipeline.hpp"
#include "rdm/runtime/device.hpp"
#include "rdm/runtime/runtime.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>

#include "rdm/clip/query_encoder.hpp"
#include "rdm/ldm/config.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/ldm/latent_diffusion.hpp"
#include "rdm/retrieval/database.hpp"
#include "rdm/retrieval/manifest.hpp"
#include "rdm/sampler/ddim.hpp"
#include "rdm/sampler/guidance.hpp"
#include "rdm/sampler/plms.hpp"
#include "rdm/sampler/solvers.hpp"
#include "rdm/app/request_checks.hpp"
#include "rdm/io/sha256.hpp"

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
  std::optional<ldm::LatentDiffusion> ldm;
  std::optional<clip::QueryEncoder> encoder;  // tokenizer + CLIP (float32)
  std::string model_hash;
  double load_seconds = 0;
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
    db->check_query_encoder(encoder->model().identity(), encoder->config().embed_dim);
    databases[key] = db;
    return db;
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
  impl->dtype = parse_precision(options.precision);
  if (impl->device.is_cpu() && impl->dtype == torch::kFloat16)
    fail("precision fp16 needs a CUDA device (CPU kernels lack half-precision convolutions); use bf16 or fp32");

  impl->config = ldm::LdmConfig::from_file(paths.config);
  if (impl->config.conditioning_key != "crossattn" || impl->config.context_dim() <= 0)
    fail("'{}' is not a retrieval-augmented model: conditioning_key must be crossattn with a context_dim",
         paths.config.string());
  impl->encoder = clip::QueryEncoder::load(paths.clip, paths.vocab, impl->device, torch::kFloat32);
  const auto& cc = impl->encoder->config();
  if (cc.embed_dim != impl->config.context_dim())
    fail("CLIP '{}' makes {}-d embeddings but the RDM config '{}' expects context_dim {}: pass the CLIP the model "
         "was trained with (--clip)",
         paths.clip.string(), cc.embed_dim, paths.config.string(), impl->config.context_dim());
  if (impl->encoder->tokenizer().vocab_size() != cc.vocab_size)
    fail("vocabulary '{}' has {} tokens but CLIP '{}' expects {}: pass the matching --vocab", paths.vocab.string(),
         impl->encoder->tokenizer().vocab_size(), paths.clip.string(), cc.vocab_size);

  ldm::LoadSpec spec;
  spec.use_ema = impl->config.use_ema;
  spec.device = impl->device;
  spec.dtype = impl->dtype;
  impl->ldm = ldm::LatentDiffusion::load(paths.model, impl->config, spec);
  impl->model_hash = file_fingerprint(paths.model);
  impl->load_seconds = since(t0);
  spdlog::info("pipeline: loaded RDM '{}' and CLIP {} on {} ({}) in {:.2f} s", paths.model.string(),
               impl->encoder->model().identity(), impl->device.str(), precision_name(impl->dtype), impl->load_seconds);
  return Pipeline(std::move(impl));
}

int64_t Pipeline::size_multiple() const {
  return impl_->config.downsample_factor() * (int64_t(1) << impl_->config.unet.num_downsamples());
}
int64_t Pipeline::native_width() const { return impl_->config.unet.image_size * impl_->config.downsample_factor(); }
int64_t Pipeline::native_height() const { return native_width(); }
std::string Pipeline::device() const { return impl_->device.str(); }
std::string Pipeline::precision() const { return precision_name(impl_->dtype); }

json Pipeline::describe() const {
  const auto& p = impl_->paths;
  return json{{"model", {{"path", fs::absolute(p.model).string()},
                         {"hash", impl_->model_hash},
                         {"config", fs::absolute(p.config).string()},
                         {"ema", impl_->ldm->uses_ema()}}},
              {"clip", {{"path", fs::absolute(p.clip).string()}, {"identity", impl_->encoder->model().identity()}}},
              {"vocab", fs::absolute(p.vocab).string()},
              {"device", device()},
              {"precision", precision()}};
}

namespace {
// Thrown from a step callback when the stop flag is set; caught in Pipeline::sample.
struct Interrupted {};

// Errors when a tensor that must be finite is not (a broken database or model would otherwise
// give a black or noise image without a word).
bool all_finite(const torch::Tensor& t) { return torch::isfinite(t).all().item<bool>(); }

using DbList = std::vector<std::shared_ptr<retrieval::Database>>;

// 3. k neighbours split across the databases by weight, best first overall; their embeddings.
std::vector<torch::Tensor> retrieve_neighbors(const SampleRequest& req, const DbList& dbs, const torch::Tensor& query,
                                              std::vector<NeighborRecord>& records) {
  std::vector<double> weights;
  for (const auto& c : req.databases) weights.push_back(c.weight);
  auto ks = split_k(req.k, weights);
  struct Hit {
    NeighborRecord rec;
    torch::Tensor emb;
  };
  std::vector<Hit> hits;
  for (size_t d = 0; d < dbs.size(); ++d) {
    if (ks[d] == 0) continue;
    if (ks[d] > dbs[d]->size())
      fail("k = {} neighbours asked from database '{}' ({}) but it holds only {} items: lower -k", ks[d],
           dbs[d]->name(), req.databases[d].dir.string(), dbs[d]->size());
    auto found = dbs[d]->search(query.cpu(), ks[d]).at(0);
    std::vector<int64_t> ids;
    for (const auto& nb : found) ids.push_back(nb.id);
    auto emb = dbs[d]->embeddings(ids);
    // Zero or non-finite rows would make the context NaN (and the image black).
    if (!all_finite(emb) || (at::linalg_vector_norm(emb, 2, std::vector<int64_t>{1}) == 0).any().item<bool>())
      fail("database '{}' ({}) returned neighbour embeddings that are zero or not finite: the database is "
           "broken; rebuild it (rdm db build / rdm db import)",
           dbs[d]->name(), req.databases[d].dir.string());
    const fs::path root = dbs[d]->manifest().source.value("root", std::string());
    for (size_t j = 0; j < found.size(); ++j) {
      NeighborRecord r{dbs[d]->name(), found[j].id, found[j].score, "", found[j].label};
      if (!found[j].path.empty()) r.path = root.empty() ? found[j].path : (root / found[j].path).string();
      hits.push_back({r, emb[static_cast<int64_t>(j)]});
    }
  }
  std::stable_sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.rec.score > b.rec.score; });
  std::vector<torch::Tensor> out;
  for (auto& h : hits) {
    records.push_back(h.rec);
    out.push_back(h.emb.to(torch::kFloat32));
  }
  return out;
}

// The per-request part of every image's record (the image adds seed, index and timings).
json request_record(const Pipeline& p, const SampleRequest& req, const SampleResult& result, const DbList& dbs,
                    bool retrieve, int64_t width, int64_t height) {
  json base = p.describe();
  base["rdm_version"] = RDM_VERSION;
  base["libtorch"] = TORCH_VERSION;
  base["prompt"] = req.prompt;
  base["text"] = result.prompt;
  base["mode"] = req.image_prompt ? "image" : req.no_retrieval ? "postfix" : retrieve ? "text+neighbors" : "text";
  if (req.image_prompt) base["image_prompt"] = fs::absolute(*req.image_prompt).string();
  if (req.no_retrieval) base["style"] = req.style;
  base["sampler"] = req.sampler;
  base["spacing"] = req.spacing;
  base["steps"] = req.steps;
  base["eta"] = req.eta;
  base["scale"] = req.scale;
  base["width"] = width;
  base["height"] = height;
  base["k"] = req.k;
  base["base_seed"] = req.seed;
  base["batch_size"] = req.batch_size;
  json jdbs = json::array();
  std::vector<double> weights;
  for (const auto& cdb : req.databases) weights.push_back(cdb.weight);
  auto ks = split_k(req.k, weights);
  for (size_t d = 0; d < dbs.size(); ++d)
    jdbs.push_back({{"name", dbs[d]->name()},
                    {"path", fs::absolute(req.databases[d].dir).string()},
                    {"weight", req.databases[d].weight},
                    {"k", retrieve ? ks[d] : 0},
                    {"hash", dbs[d]->hash()},
                    {"size", dbs[d]->size()},
                    {"clip_identity", dbs[d]->clip_identity()}});
  base["databases"] = jdbs;
  json jn = json::array();
  for (const auto& nb : result.neighbors)
    jn.push_back({{"database", nb.database}, {"id", nb.id}, {"score", nb.score}, {"path", nb.path}, {"label", nb.label}});
  base["neighbors"] = jn;
  return base;
}

// Step 0: the request against the model (the CLI checks the same rules before loading).
void validate_in_pipeline(const SampleRequest& req, int64_t width, int64_t height, int64_t mult,
                          const ldm::LatentDiffusion& ldm, int64_t downsamples, int64_t max_steps) {
  if (width % mult != 0 || height % mult != 0 || width <= 0 || height <= 0)
    fail("size {}x{} is not allowed: width and height must be positive multiples of {} for this model "
         "(first-stage factor {} x {} UNet downsamplings), e.g. {}x{}",
         width, height, mult, ldm.downsample_factor(), downsamples, std::max<int64_t>(mult, width / mult * mult),
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
}  // namespace

namespace {
// One batch of B images (the first is image b0 of the request) through the guided sampler.
torch::Tensor sample_batch(const Pipeline::Impl& m, const SampleRequest& req, const torch::Tensor& c, int64_t b0,
                           int64_t B, int64_t height, int64_t width, const SampleCallbacks& callbacks) {
  const auto& ldm = *m.ldm;
  const int64_t C = ldm.latent_channels(), f = ldm.downsample_factor();
  const int64_t h = height / f, w = width / f;
  sampler::ModelFn model = [&ldm](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& ctx) {
    return ldm.apply_model(x, t, ctx);
  };
  // Image i draws its x_T (and, with eta > 0, its step noise) from its own generator seeded
  // with seed + index, on the CPU: the same image whatever the batch size or device.
  std::vector<at::Generator> gens;
  std::vector<torch::Tensor> x0;
  for (int64_t i = 0; i < B; ++i) {
    uint64_t s = req.seed + static_cast<uint64_t>(req.first_index + b0 + i);
    gens.push_back(at::make_generator<at::CPUGeneratorImpl>(s));
    x0.push_back(torch::randn({1, C, h, w}, gens.back(), torch::kFloat32));
  }
  auto x_T = torch::cat(x0).to(ldm.device(), ldm.dtype());
  auto cb = c.expand({B, c.size(1), c.size(2)}).contiguous();
  sampler::EpsFn eps = sampler::classifier_free_guidance(model, cb, torch::zeros_like(cb), req.scale);
  if (B > 1 && ldm.device().is_cpu()) {
    // CPU kernels (oneDNN convolutions, BLAS) pick blockings by batch size, which changes the
    // last bits: evaluate each image's guided pair on its own so that an image never depends
    // on the batch it was sampled in. (On CUDA the batch runs as one, for throughput.)
    sampler::EpsFn single = sampler::classifier_free_guidance(model, cb.slice(0, 0, 1), torch::zeros_like(cb.slice(0, 0, 1)), req.scale);
    eps = [single, B](const torch::Tensor& x, const torch::Tensor& t) {
      std::vector<torch::Tensor> outs;
      for (int64_t i = 0; i < B; ++i) outs.push_back(single(x.slice(0, i, i + 1), t.slice(0, i, i + 1)));
      return torch::cat(outs);
    };
  }
  sampler::SamplerOptions opts;
  opts.steps = req.steps;
  opts.eta = req.eta;
  opts.spacing = req.spacing;
  if (req.eta != 0.0) {
    opts.noise = [&gens, C, h, w, &ldm](int) {
      std::vector<torch::Tensor> n;
      for (auto& g : gens) n.push_back(torch::randn({1, C, h, w}, g, torch::kFloat32));
      return torch::cat(n).to(ldm.device(), ldm.dtype());
    };
  }
  const std::atomic<bool>* stop = callbacks.stop;
  if (stop && stop->load()) throw Interrupted{};
  sampler::ProgressFn step_progress = [&](int step, int total) {
    if (callbacks.progress) callbacks.progress({req.first_index + b0, req.n, B, step, total});
    if (stop && stop->load() && step < total) throw Interrupted{};
  };
  try {
    return sampler::run_sampler(req.sampler, eps, x_T, ldm.schedule(), opts, step_progress);
  } catch (const c10::OutOfMemoryError&) {
    fail("out of GPU memory sampling {} image(s) of {}x{} with {} context tokens: lower --batch-size, the size, "
         "or use --precision fp16",
         B, width, height, c.size(1));
  }
}

// One latent [1, C, h, w] -> uint8 RGB (knn2img's conversion); an error if it is not finite.
image::RgbImage decode_image(const Pipeline::Impl& m, const torch::Tensor& z, int64_t index, uint64_t seed) {
  torch::Tensor x = m.ldm->decode_first_stage(z).to(torch::kFloat32);
  if (!all_finite(x))
    fail("decoded image is not finite (image {}, seed {}): the first-stage weights are broken or the precision "
         "overflowed (try --precision fp32)",
         index, seed);
  x = torch::clamp((x + 1.0) / 2.0, 0.0, 1.0);
  auto u8 = (x * 255.0).to(torch::kUInt8)[0].permute({1, 2, 0}).contiguous().cpu();  // truncation
  image::RgbImage img(u8.size(0), u8.size(1));
  std::memcpy(img.pixels.data(), u8.data_ptr<uint8_t>(), img.pixels.size());
  return img;
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
  const auto& encoder = *m.encoder;
  const auto& ldm = *m.ldm;
  SampleResult result;

  // 0. Validate the request against the model.
  const int64_t width = req.width > 0 ? req.width : native_width();
  const int64_t height = req.height > 0 ? req.height : native_height();
  validate_in_pipeline(req, width, height, size_multiple(), ldm, impl_->config.unet.num_downsamples(),
                       ldm.schedule().num_timesteps - 1);
  const bool retrieve = !req.no_retrieval && !req.databases.empty() && req.k > 0;

  // Open the databases first: their names give the postfix style.
  DbList dbs;
  for (const auto& choice : req.databases) dbs.push_back(m.database(choice.dir));

  // 1. Tokenize (the postfix baseline appends the style to the prompt).
  auto t0 = Clock::now();
  result.prompt = req.prompt;
  if (req.no_retrieval) {
    std::string style = req.style;
    if (style.empty() && !dbs.empty()) style = style_from_database_name(dbs.front()->name());
    if (style.empty()) fail("--no-retrieval needs --style TEXT or a --database to name the style");
    result.prompt = req.prompt + " in the style of " + style;
  }
  if (result.prompt.empty() && !req.image_prompt) fail("the prompt is empty (give a prompt or --image-prompt)");

  // 2. Encode: CLIP text embedding, or the CLIP image embedding of --image-prompt; L2-normalised.
  torch::Tensor query;  // [1, D]
  if (req.image_prompt) {
    auto mode = clip::Preprocess::Clip;
    if (!dbs.empty() && dbs.front()->manifest().preprocess == "rdm") mode = clip::Preprocess::Rdm;
    query = encoder.encode_image_files({*req.image_prompt}, mode);
  } else {
    query = encoder.encode_texts({result.prompt}, /*truncate=*/true);
  }
  if (!all_finite(query))
    fail("the CLIP embedding of the {} is not finite: the CLIP weights '{}' are broken",
         req.image_prompt ? "image prompt" : "prompt", m.paths.clip.string());
  result.seconds["encode"] = since(t0);

  // 3. Retrieve k neighbours, split across the databases by weight; best first overall.
  t0 = Clock::now();
  std::vector<torch::Tensor> neighbor_embeddings;
  if (retrieve) neighbor_embeddings = retrieve_neighbors(req, dbs, query, result.neighbors);
  result.seconds["retrieve"] = since(t0);

  // 4. Context c = [query, neighbours] (1, 1+k, D); uc = zeros_like(c).
  torch::Tensor c = query.unsqueeze(1);
  if (!neighbor_embeddings.empty())
    c = torch::cat({c, clip::QueryEncoder::normalize(torch::stack(neighbor_embeddings)).unsqueeze(0).to(c.device())},
                   1);
  c = c.to(ldm.device(), ldm.dtype());

  // Records: everything needed to reproduce each image (timings added per image).
  const json base = request_record(*this, req, result, dbs, retrieve, width, height);
  double sample_s = 0, decode_s = 0;
  int64_t finished = 0;
  auto finish_image = [&](SampledImage& img) {
    img.record = base;
    json timings = result.seconds;
    timings["sample"] = sample_s;
    timings["decode"] = decode_s;
    timings["load"] = m.load_seconds;
    timings["sample_per_image"] = sample_s / static_cast<double>(std::max<int64_t>(1, ++finished));
    img.record["seconds"] = timings;
    img.record["seed"] = img.seed;
    img.record["index"] = img.index;
    if (callbacks.on_image) callbacks.on_image(img);
  };

  // 5. Guided sampling from per-image seeded noise, batch by batch; 6. decode each image.
  try {
    for (int64_t b0 = 0; b0 < req.n; b0 += req.batch_size) {
      const int64_t B = std::min(req.batch_size, req.n - b0);
      auto ts = Clock::now();
      torch::Tensor z = sample_batch(m, req, c, b0, B, height, width, callbacks);
      sample_s += since(ts);
      auto td = Clock::now();
      release_free_memory();  // the UNet's freed activations: the decode needs larger blocks
      for (int64_t i = 0; i < B; ++i) {
        SampledImage img;
        img.index = req.first_index + b0 + i;
        img.seed = req.seed + static_cast<uint64_t>(img.index);
        img.image = decode_image(m, z.slice(0, i, i + 1), img.index, img.seed);
        decode_s += since(td);
        td = Clock::now();
        finish_image(img);
        result.images.push_back(std::move(img));
      }
    }
  } catch (const Interrupted&) {
    result.interrupted = true;
    spdlog::warn("sample: interrupted after {} of {} image(s)", result.images.size(), req.n);
  }
  result.seconds["sample"] = sample_s;
  result.seconds["decode"] = decode_s;
  result.seconds["load"] = m.load_seconds;
  const int64_t done = static_cast<int64_t>(result.images.size());
  if (!result.interrupted)
    spdlog::info("sample: {} image(s) {}x{} in {:.2f} s ({:.2f} s/image sampling, {:.2f} s decode)", done, width,
                 height, sample_s + decode_s, sample_s / static_cast<double>(std::max<int64_t>(1, done)), decode_s);
  return result;
}


}  // namespace rdm
