// ZIP reader (APPNOTE.TXT 6.3: end of central directory, ZIP64 locator/record, central
// directory, local headers) over a memory map, and a minimal writer. The reader trusts no
// field: every offset and size is checked against the file before use.
#include "rdm/formats/zip.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "rdm/runtime/error.hpp"
#include "rdm/io/mapped_file.hpp"

namespace rdm::formats {
namespace fs = std::filesystem;

namespace {
constexpr std::uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEocdSig = 0x06054b50,
                        kZip64EocdSig = 0x06064b50, kZip64LocSig = 0x07064b50;

std::uint64_t rd(const std::uint8_t* p, int n) {
  std::uint64_t v = 0;
  for (int k = n - 1; k >= 0; --k) v = (v << 8) | p[k];
  return v;
}
}  // namespace

bool looks_like_zip(const std::uint8_t* data, std::size_t size) {
  return size >= 4 && (rd(data, 4) == kLocalSig || rd(data, 4) == kEocdSig);
}

ZipArchive ZipArchive::open(const fs::path& path) { return open(io::MappedFile::open(path)); }

const fs::path& ZipArchive::path() const { return file_->path(); }

ZipArchive ZipArchive::open(std::shared_ptr<const io::MappedFile> file) {
  ZipArchive z;
  z.file_ = std::move(file);
  const std::string name = z.file_->path().string();
  const std::uint8_t* d = z.file_->data();
  const std::uint64_t size = z.file_->size();
  if (size < 22) fail("'{}' is not a zip archive: {} bytes, too short", name, size);

  // End of central directory: the last signature whose comment ends exactly at end of file
  // (or, failing that, the last signature at all: some writers pad).
  std::uint64_t eocd = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  for (std::uint64_t p = size - 22 + 1; p-- > lowest;) {
    if (rd(d + p, 4) == kEocdSig) {
      if (p + 22 + rd(d + p + 20, 2) == size) {
        eocd = p;
        break;
      }
      if (eocd == std::numeric_limits<std::uint64_t>::max()) eocd = p;
    }
  }
  if (eocd == std::numeric_limits<std::uint64_t>::max())
    fail("'{}' is not a zip archive (no end-of-central-directory record; truncated?)", name);
  const std::uint8_t* e = d + eocd;
  if (rd(e + 4, 2) != 0 || rd(e + 6, 2) != 0) fail("'{}': multi-disk zip archives are not supported", name);
  std::uint64_t count = rd(e + 10, 2), cd_size = rd(e + 12, 4), cd_off = rd(e + 16, 4);
  // ZIP64: locator 20 bytes before the EOCD record.
  if (eocd >= 20 && rd(d + eocd - 20, 4) == kZip64LocSig) {
    const std::uint64_t rec = rd(d + eocd - 20 + 8, 8);
    if (rec > eocd - 20 || eocd - 20 - rec < 56 || rd(d + rec, 4) != kZip64EocdSig)
      fail("'{}': corrupt ZIP64 end-of-central-directory record", name);
    count = rd(d + rec + 32, 8);
    cd_size = rd(d + rec + 40, 8);
    cd_off = rd(d + rec + 48, 8);
  } else if (count == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
    fail("'{}': zip archive needs a ZIP64 record but has none (truncated?)", name);
  }
  if (cd_off > eocd || cd_size > eocd - cd_off)
    fail("'{}': central directory (offset {}, {} bytes) lies outside the file (truncated?)", name, cd_off, cd_size);
  if (count > cd_size / 46) fail("'{}': central directory claims {} entries in {} bytes", name, count, cd_size);

  z.entries_.reserve(static_cast<std::size_t>(count));
  std::uint64_t p = cd_off;
  const std::uint64_t cd_end = cd_off + cd_size;
  for (std::uint64_t k = 0; k < count; ++k) {
    if (cd_end - p < 46 || rd(d + p, 4) != kCentralSig) fail("'{}': corrupt central directory entry {}", name, k);
    const std::uint8_t* c = d + p;
    Entry en;
    const std::uint16_t flags = static_cast<std::uint16_t>(rd(c + 8, 2));
    en.method = static_cast<std::uint16_t>(rd(c + 10, 2));
    en.crc32 = static_cast<std::uint32_t>(rd(c + 16, 4));
    en.compressed_size = rd(c + 20, 4);
    en.uncompressed_size = rd(c + 24, 4);
    const std::uint64_t nlen = rd(c + 28, 2), xlen = rd(c + 30, 2), clen = rd(c + 32, 2);
    if (rd(c + 34, 2) != 0 && rd(c + 34, 2) != 0xffff) fail("'{}': multi-disk zip archives are not supported", name);
    en.header_offset = rd(c + 42, 4);
    if (cd_end - p - 46 < nlen + xlen + clen) fail("'{}': central directory entry {} overruns the directory", name, k);
    en.name.assign(reinterpret_cast<const char*>(c + 46), static_cast<std::size_t>(nlen));
    // ZIP64 extended information extra field (id 1): the fields that are 0xffffffff, in order.
    const std::uint8_t* x = c + 46 + nlen;
    const std::uint8_t* xend = x + xlen;
    while (xend - x >= 4) {
      const std::uint64_t id = rd(x, 2), len = rd(x + 2, 2);
      if (static_cast<std::uint64_t>(xend - x - 4) < len) fail("'{}': corrupt extra field of '{}'", name, en.name);
      if (id == 1) {
        const std::uint8_t* q = x + 4;
        std::uint64_t left = len;
        auto next = [&](std::uint64_t& field) {
          if (field != 0xffffffffu) return;
          if (left < 8) fail("'{}': truncated ZIP64 field of '{}'", name, en.name);
          field = rd(q, 8);
          q += 8;
          left -= 8;
        };
        next(en.uncompressed_size);
        next(en.compressed_size);
        next(en.header_offset);
      }
      x += 4 + len;
    }
    p += 46 + nlen + xlen + clen;
    if (flags & 1) fail("'{}': member '{}' is encrypted", name, en.name);
    if (en.method != 0 && en.method != 8)
      fail("'{}': member '{}' uses compression method {} (only stored and deflated are supported)", name, en.name,
           en.method);
    if (en.method == 0 && en.compressed_size != en.uncompressed_size)
      fail("'{}': stored member '{}' has different compressed and uncompressed sizes", name, en.name);
    if (!z.index_.emplace(en.name, z.entries_.size()).second) fail("'{}': member '{}' appears twice", name, en.name);
    // Local header: its own name/extra lengths decide where the data starts.
    const std::uint64_t h = en.header_offset;
    if (h > cd_off || cd_off - h < 30 || rd(d + h, 4) != kLocalSig)
      fail("'{}': member '{}' has a corrupt local header (offset {})", name, en.name, h);
    const std::uint64_t data = h + 30 + rd(d + h + 26, 2) + rd(d + h + 28, 2);
    if (data > cd_off || en.compressed_size > cd_off - data)
      fail("'{}': member '{}' ({} bytes at offset {}) lies outside the archive data (truncated?)", name, en.name,
           en.compressed_size, data);
    en.data_offset = data;
    z.entries_.push_back(std::move(en));
  }
  // Members must not overlap (a classic zip-bomb trick).
  std::vector<const Entry*> sorted;
  for (const auto& en : z.entries_) sorted.push_back(&en);
  std::sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) { return a->header_offset < b->header_offset; });
  for (std::size_t k = 1; k < sorted.size(); ++k)
    if (sorted[k]->header_offset < sorted[k - 1]->data_offset + sorted[k - 1]->compressed_size)
      fail("'{}': members '{}' and '{}' overlap", name, sorted[k - 1]->name, sorted[k]->name);
  return z;
}

