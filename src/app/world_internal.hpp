// Internals of the procedural world (src/app/world*.cpp): palettes, the counter-based random
// numbers and the object rasteriser. Integer arithmetic only, so pictures are bit-identical on
// every machine.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rdm::world::detail {

struct Rgb {
  int r, g, b;
};
struct NamedRgb {
  const char* name;
  Rgb rgb;
};

// Object colours: saturated, far from every background.
inline constexpr NamedRgb kColours[] = {
    {"red", {220, 38, 38}},   {"orange", {245, 132, 20}}, {"yellow", {248, 218, 40}},
    {"green", {40, 160, 60}}, {"blue", {36, 86, 220}},    {"purple", {140, 56, 190}},
    {"white", {248, 248, 246}}, {"black", {22, 22, 26}},
};
// Backgrounds: muted mid tones (and two dark ones), never mistaken for an object colour.
inline constexpr NamedRgb kBackgrounds[] = {
    {"sky", {150, 182, 208}},  {"sand", {206, 190, 150}}, {"sage", {150, 176, 140}},
    {"stone", {140, 140, 140}}, {"rose", {204, 160, 166}}, {"lilac", {170, 160, 198}},
    {"navy", {44, 58, 96}},    {"forest", {40, 76, 56}},
};

inline int luminance(Rgb c) { return (77 * c.r + 150 * c.g + 29 * c.b) >> 8; }
inline int distance1(Rgb a, Rgb b) {
  auto d = [](int x) { return x < 0 ? -x : x; };
  return d(a.r - b.r) + d(a.g - b.g) + d(a.b - b.b);
}
// Backgrounds usable behind an object colour (enough contrast).
inline bool contrasts(Rgb object, Rgb background) { return distance1(object, background) >= 200; }

// splitmix64: the mixing function of every random draw.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
// A counter-based stream: draw(k) depends only on (key, k).
struct Stream {
  uint64_t key;
  uint64_t draw(uint64_t k) const { return mix64(key ^ mix64(k + 0x632BE59BD9B4E019ull)); }
  int below(uint64_t k, int n) const { return static_cast<int>(draw(k) % static_cast<uint64_t>(n)); }
  // Integer in [lo, hi].
  int range(uint64_t k, int lo, int hi) const { return lo + below(k, hi - lo + 1); }
  // True with probability p (53-bit comparison, exact in double).
  bool chance(uint64_t k, double p) const {
    return static_cast<double>(draw(k) >> 11) * (1.0 / 9007199254740992.0) < p;
  }
};
inline uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Object parts in the label grid: 0 background, 1 body (the object's colour), 2 detail (a
// darker shade: door, trunk, mast, lamp room).
enum Part : uint8_t { kBackground = 0, kBody = 1, kDetail = 2 };

// Supersampled label grid, n x n samples; sample (i, j) has its centre at (2j+1, 2i+1) in
// half-sample units.
struct LabelGrid {
  int n = 0;
  std::vector<uint8_t> label;
  uint8_t at(int i, int j) const { return label[static_cast<size_t>(i) * n + j]; }
};

// Rasterises `object` centred at (cx, cy) with half-extent h (all in half-sample units).
// Throws rdm::Error for an unknown object.
LabelGrid rasterise(const std::string& object, int64_t cx, int64_t cy, int64_t h, int n);

}  // namespace rdm::world::detail
