// PNG encode/decode with text chunks through libpng (no reference file: knn2img saves with
// PIL without metadata; the chunk layout follows what other diffusion tools write).
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

struct ReadBuffer {
  const unsigned char* data;
  size_t size;
  size_t pos;
};
void read_cb(png_structp png, png_bytep out, png_size_t n) {
  auto* b = static_cast<ReadBuffer*>(png_get_io_ptr(png));
  if (n > b->size - b->pos) png_error(png, "file is truncated");
  std::memcpy(out, b->data + b->pos, n);
  b->pos += n;
}

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

struct DecodeState {
  png_uint_32 width = 0, height = 0;
  std::vector<uint8_t>* pixels = nullptr;
  std::vector<PngText>* text = nullptr;
  std::vector<png_bytep>* rows = nullptr;
};

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

bool decode_impl(const std::string& bytes, bool want_pixels, DecodeState* st, ErrorSink* sink) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, sink, on_error, on_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  png_infop end = png_create_info_struct(png);
  if (!info || !end) {
    png_destroy_read_struct(&png, &info, &end);
    return false;
  }
  ReadBuffer rb{reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), 0};
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, &end);
    return false;
  }
  png_set_read_fn(png, &rb, read_cb);
  png_set_user_limits(png, 1u << 16, 1u << 16);
  png_set_chunk_cache_max(png, 1000);
  png_set_chunk_malloc_max(png, kMaxPngChunkBytes);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  if (static_cast<int64_t>(w) * static_cast<int64_t>(h) > kMaxPngPixels)
    png_error(png, "image is too large");
  st->width = w;
  st->height = h;
  collect_text(png, info, st->text);
  if (!want_pixels) {
    png_destroy_read_struct(&png, &info, &end);
    return true;
  }
  int color = png_get_color_type(png, info);
  int depth = png_get_bit_depth(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (depth == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != static_cast<size_t>(w) * 3) png_error(png, "unexpected row layout");
  st->pixels->resize(static_cast<size_t>(w) * h * 3);
  st->rows->resize(h);
  for (png_uint_32 y = 0; y < h; ++y) (*st->rows)[y] = st->pixels->data() + static_cast<size_t>(y) * w * 3;
  png_read_image(png, st->rows->data());
  png_read_end(png, end);
  collect_text(png, end, st->text);
  png_destroy_read_struct(&png, &info, &end);
  return true;
}

}  // namespace

std::string encode_png(const RgbImage& image, const std::vector<PngText>& text) {
  if (image.height <= 0 || image.width <= 0 || image.height > (1 << 16) || image.width > (1 << 16))
    fail("cannot encode a PNG of {}x{} pixels", image.width, image.height);
  if (image.pixels.size() != static_cast<size_t>(image.height * image.width * 3))
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
    rows[y] = const_cast<png_bytep>(image.pixels.data() + y * image.width * 3);
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
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < 8 || std::memcmp(bytes.data(), sig, 8) != 0) fail("'{}' is not a PNG file", name);
  PngFile f;
  std::vector<png_bytep> rows;
  DecodeState st;
  st.pixels = &f.image.pixels;
  st.text = &f.text;
  st.rows = &rows;
  ErrorSink sink;
  if (!decode_impl(bytes, true, &st, &sink))
    fail("cannot read PNG '{}': {}", name, sink.message[0] ? sink.message : "out of memory");
  f.image.height = st.height;
  f.image.width = st.width;
  return f;
}

PngFile read_png(const fs::path& path) {
  return decode_png(io::read_regular_file(path, kMaxPngFileBytes), path.string());
}

}  // namespace rdm::image
