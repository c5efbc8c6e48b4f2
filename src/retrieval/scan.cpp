// Image folder scan (see scan.hpp).
#include "retrieval/scan.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "rdm/runtime/error.hpp"
#include "rdm/retrieval/build.hpp"

namespace rdm::retrieval {
namespace fs = std::filesystem;

bool is_image_extension(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  // Read: jpg ... ico. The rest are image formats rdm names from their bytes when it does
  // not read them (SVG, XPM, ...), so that the report says which format a file is.
  static const std::set<std::string> kExt = {
      ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif", ".ico",
      ".pbm", ".pgm", ".ppm", ".pnm", ".svg", ".svgz", ".xpm", ".xbm", ".psd", ".tga", ".pcx",
      ".heic", ".heif", ".avif", ".jp2", ".icns", ".cur"};
  return kExt.count(e) > 0;
}

std::string label_of(const std::string& rel) {
  auto p = rel.rfind('/');
  return p == std::string::npos ? std::string() : rel.substr(0, p);
}

int64_t shard_of(const std::string& rel, int64_t shard_count) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64
  for (unsigned char c : rel) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return static_cast<int64_t>(h % static_cast<uint64_t>(shard_count));
}

namespace {
bool inside(const fs::path& p, const std::string& root) {
  const std::string s = p.string();
  return s == root || (s.size() > root.size() && s.compare(0, root.size(), root) == 0 &&
                       (root.back() == '/' || s[root.size()] == '/'));
}

std::string not_image_reason(const fs::path& p) {
  std::string e = p.extension().string();
  return e.empty() ? "not an image file (no extension)" : "not an image file (extension '" + e + "')";
}
}  // namespace

std::vector<ScannedFile> scan_images(const fs::path& root, const fs::path& exclude, bool follow_links) {
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    fail("image folder '{}' does not exist or is not a folder", root.string());
  std::error_code cec;
  const std::string root_real = fs::canonical(root, cec).string();
  std::set<std::pair<dev_t, ino_t>> visited;
  std::pair<dev_t, ino_t> excluded{0, 0};
  struct stat ex {};
  if (!exclude.empty() && ::stat(exclude.c_str(), &ex) == 0) excluded = {ex.st_dev, ex.st_ino};

  std::vector<ScannedFile> out;
  auto skip = [&](const std::string& rel, const fs::path& p, std::string why) {
    out.push_back({rel, p, std::move(why)});
  };
  // Depth-first over (absolute dir, relative prefix).
  std::vector<std::pair<fs::path, std::string>> stack{{root, ""}};
  visited.insert({st.st_dev, st.st_ino});
  while (!stack.empty()) {
    auto [dir, prefix] = std::move(stack.back());
    stack.pop_back();
    std::error_code ec;
    fs::directory_iterator it(dir, ec), end;
    if (ec) {
      spdlog::warn("cannot read folder '{}': {}", dir.string(), ec.message());
      if (!prefix.empty()) skip(prefix.substr(0, prefix.size() - 1), dir, "cannot read folder: " + ec.message());
      continue;
    }
    std::vector<fs::path> entries;
    for (; it != end; it.increment(ec)) {
      if (ec) break;
      entries.push_back(it->path());
    }
    // Sorted, so that which of two routes to a folder (real path, symlink) wins is stable.
    std::sort(entries.begin(), entries.end());
    std::vector<std::pair<fs::path, std::string>> subdirs;
    for (const fs::path& p : entries) {
      const std::string name = p.filename().string();
      const std::string rel = prefix + name;
      if (name.empty()) continue;
      struct stat ls {};
      if (::lstat(p.c_str(), &ls) != 0) {
        skip(rel, p, std::string("cannot read entry: ") + std::strerror(errno));
        continue;
      }
      if (S_ISDIR(ls.st_mode) && std::make_pair(ls.st_dev, ls.st_ino) == excluded) continue;  // the database
      if (name[0] == '.') {
        skip(rel, p, S_ISDIR(ls.st_mode) ? "hidden folder (name starts with '.'), not scanned"
                                         : "hidden file (name starts with '.')");
        continue;
      }
      if (S_ISLNK(ls.st_mode)) {
        std::error_code lec;
        fs::path target = fs::canonical(p, lec);
        if (lec) {
          skip(rel, p, "dangling symbolic link (" + lec.message() + ")");
          continue;
        }
        if (!follow_links && !inside(target, root_real)) {
          skip(rel, p, "symbolic link to '" + target.string() +
                           "', outside the image folder (not followed; --follow-links follows it)");
          continue;
        }
      }
      struct stat s {};
      if (::stat(p.c_str(), &s) != 0) {
        skip(rel, p, std::string("cannot read entry: ") + std::strerror(errno));
        continue;
      }
      if (S_ISDIR(s.st_mode)) {
        std::pair<dev_t, ino_t> key{s.st_dev, s.st_ino};
        if (key == excluded || !visited.insert(key).second) continue;  // loop or seen
        subdirs.emplace_back(p, rel + "/");
      } else if (!S_ISREG(s.st_mode)) {
        skip(rel, p, "not a regular file (device, FIFO or socket)");
      } else if (is_image_extension(p)) {
        out.push_back({rel, p, ""});
      } else {
        skip(rel, p, not_image_reason(p));
      }
    }
    for (auto r = subdirs.rbegin(); r != subdirs.rend(); ++r) stack.push_back(std::move(*r));
    if (ec) spdlog::warn("error while reading folder '{}': {}", dir.string(), ec.message());
  }
  std::sort(out.begin(), out.end(),
            [](const ScannedFile& a, const ScannedFile& b) { return a.rel < b.rel; });
  return out;
}

}  // namespace rdm::retrieval
