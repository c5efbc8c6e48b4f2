// manifest.json of a style database: what the folder holds and how it was made. Written last
// (atomically) by build/import/merge, so a folder with a manifest is complete.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace rdm::retrieval {

inline constexpr int kFormatVersion = 1;
inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kEmbeddingsFile = "embeddings.npy";
inline constexpr const char* kIndexFile = "index.faiss";
inline constexpr const char* kStoreFile = "items.sqlite";
inline constexpr const char* kReportFile = "build_report.tsv";

struct Manifest {
  int format_version = kFormatVersion;
  std::string name;
  std::string created;            // ISO 8601 UTC
  std::string clip_identity;      // ClipModel::identity() or e.g. "ViT-L/14" for imports
  int64_t dim = 0;                // embedding dimension
  std::string preprocess;         // "clip", "rdm" or "unknown" (imports)
  int64_t count = 0;              // rows of the embeddings matrix == index ntotal
  std::string embeddings_dtype = "float32";  // "float16" or "float32"
  std::string normalization = "l2";          // stored rows are L2-normalised
  std::string index = "Flat";     // FAISS index_factory description (metric inner product)
  int64_t nprobe = 0, ef = 0, rerank = 0;  // default search settings (0 = FAISS default / off)
  std::string content_hash;       // "sha256:<hex>" of the embeddings file
  nlohmann::json source = nlohmann::json::object();  // kind (build/import/merge), root, shard, parts
  nlohmann::json report = nlohmann::json::object();  // counts, recall, timings

  // Typed views of `source`; "" where the manifest records nothing.
  std::string source_kind() const;        // "build", "import" or "merge"
  std::string source_root() const;        // collection root (built and merged databases)
  std::string source_clip_model() const;  // CLIP weights `db build` used (absolute path)

  nlohmann::json to_json() const;
  static Manifest from_json(const nlohmann::json& j, const std::string& where);
  // Reads dir/manifest.json; errors name the file and suggest `rdm db build` to repair.
  static Manifest read(const std::filesystem::path& dir);
  // Writes dir/manifest.json atomically.
  void write(const std::filesystem::path& dir) const;
};

// Current UTC time as "YYYY-MM-DDTHH:MM:SSZ".
std::string utc_now();

}  // namespace rdm::retrieval
