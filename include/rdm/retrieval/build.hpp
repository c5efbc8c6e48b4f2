// Making style databases: build from an image folder (resumable, shardable), import the
// CompVis .npz / plain .npy embeddings, merge shards. Port of the database side of the
// reference (the sister repo's ClipImageRetriever + train_searcher.py) onto FAISS + SQLite.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

namespace rdm::retrieval {

// How the FAISS index is made (shared by build, import and merge).
struct IndexOptions {
  std::string description = "auto";  // FAISS index_factory string (inner product) or "auto"
  int64_t nprobe = 0;                // stored in the manifest as the search default
  int64_t ef = 0;
  int64_t rerank = 0;
  int64_t train_size = 0;            // training sample (0: min(N, 256 * lists or 100k))
  int64_t recall_k = 19;             // recall@k of approximate indexes vs exact search
  int64_t recall_queries = 0;        // held-out queries (0: automatic, <= 1000)
  uint64_t seed = 0;                 // training / query sample
  std::string dtype = "float32";     // embeddings file dtype: float32 or float16
  // A database whose trained index is reused (its lists emptied, no training; its index string,
  // nprobe and re-ranking too): databases built so share one quantizer and merge list by list.
  std::filesystem::path trained_from;
};

struct BuildProgress {
  int64_t done = 0, total = 0;       // files handled (indexed + skipped + duplicates)
  int64_t indexed = 0, skipped = 0, duplicates = 0;
  double seconds = 0;                // since this run started
  double rate = 0;                   // files per second in this run
};
using BuildProgressFn = std::function<void(const BuildProgress&)>;

struct BuildOptions {
  std::filesystem::path images;      // collection root
  std::filesystem::path clip;        // CLIP weights
  std::filesystem::path out;         // database folder
  std::string preprocess = "clip";   // clip | rdm
  std::string device = "auto";       // auto | cpu | cuda | cuda:N (rdm/runtime/device.hpp)
  std::string precision = "fp32";    // fp32 | fp16 | bf16
  int64_t batch = 32;
  int64_t workers = 0;               // decode threads (0: hardware threads)
  int64_t max_pixels = 2LL * 89478485;  // decompression-bomb limit (Pillow's)
  bool append = false;               // add new images to an existing database
  bool follow_links = false;         // follow symlinks leading outside `images` (else listed as skipped)
  int64_t shard_index = 0, shard_count = 1;
  std::string name;                  // manifest name (default: folder name)
  IndexOptions index;
};

struct BuildReport {
  int64_t scanned = 0;      // files found in this shard (indexed + skipped + duplicates)
  int64_t indexed = 0;      // items in the database
  int64_t new_items = 0;    // embedded in this run
  int64_t skipped = 0;      // unreadable files (listed in the report file)
  int64_t duplicates = 0;   // byte-identical copies stored once
  int64_t resumed = 0;      // files already recorded by an earlier run
  double recall = -1;       // recall@k of what `db search` returns (with --rerank if set; -1: exact)
  double recall_raw = -1;   // recall@k of the raw ANN index (no re-ranking)
  double seconds = 0, images_per_second = 0;
  std::filesystem::path report_file;
  nlohmann::json to_json() const;
};

BuildReport build_database(const BuildOptions& options, const BuildProgressFn& progress = {});

struct ImportOptions {
  std::vector<std::filesystem::path> inputs;  // .npz parts / .npy matrices / folders of them
  std::filesystem::path out;
  std::string clip_identity = "ViT-L/14";
  std::string name;
  IndexOptions index;
};
BuildReport import_database(const ImportOptions& options);

struct MergeOptions {
  std::vector<std::filesystem::path> inputs;  // shard databases
  std::filesystem::path out;
  std::string name;
  bool index_given = false;  // use `index` instead of the shards' description
  IndexOptions index;
};
BuildReport merge_databases(const MergeOptions& options);

// Shard of a relative path for --shard I/N: FNV-1a 64 of its UTF-8 bytes modulo N.
int64_t shard_of(const std::string& relative_path, int64_t shard_count);

}  // namespace rdm::retrieval
