// The shared search path and its recall measurement (see search.hpp).
#include "retrieval/search.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <unordered_set>

namespace rdm::retrieval {

std::vector<std::vector<std::pair<float, int64_t>>> search_ranked(const FaissIndex& index, const float* q,
                                                                  int64_t nq, int64_t k, int64_t rerank,
                                                                  const ExactScoreFn& exact) {
  if (index.exact()) rerank = 0;
  const int64_t d = index.dim();
  const int64_t kk = std::min(index.ntotal(), std::max(k, rerank));
  std::vector<float> scores(static_cast<size_t>(nq * kk));
  std::vector<int64_t> ids(static_cast<size_t>(nq * kk));
  index.search(q, nq, kk, scores.data(), ids.data());
  std::vector<std::vector<std::pair<float, int64_t>>> out(static_cast<size_t>(nq));
  std::vector<float> s;
  for (int64_t r = 0; r < nq; ++r) {
    auto& cand = out[r];
    for (int64_t j = 0; j < kk; ++j)
      if (ids[r * kk + j] >= 0) cand.emplace_back(scores[r * kk + j], ids[r * kk + j]);
    if (rerank > 0 && !cand.empty()) {
      std::vector<int64_t> cid;
      for (auto& c : cand) cid.push_back(c.second);
      s.assign(cid.size(), 0.f);
      exact(cid, q + r * d, s);
      for (size_t j = 0; j < cand.size(); ++j) cand[j].first = s[j];
      std::stable_sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    }
    if (static_cast<int64_t>(cand.size()) > k) cand.resize(static_cast<size_t>(k));
  }
  return out;
}

std::vector<float> perturbed_queries(const float* x, int64_t n, int64_t d, int64_t m, uint64_t seed) {
  return perturbed_queries(MatrixRows(x, n, d), m, seed);
}

std::vector<float> perturbed_queries(const RowSource& rows, int64_t m, uint64_t seed) {
  const int64_t n = rows.rows(), d = rows.dim();
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  std::normal_distribution<float> noise(0.f, 0.5f / std::sqrt(static_cast<float>(d)));
  std::vector<float> q(static_cast<size_t>(m * d));
  std::vector<float> src(static_cast<size_t>(d));
  for (int64_t i = 0; i < m; ++i) {
    rows.gather({pick(rng)}, src.data());
    float* dst = q.data() + i * d;
    double norm = 0;
    for (int64_t j = 0; j < d; ++j) {
      dst[j] = src[j] + noise(rng);
      norm += static_cast<double>(dst[j]) * dst[j];
    }
    const float inv = norm > 0 ? static_cast<float>(1.0 / std::sqrt(norm)) : 0.f;
    for (int64_t j = 0; j < d; ++j) dst[j] *= inv;
  }
  return q;
}

void exact_search_rows(const RowSource& rows, const float* q, int64_t nq, int64_t k, float* scores,
                       int64_t* ids, int64_t chunk_rows) {
  const int64_t n = rows.rows(), d = rows.dim();
  if (const float* x = rows.data(); x && chunk_rows <= 0) return exact_search(x, n, q, nq, d, k, scores, ids);
  if (chunk_rows <= 0) chunk_rows = kRowChunk;
  // Chunk by chunk, keeping the running top k of every query.
  std::vector<std::vector<std::pair<float, int64_t>>> best(static_cast<size_t>(nq));
  std::vector<float> cs(static_cast<size_t>(nq * k));
  std::vector<int64_t> ci(static_cast<size_t>(nq * k));
  auto better = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  for_each_chunk(rows, [&](int64_t first, int64_t c, const float* chunk) {
    const int64_t kc = std::min(k, c);
    exact_search(chunk, c, q, nq, d, kc, cs.data(), ci.data());
    for (int64_t r = 0; r < nq; ++r) {
      auto& b = best[r];
      for (int64_t j = 0; j < kc; ++j)
        if (ci[r * kc + j] >= 0) b.emplace_back(cs[r * kc + j], ci[r * kc + j] + first);
      const size_t keep = std::min<size_t>(b.size(), static_cast<size_t>(k));
      std::partial_sort(b.begin(), b.begin() + keep, b.end(), better);
      b.resize(keep);
    }
  }, chunk_rows);
  for (int64_t r = 0; r < nq; ++r)
    for (int64_t j = 0; j < k; ++j) {
      const bool have = j < static_cast<int64_t>(best[r].size());
      scores[r * k + j] = have ? best[r][j].first : -std::numeric_limits<float>::infinity();
      ids[r * k + j] = have ? best[r][j].second : -1;
    }
}

RecallSet make_recall_set(const RowSource& rows, int64_t k, int64_t queries, uint64_t seed) {
  RecallSet set;
  const int64_t n = rows.rows();
  if (n < 1 || queries < 1) return set;
  set.k = std::min(k, n);
  set.queries = queries;
  set.q = perturbed_queries(rows, queries, seed);
  std::vector<float> ts(static_cast<size_t>(queries * set.k));
  set.truth.resize(static_cast<size_t>(queries * set.k));
  auto t0 = std::chrono::steady_clock::now();
  exact_search_rows(rows, set.q.data(), queries, set.k, ts.data(), set.truth.data());
  spdlog::info("recall: exact top-{} of {} held-out queries over {} vectors in {:.1f} s", set.k, queries, n,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return set;
}

double recall_at_k(const RecallSet& set, const std::vector<std::vector<std::pair<float, int64_t>>>& got) {
  int64_t hit = 0;
  const int64_t k = set.k;
  for (int64_t r = 0; r < set.queries; ++r) {
    std::unordered_set<int64_t> truth(set.truth.begin() + r * k, set.truth.begin() + (r + 1) * k);
    for (const auto& [score, id] : got[r]) hit += truth.count(id);
  }
  return static_cast<double>(hit) / static_cast<double>(set.queries * k);
}

RecallFigures measure_recall(const FaissIndex& index, const RowSource& rows, const RecallSet& set,
                             int64_t rerank) {
  RecallFigures f;
  if (set.queries < 1) return f;
  const int64_t d = rows.dim();
  std::vector<float> buf;
  ExactScoreFn exact = [&](const std::vector<int64_t>& ids, const float* qq, std::vector<float>& s) {
    buf.resize(ids.size() * static_cast<size_t>(d));
    rows.gather(ids, buf.data());
    for (size_t j = 0; j < ids.size(); ++j) {
      const float* row = buf.data() + j * d;
      float acc = 0;
      for (int64_t c = 0; c < d; ++c) acc += row[c] * qq[c];
      s[j] = acc;
    }
  };
  f.raw = recall_at_k(set, search_ranked(index, set.q.data(), set.queries, set.k, 0, exact));
  f.served = rerank > 0 ? recall_at_k(set, search_ranked(index, set.q.data(), set.queries, set.k, rerank, exact))
                        : f.raw;
  f.queries = set.queries;
  return f;
}

RecallFigures measure_recall(const FaissIndex& index, const float* x, int64_t n, int64_t d, int64_t k,
                             int64_t queries, int64_t rerank, uint64_t seed) {
  MatrixRows rows(x, n, d);
  return measure_recall(index, rows, make_recall_set(rows, k, queries, seed), rerank);
}

}  // namespace rdm::retrieval
