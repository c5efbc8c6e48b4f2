// Contact sheet without OpenCV (the lite image I/O build; compiled in every build so that the
// OpenCV build's tests compare the two). Same layout as contact_sheet.cpp: thumbnails resized
// like cv::resize (INTER_AREA / INTER_LINEAR, io::detail::resize_area_linear, within one level),
// captions drawn with OpenCV's Hershey glyphs pre-rasterised per character
// (hershey_font.inc, scripts/gen_hershey_font.cpp): positions may differ from cv::putText by
// one pixel, as putText places glyphs at sub-pixel offsets. PNG written with libpng.
#include <algorithm>
#include <cmath>

#include "image/image_codec.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/image/image.hpp"
#include "rdm/image/png.hpp"
#include "rdm/image/contact_sheet.hpp"
#include "image/contact_sheet_lite.hpp"

namespace rdm::image {
namespace fs = std::filesystem;

namespace {

struct HersheyGlyph {
  int advance256, x, y, w, h;
  size_t offset;
};
#include "image/hershey_font.inc"

using image::RgbImage;

void fill(RgbImage& im, int x0, int y0, int w, int h, uint8_t v) {
  for (int y = y0; y < y0 + h; ++y)
    for (int x = x0; x < x0 + w; ++x) std::fill_n(im.at(y, x), 3, v);
}

// font: 0 = scale 0.4, 1 = scale 0.45.
int text_width(const std::string& s, int font) {
  double w = 0;
  for (unsigned char c : s) w += kHersheyGlyphs[font][c - 32].advance256 / 256.0;
  return static_cast<int>(std::lround(w));
}

void put_text(RgbImage& im, const std::string& s, int px, int py, int font, uint8_t color) {
  double pen = px;
  for (unsigned char c : s) {
    const HersheyGlyph& g = kHersheyGlyphs[font][c - 32];
    const int gx = static_cast<int>(std::lround(pen)) + g.x, gy = py + g.y;
    for (int y = 0; y < g.h; ++y)
      for (int x = 0; x < g.w; ++x) {
        const int X = gx + x, Y = gy + y;
        const int a = kHersheyPixels[g.offset + size_t(y) * g.w + x];
        if (a == 0 || X < 0 || Y < 0 || X >= im.width || Y >= im.height) continue;
        uint8_t* d = im.at(Y, X);
        for (int k = 0; k < 3; ++k) d[k] = static_cast<uint8_t>(d[k] + ((int(color) - d[k]) * a + 127) / 255);
      }
    pen += g.advance256 / 256.0;
  }
}

std::string ascii_only(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) >= 127 || c < 32) c = '?';
  return s;
}

}  // namespace

namespace detail {

SheetLayout sheet_layout(const fs::path& out, size_t n_images, int64_t tile, int64_t columns) {
  SheetLayout L;
  L.n = static_cast<int>(n_images);
  if (L.n == 0) fail("contact sheet '{}': no images", out.string());
  if (tile < 16 || tile > 4096) fail("contact sheet tile size {} out of range [16, 4096]", tile);
  L.cols = columns > 0 ? static_cast<int>(std::min<int64_t>(columns, L.n))
                       : static_cast<int>(std::ceil(std::sqrt(static_cast<double>(L.n))));
  L.rows = (L.n + L.cols - 1) / L.cols;
  L.t = static_cast<int>(tile);
  return L;
}

void write_contact_sheet_lite(const fs::path& out, const std::vector<std::string>& images,
                              const std::vector<std::string>& captions, int64_t tile, int64_t columns) {
  const SheetLayout L = sheet_layout(out, images.size(), tile, columns);
  const int n = L.n, t = L.t;
  RgbImage sheet(L.height(), L.width(), 255);
  for (int i = 0; i < n; ++i) {
    const int x0 = L.x0(i), y0 = L.y0(i);
    fill(sheet, x0, y0, t, t, 200);
    image::Image img;
    if (!images[i].empty()) {
      try {
        img = image::to_rgb(image::read_image(images[i]));
      } catch (const Error&) {
        img = image::Image{};
      }
    }
    if (img.width > 0) {
      const double s = std::min(static_cast<double>(t) / img.width, static_cast<double>(t) / img.height);
      const int w = std::max(1, static_cast<int>(std::lround(img.width * s)));
      const int h = std::max(1, static_cast<int>(std::lround(img.height * s)));
      std::vector<uint8_t> small(size_t(w) * h * 3);
      detail::resize_area_linear(img.pixels.data(), img.width, img.height, 3, small.data(), w, h);
      const int ox = x0 + (t - w) / 2, oy = y0 + (t - h) / 2;
      for (int y = 0; y < h; ++y) std::copy_n(small.data() + size_t(y) * w * 3, size_t(w) * 3, sheet.at(oy + y, ox));
    } else {
      put_text(sheet, "no image", x0 + 8, y0 + t / 2, 1, 90);
    }
    // Caption: two lines, clipped to the tile width (ASCII only, as with the Hershey fonts).
    std::string cap = i < static_cast<int>(captions.size()) ? captions[i] : "";
    std::string line1 = cap, line2;
    if (auto nl = cap.find('\n'); nl != std::string::npos) {
      line1 = cap.substr(0, nl);
      line2 = cap.substr(nl + 1);
    }
    auto fit = [&](std::string s) {
      s = ascii_only(std::move(s));
      while (!s.empty() && text_width(s, 0) > t) s.pop_back();
      return s;
    };
    put_text(sheet, fit(line1), x0, y0 + t + 14, 0, 0);
    put_text(sheet, fit(line2), x0, y0 + t + 30, 0, 60);
  }
  image::write_png(out, sheet);
}

}  // namespace detail

#if !RDM_IMAGE_IO_OPENCV
void write_contact_sheet(const fs::path& out, const std::vector<std::string>& images,
                         const std::vector<std::string>& captions, int64_t tile, int64_t columns) {
  detail::write_contact_sheet_lite(out, images, captions, tile, columns);
}
#endif

}  // namespace rdm::image
