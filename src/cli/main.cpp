// rdm: text-guided artistic image synthesis with Retrieval-Augmented Diffusion Models.
// One catch here. Exit codes: 0 success (also --help, --version); 1 error (rdm::Error and every
// other exception: one line naming the file or option and the problem); 2 usage (CLI11's parse
// errors: unknown option, missing argument, invalid value, a path option whose file does not
// exist); 130 interrupted (sample, sweep: finished images are complete).
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <ATen/Parallel.h>

#include "cli/commands.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/io/safe_text.hpp"
#include "rdm/runtime/runtime.hpp"

namespace rdm::cli {
Globals& globals() {
  static Globals g;
  return g;
}
namespace {
// The CPU quota of the cgroup (v2 cpu.max, else v1 cfs quota/period), rounded up; 0 = none.
int cgroup_cpu_limit() {
  double quota = -1, period = 0;
  if (std::ifstream f("/sys/fs/cgroup/cpu.max"); f) {
    std::string q;
    if (f >> q >> period && q != "max") quota = std::atof(q.c_str());
  } else {
    std::ifstream fq("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), fp("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
    if (!(fq >> quota && fp >> period)) quota = -1;
  }
  if (quota <= 0 || period <= 0) return 0;
  return std::max(1, static_cast<int>(std::ceil(quota / period)));
}
}  // namespace

int available_cpus() {
  int n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) n = std::min(n, CPU_COUNT(&set));
  if (const int limit = cgroup_cpu_limit(); limit > 0) n = std::min(n, limit);
  return n;
}

void add_threads_option(CLI::App* app, const std::string& note) {
  app->add_option("--threads", globals().threads,
                  "CPU threads (0 = all available; more than the available CPUs are capped)" + note)
      ->check(CLI::Range(0, 1 << 20));
}

void apply_globals() {
  const int cpus = available_cpus();
  int n = globals().threads;
  if (n <= 0) {
    n = cpus;
  } else if (n > cpus) {
    spdlog::warn("--threads {} is more than the {} CPU(s) available; using {}", n, cpus, cpus);
    n = cpus;
  }
  at::set_num_threads(n);
  spdlog::debug("using {} thread(s)", n);
}
}  // namespace rdm::cli

namespace {
// "rdm db build" for the deepest subcommand the command line reached (for the usage hint).
std::string command_path(const CLI::App& app) {
  std::string path = "rdm";
  const CLI::App* cur = &app;
  for (bool deeper = true; deeper;) {
    deeper = false;
    for (const CLI::App* sub : cur->get_subcommands()) {
      path += " " + sub->get_name();
      cur = sub;
      deeper = true;
      break;
    }
  }
  return path;
}

// Usage error: one line (CLI11's message, newlines folded) with the help hint, exit 2.
int usage_error(const CLI::App& app, const CLI::ParseError& e) {
  std::string msg = e.what();
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  while (!msg.empty() && msg.back() == ' ') msg.pop_back();
  spdlog::error("{} (usage: {} --help)", rdm::io::escape_for_terminal(msg), command_path(app));
  return 2;
}
}  // namespace

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
  rdm::cli::add_threads_option(&app);
  app.parse_complete_callback([&] {
    if (verbose) spdlog::set_level(spdlog::level::debug);
    if (quiet) spdlog::set_level(spdlog::level::warn);
    rdm::cli::apply_globals();
    spdlog::debug("{}", allocator);
  });

  rdm::cli::add_sample_command(app);
  rdm::cli::add_sweep_command(app);
  rdm::cli::add_eval_command(app);
  rdm::cli::add_demo_command(app);
  rdm::cli::add_db_command(app);
  rdm::cli::add_embed_command(app);
  rdm::cli::add_show_params_command(app);
  rdm::cli::add_inspect_command(app);
  rdm::cli::add_selftest_command(app);
  rdm::cli::add_world_command(app);
  rdm::cli::add_train_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return usage_error(app, e);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    // c10::Error carries a multi-line backtrace; keep the first line only.
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    // File names and user text inside the message never reach the terminal as control codes.
    spdlog::error("{}", rdm::io::escape_for_terminal(msg));
    return 1;
  }
  return 0;
}
