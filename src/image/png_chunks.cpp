// The text chunks of a PNG read by walking its chunk list (no libpng, no pixel buffer):
// `show-params` and `--from-png` only need the metadata, and a hostile file must not make
// them allocate an image or inflate without bound. Layout per the PNG specification (11.3.4).
#include <zlib.h>

#include <cstring>

#include "rdm/runtime/error.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/image/png.hpp"
#include "rdm/io/safe_file.hpp"
#include "rdm/image/png_text.hpp"

namespace rdm::image {

namespace {
uint32_t be32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t(u[0]) << 24) | (uint32_t(u[1]) << 16) | (uint32_t(u[2]) << 8) | u[3];
}

// zlib stream -> at most `limit` bytes.
std::string inflate_bounded(std::string_view in, size_t limit, const std::string& name, const std::string& key) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) fail("PNG '{}': zlib initialisation failed", name);
  std::string out;
  char buf[16384];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&z);
      fail("PNG '{}': compressed text chunk '{}' is corrupt", name, key);
    }
    out.append(buf, sizeof(buf) - z.avail_out);
    if (out.size() > limit) {
      inflateEnd(&z);
      fail("PNG '{}': text chunk '{}' inflates to more than {} bytes", name, key, limit);
    }
    if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
      inflateEnd(&z);
      fail("PNG '{}': compressed text chunk '{}' is truncated", name, key);
    }
  }
  inflateEnd(&z);
  return out;
}

// One tEXt / zTXt / iTXt chunk body -> key and UTF-8 (tEXt/zTXt: Latin-1 bytes as stored).
PngText parse_text(std::string_view type, std::string_view body, const std::string& name) {
  size_t nul = body.find('\0');
  if (nul == std::string_view::npos || nul == 0 || nul > 79) fail("PNG '{}': {} chunk has a bad keyword", name, type);
  PngText t;
  t.key.assign(body.substr(0, nul));
  std::string_view rest = body.substr(nul + 1);
  if (type == "tEXt") {
    t.text.assign(rest);
  } else if (type == "zTXt") {
    if (rest.empty() || rest[0] != 0) fail("PNG '{}': zTXt chunk '{}' has an unknown compression method", name, t.key);
    t.text = inflate_bounded(rest.substr(1), kMaxPngChunkBytes, name, t.key);
  } else {  // iTXt: flag, method, language\0, translated keyword\0, text
    if (rest.size() < 2) fail("PNG '{}': iTXt chunk '{}' is truncated", name, t.key);
    const bool compressed = rest[0] != 0;
    if (compressed && rest[1] != 0) fail("PNG '{}': iTXt chunk '{}' has an unknown compression method", name, t.key);
    rest.remove_prefix(2);
    for (int field = 0; field < 2; ++field) {
      size_t z = rest.find('\0');
      if (z == std::string_view::npos) fail("PNG '{}': iTXt chunk '{}' is truncated", name, t.key);
      rest.remove_prefix(z + 1);
    }
    t.text = compressed ? inflate_bounded(rest, kMaxPngChunkBytes, name, t.key) : std::string(rest);
  }
  return t;
}
}  // namespace

std::vector<PngText> decode_png_text(std::string_view bytes, const std::string& name) {
  static const char sig[8] = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};
  if (bytes.size() < 8 || std::memcmp(bytes.data(), sig, 8) != 0) fail("'{}' is not a PNG file", name);
  std::vector<PngText> out;
  size_t pos = 8, total_text = 0;
  bool first = true;
  for (;;) {
    if (bytes.size() - pos < 12) fail("PNG '{}' is truncated (no IEND chunk)", name);
    const uint32_t len = be32(bytes.data() + pos);
    std::string_view type = bytes.substr(pos + 4, 4);
    if (len > 0x7FFFFFFFu || len > bytes.size() - pos - 12)
      fail("PNG '{}': chunk at byte {} ({} bytes) runs past the end of the file", name, pos, len);
    for (char c : type)
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) fail("PNG '{}': invalid chunk type at byte {}", name, pos + 4);
    std::string_view body = bytes.substr(pos + 8, len);
    const uint32_t crc = be32(bytes.data() + pos + 8 + len);
    const bool crc_ok = crc == static_cast<uint32_t>(::crc32(::crc32(0, nullptr, 0),
        reinterpret_cast<const Bytef*>(bytes.data() + pos + 4), len + 4));
    if (first && (type != "IHDR" || len != 13)) fail("PNG '{}': the first chunk is not IHDR", name);
    if (!crc_ok && (type[0] & 0x20) == 0) fail("PNG '{}': CRC error in critical chunk '{}'", name, type);
    first = false;
    pos += 12 + static_cast<size_t>(len);
    if (type == "IEND") break;
    if (!crc_ok || (type != "tEXt" && type != "zTXt" && type != "iTXt")) continue;  // libpng drops bad ancillary chunks
    if (body.size() > kMaxPngChunkBytes) fail("PNG '{}': {} chunk of {} bytes is over the limit of {}", name, type, body.size(), kMaxPngChunkBytes);
    if (out.size() >= kMaxPngTextChunks) fail("PNG '{}' has more than {} text chunks", name, kMaxPngTextChunks);
    out.push_back(parse_text(type, body, name));
    total_text += out.back().text.size();
    if (total_text > 4 * kMaxPngChunkBytes) fail("PNG '{}': text chunks hold more than {} bytes", name, 4 * kMaxPngChunkBytes);
  }
  return out;
}

std::vector<PngText> read_png_text(const std::filesystem::path& path) {
  return decode_png_text(io::read_regular_file(path, kMaxPngFileBytes), path.string());
}

}  // namespace rdm::image
