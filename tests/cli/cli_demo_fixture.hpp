// Shared helpers of the sampling CLI tests: run the rdm binary, and one demo model per build
// (created once under the temp folder, guarded by a lock so parallel ctest runs share it).
#pragma once
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/cli_run.hpp"

namespace rdm_cli_test {
namespace fs = std::filesystem;

inline fs::path scratch(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("rdm_cli_sample_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Runs `rdm <args>` (args already shell-quoted where needed), capturing stdout and stderr.
inline RunResult run_rdm(const std::string& args) {
  return run_rdm_in(fs::temp_directory_path() / ("rdm_cli_sample_" + std::to_string(::getpid())), args + " </dev/null");
}

// The temp folder shared by all test processes (each process's own TMPDIR is removed when it
// ends: tests/support/scratch_env.cpp).
inline fs::path shared_tmp() {
  const std::string shared = env("RDM_TEST_SHARED_TMP");
  return shared.empty() ? fs::temp_directory_path() : fs::path(shared);
}

// The demo models and databases for this rdm binary (made once: `rdm demo --no-sample`).
inline fs::path demo_dir(uint64_t seed = 42) {
  const std::string bin = env("RDM_BIN");
  struct stat st {};
  ::stat(bin.c_str(), &st);
  fs::path dir = shared_tmp() /
                 ("rdm_cli_demo_" + std::to_string(static_cast<long long>(st.st_mtime)) + "_" + std::to_string(seed));
  fs::path lock = dir.string() + ".lock";
  int fd = ::open(lock.c_str(), O_CREAT | O_RDWR, 0644);
  ::flock(fd, LOCK_EX);
  if (!fs::exists(dir / "ready")) {
    fs::remove_all(dir);
    auto r = run_rdm("demo --random-model --no-sample --seed " + std::to_string(seed) + " --out " + quote(dir.string()));
    if (r.code != 0) {
      ::close(fd);
      ADD_FAILURE() << "rdm demo failed: " << r.err;
      return dir;
    }
    std::ofstream(dir / "ready") << "ok\n";
  }
  ::close(fd);
  return dir;
}

inline std::string model_args(const fs::path& demo) { return "--model " + quote((demo / "models/rdm/tiny").string()); }
inline std::string db(const fs::path& demo, const std::string& style) { return quote((demo / "databases" / style).string()); }

inline std::vector<fs::path> pngs(const fs::path& dir) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".png" && e.path().string().find("-neighbors") == std::string::npos &&
        e.path().filename().string().rfind("grid-", 0) != 0 && e.path().filename() != "contact_sheet.png")
      v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace rdm_cli_test
