// Decoders for the formats that src/io/image.cpp does not read itself (everything but PNG and
// uncompressed palette BMP). Two back ends, chosen at build time by RDM_IMAGE_IO:
//   opencv: cv::imdecode (IMREAD_UNCHANGED | IMREAD_IGNORE_ORIENTATION), image_opencv.cpp
//   lite:   libjpeg(-turbo), libwebp and our own BMP reader, image_lite.cpp
// The lite decoder is compiled in both builds, so the OpenCV build's unit tests compare the two.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "rdm/image/image.hpp"

namespace rdm::image::detail {

// Width and height positive and their product within max_pixels (Pillow's decompression-bomb
// rule); rdm::Error naming the file otherwise. Shared by every decoder (image.cpp).
void check_image_size(const std::filesystem::path& p, int64_t w, int64_t h, int64_t max_pixels);

// Decodes with libjpeg / libwebp / an uncompressed 16/24/32-bit BMP reader, giving the same
// channels, order (RGB) and pixels as the OpenCV back end. Anything else (TIFF, RLE BMP, ...)
// is an rdm::Error naming the file and saying that the OpenCV build reads it.
Image decode_lite(const std::filesystem::path& p, const std::string& data, int64_t max_pixels);

#if RDM_IMAGE_IO_OPENCV
Image decode_opencv(const std::filesystem::path& p, const std::string& data, int64_t max_pixels);
#endif

// The back end of this build.
inline Image decode_other(const std::filesystem::path& p, const std::string& data, int64_t max_pixels) {
#if RDM_IMAGE_IO_OPENCV
  return decode_opencv(p, data, max_pixels);
#else
  return decode_lite(p, data, max_pixels);
#endif
}

inline const char* image_io_backend() { return RDM_IMAGE_IO_OPENCV ? "opencv" : "lite"; }

// Pillow-independent resize of an 8-bit interleaved image (channels 1..4), as OpenCV's
// cv::resize with INTER_AREA (shrinking) or INTER_LINEAR (enlarging) computes it, in floating
// point: results agree with OpenCV's fixed-point kernels within one level.
void resize_area_linear(const uint8_t* src, int sw, int sh, int channels, uint8_t* dst, int dw, int dh);

}  // namespace rdm::image::detail
