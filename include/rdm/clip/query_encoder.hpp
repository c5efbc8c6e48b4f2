// The query side of retrieval: prompts and images -> L2-normalised CLIP embeddings, the
// embedding knn2img.py makes of its prompt (clip.tokenize -> CLIP.encode_text -> x / x.norm())
// and the RDM's ClipImageEmbedder of an image (preprocess -> CLIP.encode_image). One object
// holds the tokenizer and the model; `rdm sample`, `rdm db search`, `rdm embed` and `rdm db
// build` all embed through it, so the same text or image gives the same bits everywhere.
//
// Numerics: tokens / pixels go to the model's device and dtype, the features are cast to
// float32 and divided by their L2 norm on that device (torch.linalg.vector_norm over the last
// dimension). Batches run `batch` rows per forward pass, in order.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "rdm/clip/clip_model.hpp"
#include "rdm/clip/preprocess.hpp"
#include "rdm/clip/tokenizer.hpp"

namespace rdm::clip {

class QueryEncoder {
 public:
  // Loads the vocabulary (when `vocab` is not empty; without one only images can be encoded)
  // and then the CLIP weights on `device` in `dtype`.
  // ClipParts::TextOnly: prompts only (encode_image_files / image_features throw rdm::Error).
  static QueryEncoder load(const std::filesystem::path& clip, const std::filesystem::path& vocab = {},
                           torch::Device device = torch::kCPU, torch::Dtype dtype = torch::kFloat32,
                           ClipParts parts = ClipParts::All);
  explicit QueryEncoder(ClipModel model, std::optional<Tokenizer> tokenizer = std::nullopt);

  // clip.tokenize at the model's context length: int64 [N, context_length] on the CPU.
  torch::Tensor tokenize(const std::vector<std::string>& texts, bool truncate = true) const;
  // Prompts -> float32 [N, D] rows of unit length on the model's device; `batch` prompts per
  // forward pass (0: all at once). Throws rdm::Error when no vocabulary was loaded.
  torch::Tensor encode_texts(const std::vector<std::string>& texts, bool truncate = true, int64_t batch = 0) const;
  // Image files -> preprocess -> float32 [N, D] rows of unit length on the model's device.
  torch::Tensor encode_image_files(const std::vector<std::filesystem::path>& files, Preprocess preprocess,
                                   int64_t batch = 0) const;
  // Preprocessed pixels [N, 3, R, R] -> float32 [N, D] CLIP image features, NOT normalised
  // (`db build` stores them so; the database normalises its rows).
  torch::Tensor image_features(const torch::Tensor& pixels) const;
  // Features [N, D] -> float32 rows divided by their L2 norm.
  static torch::Tensor normalize(const torch::Tensor& features);

  const ClipModel& model() const { return model_; }
  const ClipConfig& config() const { return model_.config(); }
  bool has_tokenizer() const { return tokenizer_.has_value(); }
  const Tokenizer& tokenizer() const;  // throws rdm::Error when no vocabulary was loaded

 private:
  ClipModel model_;
  std::optional<Tokenizer> tokenizer_;
};

}  // namespace rdm::clip
