// Image formats handled without OpenCV: GIF (first frame, through giflib) and ICO (largest
// entry: PNG or BMP payload, parsed here with strict bounds) decoders reading what Pillow
// reads, and the formats rdm recognises but does not read. read_image dispatches here by
// content.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "rdm/image/image.hpp"

namespace rdm::image {

// Largest image file read (bytes); larger files are refused before reading.
inline constexpr uint64_t kMaxImageFileBytes = uint64_t(1) << 30;

// Names a known image format rdm does not decode ("SVG (vector graphics)", "XPM", ...) from
// the first bytes, or nullptr.
const char* unsupported_format(std::string_view head);

bool is_gif(std::string_view data);  // "GIF87a" / "GIF89a"
bool is_ico(std::string_view data);  // reserved 0, type 1, at least one entry

// First frame as Pillow opens it: mode P (palette of the frame, else the global one; 256
// entries, missing ones black) or L without any palette; size = logical screen grown to the
// frame; outside the frame the transparent index (if the frame has one) or 0. Throws
// rdm::Error naming `name` for corrupt, truncated or too large (> max_pixels) data.
Image decode_gif(std::string_view data, const std::string& name, int64_t max_pixels);

// The entry Pillow's IcoImagePlugin opens: the largest (width x height), then the highest
// colour depth. A PNG payload is handed to decode_png_payload; a BMP (DIB) payload of 1, 4,
// 8, 24 or 32 bits is decoded here to RGBA (alpha from the AND mask, or from the 4th byte
// at 32 bits). Throws rdm::Error naming `name` for anything out of bounds or unsupported.
Image decode_ico(std::string_view data, const std::string& name, int64_t max_pixels,
                 const std::function<Image(std::string_view png)>& decode_png_payload);

}  // namespace rdm::image
