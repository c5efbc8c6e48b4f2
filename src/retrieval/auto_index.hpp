// The default index of a style database by collection size (`--index auto`), chosen from
// measurements on this project's 2-core reference VM with clustered CLIP-like vectors
// (scripts/make_clip_like.py; README "Style databases at scale"):
//   N <= kFlatMax: exact Flat (one query scans N x D floats: <= ~20 ms single-threaded);
//   larger: IVF{nlist},SQ8 (spherical k-means, 8-bit codes: a quarter of the float memory) with
//   exact re-ranking of the best candidates from the memory-mapped stored embeddings, nprobe
//   tuned at build time until the measured recall@k reaches the target.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rdm::retrieval {

constexpr int64_t kFlatMax = 50000;

struct IndexChoice {
  std::string description;       // FAISS index_factory string
  int64_t rerank = 0;            // exact re-ranking of this many candidates
  std::vector<int64_t> nprobes;  // tried in order until the recall target is met (IVF)
  double recall_target = 0;      // served recall@k the nprobe tuning aims at
  std::string reason;            // one line for the log: why this index
};

bool is_auto_index(const std::string& description);
IndexChoice choose_index(int64_t n, int64_t d);

}  // namespace rdm::retrieval
