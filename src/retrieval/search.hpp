// The one search path: what `db search`, sampling and the build's recall report all run --
// ANN candidates from the FAISS index, optionally re-ranked exactly from the stored rows.
#pragma once
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "retrieval/index.hpp"
#include "retrieval/rows.hpp"

namespace rdm::retrieval {

// Exact inner products of one query q[d] with the stored rows `ids`: scores[j] = <x_ids[j], q>.
using ExactScoreFn =
    std::function<void(const std::vector<int64_t>& ids, const float* q, std::vector<float>& scores)>;

// Top k of queries q[nq, d] (L2-normalised) as (score, id), best first: the index's top
// max(k, rerank), re-scored by `exact` and re-sorted when rerank > 0 (ScaNN's reorder).
std::vector<std::vector<std::pair<float, int64_t>>> search_ranked(const FaissIndex& index, const float* q,
                                                                  int64_t nq, int64_t k, int64_t rerank,
                                                                  const ExactScoreFn& exact);

struct RecallFigures {
  double raw = -1;     // recall@k of the index alone
  double served = -1;  // recall@k of search_ranked with `rerank` (what users get)
  int64_t queries = 0;
};

// recall@k against exact search over x[n, d], on held-out queries: `queries` rows of x
// (sampled with `seed`) plus Gaussian noise (cosine about 0.9 to their source), renormalised,
// so no query is a vector of the index. Both figures come from search_ranked.
RecallFigures measure_recall(const FaissIndex& index, const float* x, int64_t n, int64_t d, int64_t k,
                             int64_t queries, int64_t rerank, uint64_t seed);

// Held-out queries and their exact top k (ground truth), computed once and reused while a
// build tries search settings.
struct RecallSet {
  std::vector<float> q;          // [queries, d]
  std::vector<int64_t> truth;    // [queries, k]
  int64_t queries = 0, k = 0;
};
RecallSet make_recall_set(const RowSource& rows, int64_t k, int64_t queries, uint64_t seed);
// Fraction of the true top k found in `got` (one list per query of `set`).
double recall_at_k(const RecallSet& set, const std::vector<std::vector<std::pair<float, int64_t>>>& got);
RecallFigures measure_recall(const FaissIndex& index, const RowSource& rows, const RecallSet& set,
                             int64_t rerank);

// Exact top-k of q[nq, d] over every row of `rows`, chunk by chunk when they are streamed;
// equal to exact_search over the whole matrix.
void exact_search_rows(const RowSource& rows, const float* q, int64_t nq, int64_t k, float* scores,
                       int64_t* ids, int64_t chunk_rows = 0);  // 0: kRowChunk (files), all (matrices)

// The held-out queries measure_recall uses (exposed for tests): [m, d] row-major.
std::vector<float> perturbed_queries(const float* x, int64_t n, int64_t d, int64_t m, uint64_t seed);
std::vector<float> perturbed_queries(const RowSource& rows, int64_t m, uint64_t seed);

}  // namespace rdm::retrieval
