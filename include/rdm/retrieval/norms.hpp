// Norms of a database's stored embedding rows, computed from its embeddings.npy (not taken
// from the manifest): what `db info` reports as the normalisation.
#pragma once
#include <cstdint>
#include <filesystem>

namespace rdm::retrieval {

struct NormStats {
  double min = 0, max = 0;   // L2 norms of the finite rows
  int64_t rows = 0;
  int64_t not_finite = 0;    // rows holding NaN or infinite values
  int64_t zero = 0;          // all-zero rows
  int64_t off_unit = 0;      // finite non-zero rows whose norm differs from 1 by more than `tolerance`
  double tolerance = 0;      // 1e-5 for float32 files, 2e-3 for float16
  bool normalised() const { return not_finite == 0 && zero == 0 && off_unit == 0; }
};

// Reads DIR/embeddings.npy. Throws rdm::Error for a missing or unreadable file.
NormStats embedding_norms(const std::filesystem::path& db_dir);

}  // namespace rdm::retrieval
