// Line plots and bar charts drawn into an RgbImage (see rdm/image/plot.hpp). Labels use the
// Hershey glyphs pre-rasterised for the contact sheets (hershey_font.inc).
#include "rdm/image/plot.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <spdlog/fmt/fmt.h>

#include "rdm/runtime/error.hpp"

namespace rdm::image {

namespace {

struct HersheyGlyph {
  int advance256, x, y, w, h;
  size_t offset;
};
#include "image/hershey_font.inc"

using Rgb = std::array<uint8_t, 3>;

const Rgb kPalette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                        {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127}};
constexpr Rgb kAxis{40, 40, 40}, kGrid{225, 225, 225}, kText{20, 20, 20};

Rgb pick(const Rgb& c, size_t i) {
  if (c[0] || c[1] || c[2]) return c;
  return kPalette[i % (sizeof kPalette / sizeof kPalette[0])];
}

void check_size(const PlotOptions& o) {
  if (o.width < 160 || o.height < 120 || o.width > 4096 || o.height > 4096)
    fail("plot size {}x{} is outside 160x120..4096x4096", o.width, o.height);
}

void blend(RgbImage& im, int x, int y, const Rgb& c, int alpha = 255) {
  if (x < 0 || y < 0 || x >= im.width || y >= im.height) return;
  uint8_t* d = im.at(y, x);
  for (int k = 0; k < 3; ++k) d[k] = static_cast<uint8_t>(d[k] + ((int(c[k]) - d[k]) * alpha + 127) / 255);
}

void fill_rect(RgbImage& im, int x0, int y0, int x1, int y1, const Rgb& c) {
  for (int y = std::max(0, y0); y < std::min<int>(static_cast<int>(im.height), y1); ++y)
    for (int x = std::max(0, x0); x < std::min<int>(static_cast<int>(im.width), x1); ++x) blend(im, x, y, c);
}

// Bresenham line, `thick` pixels wide (a square pen).
void line(RgbImage& im, int x0, int y0, int x1, int y1, const Rgb& c, int thick = 1) {
  const int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
  const int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  const int lo = -(thick - 1) / 2, hi = thick / 2;
  while (true) {
    for (int oy = lo; oy <= hi; ++oy)
      for (int ox = lo; ox <= hi; ++ox) blend(im, x0 + ox, y0 + oy, c);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

int text_width(const std::string& s) {
  double w = 0;
  for (unsigned char c : s) w += kHersheyGlyphs[0][(c < 32 || c > 126 ? '?' : c) - 32].advance256 / 256.0;
  return static_cast<int>(std::lround(w));
}

// Text with its baseline at py; align: 0 left, 1 centre, 2 right of px.
void text(RgbImage& im, const std::string& s, int px, int py, int align = 0, const Rgb& c = kText) {
  double pen = px - (align == 1 ? text_width(s) / 2 : align == 2 ? text_width(s) : 0);
  for (unsigned char ch : s) {
    if (ch < 32 || ch > 126) ch = '?';
    const HersheyGlyph& g = kHersheyGlyphs[0][ch - 32];
    const int gx = static_cast<int>(std::lround(pen)) + g.x, gy = py + g.y;
    for (int y = 0; y < g.h; ++y)
      for (int x = 0; x < g.w; ++x)
        if (int a = kHersheyPixels[g.offset + size_t(y) * g.w + x]) blend(im, gx + x, gy + y, c, a);
    pen += g.advance256 / 256.0;
  }
}

std::string tick_label(double v, double step) {
  if (v == 0) return "0";
  const double a = std::abs(v);
  if (a >= 1e5 || a < 1e-3) return fmt::format("{:.0e}", v);
  const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  return fmt::format("{:.{}f}", v, decimals);
}

// The plot area inside the margins, and its value ranges.
struct Frame {
  int left, top, right, bottom;  // pixel box of the plot area
  double x0, x1, y0, y1;         // value range (y in log10 when log_y)
  bool log_y;
  int px(double x) const { return left + static_cast<int>(std::lround((x - x0) / (x1 - x0) * (right - left))); }
  int py(double y) const {
    const double v = log_y ? std::log10(y) : y;
    return bottom - static_cast<int>(std::lround((v - y0) / (y1 - y0) * (bottom - top)));
  }
};

RgbImage canvas(const PlotOptions& o) { return RgbImage(o.height, o.width, 255); }

void draw_titles(RgbImage& im, const PlotOptions& o, const Frame& f) {
  if (!o.title.empty()) text(im, o.title, o.width / 2, 16, 1);
  if (!o.x_label.empty()) text(im, o.x_label, (f.left + f.right) / 2, o.height - 6, 1);
  if (!o.y_label.empty()) text(im, o.y_label, 6, f.top - 8);
}

// Grid lines, ticks and tick labels of both axes; x ticks only when `x_ticks`.
void draw_axes(RgbImage& im, const Frame& f, bool x_ticks) {
  // Tick values (in data units) and the step their labels are rounded to.
  std::vector<double> yt;
  double ystep = 1;
  if (f.log_y) {
    for (double e = std::ceil(f.y0 - 1e-9); e <= f.y1 + 1e-9; e += 1) yt.push_back(std::pow(10.0, e));
    if (yt.size() < 2) {  // less than a decade: round values, placed on the log scale
      yt = nice_ticks(std::pow(10.0, f.y0), std::pow(10.0, f.y1));
      ystep = yt.size() > 1 ? yt[1] - yt[0] : yt.empty() ? 1 : yt[0];
    } else {
      ystep = 0;  // labels per decade
    }
  } else {
    yt = nice_ticks(f.y0, f.y1);
    ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  }
  for (double value : yt) {
    if (f.log_y && value <= 0) continue;
    const int y = f.py(value);
    line(im, f.left, y, f.right, y, kGrid);
    line(im, f.left - 4, y, f.left, y, kAxis);
    text(im, tick_label(value, ystep > 0 ? ystep : value), f.left - 7, y + 4, 2);
  }
  if (x_ticks) {
    const auto xt = nice_ticks(f.x0, f.x1);
    const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
    for (double v : xt) {
      const int x = f.px(v);
      line(im, x, f.top, x, f.bottom, kGrid);
      line(im, x, f.bottom, x, f.bottom + 4, kAxis);
      text(im, tick_label(v, xstep), x, f.bottom + 17, 1);
    }
  }
  line(im, f.left, f.top, f.left, f.bottom, kAxis);
  line(im, f.left, f.bottom, f.right, f.bottom, kAxis);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(std::isfinite(lo) && std::isfinite(hi))) return {};
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    out.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return out;
}

RgbImage line_plot(const std::vector<PlotSeries>& series, const PlotOptions& o) {
  check_size(o);
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!o.log_y || y > 0); };
  for (const auto& s : series) {
    if (s.x.size() != s.y.size())
      fail("plot series '{}': {} x values but {} y values", s.label, s.x.size(), s.y.size());
    for (size_t i = 0; i < s.x.size(); ++i)
      if (usable(s.x[i], s.y[i])) {
        const double y = o.log_y ? std::log10(s.y[i]) : s.y[i];
        x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
        y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
  }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x0 -= 0.5, x1 += 0.5;
  if (y1 == y0) y0 -= 0.5, y1 += 0.5;
  const double pad = 0.04 * (y1 - y0);
  Frame f{64, 32, o.width - 16, o.height - 34, x0, x1, y0 - pad, y1 + pad, o.log_y};
  RgbImage im = canvas(o);
  draw_axes(im, f, true);
  int legend_y = f.top + 14;
  for (size_t si = 0; si < series.size(); ++si) {
    const auto& s = series[si];
    const Rgb c = pick(s.rgb, si);
    bool have = false;
    int px = 0, py = 0;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!usable(s.x[i], s.y[i])) continue;
      const int x = f.px(s.x[i]), y = f.py(s.y[i]);
      if (have) line(im, px, py, x, y, c, 2);
      else blend(im, x, y, c);
      px = x, py = y, have = true;
    }
    if (!s.label.empty()) {
      const int lx = f.right - 12 - text_width(s.label);
      line(im, lx - 22, legend_y - 4, lx - 6, legend_y - 4, c, 2);
      text(im, s.label, lx, legend_y);
      legend_y += 16;
    }
  }
  draw_titles(im, o, f);
  return im;
}

