// Training data from the procedural world (rdm/app/world.hpp): a fixed training set of
// `items` world indices, visited in epochs of seeded permutations, so that the pictures of
// step s depend only on (seed, s). Pictures are rendered on the fly (integer rendering: the same
// bytes everywhere), in parallel over the batch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include "rdm/app/world.hpp"

namespace rdm::train {

// Styles held out of every training stage by default: used only as databases at sampling time,
// to show that retrieval carries a style the models never saw.
const std::vector<std::string>& default_held_out_styles();
// world::style_names() without `held_out`; rdm::Error for an unknown name or when nothing is left.
std::vector<std::string> training_styles(const std::vector<std::string>& held_out);

// The spec as JSON (seed, styles, objects, colours, detail_prob, style_prob, size), for the
// configurations stored in checkpoints.
nlohmann::ordered_json world_spec_json(const world::WorldSpec& spec);

// Positions p = step * batch + i of an endless stream over `items` indices: epoch p / items is
// a Fisher-Yates permutation seeded from (seed, epoch).
class DataOrder {
 public:
  DataOrder(uint64_t seed, int64_t items);
  int64_t at(int64_t position);  // world index at stream position
  std::vector<int64_t> batch(int64_t step, int64_t batch_size);
  int64_t items() const { return items_; }

 private:
  uint64_t seed_;
  int64_t items_;
  int64_t epoch_ = -1;
  std::vector<int64_t> perm_;
};

struct WorldBatch {
  std::vector<int64_t> indices;
  std::vector<world::Scene> scenes;
  std::vector<std::string> captions;
  torch::Tensor pixels;  // uint8 [N, size, size, 3]
};

// Scenes, captions (with the style phrase where world::says_style) and rendered pictures of the
// given world indices.
WorldBatch render_batch(const world::WorldSpec& spec, const std::vector<int64_t>& indices);

// uint8 [N, H, W, 3] -> float32 [N, 3, H, W] in [-1, 1] (x / 127.5 - 1, the CompVis range).
torch::Tensor to_signed_unit(const torch::Tensor& pixels);
// uint8 [N, H, W, 3] -> float32 [N, 3, H, W], ToTensor + Normalize with the CLIP constants
// (clip::to_normalized_tensor's transform, batched; equal to it within an ulp).
torch::Tensor to_clip_input(const torch::Tensor& pixels);

}  // namespace rdm::train
