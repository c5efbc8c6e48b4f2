// FAISS index of a style database (inner product over L2-normalised rows). FAISS appears only
// in src/retrieval/. `Flat` (IndexFlatIP) reproduces the reference's ScaNN brute force exactly.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace faiss {
struct Index;
}

namespace rdm::retrieval {

class RowSource;

class FaissIndex {
 public:
  // index_factory(dim, description, METRIC_INNER_PRODUCT), trained on a seeded sample of x
  // (at most train_size rows, 0 = automatic), then every row added. Throws rdm::Error for an
  // unknown description or too few training vectors.
  static FaissIndex build(const std::string& description, const float* x, int64_t n, int64_t dim,
                          int64_t train_size, uint64_t seed);
  // The same from a row source (streamed in chunks when it is a file): trains on a seeded
  // sample of at most train_size rows (0: default_train_size), then adds every row.
  static FaissIndex build(const std::string& description, const RowSource& rows,
                          int64_t train_size, uint64_t seed);
  // A copy of `trained` (an index of another database, named by `source` in errors) with its
  // lists emptied, its trained quantizer and codec kept, and every row added: no training.
  // Databases built this way share one trained index, so `db merge` can merge their lists.
  static FaissIndex build_from_trained(const FaissIndex& trained, const RowSource& rows, const std::string& source);
  // "" when merge_lists can combine these indexes: IVF indexes (array lists) whose emptied
  // copies serialise to the same bytes (same quantizer centroids, codec and options); else why not.
  static std::string why_not_mergeable(const std::vector<const FaissIndex*>& shards);
  // The shards' lists merged with FAISS's IndexIVF::merge_from, without re-encoding: new_ids[k][i]
  // is the merged id of shard k's id i (-1: dropped, e.g. a duplicate). Consumes the shards.
  // Precondition: why_not_mergeable(shards) is "" (the caller decides between merge and rebuild).
  static FaissIndex merge_lists(std::vector<FaissIndex> shards, const std::vector<std::vector<int64_t>>& new_ids);
  // Automatic training sample: 64 per IVF list (FAISS: 30-256), at least 10k; 100k otherwise.
  static int64_t default_train_size(int64_t n, int64_t nlist);
  // Reads an index file; errors suggest `rdm db build` to repair.
  static FaissIndex read(const std::filesystem::path& file);
  FaissIndex(FaissIndex&&) noexcept;
  FaissIndex& operator=(FaissIndex&&) noexcept;
  ~FaissIndex();

  void write(const std::filesystem::path& file) const;  // atomic
  // nprobe (IVF) / efSearch (HNSW); <= 0 leaves the current value.
  void set_search_params(int64_t nprobe, int64_t ef);
  // Top-k by inner product; scores and ids are [nq, k] row-major (id -1 when fewer exist).
  void search(const float* q, int64_t nq, int64_t k, float* scores, int64_t* ids) const;
  int64_t ntotal() const;
  int64_t dim() const;
  bool exact() const;  // a flat inner-product index: results are exact
  bool supports_param(const std::string& name) const;
  // Seconds the build spent training (0: nothing trained) and adding rows (0: read or merged).
  double train_seconds() const { return train_seconds_; }
  double add_seconds() const { return add_seconds_; }

 private:
  explicit FaissIndex(std::unique_ptr<faiss::Index> index);
  std::unique_ptr<faiss::Index> index_;
  double train_seconds_ = 0, add_seconds_ = 0;
};

// Throws rdm::Error now (before hours of embedding) if FAISS cannot make `description`.
void validate_index_description(const std::string& description, int64_t dim);

// Exact top-k (inner product) of queries q[nq, d] over x[n, d] (FAISS brute force).
void exact_search(const float* x, int64_t n, const float* q, int64_t nq, int64_t d, int64_t k,
                  float* scores, int64_t* ids);

// L2-normalises rows in place (FAISS fvec_renorm_L2).
void normalize_rows(float* x, int64_t n, int64_t d);

}  // namespace rdm::retrieval
