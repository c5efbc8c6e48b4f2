// `rdm eval --against REF`: each image of an eval next to the image of the same mode, prompt,
// style and seed in another eval folder (a solver's yardstick: fewer steps against DDIM with 250
// steps). PSNR of the 8-bit RGB images and the cosine similarity of their CLIP image
// embeddings. No reference file: the quality measure the fast-solver literature reports.
#include <cmath>
#include <map>
#include <tuple>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "app/eval_internal.hpp"
#include "rdm/app/eval.hpp"
#include "rdm/image/png.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm::eval::detail {
namespace fs = std::filesystem;

double psnr_8bit(const image::RgbImage& a, const image::RgbImage& b, const std::string& where) {
  if (a.width != b.width || a.height != b.height)
    fail("{}: the image is {}x{} but the reference's is {}x{}", where, a.width, a.height, b.width, b.height);
  double se = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    const double d = static_cast<double>(a.pixels[i]) - static_cast<double>(b.pixels[i]);
    se += d * d;
  }
  const double mse = a.pixels.empty() ? 0.0 : se / static_cast<double>(a.pixels.size());
  return 10.0 * std::log10(255.0 * 255.0 / std::max(mse, 255.0 * 255.0 * 1e-10));  // 100 dB when identical
}

std::vector<fs::path> reference_images(const Plan& plan, const std::vector<const Job*>& jobs, const Plan& ref,
                                       const fs::path& against) {
  if (ref.model.model != plan.model.model)
    spdlog::warn("eval: --against '{}' was sampled with model '{}', this eval with '{}'", against.string(),
                 ref.model.model.string(), plan.model.model.string());
  // (mode, prompt text, style name, seed) -> the reference's image
  std::map<std::tuple<std::string, std::string, std::string, uint64_t>, fs::path> files;
  for (const Job& j : plan_jobs(ref)) {
    const std::string style = j.style >= 0 ? ref.styles[static_cast<size_t>(j.style)].name : std::string();
    files[{j.mode, ref.prompts[j.prompt], style, j.seed}] = images_dir(against) / j.sweep.file_name();
  }
  std::vector<fs::path> out;
  int64_t missing = 0;
  for (const Job* j : jobs) {
    const std::string style = j->style >= 0 ? plan.styles[static_cast<size_t>(j->style)].name : std::string();
    auto it = files.find({j->mode, plan.prompts[j->prompt], style, j->seed});
    if (it == files.end() || !fs::exists(it->second)) {
      out.emplace_back();
      ++missing;
    } else {
      out.push_back(it->second);
    }
  }
  if (missing == static_cast<int64_t>(jobs.size()))
    fail("--against '{}': none of this eval's images has a counterpart there (same mode, prompt, style and seed)",
         against.string());
  if (missing > 0)
    spdlog::warn("eval: {} of {} images have no counterpart in --against '{}'; they are left out of PSNR", missing,
                 jobs.size(), against.string());
  return out;
}

}  // namespace rdm::eval::detail
