// Style database benchmarks: search latency for k = 19 neighbours of one query over synthetic
// 768-d L2-normalised vectors (6k = an ArtBench style, 100k, and 1M with RDM_BENCH_1M=1),
// exact IndexFlatIP (the baseline: what the reference ScaNN brute force computes) vs IVF-PQ
// (nlist ~ sqrt(N), PQ64, nprobe = nlist/8, exact re-rank of 4k candidates), with recall@19.
//   ./build/bench/bench_db                 (6k and 100k)
// Measured 2026-11-25 on the 2-core VM (quiet), one query, k = 19, 4k re-rank candidates:
//   6k: flat 2.52 ms, IVF64,PQ64 0.180 ms (14x) recall 0.996
//   100k: flat 42.3 ms, IVF256,PQ64 0.703 ms (60x) recall 0.568
//   1M: flat 445 ms, IVF512,PQ64 4.16 ms (107x) recall 0.262
// PQ64 codes of this clustered synthetic data lose too much at 100k+: use a deeper re-rank
// (--rerank) or PQ96/OPQ there; training the 1M IVF-PQ on 20k vectors took about 45 min here.
//   RDM_BENCH_1M=1 ./build/bench/bench_db  (adds 1M: ~3 GB RAM, minutes of IVF-PQ training)
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <unordered_set>
#include <vector>

#include "retrieval/index.hpp"

using rdm::retrieval::FaissIndex;

namespace {
constexpr int64_t kDim = 768, kK = 19, kQueries = 64;

// Clustered synthetic data (CLIP embeddings are far from uniform): 256 centres + noise.
const std::vector<float>& data(int64_t n) {
  static std::map<int64_t, std::vector<float>> cache;
  auto& x = cache[n];
  if (x.empty()) {
    std::mt19937 rng(1234);
    std::normal_distribution<float> g(0.f, 1.f);
    std::vector<float> centres(256 * kDim);
    for (auto& v : centres) v = g(rng);
    x.resize(static_cast<size_t>((n + kQueries) * kDim));
    for (int64_t i = 0; i < n + kQueries; ++i) {
      const float* c = centres.data() + (rng() % 256) * kDim;
      for (int64_t j = 0; j < kDim; ++j) x[i * kDim + j] = c[j] + 0.8f * g(rng);
    }
    rdm::retrieval::normalize_rows(x.data(), n + kQueries, kDim);
  }
  return x;
}
const float* queries(int64_t n) { return data(n).data() + n * kDim; }  // held out: not indexed

std::string ivfpq(int64_t n) {
  int64_t nlist = 1;
  while (nlist * 2 <= static_cast<int64_t>(std::sqrt(static_cast<double>(n)))) nlist *= 2;
  return "IVF" + std::to_string(nlist) + ",PQ64";
}

FaissIndex& index(int64_t n, bool approx) {
  static std::map<std::pair<int64_t, bool>, std::unique_ptr<FaissIndex>> cache;
  auto& p = cache[{n, approx}];
  if (!p) {
    std::string desc = approx ? ivfpq(n) : "Flat";
    p = std::make_unique<FaissIndex>(
        FaissIndex::build(desc, data(n).data(), n, kDim, std::min<int64_t>(n, 20000), 7));
    if (approx) {
      int64_t nlist = std::stoll(desc.substr(3));
      p->set_search_params(std::max<int64_t>(1, nlist / 8), 0);
    }
  }
  return *p;
}

// Exact re-rank of the approximate candidates from the stored vectors.
void rerank(const float* x, const float* q, const int64_t* ids, int64_t m, int64_t k,
            std::vector<std::pair<float, int64_t>>& out) {
  out.clear();
  for (int64_t j = 0; j < m; ++j) {
    if (ids[j] < 0) continue;
    float s = 0;
    const float* r = x + ids[j] * kDim;
    for (int64_t t = 0; t < kDim; ++t) s += r[t] * q[t];
    out.emplace_back(s, ids[j]);
  }
  std::partial_sort(out.begin(), out.begin() + std::min<int64_t>(k, out.size()), out.end(),
                    [](auto& a, auto& b) { return a.first > b.first; });
  out.resize(std::min<int64_t>(k, out.size()));
}

void run(benchmark::State& st, bool approx) {
  const int64_t n = st.range(0);
  if (n >= 1000000 && !std::getenv("RDM_BENCH_1M")) {
    st.SkipWithError("set RDM_BENCH_1M=1 to run the 1M case");
    return;
  }
  const auto& x = data(n);
  FaissIndex& idx = index(n, approx);
  const int64_t cand = approx ? 4 * kK : kK;
  std::vector<float> s(cand);
  std::vector<int64_t> ids(cand);
  std::vector<std::pair<float, int64_t>> top;
  int64_t qi = 0;
  for (auto _ : st) {
    const float* q = queries(n) + (qi++ % kQueries) * kDim;
    idx.search(q, 1, cand, s.data(), ids.data());
    if (approx) rerank(x.data(), q, ids.data(), cand, kK, top);
    benchmark::DoNotOptimize(ids.data());
  }
  // recall@19 of the (re-ranked) results against exact search on the held-out queries.
  std::vector<float> es(kQueries * kK);
  std::vector<int64_t> eid(kQueries * kK);
  rdm::retrieval::exact_search(x.data(), n, queries(n), kQueries, kDim, kK, es.data(), eid.data());
  int64_t hit = 0;
  for (int64_t r = 0; r < kQueries; ++r) {
    const float* q = queries(n) + r * kDim;
    idx.search(q, 1, cand, s.data(), ids.data());
    std::unordered_set<int64_t> truth(eid.begin() + r * kK, eid.begin() + (r + 1) * kK);
    if (approx) {
      rerank(x.data(), q, ids.data(), cand, kK, top);
      for (auto& t : top) hit += truth.count(t.second);
    } else {
      for (int64_t j = 0; j < kK; ++j) hit += truth.count(ids[j]);
    }
  }
  st.counters["recall@19"] = static_cast<double>(hit) / static_cast<double>(kQueries * kK);
  st.SetLabel(approx ? ivfpq(n) + " +rerank" : "Flat (exact, baseline)");
}

void BM_SearchFlat(benchmark::State& st) { run(st, false); }
void BM_SearchIVFPQ(benchmark::State& st) { run(st, true); }
}  // namespace

BENCHMARK(BM_SearchFlat)->Arg(6000)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SearchIVFPQ)->Arg(6000)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
