// Image decoding keeping Pillow's image modes (see include/rdm/image/image.hpp).
// PNG: the PNG decoder of png_decode.cpp without value transforms, mapped like Pillow 9.4's
//   PngImagePlugin._MODES: grey 1 bit -> "1"; grey 2/4/8 bit -> "L" (raw values, not
//   rescaled); grey 16 bit -> "I"; RGB 8/16 -> "RGB" (16 bit: high byte); palette 1..8 bit ->
//   "P" (+ PLTE); grey+alpha 8 -> "LA"; grey+alpha 16 -> "RGBA" (grey replicated, high bytes);
//   RGBA 8/16 -> "RGBA". tRNS and gamma chunks are ignored, as Pillow's resize and
//   convert("RGB") ignore them.
// BMP with 1/4/8-bit palettes: read directly (Pillow keeps them as P, or 1/L for grey ramps).
// Other formats: src/io/image_codec.hpp (OpenCV imdecode, or libjpeg/libwebp in the lite build);
// 1 channel -> "L", 3 -> "RGB", 4 -> "RGBA"; 16-bit data keeps the high byte.
#include "rdm/image/image.hpp"

#include <cstring>
#include <fstream>
#include <memory>

#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "image/image_codec.hpp"
#include "image/png_decode.hpp"
#include "rdm/image/image_formats.hpp"
#include "rdm/io/safe_file.hpp"

