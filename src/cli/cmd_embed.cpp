// rdm embed: not implemented yet (registers nothing).
#include "cli/commands.hpp"

namespace rdm::cli {
void add_embed_command(CLI::App&) {}
}  // namespace rdm::cli
