// The contact sheet drawn without OpenCV (contact_sheet_lite.cpp): rdm's write_contact_sheet in
// the lite image I/O build; compiled in every build so that tests compare it with OpenCV's.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace rdm::image::detail {
void write_contact_sheet_lite(const std::filesystem::path& out, const std::vector<std::string>& images,
                              const std::vector<std::string>& captions, int64_t tile, int64_t columns);
}
