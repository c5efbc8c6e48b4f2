// The value rules of sampling requests (see request_checks.hpp). No reference file:
// knn2img.py takes its values unchecked from argparse.
#include "rdm/app/request_checks.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/ranges.h>

#include "rdm/runtime/device.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/retrieval/manifest.hpp"
#include "rdm/sampler/solvers.hpp"

namespace rdm {
namespace fs = std::filesystem;
using json = nlohmann::json;

uint64_t parse_seed(std::string_view text, const std::string& what) {
  const std::string shown(text.substr(0, 40));
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos)
    fail("{} '{}' is not a seed: give a whole number from 0 to 18446744073709551615 (no sign)", what, shown);
  uint64_t v = 0;
  for (char c : text) {
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10)
      fail("{} '{}' is too large: seeds go from 0 to 18446744073709551615", what, shown);
    v = v * 10 + d;
  }
  return v;
}

void check_scale(double scale, const std::string& what) {
  if (!std::isfinite(scale) || std::abs(scale) > kMaxGuidanceScale)
    fail("{}: guidance scale {} is not allowed: it must be a finite number from -{} to {}", what, scale,
         kMaxGuidanceScale, kMaxGuidanceScale);
}

void check_eta(double eta, const std::string& sampler, const std::string& what) {
  if (!std::isfinite(eta) || eta < 0.0 || eta > 1.0)
    fail("{}: eta {} is not allowed: DDIM's eta lies in [0, 1] (0 = deterministic, 1 = DDPM-like)", what, eta);
  if ((sampler == "plms" || sampler == "dpmpp2m" || sampler == "unipc") && eta != 0.0)
    fail("{}: the {} sampler is deterministic and needs eta 0 (got {}); ddim and euler_a take eta", what, sampler,
         eta);
}

void check_sampler(const std::string& sampler, const std::string& spacing, const std::string& what) {
  auto known = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  if (!known(sampler::sampler_names(), sampler))
    fail("{}: sampler '{}' is not one of {}", what, sampler, fmt::join(sampler::sampler_names(), ", "));
  if (!known(sampler::spacing_names(), spacing))
    fail("{}: timestep spacing '{}' is not one of {}", what, spacing, fmt::join(sampler::spacing_names(), ", "));
}

void check_steps(int64_t steps, int64_t max_steps, const std::string& what) {
  if (steps < 1 || steps > max_steps)
    fail("{}: {} steps is not allowed: the sampler runs 1 to {} steps with this model's schedule", what, steps,
         max_steps);
}

void check_k(int64_t k, const std::string& what) {
  if (k < 0 || k > kMaxNeighbors) fail("{}: k = {} neighbours is not allowed (0 to {})", what, k, kMaxNeighbors);
}

void check_count(int64_t n, const std::string& what) {
  if (n < 1 || n > kMaxImages) fail("{} must be from 1 to {} (got {})", what, kMaxImages, n);
}

void check_seed_span(uint64_t seed, int64_t n, const std::string& what) {
  if (n > 1 && seed > std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(n - 1))
    fail("{}: seed {} with {} images would pass 18446744073709551615 (image i uses seed + i): lower the seed or -n",
         what, seed, n);
}

int64_t json_integer(const json& j, const char* key, int64_t fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  const json& v = j.at(key);
  if (!v.is_number_integer() ||
      (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())))
    fail("{}: '{}' must be an integer, got {}", where, key, v.dump());
  return v.get<int64_t>();
}

uint64_t json_seed(const json& v, const std::string& where) {
  // A parsed non-negative integer is "unsigned"; one built in code may be a signed >= 0.
  if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
    fail("{}: seed {} is not allowed: seeds are whole numbers from 0 to 18446744073709551615", where, v.dump());
  return v.get<uint64_t>();
}

double json_number(const json& j, const char* key, double fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  const json& v = j.at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>()))
    fail("{}: '{}' must be a finite number, got {}", where, key, v.dump());
  return v.get<double>();
}

ModelFacts ModelFacts::from_config(const ldm::LdmConfig& c) {
  ModelFacts f;
  f.config = c;
  f.size_multiple = c.downsample_factor() * (int64_t(1) << c.unet.num_downsamples());
  f.native_width = f.native_height = c.unet.image_size * c.downsample_factor();
  f.max_steps = c.schedule.timesteps - 1;
  f.context_dim = c.context_dim();
  return f;
}

ModelFacts ModelFacts::from_file(const fs::path& config_file) { return from_config(ldm::LdmConfig::from_file(config_file)); }

