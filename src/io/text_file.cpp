// Bounded text-file reading for user-supplied prompt and job files (see text_file.hpp).
#include "rdm/io/text_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "rdm/runtime/error.hpp"

namespace rdm::io {
namespace fs = std::filesystem;

size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

namespace {
// Reads at most limit + 1 bytes from fd (so that "too large" is detected without reading on).
std::string read_bounded(int fd, uint64_t limit, const std::string& name) {
  std::string data;
  char buf[1 << 16];
  for (;;) {
    ssize_t got = ::read(fd, buf, sizeof buf);
    if (got < 0) {
      if (errno == EINTR) continue;
      fail("cannot read {}: {}", name, std::strerror(errno));
    }
    if (got == 0) break;
    data.append(buf, static_cast<size_t>(got));
    if (data.size() > limit) fail("{} is larger than {} MiB: refusing to read it", name, limit >> 20);
  }
  return data;
}
}  // namespace

std::vector<TextLine> read_text_lines(const fs::path& path, const std::string& what, const TextLimits& limits) {
  const std::string name = what + " '" + path.string() + "'";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("cannot read {}: {}", name, std::strerror(errno));
  const bool fifo = S_ISFIFO(st.st_mode);
  if (!S_ISREG(st.st_mode) && !fifo)
    fail("{} is not a regular file (a device or folder cannot be read as text)", name);
  if (!fifo && static_cast<uint64_t>(st.st_size) > limits.max_bytes)
    fail("{} is larger than {} MiB ({} bytes): refusing to read it", name, limits.max_bytes >> 20, st.st_size);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot read {}: {}", name, std::strerror(errno));
  std::string data;
  try {
    data = read_bounded(fd, limits.max_bytes, name);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  std::string_view rest(data);
  if (rest.substr(0, 3) == "\xEF\xBB\xBF") rest.remove_prefix(3);  // UTF-8 byte order mark
  std::vector<TextLine> lines;
  for (size_t number = 1; !rest.empty(); ++number) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > limits.max_line)
      fail("{} line {} is longer than {} KiB ({} bytes)", name, number, limits.max_line >> 10, line.size());
    if (limits.check_utf8) {
      size_t bad = find_invalid_utf8(line);
      if (bad != std::string_view::npos)
        fail("{} line {} is not valid UTF-8 (byte {} of the line)", name, number, bad + 1);
    }
    lines.push_back({number, std::string(line)});
  }
  return lines;
}

std::vector<TextLine> read_prompt_lines(const fs::path& path, const std::string& what, const TextLimits& limits) {
  std::vector<TextLine> out;
  for (auto& l : read_text_lines(path, what, limits))
    if (l.text.find_first_not_of(" \t") != std::string::npos) out.push_back(std::move(l));
  return out;
}

}  // namespace rdm::io
