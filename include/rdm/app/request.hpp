// What to sample: one typed request for `rdm sample` (its options or a --from-png record),
// `rdm sweep` (each job holds one) and the pipeline (Pipeline::sample). scripts/knn2img.py
// takes the same values from argparse (prompt, knn, ddim_steps, ddim_eta, scale, seed,
// n_samples, H, W, plms); the databases, modes, solvers and batch layout are ours.
//
// JSON (to_json / from_json; the format of a sweep job line and of `rdm sweep --list`):
//   {"prompt": "a fox", "databases": ["artbench-ukiyo_e:0.7", "stripes"], "seed": 42, "scale": 5.0,
//    "k": 19, "sampler": "ddim", "steps": 50, "eta": 0.0, "width": 0, "height": 0}
// plus, only when they differ from their defaults, "spacing" ("uniform"), "image_prompt",
// "no_retrieval" + "style", "n" (1), "batch_size" (1) and "first_index" (0). A sweep job's id
// hashes exactly this text (keys sorted), so these rules keep the ids of existing sweeps.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace rdm {

struct ModelFacts;  // request_checks.hpp

// One style database and its share of the k neighbours.
struct DatabaseChoice {
  std::filesystem::path dir;  // a folder; a name under $RDM_DATABASES until resolve_databases()
  double weight = 1.0;
  std::string spec;           // as written ("artbench-ukiyo_e:0.7"); "" when made otherwise

  // "NAME|DIR[:weight]" (parse_weighted); rdm::Error for a weight <= 0.
  static DatabaseChoice parse(const std::string& spec);
  // The spec as written, else dir[:weight].
  std::string to_spec() const;
};

struct SampleRequest {
  std::string prompt;
  std::optional<std::filesystem::path> image_prompt;  // query + first token from this image
  std::vector<DatabaseChoice> databases;              // empty: text only
  bool no_retrieval = false;  // postfix baseline: text only, prompt + " in the style of " + style
  std::string style;          // postfix style ("" -> from the first database's name)
  int64_t k = 19;             // neighbours in total (split across databases by weight)
  std::string sampler = "ddim";     // ddim | plms | dpmpp2m | unipc | euler_a
  std::string spacing = "uniform";  // timestep spacing: uniform (the reference's) | trailing | karras
  int steps = 50;
  double eta = 0.0;
  double scale = 5.0;
  uint64_t seed = 42;
  int64_t n = 1;             // images
  int64_t batch_size = 1;    // images per model batch (does not change the images)
  int64_t first_index = 0;   // index of the first image (image i uses seed + i)
  int64_t width = 0, height = 0;  // pixels; 0 = the model's native size

  nlohmann::json to_json() const;
  // Keys missing in `j` keep the values of `defaults`; an unknown key, a value of the wrong
  // type or one the rules refuse is an rdm::Error naming `where` ("jobs.jsonl:3"). "database"
  // is accepted for "databases", and a single string for a list of one.
  static SampleRequest from_json(const nlohmann::json& j, const SampleRequest& defaults, const std::string& where);

  // Every rule of request_checks.hpp (values, the model's size multiple and steps, databases
  // that exist and match the model's context width), before any model loads; the messages
  // start with `what`.
  void validate(const ModelFacts& facts, const std::string& what) const;
  // Database names -> folders (resolve_database); folders stay as they are.
  void resolve_databases();
  // The databases as "NAME|DIR[:weight]" specs.
  std::vector<std::string> database_specs() const;
};

// "name:0.7" -> {name, 0.7}; "name" -> {name, 1}. A colon followed by a non-number is part of
// the name. Throws rdm::Error for a weight <= 0.
std::pair<std::string, double> parse_weighted(const std::string& spec);

}  // namespace rdm
