// Rendering a scene of the procedural world: the object is rasterised into a 4x supersampled
// label grid (world_shapes.cpp), every sample is shaded by the style (textures drawn per sample,
// so stripes and dots are anti-aliased too), samples are box-filtered to pixels, and some styles
// post-process the pixels (mosaic tiles, watercolour bleeding, film grain). Integer arithmetic
// only: the same scene gives the same bytes everywhere.
#include <algorithm>

#include "app/world_internal.hpp"
#include "rdm/app/world.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::world {
using namespace detail;

namespace {

constexpr int kSuper = 4;  // samples per pixel along each axis
enum Style { kFlat, kStripes, kDots, kChecks, kGradient, kSketch, kMosaic, kWatercolour, kGrain,
             kHatching, kPixel };

Rgb mix(Rgb a, Rgb b, int t) {  // t in [0, 256]: a -> b
  return {a.r + (b.r - a.r) * t / 256, a.g + (b.g - a.g) * t / 256, a.b + (b.b - a.b) * t / 256};
}
constexpr Rgb kWhite{255, 255, 255}, kBlack{0, 0, 0};
// A second tone of a colour for textures: lighter for dark and mid colours, darker for light ones.
Rgb tint(Rgb c) { return luminance(c) > 170 ? mix(c, kBlack, 72) : mix(c, kWhite, 112); }
Rgb detail_of(Rgb c) { return luminance(c) < 60 ? mix(c, kWhite, 96) : mix(c, kBlack, 96); }
// `c`, or a darker (lighter) shade of it where it would vanish on `paper`.
Rgb against(Rgb c, Rgb paper) {
  if (distance1(c, paper) >= 150) return c;
  return luminance(paper) > 128 ? mix(c, kBlack, 150) : mix(c, kWhite, 150);
}

struct Ctx {
  int size = 0, n = 0;  // pixels, samples per side
  Style style = kFlat;
  Rgb body{}, detail{}, bg{}, paper{};
  Stream rng{0};
  LabelGrid grid;
  int64_t cx = 0, cy = 0, h = 0;  // object centre and half-extent, half-sample units
  int phase_i = 0, phase_j = 0;   // texture offsets, samples
  std::vector<uint8_t> edge;      // outline samples (sketch, hatching): label of the stroke + 1
};

// Samples for a length given in pixels of a 64-pixel picture (scales with the picture).
int px(const Ctx& c, int tenths) { return std::max(1, tenths * c.n / 640); }

const Rgb& part_colour(const Ctx& c, uint8_t label) {
  return label == kDetail ? c.detail : label == kBody ? c.body : c.bg;
}

// Outline samples: where the labels within `w` samples differ (separable min/max filter).
void find_edges(Ctx& c, int w) {
  const int n = c.n;
  std::vector<uint8_t> lo(c.grid.label.size()), hi(c.grid.label.size());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      uint8_t a = 255, b = 0;
      for (int k = std::max(0, j - w); k <= std::min(n - 1, j + w); ++k) {
        a = std::min(a, c.grid.at(i, k));
        b = std::max(b, c.grid.at(i, k));
      }
      lo[static_cast<size_t>(i) * n + j] = a, hi[static_cast<size_t>(i) * n + j] = b;
    }
  c.edge.assign(c.grid.label.size(), 0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      uint8_t a = 255, b = 0;
      for (int k = std::max(0, i - w); k <= std::min(n - 1, i + w); ++k) {
        a = std::min(a, lo[static_cast<size_t>(k) * n + j]);
        b = std::max(b, hi[static_cast<size_t>(k) * n + j]);
      }
      if (a != b) c.edge[static_cast<size_t>(i) * n + j] = static_cast<uint8_t>(b + 1);
    }
}

// Texture helpers on sample coordinates (i row, j column).
bool in_stripe(const Ctx& c, int i, int j) {
  const int p = px(c, 70);
  return (i + j + c.phase_i) % p < p / 2;
}
bool in_check(const Ctx& c, int i, int j) {
  const int p = px(c, 50);
  return ((i + c.phase_i) / p + (j + c.phase_j) / p) % 2 == 0;
}
bool in_dot(const Ctx& c, int i, int j) {
  const int p = px(c, 60);
  const int ii = i + c.phase_i, row = ii / p;
  const int jj = j + c.phase_j + (row % 2) * (p / 2);
  const int di = 2 * (ii % p) - p, dj = 2 * (jj % p) - p;  // doubled offsets from the cell centre
  return di * di + dj * dj <= (p * 68 / 100) * (p * 68 / 100);
}
bool on_line(const Ctx& c, int v, int period_tenths, int width_tenths) {
  const int p = px(c, period_tenths);
  return (v % p + p) % p < px(c, width_tenths);
}

