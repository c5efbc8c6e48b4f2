// rdm db <build|import|info|search|merge>: one file per sub-subcommand, registered here.
#pragma once
#include <CLI/CLI.hpp>

namespace rdm::cli {
void add_db_build_command(CLI::App& db);
void add_db_import_command(CLI::App& db);
void add_db_merge_command(CLI::App& db);
void add_db_info_command(CLI::App& db);
void add_db_search_command(CLI::App& db);
}  // namespace rdm::cli
