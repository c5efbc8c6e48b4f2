// Declarations of every selftest kind; implementations live in kinds_<area>.cpp.
#pragma once
#include "selftest/case.hpp"

namespace rdm::selftest {
// files (kinds_io.cpp)
void run_checkpoint_equal(const Case&, Report&);
// CLIP (kinds_clip.cpp)
void run_tokenize(const Case&, Report&);
void run_clip_text(const Case&, Report&);
void run_clip_image(const Case&, Report&);
void run_clip_logits(const Case&, Report&);
void run_clip_preprocess(const Case&, Report&);
// networks of latent diffusion (kinds_ldm.cpp)
void run_unet(const Case&, Report&);
void run_autoencoder_kl_decode(const Case&, Report&);
void run_autoencoder_kl_encode(const Case&, Report&);
void run_autoencoder_vq_encode(const Case&, Report&);
void run_autoencoder_vq_decode(const Case&, Report&);
void run_ldm_apply_model(const Case&, Report&);
// schedule and samplers (kinds_sampler.cpp)
void run_schedule(const Case&, Report&);
void run_ddim_timesteps(const Case&, Report&);
void run_ddim_schedule(const Case&, Report&);
void run_sampler_ddim(const Case&, Report&);
void run_sampler_plms(const Case&, Report&);
}  // namespace rdm::selftest
