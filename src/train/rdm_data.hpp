// Internal: the precomputed training database of `rdm train rdm` (see rdm/train/rdm.hpp):
// first-stage latents, CLIP image and caption embeddings and the k nearest neighbours of every
// training picture, cached in OUT/train_data.safetensors.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include <torch/types.h>

#include "rdm/app/world.hpp"
#include "rdm/clip/clip_model.hpp"
#include "rdm/clip/tokenizer.hpp"
#include "rdm/ldm/autoencoder.hpp"

namespace rdm::train::detail {

struct RdmData {
  torch::Tensor latents;     // float32 [N, C, h, w]: posterior means (unscaled)
  torch::Tensor image_emb;   // float32 [N, D], unit norm
  torch::Tensor text_emb;    // float32 [N, D], unit norm (the captions)
  torch::Tensor neighbours;  // int64 [N, k or the pool]: most similar first, never the item itself
};

struct RdmDataSpec {
  world::WorldSpec world;
  int64_t items = 0;
  int64_t knn = 0;  // neighbours stored per picture (RdmTrainConfig: the pool when there is one)
  std::string key;  // identifies the inputs (config + model hashes): a cache with another key is rebuilt
};

// Loads the cache at `path` when its key matches, else computes (batches of 64 under NoGrad,
// on the CPU) and writes it.
RdmData load_or_build_rdm_data(const std::filesystem::path& path, const RdmDataSpec& spec, ldm::AutoencoderKL& ae,
                               const clip::ClipModel& clip, const clip::Tokenizer& tokenizer);

// The k nearest rows of unit-norm `emb` for every row by inner product, the row itself excluded
// (ties: the lower index first). Brute force in blocks.
torch::Tensor nearest_neighbours(const torch::Tensor& emb, int64_t k);

// k distinct entries of every row of `pools` (int64 [B, P], P >= k) drawn uniformly with `g`,
// kept in their order in the row (most similar first): int64 [B, k].
torch::Tensor draw_from_pools(const torch::Tensor& pools, int64_t k, at::Generator& g);

}  // namespace rdm::train::detail
