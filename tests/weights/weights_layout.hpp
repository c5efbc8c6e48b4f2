// Shared by the `weights` tests: where the real RDM / CLIP files are (RDM_WEIGHTS_DIR, laid out
// as scripts/download_models.sh puts them), and running the rdm binary. Without the files the
// tests GTEST_SKIP with the reason, so ctest lists them as skipped, never as passed.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace rdm_weights_test {
namespace fs = std::filesystem;

// RDM_WEIGHTS_DIR is the models folder of scripts/download_models.sh ($RDM_MODELS) or a folder
// holding it as models/:
//   rdm/rdm768x768/model.ckpt (or model.safetensors) + config.yaml
//   clip/ViT-L-14.pt, clip/bpe_simple_vocab_16e6.txt.gz
// Databases (optional): $RDM_DATABASES, else databases/ beside the models folder; the first
// artbench-* (else any) database with a manifest.json is used.
struct Layout {
  fs::path models, model_dir, checkpoint, clip, vocab, database;
  std::string missing;  // why the tests cannot run ("" = they can)
};

inline std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

inline fs::path first_database(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {};
  fs::path any;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!fs::exists(e.path() / "manifest.json")) continue;
    if (e.path().filename().string().rfind("artbench-", 0) == 0) return e.path();
    if (any.empty()) any = e.path();
  }
  return any;
}

inline Layout layout() {
  Layout l;
  const std::string root = env("RDM_WEIGHTS_DIR");
  if (root.empty()) {
    l.missing = "RDM_WEIGHTS_DIR is not set (point it at the models folder that scripts/download_models.sh fills)";
    return l;
  }
  l.models = fs::is_directory(fs::path(root) / "models" / "rdm") ? fs::path(root) / "models" : fs::path(root);
  l.model_dir = l.models / "rdm" / "rdm768x768";
  for (const char* name : {"model.ckpt", "model.safetensors"})
    if (fs::exists(l.model_dir / name)) l.checkpoint = l.model_dir / name;
  l.clip = l.models / "clip" / "ViT-L-14.pt";
  l.vocab = l.models / "clip" / "bpe_simple_vocab_16e6.txt.gz";
  const std::string dbs = env("RDM_DATABASES");
  l.database = first_database(dbs.empty() ? l.models.parent_path() / "databases" : fs::path(dbs));
  if (l.checkpoint.empty()) l.missing = "no RDM checkpoint " + (l.model_dir / "model.ckpt").string();
  else if (!fs::exists(l.model_dir / "config.yaml") && !fs::exists(l.model_dir / "config.json"))
    l.missing = "no config.yaml beside " + l.checkpoint.string();
  else if (!fs::exists(l.clip)) l.missing = "no CLIP " + l.clip.string();
  else if (!fs::exists(l.vocab)) l.missing = "no vocabulary " + l.vocab.string();
  return l;
}

#define RDM_REQUIRE_WEIGHTS(l)                                                   \
  do {                                                                           \
    if (!(l).missing.empty()) GTEST_SKIP() << "real weights needed: " << (l).missing; \
  } while (0)

struct RunResult {
  int code = -1;
  std::string out, err;
};

inline std::string quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

inline fs::path scratch(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("rdm_weights_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Runs `rdm <args>` (args shell-quoted by the caller) with all CPU threads.
inline RunResult run_rdm(const std::string& args) {
  static int counter = 0;
  const fs::path base = scratch("run" + std::to_string(counter++));
  const std::string cmd = quote(env("RDM_BIN")) + " " + args + " >" + quote((base / "out").string()) + " 2>" +
                          quote((base / "err").string()) + " </dev/null";
  RunResult r;
  const int st = std::system(cmd.c_str());
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(base / "out");
  r.err = slurp(base / "err");
  return r;
}

}  // namespace rdm_weights_test
