// rdm selftest --golden DIR: run the golden cases of DIR/cases.json. Exit 0 only when every
// selected case ran and passed: a failure, a skip (unless --allow-skip) or a filter that selects
// nothing is an error.
#include <cstdlib>
#include <iostream>

#include "cli/commands.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/selftest/selftest.hpp"

namespace rdm::cli {

void add_selftest_command(CLI::App& app) {
  struct Opts {
    std::string golden;
    bool allow_skip = false;
    rdm::selftest::Options run;
  };
  auto opts = std::make_shared<Opts>();
  if (const char* env = std::getenv("RDM_GOLDEN_DIR")) opts->golden = env;
  auto* cmd = app.add_subcommand("selftest", "Check this build against golden outputs of the Python reference");
  cmd->add_option("--golden", opts->golden,
                  "Golden folder holding cases.json (e.g. ../shared/golden/ldm; default $RDM_GOLDEN_DIR)")
      ->required(std::getenv("RDM_GOLDEN_DIR") == nullptr)
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--filter", opts->run.filter, "Only cases whose id contains this");
  cmd->add_flag("--allow-skip", opts->allow_skip, "Exit 0 even if cases were skipped (not implemented here)");
  cmd->add_flag("--verbose-cases", opts->run.verbose, "Print every compared output");
  add_threads_option(cmd);  // the golden cases run on the CPU: no --device
  cmd->callback([opts] {
    const auto s = rdm::selftest::run(opts->golden, opts->run, std::cout);
    if (s.selected == 0) {
      if (opts->run.filter.empty()) fail("selftest: '{}' lists no cases", opts->golden);
      fail("selftest: --filter '{}' matches none of the {} cases in '{}'", opts->run.filter, s.total, opts->golden);
    }
    if (s.failed > 0) fail("selftest: {} case(s) failed in '{}'", s.failed, opts->golden);
    if (s.skipped > 0 && !opts->allow_skip)
      fail("selftest: {} case(s) skipped in '{}' (reasons above); pass --allow-skip to accept skipped cases",
           s.skipped, opts->golden);
  });
}

}  // namespace rdm::cli
