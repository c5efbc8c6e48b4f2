// rdm selftest --golden DIR: run the golden cases of DIR/cases.json. Exit 0 only when every
// selected case ran and passed: a failure, a skip (unless --allow-skip) or a filter that selects
// nothing is an error.
#include <cstdlib>
#include <iostream>

#include "cli/commands.hpp"
#include "rdm/runtime/device.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/selftest/selftest.hpp"

namespace rdm::cli {

void add_selftest_command(CLI::App& app) {
  struct Opts {
    std::string golden;
    std::string device = "cpu", precision = "fp32";
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
  cmd->add_option("--device", opts->device,
                  std::string("Where the model cases run: ") + kDeviceChoices +
                      " (files, tokenizer, preprocessing and schedule cases run on the CPU)")
      ->capture_default_str();
  cmd->add_option("--precision", opts->precision,
                  "Compute precision of the float32 model cases: fp32, fp16, bf16 (the goldens' tolerances are "
                  "float32's: fp16/bf16 report their errors and fail)")
      ->check(CLI::IsMember(precision_names()))
      ->capture_default_str();
  add_threads_option(cmd);
  cmd->callback([opts] {
    opts->run.device = parse_device(opts->device);
    opts->run.dtype = parse_precision(opts->precision, opts->run.device);
    if (opts->run.dtype != torch::kFloat32 || !opts->run.device.is_cpu())
      std::cout << fmt::format("selftest: model cases on {} in {}\n", opts->run.device.str(),
                               precision_name(opts->run.dtype));
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
