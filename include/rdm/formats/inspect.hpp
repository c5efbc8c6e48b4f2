// `rdm inspect`: what a tensor file holds (format, tensors in file order, totals, metadata,
// EMA weights of CompVis checkpoints), as text or JSON. Reads only headers and pickles: the
// tensor data stays in the file mapping and is never touched.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace rdm::formats {

struct InspectOptions {
  std::string filter;  // list only tensors whose name starts with this prefix
};

struct TensorInfo {
  std::string name;
  std::string dtype;  // safetensors code (F32, F16, I64, ...)
  std::vector<std::int64_t> shape;
  std::int64_t numel = 0;
  std::int64_t bytes = 0;
};

struct Inspection {
  std::string path;
  std::string format;                           // format_name()
  std::vector<TensorInfo> tensors;              // listed (filtered) tensors, in file order
  std::int64_t total_tensors = 0;               // in the file, before filtering
  std::int64_t listed_numel = 0, listed_bytes = 0;
  std::map<std::string, std::string> metadata;
  // CompVis LatentDiffusion checkpoints (keys "model.diffusion_model.*"):
  bool compvis = false;
  std::int64_t ema_tensors = 0;                 // "model_ema.*" keys
  std::int64_t unet_params = 0, unet_params_with_ema = 0;
};

// Reads any supported tensor file. Throws rdm::Error naming the file.
Inspection inspect_file(const std::filesystem::path& path, const InspectOptions& opts = {});

// Human-readable table + summary, and a JSON document (pure JSON, for scripts).
std::string inspection_text(const Inspection& in);
std::string inspection_json(const Inspection& in);

}  // namespace rdm::formats
