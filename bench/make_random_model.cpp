// Writes a model with random weights at the real RDM 768x768 configuration (models/rdm-768.yaml)
// and a random ViT-L/14 CLIP, as safetensors, plus a random style database's embeddings, so that
// `rdm sample` can be run and measured end to end (time, peak RSS) where the real weights cannot
// be had. The UNet has raw weights only (no EMA copy), like the checkpoint
// scripts/bench_reference_knn2img.py writes for the reference; the first stage keeps its encoder.
//
//   ./build/bench/make_random_model OUT_DIR
//   ./build/rdm db import OUT_DIR/db.npy --out OUT_DIR/db
//   /usr/bin/time -v ./build/rdm --threads 2 sample "a lighthouse in a storm" \
//       --model OUT_DIR/model.safetensors --config OUT_DIR/config.yaml --clip OUT_DIR/clip.safetensors \
//       --vocab ../shared/golden/clip/bpe_simple_vocab_16e6.txt.gz -d OUT_DIR/db -n 1 --steps 2
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "rdm/clip/clip_model.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/formats/safetensors.hpp"
#include "rdm/ldm/autoencoder.hpp"
#include "rdm/ldm/config.hpp"
#include "rdm/ldm/unet.hpp"
#include "rdm/sampler/schedule.hpp"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_random_model OUT_DIR\n";
    return 2;
  }
  const fs::path out = argv[1];
  const char* src = std::getenv("RDM_SOURCE_DIR");
  const fs::path config = (src ? fs::path(src) : fs::path(__FILE__).parent_path().parent_path()) / "models" / "rdm-768.yaml";
  fs::create_directories(out);
  fs::copy_file(config, out / "config.yaml", fs::copy_options::overwrite_existing);
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const rdm::ldm::LdmConfig cfg = rdm::ldm::LdmConfig::from_file(config);
  {
    rdm::formats::StateDict sd;
    rdm::ldm::UNetModel unet(cfg.unet);
    for (const auto& p : unet->named_parameters()) sd["model.diffusion_model." + p.key()] = p.value().detach();
    for (const auto& b : unet->named_buffers()) sd["model.diffusion_model." + b.key()] = b.value();
    rdm::ldm::AutoencoderKL ae(cfg.first_stage, /*with_encoder=*/true);
    for (const auto& p : ae->named_parameters()) sd["first_stage_model." + p.key()] = p.value().detach();
    for (const auto& b : ae->named_buffers()) sd["first_stage_model." + b.key()] = b.value();
    const auto sched = rdm::sampler::Schedule::make(cfg.schedule);
    for (const auto& name : rdm::sampler::Schedule::persistent_buffer_names())
      sd[name] = sched.buffers.at(name).to(torch::kFloat32);
    rdm::formats::write_safetensors(out / "model.safetensors", sd, {{"note", "random weights (make_random_model)"}});
  }
  {
    const rdm::clip::ClipConfig cc;  // ViT-L/14
    const rdm::clip::ClipModel clip = rdm::clip::ClipModel::create(cc);
    rdm::formats::StateDict sd;
    // CLIP's own initialisation (clip/model.py initialize_parameters, roughly): N(0, 0.02), the
    // LayerNorms at 1 / 0, the temperature log(1 / 0.07).
    for (const auto& p : clip.module().named_parameters()) {
      torch::Tensor t = p.value().detach();
      const std::string& k = p.key();
      const bool ln = k.find("ln_") != std::string::npos;
      if (k == "logit_scale") t.fill_(std::log(1 / 0.07));
      else if (ln && k.size() > 7 && k.compare(k.size() - 7, 7, ".weight") == 0) t.fill_(1.0);
      else if (ln) t.zero_();
      else t.normal_(0.0, 0.02);
      sd[k] = t;
    }
    rdm::formats::write_safetensors(out / "clip.safetensors", sd, {{"config", cc.to_json().dump()}});
  }
  torch::Tensor db = torch::randn({1000, 768});
  rdm::formats::write_npy(out / "db.npy", db / db.norm(2, 1, true));
  std::cout << "wrote " << (out / "model.safetensors").string() << ", " << (out / "clip.safetensors").string() << ", "
            << (out / "db.npy").string() << "\n";
  return 0;
}
