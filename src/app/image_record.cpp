// The image record and its JSON both ways, the request it was made with, and its `parameters`
// text (see image_record.hpp; README "Image records" documents every key). No reference file:
// knn2img.py writes bare PNGs.
#include "rdm/app/image_record.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include <spdlog/fmt/fmt.h>

#include "rdm/app/request_checks.hpp"
#include "rdm/runtime/error.hpp"

namespace rdm {
namespace fs = std::filesystem;
using json = nlohmann::json;

json ImageRecord::neighbors_json(const std::vector<NeighborRecord>& neighbors) {
  json nbs = json::array();
  for (const auto& nb : neighbors)
    nbs.push_back({{"database", nb.database}, {"id", nb.id}, {"score", nb.score}, {"path", nb.path}, {"label", nb.label}});
  return nbs;
}

json ImageRecord::model_json() const {
  json j = json::object();
  if (model)
    j["model"] = {{"path", model->path}, {"hash", model->hash}, {"config", model->config}, {"ema", model->ema}};
  if (clip) j["clip"] = {{"path", clip->path}, {"identity", clip->identity}};
  if (!vocab.empty()) j["vocab"] = vocab;
  if (!device.empty()) j["device"] = device;
  if (!precision.empty()) j["precision"] = precision;
  return j;
}

json ImageRecord::to_json() const {
  json j = model_json();
  if (!rdm_version.empty()) j["rdm_version"] = rdm_version;
  if (!libtorch.empty()) j["libtorch"] = libtorch;
  j["prompt"] = prompt;
  j["text"] = text;
  j["mode"] = mode;
  if (image_prompt) j["image_prompt"] = *image_prompt;
  if (style) j["style"] = *style;
  j["sampler"] = sampler;
  j["spacing"] = spacing;
  j["steps"] = steps;
  j["eta"] = eta;
  j["scale"] = scale;
  j["width"] = width;
  j["height"] = height;
  j["k"] = k;
  j["base_seed"] = base_seed;
  j["batch_size"] = batch_size;
  json dbs = json::array();
  for (const auto& d : databases)
    dbs.push_back({{"name", d.name},
                   {"path", d.path},
                   {"weight", d.weight},
                   {"k", d.k},
                   {"hash", d.hash},
                   {"size", d.size},
                   {"clip_identity", d.clip_identity}});
  j["databases"] = dbs;
  j["neighbors"] = neighbors_json(neighbors);
  if (seconds) j["seconds"] = *seconds;
  j["seed"] = seed;
  j["index"] = index;
  if (contact_sheet) j["contact_sheet"] = *contact_sheet;
  if (job_id) j["job_id"] = *job_id;
  if (file) j["file"] = *file;
  return j;
}

void ImageRecord::check_schema(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("schema")) return;  // schema 1
  const json& s = j.at("schema");
  if (!s.is_number_integer() || s.get<int64_t>() < 1)
    fail("{}: the record's schema {} is not a schema number", where, s.dump());
  if (s.get<int64_t>() > kSchema)
    fail("{}: the record has schema {}, newer than this rdm {} reads (up to {}): update rdm", where,
         s.get<int64_t>(), RDM_VERSION, kSchema);
}

