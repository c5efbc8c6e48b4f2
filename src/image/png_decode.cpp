// The PNG decoder of rdm (png_decode.hpp): one libpng read session for read_image (Pillow 9.4's
// PngImagePlugin modes) and for read_png (8-bit RGB and the text chunks). No reference file:
// the modes follow PngImagePlugin._MODES, the RGB path libpng's expand/strip transforms.
// libpng reports errors by longjmp: run_libpng keeps only trivially destructible locals, all
// C++ objects live in the Session its caller owns, and failures come back as PngFailure.
#include "image/png_decode.hpp"

#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>

#include "rdm/image/png_text.hpp"

namespace rdm::image::detail {
namespace {

constexpr unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

// What one decode reads and produces, outside the setjmp frame.
struct Session {
  std::string_view bytes;
  size_t pos = 0;
  PngDecodeOptions options;
  char error[256] = {0};  // libpng's message
  bool too_large = false;
  png_uint_32 width = 0, height = 0;
  int depth = 0, colour = 0;
  std::vector<uint8_t> raw;      // the rows as libpng delivers them
  std::vector<png_bytep> rows;
  std::vector<uint8_t> palette;  // Modes, palette images: 256 RGB entries (missing ones black)
  std::vector<PngText> text;
};

void on_error(png_structp png, png_const_charp msg) {
  auto* s = static_cast<Session*>(png_get_error_ptr(png));
  std::snprintf(s->error, sizeof(s->error), "%s", msg ? msg : "libpng error");
  png_longjmp(png, 1);
}
void on_warning(png_structp, png_const_charp) {}

void read_cb(png_structp png, png_bytep out, png_size_t n) {
  auto* s = static_cast<Session*>(png_get_io_ptr(png));
  if (n > s->bytes.size() - s->pos) png_error(png, "file is truncated");
  std::memcpy(out, s->bytes.data() + s->pos, n);
  s->pos += n;
}

void collect_text(png_structp png, png_infop info, std::vector<PngText>* out) {
  png_textp t = nullptr;
  int n = 0;
  png_get_text(png, info, &t, &n);
  for (int i = 0; i < n; ++i) {
    PngText pt;
    pt.key = t[i].key ? t[i].key : "";
    size_t len = t[i].compression >= PNG_ITXT_COMPRESSION_NONE ? t[i].itxt_length : t[i].text_length;
    if (t[i].text) pt.text.assign(t[i].text, len);
    out->push_back(std::move(pt));
  }
}

// PngPixels::Rgb8: libpng converts every colour type to 8-bit RGB.
void set_rgb8_transforms(png_structp png, png_infop info, int colour, int depth) {
  if (colour == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (colour == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (depth == 16) png_set_strip_16(png);
  if (colour == PNG_COLOR_TYPE_GRAY || colour == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_set_strip_alpha(png);
}

// The libpng part. Returns false with s->error set (or s->too_large, or nothing when libpng
// could not start).
bool run_libpng(Session* s) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, s, on_error, on_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  png_infop end = png_create_info_struct(png);
  if (!info || !end) {
    png_destroy_read_struct(&png, &info, &end);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, &end);
    return false;
  }
  png_set_read_fn(png, s, read_cb);
  png_set_user_limits(png, s->options.max_side, s->options.max_side);
  if (s->options.bounded_chunks) {
    png_set_chunk_cache_max(png, 1000);
    png_set_chunk_malloc_max(png, kMaxPngChunkBytes);
  }
  png_read_info(png, info);
  png_get_IHDR(png, info, &s->width, &s->height, &s->depth, &s->colour, nullptr, nullptr, nullptr);
  if (s->width == 0 || s->height == 0 || int64_t(s->width) * int64_t(s->height) > s->options.max_pixels) {
    s->too_large = true;
    png_destroy_read_struct(&png, &info, &end);
    return false;
  }
  if (s->options.text) collect_text(png, info, &s->text);
  const bool rgb8 = s->options.pixels == PngPixels::Rgb8;
  if (rgb8) set_rgb8_transforms(png, info, s->colour, s->depth);
  else if (s->depth < 8) png_set_packing(png);  // one byte per sample, values not rescaled
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const size_t rowbytes = png_get_rowbytes(png, info);
  if (rgb8 && rowbytes != static_cast<size_t>(s->width) * 3) png_error(png, "unexpected row layout");
  s->raw.resize(rowbytes * s->height);
  s->rows.resize(s->height);
  for (png_uint_32 y = 0; y < s->height; ++y) s->rows[y] = s->raw.data() + y * rowbytes;
  png_read_image(png, s->rows.data());
  if (!rgb8 && s->colour == PNG_COLOR_TYPE_PALETTE) {
    png_colorp plte = nullptr;
    int n = 0;
    png_get_PLTE(png, info, &plte, &n);
    s->palette.assign(256 * 3, 0);
    for (int i = 0; i < n && i < 256; ++i) {
      s->palette[3 * i] = plte[i].red;
      s->palette[3 * i + 1] = plte[i].green;
      s->palette[3 * i + 2] = plte[i].blue;
    }
  }
  if (s->options.text) {
    png_read_end(png, end);
    collect_text(png, end, &s->text);
  }
  png_destroy_read_struct(&png, &info, &end);
  return true;
}

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// PngPixels::Modes: libpng's raw rows -> Pillow's mode and layout. False for a colour type
// Pillow does not open.
bool to_modes(Session& s, Image& img) {
  const std::vector<uint8_t>& raw = s.raw;
  const size_t npx = size_t(s.width) * s.height;
  const int bps = s.depth == 16 ? 2 : 1;
  switch (s.colour) {
    case PNG_COLOR_TYPE_GRAY:
      if (s.depth == 16) {
        img.mode = ImageMode::I;
        img.pixels_i.resize(npx);
        for (size_t i = 0; i < npx; ++i) img.pixels_i[i] = be16(raw.data() + 2 * i);
      } else {
        img.mode = s.depth == 1 ? ImageMode::One : ImageMode::L;
        img.pixels.resize(npx);
        for (size_t i = 0; i < npx; ++i) img.pixels[i] = s.depth == 1 ? (raw[i] ? 255 : 0) : raw[i];
      }
      return true;
    case PNG_COLOR_TYPE_PALETTE:
      img.mode = ImageMode::P;
      img.pixels.assign(raw.begin(), raw.begin() + npx);
      img.palette = std::move(s.palette);
      return true;
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_RGB_ALPHA: {
      const int c = s.colour == PNG_COLOR_TYPE_RGB ? 3 : 4;
      img.mode = c == 3 ? ImageMode::RGB : ImageMode::RGBA;
      img.pixels.resize(npx * c);
      for (size_t i = 0; i < npx * c; ++i) img.pixels[i] = raw[i * bps];  // 16 bit: high byte
      return true;
    }
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      if (s.depth == 16) {  // Pillow: "LA;16B" unpacks into RGBA
        img.mode = ImageMode::RGBA;
        img.pixels.resize(npx * 4);
        for (size_t i = 0; i < npx; ++i) {
          const uint8_t l = raw[4 * i], a = raw[4 * i + 2];
          img.pixels[4 * i] = img.pixels[4 * i + 1] = img.pixels[4 * i + 2] = l;
          img.pixels[4 * i + 3] = a;
        }
      } else {
        img.mode = ImageMode::LA;
        img.pixels.assign(raw.begin(), raw.begin() + npx * 2);
      }
      return true;
    default:
      return false;
  }
}

}  // namespace

PngDecoded decode_png_bytes(std::string_view bytes, const PngDecodeOptions& options) {
  PngDecoded out;
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kSignature, 8) != 0) {
    out.failure = PngFailure{PngFailure::NotPng, "not a PNG file"};
    return out;
  }
  Session s;
  s.bytes = bytes;
  s.options = options;
  if (!run_libpng(&s)) {
    PngFailure f;
    f.kind = s.too_large ? PngFailure::TooLarge : s.error[0] ? PngFailure::Corrupt : PngFailure::NoMemory;
    f.message = s.error;
    f.width = s.width;
    f.height = s.height;
    out.failure = std::move(f);
    return out;
  }
  Image& img = out.image;
  img.width = static_cast<int>(s.width);
  img.height = static_cast<int>(s.height);
  img.format = "PNG";
  if (options.pixels == PngPixels::Rgb8) {
    img.mode = ImageMode::RGB;
    img.pixels = std::move(s.raw);
  } else if (!to_modes(s, img)) {
    out.image = Image{};
    out.failure = PngFailure{PngFailure::UnsupportedColourType, "", 0, 0, s.colour};
    return out;
  }
  out.text = std::move(s.text);
  return out;
}

}  // namespace rdm::image::detail
