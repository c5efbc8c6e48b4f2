// The record of one generated image: everything needed to reproduce it. It is the PNG's `rdm`
// text chunk (JSON, without "seconds" unless --png-timings), the sidecar <image>.json (with
// "seconds" and "file"), and what `rdm sample --from-png` reads back. The keys, their types and
// meanings, and the schema rules are documented in README.md ("Image records").
//
// Schema: records without a "schema" key are schema 1 (every record rdm has written so far);
// a later schema will write "schema": N. Reading a record of a schema newer than kSchema is an
// rdm::Error naming the file.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rdm/app/request.hpp"

namespace rdm {

// One retrieved neighbour.
struct NeighborRecord {
  std::string database;  // database name
  int64_t id = -1;
  float score = 0;
  std::string path;  // absolute path of the source image ("" when unknown)
  std::string label;
};

struct ImageRecord {
  static constexpr int64_t kSchema = 1;  // the newest schema this build reads and writes

  struct Model {
    std::string path, hash, config;  // checkpoint (absolute), its file_fingerprint, its config
    bool ema = false;                // EMA weights used
  };
  struct Clip {
    std::string path, identity;  // CLIP weights (absolute), ClipModel::identity()
  };
  // One database of the request, as it was when the image was made.
  struct Database {
    std::string name, path;  // manifest name, absolute folder
    double weight = 1.0;
    int64_t k = 0;           // its share of the neighbours (0 without retrieval)
    std::string hash;        // content hash of its embeddings
    int64_t size = 0;        // items
    std::string clip_identity;
  };

  // The model half (Pipeline::describe()).
  std::optional<Model> model;
  std::optional<Clip> clip;
  std::string vocab;             // CLIP vocabulary (absolute)
  std::string device;            // "cpu", "cuda:0" ("" = not recorded)
  std::string precision;         // "fp32", "fp16", "bf16"
  std::string rdm_version, libtorch;
  // The request.
  std::string prompt;            // as given
  std::string text;              // as encoded (the postfix baseline appends the style)
  std::string mode;              // text | text+neighbors | image | postfix
  std::optional<std::string> image_prompt;  // absolute path (mode image)
  std::optional<std::string> style;         // mode postfix
  std::string sampler = "ddim", spacing = "uniform";
  int steps = 50;
  double eta = 0.0, scale = 5.0;
  int64_t width = 0, height = 0;  // pixels (the model's size resolved)
  int64_t k = 19;
  uint64_t base_seed = 0;        // the request's seed (image i: base_seed + i)
  int64_t batch_size = 1;
  std::vector<Database> databases;
  std::vector<NeighborRecord> neighbors;  // best first
  // The image.
  uint64_t seed = 0;             // its own seed
  int64_t index = 0;             // its index in the request
  std::optional<std::map<std::string, double>> seconds;  // per stage (sidecar; PNG with --png-timings)
  // Added by the commands.
  std::optional<std::string> contact_sheet;  // file name of the neighbours' contact sheet
  std::optional<std::string> job_id;         // rdm sweep
  std::optional<std::string> file;           // the PNG's file name (sidecar only)

  // Schema-1 JSON: the same keys and values rdm has always written (no "schema" key).
  nlohmann::json to_json() const;
  // The "neighbors" array.
  static nlohmann::json neighbors_json(const std::vector<NeighborRecord>& neighbors);
  // The model half alone: {model, clip, vocab, device, precision}.
  nlohmann::json model_json() const;
  // Reads a record; missing keys take the defaults above. A value of the wrong type, a record
  // without seed and steps, or a newer schema is an rdm::Error naming `where` (the file).
  static ImageRecord from_json(const nlohmann::json& j, const std::string& where = "metadata record");
  // Throws rdm::Error (naming `where`) when `j` declares a schema newer than kSchema.
  static void check_schema(const nlohmann::json& j, const std::string& where);

  // The request it was made with, for n = 1 image at index 0 (`rdm sample --from-png`): the
  // rules of request_checks.hpp apply; `where` names the record in errors.
  SampleRequest request(const std::string& where = "metadata record") const;
  // The human-readable `parameters` chunk ("prompt\nSteps: 50, Sampler: DDIM, ...").
  std::string parameters_text() const;
};

}  // namespace rdm
