// `rdm train rdm`: the retrieval-augmented LatentDiffusion (CompVis ddpm.py LatentDiffusion with
// a crossattn UNet, cond_stage torch.nn.Identity) trained on world pictures with a trained first
// stage (rdm train autoencoder) and a trained CLIP (rdm train clip).
//
// Training database: the world items 0..items-1 of the training styles. Before the first step
// each picture is encoded once (first-stage posterior mean x scale_factor), embedded with the
// CLIP image tower, and its caption with the CLIP text tower (both L2-normalised); its k nearest
// neighbours by image embedding (cosine, the picture itself excluded) are found by brute force
// (the knn_pool nearest when a pool is asked).
// These are cached in OUT/train_data.safetensors (rebuilt when the configuration changes).
//
// Each step, as the RDM paper trains: context = [query, k neighbours] (B, 1+k, D) (with a pool
// P > k: k of the P nearest drawn at random each step, most similar first), the query
// being the caption's text embedding (probability query_text_prob) or the picture's image
// embedding; the whole context is replaced by zeros with probability context_dropout (the
// unconditional context of classifier-free guidance, as knn2img samples with zeros_like(c));
// t ~ U{0..T-1}, eps ~ N(0, I); loss = mean (eps - UNet(x_t, t, context))^2 (l_simple, eps
// parameterisation). EMA of the UNet weights (LitEma: decay min(decay, (1+n)/(10+n))).
//
// Writes model.safetensors in the CompVis key layout (model.diffusion_model.*, model_ema.* with
// LitEma's dot-free names + decay + num_updates, first_stage_model.*, the 12 schedule buffers)
// and config.yaml (the reference's YAML form, loadable by ldm::LdmConfig::from_file), plus
// rdm.json naming the CLIP and its vocabulary (app/model_paths.hpp).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "rdm/app/world.hpp"
#include "rdm/train/loop.hpp"

namespace rdm::train {

struct RdmTrainConfig {
  std::filesystem::path autoencoder;  // folder of `rdm train autoencoder` (autoencoder.safetensors + .yaml)
  std::filesystem::path clip;         // folder of `rdm train clip` (clip.safetensors + clip.vocab.txt.gz)
  // UNet (openaimodel.UNetModel with a spatial transformer; context_dim = CLIP embed_dim).
  int64_t model_channels = 32;
  std::vector<int64_t> channel_mult{1, 2, 2};
  int64_t num_res_blocks = 1;
  std::vector<int64_t> attention_resolutions{2, 4};
  int64_t num_head_channels = 32;
  int64_t transformer_depth = 1;
  // Diffusion (the reference's LDM defaults for f4 first stages).
  int64_t timesteps = 1000;
  double linear_start = 0.0015, linear_end = 0.0195;
  double scale_factor = 0;  // 0: 1 / std of the training latents (computed, then stored)
  // Retrieval conditioning.
  int64_t knn = 4;
  // 0 or knn: the k nearest neighbours, always the same. P > knn: each step, k of the P nearest
  // drawn at random (without replacement). At sampling time the k neighbours come from a style
  // database by the prompt: they share the picture's style more than its content; drawing from a
  // wider pool trains the model on such neighbours (and varies them between epochs).
  int64_t knn_pool = 0;
  double query_text_prob = 0.5;
  double context_dropout = 0.1;
  double ema_decay = 0.999;
  // Initial scale of the cross-attention keys and values (attn2.to_k, attn2.to_v) over the
  // default U(-1/sqrt(fan_in), 1/sqrt(fan_in)). The context tokens are L2-normalised CLIP
  // embeddings (norm 1, elements ~1/sqrt(D)), so the default gives keys and values ~sqrt(3 D)
  // times smaller than the hidden states they are added to; a gain of sqrt(3 D) starts them at
  // unit scale. Initialisation only: the architecture and the checkpoint layout are unchanged.
  double context_init_gain = 1.0;
  // Data.
  world::WorldSpec world;
  int64_t items = 20000;
  int64_t batch = 32;

  std::string to_json() const;
};

std::unique_ptr<Task> make_rdm_task(const RdmTrainConfig& config, const std::filesystem::path& out, uint64_t init_seed,
                                    torch::Device device = torch::kCPU);

TrainReport train_rdm(const RdmTrainConfig& config, const TrainOptions& options, const TrainProgressFn& progress = {});

std::filesystem::path rdm_weights_path(const std::filesystem::path& out);  // model.safetensors
std::filesystem::path rdm_config_path(const std::filesystem::path& out);   // config.yaml

}  // namespace rdm::train