Rgb shade(const Ctx& c, int i, int j) {
  const uint8_t label = c.grid.at(i, j);
  const Rgb base = part_colour(c, label);
  switch (c.style) {
    case kStripes: return in_stripe(c, i, j) ? base : tint(base);
    case kChecks: return in_check(c, i, j) ? base : tint(base);
    case kDots: return in_dot(c, i, j) ? tint(base) : base;
    case kGradient: {
      if (label == kBackground) {
        const int t = i * 256 / c.n;
        return mix(mix(base, kWhite, 110), mix(base, kBlack, 70), t);
      }
      // Light at the object's top left, dark at its bottom right.
      const int64_t d = (2 * i + 1 - (c.cy - c.h)) + (2 * j + 1 - (c.cx - c.h));
      const int t = static_cast<int>(std::clamp<int64_t>(d * 256 / (4 * c.h), 0, 256));
      return mix(mix(base, kWhite, 100), mix(base, kBlack, 70), t);
    }
    case kSketch: {
      // Two pencil lines: the outline and a copy of it shifted by about a pixel and a half.
      const int i2 = std::min(c.n - 1, i + px(c, 15)), j2 = std::max(0, j - px(c, 10));
      uint8_t e = c.edge[static_cast<size_t>(i) * c.n + j];
      if (!e) e = c.edge[static_cast<size_t>(i2) * c.n + j2];
      if (e) return against(part_colour(c, static_cast<uint8_t>(e - 1)), c.paper);
      return label == kBackground ? c.paper : mix(c.paper, base, 90);
    }
    case kHatching: {
      const uint8_t e = c.edge[static_cast<size_t>(i) * c.n + j];
      if (e) return against(part_colour(c, static_cast<uint8_t>(e - 1)), c.paper);
      if (label == kBackground)
        return on_line(c, i - j + c.phase_i, 40, 10) ? against(c.bg, c.paper) : c.paper;
      const bool line = on_line(c, i + j + c.phase_j, 30, 12) || on_line(c, i - j + c.phase_i, 30, 12);
      return line ? against(base, c.paper) : mix(c.paper, base, 100);
    }
    case kWatercolour: return label == kBackground ? mix(base, kWhite, 70) : mix(base, kWhite, 30);
    default: return base;  // flat, mosaic, grain, pixel: flat fill, then post-processing
  }
}

struct Image {
  int size;
  std::vector<int> rgb;   // size*size*3
  std::vector<int> alpha; // object coverage 0..256 per pixel
};

Image supersample(const Ctx& c) {
  Image img{c.size, std::vector<int>(static_cast<size_t>(c.size) * c.size * 3, 0),
            std::vector<int>(static_cast<size_t>(c.size) * c.size, 0)};
  constexpr int k2 = kSuper * kSuper;
  for (int y = 0; y < c.size; ++y)
    for (int x = 0; x < c.size; ++x) {
      int r = 0, g = 0, b = 0, a = 0;
      for (int i = y * kSuper; i < (y + 1) * kSuper; ++i)
        for (int j = x * kSuper; j < (x + 1) * kSuper; ++j) {
          const Rgb s = shade(c, i, j);
          r += s.r, g += s.g, b += s.b;
          a += c.grid.at(i, j) != kBackground;
        }
      int* p = &img.rgb[(static_cast<size_t>(y) * c.size + x) * 3];
      p[0] = (r + k2 / 2) / k2, p[1] = (g + k2 / 2) / k2, p[2] = (b + k2 / 2) / k2;
      img.alpha[static_cast<size_t>(y) * c.size + x] = a * 256 / k2;
    }
  return img;
}

// Hash noise in [0, 255] and smooth value noise in [0, 255] on a lattice of `cell` pixels.
int hash_noise(const Ctx& c, uint64_t salt, int x, int y) {
  return static_cast<int>(c.rng.draw(salt * 0x100000000ull + static_cast<uint64_t>(y) * 4096 + x) & 255);
}
int value_noise(const Ctx& c, uint64_t salt, int x, int y, int cell) {
  const int gx = x / cell, gy = y / cell, fx = (x % cell) * 256 / cell, fy = (y % cell) * 256 / cell;
  auto v = [&](int a, int b) { return hash_noise(c, salt, a, b); };
  const int top = v(gx, gy) * (256 - fx) + v(gx + 1, gy) * fx;
  const int bottom = v(gx, gy + 1) * (256 - fx) + v(gx + 1, gy + 1) * fx;
  return (top * (256 - fy) + bottom * fy) >> 16;
}

