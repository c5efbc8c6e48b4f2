// rdm sample: not implemented yet (registers nothing).
#include "cli/commands.hpp"

namespace rdm::cli {
void add_sample_command(CLI::App&) {}
}  // namespace rdm::cli
