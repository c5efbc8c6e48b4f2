// Unit tests: the image I/O back ends (src/io/image_codec.hpp). In the OpenCV build the lite
// decoders, resize and contact sheet are compared with OpenCV's on the golden images and on
// variants encoded here; both builds check the lite decoders' errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "image/image_codec.hpp"
#include "unit/golden_dir.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/image/contact_sheet.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/image/png.hpp"
#include "image/contact_sheet_lite.hpp"

#if RDM_IMAGE_IO_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include "rdm/retrieval/build.hpp"
#endif

namespace fs = std::filesystem;
using rdm::image::Image;
namespace codec = rdm::image::detail;

namespace {

fs::path golden_images() { return rdm_test::golden_dir("clip") / "images"; }

fs::path tmpdir() {
  fs::path d = fs::temp_directory_path() / ("rdm_unit_image_io_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

// A BMP with a 40-byte header and uncompressed pixels of `bits` (16, 24 or 32) per pixel.
std::string bmp(int w, int h, int bits, bool top_down, uint32_t compression = 0) {
  const int stride = (w * bits + 31) / 32 * 4;
  std::string s(54 + size_t(stride) * h, '\0');
  auto put = [&](size_t at, uint32_t v, int n) {
    for (int i = 0; i < n; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  };
  s[0] = 'B', s[1] = 'M';
  put(2, static_cast<uint32_t>(s.size()), 4), put(10, 54, 4), put(14, 40, 4), put(18, static_cast<uint32_t>(w), 4);
  put(22, static_cast<uint32_t>(top_down ? -h : h), 4), put(26, 1, 2), put(28, static_cast<uint32_t>(bits), 2);
  put(30, compression, 4);
  for (size_t i = 54; i < s.size(); ++i) s[i] = static_cast<char>((i * 37 + i / 7) & 0xFF);
  return s;
}

void expect_same(const Image& a, const Image& b, const std::string& what) {
  EXPECT_EQ(a.width, b.width) << what;
  EXPECT_EQ(a.height, b.height) << what;
  EXPECT_EQ(rdm::image::image_mode_name(a.mode), std::string(rdm::image::image_mode_name(b.mode))) << what;
  EXPECT_TRUE(a.pixels == b.pixels) << what << ": pixels differ";
}

}  // namespace

TEST(ImageIo, LiteDecoderErrorsNameTheFileAndTheBuild) {
  const fs::path d = tmpdir();
  rdm::io::write_file_atomic(d / "x.tif", std::string("II*\0\x08\0\0\0", 8));
  try {
    codec::decode_lite(d / "x.tif", rdm::io::read_file(d / "x.tif"), rdm::image::kDefaultMaxImagePixels);
    FAIL() << "TIFF accepted";
  } catch (const rdm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.tif"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("RDM_IMAGE_IO=opencv"), std::string::npos) << e.what();
  }
  const std::string rle = bmp(4, 4, 24, false, 1);
  EXPECT_THROW(codec::decode_lite(d / "r.bmp", rle, rdm::image::kDefaultMaxImagePixels), rdm::Error);
  const std::string trunc = std::string("\xFF\xD8\xFF\xE0\x00\x10JFIF", 10);
  EXPECT_THROW(codec::decode_lite(d / "t.jpg", trunc, rdm::image::kDefaultMaxImagePixels), rdm::Error);
  EXPECT_THROW(codec::decode_lite(d / "w.webp", std::string("RIFF\0\0\0\0WEBPVP8 ", 16), rdm::image::kDefaultMaxImagePixels), rdm::Error);
  EXPECT_THROW(codec::decode_lite(d / "big.bmp", bmp(100, 100, 24, false), 99 * 100), rdm::Error);
  fs::remove_all(d);
}

TEST(ImageIo, LiteBmpRowsAndChannels) {
  // 24-bit bottom-up 2x2: the first stored row is the bottom one; BGR stored.
  std::string b = bmp(2, 2, 24, false);
  const unsigned char* u = reinterpret_cast<const unsigned char*>(b.data());
  Image im = codec::decode_lite("b.bmp", b, rdm::image::kDefaultMaxImagePixels);
  ASSERT_EQ(im.width, 2);
  ASSERT_EQ(im.height, 2);
  EXPECT_EQ(im.pixels[3 * 2 + 0], u[54 + 2]);  // bottom-left R = stored byte 2
  EXPECT_EQ(im.pixels[3 * 2 + 2], u[54 + 0]);
  Image td = codec::decode_lite("t.bmp", bmp(2, 2, 24, true), rdm::image::kDefaultMaxImagePixels);
  EXPECT_EQ(td.pixels[0], u[54 + 2]);  // top-down: first stored row on top
}

#if RDM_IMAGE_IO_OPENCV

TEST(ImageIo, LiteDecodersMatchOpenCv) {
  const fs::path g = golden_images();
  if (!fs::exists(g)) GTEST_SKIP() << "no golden images at " << g;
  std::vector<std::pair<std::string, std::string>> files;  // name, bytes
  for (const char* n : {"rocket.jpg", "stripes_500x375.webp", "exact_224x224.bmp"})
    files.emplace_back(n, rdm::io::read_file(g / n));
  // Variants encoded by OpenCV: grey/progressive/optimised JPEG, lossless WEBP with alpha, BMP.
  cv::Mat chelsea = cv::imread((g / "chelsea.png").string(), cv::IMREAD_COLOR);
  cv::Mat alpha = cv::imread((g / "alpha_320x240.png").string(), cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(chelsea.empty());
  ASSERT_FALSE(alpha.empty());
  cv::Mat grey;
  cv::cvtColor(chelsea, grey, cv::COLOR_BGR2GRAY);
  auto enc = [&](const std::string& name, const std::string& ext, const cv::Mat& m, std::vector<int> params) {
    std::vector<uchar> buf;
    ASSERT_TRUE(cv::imencode(ext, m, buf, params)) << name;
    files.emplace_back(name, std::string(buf.begin(), buf.end()));
  };
  enc("grey.jpg", ".jpg", grey, {});
  enc("progressive.jpg", ".jpg", chelsea, {cv::IMWRITE_JPEG_PROGRESSIVE, 1, cv::IMWRITE_JPEG_QUALITY, 70});
  enc("optimized_q95.jpg", ".jpg", chelsea, {cv::IMWRITE_JPEG_QUALITY, 95, cv::IMWRITE_JPEG_OPTIMIZE, 1});
  enc("lossless_alpha.webp", ".webp", alpha.channels() == 4 ? alpha : chelsea, {cv::IMWRITE_WEBP_QUALITY, 101});
  enc("lossy.webp", ".webp", chelsea, {cv::IMWRITE_WEBP_QUALITY, 60});
  enc("cv24.bmp", ".bmp", chelsea, {});
  for (int bits : {16, 24, 32})
    for (bool td : {false, true}) files.emplace_back("b" + std::to_string(bits) + (td ? "td" : "") + ".bmp", bmp(7, 5, bits, td));
  for (auto& [name, bytes] : files) {
    const Image a = codec::decode_lite(name, bytes, rdm::image::kDefaultMaxImagePixels);
    const Image b = codec::decode_opencv(name, bytes, rdm::image::kDefaultMaxImagePixels);
    expect_same(a, b, name);
  }
}

TEST(ImageIo, ResizeMatchesOpenCvWithinOneLevel) {
  const fs::path g = golden_images();
  if (!fs::exists(g)) GTEST_SKIP() << "no golden images at " << g;
  cv::Mat src = cv::imread((g / "chelsea.png").string(), cv::IMREAD_COLOR);
  ASSERT_FALSE(src.empty());
  for (auto [w, h] : std::vector<std::pair<int, int>>{{160, 107}, {128, 85}, {45, 30}, {225, 150}, {900, 600}, {452, 301}}) {
    cv::Mat ref;
    cv::resize(src, ref, cv::Size(w, h), 0, 0, w < src.cols ? cv::INTER_AREA : cv::INTER_LINEAR);
    std::vector<uint8_t> out(size_t(w) * h * 3);
    codec::resize_area_linear(src.data, src.cols, src.rows, 3, out.data(), w, h);
    int worst = 0;
    for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::abs(int(out[i]) - int(ref.data[i])));
    EXPECT_LE(worst, 1) << w << "x" << h;
  }
}

TEST(ImageIo, LiteContactSheetMatchesOpenCvThumbnails) {
  const fs::path g = golden_images();
  if (!fs::exists(g)) GTEST_SKIP() << "no golden images at " << g;
  const fs::path d = tmpdir();
  std::vector<std::string> imgs = {(g / "chelsea.png").string(), (g / "rocket.jpg").string(), "",
                                   (g / "pixel_1x1.png").string()};
  std::vector<std::string> caps = {"#1 0.91\nchelsea.png", "#2 0.88\nrocket.jpg", "#3\nnone", "#4\npixel"};
  rdm::image::write_contact_sheet(d / "cv.png", imgs, caps, 96, 0);
  rdm::image::detail::write_contact_sheet_lite(d / "lite.png", imgs, caps, 96, 0);
  const auto a = rdm::image::read_png(d / "cv.png").image, b = rdm::image::read_png(d / "lite.png").image;
  ASSERT_EQ(a.width, b.width);
  ASSERT_EQ(a.height, b.height);
  // Thumbnail areas (tiles 0, 1, 3) within one level; captions are drawn differently.
  const int cell_w = 96 + 8, cell_h = 96 + 36 + 8;
  for (int i : {0, 1, 3}) {
    const int x0 = (i % 2) * cell_w + 4, y0 = (i / 2) * cell_h + 4;
    int worst = 0;
    for (int y = y0; y < y0 + 96; ++y)
      for (int x = x0; x < x0 + 96; ++x)
        for (int c = 0; c < 3; ++c) worst = std::max(worst, std::abs(int(a.at(y, x)[c]) - int(b.at(y, x)[c])));
    EXPECT_LE(worst, 1) << "tile " << i;
  }
  // Captions: same ink (dark pixels) within a tenth.
  auto ink = [](const rdm::image::RgbImage& im) {
    int64_t n = 0;
    for (size_t i = 0; i < im.pixels.size(); i += 3) n += im.pixels[i] < 128;
    return n;
  };
  EXPECT_NEAR(double(ink(b)), double(ink(a)), 0.1 * double(ink(a)));
  fs::remove_all(d);
}

#else

TEST(ImageIo, LiteBuildDecodesGoldenImages) {
  const fs::path g = golden_images();
  if (!fs::exists(g)) GTEST_SKIP() << "no golden images at " << g;
  for (const char* n : {"rocket.jpg", "stripes_500x375.webp", "exact_224x224.bmp"}) {
    const Image im = rdm::image::read_image(g / n);
    const auto [w, h] = rdm::image::probe_image_size(g / n);
    EXPECT_EQ(im.width, w) << n;
    EXPECT_EQ(im.height, h) << n;
    EXPECT_EQ(im.pixels.size(), size_t(w) * h * im.channels()) << n;
  }
}

#endif