namespace rdm::image {
namespace fs = std::filesystem;

const char* image_mode_name(ImageMode m) {
  switch (m) {
    case ImageMode::One: return "1";
    case ImageMode::L: return "L";
    case ImageMode::LA: return "LA";
    case ImageMode::P: return "P";
    case ImageMode::RGB: return "RGB";
    case ImageMode::RGBA: return "RGBA";
    case ImageMode::I: return "I";
  }
  return "?";
}

int image_mode_channels(ImageMode m) {
  switch (m) {
    case ImageMode::LA: return 2;
    case ImageMode::RGB: return 3;
    case ImageMode::RGBA: return 4;
    default: return 1;
  }
}

namespace {

uint32_t be32(const unsigned char* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
uint16_t be16(const unsigned char* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t le32(const unsigned char* p) { return p[0] | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24); }
uint16_t le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

std::pair<int64_t, int64_t> probe_bytes(const std::string& d) {
  auto u = reinterpret_cast<const unsigned char*>(d.data());
  const size_t n = d.size();
  if (n >= 24 && std::memcmp(u, "\x89PNG\r\n\x1a\n", 8) == 0 && std::memcmp(u + 12, "IHDR", 4) == 0)
    return {be32(u + 16), be32(u + 20)};
  if (n >= 4 && u[0] == 0xFF && u[1] == 0xD8) {  // JPEG: walk the markers to the first SOFn
    size_t i = 2;
    while (i + 4 <= n) {
      if (u[i] != 0xFF) return {-1, -1};
      unsigned m = u[i + 1];
      if (m == 0xFF) { ++i; continue; }
      if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { i += 2; continue; }
      const size_t len = be16(u + i + 2);
      if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
        if (i + 9 > n) return {-1, -1};
        return {be16(u + i + 7), be16(u + i + 5)};
      }
      if (len < 2) return {-1, -1};
      i += 2 + len;
    }
    return {-1, -1};
  }
  if (n >= 30 && std::memcmp(u, "RIFF", 4) == 0 && std::memcmp(u + 8, "WEBP", 4) == 0) {
    if (std::memcmp(u + 12, "VP8 ", 4) == 0) return {le16(u + 26) & 0x3FFF, le16(u + 28) & 0x3FFF};
    if (std::memcmp(u + 12, "VP8L", 4) == 0 && n >= 25) {
      const uint32_t b = le32(u + 21);
      return {(b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1};
    }
    if (std::memcmp(u + 12, "VP8X", 4) == 0)
      return {1 + (u[24] | (u[25] << 8) | (u[26] << 16)), 1 + (u[27] | (u[28] << 8) | (u[29] << 16))};
    return {-1, -1};
  }
  if (n >= 26 && u[0] == 'B' && u[1] == 'M') {
    const uint32_t hs = le32(u + 14);
    if (hs == 12) return {le16(u + 18), le16(u + 20)};
    const auto w = static_cast<int32_t>(le32(u + 18)), h = static_cast<int32_t>(le32(u + 22));
    return {std::abs(static_cast<int64_t>(w)), std::abs(static_cast<int64_t>(h))};
  }
  if (n >= 10 && (std::memcmp(u, "GIF87a", 6) == 0 || std::memcmp(u, "GIF89a", 6) == 0)) return {le16(u + 6), le16(u + 8)};
  return {-1, -1};
}


// PNG in Pillow's modes through the one PNG decoder; errors name the file.
Image decode_png_modes(const fs::path& p, std::string_view bytes, int64_t max_pixels) {
  detail::PngDecodeOptions o;
  o.pixels = detail::PngPixels::Modes;
  o.max_pixels = max_pixels;
  detail::PngDecoded d = detail::decode_png_bytes(bytes, o);
  if (!d.failure) return std::move(d.image);
  const detail::PngFailure& f = *d.failure;
  switch (f.kind) {
    case detail::PngFailure::TooLarge: detail::check_image_size(p, f.width, f.height, max_pixels); break;
    case detail::PngFailure::NoMemory: fail("image '{}': libpng initialisation failed", p.string());
    case detail::PngFailure::UnsupportedColourType: fail("image '{}': unsupported PNG colour type {}", p.string(), f.colour_type);
    case detail::PngFailure::NotPng:
    case detail::PngFailure::Corrupt: break;
  }
  fail("image '{}': corrupt PNG ({})", p.string(), f.message);
}

// Uncompressed 1/4/8-bit BMP, decoded like Pillow 9.4's BmpImagePlugin: a palette that is
// exactly the grey ramp (0, 255 for two colours) gives mode "1" / "L" (raw indices), any other
// palette gives mode "P". Returns false for every other BMP (decode_other reads those).
bool decode_bmp_palette(const fs::path& p, const std::string& d, Image& img) {
  auto u = reinterpret_cast<const unsigned char*>(d.data());
  const size_t n = d.size();
  if (n < 26 || u[0] != 'B' || u[1] != 'M') return false;
  const uint32_t offset = le32(u + 10), hs = le32(u + 14);
  int64_t w, h;
  int bits, entry;
  uint32_t colors = 0;
  if (hs == 12) {
    w = le16(u + 18), h = static_cast<int16_t>(le16(u + 20)), bits = le16(u + 24), entry = 3;
  } else if (hs >= 40 && n >= 54) {
    w = static_cast<int32_t>(le32(u + 18)), h = static_cast<int32_t>(le32(u + 22)), bits = le16(u + 28), entry = 4;
    if (le32(u + 30) != 0) return false;  // compressed: OpenCV
    colors = le32(u + 46);
  } else {
    return false;
  }
  if (bits != 1 && bits != 4 && bits != 8) return false;
  if (colors == 0 || colors > (1u << bits)) colors = 1u << bits;
  const bool top_down = h < 0;
  h = h < 0 ? -h : h;
  if (w <= 0 || h <= 0) fail("image '{}': invalid BMP size {}x{}", p.string(), w, h);
  const size_t pal_at = 14 + hs, stride = static_cast<size_t>((w * bits + 31) / 32) * 4;
  if (pal_at + size_t(colors) * entry > n || offset > n || offset + stride * size_t(h) > n)
    fail("image '{}': truncated BMP", p.string());
  bool grey = true;
  for (uint32_t i = 0; i < colors; ++i) {
    const unsigned char* e = u + pal_at + size_t(i) * entry;
    const unsigned v = colors == 2 ? (i ? 255u : 0u) : i;
    if (e[0] != v || e[1] != v || e[2] != v) grey = false;
  }
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.format = "BMP";
  img.mode = grey ? (colors == 2 ? ImageMode::One : ImageMode::L) : ImageMode::P;
  img.pixels.resize(size_t(w) * size_t(h));
  for (int64_t y = 0; y < h; ++y) {
    const unsigned char* row = u + offset + stride * size_t(top_down ? y : h - 1 - y);
    for (int64_t x = 0; x < w; ++x) {
      const size_t bit = size_t(x) * bits;
      const unsigned v = (row[bit / 8] >> (8 - bits - bit % 8)) & ((1u << bits) - 1);
      img.pixels[size_t(y) * w + x] = static_cast<uint8_t>(img.mode == ImageMode::One ? (v ? 255 : 0) : v);
    }
  }
  if (img.mode == ImageMode::P) {
    img.palette.assign(256 * 3, 0);
    for (uint32_t i = 0; i < colors; ++i) {
      const unsigned char* e = u + pal_at + size_t(i) * entry;
      img.palette[3 * i] = e[2], img.palette[3 * i + 1] = e[1], img.palette[3 * i + 2] = e[0];
    }
  }
  return true;
}

}  // namespace

std::pair<int64_t, int64_t> probe_image_size(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return {-1, -1};
  std::string head(1 << 16, '\0');
  f.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(f.gcount()));
  return probe_bytes(head);
}

Image read_image(const fs::path& path, int64_t max_pixels) {
  if (!fs::exists(path)) fail("image '{}' does not exist", path.string());
  if (!fs::is_regular_file(path)) fail("image '{}' is not a regular file", path.string());
  std::string data = io::read_regular_file(path, kMaxImageFileBytes);
  if (data.empty()) fail("image '{}' is empty", path.string());
  auto [w, h] = probe_bytes(data);
  if (w >= 0) detail::check_image_size(path, w, h, max_pixels);
  if (data.size() >= 8 && std::memcmp(data.data(), "\x89PNG\r\n\x1a\n", 8) == 0)
    return decode_png_modes(path, data, max_pixels);
  if (is_gif(data)) return decode_gif(data, path.string(), max_pixels);
  if (is_ico(data))
    return decode_ico(data, path.string(), max_pixels,
                      [&](std::string_view png) { return decode_png_modes(path, png, max_pixels); });
  if (const char* kind = unsupported_format(data))
    fail("image '{}': {} is not a format rdm reads", path.string(), kind);
  if (Image bmp; decode_bmp_palette(path, data, bmp)) return bmp;
  Image img = detail::decode_other(path, data, max_pixels);
  if (data.size() >= 3 && static_cast<unsigned char>(data[0]) == 0xFF && static_cast<unsigned char>(data[1]) == 0xD8) img.format = "JPEG";
  else if (data.size() >= 12 && data.compare(8, 4, "WEBP") == 0) img.format = "WEBP";
  else if (data.size() >= 2 && data.compare(0, 2, "BM") == 0) img.format = "BMP";
  else img.format = "other";
  return img;
}

RgbImage::RgbImage(int64_t h, int64_t w, uint8_t fill) {
  width = static_cast<int>(w);
  height = static_cast<int>(h);
  pixels.assign(static_cast<size_t>(h * w * 3), fill);
}

RgbImage::RgbImage(Image rgb) : Image(std::move(rgb)) {
  if (mode != ImageMode::RGB)
    fail("expected an RGB image, got mode {} (convert it with to_rgb)", image_mode_name(mode));
}

RgbImage to_rgb(const Image& img) {
  RgbImage out;
  out.width = img.width;
  out.height = img.height;
  out.format = img.format;
  const size_t n = size_t(img.width) * img.height;
  out.pixels.resize(n * 3);
  for (size_t i = 0; i < n; ++i) {
    uint8_t r, g, b;
    switch (img.mode) {
      case ImageMode::One:
      case ImageMode::L: r = g = b = img.pixels[i]; break;
      case ImageMode::LA: r = g = b = img.pixels[2 * i]; break;
      case ImageMode::I: {
        const int32_t v = img.pixels_i[i];
        r = g = b = static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);  // Pillow clips I -> 8 bit
        break;
      }
      case ImageMode::P: {
        const size_t k = size_t(img.pixels[i]) * 3;
        r = img.palette[k], g = img.palette[k + 1], b = img.palette[k + 2];
        break;
      }
      case ImageMode::RGB: r = img.pixels[3 * i], g = img.pixels[3 * i + 1], b = img.pixels[3 * i + 2]; break;
      case ImageMode::RGBA: r = img.pixels[4 * i], g = img.pixels[4 * i + 1], b = img.pixels[4 * i + 2]; break;
      default: r = g = b = 0;
    }
    out.pixels[3 * i] = r, out.pixels[3 * i + 1] = g, out.pixels[3 * i + 2] = b;
  }
  return out;
}

namespace detail {
void check_image_size(const fs::path& p, int64_t w, int64_t h, int64_t max_pixels) {
  if (w <= 0 || h <= 0) fail("image '{}': invalid size {}x{}", p.string(), w, h);
  if (w * h > max_pixels)
    fail("image '{}': {}x{} = {} pixels exceeds the limit of {} (decompression bomb?)", p.string(), w, h, w * h, max_pixels);
}
}  // namespace detail

}  // namespace rdm::image
