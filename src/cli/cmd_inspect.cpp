// rdm inspect: not implemented yet (registers nothing).
#include "cli/commands.hpp"

namespace rdm::cli {
void add_inspect_command(CLI::App&) {}
}  // namespace rdm::cli