RgbImage bar_chart(const std::vector<Bar>& bars, const PlotOptions& o) {
  check_size(o);
  double lo = 0, hi = 0;
  for (const auto& b : bars)
    if (std::isfinite(b.value)) lo = std::min(lo, b.value), hi = std::max(hi, b.value);
  if (hi == lo) hi = lo + 1;
  Frame f{64, 32, o.width - 16, o.height - 34, 0, 1, lo, hi + 0.08 * (hi - lo), false};
  RgbImage im = canvas(o);
  draw_axes(im, f, false);
  const int n = static_cast<int>(bars.size());
  const double slot = n > 0 ? static_cast<double>(f.right - f.left) / n : 0;
  for (int i = 0; i < n; ++i) {
    const auto& b = bars[i];
    const int xa = f.left + static_cast<int>(std::lround(slot * (i + 0.15)));
    const int xb = f.left + static_cast<int>(std::lround(slot * (i + 0.85)));
    const int xm = (xa + xb) / 2;
    if (std::isfinite(b.value)) {
      const int ya = f.py(std::max(0.0, b.value)), yb = f.py(std::min(0.0, b.value));
      fill_rect(im, xa, ya, xb, yb + 1, pick(b.rgb, static_cast<size_t>(i)));
      text(im, fmt::format("{:.3g}", b.value), xm, ya - 4, 1);
    }
    std::string label = b.label;
    while (!label.empty() && text_width(label) > static_cast<int>(slot) - 2) label.pop_back();
    text(im, label, xm, f.bottom + 17, 1);
  }
  line(im, f.left, f.py(0), f.right, f.py(0), kAxis);
  draw_titles(im, o, f);
  return im;
}

