// Selftest kinds (sampler). Not implemented yet: reported as skipped.
#include "rdm/error.hpp"
#include "selftest/kinds.hpp"

namespace rdm::selftest {
void run_schedule(const Case&, Report&) { throw Unsupported("kind 'schedule' is not implemented yet"); }
void run_ddim_timesteps(const Case&, Report&) { throw Unsupported("kind 'ddim_timesteps' is not implemented yet"); }
void run_ddim_schedule(const Case&, Report&) { throw Unsupported("kind 'ddim_schedule' is not implemented yet"); }
void run_sampler_ddim(const Case&, Report&) { throw Unsupported("kind 'sampler_ddim' is not implemented yet"); }
void run_sampler_plms(const Case&, Report&) { throw Unsupported("kind 'sampler_plms' is not implemented yet"); }
}  // namespace rdm::selftest
