// The precomputed training database of `rdm train rdm` (see train/rdm_data.hpp).
#include "train/rdm_data.hpp"

#include <algorithm>
#include <chrono>
#include <limits>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "rdm/formats/safetensors.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/train/world_data.hpp"

namespace rdm::train::detail {
namespace fs = std::filesystem;

torch::Tensor nearest_neighbours(const torch::Tensor& emb, int64_t k) {
  const int64_t n = emb.size(0);
  if (k <= 0 || k >= n) fail("rdm train: knn {} must lie in [1, {}) for a database of {} pictures", k, n, n);
  torch::NoGradGuard ng;
  torch::Tensor out = torch::empty({n, k}, torch::kInt64);
  constexpr int64_t kBlock = 512;
  for (int64_t lo = 0; lo < n; lo += kBlock) {
    const int64_t len = std::min(kBlock, n - lo);
    torch::Tensor sim = emb.narrow(0, lo, len).matmul(emb.t());  // [len, n]
    sim.diagonal(lo).fill_(-std::numeric_limits<float>::infinity());  // the items themselves
    // topk is not stable among ties: sort by (-similarity, index) instead.
    auto [vals, idx] = sim.topk(std::min(n, k + 8), 1);
    auto va = vals.accessor<float, 2>();
    auto ia = idx.accessor<int64_t, 2>();
    auto oa = out.accessor<int64_t, 2>();
    for (int64_t r = 0; r < len; ++r) {
      std::vector<std::pair<float, int64_t>> c;
      for (int64_t j = 0; j < vals.size(1); ++j) c.emplace_back(-va[r][j], ia[r][j]);
      std::sort(c.begin(), c.end());
      for (int64_t j = 0; j < k; ++j) oa[lo + r][j] = c[static_cast<size_t>(j)].second;
    }
  }
  return out;
}

torch::Tensor draw_from_pools(const torch::Tensor& pools, int64_t k, at::Generator& g) {
  if (pools.dim() != 2 || k <= 0 || k > pools.size(1))
    fail("rdm train: cannot draw {} neighbours from pools of shape [{}]", k, fmt::join(pools.sizes(), ", "));
  const torch::Tensor keys = torch::rand({pools.size(0), pools.size(1)}, g);
  const torch::Tensor pick = std::get<0>(keys.argsort(/*dim=*/int64_t{1}).narrow(1, 0, k).sort(1));
  return pools.gather(1, pick);
}

namespace {

RdmData build(const RdmDataSpec& spec, ldm::AutoencoderKL& ae, const clip::ClipModel& clip,
              const clip::Tokenizer& tokenizer) {
  torch::NoGradGuard ng;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<torch::Tensor> lat, img, txt;
  constexpr int64_t kBatch = 64;
  const int64_t ctx = clip.config().context_length;
  const torch::Device ae_dev = ae->post_quant_conv->weight.device();
  for (int64_t lo = 0; lo < spec.items; lo += kBatch) {
    std::vector<int64_t> idx;
    for (int64_t i = lo; i < std::min(spec.items, lo + kBatch); ++i) idx.push_back(i);
    const WorldBatch b = render_batch(spec.world, idx);
    lat.push_back(ldm::DiagonalGaussian(ae->encode(to_signed_unit(b.pixels).to(ae_dev))).mean.cpu());
    auto ie = clip.encode_image(to_clip_input(b.pixels)).to(torch::kCPU, torch::kFloat32);
    auto te = clip.encode_text(tokenizer.tokenize(b.captions, ctx, true)).to(torch::kCPU, torch::kFloat32);
    img.push_back(ie / ie.norm(2, 1, true));
    txt.push_back(te / te.norm(2, 1, true));
    if ((lo / kBatch) % 50 == 49) spdlog::info("rdm train: training database {}/{} pictures", lo + kBatch, spec.items);
  }
  RdmData d;
  d.latents = torch::cat(lat);
  d.image_emb = torch::cat(img);
  d.text_emb = torch::cat(txt);
  d.neighbours = nearest_neighbours(d.image_emb, spec.knn);
  spdlog::info("rdm train: training database of {} pictures (latents {}, embeddings {}, {} neighbours) in {:.1f} s",
               spec.items, fmt::join(d.latents.sizes().slice(1), "x"), d.image_emb.size(1), spec.knn,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return d;
}

}  // namespace

RdmData load_or_build_rdm_data(const fs::path& path, const RdmDataSpec& spec, ldm::AutoencoderKL& ae,
                               const clip::ClipModel& clip, const clip::Tokenizer& tokenizer) {
  if (fs::exists(path)) {
    formats::TensorFile tf = formats::read_tensor_file(path);
    auto it = tf.metadata.find("key");
    if (it != tf.metadata.end() && it->second == spec.key && tf.tensors.size() == 4) {
      RdmData d;
      d.latents = tf.tensors.at("latents").clone();
      d.image_emb = tf.tensors.at("image_emb").clone();
      d.text_emb = tf.tensors.at("text_emb").clone();
      d.neighbours = tf.tensors.at("neighbours").clone();
      spdlog::info("rdm train: training database from '{}'", path.string());
      return d;
    }
    spdlog::info("rdm train: '{}' was made for other inputs: rebuilding it", path.string());
  }
  RdmData d = build(spec, ae, clip, tokenizer);
  formats::write_safetensors(path,
                             {{"latents", d.latents}, {"image_emb", d.image_emb}, {"text_emb", d.text_emb},
                              {"neighbours", d.neighbours}},
                             {{"key", spec.key}});
  return d;
}

}  // namespace rdm::train::detail