RgbImage grouped_bar_chart(const std::vector<std::string>& groups, const std::vector<BarSeries>& series,
                           const PlotOptions& o) {
  check_size(o);
  double lo = 0, hi = 0;
  for (const auto& s : series) {
    if (s.values.size() != groups.size() || (!s.low.empty() && s.low.size() != groups.size()) ||
        (!s.high.empty() && s.high.size() != groups.size()))
      fail("bar series '{}': {} values for {} groups", s.label, s.values.size(), groups.size());
    for (const auto* v : {&s.values, &s.low, &s.high})
      for (double x : *v)
        if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x);
  }
  if (hi == lo) hi = lo + 1;
  // The legend runs in one line above the plot area, right-aligned.
  Frame f{64, 56, o.width - 16, o.height - 34, 0, 1, lo, hi + 0.05 * (hi - lo), false};
  RgbImage im = canvas(o);
  draw_axes(im, f, false);
  const int ng = static_cast<int>(groups.size()), ns = static_cast<int>(series.size());
  const double slot = ng > 0 ? static_cast<double>(f.right - f.left) / ng : 0;
  const double bar = ns > 0 ? slot * 0.8 / ns : 0;
  for (int g = 0; g < ng; ++g) {
    const double x0 = f.left + slot * g + slot * 0.1;
    for (int si = 0; si < ns; ++si) {
      const auto& s = series[static_cast<size_t>(si)];
      const Rgb c = pick(s.rgb, static_cast<size_t>(si));
      const int xa = static_cast<int>(std::lround(x0 + bar * si));
      const int xb = static_cast<int>(std::lround(x0 + bar * (si + 1))) - 1;
      const double v = s.values[static_cast<size_t>(g)];
      if (std::isfinite(v)) fill_rect(im, xa, f.py(std::max(0.0, v)), xb, f.py(std::min(0.0, v)) + 1, c);
      if (!s.low.empty() && !s.high.empty()) {
        const double l = s.low[static_cast<size_t>(g)], h = s.high[static_cast<size_t>(g)];
        if (std::isfinite(l) && std::isfinite(h)) {
          const int xm = (xa + xb) / 2, w = std::max(1, (xb - xa) / 4);
          line(im, xm, f.py(l), xm, f.py(h), kAxis);
          line(im, xm - w, f.py(l), xm + w, f.py(l), kAxis);
          line(im, xm - w, f.py(h), xm + w, f.py(h), kAxis);
        }
      }
    }
    std::string label = groups[static_cast<size_t>(g)];
    while (!label.empty() && text_width(label) > static_cast<int>(slot) - 2) label.pop_back();
    text(im, label, static_cast<int>(std::lround(f.left + slot * (g + 0.5))), f.bottom + 17, 1);
  }
  line(im, f.left, f.py(0), f.right, f.py(0), kAxis);
  int lx = f.right;
  for (int si = ns - 1; si >= 0; --si) {
    const auto& s = series[static_cast<size_t>(si)];
    if (s.label.empty()) continue;
    lx -= text_width(s.label);
    text(im, s.label, lx, 40);
    fill_rect(im, lx - 18, 30, lx - 4, 41, pick(s.rgb, static_cast<size_t>(si)));
    lx -= 30;
  }
  draw_titles(im, o, f);
  return im;
}

