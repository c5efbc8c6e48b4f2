// Headless Chromium for the CLI tests that check HTML pages in a browser (the demo gallery,
// the eval report): finding it, dumping a page's DOM, taking a screenshot. Where CMake found
// Chromium at configure time the tests get RDM_REQUIRE_CHROMIUM=1 and fail instead of skipping.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include "cli/cli_demo_fixture.hpp"
#include "rdm/image/png.hpp"

namespace rdm_cli_test {

// Chromium on PATH ("" when there is none).
inline std::string find_chromium() {
  const std::string path = env("PATH");
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"})
    for (size_t start = 0; start <= path.size();) {
      size_t colon = path.find(':', start);
      if (colon == std::string::npos) colon = path.size();
      const fs::path cand = fs::path(path.substr(start, colon - start)) / name;
      if (colon > start && ::access(cand.c_str(), X_OK) == 0) return cand.string();
      start = colon + 1;
    }
  return "";
}

inline bool chromium_required() { return env("RDM_REQUIRE_CHROMIUM") == "1"; }

// One headless Chromium with its own profile folder (created under `scratch_dir`).
class Chromium {
 public:
  Chromium(std::string exe, const fs::path& scratch_dir) : exe_(std::move(exe)), profile_(scratch_dir / "chromium-profile") {
    fs::create_directories(profile_);
  }
  // The DOM of `page` after its scripts ran ("" when Chromium failed).
  std::string dump_dom(const fs::path& page, const fs::path& dom_file) const {
    const int st = std::system(("timeout 120 " + quote(exe_) + flags() +
                                " --allow-file-access-from-files --virtual-time-budget=5000 "
                                "--run-all-compositor-stages-before-draw --dump-dom " +
                                url(page) + " >" + quote(dom_file.string()) + " 2>/dev/null")
                                   .c_str());
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? slurp(dom_file) : std::string();
  }
  // A screenshot of `page` at width x height; false when none was written.
  bool screenshot(const fs::path& page, const fs::path& png, int width, int height) const {
    std::system(("timeout 120 " + quote(exe_) + flags() + " --window-size=" + std::to_string(width) + "," +
                 std::to_string(height) + " --screenshot=" + quote(png.string()) + " " + url(page) + " >/dev/null 2>&1")
                    .c_str());
    return fs::exists(png);
  }

 private:
  std::string flags() const {
    return " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
           "--disable-component-update --disable-sync --user-data-dir=" +
           quote(profile_.string());
  }
  static std::string url(const fs::path& page) { return quote("file://" + fs::absolute(page).string()); }
  std::string exe_;
  fs::path profile_;
};

// Distinct RGB colours of an image (a rendered page is not blank).
inline size_t distinct_colors(const rdm::image::RgbImage& img) {
  std::set<uint32_t> colors;
  for (size_t i = 0; i + 2 < img.pixels.size(); i += 3)
    colors.insert(uint32_t(img.pixels[i]) << 16 | uint32_t(img.pixels[i + 1]) << 8 | img.pixels[i + 2]);
  return colors.size();
}

}  // namespace rdm_cli_test
