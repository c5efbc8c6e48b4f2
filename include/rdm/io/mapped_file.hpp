// Private (copy-on-write) memory map of a file, shared by the tensors that alias it;
// writes through a tensor never reach the file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace rdm::io {

class MappedFile {
 public:
  // Maps the whole file read-only. Throws rdm::Error naming the file.
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  // Drops the resident pages lying wholly inside [p, p+n) (after their bytes were copied
  // elsewhere), so that a copied range does not stay in memory twice. Pages are read back
  // from the file if touched again. Never call it on a range a tensor still aliases.
  void release(const std::uint8_t* p, std::size_t n) const;
  // Same for any live MappedFile that contains [p, p+n); no-op for other memory. Used by the
  // consuming loader once a tensor aliasing a mapping has been copied and dropped.
  static void release_pages(const void* p, std::size_t n);
  // Byte offset of p from the start of the live MappedFile that contains it (its file offset),
  // or -1 for other memory.
  static std::int64_t file_offset(const void* p);

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  void* map_ = nullptr;
};

}  // namespace rdm::io
