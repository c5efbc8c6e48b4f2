// The last step shared by build, import and merge: write the embeddings file, build and
// write the index, measure recall, then write the manifest (last, atomically).
#pragma once
#include <filesystem>

#include <torch/types.h>

#include "rdm/retrieval/build.hpp"
#include "rdm/retrieval/manifest.hpp"

namespace rdm::retrieval {

// `embeddings`: [N, D] float (normalised here). Fills manifest count/dim/dtype/index/hash and
// report.recall, writes every file of the folder. Returns the recall (-1 for exact indexes).
double write_database_files(const std::filesystem::path& dir, torch::Tensor embeddings,
                            Manifest& manifest, const IndexOptions& index);

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
