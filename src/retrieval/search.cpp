// The shared search path and its recall measurement (see search.hpp).
#include "retrieval/search.hpp"

#include <algorithm>
#include <cmath>
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
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  std::normal_distribution<float> noise(0.f, 0.5f / std::sqrt(static_cast<float>(d)));
  std::vector<float> q(static_cast<size_t>(m * d));
  for (int64_t i = 0; i < m; ++i) {
    const float* src = x + pick(rng) * d;
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

RecallFigures measure_recall(const FaissIndex& index, const float* x, int64_t n, int64_t d, int64_t k,
                             int64_t queries, int64_t rerank, uint64_t seed) {
  RecallFigures f;
  if (n < 1 || queries < 1) return f;
  k = std::min(k, n);
  const int64_t nq = queries;
  std::vector<float> q = perturbed_queries(x, n, d, nq, seed);
  std::vector<float> ts(static_cast<size_t>(nq * k));
  std::vector<int64_t> ti(static_cast<size_t>(nq * k));
  exact_search(x, n, q.data(), nq, d, k, ts.data(), ti.data());
  ExactScoreFn exact = [&](const std::vector<int64_t>& ids, const float* qq, std::vector<float>& s) {
    for (size_t j = 0; j < ids.size(); ++j) {
      const float* row = x + ids[j] * d;
      float acc = 0;
      for (int64_t c = 0; c < d; ++c) acc += row[c] * qq[c];
      s[j] = acc;
    }
  };
  auto recall_of = [&](const std::vector<std::vector<std::pair<float, int64_t>>>& got) {
    int64_t hit = 0;
    for (int64_t r = 0; r < nq; ++r) {
      std::unordered_set<int64_t> truth(ti.begin() + r * k, ti.begin() + (r + 1) * k);
      for (const auto& [score, id] : got[r]) hit += truth.count(id);
    }
    return static_cast<double>(hit) / static_cast<double>(nq * k);
  };
  f.raw = recall_of(search_ranked(index, q.data(), nq, k, 0, exact));
  f.served = rerank > 0 ? recall_of(search_ranked(index, q.data(), nq, k, rerank, exact)) : f.raw;
  f.queries = nq;
  return f;
}

}  // namespace rdm::retrieval
