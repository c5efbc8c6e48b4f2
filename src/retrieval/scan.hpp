// Recursive scan of an image collection: image extensions in any case, hidden entries and
// other files ignored, directory symlinks followed once (loops are safe), sorted by path.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace rdm::retrieval {

struct ScannedFile {
  std::string rel;              // path relative to the root, '/'-separated (UTF-8 bytes as on disk)
  std::filesystem::path abs;
};

bool is_image_extension(const std::filesystem::path& p);
// `exclude`: a folder never descended into (the database being written, if inside the root).
std::vector<ScannedFile> scan_images(const std::filesystem::path& root,
                                     const std::filesystem::path& exclude = {});
// Label of an item: the folder of its relative path ("" at the root).
std::string label_of(const std::string& rel);

}  // namespace rdm::retrieval
