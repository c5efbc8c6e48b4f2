// cv::resize without OpenCV (see image_codec.hpp): INTER_AREA when shrinking (OpenCV's area
// weights, accumulated in double and rounded), INTER_LINEAR when enlarging (OpenCV's 11-bit
// fixed-point coefficients and rounding, so enlargements are identical).
#include <algorithm>
#include <cmath>
#include <vector>

#include "image/image_codec.hpp"

namespace rdm::image::detail {

namespace {

struct Tap {
  int src;
  double w;
};

// OpenCV's computeResizeAreaTab: for each destination index, the source cells it covers.
std::vector<std::vector<Tap>> area_taps(int ssize, int dsize) {
  const double scale = static_cast<double>(ssize) / dsize;
  std::vector<std::vector<Tap>> taps(dsize);
  for (int dx = 0; dx < dsize; ++dx) {
    const double fsx1 = dx * scale, fsx2 = fsx1 + scale;
    const double cell = std::min(scale, ssize - fsx1);
    const int sx1 = static_cast<int>(std::ceil(fsx1)), sx2 = static_cast<int>(std::floor(fsx2));
    auto& t = taps[dx];
    if (sx1 - fsx1 > 1e-3) t.push_back({sx1 - 1, (sx1 - fsx1) / cell});
    for (int sx = sx1; sx < sx2 && sx < ssize; ++sx) t.push_back({sx, 1.0 / cell});
    if (fsx2 - sx2 > 1e-3 && sx2 < ssize) t.push_back({sx2, std::min(std::min(fsx2 - sx2, 1.0), cell) / cell});
  }
  return taps;
}

// OpenCV's INTER_LINEAR source index and 11-bit coefficient pair for one axis.
struct Lin {
  int s0, s1;
  int c0, c1;
};
std::vector<Lin> linear_taps(int ssize, int dsize) {
  const double scale = static_cast<double>(ssize) / dsize;
  std::vector<Lin> t(dsize);
  for (int d = 0; d < dsize; ++d) {
    double f = (d + 0.5) * scale - 0.5;
    int s = static_cast<int>(std::floor(f));
    f -= s;
    if (s < 0) f = 0, s = 0;
    int s1 = s + 1;
    if (s >= ssize - 1) s = ssize - 1, s1 = ssize - 1, f = 0;
    const int c0 = static_cast<int>(std::lround((1.0 - f) * 2048));
    t[d] = {s, s1, c0, 2048 - c0};
  }
  return t;
}

}  // namespace

void resize_area_linear(const uint8_t* src, int sw, int sh, int ch, uint8_t* dst, int dw, int dh) {
  if (dw < sw || dh < sh) {  // shrink: INTER_AREA
    const auto tx = area_taps(sw, dw), ty = area_taps(sh, dh);
    std::vector<double> row(size_t(dw) * ch);
    for (int y = 0; y < dh; ++y) {
      std::fill(row.begin(), row.end(), 0.0);
      for (const Tap& vy : ty[y]) {
        const uint8_t* s = src + size_t(vy.src) * sw * ch;
        for (int x = 0; x < dw; ++x)
          for (const Tap& vx : tx[x])
            for (int c = 0; c < ch; ++c) row[size_t(x) * ch + c] += vy.w * vx.w * s[size_t(vx.src) * ch + c];
      }
      for (size_t i = 0; i < row.size(); ++i)
        dst[size_t(y) * dw * ch + i] = static_cast<uint8_t>(std::clamp(std::lrint(row[i]), 0L, 255L));
    }
    return;
  }
  const auto tx = linear_taps(sw, dw), ty = linear_taps(sh, dh);  // enlarge: INTER_LINEAR
  for (int y = 0; y < dh; ++y) {
    const uint8_t* r0 = src + size_t(ty[y].s0) * sw * ch;
    const uint8_t* r1 = src + size_t(ty[y].s1) * sw * ch;
    for (int x = 0; x < dw; ++x)
      for (int c = 0; c < ch; ++c) {
        const Lin& h = tx[x];
        const int64_t a = int64_t(h.c0) * r0[size_t(h.s0) * ch + c] + int64_t(h.c1) * r0[size_t(h.s1) * ch + c];
        const int64_t b = int64_t(h.c0) * r1[size_t(h.s0) * ch + c] + int64_t(h.c1) * r1[size_t(h.s1) * ch + c];
        const int64_t v = (ty[y].c0 * a + ty[y].c1 * b + (int64_t(1) << 21)) >> 22;
        dst[(size_t(y) * dw + x) * ch + c] = static_cast<uint8_t>(std::clamp<int64_t>(v, 0, 255));
      }
  }
}

}  // namespace rdm::image::detail
