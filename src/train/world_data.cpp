// Training data from the procedural world (see rdm/train/world_data.hpp).
#include "rdm/train/world_data.hpp"

#include <algorithm>
#include <cstring>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "rdm/clip/preprocess.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/train/loop.hpp"

namespace rdm::train {

const std::vector<std::string>& default_held_out_styles() {
  static const std::vector<std::string> v = {"mosaic", "hatching"};
  return v;
}

std::vector<std::string> training_styles(const std::vector<std::string>& held_out) {
  const auto& all = world::style_names();
  for (const auto& h : held_out)
    if (std::find(all.begin(), all.end(), h) == all.end()) fail("held-out style '{}' is not a world style", h);
  std::vector<std::string> out;
  for (const auto& s : all)
    if (std::find(held_out.begin(), held_out.end(), s) == held_out.end()) out.push_back(s);
  if (out.empty()) fail("every style is held out: nothing left to train on");
  return out;
}

nlohmann::ordered_json world_spec_json(const world::WorldSpec& spec) {
  return {{"seed", spec.seed},         {"styles", spec.styles},           {"objects", spec.objects},
          {"colours", spec.colours},   {"detail_prob", spec.detail_prob}, {"style_prob", spec.style_prob},
          {"size", spec.size}};
}

DataOrder::DataOrder(uint64_t seed, int64_t items) : seed_(seed), items_(items) {
  if (items <= 0) fail("training set size must be positive, got {}", items);
}

int64_t DataOrder::at(int64_t position) {
  const int64_t epoch = position / items_;
  if (epoch != epoch_) {
    perm_.resize(static_cast<size_t>(items_));
    for (int64_t i = 0; i < items_; ++i) perm_[static_cast<size_t>(i)] = i;
    uint64_t state = step_seed(seed_, epoch, 0x6F72646572ull);  // "order"
    for (int64_t i = items_ - 1; i > 0; --i) {
      state = step_seed(state, i);
      const auto j = static_cast<int64_t>(state % static_cast<uint64_t>(i + 1));
      std::swap(perm_[static_cast<size_t>(i)], perm_[static_cast<size_t>(j)]);
    }
    epoch_ = epoch;
  }
  return perm_[static_cast<size_t>(position % items_)];
}

std::vector<int64_t> DataOrder::batch(int64_t step, int64_t batch_size) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(batch_size));
  for (int64_t i = 0; i < batch_size; ++i) out.push_back(at(step * batch_size + i));
  return out;
}

WorldBatch render_batch(const world::WorldSpec& spec, const std::vector<int64_t>& indices) {
  WorldBatch b;
  const auto n = static_cast<int64_t>(indices.size());
  b.indices = indices;
  b.scenes.resize(indices.size());
  b.captions.resize(indices.size());
  b.pixels = torch::empty({n, spec.size, spec.size, 3}, torch::kUInt8);
  uint8_t* dst = b.pixels.data_ptr<uint8_t>();
  const int64_t bytes = int64_t{spec.size} * spec.size * 3;
  at::parallel_for(0, n, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const auto k = static_cast<size_t>(i);
      b.scenes[k] = world::sample_scene(spec, static_cast<uint64_t>(indices[k]));
      b.captions[k] = world::caption(b.scenes[k], world::says_style(spec, b.scenes[k]));
      const world::Picture pic = world::render(b.scenes[k], spec.size);
      std::memcpy(dst + i * bytes, pic.rgb.data(), static_cast<size_t>(bytes));
    }
  });
  return b;
}

torch::Tensor to_signed_unit(const torch::Tensor& pixels) {
  return pixels.permute({0, 3, 1, 2}).to(torch::kFloat32).div(127.5).sub(1.0).contiguous();
}

torch::Tensor to_clip_input(const torch::Tensor& pixels) {
  auto x = pixels.permute({0, 3, 1, 2}).to(torch::kFloat32).div(255.0f);
  auto mean = torch::tensor({clip::kClipMean[0], clip::kClipMean[1], clip::kClipMean[2]}).view({1, 3, 1, 1});
  auto std = torch::tensor({clip::kClipStd[0], clip::kClipStd[1], clip::kClipStd[2]}).view({1, 3, 1, 1});
  return x.sub(mean).div(std).contiguous();
}

}  // namespace rdm::train
