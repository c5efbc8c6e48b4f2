// Contact sheets: a grid of thumbnails, each with a caption (rank, score, file name), written
// atomically as PNG. Used by `db search --sheet`, sweep galleries, the demo and `rdm world`.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace rdm::image {

// `images` are absolute paths ("" for items without a source image: drawn as a grey tile).
// columns = 0: about square.
void write_contact_sheet(const std::filesystem::path& out, const std::vector<std::string>& images,
                         const std::vector<std::string>& captions, int64_t tile = 160,
                         int64_t columns = 0);

}  // namespace rdm::image
