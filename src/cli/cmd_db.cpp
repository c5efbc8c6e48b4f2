// rdm db: style databases (build, import, info, search, merge).
#include "cli/cmd_db.hpp"

#include "cli/commands.hpp"

namespace rdm::cli {
void add_db_command(CLI::App& app) {
  auto* db = app.add_subcommand("db", "Build, import, inspect, search and merge style databases");
  db->require_subcommand(1);
  add_db_build_command(*db);
  add_db_import_command(*db);
  add_db_merge_command(*db);
  add_db_info_command(*db);
  add_db_search_command(*db);
}
}  // namespace rdm::cli
