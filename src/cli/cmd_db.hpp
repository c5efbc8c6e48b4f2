// rdm db <build|import|info|search|merge>: one file per sub-subcommand, registered here.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

namespace rdm::cli {
void add_db_build_command(CLI::App& db);
void add_db_import_command(CLI::App& db);
void add_db_merge_command(CLI::App& db);
void add_db_info_command(CLI::App& db);
void add_db_search_command(CLI::App& db);

// db search --query-npy (cmd_db_search_npy.cpp).
struct DbSearchNpy {
  std::string dir, query_npy;
  int64_t k = 19, nprobe = 0, ef = 0, rerank = 0;
  bool json = false, recall = false;
};
void run_db_search_npy(const DbSearchNpy& args);
}  // namespace rdm::cli
