// Contact sheet of retrieved neighbours (rdm db search --sheet): thumbnails in a grid, each
// with its rank, score and file name. OpenCV for decoding, drawing and PNG encoding.
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/image/contact_sheet.hpp"
#include "image/contact_sheet_lite.hpp"

namespace rdm::image {
namespace fs = std::filesystem;

void write_contact_sheet(const fs::path& out, const std::vector<std::string>& images,
                         const std::vector<std::string>& captions, int64_t tile,
                         int64_t columns) {
  const detail::SheetLayout L = detail::sheet_layout(out, images.size(), tile, columns);
  const int n = L.n, t = L.t;
  cv::Mat sheet(L.height(), L.width(), CV_8UC3, cv::Scalar(255, 255, 255));
  for (int i = 0; i < n; ++i) {
    const int x0 = L.x0(i), y0 = L.y0(i);
    cv::Mat img;
    if (!images[i].empty()) img = cv::imread(images[i], cv::IMREAD_COLOR);
    cv::Mat cell(t, t, CV_8UC3, cv::Scalar(200, 200, 200));
    if (!img.empty()) {
      double s = std::min(static_cast<double>(t) / img.cols, static_cast<double>(t) / img.rows);
      int w = std::max(1, static_cast<int>(std::lround(img.cols * s)));
      int h = std::max(1, static_cast<int>(std::lround(img.rows * s)));
      cv::Mat small;
      cv::resize(img, small, cv::Size(w, h), 0, 0, s < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
      small.copyTo(cell(cv::Rect((t - w) / 2, (t - h) / 2, w, h)));
    } else {
      cv::putText(cell, "no image", cv::Point(8, t / 2), cv::FONT_HERSHEY_SIMPLEX, 0.45,
                  cv::Scalar(90, 90, 90), 1, cv::LINE_AA);
    }
    cell.copyTo(sheet(cv::Rect(x0, y0, t, t)));
    // Caption: two lines, clipped to the tile width (Hershey fonts draw ASCII only).
    std::string cap = i < static_cast<int>(captions.size()) ? captions[i] : "";
    std::string line1 = cap, line2;
    if (auto nl = cap.find('\n'); nl != std::string::npos) {
      line1 = cap.substr(0, nl);
      line2 = cap.substr(nl + 1);
    }
    auto fit = [&](std::string s) {
      for (char& c : s)
        if (static_cast<unsigned char>(c) >= 128 || c < 32) c = '?';
      int base = 0;
      while (!s.empty() &&
             cv::getTextSize(s, cv::FONT_HERSHEY_SIMPLEX, 0.4, 1, &base).width > t)
        s.pop_back();
      return s;
    };
    cv::putText(sheet, fit(line1), cv::Point(x0, y0 + t + 14), cv::FONT_HERSHEY_SIMPLEX, 0.4,
                cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    cv::putText(sheet, fit(line2), cv::Point(x0, y0 + t + 30), cv::FONT_HERSHEY_SIMPLEX, 0.4,
                cv::Scalar(60, 60, 60), 1, cv::LINE_AA);
  }
  std::vector<uchar> png;
  if (!cv::imencode(".png", sheet, png)) fail("cannot encode contact sheet '{}'", out.string());
  io::write_file_atomic(out, std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
}

}  // namespace rdm::image