void box_blur(std::vector<int>& v, int size, int channels, int r) {
  std::vector<int> tmp(v.size());
  for (int pass = 0; pass < 2; ++pass) {  // horizontal into tmp, then vertical back into v
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x)
        for (int ch = 0; ch < channels; ++ch) {
          int sum = 0;
          for (int k = -r; k <= r; ++k) {
            const int xx = std::clamp((pass ? y : x) + k, 0, size - 1);
            const size_t at = pass ? (static_cast<size_t>(xx) * size + x) : (static_cast<size_t>(y) * size + xx);
            sum += (pass ? tmp : v)[at * channels + ch];
          }
          (pass ? v : tmp)[(static_cast<size_t>(y) * size + x) * channels + ch] = sum / (2 * r + 1);
        }
  }
}

void watercolour(const Ctx& c, Image& img) {
  const int s = c.size, blur = std::max(1, s / 64);
  Image out = img;
  for (int y = 0; y < s; ++y)  // ragged, bleeding edges: sample through a smooth displacement
    for (int x = 0; x < s; ++x) {
      const int dx = (value_noise(c, 1, x, y, std::max(2, s / 8)) - 128) * s * 3 / 16384;  // +-1.5 px at 64
      const int dy = (value_noise(c, 2, x, y, std::max(2, s / 8)) - 128) * s * 3 / 16384;
      const size_t from = static_cast<size_t>(std::clamp(y + dy, 0, s - 1)) * s + std::clamp(x + dx, 0, s - 1);
      const size_t to = static_cast<size_t>(y) * s + x;
      for (int ch = 0; ch < 3; ++ch) out.rgb[to * 3 + ch] = img.rgb[from * 3 + ch];
      out.alpha[to] = img.alpha[from];
    }
  box_blur(out.rgb, s, 3, blur);
  box_blur(out.rgb, s, 3, blur);
  box_blur(out.alpha, s, 1, blur);
  for (int y = 0; y < s; ++y)
    for (int x = 0; x < s; ++x) {
      const size_t p = static_cast<size_t>(y) * s + x;
      const int a = out.alpha[p];
      const int rim = a * (256 - a) / 64;                                          // 0..256 at the edge
      const int pigment = 212 + value_noise(c, 3, x, y, std::max(2, s / 6)) * 60 / 256;  // blotches
      const int grain = hash_noise(c, 4, x, y) % 13 - 6;                           // paper
      for (int ch = 0; ch < 3; ++ch) {
        int v = out.rgb[p * 3 + ch] * (256 - rim * 80 / 256) / 256;
        out.rgb[p * 3 + ch] = v * pigment / 256 + 12 + grain;
      }
    }
  img = std::move(out);
}

void mosaic(const Ctx& c, Image& img) {
  const int s = c.size, t = std::max(3, s * 4 / 64), grout = std::max(1, s / 64);
  const int off = c.phase_j % t, offy = c.phase_i % t;
  const Rgb grout_rgb = mix(c.bg, kBlack, 50);
  Image out = img;
  for (int ty = -1; ty * t + offy < s; ++ty)
    for (int tx = -1; tx * t + off < s; ++tx) {
      const int x0 = std::max(0, tx * t + off), y0 = std::max(0, ty * t + offy);
      const int x1 = std::min(s, tx * t + off + t - grout), y1 = std::min(s, ty * t + offy + t - grout);
      if (x1 <= x0 || y1 <= y0) continue;
      int sum[3] = {0, 0, 0}, cnt = 0;
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x, ++cnt)
          for (int ch = 0; ch < 3; ++ch) sum[ch] += img.rgb[(static_cast<size_t>(y) * s + x) * 3 + ch];
      const int jitter = hash_noise(c, 5, tx + 1, ty + 1) % 29 - 14;
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x)
          for (int ch = 0; ch < 3; ++ch)
            out.rgb[(static_cast<size_t>(y) * s + x) * 3 + ch] = sum[ch] / cnt + jitter;
    }
  for (int y = 0; y < s; ++y)  // grout: the last `grout` pixels of every tile row and column
    for (int x = 0; x < s; ++x)
      if ((x - off + t) % t >= t - grout || (y - offy + t) % t >= t - grout) {
        int* p = &out.rgb[(static_cast<size_t>(y) * s + x) * 3];
        p[0] = grout_rgb.r, p[1] = grout_rgb.g, p[2] = grout_rgb.b;
      }
  img = std::move(out);
}

void grain(const Ctx& c, Image& img) {
  for (int y = 0; y < c.size; ++y)
    for (int x = 0; x < c.size; ++x) {
      const int n = (hash_noise(c, 6, x, y) + hash_noise(c, 7, x, y) - 255) * 5 / 16;  // +-80
      int* p = &img.rgb[(static_cast<size_t>(y) * c.size + x) * 3];
      for (int ch = 0; ch < 3; ++ch) p[ch] += n + hash_noise(c, 8 + ch, x, y) % 17 - 8;
    }
}

