// Linked into every gtest executable: each test process works in a scratch folder of its own,
// <temp>/rdm-test-<pid>, made the process's TMPDIR (so fs::temp_directory_path() in the tests
// and every rdm process they start write there). At the end the folder is removed when no test
// of the process failed, and kept, named on stderr, when one did (RDM_KEEP_TEST_FILES=1 keeps it
// always). Caches shared between test processes (the CLI tests' demo models) stay in the
// original temp folder, which RDM_TEST_SHARED_TMP names.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>

#include <gtest/gtest.h>

namespace {
namespace fs = std::filesystem;

class ScratchFolder : public ::testing::Environment {
 public:
  void SetUp() override {
    const fs::path base = fs::temp_directory_path();
    dir_ = base / ("rdm-test-" + std::to_string(::getpid()));
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::create_directories(dir_);
    ::setenv("RDM_TEST_SHARED_TMP", base.c_str(), /*overwrite=*/0);
    ::setenv("TMPDIR", dir_.c_str(), 1);
  }
  void TearDown() override {
    const char* keep = std::getenv("RDM_KEEP_TEST_FILES");
    if (::testing::UnitTest::GetInstance()->Passed() && !(keep && *keep && std::string(keep) != "0")) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
      if (ec) std::cerr << "could not remove the test files in " << dir_ << ": " << ec.message() << "\n";
    } else {
      std::cerr << "test files kept in " << dir_ << "\n";
    }
  }

 private:
  fs::path dir_;
};

[[maybe_unused]] ::testing::Environment* const kScratch = ::testing::AddGlobalTestEnvironment(new ScratchFolder);
}  // namespace
