// Recursive scan of an image collection that accounts for every entry under the root: image
// files to decode, and everything else with the reason it is skipped (hidden, not an image
// file, a symlink leaving the root, dangling, not a regular file). Sorted by path; folder
// loops are safe.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace rdm::retrieval {

struct ScannedFile {
  std::string rel;              // path relative to the root, '/'-separated (UTF-8 bytes as on disk)
  std::filesystem::path abs;
  std::string skip;             // non-empty: not decoded, listed in the report with this reason
};

// Extensions read as images (decoded, or named as an unsupported format from their bytes).
bool is_image_extension(const std::filesystem::path& p);
// `exclude`: a folder never descended into (the database being written, if inside the root).
// follow_links: follow symlinks that lead outside `root` (by default they are listed as
// skipped; links that stay inside the root are always followed).
std::vector<ScannedFile> scan_images(const std::filesystem::path& root,
                                     const std::filesystem::path& exclude = {},
                                     bool follow_links = false);
// Label of an item: the folder of its relative path ("" at the root).
std::string label_of(const std::string& rel);

}  // namespace rdm::retrieval
