// One function per subcommand (one file each); main.cpp registers them all.
#pragma once
#include <CLI/CLI.hpp>

namespace rdm::cli {
void add_inspect_command(CLI::App& app);
void add_selftest_command(CLI::App& app);
void add_embed_command(CLI::App& app);
void add_db_command(CLI::App& app);
void add_sample_command(CLI::App& app);
void add_sweep_command(CLI::App& app);
void add_show_params_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_world_command(CLI::App& app);

// Global options shared by every subcommand.
struct Globals {
  int threads = 0;  // 0 = all cores
};
Globals& globals();
// Applies --threads (at::set_num_threads) once options are parsed.
void apply_globals();
}  // namespace rdm::cli
