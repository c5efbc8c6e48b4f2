// The value rules of a sampling request, one per parameter, shared by `rdm sample` (options,
// prompt files, --from-png records) and `rdm sweep` (options and JSONL jobs). Everything here
// runs before a model is loaded: the rules that depend on the model read only its config.
//
//   guidance scale  finite, |scale| <= 100
//   eta             finite, 0 <= eta <= 1 (DDIM is defined there); PLMS needs 0
//   steps           1 .. T - 1 (T = the schedule's timesteps, 1000 for the RDM)
//   k               0 .. 1000
//   width, height   0 (the model's) or positive multiples of the model's size multiple, <= 16384,
//                   and the estimated activations must fit in the machine's available memory
//   seed            unsigned 64-bit integer (no sign, no overflow); seed + n - 1 must not wrap
//   n, batch size   1 .. 100000
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "rdm/ldm/config.hpp"
#include "rdm/app/request.hpp"

namespace rdm {

constexpr double kMaxGuidanceScale = 100.0;
constexpr int64_t kMaxImageSide = 16384;
constexpr int64_t kMaxImages = 100000;
constexpr int64_t kMaxNeighbors = 1000;

// "42" -> 42. Only decimal digits: a sign, a fraction, an exponent or a value above
// 2^64 - 1 is an rdm::Error naming `what` (e.g. "--seed").
uint64_t parse_seed(std::string_view text, const std::string& what = "seed");

// Single-value rules; `what` names the value in the message ("--scale", "jobs.jsonl:3: scale").
void check_scale(double scale, const std::string& what);
void check_eta(double eta, const std::string& sampler, const std::string& what);
// --sampler and --spacing: one of sampler_names() / spacing_names() (rdm/sampler/solvers.hpp).
void check_sampler(const std::string& sampler, const std::string& spacing, const std::string& what);
void check_steps(int64_t steps, int64_t max_steps, const std::string& what);
void check_k(int64_t k, const std::string& what);
void check_count(int64_t n, const std::string& what);  // -n, --batch-size
// seed, seed + 1, ..., seed + n - 1 must all be 64-bit seeds (no wrap-around).
void check_seed_span(uint64_t seed, int64_t n, const std::string& what);

// Strict JSON readers for job lines and records: an integer must be a JSON integer (5.7, "5",
// 1e30 are errors), a seed a non-negative integer below 2^64, a number finite.
int64_t json_integer(const nlohmann::json& j, const char* key, int64_t fallback, const std::string& where);
uint64_t json_seed(const nlohmann::json& v, const std::string& where);
double json_number(const nlohmann::json& j, const char* key, double fallback, const std::string& where);

// What the rules need to know about a model, from its config alone.
struct ModelFacts {
  int64_t size_multiple = 1;            // first-stage factor * 2^UNet downsamplings
  int64_t native_width = 0, native_height = 0;
  int64_t max_steps = 999;              // schedule timesteps - 1
  int64_t context_dim = 0;              // width of the context tokens (CLIP embedding dim)
  ldm::LdmConfig config;
  static ModelFacts from_config(const ldm::LdmConfig& config);
  static ModelFacts from_file(const std::filesystem::path& config_file);
};

// Rough peak activation memory of sampling one image pair (classifier-free guidance batch of
// 2 per image on the CPU) and decoding one image, in bytes.
struct MemoryEstimate {
  double unet_bytes = 0, decoder_bytes = 0;
  double peak() const { return unet_bytes > decoder_bytes ? unet_bytes : decoder_bytes; }
};
MemoryEstimate estimate_activation_memory(const ldm::LdmConfig& config, int64_t width, int64_t height, int64_t batch,
                                          int64_t dtype_bytes);
// MemAvailable and MemTotal of /proc/meminfo in bytes (0 when unknown).
struct MachineMemory {
  double available = 0, total = 0;
};
MachineMemory machine_memory();

// Width and height (0 = native): positive multiples, at most kMaxImageSide.
void check_size(int64_t width, int64_t height, const ModelFacts& facts, const std::string& what);
// Refuses a size whose estimated activations exceed the available memory. Only for devices that
// run on the CPU ("cpu", or "auto" without CUDA); a GPU's own memory errors are caught there.
void check_memory(int64_t width, int64_t height, int64_t batch, const ModelFacts& facts, const std::string& device,
                  const std::string& precision, const MachineMemory& machine, const std::string& what);

// Every value rule above on one request (model-independent and model-dependent ones), plus the
// databases: each must exist, have a manifest, and hold embeddings of the model's context
// width. `what` prefixes the messages (e.g. "jobs.jsonl:3").
void check_request(const SampleRequest& request, const ModelFacts& facts, const std::string& what);

}  // namespace rdm
