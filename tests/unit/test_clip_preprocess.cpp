// Unit tests: CLIP image preprocessing (Pillow resampling on hand-computed cases, crop
// rounding, per-mode rules, PNG modes, decoding errors, the RDM variant).
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include <torch/types.h>

#include "rdm/clip/preprocess.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/image/image.hpp"
#include "rdm/image/png.hpp"

namespace fs = std::filesystem;
using rdm::image::Image;
using rdm::image::ImageMode;

namespace {
Image make(int w, int h, ImageMode mode, std::vector<uint8_t> px) {
  Image im;
  im.width = w;
  im.height = h;
  im.mode = mode;
  im.pixels = std::move(px);
  return im;
}

fs::path tmpdir() {
  fs::path d = fs::temp_directory_path() / ("rdm_unit_clip_pre_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

// Minimal PNG writer (no filtering) for decoder tests.
void put32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void chunk(std::string& out, const char* type, const std::string& data) {
  put32(out, static_cast<uint32_t>(data.size()));
  std::string td = std::string(type, 4) + data;
  out += td;
  put32(out, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(td.data()), static_cast<uInt>(td.size()))));
}
std::string png(int w, int h, int depth, int color, const std::vector<std::string>& rows, const std::string& plte = "") {
  std::string out = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put32(ihdr, static_cast<uint32_t>(w));
  put32(ihdr, static_cast<uint32_t>(h));
  ihdr += {static_cast<char>(depth), static_cast<char>(color), 0, 0, 0};
  chunk(out, "IHDR", ihdr);
  if (!plte.empty()) chunk(out, "PLTE", plte);
  std::string raw;
  for (auto& r : rows) raw += std::string(1, '\0') + r;
  uLongf n = compressBound(static_cast<uLong>(raw.size()));
  std::string z(n, '\0');
  compress(reinterpret_cast<Bytef*>(z.data()), &n, reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()));
  z.resize(n);
  chunk(out, "IDAT", z);
  chunk(out, "IEND", "");
  return out;
}
fs::path write(const fs::path& p, const std::string& data) {
  std::ofstream(p, std::ios::binary) << data;
  return p;
}
}  // namespace

TEST(ClipPreprocess, ResizeTargetAndCropRounding) {
  using rdm::clip::center_crop_offsets;
  using rdm::clip::resize_target;
  EXPECT_EQ(resize_target(640, 480, 224), std::make_pair(298, 224));
  EXPECT_EQ(resize_target(300, 1000, 224), std::make_pair(224, 746));
  EXPECT_EQ(resize_target(1, 1, 224), std::make_pair(224, 224));
  EXPECT_EQ(resize_target(102, 80, 224), std::make_pair(285, 224));
  EXPECT_EQ(center_crop_offsets(285, 224, 224), std::make_pair(30, 0));  // 30.5 -> 30 (half to even)
  EXPECT_EQ(center_crop_offsets(299, 224, 224), std::make_pair(38, 0));  // 37.5 -> 38
  EXPECT_EQ(center_crop_offsets(224, 229, 224), std::make_pair(0, 2));   // 2.5 -> 2
  EXPECT_EQ(center_crop_offsets(224, 746, 224), std::make_pair(0, 261));
  EXPECT_EQ(center_crop_offsets(220, 224, 224), std::make_pair(-2, 0));  // padded
}

TEST(ClipPreprocess, PillowBicubicHandComputed) {
  // 4 -> 2 (downscale, support 4): weights K((j - c + 0.5) / 2) for c = 1 and 3, normalised:
  // out0 = (100*0.8671875 + 200*0.2265625 - 255*0.0703125) / 1.890625 = 60.35 -> 60,
  // out1 = (100*0.2265625 + 200*0.8671875 + 255*0.8671875) / 1.890625 = 220.68 -> 221.
  Image im = make(4, 1, ImageMode::L, {0, 100, 200, 255});
  Image d = rdm::clip::pil_resize(im, 2, 1);
  EXPECT_EQ(d.pixels, (std::vector<uint8_t>{60, 221}));
  // upscale 4 -> 6 (kernel not widened), values checked against Pillow 9.4
  EXPECT_EQ(rdm::clip::pil_resize(im, 6, 1).pixels, (std::vector<uint8_t>{0, 41, 117, 186, 235, 255}));
  // vertical pass only
  Image v = make(1, 4, ImageMode::L, {0, 100, 200, 255});
  EXPECT_EQ(rdm::clip::pil_resize(v, 1, 2).pixels, (std::vector<uint8_t>{60, 221}));
  // same size: unchanged
  EXPECT_EQ(rdm::clip::pil_resize(im, 4, 1).pixels, im.pixels);
  // 1x1 upscale: constant
  Image one = make(1, 1, ImageMode::RGB, {200, 30, 90});
  Image big = rdm::clip::pil_resize(one, 5, 3);
  for (size_t i = 0; i < big.pixels.size(); i += 3)
    EXPECT_EQ(std::vector<uint8_t>(big.pixels.begin() + i, big.pixels.begin() + i + 3), (std::vector<uint8_t>{200, 30, 90}));
}

