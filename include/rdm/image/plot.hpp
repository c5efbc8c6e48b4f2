// Small charts drawn into an RgbImage (encode with png.hpp): line plots (training loss curves)
// and bar charts (evaluation figures). Axes with "nice" tick values, labels in the Hershey
// glyphs of the contact sheets, one colour per series, a legend. Pure integer/double drawing,
// no OpenCV: the same bytes in both image I/O builds.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "rdm/image/png.hpp"

namespace rdm::image {

struct PlotSeries {
  std::string label;                // shown in the legend ("" = not listed)
  std::vector<double> x, y;         // same length; non-finite points are skipped
  std::array<uint8_t, 3> rgb{0, 0, 0};  // {0,0,0}: the next colour of the default palette
};

struct PlotOptions {
  int width = 640, height = 400;
  std::string title, x_label, y_label;
  bool log_y = false;  // logarithmic y axis (non-positive values skipped)
};

// Line plot of each series over a shared x/y range. Throws rdm::Error for sizes below 160x120
// or above 4096x4096, or series whose x and y lengths differ.
RgbImage line_plot(const std::vector<PlotSeries>& series, const PlotOptions& options);

struct Bar {
  std::string label;  // drawn under the bar (clipped to the bar's slot)
  double value = 0;
  std::array<uint8_t, 3> rgb{0, 0, 0};  // {0,0,0}: the default palette
};

// Vertical bar chart from 0 (or the smallest negative value) to the largest value; the value is
// written above each bar. Same size limits as line_plot.
RgbImage bar_chart(const std::vector<Bar>& bars, const PlotOptions& options);

// Bars in groups (one group per label, one bar per series in each group, coloured by series,
// with a legend), from 0 to the largest value or error-bar top; optional error bars.
struct BarSeries {
  std::string label;                    // legend
  std::vector<double> values;           // one per group; non-finite: no bar
  std::vector<double> low, high;        // error bars (empty: none), one per group
  std::array<uint8_t, 3> rgb{0, 0, 0};  // {0,0,0}: the default palette
};
RgbImage grouped_bar_chart(const std::vector<std::string>& groups, const std::vector<BarSeries>& series,
                           const PlotOptions& options);

// A matrix of values as shaded cells (white at 0 to dark blue at the largest value), each with
// its value, row labels on the left and column labels on top. When a column label is wider than
// a cell, the columns are numbered and the rows carry the same numbers. The image size follows
// from the labels and `cell`; rdm::Error when it would exceed 4096x4096 or the rows are ragged.
struct HeatMap {
  std::string title, row_title, column_title;
  std::vector<std::string> rows, columns;
  std::vector<std::vector<double>> values;  // rows x columns
  int cell = 56;                            // pixels per cell side
};
RgbImage heat_map(const HeatMap& map);

// Tick values for [lo, hi]: about `target` round numbers (1, 2, 5 x 10^k) inside the range.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

}  // namespace rdm::image