void paper_grain(const Ctx& c, Image& img) {
  for (int y = 0; y < c.size; ++y)
    for (int x = 0; x < c.size; ++x) {
      const int n = hash_noise(c, 11, x, y) % 5 - 2;
      int* p = &img.rgb[(static_cast<size_t>(y) * c.size + x) * 3];
      for (int ch = 0; ch < 3; ++ch) p[ch] += n;
    }
}

void pixelate(const Ctx& c, Image& img) {
  const int s = c.size, b = std::max(2, s * 3 / 64);
  for (int y0 = 0; y0 < s; y0 += b)
    for (int x0 = 0; x0 < s; x0 += b) {
      // The block takes the colour of its centre pixel (no blending: hard block edges), with a
      // random shade, as in 8-bit game scenery.
      const size_t centre = static_cast<size_t>(std::min(s - 1, y0 + b / 2)) * s + std::min(s - 1, x0 + b / 2);
      const int* src = &img.rgb[centre * 3];
      const int shade = (hash_noise(c, 12, x0 / b, y0 / b) % 3 - 1) * 16;
      const int q[3] = {src[0] + shade, src[1] + shade, src[2] + shade};
      for (int y = y0; y < std::min(s, y0 + b); ++y)
        for (int x = x0; x < std::min(s, x0 + b); ++x)
          for (int ch = 0; ch < 3; ++ch) img.rgb[(static_cast<size_t>(y) * s + x) * 3 + ch] = q[ch];
    }
}

int index_of(const std::vector<std::string>& names, const std::string& name, const char* what) {
  auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) fail("unknown {} '{}'", what, name);
  return static_cast<int>(it - names.begin());
}

Ctx make_context(const Scene& scene, int size) {
  Ctx c;
  c.size = size;
  c.n = size * kSuper;
  c.style = static_cast<Style>(index_of(style_names(), scene.style, "style"));
  c.body = kColours[index_of(colour_names(), scene.colour, "colour")].rgb;
  c.detail = detail_of(c.body);
  c.bg = kBackgrounds[index_of(background_names(), scene.background, "background")].rgb;
  c.paper = mix(c.bg, Rgb{242, 236, 222}, 170);  // sketch and hatching: the background, faded
  const Stream geo{mix64(scene.seed)};
  c.rng = Stream{mix64(scene.seed ^ hash_name(scene.style))};
  // Geometry (half-sample units, 2n across): size with +-6% jitter, position on a 3x3 grid
  // keeping the object inside the picture, +-2.5% jitter.
  const int64_t span = 2 * static_cast<int64_t>(c.n);
  const int size_id = index_of(size_names(), scene.size, "size");
  const int pos_id = index_of(position_names(), scene.position, "position");
  c.h = span * (size_id == 0 ? 170 : 280) / 1000 * geo.range(1, 940, 1060) / 1000;
  const int64_t e = c.h + span * 45 / 1000, jitter = span * 25 / 1000;
  c.cx = e + (pos_id % 3) * (span - 2 * e) / 2 + jitter * geo.range(2, -100, 100) / 100;
  c.cy = e + (pos_id / 3) * (span - 2 * e) / 2 + jitter * geo.range(3, -100, 100) / 100;
  c.grid = rasterise(scene.object, c.cx, c.cy, c.h, c.n);
  c.phase_i = c.rng.range(20, 0, c.n);
  c.phase_j = c.rng.range(21, 0, c.n);
  if (c.style == kSketch) find_edges(c, px(c, 5));
  if (c.style == kHatching) find_edges(c, px(c, 4));
  return c;
}

}  // namespace

Picture render(const Scene& scene, int size) {
  if (size < 16 || size > 512) fail("picture size {} out of range [16, 512]", size);
  const Ctx c = make_context(scene, size);
  Image img = supersample(c);
  switch (c.style) {
    case kWatercolour: watercolour(c, img); break;
    case kMosaic: mosaic(c, img); break;
    case kGrain: grain(c, img); break;
    case kSketch: case kHatching: paper_grain(c, img); break;
    case kPixel: pixelate(c, img); break;
    default: break;
  }
  Picture p{size, size, std::vector<uint8_t>(img.rgb.size())};
  for (size_t k = 0; k < img.rgb.size(); ++k) p.rgb[k] = static_cast<uint8_t>(std::clamp(img.rgb[k], 0, 255));
  return p;
}

}  // namespace rdm::world
