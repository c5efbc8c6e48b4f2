// rdm show-params: not implemented yet (registers nothing).
#include "cli/commands.hpp"

namespace rdm::cli {
void add_show_params_command(CLI::App&) {}
}  // namespace rdm::cli
