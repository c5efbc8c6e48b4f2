// PNG files with text chunks (libpng): the output format of `rdm sample`.
// Every image carries its parameters: a human-readable `parameters` chunk (the layout other
// diffusion tools write: prompt line, then "Steps: 50, Sampler: DDIM, ...") and an `rdm` chunk
// holding the full JSON record. ASCII text goes into tEXt chunks, anything else into iTXt
// (UTF-8). Images are 8-bit RGB, row-major [H, W, 3] like the reference's uint8 HWC arrays.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace rdm::image {

// 8-bit RGB image, row-major H x W x 3 (no torch: cheap to include anywhere).
struct RgbImage {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> pixels;  // height * width * 3 bytes
  RgbImage() = default;
  RgbImage(int64_t h, int64_t w, uint8_t fill = 0)
      : height(h), width(w), pixels(static_cast<size_t>(h * w * 3), fill) {}
  uint8_t* at(int64_t y, int64_t x) { return pixels.data() + (y * width + x) * 3; }
  const uint8_t* at(int64_t y, int64_t x) const { return pixels.data() + (y * width + x) * 3; }
};

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

// Decodes any PNG (palette, grey, 16-bit, alpha are converted to 8-bit RGB; alpha dropped).
// Throws rdm::Error naming `name` for corrupt, truncated or oversized input.
PngFile decode_png(const std::string& bytes, const std::string& name = "<memory>");
PngFile read_png(const std::filesystem::path& path);
// The text chunks of a PNG file (before and after the image data).
std::vector<PngText> read_png_text(const std::filesystem::path& path);

}  // namespace rdm::image
