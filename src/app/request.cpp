// The sampling request and its JSON (see request.hpp). No reference file: knn2img.py keeps its
// values in an argparse namespace.
#include "rdm/app/request.hpp"

#include <cmath>
#include <cstdlib>
#include <set>

#include <spdlog/fmt/fmt.h>

#include "rdm/app/model_paths.hpp"
#include "rdm/app/request_checks.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm {
namespace fs = std::filesystem;
using json = nlohmann::json;

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

DatabaseChoice DatabaseChoice::parse(const std::string& spec) {
  auto [name, weight] = parse_weighted(spec);
  return {fs::path(name), weight, spec};
}

std::string DatabaseChoice::to_spec() const {
  if (!spec.empty()) return spec;
  return weight == 1.0 ? dir.string() : fmt::format("{}:{}", dir.string(), weight);
}

std::vector<std::string> SampleRequest::database_specs() const {
  std::vector<std::string> out;
  for (const auto& d : databases) out.push_back(d.to_spec());
  return out;
}

json SampleRequest::to_json() const {
  json j = {{"prompt", prompt}, {"databases", database_specs()}, {"seed", seed}, {"scale", scale},
            {"k", k},           {"sampler", sampler},              {"steps", steps}, {"eta", eta},
            {"width", width},   {"height", height}};
  if (image_prompt) j["image_prompt"] = image_prompt->string();
  // Requests of the reference's spacing (and of one image) keep the JSON, and so the sweep
  // job ids, they had before these keys existed.
  if (spacing != "uniform") j["spacing"] = spacing;
  if (no_retrieval) {
    j["no_retrieval"] = true;
    j["style"] = style;
  }
  if (n != 1) j["n"] = n;
  if (batch_size != 1) j["batch_size"] = batch_size;
  if (first_index != 0) j["first_index"] = first_index;
  return j;
}

namespace {
// "database": "a:0.7" or ["a:0.7", "b"] ("" = none).
std::vector<std::string> database_list(const json& v) {
  std::vector<std::string> out;
  if (v.is_string()) {
    if (!v.get<std::string>().empty()) out.push_back(v.get<std::string>());
  } else {
    for (const auto& x : v) out.push_back(x.get<std::string>());
  }
  return out;
}
}  // namespace

SampleRequest SampleRequest::from_json(const json& j, const SampleRequest& d, const std::string& where) {
  if (!j.is_object()) fail("{}: a job must be a JSON object", where);
  static const std::set<std::string> known = {"prompt",  "database", "databases", "seed",         "scale",
                                              "k",       "sampler",  "spacing",   "steps",        "eta",
                                              "width",   "height",   "image_prompt", "no_retrieval", "style",
                                              "n",       "batch_size", "first_index"};
  for (auto& [key, v] : j.items())
    if (!known.count(key)) fail("{}: unknown request key '{}'", where, key);
  SampleRequest s = d;
  std::vector<std::string> specs = d.database_specs();
  bool new_databases = false;
  try {
    s.prompt = j.value("prompt", d.prompt);
    for (const char* key : {"database", "databases"}) {
      if (!j.contains(key)) continue;
      specs = database_list(j.at(key));
      new_databases = true;
    }
    if (j.contains("seed")) s.seed = json_seed(j.at("seed"), where);
    s.scale = json_number(j, "scale", d.scale, where);
    s.k = json_integer(j, "k", d.k, where);
    s.sampler = j.value("sampler", d.sampler);
    s.spacing = j.value("spacing", d.spacing);
    const int64_t steps = json_integer(j, "steps", d.steps, where);
    if (steps < 1 || steps > (int64_t(1) << 30)) fail("{}: steps {} must be at least 1", where, steps);
    s.steps = static_cast<int>(steps);
    s.eta = json_number(j, "eta", d.eta, where);
    s.width = json_integer(j, "width", d.width, where);
    s.height = json_integer(j, "height", d.height, where);
    if (j.contains("image_prompt")) {
      const std::string image = j.at("image_prompt").get<std::string>();
      s.image_prompt = image.empty() ? std::nullopt : std::optional<fs::path>(image);
    }
    s.no_retrieval = j.value("no_retrieval", d.no_retrieval);
    s.style = j.value("style", d.style);
    s.n = json_integer(j, "n", d.n, where);
    s.batch_size = json_integer(j, "batch_size", d.batch_size, where);
    s.first_index = json_integer(j, "first_index", d.first_index, where);
  } catch (const json::exception& e) {
    fail("{}: {}", where, e.what());
  }
  if (new_databases) {
    s.databases.clear();
    try {
      for (const auto& spec : specs) s.databases.push_back(DatabaseChoice::parse(spec));
    } catch (const Error& e) {
      fail("{}: {}", where, e.what());
    }
  }
  check_sampler(s.sampler, s.spacing, where);
  check_scale(s.scale, where);
  check_eta(s.eta, s.sampler, where);
  check_k(s.k, where);
  check_count(s.n, where + ": the number of images");
  check_count(s.batch_size, where + ": the batch size");
  if (s.first_index < 0) fail("{}: the first image index must not be negative", where);
  if (s.width < 0 || s.height < 0) fail("{}: width and height must not be negative (0 = the model's)", where);
  if (!s.prompt.empty() && s.image_prompt)
    fail("{}: a job has either a prompt or an image_prompt, not both (the image's CLIP embedding replaces the "
         "text query)",
         where);
  if (s.prompt.empty() && !s.image_prompt) fail("{}: a job needs a prompt or an image_prompt", where);
  return s;
}

void SampleRequest::validate(const ModelFacts& facts, const std::string& what) const {
  check_request(*this, facts, what);
}

void SampleRequest::resolve_databases() {
  for (auto& d : databases) d.dir = resolve_database(d.dir.string());
}

}  // namespace rdm
