// Entry points shared by the libFuzzer targets and the corpus replay unit test
// (tests/unit/test_fuzz_corpus.cpp): each feeds one input through the parsers exactly as rdm
// does, and lets only rdm::Error escape.
#pragma once
#include <string>
#include <string_view>

#include "rdm/runtime/error.hpp"
#include "rdm/image/image_formats.hpp"
#include "rdm/image/png.hpp"
#include "rdm/io/safe_text.hpp"
#include "rdm/image/png_text.hpp"

namespace rdm_fuzz {

// show-params / --from-png: the text chunks, the rdm JSON record, the terminal output.
inline void png_record(std::string_view data) {
  std::vector<rdm::image::PngText> texts;
  try {
    texts = rdm::image::decode_png_text(data, "fuzz.png");
  } catch (const rdm::Error&) {
  }
  for (const auto& t : texts) {
    (void)rdm::io::escape_for_terminal(t.key);
    (void)rdm::io::escape_for_terminal(t.text, true);
    try {
      auto j = rdm::io::parse_json_bounded(t.text, "fuzz record");
      (void)rdm::io::dump_json_safe(j, 2);
    } catch (const rdm::Error&) {
    }
  }
  // The whole input as a record, too (the JSON parser on its own).
  try {
    (void)rdm::io::dump_json_safe(rdm::io::parse_json_bounded(data, "fuzz record"));
  } catch (const rdm::Error&) {
  }
}

inline constexpr int64_t kFuzzMaxPixels = int64_t(1) << 22;

// What every decoded image must satisfy (to_rgb and the preprocessing index by these).
inline void check_image(const rdm::image::Image& img) {
  using rdm::image::ImageMode;
  const size_t n = static_cast<size_t>(img.width) * static_cast<size_t>(img.height);
  const size_t channels = img.mode == ImageMode::RGBA ? 4 : img.mode == ImageMode::RGB ? 3 : img.mode == ImageMode::LA ? 2 : 1;
  if (img.width <= 0 || img.height <= 0 || img.pixels.size() != n * channels ||
      (img.mode == rdm::image::ImageMode::P && img.palette.size() != 256 * 3))
    __builtin_trap();
}

inline void gif(std::string_view data) {
  try {
    auto img = rdm::image::decode_gif(data, "fuzz.gif", kFuzzMaxPixels);
    check_image(img);
  } catch (const rdm::Error&) {
  }
}

inline void ico(std::string_view data) {
  auto png = [](std::string_view p) {
    rdm::image::PngFile f = rdm::image::decode_png(std::string(p), "fuzz.ico payload");
    if (f.image.height * f.image.width > kFuzzMaxPixels) rdm::fail("payload too large");
    rdm::image::Image img;
    img.width = static_cast<int>(f.image.width);
    img.height = static_cast<int>(f.image.height);
    img.mode = rdm::image::ImageMode::RGB;
    img.pixels = std::move(f.image.pixels);
    return img;
  };
  try {
    auto img = rdm::image::decode_ico(data, "fuzz.ico", kFuzzMaxPixels, png);
    check_image(img);
  } catch (const rdm::Error&) {
  }
}

}  // namespace rdm_fuzz
