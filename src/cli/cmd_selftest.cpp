// rdm selftest --golden DIR: run the golden cases of DIR/cases.json.
#include <cstdlib>
#include <iostream>

#include "cli/commands.hpp"
#include "rdm/error.hpp"
#include "rdm/selftest.hpp"

namespace rdm::cli {

void add_selftest_command(CLI::App& app) {
  struct Opts {
    std::string golden;
    rdm::selftest::Options run;
  };
  auto opts = std::make_shared<Opts>();
  if (const char* env = std::getenv("RDM_GOLDEN_DIR")) opts->golden = env;
  auto* cmd = app.add_subcommand("selftest", "Check this build against golden outputs of the Python reference");
  cmd->add_option("--golden", opts->golden,
                  "Golden folder holding cases.json (e.g. ../shared/golden/ldm; default $RDM_GOLDEN_DIR)")
      ->required(std::getenv("RDM_GOLDEN_DIR") == nullptr);
  cmd->add_option("--filter", opts->run.filter, "Only cases whose id contains this");
  cmd->add_flag("--verbose-cases", opts->run.verbose, "Print every compared output");
  cmd->callback([opts] {
    auto s = rdm::selftest::run(opts->golden, opts->run, std::cout);
    if (s.failed > 0) throw rdm::Error(fmt::format("selftest: {} case(s) failed in '{}'", s.failed, opts->golden));
  });
}

}  // namespace rdm::cli
