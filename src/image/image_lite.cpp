// Lite back end of the image decoders (RDM_IMAGE_IO=lite; compiled in every build so that the
// OpenCV build can compare the two): JPEG with libjpeg(-turbo), WEBP with libwebp, uncompressed
// 16/24/32-bit BMP read directly. Pixels equal OpenCV's imdecode (IMREAD_UNCHANGED |
// IMREAD_IGNORE_ORIENTATION): the same libjpeg with its defaults (islow DCT, fancy upsampling),
// grey JPEG as one channel, CMYK/YCCK JPEG through OpenCV's inverted-CMYK formula, WEBP with
// alpha as RGBA, BMP 5-5-5 channels shifted left by 3 without replication.
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>

#include <jpeglib.h>  // after <cstdio>: it uses size_t and FILE
#include <webp/decode.h>

#include "image/image_codec.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::image::detail {
namespace fs = std::filesystem;

namespace {


uint32_t le32(const unsigned char* p) { return p[0] | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24); }
uint16_t le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {0};
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}
void jpeg_silent(j_common_ptr, int) {}

Image decode_jpeg(const fs::path& p, const std::string& data, int64_t max_pixels) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_silent;
  // Heap storage whose pointer does not change after setjmp.
  const auto out = std::make_unique<Image>();
  const auto row = std::make_unique<std::vector<uint8_t>>();
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    fail("image '{}': corrupt JPEG ({})", p.string(), err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(data.data()), static_cast<unsigned long>(data.size()));
  jpeg_read_header(&cinfo, TRUE);
  const bool cmyk = cinfo.num_components == 4;
  const int channels = cinfo.num_components > 1 ? 3 : 1;
  if (cmyk) cinfo.out_color_space = JCS_CMYK;  // YCCK is converted to CMYK by libjpeg
  else cinfo.out_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
  if (int64_t(cinfo.image_width) * cinfo.image_height > max_pixels || cinfo.image_width == 0) {
    const int64_t w = cinfo.image_width, h = cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    check_image_size(p, w, h, max_pixels);
  }
  jpeg_start_decompress(&cinfo);
  Image& img = *out;
  img.width = static_cast<int>(cinfo.output_width);
  img.height = static_cast<int>(cinfo.output_height);
  img.mode = channels == 3 ? ImageMode::RGB : ImageMode::L;
  img.pixels.resize(size_t(img.width) * img.height * channels);
  row->resize(size_t(img.width) * cinfo.output_components);
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* dst = img.pixels.data() + size_t(cinfo.output_scanline) * img.width * channels;
    JSAMPROW rp = cmyk ? row->data() : dst;
    jpeg_read_scanlines(&cinfo, &rp, 1);
    if (cmyk)  // OpenCV icvCvt_CMYK2BGR_8u_C4C3R (Adobe inverted CMYK)
      for (int x = 0; x < img.width; ++x) {
        const uint8_t* s = row->data() + 4 * x;
        const int k = s[3];
        for (int c = 0; c < 3; ++c) dst[3 * x + c] = static_cast<uint8_t>(k - ((255 - s[c]) * k >> 8));
      }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return std::move(img);
}

Image decode_webp(const fs::path& p, const std::string& data, int64_t max_pixels) {
  WebPBitstreamFeatures f;
  const auto* u = reinterpret_cast<const uint8_t*>(data.data());
  if (WebPGetFeatures(u, data.size(), &f) != VP8_STATUS_OK) fail("image '{}': corrupt WEBP header", p.string());
  check_image_size(p, f.width, f.height, max_pixels);
  Image img;
  img.width = f.width;
  img.height = f.height;
  img.mode = f.has_alpha ? ImageMode::RGBA : ImageMode::RGB;
  const int c = f.has_alpha ? 4 : 3;
  img.pixels.resize(size_t(f.width) * f.height * c);
  const size_t stride = size_t(f.width) * c;
  const uint8_t* ok = f.has_alpha ? WebPDecodeRGBAInto(u, data.size(), img.pixels.data(), img.pixels.size(), static_cast<int>(stride))
                                  : WebPDecodeRGBInto(u, data.size(), img.pixels.data(), img.pixels.size(), static_cast<int>(stride));
  if (!ok) fail("image '{}': corrupt WEBP data", p.string());
  return img;
}

// Uncompressed (BI_RGB) 16-bit (5-5-5), 24-bit and 32-bit BMP; the 4th byte of 32-bit pixels
// is ignored, as OpenCV does for BI_RGB.
Image decode_bmp(const fs::path& p, const std::string& d, int64_t max_pixels) {
  auto u = reinterpret_cast<const unsigned char*>(d.data());
  const size_t n = d.size();
  if (n < 54) fail("image '{}': truncated BMP", p.string());
  const uint32_t offset = le32(u + 10), hs = le32(u + 14);
  if (hs < 40) fail("image '{}': OS/2 BMP header (size {}) is not read by the lite image I/O build (RDM_IMAGE_IO=opencv reads it)", p.string(), hs);
  const int64_t w = static_cast<int32_t>(le32(u + 18));
  int64_t h = static_cast<int32_t>(le32(u + 22));
  const int bits = le16(u + 28);
  const uint32_t compression = le32(u + 30);
  if (compression != 0 || (bits != 16 && bits != 24 && bits != 32))
    fail("image '{}': BMP with {} bits per pixel and compression {} is not read by the lite image I/O build "
         "(uncompressed 1/4/8/16/24/32-bit only; RDM_IMAGE_IO=opencv reads it)", p.string(), bits, compression);
  const bool top_down = h < 0;
  h = h < 0 ? -h : h;
  check_image_size(p, w, h, max_pixels);
  const size_t stride = static_cast<size_t>((w * bits + 31) / 32) * 4;
  if (offset > n || offset + stride * size_t(h) > n) fail("image '{}': truncated BMP", p.string());
  Image img;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.mode = ImageMode::RGB;
  img.pixels.resize(size_t(w) * size_t(h) * 3);
  for (int64_t y = 0; y < h; ++y) {
    const unsigned char* row = u + offset + stride * size_t(top_down ? y : h - 1 - y);
    uint8_t* dst = img.pixels.data() + size_t(y) * w * 3;
    for (int64_t x = 0; x < w; ++x, dst += 3) {
      if (bits == 16) {
        const unsigned v = le16(row + 2 * x);
        dst[0] = static_cast<uint8_t>((v >> 7) & 0xF8), dst[1] = static_cast<uint8_t>((v >> 2) & 0xF8), dst[2] = static_cast<uint8_t>((v << 3) & 0xF8);
      } else {
        const unsigned char* s = row + x * (bits / 8);
        dst[0] = s[2], dst[1] = s[1], dst[2] = s[0];
      }
    }
  }
  return img;
}

}  // namespace

Image decode_lite(const fs::path& p, const std::string& data, int64_t max_pixels) {
  auto u = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  if (n >= 3 && u[0] == 0xFF && u[1] == 0xD8 && u[2] == 0xFF) return decode_jpeg(p, data, max_pixels);
  if (n >= 12 && std::memcmp(u, "RIFF", 4) == 0 && std::memcmp(u + 8, "WEBP", 4) == 0) return decode_webp(p, data, max_pixels);
  if (n >= 2 && u[0] == 'B' && u[1] == 'M') return decode_bmp(p, data, max_pixels);
  fail("image '{}': not a PNG, JPEG, WEBP or BMP image (this rdm is built with the lite image I/O; "
       "TIFF and other formats need RDM_IMAGE_IO=opencv)", p.string());
}

}  // namespace rdm::image::detail