RgbImage heat_map(const HeatMap& m) {
  const int nr = static_cast<int>(m.rows.size()), nc = static_cast<int>(m.columns.size());
  if (static_cast<int>(m.values.size()) != nr)
    fail("heat map: {} rows of values for {} row labels", m.values.size(), nr);
  for (const auto& r : m.values)
    if (static_cast<int>(r.size()) != nc) fail("heat map: a row has {} values for {} columns", r.size(), nc);
  const int cell = std::max(24, m.cell);
  bool numbered = false;
  for (const auto& c : m.columns) numbered = numbered || text_width(c) > cell - 4;
  std::vector<std::string> rows = m.rows, cols = m.columns;
  if (numbered)
    for (int i = 0; i < std::max(nr, nc); ++i) {
      if (i < nr) rows[static_cast<size_t>(i)] = fmt::format("{} {}", i + 1, m.rows[static_cast<size_t>(i)]);
      if (i < nc) cols[static_cast<size_t>(i)] = std::to_string(i + 1);
    }
  int label_w = text_width(m.row_title);
  for (const auto& r : rows) label_w = std::max(label_w, text_width(r));
  const int left = label_w + 16, top = 64;
  const int width = std::max(left + nc * cell + 16, text_width(m.title) + 16);
  const int height = top + nr * cell + 16;
  if (width > 4096 || height > 4096) fail("heat map of {}x{} cells is too large to draw", nr, nc);
  RgbImage im(height, width, 255);
  double vmax = 0;
  for (const auto& r : m.values)
    for (double v : r)
      if (std::isfinite(v)) vmax = std::max(vmax, v);
  const Rgb dark{8, 48, 107};
  for (int i = 0; i < nr; ++i) {
    for (int j = 0; j < nc; ++j) {
      const double v = m.values[static_cast<size_t>(i)][static_cast<size_t>(j)];
      const double t = std::isfinite(v) && vmax > 0 ? std::clamp(v / vmax, 0.0, 1.0) : 0.0;
      Rgb c;
      for (int k = 0; k < 3; ++k) c[k] = static_cast<uint8_t>(std::lround(255 + (dark[k] - 255) * t));
      const int x = left + j * cell, y = top + i * cell;
      fill_rect(im, x, y, x + cell, y + cell, c);
      const std::string s = std::isfinite(v) ? fmt::format("{:.3g}", v) : "-";
      text(im, s, x + cell / 2, y + cell / 2 + 5, 1, t > 0.5 ? Rgb{255, 255, 255} : kText);
    }
    text(im, rows[static_cast<size_t>(i)], left - 8, top + i * cell + cell / 2 + 5, 2);
  }
  for (int j = 0; j < nc; ++j) text(im, cols[static_cast<size_t>(j)], left + j * cell + cell / 2, top - 8, 1);
  for (int k = 0; k <= nr; ++k) line(im, left, top + k * cell, left + nc * cell, top + k * cell, kGrid);
  for (int k = 0; k <= nc; ++k) line(im, left + k * cell, top, left + k * cell, top + nr * cell, kGrid);
  if (!m.title.empty()) text(im, m.title, width / 2, 18, 1);
  if (!m.column_title.empty()) text(im, m.column_title, left + nc * cell / 2, 40, 1);
  if (!m.row_title.empty()) text(im, m.row_title, 8, top - 8);
  return im;
}

}  // namespace rdm::image
