// The contact sheet drawn without OpenCV (contact_sheet_lite.cpp): rdm's write_contact_sheet in
// the lite image I/O build; compiled in every build so that tests compare it with OpenCV's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace rdm::image::detail {

// The grid both drawings share: n tiles of t x t pixels with a 2-line caption below each.
struct SheetLayout {
  int n = 0, cols = 0, rows = 0, t = 0;
  static constexpr int pad = 4, caption_h = 36;
  int cell_w() const { return t + 2 * pad; }
  int cell_h() const { return t + caption_h + 2 * pad; }
  int width() const { return cols * cell_w(); }
  int height() const { return rows * cell_h(); }
  int x0(int i) const { return (i % cols) * cell_w() + pad; }  // tile i's top-left corner
  int y0(int i) const { return (i / cols) * cell_h() + pad; }
};
// Checks the arguments (rdm::Error naming `out`) and lays out n images; columns = 0: about square.
SheetLayout sheet_layout(const std::filesystem::path& out, size_t n, int64_t tile, int64_t columns);

void write_contact_sheet_lite(const std::filesystem::path& out, const std::vector<std::string>& images,
                              const std::vector<std::string>& captions, int64_t tile, int64_t columns);
}