TEST(ClipPreprocess, PillowModeRules) {
  // RGBA: premultiplied resize (colour under alpha 0 disappears), checked against Pillow 9.4
  Image rgba = make(4, 1, ImageMode::RGBA, {255, 0, 0, 0, 0, 255, 0, 255, 0, 0, 255, 128, 10, 20, 30, 200});
  EXPECT_EQ(rdm::clip::pil_resize(rgba, 2, 1).pixels, (std::vector<uint8_t>{0, 236, 28, 125, 5, 53, 98, 181}));
  // P: nearest neighbour on indices, running source position s/2 + k*s
  Image p = make(5, 1, ImageMode::P, {0, 1, 2, 3, 4});
  p.palette.assign(768, 0);
  for (int i = 0; i < 256; ++i) p.palette[3 * i] = static_cast<uint8_t>(i * 10);
  EXPECT_EQ(rdm::clip::pil_resize(p, 3, 1).pixels, (std::vector<uint8_t>{0, 2, 4}));
  EXPECT_EQ(rdm::clip::pil_resize(p, 7, 1).pixels, (std::vector<uint8_t>{0, 1, 1, 2, 3, 3, 4}));
  // convert("RGB"): palette lookup, grey replicated, alpha dropped without compositing
  EXPECT_EQ(rdm::image::to_rgb(p).pixels[3], 10);
  EXPECT_EQ(rdm::image::to_rgb(make(1, 1, ImageMode::LA, {77, 0})).pixels, (std::vector<uint8_t>{77, 77, 77}));
  EXPECT_EQ(rdm::image::to_rgb(make(1, 1, ImageMode::RGBA, {1, 2, 3, 0})).pixels, (std::vector<uint8_t>{1, 2, 3}));
  Image i16;
  i16.width = 2, i16.height = 1, i16.mode = ImageMode::I, i16.pixels_i = {100, 5000};
  EXPECT_EQ(rdm::image::to_rgb(i16).pixels, (std::vector<uint8_t>{100, 100, 100, 255, 255, 255}));  // Pillow clips
}

TEST(ClipPreprocess, NormalisationInFloat32Steps) {
  Image im = make(2, 1, ImageMode::RGB, {0, 128, 255, 255, 0, 7});
  auto t = rdm::clip::to_normalized_tensor(im);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 1, 2}));
  const float x = 128.0f / 255.0f, d = x - rdm::clip::kClipMean[1];
  EXPECT_EQ(t[1][0][0].item<float>(), d / rdm::clip::kClipStd[1]);
  EXPECT_EQ(t[0][0][0].item<float>(), (0.0f - rdm::clip::kClipMean[0]) / rdm::clip::kClipStd[0]);
}

