// Style database: CLIP image embeddings of a collection with a FAISS index and per-item
// metadata. Replaces the reference's Searcher (scripts/knn2img.py + ldm/.../retrieval, ScaNN
// brute force over L2-normalised vectors, dot product). Folder format: databases/README.md.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "rdm/clip/preprocess.hpp"
#include "rdm/retrieval/manifest.hpp"

namespace rdm::retrieval {

struct Neighbor {
  int64_t id = -1;    // row of the embeddings matrix (0-based)
  float score = 0;    // inner product of L2-normalised vectors (cosine similarity)
  std::string path;   // source path relative to the collection root ("" for imports)
  std::string label;  // sub-folder of the source path ("" at the root or for imports)
};

// Everything the store knows about one item.
struct ItemInfo {
  int64_t id = -1;
  std::string path, label;
  std::string hash;          // "sha256:<hex>" of the file bytes ("" for imports)
  int64_t width = 0, height = 0;
  std::string orig_id;       // imports: img_id row as JSON ("" for built items)
  std::string patch_coords;  // imports: patch_coords row as JSON
};

// Search settings; values <= 0 keep the manifest's.
struct SearchOptions {
  int64_t nprobe = 0;  // IVF lists probed
  int64_t ef = 0;      // HNSW efSearch
  int64_t rerank = 0;  // exact re-rank of this many approximate candidates (approximate indexes)
};

class Database {
 public:
  // Opens a finished database folder (manifest.json, embeddings, index, store). Throws
  // rdm::Error for a missing/damaged/inconsistent part, suggesting `rdm db build` to repair.
  static Database open(const std::filesystem::path& dir);
  Database(Database&&) noexcept;
  Database& operator=(Database&&) noexcept;
  ~Database();

  // queries [N, D] (any float dtype/device, L2-normalised; normalised again like the
  // reference Searcher) -> N lists of k neighbours, best first.
  std::vector<std::vector<Neighbor>> search(const torch::Tensor& queries, int64_t k) const;
  std::vector<std::vector<Neighbor>> search(const torch::Tensor& queries, int64_t k,
                                            const SearchOptions& options) const;
  // Exact top-k (brute force over the stored embeddings, streamed in chunks) as (score, id),
  // best first: the ground truth for recall measurements (`db search --recall`).
  std::vector<std::vector<std::pair<float, int64_t>>> search_exact(const torch::Tensor& queries,
                                                                   int64_t k) const;
  // Stored embeddings of ids: [n, D] float32, L2-normalised (CPU).
  torch::Tensor embeddings(const std::vector<int64_t>& ids) const;

  int64_t size() const;
  int64_t dim() const;
  std::string clip_identity() const;
  std::string name() const;
  std::string hash() const;  // content hash of the embeddings file, from the manifest

  const Manifest& manifest() const;
  const std::filesystem::path& dir() const;
  // The image preprocessing the database was built with, for image queries: Rdm for a database
  // built with `--preprocess rdm`, Clip otherwise (imports record "unknown" and use Clip).
  clip::Preprocess preprocess() const;
  // Absolute path of item id's source image: the collection root joined with its stored path;
  // "" when unknown (imports, or a manifest without a root).
  std::string source_path(int64_t id) const;
  // The CLIP weights `db build` used ("" for imports).
  std::string clip_model() const;
  ItemInfo item(int64_t id) const;
  std::vector<std::pair<std::string, int64_t>> label_counts() const;
  // Throws rdm::Error when a query encoder (identity, dim) does not match the database.
  void check_query_encoder(const std::string& identity, int64_t dim) const;

  struct Impl;

 private:
  explicit Database(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True when two CLIP identities denote the same encoder: equal, or equal architecture where
// one of them carries no weight hash (imports that only know "ViT-L/14").
bool clip_identities_compatible(const std::string& a, const std::string& b);

}  // namespace rdm::retrieval
