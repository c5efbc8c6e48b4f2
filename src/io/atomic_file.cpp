// Atomic file writing (temp + fsync + rename) and whole-file reading.
#include "rdm/io/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "rdm/error.hpp"

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

AtomicOutput::AtomicOutput(fs::path final_path)
    : final_(std::move(final_path)), tmp_(make_tmp_name(final_)) {}

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

}  // namespace rdm::io
