// GIF decoding with giflib: the first frame, as Pillow's GifImagePlugin opens it (see
// gif_ico.hpp). giflib reads from memory through a callback bounded by the buffer.
#include <gif_lib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "rdm/runtime/error.hpp"
#include "rdm/image/image_formats.hpp"

namespace rdm::image {

bool is_gif(std::string_view d) {
  return d.size() >= 6 && (d.substr(0, 6) == "GIF87a" || d.substr(0, 6) == "GIF89a");
}

namespace {
struct Source {
  std::string_view data;
  size_t pos = 0;
};

int read_cb(GifFileType* gif, GifByteType* out, int n) {
  auto* s = static_cast<Source*>(gif->UserData);
  if (n <= 0) return 0;
  size_t take = std::min(static_cast<size_t>(n), s->data.size() - s->pos);
  std::memcpy(out, s->data.data() + s->pos, take);
  s->pos += take;
  return static_cast<int>(take);
}

struct GifCloser {
  void operator()(GifFileType* g) const {
    int err = 0;
    DGifCloseFile(g, &err);
  }
};

[[noreturn]] void gif_fail(const std::string& name, GifFileType* g, const char* what) {
  const char* msg = g ? GifErrorString(g->Error) : nullptr;
  fail("GIF '{}': {}{}{}", name, what, msg ? ": " : "", msg ? msg : "");
}

// Skips the sub-blocks of an extension, keeping the transparent index of a graphic control
// extension (block 0xF9, flag bit 0).
void read_extension(GifFileType* g, const std::string& name, int* transparency) {
  int code = 0;
  GifByteType* block = nullptr;
  if (DGifGetExtension(g, &code, &block) == GIF_ERROR) gif_fail(name, g, "bad extension block");
  if (code == GRAPHICS_EXT_FUNC_CODE && block && block[0] >= 4) {
    *transparency = (block[1] & 1) ? block[4] : -1;
  }
  while (block) {
    if (DGifGetExtensionNext(g, &block) == GIF_ERROR) gif_fail(name, g, "bad extension block");
  }
}
}  // namespace

Image decode_gif(std::string_view data, const std::string& name, int64_t max_pixels) {
  if (!is_gif(data)) fail("'{}' is not a GIF file", name);
  Source src{data, 0};
  int err = 0;
  std::unique_ptr<GifFileType, GifCloser> gif(DGifOpen(&src, read_cb, &err));
  if (!gif) fail("GIF '{}': cannot read the header: {}", name, GifErrorString(err) ? GifErrorString(err) : "?");
  GifFileType* g = gif.get();
  int transparency = -1;
  for (;;) {
    GifRecordType type = UNDEFINED_RECORD_TYPE;
    if (DGifGetRecordType(g, &type) == GIF_ERROR) gif_fail(name, g, "truncated or corrupt file");
    if (type == TERMINATE_RECORD_TYPE) fail("GIF '{}' holds no image", name);
    if (type == EXTENSION_RECORD_TYPE) {
      read_extension(g, name, &transparency);
      continue;
    }
    if (type != IMAGE_DESC_RECORD_TYPE) gif_fail(name, g, "unexpected record");
    if (DGifGetImageDesc(g) == GIF_ERROR) gif_fail(name, g, "bad image descriptor");
    break;
  }
  const GifImageDesc& fd = g->Image;
  const int64_t x0 = fd.Left, y0 = fd.Top, fw = fd.Width, fh = fd.Height;
  if (fw <= 0 || fh <= 0) fail("GIF '{}': empty first frame ({}x{})", name, fw, fh);
  const int64_t W = std::max<int64_t>(g->SWidth, x0 + fw), H = std::max<int64_t>(g->SHeight, y0 + fh);
  if (W * H > max_pixels)
    fail("image '{}' has {}x{} = {} pixels, over the limit of {} (decompression bomb?)", name, W, H, W * H,
         max_pixels);
  const ColorMapObject* cmap = fd.ColorMap ? fd.ColorMap : g->SColorMap;
  Image img;
  img.width = static_cast<int>(W);
  img.height = static_cast<int>(H);
  img.format = "GIF";
  img.mode = cmap ? ImageMode::P : ImageMode::L;
  if (cmap) {
    img.palette.assign(256 * 3, 0);
    const int n = std::min(cmap->ColorCount, 256);
    for (int i = 0; i < n; ++i) {
      img.palette[3 * i] = cmap->Colors[i].Red;
      img.palette[3 * i + 1] = cmap->Colors[i].Green;
      img.palette[3 * i + 2] = cmap->Colors[i].Blue;
    }
  }
  img.pixels.assign(static_cast<size_t>(W * H), static_cast<uint8_t>(transparency >= 0 ? transparency : 0));
  std::vector<GifPixelType> line(static_cast<size_t>(fw));
  auto put_row = [&](int64_t y) {
    if (DGifGetLine(g, line.data(), static_cast<int>(fw)) == GIF_ERROR)
      gif_fail(name, g, "truncated or corrupt image data");
    std::memcpy(img.pixels.data() + (y0 + y) * W + x0, line.data(), static_cast<size_t>(fw));
  };
  if (fd.Interlace) {
    static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
    for (int pass = 0; pass < 4; ++pass)
      for (int64_t y = start[pass]; y < fh; y += step[pass]) put_row(y);
  } else {
    for (int64_t y = 0; y < fh; ++y) put_row(y);
  }
  return img;
}

}  // namespace rdm::image
