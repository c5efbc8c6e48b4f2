// PNG encode/decode with text chunks through libpng (no reference file: knn2img saves with
// PIL without metadata; the chunk layout follows what other diffusion tools write). Decoding
// goes through the one PNG decoder, png_decode.cpp.
// libpng reports errors by longjmp: the functions that call it keep only trivially
// destructible locals between setjmp and the libpng calls, and turn failures into rdm::Error.
#include "rdm/image/png.hpp"

#include <png.h>

#include <csetjmp>
#include <cstring>

#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/io/safe_file.hpp"
#include "rdm/image/png_text.hpp"
#include "image/png_decode.hpp"

namespace rdm::image {
namespace fs = std::filesystem;

std::optional<std::string> PngFile::find(const std::string& key) const {
  for (const auto& t : text)
    if (t.key == key) return t.text;
  return std::nullopt;
}

namespace {

struct ErrorSink {
  char message[256] = {0};
};

void on_error(png_structp png, png_const_charp msg) {
  auto* sink = static_cast<ErrorSink*>(png_get_error_ptr(png));
  if (sink) std::snprintf(sink->message, sizeof(sink->message), "%s", msg ? msg : "libpng error");
  png_longjmp(png, 1);
}
void on_warning(png_structp, png_const_charp) {}

struct WriteBuffer {
  std::string* out;
};
void write_cb(png_structp png, png_bytep data, png_size_t n) {
  auto* b = static_cast<WriteBuffer*>(png_get_io_ptr(png));
  b->out->append(reinterpret_cast<const char*>(data), n);
}
void flush_cb(png_structp) {}

bool is_ascii(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80 || c == 0) return false;
  return true;
}

void check_key(const std::string& key) {
  if (key.empty() || key.size() > 79) fail("PNG text key '{}' must have 1 to 79 characters", key);
  for (unsigned char c : key)
    if (c < 32 || c > 126) fail("PNG text key '{}' must be printable ASCII", key);
}

// The libpng part of encoding; returns false with sink.message set on failure.
bool encode_impl(const RgbImage& image, png_text* texts, int ntext, std::string* out,
                 png_bytep* rows, ErrorSink* sink) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, sink, on_error, on_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    return false;
  }
  WriteBuffer wb{out};
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, &wb, write_cb, flush_cb);
  png_set_IHDR(png, info, static_cast<png_uint_32>(image.width), static_cast<png_uint_32>(image.height),
               8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (ntext > 0) png_set_text(png, info, texts, ntext);
  png_set_compression_level(png, 6);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

std::string encode_png(const RgbImage& image, const std::vector<PngText>& text) {
  if (image.height <= 0 || image.width <= 0 || image.height > (1 << 16) || image.width > (1 << 16))
    fail("cannot encode a PNG of {}x{} pixels", image.width, image.height);
  if (image.pixels.size() != size_t(image.height) * size_t(image.width) * 3)
    fail("PNG image buffer has {} bytes, expected {}x{}x3", image.pixels.size(), image.height, image.width);
  std::vector<png_text> chunks(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    check_key(text[i].key);
    std::memset(&chunks[i], 0, sizeof(png_text));
    chunks[i].key = const_cast<char*>(text[i].key.c_str());
    chunks[i].text = const_cast<char*>(text[i].text.c_str());
    if (is_ascii(text[i].text)) {
      chunks[i].compression = PNG_TEXT_COMPRESSION_NONE;
      chunks[i].text_length = text[i].text.size();
    } else {
      chunks[i].compression = PNG_ITXT_COMPRESSION_NONE;
      chunks[i].itxt_length = text[i].text.size();
      chunks[i].lang = const_cast<char*>("");
      chunks[i].lang_key = const_cast<char*>("");
    }
  }
  std::vector<png_bytep> rows(static_cast<size_t>(image.height));
  for (int64_t y = 0; y < image.height; ++y)
    rows[y] = const_cast<png_bytep>(image.pixels.data() + size_t(y) * size_t(image.width) * 3);
  std::string out;
  ErrorSink sink;
  if (!encode_impl(image, chunks.data(), static_cast<int>(chunks.size()), &out, rows.data(), &sink))
    fail("cannot encode PNG: {}", sink.message[0] ? sink.message : "out of memory");
  return out;
}

void write_png(const fs::path& path, const RgbImage& image, const std::vector<PngText>& text) {
  io::write_file_atomic(path, encode_png(image, text));
}

PngFile decode_png(const std::string& bytes, const std::string& name) {
  detail::PngDecodeOptions o;
  o.pixels = detail::PngPixels::Rgb8;
  o.max_pixels = kMaxPngPixels;
  o.max_side = 1u << 16;
  o.bounded_chunks = true;
  o.text = true;
  detail::PngDecoded d = detail::decode_png_bytes(bytes, o);
  if (d.failure) {
    const detail::PngFailure& f = *d.failure;
    if (f.kind == detail::PngFailure::NotPng) fail("'{}' is not a PNG file", name);
    if (f.kind == detail::PngFailure::TooLarge) fail("cannot read PNG '{}': image is too large", name);
    fail("cannot read PNG '{}': {}", name, f.message.empty() ? "out of memory" : f.message);
  }
  PngFile f;
  f.image = RgbImage(std::move(d.image));
  f.text = std::move(d.text);
  return f;
}

PngFile read_png(const fs::path& path) {
  return decode_png(io::read_regular_file(path, kMaxPngFileBytes), path.string());
}

}  // namespace rdm::image
