// The last step shared by build, import and merge: write the embeddings file, build and
// write the index, measure recall, then write the manifest (last, atomically).
#pragma once
#include <filesystem>
#include <functional>
#include <string>

#include <torch/types.h>

#include "rdm/retrieval/build.hpp"
#include "rdm/retrieval/manifest.hpp"

namespace rdm::retrieval {

// `embeddings`: [N, D] float (normalised here). Fills manifest count/dim/dtype/index/hash and
// report.recall, writes every file of the folder. Returns the recall (-1 for exact indexes).
// Rows that cannot be normalised (zero, NaN, infinite) are an rdm::Error naming `source`, the
// count and the first one (row and name_of(row)), before any file is written. recall_raw
// (optional) receives the raw-ANN recall; the return value is the recall of the search users
// run (with the manifest's re-ranking).
class FaissIndex;
double write_database_files(const std::filesystem::path& dir, torch::Tensor embeddings,
                            Manifest& manifest, const IndexOptions& index, const std::string& source,
                            const std::function<std::string(int64_t)>& name_of = {},
                            double* recall_raw = nullptr, FaissIndex* prebuilt = nullptr);

class RowSource;
// The index part of write_database_files, for rows already written to dir/embeddings.npy (or
// held in memory): resolves `--index auto` (choose_index, logged with its reason, nprobe tuned
// on held-out queries), builds the index from `rows` (streamed when they come from a file),
// measures recall, writes the index and fills every manifest field except content_hash and
// finalize_seconds; the caller writes the manifest. Returns the served recall (-1: exact).
// With `prebuilt` (an index already holding `rows`, e.g. merged shards) nothing is built or
// tuned: index.description/nprobe/rerank describe it, and its recall is measured and stored.
class FaissIndex;
double finish_database(const std::filesystem::path& dir, const RowSource& rows, Manifest& manifest,
                       IndexOptions index, double* recall_raw = nullptr, FaissIndex* prebuilt = nullptr);

// The check write_database_files makes: x [N, D] float32 contiguous.
void check_embeddings(const torch::Tensor& x, const std::string& source,
                      const std::function<std::string(int64_t)>& name_of = {});

// Removes leftovers of interrupted atomic writes (".<name>.tmp.*") in a database folder.
void remove_stale_temporaries(const std::filesystem::path& dir);

// Exclusive lock on a database folder (flock on DIR/.rdm.lock) held while writing it, so two
// processes never build into the same folder at once. Released by the destructor (or death).
class FolderLock {
 public:
  explicit FolderLock(const std::filesystem::path& dir);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

// "float32" / "float16" -> dtype; anything else -> rdm::Error.
torch::Dtype embeddings_dtype(const std::string& name);

}  // namespace rdm::retrieval
