// rdm sweep: not implemented yet (registers nothing).
#include "cli/commands.hpp"

namespace rdm::cli {
void add_sweep_command(CLI::App&) {}
}  // namespace rdm::cli
