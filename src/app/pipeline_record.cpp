// The non-tensor half of the pipeline: neighbour split across databases, the postfix style,
// and the per-image record (the PNG `rdm` chunk) <-> request and `parameters` text.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>

#include <spdlog/fmt/fmt.h>

#include "rdm/runtime/error.hpp"
#include "rdm/app/pipeline.hpp"
#include "rdm/app/request_checks.hpp"

namespace rdm {
namespace fs = std::filesystem;
using json = nlohmann::json;

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

std::pair<std::string, double> parse_weighted(const std::string& spec) {
  auto colon = spec.rfind(':');
  if (colon != std::string::npos && colon + 1 < spec.size()) {
    std::string tail = spec.substr(colon + 1);
    char* end = nullptr;
    double w = std::strtod(tail.c_str(), &end);
    if (end && *end == 0) {
      if (!(w > 0) || !std::isfinite(w)) fail("database weight in '{}' must be a positive number", spec);
      return {spec.substr(0, colon), w};
    }
  }
  return {spec, 1.0};
}

SampleRequest request_from_record(const json& r, const std::string& where) {
  if (!r.is_object() || !r.contains("seed") || !r.contains("steps"))
    fail("{} is not an rdm image record (no seed/steps)", where);
  SampleRequest q;
  try {
    q.prompt = r.value("prompt", std::string());
    if (r.contains("image_prompt")) q.image_prompt = fs::path(r.at("image_prompt").get<std::string>());
    std::string mode = r.value("mode", std::string("text"));
    q.no_retrieval = mode == "postfix";
    q.style = r.value("style", std::string());
    for (const auto& d : r.value("databases", json::array()))
      q.databases.push_back({fs::path(d.at("path").get<std::string>()), json_number(d, "weight", 1.0, where)});
    q.k = json_integer(r, "k", 19, where);
    q.sampler = r.value("sampler", std::string("ddim"));
    q.spacing = r.value("spacing", std::string("uniform"));  // records before the solvers: uniform
    q.steps = static_cast<int>(std::clamp<int64_t>(json_integer(r, "steps", 50, where), -1, 1 << 30));
    q.eta = json_number(r, "eta", 0.0, where);
    q.scale = json_number(r, "scale", 5.0, where);
    q.seed = json_seed(r.at("seed"), where);
    q.n = 1;
    q.first_index = 0;
    q.width = json_integer(r, "width", 0, where);
    q.height = json_integer(r, "height", 0, where);
  } catch (const json::exception& e) {
    fail("{} has a malformed field: {}", where, e.what());
  }
  check_sampler(q.sampler, q.spacing, where);
  check_scale(q.scale, where);
  check_eta(q.eta, q.sampler, where);
  check_k(q.k, where);
  if (q.steps < 1) fail("{}: steps {} must be at least 1", where, q.steps);
  return q;
}

namespace {
std::string num(double v) {
  std::string s = fmt::format("{}", v);
  return s;
}
}  // namespace

std::string parameters_text(const json& r) {
  std::string text = r.value("text", r.value("prompt", std::string()));
  std::string out = text + "\n";
  std::string sampler = r.value("sampler", std::string("ddim"));
  std::transform(sampler.begin(), sampler.end(), sampler.begin(), ::toupper);
  out += fmt::format("Steps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {}x{}", r.value("steps", 0), sampler,
                     num(r.value("scale", 0.0)), r.value("seed", uint64_t(0)), r.value("width", 0),
                     r.value("height", 0));
  if (r.contains("model")) {
    const auto& m = r["model"];
    out += fmt::format(", Model hash: {}, Model: {}", m.value("hash", std::string()),
                       fs::path(m.value("path", std::string())).parent_path().filename().string());
  }
  out += fmt::format(", Eta: {}, Mode: {}", num(r.value("eta", 0.0)), r.value("mode", std::string()));
  if (r.contains("image_prompt")) out += fmt::format(", Image prompt: {}", r["image_prompt"].get<std::string>());
  std::vector<std::string> dbs;
  for (const auto& d : r.value("databases", json::array()))
    dbs.push_back(fmt::format("{}:{} (k {})", d.value("name", std::string()), num(d.value("weight", 1.0)),
                              d.value("k", 0)));
  if (!dbs.empty()) {
    std::string joined;
    for (const auto& d : dbs) joined += (joined.empty() ? "" : " + ") + d;
    out += ", Databases: " + joined;
  }
  out += fmt::format(", Neighbors: {}", r.value("neighbors", json::array()).size());
  if (r.contains("device")) out += fmt::format(", Device: {} {}", r["device"].get<std::string>(), r.value("precision", std::string()));
  out += fmt::format(", Version: rdm {}", r.value("rdm_version", std::string()));
  return out;
}

}  // namespace rdm
