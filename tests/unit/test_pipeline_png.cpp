// Unit tests: PNG writer/reader with text chunks (rdm/io/png.hpp).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/image/png.hpp"

namespace fs = std::filesystem;
using namespace rdm::io;
using namespace rdm::image;

namespace {
fs::path tmpdir() {
  fs::path d = fs::temp_directory_path() / ("rdm_unit_png_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}
RgbImage random_image(int64_t h, int64_t w, unsigned seed) {
  RgbImage im(h, w);
  std::mt19937 rng(seed);
  for (auto& p : im.pixels) p = static_cast<uint8_t>(rng() & 0xff);
  return im;
}
}  // namespace

TEST(Png, RoundTripPixelsAndText) {
  auto im = random_image(7, 13, 1);
  // Channel order: the first byte of a pixel is red.
  im.at(0, 0)[0] = 255;
  im.at(0, 0)[1] = 0;
  im.at(0, 0)[2] = 10;
  std::vector<PngText> text = {{"parameters", "a cat\nSteps: 5, Sampler: DDIM"},
                               {"rdm", "{\"prompt\":\"caf\xc3\xa9 \xe2\x98\x95\"}"}};
  auto p = tmpdir() / "rt.png";
  write_png(p, im, text);
  auto f = read_png(p);
  EXPECT_EQ(f.image.height, 7);
  EXPECT_EQ(f.image.width, 13);
  EXPECT_EQ(f.image.pixels, im.pixels);
  EXPECT_EQ(f.image.at(0, 0)[0], 255);
  EXPECT_EQ(f.image.at(0, 0)[2], 10);
  ASSERT_EQ(f.text.size(), 2u);
  EXPECT_EQ(f.find("parameters").value(), text[0].text);
  EXPECT_EQ(f.find("rdm").value(), text[1].text);  // UTF-8 survives (iTXt)
  EXPECT_FALSE(f.find("missing").has_value());
  EXPECT_EQ(read_png_text(p).size(), 2u);
}

TEST(Png, Deterministic) {
  auto im = random_image(16, 16, 2);
  EXPECT_EQ(encode_png(im, {{"k", "v"}}), encode_png(im, {{"k", "v"}}));
}

TEST(Png, RejectsBadInput) {
  EXPECT_THROW(decode_png("not a png at all", "x"), rdm::Error);
  auto bytes = encode_png(random_image(32, 32, 3));
  for (size_t cut : {size_t(8), size_t(40), bytes.size() / 2, bytes.size() - 5}) {
    EXPECT_THROW(decode_png(bytes.substr(0, cut), "cut"), rdm::Error) << cut;
  }
  // Corrupt a byte inside the image data: CRC or zlib error, never a crash.
  std::string bad = bytes;
  bad[bad.size() / 2] ^= 0x5a;
  EXPECT_THROW(decode_png(bad, "bad"), rdm::Error);
  EXPECT_THROW(encode_png(RgbImage()), rdm::Error);
  EXPECT_THROW(encode_png(random_image(2, 2, 4), {{"", "x"}}), rdm::Error);
  EXPECT_THROW(read_png(tmpdir() / "does_not_exist.png"), rdm::Error);
}

TEST(Png, FuzzTruncationsAndFlips) {
  auto bytes = encode_png(random_image(9, 11, 5), {{"parameters", "hello"}});
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string b = bytes;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int j = 0; j < flips; ++j) b[8 + rng() % (b.size() - 8)] = static_cast<char>(rng());
    try {
      auto f = decode_png(b, "fuzz");
      EXPECT_EQ(f.image.pixels.size(), static_cast<size_t>(f.image.height * f.image.width * 3));
    } catch (const rdm::Error&) {
    }
  }
}
