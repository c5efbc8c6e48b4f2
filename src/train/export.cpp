// rdm train export: one model folder from the three trained stages (see export.hpp).
#include "rdm/train/export.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "rdm/formats/safetensors.hpp"
#include "rdm/formats/state_dict.hpp"
#include "rdm/io/atomic_file.hpp"
#include "rdm/ldm/config_document.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/train/autoencoder.hpp"
#include "rdm/train/clip.hpp"
#include "rdm/train/rdm.hpp"
#include "train/yaml.hpp"

namespace rdm::train {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::string kUnet = "model.diffusion_model.";

void require_file(const fs::path& p, const std::string& what) {
  if (!fs::is_regular_file(p)) fail("'{}' does not exist: {} (run the stage's `rdm train` first)", p.string(), what);
}

// The EMA weights as the model's weights; no model_ema.* entries.
formats::StateDict ema_as_model(const formats::TensorFile& tf) {
  if (!formats::has_ema(tf.tensors)) fail("'{}' has no model_ema.* weights to export", tf.path.string());
  formats::StateDict sd;
  for (const auto& name : tf.order) {
    if (name.rfind("model_ema.", 0) == 0) continue;
    const torch::Tensor& t = tf.tensors.at(name);
    if (name.rfind(kUnet, 0) == 0) {
      auto it = tf.tensors.find(formats::ema_key(name));
      if (it == tf.tensors.end()) fail("'{}': '{}' has no EMA copy '{}'", tf.path.string(), name, formats::ema_key(name));
      sd[name] = it->second;
    } else {
      sd[name] = t;
    }
  }
  return sd;
}

// One stage's summary from its loss log (last line) and checkpoint metadata (configuration).
json stage_summary(const fs::path& dir) {
  json s = json::object();
  std::ifstream log(dir / "loss.jsonl");
  std::string line, last;
  while (std::getline(log, line))
    if (!line.empty()) last = line;
  if (!last.empty()) {
    try {
      const json j = json::parse(last);
      s["steps"] = j.at("step");
      s["final_loss"] = j.at("loss");
      s["seconds_last_run"] = j.value("seconds", 0.0);
    } catch (const json::exception& e) {
      fail("'{}': last line is not a loss record: {}", (dir / "loss.jsonl").string(), e.what());
    }
  }
  const fs::path ckpt = dir / "checkpoint.safetensors";
  if (fs::is_regular_file(ckpt)) {
    const auto tf = formats::read_safetensors(ckpt);
    if (auto it = tf.metadata.find("config"); it != tf.metadata.end()) s["config"] = json::parse(it->second);
  }
  // The input folders of a stage as trained name this machine's paths: keep only their last
  // component (the inputs' hashes identify them).
  if (s.contains("config") && s["config"].is_object())
    for (const char* k : {"autoencoder", "clip"})
      if (s["config"].contains(k) && s["config"][k].is_string())
        s["config"][k] = fs::path(s["config"][k].get<std::string>()).filename().string();
  return s;
}

void copy_into(const fs::path& from, const fs::path& to_dir, const std::string& name, ExportReport& rep) {
  fs::copy_file(from, to_dir / name, fs::copy_options::overwrite_existing);
  rep.files.push_back(name);
}

}  // namespace

ExportReport export_model(const ExportOptions& o) {
  const fs::path weights = rdm_weights_path(o.rdm), config = rdm_config_path(o.rdm);
  const fs::path clip = clip_weights_path(o.clip), vocab = clip_vocab_path(o.clip);
  require_file(weights, "the RDM weights");
  require_file(config, "the RDM config");
  require_file(clip, "the CLIP weights");
  require_file(vocab, "the CLIP vocabulary");
  require_file(autoencoder_weights_path(o.autoencoder), "the autoencoder weights");

  const fs::path out = fs::absolute(o.out).lexically_normal();
  const fs::path parent = out.parent_path();
  fs::create_directories(parent);
  const fs::path tmp = parent / fmt::format(".{}.export-{}", out.filename().string(), ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  ExportReport rep;
  try {
    const auto tf = formats::read_safetensors(weights);
    auto meta = tf.metadata;
    meta["format"] = "rdm-train export (EMA weights)";
    formats::write_safetensors(tmp / "model.safetensors", ema_as_model(tf), meta);
    rep.files.push_back("model.safetensors");

    json doc = ldm::parse_config_document(io::read_file(config), config.string());
    doc.at("model").at("params")["use_ema"] = false;
    io::write_file_atomic(tmp / "config.yaml", "# rdm train export: EMA weights stored as the model's weights\n" +
                                                   detail::to_yaml(nlohmann::ordered_json(doc)));
    rep.files.push_back("config.yaml");
    copy_into(clip, tmp, "clip.safetensors", rep);
    copy_into(vocab, tmp, "clip.vocab.txt.gz", rep);
    io::write_file_atomic(tmp / "rdm.json",
                          json{{"clip", "clip.safetensors"}, {"vocab", "clip.vocab.txt.gz"}}.dump(2) + "\n");
    rep.files.push_back("rdm.json");

    json training = json::object();
    for (const auto& [stage, dir] : {std::pair{"autoencoder", o.autoencoder}, {"clip", o.clip}, {"rdm", o.rdm}}) {
      training[stage] = stage_summary(dir);
      if (fs::is_regular_file(dir / "loss.png")) copy_into(dir / "loss.png", tmp, fmt::format("loss-{}.png", stage), rep);
    }
    io::write_file_atomic(tmp / "training.json", training.dump(2) + "\n");
    rep.files.push_back("training.json");

    // Swap into place: the old folder (if any) moves aside first, then goes.
    const fs::path old = parent / fmt::format(".{}.old-{}", out.filename().string(), ::getpid());
    if (fs::exists(out)) fs::rename(out, old);
    fs::rename(tmp, out);
    fs::remove_all(old);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  for (auto& f : rep.files) {
    f = out / f;
    rep.bytes += static_cast<int64_t>(fs::file_size(f));
  }
  return rep;
}

}  // namespace rdm::train
