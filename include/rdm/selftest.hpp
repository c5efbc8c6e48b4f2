// rdm selftest: the data-driven golden runner. Reads DIR/cases.json (schema: CASES.md in every
// golden folder) and runs every case whose kind it supports; nothing about a golden set is
// hard-coded.
#pragma once
#include <filesystem>
#include <ostream>
#include <string>

namespace rdm::selftest {

struct Options {
  std::string filter;    // run only cases whose id contains this
  bool verbose = false;  // one line per compared output as well
};

struct Summary {
  int passed = 0, failed = 0, skipped = 0;
};

// Runs the cases; prints one line per case and the final "N passed, M failed, K skipped".
Summary run(const std::filesystem::path& golden_dir, const Options& opts, std::ostream& out);

}  // namespace rdm::selftest
