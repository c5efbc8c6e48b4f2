// The image type of rdm, and image file decoding that keeps what Pillow calls the image "mode"
// (1, L, LA, P, RGB, RGBA, I), so that CLIP preprocessing can follow Pillow's per-mode rules.
// PNG is decoded with libpng (palette indices and bit depths preserved; the same decoder as
// png.hpp's read_png, src/image/png_decode.hpp); every other format (JPEG, WEBP, BMP,
// TIFF, ...) with OpenCV (IMREAD_UNCHANGED | IMREAD_IGNORE_ORIENTATION). EXIF orientation is
// never applied.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace rdm::image {

// Pillow's mode names. I = 32-bit signed grey (Pillow opens 16-bit grey PNG as "I").
enum class ImageMode { One, L, LA, P, RGB, RGBA, I };
const char* image_mode_name(ImageMode m);
int image_mode_channels(ImageMode m);  // 1 for 1/L/P/I, 2 for LA, 3 RGB, 4 RGBA

struct Image {
  int width = 0, height = 0;
  ImageMode mode = ImageMode::RGB;
  // Interleaved channels, row-major. 1 bit: one byte per pixel, 0 or 255 (as Pillow stores it).
  std::vector<uint8_t> pixels;
  std::vector<int32_t> pixels_i;  // mode I only (one int32 per pixel)
  std::vector<uint8_t> palette;   // mode P: RGB triplets, 256 entries (missing ones black)
  std::string format;             // "PNG", "JPEG", ... (informative)
  int channels() const { return image_mode_channels(mode); }
};

// An Image of mode RGB: 8-bit, row-major H x W x 3, interleaved. What rdm generates, draws and
// writes (png.hpp), and what to_rgb returns; every Image operation applies to it.
struct RgbImage : Image {
  RgbImage() = default;
  RgbImage(int64_t height, int64_t width, uint8_t fill = 0);
  // Takes an image of mode RGB; rdm::Error for any other mode (convert those with to_rgb).
  explicit RgbImage(Image rgb);
  uint8_t* at(int64_t y, int64_t x) { return pixels.data() + (y * width + x) * 3; }
  const uint8_t* at(int64_t y, int64_t x) const { return pixels.data() + (y * width + x) * 3; }
};

// Pillow's Image.MAX_IMAGE_PIXELS * 2 (its DecompressionBombError threshold).
constexpr int64_t kDefaultMaxImagePixels = 2LL * 89478485;

// Decodes a file. Dimensions are checked against `max_pixels` from the header before the
// pixels are decoded where the format allows (PNG, JPEG, WEBP, BMP, GIF), otherwise right
// after decoding. Throws rdm::Error naming the file for missing, empty, corrupt, unsupported
// or too large images.
Image read_image(const std::filesystem::path& path, int64_t max_pixels = kDefaultMaxImagePixels);

// Width and height from the file header without decoding (PNG, JPEG, WEBP, BMP, GIF);
// {-1, -1} for a format it does not know.
std::pair<int64_t, int64_t> probe_image_size(const std::filesystem::path& path);

// Pillow's convert("RGB"): grey replicated, alpha dropped, palette looked up, 1 -> 0/255,
// I clipped to 0..255.
RgbImage to_rgb(const Image& img);

}  // namespace rdm::image