const ZipArchive::Entry* ZipArchive::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const std::uint8_t* ZipArchive::stored_data(const Entry& e) const {
  return e.method == 0 ? file_->data() + e.data_offset : nullptr;
}

void ZipArchive::read_into(const Entry& e, void* out) const {
  const std::string name = path().string();
  const std::uint8_t* src = file_->data() + e.data_offset;
  if (e.method == 0) {
    if (e.uncompressed_size) std::memcpy(out, src, static_cast<std::size_t>(e.uncompressed_size));
  } else {
    z_stream zs{};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) fail("'{}': zlib initialisation failed", name);
    std::uint64_t in_left = e.compressed_size, out_left = e.uncompressed_size;
    auto* in = const_cast<std::uint8_t*>(src);
    auto* o = static_cast<std::uint8_t*>(out);
    int rc = Z_OK;
    const std::uint64_t chunk = 1u << 30;
    Bytef dummy = 0;
    zs.next_out = &dummy;  // zlib rejects a null output pointer even with nothing to write
    zs.avail_out = 0;
    while (rc == Z_OK) {
      if (zs.avail_in == 0 && in_left) {
        zs.next_in = in;
        zs.avail_in = static_cast<uInt>(std::min(in_left, chunk));
        in += zs.avail_in;
        in_left -= zs.avail_in;
      }
      if (zs.avail_out == 0 && out_left) {
        zs.next_out = o;
        zs.avail_out = static_cast<uInt>(std::min(out_left, chunk));
        o += zs.avail_out;
        out_left -= zs.avail_out;
      }
      rc = inflate(&zs, Z_NO_FLUSH);  // Z_BUF_ERROR: no progress possible (input ended or output full)
    }
    const bool complete = rc == Z_STREAM_END && zs.avail_out == 0 && out_left == 0;
    inflateEnd(&zs);
    if (!complete)
      fail("'{}': member '{}' is corrupt (deflate stream does not yield its declared {} bytes)", name, e.name,
           e.uncompressed_size);
  }
  // CRC over the produced bytes (in chunks: uInt lengths).
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* b = static_cast<const Bytef*>(out);
  for (std::uint64_t left = e.uncompressed_size; left;) {
    const uInt n = static_cast<uInt>(std::min<std::uint64_t>(left, 1u << 30));
    crc = crc32(crc, b, n);
    b += n;
    left -= n;
  }
  if (static_cast<std::uint32_t>(crc) != e.crc32) fail("'{}': member '{}' fails its CRC check (corrupt)", name, e.name);
}

