// `rdm train export`: packs the three trained stages into one model folder that `rdm sample
// --model`, `rdm demo` and `rdm eval` load through the ordinary loaders (app/model_paths.hpp):
//
//   model.safetensors   CompVis LatentDiffusion layout, the EMA weights of `rdm train rdm` as
//                       model.diffusion_model.* (no model_ema.* copy), first_stage_model.*,
//                       the schedule buffers
//   config.yaml         the training config with use_ema: false (the weights are the EMA)
//   clip.safetensors    the CLIP of `rdm train clip` (OpenAI keys, config in the metadata)
//   clip.vocab.txt.gz   its BPE vocabulary
//   rdm.json            {"clip": "clip.safetensors", "vocab": "clip.vocab.txt.gz"}
//   training.json       per stage: steps, final loss, seconds of the last run, configuration
//   loss-<stage>.png    the loss curves
//
// The folder is assembled beside OUT and renamed into place, so OUT is either the old or the
// complete new model, never a mix.
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

namespace rdm::train {

struct ExportOptions {
  std::filesystem::path autoencoder, clip, rdm;  // stage folders (`rdm train ... --out`)
  std::filesystem::path out;
};

struct ExportReport {
  std::vector<std::filesystem::path> files;
  int64_t bytes = 0;
};

// rdm::Error naming the file when a stage folder lacks its model or the RDM has no EMA weights.
ExportReport export_model(const ExportOptions& options);

}  // namespace rdm::train
