// Strict state-dict loading into torch::nn::Module trees whose registered names equal the
// reference checkpoint keys (no renaming tables), plus the CompVis EMA key mapping.
#pragma once
#include <optional>
#include <string>

#include <torch/nn/module.h>

#include "rdm/formats/tensor_file.hpp"

namespace rdm::formats {

struct LoadOptions {
  std::string file;                        // shown in errors ("in 'model.ckpt'")
  std::optional<torch::Device> device;     // move the module here after loading
  std::optional<torch::Dtype> dtype;       // cast floating tensors to this dtype
};

// Fills every parameter and buffer of `module` from state[prefix + name]. Requires every
// parameter/buffer, consumes every key under `prefix`, checks every shape, and throws one
// rdm::Error listing all missing, unexpected and mismatched keys. Floating tensors are cast
// to the module's dtype (or opts.dtype). Logs one line: tensors, parameters, dtype, seconds.
void load_into(torch::nn::Module& module, const StateDict& state, const std::string& prefix,
               const LoadOptions& opts = {});

// Same, but erases each consumed entry from `state` as it is copied, so that a large
// checkpoint is never held twice in memory.
void load_into_consuming(torch::nn::Module& module, StateDict& state, const std::string& prefix,
                         const LoadOptions& opts = {});

// CompVis LitEma naming: "model.diffusion_model.input_blocks.1.1.proj_in.weight" ->
// "model_ema.diffusion_modelinput_blocks11proj_inweight" (key after "model.", dots removed).
std::string ema_key(const std::string& model_key);

// Replaces every "model.diffusion_model.*" entry by its EMA copy where that exists; returns
// the number replaced. Drops the model_ema.* entries afterwards.
std::size_t apply_ema(StateDict& state);

// True when any "model_ema." key is present.
bool has_ema(const StateDict& state);

}  // namespace rdm::formats