TEST(ClipPreprocess, PngModesLikePillow) {
  const fs::path d = tmpdir();
  // palette, 2 bit
  std::string plte = std::string("\x00\x00\x00\x10\x20\x30\xff\x00\x00", 9);
  auto pal = rdm::image::read_image(write(d / "p.png", png(4, 1, 2, 3, {std::string("\x1b", 1)}, plte)));
  EXPECT_EQ(pal.mode, ImageMode::P);
  EXPECT_EQ(pal.pixels, (std::vector<uint8_t>{0, 1, 2, 3}));  // 0b00011011
  EXPECT_EQ(pal.palette[3], 0x10);
  // grey 2 bit: raw values (Pillow does not rescale L;2)
  auto g2 = rdm::image::read_image(write(d / "g2.png", png(4, 1, 2, 0, {std::string("\x1b", 1)})));
  EXPECT_EQ(g2.mode, ImageMode::L);
  EXPECT_EQ(g2.pixels, (std::vector<uint8_t>{0, 1, 2, 3}));
  // 1 bit -> mode "1" stored as 0/255
  auto b1 = rdm::image::read_image(write(d / "b1.png", png(3, 1, 1, 0, {std::string("\xa0", 1)})));
  EXPECT_EQ(b1.mode, ImageMode::One);
  EXPECT_EQ(b1.pixels, (std::vector<uint8_t>{255, 0, 255}));
  // grey 16 bit -> "I"
  auto g16 = rdm::image::read_image(write(d / "g16.png", png(2, 1, 16, 0, {std::string("\x13\x88\x00\x05", 4)})));
  EXPECT_EQ(g16.mode, ImageMode::I);
  EXPECT_EQ(g16.pixels_i, (std::vector<int32_t>{5000, 5}));
  // RGB 16 bit -> high bytes
  auto c16 = rdm::image::read_image(write(d / "c16.png", png(1, 1, 16, 2, {std::string("\x13\x88\x00\x05\xff\xff", 6)})));
  EXPECT_EQ(c16.mode, ImageMode::RGB);
  EXPECT_EQ(c16.pixels, (std::vector<uint8_t>{0x13, 0x00, 0xff}));
  // grey + alpha 8 bit -> LA
  auto la = rdm::image::read_image(write(d / "la.png", png(1, 1, 8, 4, {std::string("\x40\x80", 2)})));
  EXPECT_EQ(la.mode, ImageMode::LA);
  // whole pipeline on a palette image: resized in P mode, 3x224x224
  auto t = rdm::clip::preprocess_file(d / "p.png", 224);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 224, 224}));
  fs::remove_all(d);
}

// read_image (Pillow's modes) and read_png (8-bit RGB) run the same PNG decoder; they differ
// only where Pillow and libpng's transforms differ: grey below 8 bits (raw vs scaled) and
// grey 16 bits (clipped vs high byte).
TEST(PngDecoder, ModesAndRgbPathsShareOneDecoder) {
  const fs::path d = tmpdir();
  std::string plte = std::string("\x00\x00\x00\x10\x20\x30\xff\x00\x00", 9);
  const std::vector<std::pair<std::string, std::string>> same = {
      {"p.png", png(4, 1, 2, 3, {std::string("\x1b", 1)}, plte)},
      {"b1.png", png(3, 1, 1, 0, {std::string("\xa0", 1)})},
      {"g8.png", png(4, 1, 8, 0, {std::string("\x01\x02\x03\xf4", 4)})},
      {"c16.png", png(1, 1, 16, 2, {std::string("\x13\x88\x00\x05\xff\xff", 6)})},
      {"la.png", png(1, 1, 8, 4, {std::string("\x40\x80", 2)})},
      {"rgba.png", png(2, 1, 8, 6, {std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8)})}};
  for (const auto& [name, bytes] : same) {
    const rdm::image::RgbImage rgb = rdm::image::read_png(write(d / name, bytes)).image;
    const rdm::image::RgbImage modes = rdm::image::to_rgb(rdm::image::read_image(d / name));
    EXPECT_EQ(rgb.mode, ImageMode::RGB) << name;
    EXPECT_EQ(rgb.width, modes.width) << name;
    EXPECT_EQ(rgb.pixels, modes.pixels) << name;
  }
  auto g2 = rdm::image::decode_png(png(4, 1, 2, 0, {std::string("\x1b", 1)}), "g2").image;
  EXPECT_EQ(g2.pixels, (std::vector<uint8_t>{0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255}));
  auto g16 = rdm::image::decode_png(png(2, 1, 16, 0, {std::string("\x13\x88\x00\x05", 4)}), "g16").image;
  EXPECT_EQ(g16.pixels, (std::vector<uint8_t>{0x13, 0x13, 0x13, 0, 0, 0}));
  // An RgbImage is an Image of mode RGB, and only that.
  EXPECT_THROW(rdm::image::RgbImage(make(1, 1, ImageMode::L, {7})), rdm::Error);
  EXPECT_EQ(rdm::image::RgbImage(2, 1, 9).pixels, (std::vector<uint8_t>(6, 9)));
  // Each path keeps its own error wording.
  const std::string good = png(4, 1, 8, 0, {std::string("\x01\x02\x03\x04", 4)});
  auto message = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const rdm::Error& e) {
      return e.what();
    }
    return "<no error>";
  };
  EXPECT_NE(message([&] { rdm::image::decode_png("GIF89a", "x.png"); }).find("'x.png' is not a PNG file"),
            std::string::npos);
  EXPECT_NE(message([&] { rdm::image::decode_png(good.substr(0, good.size() - 20), "t.png"); })
                .find("cannot read PNG 't.png': "),
            std::string::npos);
  const fs::path trunc = write(d / "trunc.png", good.substr(0, good.size() - 20));
  EXPECT_NE(message([&] { rdm::image::read_image(trunc); }).find("corrupt PNG"), std::string::npos);
  EXPECT_NE(message([&] { rdm::image::read_image(write(d / "big.png", good), 3); }).find("exceeds the limit of 3"),
            std::string::npos);
  fs::remove_all(d);
}

