// Internal: the one PNG decoder (libpng) behind read_image (image.hpp: Pillow's modes) and
// read_png / decode_png (png.hpp: 8-bit RGB and the text chunks). One libpng session, one
// error path and one set of limits; the two callers differ only in what they ask for.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rdm/image/image.hpp"
#include "rdm/image/png.hpp"

namespace rdm::image::detail {

enum class PngPixels {
  // Pillow 9.4's PngImagePlugin modes, sample values as stored (see image.cpp's header):
  // grey 1 -> "1", 2/4/8 -> "L" (not rescaled), 16 -> "I"; palette -> "P"; grey+alpha 8 -> "LA",
  // 16 -> "RGBA"; RGB(A) 16 -> high bytes. tRNS and gamma ignored.
  Modes,
  // 8-bit RGB by libpng's transforms: palette looked up, grey 1/2/4 bits scaled to 8 and
  // replicated, 16 bits -> high byte, alpha (and tRNS) dropped.
  Rgb8,
};

struct PngDecodeOptions {
  PngPixels pixels = PngPixels::Modes;
  int64_t max_pixels = kDefaultMaxImagePixels;  // width * height; larger: PngFailure::TooLarge
  uint32_t max_side = 0x7fffffff;               // libpng's user limit on width and height
  bool bounded_chunks = false;  // at most 1000 ancillary chunks of kMaxPngChunkBytes (else libpng's defaults)
  bool text = false;            // collect the text chunks, reading on to IEND
};

struct PngFailure {
  enum Kind { NotPng, NoMemory, Corrupt, TooLarge, UnsupportedColourType } kind = Corrupt;
  std::string message;            // libpng's (Corrupt)
  int64_t width = 0, height = 0;  // from IHDR (TooLarge)
  int colour_type = 0;            // UnsupportedColourType
};

struct PngDecoded {
  Image image;                     // format "PNG"
  std::vector<PngText> text;       // in file order (options.text)
  std::optional<PngFailure> failure;  // set: nothing else is
};

// Decodes `bytes` (a whole PNG file). Never throws for bad data: callers word the failure.
PngDecoded decode_png_bytes(std::string_view bytes, const PngDecodeOptions& options);

}  // namespace rdm::image::detail