std::string ZipArchive::read(const Entry& e, std::uint64_t limit) const {
  if (e.uncompressed_size > limit)
    fail("'{}': member '{}' is {} bytes, more than the {} allowed", path().string(), e.name, e.uncompressed_size, limit);
  if (e.method == 8 && e.compressed_size == 0 && e.uncompressed_size > 0)
    fail("'{}': member '{}' is corrupt (empty deflate stream)", path().string(), e.name);
  // Deflate expands at most ~1032:1; a larger claim is a lie told before allocating.
  if (e.method == 8 && e.uncompressed_size / 1032 > e.compressed_size + 1)
    fail("'{}': member '{}' claims an impossible compression ratio", path().string(), e.name);
  std::string out(static_cast<std::size_t>(e.uncompressed_size), '\0');
  read_into(e, out.data());
  return out;
}

// ---------------------------------------------------------------------------
namespace {
void put(std::string& s, std::uint64_t v, int n) {
  for (int k = 0; k < n; ++k) s.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}
}  // namespace

std::string make_zip(const std::vector<std::pair<std::string, std::string>>& members, const ZipWriteOptions& opt) {
  const bool compress = opt.deflate, z64 = opt.zip64;
  const std::size_t align = opt.align;
  std::string out, cd;
  for (const auto& [name, data] : members) {
    std::string payload = data;
    std::uint16_t method = 0;
    if (compress) {
      z_stream zs{};
      deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
      payload.assign(deflateBound(&zs, static_cast<uLong>(data.size())), '\0');
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
      zs.avail_in = static_cast<uInt>(data.size());
      zs.next_out = reinterpret_cast<Bytef*>(payload.data());
      zs.avail_out = static_cast<uInt>(payload.size());
      deflate(&zs, Z_FINISH);
      payload.resize(zs.total_out);
      deflateEnd(&zs);
      method = 8;
    }
    const std::uint32_t crc = static_cast<std::uint32_t>(
        crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    const std::uint64_t off = out.size();
    const std::uint64_t big = 0xffffffffu;
    std::string z64local;  // ZIP64 extra of the local header: sizes
    if (z64) {
      put(z64local, 1, 2);
      put(z64local, 16, 2);
      put(z64local, data.size(), 8);
      put(z64local, payload.size(), 8);
    }
    // Padding extra field so that the data starts at a multiple of `align` (stored members).
    std::size_t pad = 0;
    const bool padded = !compress && align > 1;
    if (padded) {
      const std::size_t start = out.size() + 30 + name.size() + z64local.size() + 4;
      pad = (align - start % align) % align;
    }
    put(out, 0x04034b50, 4);
    put(out, z64 ? 45 : 20, 2);
    put(out, 0, 2);
    put(out, method, 2);
    put(out, 0, 4);  // time, date
    put(out, crc, 4);
    put(out, z64 ? big : payload.size(), 4);
    put(out, z64 ? big : data.size(), 4);
    put(out, name.size(), 2);
    put(out, z64local.size() + (padded ? 4 + pad : 0), 2);
    out += name;
    out += z64local;
    if (padded) {
      put(out, 0xcafe, 2);
      put(out, pad, 2);
      out.append(pad, 'Z');
    }
    out += payload;
    std::string z64central;  // usize, csize, offset
    if (z64) {
      put(z64central, 1, 2);
      put(z64central, 24, 2);
      put(z64central, data.size(), 8);
      put(z64central, payload.size(), 8);
      put(z64central, off, 8);
    }
    put(cd, 0x02014b50, 4);
    put(cd, z64 ? 45 : 20, 2);
    put(cd, z64 ? 45 : 20, 2);
    put(cd, 0, 2);
    put(cd, method, 2);
    put(cd, 0, 4);
    put(cd, crc, 4);
    put(cd, z64 ? big : payload.size(), 4);
    put(cd, z64 ? big : data.size(), 4);
    put(cd, name.size(), 2);
    put(cd, z64central.size(), 2);
    put(cd, 0, 2);
    put(cd, 0, 2);
    put(cd, 0, 2);
    put(cd, 0, 4);
    put(cd, z64 ? big : off, 4);
    cd += name;
    cd += z64central;
  }
  const std::uint64_t cd_off = out.size();
  out += cd;
  if (z64) {
    const std::uint64_t rec = out.size();
    put(out, 0x06064b50, 4);
    put(out, 44, 8);
    put(out, 45, 2);
    put(out, 45, 2);
    put(out, 0, 4);
    put(out, 0, 4);
    put(out, members.size(), 8);
    put(out, members.size(), 8);
    put(out, cd.size(), 8);
    put(out, cd_off, 8);
    put(out, 0x07064b50, 4);
    put(out, 0, 4);
    put(out, rec, 8);
    put(out, 1, 4);
  }
  put(out, 0x06054b50, 4);
  put(out, 0, 4);
  put(out, z64 ? 0xffff : members.size(), 2);
  put(out, z64 ? 0xffff : members.size(), 2);
  put(out, z64 ? 0xffffffffu : cd.size(), 4);
  put(out, z64 ? 0xffffffffu : cd_off, 4);
  put(out, 0, 2);
  return out;
}

}  // namespace rdm::formats