TEST(ClipPreprocess, PaletteBmpKeepsModeP) {
  // 8-bit BMP, 3x2, bottom-up rows padded to 4 bytes, palette of 3 BGRX entries
  std::string b = "BM";
  auto le = [&](uint32_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  };
  const uint32_t off = 14 + 40 + 3 * 4;
  le(off + 8, 4), le(0, 4), le(off, 4);
  le(40, 4), le(3, 4), le(2, 4), le(1, 2), le(8, 2), le(0, 4), le(8, 4), le(0, 4), le(0, 4), le(3, 4), le(0, 4);
  b += std::string("\x00\x00\xff\x00\x00\xff\x00\x00\xff\x00\x00\x00", 12);  // red, green, blue
  b += std::string("\x02\x02\x02\x00\x00\x01\x02\x00", 8);                      // bottom row, top row
  const fs::path d = tmpdir();
  auto im = rdm::image::read_image(write(d / "p.bmp", b));
  EXPECT_EQ(im.mode, ImageMode::P);
  EXPECT_EQ(im.pixels, (std::vector<uint8_t>{0, 1, 2, 2, 2, 2}));
  EXPECT_EQ(rdm::image::to_rgb(im).pixels[0], 255);  // index 0 = red
  fs::remove_all(d);
}

TEST(ClipPreprocess, DecodingErrors) {
  const fs::path d = tmpdir();
  EXPECT_THROW(rdm::image::read_image(d / "missing.png"), rdm::Error);
  EXPECT_THROW(rdm::image::read_image(write(d / "empty.png", "")), rdm::Error);
  EXPECT_THROW(rdm::image::read_image(write(d / "text.jpg", "this is not an image")), rdm::Error);
  std::string good = png(4, 1, 8, 0, {std::string("\x01\x02\x03\x04", 4)});
  EXPECT_THROW(rdm::image::read_image(write(d / "trunc.png", good.substr(0, good.size() - 20))), rdm::Error);
  // pixel limit checked from the header
  EXPECT_THROW(rdm::image::read_image(write(d / "big.png", good), /*max_pixels=*/3), rdm::Error);
  EXPECT_EQ(rdm::image::probe_image_size(d / "big.png"), std::make_pair(int64_t{4}, int64_t{1}));
  try {
    rdm::image::read_image(d / "text.jpg");
  } catch (const rdm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("text.jpg"), std::string::npos);
  }
  fs::remove_all(d);
}

TEST(ClipPreprocess, RdmVariant) {
  // constant image -> constant normalised value, any aspect ratio is squashed to R x R
  Image im = make(7, 3, ImageMode::RGB, {});
  for (int i = 0; i < 21; ++i) im.pixels.insert(im.pixels.end(), {255, 0, 51});
  auto t = rdm::clip::preprocess_image(im, 8, rdm::clip::Preprocess::Rdm);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 8, 8}));
  const float r = (1.0f - rdm::clip::kClipMean[0]) / rdm::clip::kClipStd[0];
  EXPECT_NEAR(t[0].min().item<float>(), r, 1e-5);
  EXPECT_NEAR(t[0].max().item<float>(), r, 1e-5);
  EXPECT_NEAR(t[2][3][3].item<float>(), (0.2f - rdm::clip::kClipMean[2]) / rdm::clip::kClipStd[2], 1e-5);
}
