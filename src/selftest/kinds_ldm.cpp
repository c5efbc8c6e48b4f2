// Selftest kinds (ldm). Not implemented yet: reported as skipped.
#include "rdm/error.hpp"
#include "selftest/kinds.hpp"

namespace rdm::selftest {
void run_unet(const Case&, Report&) { throw Unsupported("kind 'unet' is not implemented yet"); }
void run_autoencoder_kl_decode(const Case&, Report&) { throw Unsupported("kind 'autoencoder_kl_decode' is not implemented yet"); }
void run_autoencoder_kl_encode(const Case&, Report&) { throw Unsupported("kind 'autoencoder_kl_encode' is not implemented yet"); }
void run_autoencoder_vq_encode(const Case&, Report&) { throw Unsupported("kind 'autoencoder_vq_encode' is not implemented yet"); }
void run_autoencoder_vq_decode(const Case&, Report&) { throw Unsupported("kind 'autoencoder_vq_decode' is not implemented yet"); }
void run_ldm_apply_model(const Case&, Report&) { throw Unsupported("kind 'ldm_apply_model' is not implemented yet"); }
}  // namespace rdm::selftest
