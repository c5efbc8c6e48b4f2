// CLIP image preprocessing, a port of clip.clip._transform (torchvision Resize(BICUBIC) +
// CenterCrop + convert("RGB") + ToTensor + Normalize on Pillow 9.4) that reproduces Pillow's
// fixed-point antialiased bicubic resampling and its per-mode rules bit for bit; and the RDM
// image embedder's variant (ldm/modules/encoders/modules.py FrozenClipImageEmbedder.preprocess).
#pragma once
#include <cstdint>
#include <filesystem>
#include <utility>

#include <torch/types.h>

#include "rdm/image/image.hpp"

namespace rdm::clip {

// Clip: standard CLIP transform (shorter side -> R with Pillow bicubic, center crop R).
// Rdm:  FrozenClipImageEmbedder: RGB in [-1, 1], torch bicubic (a = -0.75) with
//       align_corners=True and no antialias straight to R x R, (x+1)/2, normalise.
enum class Preprocess { Clip, Rdm };

// CLIP normalisation constants (float32).
inline constexpr float kClipMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
inline constexpr float kClipStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};

// Decodes `image` (rdm::io::read_image) and preprocesses it: float32 [3, R, R].
torch::Tensor preprocess_file(const std::filesystem::path& image, int64_t resolution,
                              Preprocess = Preprocess::Clip);
torch::Tensor preprocess_image(const image::Image& image, int64_t resolution,
                               Preprocess = Preprocess::Clip);

// Building blocks (exposed for tests).
// torchvision Resize(size) target for a w x h image: shorter side = size, longer side
// int(size * long / short) (double arithmetic, truncated).
std::pair<int, int> resize_target(int width, int height, int size);
// CenterCrop offsets (left, top) with Python round-half-to-even.
std::pair<int, int> center_crop_offsets(int width, int height, int crop);
// Pillow Image.resize(size, BICUBIC) in the image's own mode (P and 1 with NEAREST, RGBA and
// LA premultiplied, I with the 32-bit path). Same size -> copy.
image::Image pil_resize(const image::Image& image, int width, int height);
// Pillow crop (pads with zeros outside the image, as torchvision's CenterCrop does).
image::Image pil_crop(const image::Image& image, int left, int top, int width, int height);
// RGB uint8 image -> ToTensor + Normalize (float32 steps) -> [3, H, W].
torch::Tensor to_normalized_tensor(const image::Image& rgb,
                                   const float (&mean)[3] = kClipMean,
                                   const float (&std)[3] = kClipStd);

}  // namespace rdm::clip