namespace {
// The model half and the fields the commands add: strings and flags, wrong types are errors.
void read_model_half(const json& j, ImageRecord& r) {
  if (j.contains("model")) {
    const json& m = j.at("model");
    r.model = ImageRecord::Model{m.value("path", std::string()), m.value("hash", std::string()),
                                 m.value("config", std::string()), m.value("ema", false)};
  }
  if (j.contains("clip")) {
    const json& c = j.at("clip");
    r.clip = ImageRecord::Clip{c.value("path", std::string()), c.value("identity", std::string())};
  }
  r.vocab = j.value("vocab", std::string());
  r.device = j.value("device", std::string());
  r.precision = j.value("precision", std::string());
  r.rdm_version = j.value("rdm_version", std::string());
  r.libtorch = j.value("libtorch", std::string());
  if (j.contains("seconds")) r.seconds = j.at("seconds").get<std::map<std::string, double>>();
  for (auto [key, field] : {std::pair<const char*, std::optional<std::string>*>{"contact_sheet", &r.contact_sheet},
                            {"job_id", &r.job_id},
                            {"file", &r.file}})
    if (j.contains(key)) *field = j.at(key).get<std::string>();
}

// The request half: integers must be JSON integers, seeds unsigned 64-bit (request_checks.hpp).
void read_request_half(const json& j, ImageRecord& r, const std::string& where) {
  r.prompt = j.value("prompt", std::string());
  r.text = j.value("text", r.prompt);
  r.mode = j.value("mode", std::string("text"));
  if (j.contains("image_prompt")) r.image_prompt = j.at("image_prompt").get<std::string>();
  if (j.contains("style")) r.style = j.at("style").get<std::string>();
  r.sampler = j.value("sampler", std::string("ddim"));
  r.spacing = j.value("spacing", std::string("uniform"));  // records before the solvers: uniform
  r.steps = static_cast<int>(std::clamp<int64_t>(json_integer(j, "steps", 50, where), -1, 1 << 30));
  r.eta = json_number(j, "eta", 0.0, where);
  r.scale = json_number(j, "scale", 5.0, where);
  r.width = json_integer(j, "width", 0, where);
  r.height = json_integer(j, "height", 0, where);
  r.k = json_integer(j, "k", 19, where);
  r.seed = json_seed(j.at("seed"), where);
  r.base_seed = j.contains("base_seed") ? json_seed(j.at("base_seed"), where) : r.seed;
  r.batch_size = json_integer(j, "batch_size", 1, where);
  r.index = json_integer(j, "index", 0, where);
  for (const auto& d : j.value("databases", json::array()))
    r.databases.push_back({d.value("name", std::string()), d.at("path").get<std::string>(),
                           json_number(d, "weight", 1.0, where), json_integer(d, "k", 0, where),
                           d.value("hash", std::string()), json_integer(d, "size", 0, where),
                           d.value("clip_identity", std::string())});
  for (const auto& nb : j.value("neighbors", json::array()))
    r.neighbors.push_back({nb.value("database", std::string()), nb.value("id", int64_t(-1)), nb.value("score", 0.0f),
                           nb.value("path", std::string()), nb.value("label", std::string())});
}
}  // namespace

ImageRecord ImageRecord::from_json(const json& j, const std::string& where) {
  check_schema(j, where);
  if (!j.is_object() || !j.contains("seed") || !j.contains("steps"))
    fail("{} is not an rdm image record (no seed/steps)", where);
  ImageRecord r;
  try {
    read_model_half(j, r);
    read_request_half(j, r, where);
  } catch (const json::exception& e) {
    fail("{} has a malformed field: {}", where, e.what());
  }
  return r;
}

SampleRequest ImageRecord::request(const std::string& where) const {
  SampleRequest q;
  q.prompt = prompt;
  if (image_prompt) q.image_prompt = fs::path(*image_prompt);
  q.no_retrieval = mode == "postfix";
  q.style = style.value_or(std::string());
  for (const auto& d : databases) q.databases.push_back({fs::path(d.path), d.weight, std::string()});
  q.k = k;
  q.sampler = sampler;
  q.spacing = spacing;
  q.steps = steps;
  q.eta = eta;
  q.scale = scale;
  q.seed = seed;
  q.n = 1;
  q.batch_size = 1;
  q.first_index = 0;
  q.width = width;
  q.height = height;
  check_sampler(q.sampler, q.spacing, where);
  check_scale(q.scale, where);
  check_eta(q.eta, q.sampler, where);
  check_k(q.k, where);
  if (q.steps < 1) fail("{}: steps {} must be at least 1", where, q.steps);
  return q;
}

std::string ImageRecord::parameters_text() const {
  auto num = [](double v) { return fmt::format("{}", v); };
  std::string out = (text.empty() ? prompt : text) + "\n";
  std::string upper = sampler;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  out += fmt::format("Steps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {}x{}", steps, upper, num(scale), seed,
                     width, height);
  if (model)
    out += fmt::format(", Model hash: {}, Model: {}", model->hash,
                       fs::path(model->path).parent_path().filename().string());
  out += fmt::format(", Eta: {}, Mode: {}", num(eta), mode);
  if (image_prompt) out += fmt::format(", Image prompt: {}", *image_prompt);
  std::string joined;
  for (const auto& d : databases)
    joined += (joined.empty() ? "" : " + ") + fmt::format("{}:{} (k {})", d.name, num(d.weight), d.k);
  if (!joined.empty()) out += ", Databases: " + joined;
  out += fmt::format(", Neighbors: {}", neighbors.size());
  if (!device.empty()) out += fmt::format(", Device: {} {}", device, precision);
  out += fmt::format(", Version: rdm {}", rdm_version);
  return out;
}

}  // namespace rdm
