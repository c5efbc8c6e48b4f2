// OpenCV back end of the image decoders (RDM_IMAGE_IO=opencv): see image_codec.hpp.
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "image/image_codec.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::image::detail {
namespace fs = std::filesystem;

Image decode_opencv(const fs::path& p, const std::string& data, int64_t max_pixels) {
  cv::Mat buf(1, static_cast<int>(data.size()), CV_8U, const_cast<char*>(data.data()));
  cv::Mat m;
  try {
    m = cv::imdecode(buf, cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    fail("image '{}': cannot decode ({})", p.string(), e.what());
  }
  if (m.empty()) fail("image '{}': not an image OpenCV can decode (PNG, JPEG, WEBP, BMP, TIFF, ...)", p.string());
  check_image_size(p, m.cols, m.rows, max_pixels);
  if (m.depth() == CV_16U) {  // keep the high byte (x >> 8), like Pillow's ";16B" raw modes
    cv::Mat m8(m.rows, m.cols, CV_MAKETYPE(CV_8U, m.channels()));
    for (int y = 0; y < m.rows; ++y) {
      const auto* src = m.ptr<uint16_t>(y);
      auto* dst = m8.ptr<uint8_t>(y);
      for (int x = 0; x < m.cols * m.channels(); ++x) dst[x] = static_cast<uint8_t>(src[x] >> 8);
    }
    m = m8;
  } else if (m.depth() != CV_8U) fail("image '{}': unsupported sample type (only 8 and 16 bit)", p.string());
  Image img;
  img.width = m.cols;
  img.height = m.rows;
  cv::Mat conv;
  switch (m.channels()) {
    case 1: img.mode = ImageMode::L; conv = m; break;
    case 3: img.mode = ImageMode::RGB; cv::cvtColor(m, conv, cv::COLOR_BGR2RGB); break;
    case 4: img.mode = ImageMode::RGBA; cv::cvtColor(m, conv, cv::COLOR_BGRA2RGBA); break;
    default: fail("image '{}': unsupported channel count {}", p.string(), m.channels());
  }
  conv = conv.isContinuous() ? conv : conv.clone();
  img.pixels.assign(conv.data, conv.data + conv.total() * conv.elemSize());
  return img;
}

}  // namespace rdm::image::detail
