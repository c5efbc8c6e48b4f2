// The non-tensor steps of the pipeline: the neighbour split across databases, the postfix
// style and query text, and the per-image record (see pipeline_stages.hpp).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include <torch/version.h>

#include "app/pipeline_stages.hpp"
#include "rdm/app/pipeline.hpp"
#include "rdm/retrieval/database.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm {
namespace fs = std::filesystem;

std::vector<int64_t> split_k(int64_t k, const std::vector<double>& weights) {
  std::vector<int64_t> out(weights.size(), 0);
  if (weights.empty() || k <= 0) return out;
  double total = 0;
  for (double w : weights) {
    if (!(w > 0) || !std::isfinite(w)) fail("database weight {} must be a positive number", w);
    total += w;
  }
  std::vector<double> rem(weights.size());
  int64_t given = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    double exact = static_cast<double>(k) * weights[i] / total;
    out[i] = static_cast<int64_t>(std::floor(exact + 1e-9));
    rem[i] = exact - static_cast<double>(out[i]);
    given += out[i];
  }
  std::vector<size_t> order(weights.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rem[a] > rem[b] + 1e-12; });
  for (size_t j = 0; given < k; ++j, ++given) ++out[order[j % order.size()]];
  return out;
}

std::string style_from_database_name(const std::string& name) {
  std::string s = name;
  for (const char* prefix : {"artbench-", "artbench_"})
    if (s.rfind(prefix, 0) == 0) s = s.substr(std::string(prefix).size());
  std::replace(s.begin(), s.end(), '_', ' ');
  std::replace(s.begin(), s.end(), '-', ' ');
  return s;
}

namespace stage {

std::string query_text(const SampleRequest& req, const std::vector<std::string>& database_names) {
  std::string text = req.prompt;
  if (req.no_retrieval) {
    std::string style = req.style;
    if (style.empty() && !database_names.empty()) style = style_from_database_name(database_names.front());
    if (style.empty()) fail("--no-retrieval needs --style TEXT or a --database to name the style");
    text = req.prompt + " in the style of " + style;
  }
  if (text.empty() && !req.image_prompt) fail("the prompt is empty (give a prompt or --image-prompt)");
  return text;
}

std::vector<ImageRecord::Database> database_records(const SampleRequest& req, const DbList& dbs, bool retrieve) {
  std::vector<double> weights;
  for (const auto& d : req.databases) weights.push_back(d.weight);
  const auto ks = split_k(req.k, weights);
  std::vector<ImageRecord::Database> out;
  for (size_t d = 0; d < dbs.size(); ++d)
    out.push_back({dbs[d]->name(), fs::absolute(req.databases[d].dir).string(), req.databases[d].weight,
                   retrieve ? ks[d] : 0, dbs[d]->hash(), dbs[d]->size(), dbs[d]->clip_identity()});
  return out;
}

ImageRecord request_record(const ImageRecord& model, const SampleRequest& req, const std::string& text,
                           std::vector<ImageRecord::Database> databases, const std::vector<NeighborRecord>& neighbors,
                           bool retrieve, int64_t width, int64_t height) {
  ImageRecord r = model;
  r.rdm_version = RDM_VERSION;
  r.libtorch = TORCH_VERSION;
  r.prompt = req.prompt;
  r.text = text;
  r.mode = req.image_prompt ? "image" : req.no_retrieval ? "postfix" : retrieve ? "text+neighbors" : "text";
  if (req.image_prompt) r.image_prompt = fs::absolute(*req.image_prompt).string();
  if (req.no_retrieval) r.style = req.style;
  r.sampler = req.sampler;
  r.spacing = req.spacing;
  r.steps = req.steps;
  r.eta = req.eta;
  r.scale = req.scale;
  r.width = width;
  r.height = height;
  r.k = req.k;
  r.base_seed = req.seed;
  r.batch_size = req.batch_size;
  r.databases = std::move(databases);
  r.neighbors = neighbors;
  return r;
}

ImageRecord image_record(const ImageRecord& request_part, std::map<std::string, double> seconds, uint64_t seed,
                         int64_t index) {
  ImageRecord r = request_part;
  r.seconds = std::move(seconds);
  r.seed = seed;
  r.index = index;
  return r;
}

}  // namespace stage
}  // namespace rdm
