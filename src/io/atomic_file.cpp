// Atomic file writing (temp + fsync + rename) and whole-file reading.
#include "rdm/io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "rdm/runtime/error.hpp"
#include "rdm/io/safe_file.hpp"

namespace rdm::io {
namespace fs = std::filesystem;

namespace {
fs::path make_tmp_name(const fs::path& final_path) {
  static std::atomic<unsigned> counter{0};
  fs::path dir = final_path.parent_path();
  std::string name = "." + final_path.filename().string() + ".tmp." + std::to_string(::getpid()) +
                     "." + std::to_string(counter++);
  return dir.empty() ? fs::path(name) : dir / name;
}

void fsync_path(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
}  // namespace

// The temporary file is created here, exclusively and without following symlinks, so that
// a link planted under the (predictable) temporary name cannot redirect the write.
AtomicOutput::AtomicOutput(fs::path final_path) : final_(std::move(final_path)) {
  for (int attempt = 0;; ++attempt) {
    tmp_ = make_tmp_name(final_);
    int fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::close(fd);
      return;
    }
    if (errno != EEXIST || attempt >= 100)
      fail("cannot write '{}': {}", final_.string(), std::strerror(errno));
  }
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) {
    std::error_code ec;
    fs::remove(tmp_, ec);
  }
}

void AtomicOutput::commit() {
  if (committed_) return;
  if (!fs::exists(tmp_)) fail("cannot write '{}': nothing was written", final_.string());
  fsync_path(tmp_);
  std::error_code ec;
  fs::rename(tmp_, final_, ec);
  if (ec) fail("cannot write '{}': {}", final_.string(), ec.message());
  fs::path dir = final_.parent_path();
  fsync_path(dir.empty() ? fs::path(".") : dir);
  committed_ = true;
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  AtomicOutput out(path);
  {
    std::ofstream f(out.tmp_path(), std::ios::binary | std::ios::trunc);
    if (!f) fail("cannot write '{}': {}", path.string(), std::strerror(errno));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f) fail("cannot write '{}': write failed ({})", path.string(), std::strerror(errno));
  }
  out.commit();
}

std::string read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot read '{}': {}", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("cannot read '{}': read failed", path.string());
  return ss.str();
}

std::string read_regular_file(const fs::path& path, uint64_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail("cannot read '{}': {}", path.string(), std::strerror(errno));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail("cannot read '{}': {}", path.string(), std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("cannot read '{}': not a regular file", path.string());
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    fail("cannot read '{}': {} bytes is over the limit of {} bytes", path.string(),
         static_cast<uint64_t>(st.st_size), max_bytes);
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot read '{}': {}", path.string(), std::strerror(errno));
    if (n == 0) break;  // shrank while reading
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

int open_append_nofollow(const fs::path& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
  if (fd < 0) {
    if (errno == ELOOP)
      fail("refusing to append to '{}': it is a symbolic link", path.string());
    fail("cannot open '{}' for appending: {}", path.string(), std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("refusing to append to '{}': not a regular file", path.string());
  }
  return fd;
}

void append_file_nofollow(const fs::path& path, std::string_view bytes) {
  int fd = open_append_nofollow(path);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      fail("cannot append to '{}': {}", path.string(), std::strerror(e));
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) fail("cannot append to '{}': {}", path.string(), std::strerror(errno));
}

}  // namespace rdm::io
