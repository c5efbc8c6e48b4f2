// Replays every file of the committed fuzz corpora (all seven targets) (fuzz/corpus/<target>/, grown by
// scripts/fuzz.sh with libFuzzer) through the same entry points the fuzz targets call
// (fuzz/fuzz_entries.hpp): regular builds, no clang needed. Only rdm::Error may escape the
// parsers; a crash or another exception fails the test.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "../../fuzz/fuzz_entries.hpp"
#include "../../fuzz/fuzz_entries_io.hpp"
#include "rdm/io/atomic_file.hpp"

namespace fs = std::filesystem;

namespace {
fs::path corpus(const std::string& target) {
  const char* src = std::getenv("RDM_SOURCE_DIR");
  return fs::path(src ? src : ".") / "fuzz" / "corpus" / target;
}

size_t replay(const std::string& target, void (*entry)(std::string_view)) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(corpus(target))) {
    if (!e.is_regular_file()) continue;
    const std::string bytes = rdm::io::read_file(e.path());
    EXPECT_NO_THROW(entry(bytes)) << e.path();
    ++n;
  }
  return n;
}
}  // namespace

TEST(FuzzCorpus, PngRecord) { EXPECT_GT(replay("png_record", rdm_fuzz::png_record), 3u); }
TEST(FuzzCorpus, Gif) { EXPECT_GT(replay("gif", rdm_fuzz::gif), 3u); }
TEST(FuzzCorpus, Ico) { EXPECT_GT(replay("ico", rdm_fuzz::ico), 3u); }
TEST(FuzzCorpus, Npy) { EXPECT_GT(replay("npy", rdm_fuzz::npy), 3u); }
TEST(FuzzCorpus, Safetensors) { EXPECT_GT(replay("safetensors", rdm_fuzz::safetensors), 3u); }
TEST(FuzzCorpus, TorchZip) { EXPECT_GT(replay("torch_zip", rdm_fuzz::torch_zip), 3u); }
TEST(FuzzCorpus, Pickle) { EXPECT_GT(replay("pickle", rdm_fuzz::pickle), 3u); }
