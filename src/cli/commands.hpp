// One function per subcommand (one file each); main.cpp registers them all.
#pragma once
#include <string>

#include <CLI/CLI.hpp>

namespace rdm::cli {
void add_inspect_command(CLI::App& app);
void add_selftest_command(CLI::App& app);
void add_embed_command(CLI::App& app);
void add_db_command(CLI::App& app);
void add_sample_command(CLI::App& app);
void add_sweep_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_show_params_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_world_command(CLI::App& app);
void add_train_command(CLI::App& app);

// Global options shared by every subcommand.
struct Globals {
  int threads = 0;  // --threads as given; 0 = not given (all available CPUs)
};
Globals& globals();
// --threads, bound to globals().threads: on the main command and in the option group of every
// subcommand that loads a model (`rdm --threads 4 sample ...` = `rdm sample --threads 4 ...`).
void add_threads_option(CLI::App* app, const std::string& note = "");
// CPUs this process may use: the online cores, capped by its affinity mask and cgroup CPU quota.
int available_cpus();
// Applies --threads (at::set_num_threads) once options are parsed; more threads than
// available_cpus() are capped with one warning.
void apply_globals();
}  // namespace rdm::cli
