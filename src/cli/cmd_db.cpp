// rdm db: not implemented yet (registers nothing).
#include "cli/commands.hpp"

namespace rdm::cli {
void add_db_command(CLI::App&) {}
}  // namespace rdm::cli
