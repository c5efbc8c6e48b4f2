// Port of scripts/knn2img.py (CompVis latent-diffusion), the tensor steps of its sampling loop:
// prompt -> CLIP embedding -> k nearest database embeddings -> context -> guided DDIM/PLMS (or
// a faster solver) -> first-stage decode -> uint8; plus the image prompt the reference lists as
// TODO. Pipeline::sample (pipeline.cpp) runs them in order; see pipeline_stages.hpp.
#include "app/pipeline_stages.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>

#include "rdm/clip/query_encoder.hpp"
#include "rdm/ldm/latent_diffusion.hpp"
#include "rdm/retrieval/database.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/sampler/guidance.hpp"
#include "rdm/sampler/solvers.hpp"

namespace rdm::stage {
namespace fs = std::filesystem;

namespace {
// A broken database or model would otherwise give a black or noise image without a word.
bool all_finite(const torch::Tensor& t) { return torch::isfinite(t).all().item<bool>(); }
}  // namespace

torch::Tensor encode_query(const clip::QueryEncoder& encoder, const SampleRequest& req, const std::string& text,
                           const DbList& dbs, const std::string& clip_file) {
  torch::Tensor query;
  if (req.image_prompt) {
    const auto mode = dbs.empty() ? clip::Preprocess::Clip : dbs.front()->preprocess();
    query = encoder.encode_image_files({*req.image_prompt}, mode);
  } else {
    query = encoder.encode_texts({text}, /*truncate=*/true);
  }
  if (!all_finite(query))
    fail("the CLIP embedding of the {} is not finite: the CLIP weights '{}' are broken",
         req.image_prompt ? "image prompt" : "prompt", clip_file);
  return query;
}

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
    for (size_t j = 0; j < found.size(); ++j) {
      NeighborRecord r{dbs[d]->name(), found[j].id, found[j].score, "", found[j].label};
      if (!found[j].path.empty()) {  // the source image; its stored relative path without a root
        r.path = dbs[d]->source_path(found[j].id);
        if (r.path.empty()) r.path = found[j].path;
      }
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

torch::Tensor build_context(const torch::Tensor& query, const std::vector<torch::Tensor>& neighbors,
                            torch::Device device, torch::Dtype dtype) {
  torch::Tensor c = query.unsqueeze(1);
  if (!neighbors.empty())
    c = torch::cat({c, clip::QueryEncoder::normalize(torch::stack(neighbors)).unsqueeze(0).to(c.device())}, 1);
  return c.to(device, dtype);
}

torch::Tensor sample_batch(const ldm::LatentDiffusion& ldm, const SampleRequest& req, const torch::Tensor& c,
                           int64_t b0, int64_t B, int64_t height, int64_t width, const SampleCallbacks& callbacks) {
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

image::RgbImage decode_image(const ldm::LatentDiffusion& ldm, const torch::Tensor& z, int64_t index, uint64_t seed) {
  torch::Tensor x = ldm.decode_first_stage(z).to(torch::kFloat32);
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

}  // namespace rdm::stage
