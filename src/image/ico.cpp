// ICO decoding: the directory and the BMP (DIB) payload parsed here with every offset and
// size checked against the buffer; PNG payloads go to the caller's PNG decoder. Follows
// Pillow's IcoImagePlugin (entry choice, AND mask, 32-bit alpha) -- see gif_ico.hpp.
#include <cmath>
#include <vector>
#include <cstring>

#include "rdm/runtime/error.hpp"
#include "rdm/image/image_formats.hpp"

namespace rdm::image {

namespace {
uint32_t u16(std::string_view d, size_t o) {
  return static_cast<uint32_t>(static_cast<unsigned char>(d[o])) |
         static_cast<uint32_t>(static_cast<unsigned char>(d[o + 1])) << 8;
}
uint32_t u32(std::string_view d, size_t o) { return u16(d, o) | u16(d, o + 2) << 16; }

struct Entry {
  int64_t width, height, square, depth;
  uint32_t size, offset;
};

// Pillow's order: sorted by colour depth, then by area (stable), reversed; it opens the first.
Entry pick_entry(std::string_view d, const std::string& name) {
  const uint32_t count = u16(d, 4);
  if (d.size() < 6 + 16ull * count) fail("ICO '{}': directory of {} entries is truncated", name, count);
  Entry best{};
  bool have = false;
  for (uint32_t i = 0; i < count; ++i) {
    const size_t o = 6 + 16 * static_cast<size_t>(i);
    Entry e;
    e.width = static_cast<unsigned char>(d[o]) ? static_cast<unsigned char>(d[o]) : 256;
    e.height = static_cast<unsigned char>(d[o + 1]) ? static_cast<unsigned char>(d[o + 1]) : 256;
    const uint32_t colors = static_cast<unsigned char>(d[o + 2]);
    const uint32_t bpp = u16(d, o + 6);
    // Pillow: bpp or ceil(log2(colours)) or 256 (Python's `or`: a 0 falls through).
    const int64_t from_colors = colors ? static_cast<int64_t>(std::ceil(std::log2(colors))) : 0;
    e.depth = bpp ? bpp : from_colors ? from_colors : 256;
    e.square = e.width * e.height;
    e.size = u32(d, o + 8);
    e.offset = u32(d, o + 12);
    // >=: among equal keys the reversed sort puts the last one in file order first.
    if (!have || e.square > best.square || (e.square == best.square && e.depth >= best.depth)) best = e;
    have = true;
  }
  if (static_cast<uint64_t>(best.offset) + best.size > d.size() || best.size < 8)
    fail("ICO '{}': the {}x{} entry (offset {}, {} bytes) lies outside the {}-byte file", name, best.width,
         best.height, best.offset, best.size, d.size());
  return best;
}

// The DIB payload (BITMAPINFOHEADER, height doubled for the AND mask) -> RGBA.
Image decode_dib(std::string_view p, const std::string& name, int64_t max_pixels) {
  if (p.size() < 40) fail("ICO '{}': bitmap header is truncated", name);
  const uint32_t hsize = u32(p, 0);
  if (hsize < 40 || hsize > p.size()) fail("ICO '{}': bad bitmap header size {}", name, hsize);
  const int64_t w = static_cast<int32_t>(u32(p, 4));
  const int64_t h2 = static_cast<int32_t>(u32(p, 8));
  const uint32_t bpp = u16(p, 14), compression = u32(p, 16);
  uint32_t used = u32(p, 32);
  if (compression != 0) fail("ICO '{}': compressed bitmaps (compression {}) are not supported", name, compression);
  if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 24 && bpp != 32)
    fail("ICO '{}': {}-bit bitmaps are not supported (1, 4, 8, 24, 32)", name, bpp);
  const bool top_down = h2 < 0;
  const int64_t h = (top_down ? -h2 : h2) / 2;
  if (w <= 0 || h <= 0 || w > 65535 || h > 65535) fail("ICO '{}': bad bitmap size {}x{}", name, w, h);
  if (w * h > max_pixels)
    fail("image '{}' has {}x{} = {} pixels, over the limit of {} (decompression bomb?)", name, w, h, w * h, max_pixels);
  size_t pos = hsize;
  std::vector<uint8_t> pal;
  if (bpp <= 8) {
    const uint32_t max_colors = 1u << bpp;
    if (used == 0 || used > max_colors) used = max_colors;
    if (pos + 4ull * used > p.size()) fail("ICO '{}': bitmap palette is truncated", name);
    pal.assign(256 * 3, 0);
    for (uint32_t i = 0; i < used; ++i) {
      pal[3 * i] = static_cast<uint8_t>(p[pos + 4 * i + 2]);
      pal[3 * i + 1] = static_cast<uint8_t>(p[pos + 4 * i + 1]);
      pal[3 * i + 2] = static_cast<uint8_t>(p[pos + 4 * i]);
    }
    pos += 4ull * used;
  }
  const size_t stride = ((static_cast<size_t>(w) * bpp + 31) / 32) * 4;
  if (pos + stride * static_cast<size_t>(h) > p.size()) fail("ICO '{}': bitmap data is truncated", name);
  const size_t mask_stride = ((static_cast<size_t>(w) + 31) / 32) * 4;
  const size_t mask_bytes = mask_stride * static_cast<size_t>(h);
  // Pillow reads the AND mask from the end of the entry.
  if (bpp != 32 && mask_bytes > p.size()) fail("ICO '{}': AND mask is truncated", name);
  const size_t mask_pos = bpp == 32 ? 0 : p.size() - mask_bytes;

  Image img;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.mode = ImageMode::RGBA;
  img.format = "ICO";
  img.pixels.resize(static_cast<size_t>(w * h) * 4);
  for (int64_t y = 0; y < h; ++y) {
    const int64_t src_row = top_down ? y : h - 1 - y;
    const auto* row = reinterpret_cast<const uint8_t*>(p.data() + pos + stride * static_cast<size_t>(src_row));
    const uint8_t* mrow = bpp == 32 ? nullptr
        : reinterpret_cast<const uint8_t*>(p.data() + mask_pos + mask_stride * static_cast<size_t>(src_row));
    for (int64_t x = 0; x < w; ++x) {
      uint8_t* o = img.pixels.data() + (y * w + x) * 4;
      if (bpp <= 8) {
        const size_t bit = static_cast<size_t>(x) * bpp;
        const uint32_t idx = (row[bit / 8] >> (8 - bpp - bit % 8)) & ((1u << bpp) - 1);
        std::memcpy(o, &pal[3 * idx], 3);
      } else {
        const uint8_t* s = row + x * (bpp / 8);
        o[0] = s[2], o[1] = s[1], o[2] = s[0];
      }
      if (bpp == 32) o[3] = row[x * 4 + 3];
      else o[3] = ((mrow[x / 8] >> (7 - x % 8)) & 1) ? 0 : 255;
    }
  }
  return img;
}
}  // namespace

bool is_ico(std::string_view d) { return d.size() >= 6 && u16(d, 0) == 0 && u16(d, 2) == 1 && u16(d, 4) > 0; }

Image decode_ico(std::string_view data, const std::string& name, int64_t max_pixels,
                 const std::function<Image(std::string_view png)>& decode_png_payload) {
  if (!is_ico(data)) fail("'{}' is not an ICO file", name);
  const Entry e = pick_entry(data, name);
  std::string_view payload = data.substr(e.offset, e.size);
  if (payload.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8)) {
    Image img = decode_png_payload(payload);
    img.format = "ICO";
    return img;
  }
  return decode_dib(payload, name, max_pixels);
}

}  // namespace rdm::image
