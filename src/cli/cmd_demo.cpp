// rdm demo: not implemented yet (registers nothing).
#include "cli/commands.hpp"

namespace rdm::cli {
void add_demo_command(CLI::App&) {}
}  // namespace rdm::cli
