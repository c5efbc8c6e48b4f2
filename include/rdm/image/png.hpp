// PNG files with text chunks (libpng): the output format of `rdm sample`.
// Every image carries its parameters: a human-readable `parameters` chunk (the layout other
// diffusion tools write: prompt line, then "Steps: 50, Sampler: DDIM, ...") and an `rdm` chunk
// holding the full JSON record. ASCII text goes into tEXt chunks, anything else into iTXt
// (UTF-8). Images are 8-bit RGB (RgbImage, image.hpp), row-major [H, W, 3] like the reference's
// uint8 HWC arrays.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "rdm/image/image.hpp"

namespace rdm::image {

struct PngText {
  std::string key;   // 1..79 Latin-1 characters
  std::string text;  // UTF-8
};

struct PngFile {
  RgbImage image;
  std::vector<PngText> text;  // in file order (tEXt, zTXt and iTXt)
  // The text of the first chunk with this key, if any.
  std::optional<std::string> find(const std::string& key) const;
};

// Largest image accepted by the readers (width * height), against decompression bombs.
inline constexpr int64_t kMaxPngPixels = int64_t(1) << 28;

// Encodes to PNG bytes. Throws rdm::Error on bad sizes or keys.
std::string encode_png(const RgbImage& image, const std::vector<PngText>& text = {});
// Encodes and writes atomically (temp file + rename).
void write_png(const std::filesystem::path& path, const RgbImage& image,
               const std::vector<PngText>& text = {});

// Decodes any PNG (palette, grey, 16-bit, alpha are converted to 8-bit RGB; alpha dropped) with
// the decoder read_image uses (src/image/png_decode.hpp), reading the text chunks too.
// Throws rdm::Error naming `name` for corrupt, truncated or oversized input.
PngFile decode_png(const std::string& bytes, const std::string& name = "<memory>");
PngFile read_png(const std::filesystem::path& path);
// The text chunks of a PNG file (before and after the image data).
std::vector<PngText> read_png_text(const std::filesystem::path& path);

}  // namespace rdm::image
