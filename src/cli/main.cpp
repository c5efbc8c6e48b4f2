// rdm: text-guided artistic image synthesis with Retrieval-Augmented Diffusion Models.
// One catch here: CLI errors map to CLI11's exit codes, everything else to one line + exit 1.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <ATen/Parallel.h>

#include "cli/commands.hpp"
#include "rdm/error.hpp"
#include "rdm/runtime.hpp"

namespace rdm::cli {
Globals& globals() {
  static Globals g;
  return g;
}
void apply_globals() {
  int n = globals().threads;
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
}
}  // namespace rdm::cli

int main(int argc, char** argv) {
  const std::string allocator = rdm::configure_cpu_allocator();
  auto logger = spdlog::stderr_color_mt("rdm");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern(isatty(STDERR_FILENO) ? "%^%l%$: %v" : "[%H:%M:%S] %l: %v");
  spdlog::set_level(spdlog::level::info);

  CLI::App app{"rdm: text-guided artistic image synthesis with Retrieval-Augmented Diffusion Models"};
  app.set_version_flag("--version", std::string("rdm ") + RDM_VERSION);
  app.require_subcommand(1);
  bool verbose = false, quiet = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging");
  app.add_flag("-q,--quiet", quiet, "Only warnings and errors");
  app.add_option("--threads", rdm::cli::globals().threads, "CPU threads (0 = all cores)")
      ->check(CLI::NonNegativeNumber);
  app.parse_complete_callback([&] {
    if (verbose) spdlog::set_level(spdlog::level::debug);
    if (quiet) spdlog::set_level(spdlog::level::warn);
    rdm::cli::apply_globals();
    spdlog::debug("{}", allocator);
  });

  rdm::cli::add_sample_command(app);
  rdm::cli::add_sweep_command(app);
  rdm::cli::add_demo_command(app);
  rdm::cli::add_db_command(app);
  rdm::cli::add_embed_command(app);
  rdm::cli::add_show_params_command(app);
  rdm::cli::add_inspect_command(app);
  rdm::cli::add_selftest_command(app);
  rdm::cli::add_world_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    // c10::Error carries a multi-line backtrace; keep the first line only.
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    spdlog::error("{}", msg);
    return 1;
  }
  return 0;
}
