// Model and database lookup by name (see model_paths.hpp for the layout).
#include "rdm/app/model_paths.hpp"

#include <cstdlib>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "rdm/runtime/error.hpp"

namespace rdm {
namespace fs = std::filesystem;

namespace {
const char* kFetchHint = "run scripts/download_models.sh (or `rdm demo` for the tiny test model)";

fs::path env_or(const char* var, const char* fallback) {
  const char* v = std::getenv(var);
  return (v && *v) ? fs::path(v) : fs::path(fallback);
}

fs::path first_existing(const fs::path& dir, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (fs::is_regular_file(dir / n)) return dir / n;
  return {};
}

// A config beside a checkpoint: config.yaml/config.json in its folder, or <stem>.yaml/.json.
fs::path config_beside(const fs::path& ckpt) {
  fs::path dir = ckpt.parent_path();
  for (const char* ext : {".yaml", ".yml", ".json"}) {
    fs::path p = ckpt;
    p.replace_extension(ext);
    if (fs::is_regular_file(p)) return p;
  }
  return first_existing(dir.empty() ? fs::path(".") : dir, {"config.yaml", "config.yml", "config.json"});
}

}  // namespace

fs::path resolve_clip(const std::string& clip) {
  fs::path p(clip);
  if (fs::is_regular_file(p) || fs::is_directory(p)) return p;
  fs::path dir = models_root() / "clip";
  std::string stem = clip;
  for (auto& c : stem)
    if (c == '/') c = '-';  // "ViT-L/14" -> "ViT-L-14"
  for (const char* ext : {".pt", ".safetensors", ""}) {
    fs::path cand = dir / (stem + ext);
    if (fs::is_regular_file(cand) || (ext[0] == 0 && fs::is_directory(cand))) return cand;
  }
  fail("CLIP model '{}' not found (looked for {}.pt / .safetensors in '{}'); {}", clip, stem, dir.string(),
       kFetchHint);
}

fs::path resolve_vocab(const std::string& vocab, const fs::path& clip) {
  if (!vocab.empty()) {
    if (fs::exists(vocab)) return vocab;
    fail("CLIP vocabulary '{}' not found; {}", vocab, kFetchHint);
  }
  const char* const kGz = "bpe_simple_vocab_16e6.txt.gz";
  std::vector<fs::path> cands;
  if (!clip.empty()) {
    const fs::path dir = clip.parent_path();
    const bool is_dir = fs::is_directory(clip);
    cands.push_back(dir / (clip.stem().string() + ".vocab.txt.gz"));  // the CLIP's own
    if (is_dir && fs::is_regular_file(clip / "vocab.json")) return clip;  // Hugging Face folder
    cands.push_back(dir / kGz);
    const fs::path folder = is_dir ? clip : dir.empty() ? fs::path(".") : dir;
    cands.push_back(folder / kGz);
    if (!is_dir) cands.push_back(folder / "vocab.json");
    cands.push_back(folder.parent_path() / kGz);
  }
  if (const char* env = std::getenv("RDM_CLIP_VOCAB"); env && *env) cands.emplace_back(env);
  cands.push_back(models_root() / "clip" / kGz);
  cands.push_back(models_root() / kGz);
  for (const auto& c : cands)
    if (fs::is_regular_file(c)) return c;
  fail("CLIP vocabulary not found (looked {}in $RDM_CLIP_VOCAB and for {} in '{}' and '{}'); pass --vocab FILE, "
       "or {}",
       clip.empty() ? std::string() : "beside '" + clip.string() + "', ", kGz, (models_root() / "clip").string(),
       models_root().string(), kFetchHint);
}

fs::path models_root() { return env_or("RDM_MODELS", "models"); }

fs::path tiny_model_dir() {
  std::vector<fs::path> cands = {models_root() / "tiny"};
#ifdef RDM_SOURCE_MODELS
  cands.push_back(fs::path(RDM_SOURCE_MODELS) / "tiny");
#endif
  for (const auto& c : cands)
    if (fs::is_regular_file(c / "model.safetensors")) return c;
  fail("the tiny model is not in '{}'{} (it ships in the repository's models/tiny; set RDM_MODELS or pass --model)",
       cands[0].string(), cands.size() > 1 ? " nor '" + cands[1].string() + "'" : std::string());
}
fs::path databases_root() { return env_or("RDM_DATABASES", "databases"); }

PipelinePaths resolve_model_paths(const std::string& model, const std::string& config, const std::string& clip,
                                  const std::string& vocab) {
  PipelinePaths paths;
  std::string name = model.empty() ? "rdm768x768" : model;
  fs::path p(name);
  fs::path dir;
  if (fs::is_regular_file(p)) {
    paths.model = p;
    dir = p.parent_path();
  } else {
    dir = fs::is_directory(p) ? p : models_root() / "rdm" / name;
    if (!fs::is_directory(dir) && name == "tiny") dir = tiny_model_dir();
    if (!fs::is_directory(dir))
      fail("RDM model '{}' not found (no folder '{}'; set RDM_MODELS or pass --model DIR|FILE); {}", name,
           dir.string(), kFetchHint);
    paths.model = first_existing(dir, {"model.ckpt", "model.safetensors", "model.pt"});
    if (paths.model.empty())
      fail("RDM model folder '{}' has no model.ckpt or model.safetensors; {}", dir.string(), kFetchHint);
  }
  if (!config.empty()) {
    paths.config = config;
    if (!fs::is_regular_file(paths.config)) fail("config '{}' not found", config);
  } else {
    paths.config = config_beside(paths.model);
    if (paths.config.empty())
      fail("no config for '{}': put config.yaml (configs/retrieval-augmented-diffusion/768x768.yaml) beside it "
           "or pass --config",
           paths.model.string());
  }
  // Optional rdm.json in the model folder names the matching CLIP and vocabulary.
  std::string clip_name = clip, vocab_name = vocab;
  fs::path hint = (dir.empty() ? fs::path(".") : dir) / "rdm.json";
  if (fs::is_regular_file(hint)) {
    std::ifstream f(hint);
    auto j = nlohmann::json::parse(f, nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail("'{}' is not a JSON object", hint.string());
    auto rel = [&](const std::string& v) {
      fs::path q(v);
      return q.is_absolute() ? q.string() : (hint.parent_path() / q).string();
    };
    if (clip_name.empty() && j.contains("clip") && j["clip"].is_string()) {
      std::string c = j["clip"];
      clip_name = fs::exists(hint.parent_path() / c) ? rel(c) : c;
    }
    if (vocab_name.empty() && j.contains("vocab") && j["vocab"].is_string()) vocab_name = rel(j["vocab"]);
  }
  paths.clip = resolve_clip(clip_name.empty() ? "ViT-L-14" : clip_name);
  paths.vocab = resolve_vocab(vocab_name, paths.clip);
  return paths;
}

fs::path resolve_database(const std::string& name_or_dir) {
  fs::path p(name_or_dir);
  if (fs::is_directory(p)) return p;
  fs::path cand = databases_root() / name_or_dir;
  if (fs::is_directory(cand)) return cand;
  fail("database '{}' not found (no folder '{}' or '{}'; set RDM_DATABASES, build one with `rdm db build`, "
       "or run scripts/download_models.sh for the ArtBench databases)",
       name_or_dir, p.string(), cand.string());
}

}  // namespace rdm
