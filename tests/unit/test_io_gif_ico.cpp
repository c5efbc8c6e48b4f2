// GIF (first frame, giflib) and ICO (largest entry; BMP or PNG payload) decoding against what
// Pillow 9.4 decodes from the same files (tests/data/gif_ico/make_fixtures.py wrote both),
// hostile variants (truncations, huge sizes, bad offsets) and the formats rdm only names.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "unit/error_of.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/image/image_formats.hpp"
#include "rdm/image/image.hpp"
#include "rdm/image/png.hpp"
#include "unit/io_test_util.hpp"

using namespace rdm::io;
using namespace rdm::image;
namespace fs = std::filesystem;

namespace {
fs::path data_dir() {
  const char* d = std::getenv("RDM_SOURCE_DIR");
  return fs::path(d ? d : ".") / "tests/data" / "gif_ico";
}
using rdm_test::error_of;
}  // namespace

class GifIcoFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(GifIcoFixture, MatchesPillow) {
  const fs::path file = data_dir() / GetParam();
  ASSERT_TRUE(fs::exists(file)) << file;
  Image img = read_image(file);
  RgbImage want = read_png(file.string() + ".expected.png").image;
  Image rgb = to_rgb(img);
  ASSERT_EQ(rgb.width, want.width);
  ASSERT_EQ(rgb.height, want.height);
  EXPECT_EQ(rgb.pixels, want.pixels);
  EXPECT_EQ(img.format, fs::path(file).extension() == ".gif" ? "GIF" : "ICO");
}

INSTANTIATE_TEST_SUITE_P(Pillow, GifIcoFixture,
                         ::testing::Values("global.gif", "interlaced.gif", "animated.gif", "offset_transparent.gif",
                                           "bmp_sizes.ico", "bmp_4bit.ico", "bmp_1bit.ico", "bmp_32bit.ico",
                                           "png_payload.ico"));

TEST(GifIco, ModesAndEntryChoice) {
  Image g = read_image(data_dir() / "global.gif");
  EXPECT_EQ(g.mode, ImageMode::P);
  EXPECT_EQ(g.palette.size(), 768u);
  // Screen 8x6, 3x2 frame at (4, 3): outside it, the transparent index 2.
  Image t = read_image(data_dir() / "offset_transparent.gif");
  EXPECT_EQ(t.width, 8);
  EXPECT_EQ(t.height, 6);
  EXPECT_EQ(t.pixels[0], 2);
  EXPECT_EQ(t.pixels[3 * 8 + 4], 0);
  Image s = read_image(data_dir() / "bmp_sizes.ico");  // 11x9 at 8 and 24 bits: the 24-bit one
  EXPECT_EQ(s.width, 11);
  EXPECT_EQ(s.height, 9);
  EXPECT_EQ(s.mode, ImageMode::RGBA);
  Image a = read_image(data_dir() / "bmp_4bit.ico");  // AND mask: (x + y) % 3 == 0 transparent
  EXPECT_EQ(a.pixels[3], 0);
  EXPECT_EQ(a.pixels[4 + 3], 255);
}

TEST(GifIco, TruncatedAndFlippedInputsOnlyThrowRdmError) {
  std::mt19937 rng(11);
  for (const char* name : {"global.gif", "interlaced.gif", "offset_transparent.gif", "bmp_sizes.ico", "bmp_1bit.ico",
                           "png_payload.ico"}) {
    const std::string bytes = read_file(data_dir() / name);
    const bool gif = std::string(name).find(".gif") != std::string::npos;
    auto decode = [&](const std::string& b) {
      if (gif) return decode_gif(b, name, 1 << 20);
      return decode_ico(b, name, 1 << 20, [](std::string_view p) {
        RgbImage r = decode_png(std::string(p), "payload").image;
        Image i;
        i.width = static_cast<int>(r.width);
        i.height = static_cast<int>(r.height);
        i.pixels = r.pixels;
        return i;
      });
    };
    for (size_t cut = 0; cut < bytes.size(); cut += 1 + bytes.size() / 60) {
      try {
        (void)decode(bytes.substr(0, cut));
      } catch (const rdm::Error&) {
      }
    }
    for (int i = 0; i < 300; ++i) {
      std::string b = bytes;
      for (int j = 0; j < 3; ++j) b[rng() % b.size()] = static_cast<char>(rng());
      try {
        Image img = decode(b);
        EXPECT_EQ(img.pixels.size(), size_t(img.width) * img.height * img.channels());
      } catch (const rdm::Error&) {
      }
    }
  }
}

TEST(GifIco, HugeSizesAndBadOffsetsAreRefused) {
  // GIF screen 65535 x 65535: refused from the header before any allocation.
  std::string gif = "GIF89a";
  gif += std::string("\xff\xff\xff\xff\x00\x00\x00", 7);
  gif += std::string("\x2c\0\0\0\0\x01\0\x01\0\0\x02\x02\x44\x01\0\x3b", 16);
  EXPECT_NE(error_of([&] { decode_gif(gif, "big.gif", 1 << 20); }).find("over the limit"), std::string::npos);
  // ICO entry pointing past the end of the file.
  std::string ico("\0\0\1\0\1\0", 6);
  ico += std::string("\x10\x10\0\0\1\0\x20\0", 8) + std::string("\x00\x10\0\0", 4) + std::string("\x16\0\0\0", 4);
  EXPECT_NE(error_of([&] { decode_ico(ico, "bad.ico", 1 << 20, nullptr); }).find("outside the"), std::string::npos);
  // Directory claiming 65535 entries in a 22-byte file.
  std::string many("\0\0\1\0\xff\xff", 6);
  many += std::string(16, '\0');
  EXPECT_NE(error_of([&] { decode_ico(many, "many.ico", 1 << 20, nullptr); }).find("truncated"), std::string::npos);
}

TEST(GifIco, UnsupportedFormatsAreNamed) {
  EXPECT_STREQ(unsupported_format("<?xml version=\"1.0\"?>\n<svg xmlns=\"...\">"), "SVG (vector graphics)");
  EXPECT_STREQ(unsupported_format("/* XPM */\nstatic char *x[] = {"), "XPM");
  EXPECT_EQ(unsupported_format("\x89PNG"), nullptr);
  auto svg = iotest::write("pic.svg", "<svg width=\"10\" height=\"10\"></svg>");
  EXPECT_NE(error_of([&] { read_image(svg); }).find("SVG (vector graphics) is not a format rdm reads"),
            std::string::npos);
  EXPECT_NE(error_of([] { read_image("/dev/zero"); }).find("not a regular file"), std::string::npos);
}
