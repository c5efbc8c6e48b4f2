// Read-only memory mapping of files (POSIX mmap).
#include "rdm/io/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "rdm/runtime/error.hpp"

namespace rdm::io {

namespace {
// Live mappings, begin -> end, for release_pages().
std::mutex g_maps_mu;
std::map<std::uintptr_t, std::uintptr_t>& live_maps() {
  static std::map<std::uintptr_t, std::uintptr_t> m;
  return m;
}
}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path) {
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open '{}': {}", path.string(), std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("cannot stat '{}': {}", path.string(), std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("'{}' is not a regular file", path.string());
  }
  m->size_ = static_cast<std::size_t>(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail("cannot map '{}': {}", path.string(), std::strerror(e));
    }
    m->map_ = p;
    m->data_ = static_cast<const std::uint8_t*>(p);
    std::lock_guard<std::mutex> lock(g_maps_mu);
    live_maps()[reinterpret_cast<std::uintptr_t>(p)] = reinterpret_cast<std::uintptr_t>(p) + m->size_;
  }
  ::close(fd);
  return m;
}

void MappedFile::release(const std::uint8_t* p, std::size_t n) const {
  if (!map_ || p < data_ || p + n > data_ + size_) return;
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const std::uintptr_t b = (reinterpret_cast<std::uintptr_t>(p) + page - 1) / page * page;
  const std::uintptr_t e = (reinterpret_cast<std::uintptr_t>(p) + n) / page * page;
  if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

void MappedFile::release_pages(const void* p, std::size_t n) {
  const auto b = reinterpret_cast<std::uintptr_t>(p);
  std::lock_guard<std::mutex> lock(g_maps_mu);
  auto& maps = live_maps();
  auto it = maps.upper_bound(b);
  if (it == maps.begin()) return;
  --it;
  if (b < it->first || b + n > it->second) return;
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const std::uintptr_t lo = (b + page - 1) / page * page, hi = (b + n) / page * page;
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

std::int64_t MappedFile::file_offset(const void* p) {
  const auto b = reinterpret_cast<std::uintptr_t>(p);
  std::lock_guard<std::mutex> lock(g_maps_mu);
  auto& maps = live_maps();
  auto it = maps.upper_bound(b);
  if (it == maps.begin()) return -1;
  --it;
  if (b >= it->second) return -1;
  return static_cast<std::int64_t>(b - it->first);
}

MappedFile::~MappedFile() {
  if (map_) {
    {
      std::lock_guard<std::mutex> lock(g_maps_mu);
      live_maps().erase(reinterpret_cast<std::uintptr_t>(map_));
    }
    ::munmap(map_, size_);
  }
}

}  // namespace rdm::io
