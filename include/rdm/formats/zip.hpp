// A small read-only ZIP reader of our own (central directory, ZIP64, stored and deflated
// members) over a memory map, and a minimal writer (used for .npz and tests).
// Stored members are exposed zero-copy; deflated ones are inflated with zlib (CRC checked).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rdm::io {
class MappedFile;
}  // namespace rdm::io

namespace rdm::formats {

class ZipArchive {
 public:
  struct Entry {
    std::string name;
    std::uint64_t header_offset = 0;      // of the local file header
    std::uint64_t data_offset = 0;        // of the member data in the file
    std::uint64_t compressed_size = 0;
    std::uint64_t uncompressed_size = 0;
    std::uint16_t method = 0;             // 0 stored, 8 deflated
    std::uint32_t crc32 = 0;
  };

  // Opens and validates the central directory and every local header: members inside the
  // file, not overlapping, no encryption, method stored or deflated. Throws rdm::Error
  // naming the file.
  static ZipArchive open(const std::filesystem::path& path);
  static ZipArchive open(std::shared_ptr<const io::MappedFile> file);

  const std::filesystem::path& path() const;
  const std::vector<Entry>& entries() const { return entries_; }
  // nullptr when absent.
  const Entry* find(const std::string& name) const;
  // Contents of a member (inflated when deflated; CRC checked). Members whose uncompressed
  // size exceeds `limit` are rejected before anything is allocated.
  std::string read(const Entry& e, std::uint64_t limit = std::uint64_t(1) << 32) const;
  // Inflates (or copies) a member into `out`, which must hold uncompressed_size bytes.
  void read_into(const Entry& e, void* out) const;
  // Zero-copy pointer to a stored member's bytes (nullptr for a deflated member).
  const std::uint8_t* stored_data(const Entry& e) const;
  const std::shared_ptr<const io::MappedFile>& file() const { return file_; }

 private:
  std::shared_ptr<const io::MappedFile> file_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, std::size_t> index_;  // name -> entries_ position
};

// True when `path` starts with a ZIP local-header or end-of-central-directory signature.
bool looks_like_zip(const std::uint8_t* data, std::size_t size);

struct ZipWriteOptions {
  bool deflate = false;    // deflate every member (else stored)
  std::size_t align = 64;  // stored members: data aligned to this many bytes (as torch.save does)
  bool zip64 = false;      // write ZIP64 sizes/offsets and end records even when not needed
};

// Builds a ZIP archive in memory, members in order (for .npz files and tests).
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& members,
                     const ZipWriteOptions& opts = {});

}  // namespace rdm::formats
