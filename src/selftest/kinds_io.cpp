// Selftest kinds (io). Not implemented yet: reported as skipped.
#include "rdm/error.hpp"
#include "selftest/kinds.hpp"

namespace rdm::selftest {
void run_checkpoint_equal(const Case&, Report&) { throw Unsupported("kind 'checkpoint_equal' is not implemented yet"); }
}  // namespace rdm::selftest
