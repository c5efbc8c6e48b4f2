// Where the reference goldens are: $RDM_GOLDEN_DIR (CTest sets it), else
// $RDM_SOURCE_DIR/../shared/golden, else ../shared/golden; `set` is "clip" or "ldm".
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

namespace rdm_test {

inline std::filesystem::path golden_dir(const std::string& set) {
  namespace fs = std::filesystem;
  if (const char* g = std::getenv("RDM_GOLDEN_DIR")) return fs::path(g) / set;
  if (const char* s = std::getenv("RDM_SOURCE_DIR")) return fs::path(s) / ".." / "shared" / "golden" / set;
  return fs::path("../shared/golden") / set;
}

}  // namespace rdm_test
