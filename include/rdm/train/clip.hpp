// `rdm train clip`: a small CLIP (ViT vision tower + causal text transformer, the OpenAI module
// tree and key names of rdm/clip/clip_model.hpp) trained contrastively on world picture-caption
// pairs with a learned temperature (logit_scale, clamped at 100 as in the reference training),
// and its own BPE vocabulary learned from the training captions (rdm/train/bpe.hpp).
//
// Writes clip.safetensors (OpenAI names; the ClipConfig in the metadata "config", which
// clip::ClipModel::load reads) and clip.vocab.txt.gz beside it (the name the model resolver
// looks for beside a CLIP file). Pictures are the CLIP input as they are (image_resolution =
// picture size: resize and crop are identities), normalised with the CLIP constants.
//
// Captions repeat ("a red boat"): pairs with the same caption are all positives (the targets of
// each row are spread over them), so that duplicates are not pushed apart.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "rdm/app/world.hpp"
#include "rdm/clip/clip_model.hpp"
#include "rdm/train/loop.hpp"

namespace rdm::train {

struct ClipTrainConfig {
  int64_t width = 128;          // both transformers
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t embed_dim = 128;      // joint embedding (the RDM's context width)
  int64_t patch = 8;            // 64 / 8 = 8x8 patches
  int64_t context_length = 32;  // captions are short
  int64_t max_merges = 2000;    // BPE merges (vocabulary = 512 + merges + 2)
  world::WorldSpec world = default_world();
  int64_t items = 100000;
  int64_t batch = 64;

  static world::WorldSpec default_world() {
    world::WorldSpec w;
    w.style_prob = 0.5;  // half of the captions name their style
    return w;
  }
  // The model config; vocab_size from the learned vocabulary.
  clip::ClipConfig model_config(int64_t vocab_size) const;
  std::string to_json() const;
};

// The task for run(). Learns the vocabulary from the captions of the training set and writes it
// to OUT/clip.vocab.txt.gz before the first step (the same file on a resume).
std::unique_ptr<Task> make_clip_task(const ClipTrainConfig& config, const std::filesystem::path& out,
                                     uint64_t init_seed, torch::Device device = torch::kCPU);

TrainReport train_clip(const ClipTrainConfig& config, const TrainOptions& options, const TrainProgressFn& progress = {});

std::filesystem::path clip_weights_path(const std::filesystem::path& out);  // clip.safetensors
std::filesystem::path clip_vocab_path(const std::filesystem::path& out);    // clip.vocab.txt.gz

}  // namespace rdm::train
