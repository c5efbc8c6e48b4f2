// The table of selftest kinds.
#include "selftest/kinds.hpp"

namespace rdm::selftest {

const std::map<std::string, KindFn>& kinds() {
  static const std::map<std::string, KindFn> table = {
      {"checkpoint_equal", run_checkpoint_equal},
      {"tokenize", run_tokenize},
      {"clip_text", run_clip_text},
      {"clip_image", run_clip_image},
      {"clip_logits", run_clip_logits},
      {"clip_preprocess", run_clip_preprocess},
      {"unet", run_unet},
      {"autoencoder_kl_decode", run_autoencoder_kl_decode},
      {"autoencoder_kl_encode", run_autoencoder_kl_encode},
      {"autoencoder_vq_encode", run_autoencoder_vq_encode},
      {"autoencoder_vq_decode", run_autoencoder_vq_decode},
      {"ldm_apply_model", run_ldm_apply_model},
      {"schedule", run_schedule},
      {"ddim_timesteps", run_ddim_timesteps},
      {"ddim_schedule", run_ddim_schedule},
      {"sampler_ddim", run_sampler_ddim},
      {"sampler_plms", run_sampler_plms},
  };
  return table;
}

}  // namespace rdm::selftest