MemoryEstimate estimate_activation_memory(const ldm::LdmConfig& c, int64_t width, int64_t height, int64_t batch,
                                          int64_t dtype_bytes) {
  const double s = static_cast<double>(dtype_bytes), f = static_cast<double>(c.downsample_factor());
  const double hw = (static_cast<double>(width) / f) * (static_cast<double>(height) / f);  // latent tokens
  const double B = 2.0 * static_cast<double>(batch);  // classifier-free guidance pair
  const auto& u = c.unet;
  const double slice = 16.0 * (1 << 20);  // attention score slices (attention.cpp)
  // Skip connections kept for the output blocks, plus the working set of the busiest level.
  double skips = 0, work = 0;
  for (size_t l = 0; l < u.channel_mult.size(); ++l) {
    const double n = hw / std::pow(4.0, static_cast<double>(l));
    const double ch = static_cast<double>(u.model_channels * u.channel_mult[l]);
    skips += static_cast<double>(u.num_res_blocks + 1) * ch * n * B * s;
    double level = 6.0 * 2.0 * ch * n * B * s;  // concatenated skip + ResBlock temporaries
    const int64_t rate = int64_t(1) << l;
    bool attn = false;
    for (int64_t r : u.attention_resolutions) attn = attn || r == rate;
    if (attn) {
      level += 12.0 * ch * n * B * s;                   // GEGLU feed-forward (8 x width) and products
      level += 2.0 * std::max(slice, n * n * s) + ch * n * B * s;  // scores, softmax, output
    }
    work = std::max(work, level);
  }
  MemoryEstimate e;
  e.unet_bytes = skips + work;
  // Decoder (one image at a time): a few full-resolution feature maps, plus the attention over
  // all tokens of a level (mid block at the latent resolution, attn_resolutions elsewhere).
  const auto& dd = c.first_stage.ddconfig;
  const double HW = static_cast<double>(width) * static_cast<double>(height);
  double top = 0;
  for (size_t l = 0; l < dd.ch_mult.size() && l < 2; ++l)
    top = std::max(top, static_cast<double>(dd.ch * dd.ch_mult[l]));
  double dec = 8.0 * top * HW * s;  // ResnetBlock input, norm, activation, conv outputs, upsampling
  const double lowest = HW / std::pow(4.0, static_cast<double>(dd.ch_mult.size() - 1));
  double attn = dd.attn_type == "none" ? 0.0 : 2.0 * lowest * lowest * s;
  for (size_t l = 0; l < dd.ch_mult.size(); ++l)
    for (int64_t r : dd.attn_resolutions)
      if (dd.resolution > 0 && r == (dd.resolution >> l)) {
        const double n = HW / std::pow(4.0, static_cast<double>(l));
        attn = std::max(attn, 2.0 * n * n * s);
      }
  e.decoder_bytes = dec + attn;
  return e;
}

MachineMemory machine_memory() {
  MachineMemory m;
  std::ifstream f("/proc/meminfo");
  for (std::string line; std::getline(f, line);) {
    std::istringstream ss(line);
    std::string key;
    double kb = 0;
    ss >> key >> kb;
    if (key == "MemAvailable:") m.available = kb * 1024.0;
    if (key == "MemTotal:") m.total = kb * 1024.0;
  }
  return m;
}

void check_size(int64_t width, int64_t height, const ModelFacts& facts, const std::string& what) {
  const int64_t m = facts.size_multiple;
  for (auto [v, name] : {std::pair<int64_t, const char*>{width, "width"}, {height, "height"}}) {
    if (v < 0 || v % m != 0)
      fail("{}: {} {} is not allowed: width and height must be positive multiples of {} for this model (0 = its "
           "native {}x{})",
           what, name, v, m, facts.native_width, facts.native_height);
    if (v > kMaxImageSide) fail("{}: {} {} is larger than the maximum of {} pixels", what, name, v, kMaxImageSide);
  }
}

void check_memory(int64_t width, int64_t height, int64_t batch, const ModelFacts& facts, const std::string& device,
                  const std::string& precision, const MachineMemory& machine, const std::string& what) {
  if (machine.available <= 0) return;  // unknown (no /proc/meminfo)
  if (!is_cpu_device(device)) return;
  const int64_t w = width > 0 ? width : facts.native_width, h = height > 0 ? height : facts.native_height;
  const MemoryEstimate e = estimate_activation_memory(facts.config, w, h, batch,
                                                        parse_precision(precision) == torch::kFloat32 ? 4 : 2);
  constexpr double GiB = 1024.0 * 1024.0 * 1024.0;
  if (e.peak() > machine.available)
    fail("{}: a {}x{} image needs about {:.1f} GiB of working memory (UNet {:.1f} GiB, decoder {:.1f} GiB; "
         "estimate), more than the {:.1f} GiB available on this machine ({:.1f} GiB in all): choose a smaller size",
         what, w, h, e.peak() / GiB, e.unet_bytes / GiB, e.decoder_bytes / GiB, machine.available / GiB,
         machine.total / GiB);
}

void check_request(const SampleRequest& r, const ModelFacts& facts, const std::string& what) {
  if (r.image_prompt && !r.prompt.empty())
    fail("{}: an image prompt and a text prompt cannot be combined (the image's CLIP embedding replaces the text "
         "query): give one of them",
         what);
  check_sampler(r.sampler, r.spacing, what);
  check_scale(r.scale, what);
  check_eta(r.eta, r.sampler, what);
  check_steps(r.steps, facts.max_steps, what);
  check_k(r.k, what);
  check_count(r.n, what + ": the number of images");
  check_count(r.batch_size, what + ": the batch size");
  if (r.first_index < 0) fail("{}: the first image index must not be negative", what);
  check_seed_span(r.seed, r.first_index + r.n, what);
  check_size(r.width, r.height, facts, what);
  for (const auto& db : r.databases) {
    if (!(db.weight > 0) || !std::isfinite(db.weight))
      fail("{}: database weight {} must be a positive number", what, db.weight);
    if (!fs::is_directory(db.dir)) fail("{}: database '{}' is not a folder", what, db.dir.string());
    const auto m = retrieval::Manifest::read(db.dir);
    if (facts.context_dim > 0 && m.dim != facts.context_dim)
      fail("{}: database '{}' ({}) holds {}-d embeddings of CLIP '{}' but the model's context is {}-d: use a "
           "database built with the model's CLIP",
           what, m.name, db.dir.string(), m.dim, m.clip_identity, facts.context_dim);
    if (m.count <= 0) fail("{}: database '{}' ({}) is empty", what, m.name, db.dir.string());
  }
}

}  // namespace rdm
