// Query embeddings (see query_encoder.hpp): the prompt embedding of scripts/knn2img.py and the
// image embedding of the RDM's ClipImageEmbedder, on top of clip/model.py and clip/clip.py.
#include "rdm/clip/query_encoder.hpp"

#include <algorithm>

#include <torch/torch.h>

#include "rdm/runtime/error.hpp"

namespace rdm::clip {
namespace fs = std::filesystem;

QueryEncoder QueryEncoder::load(const fs::path& clip, const fs::path& vocab, torch::Device device,
                                torch::Dtype dtype, ClipParts parts) {
  std::optional<Tokenizer> tokenizer;
  if (!vocab.empty()) tokenizer = Tokenizer::load(vocab);  // the small file first: fail before the weights
  return QueryEncoder(ClipModel::load(clip, device, dtype, parts), std::move(tokenizer));
}

QueryEncoder::QueryEncoder(ClipModel model, std::optional<Tokenizer> tokenizer)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)) {}

const Tokenizer& QueryEncoder::tokenizer() const {
  if (!tokenizer_) fail("CLIP {}: no vocabulary was loaded, so prompts cannot be encoded", model_.identity());
  return *tokenizer_;
}

torch::Tensor QueryEncoder::normalize(const torch::Tensor& features) {
  const torch::Tensor z = features.to(torch::kFloat32);
  return z / at::linalg_vector_norm(z, 2, std::vector<int64_t>{-1}, /*keepdim=*/true);
}

torch::Tensor QueryEncoder::tokenize(const std::vector<std::string>& texts, bool truncate) const {
  return tokenizer().tokenize(texts, config().context_length, truncate);
}

torch::Tensor QueryEncoder::encode_texts(const std::vector<std::string>& texts, bool truncate, int64_t batch) const {
  if (texts.empty()) fail("CLIP {}: no prompts to encode", model_.identity());
  const torch::Tensor rows = tokenize(texts, truncate);
  const int64_t n = rows.size(0), step = batch > 0 ? batch : std::max<int64_t>(n, 1);
  std::vector<torch::Tensor> parts;
  for (int64_t b = 0; b < n; b += step) parts.push_back(normalize(model_.encode_text(rows.slice(0, b, b + step))));
  return parts.size() == 1 ? parts[0] : torch::cat(parts);
}

torch::Tensor QueryEncoder::encode_image_files(const std::vector<fs::path>& files, Preprocess preprocess,
                                               int64_t batch) const {
  if (files.empty()) fail("CLIP {}: no images to encode", model_.identity());
  const size_t n = files.size(), step = batch > 0 ? static_cast<size_t>(batch) : std::max<size_t>(n, 1);
  std::vector<torch::Tensor> parts;
  for (size_t b = 0; b < n; b += step) {
    std::vector<torch::Tensor> pixels;
    for (size_t i = b; i < std::min(n, b + step); ++i)
      pixels.push_back(preprocess_file(files[i], config().image_resolution, preprocess));
    parts.push_back(normalize(image_features(torch::stack(pixels))));
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts);
}

torch::Tensor QueryEncoder::image_features(const torch::Tensor& pixels) const {
  return model_.encode_image(pixels).to(torch::kFloat32);
}

}  // namespace rdm::clip
