// Image folder scan (see scan.hpp).
#include "retrieval/scan.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "rdm/error.hpp"
#include "rdm/retrieval/build.hpp"

namespace rdm::retrieval {
namespace fs = std::filesystem;

bool is_image_extension(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::set<std::string> kExt = {".jpg", ".jpeg", ".png", ".webp",
                                             ".bmp", ".tif",  ".tiff"};
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

std::vector<ScannedFile> scan_images(const fs::path& root, const fs::path& exclude) {
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    fail("image folder '{}' does not exist or is not a folder", root.string());
  std::set<std::pair<dev_t, ino_t>> visited;
  std::pair<dev_t, ino_t> excluded{0, 0};
  struct stat ex {};
  if (!exclude.empty() && ::stat(exclude.c_str(), &ex) == 0) excluded = {ex.st_dev, ex.st_ino};

  std::vector<ScannedFile> out;
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
      std::string name = p.filename().string();
      if (name.empty() || name[0] == '.') continue;  // hidden
      struct stat s {};
      if (::stat(p.c_str(), &s) != 0) {  // dangling symlink or unreadable entry
        if (is_image_extension(p)) out.push_back({prefix + name, p});  // reported as unreadable
        continue;
      }
      if (S_ISDIR(s.st_mode)) {
        std::pair<dev_t, ino_t> key{s.st_dev, s.st_ino};
        if (key == excluded || !visited.insert(key).second) continue;  // loop or seen
        subdirs.emplace_back(p, prefix + name + "/");
      } else if (S_ISREG(s.st_mode) && is_image_extension(p)) {
        out.push_back({prefix + name, p});
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
