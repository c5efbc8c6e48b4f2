// The objects of the procedural world as polygons and ellipses on a template square
// [-1024, 1024]^2 (y down), rasterised into a supersampled label grid with exact integer
// inside tests (no trigonometry: the star and flower corners are tabulated).
#include <algorithm>
#include <map>

#include "app/world_internal.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::world::detail {
namespace {

struct Pt {
  int x, y;
};
// One primitive: a polygon (pts) or an ellipse (rx > 0), painted with `part` (0 erases).
struct Prim {
  uint8_t part;
  std::vector<Pt> pts;
  int cx = 0, cy = 0, rx = 0, ry = 0;
};
Prim poly(uint8_t part, std::vector<Pt> pts) { return Prim{part, std::move(pts)}; }
Prim ellipse(uint8_t part, int cx, int cy, int rx, int ry) { return Prim{part, {}, cx, cy, rx, ry}; }
Prim rect(uint8_t part, int x0, int y0, int x1, int y1) {
  return poly(part, {{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}});
}

const std::map<std::string, std::vector<Prim>>& templates() {
  static const std::map<std::string, std::vector<Prim>> t = {
      {"circle", {ellipse(kBody, 0, 0, 980, 980)}},
      {"square", {rect(kBody, -820, -820, 820, 820)}},
      {"triangle", {poly(kBody, {{0, -930}, {1010, 860}, {-1010, 860}})}},
      // 5 points: outer radius 1024, inner 430, angles -90 + 36k degrees (tabulated).
      {"star", {poly(kBody, {{0, -934}, {253, -258}, {974, -226}, {409, 223}, {602, 918},
                             {0, 520}, {-602, 918}, {-409, 223}, {-974, -226}, {-253, -258}})}},
      {"house", {rect(kBody, -760, -60, 760, 940),
                 poly(kDetail, {{-1000, -20}, {0, -960}, {1000, -20}}),
                 rect(kDetail, -170, 420, 170, 940), rect(kDetail, 330, 160, 600, 420),
                 rect(kDetail, -600, 160, -330, 420)}},
      {"tree", {poly(kDetail, {{-160, 200}, {160, 200}, {210, 1000}, {-210, 1000}}),
                ellipse(kBody, -400, -120, 500, 460), ellipse(kBody, 400, -120, 500, 460),
                ellipse(kBody, 0, -480, 580, 520), ellipse(kBody, 0, 80, 520, 380)}},
      {"boat", {rect(kDetail, -50, -950, 50, 400),
                poly(kBody, {{90, -880}, {90, 300}, {800, 300}}),
                poly(kBody, {{-90, -640}, {-90, 300}, {-620, 300}}),
                poly(kBody, {{-1000, 380}, {1000, 380}, {700, 840}, {-700, 840}})}},
      {"lighthouse", {poly(kBody, {{-330, -560}, {330, -560}, {480, 1000}, {-480, 1000}}),
                      poly(kDetail, {{-384, 0}, {384, 0}, {403, 200}, {-403, 200}}),
                      poly(kDetail, {{-432, 500}, {432, 500}, {451, 700}, {-451, 700}}),
                      rect(kDetail, -420, -610, 420, -540), rect(kDetail, -230, -820, 230, -560),
                      poly(kBody, {{-340, -810}, {0, -1020}, {340, -810}})}},
      {"moon", {ellipse(kBody, 0, 0, 990, 990), ellipse(kBackground, 430, -280, 800, 800)}},
      {"fish", {poly(kBody, {{420, 0}, {1000, -460}, {1000, 460}}),
                ellipse(kBody, -160, 0, 760, 460), ellipse(kDetail, -590, -90, 100, 100)}},
      {"mountain", {poly(kBody, {{-1000, 820}, {-250, -720}, {500, 820}}),
                    poly(kBody, {{-100, 820}, {450, -260}, {1000, 820}}),
                    poly(kDetail, {{-250, -720}, {-430, -350}, {-70, -350}})}},
      // Five petals at radius 560, angles -90 + 72k degrees (tabulated), and a centre.
      {"flower", {ellipse(kBody, 0, -560, 340, 340), ellipse(kBody, 533, -173, 340, 340),
                  ellipse(kBody, 329, 453, 340, 340), ellipse(kBody, -329, 453, 340, 340),
                  ellipse(kBody, -533, -173, 340, 340), ellipse(kDetail, 0, 0, 330, 330)}},
  };
  return t;
}

bool inside_polygon(const std::vector<Pt>& p, int64_t x, int64_t y) {
  bool in = false;
  for (size_t a = 0, b = p.size() - 1; a < p.size(); b = a++) {
    const int64_t ax = p[a].x, ay = p[a].y, bx = p[b].x, by = p[b].y;
    if ((ay > y) == (by > y)) continue;
    const int64_t lhs = (x - ax) * (by - ay), rhs = (y - ay) * (bx - ax);
    if (by - ay > 0 ? lhs < rhs : lhs > rhs) in = !in;
  }
  return in;
}

}  // namespace

LabelGrid rasterise(const std::string& object, int64_t cx, int64_t cy, int64_t h, int n) {
  auto it = templates().find(object);
  if (it == templates().end()) fail("unknown object '{}'", object);
  LabelGrid g;
  g.n = n;
  g.label.assign(static_cast<size_t>(n) * n, kBackground);
  auto sx = [&](int v) { return cx + v * h / 1024; };
  auto sy = [&](int v) { return cy + v * h / 1024; };
  for (const Prim& prim : it->second) {
    int64_t x0, x1, y0, y1;
    std::vector<Pt> pts;
    int64_t ex = 0, ey = 0, erx = 0, ery = 0;
    if (prim.rx > 0) {
      ex = sx(prim.cx), ey = sy(prim.cy), erx = prim.rx * h / 1024, ery = prim.ry * h / 1024;
      x0 = ex - erx, x1 = ex + erx, y0 = ey - ery, y1 = ey + ery;
    } else {
      for (const Pt& p : prim.pts)
        pts.push_back({static_cast<int>(sx(p.x)), static_cast<int>(sy(p.y))});
      x0 = x1 = pts[0].x, y0 = y1 = pts[0].y;
      for (const Pt& p : pts) {
        x0 = std::min<int64_t>(x0, p.x), x1 = std::max<int64_t>(x1, p.x);
        y0 = std::min<int64_t>(y0, p.y), y1 = std::max<int64_t>(y1, p.y);
      }
    }
    // Sample (i, j) sits at (2j+1, 2i+1): the samples inside the bounding box.
    const int j0 = static_cast<int>(std::max<int64_t>(0, (x0 - 1) / 2));
    const int j1 = static_cast<int>(std::min<int64_t>(n - 1, (x1 + 1) / 2));
    const int i0 = static_cast<int>(std::max<int64_t>(0, (y0 - 1) / 2));
    const int i1 = static_cast<int>(std::min<int64_t>(n - 1, (y1 + 1) / 2));
    const int64_t rx2 = erx * erx, ry2 = ery * ery;
    for (int i = i0; i <= i1; ++i) {
      const int64_t y = 2 * i + 1;
      for (int j = j0; j <= j1; ++j) {
        const int64_t x = 2 * j + 1;
        bool in;
        if (prim.rx > 0)
          in = (x - ex) * (x - ex) * ry2 + (y - ey) * (y - ey) * rx2 <= rx2 * ry2;
        else
          in = inside_polygon(pts, x, y);
        if (in) g.label[static_cast<size_t>(i) * n + j] = prim.part;
      }
    }
  }
  return g;
}

}  // namespace rdm::world::detail
