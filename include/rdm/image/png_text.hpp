// Limits of the PNG readers for untrusted files, and the text-chunk reader behind
// read_png_text (png.hpp) that `show-params` and `--from-png` use.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rdm/image/png.hpp"

namespace rdm::image {

// Largest PNG file read from disk, and largest ancillary chunk (text, after inflating).
inline constexpr uint64_t kMaxPngFileBytes = uint64_t(1) << 30;
inline constexpr size_t kMaxPngChunkBytes = size_t(16) << 20;
inline constexpr size_t kMaxPngTextChunks = 1000;

// The text chunks of a PNG (tEXt, zTXt, iTXt, before and after the image data) by walking
// the chunk list without decoding pixels: chunk lengths checked against the file, at most
// kMaxPngTextChunks text chunks of at most kMaxPngChunkBytes each (also after inflating),
// ancillary chunks with a bad CRC dropped (as libpng does). Throws rdm::Error naming `name`.
// read_png_text(path) is this over read_regular_file(path, kMaxPngFileBytes); read_png(path)
// also refuses non-regular and oversized files before reading.
std::vector<PngText> decode_png_text(std::string_view bytes, const std::string& name = "<memory>");

}  // namespace rdm::image
